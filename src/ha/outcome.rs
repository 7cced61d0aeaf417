//! How an executed action ended (DESIGN section 6) and what the agent remembers of it.
//!
//! The executor in `node::` performs an [`Action`] and reports an [`ActionOutcome`]: `Done`
//! with the data the action produced, `Failed` (nothing happened, or a definite refusal), or
//! `Unknown` (it may or may not have happened: a timeout, a lost answer). [`Memory::remember`]
//! turns (action, outcome) into the agent's memory for the next `decide`, and
//! [`Memory::observe`] keeps what a fresh observation says; both are pure, so the scenario table
//! covers "decide, outcome, next decide".
//!
//! Must not: perform anything, or read a clock (`now` comes in).

use tokio::time::Instant;

use super::{Action, Memory, SyncNamesApplied};
use crate::instance::LocalStatus;
use crate::state::{ClusterState, DbState};
use crate::types::{Lsn, MemberName};

/// What an action produced that a later decision needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Produced {
    #[default]
    Nothing,
    /// `SetSyncNames` on a running primary: the WAL position at which the server uses the
    /// names (`None` on a standby, which only keeps them for a promotion).
    SyncNamesAppliedAt(Option<Lsn>),
}

/// How one executed action ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionOutcome {
    Done(Produced),
    /// It did not happen, and the reason says why.
    Failed(String),
    /// It may or may not have happened: observe afresh before acting again.
    Unknown(String),
}

impl ActionOutcome {
    pub fn done() -> Self {
        ActionOutcome::Done(Produced::Nothing)
    }

    pub fn is_done(&self) -> bool {
        matches!(self, ActionOutcome::Done(_))
    }

    /// `Done`, `Failed` or `Unknown`, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ActionOutcome::Done(_) => "done",
            ActionOutcome::Failed(_) => "failed",
            ActionOutcome::Unknown(_) => "unknown",
        }
    }
}

impl Memory {
    /// What a fresh observation tells the memory: since when the lease holder's database has
    /// not been running.
    pub fn observe(
        &mut self,
        me: &MemberName,
        cluster: &ClusterState,
        db: &LocalStatus,
        now: Instant,
    ) {
        // The upgrade's primary is down on purpose while it upgrades (or rolls back): that time
        // never counts against `primary_start_timeout`.
        let upgrading = cluster.upgrade.as_ref().is_some_and(|u| &u.primary == me);
        if cluster.leader_name() == Some(me) && db.state != DbState::Running && !upgrading {
            self.primary_down_since.get_or_insert(now);
        } else {
            self.primary_down_since = None;
        }
        // A veto matters only while this member still holds the lease it won.
        if self
            .promotion_vetoed
            .as_ref()
            .is_some_and(|(generation, _)| !cluster.is_leader(me, *generation))
        {
            self.promotion_vetoed = None;
        }
    }

    /// What the agent remembers after `action` ended with `outcome`.
    ///
    /// `Unknown` forgets what the action may have changed (whom the database streams from), so
    /// that the next decision, made on a fresh observation, re-applies it rather than trusting
    /// a memory that may be wrong.
    pub fn remember(&mut self, action: &Action, outcome: &ActionOutcome) {
        if let Action::FinishReinit { .. } = action {
            // The data directory was set aside before this report, whatever became of it.
            self.following = None;
        }
        match outcome {
            ActionOutcome::Done(produced) => self.remember_done(action, produced),
            ActionOutcome::Failed(why) => match action {
                // A fresh base backup replaces what could not be rewound.
                Action::Rewind { .. } => self.rewind_failed = true,
                Action::PrePromote { generation } => {
                    self.promotion_vetoed = Some((*generation, why.clone()));
                }
                _ => {}
            },
            // A script whose end is not known did not say yes: Patroni promotes only on a zero
            // exit.
            ActionOutcome::Unknown(why) if matches!(action, Action::PrePromote { .. }) => {
                if let Action::PrePromote { generation } = action {
                    self.promotion_vetoed = Some((*generation, why.clone()));
                }
            }
            ActionOutcome::Unknown(_) => match action {
                // An interrupted pg_rewind leaves a data directory that cannot start.
                Action::Rewind { .. } => {
                    self.rewind_failed = true;
                    self.following = None;
                }
                Action::Clone { .. }
                | Action::CloneWithoutLeader { .. }
                | Action::Start { .. }
                | Action::Restart { .. }
                | Action::Follow { .. }
                | Action::Promote { .. }
                | Action::StopStreaming { .. }
                | Action::HandOver { .. }
                | Action::PassLease { .. }
                | Action::SwitchToUpgraded { .. }
                | Action::UndoUpgrade { .. } => self.following = None,
                _ => {}
            },
        }
    }

    fn remember_done(&mut self, action: &Action, produced: &Produced) {
        match action {
            Action::Clone { from } | Action::CloneWithoutLeader { from } => {
                self.following = Some(from.clone());
                self.clone_from_leader = false;
            }
            Action::Start { upstream: None } => self.following = None,
            Action::Start {
                upstream: Some(from),
            } => {
                self.following = Some(from.clone());
                self.handed_over = false;
            }
            Action::Restart { upstream, .. } => self.following = upstream.clone(),
            Action::HandOver { .. } | Action::PassLease { .. } => {
                self.following = None;
                self.handed_over = true;
            }
            Action::FinishReinit { from_leader } => {
                self.following = None;
                self.clone_from_leader = *from_leader;
            }
            Action::Promote { .. } => self.following = None,
            Action::DeclinePromotion { .. } => self.promotion_vetoed = None,
            Action::Follow { upstream } => self.following = Some(upstream.clone()),
            Action::Rewind { .. } => self.rewind_failed = false,
            Action::SetAsideDataDir => {
                self.rewind_failed = false;
                self.held_stopped = None;
            }
            Action::HoldStopped { reason } => self.held_stopped = Some(reason.clone()),
            Action::FencePeer { ended, .. } => self.fenced_after = Some(*ended),
            Action::StopStreaming { ended } => {
                self.following = None;
                self.detached_after = Some(*ended);
            }
            Action::SetSyncNames { generation, value } => {
                if let Produced::SyncNamesAppliedAt(at) = produced {
                    self.sync_names_applied = at.map(|at| SyncNamesApplied {
                        generation: *generation,
                        value: value.clone(),
                        at,
                    });
                }
            }
            Action::ClaimBootstrap
            | Action::Bootstrap
            | Action::FinishBootstrap
            | Action::Stop { .. }
            | Action::Checkpoint
            | Action::CancelSwitchover
            | Action::SkipRestart { .. }
            | Action::AckFailover { .. }
            | Action::ReleaseLease { .. }
            | Action::SyncSlots
            | Action::RecordHistory { .. }
            | Action::SetSyncRecord { .. }
            | Action::PrePromote { .. }
            | Action::CheckUpgrade { .. }
            | Action::AwaitUpgradeStandbys { .. }
            | Action::RunUpgrade { .. }
            | Action::ReportUpgradeStarted { .. }
            | Action::FinishUpgrade { .. } => {}
            // The server runs another data directory now: whatever it streamed from is void.
            Action::SwitchToUpgraded { .. } | Action::UndoUpgrade { .. } => self.following = None,
        }
    }
}
