//! [`LogStore`]: the Raft log, the vote and the committed pointer in sled (openraft's
//! `RaftLogStorage` and `RaftLogReader`).
//!
//! Durability (stack.md, pitfall 1): `save_vote` returns only once the vote is on disk; `append`
//! writes its entries in one batch, flushes, and only then reports them flushed. Violating either
//! allows two leaders in one term after a crash. Calls are serialised by openraft, so I/O
//! completes in submission order.
//!
//! Purge writes the new purge point (flushed) before deleting entries, so a crash in between
//! leaves a log that starts after the purge point, never a hole.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::RaftError;
use super::store::{self, Store};
use super::type_config::{Entry, LogId, TypeConfig, Vote};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The log store of one node. Cheap to clone: the reader openraft asks for is a clone.
#[derive(Clone, Debug)]
pub(crate) struct LogStore {
    store: Store,
    log: sled::Tree,
    raft: sled::Tree,
}

impl LogStore {
    pub(crate) fn open(store: &Store) -> Result<Self, RaftError> {
        Ok(Self {
            store: store.clone(),
            log: store.tree("log")?,
            raft: store.tree("raft")?,
        })
    }

    fn last_purged(&self) -> io::Result<Option<LogId>> {
        store::get(&self.raft, LAST_PURGED)
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The entry stored under `stored_at`, which must be its own index: a log whose keys and
/// entries disagree is corrupted, and openraft, handed such entries, waited forever at start
/// (found by `fuzz_raft_store_with_a_corrupted_entry`). The node then refuses to start, saying
/// why, rather than hanging.
fn entry_at(stored_at: &[u8], value: &[u8]) -> io::Result<Entry> {
    let entry = store::decode::<Entry>(value, "log entry")?;
    let index = <[u8; 8]>::try_from(stored_at).map(u64::from_be_bytes);
    match index {
        Ok(index) if index == entry.log_id.index => Ok(entry),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the Raft log is corrupted: the entry stored under key {stored_at:02x?} is \
                 entry {}",
                entry.log_id.index
            ),
        )),
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(key(*i)),
            Bound::Excluded(i) => Bound::Excluded(key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let empty = match range.end_bound() {
            Bound::Included(i) => start > *i,
            Bound::Excluded(i) => start >= *i,
            Bound::Unbounded => false,
        };
        if empty {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for item in self.log.range((Bound::Included(key(start)), end)) {
            let (stored_at, value) = item?;
            entries.push(entry_at(&stored_at, &value)?);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        store::get(&self.raft, VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id = self.last_purged()?;
        let last_entry = match self.log.last()? {
            Some((stored_at, value)) => Some(entry_at(&stored_at, &value)?.log_id),
            None => None,
        };
        // After a crash between writing the purge point and deleting the entries, the remaining
        // entries may all be purged ones: the purge point is then the last log id.
        let last_log_id = match (&last_entry, &last_purged_log_id) {
            (Some(entry), Some(purged)) if entry.index <= purged.index => Some(*purged),
            (Some(_), _) => last_entry,
            (None, _) => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.raft.insert(VOTE, store::encode(vote)?)?;
        self.store.flush().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not flushed: losing it only means re-learning the commit point from the leader.
        match committed {
            Some(log_id) => self.raft.insert(COMMITTED, store::encode(&log_id)?)?,
            None => self.raft.remove(COMMITTED)?,
        };
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        store::get(&self.raft, COMMITTED)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            batch.insert(&key(entry.log_id.index), store::encode(&entry)?);
        }
        let result = match self.log.apply_batch(batch) {
            Ok(()) => self.store.flush().await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match &last_log_id {
            Some(log_id) => match log_id.index.checked_add(1) {
                Some(i) => i,
                None => return Ok(()),
            },
            None => 0,
        };
        let mut batch = sled::Batch::default();
        for item in self.log.range(key(from)..) {
            let (k, _) = item?;
            batch.remove(k);
        }
        self.log.apply_batch(batch)?;
        self.store.flush().await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let advanced = match self.last_purged()? {
            Some(purged) => purged.index < log_id.index,
            None => true,
        };
        if advanced {
            self.raft.insert(LAST_PURGED, store::encode(&log_id)?)?;
            self.store.flush().await?;
        }
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=key(log_id.index)) {
            let (k, _) = item?;
            batch.remove(k);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }
}
