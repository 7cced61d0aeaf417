//! Synchronous replication on the primary (DESIGN section 5, rule 1), one step per tick:
//!
//! 1. a standby that should no longer be synchronous leaves the replicated `sync` record;
//! 2. then `synchronous_standby_names` is set to the wanted standbys
//!    (`FIRST n ("a","b")`: every listed standby acknowledges every commit);
//! 3. a wanted standby enters the record once PostgreSQL reports it `sync`.
//!
//! So the record never claims a standby that PostgreSQL does not wait for. With no standby to
//! wait for, strict mode sets `*` (commits block until one connects) and non-strict mode falls
//! back to asynchronous replication, which the API and the log report as degraded.
//! Pure: the caller passes the primary's own WAL senders and the replicated state.

use std::collections::BTreeSet;

use super::Action;
use crate::instance::LocalStatus;
use crate::state::ClusterState;
use crate::types::{Generation, MemberName};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    #[default]
    Off,
    /// Patroni's `synchronous_mode: on`.
    On,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSettings {
    pub mode: SyncMode,
    pub strict: bool,
    /// `synchronous_node_count`: how many standbys every commit waits for.
    pub node_count: u32,
}

/// `synchronous_standby_names` for `standbys` (names quoted, sorted).
pub fn standby_names(standbys: &BTreeSet<MemberName>, strict: bool) -> String {
    if standbys.is_empty() {
        return if strict { "*".into() } else { String::new() };
    }
    let list: Vec<String> = standbys
        .iter()
        .map(|m| format!("\"{}\"", m.as_str().replace('"', "\"\"")))
        .collect();
    format!("FIRST {} ({})", standbys.len(), list.join(","))
}

fn nosync(cluster: &ClusterState, name: &MemberName) -> bool {
    cluster.members.get(name).is_none_or(|m| {
        let tag = |k: &str| m.tags.get(k);
        tag("nosync").and_then(|v| v.as_bool()) == Some(true)
            || tag("sync_priority").and_then(|v| v.as_i64()) == Some(0)
            || m.conn_url.is_none()
    })
}

/// The next step towards the wanted synchronous standbys, with its reason; `None` when the
/// record and `synchronous_standby_names` already say what they should.
pub fn plan(
    me: &MemberName,
    generation: Generation,
    cluster: &ClusterState,
    db: &LocalStatus,
    settings: &SyncSettings,
) -> Option<(Action, String)> {
    let record: BTreeSet<MemberName> = cluster
        .sync
        .standbys_of(generation)
        .filter(|_| cluster.sync.leader.as_ref() == Some(me))
        .cloned()
        .unwrap_or_default();
    let has_record =
        cluster.sync.generation == generation && cluster.sync.leader.as_ref() == Some(me);

    if settings.mode == SyncMode::Off {
        if !record.is_empty() {
            return Some((
                Action::SetSyncRecord {
                    generation,
                    standbys: BTreeSet::new(),
                },
                "synchronous mode is off: clearing the synchronous standbys".into(),
            ));
        }
        if !db.synchronous_standby_names.is_empty() {
            return Some((
                Action::SetSyncNames {
                    value: String::new(),
                },
                "synchronous mode is off: replicating asynchronously".into(),
            ));
        }
        return None;
    }

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
    let limit = settings.node_count.max(1) as usize;
    // Keep the current synchronous standbys while they stream (no churn), then fill up.
    let mut wanted: BTreeSet<MemberName> = streaming
        .iter()
        .filter(|(n, _)| record.contains(*n))
        .map(|(n, _)| (*n).clone())
        .take(limit)
        .collect();
    for (name, _) in &streaming {
        if wanted.len() >= limit {
            break;
        }
        wanted.insert((*name).clone());
    }

    let keep: BTreeSet<MemberName> = record.intersection(&wanted).cloned().collect();
    if keep != record || !has_record {
        let gone: Vec<&str> = record.difference(&keep).map(|m| m.as_str()).collect();
        let reason = if gone.is_empty() {
            format!("recording the synchronous standbys of generation {generation}")
        } else {
            format!("removing {} from the synchronous standbys", gone.join(", "))
        };
        return Some((
            Action::SetSyncRecord {
                generation,
                standbys: keep,
            },
            reason,
        ));
    }
    let names = standby_names(&wanted, settings.strict);
    if db.synchronous_standby_names != names {
        let reason = if wanted.is_empty() && settings.strict {
            "no synchronous standby is available: blocking commits (synchronous_mode_strict)"
                .to_owned()
        } else if wanted.is_empty() {
            "no synchronous standby is available: replicating asynchronously (degraded)".to_owned()
        } else {
            format!("setting synchronous_standby_names to {names}")
        };
        return Some((Action::SetSyncNames { value: names }, reason));
    }
    let confirmed: BTreeSet<MemberName> = wanted
        .iter()
        .filter(|name| {
            db.replication
                .iter()
                .any(|w| w.application_name == name.as_str() && w.sync_state == "sync")
        })
        .cloned()
        .collect();
    if confirmed != record {
        let added: Vec<String> = confirmed
            .difference(&record)
            .map(|m| m.to_string())
            .collect();
        return Some((
            Action::SetSyncRecord {
                generation,
                standbys: confirmed,
            },
            format!(
                "assigning synchronous standby status to {}",
                added.join(", ")
            ),
        ));
    }
    None
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

    fn cluster(record: Option<&[&str]>, nosync: &[&str]) -> ClusterState {
        let mut c = ClusterState::default();
        for name in ["a", "b", "c", "d"] {
            let mut tags = crate::state::Tags::new();
            if nosync.contains(&name) {
                tags.insert("nosync".into(), serde_json::json!(true));
            }
            c.members.insert(
                n(name),
                Member {
                    api_url: String::new(),
                    conn_url: Some("postgres://h:1/postgres".into()),
                    raft_addr: None,
                    version: String::new(),
                    tags,
                    status: MemberStatus::default(),
                    reported_at: UnixMillis(0),
                },
            );
        }
        if let Some(record) = record {
            c.sync = SyncRecord {
                generation: GEN,
                leader: Some(n("a")),
                standbys: set(record),
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

    fn on(count: u32, strict: bool) -> SyncSettings {
        SyncSettings {
            mode: SyncMode::On,
            strict,
            node_count: count,
        }
    }

    #[test]
    fn steps() {
        let names_b = "FIRST 1 (\"b\")";
        struct Case {
            name: &'static str,
            cluster: ClusterState,
            db: LocalStatus,
            settings: SyncSettings,
            expect: Option<Action>,
        }
        let record = |s: &[&str]| {
            Some(Action::SetSyncRecord {
                generation: GEN,
                standbys: set(s),
            })
        };
        let names = |v: &str| Some(Action::SetSyncNames { value: v.into() });
        let cases = vec![
            Case {
                name: "a new primary first creates its own (empty) record",
                cluster: cluster(None, &[]),
                db: db(&[("b", "streaming", "async", 10)], ""),
                settings: on(1, false),
                expect: record(&[]),
            },
            Case {
                name: "then names the most advanced streaming standby",
                cluster: cluster(Some(&[]), &[]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                settings: on(1, false),
                expect: names(names_b),
            },
            Case {
                name: "and records it only once PostgreSQL reports it sync",
                cluster: cluster(Some(&[]), &[]),
                db: db(&[("b", "streaming", "potential", 10)], names_b),
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "records a standby PostgreSQL reports sync",
                cluster: cluster(Some(&[]), &[]),
                db: db(&[("b", "streaming", "sync", 10)], names_b),
                settings: on(1, false),
                expect: record(&["b"]),
            },
            Case {
                name: "a settled primary does nothing",
                cluster: cluster(Some(&["b"]), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 20),
                    ],
                    names_b,
                ),
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "a standby that stopped streaming leaves the record before the names",
                cluster: cluster(Some(&["b"]), &[]),
                db: db(&[("c", "streaming", "async", 20)], names_b),
                settings: on(1, false),
                expect: record(&[]),
            },
            Case {
                name: "strict mode with no standby blocks commits",
                cluster: cluster(Some(&[]), &[]),
                db: db(&[], names_b),
                settings: on(1, true),
                expect: names("*"),
            },
            Case {
                name: "non-strict mode with no standby degrades to asynchronous",
                cluster: cluster(Some(&[]), &[]),
                db: db(&[], names_b),
                settings: on(1, false),
                expect: names(""),
            },
            Case {
                name: "nosync members are never synchronous",
                cluster: cluster(Some(&[]), &["b"]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                settings: on(1, false),
                expect: names("FIRST 1 (\"c\")"),
            },
            Case {
                name: "synchronous_node_count 2 names two standbys",
                cluster: cluster(Some(&["b"]), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 5),
                        ("d", "catchup", "async", 1),
                    ],
                    names_b,
                ),
                settings: on(2, false),
                expect: names("FIRST 2 (\"b\",\"c\")"),
            },
            Case {
                name: "switching synchronous mode off clears the record first",
                cluster: cluster(Some(&["b"]), &[]),
                db: db(&[("b", "streaming", "sync", 10)], names_b),
                settings: SyncSettings::default(),
                expect: record(&[]),
            },
            Case {
                name: "then the names",
                cluster: cluster(Some(&[]), &[]),
                db: db(&[("b", "streaming", "sync", 10)], names_b),
                settings: SyncSettings::default(),
                expect: names(""),
            },
        ];
        let mut failures = Vec::new();
        for case in cases {
            let got = plan(&n("a"), GEN, &case.cluster, &case.db, &case.settings).map(|(a, _)| a);
            if got != case.expect {
                failures.push(format!(
                    "{}: expected {:?}, got {:?}",
                    case.name, case.expect, got
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(
            standby_names(&set(&["b", "c"]), false),
            "FIRST 2 (\"b\",\"c\")"
        );
        assert_eq!(standby_names(&set(&[]), true), "*");
        assert_eq!(standby_names(&set(&[]), false), "");
    }
}
