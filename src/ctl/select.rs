//! Which members a command acts on, from a `GET /cluster` document: the `-r/--role` filter,
//! named members, the leader, and the switchover/failover candidates. Pure functions; the
//! verbs print and ask.

use clap::ValueEnum;

use crate::api::{ClusterDocument, ClusterMember};

/// patronictl's role choices (`master` is accepted as `primary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The leader, of a regular or a standby cluster.
    Leader,
    /// The leader of a regular cluster.
    #[value(alias = "master")]
    Primary,
    /// The leader of a standby cluster.
    StandbyLeader,
    /// A member replicating from the leader.
    Replica,
    /// The same as replica.
    Standby,
    /// Every member.
    Any,
}

/// A witness votes in Raft but has no database: no restart, reinitialise or connection string.
pub fn is_witness(m: &ClusterMember) -> bool {
    m.role == "witness"
}

/// The leader of a regular or of a standby cluster.
pub fn is_leader(m: &ClusterMember) -> bool {
    m.role == "leader" || m.role == "standby_leader"
}

impl Role {
    pub fn matches(self, m: &ClusterMember) -> bool {
        match self {
            Role::Any => true,
            Role::Leader => is_leader(m),
            Role::Primary => m.role == "leader",
            Role::StandbyLeader => m.role == "standby_leader",
            Role::Replica | Role::Standby => !is_leader(m) && !is_witness(m),
        }
    }
}

pub fn leader(doc: &ClusterDocument) -> Option<&ClusterMember> {
    doc.members.iter().find(|m| is_leader(m))
}

pub fn member<'a>(doc: &'a ClusterDocument, name: &str) -> Option<&'a ClusterMember> {
    doc.members.iter().find(|m| m.name == name)
}

/// `nofailover: true`, or `failover_priority: 0`, as the agents read their own tags.
pub fn nofailover(m: &ClusterMember) -> bool {
    m.tags.nofailover()
}

/// Members a switchover or failover may promote: every member but `leader`, nofailover members
/// and witnesses, by name.
pub fn candidates(doc: &ClusterDocument, leader: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = doc
        .members
        .iter()
        .filter(|m| Some(m.name.as_str()) != leader && !nofailover(m) && !is_witness(m))
        .map(|m| m.name.clone())
        .collect();
    names.sort();
    names
}

/// How a list of names is shown in the candidate question: Python's `['a', 'b']`.
pub fn python_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("{0} is not a member of cluster")]
    NotAMember(String),
    #[error("no member of cluster {cluster} has the role {role}")]
    NoneWithRole { cluster: String, role: String },
}

/// The members named (each must exist), else every member; then those with `role`. Order:
/// as named, else by name.
pub fn by_names_and_role<'a>(
    doc: &'a ClusterDocument,
    names: &[String],
    role: Role,
) -> Result<Vec<&'a ClusterMember>, SelectError> {
    let chosen: Vec<&ClusterMember> = if names.is_empty() {
        doc.members.iter().collect()
    } else {
        names
            .iter()
            .map(|n| member(doc, n).ok_or_else(|| SelectError::NotAMember(n.clone())))
            .collect::<Result<_, _>>()?
    };
    let chosen: Vec<&ClusterMember> = chosen.into_iter().filter(|m| role.matches(m)).collect();
    if chosen.is_empty() {
        return Err(SelectError::NoneWithRole {
            cluster: doc.scope.clone(),
            role: role
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default(),
        });
    }
    Ok(chosen)
}

/// Names joined as patronictl lists them in questions: `node0, node1`.
pub fn names(members: &[&ClusterMember]) -> String {
    members
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// node0 leader, node1 replica, node2 replica with `nofailover`, w witness.
    pub fn doc() -> ClusterDocument {
        serde_json::from_value(serde_json::json!({
            "scope": "itest",
            "members": [
                {"name": "node0", "role": "leader", "state": "running", "api_url": "http://127.0.0.11:8008/patroni",
                 "host": "127.0.0.11", "port": 5432},
                {"name": "node1", "role": "sync_standby", "state": "streaming", "api_url": "http://127.0.0.12:8008/patroni",
                 "host": "127.0.0.12", "port": 5432},
                {"name": "node2", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.13:8008/patroni",
                 "host": "127.0.0.13", "port": 5432, "tags": {"nofailover": true}},
                {"name": "w", "role": "witness", "state": "running", "api_url": "http://127.0.0.14:8008/patroni"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn roles() {
        let doc = doc();
        let names_with = |role| {
            by_names_and_role(&doc, &[], role)
                .map(|ms| names(&ms))
                .unwrap_or_default()
        };
        assert_eq!(names_with(Role::Any), "node0, node1, node2, w");
        assert_eq!(names_with(Role::Leader), "node0");
        assert_eq!(names_with(Role::Primary), "node0");
        assert_eq!(names_with(Role::StandbyLeader), "");
        assert_eq!(names_with(Role::Replica), "node1, node2");
        assert_eq!(names_with(Role::Standby), "node1, node2");
        assert_eq!(Role::from_str("master", true), Ok(Role::Primary));
    }

    #[test]
    fn named_members_must_exist_and_keep_their_order() {
        let doc = doc();
        let two = by_names_and_role(&doc, &["node2".into(), "node0".into()], Role::Any).unwrap();
        assert_eq!(names(&two), "node2, node0");
        assert_eq!(
            by_names_and_role(&doc, &["node9".into()], Role::Any).unwrap_err(),
            SelectError::NotAMember("node9".into())
        );
        assert_eq!(
            by_names_and_role(&doc, &["node0".into()], Role::Replica)
                .unwrap_err()
                .to_string(),
            "no member of cluster itest has the role replica"
        );
    }

    #[test]
    fn candidates_leave_out_the_leader_nofailover_members_and_witnesses() {
        let doc = doc();
        assert_eq!(candidates(&doc, Some("node0")), ["node1"]);
        assert_eq!(candidates(&doc, None), ["node0", "node1"]);
        assert_eq!(python_list(&candidates(&doc, None)), "['node0', 'node1']");
        let mut m = doc.members[1].clone();
        m.tags = serde_json::from_value(serde_json::json!({"failover_priority": 0})).unwrap();
        assert!(nofailover(&m));
        m.tags = serde_json::from_value(serde_json::json!({"nofailover": false})).unwrap();
        assert!(!nofailover(&m));
    }
}
