//! Which physical replication slots the primary must create and drop (Patroni §5.11, member
//! slots only). Pure; `mod.rs` runs the SQL. openGauss lists its slots the same way.

use std::collections::BTreeSet;

use crate::types::MemberName;

pub const LIST_SQL: &str = "SELECT slot_name, active FROM pg_catalog.pg_replication_slots \
                            WHERE slot_type = 'physical'";

/// An existing physical slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub active: bool,
}

/// The slots of [`LIST_SQL`]'s rows.
pub fn list(rows: &[tokio_postgres::SimpleQueryRow]) -> Vec<Slot> {
    rows.iter()
        .filter_map(|r| {
            Some(Slot {
                name: r.try_get(0).ok().flatten()?.to_owned(),
                active: r.try_get(1).ok().flatten() == Some("t"),
            })
        })
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotPlan {
    pub create: Vec<String>,
    pub drop: Vec<String>,
}

/// One slot per member but `own` (names normalised); slots for nobody are dropped once inactive
/// (an active one is retried at the next call).
pub fn plan(existing: &[Slot], members: &[MemberName], own: &MemberName) -> SlotPlan {
    let own = own.slot_name();
    let wanted: BTreeSet<String> = members
        .iter()
        .map(MemberName::slot_name)
        .filter(|n| *n != own && !n.is_empty())
        .collect();
    let have: BTreeSet<&str> = existing.iter().map(|s| s.name.as_str()).collect();
    SlotPlan {
        create: wanted
            .iter()
            .filter(|n| !have.contains(n.as_str()))
            .cloned()
            .collect(),
        drop: existing
            .iter()
            .filter(|s| !s.active && !wanted.contains(&s.name))
            .map(|s| s.name.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, active: bool) -> Slot {
        Slot {
            name: name.into(),
            active,
        }
    }

    #[test]
    fn creates_missing_and_drops_inactive_strangers() {
        let members = ["node-1", "node-2", "Node.3"].map(MemberName::from);
        let existing = [
            slot("node_2", true),
            slot("old_member", false),
            slot("busy_stranger", true),
        ];
        assert_eq!(
            plan(&existing, &members, &MemberName::from("node-1")),
            SlotPlan {
                create: vec!["node_3".into()],
                drop: vec!["old_member".into()],
            }
        );
    }

    #[test]
    fn never_keeps_a_slot_for_itself() {
        let members = [MemberName::from("node-1")];
        let existing = [slot("node_1", false)];
        assert_eq!(
            plan(&existing, &members, &MemberName::from("node-1")),
            SlotPlan {
                create: vec![],
                drop: vec!["node_1".into()],
            }
        );
    }
}
