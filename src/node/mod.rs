//! The agent runtime: wires the Raft node, the database instance, the HA loop, the lease
//! keeper, the arbiter and the REST server together, and owns the one shutdown story.
//!
//! Every task is named and awaited; if one ends on its own the agent shuts down as a whole
//! (a half-running agent is worse than a stopped one). Entry points take bound listeners so
//! tests can bind port 0.

mod arbiter;
mod config_reload;
mod ha_loop;
mod lease;
mod report;
pub mod view;
pub mod watchdog;

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::ha::LeaseView;
use crate::instance::Instance;
use crate::raft::{RaftNode, RaftSettings};
use crate::state::Command;

pub use view::{LocalView, Views};

/// Bind the configured addresses and run the agent until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let raft_listener = TcpListener::bind(config.raft.bind_addr())
        .await
        .with_context(|| format!("binding raft address {}", config.raft.bind_addr()))?;
    let api_listener = TcpListener::bind(config.restapi.listen_addr)
        .await
        .with_context(|| format!("binding restapi.listen {}", config.restapi.listen))?;
    run_with_listeners(config, raft_listener, api_listener, shutdown).await
}

/// Run the agent on already-bound listeners until `shutdown` is cancelled.
pub async fn run_with_listeners(
    config: Config,
    raft_listener: TcpListener,
    api_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let instance = crate::instance::from_config(&config)?;
    // Certificates, keys and the allowlist are checked before anything starts.
    let security = crate::api::Security::load(&config.restapi)?;
    // Before anything starts: `watchdog.mode: required` without a usable device is a refusal.
    let dynamic = &config.bootstrap.dynamic;
    let watchdog = if config.is_witness() {
        None
    } else {
        watchdog::Watchdog::prepare(&config.watchdog, dynamic.ttl, dynamic.loop_wait)
            .context("watchdog.mode is required but the watchdog cannot be used")?
    };

    let mut settings = RaftSettings::new(
        config.scope.clone(),
        config.raft.self_addr.clone(),
        config.raft.partner_addrs.clone(),
        config.raft.data_dir.clone(),
    );
    settings.member_name = config.name.to_string();
    settings.heartbeat = config.raft.heartbeat_interval;
    settings.election_timeout_min = config.raft.election_timeout_min;
    settings.election_timeout_max = config.raft.election_timeout_max;
    let raft = RaftNode::start(settings, raft_listener, shutdown.child_token())
        .await
        .context("starting the Raft node")?;
    info!(
        node_id = raft.node_id(),
        name = %config.name,
        scope = %config.scope,
        "agent started"
    );

    let (local_tx, local_rx) = watch::channel(Arc::new(LocalView::new(instance.is_none())));
    let (config_tx, config_rx) = watch::channel(config.clone());
    let reload = Arc::new(tokio::sync::Notify::new());
    let (lease_tx, lease_rx) = watch::channel(LeaseView::Unconfirmed);
    let tasks_token = shutdown.child_token();
    let mut tasks: JoinSet<&'static str> = JoinSet::new();

    let keeper = lease::LeaseKeeper {
        watchdog,
        watchdog_required: config.watchdog.mode == crate::config::WatchdogMode::Required,
        me: config.name.clone(),
        raft: raft.clone(),
        clock: clock.clone(),
        instance: instance.clone(),
        local: local_rx.clone(),
        lease: lease_tx,
        bootstrap_dynamic: Arc::new(config.bootstrap.dynamic.clone()),
    };
    let t = tasks_token.clone();
    tasks.spawn(async move {
        keeper.run(t).await;
        "lease keeper"
    });

    let arbiter = arbiter::Arbiter {
        me: config.name.clone(),
        raft: raft.clone(),
        clock: clock.clone(),
        bootstrap_dynamic: config.bootstrap.dynamic.clone(),
    };
    let t = tasks_token.clone();
    tasks.spawn(async move {
        arbiter.run(t).await;
        "arbiter"
    });

    let t = tasks_token.clone();
    let bell = reload.clone();
    tasks.spawn(async move {
        config_reload::run(config_tx, bell, t).await;
        "configuration reload"
    });

    let ha = ha_loop::HaLoop::new(
        config_rx.clone(),
        raft.clone(),
        instance.clone(),
        clock.clone(),
        lease_rx.clone(),
        local_tx,
    );
    let t = tasks_token.clone();
    tasks.spawn(async move {
        ha.run(t).await;
        "HA loop"
    });

    let api_state = crate::api::ApiState::new(
        config.clone(),
        raft.clone(),
        Views {
            local: local_rx,
            lease: lease_rx,
            config: config_rx,
            reload,
        },
    );
    let t = tasks_token.clone();
    tasks.spawn(async move {
        if let Err(err) = crate::api::serve(api_listener, api_state, security, t).await {
            error!(error = %err, "REST API server failed");
        }
        "REST API"
    });

    // Wait for shutdown, or for any task to end on its own (which is a failure).
    let ended_early = tokio::select! {
        _ = shutdown.cancelled() => None,
        ended = tasks.join_next() => ended.map(|r| r.unwrap_or("a task that panicked")),
    };
    if let Some(task) = ended_early {
        error!("the {task} task ended unexpectedly; shutting the agent down");
    }
    tasks_token.cancel();
    while tasks.join_next().await.is_some() {}

    stop_database(&config, &raft, instance.as_deref()).await;
    raft.shutdown().await;
    match ended_early {
        Some(task) => bail!("the {task} task ended unexpectedly"),
        None => Ok(()),
    }
}

/// On shutdown, as Patroni: stop PostgreSQL cleanly; a primary then gives its lease up with its
/// final WAL position, so the most advanced standby takes over without waiting for `ttl`.
async fn stop_database(config: &Config, raft: &RaftNode, instance: Option<&dyn Instance>) {
    let Some(instance) = instance else { return };
    info!("stopping postgres before exiting");
    if let Err(err) = instance.stop(crate::instance::StopMode::Fast).await {
        warn!(error = %err, "could not stop postgres cleanly");
        return;
    }
    let cluster = raft.state();
    let Some(leader) = cluster.leader.as_ref().filter(|l| l.member == config.name) else {
        return;
    };
    let last_lsn = match instance.data_dir().await {
        Ok(_) => cluster
            .members
            .get(&config.name)
            .and_then(|m| m.wal_position()),
        Err(_) => None,
    };
    let release = Command::ReleaseLease {
        member: config.name.clone(),
        generation: leader.generation,
        last_lsn,
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), raft.propose(release)).await {
        Ok(Ok(outcome)) if outcome.is_applied() => info!("released the leader lease"),
        other => warn!(?other, "could not release the leader lease"),
    }
}
