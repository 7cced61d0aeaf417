//! Runs `ha::arbiter` on whichever agent is the Raft leader: expires leases after `ttl` of
//! silence on this node's monotonic clock and promotes the best candidate after a failover
//! intent. On every agent that is not the Raft leader it only keeps its countdown reset, so a
//! new Raft leader starts every lease countdown afresh.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::DynamicConfig;
use crate::ha::arbiter::{ArbiterSettings, LeaseWatch, arbitrate};
use crate::raft::RaftNode;
use crate::types::UnixMillis;

const TICK: Duration = Duration::from_millis(100);

pub struct Arbiter {
    pub raft: RaftNode,
    pub clock: Arc<dyn Clock>,
    pub fallback_config: DynamicConfig,
}

impl Arbiter {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut status = self.raft.status();
        let mut states = self.raft.subscribe();
        let mut watch: Option<LeaseWatch> = None;
        loop {
            let cluster = self.raft.state();
            let now = self.clock.now();
            let is_leader = status.borrow().is_leader;
            if !is_leader {
                watch = None;
            } else {
                let w = watch.get_or_insert_with(|| {
                    info!("Raft leader: starting every lease countdown afresh");
                    LeaseWatch::restart(&cluster, now)
                });
                w.observe(&cluster, now);
                let dynamic = DynamicConfig::from_json(&cluster.config)
                    .unwrap_or_else(|_| self.fallback_config.clone());
                let settings = ArbiterSettings {
                    ttl: dynamic.ttl,
                    maximum_lag_on_failover: dynamic.maximum_lag_on_failover,
                    paused: dynamic.pause,
                };
                if let Some((command, reason)) =
                    arbitrate(&cluster, &settings, w, now, UnixMillis::now())
                {
                    let kind = command.kind();
                    match self.raft.propose(command).await {
                        Ok(outcome) if outcome.is_applied() => info!("{reason}"),
                        Ok(outcome) => info!(?outcome, "{kind} not applied"),
                        Err(err) => warn!(error = %err, "could not propose {kind}"),
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
                r = status.changed() => if r.is_err() { return },
                r = states.changed() => if r.is_err() { return },
            }
        }
    }
}
