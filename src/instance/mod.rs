//! The database instance: one trait, [`Instance`], for everything the agent does to its local
//! database, with one adapter per engine (`postgres`, `opengauss`), built by [`from_config`].
//! `sql` (the local SQL session), `datadir` (`postmaster.pid`, setting a directory aside),
//! `process` (running tools, writing files) and `conf` (text formats) serve both adapters.
//! `fake` is the simulated database beside the trait, for tests and the simulation. `slots`
//! plans the replication slots of either engine (pure).
//!
//! The trait speaks in HA terms (start as primary or standby of an upstream, promote with a
//! fencing generation, rejoin an upstream) rather than in `pg_ctl` terms, so that openGauss
//! (no promote verb, `gs_ctl failover -T term`, `replconninfoN`, `gs_ctl build`) fits it too.
//!
//! Hazards: every method may be called again after an `Unknown` outcome; each must be idempotent
//! and must confirm its effect (by SQL or control data) before returning `Ok`.

pub mod conf;
pub mod datadir;
pub mod fake;
mod from_config;
pub mod opengauss;
pub mod postgres;
pub mod process;
pub mod server;
pub mod slots;
pub mod sql;

use std::time::Duration;

pub use from_config::{UserConfiguration, from_config, use_pg_rewind, user_configuration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::state::DbState;
use crate::types::{Generation, Lsn, MemberName, Timeline};

/// Another member's database: its name and address (a standby's upstream, a clone's or a
/// rewind's source, a peer to fence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub member: MemberName,
    pub host: String,
    pub port: u16,
}

/// Where a standby takes its WAL from: another member of this cluster, or, for the standby
/// leader of a standby cluster, the remote source outside it (`standby_cluster`), which may be
/// a primary to stream from, a WAL archive (`restore_command`), or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalSource {
    Member(Upstream),
    Remote(crate::config::StandbyCluster),
}

impl WalSource {
    /// Who this is, for logs and file comments.
    pub fn describe(&self) -> String {
        match self {
            WalSource::Member(up) => format!("member {}", up.member),
            WalSource::Remote(remote) => format!("the remote source {}", remote.address()),
        }
    }
}

/// How to stop: `Fast` checkpoints and disconnects clients (switchover, shutdown); `Immediate`
/// does not wait for anything (fencing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopMode {
    Smart,
    Fast,
    Immediate,
}

impl StopMode {
    pub fn as_pg_ctl(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// What is on disk, read without starting the server (pg_controldata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// Missing or empty: needs bootstrap or a base backup.
    Empty,
    /// Holds a database cluster.
    Initialized(ControlData),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlData {
    pub sysid: String,
    pub cluster_state: ClusterStateOnDisk,
    /// Timeline of the latest checkpoint.
    pub timeline: Timeline,
    /// Whether `standby.signal` (or the engine's equivalent) is present.
    pub standby_configured: bool,
    /// Where the latest checkpoint record starts; after a clean shutdown of a primary, the
    /// last record it wrote (a switchover waits until the target replayed past it).
    pub checkpoint: Option<Lsn>,
}

/// pg_controldata's "Database cluster state".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterStateOnDisk {
    /// "shut down": a primary stopped cleanly.
    ShutDown,
    /// "shut down in recovery": a standby stopped cleanly.
    ShutDownInRecovery,
    /// "in production": a primary running, or crashed.
    InProduction,
    /// "in archive recovery": a standby running, or crashed.
    InArchiveRecovery,
    /// "in crash recovery", "starting up", "shutting down": anything transitional.
    Other,
}

/// The role the running server is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbRole {
    Primary,
    Standby,
}

impl DbRole {
    /// The role of a server started with this upstream: its standby, or a primary.
    pub fn wanted(upstream: Option<&WalSource>) -> DbRole {
        match upstream {
            Some(_) => DbRole::Standby,
            None => DbRole::Primary,
        }
    }
}

/// A replication slot's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotType {
    Physical,
    Logical,
}

/// A replication slot the server has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationSlot {
    pub name: String,
    pub kind: SlotType,
    /// Logical: the database it decodes.
    pub database: Option<String>,
    /// Logical: its output plugin.
    pub plugin: Option<String>,
    pub active: bool,
    /// Logical: `confirmed_flush_lsn` (what its consumer confirmed); physical: `restart_lsn`.
    pub position: Option<Lsn>,
}

/// One live observation of the local server. Never an error: what could not be read is `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalStatus {
    pub state: DbState,
    /// `None` when the server is not running or did not answer.
    pub role: Option<DbRole>,
    pub timeline: Option<Timeline>,
    /// Primary: `pg_current_wal_flush_lsn()`.
    pub wal_position: Option<Lsn>,
    /// Standby: WAL receiver's written position (else `pg_last_wal_receive_lsn()`).
    pub received_lsn: Option<Lsn>,
    pub replayed_lsn: Option<Lsn>,
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00:00`
    pub replayed_timestamp: Option<String>,
    pub replay_paused: bool,
    /// Standby: whether a WAL receiver is streaming.
    pub streaming: bool,
    /// Standby: the upstream the WAL receiver is connected to (`host:port`), if any.
    pub upstream: Option<String>,
    pub sysid: Option<String>,
    pub server_version: Option<u32>,
    /// The engine and its version as the server names itself, where `server_version` would
    /// mislead: openGauss reports its PostgreSQL base there (90204), and `openGauss 6.0.2` here.
    /// `None` for PostgreSQL, whose `server_version` says it all.
    pub engine_version: Option<String>,
    /// `YYYY-MM-DD HH:MM:SS.ffffff+00:00`
    pub postmaster_start_time: Option<String>,
    /// Primary: one entry per WAL sender.
    pub replication: Vec<WalSender>,
    pub pending_restart: bool,
    /// Each setting that waits for a restart: its running value and the configured one.
    pub pending_restart_reason: std::collections::BTreeMap<String, crate::state::ParamChange>,
    /// The running server's `synchronous_standby_names` (empty: asynchronous).
    pub synchronous_standby_names: String,
    /// A standby that does not stream: the timeline it replays and how far it has WAL on it
    /// (PostgreSQL: `IDENTIFY_SYSTEM` over a replication connection to itself). `None` when it
    /// streams, or when the adapter cannot tell.
    pub replay_position: Option<(Timeline, Lsn)>,
    /// The server's replication slots (empty when it cannot tell).
    pub slots: Vec<ReplicationSlot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalSender {
    pub usename: String,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
    pub sync_priority: i32,
    /// For the synchronous-replication steps; not part of Patroni's `replication` entries.
    #[serde(skip_serializing, default)]
    pub flush_lsn: Option<Lsn>,
}

/// One line of a timeline history file: `timeline` ended at `lsn` for `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineSwitch {
    pub timeline: Timeline,
    pub lsn: Lsn,
    pub reason: String,
}

/// Parse PostgreSQL's `<timeline>.history` file (`1\t0/3000148\tno recovery target specified`
/// per line; comments and blank lines skipped).
pub fn parse_timeline_history(text: &str) -> Vec<TimelineSwitch> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let timeline = fields.next()?.trim().parse().ok()?;
            let lsn = fields.next()?.trim().parse().ok()?;
            let reason = fields.next().unwrap_or_default().trim().to_owned();
            Some(TimelineSwitch {
                timeline: Timeline(timeline),
                lsn,
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_history_files_parse() {
        let text = "1\t0/3000148\tno recovery target specified\n\n\
                    2\t0/5000000\tbefore 2026-11-24 18:39:54+00\n";
        assert_eq!(
            parse_timeline_history(text),
            vec![
                TimelineSwitch {
                    timeline: Timeline(1),
                    lsn: Lsn(0x3000148),
                    reason: "no recovery target specified".into()
                },
                TimelineSwitch {
                    timeline: Timeline(2),
                    lsn: Lsn(0x5000000),
                    reason: "before 2026-11-24 18:39:54+00".into()
                },
            ]
        );
        assert!(parse_timeline_history("garbage\n").is_empty());
    }

    /// An engine without pg_upgrade (here the simulation; openGauss alike) refuses every step
    /// of an upgrade with a typed error naming itself, and changes nothing.
    #[tokio::test]
    async fn an_engine_without_pg_upgrade_refuses_an_upgrade_naming_itself() {
        let instance = fake::SimDatabases::new(1).add(&crate::types::MemberName::from("a"));
        let target = UpgradeTarget {
            id: crate::types::UnixMillis(1),
            bin_dir: "/opt/pg18/bin".into(),
        };
        let refused = |err: InstanceError| {
            assert!(
                matches!(
                    err,
                    InstanceError::Unsupported {
                        engine: "simulated",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains("has no pg_upgrade"), "{err}");
        };
        refused(
            instance
                .check_upgrade(&target, UpgradeRole::Primary)
                .await
                .unwrap_err(),
        );
        refused(instance.upgrade(&target).await.unwrap_err());
        refused(instance.switch_to_upgraded(&target).await.unwrap_err());
        refused(instance.undo_upgrade(&target).await.unwrap_err());
    }
}

/// A major-version upgrade, as an adapter needs it: the new programs (the same path on every
/// member) and the upgrade's name, which names the directories it makes beside the data
/// directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeTarget {
    pub id: crate::types::UnixMillis,
    pub bin_dir: std::path::PathBuf,
}

/// What a member's checks found: the new version, and the major version it runs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeFacts {
    pub version: String,
    pub major: u32,
    pub from_major: u32,
}

/// The part a member plays in an upgrade: the primary runs `pg_upgrade`; a standby is copied
/// afresh from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpgradeRole {
    Primary,
    Standby,
}

/// The result of fencing a peer's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFence {
    /// It was a primary and now refuses to acknowledge writes.
    Fenced,
    /// It answered as a standby: nothing to fence.
    NotPrimary,
    /// It could not be reached (down, or cut off from this member).
    Unreachable,
}

/// Errors of instance operations. `Unknown` means the effect may or may not have happened: the
/// caller must observe again before acting.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{operation} failed: {detail}")]
    Failed {
        operation: &'static str,
        detail: String,
    },
    #[error("{operation} did not finish within {timeout:?}; its outcome is unknown")]
    Unknown {
        operation: &'static str,
        timeout: Duration,
    },
    #[error(
        "the data directory belongs to another cluster (system identifier {found}, expected {expected})"
    )]
    SystemIdMismatch { found: String, expected: String },
    /// The engine cannot do this at all (not a transient failure): the operator must change
    /// the configuration.
    #[error("{engine} cannot {operation}: {why}")]
    Unsupported {
        engine: &'static str,
        operation: &'static str,
        why: &'static str,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl InstanceError {
    pub fn failed(operation: &'static str, detail: impl Into<String>) -> Self {
        Self::Failed {
            operation,
            detail: detail.into(),
        }
    }
}

/// Everything the agent does to its local database. Implementations own the engine's files,
/// commands and SQL; nothing else in the agent runs `pg_ctl` or edits `postgresql.conf`.
#[async_trait]
pub trait Instance: Send + Sync {
    /// Engine name and version for logs and the API (`PostgreSQL 15.18`).
    fn engine(&self) -> &'static str;

    /// What is on disk, without starting the server.
    async fn data_dir(&self) -> Result<DataDir, InstanceError>;

    /// Live status; cheap enough to call every tick.
    async fn status(&self) -> LocalStatus;

    /// Initialise a new cluster in the empty data directory, start it as a primary, create the
    /// superuser/replication/rewind roles. Returns the system identifier.
    async fn bootstrap(&self) -> Result<String, InstanceError>;

    /// Learn the other members' databases: every member but this one that has a database,
    /// given again whenever that list changes. PostgreSQL needs nothing from it (a standby names
    /// its upstream in `primary_conninfo`, `pg_hba.conf` admits the others); openGauss lists
    /// every peer as a `replconninfoN` channel, without which a primary accepts no standby.
    /// Works whether the server runs or not, and before the data directory exists (the list is
    /// kept for when it does).
    async fn set_replication_peers(&self, peers: &[Upstream]) -> Result<(), InstanceError>;

    /// Fill the empty data directory with a base backup of `source` (a member, or the remote
    /// primary of a standby cluster), configured as its standby. Does not start the server.
    async fn clone_from(&self, source: &WalSource) -> Result<(), InstanceError>;

    /// [`Instance::clone_from`] by the replica methods that need no running member
    /// (`no_leader`) only: `source` is the leader to follow afterwards, whose database does not
    /// accept connections now. Default: the engine has no such method.
    async fn clone_without_leader(&self, _source: &WalSource) -> Result<(), InstanceError> {
        Err(InstanceError::Unsupported {
            engine: self.engine(),
            operation: "create a replica without a running leader",
            why: "it has no replica method but a copy from a running member",
        })
    }

    /// Start the server as a primary (no upstream) or as a standby of `upstream`. Waits until it
    /// accepts connections.
    async fn start(&self, upstream: Option<&WalSource>) -> Result<(), InstanceError>;

    async fn stop(&self, mode: StopMode) -> Result<(), InstanceError>;

    /// Turn the running standby into a primary. `generation` is the fencing token (openGauss's
    /// term); PostgreSQL ignores it.
    async fn promote(&self, generation: Generation) -> Result<(), InstanceError>;

    /// Point the running standby at another upstream (reload or restart as the engine needs).
    async fn follow(&self, upstream: &WalSource) -> Result<(), InstanceError>;

    /// Detach the running standby from its upstream: the WAL receiver stops, so the position it
    /// reports next is final (phase 1 of a failover); it stays a standby and keeps replaying.
    async fn stop_replication(&self) -> Result<(), InstanceError>;

    /// Make the stopped former primary a standby of `source` again, rewinding diverged WAL
    /// (pg_rewind; openGauss: `gs_ctl build -b incremental`). Does not start the server.
    async fn rewind(&self, source: &Upstream) -> Result<(), InstanceError>;

    /// Move the data directory aside (never delete it: an operator may need it) so that a fresh
    /// base backup can be taken. Returns where it went.
    async fn set_aside_data_dir(&self) -> Result<std::path::PathBuf, InstanceError>;

    /// Bring the server's replication slots to `targets` (see [`slots`]): on the primary (or
    /// the standby leader of a standby cluster) a physical slot per member and the permanent
    /// slots; on a standby the permanent slots, copied and advanced from the primary (a copied
    /// logical slot costs the standby one restart). Returns the permanent logical slots that
    /// are not ready on this standby. A slot that cannot be dropped is logged and retried at
    /// the next call.
    async fn sync_replication_slots(
        &self,
        targets: &slots::SlotTargets,
    ) -> Result<Vec<String>, InstanceError>;

    /// Make the primary wait for these standbys (`FIRST n (...)`, `ANY k (...)`, `*`, or empty
    /// for asynchronous replication), kept across restarts. Returns once the running server
    /// uses the value, with the primary's WAL position read after that: every commit
    /// acknowledged earlier lies before it. On a standby the value is only remembered for a
    /// later promotion (`None`).
    async fn set_synchronous_standby_names(
        &self,
        value: &str,
    ) -> Result<Option<Lsn>, InstanceError>;

    /// Use these user parameters and `pg_hba` lines from now on (the dynamic configuration
    /// merged with the local one); a running server gets its files rewritten and reloaded
    /// (parameters that need a restart then show as `pending_restart`). Returns whether
    /// anything changed.
    async fn reconfigure(
        &self,
        parameters: &std::collections::BTreeMap<String, serde_json::Value>,
        pg_hba: &[String],
    ) -> Result<bool, InstanceError>;

    /// How far another member's standby has replayed WAL (`pg_last_wal_replay_lsn()`);
    /// `None` when its database cannot be reached or is not a standby.
    async fn peer_replayed_lsn(&self, peer: &Upstream) -> Result<Option<Lsn>, InstanceError>;

    /// Fence another member's database over SQL (its agent may be frozen): make it refuse to
    /// acknowledge writes and end its client sessions. Never fails for an unreachable peer:
    /// that is an answer ([`PeerFence::Unreachable`]).
    async fn fence_peer(&self, peer: &Upstream) -> Result<PeerFence, InstanceError>;

    /// The switches recorded in the history file of `timeline` (the newest last); empty on
    /// timeline 1.
    async fn timeline_history(
        &self,
        timeline: Timeline,
    ) -> Result<Vec<TimelineSwitch>, InstanceError>;

    /// Run a `CHECKPOINT` (after promotion, before a switchover stop).
    async fn checkpoint(&self) -> Result<(), InstanceError>;

    /// How a script reaches this database as the superuser: a connection string without the
    /// password (it is in the password file), as Patroni gives `post_bootstrap`. `None` when
    /// the adapter offers none (the script then runs without it).
    fn superuser_dsn(&self) -> Option<String> {
        None
    }

    /// The programs of the cluster's last major-version upgrade (`None`: none yet): from now on
    /// a data directory of that version, or an empty one (to be copied), is run with them; any
    /// other with the configured ones. Default: an engine that is never upgraded in place runs
    /// its configured programs only.
    fn use_binaries(&self, _binaries: Option<&crate::state::ClusterBinaries>) {}

    /// Check this member's host for an upgrade to `target` without changing anything the
    /// database runs on: the new programs, their version, the extensions and libraries the
    /// databases use, free space, and as a standby that it streams; as the primary, `pg_upgrade
    /// --check` against the running server. `Err` says what stands in the way. Default (openGauss,
    /// the simulation): [`no_upgrade_path`], so every member's check refuses the upgrade.
    async fn check_upgrade(
        &self,
        _target: &UpgradeTarget,
        _role: UpgradeRole,
    ) -> Result<UpgradeFacts, InstanceError> {
        Err(no_upgrade_path(self.engine()))
    }

    /// On the stopped primary: make the new cluster beside the data directory with
    /// `pg_upgrade --link`, from the start again if an earlier attempt was interrupted. The old
    /// data directory stays usable until the new one first starts. Returns the new system
    /// identifier.
    async fn upgrade(&self, _target: &UpgradeTarget) -> Result<String, InstanceError> {
        Err(no_upgrade_path(self.engine()))
    }

    /// Put the upgraded cluster in place of the data directory, which is set aside. Idempotent:
    /// a swap already done (or half done by a crash) is completed.
    async fn switch_to_upgraded(&self, _target: &UpgradeTarget) -> Result<(), InstanceError> {
        Err(no_upgrade_path(self.engine()))
    }

    /// After a failure before the new cluster first started: stop whatever the upgrade left
    /// running, remove the new cluster, and make the old data directory startable again.
    async fn undo_upgrade(&self, _target: &UpgradeTarget) -> Result<(), InstanceError> {
        Err(no_upgrade_path(self.engine()))
    }
}

/// Why an engine without `pg_upgrade` (openGauss; the simulation) refuses a major-version
/// upgrade: each member's check reports it, so `tribunectl upgrade` is refused with it and
/// nothing changes.
pub fn no_upgrade_path(engine: &'static str) -> InstanceError {
    InstanceError::Unsupported {
        engine,
        operation: "upgrade in place",
        why: "it has no pg_upgrade: its major-version upgrade is a new cluster fed by a dump or \
              by its own migration tools, not a step Tribune can take",
    }
}
