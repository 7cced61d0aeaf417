//! Operators' control calls through the REST API on real agents and PostgreSQL: a planned
//! switchover under the write workload (no acknowledged write lost, no overlap, the write gap
//! printed), a scheduled one, pause, restart, reinitialise, configuration writes, and the
//! refusals, which must change nothing. Calls go to a member that is not the primary: each is
//! carried out through the replicated state.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::{BOOTSTRAP_DEADLINE, wait_healthy};
use crate::faults::{check_history, loaded_cluster_with};
use crate::harness::*;

/// `METHOD url` with a JSON body; the status code and the text of the answer.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = client.request(method, url).timeout(Duration::from_secs(40));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the REST API answers");
    let code = response.status().as_u16();
    (code, response.text().await.unwrap_or_default())
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, String) {
    call(client, reqwest::Method::POST, url, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_through_any_member_hands_over_without_losing_a_write() {
    let (client, cluster, p, acks, stop, writer) =
        loaded_cluster_with(false, Database::Postgres).await;
    let target = (p + 1) % 3;
    let via = cluster.nodes[(p + 2) % 3].api();
    let (leader, candidate) = (&cluster.nodes[p].name, &cluster.nodes[target].name);

    // Refusals first: each answers with Patroni's code and message and changes nothing.
    let refusals = [
        (
            "/switchover",
            json!({}),
            400,
            "the request body is an empty object",
        ),
        (
            "/switchover",
            json!({"candidate": candidate}),
            400,
            "Switchover could be performed only from a specific leader",
        ),
        (
            "/failover",
            json!({"leader": leader}),
            400,
            "Failover could be performed only to a specific candidate",
        ),
        (
            "/switchover",
            json!({"leader": candidate, "candidate": leader}),
            412,
            "leader name does not match",
        ),
        (
            "/switchover",
            json!({"leader": leader, "candidate": "nobody"}),
            412,
            "candidate does not exists",
        ),
        (
            "/switchover",
            json!({"leader": leader, "candidate": leader}),
            400,
            "Switchover target and source are the same",
        ),
        (
            "/switchover",
            json!({"leader": leader, "scheduled_at": "2020-01-01T00:00:00Z"}),
            422,
            "Cannot schedule switchover in the past",
        ),
        (
            "/switchover",
            json!({"leader": leader, "scheduled_at": "2099-01-01T00:00:00"}),
            400,
            "Timezone information is mandatory for the scheduled switchover",
        ),
        (
            "/switchover",
            json!({"leader": leader, "scheduled_at": "next tuesday"}),
            422,
            "Unable to parse scheduled timestamp",
        ),
        (
            "/failover",
            json!({"candidate": candidate, "scheduled_at": "2099-01-01T00:00:00Z"}),
            400,
            "Failover can't be scheduled",
        ),
    ];
    for (path, body, code, message) in refusals {
        let (got, text) = post(&client, &format!("{via}{path}"), body.clone()).await;
        assert_eq!(
            (got, text.starts_with(message)),
            (code, true),
            "{path} {body}: {text}"
        );
    }
    let (code, text) = call(
        &client,
        reqwest::Method::DELETE,
        &format!("{via}/switchover"),
        None,
    )
    .await;
    assert_eq!((code, text.as_str()), (404, "no switchover is scheduled"));
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "a refusal changed the primary"
    );
    switch_over_under_writes(&client, &cluster, p, (acks, stop, writer)).await;
}

/// `POST /switchover` from the primary `p` to the next member, through the third, with the
/// workload running: answered with Patroni's message, the old primary streams from the new
/// one, no acknowledged write lost, no overlap; prints the write gap.
pub async fn switch_over_under_writes(
    client: &reqwest::Client,
    cluster: &Cluster,
    p: usize,
    (acks, stop, writer): (
        Acks,
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    ),
) {
    let target = (p + 1) % 3;
    let via = cluster.nodes[(p + 2) % 3].api();
    let (leader, candidate) = (&cluster.nodes[p].name, &cluster.nodes[target].name);
    // The switchover's precondition reads the candidate's replicated report, which follows its
    // own view by a report and a commit: under load it may still say `starting` (CI run: 412
    // "node1 is not a running standby" while node1 streamed). Ask once it says streaming.
    wait_for(
        Duration::from_secs(60),
        "the candidate reported as a streaming standby",
        cluster,
        || async {
            reported_streaming(client, cluster, target)
                .await
                .then_some(())
        },
    )
    .await;
    let asked = Instant::now();
    let (code, text) = post(
        client,
        &format!("{via}/switchover"),
        json!({"leader": leader, "candidate": candidate}),
    )
    .await;
    let answered = asked.elapsed();
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        text,
        format!("Successfully switched over to \"{candidate}\"")
    );
    let first_new = wait_for(
        Duration::from_secs(10),
        "a write on the new primary",
        cluster,
        || async { first_ack_elsewhere(&acks, asked, p).map(|(t, _)| t) },
    )
    .await;
    let last_old = acks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t, node)| *node == p && *t < first_new)
        .map(|(_, t, _)| *t)
        .max()
        .expect("the old primary acknowledged writes");
    println!(
        "switchover: answered after {:.2}s; write gap {:.3}s (last write on {leader} to first on {candidate})",
        answered.as_secs_f64(),
        first_new.duration_since(last_old).as_secs_f64()
    );
    wait_streaming_replica(
        client,
        cluster,
        p,
        "the old primary to stream from the new one",
    )
    .await;
    assert_eq!(primary(client, cluster).await, Some(target));
    check_history(cluster, target, &acks, stop, writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_pause_restart_reinitialize_and_a_scheduled_switchover() {
    let client = http_client();
    let mut cluster = Cluster::new(3, Options::default());
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    let (r1, r2) = ((p + 1) % 3, (p + 2) % 3);
    for r in [r1, r2] {
        wait_streaming_replica(&client, &cluster, r, "the replicas to stream").await;
    }
    let via = cluster.nodes[r1].api();
    let config_url = format!("{via}/config");
    let before = get_json(&client, &config_url).await.expect("GET /config");

    // Invalid configurations are refused with the reason; nothing is stored.
    for (patch, reason) in [
        (json!({"ttl": "soon"}), "ttl"),
        (json!({"loop_wait": 10}), "loop_wait"),
        (json!({"synchronous_mode": "sometimes"}), "synchronous_mode"),
    ] {
        let (code, text) = call(
            &client,
            reqwest::Method::PATCH,
            &config_url,
            Some(patch.clone()),
        )
        .await;
        assert_eq!(code, 400, "{patch}: {text}");
        assert!(text.contains(reason), "{patch}: {text}");
    }
    let (code, text) = call(&client, reqwest::Method::PUT, &config_url, Some(json!([1]))).await;
    assert_eq!(code, 400, "{text}");
    assert_eq!(get_json(&client, &config_url).await, Some(before.clone()));

    // Pause: every member reports it; a switchover then needs a named candidate, and cannot
    // be scheduled.
    let (code, text) = call(
        &client,
        reqwest::Method::PATCH,
        &config_url,
        Some(json!({"pause": true})),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    wait_every_member_paused(&client, &cluster, Duration::from_secs(10)).await;
    let leader = cluster.nodes[p].name.clone();
    let (code, text) = post(
        &client,
        &format!("{via}/switchover"),
        json!({"leader": leader}),
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert_eq!(
        text,
        "Switchover is possible only to a specific candidate in a paused state"
    );
    let (code, text) = post(
        &client,
        &format!("{via}/restart"),
        json!({"schedule": "2099-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (500, "Can't schedule restart in the paused state")
    );
    let (code, _) = call(
        &client,
        reqwest::Method::PATCH,
        &config_url,
        Some(json!({"pause": null})),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(get_json(&client, &config_url).await, Some(before));

    // A parameter in the dynamic configuration reaches every member's server at once.
    let (code, text) = call(
        &client,
        reqwest::Method::PATCH,
        &config_url,
        Some(json!({"postgresql": {"parameters": {"work_mem": "7MB"}}})),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    for i in [p, r1, r2] {
        wait_for(
            Duration::from_secs(10),
            "work_mem from the dynamic configuration",
            &cluster,
            || async {
                let pg = connect(&cluster.nodes[i]).await?;
                let row = pg.query_one("SHOW work_mem", &[]).await.ok()?;
                (row.get::<_, String>(0) == "7MB").then_some(())
            },
        )
        .await;
    }
    // A parameter that needs a restart is reported pending on every member, with its running
    // and its configured value (Patroni's `pending_restart_reason`).
    let (code, text) = call(
        &client,
        reqwest::Method::PATCH,
        &config_url,
        Some(json!({"postgresql": {"parameters": {"wal_buffers": "1MB"}}})),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let pending_reason = |i: usize| {
        let client = client.clone();
        let url = format!("{}/patroni", cluster.nodes[i].api());
        async move {
            let doc = get_json(&client, &url).await?;
            (doc["pending_restart"] == true).then(|| doc["pending_restart_reason"].clone())
        }
    };
    for i in [p, r1, r2] {
        let reason = wait_for(
            Duration::from_secs(10),
            "wal_buffers pending a restart in /patroni",
            &cluster,
            || pending_reason(i),
        )
        .await;
        let change = &reason["wal_buffers"];
        assert_eq!(change["new_value"], "1MB", "{reason}");
        assert!(
            change["old_value"]
                .as_str()
                .is_some_and(|v| !v.is_empty() && v != "1MB"),
            "{reason}"
        );
    }
    // /cluster shows the Raft-replicated member records, which follow each member's own
    // /patroni by up to one report: wait for them rather than read them once.
    let cluster_url = format!("{via}/cluster");
    let doc = wait_for(
        Duration::from_secs(10),
        "every member pending a restart in /cluster",
        &cluster,
        || {
            let client = client.clone();
            let url = cluster_url.clone();
            async move {
                let doc = get_json(&client, &url).await?;
                let members = doc["members"].as_array()?;
                members
                    .iter()
                    .all(|m| m["pending_restart"] == true)
                    .then_some(doc)
            }
        },
    )
    .await;
    for m in doc["members"].as_array().unwrap() {
        assert_eq!(
            m["pending_restart_reason"]["wal_buffers"]["new_value"], "1MB",
            "{m}"
        );
    }

    // A reload applies edited tags from the local file (POST /reload, as SIGHUP).
    let r2_config = &cluster.nodes[r2].config;
    let mut text = std::fs::read_to_string(r2_config).unwrap();
    text.push_str("\ntags:\n  nofailover: true\n  dc: east\n");
    std::fs::write(r2_config, text).unwrap();
    let (code, text) = post(
        &client,
        &format!("{}/reload", cluster.nodes[r2].api()),
        json!({}),
    )
    .await;
    assert_eq!((code, text.as_str()), (202, "reload scheduled"));
    wait_for(
        Duration::from_secs(10),
        "the reloaded tags in /cluster",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{via}/cluster")).await?;
            let member = doc["members"]
                .as_array()?
                .iter()
                .find(|m| m["name"] == cluster.nodes[r2].name.as_str())?
                .clone();
            (member["tags"]["nofailover"] == true && member["tags"]["dc"] == "east").then_some(())
        },
    )
    .await;

    // Restart: conditions that do not hold are reported; a replica restarts.
    let primary_api = cluster.nodes[p].api();
    let (code, text) = post(
        &client,
        &format!("{primary_api}/restart"),
        json!({"role": "replica"}),
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (503, "restart conditions are not satisfied")
    );
    let started = |i: usize| {
        let client = client.clone();
        let url = format!("{}/patroni", cluster.nodes[i].api());
        async move {
            get_json(&client, &url)
                .await
                .map(|d| d["postmaster_start_time"].clone())
        }
    };
    let before_restart = started(r1).await;
    let (code, text) = post(
        &client,
        &format!("{via}/restart"),
        json!({"restart_pending": true}),
    )
    .await;
    assert_eq!((code, text.as_str()), (200, "restarted successfully"));
    wait_streaming_replica(&client, &cluster, r1, "the restarted replica to stream").await;
    assert_ne!(
        started(r1).await,
        before_restart,
        "the postmaster did not restart"
    );
    // The restart applied the pending parameter there, and only there.
    wait_for(
        Duration::from_secs(10),
        "the restarted replica to report nothing pending",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{via}/patroni")).await?;
            (doc.get("pending_restart").is_none() && doc.get("pending_restart_reason").is_none())
                .then_some(())
        },
    )
    .await;
    assert!(
        pending_reason(p).await.is_some(),
        "the primary's restart is still pending"
    );

    // Reinitialize: refused on the leader; a replica is cloned again.
    let (code, text) = post(&client, &format!("{primary_api}/reinitialize"), json!({})).await;
    assert_eq!(
        (code, text.as_str()),
        (503, "I am the leader, can not reinitialize")
    );
    let r2_api = cluster.nodes[r2].api();
    let (code, text) = post(
        &client,
        &format!("{r2_api}/reinitialize"),
        json!({"force": true}),
    )
    .await;
    assert_eq!((code, text.as_str()), (200, "reinitialize started"));
    wait_streaming_replica(&client, &cluster, r2, "the reinitialised replica to stream").await;

    // A scheduled switchover waits for its time, then hands over.
    let at = tribune::types::UnixMillis(tribune::types::UnixMillis::now().0 + 4_000);
    let (code, text) = post(
        &client,
        &format!("{via}/switchover"),
        json!({"leader": leader, "candidate": cluster.nodes[r1].name, "scheduled_at": tribune::timestamp::iso_time(at)}),
    )
    .await;
    assert_eq!((code, text.as_str()), (202, "Switchover scheduled"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "switched over before its time"
    );
    wait_for(
        Duration::from_secs(30),
        "the scheduled switchover",
        &cluster,
        || async { (primary(&client, &cluster).await == Some(r1)).then_some(()) },
    )
    .await;
}
