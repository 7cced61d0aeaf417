//! The agent loop (DESIGN section 6): observe -> `ha::decide` -> execute -> report, every
//! `loop_wait` and at once when the leader, the failover intent or the bootstrap record changes.
//!
//! Execution is sequential and idempotent; the first failed action ends the tick and the next
//! tick observes afresh. Before any action that keeps or makes a primary the lease is checked
//! again, because time passed since `decide` saw it (and the process may have been paused).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::{Config, DynamicConfig, SynchronousMode};
use crate::ha::sync::{SyncMode, SyncSettings};
use crate::ha::{Action, HaSettings, LeaseView, Memory, Observation, SyncNamesApplied, decide};
use crate::instance::{DataDir, Instance, Upstream};
use crate::node::report::{member_record, worth_reporting};
use crate::node::view::LocalView;
use crate::raft::RaftNode;
use crate::state::{ClusterState, Command, DbState, Outcome};
use crate::types::{MemberName, UnixMillis};

pub struct HaLoop {
    pub config: Arc<Config>,
    pub raft: RaftNode,
    pub instance: Option<Arc<dyn Instance>>,
    pub clock: Arc<dyn Clock>,
    pub lease: watch::Receiver<LeaseView>,
    pub local: watch::Sender<Arc<LocalView>>,
    memory: Memory,
    last_reason: String,
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

/// The parts of the cluster state whose change should wake the loop at once.
fn wake_key(s: &ClusterState) -> impl PartialEq + use<> {
    (
        s.leader.as_ref().map(|l| (l.member.clone(), l.generation)),
        s.failover.as_ref().map(|f| (f.ended, f.reports.len())),
        s.initialize.clone(),
    )
}

impl HaLoop {
    pub fn new(
        config: Arc<Config>,
        raft: RaftNode,
        instance: Option<Arc<dyn Instance>>,
        clock: Arc<dyn Clock>,
        lease: watch::Receiver<LeaseView>,
        local: watch::Sender<Arc<LocalView>>,
    ) -> Self {
        Self {
            config,
            raft,
            instance,
            clock,
            lease,
            local,
            memory: Memory::default(),
            last_reason: String::new(),
            slots_for: None,
            peers_for: None,
        }
    }

    fn me(&self) -> &MemberName {
        &self.config.name
    }

    fn dynamic(&self, cluster: &ClusterState) -> DynamicConfig {
        if cluster.config.is_null() {
            return self.config.bootstrap.dynamic.clone();
        }
        DynamicConfig::from_json(&cluster.config)
            .unwrap_or_else(|_| self.config.bootstrap.dynamic.clone())
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut states = self.raft.subscribe();
        let mut lease = self.lease.clone();
        loop {
            let cluster = self.raft.state();
            let key = wake_key(&cluster);
            let dynamic = self.dynamic(&cluster);
            self.tick(&cluster, &dynamic).await;
            let deadline = tokio::time::sleep(dynamic.loop_wait);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = &mut deadline => break,
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

    async fn tick(&mut self, cluster: &ClusterState, dynamic: &DynamicConfig) {
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
                .config
                .postgresql
                .as_ref()
                .and_then(|p| p.use_pg_rewind)
                .unwrap_or(dynamic.postgresql.use_pg_rewind),
            paused: dynamic.pause,
            sync: sync_settings(dynamic),
        };
        let lease = *self.lease.borrow();
        let decision = decide(&Observation {
            me: self.me(),
            now,
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
        let t = &self.config.tags;
        t.get("nofailover")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
            || t.get("failover_priority").and_then(|v| v.as_i64()) == Some(0)
    }

    fn publish(&self, f: impl FnOnce(&mut LocalView)) {
        self.local.send_modify(|arc| f(Arc::make_mut(arc)));
    }

    async fn report(&self, dynamic: &DynamicConfig) {
        let cluster = self.raft.state();
        let previous = cluster.members.get(self.me());
        let view = self.local.borrow().clone();
        let record = member_record(&self.config, self.me(), &cluster, &view, previous);
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
        let record = member_record(&self.config, self.me(), &cluster, &view, previous);
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
                let dcs = self.config.bootstrap_dcs().clone();
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
                let upstream = self.upstream(cluster, from)?;
                self.announce(DbState::CreatingReplica, loop_wait).await;
                // Fully qualified: `clone_from` is also `Clone::clone_from` on the `Arc`.
                Instance::clone_from(self.instance()?.as_ref(), &upstream)
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
                    Some(member) => {
                        let up = self.upstream(cluster, member)?;
                        self.announce(DbState::Starting, loop_wait).await;
                        instance.start(Some(&up)).await?;
                        self.memory.following = Some(member.clone());
                    }
                }
                Ok(())
            }
            Action::Stop { mode } => {
                self.announce(DbState::Stopping, loop_wait).await;
                self.instance()?.stop(*mode).await?;
                Ok(())
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
                let up = self.upstream(cluster, upstream)?;
                self.instance()?.follow(&up).await?;
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
