//! What the runtime counts for `/metrics`: how often this member fenced its own database when its
//! lease lapsed, how often it fenced a former primary's database over SQL, and every HA action it
//! executed with how it ended. Counters only rise (the process's lifetime), so a test or an
//! operator reads what happened without parsing logs.
//!
//! Cheap to clone: every clone counts into the same values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::ha::{Action, ActionOutcome};

/// The labels of `tribune_actions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// The lease keeper stopped the local database because the lease lapsed (or the required
    /// watchdog failed).
    pub lease_fences: Counter,
    /// This member fenced a former primary's database over SQL (it was still writable).
    pub peer_fences: Counter,
    /// Every executed action, by kind and outcome.
    pub actions: Family<ActionLabels, Counter>,
}

impl Counters {
    pub fn action(&self, action: &Action, outcome: &ActionOutcome) {
        self.actions
            .get_or_create(&ActionLabels {
                action: action.kind(),
                outcome: outcome.label(),
            })
            .inc();
    }

    /// How often `action` (by kind) ended `outcome`, for tests and logs.
    pub fn actions_of(&self, kind: &'static str, outcome: &'static str) -> u64 {
        self.actions
            .get_or_create(&ActionLabels {
                action: kind,
                outcome,
            })
            .get()
    }
}
