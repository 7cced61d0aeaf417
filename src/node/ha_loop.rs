//! The agent loop (DESIGN section 6): observe -> `ha::decide` -> execute -> report, every
//! `loop_wait` and at once when the leader, the failover intent or the bootstrap record changes.
//!
//! Execution is sequential and idempotent; the first failed action ends the tick and the next
//! tick observes afresh. Before any action that keeps or makes a primary the lease is checked
//! again, because time passed since `decide` saw it (and the process may have been paused).
//!
//! Only a Raft voter decides. A node not (yet) in the Raft membership idles with a reason
//! saying what it waits for ([`standing_reason`]): it never claims a bootstrap of its own, and
//! a learner only reports its record, so that operators see it by name while it is added.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::{Config, DynamicConfig, SynchronousMode};
use crate::ha::sync::{SyncMode, SyncSettings};
use crate::ha::{
    Action, HaSettings, LeaseView, Memory, Observation, StreamFrom, SyncNamesApplied, decide,
};
use crate::instance::{ClusterStateOnDisk, StopMode};
use crate::instance::{
    DataDir, Instance, Upstream, UserConfiguration, WalSource, use_pg_rewind, user_configuration,
};
use crate::node::report::{member_record, worth_reporting};
use crate::node::view::LocalView;
use crate::raft::{JoinState, RaftNode, Standing};
use crate::state::{
    ClusterState, Command, DbState, Outcome, Rejection, RestartOutcome, RestartResult,
};
use crate::types::{Generation, MemberName, UnixMillis};

/// How long a stopped primary waits for the switchover target to replay its last WAL before
/// it gives the switchover up and starts again as primary.
const SWITCHOVER_CATCH_UP: Duration = Duration::from_secs(10);
/// How often it checks the target's replay position meanwhile.
const SWITCHOVER_POLL: Duration = Duration::from_millis(20);

pub struct HaLoop {
    me: MemberName,
    /// The local configuration, as last reloaded.
    pub config: watch::Receiver<Arc<Config>>,
    pub raft: RaftNode,
    pub instance: Option<Arc<dyn Instance>>,
    pub clock: Arc<dyn Clock>,
    pub lease: watch::Receiver<LeaseView>,
    pub local: watch::Sender<Arc<LocalView>>,
    memory: Memory,
    last_reason: String,
    /// The user parameters and `pg_hba` lines last given to the database.
    conf_applied: Option<UserConfiguration>,
    /// Member names the replication slots were last synchronised for.
    slots_for: Option<Vec<MemberName>>,
    /// The peers the instance was last told about (`Instance::set_replication_peers`).
    peers_for: Option<Vec<Upstream>>,
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
    )
}

impl HaLoop {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        raft: RaftNode,
        instance: Option<Arc<dyn Instance>>,
        clock: Arc<dyn Clock>,
        lease: watch::Receiver<LeaseView>,
        local: watch::Sender<Arc<LocalView>>,
    ) -> Self {
        let me = config.borrow().name.clone();
        Self {
            me,
            config,
            raft,
            instance,
            clock,
            lease,
            local,
            memory: Memory::default(),
            last_reason: String::new(),
            conf_applied: None,
            slots_for: None,
            peers_for: None,
        }
    }

    fn me(&self) -> &MemberName {
        &self.me
    }

    fn local_config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    fn dynamic(&self, cluster: &ClusterState) -> DynamicConfig {
        cluster
            .dynamic_or(&self.config.borrow().bootstrap.dynamic)
            .clone()
    }

    /// Give the database the user parameters and `pg_hba` lines of the dynamic configuration
    /// merged with the local one (`instance::user_configuration`), when they changed: Patroni
    /// applies edits of either at once.
    async fn apply_postgresql_conf(&mut self, dynamic: &DynamicConfig) {
        let config = self.local_config();
        let (Some(instance), Some(local)) = (self.instance.clone(), config.postgresql.as_ref())
        else {
            return;
        };
        let wanted = user_configuration(&config, local, dynamic);
        if self.conf_applied.as_ref() == Some(&wanted) {
            return;
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
            }
            Err(err) => warn!(error = %err, "could not apply the PostgreSQL configuration"),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut states = self.raft.subscribe();
        let mut lease = self.lease.clone();
        let mut raft_status = self.raft.status();
        loop {
            let cluster = self.raft.state();
            let key = wake_key(&cluster);
            let dynamic = self.dynamic(&cluster);
            let standing = self.raft.standing();
            match standing {
                Standing::Voter => self.tick(&cluster, &dynamic).await,
                other => self.stand_aside(other, &dynamic).await,
            }
            let deadline = tokio::time::sleep(dynamic.loop_wait);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = &mut deadline => break,
                    r = raft_status.changed() => {
                        if r.is_err() { return; }
                        // Added, promoted or removed: act on it at once.
                        if self.raft.standing() != standing { break; }
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
        let reason = standing_reason(standing, self.me(), &self.local_config().raft.self_addr);
        if reason != self.last_reason {
            info!("{reason}");
        }
        self.last_reason = reason.clone();
        let status = match &self.instance {
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

    async fn tick(&mut self, cluster: &ClusterState, dynamic: &DynamicConfig) {
        self.apply_postgresql_conf(dynamic).await;
        if let Some(instance) = self.instance.clone() {
            self.sync_replication_peers(instance.as_ref(), cluster)
                .await;
        }
        let now = self.clock.now();
        let (disk, status) = match &self.instance {
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
        let im_leader = cluster.leader_name() == Some(self.me());
        if im_leader && status.state != DbState::Running {
            self.memory.primary_down_since.get_or_insert(now);
        } else {
            self.memory.primary_down_since = None;
        }
        let settings = HaSettings {
            ttl: dynamic.ttl,
            loop_wait: dynamic.loop_wait,
            primary_start_timeout: dynamic.primary_start_timeout,
            witness: self.instance.is_none(),
            nofailover: self.nofailover(),
            use_pg_rewind: self
                .local_config()
                .postgresql
                .as_ref()
                .is_some_and(|pg| use_pg_rewind(pg, dynamic)),
            paused: dynamic.pause,
            sync: sync_settings(dynamic),
            standby_cluster: dynamic.standby_cluster.clone(),
        };
        let lease = *self.lease.borrow();
        let decision = decide(&Observation {
            me: self.me(),
            now,
            wall_now: UnixMillis::now(),
            cluster,
            settings: &settings,
            lease,
            disk: disk.as_ref(),
            db: &status,
            memory: &self.memory,
        });
        if !decision.actions.is_empty() || decision.reason != self.last_reason {
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
        for action in &decision.actions {
            if let Err(err) = self.execute(action, cluster).await {
                warn!(action = ?action, error = %format!("{err:#}"), "action failed");
                break;
            }
        }
        if !decision.actions.is_empty()
            && let Some(instance) = &self.instance
        {
            let status = instance.status().await;
            self.publish(|v| v.status = status);
        }
        self.publish(|v| {
            v.activity = None;
            v.last_tick = tokio::time::Instant::now();
        });
        self.report(dynamic).await;
    }

    /// Tells the instance about the other members' databases when that list changed (openGauss
    /// lists each as a replication channel). A failure is logged and retried next tick.
    async fn sync_replication_peers(&mut self, instance: &dyn Instance, cluster: &ClusterState) {
        let peers: Vec<Upstream> = cluster
            .members
            .keys()
            .filter(|name| *name != self.me())
            .filter_map(|name| self.upstream(cluster, name).ok())
            .collect();
        if self.peers_for.as_ref() == Some(&peers) {
            return;
        }
        match instance.set_replication_peers(&peers).await {
            Ok(()) => self.peers_for = Some(peers),
            Err(err) => warn!(error = %err, "could not update the replication peers"),
        }
    }

    fn nofailover(&self) -> bool {
        self.local_config().tags.nofailover()
    }

    fn publish(&self, f: impl FnOnce(&mut LocalView)) {
        self.local.send_modify(|arc| f(Arc::make_mut(arc)));
    }

    async fn report(&self, dynamic: &DynamicConfig) {
        let cluster = self.raft.state();
        let previous = cluster.members.get(self.me());
        let view = self.local.borrow().clone();
        let record = member_record(&self.local_config(), self.me(), &cluster, &view, previous);
        let loop_wait_ms = dynamic.loop_wait.as_millis() as u64;
        if !worth_reporting(&record, previous, UnixMillis::now(), loop_wait_ms) {
            return;
        }
        let command = Command::Report {
            member: self.me().clone(),
            record: Box::new(record),
        };
        if let Err(err) = self.raft.propose(command).await {
            debug!(error = %err, "could not publish the member report");
        }
    }

    /// Publish a long action's state at once, so `list` and the API show it while it runs.
    async fn announce(&self, activity: DbState, dynamic_loop_wait: Duration) {
        self.publish(|v| v.activity = Some(activity));
        let cluster = self.raft.state();
        let previous = cluster.members.get(self.me());
        let view = self.local.borrow().clone();
        let record = member_record(&self.local_config(), self.me(), &cluster, &view, previous);
        let command = Command::Report {
            member: self.me().clone(),
            record: Box::new(record),
        };
        let _ = tokio::time::timeout(dynamic_loop_wait, self.raft.propose(command)).await;
    }

    fn instance(&self) -> anyhow::Result<&Arc<dyn Instance>> {
        self.instance
            .as_ref()
            .ok_or_else(|| anyhow!("a witness has no database"))
    }

    fn upstream(&self, cluster: &ClusterState, member: &MemberName) -> anyhow::Result<Upstream> {
        let record = cluster
            .members
            .get(member)
            .ok_or_else(|| anyhow!("{member} has not reported yet"))?;
        let (host, port) = record
            .host_port()
            .ok_or_else(|| anyhow!("{member} has no database address"))?;
        Ok(Upstream {
            member: member.clone(),
            host,
            port,
        })
    }

    /// The address of what a standby is to stream from: a member's database, or the remote.
    fn source(&self, cluster: &ClusterState, from: &StreamFrom) -> anyhow::Result<WalSource> {
        Ok(match from {
            StreamFrom::Member(member) => WalSource::Member(self.upstream(cluster, member)?),
            StreamFrom::Remote(remote) => WalSource::Remote(remote.clone()),
        })
    }

    /// Fail unless this agent holds a valid lease for the cluster's current leader generation.
    fn require_lease(&self) -> anyhow::Result<()> {
        let cluster = self.raft.state();
        let Some(leader) = cluster.leader.as_ref().filter(|l| &l.member == self.me()) else {
            bail!("refusing to act as primary: this member does not hold the leader record");
        };
        if !self
            .lease
            .borrow()
            .valid_for(leader.generation, self.clock.now())
        {
            bail!(
                "refusing to act as primary: the lease of generation {} is not valid now",
                leader.generation
            );
        }
        Ok(())
    }

    /// The switchover's last step on the old primary, stopped cleanly: wait until `to` has
    /// replayed past the shutdown checkpoint, so it holds every byte this primary wrote, then
    /// hand the lease over in one committed command.
    async fn hand_over(
        &mut self,
        cluster: &ClusterState,
        generation: Generation,
        to: &MemberName,
    ) -> anyhow::Result<()> {
        self.require_lease()?;
        let instance = self.instance()?.clone();
        let last = match instance.data_dir().await? {
            DataDir::Initialized(cd) if cd.cluster_state == ClusterStateOnDisk::ShutDown => cd
                .checkpoint
                .context("pg_controldata shows no checkpoint location")?,
            _ => bail!("the primary did not shut down cleanly; not handing over"),
        };
        let target = self.upstream(cluster, to)?;
        let deadline = tokio::time::Instant::now() + SWITCHOVER_CATCH_UP;
        loop {
            match instance.peer_replayed_lsn(&target).await {
                Ok(Some(replayed)) if replayed > last => break,
                Ok(_) => {}
                Err(err) => debug!(error = %err, "reading the switchover target's position"),
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{to} did not replay the shutdown checkpoint at {last} within {}s",
                    SWITCHOVER_CATCH_UP.as_secs()
                );
            }
            tokio::time::sleep(SWITCHOVER_POLL).await;
        }
        info!(%to, %last, "the target replayed all WAL; handing the leader lease over");
        self.give_lease(generation, to).await
    }

    /// The standby leader's switchover: stopped, it passes the lease to `to` at once (see
    /// `Action::PassLease`).
    async fn pass_lease(&mut self, generation: Generation, to: &MemberName) -> anyhow::Result<()> {
        self.require_lease()?;
        info!(%to, "the standby leader stopped; passing the leader lease");
        self.give_lease(generation, to).await
    }

    /// Commit the hand-over of this member's lease of `generation` to `to`; this member then
    /// rejoins as a standby (even in pause: the operator asked for it).
    async fn give_lease(&mut self, generation: Generation, to: &MemberName) -> anyhow::Result<()> {
        self.propose(Command::HandOver {
            member: self.me().clone(),
            generation,
            to: to.clone(),
        })
        .await?;
        self.memory.following = None;
        self.memory.handed_over = true;
        Ok(())
    }

    async fn cancel_switchover(&self) {
        match self.raft.propose(Command::CancelSwitchover).await {
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
    ) -> anyhow::Result<()> {
        let instance = self.instance()?.clone();
        if upstream.is_none() {
            self.require_lease()?;
        }
        let up = upstream.map(|m| self.source(cluster, m)).transpose()?;
        self.announce(DbState::Stopping, loop_wait).await;
        instance.stop(StopMode::Fast).await?;
        if upstream.is_none() {
            self.require_lease()?;
        }
        self.announce(DbState::Starting, loop_wait).await;
        let start = instance.start(up.as_ref());
        match timeout {
            Some(limit) => tokio::time::timeout(limit, start)
                .await
                .map_err(|_| anyhow!("postgres did not start within {}s", limit.as_secs()))??,
            None => start.await?,
        }
        self.memory.following = upstream.cloned();
        Ok(())
    }

    async fn propose(&self, command: Command) -> anyhow::Result<()> {
        let kind = command.kind();
        match self.raft.propose(command).await {
            Ok(Outcome::Applied) => Ok(()),
            Ok(Outcome::Rejected(r)) => bail!("{kind} was rejected: {r}"),
            Err(err) => Err(anyhow!(err).context(format!("proposing {kind}"))),
        }
    }

    async fn execute(&mut self, action: &Action, cluster: &ClusterState) -> anyhow::Result<()> {
        let me = self.me().clone();
        let loop_wait = self.dynamic(cluster).loop_wait;
        match action {
            Action::ClaimBootstrap => {
                let dcs = self.local_config().bootstrap_dcs().clone();
                self.propose(Command::ClaimBootstrap {
                    member: me,
                    dcs_config: dcs,
                })
                .await
            }
            Action::Bootstrap => {
                self.announce(DbState::InitializingNewCluster, loop_wait)
                    .await;
                let instance = self.instance()?.clone();
                match instance.bootstrap().await {
                    Ok(sysid) => {
                        self.propose(Command::FinishBootstrap { member: me, sysid })
                            .await
                    }
                    Err(err) => {
                        warn!(error = %err, "bootstrap failed; giving the claim up");
                        if let Ok(DataDir::Initialized(_)) = instance.data_dir().await {
                            let _ = instance.stop(crate::instance::StopMode::Immediate).await;
                            if let Ok(path) = instance.set_aside_data_dir().await {
                                warn!(path = %path.display(), "moved the failed data directory aside");
                            }
                        }
                        self.propose(Command::AbortBootstrap { member: me }).await?;
                        Err(anyhow!(err).context("bootstrapping a new cluster"))
                    }
                }
            }
            Action::FinishBootstrap => {
                let instance = self.instance()?;
                let sysid = match instance.data_dir().await? {
                    DataDir::Initialized(cd) => cd.sysid,
                    DataDir::Empty => bail!("the data directory is empty"),
                };
                self.propose(Command::FinishBootstrap { member: me, sysid })
                    .await
            }
            Action::Clone { from } => {
                let source = self.source(cluster, from)?;
                self.announce(DbState::CreatingReplica, loop_wait).await;
                // Fully qualified: `clone_from` is also `Clone::clone_from` on the `Arc`.
                Instance::clone_from(self.instance()?.as_ref(), &source)
                    .await
                    .with_context(|| format!("creating a replica from {from}"))?;
                self.memory.following = Some(from.clone());
                Ok(())
            }
            Action::Start { upstream } => {
                let instance = self.instance()?.clone();
                match upstream {
                    None => {
                        self.require_lease()?;
                        self.announce(DbState::Starting, loop_wait).await;
                        instance.start(None).await?;
                        self.memory.following = None;
                        self.slots_for = None;
                    }
                    Some(from) => {
                        let source = self.source(cluster, from)?;
                        self.announce(DbState::Starting, loop_wait).await;
                        instance.start(Some(&source)).await?;
                        self.memory.following = Some(from.clone());
                        self.memory.handed_over = false;
                    }
                }
                Ok(())
            }
            Action::Stop { mode } => {
                self.announce(DbState::Stopping, loop_wait).await;
                self.instance()?.stop(*mode).await?;
                Ok(())
            }
            Action::Checkpoint => {
                self.require_lease()?;
                self.instance()?.checkpoint().await?;
                Ok(())
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
                let passed = self.pass_lease(*generation, to).await;
                if passed.is_err() {
                    self.cancel_switchover().await;
                }
                passed
            }
            Action::CancelSwitchover => {
                self.cancel_switchover().await;
                Ok(())
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
                    Ok(()) => RestartResult::Restarted,
                    Err(err) => RestartResult::Failed {
                        reason: format!("{err:#}"),
                    },
                };
                self.propose(Command::FinishRestart {
                    member: me,
                    outcome: RestartOutcome {
                        requested_at: *requested_at,
                        result,
                    },
                })
                .await?;
                restarted
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
            Action::FinishReinit => {
                self.memory.following = None;
                self.propose(Command::FinishReinit { member: me }).await
            }
            Action::Promote { generation } => {
                self.require_lease()?;
                let instance = self.instance()?.clone();
                instance.promote(*generation).await?;
                self.memory.following = None;
                self.slots_for = None;
                // Strict synchronous mode: no commit may be acknowledged before a standby has
                // it, not even in the moment before the loop names the synchronous standbys.
                let settings = sync_settings(&self.dynamic(cluster));
                if settings.mode != SyncMode::Off && settings.strict {
                    let block = crate::ha::sync::standby_names(
                        &crate::ha::sync::Copies::default(),
                        settings.mode,
                        true,
                    );
                    instance.set_synchronous_standby_names(&block).await?;
                }
                // Others rewind against this primary: a checkpoint makes its new timeline
                // visible in pg_control (Patroni does the same after promote).
                if let Err(err) = instance.checkpoint().await {
                    warn!(error = %err, "checkpoint after promotion failed");
                }
                Ok(())
            }
            Action::Follow { upstream } => {
                let source = self.source(cluster, upstream)?;
                self.instance()?.follow(&source).await?;
                self.memory.following = Some(upstream.clone());
                Ok(())
            }
            Action::Rewind { from } => {
                let up = self.upstream(cluster, from)?;
                self.announce(DbState::Rewinding, loop_wait).await;
                match self.instance()?.rewind(&up).await {
                    Ok(()) => {
                        self.memory.rewind_failed = false;
                        Ok(())
                    }
                    Err(err) => {
                        self.memory.rewind_failed = true;
                        Err(anyhow!(err).context(format!("rewinding from {from}")))
                    }
                }
            }
            Action::SetAsideDataDir => {
                let path = self.instance()?.set_aside_data_dir().await?;
                warn!(path = %path.display(), "moved the data directory aside");
                self.memory.rewind_failed = false;
                Ok(())
            }
            Action::FencePeer { member, ended } => {
                let peer = self.upstream(cluster, member)?;
                let outcome = self.instance()?.fence_peer(&peer).await?;
                match outcome {
                    crate::instance::PeerFence::Fenced => warn!(
                        %member,
                        "fenced the former primary's database over SQL: it was still writable"
                    ),
                    other => {
                        info!(%member, ?other, "the former primary's database needed no fence")
                    }
                }
                self.memory.fenced_after = Some(*ended);
                Ok(())
            }
            Action::StopStreaming { ended } => {
                self.instance()?.stop_replication().await?;
                self.memory.following = None;
                self.memory.detached_after = Some(*ended);
                Ok(())
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
                .ok_or_else(|| anyhow!("the WAL position is unknown"))?;
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
                let last_lsn = self.local.borrow().status.wal_position;
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
            } => {
                self.propose(Command::SetSync {
                    member: me,
                    generation: *generation,
                    standbys: standbys.clone(),
                    quorum: *quorum,
                })
                .await
            }
            Action::SetSyncNames { generation, value } => {
                self.require_lease()?;
                let at = self
                    .instance()?
                    .set_synchronous_standby_names(value)
                    .await?;
                self.memory.sync_names_applied = at.map(|at| SyncNamesApplied {
                    generation: *generation,
                    value: value.clone(),
                    at,
                });
                Ok(())
            }
            Action::RecordHistory { timeline } => {
                let switches = self.instance()?.timeline_history(*timeline).await?;
                let Some(last) = switches.last() else {
                    bail!("the history file of timeline {timeline} lists no switch");
                };
                self.propose(Command::AddHistory {
                    entry: crate::state::HistoryEntry {
                        timeline: last.timeline,
                        lsn: last.lsn,
                        reason: last.reason.clone(),
                        at: UnixMillis::now(),
                        new_leader: me,
                    },
                })
                .await
            }
            Action::SyncSlots => {
                let use_slots = self.dynamic(cluster).postgresql.use_slots;
                let mut names: Vec<MemberName> = if use_slots {
                    cluster
                        .members
                        .iter()
                        .filter(|(name, m)| **name != me && m.conn_url.is_some())
                        .map(|(name, _)| name.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                names.sort();
                if self.slots_for.as_ref() == Some(&names) {
                    return Ok(());
                }
                self.instance()?.sync_replication_slots(&names).await?;
                self.slots_for = Some(names);
                Ok(())
            }
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
