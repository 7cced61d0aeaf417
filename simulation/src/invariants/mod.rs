//! The invariants, one per file, checked after every step of a schedule (and the promotion
//! events the simulated databases record between steps). Each keeps what it needs to remember
//! between checks and says what went wrong in one sentence.

use tribune::instance::fake::Promotion;

mod acked_commits_kept;
mod convergence;
mod fenced_before_promotion;
mod generations_rise;
mod single_writer;

pub use acked_commits_kept::AckedCommitsKept;
pub use convergence::converged;
pub use fenced_before_promotion::FencedBeforePromotion;
pub use generations_rise::GenerationsRise;
pub use single_writer::SingleWriter;

use crate::cluster::SimCluster;

/// An invariant checked after every step.
pub trait Invariant {
    fn name(&self) -> &'static str;
    /// `Err` with what went wrong.
    fn check(&mut self, cluster: &SimCluster) -> Result<(), String>;
}

/// Every invariant checked after every step, for a cluster with these settings.
pub fn all(strict: bool) -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(SingleWriter),
        Box::new(FencedBeforePromotion::default()),
        Box::new(AckedCommitsKept::new(strict)),
        Box::new(GenerationsRise::default()),
    ]
}

/// Whether a recorded promotion made the cluster's primary: its member holds the leader lease
/// when checked (the check follows within one step). The other kind is a stale primary: a start
/// or promotion decided under a lease that lapsed while its host was frozen, finished after the
/// thaw while another member leads (seeds 6636, 6861, 9247). Its agent, thawed with it, fences
/// it; no client is routed to it (REST answers 503 without the lease); and it acknowledges
/// nothing that another writer could lose, which the single-writer invariant checks at every
/// step.
fn made_the_primary(cluster: &SimCluster, promotion: &Promotion) -> bool {
    cluster
        .state()
        .leader
        .as_ref()
        .is_some_and(|leader| leader.member == promotion.member)
}
