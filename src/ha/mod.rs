//! The pure decision layer (DESIGN section 6): `Observation -> Decision`.
//!
//! [`decide`] runs on every agent every tick and says what the agent should do to its own
//! database; [`arbiter::arbitrate`] runs on the Raft leader and says which cluster-wide command
//! to propose (expire a lease, promote the best candidate). Both are synchronous functions with
//! no I/O and no clock reads: `now` is part of the input, so each behaviour is one row of a
//! scenario table in `scenarios.rs`.
//!
//! Must not: run commands, touch files, or cache anything between calls. What the agent must
//! remember between ticks (when its database went down, a failed rewind) arrives in
//! [`Memory`], kept by the runtime in `node::` and updated by the pure [`Memory::observe`] and
//! [`Memory::remember`] from each observation and each action's [`ActionOutcome`]. The Raft
//! leader's hand-off of Raft leadership is decided here too ([`leadership`]), and a
//! major-version upgrade's steps ([`upgrade`]).

pub mod arbiter;
pub mod candidate;
mod decide;
pub mod divergence;
pub mod leadership;
pub mod operator;
mod outcome;
pub mod placement;
#[cfg(test)]
mod scenarios;
pub mod sync;
pub mod upgrade;
pub mod upstream;

pub use decide::decide;
pub use outcome::{ActionOutcome, Produced};

use std::time::Duration;

use tokio::time::Instant;

use crate::config::StandbyCluster;
use crate::instance::{DataDir, LocalStatus, StopMode};
use crate::state::ClusterState;
use crate::types::{Generation, MemberName, Timeline};

/// Everything `decide` may look at.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub me: &'a MemberName,
    pub now: Instant,
    /// Wall time, only for operators' scheduled actions (never for leases).
    pub wall_now: crate::types::UnixMillis,
    pub cluster: &'a ClusterState,
    pub settings: &'a HaSettings,
    /// The agent's own view of its lease (from the lease keeper, on its monotonic clock).
    pub lease: LeaseView,
    /// What is on disk; `None` when it could not be read this tick.
    pub disk: Option<&'a DataDir>,
    pub db: &'a LocalStatus,
    pub memory: &'a Memory,
}

/// The settings `decide` needs, from the local and dynamic configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct HaSettings {
    pub ttl: Duration,
    pub loop_wait: Duration,
    pub primary_start_timeout: Duration,
    /// An agent without a database: a Raft voter only.
    pub witness: bool,
    /// `nofailover` / `failover_priority: 0`.
    pub nofailover: bool,
    pub use_pg_rewind: bool,
    pub paused: bool,
    pub sync: sync::SyncSettings,
    /// Set: a standby cluster. The lease holder is a standby leader replicating from this
    /// remote source and never promotes; synchronous replication is not managed.
    pub standby_cluster: Option<StandbyCluster>,
    /// `postgresql.pre_promote` is configured: a promotion first runs it, and its refusal
    /// gives the lease back.
    pub pre_promote: bool,
    /// A method of `postgresql.create_replica_methods` needs no running member (`no_leader`,
    /// a restore from a backup repository): an empty member need not wait for the leader's
    /// database to create its replica.
    pub replica_without_leader: bool,
    /// `postgresql.remove_data_directory_on_rewind_failure`: a member whose pg_rewind failed
    /// is cloned again; otherwise it stays stopped for an operator (`tribunectl reinit`).
    pub remove_data_on_rewind_failure: bool,
    /// `postgresql.remove_data_directory_on_diverged_timelines`: a member that cannot follow
    /// the leader's timeline and cannot be rewound (`use_pg_rewind` off) is cloned again;
    /// otherwise it stays stopped for an operator. Patroni honours it after a failed rewind
    /// too.
    pub remove_data_on_diverged_timelines: bool,
    /// This member's `replicatefrom` tag: the member it streams from (cascading) while that
    /// member runs and streams; otherwise the leader.
    pub replicatefrom: Option<MemberName>,
}

/// Where a standby of this cluster streams from, as `decide` names it; the executor resolves a
/// member to its address (`instance::WalSource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFrom {
    /// Another member: the leader (a primary or a standby leader).
    Member(MemberName),
    /// The remote source of a standby cluster, as configured when decided (a changed
    /// `standby_cluster` is a new source to follow).
    Remote(StandbyCluster),
}

impl StreamFrom {
    pub fn member(name: &MemberName) -> Self {
        StreamFrom::Member(name.clone())
    }
}

impl std::fmt::Display for StreamFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamFrom::Member(name) => write!(f, "{name}"),
            StreamFrom::Remote(remote) => write!(f, "the remote primary ({})", remote.address()),
        }
    }
}

/// The agent's lease as its lease keeper sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseView {
    /// Not renewed (yet) for the generation the state names.
    Unconfirmed,
    /// A committed renewal for `generation`, sent before `valid_until - (ttl - margin)`.
    Held {
        generation: Generation,
        valid_until: Instant,
    },
}

impl LeaseView {
    /// Whether the agent may act as the primary of `generation` at `now`.
    pub fn valid_for(&self, generation: Generation, now: Instant) -> bool {
        matches!(self, LeaseView::Held { generation: g, valid_until } if *g == generation && now < *valid_until)
    }

    /// Whether the agent held this generation's lease and let it lapse.
    pub fn lapsed_for(&self, generation: Generation, now: Instant) -> bool {
        matches!(self, LeaseView::Held { generation: g, valid_until } if *g == generation && now >= *valid_until)
    }
}

/// What the runtime remembers between ticks for `decide`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    /// Since when the database of the lease holder has not been running.
    pub primary_down_since: Option<Instant>,
    /// The last rewind failed: the data directory must be set aside and cloned again.
    pub rewind_failed: bool,
    /// The upstream this agent last configured its standby to stream from (by clone, start,
    /// rewind or follow); `None` after a restart of the agent, so the first tick re-applies it.
    pub following: Option<StreamFrom>,
    /// The ended generation whose former primary this agent already tried to fence.
    pub fenced_after: Option<Generation>,
    /// The ended generation for which this standby stopped streaming from the old primary.
    pub detached_after: Option<Generation>,
    /// This member just handed its lease over in a switchover: it rejoins as a standby even in
    /// pause (the operator asked for the switchover), until it has started.
    pub handed_over: bool,
    /// The `synchronous_standby_names` this primary last set, and the WAL position it had
    /// reached once the server used them (see `sync`).
    pub sync_names_applied: Option<SyncNamesApplied>,
    /// The `pre_promote` script refused the promotion this member won for this generation,
    /// and why: it gives the lease back (`DeclinePromotion`).
    pub promotion_vetoed: Option<(Generation, String)>,
    /// This standby cannot follow the leader and may not be cloned again on the agent's own
    /// initiative (`remove_data_directory_on_diverged_timelines` off): it stays stopped, for
    /// this reason, until an operator reinitialises it.
    pub held_stopped: Option<String>,
    /// The reinitialisation this member began asked for a copy of the leader: the next base
    /// backup is taken from it, whatever member is tagged `clonefrom`.
    pub clone_from_leader: bool,
    /// On a primary: each streaming standby (by `application_name`) that lacks some of the
    /// primary's flushed WAL, with the position it last confirmed and since when it has
    /// confirmed nothing more (see [`Memory::silent_standbys`]).
    pub standbys_behind: std::collections::BTreeMap<String, (crate::types::Lsn, Instant)>,
}

/// `synchronous_standby_names` as applied by the primary of `generation`: every commit
/// acknowledged before WAL position `at` may have waited for other standbys than these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncNamesApplied {
    pub generation: Generation,
    pub value: String,
    pub at: crate::types::Lsn,
}

/// What to do, and the one sentence that says why (logged once per tick, shown by the API).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub reason: String,
}

impl Decision {
    fn idle(reason: impl Into<String>) -> Self {
        Self {
            actions: Vec::new(),
            reason: reason.into(),
        }
    }

    fn act(actions: Vec<Action>, reason: impl Into<String>) -> Self {
        Self {
            actions,
            reason: reason.into(),
        }
    }
}

/// One effect for the executor. Executed in order; the first that does not end `Done` ends the
/// tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Propose `ClaimBootstrap`: the first member to commit it initialises the database.
    ClaimBootstrap,
    /// initdb, start as primary, create roles; then propose `FinishBootstrap`.
    Bootstrap,
    /// Propose `FinishBootstrap` with the running primary's system identifier.
    FinishBootstrap,
    /// Base backup from a member (or a standby cluster's remote primary) into the empty data
    /// directory.
    Clone {
        from: StreamFrom,
    },
    /// Fill the empty data directory by the replica methods that need no running member
    /// (`no_leader`), while the leader `from` does not accept connections; the standby then
    /// follows it.
    CloneWithoutLeader {
        from: StreamFrom,
    },
    /// Start as primary (`upstream: None`) or as a standby of `upstream`.
    Start {
        upstream: Option<StreamFrom>,
    },
    Stop {
        mode: StopMode,
    },
    /// A checkpoint on the running primary, so that the shutdown after it is short.
    Checkpoint,
    /// The primary, stopped cleanly, waits until `to` has replayed all of its WAL, then hands
    /// the lease over (`HandOver`); otherwise gives the switchover up.
    HandOver {
        generation: Generation,
        to: MemberName,
    },
    /// The standby leader of a standby cluster, stopped, hands the lease to `to` at once: it
    /// wrote nothing of its own, so there is nothing for `to` to catch up with (`to` streams
    /// from the remote itself).
    PassLease {
        generation: Generation,
        to: MemberName,
    },
    /// Withdraw the pending switchover (it cannot be carried out), saying why in the log.
    CancelSwitchover,
    /// Stop and start this member's database for the restart request made at `requested_at`,
    /// then report the outcome (`FinishRestart`).
    Restart {
        requested_at: crate::types::UnixMillis,
        upstream: Option<StreamFrom>,
        timeout: Option<Duration>,
    },
    /// Report that the restart request made at `requested_at` was dropped: its conditions
    /// did not hold when it was due.
    SkipRestart {
        requested_at: crate::types::UnixMillis,
    },
    /// The reinitialisation asked of this member has begun (data set aside): `FinishReinit`.
    /// `from_leader`: the operator asked for a copy of the leader, not of a `clonefrom` member.
    FinishReinit {
        from_leader: bool,
    },
    /// Run the `pre_promote` script: a refusal ends the tick, and the memory of it makes the
    /// next decision give the lease back.
    PrePromote {
        generation: Generation,
    },
    Promote {
        generation: Generation,
    },
    /// Give the lease of `generation` back without promoting (`pre_promote` refused), so that
    /// the arbiter promotes another member, or this one after `ttl`.
    DeclinePromotion {
        generation: Generation,
        reason: String,
    },
    /// Point a running standby at another upstream.
    Follow {
        upstream: StreamFrom,
    },
    /// pg_rewind the stopped former primary from `from` and configure it as its standby.
    Rewind {
        from: MemberName,
    },
    /// Move the data directory aside so that a fresh base backup can be taken.
    SetAsideDataDir,
    /// Leave the stopped database stopped until an operator reinitialises it, saying why (the
    /// memory of it keeps the next decisions from starting it).
    HoldStopped {
        reason: String,
    },
    /// Fence the former primary's database over SQL (its agent may be frozen) before
    /// reporting for the failover after generation `ended`.
    FencePeer {
        member: MemberName,
        ended: Generation,
    },
    /// Stop streaming from the former primary, so that the position reported is final.
    StopStreaming {
        ended: Generation,
    },
    /// Report the final WAL position (read afresh after the actions before it) for the
    /// failover after generation `ended`.
    AckFailover {
        ended: Generation,
    },
    /// Give the lease up (the primary cannot serve).
    ReleaseLease {
        generation: Generation,
    },
    /// Keep a replication slot for every other member.
    SyncSlots,
    /// Record the switch onto `timeline` (read from its history file) in the cluster history.
    RecordHistory {
        timeline: Timeline,
    },
    /// Propose the `sync` record: every acknowledged commit is on all but `quorum` of
    /// `standbys` (`SetSync`).
    SetSyncRecord {
        generation: Generation,
        standbys: std::collections::BTreeSet<MemberName>,
        quorum: u32,
        /// Every acknowledged commit is also outside the primary's site.
        site_guarantee: bool,
    },
    /// Set `synchronous_standby_names` on the primary of `generation` and note the WAL
    /// position at which the server uses it.
    SetSyncNames {
        generation: Generation,
        value: String,
    },
    /// Check this member's host for upgrade `id` and report the verdict (`ReportUpgradeCheck`).
    CheckUpgrade {
        id: crate::types::UnixMillis,
    },
    /// The upgrade's primary, stopped cleanly: wait until every standby of the upgrade replayed
    /// its last record, then report it (`UpgradeStopped`); otherwise give the upgrade up.
    AwaitUpgradeStandbys {
        id: crate::types::UnixMillis,
        generation: Generation,
    },
    /// Run `pg_upgrade --link`, then commit the upgrade (`CommitUpgrade`: the point of no
    /// return) or, when it failed, give it up (it rolls back).
    RunUpgrade {
        id: crate::types::UnixMillis,
        generation: Generation,
    },
    /// Put the upgraded data directory in place of the old one (set aside).
    SwitchToUpgraded {
        id: crate::types::UnixMillis,
    },
    /// Report that the upgraded primary runs (`UpgradeStarted`).
    ReportUpgradeStarted {
        id: crate::types::UnixMillis,
        generation: Generation,
    },
    /// End the upgrade: every member runs the new version (`FinishUpgrade`).
    FinishUpgrade {
        id: crate::types::UnixMillis,
    },
    /// Restore the old data directory after a failed upgrade, then end it (`FinishUpgrade`).
    UndoUpgrade {
        id: crate::types::UnixMillis,
    },
}

impl Action {
    /// A short name for logs and metrics (`tribune_actions_total{action=...}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::ClaimBootstrap => "claim_bootstrap",
            Action::Bootstrap => "bootstrap",
            Action::FinishBootstrap => "finish_bootstrap",
            Action::Clone { .. } => "clone",
            Action::CloneWithoutLeader { .. } => "clone_without_leader",
            Action::Start { upstream: None } => "start_primary",
            Action::Start { upstream: Some(_) } => "start_standby",
            Action::Stop { .. } => "stop",
            Action::Checkpoint => "checkpoint",
            Action::HandOver { .. } => "hand_over",
            Action::PassLease { .. } => "pass_lease",
            Action::CancelSwitchover => "cancel_switchover",
            Action::Restart { .. } => "restart",
            Action::SkipRestart { .. } => "skip_restart",
            Action::FinishReinit { .. } => "finish_reinit",
            Action::PrePromote { .. } => "pre_promote",
            Action::Promote { .. } => "promote",
            Action::DeclinePromotion { .. } => "decline_promotion",
            Action::Follow { .. } => "follow",
            Action::Rewind { .. } => "rewind",
            Action::SetAsideDataDir => "set_aside_data_dir",
            Action::HoldStopped { .. } => "hold_stopped",
            Action::FencePeer { .. } => "fence_peer",
            Action::StopStreaming { .. } => "stop_streaming",
            Action::AckFailover { .. } => "ack_failover",
            Action::ReleaseLease { .. } => "release_lease",
            Action::SyncSlots => "sync_slots",
            Action::RecordHistory { .. } => "record_history",
            Action::SetSyncRecord { .. } => "set_sync_record",
            Action::SetSyncNames { .. } => "set_sync_names",
            Action::CheckUpgrade { .. } => "check_upgrade",
            Action::AwaitUpgradeStandbys { .. } => "await_upgrade_standbys",
            Action::RunUpgrade { .. } => "run_upgrade",
            Action::SwitchToUpgraded { .. } => "switch_to_upgraded",
            Action::ReportUpgradeStarted { .. } => "report_upgrade_started",
            Action::FinishUpgrade { .. } => "finish_upgrade",
            Action::UndoUpgrade { .. } => "undo_upgrade",
        }
    }
}
