//! Whom a standby streams from and whom it copies from, as Patroni's tags say: the leader, or
//! the member named by its own `replicatefrom` tag (cascading replication) while that member
//! runs and streams; and for a base backup, a running, streaming member tagged `clonefrom`
//! before the leader.
//!
//! Pure: read from the replicated member records (a record older than twice `ttl` counts as
//! gone, as for a switchover target). Patroni picks a `clonefrom` member at random; here the
//! choice is deterministic (the most advanced, then by name) so that a decision can be
//! replayed.
//!
//! Hazard: a cascade needs its upstream to stream from someone. A member whose own
//! `replicatefrom` names this one is never taken as its upstream (two standbys naming each
//! other would otherwise stream from each other and receive nothing); a longer ring of tags is
//! not detected.

use std::time::Duration;

use crate::state::{ClusterState, DbState, Member, ReportedRole};
use crate::types::{MemberName, UnixMillis};

/// Whether `member` is a standby another member may stream or copy from: running, streaming,
/// reported recently, and not itself streaming from `me` by its tag.
fn serves(member: &Member, me: &MemberName, wall_now: UnixMillis, ttl: Duration) -> bool {
    let fresh_ms = 2 * ttl.as_millis() as u64;
    member.conn_url.is_some()
        && member.status.role == ReportedRole::Replica
        && member.status.state == DbState::Running
        && member.status.replication_state.as_deref() == Some("streaming")
        && wall_now.0.saturating_sub(member.reported_at.0) <= fresh_ms
        && member.tags.replicatefrom() != Some(me)
        && !member.tags.nostream()
}

/// The member this standby streams from: the one its `replicatefrom` tag names while that
/// member serves, else the leader.
pub fn stream_source<'a>(
    cluster: &ClusterState,
    me: &MemberName,
    leader: &'a MemberName,
    replicatefrom: Option<&'a MemberName>,
    wall_now: UnixMillis,
    ttl: Duration,
) -> &'a MemberName {
    match replicatefrom {
        Some(name) if name != me && name != leader => {
            let serving = cluster
                .members
                .get(name)
                .is_some_and(|m| serves(m, me, wall_now, ttl));
            if serving { name } else { leader }
        }
        _ => leader,
    }
}

/// The member a base backup is taken from: the most advanced serving member tagged
/// `clonefrom` (never this one), else the leader.
pub fn clone_source(
    cluster: &ClusterState,
    me: &MemberName,
    leader: &MemberName,
    wall_now: UnixMillis,
    ttl: Duration,
) -> MemberName {
    cluster
        .members
        .iter()
        .filter(|(name, m)| {
            *name != me && *name != leader && m.tags.clonefrom() && serves(m, me, wall_now, ttl)
        })
        .max_by_key(|(name, m)| {
            (
                m.status.replayed_lsn.or(m.status.received_lsn),
                std::cmp::Reverse(*name),
            )
        })
        .map_or_else(|| leader.clone(), |(name, _)| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemberStatus;
    use crate::types::Lsn;

    const TTL: Duration = Duration::from_secs(3);
    const NOW: UnixMillis = UnixMillis(100_000);

    fn n(s: &str) -> MemberName {
        MemberName::from(s)
    }

    /// Members as (name, role, streaming, replayed LSN, reported at, tags).
    fn cluster(rows: &[(&str, ReportedRole, bool, u64, u64, serde_json::Value)]) -> ClusterState {
        let mut c = ClusterState::default();
        for (name, role, streaming, lsn, at, tags) in rows {
            c.members.insert(
                n(name),
                Member {
                    api_url: String::new(),
                    conn_url: Some("postgres://h:1/postgres".into()),
                    raft_addr: None,
                    version: String::new(),
                    tags: serde_json::from_value(tags.clone()).unwrap(),
                    proxy_url: None,
                    status: MemberStatus {
                        role: *role,
                        state: DbState::Running,
                        replayed_lsn: Some(Lsn(*lsn)),
                        replication_state: Some(
                            if *streaming {
                                "streaming"
                            } else {
                                "in archive recovery"
                            }
                            .into(),
                        ),
                        ..Default::default()
                    },
                    reported_at: UnixMillis(*at),
                },
            );
        }
        c
    }

    #[test]
    fn stream_sources() {
        use ReportedRole::{Primary, Replica};
        let none = serde_json::json!({});
        let c = cluster(&[
            ("p", Primary, false, 100, NOW.0, none.clone()),
            ("b", Replica, true, 90, NOW.0, none.clone()),
            ("c", Replica, false, 90, NOW.0, none.clone()),
            ("d", Replica, true, 90, 1_000, none.clone()),
            (
                "e",
                Replica,
                true,
                90,
                NOW.0,
                serde_json::json!({"replicatefrom": "a"}),
            ),
            (
                "f",
                Replica,
                true,
                90,
                NOW.0,
                serde_json::json!({"nostream": true}),
            ),
        ]);
        let leader = n("p");
        // (why, the tag, the upstream)
        let table = [
            ("no tag: the leader", None, "p"),
            ("a streaming standby", Some("b"), "b"),
            ("the named member does not stream", Some("c"), "p"),
            ("the named member has not reported lately", Some("d"), "p"),
            ("the named member cascades from this one", Some("e"), "p"),
            (
                "the named member does not stream by its tag",
                Some("f"),
                "p",
            ),
            ("the named member is not a member", Some("zz"), "p"),
            ("the tag names the leader", Some("p"), "p"),
            ("the tag names this member", Some("a"), "p"),
        ];
        for (why, tag, expected) in table {
            let tag = tag.map(n);
            let got = stream_source(&c, &n("a"), &leader, tag.as_ref(), NOW, TTL);
            assert_eq!(got, &n(expected), "{why}");
        }
    }

    #[test]
    fn clone_sources() {
        use ReportedRole::{Primary, Replica};
        let clonefrom = serde_json::json!({"clonefrom": true});
        let none = serde_json::json!({});
        let leader = n("p");
        let pick = |rows: &[(&str, ReportedRole, bool, u64, u64, serde_json::Value)]| {
            clone_source(&cluster(rows), &n("a"), &leader, NOW, TTL)
        };
        let primary = ("p", Primary, false, 100, NOW.0, clonefrom.clone());
        assert_eq!(
            pick(std::slice::from_ref(&primary)),
            n("p"),
            "nobody tagged: the leader"
        );
        assert_eq!(
            pick(&[
                primary.clone(),
                ("b", Replica, true, 90, NOW.0, none.clone()),
            ]),
            n("p"),
            "an untagged standby is not a clone source"
        );
        assert_eq!(
            pick(&[
                primary.clone(),
                ("b", Replica, true, 80, NOW.0, clonefrom.clone()),
                ("c", Replica, true, 90, NOW.0, clonefrom.clone()),
            ]),
            n("c"),
            "the most advanced tagged standby"
        );
        assert_eq!(
            pick(&[
                primary.clone(),
                ("b", Replica, true, 90, NOW.0, clonefrom.clone()),
                ("c", Replica, true, 90, NOW.0, clonefrom.clone()),
            ]),
            n("b"),
            "equal positions: by name"
        );
        assert_eq!(
            pick(&[
                primary.clone(),
                ("b", Replica, false, 90, NOW.0, clonefrom.clone()),
                ("c", Replica, true, 90, 1_000, clonefrom.clone()),
                ("a", Replica, true, 95, NOW.0, clonefrom.clone()),
            ]),
            n("p"),
            "not streaming, not reported lately, or this member itself: the leader"
        );
    }
}
