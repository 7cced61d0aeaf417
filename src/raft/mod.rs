//! The Raft layer: the cluster's replicated log, replacing Patroni's DCS (DESIGN sections 3, 4, 8).
//!
//! This is the only module that names openraft, sled or tonic. The rest of Tribune sees
//! [`RaftNode`]: `propose` a [`Command`](crate::state::Command) and get its
//! [`Outcome`](crate::state::Outcome), `subscribe` to the applied
//! [`ClusterState`](crate::state::ClusterState), read [`RaftStatus`], `confirm_leadership` before
//! acting on it.
//!
//! # Layout
//!
//! - `settings`: [`RaftSettings`], validated once at start; [`node_id_for`], [`check_raft_addr`].
//! - `error`: [`RaftError`] (start-up), [`ProposeError`] (commands), [`MembersError`]
//!   (membership changes).
//! - `status`: [`RaftStatus`], derived from openraft's metrics.
//! - `type_config`: the openraft type configuration (`Proposal` in, `Outcome` out).
//! - `store`: the one sled database in `data_dir`, its trees and its cluster scope.
//! - `log_store`: the Raft log and vote (openraft `RaftLogStorage`).
//! - `state_machine`: applies committed entries through `state::apply`; snapshots.
//! - `proto`: the generated gRPC code (`proto/tribune.proto`).
//! - `auth`: how agents authenticate each other ([`PeerAuth`]: certificates, `raft.password`,
//!   or nothing) and the rustls configurations that enforce it.
//! - `transport`: the gRPC port's connections both ways: TLS or plain text, limits, reload.
//! - `peers`: one cached gRPC channel per peer, the scope header, forwarding to the leader.
//! - `network`: openraft's client side: its RPCs over `peers`.
//! - `service`: the gRPC server: Raft RPCs and requests forwarded to the leader.
//! - `leader`: what the leader does with a forwarded request (stamp + write, transfer,
//!   membership).
//! - `membership`: online membership changes, the pure rules ([`MemberChange`], [`Refusal`]).
//! - `change`: a membership change carried out on the leader; the leader's view of each node.
//! - `join`: start-up with an empty log: initialize a new cluster or wait to be added
//!   ([`JoinState`]).
//! - `node`: [`RaftNode`], which ties them together; [`Standing`] in the membership.
//! - `consensus`: [`Consensus`], what the agent runtime needs of Raft, implemented by
//!   [`RaftNode`].
//! - `memory`: the fake beside it, an in-memory group for tests and the simulation.
//! - `storage_tests`, `cluster_tests`: openraft's storage suite; in-process clusters.
//! - `auth_tests`, `fuzz_tests`: peer authentication on real sockets; the fuzz harnesses of
//!   gRPC messages, log entries, snapshots and stores, and the regressions they found.
//!
//! # Hazards
//!
//! - A node id is a hash of the advertised address ([`node_id_for`]). Never give an address to a
//!   different node while the old one's data directory may come back.
//! - Only a node whose partners all have empty logs (a majority of them answering) initializes
//!   the cluster, with the *same* membership (`self_addr` plus `partner_addrs`) as every other
//!   such node; nodes configured with different peer lists must never share a scope. A node
//!   added later never initializes: it waits for the leader (`join`).
//! - A removed node's id is retired in the replicated state and never given to another node.
//!   Its agent must be stopped: it is no longer replicated to and cannot come back.
//! - The scope is no credential: without `PeerAuth::Certificates` or `PeerAuth::Password` any
//!   process that reaches the port is a peer (the agent warns). Messages only a leader sends
//!   must carry a committed vote (`service`); openraft assumes it.
//! - Raft leadership is not database leadership, and a reported leader may be stale: call
//!   [`RaftNode::confirm_leadership`] before acting on it.

mod auth;
mod change;
mod consensus;
mod error;
mod join;
mod leader;
mod log_store;
mod membership;
pub mod memory;
mod network;
mod node;
mod peers;
mod proto;
mod service;
mod settings;
mod state_machine;
mod status;
mod store;
mod transport;
mod type_config;

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod storage_tests;

pub use auth::{CertificateFiles, PeerAuth};
pub use consensus::Consensus;
pub use error::{MembersError, ProposeError, RaftError};
pub use join::JoinState;
pub use membership::{MIN_VOTERS, MemberChange, RaftMember, RaftMembers, Refusal, RefusalKind};
pub use node::{RaftNode, Standing};
pub use settings::{RaftSettings, check_raft_addr, node_id_for};
pub use status::RaftStatus;

/// A Raft node's id: [`node_id_for`] its advertised address.
pub type NodeId = u64;
