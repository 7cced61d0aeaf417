//! The agent's runtime proper: the lease keeper, the arbiter and the HA loop (with its executor)
//! wired over the three things outside them: the Raft layer ([`Consensus`]), the database
//! ([`Instance`]) and the clock. `node::run` gives them the Raft node, the database adapter and
//! the system clock; unit tests and the deterministic simulation give them fakes, so the same
//! code runs in both.
//!
//! Nothing is spawned here: [`start`] returns the named tasks, and the caller runs them (the
//! agent in its task set, the simulation under its own scheduler).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::arbiter::Arbiter;
use super::counters::Counters;
use super::executor::Handles;
use super::ha_loop::HaLoop;
use super::lease::{KeeperView, LeaseKeeper};
use super::view::LocalView;
use super::watchdog::Watchdog;
use crate::clock::Clock;
use crate::config::{Config, WatchdogMode};
use crate::ha::LeaseView;
use crate::instance::Instance;
use crate::raft::Consensus;

/// What the runtime runs over.
pub struct Parts {
    /// The local configuration, as last reloaded.
    pub config: watch::Receiver<Arc<Config>>,
    pub raft: Arc<dyn Consensus>,
    /// `None` for a witness.
    pub instance: Option<Arc<dyn Instance>>,
    pub clock: Arc<dyn Clock>,
    /// Prepared, not armed (see `watchdog`); `None` without one.
    pub watchdog: Option<Watchdog>,
    pub counters: Counters,
}

/// A task of the runtime, named for the log.
pub struct Task {
    pub name: &'static str,
    pub future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The runtime's tasks, not yet running, and what the REST API reads of them.
pub struct Runtime {
    pub tasks: Vec<Task>,
    pub local: watch::Receiver<Arc<LocalView>>,
    pub lease: watch::Receiver<LeaseView>,
    /// The lease keeper's current timings and watchdog.
    pub keeper: watch::Receiver<KeeperView>,
}

/// The lease keeper, the arbiter and the HA loop of one agent; each ends when `shutdown` is
/// cancelled.
pub fn start(parts: Parts, shutdown: &CancellationToken) -> Runtime {
    let config = parts.config.borrow().clone();
    let (local_tx, local_rx) = watch::channel(Arc::new(LocalView::new(parts.instance.is_none())));
    let (lease_tx, lease_rx) = watch::channel(LeaseView::Unconfirmed);
    let (keeper_tx, keeper_rx) = watch::channel(KeeperView::default());

    let keeper = LeaseKeeper {
        watchdog: parts.watchdog,
        watchdog_required: config.watchdog.mode == WatchdogMode::Required,
        me: config.name.clone(),
        config: parts.config.clone(),
        raft: parts.raft.clone(),
        clock: parts.clock.clone(),
        instance: parts.instance.clone(),
        view: keeper_tx,
        local: local_rx.clone(),
        lease: lease_tx,
        bootstrap_dynamic: Arc::new(config.bootstrap.dynamic.clone()),
        counters: parts.counters.clone(),
    };
    let arbiter = Arbiter {
        me: config.name.clone(),
        raft: parts.raft.clone(),
        clock: parts.clock.clone(),
        bootstrap_dynamic: config.bootstrap.dynamic.clone(),
    };
    let ha = HaLoop::new(
        Handles {
            me: config.name.clone(),
            config: parts.config.clone(),
            raft: parts.raft,
            instance: parts.instance,
            clock: parts.clock,
            lease: lease_rx.clone(),
            local: local_tx,
        },
        parts.counters,
    );
    let (t1, t2, t3) = (shutdown.clone(), shutdown.clone(), shutdown.clone());
    Runtime {
        tasks: vec![
            Task {
                name: "lease keeper",
                future: Box::pin(keeper.run(t1)),
            },
            Task {
                name: "arbiter",
                future: Box::pin(arbiter.run(t2)),
            },
            Task {
                name: "HA loop",
                future: Box::pin(ha.run(t3)),
            },
        ],
        local: local_rx,
        lease: lease_rx,
        keeper: keeper_rx,
    }
}
