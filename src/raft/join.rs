//! Start-up of a node whose Raft log is empty: initialize a new cluster, or wait for a leader.
//!
//! A node added to a running cluster must never initialize: its own index-0 membership entry
//! would diverge silently from the cluster's (stack.md, pitfall 5). So a node with an empty log
//! first asks its partners (`Membership` RPC) and [`decide`]s:
//! - a partner holds a log: never initialize. If that log's membership lists this node, its
//!   leader replicates to us ([`JoinState::AwaitingLeader`]); otherwise this node waits to be
//!   added by an operator ([`JoinState::AwaitingAdmission`]);
//! - a majority of the configured voters (this node included) answered and none holds a log:
//!   initialize with self + partners. Every node of a fresh cluster that starts together does
//!   the same with the same membership, as before;
//! - otherwise ask again ([`JoinState::AwaitingPeers`]): a node that reaches no partner never
//!   founds a cluster of its own.
//!
//! The task runs beside the node (it never blocks `RaftNode::start`) until the log is no longer
//! empty, and publishes its [`JoinState`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::errors::{InitializeError, RaftError as OpenraftError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::peers::Peers;
use super::type_config::Raft;
use super::{NodeId, RaftSettings};

/// How long a partner may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two rounds of questions.
const ASK_AGAIN: Duration = Duration::from_millis(300);

/// Where a node with an empty log stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinState {
    /// The log is not empty: this node is part of a cluster (or was).
    Initialized,
    /// Waiting for a majority of the configured voters to answer before founding a cluster.
    AwaitingPeers,
    /// A partner's membership lists this node: its leader will replicate the log here.
    AwaitingLeader,
    /// The partners form a cluster that does not list this node: an operator must add it.
    AwaitingAdmission,
}

/// One partner's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerAnswer {
    Unreachable,
    /// It has an empty log too.
    Pristine,
    /// It holds a log; `lists_me`: its membership has this node as voter or learner.
    Initialized {
        lists_me: bool,
    },
}

/// What to do after a round of questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Initialize,
    Wait(JoinState),
}

/// `configured`: the voters of the configuration, this node included.
pub(crate) fn decide(configured: usize, answers: &[PeerAnswer]) -> Decision {
    if answers.contains(&PeerAnswer::Initialized { lists_me: true }) {
        return Decision::Wait(JoinState::AwaitingLeader);
    }
    if answers.contains(&PeerAnswer::Initialized { lists_me: false }) {
        return Decision::Wait(JoinState::AwaitingAdmission);
    }
    let pristine = answers
        .iter()
        .filter(|a| **a == PeerAnswer::Pristine)
        .count();
    if (pristine + 1) * 2 > configured {
        Decision::Initialize
    } else {
        Decision::Wait(JoinState::AwaitingPeers)
    }
}

/// Ask, decide and (at most once) initialize, until the log is not empty or `stop`.
pub(crate) async fn run(
    raft: Raft,
    peers: Arc<Peers>,
    settings: RaftSettings,
    state: watch::Sender<JoinState>,
    stop: CancellationToken,
) {
    let voters = settings.voters();
    let mut last = None;
    loop {
        match raft.is_initialized().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                warn!("raft stopped before this node joined a cluster: {e}");
                return;
            }
        }
        let answers = ask(&peers, &settings).await;
        let decision = decide(voters.len(), &answers);
        if last != Some(decision) {
            last = Some(decision);
            match decision {
                Decision::Initialize => {}
                Decision::Wait(JoinState::AwaitingAdmission) => info!(
                    "the partners form a Raft cluster without this node: waiting to be added \
                     (tribunectl members add {} {})",
                    settings.member_name, settings.self_addr
                ),
                Decision::Wait(wait) => info!(?wait, ?answers, "not initializing a Raft cluster"),
            }
        }
        match decision {
            Decision::Initialize => {
                if initialize(&raft, &voters).await {
                    break;
                }
            }
            Decision::Wait(wait) => {
                state.send_if_modified(|s| std::mem::replace(s, wait) != wait);
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ASK_AGAIN) => {}
        }
    }
    state.send_replace(JoinState::Initialized);
}

async fn ask(peers: &Peers, settings: &RaftSettings) -> Vec<PeerAnswer> {
    let questions = settings.partner_addrs.iter().map(|addr| async move {
        match peers.probe(addr, ASK_TIMEOUT).await {
            Err(_) => PeerAnswer::Unreachable,
            Ok(reply) if !reply.initialized => PeerAnswer::Pristine,
            Ok(reply) => PeerAnswer::Initialized {
                lists_me: reply
                    .voters
                    .iter()
                    .chain(&reply.learners)
                    .any(|a| *a == settings.self_addr),
            },
        }
    });
    futures::future::join_all(questions).await
}

/// `false` when it failed and should be tried again (a stopped Raft ends the loop instead).
async fn initialize(raft: &Raft, voters: &BTreeMap<NodeId, String>) -> bool {
    let members: BTreeMap<NodeId, BasicNode> = voters
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => info!(voters = ?voters, "initialized a new raft cluster"),
        // A leader's log (or vote) reached us meanwhile: the cluster exists already.
        Err(OpenraftError::APIError(InitializeError::NotAllowed(_))) => {}
        Err(e) => {
            warn!("cannot initialize the raft cluster: {e}");
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use PeerAnswer::*;

    #[test]
    fn a_node_with_an_empty_log_initializes_only_with_a_pristine_majority() {
        let listed = Initialized { lists_me: true };
        let other = Initialized { lists_me: false };
        let cases: [(&str, usize, &[PeerAnswer], Decision); 9] = [
            ("alone by configuration", 1, &[], Decision::Initialize),
            (
                "a fresh cluster of three, one partner up",
                3,
                &[Pristine, Unreachable],
                Decision::Initialize,
            ),
            (
                "a fresh cluster of three, no partner up yet",
                3,
                &[Unreachable, Unreachable],
                Decision::Wait(JoinState::AwaitingPeers),
            ),
            (
                "a fresh cluster of two needs both",
                2,
                &[Unreachable],
                Decision::Wait(JoinState::AwaitingPeers),
            ),
            (
                "a late node of a fresh cluster: the leader will replicate",
                3,
                &[listed, Pristine],
                Decision::Wait(JoinState::AwaitingLeader),
            ),
            (
                "a new node beside a running cluster",
                4,
                &[other, other, Unreachable],
                Decision::Wait(JoinState::AwaitingAdmission),
            ),
            (
                "one running partner is enough to never initialize",
                4,
                &[Pristine, Pristine, other],
                Decision::Wait(JoinState::AwaitingAdmission),
            ),
            (
                "a new node whose partners are all down never founds a cluster",
                4,
                &[Unreachable, Unreachable, Unreachable],
                Decision::Wait(JoinState::AwaitingPeers),
            ),
            (
                "a learner being added is listed",
                4,
                &[other, listed, Unreachable],
                Decision::Wait(JoinState::AwaitingLeader),
            ),
        ];
        for (what, configured, answers, expected) in cases {
            assert_eq!(decide(configured, answers), expected, "{what}");
        }
    }
}
