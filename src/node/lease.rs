//! The lease keeper: renews this member's leader lease while the replicated state names it the
//! leader, and fences the local primary the moment the lease lapses.
//!
//! Safety (DESIGN section 4): the lease is valid until `sent + ttl - fence_margin`, where `sent`
//! is the monotonic time at which the renewal that committed was *sent*. The Raft leader expires
//! a lease only after `ttl` measured from when it *applied* the last renewal, which is later; so
//! a primary that cannot renew stops accepting writes before anyone else can be promoted.
//!
//! This task runs beside the HA loop, not inside it, so that a long action of the loop (a base
//! backup, a slow start) never delays a renewal or a fence.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::DynamicConfig;
use crate::ha::LeaseView;
use crate::instance::{Instance, StopMode};
use crate::node::view::LocalView;
use crate::node::watchdog::Watchdog;
use crate::raft::RaftNode;
use crate::state::{Command, Outcome};
use crate::types::{Generation, MemberName};

/// How often the keeper checks whether its lease has lapsed.
const FENCE_CHECK: Duration = Duration::from_millis(50);

/// Renew twice per `loop_wait`: the lease then never rests on a renewal older than half a loop,
/// which leaves the primary `ttl - retry_timeout - loop_wait / 2` (2 s by default) to ride
/// out a Raft leader election before it must fence itself.
fn renewal_period(dynamic: &DynamicConfig) -> Duration {
    dynamic.loop_wait / 2
}

pub struct LeaseKeeper {
    pub me: MemberName,
    /// Hardware fencing: armed and pinged after every committed renewal, disarmed when the
    /// lease is given up; `required` refuses to hold a lease without it.
    pub watchdog: Option<Watchdog>,
    pub watchdog_required: bool,
    pub raft: RaftNode,
    pub clock: Arc<dyn Clock>,
    pub instance: Option<Arc<dyn Instance>>,
    pub local: watch::Receiver<Arc<LocalView>>,
    pub lease: watch::Sender<LeaseView>,
    pub fallback_config: DynamicConfig,
}

impl LeaseKeeper {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut states = self.raft.subscribe();
        let mut next_renewal = self.clock.now();
        let mut fenced: Option<Generation> = None;
        loop {
            let cluster = self.raft.state();
            let dynamic = DynamicConfig::from_json(&cluster.config)
                .unwrap_or_else(|_| self.fallback_config.clone());
            let mine = cluster
                .leader
                .as_ref()
                .filter(|l| l.member == self.me)
                .map(|l| l.generation);
            let now = self.clock.now();
            match mine {
                None => {
                    if *self.lease.borrow() != LeaseView::Unconfirmed {
                        self.lease.send_replace(LeaseView::Unconfirmed);
                    }
                    self.disarm_watchdog();
                }
                Some(generation) if now >= next_renewal || !self.held(generation) => {
                    // After a failure (no Raft leader yet), try again at the next check: the
                    // moment a new Raft leader is elected counts.
                    next_renewal = if self.renew(generation, &dynamic).await {
                        now + renewal_period(&dynamic)
                    } else {
                        now + FENCE_CHECK
                    };
                }
                Some(_) => {}
            }
            self.fence_if_lapsed(&mut fenced).await;
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.disarm_watchdog();
                    return;
                }
                _ = tokio::time::sleep(FENCE_CHECK) => {}
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// A clean shutdown or a lost lease: the device must not reset the host any more.
    fn disarm_watchdog(&mut self) {
        if let Some(wd) = self.watchdog.as_mut().filter(|w| w.is_armed())
            && let Err(err) = wd.disable()
        {
            warn!(error = %err, "could not disarm the watchdog");
        }
    }

    /// After a committed renewal. `Err` when the lease must not be held (required mode).
    fn ping_watchdog(&mut self) -> Result<(), ()> {
        let Some(wd) = self.watchdog.as_mut() else {
            return Ok(());
        };
        match wd.keepalive() {
            Ok(()) => Ok(()),
            Err(err) if self.watchdog_required => {
                warn!(error = %err, "the watchdog failed and is required: giving the lease up");
                Err(())
            }
            Err(err) => {
                warn!(error = %err, "the watchdog failed; continuing without it (mode automatic)");
                self.watchdog = None;
                Ok(())
            }
        }
    }

    fn held(&self, generation: Generation) -> bool {
        matches!(*self.lease.borrow(), LeaseView::Held { generation: g, .. } if g == generation)
    }

    /// One renewal; `true` when it was committed.
    async fn renew(&mut self, generation: Generation, dynamic: &DynamicConfig) -> bool {
        let sent = self.clock.now();
        let command = Command::RenewLease {
            member: self.me.clone(),
            generation,
        };
        let renewal = tokio::time::timeout(dynamic.retry_timeout, self.raft.propose(command));
        match crate::telemetry::timed_renewal(renewal).await {
            Ok(Ok(Outcome::Applied)) => {
                if self.ping_watchdog().is_err() {
                    // No primary without its hardware fence: stop serving now; the lease
                    // expires on the Raft leader and another member takes over.
                    self.lease.send_replace(LeaseView::Unconfirmed);
                    crate::telemetry::lease_fenced();
                    if let Some(instance) = &self.instance
                        && let Err(err) = instance.stop(StopMode::Immediate).await
                    {
                        warn!(error = %err, "fencing stop failed");
                    }
                    return false;
                }
                let valid_until = sent + dynamic.ttl.saturating_sub(dynamic.fence_margin());
                let was_held = self.held(generation);
                self.lease.send_replace(LeaseView::Held {
                    generation,
                    valid_until,
                });
                if !was_held {
                    info!(%generation, "holding the leader lease");
                }
                true
            }
            Ok(Ok(Outcome::Rejected(rejection))) => {
                info!(%generation, %rejection, "leader lease not renewed");
                self.lease.send_replace(LeaseView::Unconfirmed);
                false
            }
            Ok(Err(err)) => {
                warn!(%generation, error = %err, "could not renew the leader lease");
                false
            }
            Err(_) => {
                warn!(%generation, "renewing the leader lease timed out");
                false
            }
        }
    }

    /// Stop the database immediately when the lease lapsed while it may be accepting writes.
    async fn fence_if_lapsed(&self, fenced: &mut Option<Generation>) {
        let LeaseView::Held {
            generation,
            valid_until,
        } = *self.lease.borrow()
        else {
            return;
        };
        if self.clock.now() < valid_until || *fenced == Some(generation) {
            return;
        }
        let Some(instance) = &self.instance else {
            return;
        };
        if self.local.borrow().status.role == Some(crate::instance::DbRole::Standby) {
            return;
        }
        warn!(%generation, "the leader lease lapsed: stopping postgres immediately to fence it");
        crate::telemetry::lease_fenced();
        *fenced = Some(generation);
        if let Err(err) = instance.stop(StopMode::Immediate).await {
            warn!(error = %err, "fencing stop failed");
            *fenced = None;
        }
    }
}
