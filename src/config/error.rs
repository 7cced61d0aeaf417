//! The one error type of the configuration layer. Every error names the key it is about (a dotted
//! path such as `postgresql.data_dir`) when there is one, so that an operator can fix the file
//! from the message alone.

use serde_json::Value;

/// A configuration that cannot be used. The caller prints it and exits non-zero before touching
/// any data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("config error{}: {message}", .key.as_ref().map(|k| format!(" at `{k}`")).unwrap_or_default())]
pub struct ConfigError {
    /// The dotted path of the offending key, e.g. `bootstrap.dcs.ttl`.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error about one key.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// An error about the configuration as a whole (unreadable file, empty document...).
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            key: None,
            message: message.into(),
        }
    }

    /// A required key that is absent (or null).
    pub(crate) fn missing(key: impl Into<String>, what: &str) -> Self {
        Self::at(key, format!("required key is missing: {what}"))
    }

    /// A key whose value has the wrong type or form.
    pub(crate) fn wrong_type(key: impl Into<String>, expected: &str, got: &Value) -> Self {
        Self::at(key, format!("expected {expected}, got {}", describe(got)))
    }
}

/// How a value reads in an error message: `the string "abc"`, `the number 5`, `a list`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_key_when_there_is_one() {
        assert_eq!(
            ConfigError::at("restapi.listen", "bad").to_string(),
            "config error at `restapi.listen`: bad"
        );
        assert_eq!(
            ConfigError::general("empty").to_string(),
            "config error: empty"
        );
    }
}
