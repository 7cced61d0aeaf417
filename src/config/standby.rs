//! `standby_cluster` in the dynamic configuration: the remote source a standby cluster
//! replicates from (Patroni's `standby_cluster` key, reference section 5.14). Set, it makes the
//! lease holder a *standby leader* that streams from the remote and never promotes; removed
//! (`PATCH /config {"standby_cluster": null}`, `tribunectl promote-cluster`), the cluster is a
//! normal one again.
//!
//! Parsed and checked here only; what it means for the HA decision is in `ha::decide`, and how
//! a database streams from it is the instance adapters' business.

use serde_json::Value;

use super::error::ConfigError;
use super::value::{Section, as_text};

/// The keys Patroni defines under `standby_cluster`.
const KEYS: &[&str] = &[
    "host",
    "port",
    "primary_slot_name",
    "create_replica_methods",
    "restore_command",
    "archive_cleanup_command",
    "recovery_min_apply_delay",
];

/// The only replica-creation method Tribune runs.
const BASEBACKUP: &str = "basebackup";

/// Where a standby cluster takes its WAL from. At least one of `host`, `port` and
/// `restore_command` is set (Patroni's rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StandbyCluster {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// A slot on the remote primary the standby leader streams (and takes its base backup)
    /// through; created by the remote's operators, never by Tribune.
    pub primary_slot_name: Option<String>,
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
    /// As PostgreSQL reads it: milliseconds, or with a unit (`5min`).
    pub recovery_min_apply_delay: Option<String>,
}

impl StandbyCluster {
    /// Whether a base backup (and streaming) can reach the remote: `host` or `port` is set.
    /// A source of `restore_command` only can feed a running standby from the archive, but
    /// cannot create one.
    pub fn streams(&self) -> bool {
        self.host.is_some() || self.port.is_some()
    }

    /// `host:port` for messages (libpq's defaults where one is not set).
    pub fn address(&self) -> String {
        match (&self.host, self.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => format!("{h}:5432"),
            (None, Some(p)) => format!("local socket, port {p}"),
            (None, None) => "the WAL archive (restore_command)".to_owned(),
        }
    }

    /// The section at `path` (`standby_cluster` or `bootstrap.dcs.standby_cluster`); absent or
    /// null is `None`.
    pub(crate) fn parse(parent: &Section<'_>) -> Result<Option<StandbyCluster>, ConfigError> {
        let s = parent.section("standby_cluster")?;
        if !s.is_present() {
            return Ok(None);
        }
        let path = parent.key("standby_cluster");
        if let Some(Value::Object(map)) = parent.get("standby_cluster")
            && let Some(unknown) = map.keys().find(|k| !KEYS.contains(&k.as_str()))
        {
            return Err(ConfigError::at(
                s.key(unknown),
                format!(
                    "unknown key `{}`: standby_cluster takes {}",
                    s.key(unknown),
                    KEYS.join(", ")
                ),
            ));
        }
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match s.string(key)? {
                Some(v) if v.trim().is_empty() => Err(ConfigError::at(
                    s.key(key),
                    "must not be empty (remove the key instead)",
                )),
                other => Ok(other),
            }
        };
        let port = s
            .integer("port", 1, 65_535)?
            .map(|p| u16::try_from(p).expect("checked to be 1..=65535"));
        let recovery_min_apply_delay = match s.get("recovery_min_apply_delay") {
            None => None,
            Some(v) => match as_text(v).filter(|t| delay_is_valid(t)) {
                Some(t) => Some(t),
                None => {
                    return Err(ConfigError::wrong_type(
                        s.key("recovery_min_apply_delay"),
                        "milliseconds, or a number with a unit (ms, s, min, h, d)",
                        v,
                    ));
                }
            },
        };
        if let Some(methods) = s.string_list("create_replica_methods")?
            && !methods.iter().any(|m| m == BASEBACKUP)
        {
            return Err(ConfigError::at(
                s.key("create_replica_methods"),
                format!(
                    "Tribune creates a standby cluster's replica only with pg_basebackup: the \
                     list must include `{BASEBACKUP}` (got {})",
                    methods.join(", ")
                ),
            ));
        }
        let standby = StandbyCluster {
            host: text("host")?,
            port,
            primary_slot_name: text("primary_slot_name")?,
            restore_command: text("restore_command")?,
            archive_cleanup_command: text("archive_cleanup_command")?,
            recovery_min_apply_delay,
        };
        if let Some(slot) = &standby.primary_slot_name
            && !slot_name_is_valid(slot)
        {
            return Err(ConfigError::at(
                s.key("primary_slot_name"),
                format!(
                    "`{slot}` is not a replication slot name (lower-case letters, digits and \
                     underscores, at most 63)"
                ),
            ));
        }
        if !standby.streams() && standby.restore_command.is_none() {
            return Err(ConfigError::at(
                path,
                "names no source: set host and port of the remote primary, or restore_command",
            ));
        }
        Ok(Some(standby))
    }
}

/// PostgreSQL's rule for slot names.
fn slot_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `recovery_min_apply_delay`: an integer (milliseconds) or an integer with a time unit.
fn delay_is_valid(text: &str) -> bool {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    !number.is_empty() && matches!(unit.trim(), "" | "ms" | "s" | "min" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(doc: Value) -> Result<Option<StandbyCluster>, ConfigError> {
        let map = doc.as_object().unwrap();
        StandbyCluster::parse(&Section::of_map("", map))
    }

    #[test]
    fn every_key_is_read() {
        let s = parse(json!({"standby_cluster": {
            "host": "10.0.0.1", "port": "5433", "primary_slot_name": "dr_site",
            "create_replica_methods": ["pgbackrest", "basebackup"],
            "restore_command": "cp /archive/%f %p",
            "archive_cleanup_command": "pg_archivecleanup /archive %r",
            "recovery_min_apply_delay": "5min"
        }}))
        .unwrap()
        .unwrap();
        assert_eq!(s.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.port, Some(5433));
        assert_eq!(s.primary_slot_name.as_deref(), Some("dr_site"));
        assert_eq!(s.restore_command.as_deref(), Some("cp /archive/%f %p"));
        assert_eq!(
            s.archive_cleanup_command.as_deref(),
            Some("pg_archivecleanup /archive %r")
        );
        assert_eq!(s.recovery_min_apply_delay.as_deref(), Some("5min"));
        assert!(s.streams());
        assert_eq!(s.address(), "10.0.0.1:5433");
    }

    #[test]
    fn absent_or_null_is_a_normal_cluster() {
        assert_eq!(parse(json!({})).unwrap(), None);
        assert_eq!(parse(json!({"standby_cluster": null})).unwrap(), None);
    }

    #[test]
    fn any_of_host_port_or_restore_command_is_enough() {
        for doc in [
            json!({"host": "h"}),
            json!({"port": 5432}),
            json!({"restore_command": "cp %f %p"}),
        ] {
            assert!(
                parse(json!({ "standby_cluster": doc })).unwrap().is_some(),
                "{doc}"
            );
        }
        let archive_only = parse(json!({"standby_cluster": {"restore_command": "x"}}))
            .unwrap()
            .unwrap();
        assert!(!archive_only.streams());
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let cases = [
            (json!({}), "standby_cluster", "names no source"),
            (
                json!({"primary_slot_name": "s"}),
                "standby_cluster",
                "names no source",
            ),
            (json!("host"), "standby_cluster", "a mapping"),
            (
                json!({"host": "h", "port": 0}),
                "standby_cluster.port",
                "between 1 and 65535",
            ),
            (
                json!({"host": "h", "port": 65536}),
                "standby_cluster.port",
                "between 1 and 65535",
            ),
            (
                json!({"host": "h", "port": "abc"}),
                "standby_cluster.port",
                "between 1 and 65535",
            ),
            (
                json!({"host": ""}),
                "standby_cluster.host",
                "must not be empty",
            ),
            (json!({"host": ["a"]}), "standby_cluster.host", "a string"),
            (
                json!({"host": "h", "primary_slot_name": "Bad-Name"}),
                "standby_cluster.primary_slot_name",
                "not a replication slot name",
            ),
            (
                json!({"host": "h", "recovery_min_apply_delay": "soon"}),
                "standby_cluster.recovery_min_apply_delay",
                "milliseconds",
            ),
            (
                json!({"host": "h", "create_replica_methods": ["pgbackrest"]}),
                "standby_cluster.create_replica_methods",
                "must include `basebackup`",
            ),
            (
                json!({"host": "h", "hots": "x"}),
                "standby_cluster.hots",
                "unknown key",
            ),
        ];
        for (doc, key, needle) in cases {
            let err = parse(json!({ "standby_cluster": doc.clone() })).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
            assert!(err.message.contains(needle), "{doc}: {err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }
}
