//! Every key Patroni defines (and the few Tribune adds), as a tree, and the walk that sorts the
//! keys of a document into acted-on, accepted-but-ignored and unknown.
//!
//! Why a hand-written tree: an existing `patroni.yml` must start Tribune without edits, so every
//! key Patroni knows is accepted; the ones Tribune does not act on are reported together in one
//! start-up warning; anything else is a typo and fails with a suggestion. Types are not checked
//! here (the typed readers do that, for the keys Tribune reads).
//!
//! Must not: reject a key Patroni accepts. The non-raft DCS sections are handled by the caller
//! before this walk (they are errors with their own message, not unknown keys).

use serde_json::{Map, Value};

use super::error::ConfigError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// Tribune reads and honours it.
    Acted,
    /// Patroni defines it; Tribune accepts it and names it in the start-up warning.
    Ignored,
}

#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) used: Use,
    /// `Some` when the value is a mapping with a fixed set of keys (checked for typos even when
    /// the section is ignored); `None` for scalars and free-form mappings (tags, parameters).
    pub(crate) children: Option<&'static [Key]>,
}

const fn a(name: &'static str) -> Key {
    Key {
        name,
        used: Use::Acted,
        children: None,
    }
}

const fn i(name: &'static str) -> Key {
    Key {
        name,
        used: Use::Ignored,
        children: None,
    }
}

const fn a_in(name: &'static str, children: &'static [Key]) -> Key {
    Key {
        name,
        used: Use::Acted,
        children: Some(children),
    }
}

const fn i_in(name: &'static str, children: &'static [Key]) -> Key {
    Key {
        name,
        used: Use::Ignored,
        children: Some(children),
    }
}

/// DCS sections Patroni supports and Tribune replaces with its own Raft store.
pub(crate) const UNSUPPORTED_DCS: [&str; 6] = [
    "etcd",
    "etcd3",
    "consul",
    "zookeeper",
    "exhibitor",
    "kubernetes",
];

const USER: &[Key] = &[a("username"), a("password")];

/// `postgresql.authentication.{superuser,replication,rewind}`: libpq TLS/GSS settings are Patroni's
/// and not used yet.
const PG_USER: &[Key] = &[
    a("username"),
    a("password"),
    i("sslmode"),
    i("sslcert"),
    i("sslkey"),
    i("sslpassword"),
    i("sslrootcert"),
    i("sslcrl"),
    i("sslcrldir"),
    i("gssencmode"),
    i("channel_binding"),
    i("sslnegotiation"),
];

const PG_AUTHENTICATION: &[Key] = &[
    a_in("superuser", PG_USER),
    a_in("replication", PG_USER),
    a_in("rewind", PG_USER),
];

const BIN_NAME: &[Key] = &[
    i("pg_ctl"),
    i("initdb"),
    i("pg_controldata"),
    i("pg_basebackup"),
    i("postgres"),
    i("pg_isready"),
    i("pg_rewind"),
];

const CALLBACKS: &[Key] = &[
    i("on_start"),
    i("on_stop"),
    i("on_restart"),
    i("on_reload"),
    i("on_role_change"),
];

const POSTGRESQL: &[Key] = &[
    a("listen"),
    a("connect_address"),
    a("data_dir"),
    a("config_dir"),
    a("bin_dir"),
    a("pgpass"),
    a_in("authentication", PG_AUTHENTICATION),
    a("parameters"),
    a("pg_hba"),
    a("use_pg_rewind"),
    a("use_unix_socket"),
    a("pg_ctl_timeout"),
    a("remove_data_directory_on_rewind_failure"),
    a("remove_data_directory_on_diverged_timelines"),
    a("basebackup"),
    // Tribune only: which database engine the adapter drives.
    a("engine"),
    i("proxy_address"),
    i_in("bin_name", BIN_NAME),
    i("pg_ident"),
    i_in("callbacks", CALLBACKS),
    i("create_replica_methods"),
    i("recovery_conf"),
    i("custom_conf"),
    i("pre_promote"),
    i("before_stop"),
    i("use_unix_socket_repl"),
    // Only effective from the dynamic configuration in Patroni.
    i("use_slots"),
];

/// `bootstrap.dcs.postgresql`: Patroni accepts any `postgresql` key there (it silently drops the
/// local-only ones); Tribune's dynamic configuration reads four.
const DCS_POSTGRESQL: &[Key] = &[
    a("parameters"),
    a("use_pg_rewind"),
    a("use_slots"),
    a("pg_hba"),
    i("pg_ident"),
    i("recovery_conf"),
    i("pg_ctl_timeout"),
    i("remove_data_directory_on_rewind_failure"),
    i("remove_data_directory_on_diverged_timelines"),
    i("use_unix_socket"),
    i("use_unix_socket_repl"),
    i_in("callbacks", CALLBACKS),
    i("create_replica_methods"),
    i("basebackup"),
    i("custom_conf"),
    i("pre_promote"),
    i("before_stop"),
    i("bin_dir"),
    i_in("bin_name", BIN_NAME),
    i("listen"),
    i("connect_address"),
    i("proxy_address"),
    i("data_dir"),
    i("config_dir"),
    i("pgpass"),
    i("authentication"),
];

/// `bootstrap.dcs.standby_cluster` (read by `config::standby`).
const STANDBY_CLUSTER: &[Key] = &[
    a("host"),
    a("port"),
    a("primary_slot_name"),
    a("create_replica_methods"),
    a("restore_command"),
    a("archive_cleanup_command"),
    a("recovery_min_apply_delay"),
];

/// Patroni's dynamic configuration keys (§3.9), as written under `bootstrap.dcs`.
const DCS: &[Key] = &[
    a("ttl"),
    a("loop_wait"),
    a("retry_timeout"),
    a("maximum_lag_on_failover"),
    a("primary_start_timeout"),
    a("master_start_timeout"),
    a("primary_stop_timeout"),
    a("master_stop_timeout"),
    a("synchronous_mode"),
    a("synchronous_mode_strict"),
    a("synchronous_node_count"),
    a("check_timeline"),
    a("max_timelines_history"),
    a("pause"),
    a("failsafe_mode"),
    a_in("postgresql", DCS_POSTGRESQL),
    a("maximum_lag_on_syncnode"),
    i("member_slots_ttl"),
    a_in("standby_cluster", STANDBY_CLUSTER),
    i("slots"),
    i("permanent_slots"),
    i("permanent_replication_slots"),
    i("ignore_slots"),
    i("primary_race_backoff"),
];

const BOOTSTRAP: &[Key] = &[
    a_in("dcs", DCS),
    a("initdb"),
    a("pg_hba"),
    i("method"),
    i("post_bootstrap"),
    i("post_init"),
    // Removed in Patroni 4.0.0, which logs an error and ignores it.
    i("users"),
];

const RESTAPI: &[Key] = &[
    a("listen"),
    a("connect_address"),
    a_in("authentication", USER),
    a("certfile"),
    a("keyfile"),
    a("keyfile_password"),
    a("cafile"),
    a("verify_client"),
    a("allowlist"),
    a("allowlist_include_members"),
    a("http_extra_headers"),
    a("https_extra_headers"),
    a("ciphers"),
    a("request_queue_size"),
    i("thread_pool_size"),
    a("server_tokens"),
];

const CTL: &[Key] = &[
    a("insecure"),
    a("cacert"),
    a("certfile"),
    a("keyfile"),
    a_in("authentication", USER),
    a("keyfile_password"),
];

const RAFT: &[Key] = &[
    a("self_addr"),
    a("bind_addr"),
    a("partner_addrs"),
    a("data_dir"),
    a("password"),
    // Tribune only: mutual TLS between the agents.
    a("certfile"),
    a("keyfile"),
    a("keyfile_password"),
    a("cafile"),
    // Tribune only: the Raft timers.
    a("heartbeat_interval"),
    a("election_timeout_min"),
    a("election_timeout_max"),
    // Patroni 4.2 pysyncobj timers; Tribune has its own (above).
    i("min_timeout"),
    i("max_timeout"),
    i("connection_timeout"),
    i("append_entries_period"),
    i("connection_retry_time"),
    i("leader_fallback_timeout"),
];

const LOG: &[Key] = &[
    a("level"),
    a("type"),
    i("traceback_level"),
    i("format"),
    i("dateformat"),
    i("static_fields"),
    i("max_queue_size"),
    i("dir"),
    i("mode"),
    i("file_num"),
    i("file_size"),
    i("loggers"),
    i("deduplicate_heartbeat_logs"),
];

const WATCHDOG: &[Key] = &[a("mode"), a("driver"), a("device"), a("safety_margin")];

const CITUS: &[Key] = &[i("group"), i("database")];

/// The top level of a configuration file.
pub(crate) const ROOT: &[Key] = &[
    a("name"),
    a("scope"),
    a("namespace"),
    a_in("restapi", RESTAPI),
    a_in("ctl", CTL),
    a_in("raft", RAFT),
    a_in("bootstrap", BOOTSTRAP),
    a_in("postgresql", POSTGRESQL),
    a("tags"),
    a_in("watchdog", WATCHDOG),
    a_in("log", LOG),
    i("thread_pool_size"),
    i("thread_stack_size"),
    i_in("citus", CITUS),
];

/// Walks the document: returns the dotted paths of the keys Patroni defines and Tribune ignores,
/// sorted, or an error for the first key nobody defines.
pub(crate) fn ignored_keys(root: &Map<String, Value>) -> Result<Vec<String>, ConfigError> {
    let methods = CustomMethods::of(root);
    let mut out = Vec::new();
    walk(root, "", ROOT, true, &methods, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(
    map: &Map<String, Value>,
    path: &str,
    keys: &'static [Key],
    report: bool,
    methods: &CustomMethods,
    out: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (name, value) in map {
        let full = join(path, name);
        match keys.iter().find(|k| k.name == name) {
            Some(key) => {
                if value.is_null() {
                    continue;
                }
                let ignored_here = report && key.used == Use::Ignored;
                if ignored_here {
                    out.push(full.clone());
                }
                if let (Some(children), Value::Object(inner)) = (key.children, value) {
                    walk(
                        inner,
                        &full,
                        children,
                        report && !ignored_here,
                        methods,
                        out,
                    )?;
                }
            }
            None if methods.is_custom_section(path, name, value) => {
                if report {
                    out.push(full);
                }
            }
            None => return Err(unknown_key(&full, name, keys)),
        }
    }
    Ok(())
}

/// Custom bootstrap and replica-creation methods live in sections named by the user:
/// `bootstrap.method: wal_e` refers to `bootstrap.wal_e`, `create_replica_methods: [pgbackrest]`
/// to `postgresql.pgbackrest`. A mapping with a `command` key in those places is taken as such a
/// section even when no list names it (Patroni ignores it then; rejecting it would break a file
/// Patroni starts with).
struct CustomMethods {
    bootstrap: Vec<String>,
    replica: Vec<String>,
}

impl CustomMethods {
    fn of(root: &Map<String, Value>) -> Self {
        let at = |path: &[&str]| -> Option<&Value> {
            let mut v = root.get(path[0])?;
            for p in &path[1..] {
                v = v.get(p)?;
            }
            Some(v)
        };
        let names = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        let mut replica = names(at(&["postgresql", "create_replica_methods"]));
        replica.extend(names(at(&[
            "bootstrap",
            "dcs",
            "postgresql",
            "create_replica_methods",
        ])));
        replica.extend(names(at(&[
            "bootstrap",
            "dcs",
            "standby_cluster",
            "create_replica_methods",
        ])));
        Self {
            bootstrap: names(at(&["bootstrap", "method"])),
            replica,
        }
    }

    fn is_custom_section(&self, path: &str, name: &str, value: &Value) -> bool {
        let has_command = value.get("command").is_some();
        match path {
            "bootstrap" => has_command || self.bootstrap.iter().any(|m| m == name),
            "postgresql" | "bootstrap.dcs.postgresql" => {
                has_command || self.replica.iter().any(|m| m == name)
            }
            _ => false,
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn unknown_key(full: &str, name: &str, siblings: &[Key]) -> ConfigError {
    let parent = full.strip_suffix(name).unwrap_or("").trim_end_matches('.');
    let hint = if let Some(close) = closest(name, siblings.iter().map(|k| k.name)) {
        format!(" (did you mean `{}`?)", join(parent, close))
    } else if let Some(elsewhere) = defined_elsewhere(name) {
        let options: Vec<String> = elsewhere.iter().map(|p| format!("`{p}`")).collect();
        format!(
            " (`{name}` belongs in another section: did you mean {}?)",
            options.join(" or ")
        )
    } else {
        ": neither Patroni nor Tribune defines it".to_owned()
    };
    ConfigError::at(full, format!("unknown key `{full}`{hint}"))
}

/// The sibling nearest to `name` by edit distance, if it is near enough to be a typo.
fn closest<'k>(name: &str, candidates: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    let limit = match name.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    candidates
        .map(|c| (edit_distance(&lower, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Where else in the tree a key of this exact name is defined: the shallowest places, acted-on
/// ones preferred.
fn defined_elsewhere(name: &str) -> Option<Vec<String>> {
    fn collect(keys: &[Key], path: &str, name: &str, out: &mut Vec<((bool, usize), String)>) {
        for k in keys {
            let full = join(path, k.name);
            if k.name == name {
                let rank = (k.used == Use::Ignored, full.matches('.').count());
                out.push((rank, full.clone()));
            }
            if let Some(children) = k.children {
                collect(children, &full, name, out);
            }
        }
    }
    let mut found = Vec::new();
    collect(ROOT, "", name, &mut found);
    let best = found.iter().map(|(rank, _)| *rank).min()?;
    Some(
        found
            .into_iter()
            .filter(|(rank, _)| *rank == best)
            .map(|(_, path)| path)
            .collect(),
    )
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions (`dri`/`dir` = 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(doc: Value) -> Result<Vec<String>, ConfigError> {
        ignored_keys(doc.as_object().unwrap())
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("data_dri", "data_dir"), 1);
        assert_eq!(edit_distance("ttl", "ttl"), 0);
        assert_eq!(edit_distance("lop_wait", "loop_wait"), 1);
        assert_eq!(edit_distance("abc", ""), 3);
    }

    #[test]
    fn typos_are_rejected_with_the_nearest_sibling() {
        let cases = [
            (
                json!({"postgresql": {"data_dri": "/x"}}),
                "postgresql.data_dri",
                "did you mean `postgresql.data_dir`?",
            ),
            (
                json!({"bootstrap": {"dcs": {"lop_wait": 1}}}),
                "bootstrap.dcs.lop_wait",
                "did you mean `bootstrap.dcs.loop_wait`?",
            ),
            (
                json!({"restapi": {"Listen": "x"}}),
                "restapi.Listen",
                "did you mean `restapi.listen`?",
            ),
            (json!({"scop": "x"}), "scop", "did you mean `scope`?"),
            (
                json!({"data_dir": "/x"}),
                "data_dir",
                "or `postgresql.data_dir`?",
            ),
            (
                json!({"postgresql": {"callbacks": {"on_role_chang": "x"}}}),
                "postgresql.callbacks.on_role_chang",
                "did you mean `postgresql.callbacks.on_role_change`?",
            ),
            (
                json!({"frobnicate": 1}),
                "frobnicate",
                "neither Patroni nor Tribune defines it",
            ),
        ];
        for (doc, key, hint) in cases {
            let err = check(doc).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{err}");
            assert!(err.message.contains(hint), "{err}");
        }
    }

    #[test]
    fn ignored_keys_are_reported_at_the_section_they_start() {
        let doc = json!({
            "name": "n",
            "thread_pool_size": 5,
            "citus": {"group": 0, "database": "citus"},
            "postgresql": {
                "listen": "x",
                "callbacks": {"on_start": "/bin/true"},
                "authentication": {"superuser": {"username": "postgres", "sslmode": "require"}},
                "create_replica_methods": ["pgbackrest", "basebackup"],
                "pgbackrest": {"command": "/usr/bin/pgbackrest restore", "keep_data": true},
                "old_method": {"command": "/bin/restore"},
                "pg_ident": null
            },
            "bootstrap": {
                "method": "wal_e",
                "wal_e": {"command": "x", "no_params": true},
                "dcs": {"ttl": 30, "postgresql": {"use_slots": true, "pg_ctl_timeout": 30}}
            },
            "tags": {"anything": {"nested": 1}}
        });
        assert_eq!(
            check(doc).unwrap(),
            vec![
                "bootstrap.dcs.postgresql.pg_ctl_timeout",
                "bootstrap.method",
                "bootstrap.wal_e",
                "citus",
                "postgresql.authentication.superuser.sslmode",
                "postgresql.callbacks",
                "postgresql.create_replica_methods",
                "postgresql.old_method",
                "postgresql.pgbackrest",
                "thread_pool_size",
            ]
        );
    }

    #[test]
    fn an_unlisted_section_without_command_is_a_typo() {
        let err = check(json!({"postgresql": {"pgbackrest": {"keep_data": true}}})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("postgresql.pgbackrest"));
    }

    #[test]
    fn the_tree_has_no_duplicate_siblings() {
        fn visit(keys: &[Key], path: &str) {
            let mut names: Vec<_> = keys.iter().map(|k| k.name).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "duplicate key under `{path}`");
            for k in keys {
                if let Some(children) = k.children {
                    visit(children, &join(path, k.name));
                }
            }
        }
        visit(ROOT, "");
    }
}
