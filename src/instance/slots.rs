//! Which replication slots one member's database must create, copy, advance and drop (Patroni
//! §5.11): the primary keeps a physical slot per member, the slots of members removed less than
//! `member_slots_ttl` ago, and the permanent slots of the dynamic configuration; a standby keeps
//! the permanent slots too, so that they exist after a failover, physical ones created in place
//! and logical ones copied from the primary (PostgreSQL before 17 cannot create a logical slot
//! on a standby), both advanced to the positions the primary reports. Slots matching
//! `ignore_slots` are never touched; any other slot is dropped once inactive.
//!
//! Pure: the executor gathers [`SlotView`] and the instance adapter runs the [`SlotPlan`].
//! Must not: advance a slot past what the primary reports (for a logical slot that is what its
//! consumer confirmed, so decoding after a failover resumes where the consumer stopped), or drop
//! an active slot (the next tick retries).

use std::collections::BTreeMap;

use super::{ReplicationSlot, SlotType};
use crate::config::{IgnoreSlot, PermanentSlot, SlotKind};
use crate::types::{Lsn, MemberName};

/// Whether the database is the primary (or a standby leader, which serves its cascade as a
/// primary does) or a standby following a primary of this cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotRole {
    Primary,
    Standby,
}

/// What the plan is made from.
#[derive(Clone, Debug)]
pub struct SlotView<'a> {
    pub role: SlotRole,
    /// The slots the database has.
    pub existing: &'a [ReplicationSlot],
    /// The slot names of the members that stream from this one (every member, for the
    /// primary; the members cascading from it, for a standby).
    pub members: &'a [String],
    /// Primary: the slot names of members removed less than `member_slots_ttl` ago.
    pub retained: &'a [String],
    /// The permanent slots that apply to this cluster.
    pub permanent: &'a BTreeMap<String, PermanentSlot>,
    pub ignore: &'a [IgnoreSlot],
    /// Standby: the positions the primary reports for its permanent slots.
    pub primary: &'a BTreeMap<String, Lsn>,
    /// Standby: whether logical slots may be copied now (the engine can, and the standby
    /// streams from the primary, so that its feedback protects the copied slot's catalog rows).
    pub can_copy_logical: bool,
}

/// What the agent wants of its server's slots, from the replicated state and the dynamic
/// configuration (the executor builds it; each engine's adapter plans from it).
#[derive(Clone, Debug, PartialEq)]
pub struct SlotTargets {
    pub role: SlotRole,
    /// The members that stream from this one (every member, for the primary; the members
    /// whose `replicatefrom` names it, for a standby).
    pub members: Vec<MemberName>,
    /// Primary: the members removed less than `member_slots_ttl` ago.
    pub retained: Vec<MemberName>,
    /// The permanent slots that apply to this cluster.
    pub permanent: BTreeMap<String, PermanentSlot>,
    pub ignore: Vec<IgnoreSlot>,
    /// Standby: the positions the primary reports for its permanent slots.
    pub primary: BTreeMap<String, Lsn>,
    /// Standby: the primary it streams from (logical slots are copied from there).
    pub upstream: Option<super::Upstream>,
}

/// A logical slot to create on the primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLogicalSlot {
    pub name: String,
    pub database: String,
    pub plugin: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotPlan {
    /// Inactive slots to drop (before anything is created: a slot of the wrong kind is dropped
    /// and created again at the next tick).
    pub drop: Vec<String>,
    pub create_physical: Vec<String>,
    /// Primary only.
    pub create_logical: Vec<NewLogicalSlot>,
    /// Standby only: logical slots whose state file is copied from the primary (the standby
    /// restarts once afterwards to load them).
    pub copy_logical: Vec<String>,
    /// Slots moved forward to the primary's position (`pg_replication_slot_advance`).
    pub advance: Vec<(String, Lsn)>,
    /// Standby only: permanent logical slots not (yet) usable here after a failover.
    pub not_ready: Vec<String>,
}

impl SlotPlan {
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
            && self.create_physical.is_empty()
            && self.create_logical.is_empty()
            && self.copy_logical.is_empty()
            && self.advance.is_empty()
    }
}

fn ignored(slot: &ReplicationSlot, ignore: &[IgnoreSlot]) -> bool {
    let kind = match slot.kind {
        SlotType::Physical => "physical",
        SlotType::Logical => "logical",
    };
    ignore.iter().any(|m| {
        m.matches(
            &slot.name,
            kind,
            slot.database.as_deref(),
            slot.plugin.as_deref(),
        )
    })
}

/// Whether an existing slot is what the permanent slot asks for.
fn same_kind(slot: &ReplicationSlot, wanted: &PermanentSlot) -> bool {
    match &wanted.kind {
        SlotKind::Physical => slot.kind == SlotType::Physical,
        SlotKind::Logical { database, plugin } => {
            slot.kind == SlotType::Logical
                && slot.database.as_deref() == Some(database.as_str())
                && slot.plugin.as_deref() == Some(plugin.as_str())
        }
    }
}

pub fn plan(v: &SlotView<'_>) -> SlotPlan {
    let mut out = SlotPlan::default();
    let by_name: BTreeMap<&str, &ReplicationSlot> =
        v.existing.iter().map(|s| (s.name.as_str(), s)).collect();

    // What to drop: anything not wanted here, and a permanent slot of the wrong kind.
    for slot in v.existing {
        if ignored(slot, v.ignore) || slot.active {
            continue;
        }
        let keep = match v.permanent.get(&slot.name) {
            Some(wanted) => same_kind(slot, wanted),
            None => {
                slot.kind == SlotType::Physical
                    && (v.members.contains(&slot.name) || v.retained.contains(&slot.name))
            }
        };
        if !keep {
            out.drop.push(slot.name.clone());
        }
    }

    for name in v.members {
        if !by_name.contains_key(name.as_str()) && !v.permanent.contains_key(name) {
            out.create_physical.push(name.clone());
        }
    }

    for (name, wanted) in v.permanent {
        let have = by_name.get(name.as_str()).copied();
        // A slot of the wrong kind is dropped above (or, active or ignored, left alone).
        if have.is_some_and(|s| !same_kind(s, wanted)) {
            if matches!(wanted.kind, SlotKind::Logical { .. }) && v.role == SlotRole::Standby {
                out.not_ready.push(name.clone());
            }
            continue;
        }
        match (&wanted.kind, v.role, have) {
            (SlotKind::Physical, _, None) => out.create_physical.push(name.clone()),
            (SlotKind::Logical { database, plugin }, SlotRole::Primary, None) => {
                out.create_logical.push(NewLogicalSlot {
                    name: name.clone(),
                    database: database.clone(),
                    plugin: plugin.clone(),
                });
            }
            (SlotKind::Logical { .. }, SlotRole::Standby, None) => {
                out.not_ready.push(name.clone());
                if v.can_copy_logical && v.primary.contains_key(name) {
                    out.copy_logical.push(name.clone());
                }
            }
            (_, SlotRole::Standby, Some(slot)) => {
                if let Some(&target) = v.primary.get(name)
                    && slot.position.is_none_or(|at| at < target)
                    && !slot.active
                {
                    out.advance.push((name.clone(), target));
                }
            }
            (_, SlotRole::Primary, Some(_)) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterType;

    fn physical(name: &str, active: bool, at: Option<u64>) -> ReplicationSlot {
        ReplicationSlot {
            name: name.into(),
            kind: SlotType::Physical,
            database: None,
            plugin: None,
            active,
            position: at.map(Lsn),
        }
    }

    fn logical(name: &str, db: &str, plugin: &str, at: Option<u64>) -> ReplicationSlot {
        ReplicationSlot {
            name: name.into(),
            kind: SlotType::Logical,
            database: Some(db.into()),
            plugin: Some(plugin.into()),
            active: false,
            position: at.map(Lsn),
        }
    }

    fn permanent() -> BTreeMap<String, PermanentSlot> {
        BTreeMap::from([
            (
                "keep_phys".to_owned(),
                PermanentSlot {
                    kind: SlotKind::Physical,
                    cluster_type: None,
                },
            ),
            (
                "cdc".to_owned(),
                PermanentSlot {
                    kind: SlotKind::Logical {
                        database: "app".into(),
                        plugin: "test_decoding".into(),
                    },
                    cluster_type: Some(ClusterType::Primary),
                },
            ),
        ])
    }

    struct Row {
        case: &'static str,
        role: SlotRole,
        existing: Vec<ReplicationSlot>,
        members: Vec<&'static str>,
        retained: Vec<&'static str>,
        ignore: Vec<IgnoreSlot>,
        primary: Vec<(&'static str, u64)>,
        can_copy: bool,
        want: SlotPlan,
    }

    fn row(case: &'static str, role: SlotRole) -> Row {
        Row {
            case,
            role,
            existing: vec![],
            members: vec![],
            retained: vec![],
            ignore: vec![],
            primary: vec![],
            can_copy: true,
            want: SlotPlan::default(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn new_cdc() -> NewLogicalSlot {
        NewLogicalSlot {
            name: "cdc".into(),
            database: "app".into(),
            plugin: "test_decoding".into(),
        }
    }

    #[test]
    fn slot_plans() {
        use SlotRole::{Primary, Standby};
        let all_made = || {
            vec![
                physical("node_2", true, Some(10)),
                physical("keep_phys", false, Some(5)),
                logical("cdc", "app", "test_decoding", Some(7)),
            ]
        };
        let rows = vec![
            Row {
                members: vec!["node_2"],
                want: SlotPlan {
                    create_physical: names(&["node_2", "keep_phys"]),
                    create_logical: vec![new_cdc()],
                    ..SlotPlan::default()
                },
                ..row("a new primary creates member and permanent slots", Primary)
            },
            Row {
                members: vec!["node_2"],
                existing: all_made(),
                ..row("a primary with every slot does nothing", Primary)
            },
            Row {
                members: vec!["node_2"],
                existing: [all_made(), vec![physical("stranger", false, None)]].concat(),
                want: SlotPlan {
                    drop: names(&["stranger"]),
                    ..SlotPlan::default()
                },
                ..row("a slot of nobody is dropped", Primary)
            },
            Row {
                members: vec!["node_2"],
                existing: [all_made(), vec![physical("busy", true, None)]].concat(),
                ..row(
                    "an active slot of nobody is left for the next tick",
                    Primary,
                )
            },
            Row {
                members: vec!["node_2"],
                existing: [
                    all_made(),
                    vec![
                        physical("foreign", false, None),
                        logical("debezium", "app", "pgoutput", None),
                        logical("other", "app", "wal2json", None),
                    ],
                ]
                .concat(),
                ignore: vec![
                    IgnoreSlot {
                        name: Some("foreign".into()),
                        ..IgnoreSlot::default()
                    },
                    IgnoreSlot {
                        kind: Some("logical".into()),
                        plugin: Some("pgoutput".into()),
                        ..IgnoreSlot::default()
                    },
                ],
                want: SlotPlan {
                    drop: names(&["other"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "ignore_slots keep what they match, by any attribute",
                    Primary,
                )
            },
            Row {
                members: vec!["node_2"],
                retained: vec!["node_3"],
                existing: [
                    all_made(),
                    vec![
                        physical("node_3", false, None),
                        physical("node_4", false, None),
                    ],
                ]
                .concat(),
                want: SlotPlan {
                    drop: names(&["node_4"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "a removed member's slot is kept within member_slots_ttl, not after",
                    Primary,
                )
            },
            Row {
                members: vec!["node_2"],
                existing: vec![
                    physical("node_2", true, Some(10)),
                    physical("keep_phys", false, Some(5)),
                ],
                want: SlotPlan {
                    create_logical: vec![new_cdc()],
                    ..SlotPlan::default()
                },
                ..row("a slot removed from the configuration is dropped", Primary)
            },
            Row {
                members: vec!["node_2"],
                existing: vec![
                    physical("node_2", true, Some(10)),
                    physical("keep_phys", false, Some(5)),
                    logical("cdc", "app", "pgoutput", Some(7)),
                ],
                want: SlotPlan {
                    drop: names(&["cdc"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "a permanent slot with another plugin is dropped (and made at the next tick)",
                    Primary,
                )
            },
            Row {
                existing: vec![physical("node_1", false, Some(3))],
                primary: vec![("keep_phys", 50), ("cdc", 40)],
                want: SlotPlan {
                    drop: names(&["node_1"]),
                    create_physical: names(&["keep_phys"]),
                    copy_logical: names(&["cdc"]),
                    not_ready: names(&["cdc"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "a standby creates physical permanent slots, copies logical ones and drops \
                     the member slots of its past as a primary",
                    Standby,
                )
            },
            Row {
                can_copy: false,
                primary: vec![("keep_phys", 50), ("cdc", 40)],
                want: SlotPlan {
                    create_physical: names(&["keep_phys"]),
                    not_ready: names(&["cdc"]),
                    ..SlotPlan::default()
                },
                ..row("a standby that does not stream copies nothing", Standby)
            },
            Row {
                primary: vec![("keep_phys", 50)],
                want: SlotPlan {
                    create_physical: names(&["keep_phys"]),
                    not_ready: names(&["cdc"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "a logical slot the primary does not report yet is not copied",
                    Standby,
                )
            },
            Row {
                existing: vec![
                    physical("keep_phys", false, Some(5)),
                    logical("cdc", "app", "test_decoding", Some(7)),
                ],
                primary: vec![("keep_phys", 50), ("cdc", 40)],
                want: SlotPlan {
                    advance: vec![("cdc".into(), Lsn(40)), ("keep_phys".into(), Lsn(50))],
                    ..SlotPlan::default()
                },
                ..row(
                    "a standby advances its copies to the primary's positions",
                    Standby,
                )
            },
            Row {
                existing: vec![
                    physical("keep_phys", false, Some(60)),
                    logical("cdc", "app", "test_decoding", Some(40)),
                ],
                primary: vec![("keep_phys", 50), ("cdc", 40)],
                ..row(
                    "a standby never moves a slot back nor past the primary",
                    Standby,
                )
            },
            Row {
                existing: vec![
                    physical("keep_phys", false, Some(50)),
                    logical("cdc", "app", "test_decoding", Some(40)),
                    physical("node_3", true, Some(45)),
                ],
                members: vec!["node_3", "node_4"],
                primary: vec![("keep_phys", 50), ("cdc", 40)],
                want: SlotPlan {
                    create_physical: names(&["node_4"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "a standby keeps and makes the slots of the members cascading from it",
                    Standby,
                )
            },
            Row {
                existing: vec![logical("cdc", "app", "pgoutput", Some(7))],
                primary: vec![("cdc", 40)],
                want: SlotPlan {
                    drop: names(&["cdc"]),
                    create_physical: names(&["keep_phys"]),
                    not_ready: names(&["cdc"]),
                    ..SlotPlan::default()
                },
                ..row(
                    "a standby's copy with another plugin is dropped and copied again",
                    Standby,
                )
            },
        ];
        for r in rows {
            let permanent = permanent();
            let members = names(&r.members);
            let retained = names(&r.retained);
            let primary: BTreeMap<String, Lsn> = r
                .primary
                .iter()
                .map(|(n, l)| ((*n).to_owned(), Lsn(*l)))
                .collect();
            let got = plan(&SlotView {
                role: r.role,
                existing: &r.existing,
                members: &members,
                retained: &retained,
                permanent: &permanent,
                ignore: &r.ignore,
                primary: &primary,
                can_copy_logical: r.can_copy,
            });
            assert_eq!(got, r.want, "{}", r.case);
        }
    }
}
