//! The configuration files the adapter owns, rendered as text: `postgresql.conf`,
//! `pg_hba.conf`, the password file, and `primary_conninfo`.
//!
//! Pure functions; `mod.rs` writes the results atomically. `postgresql.conf` is ours: initdb's
//! original lives on as `postgresql.base.conf`, which ours includes first so that everything
//! after it (user parameters, then the standby settings) wins.

use std::fmt::Write;

use crate::config::StandbyCluster;
use crate::instance::conf::{conninfo, guc_line, guc_quote, guc_text, hba_file, hba_token, pgpass};
use crate::instance::{Upstream, WalSource};

use super::gucs;
use super::settings::PostgresSettings;

pub const CONF: &str = "postgresql.conf";
pub const BASE_CONF: &str = "postgresql.base.conf";
pub const HBA: &str = "pg_hba.conf";
pub const IDENT: &str = "pg_ident.conf";
pub const STANDBY_SIGNAL: &str = "standby.signal";

/// The first line of every `postgresql.conf` we write; tells ours from initdb's.
pub const CONF_HEADER: &str = "# Written by the tribune agent";

/// Parameters the agent writes itself (besides the owned command-line ones); users' values for
/// them are dropped. `data_directory` and `config_file` would move the cluster from under us.
const MANAGED: &[&str] = &[
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target_timeline",
    "synchronous_standby_names",
    "data_directory",
    "config_file",
];

/// Patroni's default for `wal_keep_size` (written to the file, not the command line).
const DEFAULT_WAL_KEEP_SIZE: &str = "128MB";

/// How long a standby's startup process waits before it looks for WAL again once streaming
/// stopped (PostgreSQL's default is 5 s). When a primary stops cleanly for a switchover, its
/// WAL receiver can die before the target replayed the last bytes it wrote, and the target
/// then sits out this interval before it reads them from `pg_wal`: the switchover waited up
/// to 3 s for it (1 run in 40 of `bench-switchover.sh`). The same wait delays a standby's
/// reconnection to a new primary.
const DEFAULT_WAL_RETRIEVE_RETRY_INTERVAL: &str = "500ms";

/// How the agent's scripts reach this server as the superuser (`post_bootstrap`): as the
/// agent itself connects, without the password, which is in the password file.
pub fn superuser_dsn(s: &PostgresSettings) -> String {
    let host = if s.connect_locally() {
        s.socket_dir().to_string_lossy().into_owned()
    } else {
        s.local_tcp_host()
    };
    let port = s.listen_port.to_string();
    let mut pairs = vec![
        ("dbname", "postgres"),
        ("user", s.superuser.0.as_str()),
        ("host", &host),
        ("port", &port),
    ];
    pairs.extend(libpq(&s.superuser_libpq));
    conninfo(&pairs)
}

/// A user's libpq settings as connection-string pairs.
pub fn libpq(options: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The replication user's settings, `sslmode=prefer` unless it names another (libpq's
/// default, written out as Patroni writes it).
fn replication_libpq(s: &PostgresSettings) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = libpq(&s.replication_libpq).collect();
    if !pairs.iter().any(|(k, _)| *k == "sslmode") {
        pairs.insert(0, ("sslmode", "prefer"));
    }
    pairs
}

/// `primary_conninfo` for streaming from `upstream`. The password comes from the password file,
/// never from this string (it is visible in `pg_settings` and `pg_stat_wal_receiver`).
pub fn primary_conninfo(s: &PostgresSettings, upstream: &Upstream) -> String {
    let port = upstream.port.to_string();
    let passfile = s.pgpass.to_string_lossy();
    let mut pairs = vec![
        ("host", upstream.host.as_str()),
        ("port", &port),
        ("user", &s.replication.0),
        ("passfile", &passfile),
        ("application_name", s.name.as_str()),
    ];
    pairs.extend(replication_libpq(s));
    conninfo(&pairs)
}

/// `primary_conninfo` for the standby leader of a standby cluster: the remote primary with this
/// cluster's replication credentials; empty when the remote names no host or port (WAL from
/// the archive only).
pub fn remote_conninfo(s: &PostgresSettings, remote: &StandbyCluster) -> String {
    if !remote.streams() {
        return String::new();
    }
    let port = remote.port.map(|p| p.to_string());
    let passfile = s.pgpass.to_string_lossy();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some(host) = &remote.host {
        pairs.push(("host", host));
    }
    if let Some(port) = &port {
        pairs.push(("port", port));
    }
    pairs.extend([
        ("user", s.replication.0.as_str()),
        ("passfile", &passfile),
        ("application_name", s.name.as_str()),
    ]);
    pairs.extend(replication_libpq(s));
    conninfo(&pairs)
}

/// `primary_conninfo` for streaming from `source`.
pub fn source_conninfo(s: &PostgresSettings, source: &WalSource) -> String {
    match source {
        WalSource::Member(up) => primary_conninfo(s, up),
        WalSource::Remote(remote) => remote_conninfo(s, remote),
    }
}

/// Our `postgresql.conf`: the base file, user parameters, our defaults, and, for a standby of
/// `upstream`, the recovery settings.
/// `sync_names` is the agent's `synchronous_standby_names` (empty: asynchronous replication):
/// the adapter gives them for a primary, and for a standby about to be promoted, which loads
/// them and waits for nobody until then.
pub fn postgresql_conf(
    s: &PostgresSettings,
    upstream: Option<&WalSource>,
    sync_names: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{CONF_HEADER} for member {}; edits are overwritten.",
        s.name
    );
    // `custom_conf` replaces the base file (initdb's settings) as the first include.
    let base = s.custom_conf.as_ref().map_or_else(
        || BASE_CONF.to_owned(),
        |p| p.to_string_lossy().into_owned(),
    );
    let _ = writeln!(out, "include {}\n", guc_quote(&base));
    // The owned parameters take effect from the postmaster command line. They are repeated here
    // with the same values because a reload compares the file's value of a restart-only
    // parameter with the running one, and would report a pending restart for initdb's
    // `max_connections = 100` in the base file. A changed value here then correctly reads as
    // `pending_restart` until the next start puts it on the command line.
    out.push_str("# Also on the postmaster command line (see postmaster.opts).\n");
    for (name, value) in gucs::owned_gucs(&s.listen_host, s.listen_port, &s.scope, &s.parameters) {
        out.push_str(&guc_line(name, &value));
    }
    out.push('\n');
    for (name, value) in &s.parameters {
        let lower = name.to_ascii_lowercase();
        if gucs::is_owned(&lower) || MANAGED.contains(&lower.as_str()) {
            continue;
        }
        if let Some(text) = guc_text(value) {
            out.push_str(&guc_line(name, &text));
        }
    }
    if gucs::lookup(&s.parameters, "unix_socket_directories").is_none() {
        out.push_str(&guc_line(
            "unix_socket_directories",
            &s.default_socket_dir().to_string_lossy(),
        ));
    }
    if gucs::lookup(&s.parameters, "wal_keep_size").is_none() {
        out.push_str(&guc_line("wal_keep_size", DEFAULT_WAL_KEEP_SIZE));
    }
    if gucs::lookup(&s.parameters, "wal_retrieve_retry_interval").is_none() {
        out.push_str(&guc_line(
            "wal_retrieve_retry_interval",
            DEFAULT_WAL_RETRIEVE_RETRY_INTERVAL,
        ));
    }
    if !sync_names.is_empty() {
        out.push_str("\n# synchronous replication, managed by the agent\n");
        out.push_str(&guc_line("synchronous_standby_names", sync_names));
    }
    // `postgresql.recovery_conf` (a `restore_command`: a standby whose upstream recycled the WAL
    // it needs catches up from the archive). First, so the settings below win where both set one.
    if upstream.is_some() && !s.recovery_conf.is_empty() {
        out.push_str("\n# postgresql.recovery_conf\n");
        for (name, value) in &s.recovery_conf {
            out.push_str(&guc_line(name, value));
        }
    }
    match upstream {
        None => {}
        Some(WalSource::Member(up)) if s.nostream => {
            // Patroni's `nostream`: no replication connection; archive recovery only.
            let _ = writeln!(
                out,
                "\n# standby of member {}, not streaming (nostream tag): archive recovery only",
                up.member
            );
            out.push_str(&guc_line("recovery_target_timeline", "latest"));
        }
        Some(WalSource::Member(up)) => {
            let _ = writeln!(out, "\n# standby of member {}", up.member);
            out.push_str(&guc_line("primary_conninfo", &primary_conninfo(s, up)));
            if s.use_slots {
                out.push_str(&guc_line("primary_slot_name", &s.name.slot_name()));
            }
            out.push_str(&guc_line("recovery_target_timeline", "latest"));
        }
        Some(WalSource::Remote(remote)) => {
            let _ = writeln!(
                out,
                "\n# standby leader of a standby cluster: replicating from {}",
                remote.address()
            );
            if remote.streams() {
                out.push_str(&guc_line("primary_conninfo", &remote_conninfo(s, remote)));
            }
            let optional = [
                ("primary_slot_name", &remote.primary_slot_name),
                ("restore_command", &remote.restore_command),
                ("archive_cleanup_command", &remote.archive_cleanup_command),
                ("recovery_min_apply_delay", &remote.recovery_min_apply_delay),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    out.push_str(&guc_line(name, value));
                }
            }
            out.push_str(&guc_line("recovery_target_timeline", "latest"));
        }
    }
    out
}

/// The `pg_hba.conf` used when the configuration gives none:
///
/// ```text
/// local  all          all              trust
/// local  replication  all              trust
/// host   replication  <replication>  all  scram-sha-256
/// host   all          all            all  scram-sha-256
/// ```
///
/// Local (Unix socket) connections are trusted: the agent logs in that way, and the socket lives
/// in a directory only the database's OS user can enter. Every TCP connection, from any address,
/// needs a SCRAM password, so members on other hosts can stream and rewind.
pub fn default_pg_hba(s: &PostgresSettings) -> Vec<String> {
    vec![
        "local all all trust".to_owned(),
        "local replication all trust".to_owned(),
        format!(
            "host replication {} all scram-sha-256",
            hba_token(&s.replication.0)
        ),
        "host all all all scram-sha-256".to_owned(),
    ]
}

pub fn pg_hba(s: &PostgresSettings) -> String {
    hba_file(s.name.as_str(), &s.pg_hba, || default_pg_hba(s))
}

/// `pg_ident.conf` from `postgresql.pg_ident`; `None` without lines, which leaves initdb's (or
/// the operator's) file alone, as Patroni does.
pub fn pg_ident(s: &PostgresSettings) -> Option<String> {
    (!s.pg_ident.is_empty()).then(|| hba_file(s.name.as_str(), &s.pg_ident, Vec::new))
}

/// The password file: every configured user with a password, for any host.
pub fn pgpass_file(s: &PostgresSettings) -> String {
    let mut creds = vec![
        (s.replication.0.as_str(), s.replication.1.as_deref()),
        (s.superuser.0.as_str(), s.superuser.1.as_deref()),
    ];
    if let Some((user, password)) = &s.rewind {
        creds.push((user.as_str(), password.as_deref()));
    }
    pgpass(&creds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::postgres::settings::sample;
    use crate::types::MemberName;

    fn upstream() -> Upstream {
        Upstream {
            member: MemberName::from("node-2"),
            host: "10.0.0.2".into(),
            port: 5433,
        }
    }

    fn member_source() -> WalSource {
        WalSource::Member(upstream())
    }

    #[test]
    fn primary_conf() {
        let s = sample();
        assert_eq!(
            postgresql_conf(&s, None, ""),
            "# Written by the tribune agent for member node-1; edits are overwritten.\n\
             include 'postgresql.base.conf'\n\
             \n\
             # Also on the postmaster command line (see postmaster.opts).\n\
             listen_addresses = '0.0.0.0'\n\
             port = '5432'\n\
             cluster_name = 'batman'\n\
             wal_level = 'replica'\n\
             hot_standby = 'on'\n\
             max_connections = '200'\n\
             max_wal_senders = '10'\n\
             max_prepared_transactions = '0'\n\
             max_locks_per_transaction = '64'\n\
             track_commit_timestamp = 'off'\n\
             max_replication_slots = '10'\n\
             max_worker_processes = '8'\n\
             wal_log_hints = 'on'\n\
             \n\
             shared_preload_libraries = 'pg_stat_statements'\n\
             work_mem = '8MB'\n\
             unix_socket_directories = '/var/lib/postgresql/15'\n\
             wal_keep_size = '128MB'\n\
             wal_retrieve_retry_interval = '500ms'\n"
        );
    }

    #[test]
    fn synchronous_standby_names_as_given() {
        let s = sample();
        let names = "FIRST 1 (\"node1\",\"node2\")";
        let line = "synchronous_standby_names = 'FIRST 1 (\"node1\",\"node2\")'";
        let primary = postgresql_conf(&s, None, names);
        assert!(primary.contains(line), "{primary}");
        // A standby about to be promoted loads them and keeps streaming.
        let candidate = postgresql_conf(&s, Some(&member_source()), names);
        assert!(candidate.contains(line), "{candidate}");
        assert!(candidate.contains("primary_conninfo"), "{candidate}");
        assert!(!postgresql_conf(&s, Some(&member_source()), "").contains("synchronous_standby"));
        let remote = WalSource::Remote(StandbyCluster {
            host: Some("10.9.9.9".into()),
            ..Default::default()
        });
        assert!(!postgresql_conf(&s, Some(&remote), "").contains("synchronous_standby"));
        assert!(!postgresql_conf(&s, None, "").contains("synchronous_standby"));
    }

    #[test]
    fn standby_conf() {
        let s = sample();
        let conf = postgresql_conf(&s, Some(&member_source()), "");
        let standby = conf.split_once("# standby of member node-2\n").unwrap().1;
        assert_eq!(
            standby,
            "primary_conninfo = 'host=10.0.0.2 port=5433 user=replicator \
             passfile=/var/lib/postgresql/pgpass application_name=node-1 sslmode=prefer'\n\
             primary_slot_name = 'node_1'\n\
             recovery_target_timeline = 'latest'\n"
        );
        assert!(!conf.contains("evil"));
    }

    /// `postgresql.recovery_conf` goes to every standby (before the agent's settings, so the
    /// remote's own `restore_command` of a standby leader wins), never to a primary.
    #[test]
    fn recovery_conf_is_written_for_standbys_only() {
        let mut s = sample();
        s.recovery_conf = [
            (
                "restore_command",
                "pgbackrest --stanza=main archive-get %f \"%p\"",
            ),
            ("recovery_min_apply_delay", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let standby = postgresql_conf(&s, Some(&member_source()), "");
        let block = standby
            .split_once("# postgresql.recovery_conf\n")
            .unwrap()
            .1;
        assert!(
            block.starts_with(
                "recovery_min_apply_delay = '0'\n\
                 restore_command = 'pgbackrest --stanza=main archive-get %f \"%p\"'\n\n\
                 # standby of member node-2\n"
            ),
            "{block}"
        );
        assert!(!postgresql_conf(&s, None, "").contains("restore_command"));
        let remote = WalSource::Remote(StandbyCluster {
            host: Some("10.9.9.9".into()),
            restore_command: Some("cp /remote/%f %p".into()),
            ..Default::default()
        });
        let leader = postgresql_conf(&s, Some(&remote), "");
        let (_, last) = leader.rsplit_once("restore_command = ").unwrap();
        assert!(last.starts_with("'cp /remote/%f %p'"), "{leader}");
    }

    #[test]
    fn a_nostream_standby_has_no_primary_conninfo() {
        let mut s = sample();
        s.nostream = true;
        let conf = postgresql_conf(&s, Some(&member_source()), "");
        let standby = conf.split_once("not streaming (nostream tag)").unwrap().1;
        assert!(!standby.contains("primary_conninfo"), "{standby}");
        assert!(!standby.contains("primary_slot_name"), "{standby}");
        assert!(
            standby.contains("recovery_target_timeline = 'latest'"),
            "{standby}"
        );
    }

    #[test]
    fn standby_conf_without_slots() {
        let mut s = sample();
        s.use_slots = false;
        assert!(!postgresql_conf(&s, Some(&member_source()), "").contains("primary_slot_name"));
    }

    #[test]
    fn standby_leader_conf_streams_from_the_remote_with_its_recovery_settings() {
        let s = sample();
        let remote = StandbyCluster {
            host: Some("10.9.9.9".into()),
            port: Some(6432),
            primary_slot_name: Some("dr_site".into()),
            restore_command: Some("cp /archive/%f %p".into()),
            archive_cleanup_command: Some("pg_archivecleanup /archive %r".into()),
            recovery_min_apply_delay: Some("5min".into()),
        };
        let conf = postgresql_conf(&s, Some(&WalSource::Remote(remote)), "");
        let standby = conf
            .split_once("# standby leader of a standby cluster: replicating from 10.9.9.9:6432\n")
            .unwrap()
            .1;
        assert_eq!(
            standby,
            "primary_conninfo = 'host=10.9.9.9 port=6432 user=replicator \
             passfile=/var/lib/postgresql/pgpass application_name=node-1 sslmode=prefer'\n\
             primary_slot_name = 'dr_site'\n\
             restore_command = 'cp /archive/%f %p'\n\
             archive_cleanup_command = 'pg_archivecleanup /archive %r'\n\
             recovery_min_apply_delay = '5min'\n\
             recovery_target_timeline = 'latest'\n"
        );
        // The member's own slot is not used on the remote: only the configured one.
        assert!(!conf.contains("node_1'"));
    }

    #[test]
    fn an_archive_only_standby_cluster_has_no_primary_conninfo() {
        let s = sample();
        let remote = StandbyCluster {
            restore_command: Some("cp /archive/%f %p".into()),
            ..Default::default()
        };
        assert_eq!(remote_conninfo(&s, &remote), "");
        let conf = postgresql_conf(&s, Some(&WalSource::Remote(remote)), "");
        assert!(!conf.contains("primary_conninfo"), "{conf}");
        assert!(
            conf.contains("restore_command = 'cp /archive/%f %p'\n"),
            "{conf}"
        );
    }

    #[test]
    fn the_replication_users_libpq_settings_replace_the_default_sslmode() {
        let mut s = sample();
        s.replication_libpq = vec![
            ("sslmode".into(), "verify-ca".into()),
            ("sslcert".into(), "/etc/ssl/rep.crt".into()),
            ("channel_binding".into(), "require".into()),
        ];
        let ci = primary_conninfo(&s, &upstream());
        assert!(
            ci.ends_with(
                "application_name=node-1 sslmode=verify-ca sslcert=/etc/ssl/rep.crt \
                 channel_binding=require"
            ),
            "{ci}"
        );
        assert_eq!(ci.matches("sslmode").count(), 1, "{ci}");
        s.replication_libpq = vec![("sslkey".into(), "/k".into())];
        assert!(primary_conninfo(&s, &upstream()).ends_with("sslmode=prefer sslkey=/k"));
        s.superuser_libpq = vec![("sslmode".into(), "disable".into())];
        assert!(superuser_dsn(&s).ends_with("sslmode=disable"));
    }

    #[test]
    fn custom_conf_replaces_the_base_file() {
        let mut s = sample();
        let conf = postgresql_conf(&s, None, "");
        assert!(
            conf.contains("\ninclude 'postgresql.base.conf'\n"),
            "{conf}"
        );
        s.custom_conf = Some("/etc/postgresql/it's.conf".into());
        let conf = postgresql_conf(&s, None, "");
        assert!(
            conf.contains("\ninclude '/etc/postgresql/it''s.conf'\n"),
            "{conf}"
        );
        assert!(!conf.contains("base.conf"), "{conf}");
    }

    #[test]
    fn pg_ident_is_written_only_when_configured() {
        let mut s = sample();
        assert_eq!(pg_ident(&s), None);
        s.pg_ident = vec![
            "omicron bryanh guest1".into(),
            "krb /^(.*)@EXAMPLE$ \\1".into(),
        ];
        let file = pg_ident(&s).unwrap();
        assert!(file.starts_with("# Written by the tribune agent for member node-1"));
        assert!(
            file.ends_with("\nomicron bryanh guest1\nkrb /^(.*)@EXAMPLE$ \\1\n"),
            "{file}"
        );
    }

    #[test]
    fn primary_conninfo_escapes_twice() {
        let mut s = sample();
        s.replication.0 = "rep user".into();
        s.pgpass = "/tmp/it's".into();
        let ci = primary_conninfo(&s, &upstream());
        assert_eq!(
            ci,
            r"host=10.0.0.2 port=5433 user='rep user' passfile='/tmp/it\'s' application_name=node-1 sslmode=prefer"
        );
        assert_eq!(
            guc_line("primary_conninfo", &ci),
            "primary_conninfo = 'host=10.0.0.2 port=5433 user=''rep user'' \
             passfile=''/tmp/it\\\\''s'' application_name=node-1 sslmode=prefer'\n"
        );
    }

    #[test]
    fn hba_default_and_given() {
        let mut s = sample();
        assert_eq!(
            pg_hba(&s),
            "# Written by the tribune agent for member node-1; edits are overwritten.\n\
             local all all trust\n\
             local replication all trust\n\
             host replication replicator all scram-sha-256\n\
             host all all all scram-sha-256\n"
        );
        s.pg_hba = vec!["host all all 10.0.0.0/8 md5".into()];
        assert!(pg_hba(&s).ends_with("\nhost all all 10.0.0.0/8 md5\n"));
    }

    #[test]
    fn pgpass_lists_every_user_with_a_password() {
        let mut s = sample();
        assert_eq!(
            pgpass_file(&s),
            "*:*:*:replicator:rep'pw\n*:*:*:postgres:su-pw\n*:*:*:rewind_user:rw-pw\n"
        );
        s.rewind = None;
        s.superuser.1 = None;
        assert_eq!(pgpass_file(&s), "*:*:*:replicator:rep'pw\n");
    }
}
