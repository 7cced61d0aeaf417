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

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::{Action, Memory, SyncNamesApplied};
use crate::instance::DbRole;
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
        self.track_standbys(db, now);
        // A veto matters only while this member still holds the lease it won.
        if self
            .promotion_vetoed
            .as_ref()
            .is_some_and(|(generation, _)| !cluster.is_leader(me, *generation))
        {
            self.promotion_vetoed = None;
        }
    }

    /// Notes, on a primary, since when each streaming standby that lacks some of its flushed
    /// WAL has confirmed nothing more. A standby caught up, or one that confirmed more since the
    /// last observation, starts afresh; a standby no longer listed is forgotten. A standby
    /// whose flush position is not reported is never counted as behind.
    fn track_standbys(&mut self, db: &LocalStatus, now: Instant) {
        let position = db
            .wal_position
            .filter(|_| db.role == Some(DbRole::Primary) && db.state == DbState::Running);
        let mut behind = std::collections::BTreeMap::new();
        if let Some(position) = position {
            for w in db.replication.iter().filter(|w| w.state == "streaming") {
                let Some(flush) = w.flush_lsn.filter(|flush| *flush < position) else {
                    continue;
                };
                let since = match self.standbys_behind.get(&w.application_name) {
                    Some((seen, since)) if *seen == flush => *since,
                    _ => now,
                };
                behind.insert(w.application_name.clone(), (flush, since));
            }
        }
        self.standbys_behind = behind;
    }

    /// The standbys that have confirmed nothing for `limit` (the lease's `ttl`) while the
    /// primary had WAL they lacked: `sync` counts them as gone, as a cut-off standby's
    /// connection may stay open, and PostgreSQL keep listing it as `streaming`, until
    /// `wal_sender_timeout`.
    pub fn silent_standbys(&self, now: Instant, limit: Duration) -> BTreeSet<String> {
        self.standbys_behind
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= limit)
            .map(|(name, _)| name.clone())
            .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use tokio::time::Instant;

    use crate::ha::Memory;
    use crate::instance::{DbRole, LocalStatus, WalSender};
    use crate::state::DbState;
    use crate::types::{Lsn, MemberName};

    /// A running primary at WAL position `at` with standbys (name, state, flushed).
    fn primary(at: u64, standbys: &[(&str, &str, Option<u64>)]) -> LocalStatus {
        LocalStatus {
            state: DbState::Running,
            role: Some(DbRole::Primary),
            wal_position: Some(Lsn(at)),
            replication: standbys
                .iter()
                .map(|(name, state, flush)| WalSender {
                    usename: "replicator".into(),
                    application_name: (*name).into(),
                    client_addr: None,
                    state: (*state).into(),
                    sync_state: "sync".into(),
                    sync_priority: 1,
                    flush_lsn: flush.map(Lsn),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Each row: the observation at second `t`, then which standbys are silent for a 3 s ttl.
    #[test]
    fn a_standby_behind_that_confirms_nothing_for_ttl_is_silent() {
        let start = Instant::now();
        let ttl = Duration::from_secs(3);
        let me = MemberName::new("a");
        let cluster = crate::state::ClusterState::default();
        type Row = (u64, LocalStatus, &'static [&'static str], &'static str);
        let rows: Vec<Row> = vec![
            (
                0,
                primary(
                    100,
                    &[("b", "streaming", Some(100)), ("c", "streaming", Some(100))],
                ),
                &[],
                "caught up",
            ),
            (
                1,
                primary(
                    200,
                    &[("b", "streaming", Some(150)), ("c", "streaming", Some(200))],
                ),
                &[],
                "b falls behind",
            ),
            (
                3,
                primary(
                    300,
                    &[("b", "streaming", Some(180)), ("c", "streaming", Some(300))],
                ),
                &[],
                "b behind but confirming more",
            ),
            (
                5,
                primary(
                    400,
                    &[("b", "streaming", Some(180)), ("c", "streaming", Some(400))],
                ),
                &[],
                "b silent for 2 s",
            ),
            (
                6,
                primary(
                    400,
                    &[("b", "streaming", Some(180)), ("c", "streaming", None)],
                ),
                &["b"],
                "b silent for 3 s; c's position unknown",
            ),
            (
                7,
                primary(
                    400,
                    &[("b", "streaming", Some(400)), ("c", "streaming", Some(400))],
                ),
                &[],
                "b caught up again",
            ),
            (
                8,
                primary(
                    500,
                    &[("b", "catchup", Some(400)), ("c", "streaming", Some(450))],
                ),
                &[],
                "only streaming standbys are tracked",
            ),
            (
                12,
                primary(500, &[("c", "streaming", Some(450))]),
                &["c"],
                "c silent since second 8",
            ),
            (
                13,
                LocalStatus {
                    role: Some(DbRole::Standby),
                    ..primary(500, &[("c", "streaming", Some(450))])
                },
                &[],
                "no longer a primary",
            ),
        ];
        let mut memory = Memory::default();
        for (t, db, silent, what) in rows {
            let now = start + Duration::from_secs(t);
            memory.observe(&me, &cluster, &db, now);
            assert_eq!(
                memory.silent_standbys(now, ttl),
                names(silent),
                "second {t}: {what}"
            );
        }
    }
}
