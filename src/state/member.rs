//! A member's published record: Patroni's `members/<name>` key, as the agent reports it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Tags;
use crate::types::{Generation, Lsn, MemberName, Timeline, UnixMillis};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// `http://host:port/patroni`
    pub api_url: String,
    /// `postgres://host:port/postgres`; `None` for a witness (no database).
    pub conn_url: Option<String>,
    /// The member's Raft address (`raft.self_addr`), so the Raft leader can tell which voter
    /// runs on which member.
    #[serde(default)]
    pub raft_addr: Option<String>,
    pub version: String,
    pub tags: Tags,
    /// `postgres://host:port/postgres` of the connection pooler in front of this member
    /// (`postgresql.proxy_address`), as Patroni publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    pub status: MemberStatus,
    pub reported_at: UnixMillis,
}

impl Member {
    /// `nofailover: true` or `failover_priority: 0`.
    pub fn nofailover(&self) -> bool {
        self.tags.nofailover()
    }

    /// Patroni's `failover_priority` tag (default 1; 0 means never promote).
    pub fn failover_priority(&self) -> u64 {
        self.tags.failover_priority()
    }

    /// The furthest WAL position this member is known to hold.
    pub fn wal_position(&self) -> Option<Lsn> {
        let s = &self.status;
        [s.wal_position, s.received_lsn, s.replayed_lsn]
            .into_iter()
            .flatten()
            .max()
    }

    /// `host` and `port` of `conn_url`.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let url = self.conn_url.as_deref()?;
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split('/').next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = authority.rsplit_once(':')?;
        Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
    }
}

/// A setting that takes effect at the next restart (Patroni's `pending_restart_reason`
/// entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamChange {
    pub old_value: String,
    pub new_value: String,
}

/// What the member's database is doing, as last observed by its own agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub role: ReportedRole,
    pub state: DbState,
    pub timeline: Option<Timeline>,
    /// Primary: flushed WAL position.
    pub wal_position: Option<Lsn>,
    /// Standby: WAL received (written by the WAL receiver).
    pub received_lsn: Option<Lsn>,
    /// Standby: WAL replayed.
    pub replayed_lsn: Option<Lsn>,
    /// `streaming` or `in archive recovery` for a standby.
    pub replication_state: Option<String>,
    pub sysid: Option<String>,
    pub server_version: Option<u32>,
    pub pending_restart: bool,
    /// The settings waiting for a restart: what the server runs with and what its
    /// configuration files now say.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_restart_reason: BTreeMap<String, ParamChange>,
    /// The generation this member last saw end, when it acknowledged a failover intent.
    pub failover_ack: Option<Generation>,
    /// A standby: the member its WAL receiver streams from (the leader, or another standby
    /// when it cascades), matched by address; absent when it does not stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<MemberName>,
    /// Primary: the positions of its permanent replication slots (logical: what the consumer
    /// confirmed; physical: the restart position), which the standbys advance their copies to
    /// (Patroni's `/status` `slots`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, Lsn>,
}

/// The role a member reports, with Patroni's words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedRole {
    Primary,
    Replica,
    StandbyLeader,
    Demoted,
    #[default]
    Uninitialized,
    /// A Raft voter with no database.
    Witness,
}

impl ReportedRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportedRole::Primary => "primary",
            ReportedRole::Replica => "replica",
            ReportedRole::StandbyLeader => "standby_leader",
            ReportedRole::Demoted => "demoted",
            ReportedRole::Uninitialized => "uninitialized",
            ReportedRole::Witness => "witness",
        }
    }
}

/// PostgreSQL's state with Patroni's words (`GET /patroni` `state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbState {
    #[serde(rename = "initializing new cluster")]
    InitializingNewCluster,
    #[serde(rename = "initdb failed")]
    InitdbFailed,
    #[serde(rename = "creating replica")]
    CreatingReplica,
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "starting")]
    Starting,
    #[serde(rename = "start failed")]
    StartFailed,
    #[serde(rename = "restarting")]
    Restarting,
    #[serde(rename = "stopping")]
    Stopping,
    #[default]
    #[serde(rename = "stopped")]
    Stopped,
    #[serde(rename = "stop failed")]
    StopFailed,
    #[serde(rename = "crashed")]
    Crashed,
    #[serde(rename = "rewinding")]
    Rewinding,
    #[serde(rename = "unknown")]
    Unknown,
}

impl DbState {
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::InitializingNewCluster => "initializing new cluster",
            DbState::InitdbFailed => "initdb failed",
            DbState::CreatingReplica => "creating replica",
            DbState::Running => "running",
            DbState::Starting => "starting",
            DbState::StartFailed => "start failed",
            DbState::Restarting => "restarting",
            DbState::Stopping => "stopping",
            DbState::Stopped => "stopped",
            DbState::StopFailed => "stop failed",
            DbState::Crashed => "crashed",
            DbState::Rewinding => "rewinding",
            DbState::Unknown => "unknown",
        }
    }
}

/// A record with nothing but a Raft address and a role, for tests of what names a Raft node.
#[cfg(test)]
impl Member {
    pub(crate) fn at_raft_addr(raft_addr: &str, role: ReportedRole) -> Member {
        Member {
            api_url: String::new(),
            conn_url: None,
            raft_addr: Some(raft_addr.into()),
            version: String::new(),
            tags: Default::default(),
            proxy_url: None,
            status: MemberStatus {
                role,
                ..Default::default()
            },
            reported_at: UnixMillis(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(tags: serde_json::Value) -> Member {
        Member {
            api_url: "http://127.0.0.1:8008/patroni".into(),
            conn_url: Some("postgres://127.0.0.2:5433/postgres".into()),
            raft_addr: None,
            version: "0".into(),
            tags: serde_json::from_value(tags).unwrap(),
            proxy_url: None,
            status: MemberStatus::default(),
            reported_at: UnixMillis(0),
        }
    }

    #[test]
    fn failover_tags_follow_patroni() {
        assert!(!member(serde_json::json!({})).nofailover());
        assert!(member(serde_json::json!({"nofailover": true})).nofailover());
        assert!(member(serde_json::json!({"failover_priority": 0})).nofailover());
        assert_eq!(
            member(serde_json::json!({"failover_priority": 3})).failover_priority(),
            3
        );
        assert_eq!(
            member(serde_json::json!({"nofailover": true, "failover_priority": 3}))
                .failover_priority(),
            0
        );
    }

    #[test]
    fn host_port_comes_from_conn_url() {
        let m = member(serde_json::json!({}));
        assert_eq!(m.host_port(), Some(("127.0.0.2".into(), 5433)));
    }

    #[test]
    fn db_state_serialises_with_patroni_words() {
        assert_eq!(
            serde_json::to_string(&DbState::CreatingReplica).unwrap(),
            "\"creating replica\""
        );
        assert_eq!(DbState::CreatingReplica.as_str(), "creating replica");
    }
}
