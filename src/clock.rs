//! Time, injected. Lease safety is measured on monotonic clocks only (DESIGN section 4):
//! wall-clock jumps must not matter. Wall time is read only for what operators and records see
//! (scheduled actions, report stamps, how long ago a member reported), never for a lease.
//!
//! Production uses [`SystemClock`]; tests use [`ManualClock`], or [`VirtualClock`] under tokio's
//! paused time (the deterministic simulation), where wall time advances with tokio's clock from
//! a fixed start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::types::UnixMillis;

pub trait Clock: Send + Sync + 'static {
    /// Monotonic time: leases, deadlines, how long something took.
    fn now(&self) -> Instant;
    /// Wall time: operators' schedules, member reports, failover intents.
    fn wall_now(&self) -> UnixMillis;
}

/// tokio's monotonic clock and the system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_now(&self) -> UnixMillis {
        UnixMillis::now()
    }
}

/// tokio's monotonic clock, with a wall clock that reads `wall_start` at `start` and advances
/// with it: under `tokio::time::pause` both are deterministic.
#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    start: Instant,
    wall_start: UnixMillis,
}

impl VirtualClock {
    pub fn new(wall_start: UnixMillis) -> Self {
        Self {
            start: Instant::now(),
            wall_start,
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_now(&self) -> UnixMillis {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        UnixMillis(self.wall_start.0 + elapsed.as_millis() as u64)
    }
}

/// A clock that moves only when told to; wall time moves with it.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<(Instant, UnixMillis)>>);

impl ManualClock {
    pub fn new(start: Instant) -> Self {
        Self(Arc::new(Mutex::new((start, UnixMillis(1_000_000_000_000)))))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        now.0 += by;
        now.1 = UnixMillis(now.1.0 + by.as_millis() as u64);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn wall_now(&self) -> UnixMillis {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let start = Instant::now();
        let clock = ManualClock::new(start);
        let wall = clock.wall_now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), start + Duration::from_secs(3));
        assert_eq!(clock.wall_now(), UnixMillis(wall.0 + 3_000));
    }

    #[tokio::test(start_paused = true)]
    async fn virtual_wall_time_follows_paused_time() {
        let clock = VirtualClock::new(UnixMillis(5_000));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(clock.wall_now(), UnixMillis(6_500));
    }
}
