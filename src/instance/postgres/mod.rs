//! The PostgreSQL adapter: [`Postgres`] implements [`Instance`] with `initdb`, `pg_ctl`,
//! `pg_basebackup`, `pg_rewind`, the configuration files it owns, and SQL over one cached
//! connection.
//!
//! Layout: `settings` (what the caller gives), `gucs` (parameters owned on the command line),
//! `files` (rendering `postgresql.conf`, `pg_hba.conf`, the password file), `commands` (tool
//! command lines), `controldata` (on-disk state), `status` (the per-tick query), `roles` and
//! `slots` (SQL plans), `upgrade` (a major-version upgrade's command lines and SQL), `methods`
//! (the operator's replica and bootstrap methods' command lines). Everything there is pure; this
//! file performs the effects, `upgrading` those of an upgrade, and `restoring` those of the
//! replica methods and of a restore (`bootstrap.method`).
//!
//! The programs: `bin_dir` from the settings, except for a data directory of the version the
//! cluster was upgraded to ([`Instance::use_binaries`]), or an empty one about to be copied
//! from such a cluster: those run with the upgrade's programs ([`Postgres::tools`]).
//!
//! The agent runs as the database's OS user. Its own connections use the Unix socket in
//! [`PostgresSettings::socket_dir`] as the superuser (TCP with the password when the given
//! `pg_hba` has no `local` line). Every query has a short time limit, and a connection that fails
//! or times out is dropped and opened again on the next call.
//!
//! Hazards: every operation confirms its effect (by SQL or `postmaster.pid`) before `Ok`, and is
//! safe to repeat; an operation that ran out of time returns `Unknown`. This adapter never
//! deletes a data directory it did not fill itself: it renames it aside. The one exception is
//! what a replica method or a restore put in an empty directory and then failed with (a copy
//! the source or the backup repository can give again; see `restoring`).

pub mod commands;
pub mod controldata;
pub mod fence;
pub mod files;
pub mod gucs;
pub mod methods;
mod restoring;
pub mod roles;
pub mod settings;
pub mod slots;
pub mod status;
pub mod upgrade;
mod upgrading;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_postgres::SimpleQueryRow;

pub use settings::PostgresSettings;

use super::datadir;
use super::process::{self, remove_if_exists, write_atomic};
use super::server::{CTL_MARGIN, LocalServer, POLL, QUERY_TIMEOUT, RELOAD_TIMEOUT};
use super::sql::{LocalSql, SqlError, rows_column};
use super::{
    ClusterStateOnDisk, DataDir, DbRole, Instance, InstanceError, LocalStatus, PeerFence, StopMode,
    Upstream, WalSource,
};
use crate::state::DbState;
use crate::types::{Generation, Lsn, MemberName, Timeline};
use settings::has_pg_version;

/// Connecting to the local server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reaching another member's database to fence it: short, because an unreachable host (a
/// crash, a partition) must not hold a failover up.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Role creation, slot changes, reloads.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
const INITDB_TIMEOUT: Duration = Duration::from_secs(600);
/// Base backups and rewinds copy data; these only catch a tool that hangs for good.
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// `IDENTIFY_SYSTEM` of the local server (connect timeout 2 s, included).
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(3);
const REWIND_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
const SINGLE_USER_TIMEOUT: Duration = Duration::from_secs(3600);
/// What the configuration files are written for.
#[derive(Clone, Copy)]
enum ConfRole<'a> {
    Primary,
    /// A standby of the upstream, or of nobody (its WAL receiver stopped, replay goes on).
    Standby(Option<&'a WalSource>),
    /// A standby about to be promoted: it goes on streaming from its upstream and loads the
    /// `synchronous_standby_names` it will run with once promoted, so that no commit is
    /// acknowledged in the moment between the promotion and the agent's next write.
    PromotionCandidate,
}

/// How the agent connects to its own server: the Unix socket as the superuser, or TCP with the
/// password when the given `pg_hba` has no `local` line.
fn local_config(s: &PostgresSettings) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.user(&s.superuser.0)
        .dbname("postgres")
        .application_name("tribune")
        .port(s.listen_port)
        .connect_timeout(CONNECT_TIMEOUT);
    if s.connect_locally() {
        c.host_path(s.socket_dir());
    } else {
        c.host(s.local_tcp_host());
    }
    if let Some(pw) = &s.superuser.1 {
        c.password(pw);
    }
    c
}

pub struct Postgres {
    s: PostgresSettings,
    server: LocalServer,
    /// The last reason `status()` could not query a live server, logged once per change.
    last_status_error: std::sync::Mutex<Option<String>>,
    /// The last reason a standby's replay timeline could not be read, logged once per change.
    last_identify_error: std::sync::Mutex<Option<String>>,
    /// The `synchronous_standby_names` the agent asked for (empty: asynchronous); written into
    /// every `postgresql.conf` of a primary so a restart keeps it.
    sync_names: std::sync::Mutex<String>,
    /// User parameters and `pg_hba` lines given by `reconfigure` since the start, replacing
    /// those of the settings (the dynamic configuration changed, or the local one was reloaded).
    live: std::sync::Mutex<Option<LiveConf>>,
    /// The upstream the configuration files last named (a standby's `primary_conninfo`), so
    /// that a rewrite for new parameters keeps it.
    upstream: std::sync::Mutex<Option<WalSource>>,
    /// A session to the upstream this standby streams from, opened while it answers and kept
    /// for the fence ([`super::sql::HeldSession`]): the upstream and the session.
    held: tokio::sync::Mutex<Option<(Upstream, super::sql::HeldSession)>>,
    /// The programs of the cluster's last upgrade (`Instance::use_binaries`).
    binaries: std::sync::Mutex<Option<crate::state::ClusterBinaries>>,
}

#[derive(Clone, Debug, PartialEq)]
struct LiveConf {
    parameters: std::collections::BTreeMap<String, serde_json::Value>,
    pg_hba: Vec<String>,
}

impl Postgres {
    pub fn new(settings: PostgresSettings) -> Self {
        Self {
            server: LocalServer {
                data_dir: settings.data_dir.clone(),
                db: LocalSql::new(local_config(&settings), CONNECT_TIMEOUT),
                ctl_timeout: settings.pg_ctl_timeout,
                log_file: settings.log_file(),
            },
            s: settings,
            last_status_error: std::sync::Mutex::new(None),
            last_identify_error: std::sync::Mutex::new(None),
            sync_names: std::sync::Mutex::new(String::new()),
            live: std::sync::Mutex::new(None),
            upstream: std::sync::Mutex::new(None),
            held: tokio::sync::Mutex::new(None),
            binaries: std::sync::Mutex::new(None),
        }
    }

    /// The settings with the programs for what the data directory holds now: the cluster's
    /// upgraded ones for a data directory of their major version or an empty one (a copy of
    /// the upgraded cluster is coming), the configured ones for any other.
    fn tools(&self) -> std::borrow::Cow<'_, PostgresSettings> {
        let binaries = self
            .binaries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let data_major = std::fs::read_to_string(self.s.file("PG_VERSION"))
            .ok()
            .and_then(|t| upgrade::parse_pg_version_file(&t));
        match binaries.filter(|b| data_major.is_none_or(|m| m == b.major)) {
            Some(b) if self.s.bin_dir.as_ref() != Some(&b.bin_dir) => {
                let mut s = self.s.clone();
                s.bin_dir = Some(b.bin_dir);
                std::borrow::Cow::Owned(s)
            }
            _ => std::borrow::Cow::Borrowed(&self.s),
        }
    }

    /// The settings with the programs, parameters and `pg_hba` currently in force.
    fn current(&self) -> std::borrow::Cow<'_, PostgresSettings> {
        let tools = self.tools();
        match &*self.live.lock().unwrap_or_else(|e| e.into_inner()) {
            None => tools,
            Some(live) => {
                let mut s = tools.into_owned();
                s.parameters = live.parameters.clone();
                s.pg_hba = live.pg_hba.clone();
                std::borrow::Cow::Owned(s)
            }
        }
    }

    pub fn settings(&self) -> &PostgresSettings {
        &self.s
    }

    // ----- connection and SQL -----

    async fn sql(&self, sql: &str, timeout: Duration) -> Result<Vec<SimpleQueryRow>, SqlError> {
        self.server.db.query(sql, timeout).await
    }

    async fn sql_for(
        &self,
        operation: &'static str,
        sql: &str,
        timeout: Duration,
    ) -> Result<Vec<SimpleQueryRow>, InstanceError> {
        self.server.db.query_for(operation, sql, timeout).await
    }

    async fn role(&self, timeout: Duration) -> Result<DbRole, SqlError> {
        self.server.role(timeout).await
    }

    // ----- files -----

    /// A standby's replay timeline and WAL position (`IDENTIFY_SYSTEM`), asked only while it
    /// does not stream; `None`, logged once per change of reason, when it cannot be had (for
    /// instance a `pg_hba.conf` without a replication line for this member's own address).
    async fn replay_position(&self) -> Option<(Timeline, Lsn)> {
        let answer = process::run(
            "identify system",
            &commands::identify_system(&self.tools()),
            IDENTIFY_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|out| commands::parse_identify_system(&out.stdout));
        let mut last = self
            .last_identify_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match answer {
            Ok(position) => {
                *last = None;
                Some(position)
            }
            Err(e) => {
                if last.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "cannot read the standby's replay timeline");
                    *last = Some(e);
                }
                None
            }
        }
    }

    /// Keeps a session open to the member this standby streams from (opened again when it
    /// closed or the upstream changed), for [`Instance::fence_peer`]. Only a member upstream:
    /// a standby cluster's remote is never fenced.
    async fn hold_session_to_upstream(&self) {
        let upstream = match &*self.upstream.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(WalSource::Member(up)) => up.clone(),
            _ => return,
        };
        let mut held = self.held.lock().await;
        if held
            .as_ref()
            .is_some_and(|(peer, session)| *peer == upstream && !session.is_closed())
        {
            return;
        }
        *held = super::sql::HeldSession::open(
            &self.peer_config(&upstream, "tribune-fence"),
            PEER_CONNECT_TIMEOUT,
        )
        .await
        .map(|session| (upstream, session));
    }

    fn postmaster_running(&self) -> bool {
        self.server.running()
    }

    /// Keeps initdb's configuration as `postgresql.base.conf`, which ours includes.
    fn ensure_base_conf(&self) -> std::io::Result<()> {
        let base = self.s.file(files::BASE_CONF);
        if base.exists() {
            return Ok(());
        }
        let conf = self.s.file(files::CONF);
        let ours = std::fs::read_to_string(&conf)
            .map(|t| t.starts_with(files::CONF_HEADER))
            .unwrap_or(false);
        if conf.exists() && !ours {
            std::fs::rename(&conf, &base)
        } else {
            write_atomic(
                &base,
                b"# The base configuration was missing; the tribune agent created this empty one.\n",
                0o600,
            )
        }
    }

    fn write_pgpass(&self) -> std::io::Result<()> {
        if let Some(dir) = self.s.pgpass.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        write_atomic(
            &self.s.pgpass,
            files::pgpass_file(&self.s).as_bytes(),
            0o600,
        )
    }

    fn sync_names(&self) -> String {
        self.sync_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops a peer's SQL fence from `postgresql.auto.conf` (see `fence`): this server runs
    /// only as the agent decides, and the agent decided anew.
    fn remove_fence(&self) -> std::io::Result<()> {
        let path = self.s.data_dir.join("postgresql.auto.conf");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let cleaned = fence::without_fence(&text);
        if cleaned != text {
            tracing::info!("removing a peer's fence from postgresql.auto.conf");
            write_atomic(&path, cleaned.as_bytes(), 0o600)?;
        }
        Ok(())
    }

    /// Writes every file for running as a primary (`None`) or a standby of `upstream`.
    fn write_config(&self, upstream: Option<&WalSource>) -> std::io::Result<()> {
        match upstream {
            Some(up) => self.write_config_as(ConfRole::Standby(Some(up))),
            None => self.write_config_as(ConfRole::Primary),
        }
    }

    fn write_config_as(&self, role: ConfRole<'_>) -> std::io::Result<()> {
        self.ensure_base_conf()?;
        self.remove_fence()?;
        self.write_pgpass()?;
        let kept = self
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (upstream, sync_names) = match role {
            ConfRole::Primary => (None, self.sync_names()),
            ConfRole::Standby(upstream) => (upstream, String::new()),
            ConfRole::PromotionCandidate => (kept.as_ref(), self.sync_names()),
        };
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = upstream.cloned();
        let settings = self.current();
        write_atomic(
            &self.s.file(files::CONF),
            files::postgresql_conf(&settings, upstream, &sync_names).as_bytes(),
            0o600,
        )?;
        write_atomic(
            &self.s.file(files::HBA),
            files::pg_hba(&settings).as_bytes(),
            0o600,
        )?;
        if let Some(ident) = files::pg_ident(&settings) {
            write_atomic(&self.s.file(files::IDENT), ident.as_bytes(), 0o600)?;
        }
        let signal = self.s.file(files::STANDBY_SIGNAL);
        match role {
            ConfRole::Standby(_) | ConfRole::PromotionCandidate => {
                write_atomic(&signal, b"", 0o600)
            }
            ConfRole::Primary => remove_if_exists(&signal),
        }
    }

    /// Makes way for initdb or a base backup: a missing or empty directory is fine; leftovers
    /// without `PG_VERSION` (an interrupted clone) are set aside; a cluster is an error.
    fn prepare_empty_data_dir(&self, operation: &'static str) -> Result<(), InstanceError> {
        let dir = &self.s.data_dir;
        datadir::prepare_empty(dir, has_pg_version(dir), operation)
    }

    fn fix_data_dir_mode(&self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.s.data_dir, std::fs::Permissions::from_mode(0o700))
    }

    async fn controldata(&self) -> Result<controldata::Controldata, InstanceError> {
        self.server
            .controldata(&commands::pg_controldata(&self.tools()))
            .await
    }

    /// initdb into the empty data directory (the superuser's password through a file beside
    /// it), then the first start as a primary.
    async fn initdb_and_start(&self, parent: &Path) -> Result<(), InstanceError> {
        const OP: &str = "bootstrap";
        let pwfile = match &self.s.superuser.1 {
            Some(pw) => {
                let path = parent.join(format!(".tribune-initdb-pw.{}", std::process::id()));
                write_atomic(&path, format!("{pw}\n").as_bytes(), 0o600)?;
                Some(path)
            }
            None => None,
        };
        let initdb = process::run(
            OP,
            &commands::initdb(&self.tools(), pwfile.as_deref()),
            INITDB_TIMEOUT,
        )
        .await;
        if let Some(p) = &pwfile {
            remove_if_exists(p)?;
        }
        initdb?;
        self.write_config(None)?;
        self.start_server(DbRole::Primary).await?;
        Ok(())
    }

    // ----- server start -----

    /// `pg_ctl start` then wait for SQL and check the role.
    async fn start_server(&self, want: DbRole) -> Result<(), InstanceError> {
        self.server
            .start(&commands::pg_ctl_start(&self.current()), want, |_| {
                String::new()
            })
            .await
    }

    /// Reloads the configuration and waits until `primary_conninfo` reads `expected`.
    async fn reload_primary_conninfo(&self, expected: &str) -> Result<(), InstanceError> {
        const OP: &str = "follow";
        self.sql_for(OP, "SELECT pg_catalog.pg_reload_conf()", ADMIN_TIMEOUT)
            .await?;
        self.wait_for_value(
            OP,
            "SELECT pg_catalog.current_setting('primary_conninfo')",
            expected,
        )
        .await
    }

    /// Poll `sql` (one value) every [`POLL`] until it returns `expected`; `Unknown` after
    /// [`RELOAD_TIMEOUT`]. For effects the server applies asynchronously (a reload, a WAL
    /// receiver exiting).
    async fn wait_for_value(
        &self,
        operation: &'static str,
        sql: &str,
        expected: &str,
    ) -> Result<(), InstanceError> {
        self.server
            .db
            .wait_for_value(operation, sql, expected, RELOAD_TIMEOUT)
            .await
    }

    /// How to reach another member's database as the superuser. A config of its own: the
    /// local one already names the local socket, and tokio-postgres would try that host first.
    fn peer_config(&self, peer: &Upstream, application_name: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .user(&self.s.superuser.0)
            .dbname("postgres")
            .application_name(application_name)
            .host(&peer.host)
            .port(peer.port)
            .connect_timeout(PEER_CONNECT_TIMEOUT);
        if let Some(pw) = &self.s.superuser.1 {
            config.password(pw);
        }
        config
    }

    /// Runs `sql` in `database` of the local server (a logical slot belongs to one database),
    /// on a connection of its own that ends with the call.
    async fn sql_in(
        &self,
        operation: &'static str,
        database: &str,
        sql: &str,
    ) -> Result<(), InstanceError> {
        let mut config = local_config(&self.s);
        config.dbname(database);
        super::sql::LocalSql::new(config, CONNECT_TIMEOUT)
            .query_for(operation, sql, ADMIN_TIMEOUT)
            .await
            .map(drop)
    }

    /// Copies the state files of the logical slots `names` from the primary `upstream` into
    /// `pg_replslot`, then restarts this standby once so that it loads them (PostgreSQL reads
    /// slots only at start-up). A slot the primary no longer has is skipped.
    async fn copy_logical_slots(
        &self,
        names: &[String],
        upstream: &Upstream,
    ) -> Result<(), InstanceError> {
        const OP: &str = "copy logical replication slots";
        let oldest = self
            .server
            .db
            .value(OP, slots::OLDEST_WAL_SQL, QUERY_TIMEOUT)
            .await?
            .unwrap_or_default();
        let mut copied = 0;
        for name in names {
            let Some(value) = super::sql::peer_value(
                &self.peer_config(upstream, "tribune-slots"),
                PEER_CONNECT_TIMEOUT,
                OP,
                &slots::read_state(name),
                QUERY_TIMEOUT,
            )
            .await?
            else {
                continue;
            };
            let Some((restart, hex)) = value
                .split_once(' ')
                .and_then(|(lsn, hex)| Some((lsn.parse::<Lsn>().ok()?, hex)))
            else {
                continue;
            };
            if !slots::has_wal_from(&oldest, restart) {
                tracing::info!(slot = %name, restart_lsn = %restart,
                    "not copying the logical slot yet: this standby no longer has the WAL from \
                     its restart position; waiting for its consumer to move it on");
                continue;
            }
            let state = slots::unhex(hex).map_err(|e| InstanceError::failed(OP, e))?;
            let dir = self.s.file("pg_replslot").join(name);
            std::fs::create_dir_all(&dir)?;
            write_atomic(&dir.join("state"), &state, 0o600)?;
            tracing::info!(slot = %name, from = %upstream.member, "copied logical replication slot from the primary");
            copied += 1;
        }
        if copied > 0 {
            tracing::info!("restarting the standby to load the copied logical replication slots");
            self.stop(StopMode::Fast).await?;
            self.start(Some(&WalSource::Member(upstream.clone())))
                .await?;
        }
        Ok(())
    }

    /// Single-user crash recovery, so that pg_rewind finds a clean shutdown.
    async fn crash_recovery(&self) -> Result<(), InstanceError> {
        const OP: &str = "crash recovery";
        tracing::info!(data_dir = %self.s.data_dir.display(), "doing crash recovery in a single user mode");
        // A standby's signal file makes single-user mode refuse to start.
        remove_if_exists(&self.s.file(files::STANDBY_SIGNAL))?;
        process::run(
            OP,
            &commands::single_user_recovery(&self.tools()),
            SINGLE_USER_TIMEOUT,
        )
        .await?;
        let cd = self.controldata().await?;
        if cd.cluster_state != ClusterStateOnDisk::ShutDown {
            return Err(InstanceError::failed(
                OP,
                format!(
                    "the cluster state is {:?} after single-user recovery",
                    cd.cluster_state
                ),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Instance for Postgres {
    fn engine(&self) -> &'static str {
        "PostgreSQL"
    }

    async fn data_dir(&self) -> Result<DataDir, InstanceError> {
        self.server
            .read_data_dir(
                &commands::pg_controldata(&self.tools()),
                &self.s.file(files::STANDBY_SIGNAL),
            )
            .await
    }

    async fn status(&self) -> LocalStatus {
        let pid_file = match self.server.alive().await {
            Ok(pid_file) => pid_file,
            Err(not_running) => return not_running,
        };
        let result = match self.sql(status::STATUS_SQL, QUERY_TIMEOUT).await {
            Ok(rows) => match rows.first() {
                Some(row) => {
                    status::parse_status(|name| row.try_get(name).ok().flatten().map(str::to_owned))
                }
                None => Err("the status query returned no row".to_owned()),
            },
            Err(SqlError::Timeout(t)) => Err(format!("the status query timed out after {t:?}")),
            Err(SqlError::Other(e)) => Err(e),
        };
        let mut st = {
            let mut last = self
                .last_status_error
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(st) => {
                    *last = None;
                    st
                }
                Err(e) => {
                    if last.as_deref() != Some(e.as_str()) {
                        tracing::warn!(error = %e, "cannot query the running server");
                        *last = Some(e);
                    }
                    let state = match pid_file.status.as_deref() {
                        Some("stopping") => DbState::Stopping,
                        _ => DbState::Starting,
                    };
                    LocalStatus {
                        state,
                        ..LocalStatus::default()
                    }
                }
            }
        };
        if st.role == Some(DbRole::Standby) && !st.streaming {
            st.replay_position = self.replay_position().await;
        }
        if st.role == Some(DbRole::Standby) && st.streaming {
            self.hold_session_to_upstream().await;
        }
        st
    }

    async fn bootstrap(&self) -> Result<String, InstanceError> {
        const OP: &str = "bootstrap";
        self.prepare_empty_data_dir(OP)?;
        let parent = self
            .s
            .data_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        std::fs::create_dir_all(&parent)?;
        if let Some(method) = &self.s.bootstrap_method {
            if let Err(e) = self.restore_cluster(method).await {
                self.discard_failed_restore().await;
                return Err(e);
            }
        } else {
            self.initdb_and_start(&parent).await?;
        }
        let existing: BTreeSet<String> =
            rows_column(&self.sql_for(OP, roles::LIST_SQL, ADMIN_TIMEOUT).await?, 0)
                .into_iter()
                .collect();
        self.sql_for(OP, &roles::bootstrap_sql(&self.s, &existing), ADMIN_TIMEOUT)
            .await?;
        let rows = self
            .sql_for(
                OP,
                "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
                QUERY_TIMEOUT,
            )
            .await?;
        rows_column(&rows, 0)
            .into_iter()
            .next()
            .ok_or_else(|| InstanceError::failed(OP, "no system identifier"))
    }

    /// PostgreSQL keeps no list of peers: `primary_conninfo` names the upstream and
    /// `pg_hba.conf` admits every member, so there is nothing to do.
    async fn set_replication_peers(&self, _peers: &[Upstream]) -> Result<(), InstanceError> {
        Ok(())
    }

    async fn clone_from(&self, source: &WalSource) -> Result<(), InstanceError> {
        self.create_replica(source, false).await
    }

    async fn clone_without_leader(&self, source: &WalSource) -> Result<(), InstanceError> {
        self.create_replica(source, true).await
    }

    async fn start(&self, upstream: Option<&WalSource>) -> Result<(), InstanceError> {
        const OP: &str = "start";
        self.server.require_cluster(OP)?;
        let want = DbRole::wanted(upstream);
        if self.server.runs_as(OP, want).await? {
            return match upstream {
                Some(up) => self.follow(up).await,
                None => Ok(self.write_config(None)?),
            };
        }
        self.write_config(upstream)?;
        self.start_server(want).await
    }

    async fn stop(&self, mode: StopMode) -> Result<(), InstanceError> {
        self.server
            .stop(&commands::pg_ctl_stop(&self.tools(), mode))
            .await
    }

    async fn promote(&self, _generation: Generation) -> Result<(), InstanceError> {
        const OP: &str = "promote";
        if self.server.answering_role(OP).await? == DbRole::Primary {
            return Ok(self.write_config(None)?);
        }
        let result = process::run(
            OP,
            &commands::pg_ctl_promote(&self.tools()),
            self.s.pg_ctl_timeout + CTL_MARGIN,
        )
        .await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "pg_ctl promote failed; checking the role");
        }
        let deadline = Instant::now() + self.s.pg_ctl_timeout;
        loop {
            if let Ok(DbRole::Primary) = self.role(QUERY_TIMEOUT).await {
                break;
            }
            if Instant::now() >= deadline {
                return match result {
                    Err(e @ InstanceError::Failed { .. }) if !self.postmaster_running() => Err(e),
                    _ => Err(InstanceError::Unknown {
                        operation: OP,
                        timeout: self.s.pg_ctl_timeout,
                    }),
                };
            }
            tokio::time::sleep(POLL).await;
        }
        // primary_conninfo means nothing to a primary; drop it so a restart stays primary.
        self.write_config(None)?;
        Ok(())
    }

    async fn follow(&self, upstream: &WalSource) -> Result<(), InstanceError> {
        const OP: &str = "follow";
        if !has_pg_version(&self.s.data_dir) {
            return Err(InstanceError::failed(OP, "the data directory is empty"));
        }
        let running = self.postmaster_running();
        if running {
            match self.role(QUERY_TIMEOUT).await {
                Ok(DbRole::Primary) => {
                    return Err(InstanceError::failed(
                        OP,
                        "the server runs as a primary; stop it and start it as a standby",
                    ));
                }
                Ok(DbRole::Standby) => {}
                // A standby still starting (not yet consistent, perhaps waiting for WAL from a
                // dead upstream) does not answer SQL; point it elsewhere with a signal. Nothing
                // can confirm the change yet, so the outcome is reported as unknown.
                Err(e) if self.s.file(files::STANDBY_SIGNAL).exists() => {
                    tracing::info!(error = ?e, "the standby does not answer; reloading by signal");
                    self.write_config(Some(upstream))?;
                    process::run(
                        OP,
                        &commands::pg_ctl_reload(&self.tools()),
                        QUERY_TIMEOUT * 5,
                    )
                    .await?;
                    return Err(InstanceError::Unknown {
                        operation: OP,
                        timeout: QUERY_TIMEOUT,
                    });
                }
                Err(e) => return Err(e.into_instance(OP)),
            }
        }
        self.write_config(Some(upstream))?;
        if running {
            self.reload_primary_conninfo(&files::source_conninfo(&self.s, upstream))
                .await?;
        }
        Ok(())
    }

    async fn stop_replication(&self) -> Result<(), InstanceError> {
        const OP: &str = "stop replication";
        self.server.require_cluster(OP)?;
        if !self.postmaster_running() {
            return Ok(self.write_config_as(ConfRole::Standby(None))?);
        }
        if self.server.answering_role(OP).await? == DbRole::Primary {
            return Err(InstanceError::failed(OP, "the server runs as a primary"));
        }
        self.write_config_as(ConfRole::Standby(None))?;
        self.reload_primary_conninfo("").await?;
        // The reload only asks the WAL receiver to go: wait until it has.
        self.wait_for_value(
            OP,
            "SELECT pg_catalog.count(*)::text FROM pg_catalog.pg_stat_wal_receiver",
            "0",
        )
        .await
    }

    async fn rewind(&self, source: &Upstream) -> Result<(), InstanceError> {
        const OP: &str = "rewind";
        if !self.s.use_pg_rewind {
            return Err(InstanceError::failed(
                OP,
                "pg_rewind is disabled (use_pg_rewind: false)",
            ));
        }
        self.server.require_cluster(OP)?;
        self.server.require_stopped(OP)?;
        let cd = self.controldata().await?;
        let clean = matches!(
            cd.cluster_state,
            ClusterStateOnDisk::ShutDown | ClusterStateOnDisk::ShutDownInRecovery
        );
        if !clean && !self.s.file("backup_label").exists() {
            self.crash_recovery().await?;
        }
        self.write_pgpass()?;
        let out = process::run(
            OP,
            &commands::pg_rewind(&self.tools(), source),
            REWIND_TIMEOUT,
        )
        .await?;
        tracing::info!(output = %out.stderr.trim(), "pg_rewind finished");
        // pg_rewind copied the source's configuration files: put ours back.
        self.write_config(Some(&WalSource::Member(source.clone())))?;
        Ok(())
    }

    async fn set_aside_data_dir(&self) -> Result<PathBuf, InstanceError> {
        self.server.set_aside().await
    }

    async fn sync_replication_slots(
        &self,
        t: &super::slots::SlotTargets,
    ) -> Result<Vec<String>, InstanceError> {
        const OP: &str = "sync replication slots";
        if !self.s.use_slots {
            return Ok(Vec::new());
        }
        // A standby may hold slots too: the standby leader of a standby cluster keeps one for
        // each member cascading from it, and every standby keeps the permanent slots. The
        // server must answer, whatever its role.
        let role = self.server.answering_role(OP).await?;
        let rows = self
            .sql_for(
                OP,
                &format!(
                    "SELECT {}, (SELECT status FROM pg_catalog.pg_stat_wal_receiver) = 'streaming'",
                    slots::SLOTS_JSON
                ),
                QUERY_TIMEOUT,
            )
            .await?;
        let row = rows.first();
        let column = |i: usize| row.and_then(|r| r.try_get(i).ok().flatten());
        let existing = slots::parse(column(0)).map_err(|e| InstanceError::failed(OP, e))?;
        let streaming = column(1) == Some("t");
        let own = self.s.name.slot_name();
        let names = |members: &[MemberName]| -> Vec<String> {
            members
                .iter()
                .map(MemberName::slot_name)
                .filter(|n| *n != own && !n.is_empty())
                .collect()
        };
        let (members, retained) = (names(&t.members), names(&t.retained));
        let plan = super::slots::plan(&super::slots::SlotView {
            role: t.role,
            existing: &existing,
            members: &members,
            retained: &retained,
            permanent: &t.permanent,
            ignore: &t.ignore,
            primary: &t.primary,
            can_copy_logical: role == DbRole::Standby && streaming && t.upstream.is_some(),
        });
        self.server.drop_slots(&plan.drop).await;
        for name in &plan.create_physical {
            tracing::info!(slot = %name, "creating physical replication slot");
            self.sql_for(OP, &slots::create_physical(name), ADMIN_TIMEOUT)
                .await?;
        }
        for slot in &plan.create_logical {
            tracing::info!(slot = %slot.name, database = %slot.database, plugin = %slot.plugin,
                "creating logical replication slot");
            self.sql_in(
                OP,
                &slot.database,
                &slots::create_logical(&slot.name, &slot.plugin),
            )
            .await?;
        }
        if let (false, Some(upstream)) = (plan.copy_logical.is_empty(), &t.upstream) {
            self.copy_logical_slots(&plan.copy_logical, upstream)
                .await?;
        }
        for (name, to) in &plan.advance {
            let database = existing
                .iter()
                .find(|e| e.name == *name)
                .and_then(|e| e.database.clone());
            let sql = slots::advance(name, *to);
            let result = match &database {
                Some(db) => self.sql_in(OP, db, &sql).await,
                None => self.sql_for(OP, &sql, ADMIN_TIMEOUT).await.map(drop),
            };
            if let Err(e) = result {
                tracing::warn!(slot = %name, to = %to, error = %e, "could not advance replication slot");
                // A copy whose WAL is gone can never move: drop it, to be copied again.
                if database.is_some() && e.to_string().contains("has already been removed") {
                    self.server.drop_slots(std::slice::from_ref(name)).await;
                }
            }
        }
        Ok(plan.not_ready)
    }

    async fn set_synchronous_standby_names(
        &self,
        value: &str,
    ) -> Result<Option<Lsn>, InstanceError> {
        const OP: &str = "set synchronous_standby_names";
        *self.sync_names.lock().unwrap_or_else(|e| e.into_inner()) = value.to_owned();
        match self.role(QUERY_TIMEOUT).await.ok() {
            Some(DbRole::Primary) => {}
            Some(DbRole::Standby) => {
                // Loaded now, in effect from the promotion on: a standby waits for nobody.
                self.write_config_as(ConfRole::PromotionCandidate)?;
                self.server.load_sync_names(OP, value).await?;
                return Ok(None);
            }
            // Kept for the next start.
            None => return Ok(None),
        }
        self.write_config(None)?;
        let lsn = self
            .server
            .apply_sync_names(OP, value, "SELECT pg_catalog.pg_current_wal_lsn()")
            .await?;
        Ok(Some(lsn))
    }

    async fn fence_peer(&self, peer: &Upstream) -> Result<PeerFence, InstanceError> {
        // The session held since the peer was healthy first: it reaches a primary whose
        // postmaster no longer accepts connections. A held session that does not answer at
        // once (the peer cut off) gives way to a new connection, as before.
        let held = self.held.lock().await.take();
        if let Some((held_peer, session)) = held
            && held_peer == *peer
            && !session.is_closed()
        {
            let outcome = session
                .fence(
                    PEER_CONNECT_TIMEOUT,
                    "SELECT pg_catalog.pg_is_in_recovery()::text",
                    &fence::FENCE_STATEMENTS,
                    ADMIN_TIMEOUT,
                )
                .await?;
            if outcome != PeerFence::Unreachable {
                return Ok(outcome);
            }
        }
        super::sql::fence_over_sql(
            &self.peer_config(peer, "tribune-fence"),
            PEER_CONNECT_TIMEOUT,
            "SELECT pg_catalog.pg_is_in_recovery()::text",
            &fence::FENCE_STATEMENTS,
            ADMIN_TIMEOUT,
        )
        .await
    }

    async fn reconfigure(
        &self,
        parameters: &std::collections::BTreeMap<String, serde_json::Value>,
        pg_hba: &[String],
    ) -> Result<bool, InstanceError> {
        const OP: &str = "reload the configuration";
        let wanted = LiveConf {
            parameters: parameters.clone(),
            pg_hba: pg_hba.to_vec(),
        };
        {
            let current = self.current();
            if current.parameters == wanted.parameters && current.pg_hba == wanted.pg_hba {
                return Ok(false);
            }
        }
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(wanted);
        if !self.postmaster_running() {
            // Written at the next start.
            return Ok(true);
        }
        match self.role(QUERY_TIMEOUT).await {
            Ok(DbRole::Primary) => self.write_config_as(ConfRole::Primary)?,
            Ok(DbRole::Standby) => {
                let upstream = self
                    .upstream
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                self.write_config_as(ConfRole::Standby(upstream.as_ref()))?
            }
            // Starting or stopping: the next start writes the files.
            Err(_) => return Ok(true),
        }
        self.sql_for(OP, "SELECT pg_catalog.pg_reload_conf()", QUERY_TIMEOUT)
            .await?;
        Ok(true)
    }

    async fn peer_replayed_lsn(&self, peer: &Upstream) -> Result<Option<Lsn>, InstanceError> {
        let value = super::sql::peer_value(
            &self.peer_config(peer, "tribune-switchover"),
            PEER_CONNECT_TIMEOUT,
            "read a peer's replay position",
            "SELECT pg_catalog.pg_last_wal_replay_lsn()::text",
            QUERY_TIMEOUT,
        )
        .await?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    async fn timeline_history(
        &self,
        timeline: crate::types::Timeline,
    ) -> Result<Vec<super::TimelineSwitch>, InstanceError> {
        self.server.timeline_history("pg_wal", timeline).await
    }

    async fn checkpoint(&self) -> Result<(), InstanceError> {
        self.server.checkpoint().await
    }

    fn superuser_dsn(&self) -> Option<String> {
        Some(files::superuser_dsn(&self.s))
    }

    fn use_binaries(&self, binaries: Option<&crate::state::ClusterBinaries>) {
        *self.binaries.lock().unwrap_or_else(|e| e.into_inner()) = binaries.cloned();
    }

    async fn check_upgrade(
        &self,
        target: &super::UpgradeTarget,
        role: super::UpgradeRole,
    ) -> Result<super::UpgradeFacts, InstanceError> {
        self.check_upgrade_here(target, role).await
    }

    async fn upgrade(&self, target: &super::UpgradeTarget) -> Result<String, InstanceError> {
        self.upgrade_here(target).await
    }

    async fn switch_to_upgraded(&self, target: &super::UpgradeTarget) -> Result<(), InstanceError> {
        self.switch_here(target).await
    }

    async fn undo_upgrade(&self, target: &super::UpgradeTarget) -> Result<(), InstanceError> {
        self.undo_here(target).await
    }
}
