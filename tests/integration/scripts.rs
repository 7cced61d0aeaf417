//! A production patroni.yml's scripts and logs, on one three-member cluster (synchronous mode):
//! the callbacks of each member across a switchover and a failover (each action, in order,
//! with Patroni's arguments), a `pre_promote` that vetoes the synchronous standby's promotion
//! (the other standby is promoted), no member claiming a pending restart afterwards, and the
//! agent log of one member rotated in `log.dir`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

/// Appends its arguments to `cb.log` beside it: `on_start replica itest`.
const CALLBACK: &str = "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/cb.log\"\n";

/// Logs its verdict to `cb.log` too; refuses while a file `veto` lies beside it.
const PRE_PROMOTE: &str = "#!/bin/sh\nd=\"$(dirname \"$0\")\"\nif [ -e \"$d/veto\" ]; then \
                           echo pre_promote refused >> \"$d/cb.log\"; exit 1; fi\n\
                           echo pre_promote accepted >> \"$d/cb.log\"\n";

/// The member whose agent log goes to `log.dir`.
const LOGGED: usize = 2;

fn callbacks(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cb.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines member `i` logged after the first `since`.
fn new_lines(cluster: &Cluster, i: usize, since: usize) -> Vec<String> {
    callbacks(&cluster.nodes[i].dir)[since..].to_vec()
}

async fn cluster_doc(client: &reqwest::Client, cluster: &Cluster, via: usize) -> Option<Value> {
    get_json(client, &format!("{}/cluster", cluster.nodes[via].api())).await
}

/// Waits until the three (or `expected`) members stream from the leader `p`.
async fn settled(client: &reqwest::Client, cluster: &Cluster, p: usize, expected: usize) {
    wait_for(
        Duration::from_secs(60),
        "every member streaming from the leader",
        cluster,
        || async {
            let doc = cluster_doc(client, cluster, p).await?;
            let members = doc["members"].as_array()?;
            let streaming = members
                .iter()
                .filter(|m| m["state"] == "streaming" || m["role"] == "leader")
                .count();
            let sync = members.iter().any(|m| m["role"] == "sync_standby");
            (streaming == expected && sync).then_some(())
        },
    )
    .await;
}

/// No member of `/cluster` claims a pending restart, nor does any `GET /patroni`.
async fn no_pending_restart(client: &reqwest::Client, cluster: &Cluster, alive: &[usize]) {
    // The claim showed within a loop or two of a promotion: look for three seconds.
    for _ in 0..6 {
        for &i in alive {
            let doc = get_json(client, &format!("{}/patroni", cluster.nodes[i].api()))
                .await
                .expect("GET /patroni");
            assert!(
                doc.get("pending_restart").is_none(),
                "{} claims a pending restart: {doc}",
                cluster.nodes[i].name
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_pre_promote_and_log_rotation_through_a_switchover_and_a_failover() {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "true",
            ..Options::default()
        },
    );
    for i in 0..3 {
        let dir = cluster.nodes[i].dir.clone();
        cluster.write_owned(&dir.join("cb.sh"), CALLBACK, 0o755);
        cluster.write_owned(&dir.join("pre_promote.sh"), PRE_PROMOTE, 0o755);
        let scripts = format!(
            "\npostgresql:\n  pre_promote: {d}/pre_promote.sh\n  callbacks:\n    \
             on_start: {d}/cb.sh\n    on_stop: {d}/cb.sh\n    on_restart: {d}/cb.sh\n    \
             on_reload: {d}/cb.sh\n    on_role_change: {d}/cb.sh\n",
            d = dir.display()
        );
        let logs = format!(
            "log:\n  level: INFO\n  dir: {}/logs\n  file_size: 800\n  file_num: 2\n",
            dir.display()
        );
        cluster.edit_config(i, |text| {
            let text = text.replacen("\npostgresql:\n", &scripts, 1);
            if i == LOGGED {
                text.replacen("log:\n  level: INFO\n", &logs, 1)
            } else {
                text
            }
        });
    }
    cluster.start_all();
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(&client, &cluster).await
    })
    .await;
    settled(&client, &cluster, p, 3).await;
    for (i, node) in cluster.nodes.iter().enumerate() {
        // The bootstrapping member runs no pre_promote: it never promotes.
        let expected = if i == p {
            "on_start primary itest"
        } else {
            "on_start replica itest"
        };
        let lines = callbacks(&node.dir);
        assert_eq!(lines, [expected], "{}", node.name);
    }

    // --- a switchover from p to t ---
    let t = (p + 1) % 3;
    let third = (p + 2) % 3;
    let before: Vec<usize> = (0..3)
        .map(|i| callbacks(&cluster.nodes[i].dir).len())
        .collect();
    let (code, text) = {
        let response = client
            .post(format!("{}/switchover", cluster.nodes[third].api()))
            .json(&json!({"leader": cluster.nodes[p].name, "candidate": cluster.nodes[t].name}))
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .expect("POST /switchover");
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(code, 200, "{text}");
    settled(&client, &cluster, t, 3).await;
    wait_for(
        Duration::from_secs(20),
        "the switchover's callbacks",
        &cluster,
        || async {
            let old = new_lines(&cluster, p, before[p]);
            let new = new_lines(&cluster, t, before[t]);
            let other = new_lines(&cluster, third, before[third]);
            (old == ["on_stop primary itest", "on_role_change replica itest"]
                && new == ["pre_promote accepted", "on_role_change primary itest"]
                && other == ["on_reload replica itest"])
            .then_some(())
        },
    )
    .await;
    no_pending_restart(&client, &cluster, &[0, 1, 2]).await;

    // --- a failover of t whose synchronous standby's pre_promote refuses ---
    let doc = cluster_doc(&client, &cluster, t)
        .await
        .expect("GET /cluster");
    let sync = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "sync_standby")
        .and_then(|m| m["name"].as_str())
        .map(|name| cluster.nodes.iter().position(|n| n.name == name).unwrap())
        .expect("a synchronous standby");
    let other = (0..3).find(|i| *i != t && *i != sync).unwrap();
    let veto = cluster.nodes[sync].dir.join("veto");
    cluster.write_owned(&veto, "", 0o644);
    let before: Vec<usize> = (0..3)
        .map(|i| callbacks(&cluster.nodes[i].dir).len())
        .collect();
    cluster.crash(t);
    let promoted = wait_for(
        Duration::from_secs(60),
        "a new primary after the veto",
        &cluster,
        || async { primary(&client, &cluster).await },
    )
    .await;
    assert_eq!(
        promoted,
        other,
        "the member whose pre_promote refused was promoted\n{}",
        cluster.dump_logs()
    );
    wait_for(
        Duration::from_secs(30),
        "the failover's callbacks",
        &cluster,
        || async {
            let vetoed = new_lines(&cluster, sync, before[sync]);
            let new = new_lines(&cluster, other, before[other]);
            // The other standby may first have followed the vetoing member (on_reload).
            (vetoed.first().map(String::as_str) == Some("pre_promote refused")
                && !vetoed
                    .iter()
                    .any(|l| l.starts_with("on_role_change primary"))
                && vetoed.last().map(String::as_str) == Some("on_reload replica itest")
                && new.ends_with(&[
                    "pre_promote accepted".to_owned(),
                    "on_role_change primary itest".to_owned(),
                ])
                && new.iter().filter(|l| l.contains("primary")).count() == 1)
                .then_some(())
        },
    )
    .await;
    no_pending_restart(&client, &cluster, &[sync, other]).await;

    // --- the agent log of LOGGED, rotated in log.dir ---
    let logs = cluster.nodes[LOGGED].dir.join("logs");
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .expect("log.dir was created")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["patroni.log", "patroni.log.1", "patroni.log.2"]);
    for name in &names {
        let text = std::fs::read_to_string(logs.join(name)).unwrap();
        let first = text.lines().next().unwrap_or_default();
        // Patroni's default format: `2026-11-24 18:45:48,490 INFO: ...`.
        assert!(
            first.len() > 24 && &first[19..20] == "," && &first[23..24] == " ",
            "{name}: {first}"
        );
        // Rotated once it passed file_size: by at most one line.
        assert!(text.len() < 800 + 2000, "{name}: {} bytes", text.len());
    }
    for i in 0..3 {
        cluster.stop(i);
    }
}
