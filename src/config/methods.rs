//! The ways a member's data directory gets filled other than by initdb or a plain base backup:
//! `postgresql.create_replica_methods` (with a section per custom method, such as
//! `postgresql.pgbackrest`), `postgresql.recovery_conf`, and `bootstrap.method` (with its
//! section `bootstrap.<method>`), read as Patroni reads them.
//!
//! Who uses it: the PostgreSQL adapter builds the commands (`instance::postgres::methods`); the
//! openGauss adapter refuses anything but the defaults. Nothing here runs a command.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ConfigError;
use super::scripts::ScriptCommand;
use super::value::{Section, as_text};

/// The built-in replica method: `pg_basebackup` from the member it copies, with
/// `postgresql.basebackup`'s options.
pub const BASEBACKUP: &str = "basebackup";

/// Keys of a custom method's section that steer the agent and are never passed to the command.
const REPLICA_RESERVED: &[&str] = &[
    "command",
    "keep_data",
    "no_leader",
    "no_master",
    "no_params",
];
const BOOTSTRAP_RESERVED: &[&str] = &[
    "command",
    "no_params",
    "keep_existing_recovery_conf",
    "recovery_conf",
    // Patroni passes these itself, so a section's own are dropped (as Patroni does).
    "scope",
    "datadir",
];

/// Recovery settings the agent writes from what it follows; a `recovery_conf` may not set them.
const AGENT_RECOVERY_KEYS: &[&str] = &["primary_conninfo", "primary_slot_name", "standby_mode"];

/// One entry of `postgresql.create_replica_methods`, tried in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaMethod {
    Basebackup,
    Custom(CustomReplicaMethod),
}

impl ReplicaMethod {
    pub fn name(&self) -> &str {
        match self {
            ReplicaMethod::Basebackup => BASEBACKUP,
            ReplicaMethod::Custom(m) => &m.name,
        }
    }
}

/// A replica method of the operator's (`postgresql.<name>`): a command that fills the data
/// directory, typically from a backup repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomReplicaMethod {
    pub name: String,
    /// `command`, else the method's name run as a program (as Patroni does).
    pub command: ScriptCommand,
    /// Leave what the data directory holds before the command runs and after it fails (a
    /// `pgbackrest --delta restore` reuses it).
    pub keep_data: bool,
    /// The method needs no running member (`no_leader`, Patroni's older `no_master`).
    pub no_leader: bool,
    /// Pass none of `--scope --role --datadir --connstring`.
    pub no_params: bool,
    /// Every other key of the section, passed as `--key=value`, in the section's order.
    pub options: Vec<(String, String)>,
}

/// `bootstrap.method`: how the first member makes the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BootstrapMethod {
    #[default]
    Initdb,
    Custom(CustomBootstrap),
}

/// A bootstrap method of the operator's (`bootstrap.<name>`): a command that restores a cluster
/// into the data directory, then recovery with `recovery_conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomBootstrap {
    pub name: String,
    pub command: ScriptCommand,
    /// Pass neither `--scope` nor `--datadir`.
    pub no_params: bool,
    /// Keep the recovery signal files and settings the command left (used when no
    /// `recovery_conf` is given).
    pub keep_existing_recovery_conf: bool,
    /// Recovery settings (`restore_command`, `recovery_target_time`, ...), written with
    /// `recovery.signal` before the restored cluster's first start.
    pub recovery_conf: BTreeMap<String, String>,
    pub options: Vec<(String, String)>,
}

/// `postgresql.create_replica_methods` and each custom method's section; the default is
/// `[basebackup]`.
pub(crate) fn replica_methods(s: &Section<'_>) -> Result<Vec<ReplicaMethod>, ConfigError> {
    let key = s.key("create_replica_methods");
    let names = match s.get("create_replica_methods") {
        None | Some(Value::Null) => return Ok(vec![ReplicaMethod::Basebackup]),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(name) if !name.trim().is_empty() => Ok(name.trim().to_owned()),
                other => Err(ConfigError::wrong_type(
                    format!("{key}[{i}]"),
                    "a method name",
                    other,
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ConfigError::wrong_type(
                key,
                "a list of method names",
                other,
            ));
        }
    };
    if names.is_empty() {
        return Err(ConfigError::at(
            key,
            "lists no method: give at least one (basebackup is the built-in one)",
        ));
    }
    let mut methods = Vec::new();
    for name in names {
        if methods.iter().any(|m: &ReplicaMethod| m.name() == name) {
            return Err(ConfigError::at(&key, format!("lists `{name}` twice")));
        }
        if name == BASEBACKUP {
            methods.push(ReplicaMethod::Basebackup);
            continue;
        }
        let section = s.section(&name)?;
        if !section.is_present() {
            return Err(ConfigError::at(
                &key,
                format!(
                    "names the method `{name}`, which is not built in (only basebackup is) and \
                     has no section `{}` with its command",
                    s.key(&name)
                ),
            ));
        }
        methods.push(ReplicaMethod::Custom(CustomReplicaMethod {
            command: command_or_name(&section, &name)?,
            keep_data: flag(&section, "keep_data")?,
            no_leader: flag(&section, "no_leader")? || flag(&section, "no_master")?,
            no_params: flag(&section, "no_params")?,
            options: options(&section, REPLICA_RESERVED)?,
            name,
        }));
    }
    Ok(methods)
}

/// `bootstrap.method` and its section; `initdb` (the default) is built in.
pub(crate) fn bootstrap_method(s: &Section<'_>) -> Result<BootstrapMethod, ConfigError> {
    let Some(name) = s.string("method")?.map(|n| n.trim().to_owned()) else {
        return Ok(BootstrapMethod::Initdb);
    };
    if name.is_empty() || name == "initdb" {
        return Ok(BootstrapMethod::Initdb);
    }
    let section = s.section(&name)?;
    if !section.is_present() {
        return Err(ConfigError::at(
            s.key("method"),
            format!(
                "names the method `{name}`, which is not built in (only initdb is) and has no \
                 section `{}` with its command",
                s.key(&name)
            ),
        ));
    }
    let command = ScriptCommand::parse(&section, "command")?.ok_or_else(|| {
        ConfigError::missing(
            section.key("command"),
            "the command that restores the cluster",
        )
    })?;
    Ok(BootstrapMethod::Custom(CustomBootstrap {
        command,
        no_params: flag(&section, "no_params")?,
        keep_existing_recovery_conf: flag(&section, "keep_existing_recovery_conf")?,
        recovery_conf: recovery_conf(&section, "recovery_conf")?,
        options: options(&section, BOOTSTRAP_RESERVED)?,
        name,
    }))
}

/// A `recovery_conf` mapping: setting -> value as text. The settings the agent writes itself
/// (`primary_conninfo`, ...) are refused: the agent's own would silently win.
pub(crate) fn recovery_conf(
    s: &Section<'_>,
    key: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(map) = s.object(key)? else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let full = format!("{}.{name}", s.key(key));
        if value.is_null() {
            continue;
        }
        if AGENT_RECOVERY_KEYS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::at(
                full,
                format!(
                    "`{name}` is written by the agent from the member this one follows; remove \
                     it from recovery_conf"
                ),
            ));
        }
        let text = as_text(value)
            .or_else(|| {
                value
                    .as_bool()
                    .map(|b| if b { "on" } else { "off" }.to_owned())
            })
            .ok_or_else(|| ConfigError::wrong_type(&full, "a setting's value", value))?;
        out.insert(name.clone(), text);
    }
    Ok(out)
}

fn command_or_name(section: &Section<'_>, name: &str) -> Result<ScriptCommand, ConfigError> {
    Ok(
        ScriptCommand::parse(section, "command")?.unwrap_or_else(|| ScriptCommand {
            text: name.to_owned(),
            argv: vec![name.to_owned()],
        }),
    )
}

fn flag(section: &Section<'_>, key: &str) -> Result<bool, ConfigError> {
    Ok(section.bool(key)?.unwrap_or(false))
}

/// The section's other keys as `--key=value` options, scalars only.
fn options(section: &Section<'_>, reserved: &[&str]) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(map) = section_map(section) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, value) in map {
        if reserved.contains(&name.as_str()) || value.is_null() {
            continue;
        }
        let text = as_text(value)
            .or_else(|| value.as_bool().map(|b| b.to_string()))
            .ok_or_else(|| {
                ConfigError::wrong_type(
                    section.key(name),
                    "a value passed to the command as --key=value",
                    value,
                )
            })?;
        out.push((name.clone(), text));
    }
    Ok(out)
}

fn section_map<'a>(section: &Section<'a>) -> Option<&'a serde_json::Map<String, Value>> {
    section.as_map()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn replica(doc: Value) -> Result<Vec<ReplicaMethod>, ConfigError> {
        replica_methods(&Section::new("postgresql", Some(&doc)).unwrap())
    }

    fn boot(doc: Value) -> Result<BootstrapMethod, ConfigError> {
        bootstrap_method(&Section::new("bootstrap", Some(&doc)).unwrap())
    }

    #[test]
    fn replica_methods_default_to_basebackup_and_read_each_section() {
        assert_eq!(replica(json!({})).unwrap(), vec![ReplicaMethod::Basebackup]);
        let methods = replica(json!({
            "create_replica_methods": ["pgbackrest", "basebackup"],
            "pgbackrest": {"command": "/usr/bin/pgbackrest --stanza=main --delta restore",
                           "keep_data": true, "no_params": "true", "no_master": true,
                           "type": "standby", "process-max": 4}
        }))
        .unwrap();
        let ReplicaMethod::Custom(m) = &methods[0] else {
            panic!("{methods:?}")
        };
        assert_eq!(m.name, "pgbackrest");
        assert_eq!(
            m.command.argv,
            ["/usr/bin/pgbackrest", "--stanza=main", "--delta", "restore"]
        );
        assert!(m.keep_data && m.no_params && m.no_leader);
        assert_eq!(
            m.options,
            [
                ("type".to_owned(), "standby".to_owned()),
                ("process-max".to_owned(), "4".to_owned())
            ]
        );
        assert_eq!(methods[1], ReplicaMethod::Basebackup);
        // A section without a command runs the method's name, as in Patroni.
        let methods = replica(json!({"create_replica_methods": "wal_e", "wal_e": {"x": "y"}}));
        let ReplicaMethod::Custom(m) = &methods.unwrap()[0] else {
            panic!()
        };
        assert_eq!(m.command.argv, ["wal_e"]);
    }

    #[test]
    fn bad_replica_methods_name_the_key() {
        let cases = [
            (
                json!({"create_replica_methods": ["pgbackrest"]}),
                "postgresql.create_replica_methods",
                "`pgbackrest`",
            ),
            (
                json!({"create_replica_methods": []}),
                "postgresql.create_replica_methods",
                "at least one",
            ),
            (
                json!({"create_replica_methods": [1]}),
                "postgresql.create_replica_methods[0]",
                "method name",
            ),
            (
                json!({"create_replica_methods": ["basebackup", "basebackup"]}),
                "postgresql.create_replica_methods",
                "twice",
            ),
            (
                json!({"create_replica_methods": ["b"], "b": {"keep_data": "maybe"}}),
                "postgresql.b.keep_data",
                "",
            ),
            (
                json!({"create_replica_methods": ["b"], "b": {"x": [1]}}),
                "postgresql.b.x",
                "--key=value",
            ),
        ];
        for (doc, key, hint) in cases {
            let err = replica(doc.clone()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
            assert!(err.to_string().contains(hint), "{err}");
        }
    }

    #[test]
    fn bootstrap_method_reads_its_section() {
        assert_eq!(boot(json!({})).unwrap(), BootstrapMethod::Initdb);
        assert_eq!(
            boot(json!({"method": "initdb"})).unwrap(),
            BootstrapMethod::Initdb
        );
        let m = boot(json!({"method": "restore", "restore": {
            "command": "restore.sh --from backups",
            "keep_existing_recovery_conf": true,
            "scope": "dropped",
            "set": "20260101",
            "recovery_conf": {"restore_command": "cp /a/%f %p",
                              "recovery_target_time": "2026-12-07 12:00:00+00",
                              "recovery_target_inclusive": false}
        }}))
        .unwrap();
        let BootstrapMethod::Custom(m) = m else {
            panic!()
        };
        assert_eq!(m.command.argv, ["restore.sh", "--from", "backups"]);
        assert!(m.keep_existing_recovery_conf && !m.no_params);
        assert_eq!(m.options, [("set".to_owned(), "20260101".to_owned())]);
        assert_eq!(m.recovery_conf["recovery_target_inclusive"], "off");
        assert_eq!(m.recovery_conf["restore_command"], "cp /a/%f %p");
    }

    #[test]
    fn bad_bootstrap_methods_name_the_key() {
        let cases = [
            (json!({"method": "wal_e"}), "bootstrap.method"),
            (
                json!({"method": "r", "r": {"no_params": true}}),
                "bootstrap.r.command",
            ),
            (
                json!({"method": "r", "r": {"command": "x", "recovery_conf": {"primary_conninfo": "h"}}}),
                "bootstrap.r.recovery_conf.primary_conninfo",
            ),
            (
                json!({"method": "r", "r": {"command": "x", "recovery_conf": "restore"}}),
                "bootstrap.r.recovery_conf",
            ),
        ];
        for (doc, key) in cases {
            let err = boot(doc.clone()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
        }
    }
}
