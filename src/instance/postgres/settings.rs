//! What the PostgreSQL adapter is told at construction, and the paths derived from it.
//!
//! The caller resolves the configuration (local and dynamic `parameters` merged, `bin_dir`
//! defaulted); nothing here reads files or the environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::types::MemberName;

use super::gucs;

/// No `Debug`: it holds the database passwords, which must never reach a log line.
#[derive(Clone)]
pub struct PostgresSettings {
    /// `application_name` on the upstream and the basis of this member's slot name.
    pub name: MemberName,
    /// `cluster_name`.
    pub scope: String,
    pub data_dir: PathBuf,
    /// Where `pg_ctl`, `initdb`, ... live; `None` looks them up in `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// `postgresql.bin_name`: a program's file name when it is not its usual one.
    pub bin_name: BTreeMap<String, String>,
    /// `postgresql.use_unix_socket_repl`: [`super::commands::identify_system`] connects
    /// through the socket directory instead of the connect address.
    pub use_unix_socket_repl: bool,
    /// `listen_addresses` (comma-separated) and `port`.
    pub listen_host: String,
    pub listen_port: u16,
    /// How other members reach this server.
    pub connect_host: String,
    pub connect_port: u16,
    /// `(username, password)`.
    pub superuser: (String, Option<String>),
    pub replication: (String, Option<String>),
    /// A distinct pg_rewind user; `None` rewinds as the superuser.
    pub rewind: Option<(String, Option<String>)>,
    /// libpq settings (`sslmode`, `sslcert`, ...) of each user, added to the connection
    /// strings of the programs that connect as that user (`primary_conninfo`, pg_basebackup,
    /// pg_rewind, the scripts' superuser DSN).
    pub superuser_libpq: Vec<(String, String)>,
    pub replication_libpq: Vec<(String, String)>,
    pub rewind_libpq: Vec<(String, String)>,
    /// Written (mode 0600) with every configured password; passed as `passfile=`/`PGPASSFILE`.
    pub pgpass: PathBuf,
    /// User GUCs, local and dynamic merged by the caller.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// `pg_hba.conf` lines; empty means [`super::files::default_pg_hba`].
    pub pg_hba: Vec<String>,
    /// `pg_ident.conf` lines (`postgresql.pg_ident`); empty leaves the file alone.
    pub pg_ident: Vec<String>,
    /// `postgresql.custom_conf`: included by `postgresql.conf` instead of
    /// `postgresql.base.conf`; never written by the agent.
    pub custom_conf: Option<PathBuf>,
    /// Extra `initdb` arguments, already rendered (`--encoding=UTF8`, `--data-checksums`).
    pub initdb_args: Vec<String>,
    /// `postgresql.basebackup`, rendered (`--checkpoint=fast`, `--max-rate=100M`), given to
    /// every `pg_basebackup`.
    pub basebackup_args: Vec<String>,
    /// `postgresql.create_replica_methods`: how a replica is made, tried in order.
    pub replica_methods: Vec<crate::config::ReplicaMethod>,
    /// `postgresql.recovery_conf`: written into a standby's configuration (a `restore_command`
    /// lets it catch up from the archive when its upstream no longer has the WAL).
    pub recovery_conf: BTreeMap<String, String>,
    /// `bootstrap.method` when it is not initdb: the command that restores a new cluster.
    pub bootstrap_method: Option<crate::config::CustomBootstrap>,
    pub use_slots: bool,
    /// The `nostream` tag (as at the agent's start): a standby gets no `primary_conninfo` and
    /// replays only what `restore_command` (or its own `pg_wal`) gives it.
    pub nostream: bool,
    pub use_pg_rewind: bool,
    /// For `pg_ctl start/stop/promote -t` and the confirmations that follow them.
    pub pg_ctl_timeout: Duration,
}

impl PostgresSettings {
    /// The path of a PostgreSQL program.
    pub fn program(&self, name: &str) -> PathBuf {
        let name = self.bin_name.get(name).map_or(name, String::as_str);
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The directory that holds the data directory (and our socket and log).
    fn parent_dir(&self) -> PathBuf {
        match self.data_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// `unix_socket_directories` when the user did not set it: the data directory's parent.
    /// Not the data directory itself: pg_basebackup warns about, and pg_rewind fails on, a socket
    /// inside it. The socket file is named after the port, so instances sharing a parent
    /// directory do not collide unless they share a port.
    pub fn default_socket_dir(&self) -> PathBuf {
        self.parent_dir()
    }

    /// The directory the server's Unix socket is in: the user's first
    /// `unix_socket_directories` entry, else [`Self::default_socket_dir`].
    pub fn socket_dir(&self) -> PathBuf {
        gucs::lookup(&self.parameters, "unix_socket_directories")
            .and_then(crate::instance::conf::guc_text)
            .and_then(|dirs| {
                dirs.split(',')
                    .map(str::trim)
                    .find(|d| d.starts_with('/'))
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| self.default_socket_dir())
    }

    /// The file `pg_ctl -l` appends the server's output to: `<data_dir>.log`, beside the data
    /// directory so that base backups and pg_rewind do not copy it between members.
    pub fn log_file(&self) -> PathBuf {
        let name = self
            .data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "postgresql".to_owned());
        self.parent_dir().join(format!("{name}.log"))
    }

    /// Whether the agent's own connections can use the Unix socket: the default `pg_hba.conf`
    /// trusts local connections; a user-given one must have a `local` line.
    pub fn connect_locally(&self) -> bool {
        self.pg_hba.is_empty()
            || self
                .pg_hba
                .iter()
                .any(|l| l.split_whitespace().next() == Some("local"))
    }

    /// The host for TCP connections to ourselves: the first listen address, with wildcards
    /// replaced by loopback.
    pub fn local_tcp_host(&self) -> String {
        let first = self.listen_host.split(',').next().unwrap_or("").trim();
        match first {
            "" | "*" | "0.0.0.0" => "127.0.0.1".to_owned(),
            "::" => "::1".to_owned(),
            h => h.to_owned(),
        }
    }

    /// The user pg_rewind connects to the source as.
    pub fn rewind_user(&self) -> &(String, Option<String>) {
        self.rewind.as_ref().unwrap_or(&self.superuser)
    }

    /// The libpq settings of [`Self::rewind_user`].
    pub fn rewind_libpq(&self) -> &[(String, String)] {
        if self.rewind.is_some() {
            &self.rewind_libpq
        } else {
            &self.superuser_libpq
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }
}

/// Whether `dir` holds a database cluster.
pub fn has_pg_version(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file()
}

#[cfg(test)]
pub(crate) fn sample() -> PostgresSettings {
    use serde_json::json;
    PostgresSettings {
        name: MemberName::from("node-1"),
        scope: "batman".into(),
        data_dir: PathBuf::from("/var/lib/postgresql/15/main"),
        bin_dir: Some(PathBuf::from("/usr/lib/postgresql/15/bin")),
        bin_name: BTreeMap::new(),
        superuser_libpq: Vec::new(),
        replication_libpq: Vec::new(),
        rewind_libpq: Vec::new(),
        use_unix_socket_repl: false,
        listen_host: "0.0.0.0".into(),
        listen_port: 5432,
        connect_host: "10.0.0.1".into(),
        connect_port: 5432,
        superuser: ("postgres".into(), Some("su-pw".into())),
        replication: ("replicator".into(), Some("rep'pw".into())),
        rewind: Some(("rewind_user".into(), Some("rw-pw".into()))),
        pgpass: PathBuf::from("/var/lib/postgresql/pgpass"),
        parameters: serde_json::from_value(json!({
            "work_mem": "8MB",
            "max_connections": 200,
            "shared_preload_libraries": ["pg_stat_statements"],
            "primary_conninfo": "host=evil",
        }))
        .unwrap(),
        pg_hba: Vec::new(),
        pg_ident: Vec::new(),
        custom_conf: None,
        initdb_args: vec!["--encoding=UTF8".into(), "--data-checksums".into()],
        basebackup_args: Vec::new(),
        replica_methods: vec![crate::config::ReplicaMethod::Basebackup],
        recovery_conf: BTreeMap::new(),
        bootstrap_method: None,
        use_slots: true,
        nostream: false,
        use_pg_rewind: true,
        pg_ctl_timeout: Duration::from_secs(60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn derived_paths() {
        let mut s = sample();
        assert_eq!(
            s.program("pg_ctl"),
            Path::new("/usr/lib/postgresql/15/bin/pg_ctl")
        );
        assert_eq!(s.socket_dir(), Path::new("/var/lib/postgresql/15"));
        assert_eq!(s.log_file(), Path::new("/var/lib/postgresql/15/main.log"));
        assert_eq!(s.local_tcp_host(), "127.0.0.1");
        s.parameters.insert(
            "unix_socket_directories".into(),
            json!("@abstract, /run/pg ,/tmp"),
        );
        assert_eq!(s.socket_dir(), Path::new("/run/pg"));
        s.bin_dir = None;
        assert_eq!(s.program("initdb"), Path::new("initdb"));
        // bin_name renames a program, in bin_dir or on the PATH.
        s.bin_name.insert("pg_ctl".into(), "pg_ctl15".into());
        assert_eq!(s.program("pg_ctl"), Path::new("pg_ctl15"));
        s.bin_dir = sample().bin_dir;
        assert_eq!(
            s.program("pg_ctl"),
            Path::new("/usr/lib/postgresql/15/bin/pg_ctl15")
        );
        assert_eq!(
            s.program("initdb"),
            Path::new("/usr/lib/postgresql/15/bin/initdb")
        );
    }

    #[test]
    fn local_connections_need_a_local_hba_line() {
        let mut s = sample();
        assert!(s.connect_locally());
        s.pg_hba = vec!["host all all 0.0.0.0/0 md5".into()];
        assert!(!s.connect_locally());
        s.pg_hba.push("local   all all peer".into());
        assert!(s.connect_locally());
    }
}
