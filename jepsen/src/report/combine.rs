//! Figures over several runs (`--combine DIR,DIR,...`): the runs' histories checked again and
//! their faults pooled, per nemesis, into one Markdown table: how many faults, the
//! unavailability's median/p95/max over all of them, and the violations; then the totals of
//! acknowledged, lost, overlap, stale reads and unconverged members. This is the table the
//! README publishes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use crate::checkers::{self, availability::Stats};
use crate::history::History;
use crate::options::RunSpec;

pub fn combine(dirs: &[PathBuf]) -> anyhow::Result<String> {
    let mut unavailable: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut violations: BTreeMap<String, usize> = BTreeMap::new();
    let (mut acknowledged, mut lost, mut stale, mut unconverged) = (0, 0, 0, 0);
    let mut overlap_s = 0.0;
    let mut runs = Vec::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("run.json"))
            .with_context(|| format!("read {}/run.json", dir.display()))?;
        let spec: RunSpec = serde_json::from_str(&text)
            .with_context(|| format!("parse {}/run.json", dir.display()))?;
        let history = History::read(&dir.join("history.jsonl"))?;
        let findings = checkers::check_all(
            &history,
            checkers::Context {
                mode: spec.mode,
                convergence_deadline_s: spec.convergence_deadline_s,
            },
        )?;
        let summary = super::summarize(&spec, &history, &findings);
        for (_, nemesis, _, s) in &findings.availability.per_fault {
            unavailable.entry(nemesis.clone()).or_default().push(*s);
        }
        for (nemesis, n) in &summary.violations_per_nemesis {
            *violations.entry(nemesis.clone()).or_default() += n;
        }
        acknowledged += summary.acknowledged;
        lost += summary.lost_acknowledged;
        stale += summary.stale_reads;
        unconverged += summary.unconverged;
        overlap_s += summary.overlap_s;
        runs.push(format!(
            "seed {} ({} mode, {} nodes, {} faults, {})",
            spec.seed, summary.mode, summary.shape, summary.faults.total, summary.verdict
        ));
    }
    let total: usize = unavailable.values().map(Vec::len).sum();
    let mut out = format!("Runs: {}; {total} faults.\n\n", runs.join(", "));
    out += "| nemesis | faults | unavailable median s | p95 s | max s | violations |\n";
    out += "|---|---:|---:|---:|---:|---:|\n";
    for (nemesis, values) in &unavailable {
        let st = Stats::of(values);
        let _ = writeln!(
            out,
            "| {nemesis} | {} | {:.2} | {:.2} | {:.2} | {} |",
            st.count,
            st.median,
            st.p95,
            st.max,
            violations.get(nemesis).copied().unwrap_or(0)
        );
    }
    let _ = write!(
        out,
        "\nAcknowledged writes {acknowledged}, lost {lost}, overlap {overlap_s:.3} s, stale reads \
         {stale}, unconverged {unconverged}.\n"
    );
    Ok(out)
}
