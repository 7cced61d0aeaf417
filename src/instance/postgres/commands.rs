//! The command lines of the PostgreSQL tools, built from the settings as data so that tests can
//! assert them exactly. No password ever appears here: initdb reads the superuser's from a
//! file, the others from the password file (`PGPASSFILE`, `passfile=`).

use std::path::Path;
use std::time::Duration;

use crate::instance::conf::conninfo;
use crate::instance::process::{CommandLine, shell_quote};
use crate::instance::{InstanceError, StopMode, Upstream, WalSource};

use super::gucs;
use super::settings::PostgresSettings;

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `pg_ctl -t` takes whole seconds.
fn seconds(d: Duration) -> String {
    d.as_secs_f64().ceil().max(1.0).to_string()
}

fn owned_gucs(s: &PostgresSettings) -> Vec<(&'static str, String)> {
    gucs::owned_gucs(&s.listen_host, s.listen_port, &s.scope, &s.parameters)
}

/// `initdb`. Its authentication flags only matter for its own check that a password is given
/// when password authentication is chosen: `pg_hba.conf` is replaced before the first start.
pub fn initdb(s: &PostgresSettings, pwfile: Option<&Path>) -> CommandLine {
    let mut cmd = CommandLine::new(s.program("initdb"))
        .arg("-D")
        .arg(path(&s.data_dir))
        .arg("-U")
        .arg(&s.superuser.0)
        .arg("--auth-local=trust");
    cmd = match pwfile {
        Some(f) => cmd
            .arg("--auth-host=scram-sha-256")
            .arg(format!("--pwfile={}", path(f))),
        None => cmd.arg("--auth-host=trust"),
    };
    cmd.args(s.initdb_args.iter().cloned())
}

/// The `-o` argument of `pg_ctl start`: the owned parameters as `--name=value` options. pg_ctl
/// hands it to `/bin/sh`, so each option is shell-quoted (`listen_addresses=*` must not glob).
pub fn postmaster_options(s: &PostgresSettings) -> String {
    owned_gucs(s)
        .iter()
        .map(|(k, v)| shell_quote(&format!("--{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `pg_ctl start`, waiting for the server to accept connections. `-l` sends the server's output
/// to the log file: without it the postmaster would hold our captured stdout open.
pub fn pg_ctl_start(s: &PostgresSettings) -> CommandLine {
    CommandLine::new(s.program("pg_ctl"))
        .args(["start", "-D"])
        .arg(path(&s.data_dir))
        .arg("-w")
        .arg("-t")
        .arg(seconds(s.pg_ctl_timeout))
        .arg("-l")
        .arg(path(&s.log_file()))
        .arg("-o")
        .arg(postmaster_options(s))
}

pub fn pg_ctl_stop(s: &PostgresSettings, mode: StopMode) -> CommandLine {
    CommandLine::new(s.program("pg_ctl"))
        .args(["stop", "-D"])
        .arg(path(&s.data_dir))
        .arg("-m")
        .arg(mode.as_pg_ctl())
        .arg("-w")
        .arg("-t")
        .arg(seconds(s.pg_ctl_timeout))
}

/// `pg_ctl promote` without waiting (`-W`): pg_ctl would poll every 100 ms; the adapter
/// confirms the promotion by SQL itself, sooner.
pub fn pg_ctl_promote(s: &PostgresSettings) -> CommandLine {
    CommandLine::new(s.program("pg_ctl"))
        .args(["promote", "-D"])
        .arg(path(&s.data_dir))
        .arg("-W")
}

/// `pg_ctl reload`: SIGHUP to the postmaster, for a server that does not answer SQL yet.
pub fn pg_ctl_reload(s: &PostgresSettings) -> CommandLine {
    CommandLine::new(s.program("pg_ctl"))
        .args(["reload", "-D"])
        .arg(path(&s.data_dir))
}

/// `pg_controldata` in the C locale, whose labels the parser knows.
pub fn pg_controldata(s: &PostgresSettings) -> CommandLine {
    CommandLine::new(s.program("pg_controldata"))
        .arg("-D")
        .arg(path(&s.data_dir))
        .env("LC_ALL", "C")
}

/// `pg_basebackup` of `source` into the data directory as the replication user. From a member:
/// no slot (the primary creates members' slots itself). From a standby cluster's remote: through
/// its `primary_slot_name` when one is configured; a remote of `restore_command` only cannot
/// be copied.
pub fn pg_basebackup(
    s: &PostgresSettings,
    source: &WalSource,
) -> Result<CommandLine, InstanceError> {
    let mut cmd = CommandLine::new(s.program("pg_basebackup"))
        .arg("-D")
        .arg(path(&s.data_dir));
    match source {
        WalSource::Member(up) => {
            cmd = cmd
                .arg("-h")
                .arg(&up.host)
                .arg("-p")
                .arg(up.port.to_string());
        }
        WalSource::Remote(remote) => {
            if !remote.streams() {
                return Err(InstanceError::failed(
                    "clone",
                    "standby_cluster names no host or port of a remote primary to take a base \
                     backup from (restore_command alone cannot create a replica)",
                ));
            }
            if let Some(host) = &remote.host {
                cmd = cmd.arg("-h").arg(host);
            }
            if let Some(port) = remote.port {
                cmd = cmd.arg("-p").arg(port.to_string());
            }
            if let Some(slot) = &remote.primary_slot_name {
                cmd = cmd.arg("-S").arg(slot);
            }
        }
    }
    // The replication user's libpq settings (sslmode, sslcert, ...) as a connection string,
    // which pg_basebackup combines with -h, -p and -U.
    if !s.replication_libpq.is_empty() {
        let options: Vec<(&str, &str)> = super::files::libpq(&s.replication_libpq).collect();
        cmd = cmd.arg("-d").arg(conninfo(&options));
    }
    // `postgresql.basebackup` last, so that an option given there (`checkpoint: spread`)
    // wins over the agent's default for it.
    Ok(cmd
        .arg("-U")
        .arg(&s.replication.0)
        .args(["-X", "stream", "-c", "fast", "--no-password"])
        .args(s.basebackup_args.iter().cloned())
        .env("PGPASSFILE", path(&s.pgpass)))
}

/// The libpq connection string pg_rewind reads the source with.
pub fn rewind_source(s: &PostgresSettings, source: &Upstream) -> String {
    let port = source.port.to_string();
    let passfile = path(&s.pgpass);
    let mut pairs = vec![
        ("host", source.host.as_str()),
        ("port", &port),
        ("user", &s.rewind_user().0),
        ("dbname", "postgres"),
        ("passfile", &passfile),
    ];
    pairs.extend(super::files::libpq(s.rewind_libpq()));
    conninfo(&pairs)
}

/// `IDENTIFY_SYSTEM` over a replication connection to this server (at its connect address, as
/// the replication user, as peers stream from it): on a standby it answers the timeline its
/// startup process replays and how far it has WAL on it, which SQL on PostgreSQL 15 does not
/// (Patroni asks the same). Output: `sysid|timeline|xlogpos|dbname`. With
/// `use_unix_socket_repl`, through the socket directory (and `listen`'s port) instead.
pub fn identify_system(s: &PostgresSettings) -> CommandLine {
    let (host, port) = if s.use_unix_socket_repl {
        (path(&s.socket_dir()), s.listen_port.to_string())
    } else {
        (s.connect_host.clone(), s.connect_port.to_string())
    };
    let passfile = path(&s.pgpass);
    let mut pairs = vec![
        ("host", host.as_str()),
        ("port", &port),
        ("user", &s.replication.0),
        ("dbname", "replication"),
        ("replication", "true"),
        ("passfile", &passfile),
        ("connect_timeout", "2"),
        ("application_name", "tribune"),
    ];
    pairs.extend(super::files::libpq(&s.replication_libpq));
    let target = conninfo(&pairs);
    CommandLine::new(s.program("psql"))
        .args(["-X", "-A", "-t", "-F", "|", "-c", "IDENTIFY_SYSTEM", "-d"])
        .arg(target)
}

/// The timeline and WAL position of `IDENTIFY_SYSTEM`'s answer; `Err` says what is wrong.
pub fn parse_identify_system(
    out: &str,
) -> Result<(crate::types::Timeline, crate::types::Lsn), String> {
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("IDENTIFY_SYSTEM printed nothing")?;
    let fields: Vec<&str> = line.split('|').collect();
    let (Some(timeline), Some(lsn)) = (fields.get(1), fields.get(2)) else {
        return Err(format!(
            "IDENTIFY_SYSTEM printed {line:?}, not sysid|timeline|xlogpos|dbname"
        ));
    };
    let timeline = timeline
        .parse()
        .map_err(|_| format!("IDENTIFY_SYSTEM printed the timeline {timeline:?}"))?;
    let lsn = lsn
        .parse()
        .map_err(|_| format!("IDENTIFY_SYSTEM printed the position {lsn:?}"))?;
    Ok((crate::types::Timeline(timeline), lsn))
}

/// `pg_rewind` of the (cleanly stopped) data directory from `source`.
pub fn pg_rewind(s: &PostgresSettings, source: &Upstream) -> CommandLine {
    CommandLine::new(s.program("pg_rewind"))
        .arg(format!("--target-pgdata={}", path(&s.data_dir)))
        .arg(format!("--source-server={}", rewind_source(s, source)))
        .env("PGPASSFILE", path(&s.pgpass))
}

/// Crash recovery in single-user mode, so that pg_rewind finds a cleanly shut down cluster
/// (Patroni's `doing crash recovery in a single user mode`). The owned parameters are repeated
/// because the control file's `max_*` values must not exceed the server's; archiving is left
/// on with a failing command (as Patroni does) so that WAL not yet archived is kept.
pub fn single_user_recovery(s: &PostgresSettings) -> CommandLine {
    let mut cmd = CommandLine::new(s.program("postgres"))
        .arg("--single")
        .arg("-D")
        .arg(path(&s.data_dir));
    for (k, v) in owned_gucs(s) {
        cmd = cmd.arg("-c").arg(format!("{k}={v}"));
    }
    cmd.args([
        "-c",
        "archive_mode=on",
        "-c",
        "archive_command=false",
        "template1",
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::postgres::settings::sample;
    use crate::types::MemberName;

    fn source() -> Upstream {
        Upstream {
            member: MemberName::from("node-2"),
            host: "10.0.0.2".into(),
            port: 5433,
        }
    }

    const OPTS: &str = "--listen_addresses=0.0.0.0 --port=5432 --cluster_name=batman \
        --wal_level=replica --hot_standby=on --max_connections=200 --max_wal_senders=10 \
        --max_prepared_transactions=0 --max_locks_per_transaction=64 \
        --track_commit_timestamp=off --max_replication_slots=10 --max_worker_processes=8 \
        --wal_log_hints=on";

    #[test]
    fn initdb_line() {
        let s = sample();
        assert_eq!(
            initdb(&s, Some(Path::new("/var/lib/postgresql/15/.pw"))).to_string(),
            "/usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/15/main -U postgres \
             --auth-local=trust --auth-host=scram-sha-256 --pwfile=/var/lib/postgresql/15/.pw \
             --encoding=UTF8 --data-checksums"
        );
        assert!(
            initdb(&s, None)
                .args
                .contains(&"--auth-host=trust".to_owned())
        );
    }

    #[test]
    fn pg_ctl_lines() {
        let mut s = sample();
        let start = pg_ctl_start(&s);
        assert_eq!(
            start.args,
            [
                "start",
                "-D",
                "/var/lib/postgresql/15/main",
                "-w",
                "-t",
                "60",
                "-l",
                "/var/lib/postgresql/15/main.log",
                "-o",
                OPTS
            ]
        );
        s.listen_host = "*".into();
        assert!(postmaster_options(&s).starts_with("'--listen_addresses=*' --port=5432"));
        s.pg_ctl_timeout = Duration::from_millis(1500);
        assert_eq!(
            pg_ctl_stop(&s, StopMode::Immediate).to_string(),
            "/usr/lib/postgresql/15/bin/pg_ctl stop -D /var/lib/postgresql/15/main -m immediate -w -t 2"
        );
        assert_eq!(
            pg_ctl_promote(&s).to_string(),
            "/usr/lib/postgresql/15/bin/pg_ctl promote -D /var/lib/postgresql/15/main -W"
        );
        assert_eq!(
            pg_ctl_reload(&s).to_string(),
            "/usr/lib/postgresql/15/bin/pg_ctl reload -D /var/lib/postgresql/15/main"
        );
        assert_eq!(
            pg_controldata(&s).to_string(),
            "LC_ALL=C /usr/lib/postgresql/15/bin/pg_controldata -D /var/lib/postgresql/15/main"
        );
    }

    #[test]
    fn each_users_libpq_settings_reach_its_connections() {
        let mut s = sample();
        let tls = |mode: &str| {
            vec![
                ("sslmode".to_owned(), mode.to_owned()),
                ("sslrootcert".to_owned(), "/etc/ssl/root.pem".to_owned()),
            ]
        };
        s.replication_libpq = tls("verify-full");
        s.rewind_libpq = tls("require");
        s.superuser_libpq = tls("prefer");
        let basebackup = pg_basebackup(&s, &WalSource::Member(source()))
            .unwrap()
            .to_string();
        assert!(
            basebackup.contains("-d 'sslmode=verify-full sslrootcert=/etc/ssl/root.pem' -U"),
            "{basebackup}"
        );
        let rewind = rewind_source(&s, &source());
        assert!(
            rewind.ends_with("sslmode=require sslrootcert=/etc/ssl/root.pem"),
            "{rewind}"
        );
        // Without a rewind user pg_rewind connects as the superuser, with its settings.
        s.rewind = None;
        assert!(rewind_source(&s, &source()).contains("user=postgres"));
        assert!(rewind_source(&s, &source()).contains("sslmode=prefer"));
        assert!(
            identify_system(&s)
                .to_string()
                .contains("sslmode=verify-full")
        );
        // None configured: nothing added.
        let plain = pg_basebackup(&sample(), &WalSource::Member(source()))
            .unwrap()
            .to_string();
        assert!(!plain.contains(" -d "), "{plain}");
    }

    #[test]
    fn use_unix_socket_repl_asks_through_the_socket() {
        let mut s = sample();
        s.use_unix_socket_repl = true;
        let line = identify_system(&s).to_string();
        assert!(
            line.contains("host=/var/lib/postgresql/15 port=5432 user=replicator"),
            "{line}"
        );
        assert!(!line.contains("10.0.0.1"), "{line}");
    }

    #[test]
    fn identify_system_asks_the_server_itself_over_replication() {
        let line = identify_system(&sample()).to_string();
        assert!(
            line.starts_with(
                "/usr/lib/postgresql/15/bin/psql -X -A -t -F '|' -c IDENTIFY_SYSTEM -d"
            ),
            "{line}"
        );
        assert!(line.contains("user=replicator dbname=replication replication=true passfile=/var/lib/postgresql/pgpass"), "{line}");
        assert!(
            !line.contains("password="),
            "never a password on a command line: {line}"
        );
    }

    #[test]
    fn identify_system_answers_parse() {
        use crate::types::{Lsn, Timeline};
        assert_eq!(
            parse_identify_system("7300000000000000001|3|0/5000148|\n"),
            Ok((Timeline(3), Lsn(0x5000148)))
        );
        assert!(parse_identify_system("").is_err());
        assert!(
            parse_identify_system("7300|x|0/1|")
                .unwrap_err()
                .contains("timeline")
        );
        assert!(
            parse_identify_system("7300|2")
                .unwrap_err()
                .contains("sysid|timeline")
        );
    }

    #[test]
    fn basebackup_line() {
        assert_eq!(
            pg_basebackup(&sample(), &WalSource::Member(source()))
                .unwrap()
                .to_string(),
            "PGPASSFILE=/var/lib/postgresql/pgpass /usr/lib/postgresql/15/bin/pg_basebackup \
             -D /var/lib/postgresql/15/main -h 10.0.0.2 -p 5433 -U replicator -X stream -c fast \
             --no-password"
        );
    }

    /// Regression: `postgresql.basebackup` was parsed but never reached pg_basebackup.
    #[test]
    fn basebackup_options_reach_pg_basebackup_after_the_defaults() {
        let mut s = sample();
        s.basebackup_args = vec!["--max-rate=100M".into(), "--checkpoint=spread".into()];
        let line = pg_basebackup(&s, &WalSource::Member(source()))
            .unwrap()
            .to_string();
        assert!(
            line.ends_with("-c fast --no-password --max-rate=100M --checkpoint=spread"),
            "{line}"
        );
    }

    #[test]
    fn basebackup_of_a_standby_clusters_remote_uses_its_slot() {
        use crate::config::StandbyCluster;
        let remote = StandbyCluster {
            host: Some("10.9.9.9".into()),
            port: Some(6432),
            primary_slot_name: Some("dr_site".into()),
            ..Default::default()
        };
        assert_eq!(
            pg_basebackup(&sample(), &WalSource::Remote(remote))
                .unwrap()
                .to_string(),
            "PGPASSFILE=/var/lib/postgresql/pgpass /usr/lib/postgresql/15/bin/pg_basebackup \
             -D /var/lib/postgresql/15/main -h 10.9.9.9 -p 6432 -S dr_site -U replicator \
             -X stream -c fast --no-password"
        );
        let archive_only = StandbyCluster {
            restore_command: Some("cp %f %p".into()),
            ..Default::default()
        };
        let err = pg_basebackup(&sample(), &WalSource::Remote(archive_only)).unwrap_err();
        assert!(err.to_string().contains("names no host or port"), "{err}");
        assert!(err.to_string().contains("take a base backup from"), "{err}");
    }

    #[test]
    fn rewind_line() {
        let mut s = sample();
        assert_eq!(
            pg_rewind(&s, &source()).args,
            [
                "--target-pgdata=/var/lib/postgresql/15/main",
                "--source-server=host=10.0.0.2 port=5433 user=rewind_user dbname=postgres \
                 passfile=/var/lib/postgresql/pgpass"
            ]
        );
        s.rewind = None;
        assert!(rewind_source(&s, &source()).contains("user=postgres "));
    }

    #[test]
    fn single_user_line() {
        let cmd = single_user_recovery(&sample());
        assert_eq!(
            cmd.args[..3],
            ["--single", "-D", "/var/lib/postgresql/15/main"]
        );
        assert!(
            cmd.args
                .windows(2)
                .any(|w| w == ["-c", "max_connections=200"])
        );
        assert_eq!(
            cmd.args[cmd.args.len() - 5..],
            [
                "-c",
                "archive_mode=on",
                "-c",
                "archive_command=false",
                "template1"
            ]
        );
        assert!(cmd.stdin.is_none());
    }
}
