//! Tribune: a Raft-based high-availability coordinator for PostgreSQL and openGauss that speaks
//! Patroni's REST API and configuration.
//!
//! # Layout
//!
//! - [`types`]: newtypes shared by every layer (`MemberName`, `Generation`, `Lsn`, `Timeline`).
//! - [`config`]: the Patroni-compatible YAML configuration; parsed and validated once at start.
//! - [`clock`]: the clock trait (monotonic and wall time): system, virtual (paused tokio time)
//!   and manual.
//! - [`timestamp`]: wall-clock times as text (Patroni's forms, operators' scheduled times).
//! - [`state`]: the replicated cluster state and the pure `apply` of committed commands.
//! - [`raft`]: the only module that names openraft, sled or tonic: storage, network, service;
//!   `Consensus`, what the runtime needs of Raft, and `memory`, its in-memory fake.
//! - [`ha`]: the pure decision layer: `decide` (each agent), `arbiter` (the Raft leader: lease
//!   expiry, promotion), `leadership` (handing Raft leadership away), `sync` (synchronous
//!   standbys), `candidate` (failover order), `divergence` (a standby that went past where the
//!   leader's timeline forked), `placement` (which site's loss would stop failover), outcomes
//!   of actions and the memory they leave.
//! - [`instance`]: the `Instance` trait, built from the configuration by `from_config`; the
//!   PostgreSQL and openGauss adapters (including the SQL fence of a peer's database), what they
//!   share (the local SQL session, the data directory's `postmaster.pid`, running tools), and
//!   `fake`, the simulated databases beside the trait.
//! - [`node`]: the agent runtime: `runtime` (the lease keeper, the arbiter's runtime, the HA loop
//!   and its executor, over `Consensus`, `Instance` and the clock), the watchdog, the counters,
//!   and `run`, which wires them to the Raft node, the REST server and the one shutdown story.
//! - [`callbacks`]: the user's scripts around the database (Patroni's callbacks, `pre_promote`,
//!   `before_stop`, `post_bootstrap`): which event calls which (`tracker`, pure), the real
//!   processes (`runner`) and a fake.
//! - [`logging`]: log set-up from `log.level` / `log.type`.
//! - `first_bytes`: the deadline for a new connection's first bytes (REST and Raft servers).
//! - [`pem`]: PEM certificate and key files to rustls types (REST, `tribunectl`, Raft).
//! - [`api`]: the Patroni-compatible REST server, its security (TLS, basic auth, allowlist)
//!   and its typed client.
//! - [`ctl`]: `tribunectl` commands.
//! - [`telemetry`]: process-wide latencies and counters on `/metrics` (REST requests, lease
//!   renewals, self-fencing) that Patroni's metrics have no names for.
//! - `fuzz` (tests only): the driver of the time-bounded fuzz harnesses (`fuzz_*` tests beside
//!   the code they attack) and the input strategies they share.
//!
//! Beside this crate: `agent/` (the `tribune` binary), `simulation/` (the deterministic
//! simulation of whole clusters over `instance::fake` and `raft::memory`).

pub mod api;
pub mod callbacks;
pub mod clock;
pub mod config;
pub mod ctl;
pub(crate) mod first_bytes;
pub mod ha;
pub mod instance;
pub mod logging;
pub mod node;
pub mod pem;
pub mod raft;
pub mod state;
pub mod telemetry;
pub mod timestamp;
pub mod types;

#[cfg(test)]
pub(crate) mod fuzz;

/// Tribune's own version: `tribune --version`, `tribunectl version`, the `tribune.version` field
/// of `GET /patroni`, `tribune_build_info` on `/metrics`, and member records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Patroni release whose REST API, configuration and CLI Tribune implements
/// (reference/patroni.md). Tools written for Patroni read `patroni.version` of `GET /patroni`
/// (and `patroni_version` on `/metrics`) and change their judgement on it: from Patroni 3.0.4 a
/// healthy replica is `streaming`, before it was `running`. Tribune answers this there, so such
/// tools judge it by the API it speaks; its own version has a field of its own.
pub const PATRONI_API_VERSION: &str = "4.1.5";
