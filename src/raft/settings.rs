//! [`RaftSettings`]: who this node is, who its peers are, where its data lives, its timeouts; and
//! the node id derived from an address ([`node_id_for`]).
//!
//! Validated once at start ([`RaftSettings::validate`]): incoherent timeouts, a node listed as
//! its own partner, or duplicate partners are refused before anything touches the disk.
//!
//! Hazard: the node id is a hash of the address *text*. "127.0.0.1:2222" and "localhost:2222" are
//! different nodes; every agent must list a peer under the same spelling it advertises.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::{NodeId, PeerAuth, RaftError};

/// Stable node id from a raft address string ("127.0.0.1:2222"): the FNV-1a 64-bit hash of the
/// address text. Never reuse an address for a different node while the old node's log may return
/// (a node with an empty log must not take over an id that voted before).
pub fn node_id_for(addr: &str) -> NodeId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    addr.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The Raft part of an agent's configuration (Patroni's `raft:` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftSettings {
    /// Cluster name; peers with another scope are refused.
    pub scope: String,
    /// The name of the member this node runs (Patroni's `name`), told to whoever asks what this
    /// node is before adding it to the cluster. Empty in tests that run Raft alone.
    pub member_name: String,
    /// host:port others dial (advertised).
    pub self_addr: String,
    /// The other voters (host:port).
    pub partner_addrs: Vec<String>,
    /// sled lives here (created if missing).
    pub data_dir: PathBuf,
    /// Leader heartbeat interval; default 100 ms (see `config::raft` for why).
    pub heartbeat: Duration,
    /// Default 400 ms.
    pub election_timeout_min: Duration,
    /// Default 800 ms.
    pub election_timeout_max: Duration,
    /// How peers authenticate each other on the gRPC port (default: not at all).
    pub auth: PeerAuth,
}

impl RaftSettings {
    pub fn new(
        scope: impl Into<String>,
        self_addr: impl Into<String>,
        partner_addrs: Vec<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            scope: scope.into(),
            member_name: String::new(),
            self_addr: self_addr.into(),
            partner_addrs,
            data_dir: data_dir.into(),
            heartbeat: crate::config::DEFAULT_HEARTBEAT_INTERVAL,
            election_timeout_min: crate::config::DEFAULT_ELECTION_TIMEOUT_MIN,
            election_timeout_max: crate::config::DEFAULT_ELECTION_TIMEOUT_MAX,
            auth: PeerAuth::Open,
        }
    }

    /// Refuse settings Raft cannot run safely with.
    pub fn validate(&self) -> Result<(), RaftError> {
        let invalid = |msg: String| Err(RaftError::InvalidSettings(msg));
        if self.scope.trim().is_empty() {
            return invalid("the cluster scope is empty".into());
        }
        if !self.scope.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return invalid(format!(
                "the cluster scope {:?} must be printable ASCII",
                self.scope
            ));
        }
        check_addr("self_addr", &self.self_addr)?;
        for addr in &self.partner_addrs {
            check_addr("partner_addrs", addr)?;
        }
        if self.heartbeat.is_zero() {
            return invalid("the Raft heartbeat interval is zero".into());
        }
        if self.heartbeat * 3 > self.election_timeout_min {
            return invalid(format!(
                "the election timeout ({} ms) must be at least three heartbeats ({} ms each)",
                self.election_timeout_min.as_millis(),
                self.heartbeat.as_millis()
            ));
        }
        if self.election_timeout_min >= self.election_timeout_max {
            return invalid(format!(
                "election_timeout_min ({} ms) must be below election_timeout_max ({} ms)",
                self.election_timeout_min.as_millis(),
                self.election_timeout_max.as_millis()
            ));
        }
        if self.partner_addrs.contains(&self.self_addr) {
            return invalid(format!(
                "partner_addrs lists this node's own address {}",
                self.self_addr
            ));
        }
        let mut ids: BTreeMap<NodeId, &str> = BTreeMap::new();
        for addr in std::iter::once(&self.self_addr).chain(&self.partner_addrs) {
            if let Some(other) = ids.insert(node_id_for(addr), addr) {
                return if other == addr {
                    invalid(format!("partner_addrs lists {addr} twice"))
                } else {
                    invalid(format!(
                        "addresses {other} and {addr} hash to the same node id"
                    ))
                };
            }
        }
        Ok(())
    }

    pub(crate) fn node_id(&self) -> NodeId {
        node_id_for(&self.self_addr)
    }

    /// Every voter, this node included: (id, address), sorted by id. Identical on every node of
    /// a correctly configured cluster.
    pub(crate) fn voters(&self) -> BTreeMap<NodeId, String> {
        std::iter::once(&self.self_addr)
            .chain(&self.partner_addrs)
            .map(|addr| (node_id_for(addr), addr.clone()))
            .collect()
    }
}

fn check_addr(field: &str, addr: &str) -> Result<(), RaftError> {
    check_raft_addr(addr).map_err(|e| RaftError::InvalidSettings(format!("{field}: {e}")))
}

/// Whether `addr` can be a Raft address: `host:port`, port 1-65535, nothing else around it.
/// The error names what is wrong, for a one-line refusal.
pub fn check_raft_addr(addr: &str) -> Result<(), String> {
    let well_formed = !addr.contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
        && addr.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
    if well_formed {
        Ok(())
    } else {
        Err(format!("{addr:?} is not host:port"))
    }
}

/// Raft tuning that operators do not set; tests lower the snapshot threshold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries already in a snapshot kept in the log (for followers slightly behind).
    pub logs_to_keep: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            snapshot_every: 500,
            logs_to_keep: 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RaftSettings {
        RaftSettings::new(
            "demo",
            "10.0.0.1:2222",
            vec!["10.0.0.2:2222".into(), "10.0.0.3:2222".into()],
            "/tmp/x",
        )
    }

    #[test]
    fn node_id_is_fnv1a_64_of_the_address_text() {
        assert_eq!(node_id_for(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(node_id_for("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(node_id_for("foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(node_id_for("127.0.0.1:2222"), node_id_for("localhost:2222"));
    }

    #[test]
    fn raft_addresses_are_host_and_port() {
        for good in ["10.0.0.1:2222", "db-1.example:1", "[::1]:2222"] {
            assert_eq!(check_raft_addr(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "10.0.0.1",
            ":2222",
            "10.0.0.1:0",
            "10.0.0.1:65536",
            "10.0.0.1:x",
            "http://10.0.0.1:2222",
            "10.0.0.1 :2222",
        ] {
            assert_eq!(
                check_raft_addr(bad),
                Err(format!("{bad:?} is not host:port")),
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = settings();
        assert_eq!(s.heartbeat, Duration::from_millis(100));
        assert_eq!(s.election_timeout_min, Duration::from_millis(400));
        assert_eq!(s.election_timeout_max, Duration::from_millis(800));
        s.validate().unwrap();
        assert_eq!(s.voters().len(), 3);
    }

    #[test]
    fn incoherent_settings_are_refused() {
        type Mutation = fn(&mut RaftSettings);
        let cases: [(&str, Mutation); 9] = [
            ("empty scope", |s| s.scope = " ".into()),
            ("non-ascii scope", |s| s.scope = "clüster".into()),
            ("self in partners", |s| {
                s.partner_addrs.push(s.self_addr.clone())
            }),
            ("duplicate partner", |s| {
                s.partner_addrs.push("10.0.0.2:2222".into())
            }),
            ("no port", |s| s.self_addr = "10.0.0.1".into()),
            ("bad partner", |s| s.partner_addrs.push("x:0".into())),
            ("zero heartbeat", |s| s.heartbeat = Duration::ZERO),
            ("heartbeat too slow", |s| {
                s.heartbeat = Duration::from_millis(400)
            }),
            ("min not below max", |s| {
                s.election_timeout_max = s.election_timeout_min
            }),
        ];
        for (name, mutate) in cases {
            let mut s = settings();
            mutate(&mut s);
            assert!(
                matches!(s.validate(), Err(RaftError::InvalidSettings(_))),
                "{name} was accepted"
            );
        }
    }
}
