//! Which physical replication slots the primary drops. openGauss's standbys create their own
//! slot, named after their `application_name` (the member name), when they connect; the agent
//! creates none and only drops the inactive slots of members that left, since those keep WAL
//! forever. Permanent slots (`slots` in the dynamic configuration) are refused on openGauss:
//! its slot functions differ from PostgreSQL's (`pg_create_physical_replication_slot` takes a
//! dummy-standby flag) and its standbys make their own slots, so the copy-and-advance scheme of
//! `instance::slots` has not been built for it. Pure; `mod.rs` runs the SQL.

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

/// The inactive slots named after no member (an active one is retried at the next call).
pub fn stale(existing: &[Slot], members: &[MemberName]) -> Vec<String> {
    let names: BTreeSet<&str> = members.iter().map(MemberName::as_str).collect();
    existing
        .iter()
        .filter(|s| !s.active && !names.contains(s.name.as_str()))
        .map(|s| s.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_inactive_slots_of_strangers() {
        let members = ["og-2", "og-3"].map(MemberName::from);
        let existing = [
            ("og-2", true),
            ("og-3", false),
            ("og-9", false),
            ("busy", true),
        ]
        .map(|(name, active)| Slot {
            name: name.into(),
            active,
        });
        assert_eq!(stale(&existing, &members), vec!["og-9".to_owned()]);
    }
}
