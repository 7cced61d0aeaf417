//! Benchmarks, ignored in the normal test run and started by `scripts/bench-*.sh`: repeated
//! crashes (`bench-failover.sh`) and switchovers (`bench-switchover.sh`) under a write
//! workload, and an idle cluster on busy cores (`bench-idle.sh`). Figures are printed, never
//! asserted: speed is shown, not tested.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::*;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// `TRIBUNE_BENCH_RUNS`, 20 by default.
fn runs() -> usize {
    std::env::var("TRIBUNE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// The database the benchmarks run on: `TRIBUNE_BENCH_ENGINE=opengauss` takes openGauss's
/// programs from `TRIBUNE_OPENGAUSS_BIN` (default: the 6.0.2 build `scripts/setup.sh` unpacks)
/// and runs them as `TRIBUNE_OPENGAUSS_USER` (default `omm`); anything else is PostgreSQL.
fn bench_database() -> Database {
    match std::env::var("TRIBUNE_BENCH_ENGINE").as_deref() {
        Ok("opengauss") => Database::OpenGauss {
            bin_dir: std::env::var_os("TRIBUNE_OPENGAUSS_BIN")
                .map_or_else(|| "/opt/tribune/opengauss/6.0.2/bin".into(), Into::into),
            user: std::env::var("TRIBUNE_OPENGAUSS_USER").unwrap_or_else(|_| "omm".into()),
        },
        Ok("postgres") | Err(_) => Database::Postgres,
        Ok(other) => panic!("TRIBUNE_BENCH_ENGINE={other:?}: postgres or opengauss"),
    }
}

/// The default cluster (synchronous mode on) with the write workload running.
struct Loaded {
    cluster: Cluster,
    primary: usize,
    acks: Acks,
    stop: tokio_util::sync::CancellationToken,
    writer: tokio::task::JoinHandle<()>,
}

/// `TRIBUNE_BENCH_AGENT_TLS`: `1` runs the agents with mutual TLS (certificates), `password`
/// with `raft.password`; otherwise without peer authentication.
fn agent_auth() -> AgentAuth {
    match std::env::var("TRIBUNE_BENCH_AGENT_TLS").as_deref() {
        Ok("1") | Ok("certificates") => AgentAuth::Certificates,
        Ok("password") => AgentAuth::Password("bench-raft-password"),
        _ => AgentAuth::Open,
    }
}

impl Loaded {
    async fn start(client: &reqwest::Client) -> Loaded {
        let database = bench_database();
        println!("engine: {database:?}");
        let started = Instant::now();
        let mut cluster = Cluster::new(
            3,
            Options {
                synchronous_mode: "true",
                database,
                agent_auth: agent_auth(),
                ..Options::default()
            },
        );
        cluster.start_all();
        let primary = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
            primary(client, &cluster).await
        })
        .await;
        println!(
            "bootstrap: three members, a primary after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        connect(&cluster.nodes[primary])
            .await
            .unwrap()
            .batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
            .await
            .unwrap();
        let acks: Acks = Default::default();
        let stop = tokio_util::sync::CancellationToken::new();
        let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
        let writer = tokio::spawn(writer(conninfos, acks.clone(), stop.clone()));
        Loaded {
            cluster,
            primary,
            acks,
            stop,
            writer,
        }
    }

    /// Every member healthy (the standbys streaming) before the next fault.
    async fn wait_all_streaming(&self, client: &reqwest::Client) {
        wait_for(
            Duration::from_secs(60),
            "all replicas streaming and a synchronous standby",
            &self.cluster,
            || async {
                for node in &self.cluster.nodes {
                    let doc = get_json(client, &format!("{}/patroni", node.api())).await?;
                    // A member whose database is down reports the role of its last record (a
                    // crashed primary's stays "primary", as in Patroni): it must run too.
                    let serving = doc["state"] == "running"
                        && (doc["role"] == "primary" || doc["replication_state"] == "streaming");
                    if !serving {
                        return None;
                    }
                }
                // And a synchronous standby recorded: without one, a crash of the primary is
                // not failed over (its acknowledged commits would be on no standby).
                let doc =
                    get_json(client, &format!("{}/cluster", self.cluster.nodes[0].api())).await?;
                doc["members"]
                    .as_array()?
                    .iter()
                    .any(|m| m["role"] == "sync_standby")
                    .then_some(())?;
                Some(())
            },
        )
        .await;
    }

    /// Stop the workload; (acknowledged writes, how many of them the primary lacks). The
    /// primary is asked for again at the end: a failover after the last run (a false one, on a
    /// loaded machine) must not make a lagging standby's rows count as the cluster's. Lost
    /// writes are described by the member that acknowledged them and when.
    async fn finish(self, client: &reqwest::Client) -> (Cluster, usize, usize) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.stop.cancel();
        let _ = self.writer.await;
        let primary = wait_for(
            Duration::from_secs(30),
            "a primary at the end",
            &self.cluster,
            || async { primary(client, &self.cluster).await },
        )
        .await;
        if primary != self.primary {
            println!(
                "the primary at the end is {}, not {} (a failover after the last run)",
                self.cluster.nodes[primary].name, self.cluster.nodes[self.primary].name
            );
        }
        let acks = self.acks.lock().unwrap().clone();
        let acked: BTreeSet<i64> = acks.iter().map(|(id, _, _)| *id).collect();
        let present: BTreeSet<i64> = ids(&self.cluster.nodes[primary])
            .await
            .unwrap()
            .into_iter()
            .collect();
        let lost: Vec<&(i64, Instant, usize)> = acks
            .iter()
            .filter(|(id, _, _)| !present.contains(id))
            .collect();
        if let (Some(first), Some(last)) = (lost.first(), lost.last()) {
            let start = acks.first().map_or(first.1, |a| a.1);
            println!(
                "LOST: {} acknowledged writes, ids {}..{}, acknowledged by {:?} between {:.2}s and {:.2}s into the run",
                lost.len(),
                first.0,
                last.0,
                lost.iter()
                    .map(|(_, _, n)| self.cluster.nodes[*n].name.as_str())
                    .collect::<BTreeSet<_>>(),
                first.1.duration_since(start).as_secs_f64(),
                last.1.duration_since(start).as_secs_f64(),
            );
        }
        (self.cluster, acked.len(), lost.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-failover.sh"]
async fn bench_crash_failover() {
    let runs = runs();
    let client = http_client();
    // Tribune's default settings: ttl 3, loop_wait 1, retry_timeout 0.5, synchronous_mode on.
    let mut load = Loaded::start(&client).await;
    let mut gaps = Vec::new();
    for run in 1..=runs {
        load.wait_all_streaming(&client).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let p = load.primary;
        let crashed_at = Instant::now();
        load.cluster.crash(p);
        let first = wait_for(
            Duration::from_secs(60),
            "a write after the crash",
            &load.cluster,
            || async {
                // An insert in flight on the crashed member may still be acknowledged just
                // after the kill: only a write on another member ends the unavailability.
                first_ack_elsewhere(&load.acks, crashed_at, p).map(|(t, _)| t)
            },
        )
        .await;
        let gap = first.duration_since(crashed_at).as_secs_f64();
        let np = wait_for(
            Duration::from_secs(10),
            "the new primary's /primary",
            &load.cluster,
            || async { primary(&client, &load.cluster).await },
        )
        .await;
        println!(
            "run {run:2}: {} crashed, {} accepted writes again after {gap:.2}s",
            load.cluster.nodes[p].name, load.cluster.nodes[np].name
        );
        gaps.push(gap);
        load.cluster.start(p);
        load.primary = np;
    }
    let (_cluster, acked, lost) = load.finish(&client).await;
    gaps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "crash failover over {runs} runs (default settings: ttl 3 s, synchronous_mode on; agents: {:?}): median {:.2}s, p95 {:.2}s, max {:.2}s; {acked} acknowledged writes, {lost} lost",
        agent_auth(),
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.95),
        gaps.last().unwrap(),
    );
}

/// Planned switchover benchmark (run by `scripts/bench-switchover.sh`, ignored in the normal
/// test run): repeated `POST /switchover` under the write workload, sent to a member that is not
/// the primary. Prints each run's write unavailability (last write acknowledged by the old
/// primary to the first acknowledged by the new one), its median, p95 and max, the acknowledged
/// writes lost, and the median wall time of `tribunectl list`. Nothing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-switchover.sh"]
async fn bench_switchover() {
    let runs = runs();
    let client = http_client();
    let mut load = Loaded::start(&client).await;
    let mut gaps = Vec::new();
    for run in 1..=runs {
        load.wait_all_streaming(&client).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let p = load.primary;
        let nodes = &load.cluster.nodes;
        let (candidate, via) = ((p + 1) % 3, (p + 2) % 3);
        let asked = Instant::now();
        let answer = client
            .post(format!("{}/switchover", nodes[via].api()))
            .timeout(Duration::from_secs(40))
            .json(&serde_json::json!({"leader": nodes[p].name, "candidate": nodes[candidate].name}))
            .send()
            .await
            .expect("POST /switchover");
        let answered = asked.elapsed().as_secs_f64();
        let code = answer.status().as_u16();
        let text = answer.text().await.unwrap_or_default();
        let (first, np) = wait_for(
            Duration::from_secs(60),
            "a write on the new primary",
            &load.cluster,
            || async { first_ack_elsewhere(&load.acks, asked, p) },
        )
        .await;
        let last_old = load
            .acks
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t, node)| *node == p && *t < first)
            .map(|(_, t, _)| *t)
            .max()
            .unwrap_or(asked);
        let gap = first.duration_since(last_old).as_secs_f64();
        println!(
            "run {run:2}: {} -> {}: answered {code} ({text}) after {answered:.2}s; no write acknowledged for {gap:.3}s",
            nodes[p].name, nodes[np].name,
        );
        gaps.push(gap);
        load.primary = np;
    }
    let primary = load.primary;
    let (cluster, acked, lost) = load.finish(&client).await;
    gaps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "switchover over {runs} runs (default settings, synchronous_mode on): write unavailability median {:.3}s, p95 {:.3}s, max {:.3}s; {acked} acknowledged writes, {lost} lost",
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.95),
        gaps.last().unwrap(),
    );

    let mut walls = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
            .args(["--url", &cluster.nodes[(primary + 1) % 3].api(), "list"])
            .output()
            .expect("run tribunectl");
        walls.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(out.status.success(), "tribunectl list failed");
    }
    walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "tribunectl list: median {:.1} ms over {} runs",
        percentile(&walls, 0.5),
        walls.len()
    );
}

/// No false failover on a loaded machine (run by `scripts/bench-idle.sh`): a cluster with the
/// default settings sits idle for `TRIBUNE_IDLE_SECONDS` (600) while stress-ng keeps both cores
/// busy. Prints the failovers (leader changes) and self-fencings seen; asserts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-idle.sh"]
async fn bench_idle_under_cpu_stress() {
    let seconds: u64 = std::env::var("TRIBUNE_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let client = http_client();
    let (cluster, p) = default_cluster(&client).await;
    let mut stress = std::process::Command::new("stress-ng")
        .args(["--cpu", "2", "--timeout", &format!("{seconds}s"), "--quiet"])
        .spawn()
        .expect("run stress-ng (scripts/bench-idle.sh installs it)");
    let started = Instant::now();
    let mut leader_changes = 0;
    let mut unanswered = 0;
    let mut current = p;
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match primary(&client, &cluster).await {
            Some(now) if now != current => {
                leader_changes += 1;
                println!(
                    "{:>4.0}s: the primary changed from {} to {}",
                    started.elapsed().as_secs_f64(),
                    cluster.nodes[current].name,
                    cluster.nodes[now].name
                );
                current = now;
            }
            Some(_) => {}
            None => unanswered += 1,
        }
    }
    let _ = stress.kill();
    let _ = stress.wait();
    let fences: usize = cluster
        .nodes
        .iter()
        .map(|n| {
            std::fs::read_to_string(n.log())
                .unwrap_or_default()
                .matches("the leader lease lapsed")
                .count()
        })
        .sum();
    let history = get_json(
        &client,
        &format!("{}/history", cluster.nodes[current].api()),
    )
    .await
    .map_or(0, |h| h.as_array().map_or(0, Vec::len));
    println!(
        "idle {seconds}s with both cores busy: {leader_changes} primary changes, {history} timeline switches, \
         {fences} self-fencings, {unanswered} of {} probes without a primary",
        seconds * 2
    );
}
