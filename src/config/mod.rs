//! Tribune's configuration: Patroni's YAML file (or directory of files, or `PATRONI_CONFIGURATION`),
//! with `PATRONI_*`/`TRIBUNE_*` environment overrides, parsed and validated once at start-up.
//!
//! Owns: reading the sources, the typed [`Config`], the dynamic configuration parser
//! [`DynamicConfig`] (also used for `PATCH /config`), and the list of Patroni keys Tribune accepts
//! but does not act on ([`Config::ignored_keys`]; the caller logs it once as a warning).
//!
//! Called by the agent binary before anything else, and by the REST API for the dynamic config.
//!
//! Hazards and rules:
//! - An existing `patroni.yml` whose DCS is `raft:` must load without edits: every key Patroni
//!   defines is accepted (see `schema.rs`). Keys nobody defines, other DCS sections, wrong types,
//!   incoherent timeouts and missing required keys are one [`ConfigError`] naming the dotted key.
//! - Must not touch the data directory or the network (a host name in `restapi.listen` is
//!   resolved, nothing more), and must not read the process environment except in [`Config::load`].
//! - YAML is read as Patroni's PyYAML does: YAML 1.1 booleans (`on`, `off`, `yes`), and a
//!   repeated key keeps its last value.

mod address;
mod bootstrap;
mod dynamic;
mod env;
mod error;
mod initdb;
mod log;
mod methods;
mod postgresql;
mod raft;
mod restapi;
mod schema;
mod scripts;
mod slots;
mod standby;
mod tags;
mod value;
mod watchdog;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

pub use bootstrap::Bootstrap;
pub use dynamic::{
    DEFAULT_LOOP_WAIT, DEFAULT_MAXIMUM_LAG_ON_FAILOVER, DEFAULT_PRIMARY_START_TIMEOUT,
    DEFAULT_RETRY_TIMEOUT, DEFAULT_SYNCHRONOUS_MODE, DEFAULT_SYNCHRONOUS_NODE_COUNT, DEFAULT_TTL,
    DynamicConfig, DynamicPostgresql, SynchronousMode, merge_patch,
};
pub use error::ConfigError;
pub use initdb::InitdbOption;
pub use log::{
    DEFAULT_LINE_FORMAT as DEFAULT_LOG_FORMAT, LineFormat, Log, LogFormat,
    format_fields_lenient as log_format_fields,
};
pub use methods::{
    BASEBACKUP, BootstrapMethod, CustomBootstrap, CustomReplicaMethod, ReplicaMethod,
};
pub use postgresql::{Authentication, DEFAULT_PG_CTL_TIMEOUT, Engine, LibpqOptions, Postgresql};
pub use raft::{
    DEFAULT_ELECTION_TIMEOUT_MAX, DEFAULT_ELECTION_TIMEOUT_MIN, DEFAULT_HEARTBEAT_INTERVAL, Raft,
};
pub use restapi::{Credentials, Ctl, RestApi, ServerTokens, VerifyClient};
pub use scripts::{Callbacks, ScriptCommand};
pub use slots::{
    ClusterType, DEFAULT_MEMBER_SLOTS_TTL, IgnoreSlot, PermanentSlot, SlotKind, check_slot_name,
};
pub use standby::StandbyCluster;
pub use watchdog::{DEFAULT_SAFETY_MARGIN, Watchdog, WatchdogDriver, WatchdogMode};

use value::Section;

/// Whole-document environment variables, in order of precedence.
const CONFIGURATION_VARS: [&str; 2] = ["TRIBUNE_CONFIGURATION", "PATRONI_CONFIGURATION"];

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub scope: String,
    pub name: crate::types::MemberName,
    /// Default `/service`.
    pub namespace: String,
    pub restapi: RestApi,
    pub ctl: Ctl,
    pub raft: Raft,
    pub bootstrap: Bootstrap,
    /// `None`: a witness, a Raft voter without a database.
    pub postgresql: Option<Postgresql>,
    /// As written; custom tags of any type are allowed.
    pub tags: crate::state::Tags,
    pub watchdog: Watchdog,
    pub log: Log,
    /// Dotted paths of the keys Patroni defines that Tribune does not act on, present in the
    /// file, sorted.
    pub ignored_keys: Vec<String>,
    /// The file or directory it was read from (`None`: the environment); a reload reads it
    /// again.
    pub source: Option<std::path::PathBuf>,
}

impl Config {
    /// Loads from a file or directory, or without a path from `TRIBUNE_CONFIGURATION` /
    /// `PATRONI_CONFIGURATION`, or from the environment alone; reads the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with an injected environment lookup.
    ///
    /// As Patroni: with a path, the file (or the `*.yml`/`*.yaml` files of a directory, merged in
    /// name order) plus the environment overrides; without one, the whole YAML of the
    /// `*_CONFIGURATION` variable and no other variables; otherwise the overrides alone.
    pub fn load_with_env(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if let Some(path) = path {
            let mut config = Self::build(read_path(path)?, env, true)?;
            config.source = Some(path.to_path_buf());
            return Ok(config);
        }
        let whole = CONFIGURATION_VARS
            .iter()
            .find_map(|var| env(var).filter(|v| !v.trim().is_empty()).map(|v| (*var, v)));
        match whole {
            Some((var, text)) => Self::build(parse_yaml(&text, var)?, env, false),
            None => Self::build(Value::Object(Map::new()), env, true),
        }
    }

    /// Parses one YAML document and applies the environment overrides.
    pub fn from_yaml_str(
        yaml: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Self::build(parse_yaml(yaml, "the configuration")?, env, true)
    }

    /// A witness votes in Raft but has no database.
    pub fn is_witness(&self) -> bool {
        self.postgresql.is_none()
    }

    /// The dynamic config to seed the cluster with: bootstrap.dcs as JSON (object; {} if absent).
    pub fn bootstrap_dcs(&self) -> &Value {
        &self.bootstrap.dcs
    }

    /// Each ignored key with the reason it does not apply to Tribune, when there is one.
    pub fn ignored_keys_explained(&self) -> Vec<String> {
        self.ignored_keys
            .iter()
            .map(|key| match schema::reason(key) {
                Some(why) => format!("{key} ({why})"),
                None => key.clone(),
            })
            .collect()
    }

    /// The one start-up warning naming the ignored keys, or `None` when there are none.
    pub fn ignored_keys_warning(&self) -> Option<String> {
        (!self.ignored_keys.is_empty()).then(|| {
            format!(
                "these Patroni settings are accepted but Tribune does not act on them: {}",
                self.ignored_keys_explained().join(", ")
            )
        })
    }

    fn build(
        mut doc: Value,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: bool,
    ) -> Result<Config, ConfigError> {
        let Value::Object(root) = &mut doc else {
            return Err(if doc.is_null() {
                ConfigError::general("the configuration is empty")
            } else {
                ConfigError::general(format!(
                    "the configuration must be a mapping of keys, got {}",
                    error::describe(&doc)
                ))
            });
        };
        let sources = if overrides {
            env::apply(root, env)
        } else {
            BTreeMap::new()
        };
        Self::from_root(root, env).map_err(|e| attribute(e, &sources))
    }

    fn from_root(
        root: &Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if let Some(dcs) = schema::UNSUPPORTED_DCS
            .iter()
            .find(|d| root.contains_key(**d))
        {
            return Err(ConfigError::at(
                *dcs,
                format!(
                    "`{dcs}` is not supported: Tribune's agents are their own coordination store; \
                     replace the `{dcs}:` section with `raft:` (self_addr, partner_addrs, data_dir)"
                ),
            ));
        }
        let ignored_keys = schema::ignored_keys(root)?;
        let top = Section::of_map("", root);
        let name = top.required_string("name", "this member's name, unique in the cluster")?;
        let scope = top.required_string("scope", "the cluster name")?;
        let namespace = top
            .string("namespace")?
            .unwrap_or_else(|| "/service".to_owned());
        let restapi = RestApi::parse(&top.section("restapi")?)?;
        let ctl = Ctl::parse(&top.section("ctl")?)?;
        let raft = Raft::parse(&top.section("raft")?)?;
        let bootstrap = Bootstrap::parse(&top.section("bootstrap")?)?;
        let pg = top.section("postgresql")?;
        let postgresql = if pg.is_present() {
            Some(Postgresql::parse(&pg, env("HOME").as_deref())?)
        } else {
            None
        };
        let tags = tags::parse(&top)?;
        if tags.nostream()
            && postgresql
                .as_ref()
                .is_some_and(|pg| pg.engine == Some(Engine::OpenGauss))
        {
            return Err(ConfigError::at(
                "tags.nostream",
                "not supported on openGauss: its standbys replicate only by streaming \
                 (replconninfo); remove the tag",
            ));
        }
        if let (Some(pg), Some(slot)) = (&postgresql, bootstrap.dynamic.slots.keys().next())
            && pg.engine == Some(Engine::OpenGauss)
        {
            return Err(ConfigError::at(
                format!("bootstrap.dcs.slots.{slot}"),
                "permanent replication slots are not supported on openGauss (its standbys \
                 make their own slots, and logical slots cannot be carried to them for a \
                 failover); remove `slots`",
            ));
        }
        Ok(Config {
            scope,
            name: crate::types::MemberName::new(name),
            namespace,
            restapi,
            ctl,
            raft,
            bootstrap,
            postgresql,
            tags,
            watchdog: Watchdog::parse(&top.section("watchdog")?)?,
            log: Log::parse(&top.section("log")?)?,
            ignored_keys,
            source: None,
        })
    }

    /// What a reload of `reloaded` changes in this running configuration: `tags`,
    /// `postgresql.parameters`, `postgresql.pg_hba` and the Raft peers' credentials
    /// (`raft.password`, `certfile`, `keyfile`, `keyfile_password`, `cafile`, which the caller
    /// hands to the Raft node) take effect at once; the returned keys
    /// changed too but need a restart of the agent, so the running configuration keeps them.
    /// `bootstrap` only matters before the cluster exists and is never reported.
    pub fn reload_from(&self, reloaded: &Config) -> (Config, Vec<&'static str>) {
        let mut live = self.clone();
        live.tags = reloaded.tags.clone();
        // The watchdog's timeout follows its safety margin at once (see node::lease).
        live.watchdog.safety_margin = reloaded.watchdog.safety_margin;
        live.raft.take_credentials_from(&reloaded.raft);
        if let (Some(running), Some(new)) = (&mut live.postgresql, &reloaded.postgresql) {
            running.parameters = new.parameters.clone();
            running.pg_hba = new.pg_hba.clone();
        }
        let mut needs_restart = Vec::new();
        let mut compare = |key: &'static str, same: bool| {
            if !same {
                needs_restart.push(key);
            }
        };
        compare("scope", self.scope == reloaded.scope);
        compare("name", self.name == reloaded.name);
        compare("namespace", self.namespace == reloaded.namespace);
        compare("restapi", self.restapi == reloaded.restapi);
        compare("ctl", self.ctl == reloaded.ctl);
        compare("raft", live.raft == reloaded.raft);
        compare("watchdog", live.watchdog == reloaded.watchdog);
        compare("log", self.log == reloaded.log);
        let rest_of_postgresql = reloaded.postgresql.clone().map(|mut p| {
            if let Some(running) = &live.postgresql {
                p.parameters = running.parameters.clone();
                p.pg_hba = running.pg_hba.clone();
            }
            p
        });
        compare("postgresql", live.postgresql == rest_of_postgresql);
        (live, needs_restart)
    }
}

/// Says which environment variable set the offending key, when one did.
fn attribute(mut e: ConfigError, sources: &BTreeMap<String, String>) -> ConfigError {
    if let Some(key) = &e.key {
        let from = sources.iter().find(|(k, _)| {
            key == *k || key.starts_with(&format!("{k}.")) || key.starts_with(&format!("{k}["))
        });
        if let Some((_, var)) = from {
            e.message = format!("{} (value from {var})", e.message);
        }
    }
    e
}

/// PyYAML-compatible reading: YAML 1.1 booleans (serde-saphyr's default), last duplicate
/// wins, and a number written with a leading zero kept as its text (`log.mode: 0640`, which
/// PyYAML reads as octal: the mode readers and PostgreSQL read the text as octal too; without
/// this it became the number 640).
fn parse_yaml(text: &str, origin: &str) -> Result<Value, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
    options.leading_zero_numbers_as_strings = true;
    serde_saphyr::from_str_with_options::<Value>(text, options)
        .map_err(|e| ConfigError::general(format!("cannot parse {origin} as YAML: {e}")))
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::general(format!("cannot read {}: {e}", path.display())))?;
    parse_yaml(&text, &path.display().to_string())
}

/// A file, or a directory whose `*.yml`/`*.yaml` files are merged in name order (later wins).
fn read_path(path: &Path) -> Result<Value, ConfigError> {
    if !path.is_dir() {
        return read_file(path);
    }
    let unreadable =
        |e: std::io::Error| ConfigError::general(format!("cannot read {}: {e}", path.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(unreadable)? {
        let file = entry.map_err(unreadable)?.path();
        let yaml = matches!(
            file.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        );
        if yaml && file.is_file() {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(ConfigError::general(format!(
            "no *.yml or *.yaml file in the directory {}",
            path.display()
        )));
    }
    files.sort();
    let mut merged = Value::Object(Map::new());
    for file in files {
        match read_file(&file)? {
            Value::Null => {}
            doc @ Value::Object(_) => merge(&mut merged, doc),
            other => {
                return Err(ConfigError::general(format!(
                    "{} must be a mapping of keys, got {}",
                    file.display(),
                    error::describe(&other)
                )));
            }
        }
    }
    Ok(merged)
}

/// Patroni's `patch_config`: mappings merge key by key, anything else replaces, and a null in
/// the later file removes the key.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(&key);
                } else if let Some(existing) = base.get_mut(&key) {
                    merge(existing, value);
                } else {
                    base.insert(key, value);
                }
            }
        }
        (base, patch) => *base = patch,
    }
}
