//! The watchdog: a Linux watchdog device (`/dev/watchdog`, a hardware timer or `softdog`) kept
//! alive only while this agent holds a valid leader lease. If the agent freezes or gets stuck
//! while its host runs the primary, the pings stop and the device resets the host before the
//! lease can expire and another member be promoted: hardware fencing (DESIGN section 4,
//! Patroni's `watchdog` section).
//!
//! The lease keeper owns the one [`Watchdog`]: it calls [`Watchdog::keepalive`] after every
//! successful renewal and [`Watchdog::disable`] when it gives the lease up on purpose. This
//! module decides nothing about the lease; it only opens, pings and disarms the device.
//!
//! Hazards:
//! - Opening a real device arms it: from then on the host resets unless the device is pinged
//!   within its timeout. So [`Watchdog::prepare`] never opens it, and the device is opened at
//!   the first keepalive, i.e. after the first renewal of the lease.
//! - Only a write of the magic character `V` just before closing disarms it. Dropping a
//!   [`Watchdog`] does not: an agent that crashes must let the device fire.
//! - The timeout is whole seconds, rounded down, and must be at least `loop_wait` (Patroni
//!   treats a shorter one as unusable: a normal loop would then reset the host).
//! - A regular file stands in for the device in tests: its ioctls fail with `ENOTTY`, so a ping
//!   is a one-byte write and the timeout counts as set.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::{AccessFlags, access};
use tracing::{debug, info, warn};

use crate::config::{Watchdog as WatchdogConfig, WatchdogMode};

/// Why the watchdog could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    #[error("watchdog device {device} cannot be used: {source}")]
    Inaccessible { device: PathBuf, source: io::Error },
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

/// The ioctls of `linux/watchdog.h` (type `'W'`).
mod sys {
    use nix::libc::c_int;

    /// `struct watchdog_info`.
    #[repr(C)]
    pub struct WatchdogInfo {
        pub options: u32,
        pub firmware_version: u32,
        pub identity: [u8; 32],
    }

    /// `WDIOF_MAGICCLOSE`: writing `V` before closing stops the timer.
    pub const WDIOF_MAGICCLOSE: u32 = 0x0100;

    nix::ioctl_read!(wdioc_getsupport, b'W', 0, WatchdogInfo);
    nix::ioctl_read!(wdioc_keepalive, b'W', 5, c_int);
    nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, c_int);
    nix::ioctl_read!(wdioc_gettimeout, b'W', 7, c_int);
}

/// The errors with which a device (or a stand-in file) says it does not take `WDIOC_KEEPALIVE`:
/// `ENOTTY` from a plain file, `EOPNOTSUPP` from a driver without `WDIOF_KEEPALIVEPING`, `EINVAL`
/// from old drivers that reject unknown ioctls.
fn unsupported(errno: Errno) -> bool {
    matches!(errno, Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::EINVAL)
}

/// The byte written as a ping when `WDIOC_KEEPALIVE` is not supported. Anything but `V`: the
/// kernel disarms on close after a write that contained a `V`.
const PING_BYTE: u8 = b'1';

/// The magic close character.
const MAGIC_CLOSE: u8 = b'V';

/// A watchdog device kept alive while this agent holds the leader lease.
#[derive(Debug)]
pub struct Watchdog {
    device: PathBuf,
    /// Whole seconds, at least 1 and at least `loop_wait`.
    timeout_secs: u32,
    loop_wait: Duration,
    /// Open means armed.
    file: Option<File>,
    /// `WDIOC_KEEPALIVE` was refused once: ping by writing a byte from then on.
    ping_by_write: bool,
}

impl Watchdog {
    /// Decide and prepare according to the config. Mode Off -> Ok(None). Automatic -> Ok(None)
    /// with a warning log if unusable, Ok(Some) if usable. Required -> Err if unusable. Does NOT
    /// open the device yet (opening a real watchdog arms it).
    ///
    /// Usable means: the timeout is at least 1 s and `loop_wait`, and the device exists and is
    /// writable by this process (Patroni's check; whether it takes the timeout is known only
    /// once it is opened).
    pub fn prepare(
        config: &WatchdogConfig,
        ttl: Duration,
        loop_wait: Duration,
    ) -> Result<Option<Watchdog>, WatchdogError> {
        if config.mode == WatchdogMode::Off {
            return Ok(None);
        }
        match Self::usable(config, ttl, loop_wait) {
            Ok(watchdog) => {
                info!(
                    device = %watchdog.device.display(),
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

    fn usable(
        config: &WatchdogConfig,
        ttl: Duration,
        loop_wait: Duration,
    ) -> Result<Watchdog, WatchdogError> {
        let device = config.device.clone();
        let timeout = match config.safety_margin {
            Some(margin) => ttl.saturating_sub(margin),
            None => ttl / 2,
        };
        let timeout_secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        let rounded = Duration::from_secs(timeout_secs.into());
        if timeout_secs < 1 || rounded < loop_wait {
            return Err(WatchdogError::TooShort {
                device,
                timeout: rounded,
                loop_wait,
            });
        }
        if let Err(errno) = access(&device, AccessFlags::W_OK) {
            return Err(WatchdogError::Inaccessible {
                device,
                source: errno.into(),
            });
        }
        Ok(Watchdog {
            device,
            timeout_secs,
            loop_wait,
            file: None,
            ping_by_write: false,
        })
    }

    /// The timeout this watchdog is (or will be) set to: ttl - safety_margin, or ttl/2, rounded
    /// down to whole seconds.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.into())
    }

    /// The device path, for messages.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Open (arm) the device if not open, set its timeout (`WDIOC_SETTIMEOUT`, read back with
    /// `WDIOC_GETTIMEOUT` when supported) and ping it (`WDIOC_KEEPALIVE`, or a one-byte write
    /// when the ioctl is not supported). Called after every successful lease renewal.
    ///
    /// If the timeout cannot be set to a safe value the device is disarmed again before the
    /// error is returned. If a ping fails the device stays armed: it fires unless a later ping
    /// succeeds, which is the point.
    pub fn keepalive(&mut self) -> Result<(), WatchdogError> {
        if self.file.is_none() {
            self.arm()?;
        }
        self.ping()
    }

    /// Disarm cleanly: write the magic close character `V` and close the device. Called when
    /// the lease is released or lost on purpose (demotion, shutdown). Does nothing if not armed.
    ///
    /// If the write fails the device stays open (and armed), so the caller may retry.
    pub fn disable(&mut self) -> Result<(), WatchdogError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(source) = file.write_all(&[MAGIC_CLOSE]) {
            return Err(WatchdogError::Disarm {
                device: self.device.clone(),
                source,
            });
        }
        // Closing right after the `V` is what stops the timer.
        self.file = None;
        info!(device = %self.device.display(), "watchdog disarmed");
        Ok(())
    }

    pub fn is_armed(&self) -> bool {
        self.file.is_some()
    }

    fn arm(&mut self) -> Result<(), WatchdogError> {
        // std opens with O_CLOEXEC: processes the agent starts (pg_ctl, postgres) must not
        // inherit the device and keep it open.
        let file = OpenOptions::new()
            .write(true)
            .open(&self.device)
            .map_err(|source| WatchdogError::Open {
                device: self.device.clone(),
                source,
            })?;
        self.file = Some(file);
        self.describe();
        if let Err(err) = self.set_timeout() {
            if let Err(disarm) = self.disable() {
                warn!(error = %disarm, "after failing to set the watchdog timeout");
            }
            return Err(err);
        }
        info!(
            device = %self.device.display(),
            timeout_s = self.timeout_secs,
            "watchdog armed"
        );
        Ok(())
    }

    fn raw_fd(&self) -> i32 {
        self.file.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Log what the device is, and warn when it cannot be disarmed (no magic close).
    fn describe(&self) {
        let mut info = sys::WatchdogInfo {
            options: 0,
            firmware_version: 0,
            identity: [0; 32],
        };
        // SAFETY: `info` is a live, writable `struct watchdog_info`, the size the ioctl writes.
        match unsafe { sys::wdioc_getsupport(self.raw_fd(), &mut info) } {
            Ok(_) => {
                let end = info.identity.iter().position(|&b| b == 0).unwrap_or(32);
                let identity = String::from_utf8_lossy(&info.identity[..end]);
                debug!(device = %self.device.display(), %identity, "watchdog device");
                if info.options & sys::WDIOF_MAGICCLOSE == 0 {
                    warn!(
                        device = %self.device.display(),
                        %identity,
                        "this watchdog cannot be disarmed: it will reset the host after the \
                         agent stops or gives the leader lease up"
                    );
                }
            }
            Err(errno) => debug!(
                device = %self.device.display(),
                %errno,
                "watchdog device does not describe itself (not a watchdog, a stand-in?)"
            ),
        }
    }

    /// Set the timeout and check the one the device actually runs with: no longer than asked
    /// (the host would be reset after another member could be promoted) and no shorter than
    /// `loop_wait` (a normal loop would reset the host).
    fn set_timeout(&mut self) -> Result<(), WatchdogError> {
        let fd = self.raw_fd();
        let wanted = self.timeout_secs;
        let mut value = i32::try_from(wanted).unwrap_or(i32::MAX);
        // SAFETY: `value` is a live, writable `int`, the size the ioctl reads and writes.
        let set = unsafe { sys::wdioc_settimeout(fd, &mut value) };
        if set == Err(Errno::ENOTTY) {
            debug!(
                device = %self.device.display(),
                "no watchdog ioctls (a stand-in?): taking the timeout as set"
            );
            return Ok(());
        }
        if let Err(errno) = set {
            warn!(
                device = %self.device.display(),
                %errno,
                wanted_s = wanted,
                "could not set the watchdog timeout; checking the one it has"
            );
        }
        let mut current = 0;
        // SAFETY: `current` is a live, writable `int`, the size the ioctl writes.
        let reported = unsafe { sys::wdioc_gettimeout(fd, &mut current) }.ok();
        let actual = match (set, reported) {
            (_, Some(_)) => current,
            (Ok(_), None) => value,
            (Err(errno), None) => {
                return Err(WatchdogError::SetTimeout {
                    device: self.device.clone(),
                    wanted,
                    source: errno.into(),
                });
            }
        };
        let actual = u32::try_from(actual).unwrap_or(0);
        if actual > wanted || Duration::from_secs(actual.into()) < self.loop_wait {
            return Err(WatchdogError::UnsafeTimeout {
                device: self.device.clone(),
                wanted,
                actual,
            });
        }
        if actual != wanted {
            info!(
                device = %self.device.display(),
                wanted_s = wanted,
                actual_s = actual,
                "the watchdog runs with a shorter timeout than asked"
            );
        }
        Ok(())
    }

    fn ping(&mut self) -> Result<(), WatchdogError> {
        let device = &self.device;
        let Some(file) = self.file.as_mut() else {
            return Err(WatchdogError::Keepalive {
                device: device.clone(),
                source: io::Error::other("the device is not open"),
            });
        };
        if !self.ping_by_write {
            let mut dummy = 0;
            // SAFETY: `dummy` is a live, writable `int`; the ioctl ignores its argument.
            match unsafe { sys::wdioc_keepalive(file.as_raw_fd(), &mut dummy) } {
                Ok(_) => return Ok(()),
                Err(errno) if unsupported(errno) => {
                    debug!(
                        device = %device.display(),
                        %errno,
                        "no WDIOC_KEEPALIVE: pinging the watchdog by writing a byte"
                    );
                    self.ping_by_write = true;
                }
                Err(errno) => {
                    return Err(WatchdogError::Keepalive {
                        device: device.clone(),
                        source: errno.into(),
                    });
                }
            }
        }
        file.write_all(&[PING_BYTE])
            .map_err(|source| WatchdogError::Keepalive {
                device: device.clone(),
                source,
            })
    }
}

/// Dropping an armed watchdog closes the device without the magic `V`, so the timer keeps
/// running and resets the host unless someone reopens and pings it in time. That is deliberate:
/// a panic of the agent must end like a crash (where the kernel closes the device just the same),
/// because a primary whose agent is gone is exactly what the watchdog must fence. Only
/// [`Watchdog::disable`] disarms.
impl Drop for Watchdog {
    fn drop(&mut self) {
        if self.file.is_some() {
            warn!(
                device = %self.device.display(),
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

    /// A regular file standing in for the device, in a fresh temporary directory.
    fn stand_in() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("watchdog");
        std::fs::write(&device, b"").unwrap();
        (dir, device)
    }

    fn config(
        mode: WatchdogMode,
        device: &Path,
        safety_margin: Option<Duration>,
    ) -> WatchdogConfig {
        WatchdogConfig {
            mode,
            device: device.to_path_buf(),
            safety_margin,
        }
    }

    fn prepared(device: &Path) -> Watchdog {
        let c = config(WatchdogMode::Required, device, Some(Duration::from_secs(5)));
        Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap().unwrap()
    }

    fn content(device: &Path) -> Vec<u8> {
        std::fs::read(device).unwrap()
    }

    #[test]
    fn off_is_none_even_with_a_usable_device() {
        let (_dir, device) = stand_in();
        let c = config(WatchdogMode::Off, &device, None);
        assert!(Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap().is_none());
    }

    #[test]
    fn automatic_without_a_device_is_none() {
        let (dir, _) = stand_in();
        let c = config(WatchdogMode::Automatic, &dir.path().join("missing"), None);
        assert!(Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap().is_none());
    }

    #[test]
    fn automatic_with_a_device_is_some_and_not_armed() {
        let (_dir, device) = stand_in();
        let c = config(WatchdogMode::Automatic, &device, None);
        let watchdog = Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap().unwrap();
        assert!(!watchdog.is_armed());
        assert!(
            content(&device).is_empty(),
            "prepare must not touch the device"
        );
    }

    #[test]
    fn required_without_a_device_names_it() {
        let (dir, _) = stand_in();
        let missing = dir.path().join("missing");
        let c = config(WatchdogMode::Required, &missing, None);
        let err = Watchdog::prepare(&c, TTL, LOOP_WAIT).unwrap_err();
        assert!(matches!(err, WatchdogError::Inaccessible { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn timeout_is_ttl_minus_margin_or_half_ttl_rounded_down() {
        let (_dir, device) = stand_in();
        for (ttl, margin, want) in [
            (30_000, Some(5_000), 25),
            (20_000, Some(5_000), 15),
            (30_000, None, 15),
            (25_000, None, 12),
            (30_500, Some(5_000), 25),
            (30_000, Some(4_400), 25),
            (30_000, Some(0), 30),
        ] {
            let c = config(
                WatchdogMode::Required,
                &device,
                margin.map(Duration::from_millis),
            );
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
        let (_dir, device) = stand_in();
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
            let c = config(WatchdogMode::Required, &device, margin);
            let err = Watchdog::prepare(&c, ttl, loop_wait).unwrap_err();
            assert!(
                matches!(err, WatchdogError::TooShort { .. }),
                "ttl {ttl:?}, margin {margin:?}, loop_wait {loop_wait:?}: {err:?}"
            );
            assert!(err.to_string().contains(&device.display().to_string()));
            let c = config(WatchdogMode::Automatic, &device, margin);
            assert!(Watchdog::prepare(&c, ttl, loop_wait).unwrap().is_none());
        }
        // Exactly loop_wait is enough, as for Patroni (timing slack 0).
        let c = config(
            WatchdogMode::Required,
            &device,
            Some(Duration::from_millis(900)),
        );
        let watchdog = Watchdog::prepare(&c, Duration::from_millis(10_900), LOOP_WAIT)
            .unwrap()
            .unwrap();
        assert_eq!(watchdog.timeout(), LOOP_WAIT);
    }

    #[test]
    fn keepalive_opens_lazily_and_each_one_pings() {
        let (_dir, device) = stand_in();
        let mut watchdog = prepared(&device);
        assert!(!watchdog.is_armed());
        watchdog.keepalive().unwrap();
        assert!(watchdog.is_armed());
        assert_eq!(content(&device), b"1");
        watchdog.keepalive().unwrap();
        watchdog.keepalive().unwrap();
        assert_eq!(content(&device), b"111");
        assert!(watchdog.is_armed());
    }

    #[test]
    fn keepalive_on_an_unopenable_device_fails_naming_it() {
        let (dir, device) = stand_in();
        let mut watchdog = prepared(&device);
        std::fs::remove_file(&device).unwrap();
        std::fs::create_dir(&device).unwrap();
        let err = watchdog.keepalive().unwrap_err();
        assert!(matches!(err, WatchdogError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(&device.display().to_string()));
        assert!(!watchdog.is_armed());
        drop(dir);
    }

    #[test]
    fn disable_writes_v_last_and_closes() {
        let (_dir, device) = stand_in();
        let mut watchdog = prepared(&device);
        watchdog.keepalive().unwrap();
        watchdog.keepalive().unwrap();
        watchdog.disable().unwrap();
        assert!(!watchdog.is_armed());
        assert_eq!(content(&device), b"11V");
        // Disabling again is a no-op.
        watchdog.disable().unwrap();
        assert_eq!(content(&device), b"11V");
    }

    #[test]
    fn disable_before_any_keepalive_does_not_open_the_device() {
        let (_dir, device) = stand_in();
        let mut watchdog = prepared(&device);
        watchdog.disable().unwrap();
        assert!(!watchdog.is_armed());
        assert!(content(&device).is_empty());
    }

    #[test]
    fn keepalive_after_disable_rearms() {
        let (_dir, device) = stand_in();
        let mut watchdog = prepared(&device);
        watchdog.keepalive().unwrap();
        watchdog.disable().unwrap();
        assert_eq!(content(&device), b"1V");
        // Empty the stand-in, so that what the re-armed watchdog writes is all there is.
        std::fs::write(&device, b"").unwrap();
        watchdog.keepalive().unwrap();
        assert!(watchdog.is_armed());
        assert_eq!(content(&device), b"1");
        watchdog.disable().unwrap();
        assert_eq!(content(&device), b"1V");
    }

    #[test]
    fn drop_without_disable_leaves_the_device_armed() {
        let (_dir, device) = stand_in();
        let mut watchdog = prepared(&device);
        watchdog.keepalive().unwrap();
        watchdog.keepalive().unwrap();
        drop(watchdog);
        assert_eq!(content(&device), b"11", "no magic close on drop");
    }
}
