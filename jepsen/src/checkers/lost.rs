//! Lost acknowledged writes: every insert acknowledged to a client must be in the final read of
//! the converged cluster. An insert that failed definitely (the server refused it before it
//! could commit) must not be there either. Inserts with an unknown outcome (`info`) may be
//! either.
//!
//! In asynchronous mode losing the last acknowledged commits at a failover is the price of
//! that mode: counted and reported (with how many went at once), not a failure.

use std::collections::HashSet;

use crate::history::{Event, History, OpValue, Operation, Outcome, ReadFrom};
use crate::options::Mode;

use super::{LISTED, Verdict, Violation};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LostWrites {
    pub acknowledged: usize,
    /// (id, when it was acknowledged) of every acknowledged insert missing from the final read.
    pub lost: Vec<(i64, f64)>,
    /// (id, when it failed) of every failed insert found in the final read.
    pub phantom: Vec<(i64, f64)>,
    /// Whether the run ended with a final read through the primary at all.
    pub final_read: bool,
    /// The longest series of consecutive acknowledged inserts that were all lost (what one
    /// failover cost, in asynchronous mode).
    pub most_lost_at_once: usize,
}

pub fn check(history: &History, ops: &[Operation]) -> LostWrites {
    let final_ids: Option<HashSet<i64>> = history.events.iter().rev().find_map(|e| match e {
        Event::FinalRead {
            from: ReadFrom::Primary,
            ids,
            ..
        } => Some(ids.iter().copied().collect()),
        _ => None,
    });
    let mut result = LostWrites {
        final_read: final_ids.is_some(),
        ..LostWrites::default()
    };
    let present = final_ids.unwrap_or_default();
    for op in ops {
        let OpValue::Insert { id } = op.op else {
            continue;
        };
        match op.outcome {
            Outcome::Ok => {
                result.acknowledged += 1;
                if !present.contains(&id) {
                    result.lost.push((id, op.completed_or_never()));
                }
            }
            Outcome::Fail if present.contains(&id) => {
                result.phantom.push((id, op.completed_or_never()))
            }
            Outcome::Fail | Outcome::Info => {}
        }
    }
    if result.final_read {
        // Lost writes come in bursts (the tail of a deposed primary's commits): the longest
        // series of acknowledged inserts, in order of acknowledgement, all of them lost.
        let mut acked: Vec<(f64, bool)> = ops
            .iter()
            .filter_map(|op| match (&op.op, op.outcome) {
                (OpValue::Insert { id }, Outcome::Ok) => {
                    Some((op.completed_or_never(), !present.contains(id)))
                }
                _ => None,
            })
            .collect();
        acked.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut run = 0;
        for (_, lost) in acked {
            run = if lost { run + 1 } else { 0 };
            result.most_lost_at_once = result.most_lost_at_once.max(run);
        }
    }
    result
}

impl LostWrites {
    pub fn verdict(&self, mode: Mode) -> Verdict {
        let mut violations: Vec<Violation> = Vec::new();
        if !self.final_read {
            violations.push(Violation {
                t: 0.0,
                what: "the run ended without a final read through the primary: nothing could be checked"
                    .into(),
            });
        }
        violations.extend(self.lost.iter().take(LISTED).map(|(id, t)| Violation {
            t: *t,
            what: format!(
                "insert {id} was acknowledged at {t:.3}s and is missing from the final read"
            ),
        }));
        violations.extend(self.phantom.iter().take(LISTED).map(|(id, t)| Violation {
            t: *t,
            what: format!("insert {id} failed at {t:.3}s and yet is in the final read"),
        }));
        Verdict {
            checker: "lost-writes",
            rule: "every acknowledged insert is in the final read of the converged cluster; no failed one is",
            enforced: mode.promises_no_loss() || !self.final_read || !self.phantom.is_empty(),
            summary: format!(
                "{} acknowledged, {} lost (at most {} in a row), {} failed inserts present",
                self.acknowledged,
                self.lost.len(),
                self.most_lost_at_once,
                self.phantom.len()
            ),
            violations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::insert;

    fn history(mut events: Vec<Event>, final_ids: Option<Vec<i64>>) -> History {
        if let Some(ids) = final_ids {
            events.push(Event::FinalRead {
                t: 100.0,
                from: ReadFrom::Primary,
                member: "n1".into(),
                ids,
            });
        }
        History::from_events(events)
    }

    fn run(h: &History) -> LostWrites {
        check(h, &h.operations().unwrap())
    }

    #[test]
    fn every_acknowledged_insert_present_passes() {
        let mut events = Vec::new();
        events.extend(insert("w0", 1, 0.0, 0.1, Outcome::Ok));
        events.extend(insert("w0", 2, 0.2, 0.3, Outcome::Ok));
        // Unknown outcomes may be either way.
        events.extend(insert("w0", 3, 0.4, 1.4, Outcome::Info));
        events.extend(insert("w1", 4, 0.4, 1.4, Outcome::Info));
        let h = history(events, Some(vec![1, 2, 4]));
        let found = run(&h);
        assert_eq!(found.acknowledged, 2);
        assert!(found.lost.is_empty());
        assert!(found.verdict(Mode::Synchronous).passed());
    }

    #[test]
    fn a_missing_acknowledged_insert_fails_in_synchronous_mode_only() {
        let mut events = Vec::new();
        events.extend(insert("w0", 1, 0.0, 0.1, Outcome::Ok));
        events.extend(insert("w0", 2, 0.2, 0.3, Outcome::Ok));
        let h = history(events, Some(vec![1]));
        let found = run(&h);
        assert_eq!(found.lost, vec![(2, 0.3)]);
        let verdict = found.verdict(Mode::Synchronous);
        assert!(!verdict.passed());
        assert!(verdict.violations[0].what.contains("insert 2"));
        assert!(!found.verdict(Mode::Strict).passed());
        assert!(!found.verdict(Mode::Quorum).passed());
        // Counted, reported, not failed.
        let verdict = found.verdict(Mode::Async);
        assert!(verdict.passed());
        assert_eq!(verdict.violations.len(), 1);
    }

    #[test]
    fn a_failed_insert_that_committed_fails_in_every_mode() {
        let events: Vec<Event> = insert("w0", 5, 0.0, 0.1, Outcome::Fail).into();
        let h = history(events, Some(vec![5]));
        let found = run(&h);
        assert_eq!(found.phantom, vec![(5, 0.1)]);
        assert!(!found.verdict(Mode::Async).passed());
    }

    #[test]
    fn without_a_final_read_nothing_passes() {
        let events: Vec<Event> = insert("w0", 1, 0.0, 0.1, Outcome::Ok).into();
        let h = history(events, None);
        assert!(!run(&h).verdict(Mode::Async).passed());
    }

    #[test]
    fn losses_are_counted_in_bursts() {
        use crate::history::Phase;
        let mut events = Vec::new();
        for (i, id) in [1, 2, 3].iter().enumerate() {
            events.extend(insert("w0", *id, i as f64, i as f64 + 0.1, Outcome::Ok));
        }
        events.push(Event::Nemesis {
            t: 1.5,
            index: 0,
            phase: Phase::Start,
            nemesis: "kill-host".into(),
            detail: String::new(),
        });
        events.extend(insert("w0", 4, 5.0, 5.1, Outcome::Ok));
        let h = history(events, Some(vec![1, 4]));
        let found = run(&h);
        assert_eq!(found.lost.len(), 2);
        assert_eq!(found.most_lost_at_once, 2);
    }
}
