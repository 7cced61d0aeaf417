//! Site failover: after a site fault took the primary's whole site away (cut off from the
//! other sites, or crashed), a database member in another site is primary within
//! [`DEADLINE_S`] seconds of the fault, unless the site came back first. Measured from the
//! fault's start to the first role sample that shows a member outside the site as primary.
//!
//! Site faults that hit another site (a standby site, the witness's site) must not move the
//! primary; they are counted, and what they cost shows in the availability figures.
//!
//! The violation: a primary's site lost for longer than the deadline with no primary elsewhere
//! by then.
//!
//! The site guarantee (strict mode, `synchronous_site_survival`): every acknowledged commit
//! has a copy outside the primary's site. So once the primary's site is lost and the database
//! members left are all in one site, no write may be acknowledged until the site returns: the
//! old primary cannot reach a copy outside its site, and a new one has no site to copy to.
//! Writes invoked more than [`GRACE_S`] after the fault's start and acknowledged before its
//! heal break it (in non-strict mode they are the documented degradation, counted only).

use crate::history::{Event, History, OpValue, Operation, Outcome};
use crate::options::Mode;

use super::availability::Stats;
use super::{LISTED, Verdict, Violation};

/// How long a cluster may take to have a primary in another site once the primary's site is
/// lost: a little more than three leases (ttl 3 s: the lease runs out, the Raft majority on
/// the other side elects a leader if it lost its own, the best candidate is promoted).
pub const DEADLINE_S: f64 = 10.0;

/// How long after a site fault's start a write may still be acknowledged with a copy the cut
/// had not yet separated (the rules take effect host by host).
pub const GRACE_S: f64 = 1.0;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SiteFailover {
    /// Faults that took the primary's site: (fault index, nemesis, site, seconds from the
    /// fault to a primary in another site).
    pub failovers: Vec<(usize, String, String, f64)>,
    /// Faults that took the primary's site but ended before the deadline with no primary
    /// elsewhere yet: (index, site, seconds the site was lost).
    pub returned_first: Vec<(usize, String, f64)>,
    /// Faults after which no member of another site was primary within the deadline while
    /// the site stayed lost: (index, nemesis, site, fault start).
    pub late: Vec<(usize, String, String, f64)>,
    /// Site faults that hit a site without the primary.
    pub other_sites: usize,
    /// Writes acknowledged while the primary's site was lost and every database member left
    /// was in one site: (fault index, site, write id, completed).
    pub one_site_acks: Vec<(usize, String, i64, f64)>,
    /// Whether those break the rule (strict mode) or are the degradation (other modes).
    pub strict: bool,
}

pub fn check(history: &History, ops: &[Operation], mode: Mode) -> SiteFailover {
    let faults = history.faults();
    let mut result = SiteFailover {
        strict: mode == Mode::Strict,
        ..SiteFailover::default()
    };
    for event in &history.events {
        let Event::SiteLost {
            index,
            site,
            primary,
            outside,
            outside_sites,
            ..
        } = event
        else {
            continue;
        };
        let Some(fault) = faults.iter().find(|f| f.index == *index) else {
            continue;
        };
        if primary.is_none() {
            result.other_sites += 1;
            continue;
        }
        let elsewhere = history.events.iter().find_map(|e| match e {
            Event::Role {
                t, member, role, ..
            } if *t >= fault.start && role == "primary" && outside.contains(member) => {
                Some(*t - fault.start)
            }
            _ => None,
        });
        let healed = fault.heal.unwrap_or_else(|| history.end());
        if outside_sites.len() <= 1 {
            for op in ops {
                if let (OpValue::Insert { id }, Outcome::Ok, Some(done)) =
                    (&op.op, op.outcome, op.completed)
                    && op.invoked >= fault.start + GRACE_S
                    && done <= healed
                {
                    result.one_site_acks.push((*index, site.clone(), *id, done));
                }
            }
        }
        let lost_for = healed - fault.start;
        match elsewhere {
            Some(after) if after <= DEADLINE_S => {
                result
                    .failovers
                    .push((*index, fault.nemesis.clone(), site.clone(), after));
            }
            _ if lost_for < DEADLINE_S => {
                result.returned_first.push((*index, site.clone(), lost_for));
            }
            _ => result
                .late
                .push((*index, fault.nemesis.clone(), site.clone(), fault.start)),
        }
    }
    result
}

impl SiteFailover {
    pub fn guarantee_verdict(&self) -> Verdict {
        Verdict {
            checker: "site-guarantee",
            rule: "with the primary's site lost and one database site left, no write is \
                   acknowledged until the site returns (strict synchronous_site_survival)",
            enforced: self.strict,
            summary: format!(
                "{} writes acknowledged with the primary's site lost and one database site left",
                self.one_site_acks.len()
            ),
            violations: self
                .one_site_acks
                .iter()
                .take(LISTED)
                .map(|(index, site, id, t)| Violation {
                    t: *t,
                    what: format!(
                        "write {id} acknowledged while fault {index} had site {site} (the \
                         primary's) away: it has no copy outside one site"
                    ),
                })
                .collect(),
        }
    }

    pub fn stats(&self) -> Stats {
        let values: Vec<f64> = self.failovers.iter().map(|f| f.3).collect();
        Stats::of(&values)
    }

    pub fn verdict(&self) -> Verdict {
        let stats = self.stats();
        let summary = if self.failovers.is_empty()
            && self.late.is_empty()
            && self.returned_first.is_empty()
            && self.other_sites == 0
        {
            "no site fault in this run".to_owned()
        } else {
            format!(
                "primary's site lost {} times: a primary in another site after median {:.2} s, \
                 p95 {:.2} s, max {:.2} s (deadline {DEADLINE_S:.0} s); {} late, {} site back \
                 first; {} faults of other sites",
                self.failovers.len() + self.late.len() + self.returned_first.len(),
                stats.median,
                stats.p95,
                stats.max,
                self.late.len(),
                self.returned_first.len(),
                self.other_sites
            )
        };
        Verdict {
            checker: "site-failover",
            rule: "once the primary's site is lost, a member of another site is primary within \
                   the deadline",
            enforced: true,
            summary,
            violations: self
                .late
                .iter()
                .take(LISTED)
                .map(|(index, nemesis, site, t)| Violation {
                    t: *t,
                    what: format!(
                        "fault {index} ({nemesis}) took site {site} with the primary, and no \
                         member of another site was primary {DEADLINE_S:.0} s later"
                    ),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Phase;

    fn site_fault(index: usize, t: f64, hold: f64, primary: Option<&str>) -> Vec<Event> {
        vec![
            Event::SiteLost {
                t,
                index,
                site: "a".into(),
                members: vec!["n1".into(), "n2".into()],
                primary: primary.map(str::to_owned),
                outside: vec!["n3".into(), "n4".into()],
                outside_sites: vec!["b".into()],
            },
            Event::Nemesis {
                t,
                index,
                phase: Phase::Start,
                nemesis: "site-cut".into(),
                detail: String::new(),
            },
            Event::Nemesis {
                t: t + hold,
                index,
                phase: Phase::Heal,
                nemesis: "site-cut".into(),
                detail: String::new(),
            },
        ]
    }

    fn role(t: f64, member: &str, role: &str) -> Event {
        Event::Role {
            t,
            member: member.into(),
            role: role.into(),
            streaming: false,
            timeline: None,
        }
    }

    fn check_sync(history: &History) -> SiteFailover {
        check(history, &history.operations().unwrap(), Mode::Synchronous)
    }

    #[test]
    fn in_strict_mode_no_write_is_acknowledged_with_one_database_site_left() {
        use crate::history::tests::insert;
        let mut events = site_fault(0, 10.0, 12.0, Some("n1"));
        // Before the fault, within the grace, and after the heal: allowed.
        events.extend(insert("w0", 1, 9.0, 9.1, Outcome::Ok));
        events.extend(insert("w0", 2, 10.2, 10.4, Outcome::Ok));
        events.extend(insert("w0", 3, 22.5, 22.6, Outcome::Ok));
        // Invoked after the grace, acknowledged before the site came back; a failed one does
        // not count.
        events.extend(insert("w0", 4, 16.0, 16.1, Outcome::Ok));
        events.extend(insert("w0", 5, 16.2, 16.3, Outcome::Fail));
        let history = sorted(events);
        let ops = history.operations().unwrap();
        let strict = check(&history, &ops, Mode::Strict);
        assert_eq!(strict.one_site_acks.len(), 1, "{strict:?}");
        assert_eq!(strict.one_site_acks[0].2, 4);
        assert!(!strict.guarantee_verdict().passed());
        // Non-strict mode degrades by design: counted, not failed.
        let degraded = check(&history, &ops, Mode::Synchronous);
        assert_eq!(degraded.one_site_acks.len(), 1);
        assert!(degraded.guarantee_verdict().passed());
    }

    #[test]
    fn with_two_database_sites_left_writes_go_on() {
        use crate::history::tests::insert;
        let mut events = site_fault(0, 10.0, 12.0, Some("n1"));
        if let Event::SiteLost { outside_sites, .. } = &mut events[0] {
            *outside_sites = vec!["b".into(), "c".into()];
        }
        events.extend(insert("w0", 4, 16.0, 16.1, Outcome::Ok));
        let history = sorted(events);
        let strict = check(&history, &history.operations().unwrap(), Mode::Strict);
        assert!(strict.one_site_acks.is_empty());
        assert!(strict.guarantee_verdict().passed());
    }

    fn sorted(mut events: Vec<Event>) -> History {
        events.sort_by(|a, b| a.t().total_cmp(&b.t()));
        History::from_events(events)
    }

    #[test]
    fn a_primary_in_another_site_is_timed_from_the_fault() {
        let mut events = site_fault(0, 10.0, 12.0, Some("n1"));
        // n2 is in the lost site: its promotion is no site failover.
        events.push(role(12.0, "n2", "primary"));
        events.push(role(15.5, "n3", "primary"));
        let found = check_sync(&sorted(events));
        assert_eq!(found.failovers.len(), 1, "{found:?}");
        assert!((found.failovers[0].3 - 5.5).abs() < 1e-9);
        assert!(found.verdict().passed());
    }

    #[test]
    fn no_primary_elsewhere_by_the_deadline_fails() {
        let mut events = site_fault(0, 10.0, 14.0, Some("n1"));
        events.push(role(10.0 + DEADLINE_S + 1.0, "n4", "primary"));
        let found = check_sync(&sorted(events));
        assert_eq!(found.late.len(), 1, "{found:?}");
        assert!(!found.verdict().passed());
        let none = check_sync(&sorted(site_fault(0, 10.0, 14.0, Some("n1"))));
        assert_eq!(none.late.len(), 1);
    }

    #[test]
    fn a_site_back_before_the_deadline_needs_no_failover() {
        let found = check_sync(&sorted(site_fault(0, 10.0, DEADLINE_S - 2.0, Some("n1"))));
        assert_eq!(found.returned_first.len(), 1, "{found:?}");
        assert!(found.late.is_empty());
        assert!(found.verdict().passed());
    }

    #[test]
    fn a_fault_of_a_site_without_the_primary_is_only_counted() {
        let found = check_sync(&sorted(site_fault(0, 10.0, 14.0, None)));
        assert_eq!(found.other_sites, 1);
        assert!(found.failovers.is_empty() && found.late.is_empty());
        assert!(found.verdict().passed());
        assert_eq!(
            check_sync(&History::from_events(Vec::new()))
                .verdict()
                .summary,
            "no site fault in this run"
        );
    }
}
