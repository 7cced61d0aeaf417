//! One simulated cluster: 3 to 5 agents, each running Tribune's real runtime (the lease keeper,
//! the arbiter, the HA loop and its executor, `tribune::node::runtime::start`) over its node of
//! an in-memory Raft group (`tribune::raft::memory`) and its simulated database
//! (`tribune::instance::fake`), all on tokio's paused clock. The faults of a schedule are
//! methods here; the invariants read what they need through it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tribune::clock::{Clock, VirtualClock};
use tribune::config::Config;
use tribune::instance::Instance;
use tribune::instance::fake::{OpFaults, SimDatabases, SimInstance};
use tribune::node::Counters;
use tribune::node::runtime::{self, Parts};
use tribune::raft::Consensus;
use tribune::raft::memory::{Faults, MemoryNode, MemoryRaft};
use tribune::state::{ClusterState, Command};
use tribune::types::{MemberName, UnixMillis};

/// The dynamic configuration of a simulated cluster.
#[derive(Clone, Debug)]
pub struct Settings {
    pub members: usize,
    /// `synchronous_mode`: `true` or `quorum`.
    pub synchronous_mode: &'static str,
    pub strict: bool,
}

/// Whether an agent's tasks may run: a paused agent's tasks are not polled (SIGSTOP).
#[derive(Default)]
struct Gate {
    paused: bool,
    wakers: Vec<Waker>,
}

type SharedGate = Arc<Mutex<Gate>>;

/// A task that runs only while its agent is not paused.
struct Gated {
    gate: SharedGate,
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Future for Gated {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
            if gate.paused {
                gate.wakers.push(cx.waker().clone());
                return Poll::Pending;
            }
        }
        self.inner.as_mut().poll(cx)
    }
}

pub struct Agent {
    pub name: MemberName,
    pub node_id: u64,
    config: Arc<Config>,
    pub raft: MemoryNode,
    pub db: SimInstance,
    gate: SharedGate,
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    pub running: bool,
    pub paused: bool,
    pub counters: Counters,
}

pub struct SimCluster {
    pub settings: Settings,
    pub raft: MemoryRaft,
    pub dbs: SimDatabases,
    pub agents: Vec<Agent>,
    pub clock: Arc<dyn Clock>,
    stop: CancellationToken,
}

fn config_yaml(name: &str, i: usize, s: &Settings) -> String {
    format!(
        r#"
scope: sim
name: {name}
restapi: {{listen: "10.0.0.{host}:8008", connect_address: "10.0.0.{host}:8008"}}
raft: {{self_addr: "10.0.0.{host}:2222", data_dir: /nonexistent/raft}}
bootstrap:
  dcs:
    ttl: 3
    loop_wait: 1
    retry_timeout: 0.5
    synchronous_mode: {mode}
    synchronous_mode_strict: {strict}
    postgresql:
      use_pg_rewind: true
postgresql:
  listen: "10.0.0.{host}:5432"
  connect_address: "10.0.0.{host}:5432"
  data_dir: /nonexistent/data
  authentication:
    superuser: {{username: postgres, password: secret}}
    replication: {{username: replicator, password: secret}}
watchdog: {{mode: off}}
"#,
        host = i + 1,
        mode = s.synchronous_mode,
        strict = s.strict,
    )
}

impl SimCluster {
    /// Build the cluster and start every agent.
    pub fn start(seed: u64, settings: Settings) -> SimCluster {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(UnixMillis(1_800_000_000_000)));
        let raft = MemoryRaft::new(seed ^ 0x5eed_0001, clock.clone());
        let dbs = SimDatabases::new(seed ^ 0x5eed_0002);
        let stop = CancellationToken::new();
        tokio::spawn(raft.clone().drive(stop.clone()));
        tokio::spawn(dbs.clone().drive(stop.clone()));
        let agents = (0..settings.members)
            .map(|i| {
                let name = MemberName::from(format!("m{i}").as_str());
                let yaml = config_yaml(name.as_str(), i, &settings);
                let config = Config::from_yaml_str(&yaml, &|_| None)
                    .unwrap_or_else(|err| panic!("the simulation's configuration: {err}"));
                let node_id = i as u64 + 1;
                Agent {
                    raft: raft.add_node(node_id, &config.raft.self_addr),
                    db: dbs.add(&name),
                    name,
                    node_id,
                    config: Arc::new(config),
                    gate: SharedGate::default(),
                    tasks: Vec::new(),
                    stop: CancellationToken::new(),
                    running: false,
                    paused: false,
                    counters: Counters::default(),
                }
            })
            .collect();
        let mut cluster = SimCluster {
            settings,
            raft,
            dbs,
            agents,
            clock,
            stop,
        };
        for i in 0..cluster.agents.len() {
            cluster.start_agent(i);
        }
        cluster
    }

    /// Start agent `i`'s runtime afresh (its memory is new, as after a restart).
    pub fn start_agent(&mut self, i: usize) {
        let clock = self.clock.clone();
        let agent = &mut self.agents[i];
        if agent.running {
            return;
        }
        let (_, config) = watch::channel(agent.config.clone());
        agent.stop = CancellationToken::new();
        agent.counters = Counters::default();
        let instance: Arc<dyn Instance> = Arc::new(agent.db.clone());
        let rt = runtime::start(
            Parts {
                config,
                raft: Arc::new(agent.raft.clone()),
                instance: Some(instance),
                clock,
                watchdog: None,
                counters: agent.counters.clone(),
            },
            &agent.stop,
        );
        let span = tracing::info_span!("agent", name = %agent.name);
        agent.tasks = rt
            .tasks
            .into_iter()
            .map(|task| {
                tokio::spawn(tracing::Instrument::instrument(
                    Gated {
                        gate: agent.gate.clone(),
                        inner: task.future,
                    },
                    span.clone(),
                ))
            })
            .collect();
        agent.running = true;
        self.raft.set_up(agent.node_id, true);
    }

    /// kill -9 of the agent (its database runs on).
    pub fn crash_agent(&mut self, i: usize) {
        let agent = &mut self.agents[i];
        for task in agent.tasks.drain(..) {
            task.abort();
        }
        agent.running = false;
        self.set_paused(i, false);
        self.raft.set_up(self.agents[i].node_id, false);
    }

    /// kill -9 of the postmaster.
    pub fn crash_database(&mut self, i: usize) {
        self.dbs.crash(&self.agents[i].name);
    }

    /// SIGSTOP / SIGCONT of the agent (its database runs on).
    pub fn set_paused(&mut self, i: usize, paused: bool) {
        let agent = &mut self.agents[i];
        agent.paused = paused;
        let wakers = {
            let mut gate = agent.gate.lock().unwrap_or_else(|e| e.into_inner());
            gate.paused = paused;
            std::mem::take(&mut gate.wakers)
        };
        for w in wakers {
            w.wake();
        }
        if agent.running {
            self.raft.set_up(agent.node_id, !paused);
        }
    }

    /// The whole host freezes (VM pause): agent and database.
    pub fn set_frozen(&mut self, i: usize, frozen: bool) {
        self.set_paused(i, frozen);
        self.dbs.set_frozen(&self.agents[i].name, frozen);
    }

    /// Cut (or restore) every link between the hosts of `i` and `j`.
    pub fn set_link(&self, i: usize, j: usize, connected: bool) {
        let (a, b) = (&self.agents[i], &self.agents[j]);
        self.raft.set_link(a.node_id, b.node_id, connected);
        self.dbs.set_link(&a.name, &b.name, connected);
    }

    pub fn isolate(&self, i: usize) {
        for j in 0..self.agents.len() {
            if j != i {
                self.set_link(i, j, false);
            }
        }
    }

    pub fn set_network_faults(&self, faults: Faults) {
        self.raft.set_faults(faults);
    }

    pub fn set_op_faults(&self, faults: OpFaults) {
        self.dbs.set_faults(faults);
    }

    /// Every fault undone: links healed, hosts thawed, agents running, no slow operations.
    pub fn heal(&mut self) {
        self.raft.heal_links();
        self.dbs.heal_links();
        self.set_network_faults(Faults::default());
        self.set_op_faults(OpFaults::default());
        for i in 0..self.agents.len() {
            self.set_frozen(i, false);
            self.start_agent(i);
        }
    }

    /// The committed state (as the Raft leader sees it).
    pub fn state(&self) -> Arc<ClusterState> {
        self.raft.committed()
    }

    /// An operator's command, sent through a running agent's node (as the REST API would).
    pub fn operator(&self, command: Command) {
        let Some(agent) = self.agents.iter().find(|a| a.running && !a.paused) else {
            return;
        };
        let node = agent.raft.clone();
        tokio::spawn(async move {
            let _ = node.propose(command).await;
        });
    }

    /// A client writes to every member that runs as a primary (some may never acknowledge).
    pub fn write_everywhere(&self) {
        for agent in &self.agents {
            self.dbs.write(&agent.name);
        }
    }

    pub fn index_of(&self, name: &MemberName) -> Option<usize> {
        self.agents.iter().position(|a| &a.name == name)
    }

    pub fn shutdown(&mut self) {
        for agent in &mut self.agents {
            for task in agent.tasks.drain(..) {
                task.abort();
            }
        }
        self.stop.cancel();
    }
}

/// Advance simulated time by `by`, letting every task run.
pub async fn advance(by: Duration) {
    tokio::time::sleep(by).await;
}
