//! `apply` for the upgrade's commands (see `upgrade` for the phases). Each step names the
//! upgrade (`id`) and ends exactly one phase; the primary's steps are compare-and-sets on its
//! lease, so a stale or restarted agent can never move an upgrade it no longer leads.

use super::apply::held_lease;
use super::{
    ClusterBinaries, ClusterState, Command, Rejection, Upgrade, UpgradeOutcome, UpgradePhase,
    UpgradeResult,
};
use crate::types::{MemberName, UnixMillis};

pub(super) fn apply(
    state: &mut ClusterState,
    command: &Command,
    at: UnixMillis,
) -> Result<(), Rejection> {
    match command {
        Command::RequestUpgrade { bin_dir, id } => request(state, bin_dir, *id, at),
        Command::ReportUpgradeCheck { member, id, check } => {
            let upgrade = in_phase(state, *id, |p| *p == UpgradePhase::Checking)?;
            if !upgrade.members.contains(member) {
                return Err(Rejection::UnknownMember {
                    member: member.clone(),
                });
            }
            upgrade.checks.insert(member.clone(), check.clone());
            match upgrade.verdict() {
                None => {}
                Some(Ok(())) => {
                    upgrade.phase = UpgradePhase::Stopping;
                    upgrade.phase_since = at;
                }
                Some(Err(reason)) => end(state, at, UpgradeResult::Refused { reason }),
            }
            Ok(())
        }
        Command::UpgradeStopped {
            member,
            generation,
            id,
        } => {
            held_lease(state, member, *generation)?;
            let upgrade = primary_step(state, *id, member, UpgradePhase::Stopping)?;
            upgrade.phase = UpgradePhase::Upgrading;
            upgrade.phase_since = at;
            Ok(())
        }
        Command::CommitUpgrade {
            member,
            generation,
            id,
            sysid,
        } => {
            held_lease(state, member, *generation)?;
            let upgrade = primary_step(state, *id, member, UpgradePhase::Upgrading)?;
            let Some((major, version)) = upgrade.target().map(|(m, v)| (m, v.to_owned())) else {
                return Err(Rejection::NoUpgrade { id: *id });
            };
            upgrade.phase = UpgradePhase::Starting;
            upgrade.phase_since = at;
            let binaries = ClusterBinaries {
                bin_dir: upgrade.bin_dir.clone(),
                major,
                version,
                previous_sysid: upgrade.sysid.clone(),
            };
            state.binaries = Some(binaries);
            if let Some(init) = &mut state.initialize {
                init.sysid = Some(sysid.clone());
            }
            // A new database system: the old one's timelines and synchronous standbys say
            // nothing about it (the record only ever weakens here).
            state.history.clear();
            state.sync = Default::default();
            Ok(())
        }
        Command::UpgradeStarted {
            member,
            generation,
            id,
        } => {
            held_lease(state, member, *generation)?;
            let upgrade = primary_step(state, *id, member, UpgradePhase::Starting)?;
            upgrade.phase = UpgradePhase::Rebuilding;
            upgrade.phase_since = at;
            Ok(())
        }
        Command::FinishUpgrade { member, id } => {
            let upgrade = in_phase(state, *id, |p| {
                matches!(
                    p,
                    UpgradePhase::Rebuilding | UpgradePhase::RollingBack { .. }
                )
            })?;
            if &upgrade.primary != member {
                return Err(Rejection::NoUpgrade { id: *id });
            }
            let (phase, generation) = (upgrade.phase.clone(), upgrade.generation);
            let result = match phase {
                UpgradePhase::RollingBack { reason } => UpgradeResult::RolledBack { reason },
                _ => {
                    held_lease(state, member, generation)?;
                    let version = state
                        .binaries
                        .as_ref()
                        .map(|b| b.version.clone())
                        .unwrap_or_default();
                    UpgradeResult::Upgraded { version }
                }
            };
            end(state, at, result);
            Ok(())
        }
        Command::AbandonUpgrade { id, reason } => {
            let upgrade = in_phase(state, *id, |p| {
                !matches!(p, UpgradePhase::RollingBack { .. })
            })?;
            match upgrade.phase {
                UpgradePhase::Checking => {
                    let reason = reason.clone();
                    end(state, at, UpgradeResult::Refused { reason });
                }
                UpgradePhase::Stopping | UpgradePhase::Upgrading => {
                    upgrade.phase = UpgradePhase::RollingBack {
                        reason: reason.clone(),
                    };
                    upgrade.phase_since = at;
                }
                UpgradePhase::Starting
                | UpgradePhase::Rebuilding
                | UpgradePhase::RollingBack { .. } => return Err(Rejection::PastPointOfNoReturn),
            }
            Ok(())
        }
        _ => unreachable!("upgrade_apply::apply is only given upgrade commands"),
    }
}

/// `RequestUpgrade`: one at a time, on a cluster with a primary and nothing else under way.
/// What only the members can see (their programs, their disks, whether they stream) is their
/// checks' business.
fn request(
    state: &mut ClusterState,
    bin_dir: &std::path::Path,
    id: UnixMillis,
    at: UnixMillis,
) -> Result<(), Rejection> {
    let refuse = |reason: &str| {
        Err(Rejection::UpgradeRefused {
            reason: reason.to_owned(),
        })
    };
    if let Some(upgrade) = &state.upgrade {
        return Err(Rejection::UpgradeInProgress {
            phase: upgrade.phase.name().to_owned(),
        });
    }
    if !bin_dir.is_absolute() {
        return refuse("bin_dir must be an absolute path");
    }
    let Some(leader) = state.leader.clone() else {
        return Err(Rejection::NoLeader);
    };
    if state.sysid().is_none() {
        return refuse("the cluster is still bootstrapping");
    }
    if let Some(config) = &state.config {
        if config.typed().pause {
            return refuse("the cluster is paused; resume it first");
        }
        if config.typed().standby_cluster.is_some() {
            return refuse(
                "a standby cluster runs the version of the cluster it replicates; upgrade that one",
            );
        }
    }
    if state.switchover.is_some() {
        return refuse("a switchover is pending");
    }
    let members = state
        .members
        .iter()
        .filter(|(_, m)| m.conn_url.is_some())
        .map(|(name, _)| name.clone())
        .collect();
    state.upgrade = Some(Upgrade {
        id,
        bin_dir: bin_dir.to_owned(),
        primary: leader.member,
        generation: leader.generation,
        members,
        phase: UpgradePhase::Checking,
        phase_since: at,
        checks: Default::default(),
        sysid: state.sysid().map(str::to_owned),
    });
    Ok(())
}

/// The upgrade `id`, if its phase is one `wanted` accepts.
fn in_phase(
    state: &mut ClusterState,
    id: UnixMillis,
    wanted: impl Fn(&UpgradePhase) -> bool,
) -> Result<&mut Upgrade, Rejection> {
    match &mut state.upgrade {
        Some(u) if u.id == id && wanted(&u.phase) => Ok(u),
        _ => Err(Rejection::NoUpgrade { id }),
    }
}

/// The upgrade `id` in `phase`, whose primary is `member`.
fn primary_step<'a>(
    state: &'a mut ClusterState,
    id: UnixMillis,
    member: &MemberName,
    phase: UpgradePhase,
) -> Result<&'a mut Upgrade, Rejection> {
    let upgrade = in_phase(state, id, |p| *p == phase)?;
    if &upgrade.primary != member {
        return Err(Rejection::NoUpgrade { id });
    }
    Ok(upgrade)
}

/// The upgrade ends with `result`, kept for operators.
fn end(state: &mut ClusterState, at: UnixMillis, result: UpgradeResult) {
    if let Some(upgrade) = state.upgrade.take() {
        state.last_upgrade = Some(UpgradeOutcome {
            id: upgrade.id,
            bin_dir: upgrade.bin_dir,
            at,
            result,
        });
    }
}

/// A member left the cluster: if it was the primary of an upgrade rolling back, nobody is left
/// to restore its old data directory, and the rollback is over.
pub(super) fn member_gone(state: &mut ClusterState, member: &MemberName, at: UnixMillis) {
    let rolling_back = state.upgrade.as_ref().and_then(|u| match &u.phase {
        UpgradePhase::RollingBack { reason } if &u.primary == member => Some(reason.clone()),
        _ => None,
    });
    if let Some(reason) = rolling_back {
        end(state, at, UpgradeResult::RolledBack { reason });
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::state::{
        Initialize, Leader, Member, MemberStatus, Outcome, Proposal, UpgradeCheck, apply,
    };
    use crate::types::{Generation, Lsn, Timeline};

    fn n(s: &str) -> MemberName {
        MemberName::from(s)
    }

    fn run(state: &mut ClusterState, at: u64, command: Command) -> Outcome {
        apply(
            state,
            &Proposal {
                at: UnixMillis(at),
                command,
            },
        )
    }

    /// Three members with databases and a witness; `a` leads generation 3.
    fn cluster() -> ClusterState {
        let mut s = ClusterState {
            initialize: Some(Initialize {
                by: n("a"),
                sysid: Some("100".into()),
                at: UnixMillis(0),
            }),
            leader: Some(Leader {
                member: n("a"),
                generation: Generation(3),
                renewals: 0,
                since: UnixMillis(0),
                renewed_at: UnixMillis(0),
                lease_ms: None,
            }),
            generation: Generation(3),
            ..Default::default()
        };
        for (name, db) in [("a", true), ("b", true), ("c", true), ("w", false)] {
            s.members.insert(
                n(name),
                Member {
                    api_url: String::new(),
                    conn_url: db.then(|| "postgres://h:1/postgres".to_owned()),
                    raft_addr: None,
                    version: String::new(),
                    tags: Default::default(),
                    proxy_url: None,
                    status: MemberStatus::default(),
                    reported_at: UnixMillis(0),
                },
            );
        }
        s.history.push(crate::state::HistoryEntry {
            timeline: Timeline(1),
            lsn: Lsn(5),
            reason: "x".into(),
            at: UnixMillis(0),
            new_leader: n("a"),
        });
        s
    }

    fn request() -> Command {
        Command::RequestUpgrade {
            bin_dir: PathBuf::from("/opt/pg18/bin"),
            id: UnixMillis(10),
        }
    }

    fn passed() -> UpgradeCheck {
        UpgradeCheck::Passed {
            version: "18.6".into(),
            major: 18,
            from_major: 15,
        }
    }

    fn check(member: &str, check: UpgradeCheck) -> Command {
        Command::ReportUpgradeCheck {
            member: n(member),
            id: UnixMillis(10),
            check,
        }
    }

    fn step(kind: &str, member: &str, generation: u64) -> Command {
        let (member, generation, id) = (n(member), Generation(generation), UnixMillis(10));
        match kind {
            "stopped" => Command::UpgradeStopped {
                member,
                generation,
                id,
            },
            "commit" => Command::CommitUpgrade {
                member,
                generation,
                id,
                sysid: "200".into(),
            },
            "started" => Command::UpgradeStarted {
                member,
                generation,
                id,
            },
            "finish" => Command::FinishUpgrade { member, id },
            _ => unreachable!(),
        }
    }

    fn phase(s: &ClusterState) -> Option<&UpgradePhase> {
        s.upgrade.as_ref().map(|u| &u.phase)
    }

    #[test]
    fn a_request_lists_every_database_member_and_starts_with_checks() {
        let mut s = cluster();
        assert!(run(&mut s, 10, request()).is_applied());
        let u = s.upgrade.as_ref().unwrap();
        assert_eq!(u.id, UnixMillis(10));
        assert_eq!(u.primary, n("a"));
        assert_eq!(u.generation, Generation(3));
        assert_eq!(u.members, [n("a"), n("b"), n("c")].into());
        assert_eq!(u.sysid.as_deref(), Some("100"));
        assert_eq!(u.phase, UpgradePhase::Checking);
        assert!(
            s.paused(&Default::default()),
            "an upgrade pauses the cluster"
        );
        let again = run(&mut s, 11, request());
        assert!(
            matches!(
                again,
                Outcome::Rejected(Rejection::UpgradeInProgress { .. })
            ),
            "{again:?}"
        );
    }

    #[test]
    fn requests_that_cannot_start_change_nothing() {
        let relative = Command::RequestUpgrade {
            bin_dir: PathBuf::from("pg18/bin"),
            id: UnixMillis(10),
        };
        let mut leaderless = cluster();
        leaderless.leader = None;
        let mut switching = cluster();
        switching.switchover = Some(crate::state::SwitchoverRequest {
            leader: n("a"),
            candidate: None,
            scheduled_at: Some(UnixMillis(99)),
            requested_at: UnixMillis(1),
        });
        let mut paused = cluster();
        run(
            &mut paused,
            1,
            Command::SetConfig {
                config: serde_json::json!({"pause": true}),
                expected: None,
            },
        );
        for (mut state, command, why) in [
            (cluster(), relative, "absolute"),
            (leaderless, request(), "no leader"),
            (switching, request(), "switchover"),
            (paused, request(), "paused"),
        ] {
            let before = state.clone();
            let out = run(&mut state, 10, command);
            assert!(
                matches!(&out, Outcome::Rejected(r) if r.to_string().contains(why)),
                "{why}: {out:?}"
            );
            assert_eq!(state, before, "{why}");
        }
    }

    #[test]
    fn a_failed_check_refuses_the_upgrade_and_changes_nothing_else() {
        let mut s = cluster();
        run(&mut s, 10, request());
        let before_checks = {
            let mut b = s.clone();
            b.upgrade = None;
            b
        };
        assert!(run(&mut s, 11, check("a", passed())).is_applied());
        let failed = UpgradeCheck::Failed {
            reason: "not streaming".into(),
        };
        assert!(run(&mut s, 12, check("b", failed)).is_applied());
        assert_eq!(s.upgrade, None);
        let outcome = s.last_upgrade.clone().unwrap();
        assert_eq!(
            outcome.result,
            UpgradeResult::Refused {
                reason: "b: not streaming".into()
            }
        );
        s.last_upgrade = None;
        assert_eq!(s, before_checks, "nothing but the outcome was recorded");
        assert!(!s.paused(&Default::default()));
        // A late report of the refused upgrade is rejected.
        assert!(!run(&mut s, 13, check("c", passed())).is_applied());
        assert!(!run(&mut s, 13, check("w", passed())).is_applied());
    }

    #[test]
    fn an_upgrade_runs_through_its_phases_and_commits_a_new_system() {
        let mut s = cluster();
        run(&mut s, 10, request());
        for m in ["a", "b"] {
            assert!(run(&mut s, 11, check(m, passed())).is_applied());
            assert_eq!(phase(&s), Some(&UpgradePhase::Checking));
        }
        assert!(run(&mut s, 12, check("c", passed())).is_applied());
        assert_eq!(phase(&s), Some(&UpgradePhase::Stopping));
        // Only the lease holder of the upgrade's generation moves it, one phase at a time.
        assert!(!run(&mut s, 13, step("stopped", "b", 3)).is_applied());
        assert!(!run(&mut s, 13, step("stopped", "a", 2)).is_applied());
        assert!(!run(&mut s, 13, step("commit", "a", 3)).is_applied());
        assert!(run(&mut s, 13, step("stopped", "a", 3)).is_applied());
        assert_eq!(phase(&s), Some(&UpgradePhase::Upgrading));
        assert_eq!(s.binaries, None);
        assert!(run(&mut s, 14, step("commit", "a", 3)).is_applied());
        assert_eq!(phase(&s), Some(&UpgradePhase::Starting));
        assert_eq!(s.sysid(), Some("200"));
        assert!(s.history.is_empty());
        assert_eq!(s.sync, Default::default());
        assert_eq!(
            s.binaries,
            Some(ClusterBinaries {
                bin_dir: PathBuf::from("/opt/pg18/bin"),
                major: 18,
                version: "18.6".into(),
                previous_sysid: Some("100".into()),
            })
        );
        // Past the point of no return nothing abandons it.
        let abandon = Command::AbandonUpgrade {
            id: UnixMillis(10),
            reason: "late".into(),
        };
        assert_eq!(
            run(&mut s, 15, abandon.clone()),
            Outcome::Rejected(Rejection::PastPointOfNoReturn)
        );
        assert!(run(&mut s, 15, step("started", "a", 3)).is_applied());
        assert_eq!(phase(&s), Some(&UpgradePhase::Rebuilding));
        assert_eq!(
            run(&mut s, 16, abandon),
            Outcome::Rejected(Rejection::PastPointOfNoReturn)
        );
        assert!(!run(&mut s, 16, step("finish", "b", 3)).is_applied());
        assert!(run(&mut s, 17, step("finish", "a", 3)).is_applied());
        assert_eq!(s.upgrade, None);
        assert_eq!(
            s.last_upgrade.as_ref().unwrap().result,
            UpgradeResult::Upgraded {
                version: "18.6".into()
            }
        );
        assert!(!s.paused(&Default::default()));
    }

    #[test]
    fn before_the_point_of_no_return_it_rolls_back_until_the_primary_restored_its_data() {
        let mut s = cluster();
        run(&mut s, 10, request());
        for m in ["a", "b", "c"] {
            run(&mut s, 11, check(m, passed()));
        }
        run(&mut s, 13, step("stopped", "a", 3));
        let abandon = Command::AbandonUpgrade {
            id: UnixMillis(10),
            reason: "pg_upgrade failed".into(),
        };
        assert!(run(&mut s, 14, abandon.clone()).is_applied());
        assert_eq!(
            phase(&s),
            Some(&UpgradePhase::RollingBack {
                reason: "pg_upgrade failed".into()
            })
        );
        assert!(!s.paused(&Default::default()), "a failover may happen now");
        assert_eq!(s.sysid(), Some("100"));
        assert!(!run(&mut s, 15, abandon).is_applied());
        assert!(!run(&mut s, 15, step("commit", "a", 3)).is_applied());
        // The primary restores its data even after it lost the lease.
        s.leader = None;
        assert!(!run(&mut s, 16, step("finish", "b", 3)).is_applied());
        assert!(run(&mut s, 16, step("finish", "a", 3)).is_applied());
        assert_eq!(
            s.last_upgrade.as_ref().unwrap().result,
            UpgradeResult::RolledBack {
                reason: "pg_upgrade failed".into()
            }
        );
    }

    #[test]
    fn removing_the_primary_of_a_rollback_ends_it() {
        let mut s = cluster();
        run(&mut s, 10, request());
        for m in ["a", "b", "c"] {
            run(&mut s, 11, check(m, passed()));
        }
        run(
            &mut s,
            12,
            Command::AbandonUpgrade {
                id: UnixMillis(10),
                reason: "the primary went silent".into(),
            },
        );
        s.leader = None;
        assert!(run(&mut s, 13, Command::RemoveMember { member: n("a") }).is_applied());
        assert_eq!(s.upgrade, None);
        assert!(matches!(
            s.last_upgrade.as_ref().unwrap().result,
            UpgradeResult::RolledBack { .. }
        ));
    }

    #[test]
    fn abandoning_during_the_checks_refuses_it() {
        let mut s = cluster();
        run(&mut s, 10, request());
        assert!(
            run(
                &mut s,
                200,
                Command::AbandonUpgrade {
                    id: UnixMillis(10),
                    reason: "c did not report its checks".into()
                }
            )
            .is_applied()
        );
        assert_eq!(s.upgrade, None);
        assert!(matches!(
            s.last_upgrade.as_ref().unwrap().result,
            UpgradeResult::Refused { .. }
        ));
    }
}
