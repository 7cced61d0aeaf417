//! Standbys that heal themselves, and the tags that say where a standby streams and copies
//! from: `remove_data_directory_on_diverged_timelines` (a standby holding WAL the new primary
//! never had is cloned again, or held stopped for an operator), `replicatefrom` (cascading,
//! back to the primary while the named member is gone) and `clonefrom` (the source of a new
//! replica's base backup).

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Member `i`'s configuration with `lines` added to its `postgresql` section and `tags`.
fn configure(cluster: &Cluster, i: usize, postgresql: &str, tags: &str) {
    let postgresql = postgresql.to_owned();
    let tags = tags.to_owned();
    cluster.edit_config(i, move |text| {
        let text = text.replacen(
            "  pg_ctl_timeout: 30\n",
            &format!("  pg_ctl_timeout: 30\n{postgresql}"),
            1,
        );
        format!("{text}\ntags:\n{tags}")
    });
}

/// The port of the server member `i`'s WAL receiver streams from, while it streams.
async fn sender_port(node: &Node) -> Option<u16> {
    let client = connect(node).await?;
    let row = client
        .query_opt(
            "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'",
            &[],
        )
        .await
        .ok()??;
    let port: Option<i32> = row.get(0);
    port.and_then(|p| u16::try_from(p).ok())
}

async fn wait_sender(cluster: &Cluster, i: usize, from: usize, what: &str) {
    let port = cluster.nodes[from].pg_port;
    wait_for(Duration::from_secs(30), what, cluster, || async {
        (sender_port(&cluster.nodes[i]).await == Some(port)).then_some(())
    })
    .await;
}

/// Member `i`'s entry in `GET /cluster` (asked of member `via`).
async fn cluster_entry(client: &reqwest::Client, cluster: &Cluster, via: usize, i: usize) -> Value {
    let doc = get_json(client, &format!("{}/cluster", cluster.nodes[via].api()))
        .await
        .unwrap_or(Value::Null);
    doc["members"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["name"] == cluster.nodes[i].name.as_str())
                .cloned()
        })
        .unwrap_or(Value::Null)
}

fn log_of(cluster: &Cluster, i: usize) -> String {
    std::fs::read_to_string(cluster.nodes[i].log()).unwrap_or_default()
}

/// `tribunectl topology` through every member's REST URL.
fn topology(cluster: &Cluster) -> String {
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env("HOME", "/nonexistent")
        .env("TRIBUNECTL_URL", urls.join(","))
        .arg("topology")
        .output()
        .expect("run tribunectl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two `nofailover` standbys replayed WAL the promoted member never received (its replication
/// was cut by hand, so the primary's last commits reached only them), then the primary crashed.
/// Neither can follow the new timeline and neither may be rewound (`use_pg_rewind: false`):
/// the one with `remove_data_directory_on_diverged_timelines: true` is cloned again by itself;
/// the other (Patroni's default, false) is stopped and stays stopped, saying why, until an
/// operator reinitialises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_standby_is_cloned_again_or_held_for_an_operator_as_its_setting_says() {
    let client = http_client();
    let mut cluster = Cluster::new(
        4,
        Options {
            synchronous_mode: "false",
            ..Options::default()
        },
    );
    let (heals, held) = (2, 3);
    configure(
        &cluster,
        heals,
        "  use_pg_rewind: false\n  remove_data_directory_on_diverged_timelines: true\n",
        "  nofailover: true\n",
    );
    configure(
        &cluster,
        held,
        "  use_pg_rewind: false\n",
        "  nofailover: true\n",
    );
    cluster.start_all();
    // Only node0 and node1 may bootstrap (the others are nofailover).
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || {
        primary(&client, &cluster)
    })
    .await;
    let a = 1 - p;
    for i in [a, heals, held] {
        wait_streaming_replica(&client, &cluster, i, "every standby streaming").await;
    }
    let pg = connect(&cluster.nodes[p]).await.unwrap();
    pg.batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    assert!(insert(&cluster.nodes[p], 1).await, "a first write");
    wait_for(
        Duration::from_secs(10),
        "the first write on a",
        &cluster,
        || async {
            ids(&cluster.nodes[a])
                .await
                .filter(|ids| ids.contains(&1))
                .map(|_| ())
        },
    )
    .await;

    // The future primary stops receiving; the last commits reach only the other two.
    cluster.break_replication(a).await;
    wait_for(
        Duration::from_secs(10),
        "a to stop streaming",
        &cluster,
        || async { sender_port(&cluster.nodes[a]).await.is_none().then_some(()) },
    )
    .await;
    for id in 2..6 {
        assert!(insert(&cluster.nodes[p], id).await, "write {id}");
    }
    for i in [heals, held] {
        wait_for(
            Duration::from_secs(10),
            "the last write replayed",
            &cluster,
            || async {
                ids(&cluster.nodes[i])
                    .await
                    .filter(|ids| ids.contains(&5))
                    .map(|_| ())
            },
        )
        .await;
    }

    cluster.crash(p);
    let np = wait_for(Duration::from_secs(30), "a new primary", &cluster, || {
        primary(&client, &cluster)
    })
    .await;
    assert_eq!(np, a, "only a may be promoted");
    cluster.repair_replication(a).await;

    // Cloned again, with no operator: it holds what the new primary holds, no more.
    wait_streaming_replica(
        &client,
        &cluster,
        heals,
        "the standby allowed to be re-cloned",
    )
    .await;
    let present = ids(&cluster.nodes[a]).await.unwrap();
    assert_eq!(present, vec![1]);
    assert_eq!(ids(&cluster.nodes[heals]).await.unwrap(), present);
    assert!(
        log_of(&cluster, heals).contains("re-creating the replica from leader"),
        "{}",
        cluster.log_tail(heals, 30)
    );

    // Held: stopped, and the log says why and what to do.
    let held_api = format!("{}/patroni", cluster.nodes[held].api());
    wait_for(
        Duration::from_secs(30),
        "the held standby stopped",
        &cluster,
        || async {
            let doc = get_json(&client, &held_api).await?;
            (doc["state"] == "stopped").then_some(())
        },
    )
    .await;
    let log = log_of(&cluster, held);
    assert!(
        log.contains("remove_data_directory_on_diverged_timelines are off")
            && log.contains("tribunectl reinit"),
        "{}",
        cluster.log_tail(held, 30)
    );
    assert!(!log.contains("re-creating the replica"), "{log}");
    // Still stopped after ticks of its loop (the reason is logged again on every change only).
    assert_eq!(
        get_json(&client, &held_api).await.unwrap()["state"],
        "stopped"
    );

    // The operator's reinit clones it.
    let answer = client
        .post(format!("{}/reinitialize", cluster.nodes[held].api()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    wait_streaming_replica(&client, &cluster, held, "the held standby reinitialised").await;
    assert_eq!(ids(&cluster.nodes[held]).await.unwrap(), present);
}

/// node1 is tagged `clonefrom`, node2 `replicatefrom: node1`: node2's base backup comes from
/// node1, and it streams from node1; while node1 is down it streams from the primary, and
/// returns to node1 once node1 streams again. `/cluster` and `tribunectl topology` show the
/// tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_clones_from_the_clonefrom_member_and_cascades_from_its_replicatefrom() {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "false",
            ..Options::default()
        },
    );
    let (p, middle, leaf) = (0, 1, 2);
    // nofailover: only node0 may bootstrap.
    configure(
        &cluster,
        middle,
        "",
        "  nofailover: true\n  clonefrom: true\n",
    );
    configure(
        &cluster,
        leaf,
        "  proxy_address: 127.0.0.1:6432\n",
        "  nofailover: true\n  replicatefrom: node1\n",
    );
    cluster.start_all();
    wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        (primary(&client, &cluster).await == Some(p)).then_some(())
    })
    .await;
    wait_streaming_replica(&client, &cluster, middle, "node1 streaming").await;
    wait_sender(&cluster, leaf, middle, "node2 streaming from node1").await;

    // A new copy of node2 (an operator's reinit) is taken from node1, the clonefrom member.
    // (Its first copy may come from the leader: an agent that has just joined decides on the
    // state it has applied so far.)
    let answer = client
        .post(format!("{}/reinitialize", cluster.nodes[leaf].api()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let from_middle = format!(
        "-h {} -p {} -U replicator",
        cluster.nodes[middle].ip, cluster.nodes[middle].pg_port
    );
    wait_for(
        Duration::from_secs(30),
        "node2 cloned from node1",
        &cluster,
        || async {
            let log = log_of(&cluster, leaf);
            let after = &log[log.rfind("reinitializing")?..];
            (after.contains("creating replica from member (node1), tagged clonefrom")
                && after.contains(&from_middle))
            .then_some(())
        },
    )
    .await;
    wait_sender(&cluster, leaf, middle, "node2 streaming from node1 again").await;

    // The tree, as /cluster and topology show it; the proxy in the record.
    wait_for(
        Duration::from_secs(10),
        "node2's upstream reported",
        &cluster,
        || async {
            let entry = cluster_entry(&client, &cluster, p, leaf).await;
            (entry["upstream"] == "node1").then_some(entry)
        },
    )
    .await;
    let entry = cluster_entry(&client, &cluster, p, leaf).await;
    assert_eq!(entry["proxy_url"], "postgres://127.0.0.1:6432/postgres");
    let tree = topology(&cluster);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .map(str::trim_end)
        .filter(|n| n.contains("node"))
        .collect();
    assert_eq!(names, ["node0", "+ node1", "  + node2"], "{tree}");

    // node1 gone: node2 streams from the primary meanwhile, then returns.
    cluster.stop(middle);
    wait_sender(&cluster, leaf, p, "node2 streaming from the primary").await;
    assert!(insert_table(&cluster, p).await);
    cluster.start(middle);
    wait_sender(&cluster, leaf, middle, "node2 back on node1").await;
}

/// A table and one acknowledged row on member `p`.
async fn insert_table(cluster: &Cluster, p: usize) -> bool {
    let pg = connect(&cluster.nodes[p]).await.unwrap();
    pg.batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    insert(&cluster.nodes[p], 1).await
}

/// A `nostream` standby (Patroni 4.0.3) has no WAL receiver and no slot on the primary: it
/// replays what `restore_command` fetches from the primary's archive, and reports `in archive
/// recovery`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nostream_standby_replays_the_archive_without_streaming() {
    let client = http_client();
    let mut cluster = Cluster::new(
        2,
        Options {
            synchronous_mode: "false",
            ..Options::default()
        },
    );
    let archive = cluster.nodes[0].dir.parent().unwrap().join("archive");
    std::fs::create_dir(&archive).unwrap();
    std::fs::set_permissions(
        &archive,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let archiving = format!(
        "    shared_buffers: 16MB\n    archive_mode: 'on'\n    archive_command: 'cp %p {a}/%f'\n    \
         restore_command: 'cp {a}/%f %p'\n",
        a = archive.display()
    );
    for i in 0..2 {
        let archiving = archiving.clone();
        cluster.edit_config(i, move |t| {
            t.replacen("    shared_buffers: 16MB\n", &archiving, 1)
        });
    }
    configure(&cluster, 1, "", "  nofailover: true\n  nostream: true\n");
    cluster.start_all();
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(&client, &cluster).await.filter(|p| *p == 0)
    })
    .await;
    let standby_api = format!("{}/patroni", cluster.nodes[1].api());
    wait_for(
        Duration::from_secs(60),
        "the nostream standby running",
        &cluster,
        || async {
            let doc = get_json(&client, &standby_api).await?;
            (doc["role"] == "replica" && doc["replication_state"] == "in archive recovery")
                .then_some(())
        },
    )
    .await;

    let pg = connect(&cluster.nodes[p]).await.unwrap();
    pg.batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    assert!(insert(&cluster.nodes[p], 1).await);
    pg.batch_execute("SELECT pg_switch_wal()").await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "the row replayed from the archive",
        &cluster,
        || async {
            ids(&cluster.nodes[1])
                .await
                .filter(|ids| ids.contains(&1))
                .map(|_| ())
        },
    )
    .await;
    assert_eq!(sender_port(&cluster.nodes[1]).await, None, "it streams");
    let senders: i64 = pg
        .query_one("SELECT count(*) FROM pg_stat_replication", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(senders, 0, "the primary sends WAL to someone");
    let slots: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&cluster.nodes[1].name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "a slot for a member that never streams");
    let entry = cluster_entry(&client, &cluster, p, 1).await;
    assert_eq!(entry["state"], "in archive recovery", "{entry}");
}
