//! The PostgreSQL scenarios on real openGauss: bootstrap of three nodes, replication, a crash of
//! the primary's host with no acknowledged row lost and the generation as the new primary's
//! term, the old primary's rejoin through `gs_ctl build`, and a crash in quorum-commit mode
//! under a write workload.
//!
//! They run only where openGauss is installed: `TRIBUNE_OPENGAUSS_BIN` names the directory of
//! its programs (`gs_ctl`, `gs_initdb`, `gaussdb`, `pg_controldata`), and, when the tests run
//! as root, `TRIBUNE_OPENGAUSS_USER` (default `omm`) the OS user to run it as (openGauss refuses
//! root). Otherwise each test prints why it was skipped and passes (`--nocapture` shows it).
//! A planned switchover is not among them: the `Instance` trait has no switchover yet (the
//! PostgreSQL suite has none either).
//!
//! Not run where this was written: openGauss cannot be installed on those machines.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::{
    BOOTSTRAP_DEADLINE, FAILOVER_DEADLINE, crash_and_fail_over, crash_in_synchronous_mode,
    create_table, other_of, rejoin_after_failover, wait_healthy, wait_rows,
};
use crate::harness::*;

/// Why a test of this file is ignored when built without openGauss.
const NEEDS_OPENGAUSS: &str = "needs openGauss: build and run the tests with \
    TRIBUNE_OPENGAUSS_BIN=<the directory of gs_ctl, gs_initdb, gaussdb, pg_controldata> \
    (scripts/test.sh does, after scripts/setup.sh unpacked the shared builds)";

/// The openGauss to test against: `TRIBUNE_OPENGAUSS_BIN` as the tests run, else as they were
/// built. Built for openGauss, a test never passes without it: a missing program or OS user
/// fails the test, naming what is missing.
fn opengauss() -> Database {
    let dir = std::env::var_os("TRIBUNE_OPENGAUSS_BIN")
        .or_else(|| option_env!("TRIBUNE_OPENGAUSS_BIN").map(Into::into))
        .unwrap_or_else(|| panic!("{NEEDS_OPENGAUSS}"));
    let bin_dir = PathBuf::from(dir);
    let missing: Vec<&str> = ["gs_ctl", "gs_initdb", "gaussdb", "pg_controldata"]
        .into_iter()
        .filter(|p| !bin_dir.join(p).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "TRIBUNE_OPENGAUSS_BIN={} lacks {}",
        bin_dir.display(),
        missing.join(", ")
    );
    let user = std::env::var("TRIBUNE_OPENGAUSS_USER").unwrap_or_else(|_| "omm".into());
    assert!(
        !nix::unistd::geteuid().is_root()
            || nix::unistd::User::from_name(&user).ok().flatten().is_some(),
        "the tests run as root and openGauss refuses root, but there is no OS user {user} to \
         run it as (scripts/setup.sh creates omm; TRIBUNE_OPENGAUSS_USER names another)"
    );
    Database::OpenGauss { bin_dir, user }
}

/// The term openGauss reports on `node` (`pg_last_xlog_replay_location()`).
async fn term(node: &Node) -> Option<u64> {
    let client = connect(node).await?;
    let row = client
        .query_one(
            "SELECT term::bigint FROM pg_catalog.pg_last_xlog_replay_location()",
            &[],
        )
        .await
        .ok()?;
    u64::try_from(row.get::<_, i64>(0)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_opengauss),
    ignore = "needs openGauss: TRIBUNE_OPENGAUSS_BIN names its programs when the tests are built (scripts/test.sh sets it)"
)]
async fn opengauss_three_nodes_bootstrap_replicate_fail_over_and_rejoin() {
    let database = opengauss();
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            database,
            ..Options::default()
        },
    );
    let started = Instant::now();
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE * 2).await;
    println!(
        "bootstrap: primary {} and both standbys streaming after {:.1}s",
        cluster.nodes[p].name,
        started.elapsed().as_secs_f64()
    );

    // The REST API reports openGauss members with PostgreSQL's fields; the version is the one
    // openGauss reports (its PostgreSQL base, 9.2.4).
    for node in &cluster.nodes {
        let doc = get_json(&client, &format!("{}/patroni", node.api()))
            .await
            .unwrap();
        let version = doc["server_version"].as_u64().unwrap_or(0);
        assert!(version >= 90204, "{}: {doc}", node.name);
        assert!(doc["timeline"].as_u64().is_some(), "{}: {doc}", node.name);
    }

    create_table(&cluster.nodes[p]).await;
    let mut acked = Vec::new();
    for id in 1..=50 {
        assert!(insert(&cluster.nodes[p], id).await, "insert {id}");
        acked.push(id);
    }
    for i in (0..3).filter(|i| *i != p) {
        wait_rows(&cluster, i, &acked, Duration::from_secs(30)).await;
    }
    let term_before = term(&cluster.nodes[p]).await.unwrap_or(0);

    // Crash the primary's host.
    let np = crash_and_fail_over(&mut cluster, p, &mut acked, FAILOVER_DEADLINE * 2).await;
    let got = ids(&cluster.nodes[np]).await.unwrap();
    for id in &acked {
        assert!(got.contains(id), "acknowledged id {id} lost on failover");
    }
    // gs_ctl failover -T <generation>: the new primary's term is above the old one's, so a
    // standby never streams from the old primary again.
    let term_after = term(&cluster.nodes[np]).await.unwrap_or(0);
    assert!(
        term_after > term_before,
        "term {term_after} after the failover, {term_before} before"
    );

    // The other standby follows the new primary; the old primary comes back as its standby,
    // through gs_ctl build.
    let other = other_of(np, p);
    let log = rejoin_after_failover(
        &client,
        &mut cluster,
        (p, np, other),
        &mut acked,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        log.contains(" build -D ") && log.contains("-b incremental"),
        "the old primary did not rejoin through gs_ctl build"
    );
}

/// Quorum commit (`ANY 1` of both standbys) on openGauss: the same scenario as on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_opengauss),
    ignore = "needs openGauss: TRIBUNE_OPENGAUSS_BIN names its programs when the tests are built (scripts/test.sh sets it)"
)]
async fn opengauss_quorum_commit_loses_no_acknowledged_write_in_a_crash() {
    let database = opengauss();
    crash_in_synchronous_mode("quorum", database).await;
}
