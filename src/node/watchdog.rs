//! The watchdog: a timer kept alive only while this agent holds a valid leader lease. If the
//! agent freezes or gets stuck while its host runs the primary, the pings stop and the device
//! resets the host before the lease can expire and another member be promoted: hardware fencing
//! (DESIGN section 4, Patroni's `watchdog` section).
//!
//! [`Watchdog`] is the policy: the timeout (`ttl - safety_margin`, or `ttl / 2`, whole seconds,
//! at least `loop_wait`), arming at the first ping, following every change of `ttl`, `loop_wait`
//! and `safety_margin` ([`Watchdog::retime`]), disarming on purpose. The device behind it is a
//! [`Device`]: the Linux device (`linux`), or Patroni's `testing` driver (`testing`), an
//! in-memory stand-in for tests.
//!
//! The lease keeper owns the one [`Watchdog`]: it retimes it whenever the configuration changes,
//! pings it after every committed renewal and disables it when it gives the lease up on purpose.
//! This module decides nothing about the lease.
//!
//! Hazards:
//! - Opening a real device arms it, so [`Watchdog::prepare`] never opens it: the first
//!   keepalive does, after the first renewal of the lease.
//! - Dropping an armed [`Watchdog`] does not disarm it: an agent that crashes must let the
//!   device fire. Only [`Watchdog::disable`] disarms.
//! - A timeout shorter than `loop_wait` would reset the host in a normal loop (Patroni treats it
//!   as unusable); one longer than asked would fire after another member could be promoted.

mod linux;
mod testing;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::config::{Watchdog as WatchdogConfig, WatchdogDriver, WatchdogMode};

pub use linux::LinuxDevice;
pub use testing::{TestingDevice, TestingRecord};

/// Why the watchdog could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("watchdog device {device} cannot be used: {source}")]
    Inaccessible { device: PathBuf, source: io::Error },
    #[error(
        "watchdog device {device} is not a character device (a watchdog driver's device such as \
         /dev/watchdog); a regular file fences nothing. Tests use watchdog.driver: testing"
    )]
    NotADevice { device: PathBuf },
    #[error(
        "watchdog timeout of {timeout:?} for {device} is shorter than loop_wait ({loop_wait:?}) \
         or 1 s; raise ttl or lower watchdog.safety_margin"
    )]
    TooShort {
        device: PathBuf,
        timeout: Duration,
        loop_wait: Duration,
    },
    #[error("could not open watchdog device {device}: {source}")]
    Open { device: PathBuf, source: io::Error },
    #[error("could not set the timeout of watchdog device {device} to {wanted} s: {source}")]
    SetTimeout {
        device: PathBuf,
        wanted: u32,
        source: io::Error,
    },
    #[error(
        "watchdog device {device} runs with a {actual} s timeout, not the {wanted} s asked \
         (it must be at most {wanted} s and at least loop_wait); disarmed it"
    )]
    UnsafeTimeout {
        device: PathBuf,
        wanted: u32,
        actual: u32,
    },
    #[error("could not ping watchdog device {device}: {source}")]
    Keepalive { device: PathBuf, source: io::Error },
    #[error("could not disarm watchdog device {device}; it may still reset this host: {source}")]
    Disarm { device: PathBuf, source: io::Error },
}

/// A watchdog timer: opened (armed), given a timeout, pinged, disarmed.
pub trait Device: Send + Sync + Debug {
    /// For messages.
    fn path(&self) -> &Path;
    fn is_open(&self) -> bool;
    /// Open, which arms the timer.
    fn open(&mut self) -> Result<(), WatchdogError>;
    /// Ask for `wanted` whole seconds; answers the timeout the device runs with.
    fn set_timeout(&mut self, wanted: u32) -> Result<u32, WatchdogError>;
    fn keepalive(&mut self) -> Result<(), WatchdogError>;
    /// Disarm cleanly and close; nothing when not open. On failure it stays open (and armed).
    fn disarm(&mut self) -> Result<(), WatchdogError>;
}

/// What `/metrics` shows of the watchdog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchdogView {
    pub armed: bool,
    /// The timeout it runs with (armed) or will run with, whole seconds.
    pub timeout_secs: u32,
}

/// A watchdog kept alive while this agent holds the leader lease.
#[derive(Debug)]
pub struct Watchdog {
    device: Box<dyn Device>,
    /// Whole seconds, at least 1 and at least `loop_wait`.
    timeout_secs: u32,
    loop_wait: Duration,
}

/// The timeout for `ttl`: `ttl - safety_margin`, or `ttl / 2` without a margin, rounded down to
/// whole seconds; refused below 1 s or `loop_wait`.
fn timeout_for(
    device: &Path,
    ttl: Duration,
    loop_wait: Duration,
    safety_margin: Option<Duration>,
) -> Result<u32, WatchdogError> {
    let timeout = match safety_margin {
        Some(margin) => ttl.saturating_sub(margin),
        None => ttl / 2,
    };
    let secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
    let rounded = Duration::from_secs(secs.into());
    if secs < 1 || rounded < loop_wait {
        return Err(WatchdogError::TooShort {
            device: device.to_path_buf(),
            timeout: rounded,
            loop_wait,
        });
    }
    Ok(secs)
}

impl Watchdog {
    /// Decide and prepare according to the config. Mode Off -> Ok(None). Automatic -> Ok(None)
    /// with a warning log if unusable, Ok(Some) if usable. Required -> Err if unusable. Does NOT
    /// open the device yet (opening a real watchdog arms it).
    pub fn prepare(
        config: &WatchdogConfig,
        ttl: Duration,
        loop_wait: Duration,
    ) -> Result<Option<Watchdog>, WatchdogError> {
        if config.mode == WatchdogMode::Off {
            return Ok(None);
        }
        let usable = match config.driver {
            WatchdogDriver::Default => {
                LinuxDevice::at(&config.device).map(|d| Box::new(d) as Box<dyn Device>)
            }
            WatchdogDriver::Testing => Ok(Box::new(TestingDevice::default()) as Box<dyn Device>),
        }
        .and_then(|device| Watchdog::with_device(device, ttl, loop_wait, config.safety_margin));
        match usable {
            Ok(watchdog) => {
                info!(
                    device = %watchdog.device.path().display(),
                    timeout_s = watchdog.timeout_secs,
                    "the watchdog will be armed while this member holds the leader lease"
                );
                Ok(Some(watchdog))
            }
            Err(err) if config.mode == WatchdogMode::Automatic => {
                warn!(error = %err, "running without a watchdog");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// A watchdog on `device` (tests, the simulation, [`Watchdog::prepare`]).
    pub fn with_device(
        device: Box<dyn Device>,
        ttl: Duration,
        loop_wait: Duration,
        safety_margin: Option<Duration>,
    ) -> Result<Watchdog, WatchdogError> {
        let timeout_secs = timeout_for(device.path(), ttl, loop_wait, safety_margin)?;
        Ok(Watchdog {
            device,
            timeout_secs,
            loop_wait,
        })
    }

    /// The timeout this watchdog is (or will be) set to.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.into())
    }

    pub fn view(&self) -> WatchdogView {
        WatchdogView {
            armed: self.is_armed(),
            timeout_secs: self.timeout_secs,
        }
    }

    /// Follow the current `ttl`, `loop_wait` and `safety_margin`: a changed timeout is set on an
    /// armed device at once. `Ok(true)` when it changed. An error leaves the device as it was
    /// (the caller decides: required mode fences, automatic mode disables the watchdog).
    pub fn retime(
        &mut self,
        ttl: Duration,
        loop_wait: Duration,
        safety_margin: Option<Duration>,
    ) -> Result<bool, WatchdogError> {
        let secs = timeout_for(self.device.path(), ttl, loop_wait, safety_margin)?;
        if secs == self.timeout_secs && loop_wait == self.loop_wait {
            return Ok(false);
        }
        let previous = self.timeout_secs;
        self.timeout_secs = secs;
        self.loop_wait = loop_wait;
        if self.device.is_open() {
            self.set_timeout()?;
        }
        if secs != previous {
            info!(
                device = %self.device.path().display(),
                from_s = previous,
                to_s = secs,
                "the watchdog timeout follows the changed configuration"
            );
        }
        Ok(secs != previous)
    }

    /// Open (arm) the device if not open, set its timeout and ping it. Called after every
    /// successful lease renewal.
    ///
    /// If the timeout cannot be set to a safe value the device is disarmed again before the
    /// error is returned. If a ping fails the device stays armed: it fires unless a later ping
    /// succeeds, which is the point.
    pub fn keepalive(&mut self) -> Result<(), WatchdogError> {
        if !self.device.is_open() {
            self.device.open()?;
            if let Err(err) = self.set_timeout() {
                if let Err(disarm) = self.device.disarm() {
                    warn!(error = %disarm, "after failing to set the watchdog timeout");
                }
                return Err(err);
            }
            info!(
                device = %self.device.path().display(),
                timeout_s = self.timeout_secs,
                "watchdog armed"
            );
        }
        self.device.keepalive()
    }

    /// Set the timeout and check the one the device runs with: no longer than asked (the host
    /// would be reset after another member could be promoted) and no shorter than `loop_wait`
    /// (a normal loop would reset the host).
    fn set_timeout(&mut self) -> Result<(), WatchdogError> {
        let wanted = self.timeout_secs;
        let actual = self.device.set_timeout(wanted)?;
        if actual > wanted || Duration::from_secs(actual.into()) < self.loop_wait {
            return Err(WatchdogError::UnsafeTimeout {
                device: self.device.path().to_path_buf(),
                wanted,
                actual,
            });
        }
        if actual != wanted {
            info!(
                device = %self.device.path().display(),
                wanted_s = wanted,
                actual_s = actual,
                "the watchdog runs with a shorter timeout than asked"
            );
        }
        Ok(())
    }

    /// Disarm cleanly. Called when the lease is released or lost on purpose (demotion,
    /// shutdown). Does nothing if not armed. If it fails the device stays armed.
    pub fn disable(&mut self) -> Result<(), WatchdogError> {
        if !self.device.is_open() {
            return Ok(());
        }
        self.device.disarm()?;
        info!(device = %self.device.path().display(), "watchdog disarmed");
        Ok(())
    }

    pub fn is_armed(&self) -> bool {
        self.device.is_open()
    }
}

/// Dropping an armed watchdog closes the device without the magic `V`, so the timer keeps
/// running and resets the host unless someone reopens and pings it in time. That is deliberate:
/// a panic of the agent must end like a crash (where the kernel closes the device just the same),
/// because a primary whose agent is gone is exactly what the watchdog must fence.
impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.device.is_open() {
            warn!(
                device = %self.device.path().display(),
                timeout_s = self.timeout_secs,
                "closing the watchdog without disarming it: it resets this host when it expires"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);
    const LOOP_WAIT: Duration = Duration::from_secs(10);

    fn config(mode: WatchdogMode, safety_margin: Option<Duration>) -> WatchdogConfig {
        WatchdogConfig {
            mode,
            driver: WatchdogDriver::Testing,
            device: PathBuf::from("/dev/watchdog"),
            safety_margin,
        }
    }

    /// A watchdog on a testing device, and the device to read what happened to it.
    fn testing(
        margin: Option<Duration>,
        ttl: Duration,
        loop_wait: Duration,
    ) -> (Watchdog, TestingDevice) {
        let device = TestingDevice::default();
        let w = Watchdog::with_device(Box::new(device.clone()), ttl, loop_wait, margin).unwrap();
        (w, device)
    }

    #[test]
    fn off_is_none() {
        let c = config(WatchdogMode::Off, None);
        assert!(Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap().is_none());
    }

    #[test]
    fn a_regular_file_as_the_device_is_refused_in_required_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("watchdog");
        std::fs::write(&file, b"").unwrap();
        let mut c = config(WatchdogMode::Required, None);
        c.driver = WatchdogDriver::Default;
        c.device = file;
        let err = Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap_err();
        assert!(matches!(err, WatchdogError::NotADevice { .. }), "{err:?}");
        c.mode = WatchdogMode::Automatic;
        assert!(Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap().is_none());
    }

    #[test]
    fn timeout_is_ttl_minus_margin_or_half_ttl_rounded_down() {
        for (ttl, margin, want) in [
            (30_000, Some(5_000), 25),
            (20_000, Some(5_000), 15),
            (30_000, None, 15),
            (25_000, None, 12),
            (30_500, Some(5_000), 25),
            (30_000, Some(4_400), 25),
            (30_000, Some(0), 30),
        ] {
            let c = config(WatchdogMode::Required, margin.map(Duration::from_millis));
            let watchdog = Watchdog::prepare(&c, Duration::from_millis(ttl), LOOP_WAIT)
                .unwrap()
                .unwrap();
            assert_eq!(
                watchdog.timeout(),
                Duration::from_secs(want),
                "ttl {ttl} ms, margin {margin:?}"
            );
        }
    }

    #[test]
    fn a_timeout_shorter_than_loop_wait_or_a_second_is_refused() {
        for (ttl, margin, loop_wait) in [
            (14_000, Some(5_000), 10_000), // 9 s < 10 s
            (19_000, None, 10_000),        // 9.5 s -> 9 s
            (5_000, Some(5_000), 0),       // 0 s
            (1_900, None, 0),              // 0.95 s -> 0 s
            (3_000, Some(10_000), 1_000),  // margin beyond ttl
            (15_500, Some(5_000), 10_500), // 10.5 s -> 10 s, below loop_wait 10.5 s
        ] {
            let loop_wait = Duration::from_millis(loop_wait);
            let ttl = Duration::from_millis(ttl);
            let margin = margin.map(Duration::from_millis);
            let c = config(WatchdogMode::Required, margin);
            let err = Watchdog::prepare(&c, ttl, loop_wait).unwrap_err();
            assert!(
                matches!(err, WatchdogError::TooShort { .. }),
                "ttl {ttl:?}, margin {margin:?}, loop_wait {loop_wait:?}: {err:?}"
            );
            let c = config(WatchdogMode::Automatic, margin);
            assert!(Watchdog::prepare(&c, ttl, loop_wait).unwrap().is_none());
        }
        // Exactly loop_wait is enough, as for Patroni (timing slack 0).
        let c = config(WatchdogMode::Required, Some(Duration::from_millis(900)));
        let watchdog = Watchdog::prepare(&c, Duration::from_millis(10_900), LOOP_WAIT)
            .unwrap()
            .unwrap();
        assert_eq!(watchdog.timeout(), LOOP_WAIT);
    }

    #[test]
    fn keepalive_arms_at_the_first_ping_and_disable_disarms() {
        let (mut w, device) = testing(Some(Duration::from_secs(5)), TTL, LOOP_WAIT);
        assert!(!w.is_armed());
        assert_eq!(
            device.record(),
            TestingRecord::default(),
            "prepare touches nothing"
        );
        w.keepalive().unwrap();
        w.keepalive().unwrap();
        let r = device.record();
        assert!(r.armed && w.is_armed());
        assert_eq!((r.timeout_secs, r.keepalives), (Some(25), 2));
        w.disable().unwrap();
        assert!(!w.is_armed());
        assert_eq!(device.record().disarms, 1);
        w.disable().unwrap();
        assert_eq!(device.record().disarms, 1, "disabling twice is a no-op");
        w.keepalive().unwrap();
        assert!(device.record().armed, "a ping after disable arms again");
    }

    /// Regression (issue 14): the timeout was computed once from bootstrap.dcs's ttl and never
    /// followed PATCH /config; after ttl was lowered the watchdog fired only after another
    /// member could already be primary.
    #[test]
    fn the_timeout_follows_ttl_and_the_margin_on_an_armed_device() {
        let (mut w, device) = testing(Some(Duration::from_secs(5)), TTL, LOOP_WAIT);
        w.keepalive().unwrap();
        assert_eq!(device.record().timeout_secs, Some(25));
        // ttl lowered to 20 s: the armed device runs with 15 s at once.
        assert!(
            w.retime(
                Duration::from_secs(20),
                LOOP_WAIT,
                Some(Duration::from_secs(5))
            )
            .unwrap()
        );
        assert_eq!(device.record().timeout_secs, Some(15));
        assert_eq!(
            w.view(),
            WatchdogView {
                armed: true,
                timeout_secs: 15
            }
        );
        // Unchanged: nothing is set again.
        assert!(
            !w.retime(
                Duration::from_secs(20),
                LOOP_WAIT,
                Some(Duration::from_secs(5))
            )
            .unwrap()
        );
        // The margin changed: the timeout follows it too.
        assert!(
            w.retime(
                Duration::from_secs(20),
                LOOP_WAIT,
                Some(Duration::from_secs(8))
            )
            .unwrap()
        );
        assert_eq!(device.record().timeout_secs, Some(12));
        // A ttl too short for the watchdog is an error that leaves the device as it was.
        let err = w
            .retime(
                Duration::from_secs(12),
                LOOP_WAIT,
                Some(Duration::from_secs(5)),
            )
            .unwrap_err();
        assert!(matches!(err, WatchdogError::TooShort { .. }), "{err:?}");
        assert_eq!(device.record().timeout_secs, Some(12));
        // Not armed: the new timeout is set when it is armed.
        let (mut idle, device) = testing(None, TTL, LOOP_WAIT);
        idle.retime(Duration::from_secs(24), LOOP_WAIT, None)
            .unwrap();
        assert_eq!(device.record().timeout_secs, None);
        idle.keepalive().unwrap();
        assert_eq!(device.record().timeout_secs, Some(12));
    }

    #[test]
    fn drop_without_disable_leaves_the_device_armed() {
        let (mut w, device) = testing(None, TTL, LOOP_WAIT);
        w.keepalive().unwrap();
        drop(w);
        assert!(device.record().armed, "no disarm on drop");
    }
}
