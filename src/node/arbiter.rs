//! Runs `ha::arbiter` on whichever agent is the Raft leader: expires leases after `ttl` of
//! silence on this node's monotonic clock and promotes the best candidate after a failover
//! intent. On every agent that is not the Raft leader it only keeps its countdown reset, so a
//! new Raft leader starts every lease countdown afresh.
//!
//! It also keeps the Raft leader off the database primary's host (DESIGN section 4): when this
//! agent is both, it hands Raft leadership to another voter, so that a crash of the primary's
//! host needs no Raft election before its lease can be expired.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{DynamicConfig, SynchronousMode};
use crate::ha::arbiter::{ArbiterSettings, LeaseWatch, arbitrate};
use crate::raft::RaftNode;
use crate::types::{MemberName, UnixMillis};

const TICK: Duration = Duration::from_millis(100);
/// How long to wait between two attempts to hand Raft leadership away.
const TRANSFER_BACKOFF: Duration = Duration::from_secs(5);
/// Hand Raft leadership away only once the primary's lease has been renewed this often: right
/// after a promotion the cluster is busiest, and a hand-off there only adds risk.
const SETTLED_RENEWALS: u64 = 3;

pub struct Arbiter {
    pub me: MemberName,
    pub raft: RaftNode,
    pub clock: Arc<dyn Clock>,
    /// `bootstrap.dcs`, the dynamic configuration until the cluster has committed one.
    pub bootstrap_dynamic: DynamicConfig,
}

impl Arbiter {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut status = self.raft.status();
        let mut states = self.raft.subscribe();
        let mut watch: Option<LeaseWatch> = None;
        let mut last_transfer: Option<tokio::time::Instant> = None;
        let mut transfers = 0usize;
        // The lease (generation, renewals) when this agent became the Raft leader.
        let mut renewals_at_election = None;
        loop {
            let cluster = self.raft.state();
            let now = self.clock.now();
            let is_leader = status.borrow().is_leader;
            // Wake at the tick, or exactly when the current lease would expire.
            let mut wake_at = now + TICK;
            if !is_leader {
                watch = None;
            } else {
                if watch.is_none() {
                    // Newly elected, typically because the old Raft leader's host died: the
                    // primary's lease renewals failed during the election, so it must renew
                    // under this leader before a hand-off makes Raft refuse writes again.
                    renewals_at_election =
                        cluster.leader.as_ref().map(|l| (l.generation, l.renewals));
                }
                let w = watch.get_or_insert_with(|| {
                    info!("Raft leader: starting every lease countdown afresh");
                    LeaseWatch::restart(&cluster, now)
                });
                w.observe(&cluster, now);
                let dynamic = cluster.dynamic_or(&self.bootstrap_dynamic);
                let settings = ArbiterSettings {
                    ttl: dynamic.ttl,
                    maximum_lag_on_failover: dynamic.maximum_lag_on_failover,
                    paused: dynamic.pause,
                    synchronous: dynamic.synchronous_mode != SynchronousMode::Off,
                    strict: dynamic.synchronous_mode_strict,
                    standby_cluster: dynamic.standby_cluster.is_some(),
                };
                if cluster.leader.is_some() {
                    wake_at = wake_at.min(w.since + settings.ttl);
                }
                if let Some((command, reason)) =
                    arbitrate(&cluster, &settings, w, now, UnixMillis::now())
                {
                    let kind = command.kind();
                    match self.raft.propose(command).await {
                        Ok(outcome) if outcome.is_applied() => info!("{reason}"),
                        Ok(outcome) => info!(?outcome, "{kind} not applied"),
                        Err(err) => warn!(error = %err, "could not propose {kind}"),
                    }
                } else if cluster.leader.as_ref().is_some_and(|l| {
                    l.member == self.me
                        && l.renewals >= SETTLED_RENEWALS
                        && renewals_at_election.is_none_or(|at| at != (l.generation, l.renewals))
                }) && last_transfer
                    .is_none_or(|t| now.saturating_duration_since(t) >= TRANSFER_BACKOFF)
                {
                    last_transfer = Some(now);
                    self.hand_leadership_away(&cluster, dynamic, transfers)
                        .await;
                    transfers += 1;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(wake_at) => {}
                r = status.changed() => if r.is_err() { return },
                r = states.changed() => if r.is_err() { return },
            }
        }
    }

    /// This agent is the Raft leader and runs the primary: hand Raft leadership to another
    /// voter that Raft has just heard from and whose agent reported recently, a different one
    /// on each attempt. A hand-off to a dead voter stalls Raft until an election, long enough
    /// for the primary to fence itself; the agent's report alone is not evidence enough, as it
    /// stays fresh for two loops after its host died (a new Raft leader elected because the old
    /// one's host died handed leadership straight back to that host).
    async fn hand_leadership_away(
        &self,
        cluster: &crate::state::ClusterState,
        dynamic: &DynamicConfig,
        attempt: usize,
    ) {
        let status = self.raft.status().borrow().clone();
        let fresh_ms = 2 * dynamic.loop_wait.as_millis() as u64;
        let now_ms = UnixMillis::now().0;
        let alive = |addr: &str| {
            cluster.members.values().any(|m| {
                m.raft_addr.as_deref() == Some(addr)
                    && now_ms.saturating_sub(m.reported_at.0) <= fresh_ms
            })
        };
        let heard = self.raft.recently_heard();
        let others: Vec<_> = status
            .voters
            .iter()
            .filter(|(id, addr)| *id != status.node_id && heard.contains(id) && alive(addr))
            .cloned()
            .collect();
        if others.is_empty() {
            return;
        }
        let (target, addr) = others[attempt % others.len()].clone();
        match self.raft.transfer_leadership(target).await {
            Ok(()) => {
                info!(%addr, "handing Raft leadership to {addr}: the primary's host should not also lead Raft")
            }
            Err(err) => warn!(error = %err, "could not hand Raft leadership away"),
        }
    }
}
