//! [`RaftNode`]: one agent's Raft member. Opens the store, runs openraft and the gRPC service,
//! joins or initializes a cluster (`join`), routes commands and membership changes to the
//! leader, and publishes the applied [`ClusterState`], the [`RaftStatus`] and where this node
//! stands in the membership ([`Standing`]).
//!
//! Tasks (all stopped by `shutdown` or by cancelling the token given to `start`): the gRPC
//! server, the status watcher, the stopper that shuts openraft down and flushes the store, and
//! while the log is empty the joiner.
//!
//! Hazards: a node initializes only with the configured membership (self + partners), never
//! with a subset, and never when a partner already holds a log (stack.md, pitfall 5). Commands
//! are stamped on the leader, not here. A failed or timed-out proposal may still commit: see
//! [`ProposeError`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{Config, ReadPolicy, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use super::change::{CHANGE_TIMEOUT, local_members};
use super::join::{self, JoinState};
use super::leader::{Answer, Done, Leader, Op};
use super::log_store::LogStore;
use super::membership::{MemberChange, RaftMembers};
use super::network::Network;
use super::peers::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, MAX_MESSAGE, Peers};
use super::proto::raft_server::RaftServer;
use super::service::RaftService;
use super::settings::Tuning;
use super::state_machine::StateMachine;
use super::store::Store;
use super::transport::Transport;
use super::type_config::Raft;
use super::{MembersError, NodeId, PeerAuth, ProposeError, RaftError, RaftSettings, RaftStatus};
use crate::state::{ClusterState, Command, Outcome};

/// How long `propose` and `transfer_leadership` may take, leader election included.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `members` waits for the leader's view (a caller falls back to its own).
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before asking again after a node said it does not lead.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long each task may take to stop (the gRPC server waits for open calls).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// HTTP/2 streams one connection may have open, and the size of its headers: a peer makes a
/// few calls at once with a few short headers.
const MAX_STREAMS: u32 = 32;
const MAX_HEADER_LIST: u32 = 16 * 1024;
/// openraft's default (200 ms) is too short for a snapshot on a loaded machine.
const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 2000;

/// This agent's member of the cluster's Raft group. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

/// Where this node stands in the Raft membership. Only a voter's agent runs the HA loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Voter,
    /// Being added: it receives the log but does not vote yet.
    Learner,
    /// The log is empty (never [`JoinState::Initialized`]).
    Joining(JoinState),
    /// The membership this node knows does not list it, and its id is not retired: a node
    /// being added replays older memberships first; or a removal stopped before retiring it.
    Outside,
    /// Its node id is retired: it was removed from the cluster.
    Removed,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    leader: Arc<Leader>,
    transport: Arc<Transport>,
    store: Store,
    state: watch::Receiver<Arc<ClusterState>>,
    status: watch::Receiver<RaftStatus>,
    join: watch::Receiver<JoinState>,
    /// How long a quorum may take to confirm leadership.
    confirm_timeout: Duration,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.inner.id)
            .field("status", &*self.inner.status.borrow())
            .finish()
    }
}

impl RaftNode {
    /// Opens sled in `data_dir` (refusing a store of another scope), builds openraft (pre-vote
    /// on), serves the gRPC service on `listener` until `shutdown` is cancelled, and if the log
    /// is empty starts the joiner, which initializes the cluster with membership =
    /// {self_addr} ∪ partner_addrs only if no partner holds a log (`join`).
    ///
    /// Cancelling `shutdown` stops the service and Raft; [`RaftNode::shutdown`] does the same
    /// and waits until the store is flushed.
    pub async fn start(
        settings: RaftSettings,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<RaftNode, RaftError> {
        Self::start_with(settings, Tuning::default(), listener, shutdown).await
    }

    pub(crate) async fn start_with(
        settings: RaftSettings,
        tuning: Tuning,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<RaftNode, RaftError> {
        settings.validate()?;
        let id = settings.node_id();
        // Certificates and keys are read before anything touches the disk: an unusable file
        // refuses the start.
        let transport = {
            let (auth, scope) = (settings.auth.clone(), settings.scope.clone());
            tokio::task::spawn_blocking(move || Transport::load(auth, &scope))
                .await
                .map_err(|e| RaftError::Start(format!("loading the credentials failed: {e}")))??
        };
        let transport = Arc::new(transport);
        let store = {
            let dir = settings.data_dir.clone();
            let scope = settings.scope.clone();
            tokio::task::spawn_blocking(move || Store::open(&dir, &scope))
                .await
                .map_err(|e| RaftError::Start(format!("the store opener failed: {e}")))??
        };
        let (state_tx, state_rx) = watch::channel(Arc::new(ClusterState::default()));
        let state_machine = StateMachine::open(&store, state_tx)?;
        let log_store = LogStore::open(&store)?;
        let local_ip = listener.local_addr().ok().map(|a| a.ip());
        let peers = Arc::new(Peers::with_local_ip(
            id,
            &settings.scope,
            local_ip,
            transport.clone(),
        )?);
        let config = Config {
            cluster_name: settings.scope.clone(),
            heartbeat_interval: millis(settings.heartbeat),
            election_timeout_min: millis(settings.election_timeout_min),
            election_timeout_max: millis(settings.election_timeout_max),
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every),
            max_in_snapshot_log_to_keep: tuning.logs_to_keep,
            enable_pre_vote: Some(true),
            // A restarted leader wins an election again rather than resuming on its own.
            enable_leader_restore: Some(false),
            ..Config::default()
        }
        .validate()
        .map_err(|e| RaftError::InvalidSettings(e.to_string()))?;
        // Memory: Raft::new creates openraft's runtime-statistics histograms. The crate they
        // come from on crates.io (base2histogram 0.2.3) would build lookup tables for all 16
        // bucket widths here, about 26 MB resident for good; the workspace patches in
        // `replacements/base2histogram`, which computes buckets instead.
        let raft = Raft::new(
            id,
            Arc::new(config),
            Network::new(peers.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| RaftError::Start(e.to_string()))?;

        let leader = Arc::new(Leader::new(raft.clone(), peers.clone(), state_rx.clone()));
        let stop = shutdown.child_token();
        let incoming = transport.incoming(listener, stop.clone());
        let server = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            // A slow or hostile client: few streams, small headers, per connection (the
            // connection count and the handshake are bounded by `transport`).
            .max_concurrent_streams(Some(MAX_STREAMS))
            .concurrency_limit_per_connection(MAX_STREAMS as usize)
            .http2_max_header_list_size(Some(MAX_HEADER_LIST))
            .add_service(
                RaftServer::new(RaftService::new(leader.clone(), &settings, PROPOSE_TIMEOUT))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        // Raft stops only once the server has: an RPC arriving after openraft stopped is logged
        // as an ERROR by openraft, at every stop of the agent.
        let served = CancellationToken::new();
        let server_done = served.clone();
        let server = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("the raft gRPC server failed: {e}");
            }
            server_done.cancel();
        });

        let initial = RaftStatus::from_metrics(&raft.metrics().borrow_watched());
        let (status_tx, status_rx) = watch::channel(initial);
        let watcher = tokio::spawn(watch_status(raft.clone(), status_tx, stop.clone()));
        let stopper = tokio::spawn(stop_on_cancel(
            raft.clone(),
            store.clone(),
            stop.clone(),
            served,
        ));
        let mut tasks = vec![server, watcher, stopper];

        let initialized = match raft.is_initialized().await {
            Ok(initialized) => initialized,
            Err(e) => {
                stop.cancel();
                for task in tasks {
                    let _ = task.await;
                }
                return Err(RaftError::Start(e.to_string()));
            }
        };
        let (join_tx, join_rx) = watch::channel(if initialized {
            JoinState::Initialized
        } else {
            JoinState::AwaitingPeers
        });
        if initialized {
            warn_if_reconfigured(&settings, &status_rx.borrow());
        } else {
            let joiner = join::run(raft.clone(), peers, settings.clone(), join_tx, stop.clone());
            tasks.push(tokio::spawn(joiner));
        }
        let node = RaftNode {
            inner: Arc::new(Inner {
                id,
                raft,
                leader,
                transport,
                store,
                state: state_rx,
                status: status_rx,
                join: join_rx,
                confirm_timeout: settings.election_timeout_min,
                stop,
                tasks: Mutex::new(tasks),
            }),
        };
        tracing::info!(
            node_id = id,
            addr = %settings.self_addr,
            scope = %settings.scope,
            peers = settings.auth.mode(),
            "raft node started"
        );
        Ok(node)
    }

    /// Commit a command. The leader stamps it with its time and writes it; a follower forwards
    /// it to the leader. Returns the outcome of `state::apply`. Bounded by a 5 s timeout.
    pub async fn propose(&self, command: Command) -> Result<Outcome, ProposeError> {
        match self
            .route(Op::Write(Box::new(command)), PROPOSE_TIMEOUT)
            .await?
        {
            Done::Outcome(outcome) => Ok(outcome),
            other => Err(unexpected("a command", &other)),
        }
    }

    /// Read the peers' credentials again (`auth`'s files, or its password): new connections
    /// use them, cached channels to the peers are replaced, and open connections from peers
    /// the new credentials refuse are closed. Refused, changing nothing, when a file is
    /// unusable or `auth` is another mode than the running one.
    pub async fn reload_peer_auth(&self, auth: PeerAuth) -> Result<(), RaftError> {
        let transport = self.inner.transport.clone();
        tokio::task::spawn_blocking(move || transport.reload(auth))
            .await
            .map_err(|e| RaftError::Start(format!("reloading the credentials failed: {e}")))??;
        self.inner.leader.peers.reset();
        Ok(())
    }

    /// Add or remove a voter, on the leader wherever it is (see `change` for the steps and
    /// `membership` for the refusals). `Ok` says what was done.
    pub async fn change_members(&self, change: MemberChange) -> Result<String, MembersError> {
        match self.route(Op::Change(change), CHANGE_TIMEOUT).await? {
            Done::Changed(Ok(done)) => Ok(done),
            Done::Changed(Err(refusal)) => Err(MembersError::Refused(refusal)),
            other => Err(unexpected("a membership change", &other).into()),
        }
    }

    /// The membership with the leader's view of each node (when it last answered).
    pub async fn members(&self) -> Result<RaftMembers, ProposeError> {
        match self.route(Op::Members, READ_TIMEOUT).await? {
            Done::Members(members) => Ok(members),
            other => Err(unexpected("a membership read", &other)),
        }
    }

    /// The membership as this node knows it, without asking the leader.
    pub fn local_members(&self) -> RaftMembers {
        local_members(&self.inner.raft)
    }

    /// Where this node stands in the membership it knows.
    pub fn standing(&self) -> Standing {
        let status = self.inner.status.borrow();
        if status.is_voter() {
            Standing::Voter
        } else if status.is_learner() {
            Standing::Learner
        } else if self
            .inner
            .state
            .borrow()
            .retired
            .contains_key(&self.inner.id)
        {
            Standing::Removed
        } else if !status.voters.is_empty() {
            Standing::Outside
        } else {
            match *self.inner.join.borrow() {
                // A leader reached us (a vote, the first entries): the membership follows.
                JoinState::Initialized => Standing::Joining(JoinState::AwaitingLeader),
                waiting => Standing::Joining(waiting),
            }
        }
    }

    /// The latest applied cluster state; updated after every apply and snapshot install.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.inner.state.clone()
    }

    pub fn state(&self) -> Arc<ClusterState> {
        self.inner.state.borrow().clone()
    }

    /// Raft status for the HA layer, REST and metrics; updated from openraft metrics.
    pub fn status(&self) -> watch::Receiver<RaftStatus> {
        self.inner.status.clone()
    }

    /// True only if this node is leader and a quorum confirmed it just now (read index).
    pub async fn confirm_leadership(&self) -> bool {
        if !self.inner.status.borrow().is_leader {
            return false;
        }
        let confirmed = tokio::time::timeout(
            self.inner.confirm_timeout,
            self.inner.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await;
        matches!(confirmed, Ok(Ok(_)))
    }

    /// On the Raft leader: the other nodes that acknowledged a heartbeat or an append within
    /// the shortest election timeout, i.e. that Raft itself has just heard from. Empty on a
    /// follower, and for a node a new leader has not heard from yet.
    pub fn recently_heard(&self) -> Vec<NodeId> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        let Some(heartbeats) = &metrics.heartbeat else {
            return Vec::new();
        };
        heartbeats
            .iter()
            .filter(|(id, acked)| {
                **id != self.inner.id
                    && acked.as_ref().is_some_and(|at| {
                        openraft::Instant::elapsed(&**at) <= self.inner.confirm_timeout
                    })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ask the leader to hand leadership to `target`, a voter. `Ok(())` once requested; the
    /// election that follows is observed through [`RaftNode::status`].
    pub async fn transfer_leadership(&self, target: NodeId) -> Result<(), ProposeError> {
        match self.route(Op::Transfer(target), PROPOSE_TIMEOUT).await? {
            Done::Transferred => Ok(()),
            other => Err(unexpected("a transfer", &other)),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.id
    }

    /// Size of the sled store on disk, bytes.
    pub fn store_size_on_disk(&self) -> u64 {
        self.inner.store.size_on_disk()
    }

    /// Stop serving, stop Raft and flush the store. Idempotent.
    pub async fn shutdown(&self) {
        let mut tasks = self.inner.tasks.lock().await;
        self.inner.stop.cancel();
        for mut task in tasks.drain(..) {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("a raft task ended badly: {e}"),
                Err(_) => {
                    tracing::warn!("a raft task did not stop in time; aborting it");
                    task.abort();
                }
            }
        }
    }

    /// Hold this node's membership-change lock, as a change in progress does.
    #[cfg(test)]
    pub(crate) async fn hold_membership_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.leader.changing.lock().await
    }

    /// openraft's own metrics, for tests that look below [`RaftStatus`].
    #[cfg(test)]
    pub(crate) fn metrics(&self) -> openraft::RaftMetrics<super::type_config::TypeConfig> {
        self.inner.raft.metrics().borrow_watched().clone()
    }

    /// Carry out `op` on the leader, wherever it is, within `limit`.
    async fn route(&self, op: Op, limit: Duration) -> Result<Done, ProposeError> {
        let deadline = Instant::now() + limit;
        let mut status = self.inner.status.clone();
        let mut hint: Option<(NodeId, String)> = None;
        let mut saw_leader = false;
        loop {
            let target = hint.take().map(|(id, addr)| (id, Some(addr))).or_else(|| {
                let s = status.borrow_and_update();
                s.leader.map(|id| (id, s.leader_addr.clone()))
            });
            let (asked, answer) = match target {
                Some((id, _)) if id == self.inner.id => {
                    let answer = self.inner.leader.execute(op.clone());
                    (id, tokio::time::timeout_at(deadline, answer).await)
                }
                Some((id, Some(addr))) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let answer = self.inner.leader.peers.forward(&addr, &op, remaining);
                    (id, tokio::time::timeout_at(deadline, answer).await)
                }
                _ => match tokio::time::timeout_at(deadline, status.changed()).await {
                    Err(_) if saw_leader => return Err(ProposeError::Timeout),
                    Err(_) => return Err(ProposeError::NoLeader),
                    Ok(Err(_)) => return Err(ProposeError::Fatal("raft stopped".into())),
                    Ok(Ok(())) => continue,
                },
            };
            saw_leader = true;
            match answer {
                Err(_) => return Err(ProposeError::Timeout),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Answer::Done(done))) => return Ok(done),
                Ok(Ok(Answer::NotLeader {
                    leader_id,
                    leader_addr,
                })) => {
                    if let (Some(id), Some(addr)) = (leader_id, leader_addr)
                        && id != asked
                    {
                        hint = Some((id, addr));
                    }
                    if Instant::now() + RETRY_PAUSE >= deadline {
                        return Err(ProposeError::Timeout);
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}

/// The leader answered `op` with something that belongs to another request.
fn unexpected(op: &str, done: &Done) -> ProposeError {
    ProposeError::Fatal(format!("the leader answered {op} with {done:?}"))
}

/// A node restarted with a log: its stored membership wins over the configuration, which
/// differs after membership changes (expected) or a mistake (worth a look).
fn warn_if_reconfigured(settings: &RaftSettings, status: &RaftStatus) {
    let stored: BTreeMap<NodeId, String> = status.voters.iter().cloned().collect();
    let configured = settings.voters();
    if stored != configured {
        tracing::warn!(
            stored = ?stored,
            configured = ?configured,
            "the stored raft membership differs from self_addr + partner_addrs (members were \
             added or removed since, or the configuration is wrong); the stored one is used"
        );
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Publish [`RaftStatus`] whenever openraft's metrics change; log leader changes.
async fn watch_status(raft: Raft, status: watch::Sender<RaftStatus>, stop: CancellationToken) {
    let mut metrics = raft.metrics();
    let mut last_leader = None;
    loop {
        let current = RaftStatus::from_metrics(&metrics.borrow_watched());
        if current.leader != last_leader {
            last_leader = current.leader;
            match (current.leader, current.is_leader) {
                (Some(_), true) => {
                    tracing::info!(term = current.term, "this node is now the raft leader")
                }
                (Some(leader), false) => tracing::info!(
                    term = current.term,
                    leader,
                    leader_addr = current.leader_addr.as_deref().unwrap_or("?"),
                    "raft leader changed"
                ),
                (None, _) => tracing::info!(term = current.term, "no raft leader"),
            }
        }
        status.send_if_modified(|s| {
            let changed = *s != current;
            if changed {
                *s = current;
            }
            changed
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = metrics.changed() => if changed.is_err() { break },
        }
    }
}

/// When the token is cancelled: once the gRPC server has stopped (or after a grace), stop
/// openraft, then flush the store.
async fn stop_on_cancel(
    raft: Raft,
    store: Store,
    stop: CancellationToken,
    served: CancellationToken,
) {
    stop.cancelled().await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, served.cancelled()).await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!("raft did not stop cleanly: {e}");
    }
    if let Err(e) = store.flush().await {
        tracing::warn!("cannot flush the raft store: {e}");
    }
    tracing::info!("raft node stopped");
}
