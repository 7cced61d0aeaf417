//! Online Raft membership on real agents and PostgreSQL, through `tribunectl members`: a
//! three-node cluster in synchronous mode grows to five under the write workload (a database
//! node that becomes a streaming standby by base backup, and a witness), loses its primary to a
//! crash, then shrinks back to three by removing the crashed node and the witness. No
//! acknowledged write is lost, no two members acknowledge writes in overlapping periods, and
//! every refusal (bad address, another name, the lease holder, below three voters, a retired
//! address) changes nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::faults::{check_history, start_workload, sync_cluster};
use crate::harness::*;

/// `tribunectl --url API members ARGS...`: whether it succeeded, stdout, stderr.
fn members(api: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args(["--url", api, "members"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tribunectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a `members` change that must succeed; returns its message.
fn change(api: &str, args: &[&str]) -> String {
    let (ok, out, err) = members(api, args);
    assert!(ok, "tribunectl members {args:?} failed: {err}");
    out
}

/// Run a `members` change that must be refused with `code` and a message containing `text`,
/// and check that the membership is the same afterwards.
async fn refused(client: &reqwest::Client, api: &str, args: &[&str], code: u16, text: &str) {
    let before = membership(client, api).await;
    let (ok, out, err) = members(api, args);
    assert!(!ok, "tribunectl members {args:?} was not refused: {out}");
    assert!(err.starts_with("Error: "), "{err}");
    assert!(
        err.contains(text) && err.contains(&format!("(HTTP {code})")),
        "tribunectl members {args:?}: expected HTTP {code} and {text:?}, got {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert_eq!(
        membership(client, api).await,
        before,
        "the refused {args:?} changed the membership"
    );
}

/// The voters, learners and retired addresses of `GET /members`.
async fn membership(
    client: &reqwest::Client,
    api: &str,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let doc = get_json(client, &format!("{api}/members"))
        .await
        .expect("GET /members");
    let with_role = |role: &str| -> Vec<String> {
        doc["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["raft_role"] == role)
            .map(|m| m["raft_addr"].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let retired = doc["retired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["raft_addr"].as_str().unwrap().to_owned())
        .collect();
    (with_role("voter"), with_role("learner"), retired)
}

/// The `/cluster` entry of member `name`, as seen by `api`.
async fn cluster_member(client: &reqwest::Client, api: &str, name: &str) -> Option<Value> {
    let doc = get_json(client, &format!("{api}/cluster")).await?;
    doc["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_to_five_fails_over_and_shrinks_back_to_three_under_writes() {
    let started = Instant::now();
    let (client, mut cluster, p) = sync_cluster(false, Database::Postgres).await;
    let d = cluster.add_node(false);
    let w = cluster.add_node(true);
    let (d_name, w_name) = (cluster.nodes[d].name.clone(), cluster.nodes[w].name.clone());
    let (d_addr, w_addr) = (cluster.raft_addr(d), cluster.raft_addr(w));
    // The workload knows the new database node from the start: it may become the primary.
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = start_workload(&cluster, p, conninfos).await;
    let via = cluster.nodes[(p + 1) % 3].api();
    let original: Vec<String> = (0..3).map(|i| cluster.raft_addr(i)).collect();
    println!(
        "three members healthy after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The new agents see a running cluster that does not list them: they wait, idle.
    cluster.start(d);
    cluster.start(w);
    let waiting = format!("run tribunectl members add {d_name} {d_addr} on a member");
    wait_for(
        Duration::from_secs(20),
        "the new node to wait",
        &cluster,
        || async {
            std::fs::read_to_string(cluster.nodes[d].log())
                .unwrap_or_default()
                .contains(&waiting)
                .then_some(())
        },
    )
    .await;
    // Neither a Raft cluster of its own (it would lead it) nor a bootstrap claim.
    let text = get_text(&client, &format!("{}/metrics", cluster.nodes[d].api()))
        .await
        .expect("the waiting node answers /metrics");
    assert_eq!(
        metric(&text, "tribune_raft_leader"),
        Some(0.0),
        "the new node initialized a Raft cluster of its own:\n{text}"
    );
    assert!(
        !text.contains("action=\"claim_bootstrap\""),
        "the new node tried to claim the bootstrap:\n{text}"
    );

    // Refusals before anything changes: a malformed address, another agent's name.
    refused(
        &client,
        &via,
        &["add", &d_name, "not-an-address"],
        400,
        "raft_addr: \"not-an-address\" is not host:port",
    )
    .await;
    refused(
        &client,
        &via,
        &["add", "somebody", &d_addr],
        412,
        &format!("is named '{d_name}', not 'somebody'"),
    )
    .await;

    // Grow to five, through a member that is not the primary.
    let grown_at = Instant::now();
    let out = change(&via, &["add", &d_name, &d_addr]);
    assert!(out.contains("is a voter now"), "{out}");
    let out = change(&via, &["add", &w_name, &w_addr]);
    assert!(out.contains("the Raft cluster has 5 voters"), "{out}");
    println!(
        "grown to five voters in {:.1}s",
        grown_at.elapsed().as_secs_f64()
    );
    wait_streaming_replica(
        &client,
        &cluster,
        d,
        "the new database node to stream after its base backup",
    )
    .await;
    println!(
        "{d_name} streams {:.1}s after it was added",
        grown_at.elapsed().as_secs_f64()
    );
    wait_for(
        Duration::from_secs(20),
        "the witness in /cluster",
        &cluster,
        || async {
            let m = cluster_member(&client, &via, &w_name).await?;
            (m["role"] == "witness").then_some(())
        },
    )
    .await;
    let (ok, table, err) = members(&via, &["list"]);
    assert!(ok, "{err}");
    println!("{table}");
    assert!(table.contains(&format!("| {w_name} ")), "{table}");
    assert_eq!(table.matches("| voter ").count(), 5, "{table}");
    assert!(
        !table.contains("| no "),
        "a member is unreachable:\n{table}"
    );

    // The lease holder is never removed.
    refused(
        &client,
        &via,
        &["remove", "--force", &cluster.nodes[p].name],
        412,
        "holds the leader lease: switch over to another member first",
    )
    .await;

    // The primary's host crashes: another member takes over.
    let crashed_at = Instant::now();
    cluster.crash(p);
    let np = wait_for(
        Duration::from_secs(40),
        "a write on another member",
        &cluster,
        || async { first_ack_elsewhere(&acks, crashed_at, p).map(|(_, node)| node) },
    )
    .await;
    println!(
        "{} took over {:.1}s after the crash of {}",
        cluster.nodes[np].name,
        crashed_at.elapsed().as_secs_f64(),
        cluster.nodes[p].name
    );
    assert_ne!(np, w);
    let via = cluster.nodes[(0..4).find(|i| *i != p && *i != np).unwrap()].api();

    // Shrink back to three: the crashed member and the witness.
    let p_name = cluster.nodes[p].name.clone();
    let out = change(&via, &["remove", "--force", &p_name]);
    assert!(out.contains("was removed from the Raft cluster"), "{out}");
    let out = change(&via, &["remove", "--force", &w_name]);
    assert!(out.contains("which has 3 voters now"), "{out}");
    cluster.stop(w);
    let p_addr = cluster.raft_addr(p);
    let (voters, learners, retired) = membership(&client, &via).await;
    let expected: BTreeSet<String> = original
        .iter()
        .filter(|a| **a != p_addr)
        .cloned()
        .chain([d_addr.clone()])
        .collect();
    assert_eq!(voters.into_iter().collect::<BTreeSet<_>>(), expected);
    assert!(learners.is_empty());
    assert_eq!(
        retired.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([p_addr.clone(), w_addr.clone()])
    );
    for gone in [&p_name, &w_name] {
        assert!(
            cluster_member(&client, &via, gone).await.is_none(),
            "{gone} is still a member"
        );
    }
    // The primary keeps the removed member's replication slot for `member_slots_ttl` (30 min
    // by default, as in Patroni 4), and drops it once that is lowered to 0.
    let slot = p_name.clone();
    let slots_on_primary = || async {
        let pg = connect(&cluster.nodes[np]).await?;
        let rows = pg
            .query("SELECT slot_name FROM pg_replication_slots", &[])
            .await
            .ok()?;
        Some(rows.iter().map(|r| r.get(0)).collect::<Vec<String>>())
    };
    let kept = slots_on_primary().await.expect("the new primary answers");
    assert!(
        kept.contains(&slot),
        "the removed member's slot went at once: {kept:?}"
    );
    let r = client
        .patch(format!("{via}/config"))
        .json(&serde_json::json!({"member_slots_ttl": 0}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "PATCH /config: {}", r.status());
    wait_for(
        Duration::from_secs(20),
        "the removed member's slot to go",
        &cluster,
        || async {
            let pg = connect(&cluster.nodes[np]).await?;
            let rows = pg
                .query("SELECT slot_name FROM pg_replication_slots", &[])
                .await
                .ok()?;
            let slots: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            (!slots.contains(&slot)).then_some(())
        },
    )
    .await;

    // Without --force, removal asks first; no answer is a no.
    let before = membership(&client, &via).await;
    let (ok, _, err) = members(&via, &["remove", &d_name]);
    assert!(
        !ok && err.contains(&format!("aborted: {d_name} was not removed")),
        "{err}"
    );
    assert_eq!(membership(&client, &via).await, before);

    // Three voters is the floor; a retired address never comes back.
    refused(
        &client,
        &via,
        &["remove", "--force", &d_name],
        412,
        "would leave 2 Raft voters",
    )
    .await;
    refused(
        &client,
        &via,
        &["add", "node9", &p_addr],
        409,
        "a node id is never reused: start the new agent on another Raft address",
    )
    .await;
    refused(
        &client,
        &via,
        &["remove", "--force", "nobody"],
        404,
        "not a member",
    )
    .await;

    let after = Instant::now();
    wait_for_writes_after(
        &acks,
        after,
        Duration::from_secs(20),
        "writes on the three-member cluster",
        &cluster,
    )
    .await;
    assert_eq!(primary(&client, &cluster).await, Some(np));
    check_history(&cluster, np, &acks, stop, writer).await;
    println!("whole scenario: {:.1}s", started.elapsed().as_secs_f64());
}
