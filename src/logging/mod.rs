//! Log set-up for the agent, from Patroni's `log` section: the level and per-target levels
//! (`loggers`), each line rendered by Patroni's `format`/`dateformat` (plain, or json with
//! `static_fields`: [`format`]), written to standard error or, with `dir`, to a size-rotated
//! `patroni.log` there ([`file`]). `RUST_LOG` takes precedence over the levels, for developers.
//!
//! Must not: fail after start-up. A log directory that cannot be written is an error at
//! `init`, before anything runs.

pub mod file;
pub mod format;

use tracing_subscriber::EnvFilter;

use crate::config::Log;

/// openraft's heartbeat workers log an ERROR ("failed to send HeartbeatProgress to RaftCore")
/// whenever RaftCore stops before them, which is every stop of a Raft leader: a requested stop
/// would show an error under systemd. Their failure that matters stops RaftCore, which is
/// reported on its own (`raft node stopped`, a failed proposal).
const QUIET_AT_STOP: &str = "openraft::core::heartbeat::worker=off";

/// Python's level names as tracing's.
fn tracing_level(python: &str) -> &'static str {
    match python.to_ascii_uppercase().as_str() {
        "NOTSET" => "trace",
        "DEBUG" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => "info",
    }
}

/// The filter directives of `log.level` and `log.loggers` (a Python dotted name is read as a
/// Rust path: `tribune.node` is `tribune::node`).
pub fn directives(log: &Log) -> String {
    let mut out = vec![
        tracing_level(&log.level).to_owned(),
        "openraft=error,sled=warn,h2=warn,hyper=warn,tower=warn".to_owned(),
    ];
    for (target, level) in &log.loggers {
        out.push(format!(
            "{}={}",
            target.replace('.', "::"),
            tracing_level(level)
        ));
    }
    out.join(",")
}

/// Install the agent's logger. Errors when `log.dir` cannot be written.
pub fn init(log: &Log) -> Result<(), file::LogFileError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(directives(log)))
        .add_directive(QUIET_AT_STOP.parse().expect("a valid directive"));
    let formatter = format::PatroniFormat::new(log);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(formatter);
    let _ = match &log.dir {
        Some(dir) => builder.with_writer(file::open(dir, log)?).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_loggers_become_filter_directives() {
        let mut log = Log {
            level: "WARNING".into(),
            ..Default::default()
        };
        log.loggers.insert("tribune.node".into(), "DEBUG".into());
        log.loggers.insert("openraft".into(), "INFO".into());
        assert_eq!(
            directives(&log),
            "warn,openraft=error,sled=warn,h2=warn,hyper=warn,tower=warn,openraft=info,\
             tribune::node=debug"
        );
        assert!(EnvFilter::try_new(directives(&log)).is_ok());
    }
}
