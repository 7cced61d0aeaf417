//! Fuzz harnesses of the Raft layer (see `crate::fuzz`):
//!
//! - log entries and snapshots as read from disk: decoded (mutated JSON of real entries, random
//!   bytes) and, when they decode, applied to the cluster state: an error or an outcome, never
//!   a panic, and the same outcome on two copies of the state;
//! - a store whose log holds a corrupted entry: the node starts or refuses to, never panics;
//! - every gRPC message, to a running node, in plain text (what a peer that passed the
//!   handshake could send): an answer or an error status, never a crash; a message refused as
//!   undecodable changes nothing; the node still commits afterwards.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderId;
use proptest::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::peers::Peers;
use super::proto::{
    ForwardMembersRequest, ForwardRequest, ForwardTransferRequest, RaftMessage, SnapshotMessage,
};
use super::settings::Tuning;
use super::store::{self, Store};
use super::type_config::{Entry, LogId, SnapshotMeta, TypeConfig, Vote};
use super::{RaftNode, RaftSettings};
use crate::fuzz;
use crate::state::{ClusterState, Command, Member, MemberStatus, Proposal, apply};
use crate::types::{Generation, Lsn, MemberName, UnixMillis};

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        <TypeConfig as RaftTypeConfig>::LeaderId::new(term, 1).to_committed(),
        index,
    )
}

fn name(n: &str) -> MemberName {
    MemberName::new(n)
}

fn member(lsn: u64) -> Member {
    Member {
        api_url: "http://127.0.0.1:8008/patroni".into(),
        conn_url: Some("postgres://127.0.0.1:5432/postgres".into()),
        raft_addr: Some("127.0.0.1:2222".into()),
        version: "test".into(),
        tags: [("nofailover".to_owned(), json!(false))]
            .into_iter()
            .collect(),
        proxy_url: None,
        status: MemberStatus {
            wal_position: Some(Lsn(lsn)),
            ..Default::default()
        },
        reported_at: UnixMillis(1),
    }
}

/// A run of real commands: members report, one bootstraps and leads, the configuration and
/// the synchronous standbys change, the lease is renewed and handed over.
fn commands() -> Vec<Command> {
    let g1 = Generation(1);
    vec![
        Command::Report {
            member: name("a"),
            record: Box::new(member(100)),
        },
        Command::Report {
            member: name("b"),
            record: Box::new(member(90)),
        },
        Command::ClaimBootstrap {
            member: name("a"),
            dcs_config: json!({"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"work_mem": "8MB"}}}),
        },
        Command::FinishBootstrap {
            member: name("a"),
            sysid: "7000000000000000001".into(),
        },
        Command::RenewLease {
            member: name("a"),
            generation: g1,
            lease_ms: Some(3_000),
        },
        Command::SetSync {
            member: name("a"),
            generation: g1,
            standbys: BTreeSet::from([name("b")]),
            quorum: 0,
            site_guarantee: true,
        },
        Command::SetConfig {
            config: json!({"ttl": 30, "pause": true}),
            expected: None,
        },
        Command::CancelSwitchover,
        Command::HandOver {
            member: name("a"),
            generation: g1,
            to: name("b"),
        },
        Command::ReleaseLease {
            member: name("b"),
            generation: Generation(2),
            last_lsn: Some(Lsn(200)),
        },
        Command::ExpireLease {
            generation: Generation(2),
            renewals: 3,
        },
        Command::Promote {
            member: name("a"),
            ended: Generation(2),
        },
        Command::RetireNode {
            node_id: 7,
            raft_addr: "10.0.0.9:2222".into(),
            member: Some(name("c")),
        },
        Command::RemoveMember { member: name("c") },
    ]
}

fn proposal(command: Command, at: u64) -> Proposal {
    Proposal {
        at: UnixMillis(at),
        command,
    }
}

/// The state after [`commands`].
fn populated() -> ClusterState {
    let mut state = ClusterState::default();
    for (i, command) in commands().into_iter().enumerate() {
        apply(&mut state, &proposal(command, 1_000 + i as u64));
    }
    state
}

fn entry_seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> = commands()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let entry = Entry::new_normal(log_id(3, i as u64 + 1), proposal(c, 5_000));
            serde_json::to_value(&entry).unwrap()
        })
        .collect();
    seeds.push(serde_json::to_value(Entry::new_blank(log_id(1, 1))).unwrap());
    seeds
}

fn check_entry(bytes: &[u8], states: &[ClusterState]) -> Result<(), String> {
    let Ok(entry) = store::decode::<Entry>(bytes, "log entry") else {
        return Ok(());
    };
    // What decodes encodes back to the same value.
    let again: Entry = store::decode(&store::encode(&entry).map_err(|e| e.to_string())?, "again")
        .map_err(|e| format!("a decoded entry does not decode again: {e}"))?;
    if again != entry {
        return Err("a decoded entry changed through encode and decode".into());
    }
    if let openraft::EntryPayload::Normal(proposal) = &entry.payload {
        for state in states {
            let (mut one, mut two) = (state.clone(), state.clone());
            let first = apply(&mut one, proposal);
            let second = apply(&mut two, proposal);
            if first != second || one != two {
                return Err("apply is not deterministic".into());
            }
        }
    }
    Ok(())
}

fn check_snapshot(bytes: &[u8]) -> Result<(), String> {
    let _ = store::decode::<SnapshotMeta>(bytes, "snapshot meta");
    let _ = store::decode::<Vote>(bytes, "vote");
    let Ok(mut state) = store::decode::<ClusterState>(bytes, "snapshot") else {
        return Ok(());
    };
    for (i, command) in commands().into_iter().enumerate() {
        apply(&mut state, &proposal(command, 9_000 + i as u64));
    }
    Ok(())
}

#[tokio::test]
async fn fuzz_raft_log_entries_and_snapshots_from_disk() {
    let states = vec![ClusterState::default(), populated()];
    let entries = fuzz::bytes_near(entry_seeds());
    fuzz::run("raft log entries", entries, |bytes| {
        let result = check_entry(&bytes, &states);
        async move { result }
    })
    .await;
    let snapshot = serde_json::to_value(populated()).unwrap();
    let meta = json!({"last_log_id": serde_json::to_value(log_id(3, 14)).unwrap(),
                      "last_membership": {"log_id": null, "membership": {"configs": [], "nodes": {}}},
                      "snapshot_id": "3-14"});
    fuzz::run(
        "raft snapshots",
        fuzz::bytes_near(vec![snapshot, meta]),
        |bytes| async move { check_snapshot(&bytes) },
    )
    .await;
}

/// A one-node cluster on 127.0.0.1, leading, with a few commands committed.
async fn one_node(dir: &std::path::Path) -> (RaftNode, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut settings = RaftSettings::new("fuzz", &addr, Vec::new(), dir);
    settings.heartbeat = Duration::from_millis(50);
    settings.election_timeout_min = Duration::from_millis(200);
    settings.election_timeout_max = Duration::from_millis(400);
    let node = RaftNode::start_with(
        settings,
        Tuning::default(),
        listener,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !node.status().borrow().is_leader {
        assert!(tokio::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for command in commands().into_iter().take(5) {
        node.propose(command).await.unwrap();
    }
    (node, addr)
}

/// Which RPC a fuzz input goes to.
#[derive(Clone, Copy, Debug)]
enum Rpc {
    Vote,
    PreVote,
    Append,
    TransferLeader,
    Snapshot,
    Forward,
    ForwardTransfer,
    ForwardMembers,
}

fn message_seeds() -> Vec<Value> {
    let vote = Vote::new(9, 77);
    let mut seeds = vec![
        json!({"vote": vote, "last_log_id": log_id(9, 3)}),
        json!({"vote": vote, "prev_log_id": log_id(1, 2), "entries": entry_seeds(),
               "leader_commit": log_id(1, 2)}),
        json!({"Change": {"Add": {"name": "x", "raft_addr": "10.0.0.9:2222"}}}),
        json!({"Change": {"Remove": {"name": "a"}}}),
        json!("Read"),
        json!({"from_leader": vote, "to_node_id": 1, "last_log_id": log_id(1, 2)}),
    ];
    seeds.extend(
        commands()
            .into_iter()
            .map(|c| serde_json::to_value(c).unwrap()),
    );
    seeds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_grpc_messages() {
    let dir = TempDir::new().unwrap();
    let (node, addr) = one_node(dir.path()).await;
    let peers = Arc::new(Peers::new(0xf022, "fuzz").unwrap());
    let rpc = proptest::sample::select(vec![
        Rpc::Vote,
        Rpc::PreVote,
        Rpc::Append,
        Rpc::TransferLeader,
        Rpc::Snapshot,
        Rpc::Forward,
        Rpc::ForwardTransfer,
        Rpc::ForwardMembers,
    ]);
    // Messages up to 1 MiB: larger ones stop at the client's own limit before the node sees
    // them (and the node's limit is tested apart).
    let bytes = fuzz::bytes_near(message_seeds()).prop_filter("under 1 MiB", |b| b.len() < 1 << 20);
    let inputs = (rpc, bytes, any::<u64>());
    let timeout = Duration::from_secs(5);
    fuzz::run("gRPC messages", inputs, |(rpc, bytes, number)| {
        let (peers, addr, node) = (peers.clone(), addr.clone(), node.clone());
        async move {
            let before = (node.state(), node.status().borrow().term);
            let mut client = peers.client(&addr).map_err(|e| e.to_string())?;
            let json = || RaftMessage {
                json: bytes.clone(),
            };
            let status = match rpc {
                Rpc::Vote => client.vote(peers.request(json(), timeout)).await.err(),
                Rpc::PreVote => client.pre_vote(peers.request(json(), timeout)).await.err(),
                Rpc::Append => client.append(peers.request(json(), timeout)).await.err(),
                Rpc::TransferLeader => client
                    .transfer_leader(peers.request(json(), timeout))
                    .await
                    .err(),
                Rpc::Snapshot => {
                    let message = SnapshotMessage {
                        vote: bytes.clone(),
                        meta: bytes.clone(),
                        data: bytes.clone(),
                    };
                    client.snapshot(peers.request(message, timeout)).await.err()
                }
                Rpc::Forward => {
                    let message = ForwardRequest {
                        command: bytes.clone(),
                    };
                    client.forward(peers.request(message, timeout)).await.err()
                }
                Rpc::ForwardTransfer => {
                    let message = ForwardTransferRequest { target: number };
                    client
                        .forward_transfer(peers.request(message, timeout))
                        .await
                        .err()
                }
                Rpc::ForwardMembers => {
                    let message = ForwardMembersRequest {
                        request: bytes.clone(),
                    };
                    client
                        .forward_members(peers.request(message, timeout))
                        .await
                        .err()
                }
            };
            let Some(status) = status else { return Ok(()) };
            if std::error::Error::source(&status).is_some_and(|e| e.is::<tonic::transport::Error>())
            {
                return Err(format!("{rpc:?}: the connection broke: {status:?}"));
            }
            if status.code() == tonic::Code::InvalidArgument {
                let after = (node.state(), node.status().borrow().term);
                if after != before {
                    return Err(format!(
                        "{rpc:?}: refused as undecodable, but the state changed"
                    ));
                }
            }
            Ok(())
        }
    })
    .await;
    // Still a working node: a command commits.
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        node.propose(Command::CancelSwitchover),
    )
    .await;
    assert!(
        matches!(outcome, Ok(Ok(_)) | Ok(Err(super::ProposeError::NoLeader))),
        "{outcome:?}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_raft_store_with_a_corrupted_entry() {
    // A real store with a real log, written by a node that then stopped.
    let model = TempDir::new().unwrap();
    let (node, _) = one_node(model.path()).await;
    let last = node.status().borrow().last_log_index.unwrap_or(0);
    node.shutdown().await;
    assert!(last >= 3, "the model log is too short: {last}");
    let inputs = (1..=last, fuzz::bytes_near(entry_seeds()));
    fuzz::run(
        "raft store with a corrupted entry",
        inputs,
        |(index, bytes)| {
            let model = model.path().to_owned();
            async move {
                let dir = TempDir::new().map_err(|e| e.to_string())?;
                copy_dir(&model, dir.path()).map_err(|e| e.to_string())?;
                {
                    let store = Store::open(dir.path(), "fuzz").map_err(|e| e.to_string())?;
                    let log = store.tree("log").map_err(|e| e.to_string())?;
                    log.insert(index.to_be_bytes(), bytes)
                        .map_err(|e| e.to_string())?;
                    store.flush().await.map_err(|e| e.to_string())?;
                }
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| e.to_string())?
                    .to_string();
                let settings = RaftSettings::new("fuzz", addr, Vec::new(), dir.path());
                let stop = CancellationToken::new();
                let started = tokio::time::timeout(
                    Duration::from_secs(10),
                    RaftNode::start_with(settings, Tuning::default(), listener, stop.clone()),
                )
                .await
                .map_err(|_| "the node neither started nor refused within 10 s".to_string())?;
                if let Ok(node) = started {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    node.shutdown().await;
                }
                Ok(())
            }
        },
    )
    .await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Found by `fuzz_grpc_messages`: serde's error quoted a 100 KB field name, the status
/// message became a response header over HTTP/2's limit, and the client dropped the whole
/// connection (every call on it). Now the error is cut and the connection lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_field_name_is_refused_without_breaking_the_connection() {
    let dir = TempDir::new().unwrap();
    let (node, addr) = one_node(dir.path()).await;
    let peers = Peers::new(0xf022, "fuzz").unwrap();
    let mut client = peers.client(&addr).unwrap();
    let huge = format!("{{\"Change\": {{\"{}\": 1}}}}", "x".repeat(100_000));
    let message = ForwardMembersRequest {
        request: huge.into_bytes(),
    };
    let status = client
        .forward_members(peers.request(message, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 400, "{}", status.message().len());
    // The same channel still carries calls.
    assert!(peers.probe(&addr, Duration::from_secs(5)).await.is_ok());
    node.shutdown().await;
}

/// Found by `fuzz_grpc_messages`: an append, a snapshot or a leadership transfer whose vote is
/// not committed (a candidate's, not a leader's) reached openraft, which took it for a
/// leader's (and, in debug builds, stopped on an assertion: the node's Raft was dead). Now it
/// is refused as invalid, and the node goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_messages_with_a_candidates_vote_are_refused() {
    let dir = TempDir::new().unwrap();
    let (node, addr) = one_node(dir.path()).await;
    let peers = Peers::new(0xf022, "fuzz").unwrap();
    let mut client = peers.client(&addr).unwrap();
    let timeout = Duration::from_secs(5);
    let vote = Vote::new(9, 77);
    let append = json!({"vote": vote, "prev_log_id": null, "entries": [], "leader_commit": null});
    let transfer = json!({"from_leader": vote, "to_node_id": 1, "last_log_id": null});
    let message = |v: &Value| RaftMessage {
        json: v.to_string().into_bytes(),
    };
    let statuses = [
        client
            .append(peers.request(message(&append), timeout))
            .await
            .unwrap_err(),
        client
            .transfer_leader(peers.request(message(&transfer), timeout))
            .await
            .unwrap_err(),
        client
            .snapshot(peers.request(
                SnapshotMessage {
                    vote: serde_json::to_vec(&vote).unwrap(),
                    meta: b"{}".to_vec(),
                    data: Vec::new(),
                },
                timeout,
            ))
            .await
            .unwrap_err(),
    ];
    for status in statuses {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("not committed"), "{status:?}");
    }
    assert!(node.status().borrow().is_leader);
    node.propose(Command::CancelSwitchover).await.unwrap();
    node.shutdown().await;
}

/// Found by `fuzz_raft_store_with_a_corrupted_entry`: a log entry stored under another index
/// than its own (key 1 holding entry 2) made the node's start hang, blocking its runtime. Now
/// the start is refused with an error that says the log is corrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_entry_under_the_wrong_index_refuses_the_start() {
    let model = TempDir::new().unwrap();
    let (node, _) = one_node(model.path()).await;
    node.shutdown().await;
    let dir = TempDir::new().unwrap();
    copy_dir(model.path(), dir.path()).unwrap();
    {
        let store = Store::open(dir.path(), "fuzz").unwrap();
        let log = store.tree("log").unwrap();
        let misplaced = Entry::new_normal(log_id(1, 2), proposal(Command::CancelSwitchover, 1));
        log.insert(1u64.to_be_bytes(), store::encode(&misplaced).unwrap())
            .unwrap();
        store.flush().await.unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let settings = RaftSettings::new("fuzz", addr, Vec::new(), dir.path());
    let started = tokio::time::timeout(
        Duration::from_secs(10),
        RaftNode::start_with(
            settings,
            Tuning::default(),
            listener,
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the start neither finished nor failed within 10 s");
    let err = started.expect_err("a corrupted log was accepted");
    assert!(err.to_string().contains("corrupted"), "{err}");
}

/// Found by `fuzz_raft_log_entries_and_snapshots_from_disk`: serde_json's default float
/// parsing is not exact, so a number in a member's tags (-1.5508899208312788e-202) came back
/// from its JSON one bit different. Replicas that applied the entry and a replica that
/// installed a snapshot of it could then disagree. serde_json's `float_roundtrip` makes
/// decoding exact.
#[test]
fn a_number_survives_the_log_and_snapshots_bit_for_bit() {
    let mut record = member(90);
    let mut tags = record.tags.written().clone();
    tags.insert(String::new(), json!(-1.550_889_920_831_278_8e-202));
    record.tags = crate::state::Tags::from_written(tags);
    let entry = Entry::new_normal(
        log_id(3, 2),
        proposal(
            Command::Report {
                member: name("b"),
                record: Box::new(record),
            },
            5_000,
        ),
    );
    let bytes = store::encode(&entry).unwrap();
    let decoded: Entry = store::decode(&bytes, "log entry").unwrap();
    assert_eq!(decoded, entry);
    assert_eq!(store::encode(&decoded).unwrap(), bytes);
}
