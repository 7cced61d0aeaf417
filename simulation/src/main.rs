//! `tribune-simulate`: runs seeded fault schedules against simulated Tribune clusters and checks
//! the invariants after every step (`scripts/simulate.sh` builds and runs it).
//!
//! Each schedule is deterministic: its seed fixes the cluster, the faults, the timings and every
//! random choice of the fakes, and tokio's paused clock makes the agents' time its own, so a
//! failing schedule replays exactly with `--schedules 1 --seed S --verbose`.
//!
//! Why our own fakes rather than turmoil or madsim: what the simulation must control is not
//! the network but Raft and the database. The runtime talks to Raft through one trait
//! (`tribune::raft::Consensus`) and to the database through another (`tribune::instance::
//! Instance`); fakes of those two let a schedule cut links, lose the Raft leader, freeze a host
//! or make a start time out, and let the invariants read every database's WAL, in a few
//! milliseconds of real time per simulated minute. turmoil would simulate TCP under the real
//! openraft, sled and tonic (seconds per schedule, and the database still needs a fake); madsim
//! would need the whole dependency tree built against its patched tokio. tokio's paused time
//! gives the determinism: one thread, every `select!` of the runtime biased, seeded randomness.
//!
//! Usage: `tribune-simulate [--schedules N] [--seed S] [--jobs J] [--verbose]`; the last line
//! is `N schedules, V violations`, and the exit status is 1 when V > 0.

mod cluster;
mod invariants;
mod schedule;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

struct Args {
    schedules: u64,
    seed: u64,
    jobs: usize,
    verbose: bool,
}

const USAGE: &str = "usage: tribune-simulate [--schedules N] [--seed S] [--jobs J] [--verbose]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        schedules: 1_000,
        seed: 1,
        jobs: std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(2),
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--schedules" => args.schedules = number("--schedules")?,
            "--seed" => args.seed = number("--seed")?,
            "--jobs" => args.jobs = number("--jobs")?.max(1) as usize,
            "--verbose" => args.verbose = true,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

thread_local! {
    /// When the schedule running on this thread started, on its paused clock.
    static STARTED: std::cell::Cell<Option<tokio::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// The verbose log's time stamp: simulated seconds since the schedule started.
struct SimulatedTime;

impl tracing_subscriber::fmt::time::FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match STARTED.get() {
            Some(start) => write!(
                w,
                "{:>10.6}",
                tokio::time::Instant::now()
                    .saturating_duration_since(start)
                    .as_secs_f64()
            ),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

/// Run one schedule on a fresh single-threaded runtime with paused time.
fn run_one(seed: u64) -> Result<(), schedule::Violation> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    // tokio's own randomness (which waiter of a watch channel is woken first, unbiased
    // `select!`) comes from the schedule's seed too.
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    let runtime = builder.build().expect("a tokio runtime");
    runtime.block_on(async {
        STARTED.set(Some(tokio::time::Instant::now()));
        schedule::run(seed).await
    })
}

fn report(seed: u64, v: &schedule::Violation) -> String {
    format!(
        "schedule {seed} violated \"{}\": {}\n  steps:\n    {}\n  databases:\n    {}\n  replay: scripts/simulate.sh --schedules 1 --seed {seed} --verbose\n",
        v.invariant,
        v.detail,
        v.steps.join("\n    "),
        v.databases.replace('\n', "\n    "),
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    if args.verbose {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_timer(SimulatedTime)
            .with_ansi(false)
            .init();
    }
    let next = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicU64::new(0));
    let out = Arc::new(Mutex::new(()));
    let workers: Vec<_> = (0..args.jobs)
        .map(|_| {
            let (next, violations, out) = (next.clone(), violations.clone(), out.clone());
            let (first, total) = (args.seed, args.schedules);
            std::thread::spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total {
                        return;
                    }
                    let seed = first.wrapping_add(k);
                    if let Err(v) = run_one(seed) {
                        violations.fetch_add(1, Ordering::Relaxed);
                        let _held = out.lock().unwrap_or_else(|e| e.into_inner());
                        print!("{}", report(seed, &v));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        if w.join().is_err() {
            violations.fetch_add(1, Ordering::Relaxed);
            println!("a worker panicked (see above): counted as a violation");
        }
    }
    let v = violations.load(Ordering::Relaxed);
    println!("{} schedules, {v} violations", args.schedules);
    if v > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    /// Seeds beyond the 10,000 that `scripts/test.sh` runs whose schedules found a bug, each
    /// fixed: they must stay clean.
    const FOUND_BUGS: [(u64, &str); 3] = [
        (
            35294,
            "the history lacked an earlier timeline switch whose record failed, so a standby \
             left on that timeline was never judged, nor rewound",
        ),
        (
            1002268,
            "a switchover handed the lease to a standby still on the timeline the primary had \
             forked from (its position there was higher), which then started as a primary onto \
             a second timeline 2; a standby rewound onto the first one never streamed again",
        ),
        (
            3942348,
            "in strict mode a lease holder whose agent and database crashed before it promoted \
             started its server as the primary with no synchronous_standby_names; frozen, then \
             thawed after another member was promoted, it accepted writes beside it",
        ),
    ];

    #[test]
    #[cfg_attr(
        not(tokio_unstable),
        ignore = "a schedule replays exactly only when built with --cfg tokio_unstable (its \
                  runtime's randomness seeded); scripts/test.sh runs it so"
    )]
    fn schedules_that_found_bugs_stay_clean() {
        for (seed, bug) in FOUND_BUGS {
            if let Err(v) = super::run_one(seed) {
                panic!("seed {seed} ({bug}) again: {}", super::report(seed, &v));
            }
        }
    }
}
