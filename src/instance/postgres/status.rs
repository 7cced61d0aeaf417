//! The status query: everything [`LocalStatus`] holds about a running server, in one round trip
//! (it runs every tick), and its parser.
//!
//! The query is sent with the simple protocol, so every column arrives as text (or NULL); the
//! parser is pure and tested on hand-written rows. PostgreSQL 13+ (`written_lsn`).

use crate::instance::{DbRole, LocalStatus, WalSender};
use crate::state::DbState;
use crate::types::{Lsn, Timeline};

/// Primary-only and standby-only functions are guarded by `CASE` (they raise errors otherwise).
pub const STATUS_SQL: &str = concat!(
    "\
SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
       ELSE pg_catalog.pg_current_wal_flush_lsn()::text END AS flush_lsn,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
       ELSE pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8)
  END AS wal_tli,
  pg_catalog.pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn,
  pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC',
                     'YYYY-MM-DD HH24:MI:SS.US') AS replay_ts,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused()
       ELSE false END AS replay_paused,
  (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS sysid,
  pg_catalog.current_setting('server_version_num') AS server_version,
  pg_catalog.to_char(pg_catalog.pg_postmaster_start_time() AT TIME ZONE 'UTC',
                     'YYYY-MM-DD HH24:MI:SS.US') AS start_time,
  (SELECT timeline_id::text FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_tli,
  (SELECT pg_catalog.count(*) > 0 FROM pg_catalog.pg_settings WHERE pending_restart)
    AS pending_restart,
  (SELECT pg_catalog.json_object_agg(s.name, pg_catalog.json_build_object(
            'old_value', pg_catalog.current_setting(s.name),
            'new_value', COALESCE(f.setting, s.boot_val)))
     FROM pg_catalog.pg_settings AS s
     LEFT JOIN LATERAL (SELECT setting FROM pg_catalog.pg_file_settings AS fs
                         WHERE fs.name = s.name ORDER BY fs.seqno DESC LIMIT 1) AS f ON true
    WHERE s.pending_restart)::text AS pending_restart_reason,
  pg_catalog.current_setting('synchronous_standby_names') AS sync_names,
  w.status AS receiver_status,
  w.received_tli::text AS received_tli,
  w.written_lsn::text AS written_lsn,
  w.sender_host AS sender_host,
  w.sender_port::text AS sender_port,
  (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
            'usename', usename, 'application_name', application_name,
            'client_addr', pg_catalog.host(client_addr), 'state', state,
            'sync_state', sync_state, 'sync_priority', sync_priority,
            'flush_lsn', flush_lsn::text) ORDER BY application_name)
     FROM pg_catalog.pg_stat_replication)::text AS replication,
  ",
    super::slots::slots_json!(),
    " AS slots
FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver AS w ON true"
);

/// One WAL sender as the status queries aggregate `pg_stat_replication` (openGauss's query
/// uses the same keys).
#[derive(serde::Deserialize)]
struct SenderRow {
    usename: Option<String>,
    application_name: Option<String>,
    client_addr: Option<String>,
    state: Option<String>,
    sync_state: Option<String>,
    sync_priority: Option<i32>,
    flush_lsn: Option<String>,
}

/// The WAL senders of the `replication` column (a JSON array; NULL for none), as the server
/// names them.
pub fn senders(json: Option<String>) -> Result<Vec<WalSender>, String> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    Ok(serde_json::from_str::<Vec<SenderRow>>(&json)
        .map_err(|e| format!("unreadable pg_stat_replication rows: {e}"))?
        .into_iter()
        .map(|r| WalSender {
            usename: r.usename.unwrap_or_default(),
            application_name: r.application_name.unwrap_or_default(),
            client_addr: r.client_addr,
            state: r.state.unwrap_or_default(),
            sync_state: r.sync_state.unwrap_or_default(),
            sync_priority: r.sync_priority.unwrap_or_default(),
            flush_lsn: lsn(r.flush_lsn),
        })
        .collect())
}

/// The `pending_restart_reason` column: a JSON object of `{name: {old_value, new_value}}`
/// (NULL when nothing waits for a restart). The new value is the configuration files' last
/// line for the setting; one removed from the files returns to its built-in default, which
/// `pg_settings` gives in the setting's base unit.
pub fn pending_changes(
    json: Option<String>,
) -> Result<std::collections::BTreeMap<String, crate::state::ParamChange>, String> {
    match json {
        None => Ok(Default::default()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| format!("unreadable pending_restart_reason: {e}")),
    }
}

/// Settings that only a server in recovery reads (Patroni's `recovery_parameters`). The agent
/// writes them for a standby and drops them from a primary's files, and PostgreSQL reports the
/// postmaster-context ones (`recovery_target_timeline: latest->latest`) as pending a restart
/// once the server is promoted, though a primary never reads them: every new primary would
/// claim a pending restart, and `tribunectl restart --pending` would restart it.
pub const RECOVERY_ONLY: [&str; 18] = [
    "archive_cleanup_command",
    "pause_at_recovery_target",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "standby_mode",
    "trigger_file",
];

/// The settings whose change waits for a restart that would matter: on a primary, the
/// recovery-only ones do not count.
pub fn pending_that_counts(
    in_recovery: bool,
    mut changes: std::collections::BTreeMap<String, crate::state::ParamChange>,
) -> std::collections::BTreeMap<String, crate::state::ParamChange> {
    if !in_recovery {
        changes.retain(|name, _| !RECOVERY_ONLY.contains(&name.to_ascii_lowercase().as_str()));
    }
    changes
}

/// An LSN column (`0/3000148`, zero-padded forms too).
pub fn lsn(text: Option<String>) -> Option<Lsn> {
    text?.parse().ok()
}

/// A UTC timestamp column as the API shows it.
pub fn utc(text: Option<String>) -> Option<String> {
    text.map(|t| format!("{t}+00:00"))
}

/// The `in_recovery` column (`pg_is_in_recovery()`).
pub fn in_recovery(col: &impl Fn(&str) -> Option<String>) -> Result<bool, String> {
    match col("in_recovery").as_deref() {
        Some("t") => Ok(true),
        Some("f") => Ok(false),
        other => Err(format!("pg_is_in_recovery() returned {other:?}")),
    }
}

/// Builds the status of a running server from the query's columns (by name; `None` for NULL).
pub fn parse_status(col: impl Fn(&str) -> Option<String>) -> Result<LocalStatus, String> {
    let in_recovery = in_recovery(&col)?;
    let streaming = col("receiver_status").as_deref() == Some("streaming");
    let timeline = if in_recovery {
        col("received_tli")
            .and_then(|t| t.parse().ok())
            .filter(|t| *t > 0)
            .or_else(|| col("checkpoint_tli").and_then(|t| t.parse().ok()))
    } else {
        col("wal_tli").and_then(|t| u32::from_str_radix(&t, 16).ok())
    };
    let upstream = match (col("sender_host"), col("sender_port")) {
        (Some(h), Some(p)) => Some(format!("{h}:{p}")),
        (Some(h), None) => Some(h),
        _ => None,
    };
    let replication = senders(col("replication"))?;
    // `pending_restart` and its reasons come from the same rows of pg_settings.
    let pending = pending_that_counts(in_recovery, pending_changes(col("pending_restart_reason"))?);
    Ok(LocalStatus {
        state: DbState::Running,
        role: Some(if in_recovery {
            DbRole::Standby
        } else {
            DbRole::Primary
        }),
        timeline: timeline.map(Timeline),
        wal_position: if in_recovery {
            None
        } else {
            lsn(col("flush_lsn"))
        },
        received_lsn: lsn(col("written_lsn"))
            .filter(|l| l.0 > 0)
            .or_else(|| lsn(col("receive_lsn"))),
        replayed_lsn: lsn(col("replay_lsn")),
        replayed_timestamp: utc(col("replay_ts")),
        replay_paused: col("replay_paused").as_deref() == Some("t"),
        streaming,
        upstream,
        sysid: col("sysid"),
        server_version: col("server_version").and_then(|v| v.parse().ok()),
        engine_version: None,
        postmaster_start_time: utc(col("start_time")),
        replication,
        pending_restart: col("pending_restart").as_deref() == Some("t") && !pending.is_empty(),
        pending_restart_reason: pending,
        synchronous_standby_names: col("sync_names").unwrap_or_default(),
        replay_position: None,
        slots: super::slots::parse(col("slots").as_deref())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::conf::test_row as row;

    #[test]
    fn primary_row() {
        let st = parse_status(row(&[
            ("in_recovery", "f"),
            ("flush_lsn", "0/3000148"),
            ("wal_tli", "0000000A"),
            ("replay_paused", "f"),
            ("sysid", "7711837634306945431"),
            ("server_version", "150014"),
            ("start_time", "2026-11-24 20:28:40.123456"),
            ("checkpoint_tli", "9"),
            ("pending_restart", "t"),
            (
                "pending_restart_reason",
                r#"{"max_connections" : {"old_value" : "100", "new_value" : "110"},
                    "shared_buffers" : {"old_value" : "128MB", "new_value" : "256MB"}}"#,
            ),
            (
                "replication",
                r#"[{"usename":"replicator","application_name":"node-2","client_addr":"10.0.0.2",
                     "state":"streaming","sync_state":"async","sync_priority":0,"flush_lsn":"0/3000148"}]"#,
            ),
        ]))
        .unwrap();
        assert_eq!(st.state, DbState::Running);
        assert_eq!(st.role, Some(DbRole::Primary));
        assert_eq!(st.timeline, Some(Timeline(10)));
        assert_eq!(st.wal_position, Some(Lsn(0x3000148)));
        assert_eq!(st.server_version, Some(150014));
        assert_eq!(
            st.postmaster_start_time.as_deref(),
            Some("2026-11-24 20:28:40.123456+00:00")
        );
        assert!(st.pending_restart);
        let change = |old: &str, new: &str| crate::state::ParamChange {
            old_value: old.into(),
            new_value: new.into(),
        };
        assert_eq!(
            st.pending_restart_reason,
            [
                ("max_connections".to_owned(), change("100", "110")),
                ("shared_buffers".to_owned(), change("128MB", "256MB")),
            ]
            .into()
        );
        assert_eq!(
            st.replication,
            vec![WalSender {
                usename: "replicator".into(),
                application_name: "node-2".into(),
                client_addr: Some("10.0.0.2".into()),
                state: "streaming".into(),
                sync_state: "async".into(),
                sync_priority: 0,
                flush_lsn: Some(Lsn(0x3000148)),
            }]
        );
    }

    /// Regression: every new primary claimed `Pending restart *` with
    /// `recovery_target_timeline: latest->latest`, because PostgreSQL reports the recovery-only
    /// settings dropped from a promoted server's files as pending.
    #[test]
    fn recovery_only_settings_do_not_count_on_a_primary() {
        let promoted = |in_recovery: &str, reasons: &str| {
            parse_status(row(&[
                ("in_recovery", in_recovery),
                ("pending_restart", "t"),
                ("pending_restart_reason", reasons),
            ]))
            .unwrap()
        };
        let timeline = r#"{"recovery_target_timeline" : {"old_value" : "latest", "new_value" : "latest"},
                           "Restore_Command" : {"old_value" : "cp x", "new_value" : ""}}"#;
        let st = promoted("f", timeline);
        assert!(!st.pending_restart);
        assert!(st.pending_restart_reason.is_empty());
        // A real change still counts beside them.
        let both = r#"{"recovery_target_timeline" : {"old_value" : "latest", "new_value" : "latest"},
                       "max_connections" : {"old_value" : "100", "new_value" : "110"}}"#;
        let st = promoted("f", both);
        assert!(st.pending_restart);
        assert_eq!(
            st.pending_restart_reason.keys().collect::<Vec<_>>(),
            ["max_connections"]
        );
        // A standby reads them: they count there.
        let st = promoted("t", timeline);
        assert!(st.pending_restart);
        assert_eq!(st.pending_restart_reason.len(), 2);
    }

    #[test]
    fn streaming_standby_row() {
        let st = parse_status(row(&[
            ("in_recovery", "t"),
            ("receive_lsn", "0/5000000"),
            ("replay_lsn", "0/4FFFFF0"),
            ("replay_ts", "2026-11-24 20:30:00.000001"),
            ("replay_paused", "t"),
            ("checkpoint_tli", "1"),
            ("pending_restart", "f"),
            ("receiver_status", "streaming"),
            ("received_tli", "2"),
            ("written_lsn", "0/5000100"),
            ("sender_host", "10.0.0.1"),
            ("sender_port", "5432"),
        ]))
        .unwrap();
        assert_eq!(st.role, Some(DbRole::Standby));
        assert_eq!(st.timeline, Some(Timeline(2)));
        assert_eq!(st.wal_position, None);
        assert_eq!(st.received_lsn, Some(Lsn(0x5000100)));
        assert_eq!(st.replayed_lsn, Some(Lsn(0x4FFFFF0)));
        assert!(st.replay_paused && st.streaming);
        assert_eq!(st.upstream.as_deref(), Some("10.0.0.1:5432"));
        assert!(st.replication.is_empty());
    }

    #[test]
    fn standby_without_receiver_falls_back() {
        let st = parse_status(row(&[
            ("in_recovery", "t"),
            ("receive_lsn", "0/5000000"),
            ("checkpoint_tli", "3"),
        ]))
        .unwrap();
        assert_eq!(st.timeline, Some(Timeline(3)));
        assert_eq!(st.received_lsn, Some(Lsn(0x5000000)));
        assert!(!st.streaming);
        assert_eq!(st.upstream, None);
    }

    #[test]
    fn rejects_a_row_without_recovery_state() {
        assert!(parse_status(row(&[])).is_err());
    }
}
