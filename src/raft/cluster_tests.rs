//! In-process clusters on 127.0.0.1: election, forwarding, restart, foreign scopes, snapshots.
//! Every wait has a deadline; timeouts are shortened (heartbeat 100 ms, election 500-1000 ms).

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::leader::{Answer, Op};
use super::peers::{Peers, is_scope_refusal};
use super::proto::RaftMessage;
use super::settings::Tuning;
use super::{NodeId, ProposeError, RaftNode, RaftSettings, node_id_for};
use crate::state::{Command, Outcome, Rejection};
use crate::types::MemberName;

const WAIT: Duration = Duration::from_secs(10);

async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// `n` listeners on free ports, their addresses, and a data directory for each.
async fn bind_many(n: usize) -> (Vec<TcpListener>, Vec<String>, Vec<TempDir>) {
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let (l, a) = bind().await;
        listeners.push(l);
        addrs.push(a);
    }
    let dirs = (0..n).map(|_| TempDir::new().unwrap()).collect();
    (listeners, addrs, dirs)
}

/// Propose `config` from `from` and wait until every node of `nodes` applied it.
async fn set_config_everywhere(from: &RaftNode, nodes: &[RaftNode], config: serde_json::Value) {
    let outcome = from.propose(set_config(config.clone())).await.unwrap();
    assert_eq!(outcome, Outcome::Applied);
    wait_for("the config to reach every node", || {
        nodes
            .iter()
            .all(|n| n.state().config == config)
            .then_some(())
    })
    .await;
}

fn settings(scope: &str, me: &str, partners: &[&String], dir: &Path) -> RaftSettings {
    let mut s = RaftSettings::new(
        scope,
        me,
        partners.iter().map(|a| a.to_string()).collect(),
        dir,
    );
    s.heartbeat = Duration::from_millis(100);
    s.election_timeout_min = Duration::from_millis(500);
    s.election_timeout_max = Duration::from_millis(1000);
    s
}

/// Start node `i` of `addrs` (the others are its partners).
async fn start(
    scope: &str,
    addrs: &[String],
    i: usize,
    dir: &Path,
    listener: TcpListener,
    tuning: Tuning,
) -> RaftNode {
    let partners: Vec<&String> = addrs.iter().filter(|a| **a != addrs[i]).collect();
    RaftNode::start_with(
        settings(scope, &addrs[i], &partners, dir),
        tuning,
        listener,
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// Poll `check` every 20 ms until it returns `Some`, or panic after [`WAIT`].
async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The leader every node agrees on.
async fn agreed_leader(nodes: &[&RaftNode]) -> NodeId {
    wait_for("all nodes to agree on a leader", || {
        let leader = nodes[0].status().borrow().leader?;
        let agreed = nodes.iter().all(|n| {
            let s = n.status().borrow().clone();
            s.leader == Some(leader) && s.is_leader == (n.node_id() == leader)
        });
        agreed.then_some(leader)
    })
    .await
}

fn set_config(value: serde_json::Value) -> Command {
    Command::SetConfig {
        config: value,
        expected: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_forward_transfer_and_survive_restart() {
    let (listeners, addrs, dirs) = bind_many(3).await;
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        nodes.push(
            start(
                "alpha",
                &addrs,
                i,
                dirs[i].path(),
                listener,
                Tuning::default(),
            )
            .await,
        );
    }
    let all: Vec<&RaftNode> = nodes.iter().collect();
    let leader = agreed_leader(&all).await;

    // Status: ids from addresses, the same voters everywhere, the leader's address.
    let leader_addr = addrs
        .iter()
        .find(|a| node_id_for(a) == leader)
        .unwrap()
        .clone();
    for node in &nodes {
        let s = node.status().borrow().clone();
        assert_eq!(s.node_id, node.node_id());
        assert_eq!(s.voters.len(), 3);
        assert!(s.voters.iter().all(|(id, addr)| node_id_for(addr) == *id));
        assert_eq!(s.leader_addr.as_deref(), Some(leader_addr.as_str()));
        assert!(s.term >= 1);
    }

    // A follower's proposal is forwarded, applied everywhere, and its outcome comes back.
    let followers: Vec<&RaftNode> = nodes.iter().filter(|n| n.node_id() != leader).collect();
    set_config_everywhere(followers[0], &nodes, json!({"ttl": 30})).await;
    let rejected = followers[0]
        .propose(Command::FinishBootstrap {
            member: MemberName::from("nobody"),
            sysid: "1".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        rejected,
        Outcome::Rejected(Rejection::NotBootstrapping {
            member: MemberName::from("nobody")
        })
    );

    let leader_node = nodes.iter().find(|n| n.node_id() == leader).unwrap();
    assert!(leader_node.confirm_leadership().await);
    assert!(!followers[0].confirm_leadership().await);

    // Leadership handed to the other follower, asked from a follower (forwarded).
    let target = followers[1].node_id();
    followers[0].transfer_leadership(target).await.unwrap();
    wait_for("leadership to move to the target", || {
        nodes
            .iter()
            .all(|n| n.status().borrow().leader == Some(target))
            .then_some(())
    })
    .await;
    assert_eq!(agreed_leader(&all).await, target);
    assert!(matches!(
        followers[0].transfer_leadership(12345).await,
        Err(ProposeError::Refused(_))
    ));

    // Restart every node on the same addresses and directories.
    for node in &nodes {
        node.shutdown().await;
    }
    drop(all);
    drop(followers);
    drop(nodes);
    let mut nodes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let listener = TcpListener::bind(addr).await.unwrap();
        let node = start(
            "alpha",
            &addrs,
            i,
            dirs[i].path(),
            listener,
            Tuning::default(),
        )
        .await;
        assert_eq!(
            node.state().config,
            json!({"ttl": 30}),
            "the applied state was not reloaded"
        );
        nodes.push(node);
    }
    let all: Vec<&RaftNode> = nodes.iter().collect();
    agreed_leader(&all).await;
    set_config_everywhere(&nodes[2], &nodes, json!({"ttl": 60})).await;
    for node in &nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused() {
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let (la, a) = bind().await;
    let (lb, b) = bind().await;
    let (lx, x) = bind().await;
    let alpha = [a.clone(), b.clone()];
    let node_a = start("alpha", &alpha, 0, dirs[0].path(), la, Tuning::default()).await;
    let node_b = start("alpha", &alpha, 1, dirs[1].path(), lb, Tuning::default()).await;
    // The intruder lists the alpha nodes as its partners but belongs to "beta".
    let intruder = RaftNode::start_with(
        settings("beta", &x, &[&a, &b], dirs[2].path()),
        Tuning::default(),
        lx,
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // Its calls are refused with a message naming both clusters.
    let peers = Peers::new(intruder.node_id(), "beta").unwrap();
    let op = Op::Write(Box::new(set_config(json!({"evil": true}))));
    match peers.forward(&a, &op, Duration::from_secs(2)).await {
        Err(ProposeError::Refused(msg)) => assert_eq!(
            msg,
            "peer belongs to cluster 'beta', this is cluster 'alpha'"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Raft RPCs too: the scope is checked before the message is even decoded.
    let junk = || RaftMessage {
        json: b"{}".to_vec(),
    };
    let refused = peers
        .client(&a)
        .unwrap()
        .vote(peers.request(junk(), Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(is_scope_refusal(&refused), "{refused:?}");
    let same_scope = Peers::new(intruder.node_id(), "alpha").unwrap();
    let undecodable = same_scope
        .client(&a)
        .unwrap()
        .append(same_scope.request(junk(), Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert_eq!(undecodable.code(), tonic::Code::InvalidArgument);

    assert!(matches!(
        same_scope
            .forward(&a, &Op::Transfer(node_a.node_id()), Duration::from_secs(2))
            .await,
        Ok(Answer::Done(_) | Answer::NotLeader { .. })
    ));

    let leader = agreed_leader(&[&node_a, &node_b]).await;
    let term = node_a.status().borrow().term;
    // Let the intruder campaign for a few election timeouts.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = intruder.status().borrow().clone();
    assert_eq!(s.leader, None, "the intruder found a leader: {s:?}");
    assert!(!intruder.confirm_leadership().await);
    for node in [&node_a, &node_b] {
        let s = node.status().borrow().clone();
        assert_eq!(s.leader, Some(leader), "the alpha leader changed");
        assert_eq!(s.term, term, "the intruder disturbed alpha's term");
        assert!(s.voters.iter().all(|(id, _)| *id != intruder.node_id()));
    }
    assert_eq!(node_a.state().config, serde_json::Value::Null);
    for node in [&node_a, &node_b, &intruder] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_catch_up_a_new_node() {
    let tuning = Tuning {
        snapshot_every: 10,
        logs_to_keep: 0,
    };
    let (listeners, addrs, dirs) = bind_many(3).await;
    let mut listeners = listeners;
    let late = listeners.pop().unwrap();
    // Two of three voters are a quorum: the third starts only after the log was purged.
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        nodes.push(start("alpha", &addrs, i, dirs[i].path(), listener, tuning).await);
    }
    agreed_leader(&[&nodes[0], &nodes[1]]).await;
    for n in 1..=35 {
        let outcome = nodes[n % 2]
            .propose(set_config(json!({ "n": n })))
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Applied);
    }
    // 36 entries (35 commands after the membership): a snapshot every 10 entries, none kept,
    // so both nodes purge their log up to their latest snapshot.
    for node in &nodes {
        wait_for("a snapshot and a purge", || {
            let m = node.metrics();
            let snapshot = m.snapshot?.index;
            let applied = m.last_applied?.index;
            (applied >= 36 && snapshot >= 20 && m.purged.map(|p| p.index) == Some(snapshot))
                .then_some(())
        })
        .await;
    }

    let node_c = start("alpha", &addrs, 2, dirs[2].path(), late, tuning).await;
    wait_for("the late node to install the snapshot", || {
        (node_c.state().config == json!({ "n": 35 })).then_some(())
    })
    .await;
    assert!(
        node_c.metrics().snapshot.is_some(),
        "the late node caught up without a snapshot"
    );
    nodes.push(node_c);
    for node in &nodes {
        node.shutdown().await;
    }
}
