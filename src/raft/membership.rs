//! Online membership, the pure part: the requests ([`MemberChange`], [`MembersRequest`]), the
//! refusals ([`Refusal`]) and the rules that decide, from the Raft membership ([`Roster`]) and
//! the replicated [`ClusterState`], whether a change may go ahead and what it must do
//! ([`plan_add`], [`check_candidate`], [`plan_remove`]). No I/O and no clock: the Raft leader
//! (`change`) gathers the facts, asks these functions, then acts.
//!
//! Rules, in the order they are checked:
//! - One change at a time: nothing is changed while the last membership entry is joint or not
//!   yet committed.
//! - Adding: the address's node id must never have been retired (ids are never reused,
//!   stack.md pitfall 5), must not be a voter already or collide with another node's id, and
//!   the name must not belong to a member on another address. The agent at the address must
//!   answer, be named as the operator said, advertise exactly that address, and hold no Raft
//!   log of its own (it would diverge from ours at index 0).
//! - Removing: never the holder of the leader lease (switch over first), never below three
//!   voters (a Raft cluster of two cannot lose a node). A member whose node is no longer in the
//!   membership (an interrupted removal) is only retired.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{NodeId, node_id_for};
use crate::state::ClusterState;
use crate::types::MemberName;

/// Fewer voters than this cannot survive the loss of one.
pub const MIN_VOTERS: usize = 3;

/// An operator's change of the Raft membership, carried out by the Raft leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add the agent at `raft_addr`, named `name`, as a voter: as a learner first, promoted once
    /// it has caught up.
    Add { name: MemberName, raft_addr: String },
    /// Remove the voter (or learner) that member `name` runs on, and retire its node id.
    /// `name` may also be the Raft address of a node that never reported.
    Remove { name: MemberName },
}

/// What a follower forwards to the leader through `ForwardMembers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MembersRequest {
    Change(MemberChange),
    Read,
}

/// The Raft membership as the leader sees it: each node, whether it votes, and how recently it
/// answered the leader.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMembers {
    /// The node that answered as leader; `None` when this is a node's local view (no leader).
    pub leader: Option<NodeId>,
    /// The last membership entry is joint or not committed yet.
    pub changing: bool,
    /// Sorted by node id.
    pub nodes: Vec<RaftMember>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMember {
    pub node_id: NodeId,
    pub raft_addr: String,
    pub voter: bool,
    /// Milliseconds since the leader last heard from this node (0 for the leader itself);
    /// `None` when unknown (never heard, or no leader).
    pub last_ack_ms: Option<u64>,
}

/// Why a membership change was refused. Nothing was changed, except where the message says a
/// learner was left in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("a membership change is in progress ({detail}): wait for it to finish and try again")]
    InProgress { detail: String },
    #[error(
        "{raft_addr} was the Raft address of {}, removed from this cluster, and a node id is never \
         reused: start the new agent on another Raft address (another port will do)",
        member.as_ref().map_or("a node".to_owned(), |m| format!("member {m}"))
    )]
    Retired {
        raft_addr: String,
        member: Option<MemberName>,
    },
    #[error("{raft_addr} is already a voter of this cluster")]
    AlreadyVoter { raft_addr: String },
    #[error(
        "the Raft address {raft_addr} has the node id of {other}: give the new agent another address"
    )]
    IdCollision { raft_addr: String, other: String },
    #[error(
        "a member named {name} already runs at Raft address {raft_addr}: remove it first or choose another name"
    )]
    NameTaken { name: MemberName, raft_addr: String },
    #[error("{0}")]
    Candidate(String),
    #[error("{name} is not a member of this cluster")]
    UnknownMember { name: MemberName },
    #[error(
        "{name} holds the leader lease: switch over to another member first (tribunectl switchover)"
    )]
    LeaseHolder { name: MemberName },
    #[error(
        "removing {name} would leave {left} Raft voters, and at least {MIN_VOTERS} are needed to \
         survive the loss of one: add a member first"
    )]
    TooFewVoters { name: MemberName, left: usize },
    #[error(
        "{name} was added as a learner but did not catch up within {secs} s: run members add \
         again to finish, or members remove {name} to withdraw it"
    )]
    NotCaughtUp { name: MemberName, secs: u64 },
}

/// How a caller should read a [`Refusal`] (the REST API maps each to a status code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// It conflicts with the cluster's state or history (a change in progress, a retired id).
    Conflict,
    /// It names a member the cluster does not know.
    NotFound,
    /// The cluster is not in a state that allows it (lease holder, too few voters, the agent to
    /// add is not ready).
    Precondition,
    /// It may succeed later without any change (a learner still catching up).
    Unavailable,
}

impl Refusal {
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::InProgress { .. }
            | Refusal::Retired { .. }
            | Refusal::AlreadyVoter { .. }
            | Refusal::IdCollision { .. }
            | Refusal::NameTaken { .. } => RefusalKind::Conflict,
            Refusal::UnknownMember { .. } => RefusalKind::NotFound,
            Refusal::Candidate(_) | Refusal::LeaseHolder { .. } | Refusal::TooFewVoters { .. } => {
                RefusalKind::Precondition
            }
            Refusal::NotCaughtUp { .. } => RefusalKind::Unavailable,
        }
    }
}

/// The Raft membership a change starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roster {
    pub voters: BTreeMap<NodeId, String>,
    pub learners: BTreeMap<NodeId, String>,
    /// The last membership entry is uniform and committed: a new change may start.
    pub settled: bool,
}

impl Roster {
    fn addr_of(&self, id: NodeId) -> Option<&String> {
        self.voters.get(&id).or_else(|| self.learners.get(&id))
    }

    fn id_of(&self, addr: &str) -> Option<NodeId> {
        self.voters
            .iter()
            .chain(&self.learners)
            .find(|(_, a)| a.as_str() == addr)
            .map(|(id, _)| *id)
    }

    fn check_settled(&self) -> Result<(), Refusal> {
        if self.settled {
            Ok(())
        } else {
            Err(Refusal::InProgress {
                detail: "the last membership change is not committed yet".into(),
            })
        }
    }
}

/// How to add a node that passed [`plan_add`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AddPlan {
    pub node_id: NodeId,
    /// It is a learner already (an earlier add did not finish): catch it up and promote it.
    pub resume: bool,
}

pub(crate) fn plan_add(
    roster: &Roster,
    state: &ClusterState,
    name: &MemberName,
    raft_addr: &str,
) -> Result<AddPlan, Refusal> {
    roster.check_settled()?;
    let node_id = node_id_for(raft_addr);
    let retired = state
        .retired
        .get(&node_id)
        .or_else(|| state.retired_addr(raft_addr));
    if let Some(retired) = retired {
        return Err(Refusal::Retired {
            raft_addr: raft_addr.to_owned(),
            member: retired.member.clone(),
        });
    }
    match roster.addr_of(node_id) {
        Some(addr) if addr != raft_addr => {
            return Err(Refusal::IdCollision {
                raft_addr: raft_addr.to_owned(),
                other: addr.clone(),
            });
        }
        _ if roster.voters.contains_key(&node_id) => {
            return Err(Refusal::AlreadyVoter {
                raft_addr: raft_addr.to_owned(),
            });
        }
        _ => {}
    }
    if let Some(taken) = state
        .members
        .get(name)
        .and_then(|m| m.raft_addr.as_ref())
        .filter(|addr| addr.as_str() != raft_addr)
    {
        return Err(Refusal::NameTaken {
            name: name.clone(),
            raft_addr: taken.clone(),
        });
    }
    Ok(AddPlan {
        node_id,
        resume: roster.learners.contains_key(&node_id),
    })
}

/// What the agent at the address to add said about itself (the `Membership` RPC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub initialized: bool,
    pub self_addr: String,
    pub member_name: String,
}

/// Whether the agent that answered at `raft_addr` is the node `plan` adds.
pub(crate) fn check_candidate(
    candidate: &Candidate,
    plan: &AddPlan,
    name: &MemberName,
    raft_addr: &str,
) -> Result<(), Refusal> {
    if candidate.self_addr != raft_addr {
        return Err(Refusal::Candidate(format!(
            "the agent at {raft_addr} advertises the Raft address {}: give exactly its raft.self_addr",
            candidate.self_addr
        )));
    }
    if candidate.member_name != name.as_str() {
        return Err(Refusal::Candidate(format!(
            "the agent at {raft_addr} is named '{}', not '{name}'",
            candidate.member_name
        )));
    }
    if candidate.initialized && !plan.resume {
        return Err(Refusal::Candidate(format!(
            "the agent at {raft_addr} already holds a Raft log of its own: stop it, empty its \
             raft.data_dir and start it again"
        )));
    }
    Ok(())
}

/// Where the node to remove is in the membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Voter,
    Learner,
    /// Not in the membership any more (a removal that stopped before retiring it).
    Outside,
}

/// How to remove a node that passed [`plan_remove`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemovePlan {
    pub node_id: NodeId,
    pub raft_addr: String,
    /// The member record to drop with it (`None`: the node never reported).
    pub member: Option<MemberName>,
    pub place: Place,
}

pub(crate) fn plan_remove(
    roster: &Roster,
    state: &ClusterState,
    name: &MemberName,
) -> Result<RemovePlan, Refusal> {
    roster.check_settled()?;
    let unknown = || Refusal::UnknownMember { name: name.clone() };
    let (member, raft_addr) = match state.members.get(name) {
        Some(record) => (
            Some(name.clone()),
            record.raft_addr.clone().ok_or_else(unknown)?,
        ),
        // A node that never reported is named by its address.
        None if roster.id_of(name.as_str()).is_some() => (None, name.as_str().to_owned()),
        None => return Err(unknown()),
    };
    if state.leader_name() == Some(name) {
        return Err(Refusal::LeaseHolder { name: name.clone() });
    }
    let node_id = roster
        .id_of(&raft_addr)
        .unwrap_or_else(|| node_id_for(&raft_addr));
    let place = if roster.voters.contains_key(&node_id) {
        Place::Voter
    } else if roster.learners.contains_key(&node_id) {
        Place::Learner
    } else {
        Place::Outside
    };
    if place == Place::Voter && roster.voters.len() <= MIN_VOTERS {
        return Err(Refusal::TooFewVoters {
            name: name.clone(),
            left: roster.voters.len() - 1,
        });
    }
    Ok(RemovePlan {
        node_id,
        raft_addr,
        member,
        place,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Leader, Member, RetiredNode};
    use crate::types::{Generation, UnixMillis};

    const A: &str = "10.0.0.1:2222";
    const B: &str = "10.0.0.2:2222";
    const C: &str = "10.0.0.3:2222";
    const D: &str = "10.0.0.4:2222";
    const E: &str = "10.0.0.5:2222";

    /// What, the membership, the state, the name, the address, and the plan or refusal.
    type AddCase = (
        &'static str,
        Roster,
        ClusterState,
        &'static str,
        &'static str,
        Result<AddPlan, Refusal>,
    );
    /// What, the membership, the state, the name, and the plan or refusal.
    type RemoveCase<'a> = (
        &'static str,
        Roster,
        &'a ClusterState,
        &'static str,
        Result<RemovePlan, Refusal>,
    );

    fn name(s: &str) -> MemberName {
        MemberName::from(s)
    }

    fn roster(voters: &[&str], learners: &[&str]) -> Roster {
        let nodes = |addrs: &[&str]| {
            addrs
                .iter()
                .map(|a| (node_id_for(a), a.to_string()))
                .collect()
        };
        Roster {
            voters: nodes(voters),
            learners: nodes(learners),
            settled: true,
        }
    }

    fn record(addr: &str) -> Member {
        Member::at_raft_addr(addr, Default::default())
    }

    /// Members a, b, c on A, B, C; a holds the lease; "gone" once ran on E, now retired.
    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for (n, addr) in [("a", A), ("b", B), ("c", C)] {
            s.members.insert(name(n), record(addr));
        }
        s.leader = Some(Leader {
            member: name("a"),
            generation: Generation(1),
            renewals: 0,
            since: UnixMillis(0),
            renewed_at: UnixMillis(0),
            lease_ms: None,
        });
        s.retired.insert(
            node_id_for(E),
            RetiredNode {
                raft_addr: E.into(),
                member: Some(name("gone")),
                at: UnixMillis(0),
            },
        );
        s
    }

    #[test]
    fn adding_a_node() {
        let unsettled = Roster {
            settled: false,
            ..roster(&[A, B, C], &[])
        };
        let mut with_d = state();
        with_d.members.insert(name("d"), record(D));
        let cases: Vec<AddCase> = vec![
            (
                "a new node is added as a learner first",
                roster(&[A, B, C], &[]),
                state(),
                "d",
                D,
                Ok(AddPlan {
                    node_id: node_id_for(D),
                    resume: false,
                }),
            ),
            (
                "an interrupted add resumes with its learner",
                roster(&[A, B, C], &[D]),
                with_d.clone(),
                "d",
                D,
                Ok(AddPlan {
                    node_id: node_id_for(D),
                    resume: true,
                }),
            ),
            (
                "one change at a time",
                unsettled,
                state(),
                "d",
                D,
                Err(Refusal::InProgress {
                    detail: "the last membership change is not committed yet".into(),
                }),
            ),
            (
                "a retired id is never reused",
                roster(&[A, B, C], &[]),
                state(),
                "e",
                E,
                Err(Refusal::Retired {
                    raft_addr: E.into(),
                    member: Some(name("gone")),
                }),
            ),
            (
                "a voter is not added twice",
                roster(&[A, B, C], &[]),
                state(),
                "b",
                B,
                Err(Refusal::AlreadyVoter {
                    raft_addr: B.into(),
                }),
            ),
            (
                "a name in use on another address",
                roster(&[A, B, C], &[]),
                state(),
                "c",
                D,
                Err(Refusal::NameTaken {
                    name: name("c"),
                    raft_addr: C.into(),
                }),
            ),
        ];
        for (what, roster, state, n, addr, expected) in cases {
            assert_eq!(
                plan_add(&roster, &state, &name(n), addr),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn two_addresses_with_one_node_id_are_refused() {
        let mut r = roster(&[A, B, C], &[]);
        r.voters.insert(node_id_for(D), "10.9.9.9:1".into());
        assert_eq!(
            plan_add(&r, &state(), &name("d"), D),
            Err(Refusal::IdCollision {
                raft_addr: D.into(),
                other: "10.9.9.9:1".into()
            })
        );
    }

    #[test]
    fn the_agent_to_add_must_be_the_one_named() {
        let fresh = AddPlan {
            node_id: node_id_for(D),
            resume: false,
        };
        let resumed = AddPlan {
            resume: true,
            ..fresh.clone()
        };
        let answer = |initialized, addr: &str, n: &str| Candidate {
            initialized,
            self_addr: addr.into(),
            member_name: n.into(),
        };
        let cases = [
            ("a pristine agent", answer(false, D, "d"), &fresh, Ok(())),
            (
                "our own learner, resumed",
                answer(true, D, "d"),
                &resumed,
                Ok(()),
            ),
            (
                "an agent with a log of its own",
                answer(true, D, "d"),
                &fresh,
                Err("already holds a Raft log of its own"),
            ),
            (
                "another name",
                answer(false, D, "x"),
                &fresh,
                Err("is named 'x', not 'd'"),
            ),
            (
                "another spelling of its address",
                answer(false, "localhost:2222", "d"),
                &fresh,
                Err("advertises the Raft address localhost:2222"),
            ),
        ];
        for (what, candidate, plan, expected) in cases {
            let got = check_candidate(&candidate, plan, &name("d"), D);
            match expected {
                Ok(()) => assert_eq!(got, Ok(()), "{what}"),
                Err(text) => {
                    let refusal = got.expect_err(what);
                    assert_eq!(refusal.kind(), RefusalKind::Precondition, "{what}");
                    assert!(refusal.to_string().contains(text), "{what}: {refusal}");
                }
            }
        }
    }

    #[test]
    fn removing_a_node() {
        let five = roster(&[A, B, C, D], &[]);
        let without_d = state();
        let mut with_d = state();
        with_d.members.insert(name("d"), record(D));
        let plan = |addr: &str, member: Option<&str>, place| {
            Ok(RemovePlan {
                node_id: node_id_for(addr),
                raft_addr: addr.into(),
                member: member.map(name),
                place,
            })
        };
        let cases: Vec<RemoveCase> = vec![
            (
                "a voter of four",
                five.clone(),
                &with_d,
                "d",
                plan(D, Some("d"), Place::Voter),
            ),
            (
                "never the lease holder",
                five.clone(),
                &with_d,
                "a",
                Err(Refusal::LeaseHolder { name: name("a") }),
            ),
            (
                "never below three voters",
                roster(&[A, B, C], &[]),
                &with_d,
                "b",
                Err(Refusal::TooFewVoters {
                    name: name("b"),
                    left: 2,
                }),
            ),
            (
                "a learner, whatever the number of voters",
                roster(&[A, B, C], &[D]),
                &with_d,
                "d",
                plan(D, Some("d"), Place::Learner),
            ),
            (
                "a learner that never reported, by its address",
                roster(&[A, B, C], &[D]),
                &without_d,
                D,
                plan(D, None, Place::Learner),
            ),
            (
                "a member whose node already left is only retired",
                roster(&[A, B, C], &[]),
                &with_d,
                "d",
                plan(D, Some("d"), Place::Outside),
            ),
            (
                "an unknown name",
                five.clone(),
                &with_d,
                "nobody",
                Err(Refusal::UnknownMember {
                    name: name("nobody"),
                }),
            ),
            (
                "one change at a time",
                Roster {
                    settled: false,
                    ..five
                },
                &with_d,
                "d",
                Err(Refusal::InProgress {
                    detail: "the last membership change is not committed yet".into(),
                }),
            ),
        ];
        for (what, roster, state, n, expected) in cases {
            assert_eq!(plan_remove(&roster, state, &name(n)), expected, "{what}");
        }
    }

    #[test]
    fn every_refusal_is_one_line_with_a_kind() {
        let refusals = [
            Refusal::Retired {
                raft_addr: E.into(),
                member: None,
            },
            Refusal::TooFewVoters {
                name: name("b"),
                left: 2,
            },
            Refusal::NotCaughtUp {
                name: name("d"),
                secs: 20,
            },
        ];
        for refusal in refusals {
            let text = refusal.to_string();
            assert!(!text.contains('\n'), "{text}");
            let _ = refusal.kind();
        }
        assert_eq!(
            Refusal::Retired {
                raft_addr: E.into(),
                member: Some(name("gone"))
            }
            .to_string(),
            "10.0.0.5:2222 was the Raft address of member gone, removed from this cluster, and a \
             node id is never reused: start the new agent on another Raft address (another port \
             will do)"
        );
    }
}
