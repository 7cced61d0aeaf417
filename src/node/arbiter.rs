//! Runs `ha::arbiter` on whichever agent is the Raft leader: expires leases after `ttl` of
//! silence on this node's monotonic clock and promotes the best candidate after a failover
//! intent. On every agent that is not the Raft leader it only keeps its countdown reset, so a
//! new Raft leader starts every lease countdown afresh.
//!
//! It also carries out `ha::leadership`: when this agent is both the Raft leader and the
//! database primary's, it hands Raft leadership to another voter (DESIGN section 4), so that a
//! crash of the primary's host needs no Raft election before its lease can be expired.
//!
//! It logs the placement advice of `ha::placement` (a site whose loss would stop failover)
//! at start and whenever it changes.
//!
//! Must not: decide anything itself; what to propose and to whom to hand leadership are the
//! pure functions' answers.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{DynamicConfig, SynchronousMode};
use crate::ha::arbiter::{ArbiterSettings, LeaseWatch, arbitrate, lease_duration};
use crate::ha::leadership::{HandOff, LeadershipView};
use crate::ha::placement;
use crate::raft::Consensus;
use crate::types::MemberName;

/// How often the arbiter looks at the state when nothing wakes it earlier.
const TICK: Duration = Duration::from_millis(100);

pub struct Arbiter {
    pub me: MemberName,
    pub raft: Arc<dyn Consensus>,
    pub clock: Arc<dyn Clock>,
    /// `bootstrap.dcs`, the dynamic configuration until the cluster has committed one.
    pub bootstrap_dynamic: DynamicConfig,
}

impl Arbiter {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut status = self.raft.status();
        let mut states = self.raft.subscribe();
        let mut watch: Option<LeaseWatch> = None;
        let mut hand_off = HandOff::default();
        let mut placement: Vec<String> = Vec::new();
        loop {
            let cluster = self.raft.state();
            let now = self.clock.now();
            let raft = status.borrow().clone();
            // The voters' sites, checked at start and whenever the membership or the member
            // records change; said once per change.
            let advice = placement::advice(&placement::voters_with_sites(&raft.voters, &cluster));
            if advice != placement {
                for line in &advice {
                    warn!("placement: {line}");
                }
                placement = advice;
            }
            // Wake at the tick, or exactly when the current lease would expire.
            let mut wake_at = now + TICK;
            if !raft.is_leader {
                watch = None;
            } else {
                let w = watch.get_or_insert_with(|| {
                    info!("Raft leader: starting every lease countdown afresh");
                    // Newly elected, typically because the old Raft leader's host died: the
                    // primary must renew under this leader before leadership is handed away.
                    hand_off.elected(&cluster);
                    LeaseWatch::restart(&cluster, now)
                });
                w.observe(&cluster, now);
                let dynamic = cluster.dynamic_or(&self.bootstrap_dynamic);
                let settings = ArbiterSettings {
                    ttl: dynamic.ttl,
                    maximum_lag_on_failover: dynamic.maximum_lag_on_failover,
                    paused: cluster.paused(dynamic),
                    synchronous: dynamic.synchronous_mode != SynchronousMode::Off,
                    strict: dynamic.synchronous_mode_strict,
                    standby_cluster: dynamic.standby_cluster.is_some(),
                };
                if let Some(leader) = &cluster.leader {
                    wake_at = wake_at.min(w.since + lease_duration(leader, settings.ttl));
                }
                if let Some((command, reason)) =
                    arbitrate(&cluster, &settings, w, now, self.clock.wall_now())
                {
                    let kind = command.kind();
                    match self.raft.propose(command).await {
                        Ok(outcome) if outcome.is_applied() => info!("{reason}"),
                        Ok(outcome) => info!(?outcome, "{kind} not applied"),
                        Err(err) => warn!(error = %err, "could not propose {kind}"),
                    }
                } else {
                    let heard = self.raft.recently_heard();
                    let view = LeadershipView {
                        me: &self.me,
                        cluster: &cluster,
                        node: raft.node_id,
                        voters: &raft.voters,
                        heard: &heard,
                        now,
                        wall_now: self.clock.wall_now(),
                        loop_wait: dynamic.loop_wait,
                    };
                    if let Some(transfer) = hand_off.next(&view) {
                        let addr = &transfer.addr;
                        match self.raft.transfer_leadership(transfer.target).await {
                            Ok(()) => info!(
                                %addr,
                                "handing Raft leadership to {addr}: the primary's host should \
                                 not also lead Raft"
                            ),
                            Err(err) => warn!(error = %err, "could not hand Raft leadership away"),
                        }
                    }
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                r = status.changed() => if r.is_err() { return },
                r = states.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }
}
