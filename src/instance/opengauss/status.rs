//! The status query of a running openGauss server, in one round trip (it runs every tick), and
//! its parser into [`LocalStatus`] plus what only this adapter reads (the HA state, the term).
//!
//! openGauss in PostgreSQL's terms (reference section 3):
//! - the role and health come from `pg_stat_get_stream_replications()` (`local_role`,
//!   `db_state`, `detail_information`), the view ShardingSphere and openGauss's JDBC driver
//!   use; `pg_is_in_recovery()` still says primary or standby;
//! - WAL positions come from the `xlog`-named functions: `pg_get_flush_lsn()` on a primary,
//!   `pg_last_xlog_receive_location()` (received and flushed) and `pg_last_xlog_replay_location()`
//!   (a record of `term` and `lsn`, not a scalar) on a standby;
//! - `pg_stat_replication` names a standby `WalSender to Standby[<application_name>]` and
//!   capitalises `state` (`Streaming`) and `sync_state` (`Sync`, `Quorum`, `Potential`,
//!   `Async`); the HA layer compares PostgreSQL's lower-case words, so they are translated here;
//! - the WAL receiver is `pg_stat_get_wal_receiver()` (no `pg_stat_wal_receiver` view); its
//!   `channel` reads `local:port<--remote:port`, the remote being the upstream's HA port.
//!
//! The received position is the receiver's flushed one: the receiver's own `*_location`
//! columns report the sender's position while they are still zero, which would overstate what
//! this standby holds in a failover. `pending_restart` (and its reason) is always false (empty):
//! openGauss's `pg_settings` has no such column. The simple protocol sends every column as text; the parser
//! is pure.

use crate::instance::postgres::status::{in_recovery, lsn, senders, utc};
use crate::instance::{DbRole, LocalStatus, WalSender};
use crate::state::DbState;
use crate::types::Timeline;

use super::hastate::HaState;

/// One row. Primary-only functions are guarded by `CASE` (they raise errors on a standby).
pub const STATUS_SQL: &str = "\
SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
  r.local_role AS local_role, r.db_state AS db_state, r.detail_information AS detail,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
       ELSE pg_catalog.pg_get_flush_lsn() END AS flush_lsn,
  pg_catalog.pg_last_xlog_receive_location() AS receive_lsn,
  x.term AS term, x.lsn AS replay_lsn,
  pg_catalog.to_char(pg_catalog.pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC',
                     'YYYY-MM-DD HH24:MI:SS.US') AS replay_ts,
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_xlog_replay_paused()
       ELSE false END AS replay_paused,
  (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) AS sysid,
  pg_catalog.current_setting('server_version_num') AS server_version,
  pg_catalog.version() AS version,
  pg_catalog.to_char(pg_catalog.pg_postmaster_start_time() AT TIME ZONE 'UTC',
                     'YYYY-MM-DD HH24:MI:SS.US') AS start_time,
  (SELECT timeline_id::text FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_tli,
  pg_catalog.current_setting('synchronous_standby_names') AS sync_names,
  (SELECT w.state FROM pg_catalog.pg_stat_get_wal_receiver() AS w LIMIT 1) AS receiver_state,
  (SELECT w.channel FROM pg_catalog.pg_stat_get_wal_receiver() AS w LIMIT 1)
    AS receiver_channel,
  (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
            'usename', usename, 'application_name', application_name,
            'client_addr', pg_catalog.host(client_addr), 'state', state,
            'sync_state', sync_state, 'sync_priority', sync_priority,
            'flush_lsn', receiver_flush_location))
     FROM pg_catalog.pg_stat_replication)::text AS replication
FROM pg_catalog.pg_stat_get_stream_replications() AS r,
     pg_catalog.pg_last_xlog_replay_location() AS x";

/// A standby's replay position alone (a switchover waits for the target's). openGauss's
/// `pg_last_xlog_replay_location()` returns a row of `term` and `lsn`, not an LSN: cast whole
/// to text it reads `(1,0/5042948)`, which is no position.
pub const REPLAY_LSN_SQL: &str = "SELECT lsn::text FROM pg_catalog.pg_last_xlog_replay_location()";

/// `openGauss 6.0.2` out of `version()`'s `(openGauss 6.0.2 build f696efc6) compiled at ...`.
pub fn engine_version(version: &str) -> Option<String> {
    let start = version.find("openGauss ")?;
    let rest = &version[start + "openGauss ".len()..];
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect();
    (!number.is_empty()).then(|| format!("openGauss {number}"))
}

/// What one status query says, beyond [`LocalStatus`].
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub status: LocalStatus,
    pub ha: HaState,
    /// `pg_last_xlog_replay_location()`'s term: the largest term this server has seen.
    pub term: Option<u32>,
    /// `version()`: `... (openGauss 6.0.0 build ...) compiled at ...`.
    pub version: Option<String>,
}

/// The standby's name in a walsender's `application_name`: `WalSender to Standby[b]` is `b`
/// (also for `Build[...]` and `Secondary[...]` senders); anything else as it is.
pub fn sender_name(application_name: &str) -> &str {
    application_name
        .split_once('[')
        .and_then(|(_, rest)| rest.rsplit_once(']'))
        .map_or(application_name, |(name, _)| name)
}

/// The upstream in a receiver's `channel` (`10.0.0.2:26001<--10.0.0.1:26001`): `10.0.0.1:26001`.
pub fn channel_upstream(channel: &str) -> Option<String> {
    channel
        .split_once("<--")
        .map(|(_, remote)| remote.trim().to_owned())
        .filter(|r| !r.is_empty())
}

/// Builds the status from the query's columns (by name; `None` for NULL).
pub fn parse_status(col: impl Fn(&str) -> Option<String>) -> Result<Observed, String> {
    let in_recovery = in_recovery(&col)?;
    let (Some(role), Some(state)) = (col("local_role"), col("db_state")) else {
        return Err("pg_stat_get_stream_replications() returned no role".into());
    };
    let ha = HaState::parse(&role, &state, &col("detail").unwrap_or_default());
    let receiver_state = col("receiver_state");
    // A standby streams when its receiver runs and openGauss calls it `Normal`; `Catchup` and
    // `Starting` are not yet a replica to send reads to (reference section 6).
    let streaming = in_recovery && receiver_state.is_some() && state.trim() == "Normal";
    // `WalSender to Standby[b]` is `b`; `Streaming`, `Sync` are `streaming`, `sync`.
    let mut replication: Vec<WalSender> = senders(col("replication"))?
        .into_iter()
        .map(|w| WalSender {
            application_name: sender_name(&w.application_name).to_owned(),
            state: w.state.to_ascii_lowercase(),
            sync_state: w.sync_state.to_ascii_lowercase(),
            ..w
        })
        .collect();
    replication.sort_by(|a, b| a.application_name.cmp(&b.application_name));
    let status = LocalStatus {
        state: DbState::Running,
        role: Some(if in_recovery {
            DbRole::Standby
        } else {
            DbRole::Primary
        }),
        timeline: col("checkpoint_tli")
            .and_then(|t| t.parse().ok())
            .map(Timeline),
        wal_position: if in_recovery {
            None
        } else {
            lsn(col("flush_lsn"))
        },
        received_lsn: lsn(col("receive_lsn")),
        replayed_lsn: lsn(col("replay_lsn")),
        replayed_timestamp: utc(col("replay_ts")),
        replay_paused: col("replay_paused").as_deref() == Some("t"),
        streaming,
        upstream: col("receiver_channel").and_then(|c| channel_upstream(&c)),
        sysid: col("sysid"),
        server_version: col("server_version").and_then(|v| v.parse().ok()),
        engine_version: col("version").as_deref().and_then(engine_version),
        postmaster_start_time: utc(col("start_time")),
        replication,
        pending_restart: false,
        pending_restart_reason: Default::default(),
        synchronous_standby_names: col("sync_names").unwrap_or_default(),
        replay_position: None,
        // Permanent slots are refused on openGauss: nothing to report.
        slots: Vec::new(),
    };
    Ok(Observed {
        status,
        ha,
        term: col("term").and_then(|t| t.parse().ok()),
        version: col("version"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::conf::test_row as row;
    use crate::instance::opengauss::hastate::{DbStateText, Detail, LocalRole, Repair};
    use crate::types::Lsn;

    /// The primary of the reference's `gs_ctl query` sample, as the status query returns it:
    /// one synchronous standby streaming (values of the sample; the standby's name in the
    /// form `pg_stat_replication` gives it).
    #[test]
    fn primary_with_a_synchronous_standby() {
        let observed = parse_status(row(&[
            ("in_recovery", "f"),
            ("local_role", "Primary"),
            ("db_state", "Normal"),
            ("detail", "Normal"),
            ("flush_lsn", "00000000/04005148"),
            ("term", "3"),
            ("replay_lsn", "0/3000000"),
            ("replay_paused", "f"),
            ("sysid", "7294876574365829384"),
            ("server_version", "90204"),
            (
                "version",
                "(openGauss 6.0.0 build aee4abd5) compiled at 2024-09-29 19:14:27 commit 0 \
                 last mr   on x86_64-unknown-linux-gnu, compiled by g++ (GCC) 10.3.0, 64-bit",
            ),
            ("start_time", "2024-10-01 08:00:00.123456"),
            ("checkpoint_tli", "1"),
            ("sync_names", "ANY 1 (\"og-2\")"),
            (
                "replication",
                r#"[{"usename":"omm","application_name":"WalSender to Standby[og-2]",
                     "client_addr":"10.244.44.52","state":"Streaming","sync_state":"Sync",
                     "sync_priority":1,"flush_lsn":"0/4005148"}]"#,
            ),
        ]))
        .unwrap();
        assert!(observed.ha.is_serving_primary());
        assert_eq!(observed.term, Some(3));
        assert!(observed.version.unwrap().contains("openGauss 6.0.0"));
        let st = observed.status;
        assert_eq!(st.engine_version.as_deref(), Some("openGauss 6.0.0"));
        assert_eq!(st.state, DbState::Running);
        assert_eq!(st.role, Some(DbRole::Primary));
        assert_eq!(st.timeline, Some(Timeline(1)));
        assert_eq!(st.wal_position, Some(Lsn(0x4005148)));
        assert_eq!(
            st.server_version,
            Some(90204),
            "openGauss reports PostgreSQL 9.2.4"
        );
        assert_eq!(
            st.postmaster_start_time.as_deref(),
            Some("2024-10-01 08:00:00.123456+00:00")
        );
        assert!(!st.streaming && !st.pending_restart);
        assert_eq!(st.synchronous_standby_names, "ANY 1 (\"og-2\")");
        assert_eq!(
            st.replication,
            vec![WalSender {
                usename: "omm".into(),
                application_name: "og-2".into(),
                client_addr: Some("10.244.44.52".into()),
                state: "streaming".into(),
                sync_state: "sync".into(),
                sync_priority: 1,
                flush_lsn: Some(Lsn(0x4005148)),
            }]
        );
    }

    #[test]
    fn sync_states_are_lower_cased_as_the_ha_layer_compares_them() {
        let senders = r#"[
            {"application_name":"WalSender to Standby[c]","state":"Catchup","sync_state":"Potential"},
            {"application_name":"WalSender to Standby[b]","state":"Streaming","sync_state":"Quorum"},
            {"application_name":"WalSender to Build[d]","state":"Backup","sync_state":"Async"}]"#;
        let st = parse_status(row(&[
            ("in_recovery", "f"),
            ("local_role", "Primary"),
            ("db_state", "Normal"),
            ("replication", senders),
        ]))
        .unwrap()
        .status;
        let got: Vec<(&str, &str, &str)> = st
            .replication
            .iter()
            .map(|w| {
                (
                    w.application_name.as_str(),
                    w.state.as_str(),
                    w.sync_state.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("b", "streaming", "quorum"),
                ("c", "catchup", "potential"),
                ("d", "backup", "async")
            ]
        );
    }

    #[test]
    fn streaming_standby() {
        let observed = parse_status(row(&[
            ("in_recovery", "t"),
            ("local_role", "Standby"),
            ("db_state", "Normal"),
            ("detail", "Normal"),
            ("receive_lsn", "0/5000100"),
            ("term", "4"),
            ("replay_lsn", "0/5000000"),
            ("replay_ts", "2024-10-01 08:00:01.000001"),
            ("replay_paused", "f"),
            ("checkpoint_tli", "1"),
            ("receiver_state", "Normal"),
            ("receiver_channel", "10.0.0.2:26001<--10.0.0.1:26001"),
            ("sync_names", ""),
        ]))
        .unwrap();
        let st = observed.status;
        assert_eq!(st.role, Some(DbRole::Standby));
        assert!(st.streaming);
        assert_eq!(st.wal_position, None);
        assert_eq!(st.received_lsn, Some(Lsn(0x5000100)));
        assert_eq!(st.replayed_lsn, Some(Lsn(0x5000000)));
        assert_eq!(st.upstream.as_deref(), Some("10.0.0.1:26001"));
        assert_eq!(observed.ha.repair(), None);
    }

    #[test]
    fn catching_up_is_not_streaming_and_need_repair_maps_to_a_rebuild() {
        let catchup = parse_status(row(&[
            ("in_recovery", "t"),
            ("local_role", "Standby"),
            ("db_state", "Catchup"),
            ("receiver_state", "Catchup"),
        ]))
        .unwrap();
        assert!(!catchup.status.streaming);
        let broken = parse_status(row(&[
            ("in_recovery", "t"),
            ("local_role", "Standby"),
            ("db_state", "Need repair"),
            ("detail", "WAL segment removed"),
            ("replay_lsn", "0/0"),
            ("term", "0"),
        ]))
        .unwrap();
        assert_eq!(broken.ha.local_role, LocalRole::Standby);
        assert_eq!(broken.ha.db_state, DbStateText::NeedRepair);
        assert_eq!(
            broken.ha.repair(),
            Some(Repair::Rebuild(Detail::WalSegmentRemoved))
        );
        assert_eq!(broken.status.replayed_lsn, Some(Lsn(0)));
        assert!(!broken.status.streaming);
        assert_eq!(broken.status.upstream, None);
    }

    #[test]
    fn a_single_instance_reports_normal_and_is_a_primary() {
        let observed = parse_status(row(&[
            ("in_recovery", "f"),
            ("local_role", "Normal"),
            ("db_state", "Normal"),
        ]))
        .unwrap();
        assert_eq!(observed.status.role, Some(DbRole::Primary));
        assert_eq!(observed.ha.local_role, LocalRole::Normal);
    }

    #[test]
    fn malformed_rows_are_errors() {
        assert!(parse_status(row(&[])).is_err());
        assert!(parse_status(row(&[("in_recovery", "f")])).is_err());
        assert!(
            parse_status(row(&[
                ("in_recovery", "f"),
                ("local_role", "Primary"),
                ("db_state", "Normal"),
                ("replication", "not json"),
            ]))
            .is_err()
        );
    }

    #[test]
    fn names_and_channels() {
        assert_eq!(sender_name("WalSender to Standby[node-b]"), "node-b");
        assert_eq!(sender_name("WalSender to Build[x[1]]"), "x[1]");
        assert_eq!(sender_name("plain"), "plain");
        assert_eq!(
            channel_upstream("10.244.44.52:27001<--10.244.44.53:27001").as_deref(),
            Some("10.244.44.53:27001")
        );
        assert_eq!(
            channel_upstream("10.244.44.52:27001-->10.244.44.52:35912"),
            None
        );
    }

    #[test]
    fn a_peers_replay_position_is_the_lsn_column_the_status_query_reads() {
        // The function returns (term, lsn); only its lsn column parses as a position.
        assert!(STATUS_SQL.contains("x.lsn AS replay_lsn"));
        assert!(STATUS_SQL.contains("pg_catalog.pg_last_xlog_replay_location() AS x"));
        assert_eq!(
            REPLAY_LSN_SQL,
            "SELECT lsn::text FROM pg_catalog.pg_last_xlog_replay_location()"
        );
        assert!(
            "(1,0/5042948)".parse::<Lsn>().is_err(),
            "the whole row is no position"
        );
        assert_eq!("0/5042948".parse::<Lsn>().ok(), Some(Lsn(0x5042948)));
    }

    #[test]
    fn the_engine_version_is_read_from_version() {
        for (text, want) in [
            (
                "(openGauss 6.0.2 build f696efc6) compiled at 2026-12-06 23:58:52 commit 0 last mr  release",
                Some("openGauss 6.0.2"),
            ),
            (
                "(openGauss 7.0.0-RC2 build 8741ecec) compiled at 2026-12-06 release",
                Some("openGauss 7.0.0-RC2"),
            ),
            ("PostgreSQL 9.2.4 on x86_64", None),
            ("(openGauss ) compiled", None),
        ] {
            assert_eq!(engine_version(text).as_deref(), want, "{text}");
        }
    }
}
