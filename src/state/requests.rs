//! Operators' requests kept in the replicated state, so that a control call works whichever
//! member receives it and survives that member's crash: a switchover (Patroni's `/failover`
//! key), a restart of one member (Patroni keeps it in the member key), a reinitialisation.
//! The member that must act reads them in its HA loop and reports the outcome back here.

use serde::{Deserialize, Serialize};

use crate::types::{MemberName, UnixMillis};

/// A planned change of primary: `leader` hands over to `candidate` (or to the best standby).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverRequest {
    /// The primary that must hand over; a request for another primary is void.
    pub leader: MemberName,
    pub candidate: Option<MemberName>,
    /// Not before this time; `None`: at once.
    pub scheduled_at: Option<UnixMillis>,
    pub requested_at: UnixMillis,
}

/// Which role a member must have for a restart to go ahead (`role` of `POST /restart`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartRole {
    Primary,
    Replica,
    StandbyLeader,
}

/// A restart of one member's database, with Patroni's conditions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRequest {
    /// Not before this time; `None`: at once.
    pub schedule: Option<UnixMillis>,
    pub role: Option<RestartRole>,
    /// Restart only if the running server is older (`server_version` number, e.g. 150004).
    pub postgres_version: Option<u32>,
    /// Restart only if a changed setting needs it.
    pub restart_pending: bool,
    /// Seconds the start may take (instead of `primary_start_timeout`).
    pub timeout_secs: Option<u64>,
    /// Identifies the request in its outcome.
    pub requested_at: UnixMillis,
}

/// How a restart request ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartResult {
    Restarted,
    /// The conditions (role, version, pending restart) did not hold when it was due.
    ConditionsNotMet,
    Failed {
        reason: String,
    },
}

/// The last restart outcome of a member, for the caller that waits for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartOutcome {
    pub requested_at: UnixMillis,
    pub result: RestartResult,
}

/// Wipe a standby and clone it again (`POST /reinitialize`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReinitRequest {
    /// Clone from the primary even if a `clonefrom` member is available.
    pub from_leader: bool,
    pub requested_at: UnixMillis,
}
