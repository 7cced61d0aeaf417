//! [`Network`]: how openraft reaches its peers, over the cached gRPC channels of [`Peers`].
//!
//! openraft's request and response types travel as JSON inside protobuf `bytes` fields. Errors
//! are mapped so openraft backs off where it should: connection refused, unavailable and a peer
//! of another cluster are `Unreachable`; deadlines are `Timeout`; the rest is `Network`.
//!
//! Hazard: a response that cannot be decoded must become an error, never a default value: a
//! made-up vote or append response could make this node believe a quorum it does not have.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RPCTypes, RaftNetworkV2};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::NodeId;
use super::peers::{Peers, is_scope_refusal};
use super::proto::raft_client::RaftClient;
use super::proto::{RaftMessage, SnapshotMessage};
use super::store;
use super::type_config::{Node, Snapshot, SnapshotData, TypeConfig, Vote};

type RpcError = RPCError<TypeConfig>;

/// openraft's network factory: one [`PeerClient`] per replication stream, sharing channels.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    peers: Arc<Peers>,
}

impl Network {
    pub(crate) fn new(peers: Arc<Peers>) -> Self {
        Self { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            peers: self.peers.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// The RPCs that carry one JSON message each way.
#[derive(Clone, Copy, Debug)]
enum JsonRpc {
    Append,
    Vote,
    PreVote,
    TransferLeader,
}

/// Calls to one peer.
#[derive(Debug)]
pub(crate) struct PeerClient {
    peers: Arc<Peers>,
    target: NodeId,
    addr: String,
}

impl PeerClient {
    fn client(&self) -> Result<RaftClient<Channel>, RpcError> {
        if self.target == self.peers.self_id() {
            return Err(RPCError::Unreachable(Unreachable::from_string(
                "refusing to send a raft message to this node itself",
            )));
        }
        self.peers
            .client(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::from_string(e)))
    }

    /// One request/response RPC whose messages are openraft's serde types as JSON.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        rpc: JsonRpc,
        request: &Req,
        option: RPCOption,
    ) -> Result<Resp, RpcError> {
        let mut client = self.client()?;
        let timeout = option.hard_ttl();
        let json = store::encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let request = self.peers.request(RaftMessage { json }, timeout);
        let action = match rpc {
            JsonRpc::Append => RPCTypes::AppendEntries,
            JsonRpc::Vote | JsonRpc::PreVote => RPCTypes::Vote,
            JsonRpc::TransferLeader => RPCTypes::TransferLeader,
        };
        let call = async {
            match rpc {
                JsonRpc::Append => client.append(request).await,
                JsonRpc::Vote => client.vote(request).await,
                JsonRpc::PreVote => client.pre_vote(request).await,
                JsonRpc::TransferLeader => client.transfer_leader(request).await,
            }
        };
        // The channel's own bound is the longest call's; a Raft RPC keeps openraft's.
        let reply = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| self.timeout(action, timeout))?;
        self.answer(reply, action, timeout)
    }

    fn answer<T: DeserializeOwned>(
        &self,
        reply: Result<tonic::Response<RaftMessage>, Status>,
        action: RPCTypes,
        timeout: Duration,
    ) -> Result<T, RpcError> {
        let reply = reply.map_err(|status| self.rpc_error(status, action, timeout))?;
        self.peers.note_answered(&self.addr);
        store::decode(&reply.into_inner().json, "raft response")
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    fn rpc_error(&self, status: Status, action: RPCTypes, timeout: Duration) -> RpcError {
        match status.code() {
            Code::FailedPrecondition => {
                if is_scope_refusal(&status) {
                    self.peers.note_refused(&self.addr, &status);
                }
                RPCError::Unreachable(Unreachable::from_string(status.message()))
            }
            Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
            Code::DeadlineExceeded | Code::Cancelled => self.timeout(action, timeout),
            _ => RPCError::Network(NetworkError::new(&status)),
        }
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> RpcError {
        RPCError::Timeout(Timeout {
            action,
            id: self.peers.self_id(),
            target: self.target,
            timeout,
        })
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RpcError> {
        self.call(JsonRpc::Append, &rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcError> {
        self.call(JsonRpc::Vote, &rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcError> {
        self.call(JsonRpc::PreVote, &rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self.client()?;
        let timeout = option.hard_ttl();
        let encode_error = |e: std::io::Error| StreamingError::Network(NetworkError::new(&e));
        let message = SnapshotMessage {
            vote: store::encode(&vote).map_err(encode_error)?,
            meta: store::encode(&snapshot.meta).map_err(encode_error)?,
            data: snapshot.snapshot,
        };
        let request = self.peers.request(message, timeout);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = tokio::time::timeout(timeout, client.snapshot(request)) => {
                let reply = reply.map_err(|_| self.timeout(RPCTypes::InstallSnapshot, timeout))?;
                Ok(self.answer(reply, RPCTypes::InstallSnapshot, timeout)?)
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RpcError> {
        self.call(JsonRpc::TransferLeader, &req, option).await
    }
}
