//! An in-memory Raft group: the fake beside [`Consensus`] for the runtime's unit tests and the
//! deterministic simulation. It keeps Raft's promises that the runtime relies on (one committed
//! order of commands, applied through the real `state::apply`, stamped with the leader's wall
//! time; a command commits only through a leader that reaches a majority; a node sees the
//! committed state only while it reaches the leader), and lets a test break everything else:
//! messages delayed or dropped, links cut, nodes down or paused, the leader lost.
//!
//! Time is tokio's (paused in tests), randomness a seeded generator, so a run is repeatable.
//! A driver task ([`MemoryRaft::drive`]) elects leaders and replicates; it must run beside the
//! nodes.
//!
//! Simplifications, on purpose: no log, only the committed state (a lagging node catches up in
//! one step); an entry that was not committed when its proposal gave up is dropped, never
//! committed later; membership is fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Consensus, NodeId, ProposeError, RaftStatus, Standing};
use crate::clock::Clock;
use crate::state::{ClusterState, Command, Outcome, Proposal, apply};

/// How long `propose` waits for a leader that reaches a majority (as `RaftNode`).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the driver and waiting proposals look again.
const STEP: Duration = Duration::from_millis(25);

/// What the network does to messages, changed by the test at any time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Each way of a proposal takes up to this long.
    pub max_delay: Duration,
    /// The chance that a proposal's request, or its answer, is lost.
    pub drop_chance: f64,
    /// How long the cluster is without a leader after it lost one (at least; a random part
    /// of as much again is added).
    pub election_timeout: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_millis(5),
            drop_chance: 0.0,
            election_timeout: Duration::from_millis(400),
        }
    }
}

struct Node {
    addr: String,
    /// Down (crashed or paused): sends and answers nothing.
    up: bool,
    /// The term of the leadership this node believes it holds, if any (a leader cut off keeps
    /// believing until it hears of a newer term).
    leads: Option<u64>,
    state: watch::Sender<Arc<ClusterState>>,
    status: watch::Sender<RaftStatus>,
}

struct Group {
    nodes: BTreeMap<NodeId, Node>,
    /// Pairs of nodes that cannot reach each other (both ways), smaller id first.
    cut: BTreeSet<(NodeId, NodeId)>,
    committed: Arc<ClusterState>,
    index: u64,
    term: u64,
    leader: Option<NodeId>,
    /// When the next election completes, while there is no leader.
    election_at: Option<Instant>,
    faults: Faults,
    rng: fastrand::Rng,
    clock: Arc<dyn Clock>,
}

impl Group {
    fn reaches(&self, a: NodeId, b: NodeId) -> bool {
        let up = |n: NodeId| self.nodes.get(&n).is_some_and(|n| n.up);
        a == b && up(a) || up(a) && up(b) && !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn majority(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Whether `leader` reaches a majority (itself included).
    fn has_quorum(&self, leader: NodeId) -> bool {
        self.nodes
            .keys()
            .filter(|n| self.reaches(leader, **n))
            .count()
            >= self.majority()
    }

    fn voters(&self) -> Vec<(NodeId, String)> {
        self.nodes
            .iter()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// Publish the committed state and the leader to every node that reaches the leader.
    fn replicate(&mut self) {
        let Some(leader) = self.leader else { return };
        let reached: Vec<NodeId> = self
            .nodes
            .keys()
            .copied()
            .filter(|n| self.reaches(leader, *n))
            .collect();
        let voters = self.voters();
        for id in reached {
            let node = &self.nodes[&id];
            if !Arc::ptr_eq(&node.state.borrow(), &self.committed) {
                node.state.send_replace(self.committed.clone());
            }
            self.publish_status(id, Some(leader), voters.clone());
        }
    }

    fn publish_status(&self, id: NodeId, leader: Option<NodeId>, voters: Vec<(NodeId, String)>) {
        let node = &self.nodes[&id];
        let is_leader = node.leads.is_some() && leader == Some(id);
        let status = RaftStatus {
            node_id: id,
            term: self.term,
            leader,
            is_leader,
            last_log_index: Some(self.index),
            committed: Some(self.index),
            applied: Some(self.index),
            leader_addr: leader
                .and_then(|l| self.nodes.get(&l))
                .map(|n| n.addr.clone()),
            voters,
            learners: Vec::new(),
        };
        if *node.status.borrow() != status {
            node.status.send_replace(status);
        }
    }

    /// Elect, depose and replicate: one step of the driver.
    fn step(&mut self, now: Instant) {
        if let Some(leader) = self.leader
            && !self.has_quorum(leader)
        {
            // The leader lost its majority (or died): a new election starts. It keeps believing
            // it leads (`leads`) until it hears of the new term.
            self.leader = None;
        }
        if self.leader.is_none() {
            let at = *self.election_at.get_or_insert_with(|| {
                let base = self.faults.election_timeout;
                let extra = base.mul_f64(self.rng.f64());
                now + base + extra
            });
            if now >= at {
                self.election_at = None;
                let candidates: Vec<NodeId> = self
                    .nodes
                    .keys()
                    .copied()
                    .filter(|n| self.has_quorum(*n))
                    .collect();
                if !candidates.is_empty() {
                    let winner = candidates[self.rng.usize(..candidates.len())];
                    self.term += 1;
                    self.leader = Some(winner);
                    if let Some(n) = self.nodes.get_mut(&winner) {
                        n.leads = Some(self.term);
                    }
                }
            }
        }
        // A deposed leader that hears the current leader (or anyone of a majority) steps down.
        let leader = self.leader;
        let term = self.term;
        let stale: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(id, n)| n.up && n.leads.is_some_and(|t| t < term || Some(**id) != leader))
            .map(|(id, _)| *id)
            .filter(|id| leader.is_some_and(|l| self.reaches(l, *id)))
            .collect();
        for id in stale {
            if let Some(n) = self.nodes.get_mut(&id) {
                n.leads = None;
            }
        }
        // Nodes cut from the leader lose sight of it; a deposed leader still thinks it leads.
        let voters = self.voters();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let sees = leader.filter(|l| self.reaches(*l, id));
            match sees {
                Some(_) => {}
                None if self.nodes[&id].up => {
                    let believed = self.nodes[&id].leads.map(|_| id);
                    self.publish_status(id, believed, voters.clone());
                }
                None => {}
            }
        }
        self.replicate();
    }
}

/// The group: create nodes, break things, and run [`MemoryRaft::drive`].
#[derive(Clone)]
pub struct MemoryRaft {
    group: Arc<Mutex<Group>>,
}

impl MemoryRaft {
    /// A group with no node yet, its randomness seeded, stamping commands with `clock`'s wall
    /// time.
    pub fn new(seed: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            group: Arc::new(Mutex::new(Group {
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
                committed: Arc::new(ClusterState::default()),
                index: 0,
                term: 0,
                leader: None,
                election_at: None,
                faults: Faults::default(),
                rng: fastrand::Rng::with_seed(seed),
                clock,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Group> {
        self.group.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a voter (before the group runs).
    pub fn add_node(&self, id: NodeId, addr: &str) -> MemoryNode {
        let mut g = self.lock();
        let (state, _) = watch::channel(g.committed.clone());
        let (status, _) = watch::channel(RaftStatus {
            node_id: id,
            ..Default::default()
        });
        g.nodes.insert(
            id,
            Node {
                addr: addr.to_owned(),
                up: true,
                leads: None,
                state,
                status,
            },
        );
        MemoryNode {
            id,
            group: self.clone(),
        }
    }

    /// Elect and replicate until `shutdown`.
    pub async fn drive(self, shutdown: CancellationToken) {
        loop {
            {
                let mut g = self.lock();
                let now = Instant::now();
                g.step(now);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(STEP) => {}
            }
        }
    }

    /// A node's process stops (crash, pause) or comes back.
    pub fn set_up(&self, id: NodeId, up: bool) {
        let mut g = self.lock();
        if let Some(n) = g.nodes.get_mut(&id) {
            n.up = up;
            if !up {
                // A crashed node forgets nothing it applied; a paused one keeps believing.
            }
        }
        g.step(Instant::now());
    }

    /// Cut or heal the link between two nodes.
    pub fn set_link(&self, a: NodeId, b: NodeId, connected: bool) {
        let mut g = self.lock();
        let pair = (a.min(b), a.max(b));
        if connected {
            g.cut.remove(&pair);
        } else {
            g.cut.insert(pair);
        }
        g.step(Instant::now());
    }

    pub fn heal_links(&self) {
        let mut g = self.lock();
        g.cut.clear();
        g.step(Instant::now());
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// The leader steps down (an election follows), as when its process stalls briefly.
    pub fn lose_leader(&self) {
        let mut g = self.lock();
        if let Some(l) = g.leader.take()
            && let Some(n) = g.nodes.get_mut(&l)
        {
            n.leads = None;
        }
        g.step(Instant::now());
    }

    /// The current leader, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.lock().leader
    }

    /// One line: term, leader, and each node's view, for a failing schedule's report.
    pub fn describe(&self) -> String {
        let g = self.lock();
        let nodes: Vec<String> = g
            .nodes
            .iter()
            .map(|(id, n)| {
                format!(
                    "{id}{}{} sees {:?} applied {}",
                    if n.up { "" } else { " down" },
                    n.leads.map_or(String::new(), |t| format!(" leads@{t}")),
                    n.status.borrow().leader,
                    n.state.borrow().generation
                )
            })
            .collect();
        format!(
            "raft term {} leader {:?} index {} cut {:?}; {}",
            g.term,
            g.leader,
            g.index,
            g.cut,
            nodes.join("; ")
        )
    }

    /// The committed state.
    pub fn committed(&self) -> Arc<ClusterState> {
        self.lock().committed.clone()
    }
}

/// One node of a [`MemoryRaft`]: what its agent's runtime sees.
#[derive(Clone)]
pub struct MemoryNode {
    id: NodeId,
    group: MemoryRaft,
}

/// One attempt to commit a proposal.
enum Attempt {
    Committed(Outcome),
    Refused(ProposeError),
    /// The request never reached the leader.
    Lost,
    /// No leader with a majority reachable from this node (yet).
    NoLeader,
}

impl MemoryNode {
    fn try_commit(&self, command: &Command, request_lost: bool) -> Attempt {
        let mut g = self.group.lock();
        let Some(leader) = g
            .leader
            .filter(|l| g.reaches(self.id, *l) && g.has_quorum(*l))
        else {
            return Attempt::NoLeader;
        };
        if g.nodes[&self.id].leads.is_some() && leader != self.id {
            // A deposed leader that has not heard of the new term yet: its write cannot commit.
            return Attempt::Refused(ProposeError::Unreachable(
                "this node's leadership ended".into(),
            ));
        }
        if request_lost {
            return Attempt::Lost;
        }
        let mut state = (*g.committed).clone();
        let proposal = Proposal {
            at: g.clock.wall_now(),
            command: command.clone(),
        };
        let outcome = apply(&mut state, &proposal);
        g.committed = Arc::new(state);
        g.index += 1;
        g.replicate();
        Attempt::Committed(outcome)
    }

    /// A random delay of up to `max_delay`, and whether the message is lost.
    fn message(&self) -> (Duration, bool) {
        let mut g = self.group.lock();
        let delay = g.faults.max_delay.mul_f64(g.rng.f64());
        let lost = g.rng.f64() < g.faults.drop_chance;
        (delay, lost)
    }
}

#[async_trait]
impl Consensus for MemoryNode {
    fn node_id(&self) -> NodeId {
        self.id
    }

    async fn propose(&self, command: Command) -> Result<Outcome, ProposeError> {
        let (delay, request_lost) = self.message();
        tokio::time::sleep(delay).await;
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        let outcome = loop {
            match self.try_commit(&command, request_lost) {
                Attempt::Committed(outcome) => break outcome,
                Attempt::Refused(err) => return Err(err),
                Attempt::Lost => {
                    tokio::time::sleep_until(deadline).await;
                    return Err(ProposeError::Timeout);
                }
                Attempt::NoLeader => {}
            }
            if Instant::now() >= deadline {
                return Err(ProposeError::Timeout);
            }
            tokio::time::sleep(STEP).await;
        };
        let (delay, answer_lost) = self.message();
        tokio::time::sleep(delay).await;
        if answer_lost {
            return Err(ProposeError::Unreachable("the answer was lost".into()));
        }
        Ok(outcome)
    }

    fn state(&self) -> Arc<ClusterState> {
        self.group.lock().nodes[&self.id].state.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.group.lock().nodes[&self.id].state.subscribe()
    }

    fn status(&self) -> watch::Receiver<RaftStatus> {
        self.group.lock().nodes[&self.id].status.subscribe()
    }

    fn standing(&self) -> Standing {
        Standing::Voter
    }

    fn recently_heard(&self) -> Vec<NodeId> {
        let g = self.group.lock();
        if g.leader != Some(self.id) {
            return Vec::new();
        }
        g.nodes
            .keys()
            .copied()
            .filter(|n| *n != self.id && g.reaches(self.id, *n))
            .collect()
    }

    async fn transfer_leadership(&self, target: NodeId) -> Result<(), ProposeError> {
        let (delay, _) = self.message();
        tokio::time::sleep(delay).await;
        let mut g = self.group.lock();
        if g.leader != Some(self.id) {
            return Err(ProposeError::Refused("this node does not lead".into()));
        }
        if !g.reaches(self.id, target) || !g.has_quorum(target) {
            return Err(ProposeError::Timeout);
        }
        g.term += 1;
        let term = g.term;
        g.leader = Some(target);
        if let Some(n) = g.nodes.get_mut(&self.id) {
            n.leads = None;
        }
        if let Some(n) = g.nodes.get_mut(&target) {
            n.leads = Some(term);
        }
        g.step(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::types::UnixMillis;

    fn group(n: u64) -> (MemoryRaft, Vec<MemoryNode>, CancellationToken) {
        let raft = MemoryRaft::new(7, Arc::new(VirtualClock::new(UnixMillis(1_000))));
        let nodes = (1..=n)
            .map(|i| raft.add_node(i, &format!("10.0.0.{i}:2222")))
            .collect();
        let stop = CancellationToken::new();
        tokio::spawn(raft.clone().drive(stop.clone()));
        (raft, nodes, stop)
    }

    fn config(v: u64) -> Command {
        Command::SetConfig {
            config: serde_json::json!({ "v": v }),
            expected: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn commands_commit_through_a_leader_with_a_majority() {
        let (raft, nodes, _stop) = group(3);
        let outcome = nodes[0].propose(config(1)).await.unwrap();
        assert!(outcome.is_applied());
        let leader = raft.leader().unwrap();
        assert!(nodes.iter().all(|n| n.state().written_config()["v"] == 1));
        let statuses: Vec<bool> = nodes
            .iter()
            .map(|n| n.status().borrow().is_leader)
            .collect();
        assert_eq!(statuses.iter().filter(|l| **l).count(), 1);
        assert!(nodes[(leader - 1) as usize].status().borrow().is_leader);
    }

    #[tokio::test(start_paused = true)]
    async fn a_minority_commits_nothing_and_stops_seeing_the_state() {
        let (raft, nodes, _stop) = group(3);
        nodes[0].propose(config(1)).await.unwrap();
        // Cut node 3 from both others: it can neither commit nor see new commits.
        raft.set_link(3, 1, false);
        raft.set_link(3, 2, false);
        let cut_off = nodes[2].propose(config(2)).await;
        assert!(matches!(cut_off, Err(ProposeError::Timeout)), "{cut_off:?}");
        nodes[0].propose(config(3)).await.unwrap();
        assert_eq!(nodes[2].state().written_config()["v"], 1);
        raft.heal_links();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(nodes[2].state().written_config()["v"], 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_leader_is_replaced_after_an_election() {
        let (raft, nodes, _stop) = group(3);
        nodes[0].propose(config(1)).await.unwrap();
        let first = raft.leader().unwrap();
        raft.set_up(first, false);
        assert_eq!(raft.leader(), None);
        let other = nodes.iter().find(|n| n.node_id() != first).unwrap();
        // The proposal waits through the election.
        assert!(other.propose(config(2)).await.unwrap().is_applied());
        assert_ne!(raft.leader(), Some(first));
        raft.set_up(first, true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let old = &nodes[(first - 1) as usize];
        assert!(
            !old.status().borrow().is_leader,
            "the old leader stepped down"
        );
        assert_eq!(old.state().written_config()["v"], 2);
    }

    #[tokio::test(start_paused = true)]
    async fn leadership_moves_on_request() {
        let (raft, nodes, _stop) = group(3);
        nodes[0].propose(config(1)).await.unwrap();
        let leader = raft.leader().unwrap();
        let target = if leader == 1 { 2 } else { 1 };
        let from = &nodes[(leader - 1) as usize];
        assert_eq!(from.recently_heard().len(), 2);
        from.transfer_leadership(target).await.unwrap();
        assert_eq!(raft.leader(), Some(target));
        assert!(nodes[(target - 1) as usize].status().borrow().is_leader);
        assert!(!from.status().borrow().is_leader);
    }
}
