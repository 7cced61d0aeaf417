//! In-process clusters on 127.0.0.1: election, forwarding, restart, foreign scopes, snapshots,
//! online membership changes.
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
use super::{
    JoinState, MemberChange, MembersError, NodeId, ProposeError, RaftNode, RaftSettings, Refusal,
    RefusalKind, Standing, node_id_for,
};
use crate::state::{Command, Outcome, Rejection};
use crate::types::MemberName;

const WAIT: Duration = Duration::from_secs(10);

pub(super) async fn bind() -> (TcpListener, String) {
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
            .all(|n| n.state().written_config() == &config)
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
pub(super) async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
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
pub(super) async fn agreed_leader(nodes: &[&RaftNode]) -> NodeId {
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
            node.state().written_config(),
            &json!({"ttl": 30}),
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
    assert_eq!(node_a.state().config, None);
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
        (node_c.state().written_config() == &json!({ "n": 35 })).then_some(())
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

/// Start a node named `name` at `addr` whose partners are `partners`.
async fn start_named(name: &str, addr: &str, partners: &[String], dir: &Path) -> RaftNode {
    let listener = TcpListener::bind(addr).await.unwrap();
    let partners: Vec<&String> = partners.iter().collect();
    let mut s = settings("alpha", addr, &partners, dir);
    s.member_name = name.into();
    RaftNode::start_with(s, Tuning::default(), listener, CancellationToken::new())
        .await
        .unwrap()
}

/// Member `name` reports its record with its Raft address, as an agent does.
async fn report(via: &RaftNode, name: &str, raft_addr: &str) {
    let record = crate::state::Member::at_raft_addr(raft_addr, Default::default());
    let command = Command::Report {
        member: MemberName::from(name),
        record: Box::new(record),
    };
    assert_eq!(via.propose(command).await.unwrap(), Outcome::Applied);
}

fn add(name: &str, addr: &str) -> MemberChange {
    MemberChange::Add {
        name: MemberName::from(name),
        raft_addr: addr.into(),
    }
}

fn remove(name: &str) -> MemberChange {
    MemberChange::Remove {
        name: MemberName::from(name),
    }
}

/// The refusal of `change`, asked of `via`; panics if it was carried out.
async fn refusal(via: &RaftNode, change: MemberChange) -> Refusal {
    match via.change_members(change).await {
        Err(MembersError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_removed_online_and_ids_are_never_reused() {
    let (listeners, addrs, dirs) = bind_many(3).await;
    let extra: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let partners: Vec<&String> = addrs.iter().filter(|a| **a != addrs[i]).collect();
        let mut s = settings("alpha", &addrs[i], &partners, dirs[i].path());
        s.member_name = format!("n{i}");
        let node = RaftNode::start_with(s, Tuning::default(), listener, CancellationToken::new());
        nodes.push(node.await.unwrap());
    }
    let all: Vec<&RaftNode> = nodes.iter().collect();
    let leader = agreed_leader(&all).await;
    let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
    for (i, addr) in addrs.iter().enumerate() {
        report(follower, &format!("n{i}"), addr).await;
    }
    // The database lease is held by a member that does not lead Raft.
    let holder = addrs.iter().position(|a| node_id_for(a) != leader).unwrap();
    let claim = Command::ClaimBootstrap {
        member: MemberName::from(format!("n{holder}").as_str()),
        dcs_config: json!({}),
    };
    assert!(follower.propose(claim).await.unwrap().is_applied());

    // A fourth agent whose partners run the cluster waits to be added: it never initializes.
    let (l, d_addr) = bind().await;
    drop(l);
    let d = start_named("n3", &d_addr, &addrs, extra[0].path()).await;
    wait_for("the new node to see the running cluster", || {
        (d.standing() == Standing::Joining(JoinState::AwaitingAdmission)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        d.status().borrow().voters.is_empty(),
        "the new node initialized"
    );

    // Refusals change nothing.
    let r = refusal(follower, add("wrong", &d_addr)).await;
    assert!(r.to_string().contains("is named 'n3', not 'wrong'"), "{r}");
    let (l, nobody_addr) = bind().await;
    drop(l);
    let r = refusal(follower, add("n8", &nobody_addr)).await;
    assert!(
        r.to_string()
            .starts_with("no agent of this cluster answers"),
        "{r}"
    );
    assert_eq!(r.kind(), RefusalKind::Precondition);
    assert_eq!(
        refusal(follower, remove("nobody")).await,
        Refusal::UnknownMember {
            name: MemberName::from("nobody")
        }
    );
    let holder_name = MemberName::from(format!("n{holder}").as_str());
    assert_eq!(
        refusal(follower, remove(holder_name.as_str())).await,
        Refusal::LeaseHolder { name: holder_name }
    );
    assert!(matches!(
        refusal(follower, remove(&format!("n{}", (holder + 1) % 3))).await,
        Refusal::TooFewVoters { left: 2, .. }
    ));
    assert_eq!(follower.status().borrow().voters.len(), 3);

    // One change at a time: while the leader carries one out, another is refused.
    let leader_node = nodes.iter().find(|n| n.node_id() == leader).unwrap();
    let busy = leader_node.hold_membership_changes().await;
    let r = refusal(follower, add("n3", &d_addr)).await;
    assert_eq!(
        r,
        Refusal::InProgress {
            detail: "another membership change is being carried out".into()
        }
    );
    assert_eq!(r.kind(), RefusalKind::Conflict);
    drop(busy);

    // Added through a follower: a learner first, then a voter everywhere.
    let done = follower.change_members(add("n3", &d_addr)).await.unwrap();
    assert!(done.contains("is a voter now"), "{done}");
    wait_for("every node to see four voters", || {
        nodes
            .iter()
            .chain([&d])
            .all(|n| n.status().borrow().voters.len() == 4)
            .then_some(())
    })
    .await;
    assert_eq!(d.standing(), Standing::Voter);
    assert!(matches!(
        refusal(follower, add("n3", &d_addr)).await,
        Refusal::AlreadyVoter { .. }
    ));
    let seen = follower.members().await.unwrap();
    assert_eq!(seen.leader, Some(leader));
    assert_eq!(seen.nodes.iter().filter(|n| n.voter).count(), 4);
    assert!(seen.nodes.iter().all(|n| n.last_ack_ms.is_some()));

    // Removing the Raft leader itself: it hands leadership over, its successor removes it.
    let leader_i = addrs.iter().position(|a| node_id_for(a) == leader).unwrap();
    let done = follower
        .change_members(remove(&format!("n{leader_i}")))
        .await
        .unwrap();
    assert!(done.contains("was removed from the Raft cluster"), "{done}");
    let rest: Vec<&RaftNode> = nodes
        .iter()
        .chain([&d])
        .filter(|n| n.node_id() != leader)
        .collect();
    wait_for("the others to see three voters and the id retired", || {
        rest.iter()
            .all(|n| {
                n.status().borrow().voters.len() == 3
                    && n.state().retired.contains_key(&leader)
                    && !n
                        .state()
                        .members
                        .contains_key(&MemberName::from(format!("n{leader_i}").as_str()))
            })
            .then_some(())
    })
    .await;
    let new_leader = agreed_leader(&rest).await;
    assert_ne!(new_leader, leader);

    // The removed address is retired for good; three voters is the floor.
    let r = refusal(rest[0], add("again", &addrs[leader_i])).await;
    assert!(matches!(r, Refusal::Retired { .. }), "{r}");
    assert_eq!(r.kind(), RefusalKind::Conflict);
    let other = (0..3).find(|i| *i != leader_i && *i != holder).unwrap();
    assert!(matches!(
        refusal(rest[0], remove(&format!("n{other}"))).await,
        Refusal::TooFewVoters { .. }
    ));

    // An agent that founded a cluster of its own cannot be added: its log would diverge.
    let (l, alone_addr) = bind().await;
    drop(l);
    let alone = start_named("n9", &alone_addr, &[], extra[1].path()).await;
    wait_for("the lone node to initialize", || {
        (alone.standing() == Standing::Voter).then_some(())
    })
    .await;
    let r = refusal(rest[0], add("n9", &alone_addr)).await;
    assert!(r.to_string().contains("already holds a Raft log"), "{r}");
    assert_eq!(rest[0].status().borrow().voters.len(), 3);

    for node in nodes.iter().chain([&d, &alone]) {
        node.shutdown().await;
    }
}
