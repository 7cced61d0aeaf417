//! Builds the database adapter a configuration asks for: which engine (`postgresql.engine`,
//! else the programs found in `postgresql.bin_dir`, else PostgreSQL), where its programs are,
//! and the user parameters and `pg_hba` lines it starts with, with the one precedence between
//! the local configuration, the dynamic one and `bootstrap` ([`user_configuration`]), which the
//! HA loop applies again whenever the dynamic configuration changes.
//!
//! Must not: start anything. It only reads the configuration and looks at the file system.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

use super::Instance;
use super::opengauss::detect::{self, Selection};
use super::opengauss::{OpenGauss, OpenGaussSettings};
use super::postgres::{Postgres, PostgresSettings};
use crate::config::{
    BootstrapMethod, Config, ConfigError, DynamicConfig, Postgresql, ReplicaMethod,
};

/// Build the database adapter the configuration asks for (`None` for a witness):
/// `postgresql.engine`, else the programs in `postgresql.bin_dir` (logged), else PostgreSQL.
pub fn from_config(config: &Config) -> anyhow::Result<Option<Arc<dyn Instance>>> {
    let Some(pg) = &config.postgresql else {
        return Ok(None);
    };
    let detected = pg.bin_dir.as_deref().map(detect::detect);
    match detect::select(pg.engine, pg.bin_dir.as_deref(), detected)? {
        Selection::Postgres => Ok(Some(postgres_instance(config, pg))),
        Selection::OpenGauss { detected } => {
            if detected {
                info!(
                    bin_dir = ?pg.bin_dir,
                    "postgresql.bin_dir holds openGauss's programs (gs_ctl, gaussdb) and no \
                     PostgreSQL's: running the openGauss adapter"
                );
            }
            Ok(Some(opengauss_instance(config, pg)?))
        }
    }
}

/// The user parameters and `pg_hba` lines a database runs with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserConfiguration {
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub pg_hba: Vec<String>,
}

/// What the local configuration and the cluster's dynamic one give the database, as Patroni
/// merges them: the dynamic parameters overridden by the local ones (and `hot_standby_feedback`
/// on while a permanent logical slot is configured); the local `pg_hba`, else the dynamic one,
/// else `bootstrap.pg_hba`.
pub fn user_configuration(
    config: &Config,
    pg: &Postgresql,
    dynamic: &DynamicConfig,
) -> UserConfiguration {
    let mut parameters = dynamic.postgresql.parameters.clone();
    parameters.extend(pg.parameters.clone());
    // A logical slot copied to a standby is only safe while the standby's feedback keeps the
    // primary from removing the catalog rows the slot still needs (Patroni enforces it too).
    let logical = dynamic
        .slots
        .values()
        .any(|s| matches!(s.kind, crate::config::SlotKind::Logical { .. }));
    if logical && dynamic.postgresql.use_slots {
        parameters.insert("hot_standby_feedback".into(), serde_json::json!("on"));
    }
    let pg_hba = [
        &pg.pg_hba,
        &dynamic.postgresql.pg_hba,
        &config.bootstrap.pg_hba,
    ]
    .into_iter()
    .find(|lines| !lines.is_empty())
    .cloned()
    .unwrap_or_default();
    UserConfiguration { parameters, pg_hba }
}

/// Whether a former primary is rewound (`postgresql.use_pg_rewind`, else the dynamic one).
pub fn use_pg_rewind(pg: &Postgresql, dynamic: &DynamicConfig) -> bool {
    pg.use_pg_rewind.unwrap_or(dynamic.postgresql.use_pg_rewind)
}

fn postgres_instance(config: &Config, pg: &Postgresql) -> Arc<dyn Instance> {
    // Until the HA loop applies the cluster's dynamic configuration: bootstrap.dcs's.
    let start = user_configuration(config, pg, &config.bootstrap.dynamic);
    let credentials = |c: &crate::config::Credentials| (c.username.clone(), c.password.clone());
    let settings = PostgresSettings {
        name: config.name.clone(),
        scope: config.scope.clone(),
        data_dir: pg.data_dir.clone(),
        bin_dir: pg.bin_dir.clone().or_else(find_postgres_bin_dir),
        bin_name: pg.bin_name.clone(),
        pg_ident: pg.pg_ident.clone(),
        custom_conf: pg.custom_conf.clone(),
        use_unix_socket_repl: pg.use_unix_socket_repl,
        // listen_addresses: the hosts of `postgresql.listen` as written (`0.0.0.0`, `*`,
        // `10.0.0.1,127.0.0.1`), not `listen_host`, which is the host for local connections.
        listen_host: listen_hosts(&pg.listen),
        listen_port: pg.listen_port,
        connect_host: pg.connect_host.clone(),
        connect_port: pg.connect_port,
        superuser: credentials(&pg.authentication.superuser),
        replication: credentials(&pg.authentication.replication),
        rewind: pg.authentication.rewind.as_ref().map(credentials),
        superuser_libpq: pg.authentication.superuser_libpq.0.clone(),
        replication_libpq: pg.authentication.replication_libpq.0.clone(),
        rewind_libpq: pg.authentication.rewind_libpq.0.clone(),
        pgpass: pg.pgpass.clone(),
        parameters: start.parameters.clone(),
        pg_hba: start.pg_hba.clone(),
        initdb_args: config.bootstrap.initdb.iter().map(|o| o.to_arg()).collect(),
        basebackup_args: pg.basebackup.iter().map(|o| o.to_arg()).collect(),
        replica_methods: pg.create_replica_methods.clone(),
        recovery_conf: pg.recovery_conf.clone(),
        bootstrap_method: match &config.bootstrap.method {
            BootstrapMethod::Initdb => None,
            BootstrapMethod::Custom(method) => Some(method.clone()),
        },
        use_slots: config.bootstrap.dynamic.postgresql.use_slots,
        nostream: config.tags.nostream(),
        use_pg_rewind: use_pg_rewind(pg, &config.bootstrap.dynamic),
        pg_ctl_timeout: pg.pg_ctl_timeout,
    };
    Arc::new(Postgres::new(settings))
}

/// The openGauss adapter, its configuration checked (errors name the key).
fn opengauss_instance(config: &Config, pg: &Postgresql) -> Result<Arc<dyn Instance>, ConfigError> {
    let start = user_configuration(config, pg, &config.bootstrap.dynamic);
    let env = |key: &str| std::env::var_os(key);
    let bin_dir = match &pg.bin_dir {
        Some(dir) => dir.clone(),
        None => detect::find_bin_dir(env).ok_or_else(|| {
            ConfigError::at(
                "postgresql.bin_dir",
                "openGauss's programs (gs_ctl, gs_initdb, gaussdb, pg_controldata) are neither \
                 in $GAUSSHOME/bin nor on the PATH",
            )
        })?,
    };
    if let Some(program) = pg.bin_name.keys().next() {
        return Err(ConfigError::at(
            format!("postgresql.bin_name.{program}"),
            "names PostgreSQL's programs; openGauss's are gs_ctl, gs_initdb and gaussdb, \
             found in bin_dir by their own names",
        ));
    }
    refuse_restore_settings(config, pg)?;
    let auth = &pg.authentication;
    for (user, options) in [
        ("superuser", &auth.superuser_libpq),
        ("replication", &auth.replication_libpq),
        ("rewind", &auth.rewind_libpq),
    ] {
        if let Some((key, _)) = options.0.first() {
            return Err(ConfigError::at(
                format!("postgresql.authentication.{user}.{key}"),
                "libpq connection settings are applied to PostgreSQL's connections only; the \
                 openGauss adapter's connections do not take them",
            ));
        }
    }
    let superuser = &pg.authentication.superuser;
    let superuser_password = superuser.password.clone().ok_or_else(|| {
        ConfigError::at(
            "postgresql.authentication.superuser.password",
            "gs_initdb needs the initial user's password",
        )
    })?;
    let replication = &pg.authentication.replication;
    let settings = OpenGaussSettings {
        name: config.name.clone(),
        data_dir: pg.data_dir.clone(),
        tool_env: detect::tool_env(&bin_dir, env),
        bin_dir,
        listen_host: listen_hosts(&pg.listen),
        listen_port: pg.listen_port,
        connect_host: pg.connect_host.clone(),
        connect_port: pg.connect_port,
        superuser: (superuser.username.clone(), superuser_password),
        replication: (replication.username.clone(), replication.password.clone()),
        parameters: start.parameters.clone(),
        pg_hba: start.pg_hba.clone(),
        initdb_args: config.bootstrap.initdb.iter().map(|o| o.to_arg()).collect(),
        use_slots: config.bootstrap.dynamic.postgresql.use_slots,
        use_incremental_build: use_pg_rewind(pg, &config.bootstrap.dynamic),
        gs_ctl_timeout: pg.pg_ctl_timeout,
    };
    settings.validate()?;
    if settings.replication.1.is_none() {
        warn!(
            "postgresql.authentication.replication has no password: the other members cannot \
             log in to fence this database over SQL"
        );
    }
    Ok(Arc::new(OpenGauss::new(settings)))
}

/// The settings that make or feed a replica from somewhere else than a running member: the
/// openGauss adapter builds its standbys with `gs_ctl build` from the primary and bootstraps with
/// gs_initdb only, so each is refused, naming the key, rather than silently ignored.
fn refuse_restore_settings(config: &Config, pg: &Postgresql) -> Result<(), ConfigError> {
    if pg.create_replica_methods != [ReplicaMethod::Basebackup] {
        return Err(ConfigError::at(
            "postgresql.create_replica_methods",
            "openGauss standbys are built with gs_ctl build from the primary: custom replica              methods (restores from a backup repository) are supported on PostgreSQL only",
        ));
    }
    if !pg.basebackup.is_empty() {
        return Err(ConfigError::at(
            "postgresql.basebackup",
            "openGauss standbys are built with gs_ctl build, which takes no pg_basebackup              options",
        ));
    }
    if let Some(name) = pg.recovery_conf.keys().next() {
        return Err(ConfigError::at(
            format!("postgresql.recovery_conf.{name}"),
            "openGauss standbys recover from their primary only: recovery settings such as              restore_command are supported on PostgreSQL only",
        ));
    }
    if let BootstrapMethod::Custom(method) = &config.bootstrap.method {
        return Err(ConfigError::at(
            "bootstrap.method",
            format!(
                "openGauss clusters are bootstrapped with gs_initdb only: the custom method                  `{}` (a restore) is supported on PostgreSQL only",
                method.name
            ),
        ));
    }
    Ok(())
}

/// The host part of `postgresql.listen` (`host[,host2...]:port`).
fn listen_hosts(listen: &str) -> String {
    listen
        .rsplit_once(':')
        .map_or(listen, |(hosts, _)| hosts)
        .to_owned()
}

/// Where the PostgreSQL programs are when `bin_dir` is not set: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else the real directory of the
/// `pg_ctl` found on the PATH, provided the other programs are beside it. Always an explicit
/// directory: a PATH lookup by the agent could find a lone symlink (Debian links only some
/// programs into /usr/bin) or fail on a PATH entry the agent's user cannot read.
fn find_postgres_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &std::path::Path| {
        [
            "pg_ctl",
            "initdb",
            "pg_controldata",
            "pg_basebackup",
            "pg_rewind",
            "postgres",
        ]
        .iter()
        .all(|p| dir.join(p).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter_map(|dir| std::fs::canonicalize(dir.join("pg_ctl")).ok())
        .filter_map(|real| real.parent().map(PathBuf::from))
        .find(|dir| complete(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A member configuration with `extra` lines in its `postgresql` section.
    fn config(extra: &str) -> Config {
        let yaml = format!(
            r#"
scope: og
name: og-1
restapi: {{listen: "10.0.0.1:8008", connect_address: "10.0.0.1:8008"}}
raft: {{self_addr: "10.0.0.1:2222", data_dir: /var/lib/tribune/raft}}
postgresql:
  listen: "0.0.0.0:26000"
  connect_address: 10.0.0.1:26000
  data_dir: /var/lib/opengauss/data
  authentication:
    superuser: {{username: omm, password: "Gauss@123"}}
    replication: {{username: tribune_admin, password: "Admin#2024"}}
{extra}"#
        );
        Config::from_yaml_str(&yaml, &|_| None).unwrap()
    }

    fn opengauss_bin() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for p in detect::PROGRAMS {
            std::fs::write(dir.path().join(p), b"").unwrap();
        }
        dir
    }

    fn config_error(config: &Config) -> ConfigError {
        match from_config(config) {
            Ok(_) => panic!("the configuration was accepted"),
            Err(e) => e.downcast::<ConfigError>().expect("a configuration error"),
        }
    }

    #[test]
    fn the_engine_key_or_the_programs_select_opengauss() {
        let bin = opengauss_bin();
        let dir = bin.path().display();
        let explicit = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n"));
        let detected = config(&format!("  bin_dir: {dir}\n"));
        for c in [explicit, detected] {
            let instance = from_config(&c).unwrap().unwrap();
            assert_eq!(instance.engine(), "openGauss");
        }
        let pg = from_config(&config("")).unwrap().unwrap();
        assert_eq!(
            pg.engine(),
            "PostgreSQL",
            "no key, no detection: PostgreSQL as before"
        );
    }

    #[test]
    fn the_readme_opengauss_example_is_accepted() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Running on openGauss").unwrap()..];
        let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
        let yaml = &section[start..start + section[start..].find("```").unwrap()];
        let bin = opengauss_bin();
        let yaml = yaml.replace("/opt/opengauss/bin", &bin.path().display().to_string());
        let config = Config::from_yaml_str(&yaml, &|_| None).unwrap();
        let instance = from_config(&config).unwrap().unwrap();
        assert_eq!(instance.engine(), "openGauss");
    }

    #[test]
    fn opengauss_configuration_errors_name_the_key() {
        let bin = opengauss_bin();
        let dir = bin.path().display();
        let mut c = config(&format!("  bin_dir: {dir}\n"));
        if let Some(pg) = c.postgresql.as_mut() {
            pg.connect_host = "db1.example".into();
        }
        assert_eq!(
            config_error(&c).key.as_deref(),
            Some("postgresql.connect_address")
        );
        let mut c = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n"));
        if let Some(pg) = c.postgresql.as_mut() {
            pg.authentication.superuser.password = None;
        }
        assert_eq!(
            config_error(&c).key.as_deref(),
            Some("postgresql.authentication.superuser.password")
        );
        let empty = tempfile::tempdir().unwrap();
        let c = config(&format!(
            "  engine: opengauss\n  bin_dir: {}\n",
            empty.path().display()
        ));
        assert_eq!(config_error(&c).key.as_deref(), Some("postgresql.bin_dir"));
        // bin_name names PostgreSQL's programs: refused rather than ignored on openGauss.
        let c = config(&format!(
            "  engine: opengauss\n  bin_dir: {dir}\n  bin_name: {{pg_ctl: gs_ctl}}\n"
        ));
        assert_eq!(
            config_error(&c).key.as_deref(),
            Some("postgresql.bin_name.pg_ctl")
        );
        let mut c = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n"));
        if let Some(pg) = c.postgresql.as_mut() {
            pg.authentication.replication_libpq =
                crate::config::LibpqOptions(vec![("sslmode".into(), "require".into())]);
        }
        assert_eq!(
            config_error(&c).key.as_deref(),
            Some("postgresql.authentication.replication.sslmode")
        );
    }

    /// Restores from a backup repository are PostgreSQL's: on openGauss each key is refused by
    /// name, never ignored.
    #[test]
    fn opengauss_refuses_restore_settings_by_name() {
        let bin = opengauss_bin();
        let dir = bin.path().display();
        let cases = [
            (
                "  create_replica_methods: [pgbackrest, basebackup]\n  pgbackrest: {command: x}\n",
                "postgresql.create_replica_methods",
            ),
            (
                "  basebackup: {checkpoint: fast}\n",
                "postgresql.basebackup",
            ),
            (
                "  recovery_conf: {restore_command: 'cp /a/%f %p'}\n",
                "postgresql.recovery_conf.restore_command",
            ),
        ];
        for (extra, key) in cases {
            let c = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n{extra}"));
            assert_eq!(config_error(&c).key.as_deref(), Some(key), "{extra}");
            // PostgreSQL takes them.
            assert!(from_config(&config(extra)).is_ok(), "{extra}");
        }
        let mut c = config(&format!("  engine: opengauss\n  bin_dir: {dir}\n"));
        c.bootstrap.method = BootstrapMethod::Custom(crate::config::CustomBootstrap {
            name: "restore".into(),
            command: crate::config::ScriptCommand {
                text: "/bin/restore".into(),
                argv: vec!["/bin/restore".into()],
            },
            no_params: false,
            keep_existing_recovery_conf: false,
            recovery_conf: Default::default(),
            options: Vec::new(),
        });
        assert_eq!(config_error(&c).key.as_deref(), Some("bootstrap.method"));
    }

    #[test]
    fn local_settings_win_over_the_dynamic_ones_and_pg_hba_falls_back_to_bootstrap() {
        let mut c = config("  parameters: {work_mem: 8MB}\n");
        c.bootstrap.pg_hba = vec!["host all all 0.0.0.0/0 md5".into()];
        let pg = c.postgresql.clone().unwrap();
        let dynamic = crate::config::DynamicConfig::from_json(&serde_json::json!({
            "postgresql": {
                "parameters": {"work_mem": "4MB", "max_connections": 200},
                "use_pg_rewind": true
            }
        }))
        .unwrap();
        let user = user_configuration(&c, &pg, &dynamic);
        assert_eq!(user.parameters["work_mem"], serde_json::json!("8MB"));
        assert_eq!(user.parameters["max_connections"], serde_json::json!(200));
        assert_eq!(
            user.pg_hba, c.bootstrap.pg_hba,
            "neither local nor dynamic lines"
        );
        let dynamic_hba = crate::config::DynamicConfig::from_json(&serde_json::json!({
            "postgresql": {"pg_hba": ["host all all 10.0.0.0/8 md5"]}
        }))
        .unwrap();
        assert_eq!(
            user_configuration(&c, &pg, &dynamic_hba).pg_hba,
            ["host all all 10.0.0.0/8 md5"]
        );
        let mut local_hba = pg.clone();
        local_hba.pg_hba = vec!["local all all trust".into()];
        assert_eq!(
            user_configuration(&c, &local_hba, &dynamic_hba).pg_hba,
            ["local all all trust"]
        );
        assert!(use_pg_rewind(&pg, &dynamic));
        let mut no_rewind = pg.clone();
        no_rewind.use_pg_rewind = Some(false);
        assert!(!use_pg_rewind(&no_rewind, &dynamic));
    }

    #[test]
    fn a_permanent_logical_slot_turns_hot_standby_feedback_on() {
        let c = config("  parameters: {hot_standby_feedback: 'off'}\n");
        let pg = c.postgresql.clone().unwrap();
        let dynamic = |doc| crate::config::DynamicConfig::from_json(&doc).unwrap();
        let logical = dynamic(serde_json::json!({
            "slots": {"cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"}}
        }));
        assert_eq!(
            user_configuration(&c, &pg, &logical).parameters["hot_standby_feedback"],
            serde_json::json!("on")
        );
        let physical = dynamic(serde_json::json!({"slots": {"p": {"type": "physical"}}}));
        assert_eq!(
            user_configuration(&c, &pg, &physical).parameters["hot_standby_feedback"],
            serde_json::json!("off")
        );
    }

    #[test]
    fn postgres_listens_on_the_hosts_as_written() {
        assert_eq!(listen_hosts("0.0.0.0:5432"), "0.0.0.0");
        assert_eq!(listen_hosts("*:5432"), "*");
        assert_eq!(
            listen_hosts("10.0.0.1,127.0.0.1:5433"),
            "10.0.0.1,127.0.0.1"
        );
        assert_eq!(listen_hosts("127.0.0.12:5432"), "127.0.0.12");
    }
}
