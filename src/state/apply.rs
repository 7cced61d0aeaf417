//! The one function that changes [`ClusterState`]. Pure and deterministic: the same state and
//! proposal give the same result on every member, forever (the Raft log is replayed through it).

use super::{
    ClusterState, Command, FailoverIntent, Initialize, Leader, Outcome, Proposal, Rejection,
};

/// The dynamic configuration a command stores, validated: an invalid one is rejected whole.
fn stored(written: &serde_json::Value) -> Result<super::StoredConfig, Rejection> {
    super::StoredConfig::parse(written.clone()).map_err(|err| Rejection::InvalidConfig {
        reason: err.to_string(),
    })
}

/// A permanent slot may not take a member's slot name: the primary keeps that slot for the
/// member (and drops it when the member leaves), so the two would fight over one slot.
fn permanent_slots_clear_of_members(
    state: &ClusterState,
    config: &super::StoredConfig,
) -> Result<(), Rejection> {
    for name in config.typed().slots.keys() {
        if let Some(member) = state.members.keys().find(|m| m.slot_name() == *name) {
            return Err(Rejection::InvalidConfig {
                reason: format!(
                    "config error at `slots.{name}`: `{name}` is the replication slot of member \
                     {member}; give the permanent slot another name"
                ),
            });
        }
    }
    Ok(())
}

/// Remember when `member` was removed (for `member_slots_ttl`), forgetting removals older than
/// the ttl.
fn departed(
    state: &mut ClusterState,
    member: &crate::types::MemberName,
    at: crate::types::UnixMillis,
) {
    let ttl = state
        .config
        .as_ref()
        .map_or(crate::config::DEFAULT_MEMBER_SLOTS_TTL, |c| {
            c.typed().member_slots_ttl
        });
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    state
        .departed
        .retain(|_, when| at.0.saturating_sub(when.0) < ttl_ms);
    state.departed.insert(member.clone(), at);
}

/// Apply one committed proposal. A rejected command leaves the state exactly as it was.
pub fn apply(state: &mut ClusterState, proposal: &Proposal) -> Outcome {
    match apply_command(state, proposal) {
        Ok(()) => Outcome::Applied,
        Err(rejection) => Outcome::Rejected(rejection),
    }
}

fn apply_command(state: &mut ClusterState, proposal: &Proposal) -> Result<(), Rejection> {
    let at = proposal.at;
    // A removed cluster takes only reports (so `/cluster` still lists who is there).
    if state.removed.is_some() && !matches!(proposal.command, Command::Report { .. }) {
        return Err(Rejection::ClusterRemoved);
    }
    match &proposal.command {
        Command::ClaimBootstrap { member, dcs_config } => {
            if let Some(init) = &state.initialize {
                return Err(Rejection::AlreadyInitialized {
                    by: init.by.clone(),
                });
            }
            if let Some(leader) = &state.leader {
                return Err(Rejection::LeaderPresent {
                    leader: leader.member.clone(),
                });
            }
            // Validated before anything changes: a rejected command leaves the state as it was.
            let seeded = match state.config {
                None => Some(stored(dcs_config)?),
                Some(_) => None,
            };
            state.initialize = Some(Initialize {
                by: member.clone(),
                sysid: None,
                at,
            });
            if seeded.is_some() {
                state.config = seeded;
            }
            lead_next_generation(state, member, at);
            Ok(())
        }
        Command::FinishBootstrap { member, sysid } => {
            match &mut state.initialize {
                Some(init) if &init.by == member && init.sysid.is_none() => {
                    init.sysid = Some(sysid.clone());
                }
                _ => {
                    return Err(Rejection::NotBootstrapping {
                        member: member.clone(),
                    });
                }
            }
            Ok(())
        }
        Command::AbortBootstrap { member } => {
            match &state.initialize {
                Some(init) if &init.by == member && init.sysid.is_none() => {}
                _ => {
                    return Err(Rejection::NotBootstrapping {
                        member: member.clone(),
                    });
                }
            }
            state.initialize = None;
            if state.leader_name() == Some(member) {
                state.leader = None;
            }
            Ok(())
        }
        Command::Report { member, record } => {
            // A removed node's agent may still run: it must not bring its record back.
            if let Some(addr) = &record.raft_addr
                && state.retired_addr(addr).is_some()
            {
                return Err(Rejection::RetiredAddress {
                    raft_addr: addr.clone(),
                });
            }
            let mut record = (**record).clone();
            record.reported_at = at;
            state.departed.remove(member);
            state.members.insert(member.clone(), record);
            Ok(())
        }
        Command::RenewLease {
            member,
            generation,
            lease_ms,
        } => {
            let leader = held_lease(state, member, *generation)?;
            leader.renewals += 1;
            leader.renewed_at = at;
            leader.lease_ms = *lease_ms;
            Ok(())
        }
        Command::ReleaseLease {
            member,
            generation,
            last_lsn,
        } => {
            held_lease(state, member, *generation)?;
            end_lease(state, *last_lsn, at);
            Ok(())
        }
        Command::DeclinePromotion {
            member,
            generation,
            lsn,
            reason,
        } => {
            held_lease(state, member, *generation)?;
            end_lease(state, Some(*lsn), at);
            if let Some(intent) = &mut state.failover {
                // It never wrote: nobody is to be fenced, and where the acknowledged commits
                // are is what it held, not what the earlier primary's record says.
                intent.former_leader = None;
                intent.declined = Some(super::Declined {
                    member: member.clone(),
                    lsn: *lsn,
                    reason: reason.clone(),
                });
            }
            Ok(())
        }
        Command::ExpireLease {
            generation,
            renewals,
        } => {
            let leader = match &state.leader {
                Some(l) if l.generation == *generation => l,
                _ => {
                    return Err(Rejection::StaleGeneration {
                        expected: *generation,
                        current: state.generation,
                    });
                }
            };
            if leader.renewals != *renewals {
                return Err(Rejection::LeaseRenewed {
                    expected: *renewals,
                    current: leader.renewals,
                });
            }
            let last_lsn = state
                .members
                .get(&leader.member)
                .and_then(|m| m.wal_position());
            end_lease(state, last_lsn, at);
            Ok(())
        }
        Command::AckFailover {
            member,
            ended,
            report,
        } => {
            if !state.members.contains_key(member) {
                return Err(Rejection::UnknownMember {
                    member: member.clone(),
                });
            }
            match &mut state.failover {
                Some(intent) if intent.ended == *ended && state.leader.is_none() => {
                    intent.reports.insert(member.clone(), *report);
                    Ok(())
                }
                _ => Err(Rejection::NoFailover { ended: *ended }),
            }
        }
        Command::Promote { member, ended } => {
            if let Some(leader) = &state.leader {
                return Err(Rejection::LeaderPresent {
                    leader: leader.member.clone(),
                });
            }
            if state.generation != *ended {
                return Err(Rejection::StaleGeneration {
                    expected: *ended,
                    current: state.generation,
                });
            }
            known_member(state, member)?;
            lead_next_generation(state, member, at);
            Ok(())
        }
        Command::AddHistory { entry } => {
            if !state.history.iter().any(|h| h.timeline == entry.timeline) {
                state.history.push(entry.clone());
            }
            Ok(())
        }
        Command::SetSync {
            member,
            generation,
            standbys,
            quorum,
            site_guarantee,
        } => {
            held_lease(state, member, *generation)?;
            if *quorum as usize > standbys.len() {
                return Err(Rejection::QuorumTooLarge {
                    quorum: *quorum,
                    standbys: standbys.len(),
                });
            }
            state.sync = super::SyncRecord {
                generation: *generation,
                leader: Some(member.clone()),
                standbys: standbys.clone(),
                quorum: *quorum,
                site_guarantee: *site_guarantee,
            };
            Ok(())
        }
        Command::SetConfig { config, expected } => {
            if expected
                .as_ref()
                .is_some_and(|e| e != state.written_config())
            {
                return Err(Rejection::ConfigChanged);
            }
            let config = stored(config)?;
            permanent_slots_clear_of_members(state, &config)?;
            state.config = Some(config);
            Ok(())
        }
        Command::RemoveMember { member } => {
            if state.members.remove(member).is_none() {
                return Err(Rejection::UnknownMember {
                    member: member.clone(),
                });
            }
            super::upgrade_apply::member_gone(state, member, at);
            departed(state, member, at);
            Ok(())
        }
        Command::RetireNode {
            node_id,
            raft_addr,
            member,
        } => {
            if state.retired.contains_key(node_id) {
                return Err(Rejection::AlreadyRetired { node_id: *node_id });
            }
            if let Some(member) = member {
                // The lease holder is never removed: its record is what the lease stands on.
                if state.leader_name() == Some(member) {
                    return Err(Rejection::LeaderPresent {
                        leader: member.clone(),
                    });
                }
                state.members.remove(member);
                state.restarts.remove(member);
                state.reinitializations.remove(member);
                state.restart_outcomes.remove(member);
                super::upgrade_apply::member_gone(state, member, at);
                departed(state, member, at);
            }
            state.retired.insert(
                *node_id,
                super::RetiredNode {
                    raft_addr: raft_addr.clone(),
                    member: member.clone(),
                    at,
                },
            );
            Ok(())
        }
        Command::RequestSwitchover { request } => {
            match &state.leader {
                None => return Err(Rejection::NoLeader),
                Some(l) if l.member != request.leader => return Err(Rejection::LeaderMismatch),
                Some(_) => {}
            }
            if let Some(candidate) = &request.candidate {
                known_member(state, candidate)?;
                if candidate == &request.leader {
                    return Err(Rejection::SameMember);
                }
            }
            state.switchover = Some(request.clone());
            Ok(())
        }
        Command::CancelSwitchover => match state.switchover.take() {
            Some(_) => Ok(()),
            None => Err(Rejection::NoSwitchover),
        },
        Command::HandOver {
            member,
            generation,
            to,
        } => {
            held_lease(state, member, *generation)?;
            known_member(state, to)?;
            if to == member {
                return Err(Rejection::SameMember);
            }
            lead_next_generation(state, to, at);
            Ok(())
        }
        Command::RequestRestart { member, request } => {
            known_member(state, member)?;
            if state.restarts.contains_key(member) {
                return Err(Rejection::RestartPending {
                    member: member.clone(),
                });
            }
            state.restarts.insert(member.clone(), request.clone());
            Ok(())
        }
        Command::CancelRestart { member } => match state.restarts.remove(member) {
            Some(_) => Ok(()),
            None => Err(Rejection::NoRestart {
                member: member.clone(),
            }),
        },
        Command::FinishRestart { member, outcome } => {
            match state.restarts.get(member) {
                Some(r) if r.requested_at == outcome.requested_at => {}
                _ => {
                    return Err(Rejection::NoRestart {
                        member: member.clone(),
                    });
                }
            }
            state.restarts.remove(member);
            state
                .restart_outcomes
                .insert(member.clone(), outcome.clone());
            Ok(())
        }
        Command::RequestReinit {
            member,
            request,
            force,
        } => {
            known_member(state, member)?;
            if state.leader.is_none() {
                return Err(Rejection::NoLeader);
            }
            if state.leader_name() == Some(member) {
                return Err(Rejection::LeaderPresent {
                    leader: member.clone(),
                });
            }
            if !force && state.reinitializations.contains_key(member) {
                return Err(Rejection::ReinitPending {
                    member: member.clone(),
                });
            }
            state
                .reinitializations
                .insert(member.clone(), request.clone());
            Ok(())
        }
        Command::FinishReinit { member } => {
            state.reinitializations.remove(member);
            Ok(())
        }
        Command::RequestUpgrade { .. }
        | Command::ReportUpgradeCheck { .. }
        | Command::UpgradeStopped { .. }
        | Command::CommitUpgrade { .. }
        | Command::UpgradeStarted { .. }
        | Command::FinishUpgrade { .. }
        | Command::AbandonUpgrade { .. } => {
            super::upgrade_apply::apply(state, &proposal.command, at)
        }
        Command::RemoveCluster => {
            *state = ClusterState {
                removed: Some(at),
                // Node ids stay retired: a removed node must not come back under its id.
                retired: std::mem::take(&mut state.retired),
                ..ClusterState::default()
            };
            Ok(())
        }
    }
}

/// `member` leads the next generation; the failover intent and any switchover request, which
/// belonged to the ended one, are done.
fn lead_next_generation(
    state: &mut ClusterState,
    member: &crate::types::MemberName,
    at: crate::types::UnixMillis,
) {
    state.generation = state.generation.next();
    state.leader = Some(Leader {
        member: member.clone(),
        generation: state.generation,
        renewals: 0,
        since: at,
        renewed_at: at,
        lease_ms: None,
    });
    state.failover = None;
    state.switchover = None;
}

fn known_member(state: &ClusterState, member: &crate::types::MemberName) -> Result<(), Rejection> {
    if state.members.contains_key(member) {
        Ok(())
    } else {
        Err(Rejection::UnknownMember {
            member: member.clone(),
        })
    }
}

pub(super) fn held_lease<'a>(
    state: &'a mut ClusterState,
    member: &crate::types::MemberName,
    generation: crate::types::Generation,
) -> Result<&'a mut Leader, Rejection> {
    match &mut state.leader {
        Some(l) if &l.member == member && l.generation == generation => Ok(l),
        _ => Err(Rejection::NotLeader {
            member: member.clone(),
            generation,
        }),
    }
}

/// The lease ends (expired or released): nobody leads, and a failover intent opens so that the
/// standbys report how far they got before anyone is promoted.
fn end_lease(
    state: &mut ClusterState,
    former_lsn: Option<crate::types::Lsn>,
    at: crate::types::UnixMillis,
) {
    let former = state.leader.take();
    // A switchover asked of that leader is void now.
    state.switchover = None;
    state.failover = Some(FailoverIntent {
        ended: state.generation,
        former_leader: former.map(|l| l.member),
        former_lsn,
        opened_at: at,
        reports: Default::default(),
        declined: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{FailoverReport, HistoryEntry, Member, MemberStatus};
    use crate::types::{Generation, Lsn, MemberName, Timeline, UnixMillis};

    fn name(s: &str) -> MemberName {
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

    fn member(lsn: u64) -> Member {
        Member {
            api_url: "http://127.0.0.1:8008/patroni".into(),
            conn_url: Some("postgres://127.0.0.1:5432/postgres".into()),
            raft_addr: None,
            version: "test".into(),
            tags: Default::default(),
            proxy_url: None,
            status: MemberStatus {
                wal_position: Some(Lsn(lsn)),
                ..Default::default()
            },
            reported_at: UnixMillis(0),
        }
    }

    fn bootstrapped(by: &str) -> ClusterState {
        let mut s = ClusterState::default();
        for n in ["a", "b", "c"] {
            run(
                &mut s,
                1,
                Command::Report {
                    member: name(n),
                    record: Box::new(member(100)),
                },
            );
        }
        assert!(
            run(
                &mut s,
                2,
                Command::ClaimBootstrap {
                    member: name(by),
                    dcs_config: serde_json::json!({"ttl": 30}),
                }
            )
            .is_applied()
        );
        s
    }

    #[test]
    fn a_declined_promotion_opens_a_failover_without_a_former_leader() {
        let mut s = bootstrapped("a");
        let decline = |member: &str| Command::DeclinePromotion {
            member: name(member),
            generation: Generation(1),
            lsn: Lsn(90),
            reason: "exited with 1".into(),
        };
        assert_eq!(
            run(&mut s, 5, decline("b")),
            Outcome::Rejected(Rejection::NotLeader {
                member: name("b"),
                generation: Generation(1)
            })
        );
        assert!(run(&mut s, 5, decline("a")).is_applied());
        assert_eq!(s.leader, None);
        let intent = s.failover.as_ref().unwrap();
        assert_eq!(intent.ended, Generation(1));
        assert_eq!(intent.former_leader, None);
        assert_eq!(intent.former_lsn, Some(Lsn(90)));
        assert_eq!(
            intent.declined,
            Some(crate::state::Declined {
                member: name("a"),
                lsn: Lsn(90),
                reason: "exited with 1".into()
            })
        );
        assert_eq!(intent.opened_at, UnixMillis(5));
    }

    #[test]
    fn first_bootstrap_claim_wins_and_leads_generation_one() {
        let mut s = bootstrapped("a");
        assert_eq!(s.leader_name(), Some(&name("a")));
        assert_eq!(s.generation, Generation(1));
        assert_eq!(s.written_config(), &serde_json::json!({"ttl": 30}));
        let second = run(
            &mut s,
            3,
            Command::ClaimBootstrap {
                member: name("b"),
                dcs_config: serde_json::json!({"ttl": 99}),
            },
        );
        assert_eq!(
            second,
            Outcome::Rejected(Rejection::AlreadyInitialized { by: name("a") })
        );
        assert_eq!(s.written_config(), &serde_json::json!({"ttl": 30}));
    }

    #[test]
    fn a_permanent_slot_may_not_take_a_members_slot_name() {
        let mut s = bootstrapped("a");
        let before = s.clone();
        let clash = run(
            &mut s,
            3,
            Command::SetConfig {
                config: serde_json::json!({"slots": {"b": {"type": "physical"}}}),
                expected: None,
            },
        );
        assert!(
            matches!(&clash, Outcome::Rejected(Rejection::InvalidConfig { reason })
                if reason.contains("`slots.b`") && reason.contains("member b")),
            "{clash:?}"
        );
        assert_eq!(s, before);
        let fine = Command::SetConfig {
            config: serde_json::json!({"slots": {"cdc": {"type": "physical"}}}),
            expected: None,
        };
        assert!(run(&mut s, 4, fine).is_applied());
    }

    #[test]
    fn removed_members_are_remembered_for_member_slots_ttl() {
        let mut s = bootstrapped("a");
        let ttl = serde_json::json!({"member_slots_ttl": 10});
        assert!(
            run(
                &mut s,
                2,
                Command::SetConfig {
                    config: ttl,
                    expected: None
                }
            )
            .is_applied()
        );
        assert!(run(&mut s, 1_000, Command::RemoveMember { member: name("b") }).is_applied());
        assert_eq!(s.departed.get(&name("b")), Some(&UnixMillis(1_000)));
        // A later removal forgets the ones older than the ttl.
        assert!(run(&mut s, 20_000, Command::RemoveMember { member: name("c") }).is_applied());
        assert_eq!(s.departed.keys().collect::<Vec<_>>(), [&name("c")]);
        // A member that reports again is no longer departed.
        let back = Command::Report {
            member: name("c"),
            record: Box::new(member(100)),
        };
        assert!(run(&mut s, 20_001, back).is_applied());
        assert!(s.departed.is_empty());
    }

    #[test]
    fn the_dynamic_configuration_is_validated_when_committed() {
        let mut s = bootstrapped("a");
        assert_eq!(s.dynamic_or(&Default::default()).ttl.as_secs(), 30);
        let before = s.clone();
        let invalid = run(
            &mut s,
            3,
            Command::SetConfig {
                config: serde_json::json!({"ttl": 5, "loop_wait": 10}),
                expected: None,
            },
        );
        assert!(
            matches!(&invalid, Outcome::Rejected(Rejection::InvalidConfig { reason }) if reason.contains("ttl")),
            "{invalid:?}"
        );
        assert_eq!(s, before, "a rejected configuration changes nothing");
        let valid = run(
            &mut s,
            4,
            Command::SetConfig {
                config: serde_json::json!({"ttl": 6, "custom": true}),
                expected: Some(serde_json::json!({"ttl": 30})),
            },
        );
        assert!(valid.is_applied());
        assert_eq!(s.dynamic_or(&Default::default()).ttl.as_secs(), 6);
        assert_eq!(
            s.written_config(),
            &serde_json::json!({"ttl": 6, "custom": true})
        );
        // A bootstrap claim with an invalid bootstrap.dcs stores nothing and leads nobody.
        let mut fresh = ClusterState::default();
        let claim = run(
            &mut fresh,
            1,
            Command::ClaimBootstrap {
                member: name("a"),
                dcs_config: serde_json::json!({"ttl": "soon"}),
            },
        );
        assert!(!claim.is_applied());
        assert_eq!(fresh, ClusterState::default());
    }

    /// A state written before the configuration was typed (`config` as plain JSON, `null` before
    /// bootstrap) decodes as it was, and encodes back to the same JSON.
    #[test]
    fn a_state_of_the_previous_version_decodes_unchanged() {
        for config in [
            serde_json::Value::Null,
            serde_json::json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "slots": {}}),
        ] {
            let old = serde_json::json!({
                "initialize": null, "members": {}, "leader": null, "generation": 0,
                "failover": null, "config": config, "history": []
            });
            let state: ClusterState = serde_json::from_value(old).unwrap();
            assert_eq!(state.written_config(), &config);
            let again = serde_json::to_value(&state).unwrap();
            assert_eq!(again["config"], config);
        }
    }

    #[test]
    fn only_the_claimer_finishes_or_aborts_bootstrap() {
        let mut s = bootstrapped("a");
        let wrong = run(
            &mut s,
            3,
            Command::FinishBootstrap {
                member: name("b"),
                sysid: "1".into(),
            },
        );
        assert!(!wrong.is_applied());
        assert!(run(&mut s, 3, Command::AbortBootstrap { member: name("a") }).is_applied());
        assert_eq!(s.initialize, None);
        assert_eq!(s.leader, None);
        // The generation used by the aborted attempt is never reissued.
        assert!(
            run(
                &mut s,
                4,
                Command::ClaimBootstrap {
                    member: name("b"),
                    dcs_config: serde_json::Value::Null,
                }
            )
            .is_applied()
        );
        assert_eq!(s.generation, Generation(2));
        assert!(
            run(
                &mut s,
                5,
                Command::FinishBootstrap {
                    member: name("b"),
                    sysid: "42".into(),
                }
            )
            .is_applied()
        );
        assert_eq!(s.sysid(), Some("42"));
        assert!(!run(&mut s, 6, Command::AbortBootstrap { member: name("b") }).is_applied());
    }

    #[test]
    fn renewal_is_a_compare_and_set_on_member_and_generation() {
        let mut s = bootstrapped("a");
        assert!(
            run(
                &mut s,
                10,
                Command::RenewLease {
                    lease_ms: None,
                    member: name("a"),
                    generation: Generation(1)
                }
            )
            .is_applied()
        );
        assert_eq!(s.leader.as_ref().unwrap().renewals, 1);
        assert_eq!(s.leader.as_ref().unwrap().renewed_at, UnixMillis(10));
        for (m, g) in [("b", 1), ("a", 2)] {
            let out = run(
                &mut s,
                11,
                Command::RenewLease {
                    lease_ms: None,
                    member: name(m),
                    generation: Generation(g),
                },
            );
            assert!(matches!(
                out,
                Outcome::Rejected(Rejection::NotLeader { .. })
            ));
        }
        assert_eq!(s.leader.as_ref().unwrap().renewals, 1);
    }

    #[test]
    fn expiry_is_refused_after_a_renewal_it_did_not_see() {
        let mut s = bootstrapped("a");
        run(
            &mut s,
            10,
            Command::RenewLease {
                lease_ms: None,
                member: name("a"),
                generation: Generation(1),
            },
        );
        let stale = run(
            &mut s,
            20,
            Command::ExpireLease {
                generation: Generation(1),
                renewals: 0,
            },
        );
        assert_eq!(
            stale,
            Outcome::Rejected(Rejection::LeaseRenewed {
                expected: 0,
                current: 1
            })
        );
        assert!(s.leader.is_some());
        assert!(
            run(
                &mut s,
                21,
                Command::ExpireLease {
                    generation: Generation(1),
                    renewals: 1
                }
            )
            .is_applied()
        );
        assert_eq!(s.leader, None);
        let intent = s.failover.as_ref().unwrap();
        assert_eq!(intent.ended, Generation(1));
        assert_eq!(intent.former_leader, Some(name("a")));
        assert_eq!(intent.former_lsn, Some(Lsn(100)));
    }

    #[test]
    fn failover_collects_reports_then_promotes_once() {
        let mut s = bootstrapped("a");
        run(
            &mut s,
            20,
            Command::ExpireLease {
                generation: Generation(1),
                renewals: 0,
            },
        );
        let report = FailoverReport {
            lsn: Lsn(90),
            timeline: Some(Timeline(1)),
        };
        assert!(
            run(
                &mut s,
                21,
                Command::AckFailover {
                    member: name("b"),
                    ended: Generation(1),
                    report
                }
            )
            .is_applied()
        );
        assert!(
            !run(
                &mut s,
                21,
                Command::AckFailover {
                    member: name("b"),
                    ended: Generation(7),
                    report
                }
            )
            .is_applied()
        );
        assert_eq!(s.failover.as_ref().unwrap().reports.len(), 1);
        assert!(
            run(
                &mut s,
                22,
                Command::Promote {
                    member: name("b"),
                    ended: Generation(1)
                }
            )
            .is_applied()
        );
        assert_eq!(s.leader_name(), Some(&name("b")));
        assert_eq!(s.generation, Generation(2));
        assert_eq!(s.failover, None);
        // A second promotion for the same ended generation loses.
        let again = run(
            &mut s,
            23,
            Command::Promote {
                member: name("c"),
                ended: Generation(1),
            },
        );
        assert!(matches!(
            again,
            Outcome::Rejected(Rejection::LeaderPresent { .. })
        ));
    }

    #[test]
    fn promotion_of_a_stranger_or_on_a_stale_generation_is_refused() {
        let mut s = bootstrapped("a");
        run(
            &mut s,
            20,
            Command::ReleaseLease {
                member: name("a"),
                generation: Generation(1),
                last_lsn: Some(Lsn(5)),
            },
        );
        assert_eq!(s.failover.as_ref().unwrap().former_lsn, Some(Lsn(5)));
        assert!(matches!(
            run(
                &mut s,
                21,
                Command::Promote {
                    member: name("zz"),
                    ended: Generation(1)
                }
            ),
            Outcome::Rejected(Rejection::UnknownMember { .. })
        ));
        assert!(matches!(
            run(
                &mut s,
                21,
                Command::Promote {
                    member: name("b"),
                    ended: Generation(0)
                }
            ),
            Outcome::Rejected(Rejection::StaleGeneration { .. })
        ));
        assert_eq!(s.leader, None);
    }

    #[test]
    fn only_the_lease_holder_records_its_synchronous_standbys() {
        let mut s = bootstrapped("a");
        let standbys: std::collections::BTreeSet<MemberName> = [name("b")].into();
        let stale = run(
            &mut s,
            3,
            Command::SetSync {
                member: name("b"),
                generation: Generation(1),
                standbys: standbys.clone(),
                quorum: 0,
                site_guarantee: false,
            },
        );
        assert!(matches!(
            stale,
            Outcome::Rejected(Rejection::NotLeader { .. })
        ));
        assert_eq!(s.sync.standbys_of(Generation(1)), None);
        assert!(
            run(
                &mut s,
                4,
                Command::SetSync {
                    member: name("a"),
                    generation: Generation(1),
                    standbys: standbys.clone(),
                    quorum: 0,
                    site_guarantee: true,
                }
            )
            .is_applied()
        );
        assert_eq!(s.sync.standbys_of(Generation(1)), Some(&standbys));
        assert!(s.sync.site_guarantee);
        // The record speaks for its own generation only.
        assert_eq!(s.sync.standbys_of(Generation(2)), None);
        // It outlives the lease: the failover after generation 1 reads it.
        run(
            &mut s,
            5,
            Command::ExpireLease {
                generation: Generation(1),
                renewals: 0,
            },
        );
        assert_eq!(s.sync.standbys_of(Generation(1)), Some(&standbys));
    }

    #[test]
    fn history_records_each_timeline_once() {
        let mut s = ClusterState::default();
        let entry = HistoryEntry {
            timeline: Timeline(1),
            lsn: Lsn(1),
            reason: "no recovery target specified".into(),
            at: UnixMillis(1),
            new_leader: name("b"),
        };
        run(
            &mut s,
            1,
            Command::AddHistory {
                entry: entry.clone(),
            },
        );
        run(&mut s, 2, Command::AddHistory { entry });
        assert_eq!(s.history.len(), 1);
    }

    #[test]
    fn reports_are_stamped_with_the_proposal_time() {
        let mut s = ClusterState::default();
        run(
            &mut s,
            77,
            Command::Report {
                member: name("a"),
                record: Box::new(member(1)),
            },
        );
        assert_eq!(s.members[&name("a")].reported_at, UnixMillis(77));
        assert!(run(&mut s, 78, Command::RemoveMember { member: name("a") }).is_applied());
        assert!(!run(&mut s, 79, Command::RemoveMember { member: name("a") }).is_applied());
    }
    fn switchover(leader: &str, candidate: Option<&str>) -> Command {
        Command::RequestSwitchover {
            request: crate::state::SwitchoverRequest {
                leader: name(leader),
                candidate: candidate.map(name),
                scheduled_at: None,
                requested_at: UnixMillis(5),
            },
        }
    }

    fn rejection(outcome: Outcome) -> Rejection {
        match outcome {
            Outcome::Rejected(r) => r,
            Outcome::Applied => panic!("expected a rejection"),
        }
    }

    #[test]
    fn a_switchover_request_names_the_current_leader_and_a_known_candidate() {
        let mut s = bootstrapped("a");
        assert_eq!(
            rejection(run(&mut s, 3, switchover("b", None))),
            Rejection::LeaderMismatch
        );
        assert!(matches!(
            rejection(run(&mut s, 3, switchover("a", Some("zz")))),
            Rejection::UnknownMember { .. }
        ));
        assert_eq!(
            rejection(run(&mut s, 3, switchover("a", Some("a")))),
            Rejection::SameMember
        );
        assert_eq!(s.switchover, None);
        assert!(run(&mut s, 3, switchover("a", Some("b"))).is_applied());
        assert_eq!(s.switchover.as_ref().unwrap().candidate, Some(name("b")));
        assert!(run(&mut s, 4, Command::CancelSwitchover).is_applied());
        assert_eq!(
            rejection(run(&mut s, 4, Command::CancelSwitchover)),
            Rejection::NoSwitchover
        );
    }

    #[test]
    fn hand_over_moves_the_lease_to_the_next_generation_once() {
        let mut s = bootstrapped("a");
        run(&mut s, 3, switchover("a", Some("b")));
        let hand_over = Command::HandOver {
            member: name("a"),
            generation: Generation(1),
            to: name("b"),
        };
        assert!(run(&mut s, 4, hand_over.clone()).is_applied());
        assert_eq!(s.leader_name(), Some(&name("b")));
        assert_eq!(s.generation, Generation(2));
        assert_eq!(s.switchover, None, "the request is done");
        // A replay of the same hand-over, or one by the former primary, changes nothing.
        assert!(matches!(
            rejection(run(&mut s, 5, hand_over)),
            Rejection::NotLeader { .. }
        ));
        assert_eq!(s.leader_name(), Some(&name("b")));
    }

    #[test]
    fn a_lease_that_ends_voids_the_switchover_asked_of_it() {
        let mut s = bootstrapped("a");
        run(&mut s, 3, switchover("a", None));
        run(
            &mut s,
            4,
            Command::ReleaseLease {
                member: name("a"),
                generation: Generation(1),
                last_lsn: None,
            },
        );
        assert_eq!(s.switchover, None);
    }

    #[test]
    fn one_restart_per_member_and_its_outcome_matches_the_request() {
        let mut s = bootstrapped("a");
        let request = |at: u64| crate::state::RestartRequest {
            schedule: None,
            role: None,
            postgres_version: None,
            restart_pending: false,
            timeout_secs: None,
            requested_at: UnixMillis(at),
        };
        let ask = |at| Command::RequestRestart {
            member: name("b"),
            request: request(at),
        };
        assert!(run(&mut s, 3, ask(3)).is_applied());
        assert!(matches!(
            rejection(run(&mut s, 4, ask(4))),
            Rejection::RestartPending { .. }
        ));
        let finish = |at| Command::FinishRestart {
            member: name("b"),
            outcome: crate::state::RestartOutcome {
                requested_at: UnixMillis(at),
                result: crate::state::RestartResult::Restarted,
            },
        };
        // An outcome for another request (a cancelled one) does not end this one.
        assert!(matches!(
            rejection(run(&mut s, 5, finish(99))),
            Rejection::NoRestart { .. }
        ));
        assert!(run(&mut s, 5, finish(3)).is_applied());
        assert!(s.restarts.is_empty());
        assert_eq!(s.restart_outcomes[&name("b")].requested_at, UnixMillis(3));
    }

    #[test]
    fn only_a_standby_of_a_led_cluster_is_reinitialised() {
        let mut s = bootstrapped("a");
        let ask = |member: &str, force| Command::RequestReinit {
            member: name(member),
            request: crate::state::ReinitRequest {
                from_leader: false,
                requested_at: UnixMillis(3),
            },
            force,
        };
        assert!(matches!(
            rejection(run(&mut s, 3, ask("a", false))),
            Rejection::LeaderPresent { .. }
        ));
        assert!(run(&mut s, 3, ask("b", false)).is_applied());
        assert!(matches!(
            rejection(run(&mut s, 3, ask("b", false))),
            Rejection::ReinitPending { .. }
        ));
        assert!(run(&mut s, 3, ask("b", true)).is_applied());
        assert!(run(&mut s, 4, Command::FinishReinit { member: name("b") }).is_applied());
        assert!(s.reinitializations.is_empty());
    }

    fn retire(node_id: u64, addr: &str, member: Option<&str>) -> Command {
        Command::RetireNode {
            node_id,
            raft_addr: addr.into(),
            member: member.map(name),
        }
    }

    fn record_at(addr: &str) -> Box<Member> {
        let mut m = member(1);
        m.raft_addr = Some(addr.into());
        Box::new(m)
    }

    /// One row per behaviour of `RetireNode` and of reports from a retired address: the command,
    /// then whether it applied (a rejection must leave the state exactly as it was).
    #[test]
    fn retiring_a_node_keeps_its_id_and_drops_its_member() {
        let mut s = bootstrapped("a");
        s.members.get_mut(&name("c")).unwrap().raft_addr = Some("10.0.0.3:2222".into());
        let ask = |member: &str| Command::RequestRestart {
            member: name(member),
            request: crate::state::RestartRequest {
                schedule: None,
                role: None,
                postgres_version: None,
                restart_pending: false,
                timeout_secs: None,
                requested_at: UnixMillis(2),
            },
        };
        assert!(run(&mut s, 2, ask("c")).is_applied());
        let report = |member: &str, addr: &str| Command::Report {
            member: name(member),
            record: record_at(addr),
        };
        let rows: Vec<(&str, Command, Result<(), Rejection>)> = vec![
            (
                "the lease holder is never retired",
                retire(1, "10.0.0.1:2222", Some("a")),
                Err(Rejection::LeaderPresent { leader: name("a") }),
            ),
            (
                "a member is retired with its record and its requests",
                retire(3, "10.0.0.3:2222", Some("c")),
                Ok(()),
            ),
            (
                "an id is retired once",
                retire(3, "10.0.0.3:2222", None),
                Err(Rejection::AlreadyRetired { node_id: 3 }),
            ),
            (
                "the removed agent's report does not bring its record back",
                report("c", "10.0.0.3:2222"),
                Err(Rejection::RetiredAddress {
                    raft_addr: "10.0.0.3:2222".into(),
                }),
            ),
            (
                "the name may come back on another address",
                report("c", "10.0.0.9:2222"),
                Ok(()),
            ),
            (
                "a node that never reported is retired without a member",
                retire(7, "10.0.0.7:2222", None),
                Ok(()),
            ),
        ];
        for (what, command, expected) in rows {
            let before = s.clone();
            let outcome = run(&mut s, 5, command);
            match expected {
                Ok(()) => assert_eq!(outcome, Outcome::Applied, "{what}"),
                Err(rejection) => {
                    assert_eq!(outcome, Outcome::Rejected(rejection), "{what}");
                    assert_eq!(s, before, "{what}: a rejection changed the state");
                }
            }
        }
        assert_eq!(s.retired.len(), 2);
        assert_eq!(s.retired[&3].member, Some(name("c")));
        assert_eq!(s.retired[&3].at, UnixMillis(5));
        assert!(s.restarts.is_empty());
        assert_eq!(
            s.members[&name("c")].raft_addr.as_deref(),
            Some("10.0.0.9:2222")
        );
        assert!(s.retired_addr("10.0.0.7:2222").is_some());
        assert!(s.members.contains_key(&name("b")));
    }

    #[test]
    fn a_removed_cluster_keeps_a_tombstone_and_takes_only_reports() {
        let mut s = bootstrapped("a");
        assert!(run(&mut s, 3, Command::RemoveCluster).is_applied());
        assert!(s.removed.is_some() && s.leader.is_none() && s.initialize.is_none());
        assert!(s.members.is_empty());
        assert_eq!(
            rejection(run(
                &mut s,
                4,
                Command::ClaimBootstrap {
                    member: name("b"),
                    dcs_config: serde_json::json!({}),
                }
            )),
            Rejection::ClusterRemoved
        );
        assert!(
            run(
                &mut s,
                5,
                Command::Report {
                    member: name("b"),
                    record: Box::new(member(1)),
                }
            )
            .is_applied()
        );
        assert!(s.initialize.is_none() && s.members.contains_key(&name("b")));
    }
}
