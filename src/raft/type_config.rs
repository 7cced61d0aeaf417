//! The openraft type configuration: what Tribune's Raft log carries and returns.
//!
//! Entries carry a [`Proposal`] (a command stamped with the Raft leader's time) and applying one
//! returns its [`Outcome`]. Node ids are `u64` ([`node_id_for`](super::node_id_for) the address);
//! a node's record is openraft's `BasicNode { addr }`. Everything else is openraft's default:
//! do not replace its entry or vote types (their serde form is our wire and disk format).
//!
//! Hazard: the serde form of these types is persisted in sled and sent between agents; an
//! openraft upgrade that changes it needs a migration.

use std::fmt;

use openraft::RaftTypeConfig;
use openraft::vote::RaftLeaderId;

use crate::state::{Outcome, Proposal};

openraft::declare_raft_types!(
    /// Tribune's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// openraft requires its application data to be `Display` (for its logs).
impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}ms", self.command.kind(), self.at.0)
    }
}

pub(crate) type Node = openraft::BasicNode;
pub(crate) type Entry = <TypeConfig as RaftTypeConfig>::Entry;
pub(crate) type Vote = <TypeConfig as RaftTypeConfig>::Vote;
type CommittedLeaderId = <<TypeConfig as RaftTypeConfig>::LeaderId as RaftLeaderId>::Committed;
pub(crate) type LogId = openraft::LogId<CommittedLeaderId>;
pub(crate) type StoredMembership = openraft::StoredMembership<CommittedLeaderId, u64, Node>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<CommittedLeaderId, u64, Node>;
/// A snapshot's data is the cluster state as JSON: kilobytes, sent whole.
pub(crate) type SnapshotData = Vec<u8>;
pub(crate) type Snapshot = openraft::Snapshot<CommittedLeaderId, u64, Node, SnapshotData>;
pub(crate) type Raft = openraft::Raft<TypeConfig, super::state_machine::StateMachine>;
