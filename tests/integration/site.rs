//! Multi-site clusters (`tags.site`, `synchronous_site_survival`): three members in two sites.
//! The primary runs `ANY k` of every standby with k = (standbys in its own site) + 1, the
//! record (shown by `/cluster`) holds the site guarantee; once no standby outside the
//! primary's site streams, non-strict mode degrades and says so (`/cluster`, `/metrics`).

use std::time::Duration;

use crate::cluster::{BOOTSTRAP_DEADLINE, wait_healthy};
use crate::harness::*;

const SITES: [&str; 3] = ["east", "east", "west"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_survival_names_any_k_and_degrades_without_a_remote_standby() {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "quorum",
            extra_dcs: "    synchronous_site_survival: true\n".into(),
            ..Options::default()
        },
    );
    for (i, site) in SITES.iter().enumerate() {
        cluster.edit_config(i, |text| format!("{text}tags:\n  site: {site}\n"));
    }
    cluster.start_all();
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

async fn metrics_text(client: &reqwest::Client, api: &str) -> String {
    match client.get(format!("{api}/metrics")).send().await {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}
