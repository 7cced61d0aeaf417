//! Which engine the configuration selects: `postgresql.engine` when given, else the programs in
//! `postgresql.bin_dir` (openGauss's `gs_ctl` and `gaussdb`, PostgreSQL's `pg_ctl` and
//! `postgres`), provided only one engine's are there. Without either key the agent runs
//! PostgreSQL, as it always did.
//!
//! [`select`] is pure; [`detect`] and [`find_bin_dir`] look at the file system. The caller logs
//! a detection, so an operator sees why an engine was chosen.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Engine};

/// The programs the openGauss adapter runs.
pub const PROGRAMS: [&str; 4] = ["gs_ctl", "gs_initdb", "gaussdb", "pg_controldata"];

/// What a directory of programs holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    OpenGauss,
    Postgres,
    Both,
    Neither,
}

/// Classifies a directory by the programs `has` finds in it.
pub fn classify(has: impl Fn(&str) -> bool) -> Detected {
    let opengauss = has("gs_ctl") && has("gaussdb");
    let postgres = has("pg_ctl") && has("postgres");
    match (opengauss, postgres) {
        (true, false) => Detected::OpenGauss,
        (false, true) => Detected::Postgres,
        (true, true) => Detected::Both,
        (false, false) => Detected::Neither,
    }
}

pub fn detect(dir: &Path) -> Detected {
    classify(|program| dir.join(program).is_file())
}

/// The engine to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    Postgres,
    OpenGauss {
        /// Chosen by the programs in `bin_dir`, not by `postgresql.engine`.
        detected: bool,
    },
}

/// Chooses the engine from `postgresql.engine`, `postgresql.bin_dir` and what that directory
/// holds; the error names the key to set.
pub fn select(
    engine: Option<Engine>,
    bin_dir: Option<&Path>,
    detected: Option<Detected>,
) -> Result<Selection, ConfigError> {
    match (engine, bin_dir, detected) {
        (Some(Engine::Postgres), _, _) => Ok(Selection::Postgres),
        (Some(Engine::OpenGauss), Some(dir), Some(Detected::Postgres | Detected::Neither)) => {
            Err(ConfigError::at(
                "postgresql.bin_dir",
                format!(
                    "postgresql.engine is opengauss, but {} has no gs_ctl and gaussdb",
                    dir.display()
                ),
            ))
        }
        (Some(Engine::OpenGauss), _, _) => Ok(Selection::OpenGauss { detected: false }),
        (None, Some(_), Some(Detected::OpenGauss)) => Ok(Selection::OpenGauss { detected: true }),
        (None, Some(dir), Some(Detected::Both)) => Err(ConfigError::at(
            "postgresql.engine",
            format!(
                "{} holds both PostgreSQL (pg_ctl, postgres) and openGauss (gs_ctl, gaussdb) \
                 programs: set postgresql.engine to postgres or opengauss",
                dir.display()
            ),
        )),
        (None, _, _) => Ok(Selection::Postgres),
    }
}

/// Where openGauss's programs are when `bin_dir` is not set: `$GAUSSHOME/bin` (openGauss's
/// own environment variable), else the real directory of the `gs_ctl` found on `PATH`.
pub fn find_bin_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let complete = |dir: &Path| PROGRAMS.iter().all(|p| dir.join(p).is_file());
    if let Some(home) = env("GAUSSHOME") {
        let bin = PathBuf::from(home).join("bin");
        if complete(&bin) {
            return Some(bin);
        }
    }
    let path = env("PATH")?;
    std::env::split_paths(&path)
        .filter_map(|dir| std::fs::canonicalize(dir.join("gs_ctl")).ok())
        .filter_map(|real| real.parent().map(PathBuf::from))
        .find(|dir| complete(dir))
}

/// The environment openGauss's tools need, as its scripts set it: `GAUSSHOME` (the directory
/// above `bin/`) and its `lib/` first in `LD_LIBRARY_PATH`. Nothing when the agent's own
/// environment has `GAUSSHOME` (the operator set it up).
pub fn tool_env(bin_dir: &Path, env: impl Fn(&str) -> Option<OsString>) -> Vec<(String, String)> {
    if env("GAUSSHOME").is_some() {
        return Vec::new();
    }
    let Some(home) = bin_dir.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Vec::new();
    };
    let lib = home.join("lib").to_string_lossy().into_owned();
    let library_path = match env("LD_LIBRARY_PATH").map(|p| p.to_string_lossy().into_owned()) {
        Some(existing) if !existing.is_empty() => format!("{lib}:{existing}"),
        _ => lib,
    };
    vec![
        ("GAUSSHOME".to_owned(), home.to_string_lossy().into_owned()),
        ("LD_LIBRARY_PATH".to_owned(), library_path),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(programs: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for p in programs {
            std::fs::write(dir.path().join(p), b"").unwrap();
        }
        dir
    }

    #[test]
    fn directories_are_classified_by_their_programs() {
        let og = dir_with(&PROGRAMS);
        assert_eq!(detect(og.path()), Detected::OpenGauss);
        let pg = dir_with(&["pg_ctl", "postgres", "pg_controldata", "initdb"]);
        assert_eq!(detect(pg.path()), Detected::Postgres);
        let both = dir_with(&["gs_ctl", "gaussdb", "pg_ctl", "postgres"]);
        assert_eq!(detect(both.path()), Detected::Both);
        assert_eq!(detect(Path::new("/nonexistent")), Detected::Neither);
    }

    #[test]
    fn selection_rules() {
        let dir = Path::new("/opt/og/bin");
        let og = Some(Detected::OpenGauss);
        assert_eq!(
            select(None, Some(dir), og).unwrap(),
            Selection::OpenGauss { detected: true }
        );
        assert_eq!(
            select(Some(Engine::OpenGauss), None, None).unwrap(),
            Selection::OpenGauss { detected: false }
        );
        assert_eq!(
            select(Some(Engine::OpenGauss), Some(dir), og).unwrap(),
            Selection::OpenGauss { detected: false }
        );
        assert_eq!(
            select(None, Some(dir), Some(Detected::Neither)).unwrap(),
            Selection::Postgres
        );
        assert_eq!(select(None, None, None).unwrap(), Selection::Postgres);
        assert_eq!(
            select(Some(Engine::Postgres), Some(dir), og).unwrap(),
            Selection::Postgres,
            "an explicit engine wins"
        );
        let both = select(None, Some(dir), Some(Detected::Both)).unwrap_err();
        assert_eq!(both.key.as_deref(), Some("postgresql.engine"));
        let missing =
            select(Some(Engine::OpenGauss), Some(dir), Some(Detected::Postgres)).unwrap_err();
        assert_eq!(missing.key.as_deref(), Some("postgresql.bin_dir"));
    }

    #[test]
    fn bin_dir_from_gausshome_or_path() {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for p in PROGRAMS {
            std::fs::write(bin.join(p), b"").unwrap();
        }
        let by_home = |k: &str| (k == "GAUSSHOME").then(|| home.path().as_os_str().to_owned());
        assert_eq!(find_bin_dir(by_home), Some(bin.clone()));
        let by_path = |k: &str| {
            (k == "PATH").then(|| OsString::from(format!("/nonexistent:{}", bin.display())))
        };
        assert_eq!(
            find_bin_dir(by_path),
            Some(std::fs::canonicalize(&bin).unwrap())
        );
        assert_eq!(find_bin_dir(|_| None), None);
    }

    #[test]
    fn tools_get_gausshome_and_its_libraries() {
        let bin = Path::new("/opt/og/bin");
        assert_eq!(
            tool_env(bin, |k| (k == "LD_LIBRARY_PATH")
                .then(|| "/usr/lib/x".into())),
            [
                ("GAUSSHOME".to_owned(), "/opt/og".to_owned()),
                (
                    "LD_LIBRARY_PATH".to_owned(),
                    "/opt/og/lib:/usr/lib/x".to_owned()
                ),
            ]
        );
        assert_eq!(tool_env(bin, |_| None)[1].1, "/opt/og/lib");
        assert!(tool_env(bin, |k| (k == "GAUSSHOME").then(|| "/x".into())).is_empty());
    }
}
