//! Overlapping writable primaries: no two members may acknowledge writes at once, in any mode.
//!
//! Every 100 ms the workload writes straight to every member (`probe`). A member's writable
//! *run* is a series of its acknowledged probes with less than [`RUN_GAP_S`] between one's
//! completion and the next one's invocation; within a run the member was certainly writable
//! from the first acknowledgement's completion to the last one's invocation. A probe
//! acknowledged by another member entirely inside that span is a violation: two members
//! committed writes in the same period. `overlap_s` is how long two runs' certain spans
//! overlapped.
//!
//! The gap is far below the lease (`ttl`, 3 s): a member cannot be fenced and promoted again
//! within it, so a run never spans another member's legitimate period as primary.

use std::collections::BTreeMap;

use crate::history::{OpValue, Operation, Outcome};

use super::{LISTED, Verdict, Violation};

/// Longest pause between two acknowledged probes of one writable run.
pub const RUN_GAP_S: f64 = 1.0;

/// One member's writable run: certainly writable from `from` to `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub member: String,
    pub from: f64,
    pub to: f64,
    pub probes: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overlap {
    pub acknowledged_probes: usize,
    pub runs: Vec<Run>,
    /// Probes acknowledged while another member was in a writable run: (time, member, id,
    /// the other member).
    pub offending: Vec<(f64, String, i64, String)>,
    /// Seconds during which two members' writable runs overlapped.
    pub overlap_s: f64,
}

pub fn check(ops: &[Operation]) -> Overlap {
    // (invoked, completed, id) of each member's acknowledged probes.
    let mut acks: BTreeMap<&str, Vec<(f64, f64, i64)>> = BTreeMap::new();
    for op in ops {
        if let (OpValue::Probe { member, id }, Outcome::Ok, Some(done)) =
            (&op.op, op.outcome, op.completed)
        {
            acks.entry(member)
                .or_default()
                .push((op.invoked, done, *id));
        }
    }
    let mut result = Overlap::default();
    let mut runs_of: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for (member, list) in &mut acks {
        list.sort_by(|a, b| a.1.total_cmp(&b.1));
        result.acknowledged_probes += list.len();
        let mut runs: Vec<Run> = Vec::new();
        let mut last_done = f64::NEG_INFINITY;
        for (invoked, done, _) in list.iter() {
            match runs.last_mut() {
                Some(run) if *invoked - last_done <= RUN_GAP_S => {
                    run.to = run.to.max(*invoked);
                    run.probes += 1;
                }
                _ => runs.push(Run {
                    member: (*member).to_owned(),
                    from: *done,
                    to: *invoked,
                    probes: 1,
                }),
            }
            last_done = last_done.max(*done);
        }
        runs_of.insert(member, runs);
    }
    for (member, list) in &acks {
        for (invoked, done, id) in list {
            for (other, runs) in &runs_of {
                if other == member {
                    continue;
                }
                // The run that started last before this probe began.
                let i = runs.partition_point(|r| r.from <= *invoked);
                if i > 0 && runs[i - 1].to >= *done {
                    result
                        .offending
                        .push((*done, (*member).to_owned(), *id, (*other).to_owned()));
                }
            }
        }
    }
    result.offending.sort_by(|a, b| a.0.total_cmp(&b.0));
    let all: Vec<&Run> = runs_of.values().flatten().collect();
    result.overlap_s = covered_twice(&all);
    result.runs = runs_of.into_values().flatten().collect();
    result.runs.sort_by(|a, b| a.from.total_cmp(&b.from));
    result
}

/// The length of time covered by at least two of the runs' certain spans.
fn covered_twice(runs: &[&Run]) -> f64 {
    let mut edges: Vec<(f64, i32)> = Vec::new();
    for r in runs.iter().filter(|r| r.to > r.from) {
        edges.push((r.from, 1));
        edges.push((r.to, -1));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut depth, mut since, mut total) = (0, 0.0, 0.0);
    for (t, delta) in edges {
        if depth >= 2 {
            total += t - since;
        }
        depth += delta;
        since = t;
    }
    total
}

impl Overlap {
    pub fn verdict(&self) -> Verdict {
        Verdict {
            checker: "overlapping-primaries",
            rule: "no member acknowledges a write while another member is acknowledging writes",
            enforced: true,
            summary: format!(
                "{} probe writes acknowledged in {} writable periods; {} acknowledged during another member's period; overlap {:.3} s",
                self.acknowledged_probes,
                self.runs.len(),
                self.offending.len(),
                self.overlap_s
            ),
            violations: self
                .offending
                .iter()
                .take(LISTED)
                .map(|(t, member, id, other)| Violation {
                    t: *t,
                    what: format!(
                        "probe {id} acknowledged by {member} at {t:.3}s while {other} was acknowledging writes"
                    ),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, History};

    /// Probes of `member` acknowledged every 100 ms from `from` to `to` (seconds).
    fn probes(member: &str, from: f64, to: f64, ids: &mut i64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut t = from;
        let process = format!("probe-{member}");
        while t <= to + 1e-9 {
            *ids += 1;
            let op = OpValue::Probe {
                member: member.into(),
                id: *ids,
            };
            events.push(Event::Invoke {
                t,
                process: process.clone(),
                op: op.clone(),
            });
            events.push(Event::Complete {
                t: t + 0.005,
                process: process.clone(),
                outcome: Outcome::Ok,
                op,
                error: None,
            });
            t += 0.1;
        }
        events
    }

    fn run(events: Vec<Event>) -> Overlap {
        check(&History::from_events(events).operations().unwrap())
    }

    #[test]
    fn a_clean_handover_and_a_later_return_pass() {
        let mut ids = 0;
        let mut events = probes("n1", 0.0, 10.0, &mut ids);
        events.extend(probes("n2", 13.0, 30.0, &mut ids));
        // n1 primary again after a later failover: a new run, no overlap.
        events.extend(probes("n1", 34.0, 40.0, &mut ids));
        let found = run(events);
        assert_eq!(found.runs.len(), 3);
        assert!(found.offending.is_empty());
        assert_eq!(found.overlap_s, 0.0);
        assert!(found.verdict().passed());
    }

    #[test]
    fn two_members_writable_at_once_fail() {
        let mut ids = 0;
        let mut events = probes("n1", 0.0, 10.0, &mut ids);
        events.extend(probes("n2", 8.0, 20.0, &mut ids));
        let found = run(events);
        assert!(!found.verdict().passed());
        assert!((found.overlap_s - 2.0).abs() < 0.1, "{}", found.overlap_s);
        assert!(found.offending.iter().any(|o| o.1 == "n2" && o.3 == "n1"));
        assert!(found.offending.iter().any(|o| o.1 == "n1" && o.3 == "n2"));
    }

    #[test]
    fn one_stray_acknowledgement_inside_another_members_period_fails() {
        let mut ids = 0;
        let mut events = probes("n2", 0.0, 20.0, &mut ids);
        // The deposed n1 acknowledges once, 5 s into n2's period.
        events.extend(probes("n1", 5.02, 5.02, &mut ids));
        let found = run(events);
        assert_eq!(found.offending.len(), 1);
        assert_eq!(found.offending[0].1, "n1");
        assert!(!found.verdict().passed());
    }

    #[test]
    fn failed_and_unknown_probes_count_for_nothing() {
        let mut ids = 0;
        let mut events = probes("n1", 0.0, 10.0, &mut ids);
        let op = OpValue::Probe {
            member: "n2".into(),
            id: 999,
        };
        events.push(Event::Invoke {
            t: 5.0,
            process: "probe-n2".into(),
            op: op.clone(),
        });
        events.push(Event::Complete {
            t: 6.0,
            process: "probe-n2".into(),
            outcome: Outcome::Info,
            op,
            error: Some("timed out".into()),
        });
        assert!(run(events).verdict().passed());
    }
}
