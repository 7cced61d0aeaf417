//! The decisions of a major-version upgrade (`state::upgrade` holds its record and phases):
//! who does what in each phase, what the Raft leader does when an upgrade stalls, and what an
//! operator's request is refused for before anything is written.
//!
//! - [`step`] is each agent's part, taken in `decide` before everything else (an upgrade's
//!   steps must run although the cluster is paused for it, and the upgraded primary's data
//!   directory belongs to a new system, which the system-identifier guard would refuse):
//!   every member checks its host; the primary stops, runs pg_upgrade, commits, starts the new
//!   version and ends the upgrade once every live standby streams from it; each standby sets
//!   its old copy aside and is copied afresh; after a failure before the point of no return, the
//!   primary restores its old data directory.
//! - A copy of the old system found later (a member that was down during the upgrade) is set
//!   aside and copied afresh too ([`step`], without an upgrade in progress).
//! - [`arbitrate`] runs on the Raft leader: checks that never end are given up, and an upgrade
//!   whose primary's agent went silent before the point of no return is rolled back (the
//!   pause then ends, and a primary that is gone is failed over as usual).
//! - [`refusal`] is what the REST API checks before it writes a request.
//!
//! Pure: no I/O, no clock reads; the scenario table is at the end of this file.

use std::time::Duration;

use tokio::time::Instant;

use super::arbiter::{LeaseWatch, lease_duration};
use super::{Action, Decision, Observation, StreamFrom};
use crate::config::DynamicConfig;
use crate::instance::{DataDir, StopMode};
use crate::state::{ClusterState, Command, DbState, ReportedRole, Upgrade, UpgradePhase};
use crate::types::{MemberName, UnixMillis};

/// How long the members have to report their checks (the primary's includes an initdb and
/// `pg_upgrade --check`) before the upgrade is refused.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(180);

/// A standby that has not reported for this long (and is not copying its data) is presumed
/// down: the upgrade does not wait for it, it is copied afresh when it comes back.
pub fn presumed_down_after(ttl: Duration) -> Duration {
    (ttl * 2).max(Duration::from_secs(60))
}

/// The major version of a `server_version_num` (`180006` -> 18).
pub fn major_of(server_version: u32) -> u32 {
    server_version / 10_000
}

/// This agent's part of the upgrade in progress, or the rebuild of an old copy found later;
/// `None` when the ordinary steps of `decide` apply.
pub fn step(o: &Observation<'_>) -> Option<Decision> {
    let Some(upgrade) = &o.cluster.upgrade else {
        return old_copy(o);
    };
    let me = o.me;
    let primary = &upgrade.primary == me;
    let id = upgrade.id;
    let generation = upgrade.generation;
    let running = o.db.state == DbState::Running;
    let to = upgrade.bin_dir.display();
    match &upgrade.phase {
        UpgradePhase::Checking => {
            if !upgrade.members.contains(me) || upgrade.checks.contains_key(me) {
                return None;
            }
            Some(Decision::act(
                vec![Action::CheckUpgrade { id }],
                format!("checking whether this member can be upgraded to the PostgreSQL in {to}"),
            ))
        }
        UpgradePhase::Stopping if primary => {
            let mut actions = Vec::new();
            if running {
                actions.extend([
                    Action::Checkpoint,
                    Action::Stop {
                        mode: StopMode::Fast,
                    },
                ]);
            }
            actions.push(Action::AwaitUpgradeStandbys { id, generation });
            Some(Decision::act(
                actions,
                "upgrading: stopping the primary cleanly and waiting for the standbys to replay \
                 its last record",
            ))
        }
        UpgradePhase::Upgrading if primary => {
            let mut actions = Vec::new();
            if o.db.state != DbState::Stopped {
                actions.push(Action::Stop {
                    mode: StopMode::Fast,
                });
            }
            actions.push(Action::RunUpgrade { id, generation });
            Some(Decision::act(
                actions,
                format!("upgrading: running pg_upgrade --link to the PostgreSQL in {to}"),
            ))
        }
        UpgradePhase::Starting if primary => {
            let (major, _) = o.cluster.binaries.as_ref().map(|b| (b.major, ()))?;
            let upgraded = o.db.server_version.map(major_of) == Some(major);
            if running && upgraded {
                return Some(Decision::act(
                    vec![Action::ReportUpgradeStarted { id, generation }],
                    "upgrading: the new primary runs; the standbys are copied from it next",
                ));
            }
            if o.db.state == DbState::Starting {
                return Some(Decision::idle("waiting for postgres to start"));
            }
            let mut actions = Vec::new();
            if o.db.state != DbState::Stopped {
                actions.push(Action::Stop {
                    mode: StopMode::Fast,
                });
            }
            // No standby runs the new version yet: commits wait for none (strict mode: they
            // block until one streams), and the record claims nothing.
            let names = super::sync::standby_names(
                &super::sync::Copies::default(),
                o.settings.sync.mode,
                o.settings.sync.strict,
            );
            actions.extend([
                Action::SwitchToUpgraded { id },
                Action::SetSyncNames {
                    generation,
                    value: names,
                },
                Action::Start { upstream: None },
                Action::ReportUpgradeStarted { id, generation },
            ]);
            Some(Decision::act(
                actions,
                format!(
                    "upgrading, past the point of no return: starting the primary on the \
                     PostgreSQL in {to}"
                ),
            ))
        }
        UpgradePhase::Rebuilding if primary => {
            if o.db.state == DbState::Starting {
                return Some(Decision::idle("waiting for postgres to start"));
            }
            if !running {
                return Some(Decision::act(
                    vec![Action::Start { upstream: None }],
                    "upgrading: starting the upgraded primary",
                ));
            }
            let waiting = waiting_for(o.cluster, upgrade, o.wall_now, o.settings.ttl);
            if waiting.is_empty() {
                let version = o.cluster.binaries.as_ref().map_or("", |b| &b.version);
                return Some(Decision::act(
                    vec![Action::FinishUpgrade { id }],
                    format!(
                        "the upgrade is done: every member runs PostgreSQL {version} (the \
                         cluster is no longer paused)"
                    ),
                ));
            }
            None
        }
        UpgradePhase::Rebuilding => old_copy(o),
        UpgradePhase::RollingBack { reason } if primary => Some(Decision::act(
            vec![Action::UndoUpgrade { id }],
            format!("rolling the upgrade back ({reason}): restoring the old data directory"),
        )),
        _ => None,
    }
}

/// The members the upgraded primary still waits for before it ends the upgrade: those that do
/// not yet stream on the new system, unless presumed down (they are copied afresh when they
/// come back, by [`step`]).
pub fn waiting_for(
    cluster: &ClusterState,
    upgrade: &Upgrade,
    wall_now: UnixMillis,
    ttl: Duration,
) -> Vec<MemberName> {
    let major = cluster.binaries.as_ref().map(|b| b.major);
    let down_after = presumed_down_after(ttl).as_millis() as u64;
    upgrade
        .members
        .iter()
        .filter(|name| **name != upgrade.primary)
        .filter(|name| {
            let Some(m) = cluster.members.get(*name) else {
                return false;
            };
            let s = &m.status;
            let upgraded = s.role == ReportedRole::Replica
                && s.state == DbState::Running
                && s.replication_state.as_deref() == Some("streaming")
                && s.server_version.map(major_of) == major
                && s.sysid.as_deref() == cluster.sysid();
            let down = s.state != DbState::CreatingReplica
                && wall_now.0.saturating_sub(m.reported_at.0) > down_after;
            !upgraded && !down
        })
        .cloned()
        .collect()
}

/// A standby whose data directory still holds the system from before the last upgrade: set it
/// aside (never deleted) and copy the upgraded leader afresh, as soon as the leader runs.
fn old_copy(o: &Observation<'_>) -> Option<Decision> {
    let binaries = o.cluster.binaries.as_ref()?;
    let old = binaries.previous_sysid.as_deref()?;
    let Some(DataDir::Initialized(cd)) = o.disk else {
        return None;
    };
    if cd.sysid != old || o.cluster.sysid() == Some(old) {
        return None;
    }
    let leader = match o.cluster.leader_name() {
        Some(l) if l != o.me => l,
        _ => {
            return Some(Decision::idle(format!(
                "waiting for a leader to copy from: this data directory holds the cluster as it \
                 was before the upgrade to PostgreSQL {}",
                binaries.version
            )));
        }
    };
    // Ready: it reports running as the primary of the upgraded system (a report from before
    // the switch still names the old one, and copying that would copy the old cluster).
    let leader_ready = o.cluster.members.get(leader).is_some_and(|m| {
        m.status.role == ReportedRole::Primary
            && m.status.state == DbState::Running
            && m.status.sysid.is_some()
            && m.status.sysid.as_deref() == o.cluster.sysid()
    });
    if !leader_ready {
        return Some(Decision::idle(format!(
            "waiting for leader ({leader}) to accept connections before re-creating the replica \
             on PostgreSQL {}",
            binaries.version
        )));
    }
    let mut actions = Vec::new();
    if o.db.state != DbState::Stopped {
        actions.push(Action::Stop {
            mode: StopMode::Fast,
        });
    }
    let from = StreamFrom::member(leader);
    actions.extend([
        Action::SetAsideDataDir,
        Action::Clone { from: from.clone() },
        Action::Start {
            upstream: Some(from),
        },
    ]);
    Some(Decision::act(
        actions,
        format!(
            "re-creating the replica from leader ({leader}) on PostgreSQL {}: this data \
             directory holds the cluster as it was before the upgrade (set aside, not deleted)",
            binaries.version
        ),
    ))
}

/// The Raft leader's part: checks that never end are given up (nothing was changed), and an
/// upgrade whose primary stopped renewing its lease before the point of no return is rolled
/// back. Runs even while the cluster is paused for the upgrade; afterwards, past the point of
/// no return, the upgrade waits for its primary's agent (the new version may hold writes that
/// exist nowhere else).
pub fn arbitrate(
    cluster: &ClusterState,
    ttl: Duration,
    watch: &LeaseWatch,
    now: Instant,
    wall_now: UnixMillis,
) -> Option<(Command, String)> {
    let upgrade = cluster.upgrade.as_ref()?;
    if !upgrade.phase.before_point_of_no_return() {
        return None;
    }
    let abandon = |reason: String| {
        Some((
            Command::AbandonUpgrade {
                id: upgrade.id,
                reason: reason.clone(),
            },
            format!("giving the upgrade up: {reason}"),
        ))
    };
    match &cluster.leader {
        Some(l) if l.member == upgrade.primary && l.generation == upgrade.generation => {
            let silent = now.saturating_duration_since(watch.since);
            if watch.seen == Some((l.generation, l.renewals)) && silent >= lease_duration(l, ttl) {
                return abandon(format!(
                    "the agent of the primary ({}) stopped renewing its lease {:.1}s ago",
                    l.member,
                    silent.as_secs_f64()
                ));
            }
        }
        _ => {
            return abandon(format!(
                "{} no longer holds the lease of generation {}",
                upgrade.primary, upgrade.generation
            ));
        }
    }
    let waited = wall_now.0.saturating_sub(upgrade.phase_since.0);
    if upgrade.phase == UpgradePhase::Checking && waited >= CHECK_DEADLINE.as_millis() as u64 {
        let missing: Vec<&str> = upgrade
            .members
            .iter()
            .filter(|m| !upgrade.checks.contains_key(*m))
            .map(MemberName::as_str)
            .collect();
        return abandon(format!(
            "no check report from {} within {}s",
            missing.join(", "),
            CHECK_DEADLINE.as_secs()
        ));
    }
    None
}

/// Why an upgrade to `bin_dir` must not start now, from the replicated state alone (each member
/// then checks its own host); `None` when it may be asked for.
pub fn refusal(
    cluster: &ClusterState,
    dynamic: &DynamicConfig,
    wall_now: UnixMillis,
) -> Option<String> {
    if let Some(upgrade) = &cluster.upgrade {
        return Some(format!(
            "an upgrade to {} is already in progress ({})",
            upgrade.bin_dir.display(),
            upgrade.phase.name()
        ));
    }
    let Some(leader) = cluster.leader_name() else {
        return Some("the cluster has no leader".into());
    };
    if dynamic.pause {
        return Some("the cluster is paused; resume it first".into());
    }
    if dynamic.standby_cluster.is_some() {
        return Some(
            "a standby cluster runs the version of the cluster it replicates; upgrade that one"
                .into(),
        );
    }
    if cluster.switchover.is_some() {
        return Some("a switchover is pending".into());
    }
    let fresh_ms = 2 * dynamic.ttl.max(dynamic.loop_wait).as_millis() as u64;
    for (name, m) in &cluster.members {
        if m.conn_url.is_none() {
            continue;
        }
        let s = &m.status;
        if wall_now.0.saturating_sub(m.reported_at.0) > fresh_ms {
            return Some(format!("{name} has not reported for {}s", fresh_ms / 1000));
        }
        if name == leader {
            if s.role != ReportedRole::Primary || s.state != DbState::Running {
                return Some(format!("the leader {name} does not run as a primary"));
            }
        } else if s.role != ReportedRole::Replica
            || s.state != DbState::Running
            || s.replication_state.as_deref() != Some("streaming")
        {
            return Some(format!("{name} is not a streaming standby"));
        }
    }
    None
}

#[cfg(test)]
#[path = "upgrade_scenarios.rs"]
mod scenarios;
