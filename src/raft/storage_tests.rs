//! The sled stores against openraft's conformance suite, plus what the suite cannot check:
//! normal entries through `state::apply`, durability across reopening, and the scope guard.

use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderId;
use openraft::{RaftLogReader, RaftTypeConfig, StorageError};
use tempfile::TempDir;
use tokio::sync::watch;

use super::RaftError;
use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::store::Store;
use super::type_config::{Entry, LogId, TypeConfig, Vote};
use crate::state::{ClusterState, Command, Outcome, Proposal, Rejection};
use crate::types::{MemberName, UnixMillis};

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for SledBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let fail = |e: RaftError| StorageError::read(TypeConfig::err_from_string(e));
        let dir = TempDir::new().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let store = Store::open(dir.path(), "suite").map_err(fail)?;
        let log = LogStore::open(&store).map_err(fail)?;
        let (tx, _rx) = watch::channel(Arc::new(ClusterState::default()));
        let sm = StateMachine::open(&store, tx).map_err(fail)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test]
async fn sled_stores_pass_the_openraft_suite() {
    Suite::test_all(SledBuilder).await.unwrap();
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        <TypeConfig as RaftTypeConfig>::LeaderId::new(term, 1).to_committed(),
        index,
    )
}

fn set_config(ttl: u64) -> Proposal {
    Proposal {
        at: UnixMillis(1_000),
        command: Command::SetConfig {
            config: serde_json::json!({ "ttl": ttl }),
            expected: None,
        },
    }
}

async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures::stream::iter(items)).await.unwrap();
}

#[tokio::test]
async fn normal_entries_go_through_state_apply_and_are_published() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), "demo").unwrap();
    let (tx, mut rx) = watch::channel(Arc::new(ClusterState::default()));
    let mut sm = StateMachine::open(&store, tx).unwrap();
    rx.borrow_and_update();

    apply(
        &mut sm,
        vec![
            Entry::new_blank(log_id(1, 1)),
            Entry::new_normal(log_id(1, 2), set_config(30)),
        ],
    )
    .await;

    assert!(rx.has_changed().unwrap(), "the new state was not published");
    assert_eq!(
        rx.borrow().written_config(),
        &serde_json::json!({ "ttl": 30 })
    );
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));

    // A rejected command leaves the state alone but still advances last-applied.
    let finish = Proposal {
        at: UnixMillis(2_000),
        command: Command::FinishBootstrap {
            member: MemberName::from("a"),
            sysid: "1".into(),
        },
    };
    let mut expected = crate::state::ClusterState::default();
    assert_eq!(
        crate::state::apply(&mut expected, &finish),
        Outcome::Rejected(Rejection::NotBootstrapping {
            member: MemberName::from("a")
        })
    );
    apply(&mut sm, vec![Entry::new_normal(log_id(1, 3), finish)]).await;
    assert_eq!(
        rx.borrow().written_config(),
        &serde_json::json!({ "ttl": 30 })
    );
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 3)));
}

#[tokio::test]
async fn everything_survives_reopening_the_store() {
    let dir = TempDir::new().unwrap();
    let vote = Vote::new(3, 7);
    {
        let store = Store::open(dir.path(), "demo").unwrap();
        let mut log = LogStore::open(&store).unwrap();
        log.save_vote(&vote).await.unwrap();
        log.blocking_append(vec![
            Entry::new_blank(log_id(1, 1)),
            Entry::new_normal(log_id(1, 2), set_config(10)),
        ])
        .await
        .unwrap();
        let (tx, _rx) = watch::channel(Arc::new(ClusterState::default()));
        let mut sm = StateMachine::open(&store, tx).unwrap();
        apply(
            &mut sm,
            vec![Entry::new_normal(log_id(1, 2), set_config(10))],
        )
        .await;
    }
    let store = Store::open(dir.path(), "demo").unwrap();
    let mut log = LogStore::open(&store).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    let entries = log.try_get_log_entries(1..3).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].log_id, log_id(1, 2));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 2)));

    let (tx, rx) = watch::channel(Arc::new(ClusterState::default()));
    let mut sm = StateMachine::open(&store, tx).unwrap();
    assert_eq!(
        rx.borrow().written_config(),
        &serde_json::json!({ "ttl": 10 })
    );
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 2)));
}

/// A log holding blank entries 1..=5 of term 1.
async fn log_of_five_blanks() -> (TempDir, Store, LogStore) {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path(), "demo").unwrap();
    let mut log = LogStore::open(&store).unwrap();
    log.blocking_append((1..=5).map(|i| Entry::new_blank(log_id(1, i))))
        .await
        .unwrap();
    (dir, store, log)
}

#[tokio::test]
async fn a_purge_interrupted_before_deleting_entries_reads_as_purged() {
    let (_dir, store, mut log) = log_of_five_blanks().await;
    // The crash came after the purge point was written, before the entries were deleted.
    let raft_tree = store.tree("raft").unwrap();
    raft_tree
        .insert("last_purged", serde_json::to_vec(&log_id(1, 5)).unwrap())
        .unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));

    // Purging again completes the deletion and keeps the purge point.
    log.purge(log_id(1, 5)).await.unwrap();
    assert!(log.try_get_log_entries(0..10).await.unwrap().is_empty());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
}

#[tokio::test]
async fn purge_deletes_entries_up_to_the_purge_point() {
    let (_dir, _store, mut log) = log_of_five_blanks().await;
    log.purge(log_id(1, 3)).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    let left: Vec<u64> = log
        .try_get_log_entries(0..10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(left, vec![4, 5]);
}

#[test]
fn a_store_of_another_cluster_is_refused() {
    let dir = TempDir::new().unwrap();
    drop(Store::open(dir.path(), "alpha").unwrap());
    match Store::open(dir.path(), "beta") {
        Err(RaftError::ScopeMismatch {
            stored, configured, ..
        }) => {
            assert_eq!(stored, "alpha");
            assert_eq!(configured, "beta");
        }
        other => panic!("expected a scope mismatch, got {other:?}"),
    }
    Store::open(dir.path(), "alpha").unwrap();
}
