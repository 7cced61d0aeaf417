//! What a run is made of: the cluster's shape, its database engine and replication mode, the
//! number of faults and the seed. Parsed from the command line, stored in the run directory
//! (`run.json`) so that `--replay` builds the same cluster.
//!
//! Owns the names the command line, the report and `summary.json` use for these choices.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// How commits are replicated (`bootstrap.dcs.synchronous_mode*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `synchronous_mode: on` (Tribune's default): `FIRST 1 (...)`.
    Synchronous,
    /// `synchronous_mode: quorum`: `ANY k (...)` over every eligible standby.
    Quorum,
    /// `synchronous_mode: on` with `synchronous_mode_strict: true`: no standby, no commit.
    Strict,
    /// `synchronous_mode: off`: a failover may lose the last acknowledged commits.
    Async,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Synchronous => "synchronous",
            Mode::Quorum => "quorum",
            Mode::Strict => "strict",
            Mode::Async => "async",
        }
    }

    /// Whether no acknowledged write may be lost (and so no read may be stale).
    pub fn promises_no_loss(self) -> bool {
        self != Mode::Async
    }
}

/// Which database nodes (and witness) the cluster has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
pub enum Shape {
    /// Three database nodes.
    #[value(name = "3")]
    #[serde(rename = "3")]
    Three,
    /// Five database nodes.
    #[value(name = "5")]
    #[serde(rename = "5")]
    Five,
    /// Two database nodes and a witness (a Raft voter without a database).
    #[value(name = "2+witness")]
    #[serde(rename = "2+witness")]
    TwoAndWitness,
    /// Three sites: two database nodes in site `a`, two in `b` and a witness in `c`
    /// (`tags.site`), with `synchronous_site_survival` in the synchronous modes.
    #[value(name = "2+2+1")]
    #[serde(rename = "2+2+1")]
    Sites,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Three => "3",
            Shape::Five => "5",
            Shape::TwoAndWitness => "2+witness",
            Shape::Sites => "2+2+1",
        }
    }

    /// For each host of the cluster (spare excluded): whether it has a database.
    pub fn hosts(self) -> Vec<bool> {
        match self {
            Shape::Three => vec![true; 3],
            Shape::Five => vec![true; 5],
            Shape::TwoAndWitness => vec![true, true, false],
            Shape::Sites => vec![true, true, true, true, false],
        }
    }

    /// The site (`tags.site`) of host `i` (the spare is the last index), or `None` for a shape
    /// without sites. The spare joins site `b`.
    pub fn site(self, i: usize) -> Option<&'static str> {
        match self {
            Shape::Sites => Some(["a", "a", "b", "b", "c"].get(i).copied().unwrap_or("b")),
            Shape::Three | Shape::Five | Shape::TwoAndWitness => None,
        }
    }

    pub fn has_sites(self) -> bool {
        self.site(0).is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// PostgreSQL from the distribution (the newest /usr/lib/postgresql/*/bin), run as
    /// `postgres`.
    Postgres,
    /// openGauss from `--opengauss-bin` (default /opt/tribune/opengauss/6.0.2/bin), run as
    /// `omm`.
    Opengauss,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Opengauss => "opengauss",
        }
    }
}

/// Everything that decides what a run does; stored as `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub seed: u64,
    pub faults: usize,
    pub mode: Mode,
    pub shape: Shape,
    pub engine: Engine,
    /// The lease length (`ttl`), seconds; pauses last multiples of it.
    pub ttl: f64,
    /// How long the cluster has after a heal to converge before it counts as stuck.
    pub convergence_deadline_s: f64,
    /// Which nemeses the schedule draws from (all by default).
    pub nemeses: Vec<String>,
}
