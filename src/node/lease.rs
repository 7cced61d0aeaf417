//! The lease keeper: renews this member's leader lease while the replicated state names it the
//! leader, and fences the local primary the moment the lease lapses.
//!
//! Safety (DESIGN section 4): the lease is valid until `sent + ttl - fence_margin`, where `sent`
//! is the monotonic time at which the renewal that committed was *sent*. The Raft leader expires
//! a lease only after `ttl` measured from when it *applied* the last renewal, which is later; so
//! a primary that cannot renew stops accepting writes before anyone else can be promoted.
//!
//! The timings follow the configuration as it changes, on every member: each pass reads the
//! committed dynamic configuration (`ttl`, `loop_wait`, `retry_timeout`, the fence margin) and
//! the local `watchdog.safety_margin`, recomputes the lease's end from the last `sent`, and
//! retimes the watchdog. A lowered `ttl` shortens the lease at once; a renewal carries the `ttl`
//! it assumed (`lease_ms`), and the Raft leader never expires it sooner, so a primary that has
//! not yet seen a lowered `ttl` is still fenced in time.
//!
//! This task runs beside the HA loop, not inside it, so that a long action of the loop (a base
//! backup, a slow start) never delays a renewal or a fence.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{Config, DynamicConfig};
use crate::ha::LeaseView;
use crate::instance::{Instance, StopMode};
use crate::node::counters::Counters;
use crate::node::view::LocalView;
use crate::node::watchdog::{Watchdog, WatchdogView};
use crate::raft::Consensus;
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

/// The timings the keeper applies now, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeeperView {
    pub ttl: Duration,
    pub fence_margin: Duration,
    /// `None` without a watchdog.
    pub watchdog: Option<WatchdogView>,
}

/// The last committed renewal: when it was sent and the `ttl` it assumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Renewed {
    generation: Generation,
    sent: Instant,
    ttl: Duration,
}

impl Renewed {
    /// Where the lease ends under `dynamic`: the shorter of the assumed and the current `ttl`,
    /// less the current fence margin.
    fn valid_until(&self, dynamic: &DynamicConfig) -> Instant {
        self.sent
            + self
                .ttl
                .min(dynamic.ttl)
                .saturating_sub(dynamic.fence_margin())
    }
}

pub struct LeaseKeeper {
    pub me: MemberName,
    /// The local configuration (for `watchdog.safety_margin`, which a reload may change).
    pub config: watch::Receiver<Arc<Config>>,
    /// Hardware fencing: armed and pinged after every committed renewal, disarmed when the
    /// lease is given up; `required` refuses to hold a lease without it.
    pub watchdog: Option<Watchdog>,
    pub watchdog_required: bool,
    pub raft: Arc<dyn Consensus>,
    pub clock: Arc<dyn Clock>,
    pub instance: Option<Arc<dyn Instance>>,
    pub local: watch::Receiver<Arc<LocalView>>,
    pub lease: watch::Sender<LeaseView>,
    pub view: watch::Sender<KeeperView>,
    /// `bootstrap.dcs`, the dynamic configuration until the cluster has committed one.
    pub bootstrap_dynamic: Arc<DynamicConfig>,
    pub counters: Counters,
}

impl LeaseKeeper {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut states = self.raft.subscribe();
        let mut next_renewal = self.clock.now();
        let mut fenced: Option<Generation> = None;
        let mut renewed: Option<Renewed> = None;
        loop {
            let cluster = self.raft.state();
            let bootstrap = self.bootstrap_dynamic.clone();
            let dynamic = cluster.dynamic_or(&bootstrap);
            let usable = self.follow_configuration(dynamic).await;
            let mine = cluster
                .leader
                .as_ref()
                .filter(|l| l.member == self.me)
                .map(|l| l.generation);
            let now = self.clock.now();
            match mine {
                None => {
                    renewed = None;
                    if *self.lease.borrow() != LeaseView::Unconfirmed {
                        self.lease.send_replace(LeaseView::Unconfirmed);
                    }
                    self.disarm_watchdog();
                }
                Some(_) if !usable => renewed = None,
                Some(generation) if now >= next_renewal || !self.held(generation) => {
                    // After a failure (no Raft leader yet), try again at the next check: the
                    // moment a new Raft leader is elected counts.
                    let was_held = self.held(generation);
                    match self.renew(generation, dynamic).await {
                        Some(r) => {
                            renewed = Some(r);
                            next_renewal = now + renewal_period(dynamic);
                        }
                        None => {
                            next_renewal = now + FENCE_CHECK;
                            if !was_held {
                                self.fence_unconfirmed(generation, &mut fenced).await;
                            }
                        }
                    }
                }
                Some(_) => {}
            }
            self.follow_timings(renewed.as_ref(), dynamic);
            self.fence_if_lapsed(&mut fenced).await;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.disarm_watchdog();
                    return;
                }
                changed = states.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep(FENCE_CHECK) => {}
            }
        }
    }

    /// Retime the watchdog for the current configuration and publish the timings. `false` when
    /// the watchdog is required and cannot run with them: no lease may be held (the database
    /// is fenced, the lease expires on the Raft leader and another member takes over).
    async fn follow_configuration(&mut self, dynamic: &DynamicConfig) -> bool {
        let margin = self.config.borrow().watchdog.safety_margin;
        let mut usable = true;
        if let Some(wd) = self.watchdog.as_mut()
            && let Err(err) = wd.retime(dynamic.ttl, dynamic.loop_wait, margin)
        {
            if self.watchdog_required {
                warn!(
                    error = %err,
                    "the watchdog cannot follow the configuration and is required: not holding \
                     the leader lease"
                );
                usable = false;
            } else {
                warn!(error = %err, "the watchdog cannot follow the configuration; continuing without it (mode automatic)");
                self.disarm_watchdog();
                self.watchdog = None;
            }
        }
        if !usable && *self.lease.borrow() != LeaseView::Unconfirmed {
            self.lease.send_replace(LeaseView::Unconfirmed);
            self.fence("the required watchdog cannot run with the new timings")
                .await;
        }
        let view = KeeperView {
            ttl: dynamic.ttl,
            fence_margin: dynamic.fence_margin(),
            watchdog: self.watchdog.as_ref().map(Watchdog::view),
        };
        if *self.view.borrow() != view {
            self.view.send_replace(view);
        }
        usable
    }

    /// Move the held lease's end to follow the current `ttl` and fence margin.
    fn follow_timings(&self, renewed: Option<&Renewed>, dynamic: &DynamicConfig) {
        let Some(r) = renewed else { return };
        let held = LeaseView::Held {
            generation: r.generation,
            valid_until: r.valid_until(dynamic),
        };
        let current = *self.lease.borrow();
        if matches!(current, LeaseView::Held { generation, .. } if generation == r.generation)
            && current != held
        {
            self.lease.send_replace(held);
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

    /// One renewal; the renewal when it was committed.
    async fn renew(&mut self, generation: Generation, dynamic: &DynamicConfig) -> Option<Renewed> {
        let sent = self.clock.now();
        let command = Command::RenewLease {
            member: self.me.clone(),
            generation,
            lease_ms: Some(dynamic.ttl.as_millis() as u64),
        };
        let renewal = tokio::time::timeout(dynamic.retry_timeout, self.raft.propose(command));
        match crate::telemetry::timed_renewal(renewal).await {
            Ok(Ok(Outcome::Applied)) => {
                if self.ping_watchdog().is_err() {
                    // No primary without its hardware fence: stop serving now; the lease
                    // expires on the Raft leader and another member takes over.
                    self.lease.send_replace(LeaseView::Unconfirmed);
                    self.fence("the required watchdog failed").await;
                    return None;
                }
                let renewed = Renewed {
                    generation,
                    sent,
                    ttl: dynamic.ttl,
                };
                let was_held = self.held(generation);
                self.lease.send_replace(LeaseView::Held {
                    generation,
                    valid_until: renewed.valid_until(dynamic),
                });
                if !was_held {
                    info!(%generation, "holding the leader lease");
                }
                Some(renewed)
            }
            Ok(Ok(Outcome::Rejected(rejection))) => {
                info!(%generation, %rejection, "leader lease not renewed");
                self.lease.send_replace(LeaseView::Unconfirmed);
                None
            }
            Ok(Err(err)) => {
                warn!(%generation, error = %err, "could not renew the leader lease");
                None
            }
            Err(_) => {
                warn!(%generation, "renewing the leader lease timed out");
                None
            }
        }
    }

    /// Stop the local database at once (it may be accepting writes without a valid lease).
    async fn fence(&self, why: &str) {
        let Some(instance) = &self.instance else {
            return;
        };
        warn!("{why}: stopping postgres immediately to fence it");
        self.counters.lease_fences.inc();
        if let Err(err) = instance.stop(StopMode::Immediate).await {
            warn!(error = %err, "fencing stop failed");
        }
    }

    /// The state names this member the leader, but no renewal could be committed since this
    /// agent started (or since the lease was lost): a database running as primary must stop,
    /// as Patroni demotes when it cannot reach the DCS. The lease this agent held before a
    /// restart is unknown to it and may already have expired: another member may be promoted
    /// at any moment. Found by the simulation (seed 1003780): an agent killed while its
    /// primary was cut off, degraded to asynchronous, restarted and waited, unfenced, for a
    /// lease it could never confirm, while another member was promoted.
    async fn fence_unconfirmed(&self, generation: Generation, fenced: &mut Option<Generation>) {
        let Some(instance) = &self.instance else {
            return;
        };
        let running_primary = self.local.borrow().is_running_primary();
        if !running_primary || *fenced == Some(generation) {
            return;
        }
        warn!(%generation, "the leader lease cannot be confirmed: stopping postgres immediately to fence it");
        *fenced = Some(generation);
        self.counters.lease_fences.inc();
        if let Err(err) = instance.stop(StopMode::Immediate).await {
            warn!(error = %err, "fencing stop failed");
            *fenced = None;
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
        *fenced = Some(generation);
        self.counters.lease_fences.inc();
        if let Err(err) = instance.stop(StopMode::Immediate).await {
            warn!(error = %err, "fencing stop failed");
            *fenced = None;
        }
    }
}
