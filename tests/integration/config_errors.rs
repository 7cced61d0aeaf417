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
fn the_agent_refuses_to_run_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: this check needs the tests to run as root (CI does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(dir.path(), &valid(dir.path()));
    assert!(!ok);
    assert!(stderr.contains("refusing to run as root"), "{stderr}");
    assert!(!dir.path().join("data").exists());
}
