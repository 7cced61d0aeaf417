//! Environment overrides, Patroni's `PATRONI_*` variables and Tribune's `TRIBUNE_*` ones (applied
//! second, so they win). Reading goes through an injected lookup so tests never touch the process
//! environment. Unlike Patroni, the variables are not removed from the environment.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::schema::UNSUPPORTED_DCS;

/// Prefixes in the order they are applied: later wins.
const PREFIXES: [&str; 2] = ["PATRONI_", "TRIBUNE_"];

/// Variable suffix -> dotted key it sets.
const OVERRIDES: &[(&str, &str)] = &[
    ("NAME", "name"),
    ("SCOPE", "scope"),
    ("NAMESPACE", "namespace"),
    ("RESTAPI_LISTEN", "restapi.listen"),
    ("RESTAPI_CONNECT_ADDRESS", "restapi.connect_address"),
    ("RESTAPI_USERNAME", "restapi.authentication.username"),
    ("RESTAPI_PASSWORD", "restapi.authentication.password"),
    ("RESTAPI_CERTFILE", "restapi.certfile"),
    ("RESTAPI_KEYFILE", "restapi.keyfile"),
    ("RESTAPI_CAFILE", "restapi.cafile"),
    ("RESTAPI_VERIFY_CLIENT", "restapi.verify_client"),
    ("RESTAPI_KEYFILE_PASSWORD", "restapi.keyfile_password"),
    ("RESTAPI_ALLOWLIST", "restapi.allowlist"),
    (
        "RESTAPI_ALLOWLIST_INCLUDE_MEMBERS",
        "restapi.allowlist_include_members",
    ),
    ("CTL_USERNAME", "ctl.authentication.username"),
    ("CTL_PASSWORD", "ctl.authentication.password"),
    ("CTL_INSECURE", "ctl.insecure"),
    ("CTL_CACERT", "ctl.cacert"),
    ("CTL_CERTFILE", "ctl.certfile"),
    ("CTL_KEYFILE", "ctl.keyfile"),
    ("CTL_KEYFILE_PASSWORD", "ctl.keyfile_password"),
    ("POSTGRESQL_LISTEN", "postgresql.listen"),
    ("POSTGRESQL_CONNECT_ADDRESS", "postgresql.connect_address"),
    ("POSTGRESQL_PROXY_ADDRESS", "postgresql.proxy_address"),
    ("POSTGRESQL_DATA_DIR", "postgresql.data_dir"),
    ("POSTGRESQL_BIN_DIR", "postgresql.bin_dir"),
    ("POSTGRESQL_PGPASS", "postgresql.pgpass"),
    (
        "SUPERUSER_USERNAME",
        "postgresql.authentication.superuser.username",
    ),
    (
        "SUPERUSER_PASSWORD",
        "postgresql.authentication.superuser.password",
    ),
    (
        "REPLICATION_USERNAME",
        "postgresql.authentication.replication.username",
    ),
    (
        "REPLICATION_PASSWORD",
        "postgresql.authentication.replication.password",
    ),
    (
        "REWIND_USERNAME",
        "postgresql.authentication.rewind.username",
    ),
    (
        "REWIND_PASSWORD",
        "postgresql.authentication.rewind.password",
    ),
    ("RAFT_SELF_ADDR", "raft.self_addr"),
    ("RAFT_BIND_ADDR", "raft.bind_addr"),
    ("RAFT_PARTNER_ADDRS", "raft.partner_addrs"),
    ("RAFT_DATA_DIR", "raft.data_dir"),
    ("RAFT_PASSWORD", "raft.password"),
    ("RAFT_CERTFILE", "raft.certfile"),
    ("RAFT_KEYFILE", "raft.keyfile"),
    ("RAFT_KEYFILE_PASSWORD", "raft.keyfile_password"),
    ("RAFT_CAFILE", "raft.cafile"),
    ("LOG_LEVEL", "log.level"),
];

/// The keys whose variables hold a list.
const LIST_KEYS: &[&str] = &["raft.partner_addrs", "restapi.allowlist"];

/// Patroni builds a DCS section from `PATRONI_<DCS>_<SUFFIX>`; such a variable means the
/// deployment expects another DCS, which is reported like the section itself.
const DCS_SUFFIXES: &[&str] = &[
    "HOST",
    "HOSTS",
    "PORT",
    "USE_PROXIES",
    "PROTOCOL",
    "SRV",
    "SRV_SUFFIX",
    "URL",
    "PROXY",
    "CACERT",
    "CERT",
    "KEY",
    "VERIFY",
    "TOKEN",
    "CHECKS",
    "DC",
    "CONSISTENCY",
    "REGISTER_SERVICE",
    "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS",
    "NAMESPACE",
    "CONTEXT",
    "USE_ENDPOINTS",
    "SCOPE_LABEL",
    "ROLE_LABEL",
    "POD_IP",
    "PORTS",
    "LABELS",
    "BYPASS_API_SERVICE",
    "RETRIABLE_HTTP_CODES",
    "KEY_PASSWORD",
    "USE_SSL",
    "SET_ACLS",
    "LEADER_LABEL_VALUE",
    "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE",
    "TMP_ROLE_LABEL",
    "AUTH_DATA",
    "BOOTSTRAP_LABELS",
    "USERNAME",
    "PASSWORD",
];

/// Applies the overrides to `root` (a mapping). Returns, for each key set, the variable that set
/// it, so that an error about that key can say where the value came from.
pub(crate) fn apply(
    root: &mut Map<String, Value>,
    env: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    let mut sources = BTreeMap::new();
    for prefix in PREFIXES {
        for (suffix, key) in OVERRIDES {
            let var = format!("{prefix}{suffix}");
            let Some(raw) = env(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let value = if LIST_KEYS.contains(key) {
                Value::Array(parse_list(&raw).into_iter().map(Value::String).collect())
            } else {
                Value::String(raw)
            };
            if set(root, key, value) {
                sources.insert((*key).to_owned(), var);
            }
        }
    }
    for dcs in UNSUPPORTED_DCS {
        for suffix in DCS_SUFFIXES {
            let var = format!("PATRONI_{}_{suffix}", dcs.to_ascii_uppercase());
            if let Some(raw) = env(&var).filter(|v| !v.is_empty()) {
                let key = format!("{dcs}.{}", suffix.to_ascii_lowercase());
                if set(root, &key, Value::String(raw)) {
                    sources.insert(dcs.to_owned(), var);
                }
            }
        }
    }
    sources
}

/// Sets a dotted key, creating the mappings on the way. A non-mapping in the way is left alone
/// (its own type error will be reported); returns whether the value was set.
fn set(root: &mut Map<String, Value>, key: &str, value: Value) -> bool {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut map = root;
    for part in parts {
        let slot = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(inner) => map = inner,
            _ => return false,
        }
    }
    map.insert(last.to_owned(), value);
    true
}

/// A list from an environment variable as Patroni reads it: a YAML flow list
/// (`['h1:2222','h2:2222']`), a quoted comma list (`'h1:2222','h2:2222'`) or a plain comma list.
pub(crate) fn parse_list(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[')
        && let Ok(Value::Array(items)) = serde_saphyr::from_str::<Value>(trimmed)
    {
        return items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect();
    }
    trimmed
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| {
            s.trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .trim()
                .to_owned()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_in_patroni_spellings() {
        let want = vec!["10.0.0.1:2222".to_owned(), "10.0.0.2:2222".to_owned()];
        for raw in [
            "10.0.0.1:2222,10.0.0.2:2222",
            " 10.0.0.1:2222 , 10.0.0.2:2222 ",
            "'10.0.0.1:2222','10.0.0.2:2222'",
            "['10.0.0.1:2222', '10.0.0.2:2222']",
            "[\"10.0.0.1:2222\",\"10.0.0.2:2222\"]",
        ] {
            assert_eq!(parse_list(raw), want, "{raw}");
        }
        assert_eq!(parse_list(""), Vec::<String>::new());
    }

    #[test]
    fn set_creates_sections_but_does_not_clobber_scalars() {
        let mut root = Map::new();
        assert!(set(&mut root, "a.b.c", Value::from(1)));
        assert_eq!(root["a"]["b"]["c"], Value::from(1));
        root.insert("s".into(), Value::from("scalar"));
        assert!(!set(&mut root, "s.x", Value::from(1)));
        assert_eq!(root["s"], Value::from("scalar"));
    }
}
