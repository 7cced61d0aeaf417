//! Patroni's `watchdog.driver: testing`: an in-memory stand-in for the device. It fences
//! nothing; it records what the agent did with it (armed, the timeout set, pings, disarms), which
//! `/metrics` shows and tests read. Also the device of the deterministic simulation, which
//! decides itself what an expired timer does.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Device, WatchdogError};

/// What the agent did with the device so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestingRecord {
    pub armed: bool,
    /// The timeout last set, whole seconds.
    pub timeout_secs: Option<u32>,
    pub keepalives: u64,
    pub disarms: u64,
}

/// Cheap to clone: every clone is the same device.
#[derive(Clone, Debug, Default)]
pub struct TestingDevice {
    record: Arc<Mutex<TestingRecord>>,
}

impl TestingDevice {
    pub fn record(&self) -> TestingRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update<T>(&self, f: impl FnOnce(&mut TestingRecord) -> T) -> T {
        f(&mut self.record.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Device for TestingDevice {
    fn path(&self) -> &Path {
        Path::new("testing")
    }

    fn is_open(&self) -> bool {
        self.update(|r| r.armed)
    }

    fn open(&mut self) -> Result<(), WatchdogError> {
        self.update(|r| r.armed = true);
        Ok(())
    }

    fn set_timeout(&mut self, wanted: u32) -> Result<u32, WatchdogError> {
        self.update(|r| r.timeout_secs = Some(wanted));
        Ok(wanted)
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        self.update(|r| r.keepalives += 1);
        Ok(())
    }

    fn disarm(&mut self) -> Result<(), WatchdogError> {
        self.update(|r| {
            if r.armed {
                r.armed = false;
                r.disarms += 1;
            }
        });
        Ok(())
    }
}
