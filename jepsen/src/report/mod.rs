//! What a run leaves for people: `summary.json` (the figures), a one-screen text summary, and a
//! self-contained `report.html` (the timeline drawn with plotters and inlined as SVG, a table
//! per nemesis, each checker's verdict with the offending operations), plus `timeline.png`.
//!
//! Owns presentation only: every figure comes from the checkers' findings.

pub mod combine;
pub mod timeline;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::checkers::availability::Stats;
use crate::checkers::{Findings, Verdict};
use crate::history::{Event, History, Operation};
use crate::options::RunSpec;

/// `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub verdict: &'static str,
    pub seed: u64,
    pub mode: &'static str,
    pub shape: &'static str,
    pub engine: &'static str,
    pub duration_s: f64,
    pub faults: FaultCounts,
    pub acknowledged: usize,
    pub lost_acknowledged: usize,
    pub overlap_s: f64,
    pub stale_reads: usize,
    pub unconverged: usize,
    pub convergence_deadline_s: f64,
    /// Per nemesis: seconds without an acknowledged write after the fault.
    pub unavailability_s: BTreeMap<String, Stats>,
    /// Site faults that took the primary's site: seconds until a primary in another site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_failover_s: Option<Stats>,
    /// Per nemesis: violations of enforced rules during its faults.
    pub violations_per_nemesis: BTreeMap<String, usize>,
    pub checkers: Vec<CheckerSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FaultCounts {
    pub total: usize,
    pub per_nemesis: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckerSummary {
    pub checker: &'static str,
    pub rule: &'static str,
    pub enforced: bool,
    pub passed: bool,
    pub violations: usize,
    pub summary: String,
}

/// The nemesis whose fault was under way at `t` (from its start to the next one's).
fn nemesis_at(history: &History, t: f64) -> String {
    history
        .faults()
        .iter()
        .rev()
        .find(|f| f.start <= t)
        .map_or_else(|| "before any fault".to_owned(), |f| f.nemesis.clone())
}

pub fn summarize(spec: &RunSpec, history: &History, findings: &Findings) -> Summary {
    let faults = history.faults();
    let mut per_nemesis: BTreeMap<String, usize> = BTreeMap::new();
    for f in &faults {
        *per_nemesis.entry(f.nemesis.clone()).or_default() += 1;
    }
    let mut violations_per_nemesis: BTreeMap<String, usize> =
        per_nemesis.keys().map(|k| (k.clone(), 0)).collect();
    for verdict in findings.verdicts.iter().filter(|v| v.enforced) {
        for v in &verdict.violations {
            *violations_per_nemesis
                .entry(nemesis_at(history, v.t))
                .or_default() += 1;
        }
    }
    Summary {
        verdict: if findings.passed() { "pass" } else { "fail" },
        seed: spec.seed,
        mode: spec.mode.as_str(),
        shape: spec.shape.as_str(),
        engine: spec.engine.as_str(),
        duration_s: history.end(),
        faults: FaultCounts {
            total: faults.len(),
            per_nemesis,
        },
        acknowledged: findings.lost.acknowledged,
        lost_acknowledged: findings.lost.lost.len(),
        overlap_s: findings.overlap.overlap_s,
        stale_reads: findings.stale.stale.len(),
        unconverged: findings.convergence.unconverged.len(),
        convergence_deadline_s: findings.convergence.deadline_s,
        unavailability_s: findings.availability.per_nemesis(),
        site_failover_s: (!findings.site.failovers.is_empty()).then(|| findings.site.stats()),
        violations_per_nemesis,
        checkers: findings
            .verdicts
            .iter()
            .map(|v| CheckerSummary {
                checker: v.checker,
                rule: v.rule,
                enforced: v.enforced,
                passed: v.passed(),
                violations: v.violations.len(),
                summary: v.summary.clone(),
            })
            .collect(),
    }
}

/// The one-screen summary printed at the end of a run.
pub fn text(summary: &Summary, out: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "chaos run: seed {}, {} mode, {} nodes, {}; {} faults in {:.0} s",
        summary.seed,
        summary.mode,
        summary.shape,
        summary.engine,
        summary.faults.total,
        summary.duration_s
    );
    let _ = writeln!(
        s,
        "{:<22} {:>5} {:>9} {:>9} {:>9} {:>10}",
        "nemesis", "count", "median s", "p95 s", "max s", "violations"
    );
    for (name, count) in &summary.faults.per_nemesis {
        let st = summary
            .unavailability_s
            .get(name)
            .copied()
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<22} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>10}",
            name,
            count,
            st.median,
            st.p95,
            st.max,
            summary
                .violations_per_nemesis
                .get(name)
                .copied()
                .unwrap_or(0)
        );
    }
    let _ = writeln!(
        s,
        "acknowledged {}, lost {}, overlap {:.3} s, stale reads {}, unconverged {} (deadline {:.0} s)",
        summary.acknowledged,
        summary.lost_acknowledged,
        summary.overlap_s,
        summary.stale_reads,
        summary.unconverged,
        summary.convergence_deadline_s
    );
    for c in &summary.checkers {
        let _ = writeln!(
            s,
            "  {:<22} {:<5} {}{}",
            c.checker,
            if c.passed { "ok" } else { "FAIL" },
            c.summary,
            if c.enforced {
                ""
            } else {
                " (not enforced in this mode)"
            }
        );
    }
    let _ = writeln!(
        s,
        "verdict: {}  ({}/report.html)",
        summary.verdict.to_uppercase(),
        out.display()
    );
    // The plain closing line test runners' readers look for.
    let enforced: Vec<&CheckerSummary> = summary.checkers.iter().filter(|c| c.enforced).collect();
    let failed = enforced.iter().filter(|c| !c.passed).count();
    let _ = writeln!(
        s,
        "checkers: {} passed, {failed} failed",
        enforced.len() - failed
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Each timeline SVG covers this much of the run.
const PAGE_S: f64 = 600.0;

/// Writes `report.html` and `timeline.png` into `out`.
pub fn write_html(
    out: &Path,
    spec: &RunSpec,
    history: &History,
    ops: &[Operation],
    findings: &Findings,
    summary: &Summary,
) -> anyhow::Result<()> {
    let data = timeline::TimelineData::from_history(history, ops, &findings.availability.windows);
    let end = data.end.max(1.0);
    let mut svgs = Vec::new();
    let mut from = 0.0;
    while from < end {
        let to = (from + PAGE_S).min(end);
        svgs.push(timeline::svg(&data, from, to)?);
        from = to;
    }
    timeline::png(&data, 0.0, end.min(PAGE_S), &out.join("timeline.png"))?;

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Tribune chaos run, seed {seed}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}th{{background:#eee}}td.l,th.l{{text-align:left}}\
         .pass{{color:#1a7f37}}.fail{{color:#c62828}}.muted{{color:#777}}svg{{max-width:none}}\
         .scroll{{overflow-x:auto;border:1px solid #ddd;margin-bottom:1em}}details{{margin-bottom:.8em}}</style></head><body>",
        seed = spec.seed
    );
    let _ = write!(
        h,
        "<h1>Tribune chaos run: <span class=\"{cls}\">{verdict}</span></h1>\
         <p>Seed {seed}, {faults} faults, replication mode <b>{mode}</b>, {shape} nodes, engine {engine}, \
         ttl {ttl} s; {dur:.0} s. Convergence deadline after each heal: {deadline:.0} s. \
         Replay: <code>scripts/chaos.sh --replay DIR</code>.</p>",
        cls = summary.verdict,
        verdict = summary.verdict.to_uppercase(),
        seed = spec.seed,
        faults = summary.faults.total,
        mode = summary.mode,
        shape = summary.shape,
        engine = summary.engine,
        ttl = spec.ttl,
        dur = summary.duration_s,
        deadline = summary.convergence_deadline_s,
    );
    let _ = write!(
        h,
        "<table><tr><th class=l>acknowledged writes</th><th class=l>lost</th><th class=l>overlap</th>\
         <th class=l>stale reads</th><th class=l>unconverged</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{:.3} s</td><td>{}</td><td>{}</td></tr></table>",
        summary.acknowledged,
        summary.lost_acknowledged,
        summary.overlap_s,
        summary.stale_reads,
        summary.unconverged
    );
    h += "<h2>Per nemesis</h2><p class=muted>Unavailability: the longest time without an \
          acknowledged write through HAProxy's primary port, from the fault's start until writes \
          flow after it.</p><table><tr><th class=l>nemesis</th><th>faults</th><th>median s</th>\
          <th>p95 s</th><th>max s</th><th>violations</th></tr>";
    for (name, count) in &summary.faults.per_nemesis {
        let st = summary
            .unavailability_s
            .get(name)
            .copied()
            .unwrap_or_default();
        let v = summary
            .violations_per_nemesis
            .get(name)
            .copied()
            .unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td class=l>{}</td><td>{count}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td class=\"{}\">{v}</td></tr>",
            esc(name),
            st.median,
            st.p95,
            st.max,
            if v == 0 { "pass" } else { "fail" }
        );
    }
    h += "</table><h2>Checkers</h2>";
    for verdict in &findings.verdicts {
        checker_html(&mut h, verdict);
    }
    h += "<h2>Timeline</h2>";
    for svg in &svgs {
        let _ = write!(h, "<div class=scroll>{svg}</div>");
    }
    h += "<h2>Faults</h2><table><tr><th>#</th><th class=l>nemesis</th><th class=l>what</th>\
          <th>start s</th><th>heal s</th><th>converged after s</th><th>unavailable s</th><th class=l>heal</th></tr>";
    let mut convergence: BTreeMap<usize, (bool, f64)> = BTreeMap::new();
    let mut heal_detail: BTreeMap<usize, String> = BTreeMap::new();
    for e in &history.events {
        match e {
            Event::Convergence {
                index,
                converged,
                waited_s,
                ..
            } => {
                convergence.insert(*index, (*converged, *waited_s));
            }
            Event::Nemesis {
                index,
                phase: crate::history::Phase::Heal,
                detail,
                ..
            } => {
                heal_detail.insert(*index, detail.clone());
            }
            _ => {}
        }
    }
    let unavailable: BTreeMap<usize, f64> = findings
        .availability
        .per_fault
        .iter()
        .map(|(i, _, _, s)| (*i, *s))
        .collect();
    for f in history.faults() {
        let conv = convergence.get(&f.index).map_or("-".to_owned(), |(ok, w)| {
            if *ok {
                format!("{w:.1}")
            } else {
                format!("<span class=fail>not within {w:.0}</span>")
            }
        });
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{}</td><td>{:.1}</td><td>{}</td><td>{conv}</td><td>{:.2}</td><td class=l>{}</td></tr>",
            f.index,
            esc(&f.nemesis),
            esc(&f.detail),
            f.start,
            f.heal.map_or("-".into(), |t| format!("{t:.1}")),
            unavailable.get(&f.index).copied().unwrap_or(0.0),
            esc(heal_detail.get(&f.index).map_or("", String::as_str)),
        );
    }
    h += "</table><p class=muted>history.jsonl holds every operation; nodes/*/agent.log and \
          nodes/*/postgresql.log the agents' and databases' logs.</p></body></html>\n";
    let path = out.join("report.html");
    std::fs::write(&path, h).with_context(|| format!("write {}", path.display()))
}

fn checker_html(h: &mut String, v: &Verdict) {
    let state = if !v.passed() {
        "<span class=fail>FAIL</span>"
    } else if v.violations.is_empty() {
        "<span class=pass>pass</span>"
    } else {
        "<span class=muted>counted (not enforced in this mode)</span>"
    };
    let _ = write!(
        h,
        "<details{}><summary><b>{}</b>: {state} &mdash; {}</summary><p class=muted>{}</p>",
        if v.passed() { "" } else { " open" },
        v.checker,
        esc(&v.summary),
        esc(v.rule)
    );
    if v.violations.is_empty() {
        h.push_str("<p>No offending operation.</p>");
    } else {
        h.push_str("<table><tr><th>t s</th><th class=l>offending operation</th></tr>");
        for x in &v.violations {
            let _ = write!(
                h,
                "<tr><td>{:.3}</td><td class=l>{}</td></tr>",
                x.t,
                esc(&x.what)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</details>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_members_report() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
