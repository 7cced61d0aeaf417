//! `log`: the level and the output format. Patroni's other logging keys (files, rotation,
//! per-module levels) are accepted and reported as ignored.

use super::error::ConfigError;
use super::value::Section;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Log {
    /// Upper-cased Python level name: DEBUG, INFO, WARNING, ERROR, CRITICAL (and WARN, FATAL).
    pub level: String,
    /// From `log.type`.
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "INFO".to_owned(),
            format: LogFormat::Plain,
        }
    }
}

const LEVELS: [&str; 7] = [
    "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
];

impl Log {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Log, ConfigError> {
        let level = match s.string("level")? {
            None => Log::default().level,
            Some(level) => {
                let upper = level.trim().to_ascii_uppercase();
                if !LEVELS.contains(&upper.as_str()) {
                    return Err(ConfigError::at(
                        s.key("level"),
                        format!("expected one of {}, got {level:?}", LEVELS.join(", ")),
                    ));
                }
                upper
            }
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
        Ok(Log { level, format })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn level_and_type() {
        let doc = json!({"level": "debug", "type": "json"});
        let log = Log::parse(&Section::new("log", Some(&doc)).unwrap()).unwrap();
        assert_eq!(log.level, "DEBUG");
        assert_eq!(log.format, LogFormat::Json);
        for (doc, key) in [
            (json!({"level": "LOUD"}), "log.level"),
            (json!({"type": "xml"}), "log.type"),
        ] {
            let err = Log::parse(&Section::new("log", Some(&doc)).unwrap()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key));
        }
    }
}
