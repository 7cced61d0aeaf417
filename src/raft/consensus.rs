//! [`Consensus`]: what the agent runtime (the HA loop, the lease keeper, the arbiter) needs from
//! the Raft layer, as a trait, so that the runtime runs unchanged over [`RaftNode`] in the agent
//! and over the in-memory group of [`super::memory`] in tests and the simulation.
//!
//! The REST API and `tribunectl members` keep using [`RaftNode`] itself: membership changes and
//! read-index confirmation are not the runtime's business.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{NodeId, ProposeError, RaftNode, RaftStatus, Standing};
use crate::state::{ClusterState, Command, Outcome};

#[async_trait]
pub trait Consensus: Send + Sync + 'static {
    /// This node's Raft id.
    fn node_id(&self) -> NodeId;

    /// Commit a command and return what `state::apply` made of it. A timeout or a lost
    /// connection is indeterminate: the command may still commit ([`ProposeError`]).
    async fn propose(&self, command: Command) -> Result<Outcome, ProposeError>;

    /// The cluster state as this node last applied it.
    fn state(&self) -> Arc<ClusterState>;

    /// Every newly applied state.
    fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>>;

    /// This node's Raft view (leader, term, voters).
    fn status(&self) -> watch::Receiver<RaftStatus>;

    /// Where this node stands in the membership.
    fn standing(&self) -> Standing;

    /// On the leader: the other nodes that acknowledged a heartbeat within the shortest
    /// election timeout.
    fn recently_heard(&self) -> Vec<NodeId>;

    /// On the leader: hand leadership to the voter `target`.
    async fn transfer_leadership(&self, target: NodeId) -> Result<(), ProposeError>;
}

#[async_trait]
impl Consensus for RaftNode {
    fn node_id(&self) -> NodeId {
        RaftNode::node_id(self)
    }

    async fn propose(&self, command: Command) -> Result<Outcome, ProposeError> {
        RaftNode::propose(self, command).await
    }

    fn state(&self) -> Arc<ClusterState> {
        RaftNode::state(self)
    }

    fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        RaftNode::subscribe(self)
    }

    fn status(&self) -> watch::Receiver<RaftStatus> {
        RaftNode::status(self)
    }

    fn standing(&self) -> Standing {
        RaftNode::standing(self)
    }

    fn recently_heard(&self) -> Vec<NodeId> {
        RaftNode::recently_heard(self)
    }

    async fn transfer_leadership(&self, target: NodeId) -> Result<(), ProposeError> {
        RaftNode::transfer_leadership(self, target).await
    }
}
