//! [`RecordedScripts`]: the scripts' fake, beside the trait. It records every callback and hook
//! it was asked for, and answers hooks with the outcomes a test sets.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Callback, Hook, HookOutcome, Scripts};

#[derive(Default)]
pub struct RecordedScripts {
    callbacks: Mutex<Vec<Callback>>,
    hooks: Mutex<Vec<Hook>>,
    /// By hook name; a hook without an entry is `NotConfigured`.
    answers: Mutex<BTreeMap<&'static str, HookOutcome>>,
}

impl RecordedScripts {
    /// Answer the hook named `name` (`pre_promote`, ...) with `outcome` from now on.
    pub fn answer(&self, name: &'static str, outcome: HookOutcome) {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, outcome);
    }

    pub fn callbacks(&self) -> Vec<Callback> {
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl Scripts for RecordedScripts {
    fn notify(&self, callback: Callback) {
        self.callbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(callback);
    }

    async fn run_hook(&self, hook: &Hook) -> HookOutcome {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook.clone());
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hook.name())
            .cloned()
            .unwrap_or(HookOutcome::NotConfigured)
    }
}
