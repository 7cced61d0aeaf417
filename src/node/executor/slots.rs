//! What this member's database must do with its replication slots, read from the replicated
//! state and the dynamic configuration ([`SlotTargets`]); the instance adapter plans and runs
//! it. Pure, so that who gets which slot is tested here without a database.

use std::collections::BTreeMap;

use crate::config::{DynamicConfig, SlotKind};
use crate::instance::Upstream;
use crate::instance::slots::{SlotRole, SlotTargets};
use crate::state::ClusterState;
use crate::types::{MemberName, UnixMillis};

/// The targets of `me`: the lease holder keeps a slot per member that has a database, the
/// slots of members removed less than `member_slots_ttl` before `now`, and the permanent
/// slots; a standby keeps the permanent slots at the positions its primary (`upstream`)
/// reports. `use_slots: false` keeps no slot for members, and no permanent slot either
/// (Patroni: slots are off altogether). A standby cluster keeps no logical permanent slot.
pub fn targets(
    cluster: &ClusterState,
    me: &MemberName,
    dynamic: &DynamicConfig,
    now: UnixMillis,
    upstream: Option<Upstream>,
) -> SlotTargets {
    let leader = cluster.leader_name();
    let role = if leader == Some(me) {
        SlotRole::Primary
    } else {
        SlotRole::Standby
    };
    let use_slots = dynamic.postgresql.use_slots;
    let mut members: Vec<MemberName> = Vec::new();
    let mut retained: Vec<MemberName> = Vec::new();
    if use_slots {
        // The primary keeps a slot for every member; a standby, for the members whose
        // `replicatefrom` names it (Patroni: cascading members get slots on their upstream).
        // A `nostream` member never streams: a slot would hold WAL for nobody.
        members = cluster
            .members
            .iter()
            .filter(|(name, m)| *name != me && m.conn_url.is_some())
            .filter(|(_, m)| role == SlotRole::Primary || m.tags.replicatefrom() == Some(me))
            .filter(|(_, m)| !m.tags.nostream())
            .map(|(name, _)| name.clone())
            .collect();
    }
    if use_slots && role == SlotRole::Primary {
        let ttl = u64::try_from(dynamic.member_slots_ttl.as_millis()).unwrap_or(u64::MAX);
        retained = cluster
            .departed
            .iter()
            .filter(|(_, at)| now.0.saturating_sub(at.0) < ttl)
            .map(|(name, _)| name.clone())
            .collect();
    }
    let standby_cluster = dynamic.standby_cluster.is_some();
    let permanent = if use_slots {
        dynamic
            .slots
            .iter()
            .filter(|(_, slot)| slot.applies(standby_cluster))
            // A standby cluster's servers are all in recovery: PostgreSQL cannot make a logical
            // slot there, and nobody there publishes one to copy (Patroni skips them too).
            .filter(|(_, slot)| !(standby_cluster && matches!(slot.kind, SlotKind::Logical { .. })))
            .map(|(name, slot)| (name.clone(), slot.clone()))
            .collect()
    } else {
        BTreeMap::new()
    };
    let primary = match (role, leader.and_then(|l| cluster.members.get(l))) {
        (SlotRole::Standby, Some(record)) => record.status.slots.clone(),
        _ => BTreeMap::new(),
    };
    SlotTargets {
        role,
        members,
        retained,
        permanent,
        ignore: dynamic.ignore_slots.clone(),
        primary,
        upstream: if role == SlotRole::Standby {
            upstream
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::{Leader, Member, MemberStatus, Tags};
    use crate::types::{Generation, Lsn};

    fn member(conn: bool, slots: &[(&str, u64)]) -> Member {
        Member {
            api_url: String::new(),
            conn_url: conn.then(|| "postgres://h:5432/postgres".into()),
            raft_addr: None,
            proxy_url: None,
            version: String::new(),
            tags: Tags::default(),
            status: MemberStatus {
                slots: slots
                    .iter()
                    .map(|(n, l)| ((*n).to_owned(), Lsn(*l)))
                    .collect(),
                ..MemberStatus::default()
            },
            reported_at: UnixMillis(0),
        }
    }

    fn cluster() -> ClusterState {
        let mut c = ClusterState::default();
        c.members.insert("a".into(), member(true, &[("cdc", 40)]));
        c.members.insert("b".into(), member(true, &[]));
        c.members.insert("witness".into(), member(false, &[]));
        c.leader = Some(Leader {
            member: "a".into(),
            generation: Generation(1),
            renewals: 0,
            since: UnixMillis(0),
            renewed_at: UnixMillis(0),
            lease_ms: None,
        });
        c.departed.insert("gone_long_ago".into(), UnixMillis(0));
        c.departed
            .insert("gone_recently".into(), UnixMillis(1_000_000));
        c
    }

    fn dynamic(doc: serde_json::Value) -> DynamicConfig {
        DynamicConfig::from_json(&doc).unwrap()
    }

    #[test]
    fn the_primary_keeps_members_recent_departures_and_permanent_slots() {
        let d = dynamic(json!({
            "member_slots_ttl": 600,
            "slots": {
                "cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"},
                "dr": {"type": "physical", "cluster_type": "standby"}
            },
            "ignore_slots": [{"name": "x"}]
        }));
        let t = targets(&cluster(), &"a".into(), &d, UnixMillis(1_300_000), None);
        assert_eq!(t.role, SlotRole::Primary);
        assert_eq!(t.members, vec![MemberName::from("b")]);
        assert_eq!(t.retained, vec![MemberName::from("gone_recently")]);
        assert_eq!(t.permanent.keys().collect::<Vec<_>>(), ["cdc"]);
        assert_eq!(t.ignore.len(), 1);
        assert!(t.primary.is_empty() && t.upstream.is_none());
    }

    #[test]
    fn a_standby_keeps_permanent_slots_at_the_primarys_positions() {
        let d = dynamic(json!({
            "slots": {"cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"}}
        }));
        let up = Upstream {
            member: "a".into(),
            host: "h".into(),
            port: 5432,
        };
        let t = targets(&cluster(), &"b".into(), &d, UnixMillis(0), Some(up.clone()));
        assert_eq!(t.role, SlotRole::Standby);
        assert!(t.members.is_empty() && t.retained.is_empty());
        assert_eq!(t.primary, BTreeMap::from([("cdc".to_owned(), Lsn(40))]));
        assert_eq!(t.upstream, Some(up));
    }

    #[test]
    fn a_standby_cluster_keeps_only_physical_permanent_slots() {
        let d = dynamic(json!({
            "standby_cluster": {"host": "10.0.0.1", "port": 5432},
            "slots": {
                "cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"},
                "dr": {"type": "physical"}
            }
        }));
        let t = targets(&cluster(), &"a".into(), &d, UnixMillis(0), None);
        assert_eq!(t.permanent.keys().collect::<Vec<_>>(), ["dr"]);
    }

    #[test]
    fn use_slots_off_keeps_nothing() {
        let d = dynamic(json!({
            "postgresql": {"use_slots": false},
            "slots": {"p": {"type": "physical"}}
        }));
        let t = targets(&cluster(), &"a".into(), &d, UnixMillis(1_000_000), None);
        assert!(t.members.is_empty() && t.retained.is_empty() && t.permanent.is_empty());
    }
}
