//! The PostgreSQL suite's scenarios on real openGauss (6.0.2 in CI; 7.0.0-RC2 too when asked):
//! bootstrap, `tribunectl list` and `version`, replication, a crash of the primary's host with
//! no acknowledged row lost and the generation as the new primary's term, the old primary's
//! rejoin by `gs_ctl build` (incremental, then full when its WAL is gone), synchronous, quorum
//! and strict modes under writes, standbys fencing a primary whose agent froze, a planned
//! switchover under writes, Patroni's health endpoints, and a real HAProxy through a crash, a
//! pause and a switchover.
//!
//! They are built only with `TRIBUNE_OPENGAUSS_BIN` naming the directory of openGauss's
//! programs (`scripts/test.sh` sets it when `scripts/setup.sh` unpacked the shared builds);
//! otherwise they are compiled as ignored tests that say what they need. Run as root (CI does):
//! openGauss refuses root, so its servers run as `TRIBUNE_OPENGAUSS_USER` (default `omm`), and
//! the members get addresses of their own on the loopback interface (see the harness).

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

/// A test of openGauss: built for openGauss, or ignored with what it needs (`ignore` takes
/// only a literal, hence one macro for the attributes).
macro_rules! opengauss_test {
    ($(#[$doc:meta])* async fn $name:ident() $body:block) => {
        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(
            not(tribune_opengauss),
            ignore = "needs openGauss: TRIBUNE_OPENGAUSS_BIN names its programs when the tests are built (scripts/test.sh sets it)"
        )]
        async fn $name() $body
    };
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

/// `tribunectl` (the built binary) against the cluster; its standard output.
fn tribunectl(cluster: &Cluster, args: &[&str]) -> String {
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args(["--url", &urls.join(",")])
        .args(args)
        .output()
        .expect("run tribunectl");
    assert!(
        out.status.success(),
        "tribunectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster's generation as `/metrics` reports it on member `i`.
async fn generation(client: &reqwest::Client, cluster: &Cluster, i: usize) -> Option<u64> {
    let text = get_text(client, &format!("{}/metrics", cluster.nodes[i].api())).await?;
    metric(&text, "tribune_generation").map(|g| g as u64)
}

/// What member `i`'s agent logged after the first `from` bytes of its log, without the
/// terminal colours around its fields.
fn log_since(cluster: &Cluster, i: usize, from: usize) -> String {
    let log = std::fs::read_to_string(cluster.nodes[i].log()).unwrap_or_default();
    let mut plain = String::new();
    let mut chars = log.get(from..).unwrap_or_default().chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn log_len(cluster: &Cluster, i: usize) -> usize {
    std::fs::metadata(cluster.nodes[i].log()).map_or(0, |m| m.len() as usize)
}

opengauss_test! {
    /// Three openGauss members: bootstrap, `tribunectl list` and `version`, the status document,
    /// replication; a crash of the primary's host, the new primary's term being the cluster's
    /// generation; the old primary's rejoin by `gs_ctl build -b incremental`; a second crash after
    /// which the former primary's WAL is gone, so its incremental build fails and a full one (its
    /// directory set aside) brings it back.
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
        let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
        println!(
            "bootstrap: primary {} and both standbys streaming after {:.1}s",
            cluster.nodes[p].name,
            started.elapsed().as_secs_f64()
        );

        // patronictl's table: the leader running, both replicas streaming; the version is
        // openGauss's own, not its PostgreSQL base.
        let list = tribunectl(&cluster, &["list"]);
        for (i, node) in cluster.nodes.iter().enumerate() {
            let row = list
                .lines()
                .find(|l| l.contains(&format!("| {} ", node.name)))
                .unwrap_or_else(|| panic!("{} is not listed:\n{list}", node.name));
            let expected = if i == p {
                "| Leader  | running "
            } else {
                "| Replica | streaming "
            };
            assert!(row.contains(expected), "{row}\n{list}");
        }
        let version = tribunectl(&cluster, &["version", &cluster.scope]);
        for node in &cluster.nodes {
            assert!(
                version
                    .lines()
                    .any(|l| l.starts_with(&format!("{}: Tribune ", node.name))
                        && l.contains(" openGauss ")),
                "{version}"
            );
        }
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
        let np = crash_and_fail_over(&mut cluster, p, &mut acked, FAILOVER_DEADLINE).await;
        let got = ids(&cluster.nodes[np]).await.unwrap();
        for id in &acked {
            assert!(got.contains(id), "acknowledged id {id} lost on failover");
        }
        // gs_ctl failover -T <generation>: the new primary's term is the cluster's generation,
        // above the old one's, so a standby never streams from the old primary again.
        let term_after = term(&cluster.nodes[np]).await.unwrap_or(0);
        assert!(
            term_after > term_before,
            "term {term_after} after the failover, {term_before} before"
        );
        assert_eq!(
            generation(&client, &cluster, np).await,
            Some(term_after),
            "the new primary's term is the cluster's generation"
        );

        // The other standby follows the new primary; the old primary comes back as its standby,
        // through an incremental build.
        let other = other_of(np, p);
        let from = log_len(&cluster, p);
        rejoin_after_failover(
            &client,
            &mut cluster,
            (p, np, other),
            &mut acked,
            Duration::from_secs(60),
        )
        .await;
        let rejoined = log_since(&cluster, p, from);
        let incremental = format!(
            "gs_ctl build finished source={} mode=Incremental",
            cluster.nodes[np].name
        );
        assert!(
            rejoined.contains(&incremental) && !rejoined.contains("mode=Full"),
            "the old primary did not rejoin through an incremental build:\n{rejoined}"
        );

        // Crash the new primary; its WAL is gone when it comes back, so an incremental build
        // cannot find where it diverged: it is copied afresh, its directory set aside.
        let nnp = crash_and_fail_over(&mut cluster, np, &mut acked, FAILOVER_DEADLINE).await;
        let xlog = cluster.nodes[np].data_dir().join("pg_xlog");
        for entry in std::fs::read_dir(&xlog).unwrap().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        let from = log_len(&cluster, np);
        rejoin_after_failover(
            &client,
            &mut cluster,
            (np, nnp, other_of(np, nnp)),
            &mut acked,
            Duration::from_secs(90),
        )
        .await;
        let rejoined = log_since(&cluster, np, from);
        let full = format!(
            "gs_ctl build finished source={} mode=Full",
            cluster.nodes[nnp].name
        );
        assert!(
            rejoined.contains("action=Rewind") && rejoined.contains(&full),
            "the former primary was not copied afresh after its incremental build failed:\n{rejoined}"
        );
        let got = ids(&cluster.nodes[nnp]).await.unwrap();
        for id in &acked {
            assert!(got.contains(id), "acknowledged id {id} lost");
        }
    }
}

opengauss_test! {
    /// Quorum commit (`ANY 1` of both standbys) on openGauss: the same scenario as on PostgreSQL.
    async fn opengauss_quorum_commit_loses_no_acknowledged_write_in_a_crash() {
        let database = opengauss();
        crash_in_synchronous_mode("quorum", database).await;
    }
}

opengauss_test! {
    /// Synchronous mode (`FIRST 1`) on openGauss: a crash of the primary's host under writes loses
    /// no acknowledged write and promotes the synchronous standby.
    async fn opengauss_synchronous_mode_loses_no_acknowledged_write_in_a_crash() {
        crash_in_synchronous_mode("true", opengauss()).await;
    }
}

opengauss_test! {
    /// The primary's agent frozen past `ttl` under writes: the standbys fence its openGauss over SQL
    /// (as the replication administrator) before one of them is promoted.
    async fn opengauss_a_frozen_primary_agent_is_fenced_before_another_member_is_promoted() {
        crate::faults::frozen_primary_agent_is_fenced(opengauss()).await;
    }
}

opengauss_test! {
    /// Strict synchronous mode on openGauss (`most_available_sync` stays off; the agent manages the
    /// names): a lost synchronous standby is replaced, and with none replicating commits block.
    async fn opengauss_strict_mode_replaces_a_lost_synchronous_standby_and_blocks_without_one() {
        crate::faults::strict_mode_replaces_and_blocks(opengauss()).await;
    }
}

opengauss_test! {
    /// A planned switchover on openGauss under writes, through a member that is not the primary:
    /// checkpoint, clean stop, the target checked to have replayed past the shutdown checkpoint,
    /// the lease handed over, `gs_ctl failover -T <generation>` on the target.
    async fn opengauss_a_switchover_hands_over_without_losing_a_write() {
        let (client, cluster, p, acks, stop, writer) =
            crate::faults::loaded_cluster_with(false, opengauss()).await;
        let term_before = term(&cluster.nodes[p]).await.expect("the primary's term");
        crate::control::switch_over_under_writes(&client, &cluster, p, (acks, stop, writer)).await;
        let np = primary(&client, &cluster).await.expect("a primary");
        let term_after = term(&cluster.nodes[np])
            .await
            .expect("the new primary's term");
        assert!(
            term_after > term_before,
            "term {term_after} after the switchover, {term_before} before"
        );
    }
}

opengauss_test! {
    /// A real HAProxy in front of openGauss: its ports reach the primary and the standbys, and
    /// follow a crash of the primary's host.
    async fn opengauss_haproxy_reaches_the_primary_and_standbys_and_follows_a_failover() {
        crate::haproxy::haproxy_follows_a_failover(opengauss()).await;
    }
}

opengauss_test! {
    /// HAProxy in front of openGauss in pause: the health endpoints answer as Patroni's, and a
    /// switchover moves the primary port.
    async fn opengauss_haproxy_follows_a_switchover_and_a_paused_cluster() {
        crate::haproxy::haproxy_follows_a_switchover_in_pause(opengauss()).await;
    }
}

opengauss_test! {
    /// Patroni's health endpoints and documents for each role of an openGauss cluster in
    /// synchronous mode, with the `engine` field naming openGauss's version.
    async fn opengauss_endpoints_answer_as_patroni_for_each_role() {
        crate::rest::endpoints_answer_as_patroni(opengauss()).await;
    }
}
