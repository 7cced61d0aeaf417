//! The PostgreSQL parameters the agent owns (Patroni's `CMDLINE_OPTIONS`, reference §3.11).
//!
//! They go on the postmaster command line, where nothing in a configuration file or `ALTER
//! SYSTEM` can override them. A user's value (from `parameters`) replaces the default only when it
//! passes the same validator Patroni applies; an invalid value is ignored with a warning, as in
//! Patroni. `listen_addresses`, `port` and `cluster_name` come from the settings only.

use std::collections::BTreeMap;

use crate::instance::conf::guc_text;

/// How a user's value for an owned parameter is checked.
#[derive(Clone, Copy, Debug)]
enum Validator {
    /// The agent's value always wins.
    NotSettable,
    /// One of these (lower-case); `hot_standby` is spelled `replica` since 9.6.
    WalLevel,
    /// A boolean that must be on.
    MustBeOn,
    Bool,
    IntMin(i64),
}

/// `(name, default, validator)` in the order of Patroni's command line.
const OWNED: &[(&str, &str, Validator)] = &[
    ("listen_addresses", "", Validator::NotSettable),
    ("port", "", Validator::NotSettable),
    ("cluster_name", "", Validator::NotSettable),
    ("wal_level", "replica", Validator::WalLevel),
    ("hot_standby", "on", Validator::MustBeOn),
    ("max_connections", "100", Validator::IntMin(25)),
    ("max_wal_senders", "10", Validator::IntMin(3)),
    ("max_prepared_transactions", "0", Validator::IntMin(0)),
    ("max_locks_per_transaction", "64", Validator::IntMin(32)),
    ("track_commit_timestamp", "off", Validator::Bool),
    ("max_replication_slots", "10", Validator::IntMin(4)),
    ("max_worker_processes", "8", Validator::IntMin(2)),
    ("wal_log_hints", "on", Validator::Bool),
];

/// Whether `name` (any case) is a parameter the agent passes on the command line; such names are
/// left out of `postgresql.conf`.
pub fn is_owned(name: &str) -> bool {
    OWNED.iter().any(|(n, _, _)| n.eq_ignore_ascii_case(name))
}

/// A user's parameter by case-insensitive name.
pub fn lookup<'a>(
    parameters: &'a BTreeMap<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    parameters
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// PostgreSQL's boolean spellings (openGauss accepts the same).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// The validated text of a user's value, or `None` when it must be ignored.
fn validate(validator: Validator, value: &serde_json::Value) -> Option<String> {
    let text = guc_text(value)?;
    match validator {
        Validator::NotSettable => None,
        Validator::WalLevel => match text.trim().to_ascii_lowercase().as_str() {
            "hot_standby" | "replica" => Some("replica".to_owned()),
            "logical" => Some("logical".to_owned()),
            _ => None,
        },
        Validator::MustBeOn => parse_bool(&text).filter(|b| *b).map(|_| "on".to_owned()),
        Validator::Bool => parse_bool(&text).map(|b| if b { "on" } else { "off" }.to_owned()),
        Validator::IntMin(min) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= min)
            .map(|n| n.to_string()),
    }
}

/// The owned parameters with their final values, in command-line order.
pub fn owned_gucs(
    listen_host: &str,
    listen_port: u16,
    cluster_name: &str,
    parameters: &BTreeMap<String, serde_json::Value>,
) -> Vec<(&'static str, String)> {
    OWNED
        .iter()
        .map(|&(name, default, validator)| {
            let value = match name {
                "listen_addresses" => listen_host.to_owned(),
                "port" => listen_port.to_string(),
                "cluster_name" => cluster_name.to_owned(),
                _ => match lookup(parameters, name) {
                    None => default.to_owned(),
                    Some(v) => validate(validator, v).unwrap_or_else(|| {
                        tracing::warn!(
                            parameter = name,
                            value = %v,
                            default,
                            "ignoring an invalid value for a parameter the agent manages"
                        );
                        default.to_owned()
                    }),
                },
            };
            (name, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_follow_patroni() {
        let gucs = owned_gucs("127.0.0.1", 5433, "labcluster", &BTreeMap::new());
        let line: Vec<String> = gucs.iter().map(|(k, v)| format!("--{k}={v}")).collect();
        assert_eq!(
            line.join(" "),
            "--listen_addresses=127.0.0.1 --port=5433 --cluster_name=labcluster \
             --wal_level=replica --hot_standby=on --max_connections=100 --max_wal_senders=10 \
             --max_prepared_transactions=0 --max_locks_per_transaction=64 \
             --track_commit_timestamp=off --max_replication_slots=10 \
             --max_worker_processes=8 --wal_log_hints=on"
        );
    }

    #[test]
    fn valid_user_values_win_and_invalid_ones_are_ignored() {
        let p = params(json!({
            "MAX_CONNECTIONS": 200,
            "max_wal_senders": "2",
            "wal_level": "logical",
            "hot_standby": "off",
            "track_commit_timestamp": true,
            "port": 9999,
            "max_locks_per_transaction": "lots",
        }));
        let gucs: BTreeMap<_, _> = owned_gucs("*", 5432, "c", &p).into_iter().collect();
        assert_eq!(gucs["max_connections"], "200");
        assert_eq!(gucs["max_wal_senders"], "10");
        assert_eq!(gucs["wal_level"], "logical");
        assert_eq!(gucs["hot_standby"], "on");
        assert_eq!(gucs["track_commit_timestamp"], "on");
        assert_eq!(gucs["port"], "5432");
        assert_eq!(gucs["max_locks_per_transaction"], "64");
        assert_eq!(gucs["listen_addresses"], "*");
    }

    #[test]
    fn ownership_is_case_insensitive() {
        assert!(is_owned("Max_Connections"));
        assert!(!is_owned("work_mem"));
    }
}
