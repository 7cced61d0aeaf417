//! The agent runtime: wires the Raft node, the database instance, the HA loop, the lease
//! keeper, the arbiter and the REST server together, and owns the one shutdown story.
//!
//! Every task is named and awaited; if one ends on its own the agent shuts down as a whole
//! (a half-running agent is worse than a stopped one). Entry points take bound listeners so
//! tests can bind port 0.

mod arbiter;
mod config_reload;
pub mod counters;
mod executor;
mod ha_loop;
pub mod lease;
mod report;
pub mod runtime;
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
use crate::instance::Instance;
use crate::raft::{PeerAuth, RaftNode, RaftSettings};
use crate::state::Command;

pub use counters::Counters;
pub use view::{LocalView, Views};

/// Bind the configured addresses and run the agent until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let raft_listener = TcpListener::bind(config.raft.bind_addr())
        .await
        .with_context(|| format!("binding raft address {}", config.raft.bind_addr()))?;
    let api_listener = bind_rest(
        config.restapi.listen_addr,
        config.restapi.request_queue_size,
    )
    .with_context(|| format!("binding restapi.listen {}", config.restapi.listen))?;
    run_with_listeners(config, raft_listener, api_listener, shutdown).await
}

/// The REST listener, with `restapi.request_queue_size` as its listen backlog (tokio's 1024
/// without it); `SO_REUSEADDR` as `TcpListener::bind` sets it.
fn bind_rest(addr: std::net::SocketAddr, backlog: Option<u32>) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.unwrap_or(1024))
}

/// Run the agent on already-bound listeners until `shutdown` is cancelled.
///
/// The one shutdown story: `shutdown` cancelled is a requested stop, which ends every task,
/// stops the database, gives a held lease up and returns `Ok`. A task that ends on its own
/// while the agent is not stopping is a failure: the agent stops the same way and returns the
/// error (the process then exits with status 1).
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
    settings.auth = PeerAuth::from_config(&config.raft);
    if let Some(warning) = config.raft.peer_authentication_warning(&config.scope) {
        warn!("{warning}");
    }
    // Raft runs until `raft.shutdown()` at the end, not until the stop signal: a stopping
    // primary that is also the Raft leader still commits its lease release once PostgreSQL has
    // stopped (with the signal's token, Raft stopped first and the release failed).
    let raft = RaftNode::start(settings, raft_listener, CancellationToken::new())
        .await
        .context("starting the Raft node")?;
    info!(
        node_id = raft.node_id(),
        name = %config.name,
        scope = %config.scope,
        "agent started"
    );

    let (config_tx, config_rx) = watch::channel(config.clone());
    let reload = Arc::new(tokio::sync::Notify::new());
    let counters = Counters::default();
    // The tasks stop when the agent stops, or when one of them failed (below).
    let tasks_token = shutdown.child_token();
    let mut tasks: JoinSet<&'static str> = JoinSet::new();

    let runtime = runtime::start(
        runtime::Parts {
            config: config_rx.clone(),
            raft: Arc::new(raft.clone()),
            instance: instance.clone(),
            clock,
            watchdog,
            counters: counters.clone(),
        },
        &tasks_token,
    );
    for task in runtime.tasks {
        let name = task.name;
        let future = task.future;
        tasks.spawn(async move {
            future.await;
            name
        });
    }

    let t = tasks_token.clone();
    let bell = reload.clone();
    let raft_for_reload = raft.clone();
    tasks.spawn(async move {
        config_reload::run(config_tx, raft_for_reload, bell, t).await;
        "configuration reload"
    });

    let api_state = crate::api::ApiState::new(
        config.clone(),
        raft.clone(),
        Views {
            local: runtime.local,
            lease: runtime.lease,
            config: config_rx,
            reload,
            counters,
            keeper: runtime.keeper,
        },
    );
    let t = tasks_token.clone();
    tasks.spawn(async move {
        if let Err(err) = crate::api::serve(api_listener, api_state, security, t).await {
            error!(error = %err, "REST API server failed");
        }
        "REST API"
    });

    // Wait for the stop, or for a task to end on its own. Tasks also end because the stop
    // cancelled them: that is part of the stop, not a failure, whichever is seen first.
    let failed = tokio::select! {
        biased;
        _ = shutdown.cancelled() => None,
        ended = tasks.join_next() => match ended {
            _ if shutdown.is_cancelled() => None,
            Some(Ok(task)) => Some(task),
            Some(Err(_)) => Some("a task that panicked"),
            None => Some("every"),
        },
    };
    if let Some(task) = failed {
        error!("the {task} task ended unexpectedly; shutting the agent down");
    } else {
        info!("stopping: ending the agent's tasks");
    }
    tasks_token.cancel();
    while tasks.join_next().await.is_some() {}

    stop_database(&config, &raft, instance.as_deref()).await;
    raft.shutdown().await;
    match failed {
        Some(task) => bail!("the {task} task ended unexpectedly"),
        None => Ok(()),
    }
}

/// On shutdown, as Patroni: stop PostgreSQL cleanly; a primary then gives its lease up with its
/// final WAL position, so the most advanced standby takes over without waiting for `ttl`.
async fn stop_database(config: &Config, raft: &RaftNode, instance: Option<&dyn Instance>) {
    use crate::callbacks::{Callback, CallbackAction, CallbackRole, Hook, Scripts};
    let Some(instance) = instance else { return };
    info!("stopping postgres before exiting");
    let status = instance.status().await;
    let scripts = crate::callbacks::ScriptRunner::new(
        crate::callbacks::runner::ScriptSet::from_config_fn(config),
    );
    let running = status.state == crate::state::DbState::Running;
    if running {
        let outcome = scripts.run_hook(&Hook::BeforeStop).await;
        if let crate::callbacks::HookOutcome::Failed(why) = outcome {
            warn!(%why, "the before_stop script failed");
        }
    }
    if let Err(err) = instance.stop(crate::instance::StopMode::Fast).await {
        warn!(error = %err, "could not stop postgres cleanly");
        return;
    }
    if running {
        let role = match status.role {
            Some(crate::instance::DbRole::Primary) => CallbackRole::Primary,
            _ => CallbackRole::Replica,
        };
        scripts.notify(Callback::new(CallbackAction::OnStop, role));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::bind_rest;

    /// How many of `attempts` connections complete to a listener that never accepts: Linux
    /// queues backlog + 1 of them and drops the SYNs of the rest.
    async fn completed(backlog: Option<u32>, attempts: usize) -> usize {
        let listener = bind_rest("127.0.0.1:0".parse().unwrap(), backlog).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut kept = Vec::new();
        for _ in 0..attempts {
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                kept.push(stream);
            }
        }
        drop(listener);
        kept.len()
    }

    #[tokio::test]
    async fn request_queue_size_is_the_listen_backlog() {
        assert_eq!(completed(Some(1), 4).await, 2);
        assert_eq!(completed(None, 4).await, 4);
    }
}
