//! A major-version upgrade of a running cluster with one command (`tribunectl upgrade`), under
//! the write workload, from the PostgreSQL the suite runs (Debian's 15) to the one named by
//! `TRIBUNE_PG_UPGRADE_BIN` when the tests are built (PostgreSQL 18 in scripts/test.sh; without
//! it the test is compiled as ignored, saying what it needs).
//!
//! One cluster goes through: two refusals that change nothing; an upgrade whose primary's agent
//! is killed while pg_upgrade runs (before the point of no return: it rolls back on its own,
//! the old version runs again and another member is failed over to); then an upgrade whose
//! primary's agent is killed while the standbys are copied (past the point of no return: the
//! restarted agent finishes it). Afterwards every member runs the new version and streams,
//! and every acknowledged write is on every member.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cluster::wait_healthy;
use crate::faults::loaded_cluster_with;
use crate::harness::*;

/// The PostgreSQL to upgrade to: `TRIBUNE_PG_UPGRADE_BIN` as the tests run, else as they were
/// built.
pub fn new_bin_dir() -> PathBuf {
    let dir = std::env::var_os("TRIBUNE_PG_UPGRADE_BIN")
        .or_else(|| option_env!("TRIBUNE_PG_UPGRADE_BIN").map(Into::into))
        .expect("TRIBUNE_PG_UPGRADE_BIN names the PostgreSQL to upgrade to");
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("pg_upgrade").is_file(),
        "TRIBUNE_PG_UPGRADE_BIN={} has no pg_upgrade",
        dir.display()
    );
    dir
}

/// The major version of the PostgreSQL to upgrade to (`postgres -V`).
pub fn new_major() -> u64 {
    let out = std::process::Command::new(new_bin_dir().join("postgres"))
        .arg("-V")
        .output()
        .expect("postgres -V");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().last().unwrap_or_default();
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("postgres -V printed {text:?}"))
}

/// `tribunectl --url <every member> ARGS`, run in a task of its own: its exit status and what
/// it printed.
pub fn tribunectl(cluster: &Cluster, args: &[&str]) -> tokio::task::JoinHandle<(bool, String)> {
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::spawn(run_tribunectl(urls.join(","), args))
}

async fn run_tribunectl(urls: String, args: Vec<String>) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args(["--url", &urls])
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run tribunectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `/cluster` as member `i` answers it.
pub async fn cluster_doc(
    client: &reqwest::Client,
    cluster: &Cluster,
    i: usize,
) -> serde_json::Value {
    get_json(client, &format!("{}/cluster", cluster.nodes[i].api()))
        .await
        .unwrap_or_default()
}

/// The major version member `i`'s server runs (`/patroni`), once it runs.
pub async fn major(client: &reqwest::Client, cluster: &Cluster, i: usize) -> Option<u64> {
    let doc = get_json(client, &format!("{}/patroni", cluster.nodes[i].api())).await?;
    (doc["state"] == "running").then(|| doc["server_version"].as_u64().map(|v| v / 10_000))?
}

/// Wait until some member shows the upgrade in `phase`; the primary it names.
pub async fn wait_phase(client: &reqwest::Client, cluster: &Cluster, phase: &str) -> usize {
    let name = wait_for(
        Duration::from_secs(120),
        &format!("the upgrade's phase {phase}"),
        cluster,
        || async {
            for i in 0..cluster.nodes.len() {
                let doc = cluster_doc(client, cluster, i).await;
                if doc["upgrade"]["phase"] == phase {
                    return doc["upgrade"]["primary"].as_str().map(str::to_owned);
                }
            }
            None
        },
    )
    .await;
    cluster.nodes.iter().position(|n| n.name == name).unwrap()
}

/// Every member runs `major` and every standby streams; the primary.
pub async fn wait_all_on(client: &reqwest::Client, cluster: &Cluster, major_version: u64) -> usize {
    let p = wait_healthy(client, cluster, Duration::from_secs(180)).await;
    wait_for(
        Duration::from_secs(60),
        &format!("every member on PostgreSQL {major_version}"),
        cluster,
        || async {
            for i in 0..cluster.nodes.len() {
                if major(client, cluster, i).await != Some(major_version) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    p
}

/// Every acknowledged write so far is on member `i`.
async fn holds_every_ack(cluster: &Cluster, acks: &Acks, i: usize) {
    let expected: Vec<i64> = acks.lock().unwrap().iter().map(|(id, _, _)| *id).collect();
    crate::cluster::wait_rows(cluster, i, &expected, Duration::from_secs(60)).await;
}

/// The longest time without an acknowledged write between `from` and `to`.
pub fn longest_gap(acks: &Acks, from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = acks
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t, _)| *t)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    times.sort();
    times.push(to);
    let mut last = from;
    let mut gap = Duration::ZERO;
    for t in times {
        gap = gap.max(t.saturating_duration_since(last));
        last = t;
    }
    gap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_pg_upgrade),
    ignore = "needs a newer PostgreSQL: TRIBUNE_PG_UPGRADE_BIN names its programs when the tests are built (scripts/test.sh sets it to PostgreSQL 18)"
)]
async fn a_cluster_under_writes_is_upgraded_with_one_command_even_when_an_agent_dies_mid_way() {
    let new_bin = new_bin_dir();
    let new_bin_text = new_bin.display().to_string();
    let (client, mut cluster, p, acks, stop, writer) =
        loaded_cluster_with(false, Database::Postgres).await;
    let old_major = major(&client, &cluster, p)
        .await
        .expect("the primary's version");
    let new_major = new_major();
    assert!(
        new_major > old_major,
        "the suite runs PostgreSQL {old_major}; TRIBUNE_PG_UPGRADE_BIN must be newer, not {new_major}"
    );
    let sysid = cluster_doc(&client, &cluster, p).await["database_system_identifier"].clone();

    // Refusals: the running version's own programs, and a directory without them. Each says
    // why, and changes nothing: same system, same primary, no pause, writes go on.
    let old_bin = std::fs::read_link(format!(
        "/proc/{}/exe",
        cluster.nodes[p].postmaster_pid().unwrap()
    ))
    .expect("the postmaster's program")
    .parent()
    .unwrap()
    .display()
    .to_string();
    for (bin, why) in [
        (old_bin.as_str(), "not newer than the running"),
        ("/nonexistent/bin", "lacks postgres"),
    ] {
        let (ok, out) = tribunectl(&cluster, &["upgrade", "--bin-dir", bin, "--force"])
            .await
            .unwrap();
        assert!(!ok, "an upgrade to {bin} was not refused: {out}");
        assert!(
            out.contains("Upgrade refused, nothing was changed") && out.contains(why),
            "{out}"
        );
        let doc = cluster_doc(&client, &cluster, p).await;
        assert_eq!(doc["database_system_identifier"], sysid);
        assert_eq!(doc["last_upgrade"]["result"], "refused", "{doc}");
        assert!(doc["pause"].is_null() && doc["upgrade"].is_null(), "{doc}");
        assert_eq!(primary(&client, &cluster).await, Some(p));
    }
    let before = Instant::now();
    wait_for_writes_after(
        &acks,
        before,
        Duration::from_secs(10),
        "writes after the refusals",
        &cluster,
    )
    .await;

    // 1. The primary's agent dies while pg_upgrade runs: before the point of no return.
    let args = ["upgrade", "--bin-dir", new_bin_text.as_str(), "--force"];
    let mut command = tribunectl(&cluster, &args);
    let killed = tokio::select! {
        done = &mut command => panic!("the upgrade ended before pg_upgrade ran: {done:?}"),
        up = wait_phase(&client, &cluster, "upgrading") => up,
    };
    assert_eq!(killed, p);
    cluster.signal_agent(p, Signal::SIGKILL);
    let _ = cluster.nodes[p].child.take().map(|mut c| c.wait());
    // Well past ttl and a Raft election: the Raft leader rolls the upgrade back and the lease
    // ends, so another member is promoted on the old version.
    tokio::time::sleep(Duration::from_secs(10)).await;
    cluster.start(p);
    let (ok, out) = command.await.unwrap();
    assert!(!ok && out.contains("Upgrade rolled back"), "{out}");
    assert!(out.contains("stopped renewing its lease"), "{out}");
    let p = wait_all_on(&client, &cluster, old_major).await;
    let doc = cluster_doc(&client, &cluster, p).await;
    assert_eq!(doc["last_upgrade"]["result"], "rolled_back", "{doc}");
    assert_eq!(
        doc["database_system_identifier"], sysid,
        "the old system runs again"
    );
    for i in 0..cluster.nodes.len() {
        holds_every_ack(&cluster, &acks, i).await;
    }

    // 2. The upgrade again; the primary's agent dies while the standbys are copied.
    let started = Instant::now();
    let mut command = tribunectl(&cluster, &args);
    let primary_then = tokio::select! {
        done = &mut command => panic!("the upgrade ended before its standbys were copied: {done:?}"),
        up = wait_phase(&client, &cluster, "rebuilding") => up,
    };
    assert_eq!(primary_then, p);
    cluster.signal_agent(p, Signal::SIGKILL);
    let _ = cluster.nodes[p].child.take().map(|mut c| c.wait());
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.start(p);
    let (ok, out) = command.await.unwrap();
    assert!(
        ok,
        "the upgrade did not finish: {out}\n{}",
        cluster.dump_logs()
    );
    assert!(
        out.contains("Success") && out.contains("past the point of no return"),
        "{out}"
    );
    let finished = Instant::now();
    let p = wait_all_on(&client, &cluster, new_major).await;
    let doc = cluster_doc(&client, &cluster, p).await;
    assert_eq!(doc["last_upgrade"]["result"], "upgraded", "{doc}");
    assert!(
        doc["pause"].is_null(),
        "the pause ends with the upgrade: {doc}"
    );
    assert_ne!(
        doc["database_system_identifier"], sysid,
        "pg_upgrade made a new system"
    );
    wait_for_writes_after(
        &acks,
        finished,
        Duration::from_secs(20),
        "writes on the new version",
        &cluster,
    )
    .await;
    eprintln!(
        "upgrade to {new_major}: {:.1} s in all, longest time without an acknowledged write {:.2} s",
        finished.duration_since(started).as_secs_f64(),
        longest_gap(&acks, started, finished).as_secs_f64()
    );
    crate::faults::check_history(&cluster, p, &acks, stop, writer).await;
    for i in 0..cluster.nodes.len() {
        holds_every_ack(&cluster, &acks, i).await;
    }
}
