//! The real scripts: child processes of the agent.
//!
//! Callbacks run in their own process group, so that killing one (a newer callback started)
//! kills what it started too, as Patroni kills the children of a callback it replaces. Two
//! slots, as Patroni's `CallbackExecutor`: `on_reload` and every other callback. Their output
//! goes where the agent's goes; stdin is `/dev/null`; the environment is the agent's.
//!
//! Hooks are waited for, with a time limit ([`HOOK_TIMEOUT`] for `pre_promote` and
//! `before_stop`, [`POST_BOOTSTRAP_TIMEOUT`] for `post_bootstrap`): a hung fencing script must
//! not keep the cluster without a primary for ever (Patroni has no limit). A hook that runs out
//! of time is killed with its process group and counts as failed.
//!
//! Hazards: `notify` must be called from within the tokio runtime (it spawns the waiter).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tracing::{info, warn};

use super::{Callback, CallbackAction, Hook, HookOutcome, Scripts};
use crate::config::{Config, ScriptCommand};

/// How long `pre_promote` and `before_stop` may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `post_bootstrap` may run (it may create extensions, load data).
pub const POST_BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(3600);

/// The scripts of one agent's configuration.
#[derive(Clone, Debug, Default)]
pub struct ScriptSet {
    pub scope: String,
    pub callbacks: crate::config::Callbacks,
    pub pre_promote: Option<ScriptCommand>,
    pub before_stop: Option<ScriptCommand>,
    pub post_bootstrap: Option<ScriptCommand>,
}

impl ScriptSet {
    pub fn from_config(config: &Config) -> Self {
        let pg = config.postgresql.as_ref();
        Self {
            scope: config.scope.clone(),
            callbacks: pg.map(|p| p.callbacks.clone()).unwrap_or_default(),
            pre_promote: pg.and_then(|p| p.pre_promote.clone()),
            before_stop: pg.and_then(|p| p.before_stop.clone()),
            post_bootstrap: config.bootstrap.post_bootstrap.clone(),
        }
    }

    /// A reader of the scripts of a fixed configuration, for [`ScriptRunner::new`].
    pub fn from_config_fn(config: &Config) -> impl Fn() -> ScriptSet + Send + Sync + 'static {
        let set = Self::from_config(config);
        move || set.clone()
    }

    fn callback(&self, action: CallbackAction) -> Option<&ScriptCommand> {
        let c = &self.callbacks;
        match action {
            CallbackAction::OnStart => c.on_start.as_ref(),
            CallbackAction::OnStop => c.on_stop.as_ref(),
            CallbackAction::OnRestart => c.on_restart.as_ref(),
            CallbackAction::OnReload => c.on_reload.as_ref(),
            CallbackAction::OnRoleChange => c.on_role_change.as_ref(),
        }
    }

    /// The command line of `callback`: the script, then `ACTION ROLE SCOPE`.
    pub fn callback_argv(&self, callback: Callback) -> Option<Vec<String>> {
        let script = self.callback(callback.action)?;
        let mut argv = script.argv.clone();
        argv.extend([
            callback.action.as_str().to_owned(),
            callback.role.as_str().to_owned(),
            self.scope.clone(),
        ]);
        Some(argv)
    }
}

/// A running callback: its process group id, and a number telling it from later ones.
#[derive(Clone, Copy, Debug)]
struct Running {
    pgid: i32,
    serial: u64,
}

#[derive(Default)]
struct Slot {
    running: Option<Running>,
    serial: u64,
}

/// Runs the scripts as child processes. The configuration is read at each call, so a reload
/// takes effect for the next script.
pub struct ScriptRunner {
    scripts: Arc<dyn Fn() -> ScriptSet + Send + Sync>,
    callbacks: Arc<Mutex<Slot>>,
    reloads: Arc<Mutex<Slot>>,
}

impl ScriptRunner {
    /// `scripts` is read afresh for every script run.
    pub fn new(scripts: impl Fn() -> ScriptSet + Send + Sync + 'static) -> Self {
        Self {
            scripts: Arc::new(scripts),
            callbacks: Arc::default(),
            reloads: Arc::default(),
        }
    }

    fn command(argv: &[String]) -> Option<tokio::process::Command> {
        let (program, args) = argv.split_first()?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        Some(cmd)
    }
}

fn kill_group(pgid: i32) {
    // The group may be gone already; nothing else to do then.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

#[async_trait]
impl Scripts for ScriptRunner {
    fn notify(&self, callback: Callback) {
        let Some(argv) = (self.scripts)().callback_argv(callback) else {
            return;
        };
        let slot = if callback.action == CallbackAction::OnReload {
            self.reloads.clone()
        } else {
            self.callbacks.clone()
        };
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = guard.running.take() {
            kill_group(previous.pgid);
            warn!(
                pgid = previous.pgid,
                "killed the previous callback because it was still running"
            );
        }
        let Some(mut cmd) = Self::command(&argv) else {
            return;
        };
        let shown = argv.join(" ");
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(err) => {
                warn!(callback = %shown, error = %err, "could not start the callback");
                return;
            }
        };
        let Some(pid) = child.id() else { return };
        guard.serial += 1;
        let serial = guard.serial;
        guard.running = Some(Running {
            pgid: pid as i32,
            serial,
        });
        drop(guard);
        info!(callback = %shown, "started the callback");
        tokio::spawn(async move {
            let status = child.wait().await;
            let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
            if guard.running.is_some_and(|r| r.serial == serial) {
                guard.running = None;
                // Whatever it left running in its group goes with it, as Patroni does.
                kill_group(pid as i32);
            }
            drop(guard);
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => info!(callback = %shown, status = %s, "the callback ended"),
                Err(err) => warn!(callback = %shown, error = %err, "waiting for the callback"),
            }
        });
    }

    async fn run_hook(&self, hook: &Hook) -> HookOutcome {
        let set = (self.scripts)();
        let (script, timeout) = match hook {
            Hook::PrePromote => (set.pre_promote.as_ref(), HOOK_TIMEOUT),
            Hook::BeforeStop => (set.before_stop.as_ref(), HOOK_TIMEOUT),
            Hook::PostBootstrap { .. } => (set.post_bootstrap.as_ref(), POST_BOOTSTRAP_TIMEOUT),
        };
        let Some(script) = script else {
            return HookOutcome::NotConfigured;
        };
        let mut argv = script.argv.clone();
        if let Hook::PostBootstrap { connstring, .. } = hook {
            argv.push(connstring.clone());
        }
        let Some(mut cmd) = Self::command(&argv) else {
            return HookOutcome::NotConfigured;
        };
        if let Hook::PostBootstrap { pgpass, .. } = hook {
            cmd.env("PGPASSFILE", pgpass).env(
                "PGOPTIONS",
                "-c synchronous_commit=local -c statement_timeout=0",
            );
        }
        let name = hook.name();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(err) => {
                return HookOutcome::Failed(format!(
                    "could not be started ({}): {err}",
                    script.text
                ));
            }
        };
        let pgid = child.id().map(|p| p as i32);
        let outcome = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => match status.code() {
                Some(code) => HookOutcome::Exited(code),
                None => HookOutcome::Failed(format!("was killed by a signal ({status})")),
            },
            Ok(Err(err)) => HookOutcome::Failed(format!("could not be waited for: {err}")),
            Err(_) => {
                if let Some(pgid) = pgid {
                    kill_group(pgid);
                }
                let _ = child.wait().await;
                HookOutcome::Failed(format!(
                    "did not end within {}s and was killed",
                    timeout.as_secs()
                ))
            }
        };
        info!(script = %script.text, "{name} script {}", outcome.describe());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callbacks::CallbackRole;

    fn script(text: &str) -> Option<ScriptCommand> {
        Some(ScriptCommand {
            text: text.into(),
            argv: shlex::split(text).unwrap(),
        })
    }

    fn runner(set: ScriptSet) -> ScriptRunner {
        ScriptRunner::new(move || set.clone())
    }

    async fn wait_for(path: &std::path::Path, lines: usize) -> String {
        for _ in 0..200 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= lines {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[tokio::test]
    async fn callbacks_get_action_role_and_scope_and_a_newer_one_kills_the_older() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("cb.log");
        let sh = format!(
            "sh -c 'echo \"$@\" >> {}; [ \"$1\" = on_stop ] && sleep 30; exit 0' cb",
            log.display()
        );
        let set = ScriptSet {
            scope: "batman".into(),
            callbacks: crate::config::Callbacks {
                on_stop: script(&sh),
                on_role_change: script(&sh),
                ..Default::default()
            },
            ..Default::default()
        };
        let r = runner(set);
        r.notify(Callback::new(CallbackAction::OnStop, CallbackRole::Primary));
        // Not configured: nothing runs.
        r.notify(Callback::new(
            CallbackAction::OnStart,
            CallbackRole::Primary,
        ));
        wait_for(&log, 1).await;
        let sleeping = r.callbacks.lock().unwrap().running.unwrap().pgid;
        r.notify(Callback::new(
            CallbackAction::OnRoleChange,
            CallbackRole::Replica,
        ));
        let text = wait_for(&log, 2).await;
        assert_eq!(
            text,
            "on_stop primary batman\non_role_change replica batman\n"
        );
        // The sleeping on_stop (and its group) was killed.
        for _ in 0..100 {
            if killpg(Pid::from_raw(sleeping), None).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the older callback still runs");
    }

    #[tokio::test]
    async fn hooks_report_their_exit() {
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        let r = runner(ScriptSet {
            pre_promote: script("sh -c 'exit 3'"),
            post_bootstrap: script(&format!(
                "sh -c 'echo \"$1 $PGPASSFILE\" > {}' pb",
                args.display()
            )),
            ..Default::default()
        });
        assert_eq!(r.run_hook(&Hook::PrePromote).await, HookOutcome::Exited(3));
        assert!(!HookOutcome::Exited(3).allows());
        let pb = Hook::PostBootstrap {
            connstring: "dbname=postgres user=postgres".into(),
            pgpass: "/tmp/pgpass".into(),
        };
        assert_eq!(r.run_hook(&pb).await, HookOutcome::Exited(0));
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            "dbname=postgres user=postgres /tmp/pgpass\n"
        );
        let nothing = runner(ScriptSet::default());
        assert_eq!(
            nothing.run_hook(&Hook::PrePromote).await,
            HookOutcome::NotConfigured
        );
        assert!(HookOutcome::NotConfigured.allows());
        let missing = runner(ScriptSet {
            pre_promote: script("/nonexistent/fence"),
            ..Default::default()
        });
        assert!(matches!(
            missing.run_hook(&Hook::PrePromote).await,
            HookOutcome::Failed(_)
        ));
    }
}
