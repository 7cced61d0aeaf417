//! The REST API against the reference (reference/patroni.md sections 1.2–1.5, 1.14): every
//! health path for GET, HEAD and OPTIONS on a primary, a synchronous standby and an
//! asynchronous one; the shape of `/patroni` and `/cluster` for each role; routing of methods
//! without a handler; scheduled actions shown in the documents and withdrawn.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{BOOTSTRAP_DEADLINE, wait_healthy};
use crate::harness::*;

async fn code(client: &reqwest::Client, method: Method, url: &str) -> u16 {
    client
        .request(method, url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00:00`, Patroni's `str(datetime)`.
fn patroni_time(v: &Value) -> bool {
    let Some(t) = v.as_str() else { return false };
    t.len() == 32 && t.as_bytes()[10] == b' ' && t.ends_with("+00:00")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_as_patroni_for_each_role() {
    endpoints_answer_as_patroni(Database::Postgres).await;
}

/// Patroni's health endpoints, status documents and topology for each role, and scheduled
/// actions in the documents. On openGauss the documents carry Tribune's `engine` field too
/// (openGauss's `server_version` is its PostgreSQL base, 90204).
pub async fn endpoints_answer_as_patroni(database: Database) {
    let opengauss = matches!(database, Database::OpenGauss { .. });
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "true",
            database,
            ..Options::default()
        },
    );
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    let roles = wait_for(
        Duration::from_secs(30),
        "a sync and an async standby",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{}/cluster", cluster.nodes[p].api())).await?;
            let role = |r: &str| {
                doc["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["role"] == r)
                    .and_then(|m| {
                        cluster
                            .nodes
                            .iter()
                            .position(|n| m["name"] == n.name.as_str())
                    })
            };
            let (s, a) = (role("sync_standby")?, role("replica")?);
            // Each standby answers from its own copy of the state.
            for i in [s, a] {
                let d = get_json(&client, &format!("{}/patroni", cluster.nodes[i].api())).await?;
                (d["replication_state"] == "streaming").then_some(())?;
            }
            let sync_doc =
                get_json(&client, &format!("{}/patroni", cluster.nodes[s].api())).await?;
            (sync_doc["sync_standby"] == true).then_some((s, a))
        },
    )
    .await;
    let (s, a) = roles;
    let api = |i: usize| cluster.nodes[i].api();

    // Section 1.2's matrix: primary, sync standby (mode on), replica streaming.
    let matrix: [(&str, [u16; 3]); 17] = [
        ("/", [200, 503, 503]),
        ("/primary", [200, 503, 503]),
        ("/master", [200, 503, 503]),
        ("/read-write", [200, 503, 503]),
        ("/leader", [200, 503, 503]),
        ("/standby-leader", [503, 503, 503]),
        ("/standby_leader", [503, 503, 503]),
        ("/replica", [503, 200, 200]),
        ("/read-only", [200, 200, 200]),
        ("/sync", [503, 200, 503]),
        ("/synchronous", [503, 200, 503]),
        ("/read-only-sync", [200, 200, 503]),
        ("/quorum", [503, 503, 503]),
        ("/read-only-quorum", [200, 503, 503]),
        ("/async", [503, 503, 200]),
        ("/asynchronous", [503, 503, 200]),
        ("/health", [200, 200, 200]),
    ];
    let mut wrong = Vec::new();
    for (path, codes) in matrix {
        for (node, want) in [p, s, a].into_iter().zip(codes) {
            for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
                let got = code(&client, method.clone(), &format!("{}{path}", api(node))).await;
                if got != want {
                    wrong.push(format!(
                        "{method} {path} on {}: {got}, not {want}",
                        cluster.nodes[node].name
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Section 1.1 and 1.14: methods without a handler.
    for (method, path, want) in [
        (Method::HEAD, "/patroni", 503),
        (Method::OPTIONS, "/cluster", 503),
        (Method::HEAD, "/metrics", 503),
        (Method::OPTIONS, "/liveness", 503),
        (Method::POST, "/patroni", 501),
        (Method::DELETE, "/config", 501),
        (Method::GET, "/switchover", 503),
        (Method::GET, "/nonexistent", 503),
        (Method::GET, "/liveness", 200),
        (Method::GET, "/readiness", 200),
        // Section 1.9: failsafe mode is never on (the agents are the coordination store).
        (Method::GET, "/failsafe", 502),
        (Method::POST, "/failsafe", 502),
        (Method::OPTIONS, "/failsafe", 503),
    ] {
        assert_eq!(
            code(&client, method.clone(), &format!("{}{path}", api(s))).await,
            want,
            "{method} {path}"
        );
    }
    let unknown = get_json(&client, &format!("{}/nonexistent", api(s)))
        .await
        .unwrap_or_default();
    assert_eq!(
        unknown["role"], "replica",
        "an unknown GET path answers the status document"
    );

    // Section 1.4: the status document of each role.
    let primary_doc = get_json(&client, &format!("{}/patroni", api(p)))
        .await
        .unwrap();
    let with_engine = |mut keys: Vec<&'static str>| {
        if opengauss {
            keys.push("engine");
            keys.sort();
        }
        keys
    };
    assert_eq!(
        keys(&primary_doc),
        with_engine(vec![
            "database_system_identifier",
            "dcs_last_seen",
            "patroni",
            "postmaster_start_time",
            "replication",
            "role",
            "server_version",
            "state",
            "timeline",
            "tribune",
            "xlog",
        ]),
        "{primary_doc}"
    );
    if opengauss {
        assert!(
            primary_doc["engine"]
                .as_str()
                .is_some_and(|e| e.starts_with("openGauss ")),
            "{primary_doc}"
        );
    }
    assert_eq!(primary_doc["role"], "primary");
    assert!(primary_doc["xlog"]["location"].is_u64(), "{primary_doc}");
    assert!(
        patroni_time(&primary_doc["postmaster_start_time"]),
        "{primary_doc}"
    );
    let oldest = if opengauss { 90_204 } else { 150_000 };
    assert!(
        primary_doc["server_version"]
            .as_u64()
            .is_some_and(|v| v >= oldest),
        "{primary_doc}"
    );
    assert_eq!(
        keys(&primary_doc["patroni"]),
        vec!["name", "scope", "version"]
    );
    // Tools written for Patroni branch on this version; Tribune's own is beside it.
    assert_eq!(
        primary_doc["patroni"]["version"],
        tribune::PATRONI_API_VERSION
    );
    assert_eq!(primary_doc["tribune"]["version"], tribune::VERSION);
    let senders = primary_doc["replication"].as_array().unwrap();
    assert_eq!(senders.len(), 2);
    assert_eq!(
        keys(&senders[0]),
        vec![
            "application_name",
            "client_addr",
            "state",
            "sync_priority",
            "sync_state",
            "usename"
        ]
    );
    for (node, sync) in [(s, true), (a, false)] {
        let doc = get_json(&client, &format!("{}/patroni", api(node)))
            .await
            .unwrap();
        let mut expected = vec![
            "database_system_identifier",
            "dcs_last_seen",
            "patroni",
            "postmaster_start_time",
            "replication_state",
            "role",
            "server_version",
            "state",
            "timeline",
            "tribune",
            "xlog",
        ];
        if sync {
            expected.push("sync_standby");
            expected.sort();
        }
        assert_eq!(keys(&doc), with_engine(expected), "{doc}");
        assert_eq!(
            keys(&doc["xlog"]),
            vec![
                "paused",
                "received_location",
                "replayed_location",
                "replayed_timestamp"
            ]
        );
        assert_eq!(doc["role"], "replica");
    }

    // Section 1.5: the topology, sorted by name; lags on every member but the leader.
    let topology = get_json(&client, &format!("{}/cluster", api(a)))
        .await
        .unwrap();
    let members = topology["members"].as_array().unwrap();
    let names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for m in members {
        let lag_fields = [
            "lag",
            "lsn",
            "receive_lag",
            "receive_lsn",
            "replay_lag",
            "replay_lsn",
        ];
        let has = |k: &str| m.get(k).is_some();
        if m["role"] == "leader" {
            assert!(lag_fields.iter().all(|k| !has(k)), "{m}");
            assert_eq!(m["state"], "running");
        } else {
            assert!(lag_fields.iter().all(|k| has(k)), "{m}");
            assert_eq!(m["state"], "streaming");
            assert!(
                m["receive_lsn"].as_str().is_some_and(|l| l.contains('/')),
                "{m}"
            );
        }
        assert!(
            m["port"].is_u64() && m["host"].is_string() && m["timeline"].is_u64(),
            "{m}"
        );
    }
    assert_eq!(topology["scope"], cluster.scope.as_str());

    // Scheduled actions show in the documents until withdrawn.
    let later = "2099-01-01T12:00:00+00:00";
    let answer = client
        .post(format!("{}/restart", api(a)))
        .json(&json!({"schedule": later, "role": "replica"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let scheduled = wait_for(
        Duration::from_secs(5),
        "the scheduled restart in /patroni",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{}/patroni", api(a))).await?;
            doc.get("scheduled_restart").cloned()
        },
    )
    .await;
    assert_eq!(
        scheduled,
        json!({"schedule": "2099-01-01T12:00:00.000000+00:00", "role": "replica"})
    );
    let answer = client
        .post(format!("{}/restart", api(a)))
        .json(&json!({"schedule": later}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (answer.status().as_u16(), answer.text().await.unwrap()),
        (409, "Another restart is already scheduled".to_owned())
    );
    let leader = cluster.nodes[p].name.clone();
    let answer = client
        .post(format!("{}/switchover", api(s)))
        .json(&json!({"leader": leader, "scheduled_at": later}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    let pending = wait_for(
        Duration::from_secs(5),
        "the scheduled switchover in /cluster",
        &cluster,
        || async {
            let doc = get_json(&client, &format!("{}/cluster", api(a))).await?;
            doc.get("scheduled_switchover").cloned()
        },
    )
    .await;
    assert_eq!(
        pending,
        json!({"at": "2099-01-01T12:00:00.000000+00:00", "from": leader})
    );
    for (path, deleted, none) in [
        (
            "/restart",
            "scheduled restart deleted",
            "no restarts are scheduled",
        ),
        (
            "/switchover",
            "scheduled switchover deleted",
            "no switchover is scheduled",
        ),
    ] {
        for (want_code, want_text) in [(200, deleted), (404, none)] {
            let answer = client
                .delete(format!("{}{path}", api(a)))
                .send()
                .await
                .unwrap();
            assert_eq!(
                (answer.status().as_u16(), answer.text().await.unwrap()),
                (want_code, want_text.to_owned()),
                "DELETE {path}"
            );
        }
    }
}
