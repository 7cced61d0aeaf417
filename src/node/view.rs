//! What the agent knows about itself right now, published for the REST API after every tick.
//! The API answers from this snapshot and the live lease; it never queries the database per
//! request.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::ha::LeaseView;
use crate::instance::{DbRole, LocalStatus};
use crate::state::DbState;

/// The agent's latest observation of its own database, and what it decided.
#[derive(Clone, Debug)]
pub struct LocalView {
    pub status: LocalStatus,
    /// A state that overrides the database's while a long action runs (`creating replica`,
    /// `initializing new cluster`, `rewinding`, `stopping`...).
    pub activity: Option<DbState>,
    /// The last decision's reason sentence.
    pub reason: String,
    /// When the HA loop last finished a tick (for `/liveness`).
    pub last_tick: Instant,
    /// The system identifier read from disk (known even while the database is stopped).
    pub sysid: Option<String>,
    pub witness: bool,
}

impl LocalView {
    pub fn new(witness: bool) -> Self {
        Self {
            status: LocalStatus::default(),
            activity: None,
            reason: "starting".into(),
            last_tick: Instant::now(),
            sysid: None,
            witness,
        }
    }

    /// The database state as Patroni reports it.
    pub fn state(&self) -> DbState {
        self.activity.unwrap_or(self.status.state)
    }

    pub fn is_running_primary(&self) -> bool {
        self.state() == DbState::Running && self.status.role == Some(DbRole::Primary)
    }

    pub fn is_running_standby(&self) -> bool {
        self.state() == DbState::Running && self.status.role == Some(DbRole::Standby)
    }
}

/// Cheap handles to what the REST API reads: the local view, the lease, the local
/// configuration as last reloaded, the bell that asks for a reload, and the runtime's counters.
#[derive(Clone)]
pub struct Views {
    pub local: watch::Receiver<Arc<LocalView>>,
    pub lease: watch::Receiver<LeaseView>,
    pub config: watch::Receiver<Arc<crate::config::Config>>,
    pub reload: Arc<tokio::sync::Notify>,
    pub counters: super::Counters,
    /// The lease keeper's timings and watchdog.
    pub keeper: watch::Receiver<super::lease::KeeperView>,
}
