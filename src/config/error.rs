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
    /// A value of the wrong type. The value is quoted, except under a key that holds a
    /// secret (`password`, `keyfile_password`, ...): an error message must never show one.
    pub(crate) fn wrong_type(key: impl Into<String>, expected: &str, got: &Value) -> Self {
        let key = key.into();
        let got = if is_secret_key(&key) {
            describe_kind(got)
        } else {
            describe(got)
        };
        Self::at(key, format!("expected {expected}, got {got}"))
    }
}

/// Whether the dotted `key` names a secret (its last part mentions a password).
pub(crate) fn is_secret_key(key: &str) -> bool {
    key.rsplit('.')
        .next()
        .is_some_and(|last| last.contains("password"))
}

/// What kind of value `v` is, without the value.
fn describe_kind(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
    .to_owned()
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
    fn a_wrong_type_under_a_secret_key_never_quotes_the_value() {
        let e = ConfigError::wrong_type("raft.password", "a string", &Value::Bool(true));
        assert_eq!(e.message, "expected a string, got a boolean");
        let e = ConfigError::wrong_type(
            "postgresql.authentication.superuser.password",
            "a string",
            &serde_json::json!(["s3cret"]),
        );
        assert!(!e.to_string().contains("s3cret"));
        let e = ConfigError::wrong_type("restapi.listen", "a string", &Value::Bool(true));
        assert_eq!(e.message, "expected a string, got the boolean true");
    }

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
