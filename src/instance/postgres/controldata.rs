//! Reading what a stopped (or crashed) server left on disk: `pg_controldata` output and
//! `postmaster.pid`. Pure parsers; running the tools is `mod.rs`'s job.

use crate::instance::ClusterStateOnDisk;
use crate::types::{Lsn, Timeline};

/// The fields of `pg_controldata` the agent uses. Run it with `LC_ALL=C`: the labels are
/// translated otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controldata {
    pub sysid: String,
    pub cluster_state: ClusterStateOnDisk,
    pub timeline: Timeline,
    /// "Latest checkpoint location": after a clean shutdown, where the shutdown checkpoint
    /// record starts, the last record the server wrote.
    pub checkpoint: Option<Lsn>,
}

fn cluster_state(text: &str) -> ClusterStateOnDisk {
    match text {
        "shut down" => ClusterStateOnDisk::ShutDown,
        "shut down in recovery" => ClusterStateOnDisk::ShutDownInRecovery,
        "in production" => ClusterStateOnDisk::InProduction,
        "in archive recovery" => ClusterStateOnDisk::InArchiveRecovery,
        _ => ClusterStateOnDisk::Other,
    }
}

/// The value of one `label: value` line of `pg_controldata` output (run with `LC_ALL=C`).
pub fn field<'a>(text: &'a str, label: &str) -> Result<&'a str, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == label)
        .map(|(_, v)| v.trim())
        .ok_or_else(|| format!("pg_controldata printed no {label:?}"))
}

/// Parses `pg_controldata` output; `Err` names the missing or malformed field.
pub fn parse_controldata(text: &str) -> Result<Controldata, String> {
    let field = |label: &str| field(text, label);
    let sysid = field("Database system identifier")?;
    if sysid.is_empty() || !sysid.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("malformed system identifier {sysid:?}"));
    }
    let tli = field("Latest checkpoint's TimeLineID")?;
    let timeline = tli
        .parse::<u32>()
        .map_err(|_| format!("malformed timeline {tli:?}"))?;
    Ok(Controldata {
        sysid: sysid.to_owned(),
        cluster_state: cluster_state(field("Database cluster state")?),
        timeline: Timeline(timeline),
        checkpoint: field("Latest checkpoint location")
            .ok()
            .and_then(|l| l.parse().ok()),
    })
}

/// `postmaster.pid`: line 1 is the PID; line 8 (PostgreSQL 10+) the postmaster's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidFile {
    pub pid: Option<i32>,
    /// `starting`, `stopping`, `ready` or `standby`, padded with blanks in the file.
    pub status: Option<String>,
}

pub fn parse_pid_file(text: &str) -> PidFile {
    let lines: Vec<&str> = text.lines().collect();
    PidFile {
        pid: lines
            .first()
            .and_then(|l| l.trim().parse().ok())
            .filter(|p| *p > 0),
        status: lines
            .get(7)
            .map(|l| l.trim().to_owned())
            .filter(|s| !s.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("testdata/pg_controldata_15_shut_down.txt");

    #[test]
    fn parses_real_output() {
        assert_eq!(
            parse_controldata(SAMPLE).unwrap(),
            Controldata {
                sysid: "7711837634306945431".into(),
                cluster_state: ClusterStateOnDisk::ShutDown,
                timeline: Timeline(1),
                checkpoint: Some(Lsn(0x1500718)),
            }
        );
    }

    #[test]
    fn parses_every_state() {
        for (text, state) in [
            ("in production", ClusterStateOnDisk::InProduction),
            (
                "shut down in recovery",
                ClusterStateOnDisk::ShutDownInRecovery,
            ),
            ("in archive recovery", ClusterStateOnDisk::InArchiveRecovery),
            ("in crash recovery", ClusterStateOnDisk::Other),
            ("shutting down", ClusterStateOnDisk::Other),
        ] {
            let sample = SAMPLE
                .replace("shut down\n", &format!("{text}\n"))
                .replace("TimeLineID:       1", "TimeLineID:       12");
            let cd = parse_controldata(&sample).unwrap();
            assert_eq!(cd.cluster_state, state, "{text}");
            assert_eq!(cd.timeline, Timeline(12));
        }
    }

    #[test]
    fn rejects_truncated_output() {
        let err = parse_controldata("pg_control version number: 1300\n").unwrap_err();
        assert!(err.contains("Database system identifier"), "{err}");
        let bad = SAMPLE.replace("7711837634306945431", "x");
        assert!(parse_controldata(&bad).is_err());
    }

    #[test]
    fn pid_file() {
        let text =
            "4242\n/data\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001    12\nready   \n";
        assert_eq!(
            parse_pid_file(text),
            PidFile {
                pid: Some(4242),
                status: Some("ready".into())
            }
        );
        assert_eq!(
            parse_pid_file(""),
            PidFile {
                pid: None,
                status: None
            }
        );
    }
}
