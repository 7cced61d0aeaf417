//! The data directory as every adapter sees it from outside the server: whether a postmaster
//! runs for it (`postmaster.pid`), and moving a directory aside instead of deleting it.
//!
//! PostgreSQL and openGauss write the same `postmaster.pid` (line 1: the PID), so one reader
//! serves both. Nothing here deletes a data directory: an operator may need what is in it.

use std::path::{Path, PathBuf};

use super::InstanceError;
use super::postgres::controldata::{PidFile, parse_pid_file};

/// What `postmaster.pid` says about the server process.
#[derive(Debug, PartialEq, Eq)]
pub enum Postmaster {
    /// No pid file: stopped cleanly (or never started).
    Absent,
    /// The process in the pid file is alive.
    Alive(PidFile),
    /// A pid file whose process is gone: the server crashed or was killed.
    Stale,
}

/// Reads `<data_dir>/postmaster.pid` and checks its process.
pub fn postmaster(data_dir: &Path) -> Postmaster {
    let text = match std::fs::read_to_string(data_dir.join("postmaster.pid")) {
        Ok(t) => t,
        Err(_) => return Postmaster::Absent,
    };
    let pid_file = parse_pid_file(&text);
    match pid_file.pid {
        // Being written, or truncated: assume a server is starting.
        None => Postmaster::Alive(pid_file),
        Some(pid) if process_alive(pid) => Postmaster::Alive(pid_file),
        Some(_) => Postmaster::Stale,
    }
}

/// Whether a process with this PID exists and is ours to signal. `EPERM` means another user's
/// process took the PID: not our postmaster.
pub fn process_alive(pid: i32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    kill(Pid::from_raw(pid), None).is_ok()
}

/// Renames `dir` to `<dir>.failed.<UTC stamp>[.n]`; returns where it went.
pub fn set_aside(dir: &Path) -> std::io::Result<PathBuf> {
    let stamp = utc_stamp(crate::types::UnixMillis::now().as_secs());
    let base = format!("{}.failed.{stamp}", dir.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    std::fs::rename(dir, &target)?;
    Ok(target)
}

/// Makes way for a new cluster or a copy in `dir`: a missing or empty directory is fine;
/// leftovers that are not a cluster (an interrupted copy) are set aside; a cluster
/// (`holds_cluster`) is an error.
pub fn prepare_empty(
    dir: &Path,
    holds_cluster: bool,
    operation: &'static str,
) -> Result<(), InstanceError> {
    if holds_cluster {
        return Err(InstanceError::failed(
            operation,
            format!("{} already holds a database cluster", dir.display()),
        ));
    }
    let non_empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty {
        let aside = set_aside(dir)?;
        tracing::warn!(
            data_dir = %dir.display(),
            moved_to = %aside.display(),
            "set aside leftovers in the data directory before {operation}"
        );
    }
    Ok(())
}

/// The end of a server log file, for start failures.
pub fn log_tail(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|t| super::process::tail(t.trim_end(), 1500))
        .unwrap_or_default()
}

/// The directory that holds `data_dir` (the socket, the log and temporary files live there, so
/// that copies of the data directory do not carry them between members).
pub fn parent_dir(data_dir: &Path) -> PathBuf {
    match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (civil-from-days, proleptic Gregorian).
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_550_920), "20261124T200840Z");
    }

    #[test]
    fn leftovers_are_set_aside_and_clusters_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        prepare_empty(&dir, false, "test").unwrap();
        std::fs::create_dir(&dir).unwrap();
        prepare_empty(&dir, false, "test").unwrap();
        assert!(dir.exists(), "an empty directory stays");
        std::fs::write(dir.join("junk"), b"x").unwrap();
        prepare_empty(&dir, false, "test").unwrap();
        assert!(!dir.exists());
        let aside: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(aside.len(), 1);
        assert!(prepare_empty(&dir, true, "test").is_err());
    }

    #[test]
    fn no_pid_file_means_absent() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(postmaster(root.path()), Postmaster::Absent);
        std::fs::write(
            root.path().join("postmaster.pid"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        assert!(matches!(postmaster(root.path()), Postmaster::Alive(_)));
    }
}
