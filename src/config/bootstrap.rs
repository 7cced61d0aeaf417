//! `bootstrap`: what the first agent of a new cluster does. `dcs` seeds the cluster's dynamic
//! configuration (kept as written, so keys Tribune does not read survive into `/config`).

use serde_json::Value;

use super::dynamic::DynamicConfig;
use super::error::ConfigError;
use super::initdb::{self, InitdbOption};
use super::value::Section;

#[derive(Clone, Debug, PartialEq)]
pub struct Bootstrap {
    /// `bootstrap.dcs` as written (an object; `{}` when absent).
    pub dcs: Value,
    /// `dcs` parsed and validated.
    pub dynamic: DynamicConfig,
    pub initdb: Vec<InitdbOption>,
    /// Lines added to `pg_hba.conf` at bootstrap (`postgresql.pg_hba` takes precedence).
    pub pg_hba: Vec<String>,
}

impl Bootstrap {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Bootstrap, ConfigError> {
        let dcs_key = s.key("dcs");
        let dcs = match s.get("dcs") {
            None => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => return Err(ConfigError::wrong_type(dcs_key, "a mapping", other)),
        };
        let dynamic = DynamicConfig::parse(&Section::new(dcs_key, Some(&dcs))?)?;
        Ok(Bootstrap {
            dynamic,
            dcs,
            initdb: initdb::parse(&s.key("initdb"), s.get("initdb"), initdb::INITDB_RESERVED)?,
            pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
        })
    }
}
