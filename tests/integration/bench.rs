//! Failover benchmark (run by `scripts/bench-failover.sh`, ignored in the normal test run):
//! repeated whole-node crashes (kill -9 of the primary's agent and postmaster) under a write
//! workload. Prints the write unavailability of each crash (fault to first acknowledged write
//! on the new primary), its median, p95 and max, and the number of acknowledged writes lost.
//! Figures are printed, never asserted: speed is shown, not tested.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;

/// Acknowledged ids with the time of their acknowledgement and the member that acknowledged.
type Acks = Arc<Mutex<Vec<(i64, Instant, usize)>>>;

/// Insert increasing ids into whichever member accepts them until `stop`.
async fn writer(nodes: Vec<String>, acks: Acks, stop: tokio_util::sync::CancellationToken) {
    let mut id: i64 = 1_000_000;
    let mut current = 0usize;
    let mut client: Option<tokio_postgres::Client> = None;
    while !stop.is_cancelled() {
        id += 1;
        if client.is_none() {
            for k in 0..nodes.len() {
                let i = (current + k) % nodes.len();
                if let Ok((c, conn)) =
                    tokio_postgres::connect(&nodes[i], tokio_postgres::NoTls).await
                {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    // Only a writable member keeps the connection.
                    let writable = c
                        .query_one("SELECT NOT pg_is_in_recovery()", &[])
                        .await
                        .map(|r| r.get::<_, bool>(0))
                        .unwrap_or(false);
                    if writable {
                        current = i;
                        client = Some(c);
                        break;
                    }
                }
            }
        }
        let Some(c) = &client else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
        let fut = c.execute("INSERT INTO acked(id) VALUES ($1)", &params);
        match tokio::time::timeout(Duration::from_secs(2), fut).await {
            Ok(Ok(1)) => acks.lock().unwrap().push((id, Instant::now(), current)),
            _ => {
                client = None;
                current += 1;
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-failover.sh"]
async fn bench_crash_failover() {
    let runs: usize = std::env::var("TRIBUNE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let client = http_client();
    let mut cluster = Cluster::new(3, Options::default());
    cluster.start_all();
    let mut p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(&client, &cluster).await
    })
    .await;
    let pg = connect(&cluster.nodes[p]).await.unwrap();
    pg.batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    drop(pg);

    let acks: Acks = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let w = tokio::spawn(writer(conninfos, acks.clone(), stop.clone()));

    let mut gaps = Vec::new();
    for run in 1..=runs {
        // Every member healthy and the workload flowing before the fault.
        wait_for(
            Duration::from_secs(60),
            "all replicas streaming",
            &cluster,
            || async {
                for node in &cluster.nodes {
                    let doc = get_json(&client, &format!("{}/patroni", node.api())).await?;
                    if doc["role"] != "primary" && doc["replication_state"] != "streaming" {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let crashed_at = Instant::now();
        cluster.crash(p);
        let first = wait_for(
            Duration::from_secs(60),
            "a write after the crash",
            &cluster,
            || async {
                // An insert in flight on the crashed member may still be acknowledged just
                // after the kill: only a write on another member ends the unavailability.
                acks.lock()
                    .unwrap()
                    .iter()
                    .find(|(_, t, node)| *t > crashed_at && *node != p)
                    .map(|(_, t, _)| *t)
            },
        )
        .await;
        let gap = first.duration_since(crashed_at).as_secs_f64();
        let np = wait_for(
            Duration::from_secs(10),
            "the new primary's /primary",
            &cluster,
            || async { primary(&client, &cluster).await },
        )
        .await;
        println!(
            "run {run:2}: {} crashed, {} accepted writes again after {gap:.2}s",
            cluster.nodes[p].name, cluster.nodes[np].name
        );
        gaps.push(gap);
        cluster.start(p);
        p = np;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let _ = w.await;

    let acked: BTreeSet<i64> = acks.lock().unwrap().iter().map(|(id, _, _)| *id).collect();
    let present: BTreeSet<i64> = ids(&cluster.nodes[p]).await.unwrap().into_iter().collect();
    let lost = acked.difference(&present).count();
    gaps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "crash failover over {runs} runs (asynchronous replication): median {:.2}s, p95 {:.2}s, max {:.2}s; {} acknowledged writes, {lost} lost",
        percentile(&gaps, 0.5),
        percentile(&gaps, 0.95),
        gaps.last().unwrap(),
        acked.len()
    );
}
