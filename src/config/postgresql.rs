//! `postgresql`: the local database this agent manages. Absent for a witness (a Raft voter
//! without a database).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::address;
use super::dynamic::check_parameters;
use super::error::ConfigError;
use super::initdb::{self, InitdbOption};
use super::methods::{self, ReplicaMethod};
use super::restapi::Credentials;
use super::scripts::{Callbacks, ScriptCommand};
use super::value::Section;

/// Patroni's default `pg_ctl_timeout`.
pub const DEFAULT_PG_CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The database engine the instance adapter drives (`postgresql.engine`, Tribune only). `None` in
/// [`Postgresql::engine`] means "detect from the binaries".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    OpenGauss,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Authentication {
    pub superuser: Credentials,
    pub replication: Credentials,
    pub rewind: Option<Credentials>,
    /// The libpq settings written beside each user (`sslmode`, `sslcert`, ...), for the
    /// connections made as that user.
    pub superuser_libpq: LibpqOptions,
    pub replication_libpq: LibpqOptions,
    pub rewind_libpq: LibpqOptions,
}

/// The libpq connection settings Patroni takes from `authentication.<user>`, in this order.
const LIBPQ_KEYS: [&str; 10] = [
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "gssencmode",
    "channel_binding",
    "sslnegotiation",
];

/// The settings of [`LIBPQ_KEYS`] that are enumerations, with their values.
const LIBPQ_CHOICES: [(&str, &[&str]); 4] = [
    (
        "sslmode",
        &[
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ],
    ),
    ("gssencmode", &["disable", "prefer", "require"]),
    ("channel_binding", &["disable", "prefer", "require"]),
    ("sslnegotiation", &["postgres", "direct"]),
];

/// libpq `key=value` settings of one user, in [`LIBPQ_KEYS`] order. `Debug` hides
/// `sslpassword`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LibpqOptions(pub Vec<(String, String)>);

impl LibpqOptions {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn parse(s: &Section<'_>) -> Result<LibpqOptions, ConfigError> {
        let mut options = Vec::new();
        for key in LIBPQ_KEYS {
            let Some(value) = s.string(key)?.filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            if let Some((_, allowed)) = LIBPQ_CHOICES.iter().find(|(k, _)| *k == key)
                && !allowed.contains(&value.as_str())
            {
                return Err(ConfigError::at(
                    s.key(key),
                    format!("expected one of {}, got {value:?}", allowed.join(", ")),
                ));
            }
            options.push((key.to_owned(), value));
        }
        Ok(LibpqOptions(options))
    }
}

impl std::fmt::Debug for LibpqOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if k == "sslpassword" { "<redacted>" } else { v };
                (k, shown)
            }))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Postgresql {
    pub engine: Option<Engine>,
    /// `host[,host2...]:port` as written.
    pub listen: String,
    /// The host for local connections, as Patroni picks it: `localhost` when a listen host is a
    /// wildcard or loopback, otherwise the first host.
    pub listen_host: String,
    pub listen_port: u16,
    /// host:port advertised as `conn_url`.
    pub connect_address: String,
    pub connect_host: String,
    pub connect_port: u16,
    pub data_dir: PathBuf,
    pub config_dir: Option<PathBuf>,
    /// `None`: look the binaries up in `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// `bin_name`: other names for the PostgreSQL programs (`pg_ctl` -> `pg_ctl15`), as
    /// Patroni's `bin_name.{pg_ctl,initdb,pg_controldata,pg_basebackup,postgres,pg_isready,
    /// pg_rewind}`; the schema admits only those keys.
    pub bin_name: BTreeMap<String, String>,
    /// Default `$HOME/pgpass` (Patroni's `~/pgpass`), or `pgpass` next to `data_dir` without HOME.
    pub pgpass: PathBuf,
    pub authentication: Authentication,
    pub parameters: BTreeMap<String, Value>,
    pub pg_hba: Vec<String>,
    /// `pg_ident.conf` lines, written beside `pg_hba.conf` when given.
    pub pg_ident: Vec<String>,
    /// A configuration file of the operator's, included instead of `postgresql.base.conf`.
    pub custom_conf: Option<PathBuf>,
    /// `None`: take the dynamic configuration's value.
    pub use_pg_rewind: Option<bool>,
    pub use_unix_socket: bool,
    /// The agent's replication connection to its own server (`IDENTIFY_SYSTEM`) goes through
    /// the Unix socket rather than the connect address.
    pub use_unix_socket_repl: bool,
    pub pg_ctl_timeout: Duration,
    /// `proxy_address` (host:port): a connection pooler in front of this member's database,
    /// published in its record as `proxy_url`.
    pub proxy_address: Option<String>,
    pub remove_data_directory_on_rewind_failure: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
    pub basebackup: Vec<InitdbOption>,
    /// `create_replica_methods` with each custom method's section; `[basebackup]` by default.
    pub create_replica_methods: Vec<ReplicaMethod>,
    /// `recovery_conf`: recovery settings (`restore_command`, ...) written for a standby.
    pub recovery_conf: BTreeMap<String, String>,
    /// `callbacks`: scripts run in the background after the database starts, stops,
    /// restarts, reloads or changes role.
    pub callbacks: Callbacks,
    /// Run after this member won the lease and before it promotes its standby; a non-zero exit
    /// vetoes the promotion (a fencing script).
    pub pre_promote: Option<ScriptCommand>,
    /// Run, and waited for, before each clean stop of the database.
    pub before_stop: Option<ScriptCommand>,
}

impl Postgresql {
    /// `home` is `$HOME` from the (injected) environment, for the default `pgpass`.
    pub(crate) fn parse(s: &Section<'_>, home: Option<&str>) -> Result<Postgresql, ConfigError> {
        let listen = s.required_string("listen", "the host[,host2]:port PostgreSQL listens on")?;
        let (hosts, listen_port) = address::listen(&s.key("listen"), &listen, true)?;
        let connect_address = s.required_string(
            "connect_address",
            "the host:port other members reach this PostgreSQL at",
        )?;
        let (connect_host, connect_port) =
            address::connect(&s.key("connect_address"), &connect_address)?;
        let data_dir = s.path_buf("data_dir")?.ok_or_else(|| {
            ConfigError::missing(s.key("data_dir"), "the PostgreSQL data directory")
        })?;
        let proxy_address = s.string("proxy_address")?;
        if let Some(proxy) = &proxy_address {
            address::connect(&s.key("proxy_address"), proxy)?;
        }
        let authentication = authentication(&s.section("authentication")?)?;
        let parameters = match s.object("parameters")? {
            Some(map) => {
                check_parameters(&s.key("parameters"), map)?;
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            None => BTreeMap::new(),
        };
        let pgpass = match s.path_buf("pgpass")? {
            Some(p) => p,
            None => default_pgpass(&data_dir, home),
        };
        Ok(Postgresql {
            engine: engine(s)?,
            listen,
            listen_host: address::local_host(&hosts),
            listen_port,
            connect_address,
            connect_host,
            connect_port,
            config_dir: s.path_buf("config_dir")?,
            bin_dir: s.path_buf("bin_dir")?,
            bin_name: bin_names(&s.section("bin_name")?)?,
            pgpass,
            authentication,
            parameters,
            pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
            pg_ident: s.string_list("pg_ident")?.unwrap_or_default(),
            custom_conf: s.path_buf("custom_conf")?,
            use_pg_rewind: s.bool("use_pg_rewind")?,
            use_unix_socket: s.bool("use_unix_socket")?.unwrap_or(false),
            use_unix_socket_repl: s.bool("use_unix_socket_repl")?.unwrap_or(false),
            pg_ctl_timeout: s
                .seconds("pg_ctl_timeout")?
                .unwrap_or(DEFAULT_PG_CTL_TIMEOUT),
            proxy_address,
            remove_data_directory_on_rewind_failure: s
                .bool("remove_data_directory_on_rewind_failure")?
                .unwrap_or(false),
            remove_data_directory_on_diverged_timelines: s
                .bool("remove_data_directory_on_diverged_timelines")?
                .unwrap_or(false),
            basebackup: initdb::parse(
                &s.key("basebackup"),
                s.get("basebackup"),
                initdb::BASEBACKUP_RESERVED,
            )?,
            create_replica_methods: methods::replica_methods(s)?,
            recovery_conf: methods::recovery_conf(s, "recovery_conf")?,
            callbacks: Callbacks::parse(&s.section("callbacks")?)?,
            pre_promote: ScriptCommand::parse(s, "pre_promote")?,
            before_stop: ScriptCommand::parse(s, "before_stop")?,
            data_dir,
        })
    }
}

fn bin_names(s: &Section<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut names = BTreeMap::new();
    for program in [
        "pg_ctl",
        "initdb",
        "pg_controldata",
        "pg_basebackup",
        "postgres",
        "pg_isready",
        "pg_rewind",
    ] {
        if let Some(name) = s.string(program)? {
            let name = name.trim();
            if name.is_empty() || name.contains('/') {
                return Err(ConfigError::at(
                    s.key(program),
                    format!("expected a program's file name (looked up in bin_dir), got {name:?}"),
                ));
            }
            names.insert(program.to_owned(), name.to_owned());
        }
    }
    Ok(names)
}

fn default_pgpass(data_dir: &Path, home: Option<&str>) -> PathBuf {
    match home.filter(|h| !h.is_empty()) {
        Some(home) => Path::new(home).join("pgpass"),
        None => data_dir
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("pgpass"),
    }
}

fn engine(s: &Section<'_>) -> Result<Option<Engine>, ConfigError> {
    let Some(name) = s.string("engine")? else {
        return Ok(None);
    };
    match name.trim().to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => Ok(Some(Engine::Postgres)),
        "opengauss" => Ok(Some(Engine::OpenGauss)),
        _ => Err(ConfigError::at(
            s.key("engine"),
            format!("expected postgres or opengauss, got {name:?}"),
        )),
    }
}

fn authentication(s: &Section<'_>) -> Result<Authentication, ConfigError> {
    let user = |role: &str, what: &str| -> Result<Option<Credentials>, ConfigError> {
        Credentials::parse(&s.section(role)?, what)
    };
    let required = |role: &str, what: &str| -> Result<Credentials, ConfigError> {
        user(role, what)?
            .ok_or_else(|| ConfigError::missing(format!("{}.username", s.key(role)), what))
    };
    let superuser_libpq = LibpqOptions::parse(&s.section("superuser")?)?;
    // The agent's own SQL connections (tokio-postgres) are made without TLS: a mode that
    // demands TLS or GSS encryption would leave it unable to reach any database.
    for (key, demanding) in [
        ("sslmode", &["require", "verify-ca", "verify-full"][..]),
        ("gssencmode", &["require"][..]),
        ("channel_binding", &["require"][..]),
    ] {
        if let Some(mode) = superuser_libpq.get(key)
            && demanding.contains(&mode)
        {
            return Err(ConfigError::at(
                format!("{}.{key}", s.key("superuser")),
                format!(
                    "{mode} is not supported for the superuser: the agent's own SQL connections \
                     (to this server and to the other members) are made without TLS or GSS \
                     encryption; use prefer (or disable), with `host` rather than `hostssl` \
                     pg_hba lines for the superuser. replication and rewind accept every mode"
                ),
            ));
        }
    }
    Ok(Authentication {
        superuser: required("superuser", "the superuser the agent connects as")?,
        replication: required("replication", "the user standbys replicate as")?,
        rewind: user("rewind", "the user pg_rewind connects as")?,
        superuser_libpq,
        replication_libpq: LibpqOptions::parse(&s.section("replication")?)?,
        rewind_libpq: LibpqOptions::parse(&s.section("rewind")?)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> serde_json::Value {
        json!({
            "listen": "0.0.0.0:5432",
            "connect_address": "10.0.0.1:5432",
            "data_dir": "/var/lib/postgresql/16/main",
            "authentication": {
                "superuser": {"username": "postgres", "password": "zalando"},
                "replication": {"username": "replicator", "password": "rep-pass"}
            }
        })
    }

    fn parse(doc: &serde_json::Value, home: Option<&str>) -> Result<Postgresql, ConfigError> {
        Postgresql::parse(&Section::new("postgresql", Some(doc)).unwrap(), home)
    }

    #[test]
    fn defaults() {
        let pg = parse(&base(), Some("/home/postgres")).unwrap();
        assert_eq!(pg.listen_host, "localhost");
        assert_eq!(pg.listen_port, 5432);
        assert_eq!(
            (pg.connect_host.as_str(), pg.connect_port),
            ("10.0.0.1", 5432)
        );
        assert_eq!(pg.pgpass, PathBuf::from("/home/postgres/pgpass"));
        assert_eq!(pg.pg_ctl_timeout, Duration::from_secs(60));
        assert_eq!(pg.engine, None);
        assert_eq!(pg.use_pg_rewind, None);
        assert!(pg.authentication.rewind.is_none());
        assert!(pg.bin_name.is_empty());
        let mut doc = base();
        doc["bin_name"] = json!({"pg_ctl": "pg_ctl.15", "postgres": "postgres15"});
        let renamed = parse(&doc, None).unwrap().bin_name;
        assert_eq!(renamed["pg_ctl"], "pg_ctl.15");
        assert_eq!(renamed["postgres"], "postgres15");
        let pg = parse(&base(), None).unwrap();
        assert_eq!(pg.pgpass, PathBuf::from("/var/lib/postgresql/16/pgpass"));
    }

    #[test]
    fn each_users_libpq_settings_are_read_and_checked() {
        let mut doc = base();
        doc["authentication"]["replication"]["sslmode"] = json!("verify-full");
        doc["authentication"]["replication"]["sslrootcert"] = json!("/etc/ssl/ca.pem");
        doc["authentication"]["replication"]["sslpassword"] = json!("key-secret");
        doc["authentication"]["superuser"]["sslmode"] = json!("prefer");
        doc["authentication"]["rewind"] = json!({"username": "rw", "gssencmode": "disable"});
        let auth = parse(&doc, None).unwrap().authentication;
        assert_eq!(auth.replication_libpq.get("sslmode"), Some("verify-full"));
        assert_eq!(
            auth.replication_libpq
                .0
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            ["sslmode", "sslpassword", "sslrootcert"]
        );
        assert_eq!(auth.superuser_libpq.get("sslmode"), Some("prefer"));
        assert_eq!(auth.rewind_libpq.get("gssencmode"), Some("disable"));
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("key-secret") && debug.contains("verify-full"),
            "{debug}"
        );

        for (user, key, value) in [
            ("replication", "sslmode", "required"),
            ("replication", "channel_binding", "always"),
            // The agent's own connections have no TLS: a superuser demanding it is refused.
            ("superuser", "sslmode", "verify-full"),
            ("superuser", "gssencmode", "require"),
            ("superuser", "channel_binding", "require"),
        ] {
            let mut doc = base();
            doc["authentication"][user][key] = json!(value);
            let err = parse(&doc, None).unwrap_err();
            assert_eq!(
                err.key.as_deref(),
                Some(&*format!("postgresql.authentication.{user}.{key}")),
                "{err}"
            );
        }
    }

    #[test]
    fn required_keys_and_bad_values_name_the_key() {
        let without = |path: &[&str]| {
            let mut doc = base();
            let (last, parents) = path.split_last().unwrap();
            let mut v = &mut doc;
            for p in parents {
                v = v.get_mut(*p).unwrap();
            }
            v.as_object_mut().unwrap().remove(*last);
            doc
        };
        let with = |key: &str, value: serde_json::Value| {
            let mut doc = base();
            doc.as_object_mut().unwrap().insert(key.into(), value);
            doc
        };
        let cases = [
            (without(&["listen"]), "postgresql.listen"),
            (without(&["connect_address"]), "postgresql.connect_address"),
            (without(&["data_dir"]), "postgresql.data_dir"),
            (
                without(&["authentication", "superuser"]),
                "postgresql.authentication.superuser.username",
            ),
            (
                without(&["authentication", "replication", "username"]),
                "postgresql.authentication.replication.username",
            ),
            (
                without(&["authentication"]),
                "postgresql.authentication.superuser.username",
            ),
            (with("engine", json!("oracle")), "postgresql.engine"),
            (with("listen", json!("0.0.0.0")), "postgresql.listen"),
            (
                with("pg_ctl_timeout", json!("soon")),
                "postgresql.pg_ctl_timeout",
            ),
            (
                with("parameters", json!({"max_connections": 0})),
                "postgresql.parameters.max_connections",
            ),
            (
                with("basebackup", json!(["wal-method"])),
                "postgresql.basebackup",
            ),
            (
                with("bin_name", json!({"pg_ctl": "/usr/bin/pg_ctl"})),
                "postgresql.bin_name.pg_ctl",
            ),
            (
                with("bin_name", json!({"initdb": " "})),
                "postgresql.bin_name.initdb",
            ),
        ];
        for (doc, key) in cases {
            let err = parse(&doc, None).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
        }
    }
}
