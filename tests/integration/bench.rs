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
        let mut cluster = Cluster::new(
            3,
            Options {
                synchronous_mode: "true",
                agent_auth: agent_auth(),
                ..Options::default()
            },
        );
        cluster.start_all();
        let primary = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
            primary(client, &cluster).await
        })
        .await;
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
            "all replicas streaming",
            &self.cluster,
            || async {
                for node in &self.cluster.nodes {
                    let doc = get_json(client, &format!("{}/patroni", node.api())).await?;
                    if doc["role"] != "primary" && doc["replication_state"] != "streaming" {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    }

    /// Stop the workload; (acknowledged writes, how many of them the final primary lacks).
    async fn finish(self) -> (Cluster, usize, usize) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.stop.cancel();
        let _ = self.writer.await;
        let acked: BTreeSet<i64> = self
            .acks
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _, _)| *id)
            .collect();
        let present: BTreeSet<i64> = ids(&self.cluster.nodes[self.primary])
            .await
            .unwrap()
            .into_iter()
            .collect();
        let lost = acked.difference(&present).count();
        (self.cluster, acked.len(), lost)
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
    let (_cluster, acked, lost) = load.finish().await;
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
    let (cluster, acked, lost) = load.finish().await;
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
