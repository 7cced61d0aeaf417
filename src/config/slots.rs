//! Replication slots in the dynamic configuration: `slots` (Patroni's permanent slots, with its
//! older spellings `permanent_slots` and `permanent_replication_slots`), `ignore_slots` and
//! `member_slots_ttl`. Parsed and validated here; `ha::slots` decides what to do with them.
//!
//! Hazards: a permanent slot keeps WAL (and, logical, catalog rows) on every member for as long
//! as it is configured, so a typo must fail loudly rather than create a second slot.
//! A name that equals a member's own slot is refused where the members are known (the state's
//! `SetConfig`), not here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;
use super::value::{Section, as_integer};

/// Patroni 4's default `member_slots_ttl`: 30 minutes.
pub const DEFAULT_MEMBER_SLOTS_TTL: Duration = Duration::from_secs(30 * 60);

/// One permanent slot, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermanentSlot {
    pub kind: SlotKind,
    /// Patroni's `cluster_type`: `None` = everywhere.
    pub cluster_type: Option<ClusterType>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotKind {
    Physical,
    Logical { database: String, plugin: String },
}

/// Which cluster a permanent slot is for (Patroni's `cluster_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterType {
    /// Only in a cluster with a primary.
    Primary,
    /// Only in a standby cluster.
    Standby,
}

impl PermanentSlot {
    /// Whether the slot applies to a standby cluster (`true`) or a primary cluster.
    pub fn applies(&self, standby_cluster: bool) -> bool {
        match self.cluster_type {
            None => true,
            Some(ClusterType::Primary) => !standby_cluster,
            Some(ClusterType::Standby) => standby_cluster,
        }
    }
}

/// One `ignore_slots` entry: a slot matches when every attribute given equals its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreSlot {
    pub name: Option<String>,
    /// `physical` or `logical`.
    pub kind: Option<String>,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

impl IgnoreSlot {
    pub fn matches(
        &self,
        name: &str,
        kind: &str,
        database: Option<&str>,
        plugin: Option<&str>,
    ) -> bool {
        self.name.as_deref().is_none_or(|n| n == name)
            && self.kind.as_deref().is_none_or(|k| k == kind)
            && self.database.as_deref().is_none_or(|d| Some(d) == database)
            && self.plugin.as_deref().is_none_or(|p| Some(p) == plugin)
    }
}

/// PostgreSQL's rule for slot names (`ReplicationSlotValidateName`): lower-case letters,
/// digits and underscores, at most 63 bytes.
pub fn check_slot_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a replication slot name must not be empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "the slot name `{name}` is longer than 63 characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Err(format!(
            "the slot name `{name}` contains `{c}`: replication slot names may contain only \
             lower-case letters, digits and underscores"
        ));
    }
    Ok(())
}

/// `slots` (or, when absent, `permanent_replication_slots`, then `permanent_slots`, as Patroni
/// reads them).
pub(crate) fn permanent(s: &Section<'_>) -> Result<BTreeMap<String, PermanentSlot>, ConfigError> {
    let key = ["slots", "permanent_replication_slots", "permanent_slots"]
        .into_iter()
        .find(|k| s.get(k).is_some());
    let Some(key) = key else {
        return Ok(BTreeMap::new());
    };
    let Some(map) = s.object(key)? else {
        return Ok(BTreeMap::new());
    };
    let slots = Section::of_map(s.key(key), map);
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let at = slots.key(name);
        check_slot_name(name).map_err(|e| ConfigError::at(at.clone(), e))?;
        let entry = match value {
            // Patroni accepts `name:` with no body as a physical slot.
            Value::Null => {
                out.insert(
                    name.clone(),
                    PermanentSlot {
                        kind: SlotKind::Physical,
                        cluster_type: None,
                    },
                );
                continue;
            }
            Value::Object(_) => slots.section(name)?,
            other => {
                return Err(ConfigError::wrong_type(
                    at,
                    "a mapping such as {type: physical} or {type: logical, database: db, plugin: pgoutput}",
                    other,
                ));
            }
        };
        let cluster_type = match entry.string("cluster_type")?.as_deref() {
            None => None,
            Some("primary") => Some(ClusterType::Primary),
            Some("standby") => Some(ClusterType::Standby),
            Some(other) => {
                return Err(ConfigError::at(
                    entry.key("cluster_type"),
                    format!("expected primary or standby, got `{other}`"),
                ));
            }
        };
        let kind = match entry.string("type")?.as_deref() {
            None | Some("physical") => {
                for extra in ["database", "plugin"] {
                    if entry.get(extra).is_some() {
                        return Err(ConfigError::at(
                            entry.key(extra),
                            "only a logical slot (type: logical) has a database and a plugin",
                        ));
                    }
                }
                SlotKind::Physical
            }
            Some("logical") => SlotKind::Logical {
                database: entry.required_string(
                    "database",
                    "the database a logical slot decodes (type: logical needs database and plugin)",
                )?,
                plugin: entry.required_string(
                    "plugin",
                    "the output plugin of a logical slot, e.g. pgoutput or test_decoding",
                )?,
            },
            Some(other) => {
                return Err(ConfigError::at(
                    entry.key("type"),
                    format!("expected physical or logical, got `{other}`"),
                ));
            }
        };
        out.insert(name.clone(), PermanentSlot { kind, cluster_type });
    }
    Ok(out)
}

/// `ignore_slots`: a list of matchers.
pub(crate) fn ignore(s: &Section<'_>) -> Result<Vec<IgnoreSlot>, ConfigError> {
    let Some(v) = s.get("ignore_slots") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(ConfigError::wrong_type(
            s.key("ignore_slots"),
            "a list of matchers such as {name: foo, type: logical}",
            v,
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{}.{i}", s.key("ignore_slots"));
        let Value::Object(map) = item else {
            return Err(ConfigError::wrong_type(
                at,
                "a mapping of name, type, database and/or plugin",
                item,
            ));
        };
        let m = Section::of_map(at.clone(), map);
        if let Some(unknown) = map
            .keys()
            .find(|k| !["name", "type", "database", "plugin"].contains(&k.as_str()))
        {
            return Err(ConfigError::at(
                m.key(unknown),
                "an ignore_slots matcher has only name, type, database and plugin",
            ));
        }
        let matcher = IgnoreSlot {
            name: m.string("name")?,
            kind: m.string("type")?,
            database: m.string("database")?,
            plugin: m.string("plugin")?,
        };
        if let Some(kind) = matcher.kind.as_deref()
            && kind != "physical"
            && kind != "logical"
        {
            return Err(ConfigError::at(
                m.key("type"),
                format!("expected physical or logical, got `{kind}`"),
            ));
        }
        if matcher == IgnoreSlot::default() {
            return Err(ConfigError::at(
                at,
                "an empty matcher would keep every slot: name at least one of name, type, \
                 database, plugin",
            ));
        }
        out.push(matcher);
    }
    Ok(out)
}

/// `member_slots_ttl`: seconds, or a number with a unit (`30min`, `1h`, `90s`, `1d`), as
/// Patroni writes it; 0 drops a departed member's slot at once.
pub(crate) fn member_slots_ttl(s: &Section<'_>) -> Result<Duration, ConfigError> {
    let Some(v) = s.get("member_slots_ttl") else {
        return Ok(DEFAULT_MEMBER_SLOTS_TTL);
    };
    let parsed = match v {
        Value::String(text) => with_unit(text.trim()),
        other => as_integer(other)
            .and_then(|n| u64::try_from(n).ok())
            .map(Duration::from_secs),
    };
    parsed.ok_or_else(|| {
        ConfigError::wrong_type(
            s.key("member_slots_ttl"),
            "a duration >= 0: seconds, or a number with a unit (ms, s, min, h, d) such as 30min",
            v,
        )
    })
}

fn with_unit(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(millis).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn section(v: &Value) -> Section<'_> {
        Section::of_map("", v.as_object().unwrap())
    }

    #[test]
    fn permanent_slots_read_patronis_forms() {
        let doc = json!({"slots": {
            "phys": {"type": "physical"},
            "bare": null,
            "logi": {"type": "logical", "database": "app", "plugin": "pgoutput"},
            "standby_only": {"type": "physical", "cluster_type": "standby"},
        }});
        let slots = permanent(&section(&doc)).unwrap();
        assert_eq!(slots["phys"].kind, SlotKind::Physical);
        assert_eq!(slots["bare"].kind, SlotKind::Physical);
        assert_eq!(
            slots["logi"].kind,
            SlotKind::Logical {
                database: "app".into(),
                plugin: "pgoutput".into()
            }
        );
        assert!(!slots["standby_only"].applies(false));
        assert!(slots["standby_only"].applies(true));
        // The older spellings are read when `slots` is absent.
        let doc = json!({"permanent_slots": {"old": {"type": "physical"}}});
        assert!(permanent(&section(&doc)).unwrap().contains_key("old"));
    }

    #[test]
    fn bad_slots_are_errors_naming_the_key() {
        let cases = [
            (
                json!({"slots": {"Bad-Name": {"type": "physical"}}}),
                "slots.Bad-Name",
                "lower-case",
            ),
            (
                json!({"slots": {"x": {"type": "logical", "plugin": "pgoutput"}}}),
                "slots.x.database",
                "required",
            ),
            (
                json!({"slots": {"x": {"type": "logical", "database": "d"}}}),
                "slots.x.plugin",
                "required",
            ),
            (
                json!({"slots": {"x": {"type": "wal"}}}),
                "slots.x.type",
                "physical or logical",
            ),
            (
                json!({"slots": {"x": {"database": "d"}}}),
                "slots.x.database",
                "only a logical",
            ),
            (json!({"slots": {"x": 1}}), "slots.x", "a mapping"),
            (json!({"slots": [1]}), "slots", "a mapping"),
            (
                json!({"slots": {"x": {"cluster_type": "both"}}}),
                "slots.x.cluster_type",
                "primary or standby",
            ),
            (
                json!({"slots": {"a234567890123456789012345678901234567890123456789012345678901234": {}}}),
                "slots.a234567890123456789012345678901234567890123456789012345678901234",
                "longer than 63",
            ),
        ];
        for (doc, key, needle) in cases {
            let err = permanent(&section(&doc)).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
            assert!(err.message.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn ignore_slots_matchers() {
        let doc =
            json!({"ignore_slots": [{"name": "keep"}, {"type": "logical", "plugin": "wal2json"}]});
        let m = ignore(&section(&doc)).unwrap();
        assert!(m[0].matches("keep", "physical", None, None));
        assert!(!m[0].matches("other", "physical", None, None));
        assert!(m[1].matches("any", "logical", Some("db"), Some("wal2json")));
        assert!(!m[1].matches("any", "logical", Some("db"), Some("pgoutput")));
        assert!(!m[1].matches("any", "physical", None, None));
        for (doc, key, needle) in [
            (
                json!({"ignore_slots": {"name": "x"}}),
                "ignore_slots",
                "a list",
            ),
            (
                json!({"ignore_slots": [{}]}),
                "ignore_slots.0",
                "empty matcher",
            ),
            (
                json!({"ignore_slots": [{"nme": "x"}]}),
                "ignore_slots.0.nme",
                "only name",
            ),
            (
                json!({"ignore_slots": [{"type": "x"}]}),
                "ignore_slots.0.type",
                "physical or logical",
            ),
        ] {
            let err = ignore(&section(&doc)).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{doc}: {err}");
            assert!(err.message.contains(needle), "{doc}: {err}");
        }
    }

    #[test]
    fn member_slots_ttl_spellings() {
        for (v, want) in [
            (json!(null), DEFAULT_MEMBER_SLOTS_TTL),
            (json!(0), Duration::ZERO),
            (json!(90), Duration::from_secs(90)),
            (json!("30min"), Duration::from_secs(1800)),
            (json!("2h"), Duration::from_secs(7200)),
            (json!("1d"), Duration::from_secs(86400)),
            (json!("45"), Duration::from_secs(45)),
            (json!("500ms"), Duration::from_millis(500)),
        ] {
            let doc = json!({ "member_slots_ttl": v });
            assert_eq!(member_slots_ttl(&section(&doc)).unwrap(), want, "{v}");
        }
        for v in [json!(-1), json!("soon"), json!("5 weeks"), json!(true)] {
            let doc = json!({ "member_slots_ttl": v });
            let err = member_slots_ttl(&section(&doc)).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("member_slots_ttl"));
        }
    }
}
