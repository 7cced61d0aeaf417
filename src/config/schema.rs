//! Every key Patroni defines (and the few Tribune adds), as a tree, and the walk that sorts the
//! keys of a document into acted-on, accepted-but-ignored (each with the reason it does not
//! apply to Tribune), refused and unknown.
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
    /// Patroni defines it; Tribune accepts it and names it in the start-up warning, with the
    /// reason when there is one (a Patroni internal with no meaning here).
    Ignored(Option<&'static str>),
    /// Patroni defines it; Tribune cannot honour it and running on as if it had would mislead:
    /// the file is refused, with this reason.
    Refused(&'static str),
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

/// Ignored because it does not apply to Tribune, for `why` (shown in the warning).
const fn na(name: &'static str, why: &'static str) -> Key {
    Key {
        name,
        used: Use::Ignored(Some(why)),
        children: None,
    }
}

/// Refused, for `why`.
const fn no(name: &'static str, why: &'static str) -> Key {
    Key {
        name,
        used: Use::Refused(why),
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

const fn na_in(name: &'static str, why: &'static str, children: &'static [Key]) -> Key {
    Key {
        name,
        used: Use::Ignored(Some(why)),
        children: Some(children),
    }
}

const THREAD_POOL: &str =
    "the size of Patroni's REST thread pool; Tribune's REST server is asynchronous (no pool)";

const PYSYNCOBJ: &str = "a timer of Patroni's pysyncobj Raft; Tribune's Raft has its own: \
                         raft.heartbeat_interval, election_timeout_min, election_timeout_max";

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

/// `postgresql.authentication.{superuser,replication,rewind}`, with libpq's TLS/GSS settings
/// for the connections made as each user.
const PG_USER: &[Key] = &[
    a("username"),
    a("password"),
    a("sslmode"),
    a("sslcert"),
    a("sslkey"),
    a("sslpassword"),
    a("sslrootcert"),
    a("sslcrl"),
    a("sslcrldir"),
    a("gssencmode"),
    a("channel_binding"),
    a("sslnegotiation"),
];

const PG_AUTHENTICATION: &[Key] = &[
    a_in("superuser", PG_USER),
    a_in("replication", PG_USER),
    a_in("rewind", PG_USER),
];

const BIN_NAME: &[Key] = &[
    a("pg_ctl"),
    a("initdb"),
    a("pg_controldata"),
    a("pg_basebackup"),
    a("postgres"),
    a("pg_isready"),
    a("pg_rewind"),
];

const CALLBACKS: &[Key] = &[
    a("on_start"),
    a("on_stop"),
    a("on_restart"),
    a("on_reload"),
    a("on_role_change"),
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
    na(
        "use_unix_socket",
        "Tribune connects to its own server through the Unix socket whenever pg_hba has a \
         local line (or is its default), and over TCP otherwise, whatever this says",
    ),
    a("pg_ctl_timeout"),
    a("remove_data_directory_on_rewind_failure"),
    a("remove_data_directory_on_diverged_timelines"),
    a("basebackup"),
    // Tribune only: which database engine the adapter drives.
    a("engine"),
    a("proxy_address"),
    a_in("bin_name", BIN_NAME),
    a("pg_ident"),
    a_in("callbacks", CALLBACKS),
    a("create_replica_methods"),
    a("recovery_conf"),
    a("custom_conf"),
    a("pre_promote"),
    a("before_stop"),
    a("use_unix_socket_repl"),
    na(
        "use_slots",
        "Patroni reads use_slots only from the dynamic configuration: set \
         bootstrap.dcs.postgresql.use_slots (or PATCH /config)",
    ),
];

/// `bootstrap.dcs.postgresql`: Patroni accepts any `postgresql` key there (it silently drops the
/// local-only ones); Tribune's dynamic configuration reads four.
const DCS_POSTGRESQL: &[Key] = &[
    a("parameters"),
    a("use_pg_rewind"),
    a("use_slots"),
    a("pg_hba"),
    na("pg_ident", MEMBER_ONLY),
    na("recovery_conf", MEMBER_ONLY),
    na("pg_ctl_timeout", MEMBER_ONLY),
    na("remove_data_directory_on_rewind_failure", MEMBER_ONLY),
    na("remove_data_directory_on_diverged_timelines", MEMBER_ONLY),
    na("use_unix_socket", MEMBER_ONLY),
    na("use_unix_socket_repl", MEMBER_ONLY),
    na_in("callbacks", MEMBER_ONLY, CALLBACKS),
    na("create_replica_methods", MEMBER_ONLY),
    na("basebackup", MEMBER_ONLY),
    na("custom_conf", MEMBER_ONLY),
    na("pre_promote", MEMBER_ONLY),
    na("before_stop", MEMBER_ONLY),
    na("bin_dir", LOCAL_ONLY),
    na_in("bin_name", MEMBER_ONLY, BIN_NAME),
    na("listen", LOCAL_ONLY),
    na("connect_address", LOCAL_ONLY),
    na("proxy_address", LOCAL_ONLY),
    na("data_dir", LOCAL_ONLY),
    na("config_dir", LOCAL_ONLY),
    na("pgpass", LOCAL_ONLY),
    na("authentication", LOCAL_ONLY),
];

/// A `postgresql` key Patroni also takes from the dynamic configuration; Tribune's dynamic
/// configuration holds only what must be the same on every member (and is checked there).
const MEMBER_ONLY: &str = "in the dynamic configuration Tribune reads only parameters, pg_hba, \
                           use_pg_rewind and use_slots: set this in each member's own postgresql \
                           section";

/// A `postgresql` key Patroni itself drops from the dynamic configuration.
const LOCAL_ONLY: &str =
    "a member's own setting, which Patroni too ignores in the dynamic configuration";

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
    a("member_slots_ttl"),
    // Tribune only: keep every acknowledged commit outside the primary's site too.
    a("synchronous_site_survival"),
    a_in("standby_cluster", STANDBY_CLUSTER),
    a("slots"),
    a("permanent_slots"),
    a("permanent_replication_slots"),
    a("ignore_slots"),
    na(
        "primary_race_backoff",
        "Patroni 4.2 delays a standby's leader race while WAL from the old primary still \
         arrives; in Tribune there is no race: the Raft leader promotes the most advanced \
         eligible standby after comparing every standby's received WAL",
    ),
];

const BOOTSTRAP: &[Key] = &[
    a_in("dcs", DCS),
    a("initdb"),
    a("pg_hba"),
    a("method"),
    a("post_bootstrap"),
    a("post_init"),
    na(
        "users",
        "removed in Patroni 4.0.0, which also ignores it: create users in post_bootstrap",
    ),
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
    na("thread_pool_size", THREAD_POOL),
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
    na("min_timeout", PYSYNCOBJ),
    na("max_timeout", PYSYNCOBJ),
    na("connection_timeout", PYSYNCOBJ),
    na("append_entries_period", PYSYNCOBJ),
    na("connection_retry_time", PYSYNCOBJ),
    na("leader_fallback_timeout", PYSYNCOBJ),
];

const LOG: &[Key] = &[
    a("level"),
    a("type"),
    na(
        "traceback_level",
        "the level of Python tracebacks; Tribune has none, errors are logged with their causes",
    ),
    a("format"),
    a("dateformat"),
    a("static_fields"),
    na(
        "max_queue_size",
        "the length of Patroni's queue to its logging thread; Tribune writes its log directly",
    ),
    a("dir"),
    a("mode"),
    a("file_num"),
    a("file_size"),
    a("loggers"),
    a("deduplicate_heartbeat_logs"),
];

const WATCHDOG: &[Key] = &[a("mode"), a("driver"), a("device"), a("safety_margin")];

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
    na("thread_pool_size", THREAD_POOL),
    na(
        "thread_stack_size",
        "the stack size of Patroni's Python threads; Tribune's tasks are asynchronous",
    ),
    no(
        "citus",
        "Tribune does not manage Citus clusters (registering workers with the coordinator, \
         POST /citus): run a Citus cluster with Patroni, or remove the section for a plain \
         PostgreSQL cluster",
    ),
];

/// Why the ignored key at the dotted `path` does not apply to Tribune, when the tree says.
pub(crate) fn reason(path: &str) -> Option<&'static str> {
    let mut keys = ROOT;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let key = keys.iter().find(|k| k.name == part)?;
        if parts.peek().is_none() {
            return match key.used {
                Use::Ignored(why) => why,
                _ => None,
            };
        }
        keys = key.children?;
    }
    None
}

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
                if let Use::Refused(why) = key.used {
                    return Err(ConfigError::at(
                        &full,
                        format!("`{full}` is not supported: {why}"),
                    ));
                }
                let ignored_here = report && matches!(key.used, Use::Ignored(_));
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
                if report && !methods.is_acted_section(path, name) {
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
    /// The methods of `postgresql.create_replica_methods` alone: their sections are acted on
    /// (`config::methods`); those named only in the dynamic configuration are not.
    local_replica: Vec<String>,
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
        let local_replica = names(at(&["postgresql", "create_replica_methods"]));
        let mut replica = local_replica.clone();
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
            local_replica,
        }
    }

    /// A section `config::methods` reads: the one `bootstrap.method` names, or one named in
    /// `postgresql.create_replica_methods`.
    fn is_acted_section(&self, path: &str, name: &str) -> bool {
        match path {
            "bootstrap" => self.bootstrap.iter().any(|m| m == name),
            "postgresql" => self.local_replica.iter().any(|m| m == name),
            _ => false,
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
                let rank = (k.used != Use::Acted, full.matches('.').count());
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
                "postgresql.old_method",
                "thread_pool_size",
            ]
        );
    }

    #[test]
    fn keys_that_cannot_apply_say_why_and_refused_ones_fail() {
        assert!(reason("thread_pool_size").unwrap().contains("asynchronous"));
        assert!(
            reason("raft.min_timeout")
                .unwrap()
                .contains("election_timeout_min")
        );
        assert!(
            reason("bootstrap.dcs.postgresql.pg_ctl_timeout")
                .unwrap()
                .contains("each member's own postgresql section")
        );
        // Acted on, unknown, or a path into a scalar: no reason.
        for path in ["postgresql.callbacks", "log.dir", "nonsense", "name.x"] {
            assert_eq!(reason(path), None, "{path}");
        }
        let err = check(json!({"citus": {"group": 0, "database": "citus"}})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("citus"));
        assert!(err.message.contains("Citus clusters"), "{err}");
        // A null section is absent, as everywhere.
        assert_eq!(check(json!({"citus": null})).unwrap(), Vec::<String>::new());
    }

    /// Every key Patroni defines that Tribune ignores is either one it cannot apply (with a
    /// reason) or one of the keys listed here, which the backups work acts on.
    #[test]
    fn every_ignored_key_says_why() {
        fn visit(keys: &[Key], path: &str, out: &mut Vec<String>) {
            for k in keys {
                let full = join(path, k.name);
                if k.used == Use::Ignored(None) {
                    out.push(full.clone());
                }
                if let Some(children) = k.children {
                    visit(children, &full, out);
                }
            }
        }
        let mut unexplained = Vec::new();
        visit(ROOT, "", &mut unexplained);
        assert_eq!(unexplained, Vec::<String>::new());
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
