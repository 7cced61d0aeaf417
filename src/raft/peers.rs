//! [`Peers`]: the gRPC channels to the other agents, one cached per address, and the calls every
//! client makes through them: the cluster scope on each request, forwarding an [`Op`] to the
//! leader, and asking a node what it is ([`Peers::probe`]).
//!
//! Hazards (stack.md, pitfall 8): a tonic channel keeps a dead HTTP/2 connection after a
//! partition unless keepalive is set, so every channel has connect and request timeouts and
//! HTTP/2 keepalive, also while idle. A node never dials itself. A peer of another cluster
//! answers FAILED_PRECONDITION: that is logged once per peer (warn), not at every heartbeat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::leader::{Answer, Done, Op};
use super::membership::MembersRequest;
use super::proto::forward_reply::Result as ForwardResult;
use super::proto::raft_client::RaftClient;
use super::proto::{
    ForwardMembersRequest, ForwardRequest, ForwardTransferRequest, MembershipReply,
    MembershipRequest,
};
use super::store;
use super::transport::Transport;
use super::{NodeId, ProposeError, RaftError, node_id_for};

/// Metadata key carrying the cluster scope on every call.
pub(crate) const SCOPE_HEADER: &str = "x-tribune-scope";
/// Metadata key marking a refusal because of the scope (other FAILED_PRECONDITIONs exist).
const REFUSED_HEADER: &str = "x-tribune-refused";
/// The largest message either way. Snapshots travel whole and the state is kilobytes; an
/// append carries at most openraft's 300 entries of a few kilobytes. The bound also caps what
/// one call can make the receiver buffer.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Upper bound for any call, the longest being a forwarded membership change; each call also
/// sets its own deadline and enforces it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Channels to the other agents of one cluster.
#[derive(Debug)]
pub(crate) struct Peers {
    self_id: NodeId,
    scope: MetadataValue<tonic::metadata::Ascii>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Peers whose refusal (another cluster) was already logged.
    refused: Mutex<HashSet<String>>,
    /// The address outgoing connections start from: the one this node listens on, when it
    /// listens on a specific address. On a multi-homed host Raft traffic then leaves from the
    /// advertised address (what firewalls and partition tests expect), not from whatever the
    /// routing table picks.
    local_ip: Option<std::net::IpAddr>,
    /// TLS or plain text, and the credentials (`transport`).
    transport: Arc<Transport>,
}

impl Peers {
    #[cfg(test)]
    pub(crate) fn new(self_id: NodeId, scope: &str) -> Result<Self, RaftError> {
        Self::with_local_ip(self_id, scope, None, Arc::new(Transport::open()))
    }

    /// Channels dialled through `transport`, with outgoing connections bound to `local_ip`
    /// (ignored when it is the unspecified address).
    pub(crate) fn with_local_ip(
        self_id: NodeId,
        scope: &str,
        local_ip: Option<std::net::IpAddr>,
        transport: Arc<Transport>,
    ) -> Result<Self, RaftError> {
        let scope = MetadataValue::try_from(scope).map_err(|_| {
            RaftError::InvalidSettings(format!(
                "the cluster scope {scope:?} must be printable ASCII"
            ))
        })?;
        Ok(Self {
            self_id,
            scope,
            channels: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashSet::new()),
            local_ip: local_ip.filter(|ip| !ip.is_unspecified()),
            transport,
        })
    }

    /// Drop every cached channel (after the credentials were reloaded): the next call to each
    /// peer connects anew with the current credentials; calls under way finish on the old one.
    pub(crate) fn reset(&self) {
        if let Ok(mut channels) = self.channels.lock() {
            channels.clear();
        }
    }

    pub(crate) fn self_id(&self) -> NodeId {
        self.self_id
    }

    /// A client for `addr`, on its cached channel. Refuses this node's own address.
    pub(crate) fn client(&self, addr: &str) -> Result<RaftClient<Channel>, String> {
        if node_id_for(addr) == self.self_id {
            return Err(format!("refusing to dial this node's own address {addr}"));
        }
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "the channel cache is poisoned".to_string())?;
        let channel = match channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| format!("invalid peer address {addr}: {e}"))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(REQUEST_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                    .keep_alive_while_idle(true)
                    .connect_with_connector_lazy(self.transport.connector(addr, self.local_ip));
                channels.insert(addr.to_string(), channel.clone());
                channel
            }
        };
        Ok(RaftClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    /// Wrap a message with the cluster scope and a deadline.
    pub(crate) fn request<T>(&self, message: T, timeout: Duration) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(SCOPE_HEADER, self.scope.clone());
        request.set_timeout(timeout);
        request
    }

    /// Remember a peer answered; a later refusal is logged again.
    pub(crate) fn note_answered(&self, addr: &str) {
        if let Ok(mut refused) = self.refused.lock() {
            refused.remove(addr);
        }
    }

    /// A peer refused us (it belongs to another cluster): log it once.
    pub(crate) fn note_refused(&self, addr: &str, status: &Status) {
        let first = self
            .refused
            .lock()
            .map(|mut refused| refused.insert(addr.to_string()))
            .unwrap_or(true);
        if first {
            tracing::warn!(
                peer = addr,
                "raft peer refused this node: {}; check scope and partner_addrs",
                status.message()
            );
        }
    }

    /// Send `op` to the node at `addr`, which executes it if it leads.
    pub(crate) async fn forward(
        &self,
        addr: &str,
        op: &Op,
        timeout: Duration,
    ) -> Result<Answer, ProposeError> {
        let mut client = self.client(addr).map_err(ProposeError::Unreachable)?;
        let unencodable =
            |e: std::io::Error| ProposeError::Fatal(format!("cannot encode the request: {e}"));
        let call = async {
            match op {
                Op::Write(command) => {
                    let command = store::encode(command).map_err(unencodable)?;
                    Ok(client
                        .forward(self.request(ForwardRequest { command }, timeout))
                        .await)
                }
                Op::Transfer(target) => {
                    let request = ForwardTransferRequest { target: *target };
                    Ok(client
                        .forward_transfer(self.request(request, timeout))
                        .await)
                }
                Op::Change(_) | Op::Members => {
                    let request = match op {
                        Op::Change(change) => MembersRequest::Change(change.clone()),
                        _ => MembersRequest::Read,
                    };
                    let request = store::encode(&request).map_err(unencodable)?;
                    Ok(client
                        .forward_members(self.request(ForwardMembersRequest { request }, timeout))
                        .await)
                }
            }
        };
        let reply = match tokio::time::timeout(timeout, call).await {
            Err(_) => return Err(ProposeError::Timeout),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Ok(reply))) => reply.into_inner(),
            Ok(Ok(Err(status))) => {
                if is_scope_refusal(&status) {
                    self.note_refused(addr, &status);
                }
                return Err(propose_error(&status));
            }
        };
        self.note_answered(addr);
        let unreadable = |e: std::io::Error| {
            ProposeError::Unreachable(format!("the leader's answer is unreadable: {e}"))
        };
        match (reply.result, op) {
            (Some(ForwardResult::Outcome(bytes)), Op::Write(_)) => Ok(Answer::Done(Done::Outcome(
                store::decode(&bytes, "outcome").map_err(unreadable)?,
            ))),
            (Some(ForwardResult::Outcome(_)), Op::Transfer(_)) => {
                Ok(Answer::Done(Done::Transferred))
            }
            (Some(ForwardResult::Outcome(bytes)), Op::Change(_)) => Ok(Answer::Done(
                Done::Changed(store::decode(&bytes, "membership change").map_err(unreadable)?),
            )),
            (Some(ForwardResult::Outcome(bytes)), Op::Members) => Ok(Answer::Done(Done::Members(
                store::decode(&bytes, "membership").map_err(unreadable)?,
            ))),
            (Some(ForwardResult::NotLeader(hint)), _) => Ok(Answer::NotLeader {
                leader_id: hint.leader_id,
                leader_addr: hint.leader_addr,
            }),
            (None, _) => Err(ProposeError::Unreachable(
                "the leader sent an empty answer".into(),
            )),
        }
    }

    /// Ask the agent at `addr` what it is and what its Raft log holds. The error says why it
    /// did not answer (down, another cluster, ...).
    pub(crate) async fn probe(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<MembershipReply, String> {
        let mut client = self.client(addr)?;
        let call = client.membership(self.request(MembershipRequest {}, timeout));
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            Ok(Err(status)) => {
                if is_scope_refusal(&status) {
                    self.note_refused(addr, &status);
                }
                Err(status.message().to_owned())
            }
            Ok(Ok(reply)) => {
                self.note_answered(addr);
                Ok(reply.into_inner())
            }
        }
    }
}

/// The answer to a call from another cluster: FAILED_PRECONDITION, marked as a scope refusal.
pub(crate) fn scope_refusal(theirs: &str, ours: &str) -> Status {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(REFUSED_HEADER, MetadataValue::from_static("scope"));
    Status::with_metadata(
        Code::FailedPrecondition,
        format!("peer belongs to cluster '{theirs}', this is cluster '{ours}'"),
        metadata,
    )
}

/// Whether `status` is [`scope_refusal`]'s.
pub(crate) fn is_scope_refusal(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
        && status
            .metadata()
            .get(REFUSED_HEADER)
            .is_some_and(|v| v.as_bytes() == b"scope")
}

/// How a failed forwarded call reads to the proposer. The service maps errors the other way
/// (`service::status_of`).
fn propose_error(status: &Status) -> ProposeError {
    match status.code() {
        Code::FailedPrecondition => ProposeError::Refused(status.message().to_string()),
        Code::Aborted | Code::DeadlineExceeded | Code::Cancelled => ProposeError::Timeout,
        _ => ProposeError::Unreachable(format!("{}: {}", status.code(), status.message())),
    }
}
