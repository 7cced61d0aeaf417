//! [`Store`]: the one sled database in `data_dir` holding the Raft log, the vote and the state
//! machine, and the cluster scope it belongs to.
//!
//! Trees: `log` (entries keyed by big-endian index), `raft` (vote, committed, last purged),
//! `sm` (last applied, membership, cluster state, snapshot), `meta` (scope). The scope is written
//! at first start; a store of another cluster is refused, never reused.
//!
//! Hazards: sled flushes in the background only every 500 ms; whoever needs durability flushes
//! explicitly (`Store::flush`) before reporting success. sled's default cache is 1 GiB: keep it
//! small. sled holds an exclusive lock on the directory until every handle is dropped.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RaftError;

const CACHE_CAPACITY: u64 = 16 * 1024 * 1024;
const META_TREE: &str = "meta";
const SCOPE_KEY: &str = "scope";

/// The sled database of one node.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    db: sled::Db,
    path: PathBuf,
}

impl Store {
    /// Open (or create) the store in `dir` for cluster `scope`. Blocking.
    pub(crate) fn open(dir: &Path, scope: &str) -> Result<Self, RaftError> {
        let storage = |source: io::Error| RaftError::Storage {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(storage)?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|e| storage(e.into()))?;
        let meta = db.open_tree(META_TREE).map_err(|e| storage(e.into()))?;
        match meta.get(SCOPE_KEY).map_err(|e| storage(e.into()))? {
            Some(stored) => {
                let stored = String::from_utf8_lossy(&stored).into_owned();
                if stored != scope {
                    return Err(RaftError::ScopeMismatch {
                        path: dir.to_path_buf(),
                        stored,
                        configured: scope.to_string(),
                    });
                }
            }
            None => {
                meta.insert(SCOPE_KEY, scope.as_bytes())
                    .map_err(|e| storage(e.into()))?;
                db.flush().map_err(|e| storage(e.into()))?;
            }
        }
        Ok(Self {
            db,
            path: dir.to_path_buf(),
        })
    }

    pub(crate) fn tree(&self, name: &str) -> Result<sled::Tree, RaftError> {
        self.db.open_tree(name).map_err(|e| RaftError::Storage {
            path: self.path.clone(),
            source: e.into(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database occupies on disk (0 if sled cannot tell).
    pub(crate) fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Make everything written so far durable.
    pub(crate) async fn flush(&self) -> io::Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }
}

/// Encode a value for sled or the wire.
pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Decode a stored (or received) value; `what` names it in the error. The error quotes at most
/// [`MAX_ERROR_DETAIL`] characters of serde's message, which can quote the input: a peer's
/// 100 KB field name once became a gRPC status header larger than HTTP/2 allows, and the
/// client dropped the whole connection.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("cannot decode the {what}: {}", bounded(&e.to_string())),
        )
    })
}

/// The most characters of a decoding error's detail an error message carries.
pub(crate) const MAX_ERROR_DETAIL: usize = 200;

/// `text` cut to [`MAX_ERROR_DETAIL`] characters, saying so.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_DETAIL) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
    }
}

/// Read and decode one key of a tree.
pub(crate) fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> io::Result<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => decode(&bytes, key).map(Some),
        None => Ok(None),
    }
}
