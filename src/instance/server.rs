//! The local server as both adapters drive it from outside: whether it runs, which role it
//! answers with, starting it with a tool and confirming by SQL that it came up in the wanted
//! role, stopping it, reading its control data, setting its data directory aside, dropping
//! slots, applying `synchronous_standby_names`. PostgreSQL and openGauss differ in the tools and
//! SQL they pass in (`pg_ctl` or `gs_ctl`, `pg_current_wal_lsn` or `pg_current_xlog_location`),
//! not in these steps.
//!
//! Hazards: every step confirms its effect before `Ok`; a step whose effect could not be
//! confirmed in time is `Unknown`. Nothing here deletes a data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::datadir::{self, Postmaster};
use super::postgres::controldata::{self, Controldata, PidFile};
use super::postgres::settings::has_pg_version;
use super::process::{self, CommandLine};
use super::sql::{LocalSql, SqlError, first_value};
use super::{ControlData, DataDir, DbRole, InstanceError, LocalStatus, TimelineSwitch};
use crate::state::DbState;
use crate::types::{Lsn, Timeline};

/// The role query and other quick statements.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Slot drops, reloads.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
const CONTROLDATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to the control tool's `-t` for the tool itself: it enforces `-t`, we only catch a hang.
pub const CTL_MARGIN: Duration = Duration::from_secs(15);
/// How long a reload may take to show in `current_setting`.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait for the server checks again: every such wait lies on the failover path, and
/// a check is one local query.
pub const POLL: Duration = Duration::from_millis(20);
/// A control command that only signals the server (`gs_ctl stop -W`): it returns at once.
const GS_CTL_SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LocalServer {
    pub data_dir: PathBuf,
    pub db: LocalSql,
    /// The control tool's `-t` (`pg_ctl_timeout`), and the confirmations that follow it.
    pub ctl_timeout: Duration,
    /// Where the server's output goes, quoted when it does not start.
    pub log_file: PathBuf,
}

impl LocalServer {
    pub fn running(&self) -> bool {
        matches!(datadir::postmaster(&self.data_dir), Postmaster::Alive(_))
    }

    /// The running postmaster's pid file, or the status of a server that does not run.
    pub async fn alive(&self) -> Result<PidFile, LocalStatus> {
        let state = match datadir::postmaster(&self.data_dir) {
            Postmaster::Alive(pid_file) => return Ok(pid_file),
            Postmaster::Absent => DbState::Stopped,
            Postmaster::Stale => DbState::Crashed,
        };
        self.db.reset().await;
        Err(LocalStatus {
            state,
            ..LocalStatus::default()
        })
    }

    /// `pg_is_in_recovery()` as a role.
    pub async fn role(&self, timeout: Duration) -> Result<DbRole, SqlError> {
        let rows = self
            .db
            .query("SELECT pg_catalog.pg_is_in_recovery()", timeout)
            .await?;
        match first_value(&rows).as_deref() {
            Some("t") => Ok(DbRole::Standby),
            Some("f") => Ok(DbRole::Primary),
            other => Err(SqlError::Other(format!(
                "pg_is_in_recovery() returned {other:?}"
            ))),
        }
    }

    /// The role of the server, for an operation that needs it running.
    pub async fn answering_role(&self, operation: &'static str) -> Result<DbRole, InstanceError> {
        match self.role(QUERY_TIMEOUT).await {
            Ok(role) => Ok(role),
            Err(_) if !self.running() => Err(InstanceError::failed(
                operation,
                "the server is not running",
            )),
            Err(e) => Err(e.into_instance(operation)),
        }
    }

    /// Waits until the server answers SQL, up to `timeout`; returns its role.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<DbRole, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let err = match self.role(QUERY_TIMEOUT).await {
                Ok(role) => return Ok(role),
                Err(e) => e.describe(),
            };
            if Instant::now() >= deadline || !self.running() {
                return Err(err);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn require_cluster(&self, operation: &'static str) -> Result<(), InstanceError> {
        if has_pg_version(&self.data_dir) {
            Ok(())
        } else {
            Err(InstanceError::failed(
                operation,
                "the data directory is empty",
            ))
        }
    }

    pub fn require_stopped(&self, operation: &'static str) -> Result<(), InstanceError> {
        if self.running() {
            Err(InstanceError::failed(
                operation,
                "the server is running; stop it first",
            ))
        } else {
            Ok(())
        }
    }

    /// For a start: whether a server already runs as `want` (`false`: none runs, start it).
    /// One that runs but does not answer is `Unknown`; one in the other role is refused.
    pub async fn runs_as(
        &self,
        operation: &'static str,
        want: DbRole,
    ) -> Result<bool, InstanceError> {
        if !self.running() {
            return Ok(false);
        }
        let role = match self.wait_ready(self.ctl_timeout).await {
            Ok(role) => role,
            Err(e) if self.running() => {
                tracing::warn!(error = %e, "a server runs but does not answer");
                return Err(InstanceError::Unknown {
                    operation,
                    timeout: self.ctl_timeout,
                });
            }
            // It went away while we waited: start it.
            Err(_) => return Ok(false),
        };
        if !self.running() {
            return Ok(false);
        }
        if role != want {
            return Err(InstanceError::failed(
                operation,
                format!("the server already runs as {role:?}; stop it first"),
            ));
        }
        Ok(true)
    }

    /// Runs the start command `cmd`, then waits for SQL and checks the role. `explain` turns
    /// the tool's output into a reason, for a tool that exits 0 without starting anything.
    pub async fn start(
        &self,
        cmd: &CommandLine,
        want: DbRole,
        explain: fn(&str) -> String,
    ) -> Result<(), InstanceError> {
        const OP: &str = "start";
        let printed = match process::run(OP, cmd, self.ctl_timeout + CTL_MARGIN).await {
            Ok(out) => format!("{}{}", out.stdout, out.stderr),
            Err(e) if self.running() => {
                tracing::warn!(error = %e, "the start command failed but a server is running");
                return Err(InstanceError::Unknown {
                    operation: OP,
                    timeout: self.ctl_timeout,
                });
            }
            Err(InstanceError::Failed { operation, detail }) => {
                return Err(InstanceError::Failed {
                    operation,
                    detail: format!("{detail}\nserver log:\n{}", self.log_tail()),
                });
            }
            Err(e) => return Err(e),
        };
        match self.wait_ready(self.ctl_timeout).await {
            Ok(role) if role == want => Ok(()),
            Ok(role) => Err(InstanceError::failed(
                OP,
                format!("the server runs as {role:?}, not {want:?}"),
            )),
            Err(_) if self.running() => Err(InstanceError::Unknown {
                operation: OP,
                timeout: self.ctl_timeout,
            }),
            Err(e) => {
                let why = explain(&printed);
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                };
                Err(InstanceError::failed(
                    OP,
                    format!(
                        "the server stopped: {e}{why}\nserver log:\n{}",
                        self.log_tail()
                    ),
                ))
            }
        }
    }

    /// Runs the stop command `cmd`; done when no postmaster runs.
    pub async fn stop(&self, cmd: &CommandLine) -> Result<(), InstanceError> {
        const OP: &str = "stop";
        self.db.reset().await;
        if !self.running() {
            return Ok(());
        }
        let result = process::run(OP, cmd, self.ctl_timeout + CTL_MARGIN).await;
        if !self.running() {
            return Ok(());
        }
        match result {
            Ok(_) | Err(InstanceError::Failed { .. }) => Err(InstanceError::Unknown {
                operation: OP,
                timeout: self.ctl_timeout,
            }),
            Err(e) => Err(e),
        }
    }

    /// Stops the server with `signal` (a stop that does not wait, such as `gs_ctl stop -W`),
    /// then waits until the postmaster is gone, looking every [`POLL`]. gs_ctl's own wait looks
    /// once a second: a switchover sat out up to a second after openGauss had exited.
    pub async fn stop_polling(&self, signal: &CommandLine) -> Result<(), InstanceError> {
        const OP: &str = "stop";
        self.db.reset().await;
        if !self.running() {
            return Ok(());
        }
        let signalled = process::run(OP, signal, GS_CTL_SIGNAL_TIMEOUT).await;
        let deadline = tokio::time::Instant::now() + self.ctl_timeout;
        while self.running() {
            if tokio::time::Instant::now() >= deadline {
                return Err(match signalled {
                    Err(e @ InstanceError::Io(_)) => e,
                    _ => InstanceError::Unknown {
                        operation: OP,
                        timeout: self.ctl_timeout,
                    },
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        datadir::log_tail(&self.log_file)
    }

    /// Runs `pg_controldata` (`cmd`) and parses it.
    pub async fn controldata(&self, cmd: &CommandLine) -> Result<Controldata, InstanceError> {
        let out = process::run("pg_controldata", cmd, CONTROLDATA_TIMEOUT).await?;
        controldata::parse_controldata(&out.stdout)
            .map_err(|e| InstanceError::failed("pg_controldata", e))
    }

    /// What is on disk; `standby_marker` is the engine's sign of a standby's configuration.
    pub async fn read_data_dir(
        &self,
        controldata_cmd: &CommandLine,
        standby_marker: &Path,
    ) -> Result<DataDir, InstanceError> {
        if !has_pg_version(&self.data_dir) {
            return Ok(DataDir::Empty);
        }
        let cd = self.controldata(controldata_cmd).await?;
        Ok(DataDir::Initialized(ControlData {
            sysid: cd.sysid,
            cluster_state: cd.cluster_state,
            timeline: cd.timeline,
            standby_configured: standby_marker.exists(),
            checkpoint: cd.checkpoint,
        }))
    }

    /// Moves the stopped server's data directory aside; returns where it went.
    pub async fn set_aside(&self) -> Result<PathBuf, InstanceError> {
        const OP: &str = "set aside";
        self.require_stopped(OP)?;
        if !self.data_dir.exists() {
            return Err(InstanceError::failed(OP, "there is no data directory"));
        }
        self.db.reset().await;
        let target = datadir::set_aside(&self.data_dir)?;
        tracing::warn!(
            data_dir = %self.data_dir.display(),
            moved_to = %target.display(),
            "set the data directory aside"
        );
        Ok(target)
    }

    /// Drops these replication slots; one that cannot be dropped (it became active) is left
    /// for the next call.
    pub async fn drop_slots(&self, names: &[String]) {
        for name in names {
            tracing::info!(slot = %name, "dropping replication slot");
            let sql = format!(
                "SELECT pg_catalog.pg_drop_replication_slot({})",
                super::conf::sql_literal(name)
            );
            if let Err(e) = self.db.query(&sql, ADMIN_TIMEOUT).await {
                tracing::warn!(slot = %name, error = %e.describe(), "could not drop replication slot");
            }
        }
    }

    /// Reloads the configuration that now names `value`, waits until the server runs with it,
    /// and returns the WAL position read after that (`lsn_sql`: one LSN).
    pub async fn apply_sync_names(
        &self,
        operation: &'static str,
        value: &str,
        lsn_sql: &str,
    ) -> Result<Lsn, InstanceError> {
        self.load_sync_names(operation, value).await?;
        let text = self.db.value(operation, lsn_sql, QUERY_TIMEOUT).await?;
        text.as_deref()
            .and_then(|t| t.parse::<Lsn>().ok())
            .ok_or_else(|| InstanceError::failed(operation, format!("{lsn_sql} returned {text:?}")))
    }

    /// Reloads the configuration that now names `value` and waits until the server runs with
    /// it (a standby loads it too, for its promotion).
    pub async fn load_sync_names(
        &self,
        operation: &'static str,
        value: &str,
    ) -> Result<(), InstanceError> {
        self.db
            .query_for(
                operation,
                "SELECT pg_catalog.pg_reload_conf()",
                QUERY_TIMEOUT,
            )
            .await?;
        // A reload is asynchronous: confirm the server runs with the new value.
        self.db
            .wait_for_value(
                operation,
                "SELECT pg_catalog.current_setting('synchronous_standby_names')",
                value,
                RELOAD_TIMEOUT,
            )
            .await
    }

    /// The switches in the history file of `timeline` in `wal_dir` (`pg_wal`, `pg_xlog`);
    /// empty on timeline 1.
    pub async fn timeline_history(
        &self,
        wal_dir: &str,
        timeline: Timeline,
    ) -> Result<Vec<TimelineSwitch>, InstanceError> {
        if timeline.0 <= 1 {
            return Ok(Vec::new());
        }
        let path = self
            .data_dir
            .join(wal_dir)
            .join(format!("{:08X}.history", timeline.0));
        let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
            InstanceError::failed("read timeline history", format!("{}: {e}", path.display()))
        })?;
        Ok(super::parse_timeline_history(&text))
    }

    pub async fn checkpoint(&self) -> Result<(), InstanceError> {
        self.db
            .query_for("checkpoint", "CHECKPOINT", self.ctl_timeout)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server stand-in: a `sleep` whose PID is in `postmaster.pid`, reaped when it exits (a
    /// zombie would still count as alive).
    fn stand_in(dir: &std::path::Path) -> u32 {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        std::fs::write(
            dir.join("postmaster.pid"),
            format!("{pid}\n{}\n", dir.display()),
        )
        .unwrap();
        std::thread::spawn(move || child.wait());
        pid
    }

    fn server(dir: &std::path::Path, ctl_timeout: Duration) -> LocalServer {
        LocalServer {
            data_dir: dir.to_owned(),
            db: LocalSql::new(tokio_postgres::Config::new(), Duration::from_millis(10)),
            ctl_timeout,
            log_file: dir.join("log"),
        }
    }

    #[tokio::test]
    async fn a_stop_that_only_signals_returns_once_the_server_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pid = stand_in(dir.path());
        let server = server(dir.path(), Duration::from_secs(10));
        assert!(server.running());
        let kill = CommandLine::new("kill").arg("-TERM").arg(pid.to_string());
        let started = std::time::Instant::now();
        server.stop_polling(&kill).await.unwrap();
        assert!(!server.running());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_server_that_outlives_the_timeout_leaves_the_outcome_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let pid = stand_in(dir.path());
        let server = server(dir.path(), Duration::from_millis(200));
        let nothing = CommandLine::new("true");
        assert!(matches!(
            server.stop_polling(&nothing).await,
            Err(InstanceError::Unknown {
                operation: "stop",
                ..
            })
        ));
        assert!(server.running());
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
