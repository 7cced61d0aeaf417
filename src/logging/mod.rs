//! Log set-up for the agent: `log.level` (Patroni's names) and `log.type` plain or json, with
//! `RUST_LOG` taking precedence for developers.

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

/// openraft's heartbeat workers log an ERROR ("failed to send HeartbeatProgress to RaftCore")
/// whenever RaftCore stops before them, which is every stop of a Raft leader: a requested stop
/// would show an error under systemd. Their failure that matters stops RaftCore, which is
/// reported on its own (`raft node stopped`, a failed proposal).
const QUIET_AT_STOP: &str = "openraft::core::heartbeat::worker=off";

pub fn init(log: &Log) {
    let level = match log.level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "{level},openraft=error,sled=warn,h2=warn,hyper=warn,tower=warn"
            ))
        })
        .add_directive(QUIET_AT_STOP.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Plain => builder.try_init(),
    };
}
