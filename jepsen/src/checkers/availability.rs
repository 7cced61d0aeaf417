//! Availability: for each fault, how long the cluster acknowledged no write through HAProxy's
//! primary port. Measured within the fault's window (from its start to the next fault's) as the
//! longest interval without an acknowledged insert, counting only inserts invoked after the
//! fault began: for a fault that stops writes at once (a crashed primary) that is the time from
//! the fault to the first acknowledged write; for one that stops them later (a partitioned
//! primary fences itself after `ttl - retry_timeout`) it is the gap that follows. A fault
//! whose window holds no acknowledged write counts until the first one after it. Reported per
//! nemesis as median, p95 and max.
//!
//! The only violation: a fault after which no write was ever acknowledged again.

use std::collections::BTreeMap;

use crate::history::{History, OpValue, Operation, Outcome};

use super::{LISTED, Verdict, Violation};

/// Gaps between acknowledged writes longer than this are drawn as unavailability windows.
pub const WINDOW_S: f64 = 1.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    pub count: usize,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

impl Stats {
    /// Nearest-rank percentiles of `values`.
    pub fn of(values: &[f64]) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let k = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[k - 1]
        };
        Stats {
            count: sorted.len(),
            median: rank(0.5),
            p95: rank(0.95),
            max: sorted[sorted.len() - 1],
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Availability {
    /// (fault index, nemesis, fault start, seconds without an acknowledged write).
    pub per_fault: Vec<(usize, String, f64, f64)>,
    /// Faults after which no write was ever acknowledged: (index, nemesis, start).
    pub never_again: Vec<(usize, String, f64)>,
    /// Every interval longer than [`WINDOW_S`] without an acknowledged write: (from, to).
    pub windows: Vec<(f64, f64)>,
}

pub fn check(history: &History, ops: &[Operation]) -> Availability {
    // (invoked, completed) of acknowledged inserts, by completion.
    let mut acks: Vec<(f64, f64)> = ops
        .iter()
        .filter_map(|op| match (&op.op, op.outcome, op.completed) {
            (OpValue::Insert { .. }, Outcome::Ok, Some(done)) => Some((op.invoked, done)),
            _ => None,
        })
        .collect();
    acks.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut result = Availability::default();
    let faults = history.faults();
    // The workload's end: the last fault's window closes there.
    let last_ack = acks.last().map_or(0.0, |a| a.1);
    for (k, fault) in faults.iter().enumerate() {
        let end = faults.get(k + 1).map_or(last_ack, |f| f.start);
        let after: Vec<f64> = acks
            .iter()
            .filter(|(invoked, _)| *invoked >= fault.start)
            .map(|(_, done)| *done)
            .collect();
        let within: Vec<f64> = after.iter().copied().filter(|d| *d <= end).collect();
        let longest = if within.is_empty() {
            match after.first() {
                Some(first) => first - fault.start,
                None => {
                    result
                        .never_again
                        .push((fault.index, fault.nemesis.clone(), fault.start));
                    history.end() - fault.start
                }
            }
        } else {
            let mut last = fault.start;
            let mut longest: f64 = 0.0;
            for done in &within {
                longest = longest.max(done - last);
                last = *done;
            }
            longest.max(end - last)
        };
        result
            .per_fault
            .push((fault.index, fault.nemesis.clone(), fault.start, longest));
    }
    let mut last: Option<f64> = None;
    for (_, done) in &acks {
        if let Some(prev) = last
            && done - prev > WINDOW_S
        {
            result.windows.push((prev, *done));
        }
        last = Some(*done);
    }
    result
}

impl Availability {
    /// Unavailability per nemesis, by name.
    pub fn per_nemesis(&self) -> BTreeMap<String, Stats> {
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (_, nemesis, _, s) in &self.per_fault {
            values.entry(nemesis.clone()).or_default().push(*s);
        }
        values
            .into_iter()
            .map(|(k, v)| (k, Stats::of(&v)))
            .collect()
    }

    pub fn verdict(&self) -> Verdict {
        let all: Vec<f64> = self.per_fault.iter().map(|f| f.3).collect();
        let stats = Stats::of(&all);
        Verdict {
            checker: "availability",
            rule: "after every fault, writes are acknowledged again",
            enforced: true,
            summary: format!(
                "unavailability over {} faults: median {:.2} s, p95 {:.2} s, max {:.2} s",
                stats.count, stats.median, stats.p95, stats.max
            ),
            violations: self
                .never_again
                .iter()
                .take(LISTED)
                .map(|(index, nemesis, t)| Violation {
                    t: *t,
                    what: format!(
                        "no write was acknowledged after fault {index} ({nemesis}) began"
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
    use crate::history::{Event, Phase};

    fn start(index: usize, t: f64, nemesis: &str) -> Event {
        Event::Nemesis {
            t,
            index,
            phase: Phase::Start,
            nemesis: nemesis.into(),
            detail: String::new(),
        }
    }

    /// Inserts acknowledged every 100 ms in [from, to].
    fn writes(from: f64, to: f64, next: &mut i64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut t = from;
        while t <= to + 1e-9 {
            *next += 1;
            events.extend(insert("w0", *next, t, t + 0.01, Outcome::Ok));
            t += 0.1;
        }
        events
    }

    #[test]
    fn time_from_a_fault_to_the_first_acknowledged_write() {
        let mut id = 0;
        let mut events = writes(0.0, 10.0, &mut id);
        events.push(start(0, 10.05, "kill-host"));
        events.extend(writes(13.0, 20.0, &mut id));
        events.push(start(1, 20.05, "kill-agent"));
        events.extend(writes(20.1, 30.0, &mut id));
        let found = check(
            &History::from_events(events.clone()),
            &History::from_events(events).operations().unwrap(),
        );
        assert_eq!(found.per_fault.len(), 2);
        assert!(
            (found.per_fault[0].3 - 2.96).abs() < 0.01,
            "{:?}",
            found.per_fault
        );
        assert!(found.per_fault[1].3 < 0.2);
        assert_eq!(found.windows.len(), 1);
        assert!(found.verdict().passed());
        let per = found.per_nemesis();
        assert_eq!(per["kill-host"].count, 1);
    }

    #[test]
    fn the_next_faults_outage_is_not_counted_twice() {
        let mut id = 0;
        let mut events = vec![start(0, 0.0, "clock-jump")];
        events.extend(writes(0.0, 10.0, &mut id));
        // The next fault stops writes for 3 s: its own, not the clock jump's.
        events.push(start(1, 10.05, "kill-host"));
        events.extend(writes(13.0, 20.0, &mut id));
        let h = History::from_events(events);
        let found = check(&h, &h.operations().unwrap());
        assert!(found.per_fault[0].3 < 0.2, "{:?}", found.per_fault);
        assert!(
            (found.per_fault[1].3 - 2.96).abs() < 0.01,
            "{:?}",
            found.per_fault
        );
    }

    #[test]
    fn a_gap_that_opens_later_in_the_fault_counts() {
        let mut id = 0;
        let mut events = vec![start(0, 0.0, "partition-primary")];
        // The isolated primary goes on for 2.5 s, then nothing until 4 s.
        events.extend(writes(0.0, 2.5, &mut id));
        events.extend(writes(4.0, 6.0, &mut id));
        let h = History::from_events(events);
        let found = check(&h, &h.operations().unwrap());
        assert!(
            (found.per_fault[0].3 - 1.5).abs() < 0.02,
            "{:?}",
            found.per_fault
        );
    }

    #[test]
    fn no_write_ever_again_fails() {
        let mut id = 0;
        let mut events = writes(0.0, 5.0, &mut id);
        events.push(start(0, 5.05, "kill-host"));
        events.push(Event::Role {
            t: 50.0,
            member: "n1".into(),
            role: "unreachable".into(),
            streaming: false,
            timeline: None,
        });
        let h = History::from_events(events);
        let found = check(&h, &h.operations().unwrap());
        assert_eq!(found.never_again.len(), 1);
        assert!((found.per_fault[0].3 - 44.95).abs() < 0.01);
        assert!(!found.verdict().passed());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!((s.median, s.p95, s.max, s.count), (5.0, 10.0, 10.0, 10));
        assert_eq!(Stats::of(&[]), Stats::default());
    }
}
