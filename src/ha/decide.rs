//! `decide`: the agent's own step, in the order Patroni's `run_cycle` takes them — witness,
//! system-id guard, bootstrap, then the lease holder, a follower, or a member of a leaderless
//! cluster. The reason sentences use Patroni's wording where Patroni has one.

use super::divergence::{Divergence, standby_divergence};
use super::{Action, Decision, LeaseView, Observation, StreamFrom, operator};
use crate::config::StandbyCluster;
use crate::instance::{ClusterStateOnDisk, ControlData, DataDir, DbRole, StopMode};
use crate::state::{DbState, FailoverReport, Leader, ReportedRole};
use crate::types::MemberName;

pub fn decide(o: &Observation<'_>) -> Decision {
    let me = o.me;
    if o.settings.witness {
        return Decision::idle(format!("no action. I am ({me}), a witness"));
    }
    if o.cluster.removed.is_some() {
        return Decision::idle(
            "the cluster was removed (tribunectl remove): not managing the database; stop this \
             agent, and clear raft.data_dir before starting a new cluster",
        );
    }
    // A major-version upgrade's steps run whatever else holds (the cluster is paused for it,
    // and the upgraded data directory is a new system), and so does the rebuild of a copy of
    // the system from before one.
    if let Some(upgrade) = super::upgrade::step(o) {
        return upgrade;
    }
    let Some(disk) = o.disk else {
        return Decision::idle("waiting: the data directory could not be read");
    };
    if let (Some(expected), DataDir::Initialized(cd)) = (o.cluster.sysid(), disk)
        && cd.sysid != expected
    {
        return Decision::idle(format!(
            "system ID mismatch, node {me} belongs to a different cluster: {} != {expected}",
            cd.sysid
        ));
    }
    let running_primary = is_running(o) && o.db.role == Some(DbRole::Primary);

    let Some(init) = &o.cluster.initialize else {
        if running_primary {
            return Decision::act(
                vec![Action::Stop {
                    mode: StopMode::Immediate,
                }],
                "demoting self because the cluster has no leader and I do not hold the lease",
            );
        }
        if o.settings.nofailover {
            return Decision::idle("waiting for a member that may bootstrap the cluster");
        }
        return Decision::act(
            vec![Action::ClaimBootstrap],
            "trying to bootstrap a new cluster",
        );
    };

    if init.sysid.is_none() {
        if &init.by != me {
            return Decision::idle(format!("waiting for leader ({}) to bootstrap", init.by));
        }
        let generation = o.cluster.generation;
        if !o.lease.valid_for(generation, o.now) {
            return Decision::idle("waiting to confirm the leader lease before bootstrapping");
        }
        if let Some(remote) = &o.settings.standby_cluster {
            return bootstrap_standby_cluster(o, remote, disk, running_primary);
        }
        return match disk {
            DataDir::Empty => Decision::act(vec![Action::Bootstrap], "bootstrapping a new cluster"),
            DataDir::Initialized(_) if running_primary => {
                Decision::act(vec![Action::FinishBootstrap], "initialized a new cluster")
            }
            DataDir::Initialized(_) => Decision::act(
                vec![Action::Start { upstream: None }, Action::FinishBootstrap],
                "starting the bootstrapped primary",
            ),
        };
    }

    match &o.cluster.leader {
        Some(leader) if &leader.member == me => lease_holder(o, leader, disk, running_primary),
        Some(leader) => follower(o, leader, disk, running_primary),
        None => leaderless(o, disk, running_primary),
    }
}

fn is_running(o: &Observation<'_>) -> bool {
    o.db.state == DbState::Running
}

/// The bootstrap claimer of a standby cluster runs no initdb: it copies the remote primary and
/// starts as its standby; the cluster takes the remote's system identifier.
fn bootstrap_standby_cluster(
    o: &Observation<'_>,
    remote: &StandbyCluster,
    disk: &DataDir,
    running_primary: bool,
) -> Decision {
    let source = StreamFrom::Remote(remote.clone());
    match disk {
        DataDir::Empty if !remote.streams() => Decision::idle(
            "cannot bootstrap the standby cluster: standby_cluster names no host or port of a \
             remote primary to take a base backup from",
        ),
        DataDir::Empty => Decision::act(
            vec![
                Action::Clone {
                    from: source.clone(),
                },
                Action::Start {
                    upstream: Some(source),
                },
                Action::FinishBootstrap,
            ],
            format!(
                "bootstrapping a standby cluster: creating a replica from the remote primary ({})",
                remote.address()
            ),
        ),
        DataDir::Initialized(_) if running_primary => Decision::idle(
            "cannot bootstrap the standby cluster: the data directory holds a primary, not a \
             copy of the remote; move it aside",
        ),
        DataDir::Initialized(_) if is_running(o) => Decision::act(
            vec![Action::FinishBootstrap],
            "initialized a standby cluster",
        ),
        DataDir::Initialized(_) if o.db.state == DbState::Starting => {
            Decision::idle("waiting for postgres to start")
        }
        DataDir::Initialized(_) => Decision::act(
            vec![
                Action::Start {
                    upstream: Some(source),
                },
                Action::FinishBootstrap,
            ],
            "starting the standby leader of the new standby cluster",
        ),
    }
}

/// The lease holder of a standby cluster, its database running as a standby: it replicates
/// from the remote and never promotes.
fn standby_leader(
    o: &Observation<'_>,
    generation: crate::types::Generation,
    remote: &StandbyCluster,
) -> Decision {
    let me = o.me;
    if let Some(switchover) = operator::standby_leader_switchover(o, generation) {
        return switchover;
    }
    let source = StreamFrom::Remote(remote.clone());
    if o.memory.following.as_ref() != Some(&source) {
        return Decision::act(
            vec![
                Action::Follow {
                    upstream: source.clone(),
                },
                Action::SyncSlots,
            ],
            format!("changing primary_conninfo to follow {source} as the standby leader"),
        );
    }
    Decision::act(
        vec![Action::SyncSlots],
        format!("no action. I am ({me}), the standby leader with the lock"),
    )
}

/// This member holds the leader record of the current generation.
fn lease_holder(
    o: &Observation<'_>,
    leader: &Leader,
    disk: &DataDir,
    running_primary: bool,
) -> Decision {
    let me = o.me;
    let generation = leader.generation;
    if o.lease.lapsed_for(generation, o.now) {
        if running_primary {
            return Decision::act(
                vec![Action::Stop {
                    mode: StopMode::Immediate,
                }],
                "demoted self because the leader lease could not be renewed in time",
            );
        }
        return Decision::idle("the leader lease lapsed; waiting for it to be renewed or expire");
    }
    if o.lease == LeaseView::Unconfirmed || !o.lease.valid_for(generation, o.now) {
        return Decision::idle(format!(
            "waiting to confirm the leader lease of generation {generation}"
        ));
    }
    if matches!(disk, DataDir::Empty) {
        return Decision::act(
            vec![Action::ReleaseLease { generation }],
            "removed leader lock because the data directory is empty",
        );
    }
    if let Some((_, why)) = o
        .memory
        .promotion_vetoed
        .as_ref()
        .filter(|(vetoed, _)| *vetoed == generation)
    {
        return Decision::act(
            vec![Action::DeclinePromotion {
                generation,
                reason: why.clone(),
            }],
            format!(
                "removed leader lock because the pre_promote script refused the promotion: {why}"
            ),
        );
    }
    let remote = o.settings.standby_cluster.as_ref();
    // Whom the lease holder's own database streams from: nobody (a primary), or the remote.
    let own_upstream = remote.map(|r| StreamFrom::Remote(r.clone()));
    if o.db.state != DbState::Starting
        && let Some(restart) =
            operator::restart(o, operator::restart_role(o, true), own_upstream.clone())
    {
        return restart;
    }
    if is_running(o)
        && let Some(remote) = remote
    {
        return match o.db.role {
            Some(DbRole::Primary) => Decision::act(
                vec![Action::SyncSlots],
                format!(
                    "no action. I am ({me}), the leader with the lock: standby_cluster is set, \
                     but a running primary is never demoted to a standby leader in place"
                ),
            ),
            Some(DbRole::Standby) => standby_leader(o, generation, remote),
            None => Decision::idle("waiting for postgres to report its role"),
        };
    }
    if is_running(o) {
        return match o.db.role {
            Some(DbRole::Primary) => {
                if let Some(switchover) = operator::switchover(o, generation) {
                    return switchover;
                }
                // The timeline this primary switched onto is recorded once (Patroni's /history).
                if let Some(timeline) = o.db.timeline.filter(|t| {
                    t.0 > 1 && !o.cluster.history.iter().any(|h| h.timeline.0 + 1 == t.0)
                }) {
                    return Decision::act(
                        vec![Action::RecordHistory { timeline }, Action::SyncSlots],
                        format!("recording the switch to timeline {timeline} in the history"),
                    );
                }
                match super::sync::plan(
                    me,
                    generation,
                    o.cluster,
                    o.db,
                    &o.memory.silent_standbys(o.now, o.settings.ttl),
                    o.memory.sync_names_applied.as_ref(),
                    &o.settings.sync,
                ) {
                    Some((action, reason)) => {
                        Decision::act(vec![action, Action::SyncSlots], reason)
                    }
                    None => Decision::act(
                        vec![Action::SyncSlots],
                        format!("no action. I am ({me}), the leader with the lock"),
                    ),
                }
            }
            Some(DbRole::Standby) if matches!(o.memory.following, Some(StreamFrom::Remote(_))) => {
                Decision::act(
                    promotion(o, generation),
                    "promoting the standby leader to primary: standby_cluster was removed, the \
                     cluster is no longer a standby cluster",
                )
            }
            Some(DbRole::Standby) => Decision::act(
                promotion(o, generation),
                "promoted self to leader by acquiring session lock",
            ),
            None => Decision::idle("waiting for postgres to report its role"),
        };
    }
    if o.db.state == DbState::Starting {
        return Decision::idle("waiting for postgres to start");
    }
    if o.settings.paused {
        return Decision::idle(format!(
            "PAUSE: no action. I am ({me}), the leader with the lock; postgres is not running"
        ));
    }
    let what = if remote.is_some() {
        "standby leader"
    } else {
        "primary"
    };
    let down_for = o
        .memory
        .primary_down_since
        .map(|since| o.now.saturating_duration_since(since))
        .unwrap_or_default();
    if down_for >= o.settings.primary_start_timeout {
        return Decision::act(
            vec![
                Action::Stop {
                    mode: StopMode::Immediate,
                },
                Action::ReleaseLease { generation },
            ],
            "removed leader key after trying and failing to start postgres",
        );
    }
    // A primary starts waiting for the standbys the record counts on (found by the simulation,
    // seed 3942348: started with none after a crash of agent and database, in strict mode).
    let mut actions = Vec::new();
    if remote.is_none()
        && let Some(value) = super::sync::before_start(me, generation, o.cluster, &o.settings.sync)
    {
        actions.push(Action::SetSyncNames { generation, value });
    }
    actions.push(Action::Start {
        upstream: own_upstream,
    });
    Decision::act(actions, format!("starting {what} after failure"))
}

/// Promote the lease holder's standby. In strict synchronous mode commits are blocked from the
/// promotion on (`*`, loaded by the standby before it is promoted): none may be acknowledged
/// before a standby has it, not even in the moment before the synchronous standbys are named
/// (names written after the promotion left that moment open; found by the simulation, seed
/// 29314 of the unseeded run). Then a checkpoint, so that the new timeline is in pg_control for
/// the members that rewind against this primary (Patroni does the same after promote).
fn promotion(o: &Observation<'_>, generation: crate::types::Generation) -> Vec<Action> {
    let sync = &o.settings.sync;
    let mut actions = Vec::new();
    if o.settings.pre_promote {
        actions.push(Action::PrePromote { generation });
    }
    if sync.mode != super::sync::SyncMode::Off && sync.strict {
        actions.push(Action::SetSyncNames {
            generation,
            value: super::sync::before_promotion(o.me, o.cluster, sync),
        });
    }
    actions.push(Action::Promote { generation });
    actions.extend([Action::Checkpoint, Action::SyncSlots]);
    actions
}

/// Another member holds the lease: follow it.
fn follower(
    o: &Observation<'_>,
    leader: &Leader,
    disk: &DataDir,
    running_primary: bool,
) -> Decision {
    let me = o.me;
    let name = &leader.member;
    if running_primary {
        return Decision::act(
            vec![Action::Stop {
                mode: StopMode::Immediate,
            }],
            format!("demoting self because I do not hold the leader lock ({name} does)"),
        );
    }
    if let Some(reinit) = operator::reinitialize(o) {
        return reinit;
    }
    let leader_record = o.cluster.members.get(name);
    // A standby cluster's members cascade from its standby leader as from a primary.
    let leader_ready = leader_record.is_some_and(|m| {
        matches!(
            m.status.role,
            ReportedRole::Primary | ReportedRole::StandbyLeader
        ) && m.status.state == DbState::Running
    });
    // Whom this standby streams from (the leader, or its `replicatefrom` member) and whom a
    // base backup is taken from (a `clonefrom` member, or the leader).
    let upstream_name = super::upstream::stream_source(
        o.cluster,
        me,
        name,
        o.settings.replicatefrom.as_ref(),
        o.wall_now,
        o.settings.ttl,
    );
    let upstream = StreamFrom::member(upstream_name);
    let clone_name = if o.memory.clone_from_leader {
        name.clone()
    } else {
        super::upstream::clone_source(o.cluster, me, name, o.wall_now, o.settings.ttl)
    };
    let copy_from = if &clone_name == name {
        format!("leader ({name})")
    } else {
        format!("member ({clone_name}), tagged clonefrom")
    };
    let clone = Action::Clone {
        from: StreamFrom::Member(clone_name.clone()),
    };
    let cd = match disk {
        DataDir::Empty if !leader_ready && o.settings.replica_without_leader => {
            return Decision::act(
                vec![
                    Action::CloneWithoutLeader {
                        from: StreamFrom::member(name),
                    },
                    Action::Start {
                        upstream: Some(upstream),
                    },
                ],
                format!(
                    "creating replica by a no_leader method while leader ({name}) does not \
                     accept connections"
                ),
            );
        }
        DataDir::Empty if !leader_ready => {
            return Decision::idle(format!(
                "waiting for leader ({name}) to accept connections before creating a replica"
            ));
        }
        DataDir::Empty => {
            return Decision::act(
                vec![
                    clone,
                    Action::Start {
                        upstream: Some(upstream),
                    },
                ],
                format!("creating replica from {copy_from}"),
            );
        }
        DataDir::Initialized(cd) => cd,
    };
    // Only a running standby is restarted: a stopped one is started by the path below, which
    // first rewinds a former primary (a restart would start its diverged data as a standby
    // that can never stream); the request waits until it runs.
    if is_running(o)
        && let Some(restart) =
            operator::restart(o, operator::restart_role(o, false), Some(upstream.clone()))
    {
        return restart;
    }

    if is_running(o) {
        if o.memory.following.as_ref() != Some(&upstream) {
            let reason = if upstream_name == name {
                format!("changing primary_conninfo to follow new leader ({name})")
            } else {
                format!(
                    "changing primary_conninfo to follow ({upstream_name}) as its replicatefrom \
                     tag says"
                )
            };
            return Decision::act(vec![Action::Follow { upstream }], reason);
        }
        if let Some(rejoin) = diverged_replica(o, name, leader_ready, &upstream, &clone, &copy_from)
        {
            return rejoin;
        }
        let reason = if upstream_name != name {
            format!(
                "no action. I am ({me}), a secondary, and following ({upstream_name}) as \
                 replicatefrom says; the leader is ({name})"
            )
        } else {
            format!("no action. I am ({me}), a secondary, and following a leader ({name})")
        };
        // Permanent slots are kept on standbys too, so that they survive a failover, and
        // members cascading from this standby stream through a slot here.
        return Decision::act(vec![Action::SyncSlots], reason);
    }
    if o.db.state == DbState::Starting {
        return Decision::idle("waiting for postgres to start");
    }
    if o.settings.paused && !o.memory.handed_over {
        return Decision::idle(format!(
            "PAUSE: no action. I am ({me}), a secondary, and postgres is not running"
        ));
    }
    if let Some(why) = &o.memory.held_stopped {
        return Decision::idle(why.clone());
    }

    // Stopped. A former primary (or a copy that failed to rewind) must not start as it is.
    let was_primary = !cd.standby_configured
        && matches!(
            cd.cluster_state,
            ClusterStateOnDisk::ShutDown | ClusterStateOnDisk::InProduction
        );
    let reclone = |why: String| {
        if !leader_ready {
            return Decision::idle(format!(
                "waiting for leader ({name}) to accept connections before re-creating the replica"
            ));
        }
        Decision::act(
            vec![
                Action::SetAsideDataDir,
                clone.clone(),
                Action::Start {
                    upstream: Some(upstream.clone()),
                },
            ],
            format!("re-creating the replica from {copy_from} {why}"),
        )
    };
    if o.memory.rewind_failed {
        // Patroni removes the data after a failed rewind when either setting allows it.
        if o.settings.remove_data_on_rewind_failure || o.settings.remove_data_on_diverged_timelines
        {
            return reclone("because it could not be rewound".to_owned());
        }
        // The data stays: a rewind that failed to reach its source changed nothing and may
        // succeed once it does (found by reading the fake's failures: a partition must not
        // strand a member for good); the operator can clone it afresh instead.
        if !leader_ready {
            return Decision::idle(format!(
                "waiting for leader ({name}) to accept connections before rewinding again"
            ));
        }
        return Decision::act(
            vec![
                Action::Rewind { from: name.clone() },
                Action::Start {
                    upstream: Some(upstream),
                },
            ],
            format!(
                "pg_rewind from {name} failed and remove_data_directory_on_rewind_failure is \
                 off: keeping the data directory and running pg_rewind again; reinitialize this \
                 member (tribunectl reinit) to clone it afresh"
            ),
        );
    }
    if was_primary && !o.settings.use_pg_rewind {
        if stopped_before_fork(o, name, cd) {
            return Decision::act(
                vec![Action::Start {
                    upstream: Some(upstream),
                }],
                format!(
                    "starting as a secondary of leader ({name}): this former primary stopped \
                     cleanly before the leader's timeline forked off"
                ),
            );
        }
        if o.settings.remove_data_on_diverged_timelines {
            return reclone(
                "because this former primary may have diverged and use_pg_rewind is off".to_owned(),
            );
        }
        // Patroni keeps trying to follow: started as a standby, a divergence shows once it
        // runs (`diverged_replica`), where it is stopped and held for an operator.
        return Decision::act(
            vec![Action::Start {
                upstream: Some(upstream),
            }],
            format!(
                "starting the former primary as a secondary of leader ({name}): use_pg_rewind \
                 and remove_data_directory_on_diverged_timelines are off"
            ),
        );
    }
    if was_primary {
        if !leader_ready {
            return Decision::idle(format!(
                "waiting for leader ({name}) to accept connections before rewinding"
            ));
        }
        return Decision::act(
            vec![
                Action::Rewind { from: name.clone() },
                Action::Start {
                    upstream: Some(upstream),
                },
            ],
            format!("running pg_rewind from {name}"),
        );
    }
    let reason = if upstream_name == name {
        format!("starting as a secondary of leader ({name})")
    } else {
        format!("starting as a secondary of ({upstream_name}) as replicatefrom says")
    };
    Decision::act(
        vec![Action::Start {
            upstream: Some(upstream),
        }],
        reason,
    )
}

/// Whether a stopped former primary shut down cleanly on a timeline older than the leader's,
/// at or before the point where the leader's timeline left it: its shutdown checkpoint is its
/// last record, so it holds nothing the leader lacks and can follow without a rewind (a
/// switchover's former primary). A crash leaves WAL after the checkpoint: never clean.
fn stopped_before_fork(o: &Observation<'_>, leader: &MemberName, cd: &ControlData) -> bool {
    let Some(leader_timeline) = o
        .cluster
        .members
        .get(leader)
        .and_then(|m| m.status.timeline)
    else {
        return false;
    };
    cd.cluster_state == ClusterStateOnDisk::ShutDown
        && cd.timeline < leader_timeline
        && cd.checkpoint.is_some_and(|at| {
            standby_divergence((cd.timeline, at), leader_timeline, &o.cluster.history)
                == Divergence::Follows
        })
}

/// A running replica that cannot stream from the leader because it replayed WAL past the point
/// where the leader's timeline forked off its own: stopped cleanly and rewound, as Patroni
/// does; when rewind is off, cloned again if `remove_data_directory_on_diverged_timelines`
/// allows it, otherwise stopped and held for an operator. Left alone in pause, or while the
/// leader is not running (its timeline would not be known), or when the history does not say
/// where the replica's timeline ended.
fn diverged_replica(
    o: &Observation<'_>,
    leader: &MemberName,
    leader_ready: bool,
    upstream: &StreamFrom,
    clone: &Action,
    copy_from: &str,
) -> Option<Decision> {
    if o.settings.paused || !leader_ready || o.db.streaming || o.db.role != Some(DbRole::Standby) {
        return None;
    }
    let replay = o.db.replay_position?;
    let leader_timeline = o.cluster.members.get(leader)?.status.timeline?;
    let Divergence::Diverged {
        timeline,
        fork,
        position,
    } = standby_divergence(replay, leader_timeline, &o.cluster.history)
    else {
        return None;
    };
    let stop = Action::Stop {
        mode: StopMode::Fast,
    };
    let start = Action::Start {
        upstream: Some(upstream.clone()),
    };
    let why = format!(
        "this replica replayed timeline {timeline} up to {position}, past {fork} where the \
         timeline of leader ({leader}) forked off it"
    );
    Some(if o.settings.use_pg_rewind {
        Decision::act(
            vec![
                stop,
                Action::Rewind {
                    from: leader.clone(),
                },
                start,
            ],
            format!("running pg_rewind from {leader}: {why}"),
        )
    } else if o.settings.remove_data_on_diverged_timelines {
        Decision::act(
            vec![stop, Action::SetAsideDataDir, clone.clone(), start],
            format!("re-creating the replica from {copy_from}: {why}"),
        )
    } else {
        let reason = format!(
            "not following leader ({leader}): {why}; use_pg_rewind and \
             remove_data_directory_on_diverged_timelines are off, so postgres stays stopped \
             until this member is reinitialized (tribunectl reinit)"
        );
        Decision::act(
            vec![
                stop,
                Action::HoldStopped {
                    reason: reason.clone(),
                },
            ],
            reason,
        )
    })
}

/// Nobody holds the lease: a failed primary is fenced, standbys report how far they got, and
/// the Raft leader's arbiter promotes the best of them.
fn leaderless(o: &Observation<'_>, disk: &DataDir, running_primary: bool) -> Decision {
    if running_primary {
        return Decision::act(
            vec![Action::Stop {
                mode: StopMode::Immediate,
            }],
            "demoted self because the leader lease expired",
        );
    }
    let Some(intent) = &o.cluster.failover else {
        return Decision::idle("waiting for a leader");
    };
    // A `nofailover` member reports too: in synchronous mode its position is a vote that
    // tells where acknowledged commits are, though it is never promoted itself.
    if intent.former_leader.as_ref() == Some(o.me) {
        return Decision::idle("waiting for a new leader: I was the leader whose lease ended");
    }
    // After a refused promotion the member that refused stays out of the race for `ttl`, as
    // Patroni's does; then it may report and be chosen again.
    let declined_by_me = intent.declined.as_ref().filter(|d| &d.member == o.me);
    if let Some(declined) = declined_by_me
        && !super::arbiter::decline_backed_off(intent, o.settings.ttl, o.wall_now)
    {
        return Decision::idle(format!(
            "not racing for leadership for ttl: my pre_promote script refused the promotion ({})",
            declined.reason
        ));
    }
    if !is_running(o) {
        // A stopped standby may hold the acknowledged commits the failover waits for (its
        // report may be required): it starts in recovery, still pointed at the former primary
        // until phase 1 detaches it, so that it can report. Found by the simulation (seed 57).
        let former = intent.former_leader.as_ref().filter(|f| {
            o.cluster
                .members
                .get(*f)
                .is_some_and(|m| m.conn_url.is_some())
        });
        if let (DataDir::Initialized(cd), Some(former)) = (disk, former)
            && cd.standby_configured
            && o.db.state != DbState::Starting
            && !o.settings.paused
            && o.memory.held_stopped.is_none()
        {
            return Decision::act(
                vec![Action::Start {
                    upstream: Some(StreamFrom::member(former)),
                }],
                "starting my standby to report its WAL position for the failover",
            );
        }
        return Decision::idle("waiting for a new leader: my database is not running");
    }
    let position = [o.db.received_lsn, o.db.replayed_lsn, o.db.wal_position]
        .into_iter()
        .flatten()
        .max();
    let Some(lsn) = position else {
        return Decision::idle("waiting for a new leader: my WAL position is unknown");
    };
    let report = FailoverReport {
        lsn,
        timeline: o.db.timeline,
    };
    if intent.reports.get(o.me) == Some(&report) {
        let declined = intent
            .declined
            .as_ref()
            .filter(|d| &d.member != o.me)
            .map(|d| {
                format!(
                    " ({} declined the promotion: pre_promote {})",
                    d.member, d.reason
                )
            })
            .unwrap_or_default();
        return Decision::idle(format!(
            "reported WAL position {lsn}; waiting for the failover decision{declined}"
        ));
    }
    let mut actions = Vec::new();
    // The former primary's agent may be frozen with its database still writable: whoever can
    // reach that database fences it before anyone is promoted (DESIGN section 4).
    let fence = intent.former_leader.as_ref().filter(|former| {
        o.memory.fenced_after != Some(intent.ended)
            && o.cluster
                .members
                .get(*former)
                .is_some_and(|m| m.conn_url.is_some())
    });
    if let Some(former) = fence {
        actions.push(Action::FencePeer {
            member: former.clone(),
            ended: intent.ended,
        });
    }
    // Phase 1 (DESIGN section 5): stop streaming from the old primary, then report.
    if o.memory.detached_after != Some(intent.ended) {
        actions.push(Action::StopStreaming {
            ended: intent.ended,
        });
    }
    actions.push(Action::AckFailover {
        ended: intent.ended,
    });
    Decision::act(
        actions,
        format!(
            "reporting WAL position {lsn} for the failover after generation {}",
            intent.ended
        ),
    )
}
