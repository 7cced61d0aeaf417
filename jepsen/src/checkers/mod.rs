//! The checkers: each reads a [`History`] and returns a [`Verdict`] naming every operation that
//! violates its rule. One rule per file:
//!
//! - [`lost`]: every acknowledged insert is in the final read (and no failed one is);
//! - [`overlap`]: no two members acknowledged writes at once;
//! - [`stale`]: a read through the primary port sees every insert acknowledged before it began;
//! - [`convergence`]: after every heal, one primary and every other member streaming from it,
//!   within the stated deadline;
//! - [`availability`]: per nemesis, how long no write was acknowledged;
//! - [`site`]: once the primary's site is lost, a primary in another site within a deadline;
//!   and in strict mode no write acknowledged with one database site left.
//!
//! Checkers are pure: no clock, no I/O. Whether a rule's violations fail the run depends on the
//! replication mode (lost writes and stale reads are the price of asynchronous replication: they
//! are counted and reported there, not failed).

pub mod availability;
pub mod convergence;
pub mod lost;
pub mod overlap;
pub mod site;
pub mod stale;

use serde::Serialize;

use crate::history::{History, HistoryError, Operation};
use crate::options::Mode;

/// One operation or moment that breaks a rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// When it happened (seconds since the run started).
    pub t: f64,
    pub what: String,
}

/// A checker's finding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub checker: &'static str,
    /// The rule, in one sentence.
    pub rule: &'static str,
    /// Whether violations of this rule fail the run in this mode.
    pub enforced: bool,
    pub violations: Vec<Violation>,
    /// The figures, in words (counts, durations).
    pub summary: String,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        !self.enforced || self.violations.is_empty()
    }
}

/// What the checkers need besides the history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Context {
    pub mode: Mode,
    pub convergence_deadline_s: f64,
}

/// Every checker's findings and the figures `summary.json` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Findings {
    pub verdicts: Vec<Verdict>,
    pub lost: lost::LostWrites,
    pub overlap: overlap::Overlap,
    pub stale: stale::StaleReads,
    pub convergence: convergence::Convergence,
    pub availability: availability::Availability,
    pub site: site::SiteFailover,
}

impl Findings {
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(Verdict::passed)
    }
}

pub fn check_all(history: &History, cx: Context) -> Result<Findings, HistoryError> {
    let ops: Vec<Operation> = history.operations()?;
    let lost = lost::check(history, &ops);
    let overlap = overlap::check(&ops);
    let stale = stale::check(&ops);
    let convergence = convergence::check(history, cx.convergence_deadline_s);
    let availability = availability::check(history, &ops);
    let site = site::check(history, &ops, cx.mode);
    let verdicts = vec![
        lost.verdict(cx.mode),
        overlap.verdict(),
        stale.verdict(cx.mode),
        convergence.verdict(),
        availability.verdict(),
        site.verdict(),
        site.guarantee_verdict(),
    ];
    Ok(Findings {
        verdicts,
        lost,
        overlap,
        stale,
        convergence,
        availability,
        site,
    })
}

/// At most this many violations are listed per checker (the count is always whole).
pub const LISTED: usize = 200;
