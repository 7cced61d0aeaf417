//! Convergence: within the stated deadline after every heal, with no operator action, the
//! cluster has one primary and every other database member streaming from it. A member that
//! stays stuck (a standby that cannot follow a new timeline, a former primary that never
//! rejoins) is a violation.
//!
//! The runner polls the members after each heal and records a `convergence` event; this checker
//! judges those events, and notices a healed fault that has none.

use crate::history::{Event, History};

use super::{LISTED, Verdict, Violation};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Convergence {
    pub checks: usize,
    /// Seconds from each heal to convergence, for those that converged.
    pub waits: Vec<f64>,
    /// (when, fault index, what was still wrong) of each check that failed.
    pub unconverged: Vec<(f64, usize, String)>,
    pub deadline_s: f64,
}

pub fn check(history: &History, deadline_s: f64) -> Convergence {
    let mut result = Convergence {
        deadline_s,
        ..Convergence::default()
    };
    let mut checked = std::collections::HashSet::new();
    for event in &history.events {
        if let Event::Convergence {
            t,
            index,
            converged,
            waited_s,
            detail,
            ..
        } = event
        {
            result.checks += 1;
            checked.insert(*index);
            if *converged && *waited_s <= deadline_s {
                result.waits.push(*waited_s);
            } else {
                result.unconverged.push((*t, *index, detail.clone()));
            }
        }
    }
    for fault in history.faults() {
        if let Some(heal) = fault.heal
            && !checked.contains(&fault.index)
        {
            result.unconverged.push((
                heal,
                fault.index,
                format!(
                    "fault {} ({}) healed and was never checked",
                    fault.index, fault.nemesis
                ),
            ));
        }
    }
    result.unconverged.sort_by(|a, b| a.0.total_cmp(&b.0));
    result
}

impl Convergence {
    pub fn verdict(&self) -> Verdict {
        let slowest = self.waits.iter().copied().fold(0.0, f64::max);
        Verdict {
            checker: "convergence",
            rule: "after every heal: one primary, every other member streaming from it, within the deadline, with no operator action",
            enforced: true,
            summary: format!(
                "{} checks, {} unconverged within {:.0} s; slowest convergence {:.1} s",
                self.checks,
                self.unconverged.len(),
                self.deadline_s,
                slowest
            ),
            violations: self
                .unconverged
                .iter()
                .take(LISTED)
                .map(|(t, index, detail)| Violation {
                    t: *t,
                    what: format!("after fault {index}: {detail}"),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Phase;

    fn fault(index: usize, start: f64, heal: f64) -> Vec<Event> {
        vec![
            Event::Nemesis {
                t: start,
                index,
                phase: Phase::Start,
                nemesis: "kill-host".into(),
                detail: "n1".into(),
            },
            Event::Nemesis {
                t: heal,
                index,
                phase: Phase::Heal,
                nemesis: "kill-host".into(),
                detail: "n1".into(),
            },
        ]
    }

    fn converged(index: usize, t: f64, waited_s: f64, ok: bool) -> Event {
        Event::Convergence {
            t,
            index,
            converged: ok,
            waited_s,
            deadline_s: 45.0,
            detail: if ok {
                "n2 primary; n1, n3 streaming".into()
            } else {
                "n3 is a replica that does not stream (in archive recovery)".into()
            },
        }
    }

    #[test]
    fn every_heal_followed_by_convergence_passes() {
        let mut events = fault(0, 1.0, 3.0);
        events.push(converged(0, 6.0, 3.0, true));
        events.extend(fault(1, 8.0, 10.0));
        events.push(converged(1, 11.0, 1.0, true));
        let found = check(&History::from_events(events), 45.0);
        assert_eq!(found.checks, 2);
        assert!(found.verdict().passed());
    }

    #[test]
    fn a_member_stuck_after_a_heal_fails() {
        let mut events = fault(0, 1.0, 3.0);
        events.push(converged(0, 48.0, 45.0, false));
        let found = check(&History::from_events(events), 45.0);
        let verdict = found.verdict();
        assert!(!verdict.passed());
        assert!(verdict.violations[0].what.contains("does not stream"));
    }

    #[test]
    fn converging_after_the_deadline_fails() {
        let mut events = fault(0, 1.0, 3.0);
        events.push(converged(0, 63.0, 60.0, true));
        assert!(
            !check(&History::from_events(events), 45.0)
                .verdict()
                .passed()
        );
    }

    #[test]
    fn a_heal_never_checked_fails() {
        let events = fault(0, 1.0, 3.0);
        let found = check(&History::from_events(events), 45.0);
        assert_eq!(found.unconverged.len(), 1);
        assert!(!found.verdict().passed());
    }
}
