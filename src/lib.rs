//! Tribune: a Raft-based high-availability coordinator for PostgreSQL and openGauss that speaks
//! Patroni's REST API and configuration.
//!
//! # Layout
//!
//! - [`types`]: newtypes shared by every layer (`MemberName`, `Generation`, `Lsn`, `Timeline`).
//! - [`config`]: the Patroni-compatible YAML configuration; parsed and validated once at start.
//! - [`clock`]: the monotonic clock trait, real and manual.
//! - [`timestamp`]: wall-clock times as text (Patroni's forms, operators' scheduled times).
//! - [`state`]: the replicated cluster state and the pure `apply` of committed commands.
//! - [`raft`]: the only module that names openraft, sled or tonic: storage, network, service.
//! - [`ha`]: the pure decision layer: `decide` (each agent), `arbiter` (the Raft leader: lease
//!   expiry, promotion), `sync` (synchronous standbys), `candidate` (failover order).
//! - [`instance`]: the `Instance` trait, the PostgreSQL and openGauss adapters (including the SQL
//!   fence of a peer's database), and what they share (the local SQL session, the data
//!   directory's `postmaster.pid`, running tools).
//! - [`node`]: the agent runtime: observe, decide, execute, report; the lease keeper, the
//!   arbiter's runtime, the watchdog.
//! - [`logging`]: log set-up from `log.level` / `log.type`.
//! - [`api`]: the Patroni-compatible REST server, its security (TLS, basic auth, allowlist)
//!   and its typed client.
//! - [`ctl`]: `tribunectl` commands.
//! - [`telemetry`]: process-wide latencies and counters on `/metrics` (REST requests, lease
//!   renewals, self-fencing) that Patroni's metrics have no names for.

pub mod api;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod ha;
pub mod instance;
pub mod logging;
pub mod node;
pub mod raft;
pub mod state;
pub mod telemetry;
pub mod timestamp;
pub mod types;

/// The version reported in `GET /patroni` (`patroni.version`) and member records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
