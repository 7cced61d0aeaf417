//! The agent refuses bad configuration with one clear message naming the key, and exits
//! non-zero before touching any data (the data directory is never created).

use std::path::Path;
use std::process::Command;

use crate::harness::built_agent;

fn valid(dir: &Path) -> String {
    format!(
        r#"scope: demo
name: node0
restapi:
  listen: 127.0.0.1:18008
  connect_address: 127.0.0.1:18008
raft:
  self_addr: 127.0.0.1:12222
  partner_addrs: ['127.0.0.1:12223', '127.0.0.1:12224']
  data_dir: {dir}/raft
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
postgresql:
  listen: 127.0.0.1:15432
  connect_address: 127.0.0.1:15432
  data_dir: {dir}/data
  authentication:
    superuser:
      username: postgres
      password: secret
    replication:
      username: replicator
      password: secret
"#,
        dir = dir.display()
    )
}

/// Run the agent on `yaml`; return (exit success, stderr).
fn run(dir: &Path, yaml: &str) -> (bool, String) {
    let path = dir.join("bad.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(built_agent()).arg(&path).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_class_of_config_error_names_the_key_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = valid(dir.path());
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "an etcd3 DCS section",
            base.replace("raft:\n", "etcd3:\n  hosts: 127.0.0.1:2379\nraft:\n"),
            &["etcd3"],
        ),
        (
            "only an etcd section",
            base.replace(
                "raft:\n  self_addr",
                "etcd:\n  host: 127.0.0.1:2379\nraftx:\n  self_addr",
            ),
            &["etcd"],
        ),
        (
            "a typo in a key",
            base.replace("  data_dir: ", "  data_dri: ").replacen(
                "  data_dri: ",
                "  data_dir: ",
                1,
            ),
            &["postgresql.data_dri"],
        ),
        (
            "a wrong type",
            base.replace("ttl: 30", "ttl: thirty"),
            &["ttl"],
        ),
        (
            "incoherent timeouts",
            base.replace("retry_timeout: 10", "retry_timeout: 20"),
            &["retry_timeout"],
        ),
        (
            "a missing required key",
            base.replace("name: node0\n", ""),
            &["name"],
        ),
        (
            "a missing replication user",
            base.replace(
                "    replication:\n      username: replicator\n      password: secret\n",
                "",
            ),
            &["replication"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, yaml, needles) in cases {
        let (ok, stderr) = run(dir.path(), &yaml);
        let named = needles.iter().all(|n| stderr.contains(n));
        let one_line = stderr.trim().lines().count() == 1;
        if ok || !named || !one_line {
            failures.push(format!("{what}: exit ok={ok}, stderr={stderr:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        !dir.path().join("data").exists(),
        "the data directory was created"
    );
    assert!(
        !dir.path().join("raft").exists(),
        "the raft directory was created"
    );
}

/// `tribune --validate-config` on `yaml`: (success, stdout, stderr).
fn validate(dir: &Path, yaml: &str) -> (bool, String, String) {
    let path = dir.join("checked.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(built_agent())
        .arg("--validate-config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_valid_config_passes_validation_and_says_whether_the_raft_port_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = validate(dir.path(), &valid(dir.path()));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("the Raft port 127.0.0.1:12222 accepts any peer that knows the scope"),
        "{stdout}"
    );
    let with_password = valid(dir.path()).replace("raft:\n", "raft:\n  password: pw-1234\n");
    let (ok, stdout, stderr) = validate(dir.path(), &with_password);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("accepts any peer"), "{stdout}");
    assert!(!stdout.contains("pw-1234") && !stderr.contains("pw-1234"));
    // The certificate files are read as at start: a missing one fails the validation.
    let d = dir.path().display();
    let missing = valid(dir.path()).replace(
        "raft:\n",
        &format!("raft:\n  certfile: {d}/node.pem\n  cafile: {d}/ca.pem\n"),
    );
    let (ok, _, stderr) = validate(dir.path(), &missing);
    assert!(!ok);
    assert!(
        stderr.contains("raft.certfile") && stderr.contains(&format!("{d}/node.pem")),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(
    not(tribune_root_tests),
    ignore = "needs root: built with TRIBUNE_ROOT_TESTS, as scripts/test.sh does as root"
)]
fn the_agent_refuses_to_run_as_root() {
    crate::harness::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(dir.path(), &valid(dir.path()));
    assert!(!ok);
    assert!(stderr.contains("refusing to run as root"), "{stderr}");
    assert!(!dir.path().join("data").exists());
}

/// A patroni.yml as production clusters write it (Patroni's samples, autobase, Spilo), with
/// every setting outside replica creation, backups and slots: `--validate-config` accepts it,
/// and every key it reports as not acted on says why (except the ones of the backups/slots
/// work, listed here while it is elsewhere).
#[test]
fn a_production_patroni_yml_validates_with_every_ignored_key_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let yaml = format!(
        r#"scope: prod
namespace: /service/
name: pg1
log:
  level: INFO
  traceback_level: ERROR
  type: plain
  format: '%(asctime)s %(levelname)s: %(message)s'
  dateformat: '%Y-%m-%d %H:%M:%S'
  static_fields: {{app: patroni}}
  max_queue_size: 1000
  dir: {d}/log
  mode: 0640
  file_num: 4
  file_size: 25000000
  loggers: {{patroni.postmaster: WARNING}}
  deduplicate_heartbeat_logs: true
restapi:
  listen: 127.0.0.1:18008
  connect_address: 127.0.0.1:18008
  authentication: {{username: admin, password: admin-pw}}
  allowlist: [127.0.0.1, 10.0.0.0/8]
  allowlist_include_members: true
  http_extra_headers: {{X-Frame-Options: SAMEORIGIN}}
  https_extra_headers: {{Strict-Transport-Security: max-age=31536000}}
  ciphers: 'ECDHE+AESGCM:!aNULL:!MD5'
  request_queue_size: 16
  thread_pool_size: 5
  server_tokens: ProductOnly
ctl:
  insecure: false
  authentication: {{username: admin, password: admin-pw}}
raft:
  self_addr: 127.0.0.1:12222
  partner_addrs: ['127.0.0.1:12223', '127.0.0.1:12224']
  data_dir: {d}/raft
  min_timeout: 1
  max_timeout: 2
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    maximum_lag_on_syncnode: 16777216
    primary_race_backoff: 6
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      pg_ctl_timeout: 60
      parameters: {{max_connections: 100}}
  initdb: [{{encoding: UTF8}}, data-checksums]
  post_bootstrap: /usr/local/bin/post_bootstrap.sh
  users: {{admin: {{password: x, options: [createrole]}}}}
postgresql:
  listen: 127.0.0.1:15432
  connect_address: 127.0.0.1:15432
  data_dir: {d}/data
  bin_dir: /usr/lib/postgresql/15/bin
  bin_name: {{pg_ctl: pg_ctl}}
  pgpass: {d}/pgpass
  custom_conf: /etc/postgresql/custom.conf
  use_unix_socket: true
  use_unix_socket_repl: true
  pg_ctl_timeout: 60
  pg_ident: ['krb /^(.*)@EXAMPLE$ \1']
  pg_hba: ['local all all trust', 'host all all 0.0.0.0/0 scram-sha-256']
  authentication:
    superuser: {{username: postgres, password: su-pw, sslmode: prefer}}
    replication: {{username: replicator, password: rep-pw, sslmode: verify-full, sslrootcert: /etc/ssl/ca.pem}}
    rewind: {{username: rewind_user, password: rw-pw, sslmode: require}}
  callbacks:
    on_start: /usr/local/bin/cb.sh
    on_stop: /usr/local/bin/cb.sh
    on_restart: /usr/local/bin/cb.sh
    on_reload: /usr/local/bin/cb.sh
    on_role_change: /usr/local/bin/vip.sh
  pre_promote: /usr/local/bin/fence.sh
  before_stop: /usr/local/bin/drain.sh
  parameters: {{shared_buffers: 128MB}}
watchdog: {{mode: off}}
tags: {{nofailover: false, noloadbalance: false, clonefrom: false, nosync: false}}
thread_stack_size: 65536
"#
    );
    let (ok, stdout, stderr) = validate(dir.path(), &yaml);
    assert!(ok, "{stderr}");
    let ignored: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("accepted but not acted on: "))
        .collect();
    let unexplained: Vec<&&str> = ignored.iter().filter(|l| !l.contains(" (")).collect();
    assert!(
        unexplained.is_empty(),
        "no reason given for {unexplained:?}"
    );
    let names: Vec<&str> = ignored
        .iter()
        .map(|l| l.split(" (").next().unwrap_or(l))
        .collect();
    assert_eq!(
        names,
        [
            "bootstrap.dcs.postgresql.pg_ctl_timeout",
            "bootstrap.dcs.primary_race_backoff",
            "bootstrap.users",
            "log.max_queue_size",
            "log.traceback_level",
            "postgresql.use_unix_socket",
            "raft.max_timeout",
            "raft.min_timeout",
            "restapi.thread_pool_size",
            "thread_stack_size",
        ],
        "{stdout}"
    );
    // A Citus cluster is refused, naming the section.
    let citus = format!("{yaml}citus: {{group: 0, database: citus}}\n");
    let (ok, _, stderr) = validate(dir.path(), &citus);
    assert!(!ok);
    assert!(
        stderr.contains("citus") && stderr.contains("not supported"),
        "{stderr}"
    );
}
