//! Patroni's health-check rules: which path answers 200 for which member, by substring of the
//! path as Patroni matches it (reference/patroni.md section 1.2). Pure: [`HealthFacts`] in,
//! status code out.

use std::collections::HashMap;

use crate::state::Tags;

/// What the health rules look at, gathered from the local view, the lease and the state.
#[derive(Clone, Debug, Default)]
pub struct HealthFacts {
    /// Holds the leader record of the current generation with a valid lease, and its database
    /// runs as primary (or, in a standby cluster, as the standby leader).
    pub is_leader: bool,
    /// The cluster is a standby cluster (`standby_cluster` is set): its leader is a standby
    /// leader, never a primary.
    pub standby_cluster: bool,
    pub running: bool,
    pub running_replica: bool,
    pub noloadbalance: bool,
    pub tags: Tags,
    /// Replayed position's lag behind the leader's last reported position, bytes.
    pub replay_lag: Option<u64>,
    pub sync_standby: bool,
    pub quorum_standby: bool,
}

/// `?lag=` value: bytes or with a unit (`16kB`, `10MB`, `1GB`); unparsable -> ignored.
pub fn parse_lag(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    num.checked_mul(mult)
}

fn tag_matches(tags: &Tags, key: &str, wanted: &str) -> bool {
    match tags.get(key) {
        None => false,
        Some(serde_json::Value::String(s)) => s == wanted,
        Some(other) => other.to_string().to_lowercase() == wanted,
    }
}

fn tags_pass(facts: &HealthFacts, query: &HashMap<String, String>) -> bool {
    query
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("tag_").map(|key| (key, v)))
        .all(|(key, v)| tag_matches(&facts.tags, key, v))
}

fn replica_rule(facts: &HealthFacts, query: &HashMap<String, String>) -> bool {
    if !facts.running_replica || facts.noloadbalance || !tags_pass(facts, query) {
        return false;
    }
    if let Some(max) = query.get("lag").and_then(|v| parse_lag(v))
        && facts.replay_lag.is_none_or(|lag| lag > max)
    {
        return false;
    }
    if let Some(wanted) = query.get("replication_state") {
        // Only streaming replicas are running_replica-with-streaming; others are in archive
        // recovery. The caller folds that into `running_replica` for "streaming".
        if wanted != "streaming" {
            return false;
        }
    }
    true
}

/// The status code of a health path for this member.
pub fn health_code(path: &str, query: &HashMap<String, String>, facts: &HealthFacts) -> u16 {
    let path = if path == "/" || path.is_empty() {
        "/primary"
    } else {
        path
    };
    let ok = |b: bool| if b { 200 } else { 503 };
    let leader = facts.is_leader;
    let standby_leader = leader && facts.standby_cluster;
    // The standby leader runs as a standby but is not a replica (Patroni reports its role).
    let replica = || !standby_leader && replica_rule(facts, query);
    if path.contains("standby_leader") || path.contains("standby-leader") {
        return ok(standby_leader);
    }
    if path.contains("leader") {
        return ok(leader);
    }
    if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        return ok(leader && !facts.standby_cluster);
    }
    if path.contains("replica") {
        return ok(replica());
    }
    if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        return ok(tags_pass(facts, query) && (leader || replica()));
    }
    if path.contains("health") {
        return ok(facts.running && tags_pass(facts, query));
    }
    match path {
        "/sync" | "/synchronous" => ok(replica() && facts.sync_standby),
        "/quorum" => ok(replica() && facts.quorum_standby),
        "/async" | "/asynchronous" => ok(replica() && !facts.sync_standby && !facts.quorum_standby),
        "/read-only-sync" | "/read-only-synchronous" => {
            ok(leader || (replica() && facts.sync_standby))
        }
        "/read-only-quorum" => ok(leader || (replica() && facts.quorum_standby)),
        _ => 503,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary() -> HealthFacts {
        HealthFacts {
            is_leader: true,
            running: true,
            ..Default::default()
        }
    }

    fn replica() -> HealthFacts {
        HealthFacts {
            running: true,
            running_replica: true,
            replay_lag: Some(0),
            ..Default::default()
        }
    }

    fn noloadbalance() -> HealthFacts {
        HealthFacts {
            noloadbalance: true,
            ..replica()
        }
    }

    fn stopped() -> HealthFacts {
        HealthFacts::default()
    }

    /// The lease holder of a standby cluster, running as a standby streaming from the remote.
    fn standby_leader() -> HealthFacts {
        HealthFacts {
            is_leader: true,
            standby_cluster: true,
            running: true,
            running_replica: true,
            replay_lag: Some(0),
            ..Default::default()
        }
    }

    /// A member of a standby cluster cascading from the standby leader.
    fn standby_cluster_replica() -> HealthFacts {
        HealthFacts {
            standby_cluster: true,
            ..replica()
        }
    }

    /// Patroni's lab matrix (reference section 1.2): path -> codes for primary, streaming
    /// replica, noloadbalance replica, stopped member, standby leader (standby cluster), and a
    /// replica of a standby cluster (not in the lab matrix: the replica rule).
    #[test]
    fn lab_matrix() {
        let rows: &[(&str, [u16; 6])] = &[
            ("/", [200, 503, 503, 503, 503, 503]),
            ("/primary", [200, 503, 503, 503, 503, 503]),
            ("/master", [200, 503, 503, 503, 503, 503]),
            ("/read-write", [200, 503, 503, 503, 503, 503]),
            ("/leader", [200, 503, 503, 503, 200, 503]),
            ("/standby-leader", [503, 503, 503, 503, 200, 503]),
            ("/standby_leader", [503, 503, 503, 503, 200, 503]),
            ("/replica", [503, 200, 503, 503, 503, 200]),
            ("/read-only", [200, 200, 503, 503, 200, 200]),
            ("/sync", [503, 503, 503, 503, 503, 503]),
            ("/synchronous", [503, 503, 503, 503, 503, 503]),
            ("/read-only-sync", [200, 503, 503, 503, 200, 503]),
            ("/quorum", [503, 503, 503, 503, 503, 503]),
            ("/read-only-quorum", [200, 503, 503, 503, 200, 503]),
            ("/async", [503, 200, 503, 503, 503, 200]),
            ("/asynchronous", [503, 200, 503, 503, 503, 200]),
            ("/health", [200, 200, 200, 503, 200, 200]),
            ("/nonexistent", [503, 503, 503, 503, 503, 503]),
        ];
        let members = [
            primary(),
            replica(),
            noloadbalance(),
            stopped(),
            standby_leader(),
            standby_cluster_replica(),
        ];
        let q = HashMap::new();
        for (path, codes) in rows {
            for (facts, want) in members.iter().zip(codes) {
                assert_eq!(health_code(path, &q, facts), *want, "{path} for {facts:?}");
            }
        }
    }

    #[test]
    fn lag_filter() {
        let mut lagging = replica();
        lagging.replay_lag = Some(5 << 20);
        let q = |v: &str| HashMap::from([("lag".to_owned(), v.to_owned())]);
        assert_eq!(health_code("/replica", &q("1MB"), &lagging), 503);
        assert_eq!(health_code("/replica", &q("100MB"), &lagging), 200);
        assert_eq!(health_code("/replica", &q("garbage"), &lagging), 200);
        assert_eq!(health_code("/replica", &HashMap::new(), &lagging), 200);
    }

    #[test]
    fn tag_filters_apply_to_replicas_and_read_only_but_not_primary() {
        let mut east = replica();
        east.tags =
            serde_json::from_value(serde_json::json!({"dc": "east", "clonefrom": true})).unwrap();
        let q = |k: &str, v: &str| HashMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(health_code("/replica", &q("tag_dc", "east"), &east), 200);
        assert_eq!(health_code("/replica", &q("tag_dc", "west"), &east), 503);
        assert_eq!(
            health_code("/replica", &q("tag_clonefrom", "true"), &east),
            200
        );
        assert_eq!(
            health_code("/replica", &q("tag_clonefrom", "True"), &east),
            503
        );
        assert_eq!(
            health_code("/primary", &q("tag_dc", "west"), &primary()),
            200
        );
        assert_eq!(
            health_code("/read-only", &q("tag_dc", "east"), &primary()),
            503
        );
    }

    #[test]
    fn lag_units() {
        assert_eq!(parse_lag("16kB"), Some(16 * 1024));
        assert_eq!(parse_lag("10MB"), Some(10 << 20));
        assert_eq!(parse_lag("1GB"), Some(1 << 30));
        assert_eq!(parse_lag("123"), Some(123));
        assert_eq!(parse_lag("1XB"), None);
    }
}
