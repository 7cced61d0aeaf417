//! [`RaftService`]: the gRPC server every agent runs: openraft's RPCs from peers, requests that
//! followers forward to the leader (`Forward`, `ForwardTransfer`, `ForwardMembers`), and what
//! this node is (`Membership`, asked before a node initializes a cluster or is added to one).
//!
//! Every call must carry this cluster's scope (`x-tribune-scope`); any other is refused with
//! FAILED_PRECONDITION before anything is decoded, and logged once per foreign scope.
//!
//! Hazard: a forwarded command is executed only if this node leads; otherwise the answer says
//! who might, and nothing is written (so the follower may retry elsewhere).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::change::CHANGE_TIMEOUT;
use super::leader::{Answer, Done, Leader, Op};
use super::membership::MembersRequest;
use super::peers::{SCOPE_HEADER, scope_refusal};
use super::proto::forward_reply::Result as ForwardResult;
use super::proto::raft_server::Raft as RaftRpc;
use super::proto::{
    ForwardMembersRequest, ForwardReply, ForwardRequest, ForwardTransferRequest, MembershipReply,
    MembershipRequest, NotLeader, RaftMessage, SnapshotMessage,
};
use super::type_config::{Raft, Snapshot, TypeConfig, Vote};
use super::{ProposeError, RaftSettings, RaftStatus, store};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest};

pub(crate) struct RaftService {
    raft: Raft,
    leader: Arc<Leader>,
    scope: String,
    /// This node's advertised address and member name, for `Membership`.
    self_addr: String,
    member_name: String,
    /// How long a forwarded command may take here (a membership change: `CHANGE_TIMEOUT`).
    forward_timeout: Duration,
    /// Foreign scopes already logged.
    refused: Mutex<HashSet<String>>,
}

impl RaftService {
    pub(crate) fn new(
        leader: Arc<Leader>,
        settings: &RaftSettings,
        forward_timeout: Duration,
    ) -> Self {
        Self {
            raft: leader.raft.clone(),
            leader,
            scope: settings.scope.clone(),
            self_addr: settings.self_addr.clone(),
            member_name: settings.member_name.clone(),
            forward_timeout,
            refused: Mutex::new(HashSet::new()),
        }
    }

    fn check_scope<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let theirs = request
            .metadata()
            .get(SCOPE_HEADER)
            .and_then(|v| v.to_str().ok());
        if theirs == Some(self.scope.as_str()) {
            return Ok(());
        }
        let theirs = theirs.unwrap_or("<none>").to_string();
        let first = self
            .refused
            .lock()
            .map(|mut seen| seen.insert(theirs.clone()))
            .unwrap_or(true);
        if first {
            tracing::warn!(
                peer = ?request.remote_addr(),
                "refusing raft calls from cluster '{theirs}': this is cluster '{}'",
                self.scope
            );
        }
        Err(scope_refusal(&theirs, &self.scope))
    }

    async fn run_forwarded(&self, op: Op) -> Result<Response<ForwardReply>, Status> {
        let limit = match op {
            Op::Change(_) => CHANGE_TIMEOUT,
            _ => self.forward_timeout,
        };
        let answer = tokio::time::timeout(limit, self.leader.execute(op))
            .await
            .unwrap_or(Err(ProposeError::Timeout))
            .map_err(|e| status_of(&e))?;
        let result = match answer {
            Answer::Done(Done::Outcome(outcome)) => ForwardResult::Outcome(encode(&outcome)?),
            Answer::Done(Done::Transferred) => ForwardResult::Outcome(b"null".to_vec()),
            Answer::Done(Done::Changed(changed)) => ForwardResult::Outcome(encode(&changed)?),
            Answer::Done(Done::Members(members)) => ForwardResult::Outcome(encode(&members)?),
            Answer::NotLeader {
                leader_id,
                leader_addr,
            } => ForwardResult::NotLeader(NotLeader {
                leader_id,
                leader_addr,
            }),
        };
        Ok(Response::new(ForwardReply {
            result: Some(result),
        }))
    }
}

/// How a failed forwarded request travels back; `peers::propose_error` reads it.
fn status_of(e: &ProposeError) -> Status {
    match e {
        ProposeError::Refused(msg) => Status::failed_precondition(msg.clone()),
        ProposeError::Timeout => Status::aborted("the outcome of the command is unknown"),
        ProposeError::NoLeader | ProposeError::Unreachable(_) | ProposeError::Fatal(_) => {
            Status::unavailable(e.to_string())
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    store::encode(value).map_err(|e| Status::internal(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Status> {
    store::decode(bytes, what).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    Ok(Response::new(RaftMessage {
        json: encode(value)?,
    }))
}

/// A message only a leader sends (append, snapshot, leadership transfer) carries the leader's
/// committed vote. openraft assumes it and, handed an uncommitted one, treats a candidate as
/// leader (and stops on an assertion in debug builds): refused before it gets there. Found by
/// `fuzz_grpc_messages`.
fn leaders_vote(vote: &Vote, what: &str) -> Result<(), Status> {
    if vote.is_committed() {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "the {what} carries a vote that is not a leader's (not committed): {vote}"
        )))
    }
}

/// Raft stopped (shutting down or failed): the peer should treat this node as unreachable.
fn stopped(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft stopped: {e}"))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check_scope(&request)?;
        let rpc = decode(&request.get_ref().json, "vote request")?;
        reply(&self.raft.vote(rpc).await.map_err(stopped)?)
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check_scope(&request)?;
        let rpc = decode(&request.get_ref().json, "pre-vote request")?;
        reply(&self.raft.pre_vote(rpc).await.map_err(stopped)?)
    }

    async fn append(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.check_scope(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode(&request.get_ref().json, "append request")?;
        leaders_vote(&rpc.vote, "append request")?;
        reply(&self.raft.append_entries(rpc).await.map_err(stopped)?)
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check_scope(&request)?;
        let message = request.into_inner();
        let vote: Vote = decode(&message.vote, "snapshot vote")?;
        leaders_vote(&vote, "snapshot")?;
        let meta = decode(&message.meta, "snapshot meta")?;
        let snapshot = Snapshot {
            meta,
            snapshot: message.data,
        };
        reply(
            &self
                .raft
                .install_full_snapshot(vote, snapshot)
                .await
                .map_err(stopped)?,
        )
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.check_scope(&request)?;
        let rpc: TransferLeaderRequest<TypeConfig> =
            decode(&request.get_ref().json, "transfer-leader request")?;
        leaders_vote(rpc.from_leader(), "transfer-leader request")?;
        reply(
            &self
                .raft
                .handle_transfer_leader(rpc)
                .await
                .map_err(stopped)?,
        )
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        self.check_scope(&request)?;
        let command = decode(&request.get_ref().command, "command")?;
        self.run_forwarded(Op::Write(Box::new(command))).await
    }

    async fn forward_transfer(
        &self,
        request: Request<ForwardTransferRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        self.check_scope(&request)?;
        self.run_forwarded(Op::Transfer(request.get_ref().target))
            .await
    }

    async fn membership(
        &self,
        request: Request<MembershipRequest>,
    ) -> Result<Response<MembershipReply>, Status> {
        self.check_scope(&request)?;
        let status = RaftStatus::from_metrics(&self.raft.metrics().borrow_watched());
        let addrs = |nodes: Vec<(u64, String)>| nodes.into_iter().map(|(_, a)| a).collect();
        Ok(Response::new(MembershipReply {
            initialized: !status.voters.is_empty(),
            self_addr: self.self_addr.clone(),
            member_name: self.member_name.clone(),
            voters: addrs(status.voters),
            learners: addrs(status.learners),
        }))
    }

    async fn forward_members(
        &self,
        request: Request<ForwardMembersRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        self.check_scope(&request)?;
        let op = match decode(&request.get_ref().request, "membership request")? {
            MembersRequest::Change(change) => Op::Change(change),
            MembersRequest::Read => Op::Members,
        };
        self.run_forwarded(op).await
    }
}
