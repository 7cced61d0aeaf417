//! `bootstrap`: what the first agent of a new cluster does. `dcs` seeds the cluster's dynamic
//! configuration (kept as written, so keys Tribune does not read survive into `/config`),
//! except the local-only keys of `dcs.postgresql`, which Patroni drops too: among them
//! `authentication`, whose passwords `GET /config` would otherwise show to anyone.

use serde_json::Value;

use super::dynamic::DynamicConfig;
use super::error::ConfigError;
use super::initdb::{self, InitdbOption};
use super::methods::{self, BootstrapMethod};
use super::scripts::ScriptCommand;
use super::value::Section;

/// Keys of `bootstrap.dcs.postgresql` that only mean something in a member's own file
/// (Patroni's `_safe_copy_dynamic_configuration` drops the same ones).
const LOCAL_ONLY: &[&str] = &[
    "connect_address",
    "proxy_address",
    "listen",
    "config_dir",
    "data_dir",
    "pgpass",
    "authentication",
];

#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    /// `bootstrap.dcs` as written (an object; `{}` when absent).
    pub dcs: Value,
    /// `dcs` parsed and validated.
    pub dynamic: DynamicConfig,
    pub initdb: Vec<InitdbOption>,
    /// Lines added to `pg_hba.conf` at bootstrap (`postgresql.pg_hba` takes precedence).
    pub pg_hba: Vec<String>,
    /// `post_bootstrap` (Patroni's older name: `post_init`): run once after initdb with a
    /// superuser connection string; a failure aborts the bootstrap.
    pub post_bootstrap: Option<ScriptCommand>,
    /// `method`: initdb (the default) or a custom restore from its section.
    pub method: BootstrapMethod,
}

impl Bootstrap {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Bootstrap, ConfigError> {
        let dcs_key = s.key("dcs");
        let mut dcs = match s.get("dcs") {
            None => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => return Err(ConfigError::wrong_type(dcs_key, "a mapping", other)),
        };
        if let Some(Value::Object(postgresql)) = dcs.get_mut("postgresql") {
            for key in LOCAL_ONLY {
                postgresql.remove(*key);
            }
        }
        let dynamic = DynamicConfig::parse(&Section::new(dcs_key, Some(&dcs))?)?;
        Ok(Bootstrap {
            dynamic,
            dcs,
            initdb: initdb::parse(&s.key("initdb"), s.get("initdb"), initdb::INITDB_RESERVED)?,
            pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
            method: methods::bootstrap_method(s)?,
            post_bootstrap: match ScriptCommand::parse(s, "post_bootstrap")? {
                Some(command) => Some(command),
                None => ScriptCommand::parse(s, "post_init")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn local_only_postgresql_keys_never_reach_the_dynamic_configuration() {
        let doc = json!({"dcs": {"ttl": 30, "unknown": 1, "postgresql": {
            "use_pg_rewind": true,
            "authentication": {"superuser": {"username": "postgres", "password": "dcs-s3cret"}},
            "pgpass": "/tmp/p", "listen": "*:5432", "data_dir": "/d"
        }}});
        let b = Bootstrap::parse(&Section::new("bootstrap", Some(&doc)).unwrap()).unwrap();
        assert_eq!(
            b.dcs,
            json!({"ttl": 30, "unknown": 1, "postgresql": {"use_pg_rewind": true}})
        );
        assert!(!b.dcs.to_string().contains("dcs-s3cret"));
    }
}
