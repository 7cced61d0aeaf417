//! The Raft layer's errors: [`RaftError`] when a node cannot start, [`ProposeError`] when a
//! command cannot be committed, [`MembersError`] when a membership change is not made.
//!
//! Hazard: [`ProposeError::Timeout`] and [`ProposeError::Unreachable`] are *indeterminate*: the
//! command may still have been committed. Callers must re-read the state, not assume it failed.

use std::path::PathBuf;

use super::membership::Refusal;

/// Why a Raft node could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("invalid raft settings: {0}")]
    InvalidSettings(String),
    #[error("cannot open the raft store in {}: {source}", path.display())]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the raft store in {} belongs to cluster '{stored}', not '{configured}': refusing to open it",
        path.display()
    )]
    ScopeMismatch {
        path: PathBuf,
        stored: String,
        configured: String,
    },
    #[error("the raft store in {} is corrupt: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("cannot start raft: {0}")]
    Start(String),
}

/// Why a command was not (known to be) committed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// No Raft leader was known within the timeout; nothing was sent.
    #[error("no raft leader is known")]
    NoLeader,
    /// The leader could not be reached, or the connection broke during the call: the command
    /// may or may not have been committed.
    #[error("the raft leader is unreachable: {0}")]
    Unreachable(String),
    /// No answer in time, or the leader changed before the command committed: the command may
    /// still be committed (indeterminate).
    #[error("no answer from the raft leader in time; the command may or may not apply")]
    Timeout,
    /// The request was refused and not executed (another cluster's node, not a voter, ...).
    #[error("refused: {0}")]
    Refused(String),
    /// Raft itself stopped (shutdown or storage failure).
    #[error("raft stopped: {0}")]
    Fatal(String),
}

/// Why a membership change was not (known to be) made.
#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    /// The leader refused it; nothing was changed (see [`Refusal`] for the exceptions).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// It could not be carried out; a timeout is indeterminate, as for a command.
    #[error(transparent)]
    Propose(#[from] ProposeError),
}
