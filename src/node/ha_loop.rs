//! The agent loop (DESIGN section 6): observe -> `ha::decide` -> execute -> report, every
//! `loop_wait` and at once when the leader, the failover intent, the bootstrap record or an
//! operator's request changes.
//!
//! Execution is sequential: each action ends `Done`, `Failed` or `Unknown` (the executor says
//! which), `Memory::remember` takes the outcome in, and the first action that does not end
//! `Done` ends the tick. After an `Unknown` the next tick comes at once, so the next action is
//! decided on a fresh observation.
//!
//! Only a Raft voter decides. A node not (yet) in the Raft membership idles with a reason
//! saying what it waits for ([`standing_reason`]): it never claims a bootstrap of its own, and
//! a learner only reports its record, so that operators see it by name while it is added.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::counters::Counters;
use super::executor::{Executor, Handles};
use crate::callbacks::{CallbackRole, CallbackTracker};
use crate::config::{Config, DynamicConfig, ReplicaMethod, SynchronousMode};
use crate::ha::sync::{SyncMode, SyncSettings};
use crate::ha::{ActionOutcome, HaSettings, Memory, Observation, decide};
use crate::instance::{DataDir, use_pg_rewind};
use crate::node::report::{member_record, worth_reporting};
use crate::node::view::LocalView;
use crate::raft::{JoinState, Standing};
use crate::state::{ClusterState, Command};
use crate::types::MemberName;

/// How soon the loop looks again after an action whose outcome is unknown.
const AFTER_UNKNOWN: Duration = Duration::from_millis(100);

pub struct HaLoop {
    h: Handles,
    executor: Executor,
    memory: Memory,
    last_reason: String,
    /// Which callback each observation and action calls for.
    callbacks: CallbackTracker,
}

/// The synchronous replication settings `decide` works with.
fn sync_settings(dynamic: &DynamicConfig) -> SyncSettings {
    SyncSettings {
        mode: match dynamic.synchronous_mode {
            SynchronousMode::Off => SyncMode::Off,
            SynchronousMode::On => SyncMode::On,
            SynchronousMode::Quorum => SyncMode::Quorum,
        },
        strict: dynamic.synchronous_mode_strict,
        node_count: dynamic.synchronous_node_count,
        maximum_lag_on_syncnode: dynamic.maximum_lag_on_syncnode,
        site_survival: dynamic.synchronous_site_survival,
    }
}

/// Why an agent whose node is not a Raft voter decides nothing, and what the operator may do.
fn standing_reason(standing: Standing, me: &MemberName, raft_addr: &str) -> String {
    match standing {
        Standing::Voter => format!("{me} is a Raft voter"),
        Standing::Learner => "catching up with the Raft log as a learner: the Raft leader makes \
             this node a voter once it has caught up"
            .to_owned(),
        Standing::Joining(JoinState::AwaitingAdmission) => format!(
            "waiting to be added to the Raft cluster: run tribunectl members add {me} {raft_addr} \
             on a member"
        ),
        Standing::Joining(JoinState::AwaitingPeers) => "waiting for a majority of the Raft \
             partners (raft.partner_addrs) to answer before initializing a new Raft cluster"
            .to_owned(),
        Standing::Joining(JoinState::AwaitingLeader | JoinState::Initialized) => {
            "waiting for the Raft leader to replicate its log to this node".to_owned()
        }
        Standing::Outside => format!(
            "this node is not in the Raft membership it has replicated so far: it catches up if \
             a member is adding it; otherwise run tribunectl members add {me} {raft_addr} on a \
             member"
        ),
        Standing::Removed => format!(
            "this node was removed from the Raft cluster: stop this agent; its node id is retired, \
             so a new agent needs another Raft address than {raft_addr}"
        ),
    }
}

/// The role a callback names for the database as observed: `None` when it does not run.
fn callback_role(
    me: &MemberName,
    cluster: &ClusterState,
    dynamic: &DynamicConfig,
    status: &crate::instance::LocalStatus,
) -> Option<CallbackRole> {
    if status.state != crate::state::DbState::Running {
        return None;
    }
    Some(match status.role? {
        crate::instance::DbRole::Primary => CallbackRole::Primary,
        crate::instance::DbRole::Standby
            if dynamic.standby_cluster.is_some() && cluster.leader_name() == Some(me) =>
        {
            CallbackRole::StandbyLeader
        }
        crate::instance::DbRole::Standby => CallbackRole::Replica,
    })
}

/// The parts of the cluster state whose change should wake the loop at once.
fn wake_key(s: &ClusterState) -> impl PartialEq + use<> {
    (
        s.leader.as_ref().map(|l| (l.member.clone(), l.generation)),
        s.failover.as_ref().map(|f| (f.ended, f.reports.len())),
        s.initialize.clone(),
        // Operators' requests are acted on at once.
        (
            s.switchover.clone(),
            s.restarts.clone(),
            s.reinitializations.clone(),
        ),
        // So is each step of an upgrade.
        s.upgrade
            .as_ref()
            .map(|u| (u.id, u.phase.clone(), u.checks.len())),
    )
}

impl HaLoop {
    pub fn new(handles: Handles, counters: Counters) -> Self {
        Self {
            executor: Executor::new(handles.clone(), counters),
            h: handles,
            memory: Memory::default(),
            last_reason: String::new(),
            callbacks: CallbackTracker::default(),
        }
    }

    fn local_config(&self) -> Arc<Config> {
        self.h.config.borrow().clone()
    }

    fn dynamic(&self, cluster: &ClusterState) -> DynamicConfig {
        cluster
            .dynamic_or(&self.h.config.borrow().bootstrap.dynamic)
            .clone()
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut states = self.h.raft.subscribe();
        let mut lease = self.h.lease.clone();
        let mut raft_status = self.h.raft.status();
        loop {
            let cluster = self.h.raft.state();
            let key = wake_key(&cluster);
            let dynamic = self.dynamic(&cluster);
            let standing = self.h.raft.standing();
            let settled = match standing {
                Standing::Voter => self.tick(&cluster, &dynamic).await,
                other => {
                    self.stand_aside(other, &dynamic).await;
                    true
                }
            };
            let wait = if settled {
                dynamic.loop_wait
            } else {
                AFTER_UNKNOWN
            };
            let deadline = tokio::time::sleep(wait);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = &mut deadline => break,
                    r = raft_status.changed() => {
                        if r.is_err() { return; }
                        // Added, promoted or removed: act on it at once.
                        if self.h.raft.standing() != standing { break; }
                    }
                    r = states.changed() => {
                        if r.is_err() { return; }
                        if wake_key(&states.borrow_and_update()) != key { break; }
                    }
                    r = lease.changed() => {
                        if r.is_err() { return; }
                        // A lease newly held or lost is worth acting on at once.
                        let _ = lease.borrow_and_update();
                        break;
                    }
                }
            }
        }
    }

    /// Not a voter: say why nothing is decided, keep the view fresh, and as a learner report.
    async fn stand_aside(&mut self, standing: Standing, dynamic: &DynamicConfig) {
        let reason = standing_reason(standing, &self.h.me, &self.local_config().raft.self_addr);
        if reason != self.last_reason {
            info!("{reason}");
        }
        self.last_reason = reason.clone();
        let status = match &self.h.instance {
            Some(instance) => instance.status().await,
            None => Default::default(),
        };
        self.publish(|v| {
            v.status = status;
            v.reason = reason;
            v.activity = None;
            v.last_tick = tokio::time::Instant::now();
        });
        if standing == Standing::Learner {
            self.report(dynamic).await;
        }
    }

    /// One tick: observe, decide, execute, report. `false` when an action's outcome is unknown
    /// (the next tick should come at once).
    async fn tick(&mut self, cluster: &ClusterState, dynamic: &DynamicConfig) -> bool {
        // First: which programs run the data directory depends on the cluster's last upgrade.
        self.executor.sync_binaries(cluster).await;
        let reloaded = self.executor.apply_postgresql_conf(dynamic).await;
        self.executor.sync_replication_peers(cluster).await;
        let now = self.h.clock.now();
        let (disk, status) = match &self.h.instance {
            Some(instance) => (instance.data_dir().await, instance.status().await),
            None => (Ok(DataDir::Empty), Default::default()),
        };
        let disk = match disk {
            Ok(d) => Some(d),
            Err(err) => {
                warn!(error = %err, "could not read the data directory");
                None
            }
        };
        self.memory.observe(&self.h.me, cluster, &status, now);
        let running = callback_role(&self.h.me, cluster, dynamic, &status);
        if let Some(callback) = self.callbacks.observe(running) {
            self.h.scripts.notify(callback);
        }
        if reloaded && let Some(callback) = self.callbacks.reloaded() {
            self.h.scripts.notify(callback);
        }
        let config = self.local_config();
        let settings = HaSettings {
            ttl: dynamic.ttl,
            loop_wait: dynamic.loop_wait,
            primary_start_timeout: dynamic.primary_start_timeout,
            witness: self.h.instance.is_none(),
            nofailover: config.tags.nofailover(),
            use_pg_rewind: config
                .postgresql
                .as_ref()
                .is_some_and(|pg| use_pg_rewind(pg, dynamic)),
            paused: cluster.paused(dynamic),
            sync: sync_settings(dynamic),
            standby_cluster: dynamic.standby_cluster.clone(),
            pre_promote: config
                .postgresql
                .as_ref()
                .is_some_and(|pg| pg.pre_promote.is_some()),
            replica_without_leader: config.postgresql.as_ref().is_some_and(|pg| {
                pg.create_replica_methods
                    .iter()
                    .any(|m| matches!(m, ReplicaMethod::Custom(c) if c.no_leader))
            }),
            remove_data_on_rewind_failure: config
                .postgresql
                .as_ref()
                .is_some_and(|pg| pg.remove_data_directory_on_rewind_failure),
            remove_data_on_diverged_timelines: config
                .postgresql
                .as_ref()
                .is_some_and(|pg| pg.remove_data_directory_on_diverged_timelines),
            // `nostream` follows nobody over the network, whatever `replicatefrom` says.
            replicatefrom: config
                .tags
                .replicatefrom()
                .filter(|_| !config.tags.nostream())
                .cloned(),
        };
        let lease = *self.h.lease.borrow();
        let decision = decide(&Observation {
            me: &self.h.me,
            now,
            wall_now: self.h.clock.wall_now(),
            cluster,
            settings: &settings,
            lease,
            disk: disk.as_ref(),
            db: &status,
            memory: &self.memory,
        });
        if !decision.actions.is_empty()
            || decision.reason != self.last_reason
            || !config.log.deduplicate_heartbeat_logs
        {
            info!("{}", decision.reason);
        } else {
            debug!("{}", decision.reason);
        }
        self.last_reason = decision.reason.clone();
        let sysid = match &disk {
            Some(DataDir::Initialized(cd)) => Some(cd.sysid.clone()),
            _ => None,
        };
        self.publish(|v| {
            v.status = status.clone();
            v.reason = decision.reason.clone();
            v.sysid = sysid.clone();
            v.activity = None;
        });
        let mut settled = true;
        for action in &decision.actions {
            let outcome = self
                .executor
                .execute(action, cluster, dynamic.loop_wait)
                .await;
            self.memory.remember(action, &outcome);
            if let Some(callback) = self.callbacks.after(action, &outcome) {
                self.h.scripts.notify(callback);
            }
            match &outcome {
                ActionOutcome::Done(_) => continue,
                ActionOutcome::Failed(why) => {
                    warn!(action = ?action, error = %why, "action failed");
                }
                ActionOutcome::Unknown(why) => {
                    warn!(
                        action = ?action,
                        error = %why,
                        "the action's outcome is unknown; observing again before acting"
                    );
                    settled = false;
                }
            }
            break;
        }
        if !decision.actions.is_empty()
            && let Some(instance) = &self.h.instance
        {
            let status = instance.status().await;
            self.publish(|v| v.status = status);
        }
        self.publish(|v| {
            v.activity = None;
            v.last_tick = tokio::time::Instant::now();
        });
        self.report(dynamic).await;
        settled
    }

    fn publish(&self, f: impl FnOnce(&mut LocalView)) {
        self.h.local.send_modify(|arc| f(Arc::make_mut(arc)));
    }

    async fn report(&self, dynamic: &DynamicConfig) {
        let cluster = self.h.raft.state();
        let previous = cluster.members.get(&self.h.me);
        let view = self.h.local.borrow().clone();
        let record = member_record(&self.local_config(), &self.h.me, &cluster, &view, previous);
        let loop_wait_ms = dynamic.loop_wait.as_millis() as u64;
        if !worth_reporting(&record, previous, self.h.clock.wall_now(), loop_wait_ms) {
            return;
        }
        let command = Command::Report {
            member: self.h.me.clone(),
            record: Box::new(record),
        };
        if let Err(err) = self.h.raft.propose(command).await {
            debug!(error = %err, "could not publish the member report");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_outside_the_raft_membership_says_what_it_waits_for() {
        let me = MemberName::from("node3");
        let addr = "127.0.0.14:2222";
        let cases = [
            (
                Standing::Joining(JoinState::AwaitingAdmission),
                "waiting to be added to the Raft cluster: run tribunectl members add node3 \
                 127.0.0.14:2222 on a member",
            ),
            (
                Standing::Joining(JoinState::AwaitingPeers),
                "waiting for a majority of the Raft partners (raft.partner_addrs) to answer \
                 before initializing a new Raft cluster",
            ),
            (
                Standing::Joining(JoinState::AwaitingLeader),
                "waiting for the Raft leader to replicate its log to this node",
            ),
            (
                Standing::Learner,
                "catching up with the Raft log as a learner: the Raft leader makes this node a \
                 voter once it has caught up",
            ),
            (
                Standing::Outside,
                "this node is not in the Raft membership it has replicated so far: it catches up \
                 if a member is adding it; otherwise run tribunectl members add node3 \
                 127.0.0.14:2222 on a member",
            ),
            (
                Standing::Removed,
                "this node was removed from the Raft cluster: stop this agent; its node id is \
                 retired, so a new agent needs another Raft address than 127.0.0.14:2222",
            ),
        ];
        for (standing, expected) in cases {
            assert_eq!(
                standing_reason(standing, &me, addr),
                expected,
                "{standing:?}"
            );
        }
    }
}
