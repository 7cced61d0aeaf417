//! `tribunectl` against a running cluster, verb by verb, through the built binary (assert_cmd):
//! the output operators know from patronictl, the questions and their answers on stdin, and
//! every refusal, each checked to be one `Error:` line with exit code 1 that changed nothing.
//! Many checks share one cluster start.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{BOOTSTRAP_DEADLINE, wait_healthy};
use crate::harness::*;

/// What one `tribunectl` run printed.
struct Run {
    args: String,
    code: Option<i32>,
    out: String,
    err: String,
}

impl Run {
    fn from(args: &[&str], output: Output) -> Run {
        Run {
            args: args.join(" "),
            code: output.status.code(),
            out: String::from_utf8_lossy(&output.stdout).into_owned(),
            err: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn context(&self) -> String {
        format!(
            "tribunectl {}\n-- exit {:?}\n-- stdout:\n{}-- stderr:\n{}",
            self.args, self.code, self.out, self.err
        )
    }

    /// Exit 0 and nothing on stderr.
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "{}", self.context());
        assert_eq!(self.err, "", "{}", self.context());
        self
    }

    /// Exit 1 with exactly `Error: <message>` on stderr.
    fn refused(&self, message: &str) -> &Self {
        assert_eq!(self.code, Some(1), "{}", self.context());
        assert_eq!(
            self.err,
            format!("Error: {message}\n"),
            "{}",
            self.context()
        );
        self
    }

    /// Exit 1 with one `Error:` line starting with `prefix`.
    fn refused_with(&self, prefix: &str) -> &Self {
        assert_eq!(self.code, Some(1), "{}", self.context());
        assert!(
            self.err.starts_with(&format!("Error: {prefix}")) && self.err.lines().count() == 1,
            "{}",
            self.context()
        );
        self
    }

    /// A usage error: clap's `error:` line(s) and exit code 2, as click's usage errors.
    fn usage_error(&self) -> &Self {
        assert_eq!(self.code, Some(2), "{}", self.context());
        assert!(self.err.starts_with("error: "), "{}", self.context());
        self
    }

    fn has(&self, text: &str) -> &Self {
        assert!(
            self.out.contains(text),
            "missing {text:?} in\n{}",
            self.context()
        );
        self
    }

    fn lacks(&self, text: &str) -> &Self {
        assert!(
            !self.out.contains(text),
            "unexpected {text:?} in\n{}",
            self.context()
        );
        self
    }
}

/// The built CLI with nothing taken from the test run's environment (no config file, no URL,
/// no editor); a run that waits for more than two minutes fails.
fn command() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_tribunectl"));
    cmd.env_remove("TRIBUNECTL_URL")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("EDITOR")
        .env("HOME", "/nonexistent")
        .timeout(Duration::from_secs(120));
    cmd
}

/// Every member's REST URL, as `TRIBUNECTL_URL` takes them.
fn urls(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .map(|n| n.api())
        .collect::<Vec<_>>()
        .join(",")
}

/// `tribunectl ARGS` reaching the cluster through `TRIBUNECTL_URL`, stdin closed.
fn ctl(cluster: &Cluster, args: &[&str]) -> Run {
    ctl_with(cluster, args, None, &[])
}

/// `tribunectl ARGS` with `answers` on stdin.
fn ctl_answering(cluster: &Cluster, args: &[&str], answers: &str) -> Run {
    ctl_with(cluster, args, Some(answers), &[])
}

fn ctl_with(cluster: &Cluster, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut cmd = command();
    cmd.env("TRIBUNECTL_URL", urls(cluster)).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    Run::from(args, cmd.output().expect("run tribunectl"))
}

/// `GET /config` once every member answers the same: a write is answered when the Raft leader
/// has applied it, and the other members follow a moment later.
async fn config(client: &reqwest::Client, cluster: &Cluster) -> Value {
    wait_for(
        Duration::from_secs(10),
        "every member to show the same configuration",
        cluster,
        || async {
            let mut seen = Vec::new();
            for node in &cluster.nodes {
                seen.push(get_json(client, &format!("{}/config", node.api())).await?);
            }
            seen.windows(2)
                .all(|w| w[0] == w[1])
                .then(|| seen.remove(0))
        },
    )
    .await
}

async fn start_time(client: &reqwest::Client, node: &Node) -> Value {
    get_json(client, &format!("{}/patroni", node.api()))
        .await
        .map(|d| d["postmaster_start_time"].clone())
        .unwrap_or(Value::Null)
}

/// The row of `member` in a pretty member table.
fn row<'a>(table: &'a str, member: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("| {member} ")))
        .unwrap_or_default()
}

async fn healthy_cluster() -> (reqwest::Client, Cluster, usize) {
    let client = http_client();
    let mut cluster = Cluster::new(3, Options::default());
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    (client, cluster, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_finds_the_cluster_reads_it_and_edits_its_configuration() {
    let (client, cluster, p) = healthy_cluster().await;
    let (leader, replica) = (&cluster.nodes[p], &cluster.nodes[(p + 1) % 3]);

    // list: one leader and two streaming replicas, in each format.
    let table = ctl(&cluster, &["list"]).ok().out.clone();
    assert!(table.starts_with("+ Cluster: itest ("), "{table}");
    assert!(
        row(&table, &leader.name).contains("| Leader  | running "),
        "{table}"
    );
    assert!(
        row(&table, &replica.name).contains("| Replica | streaming |"),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&ctl(&cluster, &["list", "-f", "json"]).ok().out).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(3));
    assert_eq!(json[p]["Role"], "Leader");
    assert_eq!(json[p]["Cluster"], "itest");
    ctl(&cluster, &["list", "-f", "tsv"])
        .ok()
        .has("Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag\n");
    ctl(&cluster, &["list", "itest", "-f", "yaml"])
        .ok()
        .has("- Cluster: itest\n  Host: ");

    // topology: the leader first, the replicas one level below.
    let tree = ctl(&cluster, &["topology"]).ok().out.clone();
    let members: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Member"))
        .map(|l| l.split('|').nth(1).unwrap().trim())
        .collect();
    let mut replicas: Vec<String> = (0..3)
        .filter(|i| *i != p)
        .map(|i| format!("+ {}", cluster.nodes[i].name))
        .collect();
    replicas.sort();
    assert_eq!(
        members,
        [leader.name.as_str(), &replicas[0], &replicas[1]],
        "{tree}"
    );

    // Finding the cluster: a config file (-c or PATRONICTL_CONFIG_FILE), a member down first
    // in --url, and refusals when nothing answers or the name is wrong.
    let node_config = cluster.nodes[1].config.display().to_string();
    let by_file = Run::from(
        &["-c", &node_config, "list"],
        command()
            .args(["-c", &node_config, "list"])
            .output()
            .unwrap(),
    );
    assert_eq!(by_file.ok().out, table);
    let by_env = Run::from(
        &["list"],
        command()
            .env("PATRONICTL_CONFIG_FILE", &node_config)
            .arg("list")
            .output()
            .unwrap(),
    );
    assert_eq!(by_env.ok().out, table);
    let down_first = format!("http://127.0.0.1:1,{}", replica.api());
    let args = ["--url", down_first.as_str(), "list"];
    assert_eq!(
        Run::from(&args, command().args(args).output().unwrap())
            .ok()
            .out,
        table
    );
    let args = ["--url", "http://127.0.0.1:1", "list"];
    Run::from(&args, command().args(args).output().unwrap()).refused_with(
        "reading the cluster (GET /cluster): no member answered: http://127.0.0.1:1/cluster: ",
    );
    Run::from(&["list"], command().arg("list").output().unwrap()).refused(
        "no cluster to talk to: give --url http://host:8008 (or TRIBUNECTL_URL) or -c CONFIG.yml (or PATRONICTL_CONFIG_FILE)",
    );
    ctl(&cluster, &["list", "batman"])
        .refused("Cluster batman not found: the members reached belong to cluster itest");
    let mut timings: Vec<f64> = (0..10)
        .map(|_| {
            let started = Instant::now();
            ctl(&cluster, &["list"]).ok();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    timings.sort_by(f64::total_cmp);
    println!("tribunectl list: median {:.1} ms over 10 runs", timings[5]);

    // history, dsn, version.
    ctl(&cluster, &["history"])
        .ok()
        .has("| TL | LSN | Reason | Timestamp | New Leader |");
    assert_eq!(ctl(&cluster, &["history", "-f", "json"]).ok().out, "[]\n");
    let dsn = |node: &Node| format!("host={} port={}\n", node.ip, node.pg_port);
    assert_eq!(ctl(&cluster, &["dsn"]).ok().out, dsn(leader));
    assert_eq!(
        ctl(&cluster, &["dsn", "-r", "primary"]).ok().out,
        dsn(leader)
    );
    assert_eq!(
        ctl(&cluster, &["dsn", "-m", &replica.name]).ok().out,
        dsn(replica)
    );
    let any_replica = ctl(&cluster, &["dsn", "itest", "--role", "replica"])
        .ok()
        .out
        .clone();
    assert!(any_replica != dsn(leader), "{any_replica}");
    ctl(&cluster, &["dsn", "-m", "nobody"])
        .refused("Member nobody does not exist in cluster itest");
    ctl(&cluster, &["dsn", "-r", "standby-leader"])
        .refused("no member of cluster itest has the role standby-leader");
    let version = format!(
        "tribunectl version {} (Patroni API {})\n",
        tribune::VERSION,
        tribune::PATRONI_API_VERSION
    );
    assert_eq!(
        Run::from(&["version"], command().arg("version").output().unwrap())
            .ok()
            .out,
        version
    );
    let versions = ctl(&cluster, &["version", "itest"]).ok().out.clone();
    assert!(versions.starts_with(&format!("{version}\n")), "{versions}");
    for node in &cluster.nodes {
        let line = format!(
            "{}: Tribune {} (Patroni API {}) PostgreSQL ",
            node.name,
            tribune::VERSION,
            tribune::PATRONI_API_VERSION
        );
        assert!(versions.contains(&line), "{versions}");
    }
    assert_eq!(
        ctl(&cluster, &["version", "itest", &replica.name])
            .ok()
            .out
            .lines()
            .count(),
        3
    );

    // show-config: the stored configuration as YAML, keys sorted.
    let before = config(&client, &cluster).await;
    let shown = ctl(&cluster, &["show-config"]).ok().out.clone();
    assert!(
        shown.starts_with("loop_wait: 1\nmaximum_lag_on_failover: 1048576\n"),
        "{shown}"
    );
    assert_eq!(serde_saphyr::from_str::<Value>(&shown).unwrap(), before);

    // edit-config refusals: nothing is stored.
    ctl(&cluster, &["edit-config", "-s", "ttl=soon", "--force"])
        .refused_with("invalid configuration: ")
        .has("-ttl: 3\n+ttl: soon\n");
    ctl(&cluster, &["edit-config", "-s", "loop_wait=10", "--force"])
        .refused_with("invalid configuration: ");
    ctl(&cluster, &["edit-config", "-s", "ttl", "--force"])
        .refused("Invalid parameter setting ttl");
    ctl(&cluster, &["edit-config", "--apply", "-"]).refused(
        "Use --force when the configuration comes from stdin: stdin cannot also answer the question",
    );
    ctl_with(&cluster, &["edit-config"], None, &[("EDITOR", "false")])
        .refused("Editor exited with return code 1");
    ctl(&cluster, &["edit-config", "-s", "loop_wait=2"]).refused(
        "Aborted: stdin ended before an answer to \"Apply these changes? [y/N]\" (answer on stdin, or give --force)",
    );
    assert_eq!(
        ctl(&cluster, &["edit-config", "-s", "ttl=3", "--force"])
            .ok()
            .out,
        "Not changed\n"
    );
    let declined = ctl_answering(
        &cluster,
        &["edit-config", "-s", "loop_wait=2", "-p", "work_mem=8MB"],
        "n\n",
    );
    declined
        .ok()
        .has("--- \n+++ \n@@ -1,8 +1,9 @@\n-loop_wait: 1\n+loop_wait: 2\n")
        .has("     wal_keep_size: 64MB\n+    work_mem: 8MB\n")
        .has("Apply these changes? [y/N]: n\n")
        .lacks("Configuration changed");
    assert_eq!(
        config(&client, &cluster).await,
        before,
        "a declined edit was stored"
    );

    // edit-config that applies: -s/-p, --apply FILE, --replace -, $EDITOR, -q.
    ctl_answering(
        &cluster,
        &["edit-config", "-s", "loop_wait=2", "-p", "work_mem=8MB"],
        "y\n",
    )
    .ok()
    .has("Apply these changes? [y/N]: y\nConfiguration changed\n");
    let now = config(&client, &cluster).await;
    assert_eq!(now["loop_wait"], 2);
    assert_eq!(now["postgresql"]["parameters"]["work_mem"], "8MB");
    assert_eq!(now["postgresql"]["parameters"]["wal_keep_size"], "64MB");
    let file = cluster.root.path().join("apply.yml");
    std::fs::write(
        &file,
        "loop_wait: 1\npostgresql:\n  parameters:\n    work_mem: null\n",
    )
    .unwrap();
    ctl(
        &cluster,
        &["edit-config", "--apply", file.to_str().unwrap(), "--force"],
    )
    .ok()
    .has("-loop_wait: 2\n+loop_wait: 1\n")
    .has("-    work_mem: 8MB\n")
    .has("Configuration changed\n");
    assert_eq!(config(&client, &cluster).await, before);
    let sed = "sed -i 's/^loop_wait: 1$/loop_wait: 2/'";
    ctl_with(
        &cluster,
        &["edit-config", "--force"],
        None,
        &[("EDITOR", sed)],
    )
    .ok()
    .has("-loop_wait: 1\n+loop_wait: 2\n");
    assert_eq!(config(&client, &cluster).await["loop_wait"], 2);
    ctl_with(
        &cluster,
        &["edit-config", "--replace", "-", "--force"],
        Some(&shown),
        &[],
    )
    .ok()
    .has("-loop_wait: 2\n+loop_wait: 1\n");
    assert_eq!(config(&client, &cluster).await, before);
    assert_eq!(
        ctl(
            &cluster,
            &["edit-config", "-q", "-s", "retry_timeout=0.6", "--force"]
        )
        .ok()
        .out,
        "Configuration changed\n"
    );
    // A change made while the editor is open aborts the edit; the other change stays.
    let meanwhile = format!(
        "{} --url {} edit-config -q -s retry_timeout=0.5 --force >/dev/null; {sed}",
        env!("CARGO_BIN_EXE_tribunectl"),
        replica.api()
    );
    ctl_with(
        &cluster,
        &["edit-config", "--force"],
        None,
        &[("EDITOR", &meanwhile)],
    )
    .refused("Config modification aborted due to concurrent changes");
    assert_eq!(config(&client, &cluster).await, before);

    // pause / resume, and what a paused cluster refuses.
    ctl(&cluster, &["resume"]).refused("Cluster is not paused");
    assert_eq!(
        ctl(&cluster, &["pause", "--wait"]).ok().out,
        "'pause' request sent, waiting until it is recognized by all nodes\nSuccess: cluster management is paused\n"
    );
    for node in &cluster.nodes {
        let doc = get_json(&client, &format!("{}/patroni", node.api()))
            .await
            .unwrap();
        assert_eq!(doc["pause"], true, "{} after pause --wait", node.name);
    }
    ctl(&cluster, &["list"])
        .ok()
        .has("+\n Maintenance mode: on\n");
    ctl(&cluster, &["pause"]).refused("Cluster is already paused");
    ctl(&cluster, &["switchover", "--force"]).refused(
        "Switchover failed, details: 400, Switchover is possible only to a specific candidate in a paused state",
    );
    ctl(
        &cluster,
        &[
            "switchover",
            "--candidate",
            &replica.name,
            "--scheduled",
            "2099-01-01T00:00Z",
            "--force",
        ],
    )
    .refused("Can't schedule switchover in the paused state");
    ctl(
        &cluster,
        &[
            "restart",
            "itest",
            "--scheduled",
            "2099-01-01T00:00Z",
            "--force",
        ],
    )
    .refused("Can't schedule restart in the paused state");
    assert_eq!(primary(&client, &cluster).await, Some(p));
    assert_eq!(
        ctl(&cluster, &["resume"]).ok().out,
        "Success: cluster management is resumed\n"
    );
    assert_eq!(config(&client, &cluster).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_restarts_reinitialises_and_switches_over() {
    let (client, cluster, p) = healthy_cluster().await;
    let (r1, r2) = ((p + 1) % 3, (p + 2) % 3);
    for r in [r1, r2] {
        wait_streaming_replica(&client, &cluster, r, "the replicas to stream").await;
    }
    let name = |i: usize| cluster.nodes[i].name.clone();
    let (leader, one, two) = (name(p), name(r1), name(r2));

    // Switchover and failover refusals: each prints the table, then one error; the leader stays.
    ctl(&cluster, &["switchover", "--leader", &one, "--force"])
        .refused(&format!("Member {one} is not the leader of cluster itest"))
        .has("Current cluster topology\n+ Cluster: itest (");
    for wrong in ["nobody", leader.as_str()] {
        ctl(&cluster, &["switchover", "--candidate", wrong, "--force"]).refused(&format!(
            "Member {wrong} does not exist in cluster itest or is tagged as nofailover"
        ));
    }
    ctl(&cluster, &["switchover"]).refused(&format!(
        "Aborted: stdin ended before an answer to \"Primary [{leader}]\" (answer on stdin, or give --force)"
    ));
    let mut candidates = [one.clone(), two.clone()];
    candidates.sort();
    let asked = ctl_answering(&cluster, &["switchover"], &format!("\n{one}\n\nn\n"));
    asked.refused("Aborting switchover").has(&format!(
        "Primary [{leader}]: \nCandidate ['{}', '{}'] []: {one}\nWhen should the switchover take place (e.g. ",
        candidates[0], candidates[1]
    ));
    asked.has(&format!(
        " ) [now]: \nAre you sure you want to switchover cluster itest, demoting current leader {leader}? [y/N]: n\n"
    ));
    ctl(
        &cluster,
        &["switchover", "--scheduled", "2020-01-01T00:00Z", "--force"],
    )
    .refused("Switchover failed, details: 422, Cannot schedule switchover in the past");
    ctl(&cluster, &["switchover", "--scheduled", "tomorrow", "--force"]).refused(
        "Unable to parse scheduled timestamp (tomorrow). It should be in an unambiguous format, e.g. ISO 8601",
    );
    ctl(&cluster, &["failover", "--force"])
        .refused("Failover could be performed only to a specific candidate");
    ctl(&cluster, &["failover", "--candidate", "nobody", "--force"])
        .refused("Member nobody does not exist in cluster itest or is tagged as nofailover");
    ctl(&cluster, &["failover"])
        .refused_with("Aborted: stdin ended before an answer to \"Candidate [");
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "a refusal moved the leader"
    );

    // A scheduled switchover, withdrawn with flush.
    assert_eq!(
        ctl(&cluster, &["flush", "itest", "switchover"]).ok().out,
        "No pending scheduled switchover\n"
    );
    ctl(
        &cluster,
        &[
            "switchover",
            "--candidate",
            &one,
            "--scheduled",
            "2099-01-01T00:00:00+00:00",
            "--force",
        ],
    )
    .ok()
    .has(" Switchover scheduled\n+ Cluster: itest (");
    assert_eq!(
        ctl(&cluster, &["flush", "itest", "switchover", "--force"])
            .ok()
            .out,
        "Success: scheduled switchover deleted\n"
    );
    assert_eq!(
        ctl(&cluster, &["flush", "itest", "switchover"]).ok().out,
        "No pending scheduled switchover\n"
    );

    // restart refusals: the database keeps running.
    let before = start_time(&client, &cluster.nodes[r1]).await;
    ctl(&cluster, &["restart", "itest", "node9", "--force"])
        .refused("node9 is not a member of cluster");
    ctl(
        &cluster,
        &["restart", "itest", "--pg-version", "10", "--force"],
    )
    .refused("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10");
    ctl(
        &cluster,
        &["restart", "itest", "-r", "standby-leader", "--force"],
    )
    .refused("no member of cluster itest has the role standby-leader");
    ctl(&cluster, &["restart", "itest", "--timeout", "0", "--force"]).usage_error();
    ctl_answering(&cluster, &["restart", "itest", &one], "\n\nn\n")
        .refused("Aborted restart")
        .has("When should the restart take place (e.g. ")
        .has(") [now]: \nRestart if the PostgreSQL version is less than provided (e.g. 9.5.2) []: \n")
        .has(&format!("Are you sure you want to restart members {one}? [y/N]: n\n"));
    assert_eq!(
        ctl(&cluster, &["restart", "itest", "--pending", "--force"])
            .ok()
            .out
            .lines()
            .last(),
        Some("No member of cluster itest has a pending restart")
    );
    assert_eq!(start_time(&client, &cluster.nodes[r1]).await, before);

    // restart now, one whose conditions do not hold, and scheduled ones withdrawn with flush.
    ctl(&cluster, &["restart", "itest", &one, "--force"])
        .ok()
        .has(&format!("+\nSuccess: restart on member {one}\n"));
    assert_ne!(
        start_time(&client, &cluster.nodes[r1]).await,
        before,
        "no restart happened"
    );
    wait_streaming_replica(&client, &cluster, r1, "the restarted replica to stream").await;
    ctl(&cluster, &["restart", "itest", &leader, "--pg-version", "9.6.1", "--force"])
        .refused(&format!("restart failed on 1 of 1 members: {leader}"))
        .has(&format!(
            "Failed: restart for member {leader}, status code=503, (restart conditions are not satisfied)\n"
        ));
    let mut replicas = [one.clone(), two.clone()];
    replicas.sort();
    ctl(
        &cluster,
        &[
            "restart",
            "itest",
            "-r",
            "replica",
            "--scheduled",
            "2099-01-01T00:00Z",
            "--force",
        ],
    )
    .ok()
    .has(&format!(
        "Success: restart scheduled on member {}\nSuccess: restart scheduled on member {}\n",
        replicas[0], replicas[1]
    ));
    ctl(
        &cluster,
        &[
            "restart",
            "itest",
            &one,
            "--scheduled",
            "2099-01-01T00:00Z",
            "--force",
        ],
    )
    .refused(&format!("restart failed on 1 of 1 members: {one}"))
    .has(&format!(
        "Failed: another restart is already scheduled on member {one}\n"
    ));
    ctl_answering(&cluster, &["flush", "itest", "restart"], "y\n")
        .ok()
        .has(&format!(
            "Success: flush scheduled restart for member {one}\n"
        ))
        .has(&format!(
            "Success: flush scheduled restart for member {two}\n"
        ))
        .has(&format!("No scheduled restart for member {leader}\n"));
    let any = ctl(
        &cluster,
        &[
            "restart",
            "itest",
            "--any",
            "--scheduled",
            "2099-01-01T00:00Z",
            "--force",
        ],
    )
    .ok()
    .out
    .clone();
    assert_eq!(
        any.matches("Success: restart scheduled on member ").count(),
        1,
        "{any}"
    );
    assert_eq!(
        ctl(&cluster, &["flush", "itest", "restart", "--force"])
            .ok()
            .out
            .matches("Success: flush scheduled restart for member ")
            .count(),
        1
    );

    // reinit: refused on the leader and without a member; a replica is cloned again.
    ctl(&cluster, &["reinit", "itest", &leader, "--force"])
        .refused(&format!("reinitialize failed on 1 of 1 members: {leader}"))
        .has(&format!(
            "Failed: reinitialize for member {leader}, status code=503, (I am the leader, can not reinitialize)\n"
        ));
    ctl(&cluster, &["reinit", "itest", "--force"])
        .refused("Name the members to reinitialize: reinit itest MEMBER...");
    ctl(&cluster, &["reinit", "itest", "nobody", "--force"])
        .refused("nobody is not a member of cluster");
    ctl_answering(&cluster, &["reinit", "itest"], &format!("{two}\nn\n"))
        .refused("Aborted reinitialize")
        .has(&format!(
            "Which member do you want to reinitialize [{}, {}]? []: {two}\n",
            replicas[0], replicas[1]
        ));
    ctl(&cluster, &["reinit", "itest", &two, "--force", "--wait"])
        .ok()
        .has(&format!(
            "Success: reinitialize for member {two}\nWaiting for reinitialize to complete on: {two}\n"
        ))
        .has(&format!("Reinitialize is completed on: {two}\n"));
    wait_streaming_replica(&client, &cluster, r2, "the reinitialised replica to stream").await;

    // A switchover answered on stdin, then a failover back: each prints the new table.
    let moved = ctl_answering(&cluster, &["switchover"], &format!("\n{one}\nnow\ny\n"));
    moved
        .ok()
        .has(&format!(" Successfully switched over to \"{one}\"\n"));
    let after = moved.out.rsplit("\"\n").next().unwrap_or_default();
    assert!(
        row(after, &one).contains("| Leader "),
        "{}",
        moved.context()
    );
    let primary_is = |i: usize| {
        let (client, cluster) = (&client, &cluster);
        async move { (primary(client, cluster).await == Some(i)).then_some(()) }
    };
    wait_for(
        Duration::from_secs(10),
        "the candidate to be primary",
        &cluster,
        || primary_is(r1),
    )
    .await;
    wait_streaming_replica(&client, &cluster, p, "the old primary to stream").await;
    ctl(&cluster, &["failover", "--candidate", &leader, "--force"])
        .ok()
        .has(&format!(" Successfully failed over to \"{leader}\"\n"));
    wait_for(
        Duration::from_secs(10),
        "the failover target to be primary",
        &cluster,
        || primary_is(p),
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "two timeline switches in /history",
        &cluster,
        || async {
            let history = get_json(&client, &format!("{}/history", cluster.nodes[p].api())).await?;
            (history.as_array()?.len() == 2).then_some(())
        },
    )
    .await;
    ctl(&cluster, &["history", "-f", "tsv"])
        .ok()
        .has("TL\tLSN\tReason\tTimestamp\tNew Leader\n1\t")
        .has(&format!("\t{one}\n2\t"))
        .has(&format!("\t{leader}\n"));
}

/// `reload` against `POST /reload`, which answers 202 `reload scheduled` (reference 1.12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_reload_asks_every_member() {
    let (client, cluster, p) = healthy_cluster().await;
    let leader = cluster.nodes[p].name.clone();
    ctl(&cluster, &["reload", "itest"]).refused_with(
        "Aborted: stdin ended before an answer to \"Are you sure you want to reload members ",
    );
    ctl_answering(&cluster, &["reload", "itest"], "n\n").refused("Aborted reload");
    let all = ctl(&cluster, &["reload", "itest", "--force"])
        .ok()
        .out
        .clone();
    for node in &cluster.nodes {
        let line = format!(
            "Reload request received for member {} and will be processed within 1 seconds\n",
            node.name
        );
        assert!(all.contains(&line), "{all}");
    }
    let one = ctl(&cluster, &["reload", "itest", "-r", "primary", "--force"])
        .ok()
        .out
        .clone();
    assert_eq!(one.matches("Reload request received").count(), 1, "{one}");
    assert!(one.contains(&format!("member {leader} ")), "{one}");
    ctl(&cluster, &["reload", "itest", "node9", "--force"])
        .refused("node9 is not a member of cluster");
    assert_eq!(primary(&client, &cluster).await, Some(p));
}

/// `remove` asks patronictl's three questions; each wrong answer refuses and changes nothing.
/// Once removed, no agent manages the databases: the primary keeps running, nobody is promoted
/// or bootstraps, and the cluster has no leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_remove_asks_three_times_then_leaves_the_databases_alone() {
    let (client, cluster, p) = healthy_cluster().await;
    let leader = cluster.nodes[p].name.clone();
    ctl_answering(&cluster, &["remove", "itest"], "other\n")
        .refused("Cluster names specified do not match");
    ctl_answering(&cluster, &["remove", "itest"], "itest\nyes\n")
        .refused("You did not exactly type \"Yes I am aware\"");
    ctl_answering(
        &cluster,
        &["remove", "itest"],
        "itest\nYes I am aware\nnobody\n",
    )
    .refused("You did not specify the current leader of the cluster");
    ctl(&cluster, &["remove", "itest"]).refused_with("");
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "a refusal changed the cluster"
    );
    // The server checks the names again.
    let answer = client
        .delete(format!("{}/cluster", cluster.nodes[p].api()))
        .json(&serde_json::json!({"scope": "itest", "leader": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);

    let answers = format!("itest\nYes I am aware\n{leader}\n");
    ctl_answering(&cluster, &["remove", "itest"], &answers)
        .ok()
        .has("Please confirm the cluster name to remove")
        .has("Cluster itest removed");
    wait_for(
        Duration::from_secs(10),
        "the removal on every member",
        &cluster,
        || async {
            for node in &cluster.nodes {
                let doc = get_json(&client, &format!("{}/cluster", node.api())).await?;
                let leaders = doc["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["role"] == "leader")
                    .count();
                (leaders == 0).then_some(())?;
            }
            Some(())
        },
    )
    .await;
    // Left alone: the old primary's server still accepts writes, the standbys stay standbys.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let pg = connect(&cluster.nodes[p])
        .await
        .expect("the old primary still runs");
    let in_recovery: bool = pg
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!in_recovery);
    for i in (0..3).filter(|i| *i != p) {
        let pg = connect(&cluster.nodes[i])
            .await
            .expect("a standby still runs");
        let in_recovery: bool = pg
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            in_recovery,
            "{} was promoted after the removal",
            cluster.nodes[i].name
        );
    }
    ctl_answering(&cluster, &["remove", "itest"], "itest\nYes I am aware\n")
        .refused_with("Remove failed, details: 409");
}
