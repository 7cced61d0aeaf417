//! `log`: Patroni's logging section. `level`, `type` (plain or json), `format` (Python's
//! `%(field)s` format; for json also a list of fields, each a name or `{name: renamed}`),
//! `dateformat` (strftime), `static_fields` (json), `dir` with `file_size`, `file_num` and
//! `mode` (a rotated `patroni.log`), `loggers` (levels per log target) and
//! `deduplicate_heartbeat_logs`. `traceback_level` and `max_queue_size` concern Patroni's Python
//! runtime and are named as such in the start-up warning (`schema.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::error::ConfigError;
use super::value::{Section, as_text};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// Patroni's default `log.format`.
pub const DEFAULT_LINE_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";
/// Patroni's default `log.file_size`: 25 MB.
pub const DEFAULT_FILE_SIZE: u64 = 25_000_000;
/// Patroni's default `log.file_num`.
pub const DEFAULT_FILE_NUM: usize = 4;

/// `log.format`: a Python `%`-format string, or (json) the fields to emit, each with the key it
/// is written under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineFormat {
    Text(String),
    Fields(Vec<(String, String)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    /// Upper-cased Python level name: DEBUG, INFO, WARNING, ERROR, CRITICAL (and WARN, FATAL).
    pub level: String,
    /// From `log.type`.
    pub format: LogFormat,
    /// From `log.format`.
    pub line_format: LineFormat,
    /// strftime format of `%(asctime)s`; `None`: Python's `2026-11-24 18:45:48,490`.
    pub dateformat: Option<String>,
    /// Added to every json line.
    pub static_fields: BTreeMap<String, Value>,
    /// Set: write `patroni.log` in this directory, rotated, instead of standard error.
    pub dir: Option<PathBuf>,
    /// Permissions of the log file (`0o640`); `None`: the process umask decides.
    pub mode: Option<u32>,
    /// Rotate once the file passes this many bytes; 0 never rotates.
    pub file_size: u64,
    /// How many rotated files to keep (`patroni.log.1` ... `patroni.log.N`).
    pub file_num: usize,
    /// Level per log target (`openraft: WARNING`, `tribune::node: DEBUG`; Python's dotted names
    /// are read as Rust paths).
    pub loggers: BTreeMap<String, String>,
    /// Log the HA loop's unchanged "no action" sentence once, not every loop (Tribune's default:
    /// its loop runs every second; Patroni's default is false).
    pub deduplicate_heartbeat_logs: bool,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "INFO".to_owned(),
            format: LogFormat::Plain,
            line_format: LineFormat::Text(DEFAULT_LINE_FORMAT.to_owned()),
            dateformat: None,
            static_fields: BTreeMap::new(),
            dir: None,
            mode: None,
            file_size: DEFAULT_FILE_SIZE,
            file_num: DEFAULT_FILE_NUM,
            loggers: BTreeMap::new(),
            deduplicate_heartbeat_logs: true,
        }
    }
}

const LEVELS: [&str; 8] = [
    "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL", "NOTSET",
];

fn level_name(key: String, text: &str) -> Result<String, ConfigError> {
    let upper = text.trim().to_ascii_uppercase();
    if !LEVELS.contains(&upper.as_str()) {
        return Err(ConfigError::at(
            key,
            format!("expected one of {}, got {text:?}", LEVELS.join(", ")),
        ));
    }
    Ok(upper)
}

/// The fields a format may name (Python's `LogRecord` attributes Tribune can fill).
pub const FIELDS: [&str; 15] = [
    "asctime",
    "created",
    "filename",
    "funcName",
    "levelname",
    "levelno",
    "lineno",
    "message",
    "module",
    "msecs",
    "name",
    "pathname",
    "process",
    "thread",
    "threadName",
];

/// The `%(field)...` references of a Python format string, in order; an unknown field is an
/// error naming it.
pub fn format_fields(key: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("%(") {
        let after = &rest[at + 2..];
        let Some(close) = after.find(')') else {
            return Err(ConfigError::at(key, format!("unclosed `%(` in {text:?}")));
        };
        let field = &after[..close];
        if !FIELDS.contains(&field) {
            return Err(ConfigError::at(
                key,
                format!(
                    "unknown log record field `{field}`; known: {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        out.push(field.to_owned());
        rest = &after[close + 1..];
    }
    Ok(out)
}

/// The fields of a format string already checked by [`format_fields`].
pub fn format_fields_lenient(text: &str) -> Vec<String> {
    format_fields("log.format", text).unwrap_or_default()
}

fn line_format(s: &Section<'_>) -> Result<LineFormat, ConfigError> {
    let key = s.key("format");
    match s.get("format") {
        None | Some(Value::Null) => Ok(LineFormat::Text(DEFAULT_LINE_FORMAT.to_owned())),
        Some(Value::String(text)) => {
            format_fields(&key, text)?;
            Ok(LineFormat::Text(text.clone()))
        }
        Some(Value::Array(items)) => {
            let mut fields = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let mut push = |field: &str, renamed: &str| -> Result<(), ConfigError> {
                    if !FIELDS.contains(&field) {
                        return Err(ConfigError::at(
                            &at,
                            format!(
                                "unknown log record field `{field}`; known: {}",
                                FIELDS.join(", ")
                            ),
                        ));
                    }
                    fields.push((field.to_owned(), renamed.to_owned()));
                    Ok(())
                };
                match item {
                    Value::String(field) => push(field, field)?,
                    Value::Object(map) => {
                        for (field, renamed) in map {
                            let Value::String(renamed) = renamed else {
                                return Err(ConfigError::wrong_type(
                                    format!("{at}.{field}"),
                                    "the name to write the field under",
                                    renamed,
                                ));
                            };
                            push(field, renamed)?;
                        }
                    }
                    other => {
                        return Err(ConfigError::wrong_type(
                            at,
                            "a field name or {field: renamed}",
                            other,
                        ));
                    }
                }
            }
            Ok(LineFormat::Fields(fields))
        }
        Some(other) => Err(ConfigError::wrong_type(
            key,
            "a format string or a list of fields",
            other,
        )),
    }
}

impl Log {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Log, ConfigError> {
        let d = Log::default();
        let level = match s.string("level")? {
            None => d.level,
            Some(text) => level_name(s.key("level"), &text)?,
        };
        let format = match s.string("type")?.as_deref().map(str::trim) {
            None | Some("plain") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::at(
                    s.key("type"),
                    format!("expected plain or json, got {other:?}"),
                ));
            }
        };
        let line_format = line_format(s)?;
        if format == LogFormat::Plain && matches!(line_format, LineFormat::Fields(_)) {
            return Err(ConfigError::at(
                s.key("format"),
                "a list of fields is for `type: json`; a plain log takes a format string",
            ));
        }
        let static_fields = s
            .object("static_fields")?
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mode = match s.get("mode") {
            None | Some(Value::Null) => None,
            Some(v) => Some(file_mode(&s.key("mode"), v)?),
        };
        let mut loggers = BTreeMap::new();
        if let Some(map) = s.object("loggers")? {
            for (target, value) in map {
                let key = format!("{}.{target}", s.key("loggers"));
                let text = as_text(value)
                    .ok_or_else(|| ConfigError::wrong_type(&key, "a level name", value))?;
                loggers.insert(target.clone(), level_name(key, &text)?);
            }
        }
        Ok(Log {
            level,
            format,
            line_format,
            dateformat: s.string("dateformat")?.filter(|f| !f.is_empty()),
            static_fields,
            dir: s.path_buf("dir")?,
            mode,
            file_size: s
                .integer("file_size", 0, i64::MAX)?
                .map_or(d.file_size, |n| n as u64),
            file_num: s
                .integer("file_num", 0, 10_000)?
                .map_or(d.file_num, |n| n as usize),
            loggers,
            deduplicate_heartbeat_logs: s
                .bool("deduplicate_heartbeat_logs")?
                .unwrap_or(d.deduplicate_heartbeat_logs),
        })
    }
}

/// `log.mode`: Patroni reads it with `parse_int`, so `0640`, `"0o640"` and `416` all mean
/// rw-r-----. A YAML integer written with a leading zero is octal in YAML 1.1 already.
fn file_mode(key: &str, v: &Value) -> Result<u32, ConfigError> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => {
            let t = text.trim();
            let octal = t
                .strip_prefix("0o")
                .or_else(|| t.strip_prefix("0O"))
                .or_else(|| t.strip_prefix('0').filter(|r| !r.is_empty()));
            match octal {
                Some(digits) => u64::from_str_radix(digits, 8).ok(),
                None => t.parse().ok(),
            }
        }
        _ => None,
    };
    parsed
        .filter(|m| *m <= 0o777)
        .map(|m| m as u32)
        .ok_or_else(|| ConfigError::wrong_type(key, "file permissions such as 0640", v))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(doc: Value) -> Result<Log, ConfigError> {
        Log::parse(&Section::new("log", Some(&doc)).unwrap())
    }

    #[test]
    fn every_key_is_read() {
        let log = parse(json!({
            "level": "debug", "type": "json",
            "format": ["asctime", {"levelname": "level"}, "message"],
            "dateformat": "%Y-%m-%dT%H:%M:%S", "static_fields": {"app": "tribune"},
            "dir": "/var/log/tribune", "mode": "0640", "file_size": 1000, "file_num": 2,
            "loggers": {"openraft": "warning"}, "deduplicate_heartbeat_logs": false
        }))
        .unwrap();
        assert_eq!(log.level, "DEBUG");
        assert_eq!(log.format, LogFormat::Json);
        assert_eq!(
            log.line_format,
            LineFormat::Fields(vec![
                ("asctime".into(), "asctime".into()),
                ("levelname".into(), "level".into()),
                ("message".into(), "message".into()),
            ])
        );
        assert_eq!(log.dateformat.as_deref(), Some("%Y-%m-%dT%H:%M:%S"));
        assert_eq!(log.static_fields["app"], json!("tribune"));
        assert_eq!(log.dir, Some(PathBuf::from("/var/log/tribune")));
        assert_eq!(log.mode, Some(0o640));
        assert_eq!((log.file_size, log.file_num), (1000, 2));
        assert_eq!(log.loggers["openraft"], "WARNING");
        assert!(!log.deduplicate_heartbeat_logs);
        let d = parse(json!({})).unwrap();
        assert_eq!(d, Log::default());
        assert_eq!(parse(json!({"mode": 416})).unwrap().mode, Some(0o640));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (doc, key) in [
            (json!({"level": "LOUD"}), "log.level"),
            (json!({"type": "xml"}), "log.type"),
            (json!({"format": "%(asctime)s %(nope)s"}), "log.format"),
            (json!({"format": ["message"]}), "log.format"),
            (
                json!({"type": "json", "format": ["bogus"]}),
                "log.format[0]",
            ),
            (json!({"mode": "rwx"}), "log.mode"),
            (json!({"file_size": -1}), "log.file_size"),
            (
                json!({"loggers": {"openraft": "LOUD"}}),
                "log.loggers.openraft",
            ),
        ] {
            let err = parse(doc.clone()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
        }
    }
}
