//! The Raft membership endpoints. Tribune's own, not Patroni's (Patroni's members come and go
//! with their DCS keys; a Raft cluster's voters are changed on purpose):
//!
//! - `GET /members`: each node of the Raft membership and each reported member: name, Raft
//!   address, node id, voter or learner, whether the Raft leader hears it, when it last
//!   reported; and the retired node ids ([`MembersDocument`]).
//! - `POST /members` `{"name": NAME, "raft_addr": "host:port"}`: add the agent at that address
//!   as a voter (it must be running, with partner_addrs listing the members).
//! - `DELETE /members/NAME`: remove that member's node and retire its node id.
//!
//! Any member answers: changes are carried out by the Raft leader, forwarded through Raft.
//! Replies are one line of plain text with Patroni's habits for codes: 200 done, 400 bad body,
//! 404 unknown member, 409 a change in progress or a retired id, 412 a refused removal or an
//! agent not ready to be added, 503 no quorum (or an outcome that is unknown).
//!
//! Must not: change anything when a request is refused (the Raft leader checks, then acts).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiState, json};
use crate::raft::{
    MemberChange, MembersError, RaftMembers, RefusalKind, check_raft_addr, node_id_for,
};
use crate::state::ClusterState;
use crate::timestamp::iso_time;
use crate::types::MemberName;

/// `GET /members`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MembersDocument {
    pub scope: String,
    /// The Raft leader (member name, or Raft address if it never reported); `null` when no
    /// leader answered, and then `reachable` is unknown for every node.
    pub raft_leader: Option<String>,
    /// A membership change is under way (joint or uncommitted membership).
    pub change_in_progress: bool,
    /// Raft nodes first (by name; nodes that never reported last), then members whose node is
    /// not in the membership.
    pub members: Vec<MembersRow>,
    /// Node ids never to be given again.
    pub retired: Vec<RetiredRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MembersRow {
    /// `null` for a node whose agent never reported.
    pub name: Option<String>,
    pub raft_addr: String,
    pub node_id: u64,
    /// `voter`, `learner`, or `none` (a member record whose node is not in the membership).
    pub raft_role: String,
    /// The role the member reports (`primary`, `replica`, `witness`, ...).
    pub role: Option<String>,
    /// Whether the Raft leader heard from it recently; `null` when unknown.
    pub reachable: Option<bool>,
    /// Milliseconds since the Raft leader last heard from it.
    pub last_ack_ms: Option<u64>,
    pub last_reported: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetiredRow {
    pub node_id: u64,
    pub raft_addr: String,
    pub name: Option<String>,
    pub retired_at: String,
}

/// The membership document from the leader's view (or this node's, with no leader) and the
/// replicated state. A node the leader heard from within `reachable_within` is reachable.
pub fn document(
    scope: &str,
    raft: &RaftMembers,
    cluster: &ClusterState,
    reachable_within: Duration,
) -> MembersDocument {
    let name_at = |addr: &str| {
        cluster
            .members
            .iter()
            .find(|(_, m)| m.raft_addr.as_deref() == Some(addr))
            .map(|(name, _)| name)
    };
    let within = u64::try_from(reachable_within.as_millis()).unwrap_or(u64::MAX);
    let mut rows: Vec<MembersRow> = raft
        .nodes
        .iter()
        .map(|node| {
            let name = name_at(&node.raft_addr);
            let record = name.and_then(|n| cluster.members.get(n));
            MembersRow {
                name: name.map(|n| n.to_string()),
                raft_addr: node.raft_addr.clone(),
                node_id: node.node_id,
                raft_role: if node.voter { "voter" } else { "learner" }.to_owned(),
                role: record.map(|m| m.status.role.as_str().to_owned()),
                reachable: raft
                    .leader
                    .map(|_| node.last_ack_ms.is_some_and(|ms| ms <= within)),
                last_ack_ms: node.last_ack_ms,
                last_reported: record.map(|m| iso_time(m.reported_at)),
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.name.is_none(), &a.name).cmp(&(b.name.is_none(), &b.name)));
    for (name, m) in &cluster.members {
        let addr = m.raft_addr.clone().unwrap_or_default();
        if rows.iter().any(|r| r.raft_addr == addr) {
            continue;
        }
        rows.push(MembersRow {
            name: Some(name.to_string()),
            node_id: node_id_for(&addr),
            raft_addr: addr,
            raft_role: "none".to_owned(),
            role: Some(m.status.role.as_str().to_owned()),
            reachable: None,
            last_ack_ms: None,
            last_reported: Some(iso_time(m.reported_at)),
        });
    }
    let raft_leader = raft.leader.and_then(|id| {
        rows.iter()
            .find(|r| r.node_id == id)
            .map(|r| r.name.clone().unwrap_or_else(|| r.raft_addr.clone()))
    });
    MembersDocument {
        scope: scope.to_owned(),
        raft_leader,
        change_in_progress: raft.changing,
        members: rows,
        retired: cluster
            .retired
            .iter()
            .map(|(id, r)| RetiredRow {
                node_id: *id,
                raft_addr: r.raft_addr.clone(),
                name: r.member.as_ref().map(|m| m.to_string()),
                retired_at: iso_time(r.at),
            })
            .collect(),
    }
}

/// A reply: status code and one line of text.
fn text(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

pub async fn get_members(State(s): State<ApiState>) -> Response {
    let raft = &s.inner.raft;
    let view = match raft.members().await {
        Ok(view) => view,
        Err(err) => {
            tracing::debug!(error = %err, "no Raft leader answered GET /members; local view");
            raft.local_members()
        }
    };
    let config = &s.inner.config;
    let reachable_within = config.raft.election_timeout_max * 2;
    let doc = document(&config.scope, &view, &raft.state(), reachable_within);
    json(StatusCode::OK, &doc)
}

/// The body of `POST /members`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    name: String,
    raft_addr: String,
}

/// A member name must be usable in a URL path and a command line.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!(
            "name {name:?} must not contain spaces, control characters or '/'"
        ));
    }
    Ok(())
}

/// Read and check the body of `POST /members`; the error is the 400 reply's text.
fn add_request(body: &[u8]) -> Result<MemberChange, String> {
    let body: AddBody = serde_json::from_slice(body)
        .map_err(|e| format!("the body must be {{\"name\": ..., \"raft_addr\": ...}}: {e}"))?;
    check_name(&body.name)?;
    check_raft_addr(&body.raft_addr).map_err(|e| format!("raft_addr: {e}"))?;
    Ok(MemberChange::Add {
        name: MemberName::new(body.name),
        raft_addr: body.raft_addr,
    })
}

pub async fn post_members(State(s): State<ApiState>, body: Bytes) -> Response {
    match add_request(&body) {
        Ok(change) => carry_out(&s, change).await,
        Err(message) => text(StatusCode::BAD_REQUEST, message),
    }
}

pub async fn delete_member(State(s): State<ApiState>, Path(name): Path<String>) -> Response {
    if let Err(message) = check_name(&name) {
        return text(StatusCode::BAD_REQUEST, message);
    }
    carry_out(
        &s,
        MemberChange::Remove {
            name: MemberName::new(name),
        },
    )
    .await
}

async fn carry_out(s: &ApiState, change: MemberChange) -> Response {
    match s.inner.raft.change_members(change).await {
        Ok(done) => text(StatusCode::OK, done),
        Err(err) => {
            let code = status_of(&err);
            text(code, err.to_string())
        }
    }
}

/// The one place a membership error becomes a status code.
fn status_of(err: &MembersError) -> StatusCode {
    match err {
        MembersError::Refused(refusal) => match refusal.kind() {
            RefusalKind::Conflict => StatusCode::CONFLICT,
            RefusalKind::NotFound => StatusCode::NOT_FOUND,
            RefusalKind::Precondition => StatusCode::PRECONDITION_FAILED,
            RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        },
        // No quorum, no leader, or an outcome that is unknown.
        MembersError::Propose(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{ProposeError, RaftMember, Refusal};
    use crate::state::{Member, ReportedRole, RetiredNode};
    use crate::types::UnixMillis;

    #[test]
    fn add_requests_are_checked_before_anything_is_asked() {
        let ok = add_request(br#"{"name": "node3", "raft_addr": "127.0.0.14:2222"}"#);
        assert_eq!(
            ok,
            Ok(MemberChange::Add {
                name: MemberName::from("node3"),
                raft_addr: "127.0.0.14:2222".into()
            })
        );
        let cases: [(&[u8], &str); 6] = [
            (b"", "the body must be"),
            (br#"{"name": "node3"}"#, "missing field `raft_addr`"),
            (
                br#"{"name": "node3", "raft_addr": "x:1", "role": "x"}"#,
                "unknown field `role`",
            ),
            (br#"{"name": "", "raft_addr": "x:1"}"#, "name is empty"),
            (
                br#"{"name": "a b", "raft_addr": "x:1"}"#,
                "must not contain spaces",
            ),
            (
                br#"{"name": "node3", "raft_addr": "127.0.0.14"}"#,
                "raft_addr: \"127.0.0.14\" is not host:port",
            ),
        ];
        for (body, expected) in cases {
            let err = add_request(body).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn every_refusal_has_its_status_code() {
        let name = || MemberName::from("b");
        let cases = [
            (Refusal::InProgress { detail: "x".into() }, 409),
            (
                Refusal::Retired {
                    raft_addr: "x:1".into(),
                    member: None,
                },
                409,
            ),
            (Refusal::UnknownMember { name: name() }, 404),
            (Refusal::LeaseHolder { name: name() }, 412),
            (
                Refusal::TooFewVoters {
                    name: name(),
                    left: 2,
                },
                412,
            ),
            (
                Refusal::NotCaughtUp {
                    name: name(),
                    secs: 1,
                },
                503,
            ),
        ];
        for (refusal, code) in cases {
            assert_eq!(
                status_of(&MembersError::Refused(refusal.clone())).as_u16(),
                code,
                "{refusal}"
            );
        }
        assert_eq!(
            status_of(&MembersError::Propose(ProposeError::NoLeader)).as_u16(),
            503
        );
    }

    fn record(addr: &str, role: ReportedRole) -> Member {
        Member {
            reported_at: UnixMillis(1_700_000_000_000),
            ..Member::at_raft_addr(addr, role)
        }
    }

    #[test]
    fn the_document_joins_the_raft_view_and_the_member_records() {
        let (a, w, l, gone) = ("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.9:1");
        let mut cluster = ClusterState::default();
        cluster
            .members
            .insert(MemberName::from("a"), record(a, ReportedRole::Primary));
        cluster
            .members
            .insert(MemberName::from("w"), record(w, ReportedRole::Witness));
        cluster.members.insert(
            MemberName::from("stale"),
            record(gone, ReportedRole::Replica),
        );
        cluster.retired.insert(
            7,
            RetiredNode {
                raft_addr: "10.0.0.7:1".into(),
                member: Some(MemberName::from("old")),
                at: UnixMillis(1_700_000_000_000),
            },
        );
        let node = |addr: &str, voter, last_ack_ms| RaftMember {
            node_id: node_id_for(addr),
            raft_addr: addr.into(),
            voter,
            last_ack_ms,
        };
        let raft = RaftMembers {
            leader: Some(node_id_for(a)),
            changing: false,
            nodes: vec![
                node(a, true, Some(0)),
                node(w, true, Some(5000)),
                node(l, false, Some(10)),
            ],
        };
        let doc = document("demo", &raft, &cluster, Duration::from_secs(1));
        assert_eq!(doc.raft_leader.as_deref(), Some("a"));
        let row = |addr: &str| doc.members.iter().find(|r| r.raft_addr == addr).unwrap();
        assert_eq!(row(a).reachable, Some(true));
        assert_eq!(row(w).role.as_deref(), Some("witness"));
        assert_eq!(row(w).reachable, Some(false));
        assert_eq!(
            (row(l).name.clone(), row(l).raft_role.as_str()),
            (None, "learner")
        );
        assert_eq!(row(gone).raft_role, "none");
        assert_eq!(row(gone).reachable, None);
        assert_eq!(doc.retired[0].name.as_deref(), Some("old"));

        // No leader: reachability is unknown.
        let local = RaftMembers {
            leader: None,
            ..raft
        };
        let doc = document("demo", &local, &cluster, Duration::from_secs(1));
        assert_eq!(doc.raft_leader, None);
        assert!(doc.members.iter().all(|r| r.reachable.is_none()));
    }
}
