//! `tags`: published with the member record as written; custom tags of any type are allowed.
//! The tags Patroni gives a meaning are type-checked here, once, so the HA layer can trust them.

use serde_json::Value;

use super::error::ConfigError;
use super::value::{Section, as_bool};
use crate::state::Tags;

const BOOL_TAGS: [&str; 5] = [
    "nofailover",
    "noloadbalance",
    "clonefrom",
    "nosync",
    "nostream",
];

/// (boolean tag, priority tag): Patroni's validator allows at most one of each pair.
const EXCLUSIVE: [(&str, &str); 2] = [
    ("nofailover", "failover_priority"),
    ("nosync", "sync_priority"),
];

pub(crate) fn parse(top: &Section<'_>) -> Result<Tags, ConfigError> {
    let Some(map) = top.object("tags")? else {
        return Ok(Tags::default());
    };
    let s = top.section("tags")?;
    for name in BOOL_TAGS {
        if let Some(v) = s.get(name)
            && as_bool(v).is_none()
        {
            return Err(ConfigError::wrong_type(
                s.key(name),
                "a boolean (true or false)",
                v,
            ));
        }
    }
    for (flag, priority) in EXCLUSIVE {
        if let Some(v) = s.get(priority)
            && !matches!(v, Value::Number(n) if n.as_u64().is_some())
        {
            return Err(ConfigError::wrong_type(
                s.key(priority),
                "an integer >= 0",
                v,
            ));
        }
        if s.get(flag).is_some() && s.get(priority).is_some() {
            return Err(ConfigError::at(
                s.key(priority),
                format!(
                    "set either `tags.{flag}` or `tags.{priority}`, not both \
                     (`{priority}: 0` means the same as `{flag}: true`)"
                ),
            ));
        }
    }
    if let Some(v) = s.get("replicatefrom")
        && !v.is_string()
    {
        return Err(ConfigError::wrong_type(
            s.key("replicatefrom"),
            "a member name",
            v,
        ));
    }
    if let Some(v) = s.get("site")
        && v.as_str().is_none_or(|site| site.trim().is_empty())
    {
        return Err(ConfigError::wrong_type(
            s.key("site"),
            "a non-empty site name (a string)",
            v,
        ));
    }
    Ok(Tags::from_written(
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_tags(tags: Value) -> Result<Tags, ConfigError> {
        let doc = json!({ "tags": tags });
        parse(&Section::new("", Some(&doc)).unwrap())
    }

    #[test]
    fn tags_are_kept_as_written() {
        let tags = parse_tags(json!({
            "nofailover": false, "noloadbalance": "true", "clonefrom": true, "nosync": false,
            "replicatefrom": "node2", "dc": "east", "rack": 7, "weights": [1, 2]
        }))
        .unwrap();
        assert_eq!(tags.get("dc"), Some(&json!("east")));
        assert_eq!(tags.get("rack"), Some(&json!(7)));
        assert_eq!(tags.get("noloadbalance"), Some(&json!("true")));
        assert!(tags.noloadbalance() && tags.clonefrom() && !tags.nofailover());
        assert_eq!(tags.len(), 8);
        assert_eq!(tags.site(), None);
        assert_eq!(
            parse_tags(json!({"site": "east"})).unwrap().site(),
            Some("east")
        );
        assert!(parse_tags(Value::Null).unwrap().is_empty());
        assert_eq!(
            parse_tags(json!({"failover_priority": 0, "sync_priority": 3}))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn bad_tags_name_the_tag() {
        let cases = [
            (
                json!({"nofailover": "maybe"}),
                "tags.nofailover",
                "a boolean",
            ),
            (
                json!({"noloadbalance": 1}),
                "tags.noloadbalance",
                "a boolean",
            ),
            (json!({"clonefrom": [true]}), "tags.clonefrom", "a boolean"),
            (
                json!({"failover_priority": -1}),
                "tags.failover_priority",
                "integer >= 0",
            ),
            (
                json!({"failover_priority": "high"}),
                "tags.failover_priority",
                "integer >= 0",
            ),
            (
                json!({"sync_priority": 1.5}),
                "tags.sync_priority",
                "integer >= 0",
            ),
            (
                json!({"nofailover": true, "failover_priority": 1}),
                "tags.failover_priority",
                "not both",
            ),
            (
                json!({"nosync": true, "sync_priority": 0}),
                "tags.sync_priority",
                "not both",
            ),
            (
                json!({"replicatefrom": 3}),
                "tags.replicatefrom",
                "a member name",
            ),
            (json!({"site": ""}), "tags.site", "a non-empty site name"),
            (json!({"site": "  "}), "tags.site", "a non-empty site name"),
            (json!({"site": 2}), "tags.site", "a non-empty site name"),
            (json!(["nofailover"]), "tags", "a mapping"),
        ];
        for (tags, key, needle) in cases {
            let err = parse_tags(tags.clone()).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{tags}: {err}");
            assert!(err.message.contains(needle), "{tags}: {err}");
        }
    }
}
