//! The executor: carries out one [`Action`] of `ha::decide` on the database and the replicated
//! state, and says how it ended ([`ActionOutcome`]: done with what it produced, failed, or
//! unknown). It decides nothing and remembers nothing for `decide`: the HA loop hands the
//! outcome to `Memory::remember`.
//!
//! Each action is idempotent and re-checks the lease right before anything that keeps or makes
//! a primary, because time passed since `decide` saw it (and the process may have been paused).
//! Errors are classified once, here: an instance error or a proposal whose effect may have
//! happened (`InstanceError::Unknown`, a Raft timeout or lost answer) is `Unknown`; a refusal
//! or a definite failure is `Failed`.
//!
//! What it keeps between actions is its own idempotence bookkeeping (which slots, peers and
//! user configuration it last gave the database), never input to a decision.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::counters::Counters;
use super::report::member_record;
use super::view::LocalView;
use crate::callbacks::{Hook, Scripts};
use crate::clock::Clock;
use crate::config::Config;
use crate::ha::{Action, ActionOutcome, LeaseView, Produced, StreamFrom};
use crate::instance::{
    ClusterStateOnDisk, DataDir, Instance, InstanceError, PeerFence, StopMode, Upstream,
    UserConfiguration, WalSource, user_configuration,
};
use crate::raft::{Consensus, ProposeError};
use crate::state::{
    ClusterState, Command, DbState, Outcome, Rejection, RestartOutcome, RestartResult,
};
use crate::types::{Generation, MemberName};

mod slots;
mod upgrade;

/// How long a stopped primary waits for the switchover target to replay its last WAL before
/// it gives the switchover up and starts again as primary.
const SWITCHOVER_CATCH_UP: Duration = Duration::from_secs(10);
/// How often it checks the target's replay position meanwhile.
const SWITCHOVER_POLL: Duration = Duration::from_millis(20);

/// Why an action did not end `Done`: whether its effect may have happened, and what went wrong.
#[derive(Debug)]
struct Fault {
    unknown: bool,
    message: String,
}

impl Fault {
    fn failed(message: impl Into<String>) -> Self {
        Fault {
            unknown: false,
            message: message.into(),
        }
    }

    fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<InstanceError> for Fault {
    fn from(err: InstanceError) -> Self {
        Fault {
            unknown: matches!(err, InstanceError::Unknown { .. }),
            message: err.to_string(),
        }
    }
}

impl From<ProposeError> for Fault {
    fn from(err: ProposeError) -> Self {
        Fault {
            // Nothing was sent, or it was refused: the command did not commit.
            unknown: !matches!(err, ProposeError::NoLeader | ProposeError::Refused(_)),
            message: err.to_string(),
        }
    }
}

type Effect = Result<Produced, Fault>;

fn done() -> Effect {
    Ok(Produced::Nothing)
}

/// What the HA loop and its executor act through: this member's name, its configuration as
/// last reloaded, Raft, its database, the clock, its lease and its published view.
#[derive(Clone)]
pub struct Handles {
    pub me: MemberName,
    pub config: watch::Receiver<Arc<Config>>,
    pub raft: Arc<dyn Consensus>,
    pub instance: Option<Arc<dyn Instance>>,
    pub clock: Arc<dyn Clock>,
    pub lease: watch::Receiver<LeaseView>,
    pub local: watch::Sender<Arc<LocalView>>,
    /// The user's scripts: callbacks (started by the HA loop) and hooks (run here).
    pub scripts: Arc<dyn Scripts>,
}

pub struct Executor {
    h: Handles,
    counters: Counters,
    /// The user parameters and `pg_hba` lines last given to the database.
    conf_applied: Option<UserConfiguration>,
    /// The permanent logical slots last found not ready for a failover on this standby (logged
    /// when it changes).
    slots_not_ready: Vec<String>,
    /// The peers the instance was last told about (`Instance::set_replication_peers`).
    peers_for: Option<Vec<Upstream>>,
    /// The cluster's upgraded programs the instance was last told about
    /// (`Instance::use_binaries`).
    binaries_for: Option<Option<crate::state::ClusterBinaries>>,
}

impl Executor {
    pub fn new(handles: Handles, counters: Counters) -> Self {
        Self {
            h: handles,
            counters,
            conf_applied: None,
            slots_not_ready: Vec::new(),
            peers_for: None,
            binaries_for: None,
        }
    }

    /// Carry `action` out and say how it ended; counted in `tribune_actions_total`.
    pub async fn execute(
        &mut self,
        action: &Action,
        cluster: &ClusterState,
        loop_wait: Duration,
    ) -> ActionOutcome {
        let outcome = match self.effect(action, cluster, loop_wait).await {
            Ok(produced) => ActionOutcome::Done(produced),
            Err(Fault {
                unknown: true,
                message,
            }) => ActionOutcome::Unknown(message),
            Err(Fault { message, .. }) => ActionOutcome::Failed(message),
        };
        self.counters.action(action, &outcome);
        outcome
    }

    fn local_config(&self) -> Arc<Config> {
        self.h.config.borrow().clone()
    }

    fn publish(&self, f: impl FnOnce(&mut LocalView)) {
        self.h.local.send_modify(|arc| f(Arc::make_mut(arc)));
    }

    fn instance(&self) -> Result<Arc<dyn Instance>, Fault> {
        self.h
            .instance
            .clone()
            .ok_or_else(|| Fault::failed("a witness has no database"))
    }

    /// Give the database the user parameters and `pg_hba` lines of the dynamic configuration
    /// merged with the local one (`instance::user_configuration`), when they changed: Patroni
    /// applies edits of either at once. A failure is logged and retried next tick. Returns
    /// whether the database's configuration changed (and was reloaded).
    pub async fn apply_postgresql_conf(&mut self, dynamic: &crate::config::DynamicConfig) -> bool {
        let config = self.local_config();
        let (Some(instance), Some(local)) = (self.h.instance.clone(), config.postgresql.as_ref())
        else {
            return false;
        };
        let wanted = user_configuration(&config, local, dynamic);
        if self.conf_applied.as_ref() == Some(&wanted) {
            return false;
        }
        match instance
            .reconfigure(&wanted.parameters, &wanted.pg_hba)
            .await
        {
            Ok(changed) => {
                if changed {
                    info!("applied changed PostgreSQL parameters or pg_hba lines");
                }
                self.conf_applied = Some(wanted);
                changed
            }
            Err(err) => {
                warn!(error = %err, "could not apply the PostgreSQL configuration");
                false
            }
        }
    }

    /// Tells the instance about the other members' databases when that list changed (openGauss
    /// lists each as a replication channel). A failure is logged and retried next tick.
    pub async fn sync_replication_peers(&mut self, cluster: &ClusterState) {
        let Some(instance) = self.h.instance.clone() else {
            return;
        };
        let peers: Vec<Upstream> = cluster
            .members
            .keys()
            .filter(|name| **name != self.h.me)
            .filter_map(|name| upstream(cluster, name).ok())
            .collect();
        if self.peers_for.as_ref() == Some(&peers) {
            return;
        }
        match instance.set_replication_peers(&peers).await {
            Ok(()) => self.peers_for = Some(peers),
            Err(err) => warn!(error = %err, "could not update the replication peers"),
        }
    }

    /// Publish a long action's state at once, so `list` and the API show it while it runs.
    async fn announce(&self, activity: DbState, loop_wait: Duration) {
        self.publish(|v| v.activity = Some(activity));
        let cluster = self.h.raft.state();
        let previous = cluster.members.get(&self.h.me);
        let view = self.h.local.borrow().clone();
        let record = member_record(&self.local_config(), &self.h.me, &cluster, &view, previous);
        let command = Command::Report {
            member: self.h.me.clone(),
            record: Box::new(record),
        };
        let _ = tokio::time::timeout(loop_wait, self.h.raft.propose(command)).await;
    }

    async fn propose(&self, command: Command) -> Effect {
        let kind = command.kind();
        match self.h.raft.propose(command).await {
            Ok(Outcome::Applied) => done(),
            Ok(Outcome::Rejected(r)) => Err(Fault::failed(format!("{kind} was rejected: {r}"))),
            Err(err) => Err(Fault::from(err).context(format!("proposing {kind}"))),
        }
    }

    /// Fail unless this agent holds a valid lease for the cluster's current leader generation.
    fn require_lease(&self) -> Result<(), Fault> {
        let cluster = self.h.raft.state();
        let Some(leader) = cluster.leader.as_ref().filter(|l| l.member == self.h.me) else {
            return Err(Fault::failed(
                "refusing to act as primary: this member does not hold the leader record",
            ));
        };
        if !self
            .h
            .lease
            .borrow()
            .valid_for(leader.generation, self.h.clock.now())
        {
            return Err(Fault::failed(format!(
                "refusing to act as primary: the lease of generation {} is not valid now",
                leader.generation
            )));
        }
        Ok(())
    }

    async fn effect(
        &mut self,
        action: &Action,
        cluster: &ClusterState,
        loop_wait: Duration,
    ) -> Effect {
        let me = self.h.me.clone();
        match action {
            Action::ClaimBootstrap => {
                let dcs = self.local_config().bootstrap_dcs().clone();
                self.propose(Command::ClaimBootstrap {
                    member: me,
                    dcs_config: dcs,
                })
                .await
            }
            Action::Bootstrap => self.bootstrap(loop_wait).await,
            Action::FinishBootstrap => {
                let sysid = match self.instance()?.data_dir().await? {
                    DataDir::Initialized(cd) => cd.sysid,
                    DataDir::Empty => return Err(Fault::failed("the data directory is empty")),
                };
                self.propose(Command::FinishBootstrap { member: me, sysid })
                    .await
            }
            Action::Clone { from } => {
                let source = source(cluster, from)?;
                self.announce(DbState::CreatingReplica, loop_wait).await;
                // Fully qualified: `clone_from` is also `Clone::clone_from` on the `Arc`.
                Instance::clone_from(self.instance()?.as_ref(), &source)
                    .await
                    .map_err(|e| {
                        Fault::from(e).context(format!("creating a replica from {from}"))
                    })?;
                done()
            }
            Action::CloneWithoutLeader { from } => {
                let source = source(cluster, from)?;
                self.announce(DbState::CreatingReplica, loop_wait).await;
                self.instance()?
                    .clone_without_leader(&source)
                    .await
                    .map_err(|e| {
                        Fault::from(e).context(format!(
                            "creating a replica without leader ({from}) accepting connections"
                        ))
                    })?;
                done()
            }
            Action::Start { upstream } => {
                let instance = self.instance()?;
                match upstream {
                    None => {
                        self.require_lease()?;
                        self.announce(DbState::Starting, loop_wait).await;
                        instance.start(None).await?;
                    }
                    Some(from) => {
                        let source = source(cluster, from)?;
                        self.announce(DbState::Starting, loop_wait).await;
                        instance.start(Some(&source)).await?;
                    }
                }
                done()
            }
            Action::Stop { mode } => {
                self.announce(DbState::Stopping, loop_wait).await;
                if *mode != StopMode::Immediate {
                    self.before_stop().await;
                }
                self.instance()?.stop(*mode).await?;
                done()
            }
            Action::Checkpoint => {
                self.require_lease()?;
                self.instance()?.checkpoint().await?;
                done()
            }
            Action::HandOver { generation, to } => {
                let handed = self.hand_over(cluster, *generation, to).await;
                if handed.is_err() {
                    // Never retried on its own: the primary starts again and the operator
                    // asks anew.
                    self.cancel_switchover().await;
                }
                handed
            }
            Action::PassLease { generation, to } => {
                self.require_lease()?;
                info!(%to, "the standby leader stopped; passing the leader lease");
                let passed = self.give_lease(*generation, to).await;
                if passed.is_err() {
                    self.cancel_switchover().await;
                }
                passed
            }
            Action::CancelSwitchover => {
                self.cancel_switchover().await;
                done()
            }
            Action::Restart {
                requested_at,
                upstream,
                timeout,
            } => {
                let restarted = self
                    .restart(cluster, upstream.as_ref(), *timeout, loop_wait)
                    .await;
                let result = match &restarted {
                    Ok(_) => RestartResult::Restarted,
                    Err(fault) => RestartResult::Failed {
                        reason: fault.message.clone(),
                    },
                };
                let reported = self
                    .propose(Command::FinishRestart {
                        member: me,
                        outcome: RestartOutcome {
                            requested_at: *requested_at,
                            result,
                        },
                    })
                    .await;
                match (restarted, reported) {
                    (Err(fault), _) => Err(fault),
                    // Restarted, but whether the request was closed is not known.
                    (Ok(_), Err(fault)) => Err(Fault {
                        unknown: true,
                        ..fault
                    }),
                    (Ok(produced), Ok(_)) => Ok(produced),
                }
            }
            Action::SkipRestart { requested_at } => {
                self.propose(Command::FinishRestart {
                    member: me,
                    outcome: RestartOutcome {
                        requested_at: *requested_at,
                        result: RestartResult::ConditionsNotMet,
                    },
                })
                .await
            }
            Action::FinishReinit { .. } => self.propose(Command::FinishReinit { member: me }).await,
            Action::PrePromote { .. } => {
                self.require_lease()?;
                let outcome = self.h.scripts.run_hook(&Hook::PrePromote).await;
                if outcome.allows() {
                    done()
                } else {
                    Err(Fault::failed(outcome.describe()))
                }
            }
            Action::DeclinePromotion { generation, reason } => {
                // Read afresh: the position every acknowledged commit lies at or before.
                let status = self.instance()?.status().await;
                let lsn = [status.received_lsn, status.replayed_lsn]
                    .into_iter()
                    .flatten()
                    .max()
                    .ok_or_else(|| Fault::failed("the WAL position is unknown"))?;
                warn!(%reason, "pre_promote refused the promotion; giving the leader lease back");
                self.propose(Command::DeclinePromotion {
                    member: me,
                    generation: *generation,
                    lsn,
                    reason: reason.clone(),
                })
                .await
            }
            Action::Promote { generation } => {
                self.require_lease()?;
                self.instance()?.promote(*generation).await?;
                done()
            }
            Action::Follow { upstream } => {
                let source = source(cluster, upstream)?;
                self.instance()?.follow(&source).await?;
                done()
            }
            Action::Rewind { from } => {
                let up = upstream(cluster, from)?;
                self.announce(DbState::Rewinding, loop_wait).await;
                self.instance()?
                    .rewind(&up)
                    .await
                    .map_err(|e| Fault::from(e).context(format!("rewinding from {from}")))?;
                done()
            }
            Action::SetAsideDataDir => {
                let path = self.instance()?.set_aside_data_dir().await?;
                warn!(path = %path.display(), "moved the data directory aside");
                done()
            }
            Action::HoldStopped { reason } => {
                warn!("{reason}");
                done()
            }
            Action::FencePeer { member, .. } => {
                let peer = upstream(cluster, member)?;
                match self.instance()?.fence_peer(&peer).await? {
                    PeerFence::Fenced => {
                        self.counters.peer_fences.inc();
                        warn!(
                            %member,
                            "fenced the former primary's database over SQL: it was still writable"
                        );
                    }
                    other => {
                        info!(%member, ?other, "the former primary's database needed no fence")
                    }
                }
                done()
            }
            Action::StopStreaming { .. } => {
                self.instance()?.stop_replication().await?;
                done()
            }
            Action::AckFailover { ended } => {
                // Read afresh: streaming has just stopped, so this position is final.
                let status = self.instance()?.status().await;
                let lsn = [
                    status.received_lsn,
                    status.replayed_lsn,
                    status.wal_position,
                ]
                .into_iter()
                .flatten()
                .max()
                .ok_or_else(|| Fault::failed("the WAL position is unknown"))?;
                self.publish(|v| v.status = status.clone());
                self.propose(Command::AckFailover {
                    member: me,
                    ended: *ended,
                    report: crate::state::FailoverReport {
                        lsn,
                        timeline: status.timeline,
                    },
                })
                .await
            }
            Action::ReleaseLease { generation } => {
                let last_lsn = self.h.local.borrow().status.wal_position;
                self.propose(Command::ReleaseLease {
                    member: me,
                    generation: *generation,
                    last_lsn,
                })
                .await
            }
            Action::SetSyncRecord {
                generation,
                standbys,
                quorum,
                site_guarantee,
            } => {
                self.propose(Command::SetSync {
                    member: me,
                    generation: *generation,
                    standbys: standbys.clone(),
                    quorum: *quorum,
                    site_guarantee: *site_guarantee,
                })
                .await
            }
            Action::SetSyncNames { value, .. } => {
                self.require_lease()?;
                let at = self
                    .instance()?
                    .set_synchronous_standby_names(value)
                    .await?;
                Ok(Produced::SyncNamesAppliedAt(at))
            }
            Action::RecordHistory { timeline } => {
                let switches = self.instance()?.timeline_history(*timeline).await?;
                if switches.is_empty() {
                    return Err(Fault::failed(format!(
                        "the history file of timeline {timeline} lists no switch"
                    )));
                }
                // Every switch the cluster's history lacks, not only the last: an earlier
                // primary's own record may have failed (its outcome unknown, then a switchover),
                // and a standby still on that older timeline can be judged (ha::divergence) only
                // by where it ended. Found by the simulation (seed 35294).
                for switch in switches
                    .iter()
                    .filter(|s| !cluster.history.iter().any(|h| h.timeline == s.timeline))
                {
                    self.propose(Command::AddHistory {
                        entry: crate::state::HistoryEntry {
                            timeline: switch.timeline,
                            lsn: switch.lsn,
                            reason: switch.reason.clone(),
                            at: self.h.clock.wall_now(),
                            new_leader: me.clone(),
                        },
                    })
                    .await?;
                }
                done()
            }
            Action::CheckUpgrade { id } => self.check_upgrade(cluster, *id).await,
            Action::AwaitUpgradeStandbys { id, generation } => {
                self.await_upgrade_standbys(cluster, *id, *generation).await
            }
            Action::RunUpgrade { id, generation } => {
                self.run_upgrade(cluster, *id, *generation).await
            }
            Action::SwitchToUpgraded { id } => {
                let target = upgrade::target(cluster, *id)?;
                self.instance()?.switch_to_upgraded(&target).await?;
                done()
            }
            Action::ReportUpgradeStarted { id, generation } => {
                self.propose(Command::UpgradeStarted {
                    member: me,
                    generation: *generation,
                    id: *id,
                })
                .await
            }
            Action::FinishUpgrade { id } => {
                self.propose(Command::FinishUpgrade {
                    member: me,
                    id: *id,
                })
                .await
            }
            Action::UndoUpgrade { id } => {
                let target = upgrade::target(cluster, *id)?;
                self.instance()?.undo_upgrade(&target).await?;
                self.propose(Command::FinishUpgrade {
                    member: me,
                    id: *id,
                })
                .await
            }
            Action::SyncSlots => {
                let local = self.local_config();
                let dynamic = cluster.dynamic_or(&local.bootstrap.dynamic);
                let leader = cluster.leader_name().cloned();
                let upstream = leader
                    .filter(|l| *l != me)
                    .and_then(|l| upstream(cluster, &l).ok());
                let targets =
                    slots::targets(cluster, &me, dynamic, self.h.clock.wall_now(), upstream);
                let not_ready = self.instance()?.sync_replication_slots(&targets).await?;
                if not_ready != self.slots_not_ready {
                    if not_ready.is_empty() {
                        info!(
                            "this standby is ready for logical failover: every permanent logical slot is copied"
                        );
                    } else {
                        warn!(slots = ?not_ready, "this standby is not ready for logical failover: permanent logical slots not copied yet");
                    }
                    self.slots_not_ready = not_ready;
                }
                done()
            }
        }
    }

    /// initdb, start as primary, create roles; then report the system identifier. A failed
    /// bootstrap sets its data aside and gives the claim up, so another member may try.
    async fn bootstrap(&self, loop_wait: Duration) -> Effect {
        self.announce(DbState::InitializingNewCluster, loop_wait)
            .await;
        let instance = self.instance()?;
        match self.initialize(instance.as_ref()).await {
            Ok(sysid) => {
                self.propose(Command::FinishBootstrap {
                    member: self.h.me.clone(),
                    sysid,
                })
                .await
            }
            Err(err) => {
                warn!(error = %err, "bootstrap failed; giving the claim up");
                if let Ok(DataDir::Initialized(_)) = instance.data_dir().await {
                    let _ = instance.stop(StopMode::Immediate).await;
                    if let Ok(path) = instance.set_aside_data_dir().await {
                        warn!(path = %path.display(), "moved the failed data directory aside");
                    }
                }
                self.propose(Command::AbortBootstrap {
                    member: self.h.me.clone(),
                })
                .await?;
                Err(Fault::from(err).context("bootstrapping a new cluster"))
            }
        }
    }

    /// initdb and the roles, then `bootstrap.post_bootstrap` (Patroni's order: the script runs
    /// on the new primary before the cluster is declared initialised; a failure aborts the
    /// bootstrap).
    async fn initialize(&self, instance: &dyn Instance) -> Result<String, InstanceError> {
        let sysid = instance.bootstrap().await?;
        let Some(connstring) = instance.superuser_dsn() else {
            return Ok(sysid);
        };
        let pgpass = self
            .local_config()
            .postgresql
            .as_ref()
            .map(|pg| pg.pgpass.clone())
            .unwrap_or_default();
        let outcome = self
            .h
            .scripts
            .run_hook(&Hook::PostBootstrap { connstring, pgpass })
            .await;
        if outcome.allows() {
            Ok(sysid)
        } else {
            Err(InstanceError::failed(
                "post_bootstrap",
                format!("the post_bootstrap script {}", outcome.describe()),
            ))
        }
    }

    /// `postgresql.before_stop`, waited for before a clean stop of a running database; its
    /// outcome is only logged (Patroni stops either way).
    async fn before_stop(&self) {
        if self.h.local.borrow().status.state != DbState::Running {
            return;
        }
        let outcome = self.h.scripts.run_hook(&Hook::BeforeStop).await;
        if let crate::callbacks::HookOutcome::Failed(why) = outcome {
            warn!(%why, "the before_stop script failed");
        }
    }

    /// The switchover's last step on the old primary, stopped cleanly: wait until `to` has
    /// replayed past the shutdown checkpoint, so it holds every byte this primary wrote, then
    /// hand the lease over in one committed command.
    async fn hand_over(
        &mut self,
        cluster: &ClusterState,
        generation: Generation,
        to: &MemberName,
    ) -> Effect {
        self.require_lease()?;
        let instance = self.instance()?;
        let last = match instance.data_dir().await? {
            DataDir::Initialized(cd) if cd.cluster_state == ClusterStateOnDisk::ShutDown => cd
                .checkpoint
                .ok_or_else(|| Fault::failed("pg_controldata shows no checkpoint location"))?,
            _ => {
                return Err(Fault::failed(
                    "the primary did not shut down cleanly; not handing over",
                ));
            }
        };
        let target = upstream(cluster, to)?;
        let deadline = self.h.clock.now() + SWITCHOVER_CATCH_UP;
        loop {
            match instance.peer_replayed_lsn(&target).await {
                Ok(Some(replayed)) if replayed > last => break,
                Ok(_) => {}
                Err(err) => debug!(error = %err, "reading the switchover target's position"),
            }
            if self.h.clock.now() >= deadline {
                return Err(Fault::failed(format!(
                    "{to} did not replay the shutdown checkpoint at {last} within {}s",
                    SWITCHOVER_CATCH_UP.as_secs()
                )));
            }
            tokio::time::sleep(SWITCHOVER_POLL).await;
        }
        info!(%to, %last, "the target replayed all WAL; handing the leader lease over");
        self.give_lease(generation, to).await
    }

    /// Commit the hand-over of this member's lease of `generation` to `to`.
    async fn give_lease(&self, generation: Generation, to: &MemberName) -> Effect {
        self.propose(Command::HandOver {
            member: self.h.me.clone(),
            generation,
            to: to.clone(),
        })
        .await
    }

    async fn cancel_switchover(&self) {
        match self.h.raft.propose(Command::CancelSwitchover).await {
            Ok(Outcome::Applied | Outcome::Rejected(Rejection::NoSwitchover)) => {}
            Ok(Outcome::Rejected(r)) => warn!(rejection = %r, "could not withdraw the switchover"),
            Err(err) => warn!(error = %err, "could not withdraw the switchover"),
        }
    }

    /// Stop (fast) and start this member's database; a primary keeps its role and lease.
    async fn restart(
        &mut self,
        cluster: &ClusterState,
        upstream: Option<&StreamFrom>,
        timeout: Option<Duration>,
        loop_wait: Duration,
    ) -> Effect {
        let instance = self.instance()?;
        if upstream.is_none() {
            self.require_lease()?;
        }
        let up = upstream.map(|m| source(cluster, m)).transpose()?;
        self.announce(DbState::Stopping, loop_wait).await;
        self.before_stop().await;
        instance.stop(StopMode::Fast).await?;
        if upstream.is_none() {
            self.require_lease()?;
        }
        self.announce(DbState::Starting, loop_wait).await;
        let start = instance.start(up.as_ref());
        match timeout {
            Some(limit) => tokio::time::timeout(limit, start)
                .await
                .map_err(|_| Fault {
                    unknown: true,
                    message: format!("postgres did not start within {}s", limit.as_secs()),
                })??,
            None => start.await?,
        }
        done()
    }
}

/// Another member's database address, from its record.
fn upstream(cluster: &ClusterState, member: &MemberName) -> Result<Upstream, Fault> {
    let record = cluster
        .members
        .get(member)
        .ok_or_else(|| Fault::failed(format!("{member} has not reported yet")))?;
    let (host, port) = record
        .host_port()
        .ok_or_else(|| Fault::failed(format!("{member} has no database address")))?;
    Ok(Upstream {
        member: member.clone(),
        host,
        port,
    })
}

/// The address of what a standby is to stream from: a member's database, or the remote.
fn source(cluster: &ClusterState, from: &StreamFrom) -> Result<WalSource, Fault> {
    Ok(match from {
        StreamFrom::Member(member) => WalSource::Member(upstream(cluster, member)?),
        StreamFrom::Remote(remote) => WalSource::Remote(remote.clone()),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// How an error becomes an outcome: only what may have happened is `Unknown`.
    #[test]
    fn errors_are_classified_once() {
        let unknown = |f: Fault| f.unknown;
        assert!(!unknown(ProposeError::NoLeader.into()));
        assert!(!unknown(ProposeError::Refused("not a voter".into()).into()));
        assert!(unknown(ProposeError::Timeout.into()));
        assert!(unknown(ProposeError::Unreachable("reset".into()).into()));
        assert!(unknown(
            InstanceError::Unknown {
                operation: "start",
                timeout: Duration::from_secs(30)
            }
            .into()
        ));
        assert!(!unknown(InstanceError::failed("start", "no data").into()));
    }
}
