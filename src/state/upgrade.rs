//! A major-version upgrade of the cluster's PostgreSQL, as the replicated state records it: the
//! request, its phase, each member's checks, and how the last one ended. Any member takes the
//! request (`POST /upgrade`), every agent reads its part from here, and an agent that restarts
//! mid-way finds the phase it left, so it resumes (or rolls back) from the record, not from
//! memory.
//!
//! The method (README, "Upgrading PostgreSQL"): `pg_upgrade --link` on the primary, its standbys
//! copied afresh from the upgraded primary. The phases, each ended by one committed command:
//!
//! ```text
//! Checking ──every member passed──> Stopping ──standbys caught up──> Upgrading
//!    │ a check failed / deadline        │ failure / silent primary        │ pg_upgrade failed
//!    v                                   v                                 v
//! (refused: nothing changed)        RollingBack ──the primary undid──> (rolled back)
//!
//! Upgrading ──CommitUpgrade: the point of no return──> Starting ──> Rebuilding ──> (upgraded)
//! ```
//!
//! Until `CommitUpgrade` the old cluster is intact on every member (pg_upgrade's link mode only
//! renames the primary's `pg_control` until the new server first starts), so any failure rolls
//! back to it. `CommitUpgrade` is committed before the new primary first starts: from then on
//! writes may land on the new version and there is no way back.
//!
//! Must not: decide who acts or when (that is `ha::upgrade`); `apply` only checks that a step
//! is the next one for the upgrade it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::{Generation, MemberName, UnixMillis};

/// An upgrade in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upgrade {
    /// When it was asked for; names it in every step and in the directories it makes.
    pub id: UnixMillis,
    /// The new PostgreSQL's programs, the same path on every member.
    pub bin_dir: PathBuf,
    /// The primary when it was asked for: it runs `pg_upgrade`.
    pub primary: MemberName,
    /// The generation that primary led then; its steps are compare-and-sets on it.
    pub generation: Generation,
    /// Every member with a database then: each checks its host, each runs the new version at
    /// the end.
    pub members: BTreeSet<MemberName>,
    pub phase: UpgradePhase,
    /// When the phase began.
    pub phase_since: UnixMillis,
    pub checks: BTreeMap<MemberName, UpgradeCheck>,
    /// The cluster's system identifier before the upgrade (pg_upgrade makes a new one).
    pub sysid: Option<String>,
}

/// Where an upgrade is. Never renumbered: stored by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum UpgradePhase {
    /// Every member checks its host; the primary runs `pg_upgrade --check`.
    Checking,
    /// The primary checkpoints and stops cleanly; the standbys replay its last record.
    Stopping,
    /// The primary runs `pg_upgrade --link` into a directory beside its data directory.
    Upgrading,
    /// Past the point of no return: the primary puts the new data directory in place and
    /// starts it.
    Starting,
    /// The new primary runs; each standby sets its old copy aside and is copied afresh.
    Rebuilding,
    /// Before the point of no return something failed: the primary restores its old data
    /// directory and runs the old version again.
    RollingBack { reason: String },
}

impl UpgradePhase {
    /// The phase's name as `tribunectl list` and `/cluster` show it.
    pub fn name(&self) -> &'static str {
        match self {
            UpgradePhase::Checking => "checking",
            UpgradePhase::Stopping => "stopping",
            UpgradePhase::Upgrading => "upgrading",
            UpgradePhase::Starting => "starting",
            UpgradePhase::Rebuilding => "rebuilding",
            UpgradePhase::RollingBack { .. } => "rolling back",
        }
    }

    /// Whether the old cluster is still intact everywhere, so that a failure rolls back.
    pub fn before_point_of_no_return(&self) -> bool {
        matches!(
            self,
            UpgradePhase::Checking | UpgradePhase::Stopping | UpgradePhase::Upgrading
        )
    }
}

/// One member's verdict on its own host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum UpgradeCheck {
    /// The new programs are there and complete, and nothing stands in the way.
    Passed {
        /// The new version (`18.6`) and its major version (18).
        version: String,
        major: u32,
        /// The major version the member runs now.
        from_major: u32,
    },
    Failed {
        reason: String,
    },
}

impl Upgrade {
    /// Whether the cluster is paused for it: from the request until it ends, except while it
    /// rolls back (then a primary that is gone is failed over as usual).
    pub fn pauses(&self) -> bool {
        !matches!(self.phase, UpgradePhase::RollingBack { .. })
    }

    /// The version every member reported it can run, once all passed.
    pub fn target(&self) -> Option<(u32, &str)> {
        self.checks.values().find_map(|c| match c {
            UpgradeCheck::Passed { version, major, .. } => Some((*major, version.as_str())),
            UpgradeCheck::Failed { .. } => None,
        })
    }

    /// The checks' verdict once every member reported: `Ok` to go on, `Err` with the reason
    /// to refuse; `None` while some have not.
    pub fn verdict(&self) -> Option<Result<(), String>> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter_map(|(name, c)| match c {
                UpgradeCheck::Failed { reason } => Some(format!("{name}: {reason}")),
                UpgradeCheck::Passed { .. } => None,
            })
            .collect();
        if !failed.is_empty() {
            return Some(Err(failed.join("; ")));
        }
        if self.members.iter().any(|m| !self.checks.contains_key(m)) {
            return None;
        }
        let versions: BTreeSet<(&str, u32)> = self
            .checks
            .values()
            .filter_map(|c| match c {
                UpgradeCheck::Passed {
                    version,
                    from_major,
                    ..
                } => Some((version.as_str(), *from_major)),
                UpgradeCheck::Failed { .. } => None,
            })
            .collect();
        let described = |v: &BTreeSet<(&str, u32)>| {
            v.iter()
                .map(|(to, from)| format!("{from} to {to}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if versions.len() > 1 {
            return Some(Err(format!(
                "the members do not agree on the versions (from, to): {}",
                described(&versions)
            )));
        }
        match self.checks.values().next() {
            Some(UpgradeCheck::Passed {
                major, from_major, ..
            }) if major <= from_major => Some(Err(format!(
                "{} is not a newer major version than the running {from_major}",
                self.bin_dir.display()
            ))),
            _ => Some(Ok(())),
        }
    }
}

/// How the last upgrade ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeOutcome {
    pub id: UnixMillis,
    pub bin_dir: PathBuf,
    pub at: UnixMillis,
    pub result: UpgradeResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum UpgradeResult {
    /// Every member runs the new version.
    Upgraded { version: String },
    /// Something failed before the point of no return; the old version runs again.
    RolledBack { reason: String },
    /// The checks found a reason not to start; nothing was changed.
    Refused { reason: String },
}

/// The PostgreSQL the cluster runs since its last upgrade: every agent uses these programs for a
/// data directory of this major version (and to copy a new standby), its configured
/// `postgresql.bin_dir` for any other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterBinaries {
    pub bin_dir: PathBuf,
    pub major: u32,
    pub version: String,
    /// The system identifier before that upgrade: a data directory that still holds it is a
    /// copy of the old cluster, to be set aside and copied afresh.
    pub previous_sysid: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(checks: &[(&str, UpgradeCheck)]) -> Upgrade {
        Upgrade {
            id: UnixMillis(1),
            bin_dir: PathBuf::from("/opt/pg18/bin"),
            primary: "a".into(),
            generation: Generation(2),
            members: ["a", "b", "c"].into_iter().map(MemberName::from).collect(),
            phase: UpgradePhase::Checking,
            phase_since: UnixMillis(1),
            checks: checks
                .iter()
                .map(|(n, c)| (MemberName::from(*n), c.clone()))
                .collect(),
            sysid: Some("42".into()),
        }
    }

    fn passed(version: &str, major: u32, from_major: u32) -> UpgradeCheck {
        UpgradeCheck::Passed {
            version: version.into(),
            major,
            from_major,
        }
    }

    #[test]
    fn the_checks_verdict() {
        let ok = passed("18.6", 18, 15);
        assert_eq!(
            upgrade(&[("a", ok.clone())]).verdict(),
            None,
            "b and c to come"
        );
        let all = upgrade(&[("a", ok.clone()), ("b", ok.clone()), ("c", ok.clone())]);
        assert_eq!(all.verdict(), Some(Ok(())));
        assert_eq!(all.target(), Some((18, "18.6")));
        let failed = upgrade(&[
            ("a", ok.clone()),
            (
                "b",
                UpgradeCheck::Failed {
                    reason: "not streaming".into(),
                },
            ),
        ]);
        assert_eq!(failed.verdict(), Some(Err("b: not streaming".into())));
        let mixed = upgrade(&[
            ("a", ok.clone()),
            ("b", passed("18.1", 18, 15)),
            ("c", ok.clone()),
        ]);
        let reason = mixed.verdict().unwrap().unwrap_err();
        assert!(reason.contains("15 to 18.1, 15 to 18.6"), "{reason}");
        let same = passed("15.18", 15, 15);
        let older = upgrade(&[("a", same.clone()), ("b", same.clone()), ("c", same)]);
        let reason = older.verdict().unwrap().unwrap_err();
        assert!(reason.contains("not a newer major version"), "{reason}");
    }

    #[test]
    fn the_cluster_is_paused_except_while_rolling_back() {
        let mut u = upgrade(&[]);
        for phase in [
            UpgradePhase::Checking,
            UpgradePhase::Stopping,
            UpgradePhase::Upgrading,
            UpgradePhase::Starting,
            UpgradePhase::Rebuilding,
        ] {
            u.phase = phase;
            assert!(u.pauses(), "{:?}", u.phase);
        }
        u.phase = UpgradePhase::RollingBack { reason: "x".into() };
        assert!(!u.pauses());
        assert!(!u.phase.before_point_of_no_return());
        assert!(UpgradePhase::Upgrading.before_point_of_no_return());
        assert!(!UpgradePhase::Starting.before_point_of_no_return());
    }

    /// Stored by name: a record written now decodes in every later version.
    #[test]
    fn the_record_is_stored_by_name() {
        let mut u = upgrade(&[("a", passed("18.6", 18, 15))]);
        u.phase = UpgradePhase::RollingBack {
            reason: "pg_upgrade failed".into(),
        };
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["phase"]["phase"], "rolling_back");
        assert_eq!(json["checks"]["a"]["result"], "passed");
        assert_eq!(serde_json::from_value::<Upgrade>(json).unwrap(), u);
    }
}
