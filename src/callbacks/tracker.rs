//! Which callback an event calls for, as Patroni's `Postgresql` calls them (`call_nowait`):
//! pure, fed by the HA loop with each observation and each executed action.
//!
//! - The agent starts the database: `on_start ROLE`; but a former primary the agent itself
//!   stopped, started again as a standby, is `on_role_change replica` (Patroni's demotion
//!   passes through `follow` with a change of role).
//! - It stops a running database: `on_stop ROLE` (the role it ran in).
//! - It restarts it: `on_restart ROLE`.
//! - A promotion: `on_role_change primary`.
//! - A standby pointed at another upstream (a reload of `primary_conninfo`): `on_reload
//!   replica`; a replica becoming the standby leader, or back: `on_role_change`.
//! - Changed parameters reloaded: `on_reload ROLE`.
//! - A lease given up after the primary failed to start: `on_role_change demoted`.
//! - A database found running that no callback has spoken of yet (the agent started after it,
//!   Patroni's "takeover"): `on_start ROLE`, once.
//!
//! Must not: run anything (the HA loop hands the result to `Scripts::notify`).

use super::{Callback, CallbackAction, CallbackRole};
use crate::ha::{Action, ActionOutcome, StreamFrom};

/// What the tracker remembers of the database between events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackTracker {
    /// The role of the running database at the last observation or action; `None` when it was
    /// not running.
    running: Option<CallbackRole>,
    /// A callback has spoken of the database since it last started (Patroni's `cb_called`).
    called: bool,
    /// The agent stopped the database while it ran as the primary or the standby leader: the
    /// next start as a standby is a change of role.
    demoted: bool,
}

fn start_role(upstream: Option<&StreamFrom>) -> CallbackRole {
    match upstream {
        None => CallbackRole::Primary,
        Some(StreamFrom::Member(_)) => CallbackRole::Replica,
        Some(StreamFrom::Remote(_)) => CallbackRole::StandbyLeader,
    }
}

impl CallbackTracker {
    /// A fresh observation: `running` is the role the database runs in, `None` when it does not
    /// run. Returns `on_start` for a running database no callback has spoken of.
    pub fn observe(&mut self, running: Option<CallbackRole>) -> Option<Callback> {
        self.running = running;
        let role = running?;
        if self.called {
            return None;
        }
        self.called = true;
        Some(Callback::new(CallbackAction::OnStart, role))
    }

    /// The parameters of the running database were changed and reloaded.
    pub fn reloaded(&mut self) -> Option<Callback> {
        let role = self.running?;
        Some(Callback::new(CallbackAction::OnReload, role))
    }

    /// `action` was executed and ended with `outcome`.
    pub fn after(&mut self, action: &Action, outcome: &ActionOutcome) -> Option<Callback> {
        if !outcome.is_done() {
            return None;
        }
        let callback = match action {
            Action::Bootstrap => self.started(CallbackRole::Primary, CallbackAction::OnStart),
            Action::Start { upstream } => {
                let role = start_role(upstream.as_ref());
                let action = if self.demoted && role != CallbackRole::Primary {
                    CallbackAction::OnRoleChange
                } else {
                    CallbackAction::OnStart
                };
                self.started(role, action)
            }
            Action::Restart { upstream, .. } => {
                self.started(start_role(upstream.as_ref()), CallbackAction::OnRestart)
            }
            Action::Stop { .. } => {
                let was = self.running.take()?;
                self.demoted = matches!(was, CallbackRole::Primary | CallbackRole::StandbyLeader);
                self.called = false;
                Callback::new(CallbackAction::OnStop, was)
            }
            Action::Promote { .. } => {
                self.running = Some(CallbackRole::Primary);
                self.demoted = false;
                Callback::new(CallbackAction::OnRoleChange, CallbackRole::Primary)
            }
            Action::Follow { upstream } => {
                let role = start_role(Some(upstream));
                let before = self.running.replace(role)?;
                if before == role {
                    Callback::new(CallbackAction::OnReload, role)
                } else {
                    Callback::new(CallbackAction::OnRoleChange, role)
                }
            }
            Action::ReleaseLease { .. } if self.running.is_none() && self.demoted => {
                self.demoted = false;
                Callback::new(CallbackAction::OnRoleChange, CallbackRole::Demoted)
            }
            _ => return None,
        };
        Some(callback)
    }

    fn started(&mut self, role: CallbackRole, action: CallbackAction) -> Callback {
        self.running = Some(role);
        self.called = true;
        self.demoted = false;
        Callback::new(action, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::StopMode;
    use crate::types::Generation;

    use CallbackAction::*;
    use CallbackRole::*;

    fn done() -> ActionOutcome {
        ActionOutcome::done()
    }

    fn from(name: &str) -> Option<StreamFrom> {
        Some(StreamFrom::member(&name.into()))
    }

    enum Step {
        Observe(Option<CallbackRole>),
        Act(Action),
        Fail(Action),
    }
    use Step::*;

    /// Runs the steps and returns the callbacks they called for, in order.
    fn run(steps: Vec<Step>) -> Vec<(CallbackAction, CallbackRole)> {
        let mut t = CallbackTracker::default();
        steps
            .into_iter()
            .filter_map(|step| match step {
                Observe(role) => t.observe(role),
                Act(a) => t.after(&a, &done()),
                Fail(a) => t.after(&a, &ActionOutcome::Failed("no".into())),
            })
            .map(|c| (c.action, c.role))
            .collect()
    }

    fn stop() -> Action {
        Action::Stop {
            mode: StopMode::Fast,
        }
    }

    /// A case: its name, what happens, and the callbacks that follow, in order.
    type Case = (&'static str, Vec<Step>, Vec<(CallbackAction, CallbackRole)>);

    #[test]
    fn each_event_calls_for_patronis_callback() {
        let cases: Vec<Case> = vec![
            (
                "a new replica starts",
                vec![
                    Observe(None),
                    Act(Action::Start {
                        upstream: from("a"),
                    }),
                    Observe(Some(Replica)),
                ],
                vec![(OnStart, Replica)],
            ),
            (
                "the bootstrap starts the primary",
                vec![
                    Observe(None),
                    Act(Action::Bootstrap),
                    Observe(Some(Primary)),
                ],
                vec![(OnStart, Primary)],
            ),
            (
                "a database found running (the agent started after it)",
                vec![Observe(Some(Replica)), Observe(Some(Replica))],
                vec![(OnStart, Replica)],
            ),
            (
                "failover: the standby is promoted",
                vec![
                    Observe(Some(Replica)),
                    Act(Action::Promote {
                        generation: Generation(2),
                    }),
                    Observe(Some(Primary)),
                ],
                vec![(OnStart, Replica), (OnRoleChange, Primary)],
            ),
            (
                "failover: another standby follows the new primary",
                vec![
                    Observe(Some(Replica)),
                    Act(Action::Follow {
                        upstream: StreamFrom::member(&"b".into()),
                    }),
                ],
                vec![(OnStart, Replica), (OnReload, Replica)],
            ),
            (
                "switchover: the old primary stops, then starts as a replica",
                vec![
                    Observe(Some(Primary)),
                    Act(stop()),
                    Observe(None),
                    Act(Action::Rewind { from: "b".into() }),
                    Act(Action::Start {
                        upstream: from("b"),
                    }),
                    Observe(Some(Replica)),
                ],
                vec![
                    (OnStart, Primary),
                    (OnStop, Primary),
                    (OnRoleChange, Replica),
                ],
            ),
            (
                "a restarted replica",
                vec![
                    Observe(Some(Replica)),
                    Act(Action::Restart {
                        requested_at: crate::types::UnixMillis(1),
                        upstream: from("a"),
                        timeout: None,
                    }),
                ],
                vec![(OnStart, Replica), (OnRestart, Replica)],
            ),
            (
                "a primary that failed to start gives its lease up: demoted",
                vec![
                    Observe(Some(Primary)),
                    Act(Action::Stop {
                        mode: StopMode::Immediate,
                    }),
                    Observe(None),
                    Fail(Action::Start { upstream: None }),
                    Act(Action::ReleaseLease {
                        generation: Generation(3),
                    }),
                ],
                vec![
                    (OnStart, Primary),
                    (OnStop, Primary),
                    (OnRoleChange, Demoted),
                ],
            ),
            (
                "stopping a database that does not run calls nothing; a failed action nothing",
                vec![
                    Observe(None),
                    Act(stop()),
                    Fail(Action::Start {
                        upstream: from("a"),
                    }),
                ],
                vec![],
            ),
            (
                "a crashed primary started again in place",
                vec![
                    Observe(Some(Primary)),
                    Observe(None),
                    Act(Action::Start { upstream: None }),
                ],
                vec![(OnStart, Primary), (OnStart, Primary)],
            ),
        ];
        for (name, steps, expected) in cases {
            assert_eq!(run(steps), expected, "{name}");
        }
    }

    #[test]
    fn a_reload_speaks_of_the_running_role_only() {
        let mut t = CallbackTracker::default();
        assert_eq!(t.reloaded(), None);
        t.observe(Some(Primary));
        assert_eq!(t.reloaded(), Some(Callback::new(OnReload, Primary)));
    }
}
