//! The effects of a major-version upgrade on this member (the plan is `upgrade`): checking the
//! host, running `pg_upgrade --link` on the stopped primary, putting the new cluster in place,
//! and undoing an upgrade that failed before the new cluster first started.
//!
//! Hazards: the agent may have been killed in the middle of any step, leaving pg_upgrade (or a
//! server it started) running and its directories half made. Every step first ends what an
//! earlier attempt left running (the processes whose working directory is the upgrade's work
//! directory, servers on the new cluster), then makes its result from the start again or
//! completes it. The old data directory is never deleted: it is renamed aside after the point
//! of no return, and before it only its `global/pg_control` is renamed by pg_upgrade (and back
//! by the undo).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::upgrade::{self, OldCluster};
use super::{
    ADMIN_TIMEOUT, CONNECT_TIMEOUT, INITDB_TIMEOUT, Postgres, commands, local_config,
    remove_if_exists,
};
use crate::instance::process::{self, write_atomic};
use crate::instance::server::{POLL, QUERY_TIMEOUT};
use crate::instance::sql::{LocalSql, rows_column};
use crate::instance::{DbRole, InstanceError, StopMode, UpgradeFacts, UpgradeRole, UpgradeTarget};

const CHECK: &str = "check upgrade";
const UPGRADE: &str = "upgrade";
const SWITCH: &str = "switch to the upgraded cluster";
const UNDO: &str = "undo upgrade";

/// pg_upgrade copies catalogs and links files: long for a large catalog; this only catches a
/// hang.
const PG_UPGRADE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

fn failed(operation: &'static str, detail: impl Into<String>) -> InstanceError {
    InstanceError::failed(operation, detail)
}

/// `dir`'s `PG_VERSION` major number.
fn major_in(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("PG_VERSION"))
        .ok()
        .and_then(|t| upgrade::parse_pg_version_file(&t))
}

/// Free bytes for an unprivileged user on the file system of `dir`.
fn free_space(dir: &Path) -> Result<u64, String> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

/// The processes (of this user) whose working directory is `dir`: an earlier pg_upgrade and
/// the tools it runs.
fn processes_in(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

impl Postgres {
    /// The new programs' version, and that they are all there.
    async fn new_version(&self, bin: &Path) -> Result<(String, u32), InstanceError> {
        let missing: Vec<&str> = upgrade::PROGRAMS
            .into_iter()
            .filter(|p| !bin.join(p).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(failed(
                CHECK,
                format!("{} lacks {}", bin.display(), missing.join(", ")),
            ));
        }
        let out = process::run(
            CHECK,
            &process::CommandLine::new(bin.join("postgres")).arg("-V"),
            VERSION_TIMEOUT,
        )
        .await?;
        upgrade::parse_version(&out.stdout).map_err(|e| failed(CHECK, e))
    }

    /// Runs `sql` in database `dbname` over a connection of its own.
    async fn query_in(&self, dbname: &str, sql: &str) -> Result<Vec<Vec<String>>, InstanceError> {
        let mut config = local_config(&self.s);
        config.dbname(dbname);
        let session = LocalSql::new(config, CONNECT_TIMEOUT);
        let rows = session.query_for(CHECK, sql, ADMIN_TIMEOUT).await?;
        session.reset().await;
        Ok(rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_owned())
                    .collect()
            })
            .collect())
    }

    /// Every extension and C library the databases use.
    async fn extensions_in_use(&self) -> Result<(Vec<String>, Vec<String>), InstanceError> {
        let databases = rows_column(
            &self
                .sql_for(CHECK, upgrade::DATABASES_SQL, QUERY_TIMEOUT)
                .await?,
            0,
        );
        let (mut extensions, mut libraries) = (BTreeSet::new(), BTreeSet::new());
        for db in databases {
            for row in self.query_in(&db, upgrade::EXTENSIONS_SQL).await? {
                match row.as_slice() {
                    [kind, name] if kind == "extension" => extensions.insert(name.clone()),
                    [_, name] => libraries.insert(name.clone()),
                    _ => false,
                };
            }
        }
        Ok((
            extensions.into_iter().collect(),
            libraries.into_iter().collect(),
        ))
    }

    /// Whether the new installation has what the databases use.
    async fn check_extensions(&self, bin: &Path) -> Result<(), InstanceError> {
        let (extensions, libraries) = self.extensions_in_use().await?;
        let out = process::run(
            CHECK,
            &process::CommandLine::new(bin.join("pg_config"))
                .arg("--sharedir")
                .arg("--pkglibdir"),
            VERSION_TIMEOUT,
        )
        .await?;
        let (share, lib) = upgrade::parse_pg_config(&out.stdout).ok_or_else(|| {
            failed(
                CHECK,
                format!("pg_config printed {:?}, not two directories", out.stdout),
            )
        })?;
        let missing: Vec<String> = upgrade::needed_files(&extensions, &libraries, &share, &lib)
            .into_iter()
            .filter(|f| !f.is_file())
            .map(|f| f.display().to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(failed(
            CHECK,
            format!(
                "the new PostgreSQL lacks what the databases use: {}",
                missing.join(", ")
            ),
        ))
    }

    /// What the new cluster must share with the running one.
    async fn old_cluster(&self, old_major: u32) -> Result<OldCluster, InstanceError> {
        let rows = self
            .query_in("postgres", upgrade::template0_sql(old_major))
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| failed(CHECK, "template0 is missing"))?;
        let cell = |i: usize| row.get(i).cloned().filter(|v| !v.is_empty());
        let out = process::run(
            CHECK,
            &commands::pg_controldata(&self.tools()),
            VERSION_TIMEOUT,
        )
        .await?;
        let (checksums, wal_segment_bytes) =
            upgrade::parse_control_facts(&out.stdout).map_err(|e| failed(CHECK, e))?;
        Ok(OldCluster {
            encoding: cell(0).unwrap_or_else(|| "UTF8".into()),
            collate: cell(1).unwrap_or_else(|| "C".into()),
            ctype: cell(2).unwrap_or_else(|| "C".into()),
            provider: cell(3).unwrap_or_else(|| "c".into()),
            locale: cell(4),
            icu_rules: cell(5),
            checksums,
            wal_segment_bytes,
        })
    }

    /// Free space for what this member will write.
    async fn check_space(&self, role: UpgradeRole) -> Result<(), InstanceError> {
        let parent = crate::instance::datadir::parent_dir(&self.s.data_dir);
        let free = free_space(&parent).map_err(|e| failed(CHECK, e))?;
        let needed = match role {
            UpgradeRole::Primary => upgrade::PRIMARY_SPACE,
            UpgradeRole::Standby => {
                let rows = self
                    .sql_for(CHECK, upgrade::SIZE_SQL, QUERY_TIMEOUT)
                    .await?;
                let size: u64 = rows_column(&rows, 0)
                    .first()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                size + upgrade::STANDBY_MARGIN
            }
        };
        if free < needed {
            return Err(failed(
                CHECK,
                format!(
                    "{} has {} MiB free; the upgrade needs {} MiB there",
                    parent.display(),
                    mib(free),
                    mib(needed)
                ),
            ));
        }
        Ok(())
    }

    /// Ends what an earlier attempt of upgrade `target` left running: pg_upgrade and its
    /// tools, and the servers it started (on the new cluster, or on the old one with its
    /// binary-upgrade flag). The agent's own server is left alone.
    async fn end_leftovers(&self, target: &UpgradeTarget) -> Result<(), InstanceError> {
        let work = upgrade::work_dir(&self.s, target.id);
        let work = std::fs::canonicalize(&work).unwrap_or(work);
        for pid in processes_in(&work) {
            tracing::warn!(pid, "ending what an interrupted pg_upgrade left running");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !processes_in(&work).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        let staged = upgrade::staged_dir(&self.s, target.id);
        if matches!(
            crate::instance::datadir::postmaster(&staged),
            crate::instance::datadir::Postmaster::Alive(_)
        ) {
            let mut s = self.s.clone();
            s.data_dir = staged;
            s.bin_dir = Some(target.bin_dir.clone());
            tracing::warn!("stopping a server pg_upgrade left running on the new cluster");
            process::run(
                UPGRADE,
                &commands::pg_ctl_stop(&s, StopMode::Immediate),
                s.pg_ctl_timeout,
            )
            .await?;
        }
        let opts = std::fs::read_to_string(self.s.file("postmaster.opts")).unwrap_or_default();
        if self.postmaster_running() && upgrade::started_by_pg_upgrade(&opts) {
            tracing::warn!("stopping a server pg_upgrade left running on the old data directory");
            self.server
                .stop(&commands::pg_ctl_stop(&self.tools(), StopMode::Fast))
                .await?;
        }
        Ok(())
    }

    /// pg_upgrade renames the old cluster's `global/pg_control` before it links the files:
    /// until the new cluster first starts, renaming it back makes the old one startable.
    fn restore_pg_control(&self) -> std::io::Result<()> {
        let control = self.s.file("global/pg_control");
        let renamed = self.s.file("global/pg_control.old");
        if !control.exists() && renamed.exists() {
            tracing::warn!("restoring global/pg_control, which pg_upgrade had renamed");
            std::fs::rename(&renamed, &control)?;
        }
        Ok(())
    }

    pub(super) async fn check_upgrade_here(
        &self,
        target: &UpgradeTarget,
        role: UpgradeRole,
    ) -> Result<UpgradeFacts, InstanceError> {
        let (version, major) = self.new_version(&target.bin_dir).await?;
        let from_major = major_in(&self.s.data_dir)
            .ok_or_else(|| failed(CHECK, "the data directory has no PG_VERSION"))?;
        if major <= from_major {
            return Err(failed(
                CHECK,
                format!(
                    "{} holds PostgreSQL {version}, not newer than the running {from_major}",
                    target.bin_dir.display()
                ),
            ));
        }
        let status = self.server.role(QUERY_TIMEOUT).await;
        match (role, status) {
            (UpgradeRole::Primary, Ok(DbRole::Primary)) => {}
            (UpgradeRole::Standby, Ok(DbRole::Standby)) => {
                let streaming = self
                    .sql_for(
                        CHECK,
                        "SELECT pg_catalog.count(*)::text FROM pg_catalog.pg_stat_wal_receiver \
                         WHERE status = 'streaming'",
                        QUERY_TIMEOUT,
                    )
                    .await?;
                if rows_column(&streaming, 0).first().map(String::as_str) != Some("1") {
                    return Err(failed(
                        CHECK,
                        "this standby does not stream from the primary",
                    ));
                }
            }
            (_, Ok(other)) => {
                return Err(failed(CHECK, format!("the server runs as {other:?}")));
            }
            (_, Err(e)) => return Err(e.into_instance(CHECK)),
        }
        self.check_extensions(&target.bin_dir).await?;
        self.check_space(role).await?;
        if role == UpgradeRole::Primary {
            self.pg_upgrade_check(target, from_major, major).await?;
        }
        Ok(UpgradeFacts {
            version,
            major,
            from_major,
        })
    }

    /// `pg_upgrade --check` against the running server, into a fresh new cluster made with the
    /// options the run will use (kept in the work directory), removed afterwards.
    async fn pg_upgrade_check(
        &self,
        target: &UpgradeTarget,
        from_major: u32,
        major: u32,
    ) -> Result<(), InstanceError> {
        self.end_leftovers(target).await?;
        let old = self.old_cluster(from_major).await?;
        let args = upgrade::initdb_args(&self.s, &old, major);
        let work = upgrade::work_dir(&self.s, target.id);
        let staged = upgrade::staged_dir(&self.s, target.id);
        std::fs::create_dir_all(&work)?;
        write_atomic(
            &work.join(upgrade::INITDB_ARGS),
            (args.join("\n") + "\n").as_bytes(),
            0o600,
        )?;
        self.fresh_new_cluster(target, &staged, &args).await?;
        let old_bin = self.old_bin_dir(CHECK)?;
        let result = process::run(
            CHECK,
            &upgrade::pg_upgrade(&self.s, &old_bin, &target.bin_dir, &staged, &work, true),
            PG_UPGRADE_TIMEOUT,
        )
        .await;
        remove_dir_if_exists(&staged)?;
        result.map(|_| ())
    }

    /// The programs the data directory runs with now.
    fn old_bin_dir(&self, operation: &'static str) -> Result<PathBuf, InstanceError> {
        self.tools().bin_dir.clone().ok_or_else(|| {
            failed(
                operation,
                "postgresql.bin_dir is not set and was not found: pg_upgrade needs the old programs",
            )
        })
    }

    /// initdb of the new cluster at `staged`, over whatever an earlier attempt left there.
    async fn fresh_new_cluster(
        &self,
        target: &UpgradeTarget,
        staged: &Path,
        args: &[String],
    ) -> Result<(), InstanceError> {
        remove_dir_if_exists(staged)?;
        process::run(
            UPGRADE,
            &upgrade::initdb(&target.bin_dir, staged, args),
            INITDB_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    pub(super) async fn upgrade_here(
        &self,
        target: &UpgradeTarget,
    ) -> Result<String, InstanceError> {
        self.end_leftovers(target).await?;
        self.server.require_stopped(UPGRADE)?;
        self.restore_pg_control()?;
        let work = upgrade::work_dir(&self.s, target.id);
        let args_file = work.join(upgrade::INITDB_ARGS);
        let args: Vec<String> = std::fs::read_to_string(&args_file)
            .map_err(|e| {
                failed(
                    UPGRADE,
                    format!(
                        "the new cluster's initdb options from the checks ({}) cannot be read: \
                         {e}",
                        args_file.display()
                    ),
                )
            })?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        let staged = upgrade::staged_dir(&self.s, target.id);
        self.fresh_new_cluster(target, &staged, &args).await?;
        let old_bin = self.old_bin_dir(UPGRADE)?;
        let out = process::run(
            UPGRADE,
            &upgrade::pg_upgrade(&self.s, &old_bin, &target.bin_dir, &staged, &work, false),
            PG_UPGRADE_TIMEOUT,
        )
        .await?;
        tracing::info!(output = %process::tail(out.stdout.trim(), 1500), "pg_upgrade finished");
        // It names the old data directory, which will hold the new cluster: never to be run.
        remove_if_exists(&work.join("delete_old_cluster.sh"))?;
        let update = work.join("update_extensions.sql");
        if update.exists() {
            tracing::warn!(
                script = %update.display(),
                "pg_upgrade found extensions to update: run this script with psql as the \
                 superuser once the upgrade is done"
            );
        }
        let mut new = self.s.clone();
        new.data_dir = staged;
        new.bin_dir = Some(target.bin_dir.clone());
        let cd = self
            .server
            .controldata(&commands::pg_controldata(&new))
            .await?;
        Ok(cd.sysid)
    }

    pub(super) async fn switch_here(&self, target: &UpgradeTarget) -> Result<(), InstanceError> {
        let staged = upgrade::staged_dir(&self.s, target.id);
        let aside = upgrade::aside_dir(&self.s, target.id);
        let data = &self.s.data_dir;
        if !staged.exists() {
            // Done already, or nothing to put in place.
            let upgraded = major_in(data).is_some() && aside.exists();
            return if upgraded {
                Ok(())
            } else {
                Err(failed(
                    SWITCH,
                    format!("the upgraded cluster {} is missing", staged.display()),
                ))
            };
        }
        if self.postmaster_running() {
            return Err(failed(SWITCH, "the old server runs"));
        }
        if data.exists() {
            if aside.exists() {
                return Err(failed(
                    SWITCH,
                    format!(
                        "both {} and {} exist; move one of them away",
                        data.display(),
                        aside.display()
                    ),
                ));
            }
            tracing::warn!(
                from = %data.display(),
                to = %aside.display(),
                "setting the old data directory aside; delete it once the new version is trusted"
            );
            std::fs::rename(data, &aside)?;
        }
        std::fs::rename(&staged, data)?;
        if let Some(parent) = data.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        self.fix_data_dir_mode()?;
        // The new cluster has none of the old one's configuration: the agent writes its own
        // at the start, as for a new cluster.
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    pub(super) async fn undo_here(&self, target: &UpgradeTarget) -> Result<(), InstanceError> {
        self.end_leftovers(target).await?;
        let staged = upgrade::staged_dir(&self.s, target.id);
        if upgrade::aside_dir(&self.s, target.id).exists() && !staged.exists() {
            return Err(failed(
                UNDO,
                "the upgraded cluster already replaced the data directory: it cannot be undone",
            ));
        }
        self.restore_pg_control()?;
        remove_dir_if_exists(&staged)?;
        remove_dir_if_exists(&upgrade::work_dir(&self.s, target.id))?;
        Ok(())
    }
}

/// Removes a directory the upgrade made (the new cluster before it ever ran, the work
/// directory): its relation files are hard links of the old cluster's, which keeps them.
fn remove_dir_if_exists(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
