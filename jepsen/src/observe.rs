//! What the cluster says about itself, through each member's REST API (never through the
//! harness's own knowledge of what it did): every member's role, who holds the leader lease,
//! who is synchronous, who leads Raft; whether the cluster has converged; and the sampler that
//! records each change of a member's role into the history.
//!
//! The convergence rule is a pure function of the members' documents ([`convergence`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::history::{Event, Recorder};

/// One member as its `GET /patroni` showed it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberStatus {
    pub name: String,
    pub database: bool,
    /// `None`: the REST API did not answer.
    pub doc: Option<Value>,
}

impl MemberStatus {
    pub fn role(&self) -> &str {
        match &self.doc {
            None => "unreachable",
            Some(doc) => doc["role"].as_str().unwrap_or("unknown"),
        }
    }

    pub fn running(&self) -> bool {
        self.doc
            .as_ref()
            .is_some_and(|d| d["state"].as_str() == Some("running"))
    }

    pub fn streaming(&self) -> bool {
        self.doc
            .as_ref()
            .is_some_and(|d| d["replication_state"].as_str() == Some("streaming"))
    }

    pub fn timeline(&self) -> Option<u32> {
        self.doc.as_ref()?["timeline"].as_u64().map(|t| t as u32)
    }

    /// The standbys streaming from this member, by application name (= member name).
    pub fn streaming_standbys(&self) -> Vec<String> {
        self.doc
            .as_ref()
            .and_then(|d| d["replication"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|r| r["state"].as_str() == Some("streaming"))
            .filter_map(|r| r["application_name"].as_str().map(str::to_owned))
            .collect()
    }
}

/// `Ok(description)` when the cluster has one running primary and every other database member
/// is a running replica streaming from it (seen from both ends), every witness answering; else
/// `Err(what is still wrong)`.
pub fn convergence(members: &[MemberStatus]) -> Result<String, String> {
    let mut wrong = Vec::new();
    let primaries: Vec<&MemberStatus> = members
        .iter()
        .filter(|m| m.database && m.role() == "primary" && m.running())
        .collect();
    let primary = match primaries[..] {
        [one] => Some(one),
        [] => {
            wrong.push("no running primary".to_owned());
            None
        }
        _ => {
            let names: Vec<&str> = primaries.iter().map(|m| m.name.as_str()).collect();
            wrong.push(format!("several primaries: {}", names.join(", ")));
            None
        }
    };
    let downstream = primary
        .map(MemberStatus::streaming_standbys)
        .unwrap_or_default();
    for m in members {
        if m.doc.is_none() {
            wrong.push(format!("{}: its REST API does not answer", m.name));
            continue;
        }
        if !m.database || primary.is_some_and(|p| p.name == m.name) {
            continue;
        }
        if m.role() != "replica" || !m.running() {
            wrong.push(format!(
                "{}: {} ({})",
                m.name,
                m.role(),
                m.doc
                    .as_ref()
                    .and_then(|d| d["state"].as_str())
                    .unwrap_or("?")
            ));
        } else if !m.streaming() {
            wrong.push(format!("{}: a replica that does not stream", m.name));
        } else if primary.is_some() && !downstream.contains(&m.name) {
            wrong.push(format!(
                "{}: streams, but not from the primary {}",
                m.name,
                primary.map_or("", |p| p.name.as_str())
            ));
        }
    }
    if wrong.is_empty() {
        let p = primary.map_or("", |p| p.name.as_str());
        Ok(format!(
            "{p} primary; {} streaming",
            if downstream.is_empty() {
                "no standby".to_owned()
            } else {
                downstream.join(", ")
            }
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// The REST client of the harness: short timeouts, no TLS.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .expect("a reqwest client with default TLS settings")
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// `(name, api url, has a database)` of each member to observe.
pub type Targets = Vec<(String, String, bool)>;

pub async fn statuses(client: &reqwest::Client, targets: &Targets) -> Vec<MemberStatus> {
    let futures = targets.iter().map(|(name, api, database)| async move {
        MemberStatus {
            name: name.clone(),
            database: *database,
            doc: get_json(client, &format!("{api}/patroni")).await,
        }
    });
    futures::future::join_all(futures).await
}

/// The member names `GET /cluster` gives each role (`leader`, `sync_standby`, ...), asked of
/// the members in turn until one answers.
pub async fn cluster_roles(
    client: &reqwest::Client,
    targets: &Targets,
) -> Option<BTreeMap<String, String>> {
    for (_, api, _) in targets {
        if let Some(doc) = get_json(client, &format!("{api}/cluster")).await {
            return Some(
                doc["members"]
                    .as_array()?
                    .iter()
                    .filter_map(|m| {
                        Some((
                            m["name"].as_str()?.to_owned(),
                            m["role"].as_str()?.to_owned(),
                        ))
                    })
                    .collect(),
            );
        }
    }
    None
}

/// The member that leads Raft now (`tribune_raft_leader 1` in its `/metrics`).
pub async fn raft_leader(client: &reqwest::Client, targets: &Targets) -> Option<String> {
    for (name, api, _) in targets {
        let Ok(resp) = client.get(format!("{api}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = resp.text().await else {
            continue;
        };
        let leads = text
            .lines()
            .filter(|l| {
                l.starts_with("tribune_raft_leader{") || l.starts_with("tribune_raft_leader ")
            })
            .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0));
        if leads {
            return Some(name.clone());
        }
    }
    None
}

/// Records every change of a member's role until `stop`, every 250 ms. `targets` is re-read
/// each round (members come and go).
pub async fn sample_roles(
    client: reqwest::Client,
    targets: std::sync::Arc<std::sync::Mutex<Targets>>,
    recorder: Recorder,
    stop: CancellationToken,
) {
    let mut last: BTreeMap<String, (String, bool, Option<u32>)> = BTreeMap::new();
    while !stop.is_cancelled() {
        let now = targets.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for m in statuses(&client, &now).await {
            let seen = (m.role().to_owned(), m.streaming(), m.timeline());
            if last.get(&m.name) != Some(&seen) {
                recorder.record(Event::Role {
                    t: recorder.now(),
                    member: m.name.clone(),
                    role: seen.0.clone(),
                    streaming: seen.1,
                    timeline: seen.2,
                });
                last.insert(m.name.clone(), seen);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(name: &str, doc: Option<Value>) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            database: true,
            doc,
        }
    }

    fn primary(name: &str, streaming: &[&str]) -> MemberStatus {
        let replication: Vec<Value> = streaming
            .iter()
            .map(|s| json!({"application_name": s, "state": "streaming"}))
            .collect();
        member(
            name,
            Some(json!({"role": "primary", "state": "running", "replication": replication})),
        )
    }

    fn replica(name: &str, state: &str) -> MemberStatus {
        member(
            name,
            Some(json!({"role": "replica", "state": "running", "replication_state": state})),
        )
    }

    #[test]
    fn one_primary_and_every_replica_streaming_from_it_is_converged() {
        let members = [
            primary("n1", &["n2", "n3"]),
            replica("n2", "streaming"),
            replica("n3", "streaming"),
        ];
        assert_eq!(
            convergence(&members),
            Ok("n1 primary; n2, n3 streaming".to_owned())
        );
    }

    #[test]
    fn a_replica_that_cannot_follow_is_not_converged() {
        let members = [
            primary("n1", &["n2"]),
            replica("n2", "streaming"),
            replica("n3", "in archive recovery"),
        ];
        let err = convergence(&members).unwrap_err();
        assert!(err.contains("n3: a replica that does not stream"), "{err}");
    }

    #[test]
    fn two_primaries_or_none_are_not_converged() {
        let members = [
            primary("n1", &[]),
            primary("n2", &[]),
            replica("n3", "streaming"),
        ];
        assert!(
            convergence(&members)
                .unwrap_err()
                .contains("several primaries")
        );
        let members = [replica("n1", "streaming"), member("n2", None)];
        let err = convergence(&members).unwrap_err();
        assert!(
            err.contains("no running primary") && err.contains("n2: its REST API"),
            "{err}"
        );
    }

    #[test]
    fn a_witness_only_has_to_answer() {
        let witness = MemberStatus {
            name: "n3".into(),
            database: false,
            doc: Some(json!({"role": "witness", "state": "running"})),
        };
        let members = [primary("n1", &["n2"]), replica("n2", "streaming"), witness];
        assert!(convergence(&members).is_ok());
    }
}
