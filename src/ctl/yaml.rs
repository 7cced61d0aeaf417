//! YAML as patronictl prints it (PyYAML's `safe_dump`): block style, keys sorted at every
//! level, so that `show-config`, the `edit-config` diff and `-f yaml` read the same whatever
//! order the server sent.

use serde_json::{Map, Value};

/// `value` with the keys of every mapping sorted.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Block-style YAML of `value`, keys sorted; `{}` for an empty mapping, as PyYAML prints it.
pub fn dump(value: &Value) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(&sorted(value))?)
}

/// Parses YAML as the agents read their configuration (YAML 1.1 booleans such as `on`).
pub fn parse(text: &str) -> Result<Value, serde_saphyr::Error> {
    serde_saphyr::from_str::<Value>(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let text = dump(
            &json!({"ttl": 30, "postgresql": {"use_slots": true, "parameters":
            {"max_connections": 100}}, "loop_wait": 10, "tags": [{"b": 1, "a": 2}]}),
        )
        .unwrap();
        assert_eq!(
            text,
            "loop_wait: 10\npostgresql:\n  parameters:\n    max_connections: 100\n  use_slots: true\n\
             tags:\n- a: 2\n  b: 1\nttl: 30\n"
        );
    }

    #[test]
    fn values_parse_as_yaml_1_1() {
        assert_eq!(parse("on").unwrap(), json!(true));
        assert_eq!(parse("150").unwrap(), json!(150));
        assert_eq!(parse("'150'").unwrap(), json!("150"));
        assert_eq!(parse("null").unwrap(), Value::Null);
        assert_eq!(parse("[a, b]").unwrap(), json!(["a", "b"]));
    }
}
