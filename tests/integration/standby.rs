//! A standby cluster on real PostgreSQL: cluster B replicates the primary of cluster A. B's
//! lease holder is a standby leader (REST codes, role, metric, `tribunectl list`), every B
//! member receives what is written on A; a switchover and a crash of B's standby leader hand
//! the role on while A's rows keep arriving; `tribunectl promote-cluster` makes B's leader a
//! writable primary that B's other members follow. Demoting a running cluster is refused.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{BOOTSTRAP_DEADLINE, create_table, wait_healthy, wait_rows};
use crate::harness::*;

/// The base backup of A, then B's own clones: more than a plain bootstrap.
const STANDBY_BOOTSTRAP: Duration = Duration::from_secs(150);
const HANDOVER: Duration = Duration::from_secs(60);

/// `tribunectl ARGS` against `cluster`'s members: exit code, stdout, stderr.
fn ctl(cluster: &Cluster, args: &[&str]) -> (Option<i32>, String, String) {
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("EDITOR")
        .env("HOME", "/nonexistent")
        .env("TRIBUNECTL_URL", urls.join(","))
        .args(args)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("run tribunectl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The index of the member whose `/standby-leader` answers 200, if exactly one does.
async fn standby_leader(client: &reqwest::Client, cluster: &Cluster) -> Option<usize> {
    let mut found = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        if status_code(client, &format!("{}/standby-leader", node.api())).await == Some(200) {
            found.push(i);
        }
    }
    assert!(found.len() <= 1, "two standby leaders: {found:?}");
    found.first().copied()
}

/// Wait until a standby leader runs and every other live member streams from it.
async fn wait_standby_healthy(
    client: &reqwest::Client,
    cluster: &Cluster,
    live: &[usize],
    limit: Duration,
    what: &str,
) -> usize {
    wait_for(limit, what, cluster, || async {
        let sl = standby_leader(client, cluster).await?;
        for &i in live.iter().filter(|i| **i != sl) {
            let doc = get_json(client, &format!("{}/patroni", cluster.nodes[i].api())).await?;
            if doc["role"] != "replica" || doc["replication_state"] != "streaming" {
                return None;
            }
        }
        Some(sl)
    })
    .await
}

/// Write `id` on A's primary and wait until each of B's `members` holds every id in `acked`.
async fn write_on_a_and_see_on_b(
    a: &Cluster,
    pa: usize,
    b: &Cluster,
    members: &[usize],
    acked: &mut Vec<i64>,
    id: i64,
) {
    assert!(insert(&a.nodes[pa], id).await, "insert {id} on A's primary");
    acked.push(id);
    for &i in members {
        wait_rows(b, i, acked, Duration::from_secs(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_cluster_replicates_fails_over_switches_over_and_is_promoted() {
    let client = http_client();

    // Cluster A: a normal two-member cluster, asynchronous.
    let mut a = Cluster::new(
        2,
        Options {
            scope: "alpha",
            name_prefix: "a",
            first_ip: 11,
            ..Options::default()
        },
    );
    a.start_all();
    let pa = wait_healthy(&client, &a, BOOTSTRAP_DEADLINE).await;
    create_table(&a.nodes[pa]).await;
    let mut acked = Vec::new();
    assert!(insert(&a.nodes[pa], 1).await);
    acked.push(1);

    // Cluster B: three members, a standby cluster of A's primary, on other addresses.
    let remote = (a.nodes[pa].ip.clone(), a.nodes[pa].pg_port);
    let mut b = Cluster::new(
        3,
        Options {
            scope: "beta",
            name_prefix: "b",
            first_ip: 21,
            extra_dcs: format!(
                "    standby_cluster:\n      host: {}\n      port: {}\n",
                remote.0, remote.1
            ),
            ..Options::default()
        },
    );
    b.start_all();
    let all = [0, 1, 2];
    let sl = wait_standby_healthy(
        &client,
        &b,
        &all,
        STANDBY_BOOTSTRAP,
        "B's standby leader and two streaming replicas",
    )
    .await;
    let leader_api = b.nodes[sl].api();

    // The standby leader's REST answers, as Patroni's matrix has them.
    for (path, want) in [
        ("/standby-leader", 200),
        ("/standby_leader", 200),
        ("/leader", 200),
        ("/primary", 503),
        ("/", 503),
        ("/read-write", 503),
        ("/replica", 503),
        ("/read-only", 200),
        ("/read-only-sync", 200),
        ("/read-only-quorum", 200),
        ("/health", 200),
    ] {
        assert_eq!(
            status_code(&client, &format!("{leader_api}{path}")).await,
            Some(want),
            "{path} on B's standby leader"
        );
    }
    let replica = (sl + 1) % 3;
    for (path, want) in [
        ("/replica", 200),
        ("/standby-leader", 503),
        ("/leader", 503),
    ] {
        assert_eq!(
            status_code(&client, &format!("{}{path}", b.nodes[replica].api())).await,
            Some(want),
            "{path} on a replica of B"
        );
    }
    let doc = get_json(&client, &format!("{leader_api}/patroni"))
        .await
        .unwrap();
    assert_eq!(doc["role"], "standby_leader", "{doc}");
    assert_eq!(doc["replication_state"], "streaming", "{doc}");
    let cluster_doc = get_json(&client, &format!("{leader_api}/cluster"))
        .await
        .unwrap();
    let me = cluster_doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == b.nodes[sl].name.as_str())
        .unwrap()
        .clone();
    assert_eq!(me["role"], "standby_leader", "{cluster_doc}");
    assert_eq!(me["state"], "streaming", "{cluster_doc}");
    let metrics = get_text(&client, &format!("{leader_api}/metrics"))
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "patroni_standby_leader"), Some(1.0));
    assert_eq!(metric(&metrics, "patroni_primary"), Some(0.0));
    let (code, out, err) = ctl(&b, &["list", "beta"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("| Standby Leader |"), "{out}");
    // B's database is A's: same system identifier, and nothing in B accepts a write.
    let a_sysid = get_json(&client, &format!("{}/patroni", a.nodes[pa].api()))
        .await
        .unwrap()["database_system_identifier"]
        .clone();
    assert_eq!(doc["database_system_identifier"], a_sysid);
    assert!(
        !insert(&b.nodes[sl], 9_999).await,
        "B's standby leader took a write"
    );

    // A row written on A reaches every B member (the replicas through the standby leader).
    write_on_a_and_see_on_b(&a, pa, &b, &all, &mut acked, 2).await;

    // Switchover inside B: the standby leader role moves, A's rows keep arriving.
    let candidate = (sl + 1) % 3;
    let (code, out, err) = ctl(
        &b,
        &[
            "switchover",
            "beta",
            "--leader",
            &b.nodes[sl].name,
            "--candidate",
            &b.nodes[candidate].name,
            "--force",
        ],
    );
    assert_eq!(code, Some(0), "switchover: {out}{err}");
    let sl2 = wait_standby_healthy(
        &client,
        &b,
        &all,
        HANDOVER,
        "the switchover candidate as standby leader, the others streaming from it",
    )
    .await;
    assert_eq!(sl2, candidate, "the switchover went to the candidate");
    write_on_a_and_see_on_b(&a, pa, &b, &all, &mut acked, 3).await;

    // Failover inside B: crash the standby leader's host; another member takes the role and
    // repoints itself at A instead of promoting.
    b.crash(sl2);
    let live: Vec<usize> = all.iter().copied().filter(|i| *i != sl2).collect();
    let sl3 = wait_standby_healthy(
        &client,
        &b,
        &live,
        HANDOVER,
        "another member of B as standby leader after the crash",
    )
    .await;
    assert_ne!(sl3, sl2);
    assert_eq!(
        status_code(&client, &format!("{}/primary", b.nodes[sl3].api())).await,
        Some(503),
        "the new standby leader must not be a primary"
    );
    write_on_a_and_see_on_b(&a, pa, &b, &live, &mut acked, 4).await;

    // The crashed member comes back as a replica of the new standby leader.
    b.start(sl2);
    let sl4 =
        wait_standby_healthy(&client, &b, &all, HANDOVER, "the crashed member to rejoin").await;
    assert_eq!(sl4, sl3);
    write_on_a_and_see_on_b(&a, pa, &b, &all, &mut acked, 5).await;

    // Neither a bad standby_cluster nor a demotion of A is stored.
    let patch = |url: String, body: Value| {
        let client = client.clone();
        async move {
            let r = client.patch(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (code, text) = patch(
        format!("{}/config", b.nodes[sl3].api()),
        json!({"standby_cluster": {"host": "127.0.0.1", "port": 70000}}),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("standby_cluster.port"), "{text}");
    let (code, text) = patch(
        format!("{}/config", a.nodes[pa].api()),
        json!({"standby_cluster": {"host": "127.0.0.1", "port": 5432}}),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("not supported"), "{text}");
    let (code, _, err) = ctl(
        &a,
        &[
            "demote-cluster",
            "alpha",
            "--host",
            "127.0.0.1",
            "--port",
            "5432",
            "--force",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("not supported"), "{err}");
    let config = get_json(&client, &format!("{}/config", a.nodes[pa].api()))
        .await
        .unwrap();
    assert!(config.get("standby_cluster").is_none(), "{config}");

    // promote-cluster (PATCH {"standby_cluster": null}): B's leader becomes a writable
    // primary and B's other members follow it.
    let (code, out, err) = ctl(&b, &["promote-cluster", "beta", "--force"]);
    assert_eq!(code, Some(0), "promote-cluster: {out}{err}");
    assert!(out.contains("Success: cluster beta was promoted"), "{out}");
    let pb = wait_healthy(&client, &b, HANDOVER).await;
    assert_eq!(pb, sl3, "the standby leader is the one promoted");
    let doc = get_json(&client, &format!("{}/patroni", b.nodes[pb].api()))
        .await
        .unwrap();
    assert_eq!(doc["role"], "primary", "{doc}");
    assert_eq!(
        status_code(&client, &format!("{}/standby-leader", b.nodes[pb].api())).await,
        Some(503)
    );
    assert!(
        insert(&b.nodes[pb], 500).await,
        "B's new primary takes a write"
    );
    let mut on_b = acked.clone();
    on_b.push(500);
    for i in all {
        wait_rows(&b, i, &on_b, Duration::from_secs(30)).await;
    }
}
