//! `raft`: this agent's place in the Raft group that replaces Patroni's DCS. The keys are those
//! of Patroni's own (pysyncobj) Raft DCS plus Tribune's timers.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::address;
use super::error::ConfigError;
use super::value::{Section, fmt_secs};

/// Raft heartbeat period when `raft.heartbeat_interval` is not set.
///
/// The Raft timers are bounded by the lease: while Raft has no leader no lease can be renewed,
/// and the primary fences itself `ttl - retry_timeout` (2.5 s by default) after it *sent* its
/// last committed renewal, which is at most `loop_wait / 2` (0.5 s) old when the Raft leader
/// dies. A new Raft leader must therefore be elected within 2 s, or the death of a standby's
/// host would stop the primary. With pre-vote the first candidate can be refused by a peer whose
/// own timer has not run out yet, so an election can take two timeouts: at most 1.6 s here.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// Lower bound of the randomised election timeout: four heartbeats, so a lost heartbeat or a
/// short stall of a loaded machine does not start an election (pre-vote makes a spurious one
/// harmless anyway), and about 100 times sled's fsync latency here.
pub const DEFAULT_ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(400);
/// Upper bound of the randomised election timeout (see [`DEFAULT_HEARTBEAT_INTERVAL`]).
pub const DEFAULT_ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(800);

#[derive(Clone, PartialEq)]
pub struct Raft {
    /// host:port other agents reach this agent's Raft service at; also its identity in the group.
    pub self_addr: String,
    /// host:port to bind, when it differs from `self_addr` (NAT, `0.0.0.0`).
    pub bind_addr: Option<String>,
    /// The other agents' `self_addr`s. This agent's own `self_addr` and repeated entries are
    /// dropped, so one list can be shared by every node (`PATRONI_RAFT_PARTNER_ADDRS`).
    pub partner_addrs: Vec<String>,
    /// Where the Raft log and snapshots live.
    pub data_dir: PathBuf,
    /// Patroni's key: peers prove they know it (see `raft::auth`) when no certificates are set.
    pub password: Option<String>,
    /// Tribune's keys: this agent's certificate (chain) for both directions of every gRPC
    /// connection, its key (default: in `certfile`, as Patroni's `restapi.keyfile`), the key's
    /// password, and the CA bundle the other members' certificates must chain to.
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: Option<PathBuf>,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
}

impl fmt::Debug for Raft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Raft")
            .field("self_addr", &self.self_addr)
            .field("bind_addr", &self.bind_addr)
            .field("partner_addrs", &self.partner_addrs)
            .field("data_dir", &self.data_dir)
            .field("password", &super::restapi::redacted(&self.password))
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field(
                "keyfile_password",
                &super::restapi::redacted(&self.keyfile_password),
            )
            .field("cafile", &self.cafile)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("election_timeout_min", &self.election_timeout_min)
            .field("election_timeout_max", &self.election_timeout_max)
            .finish()
    }
}

impl Raft {
    /// The address to bind: `bind_addr`, or `self_addr` when not set.
    pub fn bind_addr(&self) -> &str {
        self.bind_addr.as_deref().unwrap_or(&self.self_addr)
    }

    pub(crate) fn parse(s: &Section<'_>) -> Result<Raft, ConfigError> {
        if !s.is_present() {
            return Err(ConfigError::missing(
                "raft",
                "Tribune's agents are their own coordination store; add a `raft:` section \
                 (self_addr, partner_addrs, data_dir)",
            ));
        }
        let self_addr = s.required_string(
            "self_addr",
            "the host:port other agents reach this agent's Raft service at \
             (Tribune has no non-voting Raft clients)",
        )?;
        address::connect(&s.key("self_addr"), &self_addr)?;
        let bind_addr = s.string("bind_addr")?.filter(|b| !b.is_empty());
        if let Some(b) = &bind_addr {
            address::listen(&s.key("bind_addr"), b, false)?;
        }
        let mut partner_addrs = partner_addrs(s)?;
        let mut seen = std::collections::BTreeSet::new();
        partner_addrs.retain(|a| *a != self_addr && seen.insert(a.clone()));
        let data_dir = s.path_buf("data_dir")?.ok_or_else(|| {
            ConfigError::missing(
                s.key("data_dir"),
                "the directory for the Raft log and snapshots",
            )
        })?;

        let positive = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            match s.seconds(key)? {
                Some(v) if v.is_zero() => Err(ConfigError::at(
                    s.key(key),
                    "must be greater than 0 seconds",
                )),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        let heartbeat_interval = positive("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)?;
        let election_timeout_min = positive("election_timeout_min", DEFAULT_ELECTION_TIMEOUT_MIN)?;
        let election_timeout_max = positive("election_timeout_max", DEFAULT_ELECTION_TIMEOUT_MAX)?;
        if heartbeat_interval * 3 > election_timeout_min {
            return Err(ConfigError::at(
                s.key("election_timeout_min"),
                format!(
                    "must be at least 3 heartbeats: election_timeout_min {} s < 3 * heartbeat_interval {} s; \
                     raise election_timeout_min to at least {} or lower heartbeat_interval",
                    fmt_secs(election_timeout_min),
                    fmt_secs(heartbeat_interval),
                    fmt_secs(heartbeat_interval * 3),
                ),
            ));
        }
        if election_timeout_min >= election_timeout_max {
            return Err(ConfigError::at(
                s.key("election_timeout_max"),
                format!(
                    "must be greater than election_timeout_min ({} s >= {} s)",
                    fmt_secs(election_timeout_min),
                    fmt_secs(election_timeout_max),
                ),
            ));
        }
        let certfile = s.path_buf("certfile")?;
        let keyfile = s.path_buf("keyfile")?;
        let keyfile_password = s.string("keyfile_password")?.filter(|p| !p.is_empty());
        let cafile = s.path_buf("cafile")?;
        // Key settings without a certificate would leave the port open while looking closed.
        let orphans = [
            ("keyfile", keyfile.is_some()),
            ("keyfile_password", keyfile_password.is_some()),
            ("cafile", cafile.is_some()),
        ];
        if let Some((key, _)) = orphans.iter().find(|(_, set)| *set && certfile.is_none()) {
            return Err(ConfigError::at(
                s.key(key),
                "set without raft.certfile (this agent's certificate for the other agents)",
            ));
        }
        if certfile.is_some() && cafile.is_none() {
            return Err(ConfigError::at(
                s.key("cafile"),
                "required with raft.certfile: the CA bundle the other members' certificates \
                 are verified against (both directions of every connection are verified)",
            ));
        }
        Ok(Raft {
            self_addr,
            bind_addr,
            partner_addrs,
            data_dir,
            password: s.string("password")?.filter(|p| !p.is_empty()),
            certfile,
            keyfile,
            keyfile_password,
            cafile,
            heartbeat_interval,
            election_timeout_min,
            election_timeout_max,
        })
    }
}

impl Raft {
    /// Copy the keys that authenticate the peers (reloaded while the agent runs).
    pub fn take_credentials_from(&mut self, other: &Raft) {
        self.password = other.password.clone();
        self.certfile = other.certfile.clone();
        self.keyfile = other.keyfile.clone();
        self.keyfile_password = other.keyfile_password.clone();
        self.cafile = other.cafile.clone();
    }

    /// What the agent says once at start (and `--validate-config` prints) about how its Raft
    /// port authenticates peers, when that deserves a warning: not at all, or a password that
    /// the certificates make unused.
    pub fn peer_authentication_warning(&self, scope: &str) -> Option<String> {
        match (&self.certfile, &self.password) {
            (None, None) => Some(format!(
                "the Raft port {} accepts any peer that knows the scope ({scope:?}, which \
                 GET /patroni tells anyone): set raft.certfile, raft.keyfile and raft.cafile \
                 (mutual TLS) or raft.password",
                self.bind_addr()
            )),
            (Some(_), Some(_)) => Some(
                "raft.password is not used: raft.certfile and raft.cafile authenticate the \
                 peers"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// A list of host:port (a comma string is accepted too, as Patroni's env parser does).
fn partner_addrs(s: &Section<'_>) -> Result<Vec<String>, ConfigError> {
    let key = s.key("partner_addrs");
    let addrs = match s.get("partner_addrs") {
        None => Vec::new(),
        Some(serde_json::Value::String(text)) => super::env::parse_list(text),
        Some(serde_json::Value::Array(_)) => s.string_list("partner_addrs")?.unwrap_or_default(),
        Some(other) => {
            return Err(ConfigError::wrong_type(key, "a list of host:port", other));
        }
    };
    for (i, a) in addrs.iter().enumerate() {
        address::connect(&format!("{key}[{i}]"), a)?;
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn raft(doc: serde_json::Value) -> Result<Raft, ConfigError> {
        Raft::parse(&Section::new("raft", Some(&doc)).unwrap())
    }

    #[test]
    fn defaults_and_bind_addr() {
        let r = raft(json!({"self_addr": "10.0.0.1:2222", "data_dir": "/var/lib/raft"})).unwrap();
        assert_eq!(r.bind_addr(), "10.0.0.1:2222");
        assert!(r.partner_addrs.is_empty());
        assert_eq!(r.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(r.election_timeout_min, Duration::from_millis(400));
        assert_eq!(r.election_timeout_max, Duration::from_millis(800));
        let r = raft(json!({
            "self_addr": "10.0.0.1:2222", "bind_addr": "0.0.0.0:2222", "data_dir": "/r",
            "partner_addrs": "10.0.0.1:2222,10.0.0.2:2222,10.0.0.3:2222,10.0.0.2:2222",
            "password": "s3cret",
            "heartbeat_interval": 0.1, "election_timeout_min": 0.5, "election_timeout_max": "1.5"
        }))
        .unwrap();
        assert_eq!(r.bind_addr(), "0.0.0.0:2222");
        assert_eq!(r.partner_addrs, vec!["10.0.0.2:2222", "10.0.0.3:2222"]);
        assert_eq!(r.election_timeout_max, Duration::from_millis(1500));
        assert!(!format!("{r:?}").contains("s3cret"));
        let r = raft(json!({
            "self_addr": "10.0.0.1:2222", "data_dir": "/r", "certfile": "/c.pem",
            "keyfile": "/k.pem", "keyfile_password": "kp-s3cret", "cafile": "/ca.pem"
        }))
        .unwrap();
        assert_eq!(r.cafile.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert!(!format!("{r:?}").contains("kp-s3cret"));
    }

    #[test]
    fn bad_raft_sections_name_the_key() {
        let base = |extra: serde_json::Value| {
            let mut doc = json!({"self_addr": "10.0.0.1:2222", "data_dir": "/r"});
            doc.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            doc
        };
        let cases = [
            (json!({"self_addr": null}), "raft.self_addr", "required"),
            (json!({"data_dir": null}), "raft.data_dir", "required"),
            (
                json!({"self_addr": "nohost"}),
                "raft.self_addr",
                "host:port",
            ),
            (
                json!({"partner_addrs": 5}),
                "raft.partner_addrs",
                "a list of host:port",
            ),
            (
                json!({"partner_addrs": ["10.0.0.2"]}),
                "raft.partner_addrs[0]",
                "host:port",
            ),
            (
                json!({"heartbeat_interval": 0.5}),
                "raft.election_timeout_min",
                "at least 3 heartbeats",
            ),
            (
                json!({"election_timeout_min": 3}),
                "raft.election_timeout_max",
                "greater than election_timeout_min",
            ),
            (
                json!({"heartbeat_interval": 0}),
                "raft.heartbeat_interval",
                "greater than 0",
            ),
            (
                json!({"election_timeout_max": "x"}),
                "raft.election_timeout_max",
                "seconds",
            ),
            (
                json!({"keyfile": "/k.pem"}),
                "raft.keyfile",
                "without raft.certfile",
            ),
            (
                json!({"cafile": "/ca.pem"}),
                "raft.cafile",
                "without raft.certfile",
            ),
            (
                json!({"keyfile_password": "x"}),
                "raft.keyfile_password",
                "without raft.certfile",
            ),
            (
                json!({"certfile": "/c.pem"}),
                "raft.cafile",
                "required with raft.certfile",
            ),
        ];
        for (extra, key, needle) in cases {
            let err = raft(base(extra.clone())).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{extra}: {err}");
            assert!(err.message.contains(needle), "{extra}: {err}");
        }
        let err = Raft::parse(&Section::new("raft", None).unwrap()).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("raft"));
    }
}
