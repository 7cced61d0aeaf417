//! The replicated cluster state: what etcd's keys are to Patroni (DESIGN section 3).
//!
//! One value, [`ClusterState`], changed only by [`Command`]s that Raft has committed, applied by
//! the pure function [`apply`]. `apply` never reads a clock, a file or the network: commands that
//! depend on time carry the proposing Raft leader's timestamp ([`Proposal::at`]). Every command
//! that changes `leader` is a compare-and-set on `generation`, so a stale agent can never undo a
//! newer decision.
//!
//! Who calls it: the Raft state machine (`raft::`) for every committed entry, and tests. It must
//! not grow policy: *which* member should lead is decided in `ha::`; this module only checks that
//! a command is still valid against the state it lands on.

mod apply;
mod config;
mod member;
mod requests;
mod tags;
mod upgrade;
mod upgrade_apply;

pub use apply::apply;
pub use config::StoredConfig;
pub use member::{DbState, Member, MemberStatus, ParamChange, ReportedRole};
pub use requests::{
    ReinitRequest, RestartOutcome, RestartRequest, RestartResult, RestartRole, SwitchoverRequest,
};
pub use tags::Tags;
pub use upgrade::{
    ClusterBinaries, Upgrade, UpgradeCheck, UpgradeOutcome, UpgradePhase, UpgradeResult,
};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::types::{Generation, Lsn, MemberName, Timeline, UnixMillis};

/// The whole replicated state. Small (kilobytes): it is snapshotted as one JSON document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Set once a member has claimed the right to initialise the database (`/initialize`).
    pub initialize: Option<Initialize>,
    pub members: BTreeMap<MemberName, Member>,
    /// The database primary and its lease; `None` while nobody holds it.
    pub leader: Option<Leader>,
    /// The highest generation ever issued; survives `leader` becoming `None`.
    pub generation: Generation,
    /// Open while the cluster has no leader after one was lost: which members have stopped
    /// following the old primary and how far they got (DESIGN section 5, phase 1).
    pub failover: Option<FailoverIntent>,
    /// The dynamic configuration (Patroni's `/config` key), validated and typed when it was
    /// committed; `None` (written `null`) until the bootstrap claim seeds it.
    #[serde(default)]
    pub config: Option<StoredConfig>,
    /// Timeline switches (Patroni's `/history` key).
    pub history: Vec<HistoryEntry>,
    /// The standbys known to hold every acknowledged commit (Patroni's `/sync` key).
    #[serde(default)]
    pub sync: SyncRecord,
    /// A planned switchover waiting for the primary (Patroni's `/failover` key).
    #[serde(default)]
    pub switchover: Option<SwitchoverRequest>,
    /// Restarts waiting for their member, at most one each.
    #[serde(default)]
    pub restarts: BTreeMap<MemberName, RestartRequest>,
    /// How each member's last restart request ended.
    #[serde(default)]
    pub restart_outcomes: BTreeMap<MemberName, RestartOutcome>,
    /// Reinitialisations waiting for their member.
    #[serde(default)]
    pub reinitializations: BTreeMap<MemberName, ReinitRequest>,
    /// Set by `tribunectl remove`: the cluster's state was wiped and no agent manages its
    /// database any more, nor bootstraps a new one, until the Raft data is cleared.
    #[serde(default)]
    pub removed: Option<UnixMillis>,
    /// The Raft node ids of nodes removed from the cluster, by id. An id is never given to
    /// another node (stack.md, pitfall 5): the Raft leader refuses to add an address whose id is
    /// here, and reports from such an address are rejected.
    #[serde(default)]
    pub retired: BTreeMap<u64, RetiredNode>,
    /// A major-version upgrade in progress (`upgrade`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Upgrade>,
    /// How the last upgrade ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_upgrade: Option<UpgradeOutcome>,
    /// The PostgreSQL the cluster runs since its last upgrade; `None`: each member's configured
    /// `postgresql.bin_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binaries: Option<ClusterBinaries>,
    /// Members removed from the cluster, and when: the primary keeps a removed member's slot
    /// for `member_slots_ttl` after that (Patroni's `retain_slots`). Entries older than the ttl
    /// are pruned at the next removal; a member that reports again leaves the list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub departed: BTreeMap<MemberName, UnixMillis>,
}

impl ClusterState {
    pub fn leader_name(&self) -> Option<&MemberName> {
        self.leader.as_ref().map(|l| &l.member)
    }

    pub fn is_leader(&self, member: &MemberName, generation: Generation) -> bool {
        self.leader
            .as_ref()
            .is_some_and(|l| &l.member == member && l.generation == generation)
    }

    /// The dynamic configuration every agent runs with: the committed one, or, while none is
    /// committed yet (before the bootstrap claim), this agent's own `bootstrap.dcs`.
    pub fn dynamic_or<'a>(
        &'a self,
        bootstrap: &'a crate::config::DynamicConfig,
    ) -> &'a crate::config::DynamicConfig {
        self.config.as_ref().map_or(bootstrap, StoredConfig::typed)
    }

    /// The committed dynamic configuration as written (`null` while none is).
    pub fn written_config(&self) -> &serde_json::Value {
        static NONE: serde_json::Value = serde_json::Value::Null;
        self.config.as_ref().map_or(&NONE, StoredConfig::written)
    }

    /// The system identifier of the cluster's database, once bootstrap finished.
    pub fn sysid(&self) -> Option<&str> {
        self.initialize.as_ref().and_then(|i| i.sysid.as_deref())
    }

    /// Whether the cluster is in maintenance mode: paused by an operator (`pause` in the
    /// dynamic configuration), or by an upgrade in progress. Everything that reads "paused"
    /// reads it here.
    pub fn paused(&self, dynamic: &crate::config::DynamicConfig) -> bool {
        dynamic.pause || self.upgrade.as_ref().is_some_and(Upgrade::pauses)
    }
}

/// The synchronous standbys of one leader generation (Patroni's `/sync` key): every commit the
/// primary acknowledged in this generation is on at least `standbys.len() - quorum` of
/// `standbys`. So a failover that has the positions of `quorum + 1` of them finds every
/// acknowledged commit on the most advanced one; with `quorum` 0 (`FIRST n`) any one will do.
/// It never claims more than PostgreSQL guaranteed (DESIGN section 5, rule 1; the steps that
/// keep this true are in `ha::sync`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The leader generation the record belongs to; a record of an older generation says
    /// nothing about the current primary's commits.
    pub generation: Generation,
    pub leader: Option<MemberName>,
    /// The voters: standbys that hold acknowledged commits.
    pub standbys: BTreeSet<MemberName>,
    /// How many voters may lack a given acknowledged commit.
    #[serde(default)]
    pub quorum: u32,
    /// `synchronous_site_survival`: every acknowledged commit of this generation is also on a
    /// member outside the primary's site (`tags.site`), so losing that whole site loses none.
    /// False when the policy is off, or on and degraded (no standby outside the site).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub site_guarantee: bool,
}

impl SyncRecord {
    /// The synchronous standbys of `generation` (empty for a record of another generation).
    pub fn standbys_of(&self, generation: Generation) -> Option<&BTreeSet<MemberName>> {
        (self.generation == generation && self.leader.is_some()).then_some(&self.standbys)
    }

    /// Whether the record was written by `leader` (the primary whose lease ended).
    pub fn former_leader_matches(&self, leader: Option<&MemberName>) -> bool {
        self.leader.is_some() && self.leader.as_ref() == leader
    }

    /// How many voters every acknowledged commit of `generation` is on (0: no claim).
    pub fn copies_of(&self, generation: Generation) -> usize {
        self.standbys_of(generation)
            .map_or(0, |s| s.len().saturating_sub(self.quorum as usize))
    }
}

/// A Raft node removed from the cluster: its address (whose hash was its node id), the member
/// that ran on it, and when it was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredNode {
    pub raft_addr: String,
    pub member: Option<MemberName>,
    pub at: UnixMillis,
}

impl ClusterState {
    /// The retired node whose Raft address is `raft_addr`, if any.
    pub fn retired_addr(&self, raft_addr: &str) -> Option<&RetiredNode> {
        self.retired.values().find(|r| r.raft_addr == raft_addr)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initialize {
    /// The member that won the right to run initdb.
    pub by: MemberName,
    /// `None` while that member is still bootstrapping.
    pub sysid: Option<String>,
    pub at: UnixMillis,
}

/// The database primary. Its lease is kept alive by [`Command::RenewLease`]; only the Raft
/// leader ends it, by [`Command::ExpireLease`] after `ttl` of silence on its own monotonic clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    pub member: MemberName,
    pub generation: Generation,
    /// Counts renewals within this generation, so that an expiry proposal names exactly the
    /// renewal it saw last (compare-and-set).
    pub renewals: u64,
    pub since: UnixMillis,
    pub renewed_at: UnixMillis,
    /// The lease duration (`ttl`, ms) the primary assumed when it sent its last renewal; the
    /// Raft leader waits at least this long before expiring it, even after `ttl` was lowered
    /// (absent in records of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverIntent {
    /// The generation that ended; the next leader gets `ended.next()`.
    pub ended: Generation,
    pub former_leader: Option<MemberName>,
    /// The former primary's last reported WAL position, when known.
    pub former_lsn: Option<Lsn>,
    pub opened_at: UnixMillis,
    /// Members that stopped following the old primary, with their final position.
    pub reports: BTreeMap<MemberName, FailoverReport>,
    /// Set when the lease ended because its holder declined to promote (its `pre_promote`
    /// script refused): who, and how far its standby had got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declined: Option<Declined>,
}

/// A promotion given back by the member that won it: it never became a writable primary, so
/// every commit acknowledged before lies at or before `lsn`, the position it held (it was
/// chosen because it held all of them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declined {
    pub member: MemberName,
    pub lsn: Lsn,
    pub reason: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverReport {
    pub lsn: Lsn,
    pub timeline: Option<Timeline>,
}

/// One line of Patroni's `/history`: the timeline that ended, where it ended, why, when and who
/// was promoted onto the next one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub timeline: Timeline,
    pub lsn: Lsn,
    pub reason: String,
    pub at: UnixMillis,
    pub new_leader: MemberName,
}

/// A committed Raft entry's payload: the command and the proposing Raft leader's wall time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub at: UnixMillis,
    pub command: Command,
}

/// Everything that can change the cluster state. Variants are never renumbered or removed once
/// released: they are persisted in the Raft log (serialised by name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// First writer wins the right to bootstrap the database, and becomes leader of generation
    /// `generation + 1`. Seeds the dynamic configuration when none is stored yet.
    ClaimBootstrap {
        member: MemberName,
        dcs_config: serde_json::Value,
    },
    /// The bootstrapping member finished initdb; the cluster now has a system identifier.
    FinishBootstrap { member: MemberName, sysid: String },
    /// The bootstrapping member gave up; anyone may claim again.
    AbortBootstrap { member: MemberName },
    /// A member's periodic report (Patroni's member key).
    Report {
        member: MemberName,
        record: Box<Member>,
    },
    /// The primary keeps its lease (CAS on generation), assuming it lasts `lease_ms`.
    RenewLease {
        member: MemberName,
        generation: Generation,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease_ms: Option<u64>,
    },
    /// The primary gives its lease up (shutdown, switchover), with its final WAL position.
    ReleaseLease {
        member: MemberName,
        generation: Generation,
        last_lsn: Option<Lsn>,
    },
    /// The member that won the lease of `generation` gives it back without promoting (its
    /// `pre_promote` script refused), its standby at `lsn`: a new failover opens in which it
    /// may not be chosen for `ttl`.
    DeclinePromotion {
        member: MemberName,
        generation: Generation,
        lsn: Lsn,
        reason: String,
    },
    /// Proposed only by the Raft leader after `ttl` of silence on its monotonic clock; valid
    /// only if nothing was renewed since (`renewals` matches).
    ExpireLease {
        generation: Generation,
        renewals: u64,
    },
    /// A standby stopped following the old primary and reports its final position.
    AckFailover {
        member: MemberName,
        ended: Generation,
        report: FailoverReport,
    },
    /// Make `member` the leader of `ended.next()`; valid only while nobody leads and the last
    /// generation issued is `ended`.
    Promote {
        member: MemberName,
        ended: Generation,
    },
    /// The new primary records the timeline switch it made.
    AddHistory { entry: HistoryEntry },
    /// The primary records which standbys hold its acknowledged commits (CAS on its lease).
    SetSync {
        member: MemberName,
        generation: Generation,
        standbys: BTreeSet<MemberName>,
        #[serde(default)]
        quorum: u32,
        /// The record's `site_guarantee`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        site_guarantee: bool,
    },
    /// Replace the dynamic configuration; with `expected`, only if it still is that
    /// (compare-and-set, for a merge computed from it).
    SetConfig {
        config: serde_json::Value,
        #[serde(default)]
        expected: Option<serde_json::Value>,
    },
    /// An operator asks `request.leader` to hand over (replaces a pending request).
    RequestSwitchover { request: SwitchoverRequest },
    /// The pending switchover is withdrawn (by an operator) or given up (by the primary).
    CancelSwitchover,
    /// The primary of `generation`, stopped cleanly, hands its lease to `to`, which has
    /// replayed all of its WAL: `to` leads generation `generation + 1`.
    HandOver {
        member: MemberName,
        generation: Generation,
        to: MemberName,
    },
    /// An operator asks `member` to restart its database.
    RequestRestart {
        member: MemberName,
        request: RestartRequest,
    },
    /// A scheduled restart is withdrawn.
    CancelRestart { member: MemberName },
    /// `member` carried out (or dropped) its restart request.
    FinishRestart {
        member: MemberName,
        outcome: RestartOutcome,
    },
    /// An operator asks `member` to wipe its data and clone it again.
    RequestReinit {
        member: MemberName,
        request: ReinitRequest,
        /// Replace a reinitialisation already waiting.
        force: bool,
    },
    /// `member` set its data directory aside for a fresh clone (or gave the request up).
    FinishReinit { member: MemberName },
    /// An operator removes the cluster (`tribunectl remove`): every key is wiped and a
    /// tombstone left, so that no agent acts on the databases any more.
    RemoveCluster,
    /// Forget a member that left the cluster.
    RemoveMember { member: MemberName },
    /// Proposed by the Raft leader once it removed the Raft node `node_id` (at `raft_addr`) from
    /// the membership: the id is retired for good, and the record of `member`, the member that
    /// ran there, is dropped (so the primary drops its replication slot).
    RetireNode {
        node_id: u64,
        raft_addr: String,
        member: Option<MemberName>,
    },
    /// An operator asks for a major-version upgrade to the PostgreSQL in `bin_dir`, named `id`
    /// (the time of the request). It starts with every member's checks.
    RequestUpgrade {
        bin_dir: std::path::PathBuf,
        id: UnixMillis,
    },
    /// `member` checked its host for upgrade `id`.
    ReportUpgradeCheck {
        member: MemberName,
        id: UnixMillis,
        check: UpgradeCheck,
    },
    /// The primary stopped cleanly and every standby replayed its last record.
    UpgradeStopped {
        member: MemberName,
        generation: Generation,
        id: UnixMillis,
    },
    /// pg_upgrade succeeded: the point of no return, committed before the new server first
    /// starts. The cluster's system identifier becomes `sysid`, its programs those of the
    /// upgrade; the history and the synchronous record of the old system are dropped.
    CommitUpgrade {
        member: MemberName,
        generation: Generation,
        id: UnixMillis,
        sysid: String,
    },
    /// The upgraded primary runs: the standbys are copied afresh.
    UpgradeStarted {
        member: MemberName,
        generation: Generation,
        id: UnixMillis,
    },
    /// The upgrade's primary ends it: every member runs the new version (rebuilding), or it
    /// restored the old data directory (rolling back).
    FinishUpgrade { member: MemberName, id: UnixMillis },
    /// Give upgrade `id` up before the point of no return: refused while checking, rolled back
    /// after.
    AbandonUpgrade { id: UnixMillis, reason: String },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::ClaimBootstrap { .. } => "claim_bootstrap",
            Command::FinishBootstrap { .. } => "finish_bootstrap",
            Command::AbortBootstrap { .. } => "abort_bootstrap",
            Command::Report { .. } => "report",
            Command::RenewLease { .. } => "renew_lease",
            Command::ReleaseLease { .. } => "release_lease",
            Command::DeclinePromotion { .. } => "decline_promotion",
            Command::ExpireLease { .. } => "expire_lease",
            Command::AckFailover { .. } => "ack_failover",
            Command::Promote { .. } => "promote",
            Command::AddHistory { .. } => "add_history",
            Command::SetSync { .. } => "set_sync",
            Command::SetConfig { .. } => "set_config",
            Command::RequestSwitchover { .. } => "request_switchover",
            Command::CancelSwitchover => "cancel_switchover",
            Command::HandOver { .. } => "hand_over",
            Command::RequestRestart { .. } => "request_restart",
            Command::CancelRestart { .. } => "cancel_restart",
            Command::FinishRestart { .. } => "finish_restart",
            Command::RequestReinit { .. } => "request_reinit",
            Command::FinishReinit { .. } => "finish_reinit",
            Command::RemoveCluster => "remove_cluster",
            Command::RemoveMember { .. } => "remove_member",
            Command::RetireNode { .. } => "retire_node",
            Command::RequestUpgrade { .. } => "request_upgrade",
            Command::ReportUpgradeCheck { .. } => "report_upgrade_check",
            Command::UpgradeStopped { .. } => "upgrade_stopped",
            Command::CommitUpgrade { .. } => "commit_upgrade",
            Command::UpgradeStarted { .. } => "upgrade_started",
            Command::FinishUpgrade { .. } => "finish_upgrade",
            Command::AbandonUpgrade { .. } => "abandon_upgrade",
        }
    }
}

/// What applying a command did. A rejection is a normal outcome (a lost race, a stale
/// generation), not an error of the Raft machinery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Applied,
    Rejected(Rejection),
}

impl Outcome {
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("the cluster was already initialised by {by}")]
    AlreadyInitialized { by: MemberName },
    #[error("{member} is not bootstrapping this cluster")]
    NotBootstrapping { member: MemberName },
    #[error("{member} does not hold the leader lease of generation {generation}")]
    NotLeader {
        member: MemberName,
        generation: Generation,
    },
    #[error("generation {expected} is stale: the cluster is at generation {current}")]
    StaleGeneration {
        expected: Generation,
        current: Generation,
    },
    #[error("the lease was renewed since (renewal {current}, not {expected})")]
    LeaseRenewed { expected: u64, current: u64 },
    #[error("{leader} still holds the leader lease")]
    LeaderPresent { leader: MemberName },
    #[error("no failover is open for generation {ended}")]
    NoFailover { ended: Generation },
    #[error("{member} is not a member of this cluster")]
    UnknownMember { member: MemberName },
    #[error("a quorum of {quorum} exceeds the {standbys} synchronous standbys")]
    QuorumTooLarge { quorum: u32, standbys: usize },
    #[error("the cluster was removed")]
    ClusterRemoved,
    #[error("the configuration was changed concurrently")]
    ConfigChanged,
    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error("leader name does not match")]
    LeaderMismatch,
    #[error("the cluster has no leader")]
    NoLeader,
    #[error("switchover target and source are the same")]
    SameMember,
    #[error("no switchover is scheduled")]
    NoSwitchover,
    #[error("another restart of {member} is already scheduled")]
    RestartPending { member: MemberName },
    #[error("no restart of {member} is scheduled")]
    NoRestart { member: MemberName },
    #[error("reinitialize of {member} is already in progress")]
    ReinitPending { member: MemberName },
    #[error("the Raft address {raft_addr} belongs to a node removed from the cluster")]
    RetiredAddress { raft_addr: String },
    #[error("Raft node {node_id} was already retired")]
    AlreadyRetired { node_id: u64 },
    #[error("an upgrade is already in progress ({phase})")]
    UpgradeInProgress { phase: String },
    #[error("upgrade refused: {reason}")]
    UpgradeRefused { reason: String },
    #[error("upgrade {} is not in progress, or not in the phase this step ends", id.0)]
    NoUpgrade { id: UnixMillis },
    #[error("the upgrade is past its point of no return: the new version may have taken writes")]
    PastPointOfNoReturn,
}
