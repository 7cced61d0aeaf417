//! Typed reads from the parsed YAML document (held as `serde_json::Value`), each failing with an
//! error that names the dotted key and the expected type. The document is walked by hand rather
//! than deserialised into structs so that unknown keys, Patroni's loose typing (numbers as strings,
//! YAML 1.1 booleans) and the per-key error messages stay under our control.
//!
//! A `null` value (`key:` with nothing after it) reads as absent everywhere, as in Patroni.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ConfigError;

/// One mapping of the document and its dotted path. An absent section reads as empty.
#[derive(Clone, Debug)]
pub(crate) struct Section<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Section<'a> {
    /// `value` must be a mapping, null or absent.
    pub(crate) fn new(
        path: impl Into<String>,
        value: Option<&'a Value>,
    ) -> Result<Self, ConfigError> {
        let path = path.into();
        match value {
            None | Some(Value::Null) => Ok(Self { path, map: None }),
            Some(Value::Object(map)) => Ok(Self {
                path,
                map: Some(map),
            }),
            Some(other) => Err(ConfigError::wrong_type(path, "a mapping", other)),
        }
    }

    pub(crate) fn of_map(path: impl Into<String>, map: &'a Map<String, Value>) -> Self {
        Self {
            path: path.into(),
            map: Some(map),
        }
    }

    /// The dotted path of `key` in this section.
    pub(crate) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The mapping itself (`None` when absent).
    pub(crate) fn as_map(&self) -> Option<&'a Map<String, Value>> {
        self.map
    }

    /// Whether the section is written in the document (and not null).
    pub(crate) fn is_present(&self) -> bool {
        self.map.is_some()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map?.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn section(&self, key: &str) -> Result<Section<'a>, ConfigError> {
        Section::new(self.key(key), self.get(key))
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.read(key, "a string", as_text)
    }

    /// A string that must be present and non-empty; `what` says what it is for.
    pub(crate) fn required_string(&self, key: &str, what: &str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(ConfigError::at(
                self.key(key),
                format!("must not be empty: {what}"),
            )),
            None => Err(ConfigError::missing(self.key(key), what)),
        }
    }

    /// A file or directory path; an empty string reads as absent (Patroni: "left empty").
    pub(crate) fn path_buf(&self, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self
            .string(key)?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.read(key, "a boolean (true or false)", as_bool)
    }

    /// A duration written as seconds: an integer, a decimal number or a numeric string.
    pub(crate) fn seconds(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.read(key, "a number of seconds (>= 0)", as_seconds)
    }

    /// An integer (or numeric string) within `min..=max`.
    pub(crate) fn integer(
        &self,
        key: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = if max == i64::MAX {
            format!("an integer >= {min}")
        } else {
            format!("an integer between {min} and {max}")
        };
        match as_integer(v) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::wrong_type(self.key(key), &expected, v)),
        }
    }

    /// A list of strings (numbers are taken as their text).
    pub(crate) fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let items = v
            .as_array()
            .ok_or_else(|| ConfigError::wrong_type(self.key(key), "a list of strings", v))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                as_text(item).ok_or_else(|| {
                    ConfigError::wrong_type(format!("{}[{i}]", self.key(key)), "a string", item)
                })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// A mapping kept as JSON (`parameters`, `tags`).
    pub(crate) fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
        self.read(key, "a mapping", Value::as_object)
    }

    fn read<T>(
        &self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => convert(v)
                .map(Some)
                .ok_or_else(|| ConfigError::wrong_type(self.key(key), expected, v)),
        }
    }
}

/// Text of a string or a number (`password: 12345` is a password, not a number).
pub(crate) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A boolean, or a string Patroni's `parse_bool` accepts (environment values are strings).
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Some(true),
            "false" | "off" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

pub(crate) fn as_seconds(v: &Value) -> Option<Duration> {
    as_f64(v).and_then(|f| Duration::try_from_secs_f64(f).ok())
}

/// An integer, a float without fraction, or a numeric string.
pub(crate) fn as_integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A duration as operators write it in the file: `3`, `0.25`.
pub(crate) fn fmt_secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_accept_patroni_spellings() {
        let doc = json!({
            "a": 3, "b": 0.25, "c": "10", "d": "on", "e": false, "f": null, "g": "abc", "h": -1,
            "i": 2.0, "j": 12345, "k": ["x", 1]
        });
        let s = Section::new("root", Some(&doc)).unwrap();
        assert_eq!(s.seconds("a").unwrap(), Some(Duration::from_secs(3)));
        assert_eq!(s.seconds("b").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(s.seconds("c").unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(s.bool("d").unwrap(), Some(true));
        assert_eq!(s.bool("e").unwrap(), Some(false));
        assert_eq!(s.bool("f").unwrap(), None);
        assert_eq!(s.integer("i", 0, 10).unwrap(), Some(2));
        assert_eq!(s.string("j").unwrap().as_deref(), Some("12345"));
        assert_eq!(
            s.string_list("k").unwrap(),
            Some(vec!["x".to_owned(), "1".to_owned()])
        );
        assert_eq!(s.string("missing").unwrap(), None);
    }

    #[test]
    fn wrong_types_name_the_key_and_the_expectation() {
        let doc = json!({"g": "abc", "h": -1, "e": false, "l": [1, {}]});
        let s = Section::new("root", Some(&doc)).unwrap();
        let cases: Vec<(ConfigError, &str, &str)> = vec![
            (s.seconds("g").unwrap_err(), "root.g", "a number of seconds"),
            (s.seconds("h").unwrap_err(), "root.h", "a number of seconds"),
            (
                s.integer("h", 0, 5).unwrap_err(),
                "root.h",
                "between 0 and 5",
            ),
            (s.string("e").unwrap_err(), "root.e", "a string"),
            (s.bool("g").unwrap_err(), "root.g", "a boolean"),
            (s.string_list("l").unwrap_err(), "root.l[1]", "a string"),
            (s.section("g").unwrap_err(), "root.g", "a mapping"),
        ];
        for (err, key, expected) in cases {
            assert_eq!(err.key.as_deref(), Some(key), "{err}");
            assert!(err.message.contains(expected), "{err}");
        }
    }
}
