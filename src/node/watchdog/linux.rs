//! The Linux watchdog device (`/dev/watchdog`: a hardware timer or `softdog`), driven through
//! the ioctls of `linux/watchdog.h`.
//!
//! Hazards:
//! - Opening the device arms it: from then on the host resets unless it is pinged within its
//!   timeout. Only a write of the magic character `V` right before closing disarms it.
//! - The path must name a character device: a regular file (a mistyped path, a leftover test
//!   stand-in) would satisfy `mode: required` while fencing nothing, so it is refused.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{AccessFlags, access};
use tracing::{debug, warn};

use super::{Device, WatchdogError};

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

#[derive(Debug)]
pub struct LinuxDevice {
    device: PathBuf,
    /// Open means armed.
    file: Option<File>,
    /// `WDIOC_KEEPALIVE` was refused once: ping by writing a byte from then on.
    ping_by_write: bool,
}

impl LinuxDevice {
    /// The device at `path`, checked as Patroni checks it (it exists and this process may write
    /// to it) and refused unless it is a character device. Not opened: that would arm it.
    pub fn at(path: &Path) -> Result<LinuxDevice, WatchdogError> {
        let inaccessible = |source: io::Error| WatchdogError::Inaccessible {
            device: path.to_path_buf(),
            source,
        };
        if let Err(errno) = access(path, AccessFlags::W_OK) {
            return Err(inaccessible(errno.into()));
        }
        let kind = std::fs::metadata(path).map_err(inaccessible)?.file_type();
        if !kind.is_char_device() {
            return Err(WatchdogError::NotADevice {
                device: path.to_path_buf(),
            });
        }
        Ok(Self::unchecked(path))
    }

    /// Without the checks of [`LinuxDevice::at`]: for tests of the ioctl fallbacks on a file.
    fn unchecked(path: &Path) -> LinuxDevice {
        LinuxDevice {
            device: path.to_path_buf(),
            file: None,
            ping_by_write: false,
        }
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
                "watchdog device does not describe itself"
            ),
        }
    }
}

impl Device for LinuxDevice {
    fn path(&self) -> &Path {
        &self.device
    }

    fn is_open(&self) -> bool {
        self.file.is_some()
    }

    fn open(&mut self) -> Result<(), WatchdogError> {
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
        Ok(())
    }

    fn set_timeout(&mut self, wanted: u32) -> Result<u32, WatchdogError> {
        let fd = self.raw_fd();
        let mut value = i32::try_from(wanted).unwrap_or(i32::MAX);
        // SAFETY: `value` is a live, writable `int`, the size the ioctl reads and writes.
        let set = unsafe { sys::wdioc_settimeout(fd, &mut value) };
        if set == Err(Errno::ENOTTY) {
            debug!(
                device = %self.device.display(),
                "no watchdog ioctls: taking the timeout as set"
            );
            return Ok(wanted);
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
        Ok(u32::try_from(actual).unwrap_or(0))
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
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

    fn disarm(&mut self) -> Result<(), WatchdogError> {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regular file standing in for the device, in a fresh temporary directory.
    fn stand_in() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("watchdog");
        std::fs::write(&device, b"").unwrap();
        (dir, device)
    }

    fn content(device: &Path) -> Vec<u8> {
        std::fs::read(device).unwrap()
    }

    #[test]
    fn a_regular_file_is_not_a_watchdog() {
        let (_dir, device) = stand_in();
        let err = LinuxDevice::at(&device).unwrap_err();
        assert!(matches!(err, WatchdogError::NotADevice { .. }), "{err:?}");
        assert!(err.to_string().contains("driver: testing"), "{err}");
        let missing = device.with_file_name("missing");
        let err = LinuxDevice::at(&missing).unwrap_err();
        assert!(matches!(err, WatchdogError::Inaccessible { .. }), "{err:?}");
        // A character device passes the check (opening it is another matter).
        assert!(LinuxDevice::at(Path::new("/dev/null")).is_ok());
    }

    /// Without the watchdog ioctls (a file), a ping is a one-byte write and the magic close a
    /// `V`, written last.
    #[test]
    fn pings_fall_back_to_writes_and_disarm_writes_v_last() {
        let (_dir, device) = stand_in();
        let mut d = LinuxDevice::unchecked(&device);
        d.open().unwrap();
        assert_eq!(d.set_timeout(5).unwrap(), 5);
        d.keepalive().unwrap();
        d.keepalive().unwrap();
        d.disarm().unwrap();
        assert!(!d.is_open());
        assert_eq!(content(&device), b"11V");
        d.disarm().unwrap();
        assert_eq!(
            content(&device),
            b"11V",
            "disarming twice writes nothing more"
        );
    }

    #[test]
    fn a_device_that_cannot_be_opened_is_named() {
        let (dir, device) = stand_in();
        std::fs::remove_file(&device).unwrap();
        std::fs::create_dir(&device).unwrap();
        let mut d = LinuxDevice::unchecked(&device);
        let err = d.open().unwrap_err();
        assert!(matches!(err, WatchdogError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(&device.display().to_string()));
        drop(dir);
    }
}
