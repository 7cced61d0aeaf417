//! The dynamic configuration as the cluster committed it (Patroni's `/config` key): the JSON the
//! operator wrote, shown by `GET /config` with any keys Tribune does not know, and its typed
//! reading, validated once when the command that stored it was applied.
//!
//! Every consumer (the HA loop, the lease keeper, the arbiter, the REST API) reads the typed
//! value through [`ClusterState::dynamic_or`](super::ClusterState::dynamic_or); nothing parses
//! the JSON again. Serialised, it is the written JSON alone, exactly as the state held it before
//! it was typed, so a state written by an earlier version decodes unchanged.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::config::{ConfigError, DynamicConfig};

#[derive(Clone, Debug, PartialEq)]
pub struct StoredConfig {
    written: Arc<Value>,
    typed: Arc<DynamicConfig>,
}

impl StoredConfig {
    /// Validate `written`: an error names the key at fault, and nothing is stored.
    pub fn parse(written: Value) -> Result<StoredConfig, ConfigError> {
        let typed = DynamicConfig::from_json(&written)?;
        Ok(StoredConfig {
            written: Arc::new(written),
            typed: Arc::new(typed),
        })
    }

    /// As the operator wrote it (unknown keys kept).
    pub fn written(&self) -> &Value {
        &self.written
    }

    /// The typed reading every consumer uses.
    pub fn typed(&self) -> &DynamicConfig {
        &self.typed
    }
}

impl Serialize for StoredConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

/// A stored configuration was validated when it was committed, by the same rules; one that no
/// longer reads is refused with the reason rather than replaced by defaults behind the
/// operator's back.
impl<'de> Deserialize<'de> for StoredConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = Value::deserialize(deserializer)?;
        StoredConfig::parse(written).map_err(|err| {
            serde::de::Error::custom(format!("the stored dynamic configuration: {err}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn the_written_form_is_kept_and_read_once() {
        let written = json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "future_key": [1]});
        let stored = StoredConfig::parse(written.clone()).unwrap();
        assert_eq!(stored.typed().ttl, Duration::from_secs(30));
        assert_eq!(stored.written(), &written);
        assert_eq!(serde_json::to_value(&stored).unwrap(), written);
        let back: StoredConfig = serde_json::from_value(written).unwrap();
        assert_eq!(back, stored);
    }

    #[test]
    fn an_invalid_configuration_is_refused_naming_the_key() {
        let err = StoredConfig::parse(json!({"ttl": "soon"})).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("ttl"));
        let err = serde_json::from_value::<StoredConfig>(json!({"ttl": 0})).unwrap_err();
        assert!(err.to_string().contains("ttl"), "{err}");
    }
}
