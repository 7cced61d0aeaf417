//! Whole-document tests: a realistic Patroni raft configuration, one test per error class, the
//! environment and the file sources. Section-level cases live beside each section's parser.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::*;

/// A Patroni configuration in the style of Patroni's own `postgres0.yml`, with a `raft:` DCS and
/// most of the optional sections operators write.
pub(super) const PATRONI_RAFT_YML: &str = r#"
scope: batman
namespace: /service/
name: postgresql0

log:
  level: INFO
  dir: /var/log/patroni
  file_num: 4
  file_size: 26214400
  loggers:
    patroni.postmaster: WARNING

restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
  authentication:
    username: admin
    password: 'admin-secret'
  http_extra_headers:
    'X-Frame-Options': 'SAMEORIGIN'

ctl:
  insecure: false

raft:
  data_dir: /var/lib/patroni/raft
  self_addr: 127.0.0.1:2222
  partner_addrs: ['127.0.0.1:2223', '127.0.0.1:2224']

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    master_start_timeout: 120
    synchronous_mode: off
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
        max_worker_processes: "8"
      pg_hba:
      - host replication replicator 127.0.0.1/32 md5
    slots:
      logical_slot:
        type: logical
        database: app
        plugin: pgoutput
  initdb:
  - encoding: UTF8
  - data-checksums
  pg_hba:
  - host replication replicator 127.0.0.1/32 md5
  - host all all 0.0.0.0/0 md5
  post_bootstrap: /usr/local/bin/setup_cluster.sh

postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: data/postgresql0
  bin_dir: /usr/lib/postgresql/16/bin
  pgpass: /tmp/pgpass0
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: zalando
      sslmode: prefer
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    unix_socket_directories: '..'
    shared_buffers: 256MB
  pg_hba:
  - local all all trust
  - host all all 0.0.0.0/0 md5
  callbacks:
    on_start: /usr/local/bin/callback.sh
    on_role_change: /usr/local/bin/callback.sh
  create_replica_methods:
  - pgbackrest
  - basebackup
  pgbackrest:
    command: /usr/bin/pgbackrest --stanza=main --delta restore
    keep_data: true
    no_params: true
  basebackup:
    max-rate: '100M'
    checkpoint: 'fast'
  pg_ctl_timeout: 30
  remove_data_directory_on_rewind_failure: true
  use_unix_socket: true

watchdog:
  mode: automatic
  device: /dev/watchdog
  safety_margin: 5

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
  dc: east
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// The smallest valid agent configuration.
pub(super) const MINIMAL: &str = r#"
scope: demo
name: node1
restapi: {listen: "*:8008", connect_address: "10.0.0.1:8008"}
raft: {self_addr: "10.0.0.1:2222", data_dir: /var/lib/tribune/raft}
postgresql:
  listen: "*:5432"
  connect_address: 10.0.0.1:5432
  data_dir: /var/lib/postgresql/data
  authentication:
    superuser: {username: postgres}
    replication: {username: replicator}
"#;

/// `yaml` with `path` (dotted) set to `value` (YAML), or removed when `value` is `None`.
fn with(yaml: &str, path: &str, value: Option<&str>) -> String {
    let mut doc: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut cur = &mut doc;
    for p in parts {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p)
            .or_insert_with(|| json!({}));
    }
    let map = cur.as_object_mut().unwrap();
    match value {
        Some(v) => {
            map.insert(last.to_owned(), serde_saphyr::from_str(v).unwrap());
        }
        None => {
            map.remove(last);
        }
    }
    serde_json::to_string(&doc).unwrap()
}

fn minimal_with(path: &str, value: Option<&str>) -> String {
    with(MINIMAL, path, value)
}

fn error_of(yaml: &str) -> ConfigError {
    Config::from_yaml_str(yaml, &no_env).expect_err("config should be rejected")
}

#[test]
fn a_patroni_raft_configuration_loads_unchanged() {
    let c = Config::from_yaml_str(PATRONI_RAFT_YML, &no_env).unwrap();
    assert_eq!(c.scope, "batman");
    assert_eq!(c.name.as_str(), "postgresql0");
    assert_eq!(c.namespace, "/service/");
    assert!(!c.is_witness());

    assert_eq!(c.restapi.listen_addr, "127.0.0.1:8008".parse().unwrap());
    assert_eq!(c.restapi.api_url(), "http://127.0.0.1:8008/patroni");
    let auth = c.restapi.authentication.as_ref().unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_deref()),
        ("admin", Some("admin-secret"))
    );
    assert_eq!(
        c.restapi.http_extra_headers["X-Frame-Options"],
        "SAMEORIGIN"
    );
    assert!(!c.ctl.insecure);

    assert_eq!(c.raft.self_addr, "127.0.0.1:2222");
    assert_eq!(c.raft.bind_addr(), "127.0.0.1:2222");
    assert_eq!(c.raft.partner_addrs, ["127.0.0.1:2223", "127.0.0.1:2224"]);
    assert_eq!(c.raft.data_dir, PathBuf::from("/var/lib/patroni/raft"));

    let d = &c.bootstrap.dynamic;
    assert_eq!(
        (d.ttl, d.loop_wait, d.retry_timeout),
        (
            Duration::from_secs(30),
            Duration::from_secs(10),
            Duration::from_secs(10)
        )
    );
    assert_eq!(d.primary_start_timeout, Duration::from_secs(120));
    assert_eq!(d.synchronous_mode, SynchronousMode::Off);
    assert!(d.postgresql.use_pg_rewind && d.postgresql.use_slots);
    assert_eq!(d.postgresql.parameters["max_connections"], json!(100));
    assert_eq!(
        c.bootstrap_dcs()["slots"]["logical_slot"]["plugin"],
        json!("pgoutput")
    );
    assert!(matches!(
        &d.slots["logical_slot"].kind,
        crate::config::SlotKind::Logical { plugin, .. } if plugin == "pgoutput"
    ));
    assert_eq!(
        c.bootstrap
            .initdb
            .iter()
            .map(InitdbOption::to_arg)
            .collect::<Vec<_>>(),
        ["--encoding=UTF8", "--data-checksums"]
    );
    assert_eq!(c.bootstrap.pg_hba.len(), 2);

    let pg = c.postgresql.as_ref().unwrap();
    assert_eq!(pg.listen_host, "localhost");
    assert_eq!(
        (pg.connect_host.as_str(), pg.connect_port),
        ("127.0.0.1", 5432)
    );
    assert_eq!(pg.data_dir, PathBuf::from("data/postgresql0"));
    assert_eq!(
        pg.bin_dir,
        Some(PathBuf::from("/usr/lib/postgresql/16/bin"))
    );
    assert_eq!(pg.pgpass, PathBuf::from("/tmp/pgpass0"));
    assert_eq!(pg.authentication.superuser.username, "postgres");
    assert_eq!(
        pg.authentication.replication.password.as_deref(),
        Some("rep-pass")
    );
    assert_eq!(
        pg.authentication
            .rewind
            .as_ref()
            .map(|r| r.username.as_str()),
        Some("rewind_user")
    );
    assert_eq!(pg.parameters["shared_buffers"], json!("256MB"));
    assert_eq!(
        pg.pg_hba,
        ["local all all trust", "host all all 0.0.0.0/0 md5"]
    );
    assert_eq!(pg.pg_ctl_timeout, Duration::from_secs(30));
    assert!(pg.remove_data_directory_on_rewind_failure);
    assert_eq!(pg.proxy_address, None);
    assert!(!pg.remove_data_directory_on_diverged_timelines);
    assert!(pg.use_unix_socket);
    assert_eq!(
        pg.basebackup
            .iter()
            .map(InitdbOption::to_arg)
            .collect::<Vec<_>>(),
        ["--max-rate=100M", "--checkpoint=fast"]
    );

    assert_eq!(c.watchdog.mode, WatchdogMode::Automatic);
    assert_eq!(c.watchdog.safety_margin, Some(Duration::from_secs(5)));
    assert_eq!(c.tags.get("dc"), Some(&json!("east")));
    assert_eq!(c.tags.get("nofailover"), Some(&json!(false)));
    assert_eq!(c.log.level, "INFO");

    assert_eq!(c.ignored_keys, ["postgresql.use_unix_socket"]);
    let warning = c.ignored_keys_warning().unwrap();
    assert!(warning.contains("postgresql.use_unix_socket"));
    let methods: Vec<&str> = pg
        .create_replica_methods
        .iter()
        .map(crate::config::ReplicaMethod::name)
        .collect();
    assert_eq!(methods, ["pgbackrest", "basebackup"]);
    let crate::config::ReplicaMethod::Custom(pgbackrest) = &pg.create_replica_methods[0] else {
        panic!("{:?}", pg.create_replica_methods)
    };
    assert!(pgbackrest.keep_data && pgbackrest.no_params && !pgbackrest.no_leader);

    let debug = format!("{c:?}");
    for secret in ["admin-secret", "rep-pass", "zalando", "rewind_password"] {
        assert!(!debug.contains(secret), "{secret} in Debug output");
    }
}

/// Regression: `log.mode: 0640` (Patroni's documented spelling) was read as the number 640
/// and refused; PyYAML reads a leading 0 as octal. Tribune keeps such a value as its text.
#[test]
fn numbers_with_a_leading_zero_keep_their_text() {
    let yaml = format!("{MINIMAL}log:\n  mode: 0640\n");
    let c = Config::from_yaml_str(&yaml, &no_env).unwrap();
    assert_eq!(c.log.mode, Some(0o640));
    // A leading zero keeps the text, which the readers of modes take as octal and PostgreSQL
    // too (`unix_socket_permissions: 0700`); "09" stays "09" as in PyYAML (not the number 9).
    let doc = super::parse_yaml("a: 0700\nb: 0\nc: 0.5\nd: 09\ne: 10\n", "test").unwrap();
    assert_eq!(doc["a"], "0700");
    assert_eq!(doc["b"], 0);
    assert_eq!(doc["c"], 0.5);
    assert_eq!(doc["d"], "09");
    assert_eq!(doc["e"], 10);
}

#[test]
fn the_minimal_configuration_takes_the_defaults() {
    let c = Config::from_yaml_str(MINIMAL, &no_env).unwrap();
    assert_eq!(c.namespace, "/service");
    assert_eq!(c.bootstrap.dcs, json!({}));
    assert_eq!(c.bootstrap.dynamic, DynamicConfig::default());
    assert_eq!(c.watchdog, Watchdog::default());
    assert_eq!(c.log, Log::default());
    assert!(c.tags.is_empty() && c.ignored_keys.is_empty());
    assert_eq!(c.ignored_keys_warning(), None);
    assert_eq!(c.raft.heartbeat_interval, DEFAULT_HEARTBEAT_INTERVAL);
    assert_eq!(c.restapi.listen_addr, "0.0.0.0:8008".parse().unwrap());
    assert_eq!(
        c.postgresql.unwrap().pgpass,
        PathBuf::from("/var/lib/postgresql/pgpass")
    );
}

#[test]
fn tribune_only_keys_are_accepted() {
    let yaml = with(
        &minimal_with("postgresql.engine", Some("opengauss")),
        "raft.heartbeat_interval",
        Some("0.1"),
    );
    let c = Config::from_yaml_str(&yaml, &no_env).unwrap();
    assert_eq!(c.postgresql.unwrap().engine, Some(Engine::OpenGauss));
    assert_eq!(c.raft.heartbeat_interval, Duration::from_millis(100));
    assert!(c.ignored_keys.is_empty());
}

/// Patroni's `nostream` drops `primary_conninfo`; openGauss standbys only stream, so the tag
/// is refused there rather than silently ignored.
#[test]
fn nostream_is_refused_on_opengauss_only() {
    let opengauss = with(
        &minimal_with("postgresql.engine", Some("opengauss")),
        "tags",
        Some("{nostream: true}"),
    );
    let err = error_of(&opengauss);
    assert_eq!(err.key.as_deref(), Some("tags.nostream"));
    assert!(err.message.contains("openGauss"), "{err}");
    let postgres = minimal_with("tags", Some("{nostream: true}"));
    assert!(
        Config::from_yaml_str(&postgres, &no_env)
            .unwrap()
            .tags
            .nostream()
    );
}

#[test]
fn a_witness_has_no_postgresql_section() {
    let c = Config::from_yaml_str(&minimal_with("postgresql", None), &no_env).unwrap();
    assert!(c.is_witness());
    assert!(c.postgresql.is_none());
    let c = Config::from_yaml_str(&minimal_with("postgresql", Some("null")), &no_env).unwrap();
    assert!(c.is_witness());
}

#[test]
fn every_other_dcs_section_is_refused_with_the_way_out() {
    for dcs in [
        "etcd",
        "etcd3",
        "consul",
        "zookeeper",
        "exhibitor",
        "kubernetes",
    ] {
        let yaml = minimal_with(dcs, Some("{hosts: '10.0.0.1:2379'}"));
        let err = error_of(&yaml);
        assert_eq!(err.key.as_deref(), Some(dcs));
        assert!(
            err.message
                .contains(&format!("`{dcs}` is not supported: Tribune's agents are their own coordination store; replace the `{dcs}:` section with `raft:`")),
            "{err}"
        );
    }
}

#[test]
fn a_missing_raft_section_is_an_error() {
    let err = error_of(&minimal_with("raft", None));
    assert_eq!(err.key.as_deref(), Some("raft"));
    assert!(err.message.contains("add a `raft:` section"), "{err}");
}

#[test]
fn typos_are_refused_with_a_suggestion() {
    let err = error_of(&minimal_with("postgresql.data_dri", Some("/x")));
    assert_eq!(err.key.as_deref(), Some("postgresql.data_dri"));
    assert_eq!(
        err.to_string(),
        "config error at `postgresql.data_dri`: unknown key `postgresql.data_dri` \
         (did you mean `postgresql.data_dir`?)"
    );
    let err = error_of(&minimal_with("bootstrap.dcs.ttll", Some("30")));
    assert!(
        err.message.contains("did you mean `bootstrap.dcs.ttl`?"),
        "{err}"
    );
    let err = error_of(&minimal_with("loop_wait", Some("10")));
    assert!(err.message.contains("`bootstrap.dcs.loop_wait`"), "{err}");
}

#[test]
fn wrong_types_name_the_key_and_the_expected_type() {
    let cases = [
        (
            "bootstrap.dcs.ttl",
            "abc",
            "bootstrap.dcs.ttl",
            "a number of seconds",
        ),
        (
            "raft.partner_addrs",
            "5",
            "raft.partner_addrs",
            "a list of host:port",
        ),
        ("restapi", "8008", "restapi", "a mapping"),
        ("restapi.listen", "[1, 2]", "restapi.listen", "a string"),
        (
            "postgresql.use_pg_rewind",
            "sometimes",
            "postgresql.use_pg_rewind",
            "a boolean",
        ),
        (
            "postgresql.pg_hba",
            "{a: b}",
            "postgresql.pg_hba",
            "a list of strings",
        ),
        (
            "postgresql.parameters",
            "[x]",
            "postgresql.parameters",
            "a mapping",
        ),
        ("bootstrap.initdb", "[[1]]", "bootstrap.initdb[0]", "a flag"),
        ("bootstrap.dcs", "5", "bootstrap.dcs", "a mapping"),
        ("ctl.insecure", "perhaps", "ctl.insecure", "a boolean"),
        (
            "restapi.allowlist_include_members",
            "'x'",
            "restapi.allowlist_include_members",
            "a boolean",
        ),
        ("log.level", "LOUD", "log.level", "expected one of"),
        (
            "bootstrap.dcs.postgresql",
            "{parameters: {max_connections: 0}}",
            "bootstrap.dcs.postgresql.parameters.max_connections",
            "between 1 and 262143",
        ),
        (
            "postgresql.parameters",
            "{max_worker_processes: 300000}",
            "postgresql.parameters.max_worker_processes",
            "between 0 and 262143",
        ),
        ("name", "''", "name", "must not be empty"),
        (
            "restapi.connect_address",
            "'*:8008'",
            "restapi.connect_address",
            "not an address",
        ),
        (
            "postgresql.proxy_address",
            "pooler.example",
            "postgresql.proxy_address",
            "no port",
        ),
    ];
    for (path, value, key, needle) in cases {
        let err = error_of(&minimal_with(path, Some(value)));
        assert_eq!(err.key.as_deref(), Some(key), "{path}={value}: {err}");
        assert!(err.message.contains(needle), "{path}={value}: {err}");
    }
}

#[test]
fn every_required_key_is_named_when_missing() {
    for key in [
        "name",
        "scope",
        "restapi.listen",
        "restapi.connect_address",
        "raft.self_addr",
        "raft.data_dir",
        "postgresql.listen",
        "postgresql.connect_address",
        "postgresql.data_dir",
        "postgresql.authentication.superuser.username",
        "postgresql.authentication.replication.username",
    ] {
        let err = error_of(&minimal_with(key, None));
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains("required key is missing"), "{err}");
    }
    let err = error_of(&minimal_with("restapi", None));
    assert_eq!(err.key.as_deref(), Some("restapi.listen"));
}

#[test]
fn incoherent_timeouts_are_refused_with_what_to_change() {
    let yaml = minimal_with(
        "bootstrap.dcs",
        Some("{ttl: 20, loop_wait: 10, retry_timeout: 10}"),
    );
    let err = error_of(&yaml);
    assert_eq!(err.key.as_deref(), Some("bootstrap.dcs.ttl"));
    assert!(
        err.message.contains("loop_wait + 2*retry_timeout <= ttl"),
        "{err}"
    );
    assert!(err.message.contains("raise ttl to at least 30"), "{err}");
    // Patroni's own defaults satisfy the rule.
    let yaml = minimal_with(
        "bootstrap.dcs",
        Some("{ttl: 30, loop_wait: 10, retry_timeout: 10}"),
    );
    assert!(Config::from_yaml_str(&yaml, &no_env).is_ok());
}

#[test]
fn bad_tags_are_refused() {
    for (tags, key) in [
        (
            "{nofailover: true, failover_priority: 1}",
            "tags.failover_priority",
        ),
        ("{nosync: false, sync_priority: 2}", "tags.sync_priority"),
        ("{failover_priority: -1}", "tags.failover_priority"),
        ("{nofailover: maybe}", "tags.nofailover"),
        ("{clonefrom: 3}", "tags.clonefrom"),
    ] {
        let err = error_of(&minimal_with("tags", Some(tags)));
        assert_eq!(err.key.as_deref(), Some(key), "{tags}: {err}");
    }
}

#[test]
fn watchdog_modes_as_yaml_writes_them() {
    // PyYAML and serde-saphyr read a bare `off` as false.
    let yaml = format!("{MINIMAL}\nwatchdog:\n  mode: off\n");
    let c = Config::from_yaml_str(&yaml, &no_env).unwrap();
    assert_eq!(c.watchdog.mode, WatchdogMode::Off);
    let yaml = format!("{MINIMAL}\nwatchdog:\n  mode: require\n  safety_margin: -1\n");
    let c = Config::from_yaml_str(&yaml, &no_env).unwrap();
    assert_eq!(c.watchdog.mode, WatchdogMode::Required);
    assert_eq!(c.watchdog.safety_margin, None);
    let err = error_of(&format!("{MINIMAL}\nwatchdog:\n  mode: sometimes\n"));
    assert_eq!(err.key.as_deref(), Some("watchdog.mode"));
    assert!(err.message.contains("off, automatic or required"), "{err}");
}

#[test]
fn bad_raft_timers_are_refused() {
    for (timers, key) in [
        ("{heartbeat_interval: 0.5}", "raft.election_timeout_min"),
        (
            "{election_timeout_min: 2, election_timeout_max: 2}",
            "raft.election_timeout_max",
        ),
        ("{election_timeout_max: soon}", "raft.election_timeout_max"),
    ] {
        let mut doc: serde_json::Value = serde_saphyr::from_str(MINIMAL).unwrap();
        let timers: serde_json::Value = serde_saphyr::from_str(timers).unwrap();
        doc["raft"]
            .as_object_mut()
            .unwrap()
            .extend(timers.as_object().unwrap().clone());
        let err = error_of(&doc.to_string());
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
    }
}

#[test]
fn tribune_variables_override_patroni_variables_which_override_the_file() {
    let env = env_of(&[
        ("PATRONI_NAME", "from-patroni"),
        ("TRIBUNE_NAME", "from-tribune"),
        ("PATRONI_SCOPE", "patroni-scope"),
        ("PATRONI_RESTAPI_USERNAME", "admin"),
        ("TRIBUNE_RESTAPI_PASSWORD", "pw"),
        ("PATRONI_RAFT_PARTNER_ADDRS", "10.0.0.2:2222,10.0.0.3:2222"),
        ("TRIBUNE_RAFT_DATA_DIR", "/srv/raft"),
        ("PATRONI_CTL_INSECURE", "true"),
        ("PATRONI_SUPERUSER_PASSWORD", "su-pass"),
        ("TRIBUNE_REWIND_USERNAME", "rewinder"),
        ("PATRONI_POSTGRESQL_DATA_DIR", "/srv/pg"),
        ("PATRONI_LOG_LEVEL", "debug"),
        ("PATRONI_NAMESPACE", ""),
        ("HOME", "/home/tribune"),
    ]);
    let c = Config::from_yaml_str(MINIMAL, &env).unwrap();
    assert_eq!(c.name.as_str(), "from-tribune");
    assert_eq!(c.scope, "patroni-scope");
    assert_eq!(c.namespace, "/service", "empty variables are ignored");
    let auth = c.restapi.authentication.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_deref()),
        ("admin", Some("pw"))
    );
    assert_eq!(c.raft.partner_addrs, ["10.0.0.2:2222", "10.0.0.3:2222"]);
    assert_eq!(c.raft.data_dir, PathBuf::from("/srv/raft"));
    assert!(c.ctl.insecure);
    assert_eq!(c.log.level, "DEBUG");
    let pg = c.postgresql.unwrap();
    assert_eq!(pg.data_dir, PathBuf::from("/srv/pg"));
    assert_eq!(pg.pgpass, PathBuf::from("/home/tribune/pgpass"));
    assert_eq!(
        pg.authentication.superuser.password.as_deref(),
        Some("su-pass")
    );
    assert_eq!(pg.authentication.rewind.unwrap().username, "rewinder");
}

#[test]
fn the_environment_alone_can_configure_a_witness() {
    let env = env_of(&[
        ("PATRONI_NAME", "w1"),
        ("PATRONI_SCOPE", "demo"),
        ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"),
        ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.9:8008"),
        ("PATRONI_RAFT_SELF_ADDR", "10.0.0.9:2222"),
        (
            "PATRONI_RAFT_PARTNER_ADDRS",
            "['10.0.0.1:2222','10.0.0.2:2222']",
        ),
        ("PATRONI_RAFT_DATA_DIR", "/var/lib/tribune"),
        ("PATRONI_RAFT_PASSWORD", "raft-pw"),
        ("TRIBUNE_RAFT_CERTFILE", "/etc/tribune/w1.pem"),
        ("TRIBUNE_RAFT_KEYFILE", "/etc/tribune/w1.key"),
        ("TRIBUNE_RAFT_KEYFILE_PASSWORD", "key-pw"),
        ("TRIBUNE_RAFT_CAFILE", "/etc/tribune/ca.pem"),
    ]);
    let c = Config::load_with_env(None, &env).unwrap();
    assert!(c.is_witness());
    assert_eq!(c.raft.partner_addrs, ["10.0.0.1:2222", "10.0.0.2:2222"]);
    assert_eq!(c.raft.password.as_deref(), Some("raft-pw"));
    assert_eq!(c.raft.keyfile_password.as_deref(), Some("key-pw"));
    assert_eq!(
        c.raft.cafile.as_deref(),
        Some(std::path::Path::new("/etc/tribune/ca.pem"))
    );
}

#[test]
fn errors_in_environment_values_name_the_variable() {
    let env = env_of(&[("TRIBUNE_RAFT_SELF_ADDR", "no-port")]);
    let err = Config::from_yaml_str(MINIMAL, &env).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("raft.self_addr"));
    assert!(
        err.message.contains("(value from TRIBUNE_RAFT_SELF_ADDR)"),
        "{err}"
    );

    let env = env_of(&[("PATRONI_ETCD3_HOSTS", "10.0.0.1:2379")]);
    let err = Config::from_yaml_str(MINIMAL, &env).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("etcd3"));
    assert!(err.message.contains("PATRONI_ETCD3_HOSTS"), "{err}");
}

#[test]
fn the_configuration_variable_is_the_whole_document() {
    let env = env_of(&[
        ("PATRONI_CONFIGURATION", "this: [is, ignored"),
        ("TRIBUNE_CONFIGURATION", MINIMAL),
        ("PATRONI_NAME", "not-applied"),
    ]);
    let c = Config::load_with_env(None, &env).unwrap();
    assert_eq!(c.name.as_str(), "node1");
    let env = env_of(&[("PATRONI_CONFIGURATION", MINIMAL)]);
    assert_eq!(Config::load_with_env(None, &env).unwrap().scope, "demo");
}

#[test]
fn a_directory_of_files_is_merged_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00-base.yml"), MINIMAL).unwrap();
    std::fs::write(
        dir.path().join("10-node.yaml"),
        "name: node2\nrestapi:\n  connect_address: 10.0.0.2:8008\ntags: {dc: west}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("20-drop.yml"),
        "postgresql:\n  authentication:\n    rewind: {username: rw}\ntags: null\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("30-empty.yml"), "").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "name: ignored").unwrap();
    let c = Config::load_with_env(Some(dir.path()), &no_env).unwrap();
    assert_eq!(c.name.as_str(), "node2");
    assert_eq!(c.restapi.connect_address, "10.0.0.2:8008");
    assert_eq!(c.restapi.listen, "*:8008", "sibling keys survive the merge");
    let pg = c.postgresql.unwrap();
    assert_eq!(pg.authentication.superuser.username, "postgres");
    assert_eq!(pg.authentication.rewind.unwrap().username, "rw");
    assert!(c.tags.is_empty(), "null in a later file removes the key");

    let empty = tempfile::tempdir().unwrap();
    let err = Config::load_with_env(Some(empty.path()), &no_env).unwrap_err();
    assert!(err.message.contains("no *.yml or *.yaml file"), "{err}");
}

#[test]
fn a_single_file_and_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("patroni.yml");
    std::fs::write(&file, PATRONI_RAFT_YML).unwrap();
    let env = env_of(&[("TRIBUNE_RESTAPI_LISTEN", "127.0.0.1:18008")]);
    let c = Config::load_with_env(Some(&file), &env).unwrap();
    assert_eq!(c.restapi.listen_addr, "127.0.0.1:18008".parse().unwrap());

    let err = Config::load_with_env(Some(&dir.path().join("missing.yml")), &no_env).unwrap_err();
    assert_eq!(err.key, None);
    assert!(err.message.contains("missing.yml"), "{err}");
}

#[test]
fn yaml_is_read_as_patroni_reads_it() {
    // A repeated key keeps its last value, as with PyYAML.
    let c = Config::from_yaml_str(&format!("{MINIMAL}\nname: node9\n"), &no_env).unwrap();
    assert_eq!(c.name.as_str(), "node9");
    for (yaml, needle) in [
        ("", "empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("name: [unclosed\n", "cannot parse"),
    ] {
        let err = Config::from_yaml_str(yaml, &no_env).unwrap_err();
        assert_eq!(err.key, None);
        assert!(err.message.contains(needle), "{yaml:?}: {err}");
    }
}

#[test]
fn a_reload_applies_tags_parameters_and_pg_hba_and_names_what_needs_a_restart() {
    let no_env = |_: &str| None;
    let running = Config::from_yaml_str(PATRONI_RAFT_YML, &no_env).unwrap();
    let edited = PATRONI_RAFT_YML
        .replace("nofailover: false", "nofailover: true")
        .replace("listen: 127.0.0.1:8008", "listen: 127.0.0.1:8018")
        .replace("    shared_buffers: 256MB", "    shared_buffers: 512MB");
    assert_ne!(
        edited, PATRONI_RAFT_YML,
        "the edits must apply to the sample"
    );
    let reloaded = Config::from_yaml_str(&edited, &no_env).unwrap();
    let (live, needs_restart) = running.reload_from(&reloaded);
    assert_eq!(live.tags, reloaded.tags);
    let pg = |c: &Config| c.postgresql.clone().unwrap();
    assert_eq!(pg(&live).parameters, pg(&reloaded).parameters);
    assert_eq!(
        live.restapi, running.restapi,
        "the listener stays until a restart"
    );
    assert_eq!(needs_restart, vec!["restapi"]);
    // The Raft peers' credentials are reloaded (by the Raft node); its addresses are not.
    let edited = PATRONI_RAFT_YML.replace(
        "raft:\n",
        "raft:\n  certfile: /etc/t/n.pem\n  cafile: /etc/t/ca.pem\n",
    );
    let reloaded = Config::from_yaml_str(&edited, &no_env).unwrap();
    let (live, needs_restart) = running.reload_from(&reloaded);
    assert_eq!(live.raft, reloaded.raft);
    assert!(needs_restart.is_empty(), "{needs_restart:?}");
    let moved = edited.replace("data_dir: /var/lib/patroni/raft", "data_dir: /srv/raft");
    let (live, needs_restart) =
        running.reload_from(&Config::from_yaml_str(&moved, &no_env).unwrap());
    assert_eq!(live.raft.data_dir, running.raft.data_dir);
    assert_eq!(live.raft.cafile, reloaded.raft.cafile);
    assert_eq!(needs_restart, vec!["raft"]);
    // Reloading an unchanged file changes nothing.
    let (same, none) = running.reload_from(&running.clone());
    assert_eq!(same, running);
    assert!(none.is_empty());
}

#[test]
fn rest_security_variables_as_patroni_reads_them() {
    let env = env_of(&[
        ("PATRONI_RESTAPI_CERTFILE", "/etc/tls/server.pem"),
        ("PATRONI_RESTAPI_KEYFILE_PASSWORD", "kp"),
        (
            "PATRONI_RESTAPI_ALLOWLIST",
            "['10.0.0.0/8', 'db1.example.com']",
        ),
        ("PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS", "on"),
        ("PATRONI_CTL_CERTFILE", "/etc/tls/ctl.pem"),
        ("PATRONI_CTL_KEYFILE", "/etc/tls/ctl.key"),
        ("PATRONI_CTL_KEYFILE_PASSWORD", "ckp"),
    ]);
    let c = Config::from_yaml_str(MINIMAL, &env).unwrap();
    assert_eq!(c.restapi.keyfile_password.as_deref(), Some("kp"));
    assert_eq!(c.restapi.allowlist, ["10.0.0.0/8", "db1.example.com"]);
    assert!(c.restapi.allowlist_include_members);
    assert_eq!(c.ctl.certfile, Some(PathBuf::from("/etc/tls/ctl.pem")));
    assert_eq!(c.ctl.keyfile, Some(PathBuf::from("/etc/tls/ctl.key")));
    assert_eq!(c.ctl.keyfile_password.as_deref(), Some("ckp"));
}

#[test]
fn bootstrap_dcs_standby_cluster_is_read_and_checked_at_start_up() {
    let yaml = minimal_with(
        "bootstrap.dcs.standby_cluster",
        Some(r#"{"host": "10.0.0.1", "port": 5433, "primary_slot_name": "dr"}"#),
    );
    let c = Config::from_yaml_str(&yaml, &no_env).unwrap();
    let remote = c
        .bootstrap
        .dynamic
        .standby_cluster
        .expect("a standby cluster");
    assert_eq!(remote.host.as_deref(), Some("10.0.0.1"));
    assert_eq!(remote.port, Some(5433));
    assert!(!c.ignored_keys.iter().any(|k| k.contains("standby_cluster")));
    let err = error_of(&minimal_with(
        "bootstrap.dcs.standby_cluster",
        Some(r#"{"host": "10.0.0.1", "port": 99999}"#),
    ));
    assert_eq!(
        err.key.as_deref(),
        Some("bootstrap.dcs.standby_cluster.port"),
        "{err}"
    );
}

#[test]
fn permanent_slots_are_refused_on_opengauss_naming_the_slot() {
    let yaml = with(
        &minimal_with("bootstrap.dcs", Some("{slots: {cdc: {type: physical}}}")),
        "postgresql.engine",
        Some("opengauss"),
    );
    let err = error_of(&yaml);
    assert_eq!(err.key.as_deref(), Some("bootstrap.dcs.slots.cdc"));
    assert!(err.message.contains("not supported on openGauss"), "{err}");
    // PostgreSQL takes them, and a bad one is an error naming it.
    let yaml = minimal_with("bootstrap.dcs", Some("{slots: {cdc: {type: physical}}}"));
    assert!(Config::from_yaml_str(&yaml, &no_env).is_ok());
    let yaml = minimal_with(
        "bootstrap.dcs",
        Some("{slots: {cdc: {type: logical, database: app}}}"),
    );
    assert_eq!(
        error_of(&yaml).key.as_deref(),
        Some("bootstrap.dcs.slots.cdc.plugin")
    );
}
