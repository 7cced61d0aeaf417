//! Multi-site clusters (`tags.site`, `synchronous_site_survival`): three members in two sites.
//! The primary runs `ANY k` of every standby with k = (standbys in its own site) + 1, the
//! record (shown by `/cluster`) holds the site guarantee; once no standby outside the
//! primary's site streams, non-strict mode degrades and says so (`/cluster`, `/metrics`).
//! Five members in three sites: the primary's whole site cut off under writes fails over to
//! another site without losing an acknowledged write, and the site's members rejoin.

use std::time::Duration;

use crate::cluster::{BOOTSTRAP_DEADLINE, wait_healthy};
use crate::faults::{check_history, start_workload};
use crate::harness::*;

const SITES: [&str; 3] = ["east", "east", "west"];

/// A cluster of one member per entry of `sites` (its `tags.site`), in `synchronous_mode` with
/// `synchronous_site_survival`, started.
fn started_in_sites(sites: &[&str], synchronous_mode: &'static str) -> Cluster {
    let mut cluster = Cluster::new(
        sites.len(),
        Options {
            synchronous_mode,
            extra_dcs: "    synchronous_site_survival: true\n".into(),
            ..Options::default()
        },
    );
    for (i, site) in sites.iter().enumerate() {
        cluster.edit_config(i, |text| format!("{text}tags:\n  site: {site}\n"));
    }
    cluster.start_all();
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_survival_names_any_k_and_degrades_without_a_remote_standby() {
    let client = http_client();
    let cluster = started_in_sites(&SITES, "quorum");
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    let local: Vec<usize> = (0..3).filter(|&i| i != p && SITES[i] == SITES[p]).collect();
    let remote: Vec<usize> = (0..3).filter(|&i| SITES[i] != SITES[p]).collect();
    let quoted: Vec<String> = (0..3)
        .filter(|&i| i != p)
        .map(|i| format!("\"{}\"", cluster.nodes[i].name))
        .collect();
    let expected = format!("ANY {} ({})", local.len() + 1, quoted.join(","));
    let api = cluster.nodes[p].api();
    println!(
        "primary {} in site {}: expecting {expected}",
        cluster.nodes[p].name, SITES[p]
    );

    // The names the primary runs with, and the guarantee in /cluster and /metrics.
    wait_for(
        Duration::from_secs(30),
        &format!("synchronous_standby_names {expected} and the site guarantee"),
        &cluster,
        || async {
            let names = connect(&cluster.nodes[p])
                .await?
                .query_one("SHOW synchronous_standby_names", &[])
                .await
                .ok()?
                .get::<_, String>(0);
            let doc = get_json(&client, &format!("{api}/cluster")).await?;
            (names == expected && doc["site_guarantee"] == true).then_some(())
        },
    )
    .await;
    let doc = get_json(&client, &format!("{api}/cluster")).await.unwrap();
    let site_of = |name: &str| {
        doc["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["tags"]["site"].clone())
    };
    assert_eq!(
        site_of(&cluster.nodes[2].name),
        Some(serde_json::json!("west"))
    );
    let metrics = metrics_text(&client, &api).await;
    assert!(
        metrics.contains(&format!(
            "tribune_sync_site_guarantee{{scope=\"{}\",name=\"{}\",site=\"{}\"}} 1",
            cluster.scope, cluster.nodes[p].name, SITES[p]
        )),
        "{metrics}"
    );

    // Every standby outside the primary's site stops streaming (its agent stays, a Raft
    // voter): non-strict mode degrades, and says so.
    for &i in &remote {
        cluster.break_replication(i).await;
    }
    wait_for(
        Duration::from_secs(30),
        "/cluster and /metrics to report the site guarantee lost",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{api}/cluster")).await?;
            let metrics = metrics_text(&client, &api).await;
            (doc["site_guarantee"] == false
                && metrics.contains(&format!(
                    "tribune_sync_site_guarantee{{scope=\"{}\",name=\"{}\",site=\"{}\"}} 0",
                    cluster.scope, cluster.nodes[p].name, SITES[p]
                )))
            .then_some(())
        },
    )
    .await;
    // Writes go on (degraded, not blocked) once the names no longer wait for a remote standby.
    let client_db = connect(&cluster.nodes[p])
        .await
        .expect("connect to the primary");
    let written = tokio::time::timeout(
        Duration::from_secs(15),
        client_db.batch_execute("CREATE TABLE site_written (id int)"),
    )
    .await;
    if !matches!(written, Ok(Ok(()))) {
        let names = connect(&cluster.nodes[p])
            .await
            .expect("connect to the primary")
            .query_one("SHOW synchronous_standby_names", &[])
            .await
            .map(|r| r.get::<_, String>(0));
        panic!(
            "a write blocked or failed in non-strict mode ({written:?}), names {names:?}\n{}",
            cluster.log_tail(p, 60)
        );
    }
}

/// East and west hold two members each, north one (a tie-breaker with a database): losing any
/// one site leaves a Raft majority.
const THREE_SITES: [&str; 5] = ["east", "east", "west", "west", "north"];

/// Synchronous mode with the site policy, writes going on: the primary's whole site is cut off
/// from the other sites (the test's clients still reach every member). A member of another
/// site takes over, no acknowledged write is lost, no two members acknowledge writes at once,
/// and once the site is back its members stream from the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_root_tests),
    ignore = "needs root for nftables: built with TRIBUNE_ROOT_TESTS, as scripts/test.sh does as root"
)]
async fn the_primarys_site_cut_off_under_writes_fails_over_to_another_site_and_rejoins() {
    require_root();
    let client = http_client();
    let cluster = started_in_sites(&THREE_SITES, "true");
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    let api = cluster.nodes[p].api();
    wait_for(
        Duration::from_secs(60),
        "the site guarantee in the sync record",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{api}/cluster")).await?;
            (doc["site_guarantee"] == true).then_some(())
        },
    )
    .await;
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = start_workload(&cluster, p, conninfos).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let home = THREE_SITES[p];
    let (inside, outside): (Vec<usize>, Vec<usize>) = (0..5).partition(|&i| THREE_SITES[i] == home);
    let ips = |members: &[usize]| -> Vec<&str> {
        members
            .iter()
            .map(|&i| cluster.nodes[i].ip.as_str())
            .collect()
    };
    let cut_at = std::time::Instant::now();
    let cut = Partition::between(&ips(&inside), &ips(&outside));
    let np = wait_for(
        Duration::from_secs(30),
        "a write acknowledged by a member of another site",
        &cluster,
        || async { first_ack_elsewhere(&acks, cut_at, p).map(|(_, node)| node) },
    )
    .await;
    println!(
        "site cut: {} (site {}) took over {:.2}s after site {home} with {} was cut off",
        cluster.nodes[np].name,
        THREE_SITES[np],
        cut_at.elapsed().as_secs_f64(),
        cluster.nodes[p].name
    );
    assert!(
        outside.contains(&np),
        "{} of the cut-off site {home} acknowledged writes after the cut",
        cluster.nodes[np].name
    );
    // Writes go on in the other sites for a while, then the site comes back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(cut);
    for &i in &inside {
        wait_streaming_replica(
            &client,
            &cluster,
            i,
            &format!(
                "{} of site {home} to rejoin as a streaming replica",
                cluster.nodes[i].name
            ),
        )
        .await;
    }
    assert_eq!(primary(&client, &cluster).await, Some(np));
    check_history(&cluster, np, &acks, stop, writer).await;
}

async fn metrics_text(client: &reqwest::Client, api: &str) -> String {
    match client.get(format!("{api}/metrics")).send().await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}
