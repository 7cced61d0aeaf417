//! What the Raft leader does with a request that must go through it: stamp a command with its
//! wall time and write it ([`Op::Write`]), or hand leadership to another voter ([`Op::Transfer`]).
//!
//! Called by `RaftNode` when this node leads, and by the gRPC service for requests forwarded by
//! followers. A node that does not lead answers [`Answer::NotLeader`] with its best guess of the
//! leader; nothing is written then, so the caller may safely retry elsewhere.
//!
//! Hazard: the timestamp is taken here, on the leader, and nowhere else (DESIGN section 4).

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError as OpenraftError};

use super::type_config::Raft;
use super::{NodeId, ProposeError};
use crate::state::{Command, Outcome, Proposal};
use crate::types::UnixMillis;

/// A request that only the leader can carry out.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Write(Box<Command>),
    Transfer(NodeId),
}

/// What the leader did.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Done {
    Outcome(Outcome),
    Transferred,
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

/// Carry out `op` if this node leads.
pub(crate) async fn execute(raft: &Raft, op: Op) -> Result<Answer, ProposeError> {
    match op {
        Op::Write(command) => write(raft, *command).await,
        Op::Transfer(target) => transfer(raft, target).await,
    }
}

async fn write(raft: &Raft, command: Command) -> Result<Answer, ProposeError> {
    let proposal = Proposal {
        at: UnixMillis::now(),
        command,
    };
    match raft.client_write(proposal).await {
        Ok(reply) => Ok(Answer::Done(Done::Outcome(reply.data))),
        Err(OpenraftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Ok(Answer::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            })
        }
        // Leadership changed after the entry was appended: it may or may not commit.
        Err(OpenraftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
            Err(ProposeError::Timeout)
        }
        Err(OpenraftError::APIError(e)) => Err(ProposeError::Refused(e.to_string())),
        Err(OpenraftError::Fatal(e)) => Err(ProposeError::Fatal(e.to_string())),
    }
}

async fn transfer(raft: &Raft, target: NodeId) -> Result<Answer, ProposeError> {
    let (me, leads, leader_id, leader_addr, is_voter) = {
        let m = raft.metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        (
            m.id,
            m.state == ServerState::Leader,
            m.current_leader,
            m.current_leader
                .and_then(|id| membership.get_node(&id))
                .map(|n| n.addr.clone()),
            membership.voter_ids().any(|id| id == target),
        )
    };
    if !leads {
        return Ok(Answer::NotLeader {
            leader_id: leader_id.filter(|id| *id != me),
            leader_addr: leader_addr.filter(|_| leader_id != Some(me)),
        });
    }
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
