//! Which standby to promote: failover candidates as a sort order (DESIGN section 5, rule 2).
//!
//! Eligible: has a database, is not `nofailover`, is not the member whose lease ended, reported
//! a position for this failover, and lags the former primary's last known position by at most
//! `maximum_lag_on_failover`. Order: most advanced WAL position, then the former primary's
//! site (`tags.site`) before the others, then higher `failover_priority`, then name (so every
//! Raft leader picks the same one).
//!
//! In synchronous mode the candidates are the voters sure to hold every acknowledged commit, so
//! how far each got beyond them costs no acknowledged write: there the site comes first, and
//! the primary stays beside its clients when its site still has a member that can take over.
//! Asynchronously no position is known to hold every acknowledged commit, and the most
//! advanced still wins. Only positions reported for this failover count: a member cut off from
//! the Raft majority (a lost site) cannot report one, so it is never chosen.

use crate::state::{ClusterState, FailoverIntent, Member, ReportedRole};
use crate::types::MemberName;

/// Why a member cannot be promoted (shown in the arbiter's reason when nobody is eligible).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ineligible {
    Witness,
    NoFailover,
    FormerLeader,
    NotReported,
    TooFarBehind { lag: u64 },
}

/// Whether `member` may be considered at all (before it reports a position).
pub fn may_promote(
    name: &MemberName,
    member: &Member,
    intent: &FailoverIntent,
) -> Result<(), Ineligible> {
    if member.conn_url.is_none() || member.status.role == ReportedRole::Witness {
        return Err(Ineligible::Witness);
    }
    if member.nofailover() {
        return Err(Ineligible::NoFailover);
    }
    if intent.former_leader.as_ref() == Some(name) {
        return Err(Ineligible::FormerLeader);
    }
    Ok(())
}

/// Whether `member`'s data is the cluster's database system: a copy of the system from before
/// a major-version upgrade (its own system identifier) holds none of the writes made since,
/// and must never be promoted. A member that reports no identifier (no data) passes here;
/// it has no position to report either.
pub fn same_system(cluster: &ClusterState, member: &Member) -> bool {
    match (cluster.sysid(), member.status.sysid.as_deref()) {
        (Some(cluster), Some(own)) => cluster == own,
        _ => true,
    }
}

/// The reported candidates of `intent`, best first. `allowed`, in synchronous mode, holds the
/// voters of the ended generation sure to hold every acknowledged commit (`arbiter::commit_holders`).
pub fn ranked<'a>(
    cluster: &'a ClusterState,
    intent: &'a FailoverIntent,
    maximum_lag_on_failover: u64,
    allowed: Option<&std::collections::BTreeSet<MemberName>>,
) -> Vec<&'a MemberName> {
    let mut candidates: Vec<(&MemberName, &Member, crate::types::Lsn)> = cluster
        .members
        .iter()
        .filter(|(name, member)| may_promote(name, member, intent).is_ok())
        .filter(|(_, member)| same_system(cluster, member))
        .filter(|(name, _)| allowed.is_none_or(|a| a.contains(*name)))
        .filter_map(|(name, member)| {
            let report = intent.reports.get(name)?;
            let lag = intent
                .former_lsn
                .map_or(0, |former| report.lsn.lag_behind(former));
            (lag <= maximum_lag_on_failover).then_some((name, member, report.lsn))
        })
        .collect();
    let former_site = intent
        .former_leader
        .as_ref()
        .and_then(|former| cluster.members.get(former))
        .and_then(|former| former.tags.site());
    // 0: the former primary's site, 1: elsewhere or unknown.
    let away =
        |member: &Member| u8::from(former_site.is_none() || member.tags.site() != former_site);
    let site_first = allowed.is_some();
    candidates.sort_by(|(a, a_member, a_lsn), (b, b_member, b_lsn)| {
        let site = away(a_member).cmp(&away(b_member));
        let position = b_lsn.cmp(a_lsn);
        let (first, second) = if site_first {
            (site, position)
        } else {
            (position, site)
        };
        first
            .then(second)
            .then(
                b_member
                    .failover_priority()
                    .cmp(&a_member.failover_priority()),
            )
            .then(a.cmp(b))
    });
    candidates.into_iter().map(|(name, _, _)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FailoverReport, MemberStatus};
    use crate::types::{Generation, Lsn, UnixMillis};

    fn member(tags: serde_json::Value) -> Member {
        Member {
            api_url: String::new(),
            conn_url: Some("postgres://127.0.0.1:5432/postgres".into()),
            raft_addr: None,
            version: String::new(),
            tags: serde_json::from_value(tags).unwrap(),
            proxy_url: None,
            status: MemberStatus {
                role: ReportedRole::Replica,
                ..Default::default()
            },
            reported_at: UnixMillis(0),
        }
    }

    fn setup(rows: &[(&str, serde_json::Value, Option<u64>)]) -> (ClusterState, FailoverIntent) {
        let mut cluster = ClusterState::default();
        let mut intent = FailoverIntent {
            ended: Generation(3),
            former_leader: Some("old".into()),
            former_lsn: Some(Lsn(1000)),
            opened_at: UnixMillis(0),
            reports: Default::default(),
            declined: None,
        };
        for (name, tags, lsn) in rows {
            cluster.members.insert((*name).into(), member(tags.clone()));
            if let Some(lsn) = lsn {
                intent.reports.insert(
                    (*name).into(),
                    FailoverReport {
                        lsn: Lsn(*lsn),
                        timeline: None,
                    },
                );
            }
        }
        (cluster, intent)
    }

    fn names(v: Vec<&MemberName>) -> Vec<String> {
        v.into_iter().map(|n| n.to_string()).collect()
    }

    /// After a major-version upgrade, a standby still holding the old system (its position on
    /// the old WAL, however far) is never a candidate.
    #[test]
    fn a_copy_of_another_system_is_never_promoted() {
        let (mut cluster, intent) = setup(&[
            ("new", serde_json::json!({}), Some(900)),
            ("old", serde_json::json!({}), Some(990)),
            ("stale", serde_json::json!({}), Some(999)),
        ]);
        cluster.initialize = Some(crate::state::Initialize {
            by: "new".into(),
            sysid: Some("200".into()),
            at: UnixMillis(0),
        });
        cluster
            .members
            .get_mut(&MemberName::from("new"))
            .unwrap()
            .status
            .sysid = Some("200".into());
        cluster
            .members
            .get_mut(&MemberName::from("stale"))
            .unwrap()
            .status
            .sysid = Some("100".into());
        let mut intent = intent;
        intent.former_leader = Some("gone".into());
        assert_eq!(
            names(ranked(&cluster, &intent, 1 << 20, None)),
            ["old", "new"]
        );
        cluster
            .members
            .get_mut(&MemberName::from("old"))
            .unwrap()
            .status
            .sysid = Some("100".into());
        assert_eq!(names(ranked(&cluster, &intent, 1 << 20, None)), ["new"]);
    }

    #[test]
    fn most_advanced_first_then_priority_then_name() {
        let (cluster, intent) = setup(&[
            ("b", serde_json::json!({}), Some(900)),
            ("a", serde_json::json!({}), Some(900)),
            ("c", serde_json::json!({"failover_priority": 5}), Some(900)),
            ("d", serde_json::json!({}), Some(950)),
        ]);
        assert_eq!(
            names(ranked(&cluster, &intent, 1 << 20, None)),
            ["d", "c", "a", "b"]
        );
    }

    /// Multi-site: the former primary ("old", site east) is never a candidate itself; its site
    /// is preferred. One row per rule.
    #[test]
    fn the_former_primarys_site_first() {
        let east = || serde_json::json!({"site": "east"});
        let west = || serde_json::json!({"site": "west"});
        let rows = |extra: &[(&str, serde_json::Value, Option<u64>)]| {
            let mut all = vec![("old", east(), Some(1000))];
            all.extend(extra.iter().cloned());
            setup(&all)
        };
        let all_hold = |names: &[&str]| -> std::collections::BTreeSet<MemberName> {
            names.iter().map(|n| MemberName::from(*n)).collect()
        };
        type Row<'a> = (
            &'a str,
            Vec<(&'a str, serde_json::Value, Option<u64>)>,
            bool,
            Vec<&'a str>,
        );
        let table: Vec<Row> = vec![
            (
                "synchronous: a local commit holder beats a more advanced remote one",
                vec![("w1", west(), Some(990)), ("e1", east(), Some(950))],
                true,
                vec!["e1", "w1"],
            ),
            (
                "synchronous: within a site, the most advanced first",
                vec![
                    ("e1", east(), Some(950)),
                    ("e2", east(), Some(960)),
                    ("w1", west(), Some(990)),
                ],
                true,
                vec!["e2", "e1", "w1"],
            ),
            (
                "synchronous: the site comes before failover_priority",
                vec![
                    (
                        "w1",
                        serde_json::json!({"site": "west", "failover_priority": 9}),
                        Some(950),
                    ),
                    ("e1", east(), Some(950)),
                ],
                true,
                vec!["e1", "w1"],
            ),
            (
                "synchronous: a member without a site is not local",
                vec![
                    ("x", serde_json::json!({}), Some(950)),
                    ("e1", east(), Some(950)),
                ],
                true,
                vec!["e1", "x"],
            ),
            (
                "asynchronous: the most advanced still wins across sites",
                vec![("w1", west(), Some(990)), ("e1", east(), Some(950))],
                false,
                vec!["w1", "e1"],
            ),
            (
                "asynchronous: equally advanced, the local site before priority and name",
                vec![
                    (
                        "a",
                        serde_json::json!({"site": "west", "failover_priority": 9}),
                        Some(950),
                    ),
                    ("e1", east(), Some(950)),
                ],
                false,
                vec!["e1", "a"],
            ),
            (
                "a local member whose site lost the Raft majority has no report: never chosen",
                vec![("e1", east(), None), ("w1", west(), Some(950))],
                true,
                vec!["w1"],
            ),
        ];
        for (name, extra, synchronous, expected) in table {
            let (cluster, intent) = rows(&extra);
            let holders = all_hold(&extra.iter().map(|(n, _, _)| *n).collect::<Vec<_>>());
            let allowed = synchronous.then_some(&holders);
            assert_eq!(
                names(ranked(&cluster, &intent, 1 << 20, allowed)),
                expected,
                "{name}"
            );
        }
        // A former primary without a site: no preference, the usual order.
        let (mut cluster, intent) = rows(&[("w1", west(), Some(990)), ("e1", east(), Some(950))]);
        cluster
            .members
            .get_mut(&MemberName::from("old"))
            .unwrap()
            .tags = Default::default();
        let holders = all_hold(&["w1", "e1"]);
        assert_eq!(
            names(ranked(&cluster, &intent, 1 << 20, Some(&holders))),
            ["w1", "e1"]
        );
    }

    #[test]
    fn excludes_nofailover_unreported_lagging_and_former_leader() {
        let (cluster, intent) = setup(&[
            (
                "nofail",
                serde_json::json!({"nofailover": true}),
                Some(1000),
            ),
            (
                "prio0",
                serde_json::json!({"failover_priority": 0}),
                Some(1000),
            ),
            ("silent", serde_json::json!({}), None),
            ("behind", serde_json::json!({}), Some(100)),
            ("old", serde_json::json!({}), Some(1000)),
            ("ok", serde_json::json!({}), Some(999)),
        ]);
        assert_eq!(names(ranked(&cluster, &intent, 500, None)), ["ok"]);
        assert_eq!(
            names(ranked(&cluster, &intent, 5000, None)),
            ["ok", "behind"]
        );
        let sync: std::collections::BTreeSet<MemberName> = ["behind".into()].into();
        assert_eq!(
            names(ranked(&cluster, &intent, 5000, Some(&sync))),
            ["behind"]
        );
    }
}
