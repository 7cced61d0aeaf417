//! [`StateMachine`]: applies committed entries to the [`ClusterState`] through the pure
//! `state::apply`, persists the result, publishes it, and builds and installs snapshots (openraft's
//! `RaftStateMachine`).
//!
//! Everything lives in the `sm` tree: last applied log id, last membership, the state as JSON and
//! the current snapshot (meta + data). Each apply batch and each snapshot install is written in
//! one sled batch and flushed before replies go out, so last-applied, membership and state never
//! disagree on disk (stack.md, pitfall 6).
//!
//! Hazard: `apply` must stay deterministic; the only time it sees is the leader's stamp inside
//! each `Proposal`. Never read a clock here.

use std::io;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use tokio::sync::watch;

use super::RaftError;
use super::store::{self, Store};
use super::type_config::{
    LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};
use crate::state::{self, ClusterState, Outcome};

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const STATE: &str = "state";
const SNAPSHOT_META: &str = "snapshot_meta";
const SNAPSHOT_DATA: &str = "snapshot_data";

/// The applied part of the log, kept in memory and in sled.
#[derive(Clone, Debug, Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    state: ClusterState,
}

pub(crate) struct StateMachine {
    store: Store,
    tree: sled::Tree,
    applied: Applied,
    publish: watch::Sender<Arc<ClusterState>>,
}

impl StateMachine {
    /// Load the persisted state; `publish` receives it now and after every change.
    pub(crate) fn open(
        store: &Store,
        publish: watch::Sender<Arc<ClusterState>>,
    ) -> Result<Self, RaftError> {
        let tree = store.tree("sm")?;
        let corrupt = |e: io::Error| RaftError::Corrupt {
            path: store.path().to_path_buf(),
            detail: e.to_string(),
        };
        let applied = Applied {
            last_applied: store::get(&tree, LAST_APPLIED).map_err(corrupt)?,
            membership: store::get(&tree, MEMBERSHIP)
                .map_err(corrupt)?
                .unwrap_or_default(),
            state: store::get(&tree, STATE)
                .map_err(corrupt)?
                .unwrap_or_default(),
        };
        publish.send_replace(Arc::new(applied.state.clone()));
        Ok(Self {
            store: store.clone(),
            tree,
            applied,
            publish,
        })
    }

    /// Persist last-applied, membership and state in one batch, durably.
    async fn persist(&self, snapshot: Option<(&SnapshotMeta, &[u8])>) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        match &self.applied.last_applied {
            Some(log_id) => batch.insert(LAST_APPLIED, store::encode(log_id)?),
            None => batch.remove(LAST_APPLIED),
        }
        batch.insert(MEMBERSHIP, store::encode(&self.applied.membership)?);
        batch.insert(STATE, store::encode(&self.applied.state)?);
        if let Some((meta, data)) = snapshot {
            batch.insert(SNAPSHOT_META, store::encode(meta)?);
            batch.insert(SNAPSHOT_DATA, data);
        }
        self.tree.apply_batch(batch)?;
        self.store.flush().await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut replies = Vec::new();
        let mut changed = false;
        while let Some((entry, responder)) = entries.try_next().await? {
            let outcome = match &entry.payload {
                EntryPayload::Blank => Outcome::Applied,
                EntryPayload::Normal(proposal) => {
                    changed = true;
                    state::apply(&mut self.applied.state, proposal)
                }
                EntryPayload::Membership(membership) => {
                    self.applied.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    Outcome::Applied
                }
            };
            self.applied.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                replies.push((responder, outcome));
            }
        }
        self.persist(None).await?;
        if changed {
            self.publish
                .send_replace(Arc::new(self.applied.state.clone()));
        }
        for (responder, outcome) in replies {
            responder.send(outcome);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            tree: self.tree.clone(),
            applied: self.applied.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let state: ClusterState = store::decode(&snapshot, "snapshot")?;
        self.applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            state,
        };
        self.persist(Some((meta, &snapshot))).await?;
        self.publish
            .send_replace(Arc::new(self.applied.state.clone()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let meta: Option<SnapshotMeta> = store::get(&self.tree, SNAPSHOT_META)?;
        let data = self.tree.get(SNAPSHOT_DATA)?;
        match (meta, data) {
            (Some(meta), Some(data)) => Ok(Some(Snapshot {
                meta,
                snapshot: data.to_vec(),
            })),
            _ => Ok(None),
        }
    }
}

/// A frozen copy of the applied state, turned into a snapshot off the apply path.
pub(crate) struct SnapshotBuilder {
    store: Store,
    tree: sled::Tree,
    applied: Applied,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let meta = SnapshotMeta {
            last_log_id: self.applied.last_applied,
            last_membership: self.applied.membership.clone(),
        };
        let data = store::encode(&self.applied.state)?;
        let meta_bytes = store::encode(&meta)?;
        // Never replace a newer snapshot (one installed from the leader meanwhile).
        let result = self.tree.transaction(|tx| {
            if let Some(current) = tx.get(SNAPSHOT_META)? {
                let current: SnapshotMeta = store::decode(&current, "snapshot meta")
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                if current.last_log_id > meta.last_log_id {
                    return Ok(());
                }
            }
            tx.insert(SNAPSHOT_META, meta_bytes.as_slice())?;
            tx.insert(SNAPSHOT_DATA, data.as_slice())?;
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Abort(e)) => return Err(e),
            Err(sled::transaction::TransactionError::Storage(e)) => return Err(e.into()),
        }
        self.store.flush().await?;
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}
