//! A member's tags (Patroni's `tags`): the mapping as the operator wrote it, which the REST API
//! shows and the member record carries, and the meaning Tribune gives the tags Patroni defines,
//! read once when the tags are built.
//!
//! Two ways in: the configuration checks the tags strictly and refuses a wrong type
//! (`config::tags`); a record decoded from the replicated state or a REST answer is read
//! leniently (a wrong type counts as unset), because a record another agent wrote must never
//! make the state undecodable. Both end in [`Tags::from_written`], so every consumer (the HA
//! decision, the REST health rules, `tribunectl`) sees the same meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::types::MemberName;

/// Patroni's default `failover_priority` and `sync_priority`.
const DEFAULT_PRIORITY: u64 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Tags {
    written: BTreeMap<String, Value>,
    nofailover: bool,
    failover_priority: u64,
    noloadbalance: bool,
    clonefrom: bool,
    nosync: bool,
    sync_priority: u64,
    nostream: bool,
    replicatefrom: Option<MemberName>,
    site: Option<String>,
}

/// Patroni's boolean spellings (YAML 1.1 and strings).
fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "on" | "yes" | "1"
            )
        }
        _ => false,
    }
}

fn priority(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(DEFAULT_PRIORITY)
}

impl Tags {
    /// The tags of this mapping: Patroni's tags read with their meaning, every tag kept as
    /// written. A tag of the wrong type counts as unset.
    pub fn from_written(written: BTreeMap<String, Value>) -> Tags {
        let nofailover = flag(written.get("nofailover"));
        let nosync = flag(written.get("nosync"));
        Tags {
            nofailover,
            failover_priority: if nofailover {
                0
            } else {
                priority(written.get("failover_priority"))
            },
            noloadbalance: flag(written.get("noloadbalance")),
            clonefrom: flag(written.get("clonefrom")),
            sync_priority: if nosync {
                0
            } else {
                priority(written.get("sync_priority"))
            },
            nosync,
            nostream: flag(written.get("nostream")),
            replicatefrom: written
                .get("replicatefrom")
                .and_then(Value::as_str)
                .map(MemberName::from),
            site: written
                .get("site")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            written,
        }
    }

    /// Never promoted: `nofailover: true` or `failover_priority: 0`.
    pub fn nofailover(&self) -> bool {
        self.failover_priority == 0
    }

    /// Patroni's `failover_priority` (default 1; 0 with `nofailover`): the higher, the earlier
    /// among equally advanced candidates.
    pub fn failover_priority(&self) -> u64 {
        self.failover_priority
    }

    /// Never a synchronous standby: `nosync: true` or `sync_priority: 0`.
    pub fn nosync(&self) -> bool {
        self.sync_priority == 0
    }

    /// Left out of the `/replica` and `/read-only` health checks.
    pub fn noloadbalance(&self) -> bool {
        self.noloadbalance
    }

    /// A preferred source of base backups.
    pub fn clonefrom(&self) -> bool {
        self.clonefrom
    }

    pub fn nostream(&self) -> bool {
        self.nostream
    }

    /// The member this one prefers to stream from (cascading replication).
    pub fn replicatefrom(&self) -> Option<&MemberName> {
        self.replicatefrom.as_ref()
    }

    /// The site (data centre, availability zone) the member runs in: multi-site clusters keep
    /// acknowledged commits outside the primary's site and fail over within it first.
    pub fn site(&self) -> Option<&str> {
        self.site.as_deref()
    }

    /// A tag as written.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.written.get(key)
    }

    /// Every tag as written, by name.
    pub fn written(&self) -> &BTreeMap<String, Value> {
        &self.written
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    pub fn len(&self) -> usize {
        self.written.len()
    }
}

/// No tags: every priority at Patroni's default.
impl Default for Tags {
    fn default() -> Self {
        Tags::from_written(BTreeMap::new())
    }
}

/// Serialised as written: the member record keeps the form it always had.
impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<String, Value>::deserialize(deserializer).map(Tags::from_written)
    }
}

impl FromIterator<(String, Value)> for Tags {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Tags::from_written(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tags(v: Value) -> Tags {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn patronis_tags_have_their_meaning() {
        let cases = [
            (json!({}), false, 1, false),
            (json!({"nofailover": true}), true, 0, false),
            (json!({"nofailover": "yes"}), true, 0, false),
            (
                json!({"nofailover": false, "failover_priority": 3}),
                false,
                3,
                false,
            ),
            (json!({"failover_priority": 0}), true, 0, false),
            (json!({"nosync": "on"}), false, 1, true),
            (json!({"sync_priority": 0}), false, 1, true),
            // A wrong type counts as unset (only a decoded record can carry one).
            (
                json!({"nofailover": [true], "failover_priority": "high"}),
                false,
                1,
                false,
            ),
        ];
        for (written, nofailover, priority, nosync) in cases {
            let t = tags(written.clone());
            assert_eq!(t.nofailover(), nofailover, "{written}");
            assert_eq!(t.failover_priority(), priority, "{written}");
            assert_eq!(t.nosync(), nosync, "{written}");
        }
        let t = tags(json!({"noloadbalance": "true", "clonefrom": true, "replicatefrom": "b"}));
        assert!(t.noloadbalance() && t.clonefrom() && !t.nostream());
        assert_eq!(t.replicatefrom(), Some(&MemberName::from("b")));
    }

    #[test]
    fn tags_serialise_as_written() {
        let written = json!({"dc": "east", "noloadbalance": "true", "rack": 7, "w": [1, 2]});
        let t = tags(written.clone());
        assert_eq!(serde_json::to_value(&t).unwrap(), written);
        assert_eq!(t.get("rack"), Some(&json!(7)));
        assert_eq!(t.len(), 4);
        assert!(tags(json!({})).is_empty());
        assert_eq!(Tags::default(), tags(json!({})));
        assert!(!Tags::default().nofailover() && !Tags::default().nosync());
    }
}
