//! Synchronous replication on the primary (DESIGN section 5, rule 1), one step per tick.
//!
//! Two statements describe where acknowledged commits are:
//! - what PostgreSQL guarantees: `synchronous_standby_names` makes each commit wait for `k` of
//!   the standbys it lists (`FIRST n (...)` lists exactly the `n` wanted; `ANY k (...)`);
//! - what the replicated `sync` record claims: every acknowledged commit of this generation is
//!   on all but `quorum` of its standbys, so a failover needs `quorum + 1` of their positions.
//!
//! Both are [`Copies`]: "on at least `k` of these members". The record must never claim more
//! than PostgreSQL guaranteed for any commit acknowledged so far, so every step keeps that true:
//! 1. the names change only when their guarantee covers the record's claim;
//! 2. otherwise the record first weakens to a claim that the old and the new names both cover
//!    (more standbys, a larger quorum: a failover then waits for more positions);
//! 3. the record strengthens to the target only once PostgreSQL reports each of its standbys
//!    `sync`/`quorum`, and, unless the old claim implies the new one, once enough of them have
//!    flushed past the WAL position at which the current names took effect: commits
//!    acknowledged before that waited for other standbys.
//!
//! Targets: mode `on` names `synchronous_node_count` standbys, `FIRST n (...)` (quorum 0);
//! mode `quorum` names every eligible streaming standby, `ANY k (...)` with
//! `k = min(synchronous_node_count, standbys)` (quorum `standbys - k`), as Patroni does. With no
//! standby to wait for, strict mode blocks commits (`*`, `ANY 1 (*)`) and non-strict mode
//! replicates asynchronously, which the API, the log and the metrics report as degraded.
//! Pure: the caller passes the primary's own WAL senders and the replicated state.

use std::collections::BTreeSet;

use super::{Action, SyncNamesApplied};
use crate::instance::LocalStatus;
use crate::state::ClusterState;
use crate::types::{Generation, MemberName};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    #[default]
    Off,
    /// Patroni's `synchronous_mode: on`: `FIRST n`, every named standby confirms each commit.
    On,
    /// Patroni's `synchronous_mode: quorum`: `ANY k` of every eligible standby.
    Quorum,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSettings {
    pub mode: SyncMode,
    pub strict: bool,
    /// `synchronous_node_count`: how many standbys every commit waits for.
    pub node_count: u32,
    /// `maximum_lag_on_syncnode` (when > 0): a standby further behind the most advanced one
    /// (the primary, when only one streams) is not made synchronous, and a synchronous one that
    /// falls this far behind is swapped for another, as Patroni does.
    pub maximum_lag_on_syncnode: Option<u64>,
}

/// "Every acknowledged commit is on at least `k` of `among`"; `k` 0 says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    pub k: usize,
    pub among: BTreeSet<MemberName>,
}

impl Copies {
    fn none() -> Self {
        Self::default()
    }

    /// What `synchronous_standby_names` guarantees. `*`, an empty value or one this module
    /// cannot read guarantee nothing about any particular standby.
    pub fn guaranteed_by(names: &str) -> Self {
        parse_names(names).unwrap_or_default()
    }

    /// What the record claims for `generation`.
    pub fn claimed(cluster: &ClusterState, generation: Generation) -> Self {
        let k = cluster.sync.copies_of(generation);
        if k == 0 {
            return Self::none();
        }
        Self {
            k,
            among: cluster.sync.standbys.clone(),
        }
    }

    /// Whether every commit with these copies also has the copies `claim` speaks of.
    pub fn implies(&self, claim: &Copies) -> bool {
        claim.k == 0
            || self
                .k
                .saturating_sub(self.among.difference(&claim.among).count())
                >= claim.k
    }

    /// The record's `quorum` for this claim.
    fn quorum(&self) -> u32 {
        (self.among.len() - self.k) as u32
    }

    fn record(&self, generation: Generation) -> Action {
        let claim = if self.k == 0 {
            Self::none()
        } else {
            self.clone()
        };
        Action::SetSyncRecord {
            generation,
            quorum: claim.quorum(),
            standbys: claim.among,
        }
    }

    fn describe(&self) -> String {
        if self.k == 0 {
            return "none".into();
        }
        let names: Vec<&str> = self.among.iter().map(|m| m.as_str()).collect();
        format!("{} of {} ({})", self.k, self.among.len(), names.join(", "))
    }
}

/// Reads the values [`standby_names`] writes, and Patroni's (`2 (a,b)`, `a,b`).
fn parse_names(value: &str) -> Option<Copies> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let (k, list) = match value.find('(') {
        Some(open) => {
            let head = value[..open].trim();
            let count = head
                .strip_prefix("FIRST")
                .or_else(|| head.strip_prefix("ANY"))
                .unwrap_or(head)
                .trim();
            let list = value[open + 1..].strip_suffix(')')?;
            (count.parse::<usize>().ok()?, list)
        }
        None => (1, value),
    };
    let mut among = BTreeSet::new();
    for name in list.split(',') {
        let name = name.trim();
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => name.to_owned(),
        };
        if name.is_empty() || name == "*" {
            return None;
        }
        among.insert(MemberName::from(name.as_str()));
    }
    (k > 0).then_some(Copies {
        k: k.min(among.len()),
        among,
    })
}

/// `synchronous_standby_names` for `copies` in `mode` (names quoted, sorted); with nobody to
/// wait for, `*` / `ANY 1 (*)` in strict mode and empty otherwise.
pub fn standby_names(copies: &Copies, mode: SyncMode, strict: bool) -> String {
    let quorum = mode == SyncMode::Quorum;
    if copies.k == 0 {
        return match (strict, quorum) {
            (false, _) => String::new(),
            (true, false) => "*".into(),
            (true, true) => "ANY 1 (*)".into(),
        };
    }
    let list: Vec<String> = copies
        .among
        .iter()
        .map(|m| format!("\"{}\"", m.as_str().replace('"', "\"\"")))
        .collect();
    let method = if quorum { "ANY" } else { "FIRST" };
    format!("{method} {} ({})", copies.k, list.join(","))
}

fn nosync(cluster: &ClusterState, name: &MemberName) -> bool {
    cluster
        .members
        .get(name)
        .is_none_or(|m| m.tags.nosync() || m.conn_url.is_none())
}

/// The standbys the primary should wait for, and for how many of them.
fn target(
    me: &MemberName,
    claimed: &Copies,
    cluster: &ClusterState,
    db: &LocalStatus,
    settings: &SyncSettings,
) -> Copies {
    // Streaming standbys that may be synchronous, most advanced first.
    let mut streaming: Vec<(&MemberName, crate::types::Lsn)> = db
        .replication
        .iter()
        .filter(|w| w.state == "streaming")
        .filter_map(|w| {
            let name = cluster
                .members
                .keys()
                .find(|m| m.as_str() == w.application_name)?;
            (name != me && !nosync(cluster, name))
                .then_some((name, w.flush_lsn.unwrap_or_default()))
        })
        .collect();
    streaming.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if let Some(max_lag) = settings.maximum_lag_on_syncnode {
        // Compared with the most advanced standby, or with the primary when only one streams.
        let reference = match streaming.as_slice() {
            [_, _, ..] => streaming.first().map(|(_, lsn)| *lsn),
            _ => db.wal_position,
        };
        if let Some(reference) = reference {
            streaming.retain(|(_, lsn)| lsn.lag_behind(reference) <= max_lag);
        }
    }
    let count = settings.node_count.max(1) as usize;
    if settings.mode == SyncMode::Quorum {
        let among: BTreeSet<MemberName> = streaming.iter().map(|(n, _)| (*n).clone()).collect();
        return Copies {
            k: count.min(among.len()),
            among,
        };
    }
    // Keep the current synchronous standbys while they stream (no churn), then fill up.
    let mut among: BTreeSet<MemberName> = streaming
        .iter()
        .filter(|(n, _)| claimed.among.contains(*n))
        .map(|(n, _)| (*n).clone())
        .take(count)
        .collect();
    for (name, _) in &streaming {
        if among.len() >= count {
            break;
        }
        among.insert((*name).clone());
    }
    Copies {
        k: among.len(),
        among,
    }
}

/// The next step towards the wanted synchronous standbys, with its reason; `None` when the
/// record and `synchronous_standby_names` already say what they should, or when the next step
/// must wait for a standby.
pub fn plan(
    me: &MemberName,
    generation: Generation,
    cluster: &ClusterState,
    db: &LocalStatus,
    applied: Option<&SyncNamesApplied>,
    settings: &SyncSettings,
) -> Option<(Action, String)> {
    let has_record =
        cluster.sync.generation == generation && cluster.sync.leader.as_ref() == Some(me);
    let claimed = if has_record {
        Copies::claimed(cluster, generation)
    } else {
        Copies::none()
    };
    let set_names =
        |value: String, reason: String| Some((Action::SetSyncNames { generation, value }, reason));

    if settings.mode == SyncMode::Off {
        if has_record && !cluster.sync.standbys.is_empty() {
            return Some((
                Copies::none().record(generation),
                "synchronous mode is off: clearing the synchronous standbys".into(),
            ));
        }
        if !db.synchronous_standby_names.is_empty() {
            return set_names(
                String::new(),
                "synchronous mode is off: replicating asynchronously".into(),
            );
        }
        return None;
    }
    if !has_record {
        return Some((
            Copies::none().record(generation),
            format!("recording the synchronous standbys of generation {generation}"),
        ));
    }

    let wanted = target(me, &claimed, cluster, db, settings);
    let names = standby_names(&wanted, settings.mode, settings.strict);
    if db.synchronous_standby_names != names {
        if wanted.implies(&claimed) {
            let reason = if wanted.k == 0 && settings.strict {
                "no synchronous standby is available: blocking commits (synchronous_mode_strict)"
                    .to_owned()
            } else if wanted.k == 0 {
                "no synchronous standby is available: replicating asynchronously (degraded)"
                    .to_owned()
            } else {
                format!("setting synchronous replication to {}", wanted.describe())
            };
            return set_names(names, reason);
        }
        // Weaken the claim to what the current and the wanted names both guarantee.
        let current = Copies::guaranteed_by(&db.synchronous_standby_names);
        let among: BTreeSet<MemberName> = claimed
            .among
            .iter()
            .chain(&wanted.among)
            .chain(
                current
                    .among
                    .iter()
                    .filter(|m| cluster.members.contains_key(*m)),
            )
            .cloned()
            .collect();
        let k_current = current
            .k
            .saturating_sub(current.among.difference(&among).count());
        let weaker = Copies {
            k: claimed.k.min(wanted.k).min(k_current),
            among,
        };
        let reason = if weaker.k == 0 {
            "no synchronous standby is available: clearing the synchronous standbys".to_owned()
        } else {
            format!(
                "setting leader to {me}, quorum to {} before changing synchronous_standby_names",
                weaker.describe()
            )
        };
        return Some((weaker.record(generation), reason));
    }

    if claimed == wanted {
        return None;
    }
    let confirmed = wanted.among.iter().all(|name| {
        db.replication.iter().any(|w| {
            w.application_name == name.as_str()
                && matches!(w.sync_state.as_str(), "sync" | "quorum")
        })
    });
    if !confirmed {
        return None;
    }
    if !claimed.implies(&wanted) {
        // Commits acknowledged before the names took effect may be on other standbys only.
        let Some(applied) = applied.filter(|a| a.generation == generation && a.value == names)
        else {
            return set_names(
                names,
                "noting the WAL position at which synchronous_standby_names took effect".into(),
            );
        };
        let caught_up = db
            .replication
            .iter()
            .filter(|w| {
                wanted
                    .among
                    .iter()
                    .any(|m| m.as_str() == w.application_name)
            })
            .filter(|w| w.flush_lsn.is_some_and(|lsn| lsn >= applied.at))
            .count();
        if caught_up < wanted.k {
            return None;
        }
    }
    let added: Vec<&str> = wanted
        .among
        .difference(&claimed.among)
        .map(|m| m.as_str())
        .collect();
    let reason = if added.is_empty() {
        format!("setting leader to {me}, quorum to {}", wanted.describe())
    } else {
        format!(
            "assigning synchronous standby status to {} ({})",
            added.join(", "),
            wanted.describe()
        )
    };
    Some((wanted.record(generation), reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::WalSender;
    use crate::state::{Member, MemberStatus, SyncRecord};
    use crate::types::{Lsn, UnixMillis};

    const GEN: Generation = Generation(7);

    fn n(s: &str) -> MemberName {
        MemberName::from(s)
    }

    fn set(names: &[&str]) -> BTreeSet<MemberName> {
        names.iter().map(|s| n(s)).collect()
    }

    /// Members a (the primary) to d; `record` is (standbys, quorum) of generation `GEN`.
    fn cluster(record: Option<(&[&str], u32)>, nosync: &[&str]) -> ClusterState {
        let mut c = ClusterState::default();
        for name in ["a", "b", "c", "d"] {
            let tags = if nosync.contains(&name) {
                serde_json::from_value(serde_json::json!({"nosync": true})).unwrap()
            } else {
                crate::state::Tags::default()
            };
            c.members.insert(
                n(name),
                Member {
                    api_url: String::new(),
                    conn_url: Some("postgres://h:1/postgres".into()),
                    raft_addr: None,
                    version: String::new(),
                    tags,
                    proxy_url: None,
                    status: MemberStatus::default(),
                    reported_at: UnixMillis(0),
                },
            );
        }
        if let Some((standbys, quorum)) = record {
            c.sync = SyncRecord {
                generation: GEN,
                leader: Some(n("a")),
                standbys: set(standbys),
                quorum,
            };
        }
        c
    }

    /// WAL senders as (name, state, sync_state, flush).
    fn db(senders: &[(&str, &str, &str, u64)], names: &str) -> LocalStatus {
        LocalStatus {
            replication: senders
                .iter()
                .map(|(name, state, sync, lsn)| WalSender {
                    usename: "replicator".into(),
                    application_name: (*name).into(),
                    client_addr: None,
                    state: (*state).into(),
                    sync_state: (*sync).into(),
                    sync_priority: 0,
                    flush_lsn: Some(Lsn(*lsn)),
                })
                .collect(),
            synchronous_standby_names: names.into(),
            ..Default::default()
        }
    }

    fn settings(mode: SyncMode, count: u32, strict: bool) -> SyncSettings {
        SyncSettings {
            mode,
            strict,
            node_count: count,
            maximum_lag_on_syncnode: None,
        }
    }

    fn on(count: u32, strict: bool) -> SyncSettings {
        settings(SyncMode::On, count, strict)
    }

    fn quorum(count: u32, strict: bool) -> SyncSettings {
        settings(SyncMode::Quorum, count, strict)
    }

    fn applied(value: &str, at: u64) -> Option<SyncNamesApplied> {
        Some(SyncNamesApplied {
            generation: GEN,
            value: value.into(),
            at: Lsn(at),
        })
    }

    struct Case {
        name: &'static str,
        cluster: ClusterState,
        db: LocalStatus,
        applied: Option<SyncNamesApplied>,
        settings: SyncSettings,
        expect: Option<Action>,
    }

    fn record(standbys: &[&str], quorum: u32) -> Option<Action> {
        Some(Action::SetSyncRecord {
            generation: GEN,
            standbys: set(standbys),
            quorum,
        })
    }

    fn names(value: &str) -> Option<Action> {
        Some(Action::SetSyncNames {
            generation: GEN,
            value: value.into(),
        })
    }

    fn check(cases: Vec<Case>) {
        let mut failures = Vec::new();
        for case in cases {
            let got = plan(
                &n("a"),
                GEN,
                &case.cluster,
                &case.db,
                case.applied.as_ref(),
                &case.settings,
            )
            .map(|(a, _)| a);
            if got != case.expect {
                failures.push(format!(
                    "{}: expected {:?}, got {:?}",
                    case.name, case.expect, got
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    const FIRST_B: &str = "FIRST 1 (\"b\")";
    const FIRST_C: &str = "FIRST 1 (\"c\")";
    const ANY_1_BC: &str = "ANY 1 (\"b\",\"c\")";
    const ANY_2_BC: &str = "ANY 2 (\"b\",\"c\")";

    #[test]
    fn mode_on_steps() {
        check(vec![
            Case {
                name: "a new primary first creates its own (empty) record",
                cluster: cluster(None, &[]),
                db: db(&[("b", "streaming", "async", 10)], ""),
                applied: None,
                settings: on(1, false),
                expect: record(&[], 0),
            },
            Case {
                name: "then names the most advanced streaming standby",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_B),
            },
            Case {
                name: "and records it only once PostgreSQL reports it sync",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "potential", 10)], FIRST_B),
                applied: applied(FIRST_B, 5),
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "without the position at which the names took effect, notes it first",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_B),
            },
            Case {
                name: "a position noted by an earlier generation does not count",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: Some(SyncNamesApplied {
                    generation: Generation(6),
                    value: FIRST_B.into(),
                    at: Lsn(5),
                }),
                settings: on(1, false),
                expect: names(FIRST_B),
            },
            Case {
                name: "a sync standby still short of that position is not recorded yet",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: applied(FIRST_B, 11),
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "records a sync standby that flushed past that position",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: applied(FIRST_B, 10),
                settings: on(1, false),
                expect: record(&["b"], 0),
            },
            Case {
                name: "a settled primary does nothing",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 20),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "a standby that stopped streaming: first widen the record to both",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(&[("c", "streaming", "async", 20)], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "then wait for the replacement",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("c", "streaming", "async", 20)], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_C),
            },
            Case {
                name: "which enters alone once it has every earlier commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("c", "streaming", "sync", 20)], FIRST_C),
                applied: applied(FIRST_C, 20),
                settings: on(1, false),
                expect: record(&["c"], 0),
            },
            Case {
                name: "strict mode with no standby claims nothing, then blocks commits",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(&[], FIRST_B),
                applied: None,
                settings: on(1, true),
                expect: record(&[], 0),
            },
            Case {
                name: "strict mode: commits block until a standby connects",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[], FIRST_B),
                applied: None,
                settings: on(1, true),
                expect: names("*"),
            },
            Case {
                name: "non-strict mode with no standby degrades to asynchronous",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: names(""),
            },
            Case {
                name: "nosync members are never synchronous",
                cluster: cluster(Some((&[], 0)), &["b"]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_C),
            },
            Case {
                // Regression: the configuration accepts `nosync: "on"` (Patroni's spellings),
                // but this rule read only a JSON `true` and made such a member synchronous.
                name: "nosync written as a string is nosync too",
                cluster: {
                    let mut c = cluster(Some((&[], 0)), &[]);
                    c.members.get_mut(&n("b")).unwrap().tags =
                        serde_json::from_value(serde_json::json!({"nosync": "on"})).unwrap();
                    c
                },
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_C),
            },
            Case {
                name: "synchronous_node_count 2 names two standbys",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 5),
                        ("d", "catchup", "async", 1),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: on(2, false),
                expect: names("FIRST 2 (\"b\",\"c\")"),
            },
            Case {
                name: "maximum_lag_on_syncnode: a synchronous standby that fell behind is swapped",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 100),
                        ("c", "streaming", "async", 5000),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: SyncSettings {
                    maximum_lag_on_syncnode: Some(1000),
                    ..on(1, false)
                },
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "maximum_lag_on_syncnode: a standby within the limit is kept",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 4500),
                        ("c", "streaming", "async", 5000),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: SyncSettings {
                    maximum_lag_on_syncnode: Some(1000),
                    ..on(1, false)
                },
                expect: None,
            },
            Case {
                name: "maximum_lag_on_syncnode: a lone standby far behind the primary is not named",
                cluster: cluster(Some((&[], 0)), &[]),
                db: LocalStatus {
                    wal_position: Some(Lsn(9000)),
                    ..db(&[("b", "streaming", "async", 100)], "")
                },
                applied: None,
                settings: SyncSettings {
                    maximum_lag_on_syncnode: Some(1000),
                    ..on(1, false)
                },
                expect: None,
            },
            Case {
                name: "switching synchronous mode off clears the record first",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: None,
                settings: SyncSettings::default(),
                expect: record(&[], 0),
            },
            Case {
                name: "then the names",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: None,
                settings: SyncSettings::default(),
                expect: names(""),
            },
        ]);
    }

    #[test]
    fn quorum_mode_steps() {
        let both_quorum = |names: &str| {
            db(
                &[
                    ("b", "streaming", "quorum", 10),
                    ("c", "streaming", "quorum", 10),
                ],
                names,
            )
        };
        check(vec![
            Case {
                name: "names every streaming standby, ANY k",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: quorum(1, false),
                expect: names(ANY_1_BC),
            },
            Case {
                name: "records 1 of 2 (quorum 1) once both report quorum and caught up",
                cluster: cluster(Some((&[], 0)), &[]),
                db: both_quorum(ANY_1_BC),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "not while one of them is not counted by PostgreSQL yet",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "potential", 10),
                    ],
                    ANY_1_BC,
                ),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: None,
            },
            Case {
                name: "raising the count raises ANY k first (the record still asks for 2 positions)",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: both_quorum(ANY_1_BC),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(2, false),
                expect: names(ANY_2_BC),
            },
            Case {
                name: "then lowers the quorum once both hold every earlier commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: both_quorum(ANY_2_BC),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(2, false),
                expect: record(&["b", "c"], 0),
            },
            Case {
                name: "but not while one of them may lack an earlier commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "quorum", 9),
                    ],
                    ANY_2_BC,
                ),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(2, false),
                expect: None,
            },
            Case {
                name: "lowering the count raises the quorum first",
                cluster: cluster(Some((&["b", "c"], 0)), &[]),
                db: both_quorum(ANY_2_BC),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(1, false),
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "then lowers ANY k",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: both_quorum(ANY_2_BC),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(1, false),
                expect: names(ANY_1_BC),
            },
            Case {
                name: "a new voter joins the record before the names (raising the quorum)",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "quorum", 10),
                        ("d", "streaming", "async", 10),
                    ],
                    ANY_1_BC,
                ),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: record(&["b", "c", "d"], 2),
            },
            Case {
                name: "and the names follow",
                cluster: cluster(Some((&["b", "c", "d"], 2)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "quorum", 10),
                        ("d", "streaming", "async", 10),
                    ],
                    ANY_1_BC,
                ),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: names("ANY 1 (\"b\",\"c\",\"d\")"),
            },
            Case {
                name: "a voter that left: the names shrink first (fewer voters, same k)",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("b", "streaming", "quorum", 10)], ANY_1_BC),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: names("ANY 1 (\"b\")"),
            },
            Case {
                name: "the record shrinks once the remaining voter holds every commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("b", "streaming", "quorum", 10)], "ANY 1 (\"b\")"),
                applied: applied("ANY 1 (\"b\")", 10),
                settings: quorum(1, false),
                expect: record(&["b"], 0),
            },
            Case {
                name: "strict quorum mode with no standby blocks commits as Patroni does",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[], ""),
                applied: None,
                settings: quorum(1, true),
                expect: names("ANY 1 (*)"),
            },
            Case {
                name: "switching from on to quorum keeps the claim while the names change",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 10),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: quorum(1, false),
                expect: record(&["b", "c"], 1),
            },
        ]);
    }

    #[test]
    fn names_are_written_and_read_back() {
        let bc = Copies {
            k: 2,
            among: set(&["b", "c"]),
        };
        assert_eq!(
            standby_names(&bc, SyncMode::On, false),
            "FIRST 2 (\"b\",\"c\")"
        );
        assert_eq!(standby_names(&bc, SyncMode::Quorum, false), ANY_2_BC);
        assert_eq!(standby_names(&Copies::none(), SyncMode::On, true), "*");
        assert_eq!(
            standby_names(&Copies::none(), SyncMode::Quorum, true),
            "ANY 1 (*)"
        );
        assert_eq!(standby_names(&Copies::none(), SyncMode::On, false), "");
        for mode in [SyncMode::On, SyncMode::Quorum] {
            assert_eq!(Copies::guaranteed_by(&standby_names(&bc, mode, false)), bc);
        }
        // Patroni's own spellings.
        assert_eq!(Copies::guaranteed_by("2 (b,c)"), bc);
        assert_eq!(
            Copies::guaranteed_by("b"),
            Copies {
                k: 1,
                among: set(&["b"])
            }
        );
        for nothing in [
            "",
            "*",
            "ANY 1 (*)",
            "FIRST 0 (b)",
            "FIRST x (b)",
            "ANY 2 (b",
        ] {
            assert_eq!(
                Copies::guaranteed_by(nothing),
                Copies::none(),
                "{nothing:?}"
            );
        }
        let quoted = Copies::guaranteed_by("ANY 1 (\"we\"\"ird\")");
        assert_eq!(quoted.among, set(&["we\"ird"]));
    }

    #[test]
    fn implication_between_claims() {
        let c = |k: usize, among: &[&str]| Copies {
            k,
            among: set(among),
        };
        // Every commit on both b and c is on one of them, and on b.
        assert!(c(2, &["b", "c"]).implies(&c(1, &["b", "c"])));
        assert!(c(2, &["b", "c"]).implies(&c(1, &["b"])));
        // A commit on one of b, c is not known to be on both, nor on b.
        assert!(!c(1, &["b", "c"]).implies(&c(2, &["b", "c"])));
        assert!(!c(1, &["b", "c"]).implies(&c(1, &["b"])));
        // Adding a voter and raising the quorum keeps the claim.
        assert!(c(1, &["b"]).implies(&c(1, &["b", "c"])));
        // Nothing implies the empty claim; the empty claim implies nothing else.
        assert!(Copies::none().implies(&Copies::none()));
        assert!(!Copies::none().implies(&c(1, &["b"])));
    }
}
