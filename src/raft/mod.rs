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
//! - `settings`: [`RaftSettings`], validated once at start; [`node_id_for`].
//! - `error`: [`RaftError`] (start-up) and [`ProposeError`] (commands).
//! - `status`: [`RaftStatus`], derived from openraft's metrics.
//! - `type_config`: the openraft type configuration (`Proposal` in, `Outcome` out).
//! - `store`: the one sled database in `data_dir`, its trees and its cluster scope.
//! - `log_store`: the Raft log and vote (openraft `RaftLogStorage`).
//! - `state_machine`: applies committed entries through `state::apply`; snapshots.
//! - `proto`: the generated gRPC code (`proto/tribune.proto`).
//! - `peers`: one cached gRPC channel per peer, the scope header, forwarding to the leader.
//! - `network`: openraft's client side: its RPCs over `peers`.
//! - `service`: the gRPC server: Raft RPCs and requests forwarded to the leader.
//! - `leader`: what the leader does with a forwarded request (stamp + write, transfer).
//! - `node`: [`RaftNode`], which ties them together.
//! - `storage_tests`, `cluster_tests`: openraft's storage suite; in-process clusters.
//!
//! # Hazards
//!
//! - A node id is a hash of the advertised address ([`node_id_for`]). Never give an address to a
//!   different node while the old one's data directory may come back.
//! - Every node initializes the cluster with the *same* membership (`self_addr` plus
//!   `partner_addrs`); nodes configured with different peer lists must never share a scope.
//! - Raft leadership is not database leadership, and a reported leader may be stale: call
//!   [`RaftNode::confirm_leadership`] before acting on it.

mod error;
mod leader;
mod log_store;
mod network;
mod node;
mod peers;
mod proto;
mod service;
mod settings;
mod state_machine;
mod status;
mod store;
mod type_config;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod storage_tests;

pub use error::{ProposeError, RaftError};
pub use node::RaftNode;
pub use settings::{RaftSettings, node_id_for};
pub use status::RaftStatus;

/// A Raft node's id: [`node_id_for`] its advertised address.
pub type NodeId = u64;
