//! One schedule: from its seed, a cluster (3 to 5 members, synchronous mode on or quorum,
//! strict or not), a bootstrap, a series of faults and operators' requests with pauses between
//! them, then every fault healed and a wait for convergence. The invariants are checked every
//! 100 ms of simulated time, the convergence once the faults are healed.

use std::time::Duration;

use tribune::instance::fake::OpFaults;
use tribune::raft::memory::Faults;
use tribune::state::{Command, RestartRequest, SwitchoverRequest};
use tribune::types::MemberName;

use crate::cluster::{Settings, SimCluster, advance};
use crate::invariants::{self, Invariant, converged};

/// How long a bootstrap may take before it counts as a failure to converge.
const BOOTSTRAP: Duration = Duration::from_secs(30);
/// How long the cluster has to converge once every fault is healed.
const CONVERGE: Duration = Duration::from_secs(60);
/// How often the invariants are checked.
const CHECK: Duration = Duration::from_millis(100);

/// A failed schedule: which invariant, what happened, and the steps that led there.
#[derive(Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
    pub steps: Vec<String>,
    pub databases: String,
}

struct Run {
    cluster: SimCluster,
    invariants: Vec<Box<dyn Invariant>>,
    rng: fastrand::Rng,
    steps: Vec<String>,
    /// The Raft group as last logged (with --verbose at debug level).
    last_raft: String,
}

impl Run {
    fn violation(&self, invariant: &'static str, detail: String) -> Violation {
        Violation {
            invariant,
            detail,
            steps: self.steps.clone(),
            databases: format!(
                "{}\n{}",
                self.cluster.dbs.describe(),
                self.cluster.raft.describe()
            ),
        }
    }

    /// Let `by` of simulated time pass, writing and checking every invariant as it goes.
    async fn run_for(&mut self, by: Duration) -> Result<(), Violation> {
        let mut left = by;
        while !left.is_zero() {
            let slice = left.min(CHECK);
            self.cluster.write_everywhere();
            advance(slice).await;
            if tracing::enabled!(tracing::Level::DEBUG) {
                let raft = self.cluster.raft.describe();
                if raft != self.last_raft {
                    tracing::debug!("{raft}");
                    self.last_raft = raft;
                }
            }
            left -= slice;
            for inv in &mut self.invariants {
                if let Err(detail) = inv.check(&self.cluster) {
                    let name = inv.name();
                    return Err(self.violation(name, detail));
                }
            }
        }
        Ok(())
    }

    /// Run until `converged`, or fail after `limit`.
    async fn until_converged(&mut self, limit: Duration, what: &str) -> Result<(), Violation> {
        let mut waited = Duration::ZERO;
        loop {
            self.run_for(Duration::from_millis(500)).await?;
            waited += Duration::from_millis(500);
            match converged(&self.cluster) {
                Ok(()) => return Ok(()),
                Err(why) if waited >= limit => {
                    return Err(self.violation(
                        "convergence",
                        format!("not converged {} s after {what}: {why}", limit.as_secs()),
                    ));
                }
                Err(_) => {}
            }
        }
    }

    fn pick(&mut self) -> usize {
        self.rng.usize(..self.cluster.agents.len())
    }

    fn note(&mut self, what: String) {
        let at = self.cluster.clock.wall_now().0 % 1_000_000;
        self.steps
            .push(format!("[{:>7.1}s] {what}", at as f64 / 1000.0));
    }

    fn leader(&self) -> Option<(usize, MemberName)> {
        let state = self.cluster.state();
        let name = state.leader.as_ref()?.member.clone();
        Some((self.cluster.index_of(&name)?, name))
    }

    /// One fault or request, then a pause of up to 3 s during which it may be undone.
    async fn step(&mut self) -> Result<(), Violation> {
        let n = self.cluster.agents.len();
        let i = self.pick();
        let name = self.cluster.agents[i].name.clone();
        let pause = Duration::from_millis(200 + self.rng.u64(..2_800));
        match self.rng.u32(..14) {
            0 => {
                self.note(format!("crash agent {name}, restart after {pause:?}"));
                self.cluster.crash_agent(i);
                self.run_for(pause).await?;
                self.cluster.start_agent(i);
            }
            1 => {
                self.note(format!("crash the database of {name}"));
                self.cluster.crash_database(i);
            }
            2 => {
                self.note(format!(
                    "crash host {name} (agent and database), back after {pause:?}"
                ));
                self.cluster.crash_agent(i);
                self.cluster.crash_database(i);
                self.run_for(pause).await?;
                self.cluster.start_agent(i);
            }
            3 => {
                let long = Duration::from_millis(self.rng.u64(500..6_000));
                self.note(format!("pause agent {name} for {long:?}"));
                self.cluster.set_paused(i, true);
                self.run_for(long).await?;
                self.cluster.set_paused(i, false);
            }
            4 => {
                let long = Duration::from_millis(self.rng.u64(500..6_000));
                self.note(format!("freeze host {name} for {long:?}"));
                self.cluster.set_frozen(i, true);
                self.run_for(long).await?;
                self.cluster.set_frozen(i, false);
            }
            5 => {
                self.note(format!("isolate host {name}"));
                self.cluster.isolate(i);
            }
            6 => {
                let j = (i + 1 + self.rng.usize(..n - 1)) % n;
                let other = self.cluster.agents[j].name.clone();
                self.note(format!("cut the link between {name} and {other}"));
                self.cluster.set_link(i, j, false);
            }
            7 => {
                self.note("heal every link".into());
                self.cluster.raft.heal_links();
                self.cluster.dbs.heal_links();
            }
            8 => {
                let faults = Faults {
                    max_delay: Duration::from_millis(self.rng.u64(5..300)),
                    drop_chance: self.rng.f64() * 0.1,
                    ..Faults::default()
                };
                self.note(format!("Raft messages slow and lossy: {faults:?}"));
                self.cluster.set_network_faults(faults);
            }
            9 => {
                let faults = OpFaults {
                    slow_chance: self.rng.f64() * 0.3,
                    slow_delay: Duration::from_millis(self.rng.u64(500..8_000)),
                    unknown_chance: self.rng.f64() * 0.1,
                    ..OpFaults::default()
                };
                self.note(format!(
                    "database operations slow, some unknown: {faults:?}"
                ));
                self.cluster.set_op_faults(faults);
            }
            10 => {
                self.note("the Raft leader steps down".into());
                self.cluster.raft.lose_leader();
            }
            11 => {
                if let Some((l, leader)) = self.leader() {
                    let candidate = (self.rng.bool()).then(|| {
                        self.cluster.agents[(l + 1 + self.rng.usize(..n - 1)) % n]
                            .name
                            .clone()
                    });
                    self.note(format!("switchover from {leader} to {candidate:?}"));
                    let requested_at = self.cluster.clock.wall_now();
                    self.cluster.operator(Command::RequestSwitchover {
                        request: SwitchoverRequest {
                            leader,
                            candidate,
                            scheduled_at: None,
                            requested_at,
                        },
                    });
                }
            }
            12 => {
                self.note(format!("restart the database of {name} on request"));
                let requested_at = self.cluster.clock.wall_now();
                self.cluster.operator(Command::RequestRestart {
                    member: name,
                    request: RestartRequest {
                        schedule: None,
                        role: None,
                        postgres_version: None,
                        restart_pending: false,
                        timeout_secs: None,
                        requested_at,
                    },
                });
            }
            _ => {
                // A valid timing change (loop_wait + 2 * retry_timeout <= ttl).
                let ttl = [2.0, 3.0, 4.0, 6.0][self.rng.usize(..4)];
                self.note(format!("PATCH /config ttl {ttl}"));
                let mut config = self.cluster.state().written_config().clone();
                if let Some(map) = config.as_object_mut() {
                    map.insert("ttl".into(), ttl.into());
                }
                self.cluster.operator(Command::SetConfig {
                    config,
                    expected: None,
                });
            }
        }
        self.run_for(pause).await
    }
}

/// The settings a seed gives.
pub fn settings(seed: u64) -> Settings {
    let mut rng = fastrand::Rng::with_seed(seed);
    Settings {
        members: [3, 3, 3, 4, 5][rng.usize(..5)],
        synchronous_mode: if rng.bool() { "true" } else { "quorum" },
        strict: rng.bool(),
    }
}

/// Run the schedule of `seed` to its end; `Err` at the first violated invariant.
pub async fn run(seed: u64) -> Result<(), Violation> {
    let settings = settings(seed);
    let strict = settings.strict;
    let mut run = Run {
        cluster: SimCluster::start(seed, settings),
        invariants: invariants::all(strict),
        rng: fastrand::Rng::with_seed(seed ^ 0x5c4e_d01e),
        steps: Vec::new(),
        last_raft: String::new(),
    };
    let result = async {
        run.note(format!("{:?}", run.cluster.settings));
        run.until_converged(BOOTSTRAP, "the start").await?;
        let steps = run.rng.usize(4..12);
        for _ in 0..steps {
            run.step().await?;
        }
        run.note("heal every fault".into());
        run.cluster.heal();
        run.until_converged(CONVERGE, "the faults healed").await
    }
    .await;
    run.cluster.shutdown();
    result
}
