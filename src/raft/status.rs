//! [`RaftStatus`]: what the HA layer, the REST API and `/metrics` need to know about Raft,
//! derived from openraft's metrics each time they change.
//!
//! Hazard: `is_leader` is this node's *belief*; a leader cut off from its quorum keeps it until
//! its lease runs out. Use `RaftNode::confirm_leadership` before acting on it.

use openraft::{RaftMetrics, ServerState};

use super::NodeId;
use super::type_config::TypeConfig;

/// A snapshot of this node's Raft view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RaftStatus {
    pub node_id: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub last_log_index: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    /// The voters of the current membership: (id, address), sorted by id.
    pub voters: Vec<(NodeId, String)>,
    /// The learners (nodes being added): (id, address), sorted by id.
    pub learners: Vec<(NodeId, String)>,
    pub leader_addr: Option<String>,
}

impl RaftStatus {
    /// Whether this node's membership lists it as a voter.
    pub fn is_voter(&self) -> bool {
        self.voters.iter().any(|(id, _)| *id == self.node_id)
    }

    /// Whether this node's membership lists it as a learner (being added).
    pub fn is_learner(&self) -> bool {
        self.learners.iter().any(|(id, _)| *id == self.node_id)
    }

    pub(crate) fn from_metrics(m: &RaftMetrics<TypeConfig>) -> Self {
        let membership = m.membership_config.membership();
        let with_addr = |ids: &mut dyn Iterator<Item = NodeId>| {
            let mut nodes: Vec<(NodeId, String)> = ids
                .map(|id| {
                    let addr = membership
                        .get_node(&id)
                        .map(|n| n.addr.clone())
                        .unwrap_or_default();
                    (id, addr)
                })
                .collect();
            nodes.sort();
            nodes
        };
        let voters = with_addr(&mut membership.voter_ids());
        let learners = with_addr(&mut membership.learner_ids());
        let leader = m.current_leader;
        Self {
            node_id: m.id,
            term: m.current_term,
            leader,
            is_leader: m.state == ServerState::Leader && leader == Some(m.id),
            last_log_index: m.last_log_index,
            committed: m.local_committed.as_ref().map(|l| l.index),
            applied: m.last_applied.as_ref().map(|l| l.index),
            voters,
            learners,
            leader_addr: leader
                .and_then(|id| membership.get_node(&id))
                .map(|n| n.addr.clone()),
        }
    }
}
