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

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError, Postgresql};
use crate::ha::LeaseView;
use crate::instance::Instance;
use crate::instance::opengauss::detect::{self, Selection};
use crate::instance::opengauss::{OpenGauss, OpenGaussSettings};
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

/// Build the database adapter the configuration asks for (`None` for a witness):
/// `postgresql.engine`, else the programs in `postgresql.bin_dir` (logged), else PostgreSQL.
pub fn instance_for(config: &Config) -> anyhow::Result<Option<Arc<dyn Instance>>> {
    let Some(pg) = &config.postgresql else {
        return Ok(None);
    };
    let detected = pg.bin_dir.as_deref().map(detect::detect);
    match detect::select(pg.engine, pg.bin_dir.as_deref(), detected)? {
        Selection::Postgres => Ok(Some(postgres_instance(config, pg))),
        Selection::OpenGauss { detected } => {
            if detected {
                info!(
                    bin_dir = ?pg.bin_dir,
                    "postgresql.bin_dir holds openGauss's programs (gs_ctl, gaussdb) and no \
                     PostgreSQL's: running the openGauss adapter"
                );
            }
            Ok(Some(opengauss_instance(config, pg)?))
        }
    }
}

/// The user GUCs: the dynamic configuration's, overridden by the local ones.
fn parameters(
    config: &Config,
    pg: &Postgresql,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut parameters = config.bootstrap.dynamic.postgresql.parameters.clone();
    parameters.extend(pg.parameters.clone());
    parameters
}

/// `pg_hba` lines: local, else the dynamic configuration's, else `bootstrap.pg_hba` (the same
/// precedence as the HA loop's `apply_postgresql_conf`).
fn pg_hba(config: &Config, pg: &Postgresql) -> Vec<String> {
    [
        &pg.pg_hba,
        &config.bootstrap.dynamic.postgresql.pg_hba,
        &config.bootstrap.pg_hba,
    ]
    .into_iter()
    .find(|lines| !lines.is_empty())
    .cloned()
    .unwrap_or_default()
}

fn use_pg_rewind(config: &Config, pg: &Postgresql) -> bool {
    pg.use_pg_rewind
        .unwrap_or(config.bootstrap.dynamic.postgresql.use_pg_rewind)
}

fn postgres_instance(config: &Config, pg: &Postgresql) -> Arc<dyn Instance> {
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
        parameters: parameters(config, pg),
        pg_hba: pg_hba(config, pg),
        initdb_args: config.bootstrap.initdb.iter().map(|o| o.to_arg()).collect(),
        use_slots: config.bootstrap.dynamic.postgresql.use_slots,
        use_pg_rewind: use_pg_rewind(config, pg),
        pg_ctl_timeout: pg.pg_ctl_timeout,
    };
    Arc::new(Postgres::new(settings))
}

/// The openGauss adapter, its configuration checked (errors name the key).
fn opengauss_instance(config: &Config, pg: &Postgresql) -> Result<Arc<dyn Instance>, ConfigError> {
    let env = |key: &str| std::env::var_os(key);
    let bin_dir = match &pg.bin_dir {
        Some(dir) => dir.clone(),
        None => detect::find_bin_dir(env).ok_or_else(|| {
            ConfigError::at(
                "postgresql.bin_dir",
                "openGauss's programs (gs_ctl, gs_initdb, gaussdb, pg_controldata) are neither \
                 in $GAUSSHOME/bin nor on the PATH",
            )
        })?,
    };
    let superuser = &pg.authentication.superuser;
    let superuser_password = superuser.password.clone().ok_or_else(|| {
        ConfigError::at(
            "postgresql.authentication.superuser.password",
            "gs_initdb needs the initial user's password",
        )
    })?;
    let replication = &pg.authentication.replication;
    let settings = OpenGaussSettings {
        name: config.name.clone(),
        data_dir: pg.data_dir.clone(),
        tool_env: detect::tool_env(&bin_dir, env),
        bin_dir,
        listen_host: listen_hosts(&pg.listen),
        listen_port: pg.listen_port,
        connect_host: pg.connect_host.clone(),
        connect_port: pg.connect_port,
        superuser: (superuser.username.clone(), superuser_password),
        replication: (replication.username.clone(), replication.password.clone()),
        parameters: parameters(config, pg),
        pg_hba: pg_hba(config, pg),
        initdb_args: config.bootstrap.initdb.iter().map(|o| o.to_arg()).collect(),
        use_slots: config.bootstrap.dynamic.postgresql.use_slots,
        use_incremental_build: use_pg_rewind(config, pg),
        gs_ctl_timeout: pg.pg_ctl_timeout,
    };
    settings.validate()?;
    if settings.replication.1.is_none() {
        warn!(
            "postgresql.authentication.replication has no password: the other members cannot \
             log in to fence this database over SQL"
        );
    }
    Ok(Arc::new(OpenGauss::new(settings)))
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
    settings.member_name = config.name.to_string();
    settings.heartbeat = config.raft.heartbeat_interval;
    settings.election_timeout_min = config.raft.election_timeout_min;
    settings.election_timeout_max = config.raft.election_timeout_max;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A member configuration with `extra` lines in its `postgresql` section.
    fn config(extra: &str) -> Config {
        let yaml = format!(
            r#"
scope: og
name: og-1
restapi: {{listen: "10.0.0.1:8008", connect_address: "10.0.0.1:8008"}}
raft: {{self_addr: "10.0.0.1:2222", data_dir: /var/lib/tribune/raft}}
postgresql:
  listen: "0.0.0.0:26000"
  connect_address: 10.0.0.1:26000
  data_dir: /var/lib/opengauss/data
  authentication:
    superuser: {{username: omm, password: "Gauss@123"}}
    replication: {{username: tribune_admin, password: "Admin#2024"}}
{extra}"#
        );
        Config::from_yaml_str(&yaml, &|_| None).unwrap()
    }

    fn opengauss_bin() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for p in detect::PROGRAMS {
            std::fs::write(dir.path().join(p), b"").unwrap();
        }
        dir
    }

    fn config_error(config: &Config) -> ConfigError {
        match instance_for(config) {
            Ok(_) => panic!("the configuration was accepted"),
            Err(e) => e.downcast::<ConfigError>().expect("a configuration error"),
        }
    }

    #[test]
    fn the_engine_key_or_the_programs_select_opengauss() {
        let bin = opengauss_bin();
        let dir = bin.path().display();
        let explicit = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n"));
        let detected = config(&format!("  bin_dir: {dir}\n"));
        for c in [explicit, detected] {
            let instance = instance_for(&c).unwrap().unwrap();
            assert_eq!(instance.engine(), "openGauss");
        }
        let pg = instance_for(&config("")).unwrap().unwrap();
        assert_eq!(
            pg.engine(),
            "PostgreSQL",
            "no key, no detection: PostgreSQL as before"
        );
    }

    #[test]
    fn the_readme_opengauss_example_is_accepted() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Running on openGauss").unwrap()..];
        let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
        let yaml = &section[start..start + section[start..].find("```").unwrap()];
        let bin = opengauss_bin();
        let yaml = yaml.replace("/opt/opengauss/bin", &bin.path().display().to_string());
        let config = Config::from_yaml_str(&yaml, &|_| None).unwrap();
        let instance = instance_for(&config).unwrap().unwrap();
        assert_eq!(instance.engine(), "openGauss");
    }

    #[test]
    fn opengauss_configuration_errors_name_the_key() {
        let bin = opengauss_bin();
        let dir = bin.path().display();
        let mut c = config(&format!("  bin_dir: {dir}\n"));
        if let Some(pg) = c.postgresql.as_mut() {
            pg.connect_host = "db1.example".into();
        }
        assert_eq!(
            config_error(&c).key.as_deref(),
            Some("postgresql.connect_address")
        );
        let mut c = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n"));
        if let Some(pg) = c.postgresql.as_mut() {
            pg.authentication.superuser.password = None;
        }
        assert_eq!(
            config_error(&c).key.as_deref(),
            Some("postgresql.authentication.superuser.password")
        );
        let empty = tempfile::tempdir().unwrap();
        let c = config(&format!(
            "  engine: opengauss\n  bin_dir: {}\n",
            empty.path().display()
        ));
        assert_eq!(config_error(&c).key.as_deref(), Some("postgresql.bin_dir"));
    }

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
