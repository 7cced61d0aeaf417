//! Carrying out a membership change on the Raft leader, and the leader's view of each node for
//! `GET /members`. The rules are `membership`'s; this module gathers the facts they need,
//! asks them, then acts through openraft.
//!
//! Adding a node: check (`plan_add`), ask the agent at the address what it is (`Membership`
//! RPC; `check_candidate`), add it as a learner and wait until it has caught up, then promote it
//! to voter. Removing a node: check (`plan_remove`), take it out of the membership (joint
//! consensus, by openraft), then commit [`Command::RetireNode`], which retires its id and drops
//! its member record. Each membership entry carries the membership it was derived from as a
//! precondition, and a mutex keeps this leader to one change at a time.
//!
//! Removing the Raft leader itself: it first hands leadership to the most up-to-date other
//! voter and answers "not leader", so the request is carried out by the new leader like any
//! other removal. openraft could step a removed leader down by itself, but the retirement must
//! be committed after the membership change, which a leader that stepped down cannot do.
//!
//! Hazard: after the learner was added, a failure leaves it in place (it does not vote, so the
//! quorum is unchanged); the refusal says so, and `members add` again resumes it.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError as OpenraftError};
use openraft::raft::Precondition;
use openraft::{BasicNode, ChangeMembers, Instant, ReadPolicy, ServerState};
use tracing::{info, warn};

use super::leader::{Answer, Done, Leader, not_leader, write, write_error};
use super::membership::{
    self, Candidate, MemberChange, Place, RaftMember, RaftMembers, Refusal, Roster,
};
use super::type_config::{Raft, TypeConfig};
use super::{NodeId, ProposeError, RaftStatus};
use crate::state::{ClusterState, Command, Outcome, Rejection};
use crate::types::MemberName;

/// How long a new learner may take to catch up before it is promoted.
pub(super) const CATCH_UP: Duration = Duration::from_secs(20);
/// How long the agent to add may take to say what it is.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a leader that is being removed waits for its successor to take over.
const HAND_OFF: Duration = Duration::from_secs(3);
/// How long a whole change may take, wherever it was asked: catch-up, the joint and the uniform
/// entries, and a hand-off.
pub(crate) const CHANGE_TIMEOUT: Duration = Duration::from_secs(40);

fn refused(refusal: Refusal) -> Result<Answer, ProposeError> {
    Ok(Answer::Done(Done::Changed(Err(refusal))))
}

fn changed(text: String) -> Result<Answer, ProposeError> {
    Ok(Answer::Done(Done::Changed(Ok(text))))
}

/// Carry out `change` if this node leads (see the module documentation).
pub(super) async fn execute(leader: &Leader, change: MemberChange) -> Result<Answer, ProposeError> {
    if let Some(answer) = not_leader(&leader.raft) {
        return Ok(answer);
    }
    let Ok(_one_at_a_time) = leader.changing.try_lock() else {
        return refused(Refusal::InProgress {
            detail: "another membership change is being carried out".into(),
        });
    };
    // The applied state must hold every committed entry (retired ids above all).
    match leader.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        Ok(_) => {}
        Err(OpenraftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
            return Ok(Answer::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            });
        }
        Err(OpenraftError::APIError(e)) => {
            return Err(ProposeError::Unreachable(format!(
                "no quorum confirmed this leader: {e}"
            )));
        }
        Err(OpenraftError::Fatal(e)) => return Err(ProposeError::Fatal(e.to_string())),
    }
    let state = leader.state.borrow().clone();
    let before = roster(&leader.raft);
    match change {
        MemberChange::Add { name, raft_addr } => {
            add(leader, &before, &state, &name, &raft_addr).await
        }
        MemberChange::Remove { name } => remove(leader, &before, &state, &name).await,
    }
}

/// Check the request and the agent at `raft_addr`, then add it.
async fn add(
    leader: &Leader,
    before: &Roster,
    state: &ClusterState,
    name: &MemberName,
    raft_addr: &str,
) -> Result<Answer, ProposeError> {
    let plan = match membership::plan_add(before, state, name, raft_addr) {
        Ok(plan) => plan,
        Err(refusal) => return refused(refusal),
    };
    let candidate = match leader.peers.probe(raft_addr, PROBE_TIMEOUT).await {
        Ok(reply) => candidate(&reply),
        Err(e) => {
            return refused(Refusal::Candidate(format!(
                "no agent of this cluster answers at {raft_addr} ({e}): start it first, \
                 with partner_addrs listing the members"
            )));
        }
    };
    if let Err(refusal) = membership::check_candidate(&candidate, &plan, name, raft_addr) {
        return refused(refusal);
    }
    learn_and_promote(&leader.raft, plan.node_id, name, raft_addr).await
}

/// Check the request, take the node out of the membership, then retire its id.
async fn remove(
    leader: &Leader,
    before: &Roster,
    state: &ClusterState,
    name: &MemberName,
) -> Result<Answer, ProposeError> {
    let plan = match membership::plan_remove(before, state, name) {
        Ok(plan) => plan,
        Err(refusal) => return refused(refusal),
    };
    if plan.node_id == leader.raft.metrics().borrow_watched().id {
        return hand_off(&leader.raft, before).await;
    }
    let removal = match plan.place {
        Place::Voter => Some(ChangeMembers::RemoveVoters(BTreeSet::from([plan.node_id]))),
        Place::Learner => Some(ChangeMembers::RemoveNodes(BTreeSet::from([plan.node_id]))),
        Place::Outside => None,
    };
    if let Some(removal) = removal {
        info!(
            member = %name,
            raft_addr = %plan.raft_addr,
            node_id = plan.node_id,
            "removing a node from the Raft membership"
        );
        if let Some(answer) = change_membership(&leader.raft, removal).await? {
            return Ok(answer);
        }
    }
    let retire = Command::RetireNode {
        node_id: plan.node_id,
        raft_addr: plan.raft_addr.clone(),
        member: plan.member.clone(),
    };
    match write(&leader.raft, retire).await? {
        Answer::Done(Done::Outcome(
            Outcome::Applied | Outcome::Rejected(Rejection::AlreadyRetired { .. }),
        )) => {}
        Answer::Done(Done::Outcome(Outcome::Rejected(Rejection::LeaderPresent { leader }))) => {
            return refused(Refusal::LeaseHolder { name: leader });
        }
        Answer::Done(other) => {
            return Err(ProposeError::Fatal(format!(
                "retiring node {} was answered {other:?}",
                plan.node_id
            )));
        }
        not_leader @ Answer::NotLeader { .. } => return Ok(not_leader),
    }
    let voters = roster(&leader.raft).voters.len();
    info!(member = %name, node_id = plan.node_id, "node removed and its id retired");
    changed(format!(
        "{name} ({}) was removed from the Raft cluster, which has {voters} voters now; \
         stop its agent: node id {} is retired and cannot rejoin",
        plan.raft_addr, plan.node_id
    ))
}

/// Add `node_id` as a learner, wait until it has caught up, promote it.
async fn learn_and_promote(
    raft: &Raft,
    node_id: NodeId,
    name: &MemberName,
    raft_addr: &str,
) -> Result<Answer, ProposeError> {
    info!(member = %name, raft_addr, node_id, "adding a node to the Raft membership as a learner");
    let node = BasicNode {
        addr: raft_addr.to_owned(),
    };
    match tokio::time::timeout(CATCH_UP, raft.add_learner(node_id, node, true)).await {
        Err(_) => {
            warn!(member = %name, "the new learner did not catch up in time; it stays a learner");
            return refused(Refusal::NotCaughtUp {
                name: name.clone(),
                secs: CATCH_UP.as_secs(),
            });
        }
        Ok(Err(e)) => return membership_error(e),
        Ok(Ok(_)) => {}
    }
    let promote = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
    if let Some(answer) = change_membership(raft, promote).await? {
        return Ok(answer);
    }
    let voters = roster(raft).voters.len();
    info!(member = %name, node_id, voters, "the new node is a voter");
    changed(format!(
        "{name} ({raft_addr}, node id {node_id}) is a voter now: the Raft cluster has {voters} voters"
    ))
}

/// Commit `change` (a joint then a uniform entry), provided the membership is still the one
/// observed now. `Some(answer)` when it was not done.
async fn change_membership(
    raft: &Raft,
    change: ChangeMembers<NodeId, BasicNode>,
) -> Result<Option<Answer>, ProposeError> {
    let observed = *raft.metrics().borrow_watched().membership_config.log_id();
    let precondition = Precondition::LastMembershipLogId {
        last_membership_log_id: observed,
    };
    match raft
        .change_membership_if(change, false, [precondition])
        .await
    {
        Ok(_) => Ok(None),
        Err(e) => membership_error(e).map(Some),
    }
}

/// How openraft's refusal of a membership entry reads to the operator.
fn membership_error(
    e: OpenraftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> Result<Answer, ProposeError> {
    match e {
        OpenraftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            refused(Refusal::InProgress {
                detail: e.to_string(),
            })
        }
        OpenraftError::APIError(ClientWriteError::PreconditionFailed(_)) => {
            refused(Refusal::InProgress {
                detail: "the membership changed meanwhile".into(),
            })
        }
        other => write_error(other),
    }
}

/// This leader is to be removed: hand leadership to the most up-to-date other voter, then
/// answer "not leader" so that the successor carries the removal out.
async fn hand_off(raft: &Raft, roster: &Roster) -> Result<Answer, ProposeError> {
    let (me, matched) = {
        let m = raft.metrics();
        let m = m.borrow_watched();
        (m.id, m.replication.clone().unwrap_or_default())
    };
    let successor = roster
        .voters
        .iter()
        .filter(|(id, _)| **id != me)
        .max_by_key(|(id, _)| matched.get(*id).cloned().flatten())
        .map(|(id, addr)| (*id, addr.clone()));
    let Some((successor, addr)) = successor else {
        return refused(Refusal::InProgress {
            detail: "no other voter can take Raft leadership over".into(),
        });
    };
    info!(%addr, "this node is being removed: handing Raft leadership to {addr} first");
    raft.trigger()
        .transfer_leader(successor)
        .await
        .map_err(|e| ProposeError::Fatal(e.to_string()))?;
    let mut metrics = raft.metrics();
    let moved = tokio::time::timeout(HAND_OFF, async {
        loop {
            if metrics.borrow_watched().state != ServerState::Leader {
                return;
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    if moved.is_err() {
        return refused(Refusal::InProgress {
            detail: format!("handing Raft leadership to {addr} before removing this node"),
        });
    }
    Ok(Answer::NotLeader {
        leader_id: Some(successor),
        leader_addr: Some(addr),
    })
}

/// The membership as openraft holds it now.
pub(super) fn roster(raft: &Raft) -> Roster {
    let m = raft.metrics();
    let m = m.borrow_watched();
    let status = RaftStatus::from_metrics(&m);
    Roster {
        voters: status.voters.into_iter().collect(),
        learners: status.learners.into_iter().collect(),
        settled: m.membership_config.membership().get_joint_config().len() == 1
            && m.membership_config.log_id() == m.committed_membership_config.log_id(),
    }
}

/// The leader's view of each node: voter or learner, and when it last answered.
pub(super) fn members(raft: &Raft) -> Answer {
    if let Some(answer) = not_leader(raft) {
        return answer;
    }
    let roster = roster(raft);
    let (me, heard) = {
        let m = raft.metrics();
        let m = m.borrow_watched();
        (m.id, m.heartbeat.clone().unwrap_or_default())
    };
    let last_ack_ms = |id: NodeId| {
        if id == me {
            return Some(0);
        }
        let at = heard.get(&id).cloned().flatten()?;
        Some(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
    };
    let nodes = listed(&roster, last_ack_ms);
    Answer::Done(Done::Members(RaftMembers {
        leader: Some(me),
        changing: !roster.settled,
        nodes,
    }))
}

/// This node's own view, when no leader answers: no acknowledgement times.
pub(super) fn local_members(raft: &Raft) -> RaftMembers {
    let roster = roster(raft);
    RaftMembers {
        leader: None,
        changing: !roster.settled,
        nodes: listed(&roster, |_| None),
    }
}

fn listed(roster: &Roster, last_ack_ms: impl Fn(NodeId) -> Option<u64>) -> Vec<RaftMember> {
    let mut nodes: Vec<RaftMember> = roster
        .voters
        .iter()
        .map(|n| (n, true))
        .chain(roster.learners.iter().map(|n| (n, false)))
        .map(|((id, addr), voter)| RaftMember {
            node_id: *id,
            raft_addr: addr.clone(),
            voter,
            last_ack_ms: last_ack_ms(*id),
        })
        .collect();
    nodes.sort_by_key(|n| n.node_id);
    nodes
}

/// What the agent at the address to add says about itself.
fn candidate(reply: &super::proto::MembershipReply) -> Candidate {
    Candidate {
        initialized: reply.initialized,
        self_addr: reply.self_addr.clone(),
        member_name: reply.member_name.clone(),
    }
}
