//! A major-version upgrade of this member's PostgreSQL, as data: where its directories go, the
//! command lines of `initdb` and `pg_upgrade`, the SQL the checks ask, and how their answers
//! read. Pure; `upgrading` runs them.
//!
//! Beside the data directory `D` (same file system: pg_upgrade's link mode hard-links the
//! relation files), for upgrade `id`:
//! - `D.upgrade-<id>`: the new cluster, made by initdb, filled by pg_upgrade, renamed to `D`
//!   once the upgrade is past its point of no return;
//! - `D.before-upgrade-<id>`: `D` as it was, set aside then (its files are shared with the new
//!   cluster; delete it once the new version is trusted);
//! - `D.upgrade-<id>.work`: pg_upgrade's working directory, with the initdb options the checks
//!   chose (`initdb.args`), so the run after them needs no SQL from the stopped server.

use std::path::{Path, PathBuf};

use super::settings::PostgresSettings;
use crate::instance::process::CommandLine;
use crate::types::UnixMillis;

/// The programs a member needs in the new `bin_dir` (the primary runs pg_upgrade; every member
/// may be the primary of the next one).
pub const PROGRAMS: [&str; 8] = [
    "postgres",
    "pg_ctl",
    "initdb",
    "pg_controldata",
    "pg_basebackup",
    "pg_rewind",
    "psql",
    "pg_upgrade",
];

/// The file the checks leave the new cluster's initdb options in, one per line.
pub const INITDB_ARGS: &str = "initdb.args";

/// Free space a primary needs for link mode: the new catalogs and a little WAL.
pub const PRIMARY_SPACE: u64 = 256 << 20;
/// What a standby needs beyond its databases' size: its copy comes beside the set-aside one.
pub const STANDBY_MARGIN: u64 = 64 << 20;

fn sibling(s: &PostgresSettings, suffix: &str) -> PathBuf {
    let name = s
        .data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    s.data_dir.with_file_name(format!("{name}{suffix}"))
}

/// Where the new cluster is made.
pub fn staged_dir(s: &PostgresSettings, id: UnixMillis) -> PathBuf {
    sibling(s, &format!(".upgrade-{}", id.0))
}

/// Where the old data directory goes once the new one replaces it.
pub fn aside_dir(s: &PostgresSettings, id: UnixMillis) -> PathBuf {
    sibling(s, &format!(".before-upgrade-{}", id.0))
}

/// pg_upgrade's working directory.
pub fn work_dir(s: &PostgresSettings, id: UnixMillis) -> PathBuf {
    sibling(s, &format!(".upgrade-{}.work", id.0))
}

/// The version `postgres -V` prints (`postgres (PostgreSQL) 18.6`, `... 19beta1`): the version
/// and its major number.
pub fn parse_version(output: &str) -> Result<(String, u32), String> {
    let version = output
        .split_whitespace()
        .last()
        .ok_or_else(|| format!("postgres -V printed {output:?}"))?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    match major.parse::<u32>() {
        Ok(major) if major >= 10 => Ok((version.to_owned(), major)),
        _ => Err(format!(
            "postgres -V printed {:?}, not a PostgreSQL 10 or later",
            output.trim()
        )),
    }
}

/// The major version in a data directory's `PG_VERSION` (`15`).
pub fn parse_pg_version_file(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// The databases whose extensions and libraries the checks look at.
pub const DATABASES_SQL: &str =
    "SELECT datname FROM pg_catalog.pg_database WHERE datallowconn ORDER BY datname";

/// One database's extensions and the C libraries its functions load (what pg_upgrade's own
/// library check looks for, plus the extensions' control files).
pub const EXTENSIONS_SQL: &str = "\
SELECT 'extension', extname FROM pg_catalog.pg_extension
UNION
SELECT DISTINCT 'library', probin FROM pg_catalog.pg_proc
 WHERE probin IS NOT NULL AND oid >= 16384
   AND prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'c')";

/// The size of every database: what a standby's fresh copy needs.
pub const SIZE_SQL: &str =
    "SELECT pg_catalog.sum(pg_catalog.pg_database_size(datname))::text FROM pg_catalog.pg_database";

/// template0's encoding and locale, which the new cluster must have (pg_upgrade compares them):
/// the columns differ by the old server's major version.
pub fn template0_sql(old_major: u32) -> &'static str {
    match old_major {
        17.. => {
            "SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, \
             datlocprovider::text, datlocale, daticurules FROM pg_catalog.pg_database \
             WHERE datname = 'template0'"
        }
        16 => {
            "SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, \
             datlocprovider::text, daticulocale, daticurules FROM pg_catalog.pg_database \
             WHERE datname = 'template0'"
        }
        15 => {
            "SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, \
             datlocprovider::text, daticulocale, NULL FROM pg_catalog.pg_database \
             WHERE datname = 'template0'"
        }
        _ => {
            "SELECT pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, 'c', NULL, \
             NULL FROM pg_catalog.pg_database WHERE datname = 'template0'"
        }
    }
}

/// What the new cluster must share with the old one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldCluster {
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `c` (libc), `i` (ICU) or `b` (builtin).
    pub provider: String,
    pub locale: Option<String>,
    pub icu_rules: Option<String>,
    pub checksums: bool,
    pub wal_segment_bytes: u64,
}

/// The checksum setting and WAL segment size from `pg_controldata` (run with `LC_ALL=C`).
pub fn parse_control_facts(text: &str) -> Result<(bool, u64), String> {
    let checksums = super::controldata::field(text, "Data page checksum version")?;
    let segment = super::controldata::field(text, "Bytes per WAL segment")?;
    Ok((
        checksums != "0",
        segment
            .parse()
            .map_err(|_| format!("malformed WAL segment size {segment:?}"))?,
    ))
}

/// The new cluster's initdb options: the old one's encoding, locale, checksums and WAL segment
/// size (pg_upgrade refuses any difference), the superuser, and trust (the agent writes
/// `pg_hba.conf` before the new server first serves anyone; pg_upgrade's own servers listen on
/// the Unix socket only). `--no-sync`: pg_upgrade syncs the whole new cluster at its end.
pub fn initdb_args(s: &PostgresSettings, old: &OldCluster, new_major: u32) -> Vec<String> {
    let mut args = vec![
        "-U".to_owned(),
        s.superuser.0.clone(),
        "--auth=trust".to_owned(),
        "--no-sync".to_owned(),
        format!("--encoding={}", old.encoding),
        format!("--lc-collate={}", old.collate),
        format!("--lc-ctype={}", old.ctype),
    ];
    if new_major >= 15 {
        match old.provider.as_str() {
            "i" => {
                args.push("--locale-provider=icu".into());
                if let Some(locale) = &old.locale {
                    args.push(format!("--icu-locale={locale}"));
                }
                if let Some(rules) = &old.icu_rules {
                    args.push(format!("--icu-rules={rules}"));
                }
            }
            "b" => {
                args.push("--locale-provider=builtin".into());
                if let Some(locale) = &old.locale {
                    args.push(format!("--builtin-locale={locale}"));
                }
            }
            _ => args.push("--locale-provider=libc".into()),
        }
    }
    if old.checksums {
        args.push("--data-checksums".into());
    } else if new_major >= 18 {
        // PostgreSQL 18's initdb turns checksums on unless told otherwise.
        args.push("--no-data-checksums".into());
    }
    if old.wal_segment_bytes != 16 << 20 {
        args.push(format!("--wal-segsize={}", old.wal_segment_bytes >> 20));
    }
    args
}

/// `initdb` of the new cluster with the new programs.
pub fn initdb(new_bin: &Path, staged: &Path, args: &[String]) -> CommandLine {
    CommandLine::new(new_bin.join("initdb"))
        .arg("-D")
        .arg(staged.to_string_lossy())
        .args(args.iter().cloned())
}

/// `pg_upgrade --link`, in `work`, where it writes its scripts. Its servers listen on the
/// member's socket directory only. The run uses the member's own port for both (the member's
/// server is stopped then, and pg_upgrade runs one server at a time); `--check` runs against
/// the live server, so a new server it starts takes the next port.
pub fn pg_upgrade(
    s: &PostgresSettings,
    old_bin: &Path,
    new_bin: &Path,
    staged: &Path,
    work: &Path,
    check: bool,
) -> CommandLine {
    let port = s.listen_port.to_string();
    let new_port = if check {
        s.listen_port.checked_add(1).unwrap_or(s.listen_port - 1)
    } else {
        s.listen_port
    };
    let mut cmd = CommandLine::new(new_bin.join("pg_upgrade"));
    if check {
        cmd = cmd.arg("--check");
    }
    cmd.arg("--link")
        .arg(format!("--old-bindir={}", old_bin.display()))
        .arg(format!("--new-bindir={}", new_bin.display()))
        .arg(format!("--old-datadir={}", s.data_dir.display()))
        .arg(format!("--new-datadir={}", staged.display()))
        .arg(format!("--old-port={port}"))
        .arg(format!("--new-port={new_port}"))
        .arg(format!("--socketdir={}", s.socket_dir().display()))
        .arg(format!("--username={}", s.superuser.0))
        .env("PGPASSFILE", s.pgpass.to_string_lossy())
        .current_dir(work)
}

/// Whether a server was started by pg_upgrade (its binary-upgrade flag `-b` in the data
/// directory's `postmaster.opts`), not by the agent.
pub fn started_by_pg_upgrade(postmaster_opts: &str) -> bool {
    postmaster_opts
        .split_whitespace()
        .any(|a| a == "\"-b\"" || a == "-b")
}

/// The new installation's directories, from its `pg_config --sharedir --pkglibdir` (two
/// lines); `None` when it printed something else.
pub fn parse_pg_config(output: &str) -> Option<(PathBuf, PathBuf)> {
    let mut lines = output.lines().map(str::trim).filter(|l| !l.is_empty());
    let share = PathBuf::from(lines.next()?);
    let lib = PathBuf::from(lines.next()?);
    (share.is_absolute() && lib.is_absolute()).then_some((share, lib))
}

/// The files the new installation must have for these extensions and libraries: each
/// extension's control file, each library (`$libdir/name` in `pkglibdir`, `.so` added when
/// the name has none; an absolute path as it is).
pub fn needed_files(
    extensions: &[String],
    libraries: &[String],
    sharedir: &Path,
    pkglibdir: &Path,
) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = extensions
        .iter()
        .map(|e| sharedir.join("extension").join(format!("{e}.control")))
        .collect();
    for library in libraries {
        let path = match library.strip_prefix("$libdir/") {
            Some(name) => pkglibdir.join(name),
            None => PathBuf::from(library),
        };
        let path = if path.extension().is_none() {
            path.with_extension("so")
        } else {
            path
        };
        files.push(path);
    }
    files.sort();
    files.dedup();
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::postgres::settings::sample;

    #[test]
    fn directories_beside_the_data_directory() {
        let s = sample();
        let id = UnixMillis(1_700_000_000_123);
        assert_eq!(
            staged_dir(&s, id),
            Path::new("/var/lib/postgresql/15/main.upgrade-1700000000123")
        );
        assert_eq!(
            aside_dir(&s, id),
            Path::new("/var/lib/postgresql/15/main.before-upgrade-1700000000123")
        );
        assert_eq!(
            work_dir(&s, id),
            Path::new("/var/lib/postgresql/15/main.upgrade-1700000000123.work")
        );
    }

    #[test]
    fn versions_read() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 18.6\n"),
            Ok(("18.6".into(), 18))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 19beta1"),
            Ok(("19beta1".into(), 19))
        );
        assert!(parse_version("postgres (PostgreSQL) 9.6.24").is_err());
        assert!(parse_version("").is_err());
        assert_eq!(parse_pg_version_file("15\n"), Some(15));
        assert_eq!(parse_pg_version_file("9.2"), None);
    }

    #[test]
    fn control_facts_read() {
        let text = "Database block size:                  8192\n\
                    Bytes per WAL segment:                16777216\n\
                    Data page checksum version:           1\n";
        assert_eq!(parse_control_facts(text), Ok((true, 16 << 20)));
        let off = text.replace("version:           1", "version:           0");
        assert_eq!(parse_control_facts(&off), Ok((false, 16 << 20)));
        assert!(parse_control_facts("Bytes per WAL segment: x\n").is_err());
    }

    fn old(provider: &str, checksums: bool) -> OldCluster {
        OldCluster {
            encoding: "UTF8".into(),
            collate: "C.UTF-8".into(),
            ctype: "C.UTF-8".into(),
            provider: provider.into(),
            locale: (provider != "c").then(|| "und".to_owned()),
            icu_rules: None,
            checksums,
            wal_segment_bytes: 16 << 20,
        }
    }

    /// PostgreSQL 18's initdb turns data checksums on by default; pg_upgrade refuses a new
    /// cluster whose checksums differ from the old one's, so an old cluster without them gets
    /// `--no-data-checksums` (an option 18 added).
    #[test]
    fn the_new_cluster_matches_the_old_ones_checksums_and_locale() {
        let s = sample();
        assert_eq!(
            initdb_args(&s, &old("c", false), 18),
            [
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--lc-collate=C.UTF-8",
                "--lc-ctype=C.UTF-8",
                "--locale-provider=libc",
                "--no-data-checksums"
            ]
        );
        let on = initdb_args(&s, &old("c", true), 18);
        assert!(on.contains(&"--data-checksums".to_owned()), "{on:?}");
        assert!(!on.iter().any(|a| a == "--no-data-checksums"));
        let before_18 = initdb_args(&s, &old("c", false), 17);
        assert!(
            !before_18.iter().any(|a| a.contains("checksums")),
            "{before_18:?}"
        );
        let icu = initdb_args(&s, &old("i", true), 18);
        assert!(icu.contains(&"--locale-provider=icu".to_owned()));
        assert!(icu.contains(&"--icu-locale=und".to_owned()));
        let mut small = old("c", true);
        small.wal_segment_bytes = 1 << 20;
        assert!(initdb_args(&s, &small, 18).contains(&"--wal-segsize=1".to_owned()));
    }

    #[test]
    fn template0_is_read_with_the_old_versions_columns() {
        assert!(template0_sql(18).contains("datlocale"));
        assert!(template0_sql(17).contains("datlocale"));
        assert!(template0_sql(16).contains("daticulocale, daticurules"));
        assert!(template0_sql(15).contains("daticulocale, NULL"));
        assert!(template0_sql(14).contains("'c', NULL"));
    }

    #[test]
    fn pg_upgrade_line() {
        let s = sample();
        let cmd = pg_upgrade(
            &s,
            Path::new("/usr/lib/postgresql/15/bin"),
            Path::new("/opt/pg18/bin"),
            Path::new("/var/lib/postgresql/15/main.upgrade-7"),
            Path::new("/var/lib/postgresql/15/main.upgrade-7.work"),
            true,
        );
        assert_eq!(
            cmd.to_string(),
            "cd /var/lib/postgresql/15/main.upgrade-7.work && \
             PGPASSFILE=/var/lib/postgresql/pgpass /opt/pg18/bin/pg_upgrade --check --link \
             --old-bindir=/usr/lib/postgresql/15/bin --new-bindir=/opt/pg18/bin \
             --old-datadir=/var/lib/postgresql/15/main \
             --new-datadir=/var/lib/postgresql/15/main.upgrade-7 --old-port=5432 \
             --new-port=5433 --socketdir=/var/lib/postgresql/15 --username=postgres"
        );
        assert!(!cmd.to_string().contains("su-pw"), "never a password");
        let run = pg_upgrade(
            &s,
            Path::new("/usr/lib/postgresql/15/bin"),
            Path::new("/opt/pg18/bin"),
            Path::new("/var/lib/postgresql/15/main.upgrade-7"),
            Path::new("/var/lib/postgresql/15/main.upgrade-7.work"),
            false,
        );
        assert!(!run.args.contains(&"--check".to_owned()));
        assert!(run.args.contains(&"--new-port=5432".to_owned()), "{run}");
    }

    #[test]
    fn servers_started_by_pg_upgrade_are_told_apart() {
        assert!(started_by_pg_upgrade(
            "/usr/lib/postgresql/15/bin/postgres \"-D\" \"d15\" \"-p\" \"54915\" \"-b\" \"-c\" \"vacuum_defer_cleanup_age=0\"\n"
        ));
        assert!(!started_by_pg_upgrade(
            "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/data\" \"--listen_addresses=10.0.0.1\" \"--port=5432\"\n"
        ));
    }

    #[test]
    fn extensions_and_libraries_map_to_files() {
        let files = needed_files(
            &["pg_stat_statements".into(), "plpgsql".into()],
            &[
                "$libdir/pg_stat_statements".into(),
                "$libdir/x.so".into(),
                "/opt/ext/y.so".into(),
            ],
            Path::new("/opt/pg18/share"),
            Path::new("/opt/pg18/lib"),
        );
        assert_eq!(
            files,
            [
                PathBuf::from("/opt/ext/y.so"),
                PathBuf::from("/opt/pg18/lib/pg_stat_statements.so"),
                PathBuf::from("/opt/pg18/lib/x.so"),
                PathBuf::from("/opt/pg18/share/extension/pg_stat_statements.control"),
                PathBuf::from("/opt/pg18/share/extension/plpgsql.control"),
            ]
        );
        assert_eq!(
            parse_pg_config("/opt/pg18/share\n/opt/pg18/lib\n"),
            Some((
                PathBuf::from("/opt/pg18/share"),
                PathBuf::from("/opt/pg18/lib")
            ))
        );
        assert_eq!(parse_pg_config("share\n"), None);
    }
}
