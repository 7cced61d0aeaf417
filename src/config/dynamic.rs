//! The cluster-wide dynamic configuration: Patroni's `/config` key, seeded from `bootstrap.dcs`
//! and changed with `PATCH /config`. This file parses and validates it; storing and merging the
//! raw JSON is the caller's business (unknown keys are kept there, not here).
//!
//! Tribune does not silently adjust incoherent timeouts as Patroni does at runtime: a lease that
//! cannot be renewed in time is a split-brain hazard, so `loop_wait + 2*retry_timeout <= ttl` is
//! an error naming what to change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;

/// `patch` merged into `config` (RFC 7386, as `PATCH /config` and `tribunectl edit-config`
/// merge): mappings key by key, `null` removes a key, anything else replaces.
pub fn merge_patch(config: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *config = patch.clone();
        return;
    };
    if !config.is_object() {
        *config = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = config {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
use super::value::{Section, as_bool, fmt_secs};

/// Tribune's default lease (`ttl`): 3 s.
///
/// A lease of 3 s, renewed twice per `loop_wait` (1 s), fails over in about 2.5-3 s after a
/// primary's host dies (measured: median 2.9 s under load). A primary that cannot commit a
/// renewal fences itself (stops) `ttl - retry_timeout` = 2.5 s after it *sent* its last
/// committed renewal; the Raft leader expires the lease no earlier than 3 s after it *applied*
/// that renewal, so the old primary is stopped at least 0.5 s before anyone else may be
/// promoted. Patroni-style timings (ttl 30, loop_wait 10, retry_timeout 10) satisfy the same
/// rule and work unchanged, only slower; Patroni's minimum `ttl >= 20` is not enforced.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

/// Tribune's default HA loop period (`loop_wait`): 1 s (the lease is renewed every 0.5 s).
pub const DEFAULT_LOOP_WAIT: Duration = Duration::from_secs(1);

/// Tribune's default `retry_timeout`: 0.5 s. It is also the fencing margin: a primary that has
/// not committed a renewal by `ttl - retry_timeout` after sending it stops its database. Half a
/// second covers an immediate stop with room to spare, and leaves the primary 2 s (2.5 s minus
/// a renewal period) to ride out the election of a new Raft leader when the old one's host
/// dies: with pre-vote that can take two election timeouts, at most 1.6 s (see `raft.rs`).
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_millis(500);

/// Patroni's default `maximum_lag_on_failover`: 1 MiB of WAL.
pub const DEFAULT_MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576;

/// Patroni's default `primary_start_timeout`: a crashed primary gets 300 s to restart in place
/// before a failover.
pub const DEFAULT_PRIMARY_START_TIMEOUT: Duration = Duration::from_secs(300);

/// Tribune's default `synchronous_mode`: on (non-strict), where Patroni's is off. Tribune exists
/// so that a failover never loses an acknowledged commit, and only synchronous replication can
/// promise that: with it, a crash of the primary under load loses nothing, while asynchronous
/// replication lost a handful of acknowledged writes per crash in `scripts/bench-failover.sh`.
/// Non-strict keeps writes available when no standby is left (degrading to asynchronous, which
/// the API and the log report); `synchronous_mode_strict: true` blocks them instead. A Patroni
/// file that says `synchronous_mode: false` keeps asynchronous replication.
pub const DEFAULT_SYNCHRONOUS_MODE: SynchronousMode = SynchronousMode::On;

/// Patroni's default `synchronous_node_count`.
pub const DEFAULT_SYNCHRONOUS_NODE_COUNT: u32 = 1;

/// `synchronous_mode`: Patroni accepts booleans (and their YAML 1.1 spellings) or `quorum`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SynchronousMode {
    #[default]
    Off,
    On,
    Quorum,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DynamicConfig {
    pub ttl: Duration,
    pub loop_wait: Duration,
    pub retry_timeout: Duration,
    pub maximum_lag_on_failover: u64,
    /// `maximum_lag_on_syncnode` in bytes; `None` for Patroni's -1 or 0 (never swap a
    /// synchronous standby for lag).
    pub maximum_lag_on_syncnode: Option<u64>,
    pub primary_start_timeout: Duration,
    pub primary_stop_timeout: Duration,
    pub synchronous_mode: SynchronousMode,
    pub synchronous_mode_strict: bool,
    pub synchronous_node_count: u32,
    /// Tribune's `synchronous_site_survival`: every acknowledged commit is also on a member
    /// outside the primary's site (`tags.site`), so losing a whole site loses none.
    pub synchronous_site_survival: bool,
    pub check_timeline: bool,
    /// Entries kept in `/history`; 0 = unlimited.
    pub max_timelines_history: u32,
    pub pause: bool,
    pub failsafe_mode: bool,
    pub postgresql: DynamicPostgresql,
    /// Set: the cluster is a standby cluster replicating from this remote source.
    pub standby_cluster: Option<super::StandbyCluster>,
    /// Permanent replication slots (`slots`), by name.
    pub slots: BTreeMap<String, super::slots::PermanentSlot>,
    /// Slots the agent never drops (`ignore_slots`).
    pub ignore_slots: Vec<super::slots::IgnoreSlot>,
    /// How long the slot of a removed member is kept (`member_slots_ttl`).
    pub member_slots_ttl: Duration,
}

/// `postgresql` inside the dynamic configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicPostgresql {
    pub parameters: BTreeMap<String, Value>,
    /// Patroni's default is false; a failed or impossible rewind falls back to a base backup.
    pub use_pg_rewind: bool,
    pub use_slots: bool,
    pub pg_hba: Vec<String>,
}

impl Default for DynamicPostgresql {
    fn default() -> Self {
        Self {
            parameters: BTreeMap::new(),
            use_pg_rewind: false,
            use_slots: true,
            pg_hba: Vec::new(),
        }
    }
}

impl Default for DynamicConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            loop_wait: DEFAULT_LOOP_WAIT,
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            maximum_lag_on_failover: DEFAULT_MAXIMUM_LAG_ON_FAILOVER,
            maximum_lag_on_syncnode: None,
            primary_start_timeout: DEFAULT_PRIMARY_START_TIMEOUT,
            primary_stop_timeout: Duration::ZERO,
            synchronous_mode: DEFAULT_SYNCHRONOUS_MODE,
            synchronous_mode_strict: false,
            synchronous_node_count: DEFAULT_SYNCHRONOUS_NODE_COUNT,
            synchronous_site_survival: false,
            check_timeline: false,
            max_timelines_history: 0,
            pause: false,
            failsafe_mode: false,
            postgresql: DynamicPostgresql::default(),
            standby_cluster: None,
            slots: BTreeMap::new(),
            ignore_slots: Vec::new(),
            member_slots_ttl: super::slots::DEFAULT_MEMBER_SLOTS_TTL,
        }
    }
}

impl DynamicConfig {
    /// Parse the stored dynamic config (the JSON of PATCH /config / bootstrap.dcs). Absent keys take
    /// Tribune's defaults; unknown keys are kept by the caller (this only reads what it knows) but a
    /// known key with a wrong type or out-of-range/incoherent value is an error naming the key.
    pub fn from_json(v: &Value) -> Result<DynamicConfig, ConfigError> {
        match v {
            Value::Object(map) => Self::parse(&Section::of_map("", map)),
            Value::Null => Ok(DynamicConfig::default()),
            other => Err(ConfigError::general(format!(
                "the dynamic configuration must be a mapping, got {}",
                super::error::describe(other)
            ))),
        }
    }

    /// The lease safety margin: how long before `ttl` a primary that could not renew fences
    /// itself = retry_timeout.
    pub fn fence_margin(&self) -> Duration {
        self.retry_timeout
    }

    pub(crate) fn parse(s: &Section<'_>) -> Result<DynamicConfig, ConfigError> {
        let d = DynamicConfig::default();
        let positive = |key: &str, default: Duration| -> Result<(Duration, bool), ConfigError> {
            match s.seconds(key)? {
                Some(v) if v.is_zero() => Err(ConfigError::at(
                    s.key(key),
                    "must be greater than 0 seconds",
                )),
                Some(v) => Ok((v, true)),
                None => Ok((default, false)),
            }
        };
        let (ttl, ttl_set) = positive("ttl", d.ttl)?;
        let (loop_wait, loop_wait_set) = positive("loop_wait", d.loop_wait)?;
        let (retry_timeout, retry_set) = positive("retry_timeout", d.retry_timeout)?;
        check_timeouts(
            s,
            (ttl, ttl_set),
            (loop_wait, loop_wait_set),
            (retry_timeout, retry_set),
        )?;

        // `master_*` are Patroni's pre-3.0 names; the new name wins when both are written.
        let aliased = |new: &str, old: &str| -> Result<Option<Duration>, ConfigError> {
            Ok(match s.seconds(new)? {
                Some(v) => Some(v),
                None => s.seconds(old)?,
            })
        };
        let pg = s.section("postgresql")?;
        let parameters = match pg.object("parameters")? {
            Some(map) => {
                check_parameters(&pg.key("parameters"), map)?;
                map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
            None => BTreeMap::new(),
        };

        Ok(DynamicConfig {
            ttl,
            loop_wait,
            retry_timeout,
            maximum_lag_on_failover: s
                .integer("maximum_lag_on_failover", 0, i64::MAX)?
                .map_or(d.maximum_lag_on_failover, |n| n as u64),
            maximum_lag_on_syncnode: s
                .integer("maximum_lag_on_syncnode", -1, i64::MAX)?
                .filter(|n| *n > 0)
                .map(|n| n as u64),
            primary_start_timeout: aliased("primary_start_timeout", "master_start_timeout")?
                .unwrap_or(d.primary_start_timeout),
            primary_stop_timeout: aliased("primary_stop_timeout", "master_stop_timeout")?
                .unwrap_or(d.primary_stop_timeout),
            synchronous_mode: synchronous_mode(s)?,
            synchronous_mode_strict: s
                .bool("synchronous_mode_strict")?
                .unwrap_or(d.synchronous_mode_strict),
            synchronous_node_count: s
                .integer("synchronous_node_count", 1, i64::from(u32::MAX))?
                .map_or(d.synchronous_node_count, |n| n as u32),
            synchronous_site_survival: s
                .bool("synchronous_site_survival")?
                .unwrap_or(d.synchronous_site_survival),
            check_timeline: s.bool("check_timeline")?.unwrap_or(d.check_timeline),
            max_timelines_history: s
                .integer("max_timelines_history", 0, i64::from(u32::MAX))?
                .map_or(d.max_timelines_history, |n| n as u32),
            pause: s.bool("pause")?.unwrap_or(d.pause),
            failsafe_mode: s.bool("failsafe_mode")?.unwrap_or(d.failsafe_mode),
            postgresql: DynamicPostgresql {
                parameters,
                use_pg_rewind: pg
                    .bool("use_pg_rewind")?
                    .unwrap_or(d.postgresql.use_pg_rewind),
                use_slots: pg.bool("use_slots")?.unwrap_or(d.postgresql.use_slots),
                pg_hba: pg.string_list("pg_hba")?.unwrap_or_default(),
            },
            standby_cluster: super::StandbyCluster::parse(s)?,
            slots: super::slots::permanent(s)?,
            ignore_slots: super::slots::ignore(s)?,
            member_slots_ttl: super::slots::member_slots_ttl(s)?,
        })
    }
}

fn synchronous_mode(s: &Section<'_>) -> Result<SynchronousMode, ConfigError> {
    let Some(v) = s.get("synchronous_mode") else {
        return Ok(DEFAULT_SYNCHRONOUS_MODE);
    };
    if v.as_str()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("quorum"))
    {
        return Ok(SynchronousMode::Quorum);
    }
    match as_bool(v) {
        Some(true) => Ok(SynchronousMode::On),
        Some(false) => Ok(SynchronousMode::Off),
        None => Err(ConfigError::wrong_type(
            s.key("synchronous_mode"),
            "true, false or quorum",
            v,
        )),
    }
}

/// Patroni's rule `loop_wait + 2*retry_timeout <= ttl`: a primary must get two full retry
/// budgets plus one loop to renew before its lease runs out.
fn check_timeouts(
    s: &Section<'_>,
    (ttl, ttl_set): (Duration, bool),
    (loop_wait, loop_wait_set): (Duration, bool),
    (retry_timeout, retry_set): (Duration, bool),
) -> Result<(), ConfigError> {
    // Saturating: a value near Duration's limit must be refused, not overflow.
    let needed = loop_wait.saturating_add(retry_timeout.saturating_mul(2));
    if needed <= ttl {
        return Ok(());
    }
    let shown = |name: &str, v: Duration, set: bool| {
        if set {
            format!("{name} {}", fmt_secs(v))
        } else {
            format!("{name} {} (not set: Tribune's default)", fmt_secs(v))
        }
    };
    Err(ConfigError::at(
        s.key("ttl"),
        format!(
            "timeouts violate the rule loop_wait + 2*retry_timeout <= ttl: {}, {}, {} \
             ({} + 2*{} = {} s > {} s); raise ttl to at least {} or lower loop_wait/retry_timeout",
            shown("ttl", ttl, ttl_set),
            shown("loop_wait", loop_wait, loop_wait_set),
            shown("retry_timeout", retry_timeout, retry_set),
            fmt_secs(loop_wait),
            fmt_secs(retry_timeout),
            fmt_secs(needed),
            fmt_secs(ttl),
            fmt_secs(needed),
        ),
    ))
}

/// Patroni's validator ranges for the GUCs it sizes replication with. Numbers or numeric strings
/// (`max_connections: '100'`); other parameters are passed to PostgreSQL as written.
const PARAMETER_RANGES: [(&str, i64, i64); 6] = [
    ("max_connections", 1, 262_143),
    ("max_locks_per_transaction", 10, 2_147_483_647),
    ("max_prepared_transactions", 0, 262_143),
    ("max_replication_slots", 0, 262_143),
    ("max_wal_senders", 0, 262_143),
    ("max_worker_processes", 0, 262_143),
];

/// Checks `postgresql.parameters` (local or dynamic); `path` is the dotted path of the mapping.
pub(crate) fn check_parameters(
    path: &str,
    map: &serde_json::Map<String, Value>,
) -> Result<(), ConfigError> {
    let params = Section::of_map(path, map);
    for (name, min, max) in PARAMETER_RANGES {
        params.integer(name, min, max)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn absent_keys_take_tribune_defaults() {
        let d = DynamicConfig::from_json(&json!({})).unwrap();
        assert_eq!(d, DynamicConfig::default());
        assert_eq!(d.ttl, Duration::from_secs(3));
        assert_eq!(d.loop_wait, Duration::from_secs(1));
        assert_eq!(d.retry_timeout, Duration::from_millis(500));
        assert_eq!(d.synchronous_mode, SynchronousMode::On);
        assert_eq!(d.maximum_lag_on_failover, 1_048_576);
        assert_eq!(d.primary_start_timeout, Duration::from_secs(300));
        assert_eq!(d.synchronous_node_count, 1);
        assert!(d.postgresql.use_slots);
        assert!(!d.postgresql.use_pg_rewind);
        assert_eq!(d.fence_margin(), Duration::from_millis(500));
    }

    #[test]
    fn patroni_values_and_spellings_are_read() {
        let d = DynamicConfig::from_json(&json!({
            "ttl": 30, "loop_wait": "10", "retry_timeout": 10.0,
            "maximum_lag_on_failover": 33554432,
            "master_start_timeout": 60, "primary_stop_timeout": 5,
            "synchronous_mode": "quorum", "synchronous_mode_strict": "on",
            "synchronous_node_count": 2, "check_timeline": true, "max_timelines_history": 10,
            "synchronous_site_survival": "yes",
            "pause": true, "failsafe_mode": false,
            "postgresql": {
                "use_pg_rewind": true, "use_slots": false,
                "parameters": {"max_connections": "200", "wal_level": "replica", "hot_standby": true},
                "pg_hba": ["host all all 0.0.0.0/0 md5"]
            },
            "slots": {"x": {"type": "physical"}},
            "unknown_future_key": 1
        }))
        .unwrap();
        assert_eq!(d.ttl, Duration::from_secs(30));
        assert_eq!(d.loop_wait, Duration::from_secs(10));
        assert_eq!(d.retry_timeout, Duration::from_secs(10));
        assert_eq!(d.maximum_lag_on_failover, 33_554_432);
        assert_eq!(d.primary_start_timeout, Duration::from_secs(60));
        assert_eq!(d.primary_stop_timeout, Duration::from_secs(5));
        assert_eq!(d.synchronous_mode, SynchronousMode::Quorum);
        assert!(d.synchronous_mode_strict);
        assert_eq!(d.synchronous_node_count, 2);
        assert!(d.synchronous_site_survival);
        assert!(!DynamicConfig::default().synchronous_site_survival);
        assert!(d.check_timeline && d.pause && !d.failsafe_mode);
        assert_eq!(d.max_timelines_history, 10);
        assert!(d.postgresql.use_pg_rewind && !d.postgresql.use_slots);
        assert_eq!(d.postgresql.parameters["max_connections"], json!("200"));
        assert_eq!(d.postgresql.pg_hba.len(), 1);
    }

    #[test]
    fn primary_names_win_over_master_aliases() {
        let d = DynamicConfig::from_json(&json!({
            "primary_start_timeout": 10, "master_start_timeout": 20
        }))
        .unwrap();
        assert_eq!(d.primary_start_timeout, Duration::from_secs(10));
    }

    #[test]
    fn synchronous_mode_spellings() {
        for (v, want) in [
            (json!(true), SynchronousMode::On),
            (json!("on"), SynchronousMode::On),
            (json!(false), SynchronousMode::Off),
            (json!("off"), SynchronousMode::Off),
            (json!("Quorum"), SynchronousMode::Quorum),
        ] {
            let d = DynamicConfig::from_json(&json!({ "synchronous_mode": v })).unwrap();
            assert_eq!(d.synchronous_mode, want, "{v}");
        }
    }

    #[test]
    fn bad_values_are_errors_naming_the_key() {
        let cases = [
            (json!({"ttl": "abc"}), "ttl", "number of seconds"),
            (json!({"ttl": 0}), "ttl", "greater than 0"),
            (json!({"loop_wait": -1}), "loop_wait", "number of seconds"),
            (
                json!({"retry_timeout": [1]}),
                "retry_timeout",
                "number of seconds",
            ),
            (
                json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}),
                "ttl",
                "raise ttl to at least 30",
            ),
            (
                json!({"loop_wait": 5}),
                "ttl",
                "ttl 3 (not set: Tribune's default)",
            ),
            (
                json!({"maximum_lag_on_failover": -1}),
                "maximum_lag_on_failover",
                "integer >= 0",
            ),
            (
                json!({"synchronous_mode": "sometimes"}),
                "synchronous_mode",
                "true, false or quorum",
            ),
            (
                json!({"synchronous_node_count": 0}),
                "synchronous_node_count",
                "integer between 1",
            ),
            (json!({"pause": "maybe"}), "pause", "a boolean"),
            (
                json!({"synchronous_site_survival": "sometimes"}),
                "synchronous_site_survival",
                "a boolean",
            ),
            (
                json!({"postgresql": {"parameters": {"max_connections": 0}}}),
                "postgresql.parameters.max_connections",
                "between 1 and 262143",
            ),
            (
                json!({"postgresql": {"parameters": {"max_wal_senders": "ten"}}}),
                "postgresql.parameters.max_wal_senders",
                "between 0 and 262143",
            ),
            (
                json!({"postgresql": {"parameters": {"max_replication_slots": 300000}}}),
                "postgresql.parameters.max_replication_slots",
                "between 0 and 262143",
            ),
            (
                json!({"postgresql": {"use_slots": "sometimes"}}),
                "postgresql.use_slots",
                "a boolean",
            ),
            (json!({"postgresql": "x"}), "postgresql", "a mapping"),
        ];
        for (doc, key, needle) in cases {
            let err = DynamicConfig::from_json(&doc).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
            assert!(err.message.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn a_non_mapping_is_an_error_without_a_key() {
        let err = DynamicConfig::from_json(&json!([1])).unwrap_err();
        assert_eq!(err.key, None);
        assert!(err.message.contains("must be a mapping"), "{err}");
        assert_eq!(
            DynamicConfig::from_json(&Value::Null).unwrap(),
            DynamicConfig::default()
        );
    }

    /// Regression (found by the configuration fuzz): a `retry_timeout` near `Duration`'s limit
    /// overflowed `loop_wait + 2*retry_timeout` and panicked instead of being refused.
    #[test]
    fn huge_timeouts_are_refused_not_a_panic() {
        let err = DynamicConfig::from_json(&json!({"retry_timeout": 1.0e19})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("ttl"));
        let err = DynamicConfig::from_json(&json!({"loop_wait": 1.8e19, "retry_timeout": 1.0e19}))
            .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("ttl"));
    }

    #[test]
    fn the_timeout_rule_is_inclusive() {
        let d = DynamicConfig::from_json(&json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10}))
            .unwrap();
        assert_eq!(d.ttl, Duration::from_secs(30));
        // Defaults loop_wait 1 + 2 * retry_timeout 0.5 = 2: a ttl of 2 is the smallest allowed.
        assert!(DynamicConfig::from_json(&json!({"ttl": 2})).is_ok());
        assert!(DynamicConfig::from_json(&json!({"ttl": 1.9})).is_err());
    }
}
