//! Reading what `gs_ctl` prints. It prints everything, results included, on stderr, each
//! progress line prefixed with `[time][pid][node][gs_ctl]: `, and it exits 0 in cases that did
//! not do what was asked (another `gs_ctl` holds the data directory's lock, a start that is
//! "still starting up", a switchover that timed out). So the adapter never takes an exit status
//! as the outcome: it confirms by SQL, and uses what is parsed here to say what happened.
//!
//! - [`parse_query`]: `gs_ctl query`, the HA state when SQL does not answer (it then reads the
//!   binary `gaussdb.state` file).
//! - [`notices`]: the messages that explain an operation that did not take effect.
//!
//! Pure; the adapter passes stdout and stderr joined.

use std::collections::BTreeMap;

use super::hastate::HaState;

/// One block of `name : value` lines.
pub type Fields = BTreeMap<String, String>;

/// What `gs_ctl query` printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryReport {
    /// The "HA state" block.
    pub ha_state: Option<HaState>,
    /// The raw "HA state" fields (`static_connections`, `sync_mode` when read from the file).
    pub ha_fields: Fields,
    /// One block per WAL sender ("Senders info").
    pub senders: Vec<Fields>,
    /// The WAL receiver's block, if one runs ("Receiver info").
    pub receivers: Vec<Fields>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    HaState,
    Senders,
    Receivers,
    Other,
}

/// A `name : value` line (`^\s*(\w+)\s*:\s*(.*)$`), or `None` for anything else (headers,
/// `[time][pid]...` progress lines, `...`).
fn field(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let name = name.trim();
    let word = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    word.then(|| (name, value.trim()))
}

/// Appends a field to the last block of `blocks`, starting a new block when the block has the
/// field already (senders are printed one block after another).
fn push_field(blocks: &mut Vec<Fields>, fresh: &mut bool, name: &str, value: &str) {
    if *fresh || blocks.last().is_none_or(|b| b.contains_key(name)) {
        blocks.push(Fields::new());
        *fresh = false;
    }
    if let Some(block) = blocks.last_mut() {
        block.insert(name.to_owned(), value.to_owned());
    }
}

/// Parses `gs_ctl query` output.
pub fn parse_query(text: &str) -> QueryReport {
    let mut report = QueryReport::default();
    let mut section = Section::None;
    // A blank line ends a sender's block.
    let mut fresh = true;
    for line in text.lines() {
        let trimmed = line.trim();
        let header = match trimmed {
            "HA state:" => Some(Section::HaState),
            "Senders info:" => Some(Section::Senders),
            "Receiver info:" => Some(Section::Receivers),
            "Paxos replication info:" => Some(Section::Other),
            _ => None,
        };
        if let Some(next) = header {
            section = next;
            fresh = true;
            continue;
        }
        if trimmed.is_empty() {
            fresh = true;
            continue;
        }
        let Some((name, value)) = field(line) else {
            continue;
        };
        match section {
            Section::HaState => {
                report.ha_fields.insert(name.to_owned(), value.to_owned());
            }
            Section::Senders => push_field(&mut report.senders, &mut fresh, name, value),
            Section::Receivers => push_field(&mut report.receivers, &mut fresh, name, value),
            Section::None | Section::Other => {}
        }
    }
    let f = |k: &str| report.ha_fields.get(k).map(String::as_str);
    if let (Some(role), Some(state)) = (f("local_role"), f("db_state")) {
        report.ha_state = Some(HaState::parse(
            role,
            state,
            f("detail_information").unwrap_or(""),
        ));
    }
    report
}

/// A message of `gs_ctl` that explains an outcome its exit status does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// "Another gs_ctl command is still running": the command did nothing (start and
    /// startwalrcv still exit 0).
    LockBusy,
    /// "another server might be running": `start` found a postmaster and did nothing (exit 0).
    AlreadyRunning,
    /// "server is still starting up": `start -w` gave up waiting (exit 0).
    StillStarting,
    /// "could not start server".
    StartFailed,
    /// "failover timeout" / "switchover timeout": the role did not change in time (switchover
    /// exits 0 and keeps trying in the background).
    RoleChangeTimedOut,
    /// "server does not shut down".
    StopTimedOut,
    /// "Uncompleted build is detected": an interrupted `gs_ctl build`; the server refuses to
    /// start until it is built again.
    UncompletedBuild,
}

impl Notice {
    const MARKERS: [(&'static str, Notice); 8] = [
        ("Another gs_ctl command is still running", Notice::LockBusy),
        ("another server might be running", Notice::AlreadyRunning),
        ("server is still starting up", Notice::StillStarting),
        ("could not start server", Notice::StartFailed),
        ("failover timeout", Notice::RoleChangeTimedOut),
        ("switchover timeout", Notice::RoleChangeTimedOut),
        ("server does not shut down", Notice::StopTimedOut),
        ("Uncompleted build is detected", Notice::UncompletedBuild),
    ];

    /// What it means, for an error message.
    pub fn explain(self) -> &'static str {
        match self {
            Notice::LockBusy => "another gs_ctl command holds the data directory's lock",
            Notice::AlreadyRunning => "a server was already running",
            Notice::StillStarting => "the server was still starting up when gs_ctl stopped waiting",
            Notice::StartFailed => "the server did not start",
            Notice::RoleChangeTimedOut => "the role change did not finish in time",
            Notice::StopTimedOut => "the server did not shut down in time",
            Notice::UncompletedBuild => "an interrupted gs_ctl build must be run again",
        }
    }
}

/// The notices in `text`, in the order of [`Notice::MARKERS`], each once.
pub fn notices(text: &str) -> Vec<Notice> {
    let mut out = Vec::new();
    for (marker, notice) in Notice::MARKERS {
        if text.contains(marker) && !out.contains(&notice) {
            out.push(notice);
        }
    }
    out
}

/// The notices of `text` as one phrase (empty when there are none).
pub fn explain(text: &str) -> String {
    notices(text)
        .iter()
        .map(|n| n.explain())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::opengauss::hastate::{DbStateText, Detail, LocalRole};

    /// The sample of the reference (`gs_ctl query` on a primary with one synchronous standby),
    /// as printed there, abbreviated with `...`.
    const PRIMARY: &str = include_str!("fixtures/gs_ctl_query_primary.txt");

    #[test]
    fn the_reference_sample_parses() {
        let report = parse_query(PRIMARY);
        assert_eq!(
            report.ha_state,
            Some(HaState {
                local_role: LocalRole::Primary,
                db_state: DbStateText::Normal,
                detail: Detail::Normal,
            })
        );
        assert_eq!(report.ha_fields["static_connections"], "1");
        assert_eq!(report.senders.len(), 1);
        let sender = &report.senders[0];
        assert_eq!(sender["sender_pid"], "5165");
        assert_eq!(sender["state"], "Streaming");
        assert_eq!(sender["sync_state"], "Sync");
        assert_eq!(sender["sync_percent"], "100%");
        assert_eq!(sender["channel"], "10.244.44.52:27001-->10.244.44.52:35912");
        assert_eq!(sender.len(), 12, "the `...` line is skipped: {sender:?}");
        assert!(report.receivers.is_empty());
    }

    /// One line as `gs_ctl query` prints it (`pg_ctl.cpp`: `"        %-30s: %s"`).
    fn row(name: &str, value: &str) -> String {
        format!("        {name:<30}: {value}\n")
    }

    #[test]
    fn progress_lines_and_repeated_sender_blocks() {
        let text = [
            "[2024-05-01 10:00:00.000][4242][][gs_ctl]: gs_ctl query ,datadir is /data\n".into(),
            " HA state:\n".into(),
            row("local_role", "Standby"),
            row("static_connections", "2"),
            row("db_state", "Need repair"),
            row("detail_information", "WAL segment removed"),
            "\n Senders info:\n".into(),
            row("sender_pid", "1"),
            row("state", "Catchup"),
            "\n".into(),
            row("sender_pid", "2"),
            row("state", "Streaming"),
            "\n Receiver info:\n".into(),
            row("receiver_pid", "9"),
            row("channel", "10.0.0.2:26001<--10.0.0.1:26001"),
        ]
        .concat();
        let report = parse_query(&text);
        let ha = report.ha_state.unwrap();
        assert_eq!(ha.db_state, DbStateText::NeedRepair);
        assert_eq!(ha.detail, Detail::WalSegmentRemoved);
        assert_eq!(report.senders.len(), 2);
        assert_eq!(report.senders[1]["state"], "Streaming");
        assert_eq!(report.receivers[0]["receiver_pid"], "9");
    }

    #[test]
    fn no_ha_state_without_its_fields() {
        let report = parse_query(" PID file \"/data/postmaster.pid\" does not exist\n");
        assert_eq!(report, QueryReport::default());
    }

    #[test]
    fn notices_explain_outcomes_the_exit_status_hides() {
        let start =
            "[2024-05-01][1][][gs_ctl]: Another gs_ctl command is still running,start failed !\n";
        assert_eq!(notices(start), vec![Notice::LockBusy]);
        let slow =
            "waiting for server to start...\n.... stopped waiting\nserver is still starting up\n";
        assert_eq!(notices(slow), vec![Notice::StillStarting]);
        let failover = " failover timeout after 60 seconds. please manually check the cluster status or backtrack log.\n failover failed (/data)\n";
        assert_eq!(notices(failover), vec![Notice::RoleChangeTimedOut]);
        let switchover = "\n switchover timeout after 60 seconds. please manually check";
        assert_eq!(notices(switchover), vec![Notice::RoleChangeTimedOut]);
        assert_eq!(
            explain(" another server might be running; Please use the restart command\n"),
            "a server was already running"
        );
        assert_eq!(explain("server started (/data)\n"), "");
        assert_eq!(
            notices("FATAL:  Uncompleted build is detected, please build again"),
            vec![Notice::UncompletedBuild]
        );
    }
}
