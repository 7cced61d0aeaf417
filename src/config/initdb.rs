//! Command-line options for `initdb` (`bootstrap.initdb`) and `pg_basebackup`
//! (`postgresql.basebackup`), written as Patroni accepts them: a list of flags and one-key
//! mappings (`[data-checksums, {encoding: UTF8}]`) or a mapping (`{checkpoint: fast}`).

use serde_json::Value;

use super::error::ConfigError;
use super::value::as_text;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitdbOption {
    /// `--name`
    Flag(String),
    /// `--name=value`
    Value(String, String),
}

impl InitdbOption {
    /// The command-line argument: `--data-checksums`, `--encoding=UTF8`.
    pub fn to_arg(&self) -> String {
        match self {
            InitdbOption::Flag(name) => format!("--{name}"),
            InitdbOption::Value(name, value) => format!("--{name}={value}"),
        }
    }

    fn name(&self) -> &str {
        match self {
            InitdbOption::Flag(name) | InitdbOption::Value(name, _) => name,
        }
    }
}

/// Options the agent sets itself, as in Patroni (`pgdata`, ...), are refused.
pub(crate) const INITDB_RESERVED: &[&str] = &["pgdata", "nosync", "pwfile", "sync-only", "version"];
pub(crate) const BASEBACKUP_RESERVED: &[&str] = &[
    "pgdata",
    "format",
    "wal-method",
    "write-recovery-conf",
    "version",
];

/// Parses the options at dotted `key`; `None` value = no options.
pub(crate) fn parse(
    key: &str,
    value: Option<&Value>,
    reserved: &[&str],
) -> Result<Vec<InitdbOption>, ConfigError> {
    let clean = |name: &str| name.trim().trim_start_matches('-').to_owned();
    let pair = |item_key: &str, name: &str, v: &Value| -> Result<InitdbOption, ConfigError> {
        let text = as_text(v)
            .or_else(|| v.as_bool().map(|b| b.to_string()))
            .ok_or_else(|| ConfigError::wrong_type(item_key, "an option value (string)", v))?;
        Ok(InitdbOption::Value(clean(name), text))
    };
    let options = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, v)| pair(&format!("{key}.{name}"), name, v))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_key = format!("{key}[{i}]");
                match item {
                    Value::String(flag) if !flag.trim().is_empty() => {
                        Ok(InitdbOption::Flag(clean(flag)))
                    }
                    Value::Object(map) if map.len() == 1 => {
                        let (name, v) = map.iter().next().expect("one entry");
                        pair(&item_key, name, v)
                    }
                    other => Err(ConfigError::wrong_type(
                        item_key,
                        "a flag (`data-checksums`) or a one-key mapping (`encoding: UTF8`)",
                        other,
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ConfigError::wrong_type(
                key,
                "a list of options or a mapping of option: value",
                other,
            ));
        }
    };
    if let Some(bad) = options.iter().find(|o| reserved.contains(&o.name())) {
        return Err(ConfigError::at(
            key,
            format!(
                "the option `{}` is set by the agent itself and is not allowed here",
                bad.name()
            ),
        ));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lists_and_mappings_become_arguments() {
        let list = json!(["data-checksums", {"encoding": "UTF8"}, {"locale": "en_US.UTF-8"}]);
        let args: Vec<String> = parse("bootstrap.initdb", Some(&list), INITDB_RESERVED)
            .unwrap()
            .iter()
            .map(InitdbOption::to_arg)
            .collect();
        assert_eq!(
            args,
            [
                "--data-checksums",
                "--encoding=UTF8",
                "--locale=en_US.UTF-8"
            ]
        );

        let map = json!({"checkpoint": "fast", "max-rate": "100M"});
        let opts = parse("postgresql.basebackup", Some(&map), BASEBACKUP_RESERVED).unwrap();
        assert_eq!(
            opts,
            vec![
                InitdbOption::Value("checkpoint".into(), "fast".into()),
                InitdbOption::Value("max-rate".into(), "100M".into()),
            ]
        );
        assert!(parse("k", None, &[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_or_reserved_options_are_errors() {
        let cases = [
            (json!([{"a": "1", "b": "2"}]), "bootstrap.initdb[0]"),
            (json!([5]), "bootstrap.initdb[0]"),
            (json!("data-checksums"), "bootstrap.initdb"),
            (json!(["pgdata"]), "bootstrap.initdb"),
            (json!([{"pgdata": "/x"}]), "bootstrap.initdb"),
        ];
        for (doc, key) in cases {
            let err = parse("bootstrap.initdb", Some(&doc), INITDB_RESERVED).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
        }
    }
}
