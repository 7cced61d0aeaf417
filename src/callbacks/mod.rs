//! The user's scripts around the database, as Patroni runs them.
//!
//! - Callbacks (`postgresql.callbacks`): `on_start`, `on_stop`, `on_restart`, `on_reload`,
//!   `on_role_change`, started in the background after the event with Patroni's arguments
//!   appended: `script ACTION ROLE SCOPE` (role `primary`, `replica`, `standby_leader` or
//!   `demoted`). One runs at a time per member: a newer one kills the older (with the processes
//!   it started), except `on_reload`, which has a slot of its own. The HA loop never waits for
//!   them.
//! - Hooks, which the executor waits for: `pre_promote` (after this member won the lease,
//!   before it promotes; a non-zero exit vetoes the promotion, which `ha` turns into giving the
//!   lease back), `before_stop` (before a clean stop) and `post_bootstrap` (after initdb, with
//!   a superuser connection string; a failure aborts the bootstrap).
//!
//! Layout: [`tracker`] (pure: which callback an observation or an executed action calls for),
//! [`runner`] (the real processes), [`fake`] (records what it was asked, for tests).
//!
//! Must not: decide anything about the cluster. Which action runs is `ha`'s business; this
//! module only says which script that action calls and runs it.

pub mod fake;
pub mod runner;
pub mod tracker;

use std::path::PathBuf;

use async_trait::async_trait;

pub use runner::ScriptRunner;
pub use tracker::CallbackTracker;

/// The five callbacks, named as Patroni passes them (`ACTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallbackAction {
    OnStart,
    OnStop,
    OnRestart,
    OnReload,
    OnRoleChange,
}

impl CallbackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackAction::OnStart => "on_start",
            CallbackAction::OnStop => "on_stop",
            CallbackAction::OnRestart => "on_restart",
            CallbackAction::OnReload => "on_reload",
            CallbackAction::OnRoleChange => "on_role_change",
        }
    }
}

/// The role word a callback receives (`ROLE`), in Patroni's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackRole {
    Primary,
    Replica,
    StandbyLeader,
    /// A former primary stopped by the agent, not (yet) started as a replica.
    Demoted,
}

impl CallbackRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackRole::Primary => "primary",
            CallbackRole::Replica => "replica",
            CallbackRole::StandbyLeader => "standby_leader",
            CallbackRole::Demoted => "demoted",
        }
    }
}

/// One callback to run: `script ACTION ROLE SCOPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callback {
    pub action: CallbackAction,
    pub role: CallbackRole,
}

impl Callback {
    pub fn new(action: CallbackAction, role: CallbackRole) -> Self {
        Self { action, role }
    }
}

/// A script the executor runs and waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    PrePromote,
    BeforeStop,
    /// Given `connstring` (a superuser connection string without the password) as its last
    /// argument, with `PGPASSFILE` pointing at `pgpass`.
    PostBootstrap {
        connstring: String,
        pgpass: PathBuf,
    },
}

impl Hook {
    pub fn name(&self) -> &'static str {
        match self {
            Hook::PrePromote => "pre_promote",
            Hook::BeforeStop => "before_stop",
            Hook::PostBootstrap { .. } => "post_bootstrap",
        }
    }
}

/// How a hook ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookOutcome {
    /// No script is configured for it.
    NotConfigured,
    /// It exited with this status.
    Exited(i32),
    /// It could not be started, was killed by a signal, or ran out of time (and was killed).
    Failed(String),
}

impl HookOutcome {
    /// Whether the step the hook guards may go on: no script, or a zero exit.
    pub fn allows(&self) -> bool {
        matches!(self, HookOutcome::NotConfigured | HookOutcome::Exited(0))
    }

    /// For logs and reasons: `exited with 1`, `could not be started: ...`.
    pub fn describe(&self) -> String {
        match self {
            HookOutcome::NotConfigured => "is not configured".to_owned(),
            HookOutcome::Exited(code) => format!("exited with {code}"),
            HookOutcome::Failed(why) => why.clone(),
        }
    }
}

/// The user's scripts, as the agent runs them. The real one is [`ScriptRunner`]; tests use
/// [`fake::RecordedScripts`].
#[async_trait]
pub trait Scripts: Send + Sync {
    /// Start the callback in the background if one is configured for its action; never waits.
    fn notify(&self, callback: Callback);

    /// Run the hook and wait for it to end.
    async fn run_hook(&self, hook: &Hook) -> HookOutcome;
}
