//! What the Raft leader does with a request that must go through it: stamp a command with its
//! wall time and write it ([`Op::Write`]), hand leadership to another voter ([`Op::Transfer`]),
//! change the membership ([`Op::Change`], carried out by `change`), or tell how each node of the
//! membership answers it ([`Op::Members`]).
//!
//! Called by `RaftNode` when this node leads, and by the gRPC service for requests forwarded by
//! followers; both share one [`Leader`]. A node that does not lead answers
//! [`Answer::NotLeader`] with its best guess of the leader; nothing is written then, so the
//! caller may safely retry elsewhere.
//!
//! Hazard: the timestamp is taken here, on the leader, and nowhere else (DESIGN section 4).

use std::sync::Arc;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError as OpenraftError};
use tokio::sync::watch;

use super::membership::{MemberChange, RaftMembers, Refusal};
use super::peers::Peers;
use super::type_config::{Raft, TypeConfig};
use super::{NodeId, ProposeError, change};
use crate::state::{ClusterState, Command, Outcome, Proposal};
use crate::types::UnixMillis;

/// A request that only the leader can carry out.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Write(Box<Command>),
    Transfer(NodeId),
    Change(MemberChange),
    Members,
}

/// What the leader did.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Done {
    Outcome(Outcome),
    Transferred,
    /// A membership change: what was done, or why nothing was.
    Changed(Result<String, Refusal>),
    Members(RaftMembers),
}

/// The answer to an [`Op`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    Done(Done),
    /// This node does not lead; nothing was written.
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
}

/// What the leader needs to carry out any [`Op`]; one per node, shared by `RaftNode` and the
/// gRPC service.
pub(crate) struct Leader {
    pub(super) raft: Raft,
    /// To ask a node about itself before adding it.
    pub(super) peers: Arc<Peers>,
    /// The applied cluster state (retired ids, member records, the lease).
    pub(super) state: watch::Receiver<Arc<ClusterState>>,
    /// Held while a membership change runs: one at a time.
    pub(super) changing: tokio::sync::Mutex<()>,
}

impl Leader {
    pub(crate) fn new(
        raft: Raft,
        peers: Arc<Peers>,
        state: watch::Receiver<Arc<ClusterState>>,
    ) -> Self {
        Self {
            raft,
            peers,
            state,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Carry out `op` if this node leads.
    pub(crate) async fn execute(&self, op: Op) -> Result<Answer, ProposeError> {
        match op {
            Op::Write(command) => write(&self.raft, *command).await,
            Op::Transfer(target) => transfer(&self.raft, target).await,
            Op::Change(c) => change::execute(self, c).await,
            Op::Members => Ok(change::members(&self.raft)),
        }
    }
}

/// [`Answer::NotLeader`] with openraft's guess of the leader, unless this node leads.
pub(super) fn not_leader(raft: &Raft) -> Option<Answer> {
    let m = raft.metrics();
    let m = m.borrow_watched();
    if m.state == ServerState::Leader {
        return None;
    }
    let leader_id = m.current_leader.filter(|id| *id != m.id);
    let leader_addr = leader_id
        .and_then(|id| m.membership_config.membership().get_node(&id))
        .map(|n| n.addr.clone());
    Some(Answer::NotLeader {
        leader_id,
        leader_addr,
    })
}

/// Stamp `command` with this leader's time and commit it.
pub(super) async fn write(raft: &Raft, command: Command) -> Result<Answer, ProposeError> {
    let proposal = Proposal {
        at: UnixMillis::now(),
        command,
    };
    match raft.client_write(proposal).await {
        Ok(reply) => Ok(Answer::Done(Done::Outcome(reply.data))),
        Err(e) => write_error(e),
    }
}

/// How a failed write (a command or a membership entry) reads to the proposer.
pub(super) fn write_error(
    e: OpenraftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> Result<Answer, ProposeError> {
    match e {
        OpenraftError::APIError(ClientWriteError::ForwardToLeader(f)) => Ok(Answer::NotLeader {
            leader_id: f.leader_id,
            leader_addr: f.leader_node.map(|n| n.addr),
        }),
        // Leadership changed after the entry was appended: it may or may not commit.
        OpenraftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
            Err(ProposeError::Timeout)
        }
        OpenraftError::APIError(e) => Err(ProposeError::Refused(e.to_string())),
        OpenraftError::Fatal(e) => Err(ProposeError::Fatal(e.to_string())),
    }
}

async fn transfer(raft: &Raft, target: NodeId) -> Result<Answer, ProposeError> {
    if let Some(answer) = not_leader(raft) {
        return Ok(answer);
    }
    let (me, is_voter) = {
        let m = raft.metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        (m.id, membership.voter_ids().any(|id| id == target))
    };
    if !is_voter {
        return Err(ProposeError::Refused(format!(
            "node {target} is not a voter of this cluster"
        )));
    }
    if target != me {
        raft.trigger()
            .transfer_leader(target)
            .await
            .map_err(|e| ProposeError::Fatal(e.to_string()))?;
    }
    Ok(Answer::Done(Done::Transferred))
}
