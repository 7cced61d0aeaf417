//! The pure part of `edit-config`: `-s key.path=value` and `-p guc=value` assignments, merging
//! an `--apply` document, and the JSON merge patch (RFC 7386) that turns the configuration read
//! into the one the operator approved, sent as `PATCH /config`.
//!
//! Rules (patronictl's): a value is parsed as YAML (`-s ttl=30` is a number, `-s pause=on` a
//! boolean); `null` removes the key, and a mapping left empty by a removal goes too; a
//! PostgreSQL parameter name may contain dots (`pg_stat_statements.track`), so below
//! `postgresql.parameters` the rest of the path is one key.

use serde_json::{Map, Value};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("Invalid parameter setting {0}")]
    NoEquals(String),
    #[error("Invalid parameter setting {0}: an empty key")]
    EmptyKey(String),
    #[error("Invalid parameter setting {setting}: the value is not YAML: {reason}")]
    BadValue { setting: String, reason: String },
}

/// `key.path=value` as the path's parts and the YAML-parsed value.
pub fn parse_setting(setting: &str) -> Result<(Vec<String>, Value), EditError> {
    let Some((key, value)) = setting.split_once('=') else {
        return Err(EditError::NoEquals(setting.to_owned()));
    };
    let parts: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(EditError::EmptyKey(setting.to_owned()));
    }
    let value = super::yaml::parse(value).map_err(|e| EditError::BadValue {
        setting: setting.to_owned(),
        reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
    })?;
    Ok((parts, value))
}

/// Sets (or with `null` removes) `path` in `config`, creating mappings on the way and removing
/// those a removal leaves empty.
pub fn set_path(config: &mut Value, path: &[String], value: Value) {
    set_below(config, path, value, &[]);
}

fn set_below(config: &mut Value, path: &[String], value: Value, above: &[&str]) {
    if !config.is_object() {
        *config = Value::Object(Map::new());
    }
    let Value::Object(map) = config else {
        return;
    };
    let joined;
    let path: &[String] = if above == ["postgresql", "parameters"] && path.len() > 1 {
        joined = [path.join(".")];
        &joined
    } else {
        path
    };
    let (key, rest) = (&path[0], &path[1..]);
    if rest.is_empty() {
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.clone(), value);
        }
        return;
    }
    let child = map.entry(key.clone()).or_insert(Value::Null);
    let mut here: Vec<&str> = above.to_vec();
    here.push(key);
    set_below(child, rest, value, &here);
    if child.as_object().is_some_and(Map::is_empty) {
        map.remove(key);
    }
}

/// `patch` merged into `config` (RFC 7386), as the server merges `PATCH /config`.
pub use crate::config::merge_patch as merge;

/// The merge patch that turns `from` into `to` (both mappings): changed and new keys with their
/// new values, removed keys as `null`, nested mappings patched key by key.
pub fn merge_patch(from: &Map<String, Value>, to: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in from.keys().filter(|k| !to.contains_key(*k)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, new) in to {
        match (from.get(key), new) {
            (Some(old), new) if old == new => {}
            (Some(Value::Object(old)), Value::Object(new)) => {
                patch.insert(key.clone(), Value::Object(merge_patch(old, new)));
            }
            _ => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(config: &mut Value, setting: &str) {
        let (path, value) = parse_setting(setting).unwrap();
        set_path(config, &path, value);
    }

    #[test]
    fn settings_parse_their_values_as_yaml() {
        assert_eq!(
            parse_setting("ttl=30").unwrap(),
            (vec!["ttl".to_owned()], json!(30))
        );
        assert_eq!(
            parse_setting(" postgresql.use_slots =on").unwrap(),
            (vec!["postgresql".into(), "use_slots".into()], json!(true))
        );
        assert_eq!(
            parse_setting("a=b=c").unwrap(),
            (vec!["a".to_owned()], json!("b=c"))
        );
        assert_eq!(parse_setting("a='30'").unwrap().1, json!("30"));
        assert_eq!(parse_setting("a=").unwrap().1, Value::Null);
        assert_eq!(parse_setting("ttl"), Err(EditError::NoEquals("ttl".into())));
        assert_eq!(
            parse_setting("a..b=1"),
            Err(EditError::EmptyKey("a..b=1".into()))
        );
        assert!(matches!(
            parse_setting("a=[1, 2"),
            Err(EditError::BadValue { .. })
        ));
    }

    #[test]
    fn setting_and_removing_paths() {
        let mut config = json!({"ttl": 30, "postgresql": {"use_slots": true}});
        set(&mut config, "loop_wait=5");
        set(&mut config, "postgresql.parameters.max_connections=150");
        set(
            &mut config,
            "postgresql.parameters.pg_stat_statements.track=all",
        );
        set(&mut config, "ttl=null");
        assert_eq!(
            config,
            json!({"postgresql": {"use_slots": true, "parameters":
                {"max_connections": 150, "pg_stat_statements.track": "all"}}, "loop_wait": 5})
        );
        set(&mut config, "postgresql.parameters.max_connections=null");
        set(
            &mut config,
            "postgresql.parameters.pg_stat_statements.track=null",
        );
        assert_eq!(
            config,
            json!({"postgresql": {"use_slots": true}, "loop_wait": 5}),
            "an emptied mapping goes"
        );
        set(&mut config, "loop_wait.deeper=1");
        assert_eq!(config["loop_wait"], json!({"deeper": 1}));
        set(&mut config, "nothing.here=null");
        assert!(config.get("nothing").is_none());
    }

    #[test]
    fn applying_a_document() {
        let mut config = json!({"ttl": 30, "postgresql": {"parameters": {"a": 1, "b": 2}}});
        merge(
            &mut config,
            &json!({"ttl": 20, "postgresql": {"parameters": {"a": null, "c": 3}}}),
        );
        assert_eq!(
            config,
            json!({"ttl": 20, "postgresql": {"parameters": {"b": 2, "c": 3}}})
        );
    }

    #[test]
    fn a_merge_patch_turns_one_configuration_into_the_other() {
        let from = json!({"ttl": 30, "loop_wait": 10, "postgresql": {"use_slots": true,
            "parameters": {"a": 1, "b": 2}, "pg_hba": ["x"]}, "gone": {"k": 1}});
        let to = json!({"ttl": 30, "loop_wait": 5, "postgresql": {"use_slots": true,
            "parameters": {"b": 2, "c": 3}, "pg_hba": ["x", "y"]}, "new": {"k": 1}});
        let patch = merge_patch(from.as_object().unwrap(), to.as_object().unwrap());
        assert_eq!(
            Value::Object(patch.clone()),
            json!({"gone": null, "loop_wait": 5, "postgresql": {"parameters": {"a": null, "c": 3},
                "pg_hba": ["x", "y"]}, "new": {"k": 1}})
        );
        let mut applied = from.clone();
        merge(&mut applied, &Value::Object(patch));
        assert_eq!(applied, to);
        assert!(merge_patch(to.as_object().unwrap(), to.as_object().unwrap()).is_empty());
    }
}
