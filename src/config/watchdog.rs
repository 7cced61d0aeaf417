//! `watchdog`: the hardware/softdog timer that resets a primary whose agent stops renewing.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;
use super::value::{Section, as_integer, as_seconds};

/// Patroni's default `safety_margin`: the watchdog fires this long before the lease expires.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchdogMode {
    Off,
    /// Use the watchdog if it can be opened (Patroni's default).
    #[default]
    Automatic,
    /// Never become primary without an armed watchdog.
    Required,
}

/// Patroni's `watchdog.driver`: the Linux watchdog device, or `testing`, an in-memory stand-in
/// that records what the agent does with it (for tests; it fences nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchdogDriver {
    #[default]
    Default,
    Testing,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Watchdog {
    pub mode: WatchdogMode,
    pub driver: WatchdogDriver,
    pub device: PathBuf,
    /// `None` (written `-1`): the watchdog timeout is `ttl / 2`. Otherwise the timeout is
    /// `ttl - safety_margin`.
    pub safety_margin: Option<Duration>,
}

impl Default for Watchdog {
    fn default() -> Self {
        Self {
            mode: WatchdogMode::Automatic,
            driver: WatchdogDriver::Default,
            device: PathBuf::from("/dev/watchdog"),
            safety_margin: Some(DEFAULT_SAFETY_MARGIN),
        }
    }
}

impl Watchdog {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Watchdog, ConfigError> {
        let d = Watchdog::default();
        Ok(Watchdog {
            mode: match s.get("mode") {
                None => d.mode,
                Some(v) => mode(&s.key("mode"), v)?,
            },
            driver: match s.get("driver") {
                None => d.driver,
                Some(v) => match v.as_str().map(|t| t.trim().to_ascii_lowercase()).as_deref() {
                    Some("default") => WatchdogDriver::Default,
                    Some("testing") => WatchdogDriver::Testing,
                    _ => {
                        return Err(ConfigError::wrong_type(
                            s.key("driver"),
                            "default or testing",
                            v,
                        ));
                    }
                },
            },
            device: s.path_buf("device")?.unwrap_or(d.device),
            safety_margin: match s.get("safety_margin") {
                None => d.safety_margin,
                Some(v) if as_integer(v) == Some(-1) => None,
                Some(v) => Some(as_seconds(v).ok_or_else(|| {
                    ConfigError::wrong_type(
                        s.key("safety_margin"),
                        "a number of seconds (>= 0), or -1 for ttl/2",
                        v,
                    )
                })?),
            },
        })
    }
}

/// Patroni's spellings; YAML 1.1 reads a bare `off` as the boolean false.
fn mode(key: &str, v: &Value) -> Result<WatchdogMode, ConfigError> {
    let text = match v {
        Value::Bool(false) => return Ok(WatchdogMode::Off),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        _ => String::new(),
    };
    match text.as_str() {
        "off" | "false" | "disable" | "disabled" => Ok(WatchdogMode::Off),
        "automatic" | "auto" => Ok(WatchdogMode::Automatic),
        "required" | "require" => Ok(WatchdogMode::Required),
        _ => Err(ConfigError::wrong_type(
            key,
            "off, automatic or required",
            v,
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(doc: serde_json::Value) -> Result<Watchdog, ConfigError> {
        Watchdog::parse(&Section::new("watchdog", Some(&doc)).unwrap())
    }

    #[test]
    fn modes_and_margins() {
        for (v, want) in [
            (json!(false), WatchdogMode::Off),
            (json!("off"), WatchdogMode::Off),
            (json!("disabled"), WatchdogMode::Off),
            (json!("auto"), WatchdogMode::Automatic),
            (json!("Automatic"), WatchdogMode::Automatic),
            (json!("require"), WatchdogMode::Required),
            (json!("required"), WatchdogMode::Required),
        ] {
            assert_eq!(parse(json!({ "mode": v })).unwrap().mode, want, "{v}");
        }
        assert_eq!(parse(json!({})).unwrap(), Watchdog::default());
        assert_eq!(
            parse(json!({"safety_margin": -1})).unwrap().safety_margin,
            None
        );
        assert_eq!(
            parse(json!({"safety_margin": 2})).unwrap().safety_margin,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            parse(json!({"driver": "testing"})).unwrap().driver,
            WatchdogDriver::Testing
        );
        assert_eq!(parse(json!({})).unwrap().driver, WatchdogDriver::Default);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (doc, key) in [
            (json!({"mode": "sometimes"}), "watchdog.mode"),
            (json!({"mode": true}), "watchdog.mode"),
            (json!({"mode": 1}), "watchdog.mode"),
            (json!({"safety_margin": -2}), "watchdog.safety_margin"),
            (json!({"device": ["x"]}), "watchdog.device"),
            (json!({"driver": "softdog"}), "watchdog.driver"),
        ] {
            let err = parse(doc.clone()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
        }
    }
}
