//! The upgrade benchmark (`scripts/bench-upgrade.sh`), ignored in the normal test run: a fresh
//! three-node cluster on the suite's PostgreSQL per run, filled to `TRIBUNE_BENCH_UPGRADE_MB`,
//! upgraded to `TRIBUNE_PG_UPGRADE_BIN` with `tribunectl upgrade` under the write workload.
//! Each run prints the database size, the write unavailability (the longest time without an
//! acknowledged write while the upgrade ran: the primary's clean stop, pg_upgrade, the new
//! server's start) and the total time; then the medians. Figures are printed, never asserted.

use std::time::{Duration, Instant};

use crate::faults::loaded_cluster_with;
use crate::harness::*;
use crate::upgrade::{longest_gap, major, new_bin_dir, new_major, tribunectl, wait_all_on};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-upgrade.sh"]
async fn bench_upgrade() {
    let runs: usize = std::env::var("TRIBUNE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let fill_mb: u64 = std::env::var("TRIBUNE_BENCH_UPGRADE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let new_bin = new_bin_dir().display().to_string();
    let (mut gaps, mut totals) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let (client, cluster, p, acks, stop, writer) =
            loaded_cluster_with(false, Database::Postgres).await;
        let from = major(&client, &cluster, p).await.unwrap_or_default();
        let pg = connect(&cluster.nodes[p])
            .await
            .expect("connect to the primary");
        // About 1 kB per row.
        pg.batch_execute(&format!(
            "CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 31) AS pad \
             FROM generate_series(1, {}) AS g",
            fill_mb * 1000
        ))
        .await
        .expect("fill the database");
        let size: i64 = pg
            .query_one(
                "SELECT sum(pg_database_size(datname))::bigint FROM pg_database",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        drop(pg);
        wait_all_on(&client, &cluster, from).await;
        let started = Instant::now();
        let (ok, out) = tribunectl(&cluster, &["upgrade", "--bin-dir", &new_bin, "--force"])
            .await
            .unwrap();
        let finished = Instant::now();
        assert!(ok, "run {run}: {out}");
        wait_all_on(&client, &cluster, new_major()).await;
        let gap = longest_gap(&acks, started, finished).as_secs_f64();
        let total = finished.duration_since(started).as_secs_f64();
        stop.cancel();
        let _ = writer.await;
        println!(
            "run {run}: database {} MB, PostgreSQL {from} -> {new_bin}: no write acknowledged \
             for {gap:.2} s, upgrade done in {total:.1} s",
            size >> 20
        );
        gaps.push(gap);
        totals.push(total);
        drop(cluster);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "upgrade over {runs} runs ({fill_mb} MB filled): write unavailability median {:.2} s \
         (max {:.2} s), total time median {:.1} s",
        median(gaps.clone()),
        gaps.iter().copied().fold(0.0, f64::max),
        median(totals)
    );
}
