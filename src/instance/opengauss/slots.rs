//! Which physical replication slots the primary drops. openGauss's standbys create their own
//! slot, named after their `application_name` (the member name), when they connect; the agent
//! creates none and only drops the inactive slots of members that left, since those keep WAL
//! forever. Pure; `mod.rs` runs the SQL.

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

    fn slot(name: &str, active: bool) -> Slot {
        Slot {
            name: name.into(),
            active,
        }
    }

    #[test]
    fn drops_only_inactive_slots_of_strangers() {
        let members = ["og-2", "og-3"].map(MemberName::from);
        let existing = [
            slot("og-2", true),
            slot("og-3", false),
            slot("og-9", false),
            slot("busy", true),
        ];
        assert_eq!(stale(&existing, &members), vec!["og-9".to_owned()]);
    }
}
