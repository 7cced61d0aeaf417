//! The agent runtime: wires the Raft node, the database instance, the HA loop, the lease
//! keeper, the arbiter and the REST server together, and owns the one shutdown story.
//!
//! Every task is named and awaited; if one ends on its own the agent shuts down as a whole
//! (a half-running agent is worse than a stopped one). Entry points take bound listeners so
//! tests can bind port 0.

mod arbiter;
mod ha_loop;
mod lease;
mod report;
pub mod view;
pub mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Engine};
use crate::ha::LeaseView;
use crate::instance::Instance;
use crate::instance::postgres::{Postgres, PostgresSettings};
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

/// Build the database adapter the configuration asks for (`None` for a witness).
pub fn instance_for(config: &Config) -> anyhow::Result<Option<Arc<dyn Instance>>> {
    let Some(pg) = &config.postgresql else {
        return Ok(None);
    };
    if pg.engine == Some(Engine::OpenGauss) {
        bail!("postgresql.engine: opengauss is not supported by this build yet; use postgres");
    }
    let mut parameters = config.bootstrap.dynamic.postgresql.parameters.clone();
    parameters.extend(pg.parameters.clone());
    let mut pg_hba = pg.pg_hba.clone();
    if pg_hba.is_empty() {
        pg_hba = config.bootstrap.pg_hba.clone();
    }
    if pg_hba.is_empty() {
        pg_hba = config.bootstrap.dynamic.postgresql.pg_hba.clone();
    }
    let credentials = |c: &crate::config::Credentials| (c.username.clone(), c.password.clone());
    let settings = PostgresSettings {
        name: config.name.clone(),
        scope: config.scope.clone(),
        data_dir: pg.data_dir.clone(),
        bin_dir: pg.bin_dir.clone().or_else(find_postgres_bin_dir),
        // listen_addresses: the hosts of `postgresql.listen` as written (`0.0.0.0`, `*`,
        // `10.0.0.1,127.0.0.1`), not `listen_host`, which is the host for local connections.
        listen_host: listen_hosts(&pg.listen),
        listen_port: pg.listen_port,
        connect_host: pg.connect_host.clone(),
        connect_port: pg.connect_port,
        superuser: credentials(&pg.authentication.superuser),
        replication: credentials(&pg.authentication.replication),
        rewind: pg.authentication.rewind.as_ref().map(credentials),
        pgpass: pg.pgpass.clone(),
        parameters,
        pg_hba,
        initdb_args: config.bootstrap.initdb.iter().map(|o| o.to_arg()).collect(),
        use_slots: config.bootstrap.dynamic.postgresql.use_slots,
        use_pg_rewind: pg
            .use_pg_rewind
            .unwrap_or(config.bootstrap.dynamic.postgresql.use_pg_rewind),
        pg_ctl_timeout: pg.pg_ctl_timeout,
    };
    Ok(Some(Arc::new(Postgres::new(settings))))
}

/// The host part of `postgresql.listen` (`host[,host2...]:port`).
fn listen_hosts(listen: &str) -> String {
    listen
        .rsplit_once(':')
        .map_or(listen, |(hosts, _)| hosts)
        .to_owned()
}

/// Where the PostgreSQL programs are when `bin_dir` is not set: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else the real directory of the
/// `pg_ctl` found on the PATH, provided the other programs are beside it. Always an explicit
/// directory: a PATH lookup by the agent could find a lone symlink (Debian links only some
/// programs into /usr/bin) or fail on a PATH entry the agent's user cannot read.
fn find_postgres_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &std::path::Path| {
        [
            "pg_ctl",
            "initdb",
            "pg_controldata",
            "pg_basebackup",
            "pg_rewind",
            "postgres",
        ]
        .iter()
        .all(|p| dir.join(p).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter_map(|dir| std::fs::canonicalize(dir.join("pg_ctl")).ok())
        .filter_map(|real| real.parent().map(PathBuf::from))
        .find(|dir| complete(dir))
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
    let instance = instance_for(&config)?;
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
        fallback_config: config.bootstrap.dynamic.clone(),
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
        fallback_config: config.bootstrap.dynamic.clone(),
    };
    let t = tasks_token.clone();
    tasks.spawn(async move {
        arbiter.run(t).await;
        "arbiter"
    });

    let ha = ha_loop::HaLoop::new(
        config.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_listens_on_the_hosts_as_written() {
        assert_eq!(listen_hosts("0.0.0.0:5432"), "0.0.0.0");
        assert_eq!(listen_hosts("*:5432"), "*");
        assert_eq!(
            listen_hosts("10.0.0.1,127.0.0.1:5433"),
            "10.0.0.1,127.0.0.1"
        );
        assert_eq!(listen_hosts("127.0.0.12:5432"), "127.0.0.12");
    }
}
