//! The effects of making a data directory some other way than initdb: a replica by the methods
//! of `postgresql.create_replica_methods` in order (`basebackup`, or the operator's command such
//! as a pgBackRest restore), and a new cluster by a custom `bootstrap.method` (a restore, then
//! recovery to its end or target, then promotion). The command lines are `methods` (pure).
//!
//! Hazards: a method that failed may leave a partial copy. The data directory was empty when
//! the clone began (`prepare_empty` set any leftovers aside), so what a failed method left is
//! only a copy this clone made, and is removed unless the method says `keep_data`. A restore
//! tool writes recovery settings into `postgresql.auto.conf`, which overrides
//! `postgresql.conf`: they are removed so the agent's own apply.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::methods::{bootstrap_command, replica_command, without_recovery_settings};
use super::settings::has_pg_version;
use super::{BASEBACKUP_TIMEOUT, Postgres, commands, files, remove_if_exists};
use crate::config::{CustomBootstrap, ReplicaMethod};
use crate::instance::conf::guc_line;
use crate::instance::process::{self, write_atomic};
use crate::instance::server::{POLL, QUERY_TIMEOUT};
use crate::instance::sql::rows_column;
use crate::instance::{InstanceError, WalSource};

const CLONE: &str = "clone";
const RESTORE: &str = "bootstrap";
const RECOVERY_SIGNAL: &str = "recovery.signal";
/// A restored cluster replays the archive up to its end or target: long for a big archive;
/// this only catches a recovery that makes no end.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl Postgres {
    /// Tries each replica method in order until one fills the data directory; logs which one
    /// did, and why each before it failed. Leaves the files of a standby of `source`.
    /// `without_leader`: only the methods that need no running member (`no_leader`).
    pub(super) async fn create_replica(
        &self,
        source: &WalSource,
        without_leader: bool,
    ) -> Result<(), InstanceError> {
        self.prepare_empty_data_dir(CLONE)?;
        self.write_pgpass()?;
        let mut failures = Vec::new();
        for method in usable_methods(&self.s.replica_methods, without_leader) {
            let name = method.name();
            match self.run_replica_method(method, source).await {
                Ok(()) => {
                    tracing::info!(method = name, "replica has been created using {name}");
                    self.fix_data_dir_mode()?;
                    self.write_config(Some(source))?;
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(method = name, error = %e, "error creating replica using method {name}");
                    failures.push(format!("{name}: {e}"));
                    let keep = matches!(method, ReplicaMethod::Custom(m) if m.keep_data);
                    if !keep {
                        self.clear_data_dir()?;
                    }
                }
            }
        }
        Err(InstanceError::failed(
            CLONE,
            format!("no replica method succeeded ({})", failures.join("; ")),
        ))
    }

    async fn run_replica_method(
        &self,
        method: &ReplicaMethod,
        source: &WalSource,
    ) -> Result<(), InstanceError> {
        match method {
            ReplicaMethod::Basebackup => {
                let basebackup = commands::pg_basebackup(&self.tools(), source)?;
                // A keep_data method before this one may have left files: pg_basebackup
                // needs an empty directory.
                self.clear_data_dir()?;
                process::run(CLONE, &basebackup, BASEBACKUP_TIMEOUT).await?;
            }
            ReplicaMethod::Custom(m) => {
                if !m.keep_data {
                    self.clear_data_dir()?;
                }
                self.ensure_data_dir()?;
                process::run(
                    CLONE,
                    &replica_command(&self.s, m, source),
                    BASEBACKUP_TIMEOUT,
                )
                .await?;
            }
        }
        if !has_pg_version(&self.s.data_dir) {
            return Err(InstanceError::failed(
                CLONE,
                "the method succeeded but left no PG_VERSION in the data directory",
            ));
        }
        if let ReplicaMethod::Custom(_) = method {
            // The agent writes the standby's own configuration (standby.signal, the upstream):
            // a restore's recovery settings and signal would override or contradict it.
            self.remove_restore_recovery_settings()?;
            remove_if_exists(&self.s.file(RECOVERY_SIGNAL))?;
        }
        Ok(())
    }

    /// Restores a new cluster with the `bootstrap.method` command, recovers it (to the end of
    /// the archive, or its target) and leaves it running as a primary.
    pub(super) async fn restore_cluster(&self, m: &CustomBootstrap) -> Result<(), InstanceError> {
        self.ensure_data_dir()?;
        self.write_pgpass()?;
        tracing::info!(method = %m.name, command = %m.command.text, "running custom bootstrap script");
        process::run(RESTORE, &bootstrap_command(&self.s, m), BASEBACKUP_TIMEOUT)
            .await
            .map_err(|e| match e {
                InstanceError::Failed { detail, .. } => InstanceError::failed(
                    RESTORE,
                    format!("the bootstrap method {}: {detail}", m.name),
                ),
                other => other,
            })?;
        if !has_pg_version(&self.s.data_dir) {
            return Err(InstanceError::failed(
                RESTORE,
                format!(
                    "the bootstrap method {} left no PG_VERSION in the data directory",
                    m.name
                ),
            ));
        }
        self.fix_data_dir_mode()?;
        self.write_config(None)?;
        let signal = self.s.file(RECOVERY_SIGNAL);
        if !m.recovery_conf.is_empty() {
            self.remove_restore_recovery_settings()?;
            // Appended to the primary's postgresql.conf for this first start only: the next
            // rewrite of the file (the primary's) drops them, once recovery has ended.
            let conf = self.s.file(files::CONF);
            let mut text = std::fs::read_to_string(&conf)?;
            text.push_str(&format!("\n# bootstrap.{}.recovery_conf\n", m.name));
            for (name, value) in &m.recovery_conf {
                text.push_str(&guc_line(name, value));
            }
            write_atomic(&conf, text.as_bytes(), 0o600)?;
            write_atomic(&signal, b"", 0o600)?;
        } else if !m.keep_existing_recovery_conf {
            self.remove_restore_recovery_settings()?;
            remove_if_exists(&signal)?;
        }
        self.recover_restored().await?;
        // The recovery settings were for the restore only.
        self.write_config(None)?;
        Ok(())
    }

    /// Starts the restored cluster and waits until recovery has ended and it runs as a
    /// primary: a recovery paused at its target is promoted.
    async fn recover_restored(&self) -> Result<(), InstanceError> {
        let start = process::run(
            RESTORE,
            &commands::pg_ctl_start(&self.current()),
            self.s.pg_ctl_timeout + crate::instance::server::CTL_MARGIN,
        )
        .await;
        if let Err(e) = start {
            // pg_ctl gives up waiting while a long archive recovery goes on.
            if !self.postmaster_running() {
                return Err(InstanceError::failed(
                    RESTORE,
                    format!("{e}\nserver log:\n{}", self.server.log_tail()),
                ));
            }
        }
        let deadline = Instant::now() + RECOVERY_TIMEOUT;
        let mut promoted = false;
        loop {
            if !self.postmaster_running() {
                return Err(InstanceError::failed(
                    RESTORE,
                    format!(
                        "the restored server stopped during recovery (recovery_target_action: \
                         shutdown, or a restore_command that cannot reach the archive?)\nserver \
                         log:\n{}",
                        self.server.log_tail()
                    ),
                ));
            }
            let state = self
                .sql(
                    "SELECT pg_catalog.pg_is_in_recovery()::text, \
                     (pg_catalog.pg_is_in_recovery() AND pg_catalog.pg_is_wal_replay_paused())::text",
                    QUERY_TIMEOUT,
                )
                .await;
            if let Ok(rows) = state {
                let in_recovery = rows_column(&rows, 0).first().map(String::as_str) == Some("true");
                let paused = rows_column(&rows, 1).first().map(String::as_str) == Some("true");
                if !in_recovery {
                    tracing::info!("the restored cluster finished recovery and runs as a primary");
                    return Ok(());
                }
                if paused && !promoted {
                    tracing::info!("recovery paused at its target: promoting the restored cluster");
                    self.sql_for(
                        RESTORE,
                        "SELECT pg_catalog.pg_promote(false)",
                        QUERY_TIMEOUT,
                    )
                    .await?;
                    promoted = true;
                }
            }
            if Instant::now() >= deadline {
                return Err(InstanceError::Unknown {
                    operation: RESTORE,
                    timeout: RECOVERY_TIMEOUT,
                });
            }
            tokio::time::sleep(POLL * 10).await;
        }
    }

    /// After a failed restore: stops what it started and removes the copy, which the backup
    /// repository can give again, so that a retry starts clean and failed attempts do not each
    /// leave a full copy set aside. Whatever cannot be removed is left to the caller, which
    /// sets a data directory holding a cluster aside.
    pub(super) async fn discard_failed_restore(&self) {
        if self.postmaster_running() {
            let stop = commands::pg_ctl_stop(&self.tools(), crate::instance::StopMode::Immediate);
            if let Err(e) = self.server.stop(&stop).await {
                tracing::warn!(error = %e, "cannot stop the server of the failed restore");
                return;
            }
        }
        match self.clear_data_dir() {
            Ok(()) => tracing::warn!(
                data_dir = %self.s.data_dir.display(),
                "removed the failed restore's copy from the data directory"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot remove the failed restore's copy"),
        }
    }

    fn remove_restore_recovery_settings(&self) -> std::io::Result<()> {
        let path = self.s.file("postgresql.auto.conf");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let (cleaned, removed) = without_recovery_settings(&text);
        if removed {
            tracing::info!("removing the restore's recovery settings from postgresql.auto.conf");
            write_atomic(&path, cleaned.as_bytes(), 0o600)?;
        }
        Ok(())
    }

    /// The data directory, empty, created if missing (mode 0700, as PostgreSQL wants it).
    fn ensure_data_dir(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.s.data_dir)?;
        self.fix_data_dir_mode()
    }

    /// Removes what a replica method put in the data directory (see the module's hazards).
    fn clear_data_dir(&self) -> std::io::Result<()> {
        clear_dir(&self.s.data_dir)
    }
}

/// The methods to try, in order: every one, or without a running leader only the `no_leader`
/// ones (basebackup copies a running member, so it is never one).
fn usable_methods(methods: &[ReplicaMethod], without_leader: bool) -> Vec<&ReplicaMethod> {
    methods
        .iter()
        .filter(|m| !without_leader || matches!(m, ReplicaMethod::Custom(c) if c.no_leader))
        .collect()
}

/// Empties `dir` (kept, so its owner and mode stay); a missing one is fine.
fn clear_dir(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{CustomReplicaMethod, ReplicaMethod, ScriptCommand};

    fn custom(name: &str, no_leader: bool) -> ReplicaMethod {
        ReplicaMethod::Custom(CustomReplicaMethod {
            name: name.into(),
            command: ScriptCommand {
                text: name.into(),
                argv: vec![name.into()],
            },
            keep_data: false,
            no_leader,
            no_params: false,
            options: Vec::new(),
        })
    }

    #[test]
    fn methods_without_a_leader_are_the_no_leader_ones_in_order() {
        let methods = [
            custom("wal_g", false),
            ReplicaMethod::Basebackup,
            custom("pgbackrest", true),
            custom("barman", true),
        ];
        let names = |without_leader| -> Vec<&str> {
            super::usable_methods(&methods, without_leader)
                .into_iter()
                .map(ReplicaMethod::name)
                .collect()
        };
        // (without a leader, the methods tried)
        let rows: [(bool, &[&str]); 2] = [
            (false, &["wal_g", "basebackup", "pgbackrest", "barman"]),
            (true, &["pgbackrest", "barman"]),
        ];
        for (without_leader, want) in rows {
            assert_eq!(
                names(without_leader),
                want,
                "without_leader {without_leader}"
            );
        }
    }

    #[test]
    fn clearing_empties_the_directory_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("base/1")).unwrap();
        std::fs::write(data.join("PG_VERSION"), "15\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), data.join("pg_wal")).unwrap();
        super::clear_dir(&data).unwrap();
        assert!(data.is_dir());
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
        assert!(dir.path().is_dir(), "a symlink's target is not followed");
        super::clear_dir(&dir.path().join("missing")).unwrap();
    }
}
