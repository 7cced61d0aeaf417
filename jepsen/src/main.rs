//! `tribune-jepsen`: Tribune's chaos suite (`scripts/chaos.sh` runs it). Builds real clusters in
//! network namespaces, throws a seeded schedule of faults at them under a recorded workload,
//! and checks that no acknowledged write is lost, no two primaries accept writes, no read
//! through the primary port is stale, and every member converges after every heal.
//!
//! # Layout
//!
//! - [`options`]: the cluster shape, engine, replication mode and the stored run spec.
//! - [`hosts`]: namespaces, volumes, agents, databases and HAProxy; primitive faults.
//! - [`workload`]: the clients (inserts, reads, probes), recorded operation by operation.
//! - [`nemesis`]: the faults, their seeded schedule, their injection and recovery.
//! - [`observe`]: what the members report; the convergence rule; the role sampler.
//! - [`history`]: the recorded events and their pairing into operations.
//! - [`checkers`]: one rule per file, each naming its offending operations.
//! - [`report`]: `summary.json`, the text summary, `report.html` and its plots.
//! - [`run`]: one run from start to end.
//!
//! Exit status: 0 every enforced rule held, 1 a checker found a violation, 2 the harness
//! failed, 130 interrupted.

mod checkers;
mod history;
mod hosts;
mod nemesis;
mod observe;
mod options;
mod report;
mod run;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Parser;

use nemesis::{FaultSpec, Nemesis};
use options::{Engine, Mode, RunSpec, Shape};

/// The lease length of every run: Tribune's default.
const TTL_S: f64 = 3.0;

#[derive(Parser, Debug)]
#[command(
    name = "chaos.sh",
    about = "Tribune's chaos suite: real clusters in network namespaces, a seeded schedule of faults, \
             checkers of every acknowledged write, an HTML report",
    after_long_help = AFTER_HELP
)]
struct Cli {
    /// How many faults to inject.
    #[arg(long, default_value_t = 20)]
    faults: usize,
    /// The seed of the fault schedule (default: drawn from the clock, and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The run directory (default: runs/<time>-seed<seed>). It must not exist yet, or be empty.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The replication mode.
    #[arg(long, value_enum, default_value = "synchronous")]
    mode: Mode,
    /// The cluster's shape: database nodes (and a witness).
    #[arg(long, value_enum, default_value = "3")]
    shape: Shape,
    /// The database engine.
    #[arg(long, value_enum, default_value = "postgres")]
    engine: Engine,
    /// openGauss's programs, for --engine opengauss.
    #[arg(long, default_value = "/opt/tribune/opengauss/6.0.2/bin")]
    opengauss_bin: PathBuf,
    /// PostgreSQL's programs, for --engine postgres (`postgresql.bin_dir`; default: the newest
    /// /usr/lib/postgresql/*/bin, as the agent finds it). scripts/test.sh runs the smoke run
    /// again with PostgreSQL 18 (/opt/tribune/postgresql-18/bin).
    #[arg(long, value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// The nemeses to draw from, comma separated (default: all of them; the site faults only
    /// with --shape 2+2+1).
    #[arg(long, value_enum, value_delimiter = ',')]
    nemeses: Vec<Nemesis>,
    /// Seconds a cluster has after each heal to converge (one primary, every other member
    /// streaming from it) before it counts as stuck.
    #[arg(long, default_value_t = 45.0)]
    convergence_deadline: f64,
    /// Run again the schedule stored in DIR (its seed, faults, mode, shape and engine); the
    /// new run goes to --out or DIR-replay-<time>.
    #[arg(long, value_name = "DIR")]
    replay: Option<PathBuf>,
    /// Check the history stored in DIR again and rewrite its summary and report; starts nothing.
    #[arg(long, value_name = "DIR")]
    recheck: Option<PathBuf>,
    /// Pool the runs stored in these directories (comma separated) into one table per nemesis
    /// (Markdown, on stdout); starts nothing.
    #[arg(long, value_name = "DIR,DIR", value_delimiter = ',')]
    combine: Vec<PathBuf>,
    /// Which of ten side-by-side runs this is (0-9): names (trc<slot>-*) and addresses
    /// (10.212.<slot>.0/24) of its namespaces. A slot in use by another run is refused.
    #[arg(long, env = "TRIBUNE_CHAOS_SLOT", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..10))]
    slot: u8,
    /// The built `tribune` agent (default: beside this program).
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// The built `tribunectl` (default: beside this program).
    #[arg(long)]
    ctl_bin: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Each run writes its directory: run.json and schedule.json (what --replay needs), history.jsonl \
(every operation: invoke, then ok, fail or info), nodes/<member>/agent.log and postgresql.log, \
haproxy.cfg and haproxy.log, summary.json, report.html and timeline.png. It prints a one-screen \
summary and exits 1 when a checker finds a violation.

Checkers: lost acknowledged writes (0 in synchronous, quorum and strict modes; counted in async), \
overlapping writable primaries (0 in every mode), stale reads through the primary port (0 in the \
synchronous modes), convergence within --convergence-deadline after every heal, availability per \
nemesis (median, p95, max); with --shape 2+2+1, a primary in another site within 10 s of losing the \
primary's site, and in strict mode no write acknowledged with one database site left.

Must run as root (namespaces, nftables, mounts); agents and databases run as postgres (openGauss: \
omm). Examples:
  scripts/chaos.sh --faults 20 --seed 7 --out DIR
  scripts/chaos.sh --faults 1000 --mode async
  scripts/chaos.sh --shape 2+2+1 --nemeses site-cut,site-crash --faults 100 --mode strict
  scripts/chaos.sh --replay DIR";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_with(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn default_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find this program")?;
    let path = exe
        .parent()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .with_context(|| {
            format!("{name} is not built beside {}: run `cargo build --workspace` (scripts/chaos.sh does)", exe.display())
        })?;
    Ok(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

fn main_with(cli: Cli) -> anyhow::Result<ExitCode> {
    if !cli.combine.is_empty() {
        print!("{}", report::combine::combine(&cli.combine)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dir) = &cli.recheck {
        let spec: RunSpec = read_json(&dir.join("run.json"))?;
        let history = history::History::read(&dir.join("history.jsonl"))?;
        let findings = run::check_and_report(&spec, &history, dir)?;
        return Ok(ExitCode::from(if findings.passed() { 0 } else { 1 }));
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let (spec, schedule, out) = match &cli.replay {
        Some(dir) => {
            let spec: RunSpec = read_json(&dir.join("run.json"))?;
            let schedule: Vec<FaultSpec> = read_json(&dir.join("schedule.json"))?;
            let out = cli
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}-replay-{stamp}", dir.display())));
            (spec, schedule, out)
        }
        None => {
            if cli.faults == 0 {
                bail!("--faults must be at least 1");
            }
            if !(5.0..=600.0).contains(&cli.convergence_deadline) {
                bail!("--convergence-deadline must be between 5 and 600 seconds");
            }
            let seed = cli.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            });
            let nemeses = if cli.nemeses.is_empty() {
                Nemesis::defaults(cli.shape.has_sites())
            } else {
                cli.nemeses.clone()
            };
            if let Some(n) = nemeses
                .iter()
                .find(|n| n.needs_sites() && !cli.shape.has_sites())
            {
                bail!(
                    "the nemesis {} hits a site, and shape {} has none: use --shape 2+2+1",
                    n.name(),
                    cli.shape.as_str()
                );
            }
            let spec = RunSpec {
                seed,
                faults: cli.faults,
                mode: cli.mode,
                shape: cli.shape,
                engine: cli.engine,
                ttl: TTL_S,
                convergence_deadline_s: cli.convergence_deadline,
                nemeses: nemeses.iter().map(|n| n.name()).collect(),
            };
            let schedule = nemesis::schedule(seed, cli.faults, &nemeses, TTL_S);
            let out = cli
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("runs/{stamp}-seed{seed}")));
            (spec, schedule, out)
        }
    };
    if out.exists()
        && std::fs::read_dir(&out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let out = out
        .canonicalize()
        .with_context(|| format!("resolve {}", out.display()))?;
    std::fs::write(
        out.join("run.json"),
        serde_json::to_string_pretty(&spec)? + "\n",
    )?;
    std::fs::write(
        out.join("schedule.json"),
        serde_json::to_string_pretty(&schedule)? + "\n",
    )?;
    println!(
        "chaos: seed {} , {} faults, {} mode, {} nodes, {} -> {}",
        spec.seed,
        schedule.len(),
        spec.mode.as_str(),
        spec.shape.as_str(),
        spec.engine.as_str(),
        out.display()
    );
    let bins = run::Binaries {
        agent: match cli.agent_bin {
            Some(p) => p,
            None => default_binary("tribune")?,
        },
        ctl: match cli.ctl_bin {
            Some(p) => p,
            None => default_binary("tribunectl")?,
        },
        opengauss: cli.opengauss_bin,
        postgres: cli.pg_bin,
    };
    // Namespaces first, while this process has one thread: every thread started later
    // (the runtime's) lives in the hub.
    let net = hosts::Net { slot: cli.slot };
    let _slot = net.enter_hub()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let ending = runtime.block_on(run::execute(&spec, &schedule, &out, net, &bins))?;
    Ok(match ending {
        run::Ending::Pass => ExitCode::SUCCESS,
        run::Ending::Violations => ExitCode::from(1),
        run::Ending::Interrupted => ExitCode::from(130),
    })
}
