//! The history of a run: every client operation (invoked, then ok, fail or info), every fault
//! and heal, every change of a member's role, every convergence check and the final reads, one
//! JSON object per line in `history.jsonl`.
//!
//! Owns the event types, their recording (a cheap, cloneable [`Recorder`] shared by the
//! workload, the nemesis and the observers) and the pairing of an invocation with its
//! completion ([`History::operations`]), which is what the checkers read. It must not judge
//! anything: the checkers do, from this file alone, so a stored history can be checked again.
//!
//! Times are seconds since the run started, on the harness's monotonic clock: a wall-clock
//! jump of a host (a nemesis) cannot bend them.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// What a client operation does, and what it saw when it completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum OpValue {
    /// `INSERT INTO inserts(id)` through HAProxy's primary port.
    Insert { id: i64 },
    /// `SELECT id FROM inserts WHERE id > floor` through HAProxy's primary port; `seen` is
    /// filled in on completion.
    Read {
        floor: i64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seen: Vec<i64>,
    },
    /// `INSERT INTO probe(id)` straight to one member's PostgreSQL, every 100 ms.
    Probe { member: String, id: i64 },
}

/// How an operation ended. `Info` is an unknown outcome (a timeout, a connection lost during
/// the commit): the write may or may not have happened, and no checker counts it either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Fail,
    Info,
}

/// Whether a nemesis event starts a fault or heals it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Heal,
}

/// The source of a final read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// Through HAProxy's primary port once the cluster converged: what the cluster holds.
    Primary,
    /// Straight from one member, for the report.
    Member,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Invoke {
        t: f64,
        process: String,
        op: OpValue,
    },
    Complete {
        t: f64,
        process: String,
        outcome: Outcome,
        op: OpValue,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Nemesis {
        t: f64,
        /// The fault's position in the schedule.
        index: usize,
        phase: Phase,
        nemesis: String,
        /// Whom it hit and how, in words.
        detail: String,
    },
    /// A site fault took site `site` away (recorded just before its start): who was in it, who
    /// held the primary role then, and the database members outside it (the failover's
    /// candidates).
    SiteLost {
        t: f64,
        /// The fault's position in the schedule.
        index: usize,
        site: String,
        members: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        primary: Option<String>,
        outside: Vec<String>,
        /// The sites of the database members outside it (each once).
        #[serde(default)]
        outside_sites: Vec<String>,
    },
    /// A member's role as its REST API reported it, recorded when it changes.
    Role {
        t: f64,
        member: String,
        /// `primary`, `replica`, `stopped`, ..., or `unreachable` when the API did not answer.
        role: String,
        streaming: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeline: Option<u32>,
    },
    /// The check after fault `index` healed: one primary, every other member streaming from it.
    Convergence {
        t: f64,
        index: usize,
        converged: bool,
        waited_s: f64,
        deadline_s: f64,
        detail: String,
    },
    FinalRead {
        t: f64,
        from: ReadFrom,
        member: String,
        ids: Vec<i64>,
    },
}

impl Event {
    pub fn t(&self) -> f64 {
        match self {
            Event::Invoke { t, .. }
            | Event::Complete { t, .. }
            | Event::Nemesis { t, .. }
            | Event::SiteLost { t, .. }
            | Event::Role { t, .. }
            | Event::Convergence { t, .. }
            | Event::FinalRead { t, .. } => *t,
        }
    }
}

/// Appends events to memory and, as they come, to a journal file (so that a run that dies
/// leaves its history; the run rewrites it in time order at the end). Cloned into every task.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    journal: Arc<Mutex<Option<std::io::BufWriter<std::fs::File>>>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            events: Arc::default(),
            journal: Arc::default(),
        }
    }

    /// As [`Recorder::new`], also appending each event to `path` (written when its buffer
    /// fills and with every fault and convergence event).
    pub fn with_journal(start: Instant, path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("create the history {}", path.display()))?;
        Ok(Self {
            journal: Arc::new(Mutex::new(Some(std::io::BufWriter::new(file)))),
            ..Self::new(start)
        })
    }

    /// Stops the journal (before the whole history replaces it).
    pub fn close_journal(&self) {
        let journal = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut out) = journal {
            let _ = out.flush();
        }
    }

    /// Seconds since the run started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn record(&self, event: Event) {
        if let Some(out) = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            // A journal that cannot be written loses only the journal: the run still writes the
            // whole history at its end.
            let _ = serde_json::to_writer(&mut *out, &event);
            let _ = out.write_all(b"\n");
            if matches!(event, Event::Nemesis { .. } | Event::Convergence { .. }) {
                let _ = out.flush();
            }
        }
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(event);
    }

    pub fn invoke(&self, process: &str, op: OpValue) {
        self.record(Event::Invoke {
            t: self.now(),
            process: process.to_owned(),
            op,
        });
    }

    pub fn complete(&self, process: &str, outcome: Outcome, op: OpValue, error: Option<String>) {
        self.record(Event::Complete {
            t: self.now(),
            process: process.to_owned(),
            outcome,
            op,
            error,
        });
    }

    /// The events so far, ordered by time (tasks record concurrently, so a later push may carry
    /// an earlier time by microseconds).
    pub fn snapshot(&self) -> History {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        events.sort_by(|a, b| a.t().total_cmp(&b.t()));
        History { events }
    }
}

/// A whole history, read back or snapshotted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub events: Vec<Event>,
}

/// An invocation paired with its completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub process: String,
    pub invoked: f64,
    /// `None` when the run ended before the operation completed (counted as `Info`).
    pub completed: Option<f64>,
    pub outcome: Outcome,
    /// The completion's value (a read's `seen`), else the invocation's.
    pub op: OpValue,
    pub error: Option<String>,
}

impl Operation {
    /// When the outcome was known, or the end of time for one that never completed.
    pub fn completed_or_never(&self) -> f64 {
        self.completed.unwrap_or(f64::INFINITY)
    }
}

/// A history line that does not parse, or an invocation whose process still had one open.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HistoryError {
    #[error("history line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("process {process} invoked an operation at {t:.3}s while its previous one was open")]
    OverlappingInvoke { process: String, t: f64 },
    #[error("process {process} completed an operation at {t:.3}s that it never invoked")]
    CompleteWithoutInvoke { process: String, t: f64 },
}

impl History {
    pub fn from_events(mut events: Vec<Event>) -> Self {
        events.sort_by(|a, b| a.t().total_cmp(&b.t()));
        Self { events }
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("open the history {}", path.display()))?;
        let mut events = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("read {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line).map_err(|e| HistoryError::BadLine {
                line: i + 1,
                reason: e.to_string(),
            })?;
            events.push(event);
        }
        Ok(Self::from_events(events))
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("create the history {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        for event in &self.events {
            serde_json::to_writer(&mut out, event).context("encode a history event")?;
            out.write_all(b"\n")
                .with_context(|| format!("write {}", path.display()))?;
        }
        out.flush()
            .with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    /// Every invocation with its completion, in order of invocation. A process runs one
    /// operation at a time; breaking that is an error of the harness, not of the cluster.
    pub fn operations(&self) -> Result<Vec<Operation>, HistoryError> {
        let mut open: std::collections::HashMap<&str, usize> = Default::default();
        let mut ops: Vec<Operation> = Vec::new();
        for event in &self.events {
            match event {
                Event::Invoke { t, process, op } => {
                    if open.contains_key(process.as_str()) {
                        return Err(HistoryError::OverlappingInvoke {
                            process: process.clone(),
                            t: *t,
                        });
                    }
                    open.insert(process, ops.len());
                    ops.push(Operation {
                        process: process.clone(),
                        invoked: *t,
                        completed: None,
                        outcome: Outcome::Info,
                        op: op.clone(),
                        error: None,
                    });
                }
                Event::Complete {
                    t,
                    process,
                    outcome,
                    op,
                    error,
                } => {
                    let Some(i) = open.remove(process.as_str()) else {
                        return Err(HistoryError::CompleteWithoutInvoke {
                            process: process.clone(),
                            t: *t,
                        });
                    };
                    let o = &mut ops[i];
                    o.completed = Some(*t);
                    o.outcome = *outcome;
                    o.op = op.clone();
                    o.error = error.clone();
                }
                _ => {}
            }
        }
        Ok(ops)
    }

    /// The faults: (index, nemesis, start, heal) in order of start.
    pub fn faults(&self) -> Vec<Fault> {
        let mut faults: Vec<Fault> = Vec::new();
        for event in &self.events {
            if let Event::Nemesis {
                t,
                index,
                phase,
                nemesis,
                detail,
            } = event
            {
                match phase {
                    Phase::Start => faults.push(Fault {
                        index: *index,
                        nemesis: nemesis.clone(),
                        detail: detail.clone(),
                        start: *t,
                        heal: None,
                    }),
                    Phase::Heal => {
                        if let Some(f) = faults.iter_mut().rev().find(|f| f.index == *index) {
                            f.heal = Some(*t);
                        }
                    }
                }
            }
        }
        faults
    }

    /// When the run's last event happened.
    pub fn end(&self) -> f64 {
        self.events.last().map_or(0.0, Event::t)
    }
}

/// One fault of the schedule as the history recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub index: usize,
    pub nemesis: String,
    pub detail: String,
    pub start: f64,
    pub heal: Option<f64>,
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Hand-made histories for the checkers' tests.
    pub fn insert(
        process: &str,
        id: i64,
        invoked: f64,
        completed: f64,
        outcome: Outcome,
    ) -> [Event; 2] {
        let op = OpValue::Insert { id };
        [
            Event::Invoke {
                t: invoked,
                process: process.into(),
                op: op.clone(),
            },
            Event::Complete {
                t: completed,
                process: process.into(),
                outcome,
                op,
                error: None,
            },
        ]
    }

    #[test]
    fn operations_pair_each_invocation_with_its_completion() {
        let mut events = Vec::new();
        events.extend(insert("w0", 1, 0.0, 0.1, Outcome::Ok));
        events.extend(insert("w1", 2, 0.05, 0.2, Outcome::Info));
        events.push(Event::Invoke {
            t: 0.3,
            process: "w0".into(),
            op: OpValue::Insert { id: 3 },
        });
        let ops = History::from_events(events).operations().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!((ops[0].completed, ops[0].outcome), (Some(0.1), Outcome::Ok));
        assert_eq!(ops[1].outcome, Outcome::Info);
        assert_eq!((ops[2].completed, ops[2].outcome), (None, Outcome::Info));
    }

    #[test]
    fn a_process_with_two_open_operations_is_an_error_of_the_harness() {
        let events = vec![
            Event::Invoke {
                t: 0.0,
                process: "w0".into(),
                op: OpValue::Insert { id: 1 },
            },
            Event::Invoke {
                t: 0.1,
                process: "w0".into(),
                op: OpValue::Insert { id: 2 },
            },
        ];
        assert!(matches!(
            History::from_events(events).operations(),
            Err(HistoryError::OverlappingInvoke { .. })
        ));
    }

    #[test]
    fn the_journal_holds_every_event_as_it_came() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::with_journal(Instant::now(), &path).unwrap();
        recorder.invoke("w0", OpValue::Insert { id: 1 });
        recorder.complete("w0", Outcome::Ok, OpValue::Insert { id: 1 }, None);
        recorder.close_journal();
        // Closed: later events stay in memory only.
        recorder.invoke("w0", OpValue::Insert { id: 2 });
        let stored = History::read(&path).unwrap();
        assert_eq!(stored.events.len(), 2);
        assert_eq!(recorder.snapshot().events.len(), 3);
    }

    #[test]
    fn a_history_survives_the_file() {
        let mut events: Vec<Event> = insert("w0", 7, 1.0, 1.5, Outcome::Ok).into();
        events.push(Event::Nemesis {
            t: 2.0,
            index: 0,
            phase: Phase::Start,
            nemesis: "kill-agent".into(),
            detail: "n1".into(),
        });
        events.push(Event::FinalRead {
            t: 3.0,
            from: ReadFrom::Primary,
            member: "n2".into(),
            ids: vec![7],
        });
        let history = History::from_events(events);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        history.write(&path).unwrap();
        assert_eq!(History::read(&path).unwrap(), history);
    }
}
