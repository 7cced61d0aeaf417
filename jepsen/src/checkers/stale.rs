//! Stale reads through the primary port: a read must see every insert acknowledged before the
//! read began. A read served by a deposed primary (or by a primary that lost acknowledged
//! commits) misses some. Each read covers the ids above a floor (the most recent inserts), so
//! only inserts in that window are checked against it.
//!
//! Enforced in the synchronous modes; in asynchronous mode a failover may lose acknowledged
//! commits, and reads after it miss them: counted and reported, not failed.

use std::collections::HashSet;

use crate::history::{OpValue, Operation, Outcome};
use crate::options::Mode;

use super::{LISTED, Verdict, Violation};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StaleReads {
    pub reads: usize,
    /// (when the read began, the ids it missed) of each stale read.
    pub stale: Vec<(f64, Vec<i64>)>,
}

pub fn check(ops: &[Operation]) -> StaleReads {
    // Acknowledged inserts by id: (id, when acknowledged).
    let mut acked: Vec<(i64, f64)> = ops
        .iter()
        .filter_map(|op| match (&op.op, op.outcome, op.completed) {
            (OpValue::Insert { id }, Outcome::Ok, Some(done)) => Some((*id, done)),
            _ => None,
        })
        .collect();
    acked.sort_by_key(|(id, _)| *id);
    let mut result = StaleReads::default();
    for op in ops {
        let (OpValue::Read { floor, seen }, Outcome::Ok) = (&op.op, op.outcome) else {
            continue;
        };
        result.reads += 1;
        let seen: HashSet<i64> = seen.iter().copied().collect();
        let from = acked.partition_point(|(id, _)| *id <= *floor);
        let missed: Vec<i64> = acked[from..]
            .iter()
            .filter(|(id, done)| *done < op.invoked && !seen.contains(id))
            .map(|(id, _)| *id)
            .collect();
        if !missed.is_empty() {
            result.stale.push((op.invoked, missed));
        }
    }
    result
}

impl StaleReads {
    pub fn verdict(&self, mode: Mode) -> Verdict {
        Verdict {
            checker: "stale-reads",
            rule: "a read through the primary port sees every insert acknowledged before it began",
            enforced: mode.promises_no_loss(),
            summary: format!("{} reads, {} stale", self.reads, self.stale.len()),
            violations: self
                .stale
                .iter()
                .take(LISTED)
                .map(|(t, missed)| Violation {
                    t: *t,
                    what: format!(
                        "the read begun at {t:.3}s missed {} acknowledged inserts, e.g. {:?}",
                        missed.len(),
                        &missed[..missed.len().min(5)]
                    ),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::insert;
    use crate::history::{Event, History};

    fn read(t: f64, floor: i64, seen: Vec<i64>) -> [Event; 2] {
        [
            Event::Invoke {
                t,
                process: "r0".into(),
                op: OpValue::Read {
                    floor,
                    seen: vec![],
                },
            },
            Event::Complete {
                t: t + 0.01,
                process: "r0".into(),
                outcome: Outcome::Ok,
                op: OpValue::Read { floor, seen },
                error: None,
            },
        ]
    }

    fn run(events: Vec<Event>) -> StaleReads {
        check(&History::from_events(events).operations().unwrap())
    }

    #[test]
    fn a_read_that_sees_every_earlier_acknowledgement_passes() {
        let mut events = Vec::new();
        events.extend(insert("w0", 1, 0.0, 0.1, Outcome::Ok));
        events.extend(insert("w0", 2, 0.2, 0.3, Outcome::Ok));
        // Acknowledged after the read began: the read may miss it.
        events.extend(insert("w1", 3, 0.3, 0.6, Outcome::Ok));
        events.extend(read(0.5, 0, vec![1, 2]));
        // Below the floor: not this read's business.
        events.extend(read(0.8, 1, vec![2, 3]));
        let found = run(events);
        assert_eq!(found.reads, 2);
        assert!(found.stale.is_empty());
        assert!(found.verdict(Mode::Synchronous).passed());
    }

    #[test]
    fn a_read_from_a_deposed_primary_is_stale() {
        let mut events = Vec::new();
        events.extend(insert("w0", 1, 0.0, 0.1, Outcome::Ok));
        events.extend(insert("w0", 2, 0.2, 0.3, Outcome::Ok));
        events.extend(read(0.5, 0, vec![1]));
        let found = run(events);
        assert_eq!(found.stale, vec![(0.5, vec![2])]);
        assert!(!found.verdict(Mode::Synchronous).passed());
        assert!(!found.verdict(Mode::Quorum).passed());
        assert!(found.verdict(Mode::Async).passed());
    }

    #[test]
    fn failed_and_timed_out_reads_are_not_judged() {
        let mut events = Vec::new();
        events.extend(insert("w0", 1, 0.0, 0.1, Outcome::Ok));
        events.push(Event::Invoke {
            t: 0.5,
            process: "r0".into(),
            op: OpValue::Read {
                floor: 0,
                seen: vec![],
            },
        });
        events.push(Event::Complete {
            t: 1.5,
            process: "r0".into(),
            outcome: Outcome::Info,
            op: OpValue::Read {
                floor: 0,
                seen: vec![],
            },
            error: Some("timed out".into()),
        });
        let found = run(events);
        assert_eq!(found.reads, 0);
        assert!(found.verdict(Mode::Synchronous).passed());
    }
}
