//! The agent's runtime proper: the lease keeper, the arbiter and the HA loop (with its executor)
//! wired over the three things outside them: the Raft layer ([`Consensus`]), the database
//! ([`Instance`]) and the clock. `node::run` gives them the Raft node, the database adapter and
//! the system clock; unit tests and the deterministic simulation give them fakes, so the same
//! code runs in both.
//!
//! Nothing is spawned here: [`start`] returns the named tasks, and the caller runs them (the
//! agent in its task set, the simulation under its own scheduler).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::arbiter::Arbiter;
use super::counters::Counters;
use super::executor::Handles;
use super::ha_loop::HaLoop;
use super::lease::{KeeperView, LeaseKeeper};
use super::view::LocalView;
use super::watchdog::Watchdog;
use crate::callbacks::runner::ScriptSet;
use crate::callbacks::{ScriptRunner, Scripts};
use crate::clock::Clock;
use crate::config::{Config, WatchdogMode};
use crate::ha::LeaseView;
use crate::instance::Instance;
use crate::raft::Consensus;

/// What the runtime runs over.
pub struct Parts {
    /// The local configuration, as last reloaded.
    pub config: watch::Receiver<Arc<Config>>,
    pub raft: Arc<dyn Consensus>,
    /// `None` for a witness.
    pub instance: Option<Arc<dyn Instance>>,
    pub clock: Arc<dyn Clock>,
    /// Prepared, not armed (see `watchdog`); `None` without one.
    pub watchdog: Option<Watchdog>,
    pub counters: Counters,
}

/// A task of the runtime, named for the log.
pub struct Task {
    pub name: &'static str,
    pub future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The runtime's tasks, not yet running, and what the REST API reads of them.
pub struct Runtime {
    pub tasks: Vec<Task>,
    pub local: watch::Receiver<Arc<LocalView>>,
    pub lease: watch::Receiver<LeaseView>,
    /// The lease keeper's current timings and watchdog.
    pub keeper: watch::Receiver<KeeperView>,
}

/// The lease keeper, the arbiter and the HA loop of one agent; each ends when `shutdown` is
/// cancelled.
pub fn start(parts: Parts, shutdown: &CancellationToken) -> Runtime {
    let config = parts.config.clone();
    let scripts = ScriptRunner::new(move || ScriptSet::from_config(&config.borrow()));
    start_with_scripts(parts, Arc::new(scripts), shutdown)
}

/// [`start`] with the user's scripts run by `scripts` (a fake in tests) rather than as the
/// configuration's processes.
pub fn start_with_scripts(
    parts: Parts,
    scripts: Arc<dyn Scripts>,
    shutdown: &CancellationToken,
) -> Runtime {
    let config = parts.config.borrow().clone();
    let (local_tx, local_rx) = watch::channel(Arc::new(LocalView::new(parts.instance.is_none())));
    let (lease_tx, lease_rx) = watch::channel(LeaseView::Unconfirmed);
    let (keeper_tx, keeper_rx) = watch::channel(KeeperView::default());

    let keeper = LeaseKeeper {
        watchdog: parts.watchdog,
        watchdog_required: config.watchdog.mode == WatchdogMode::Required,
        me: config.name.clone(),
        config: parts.config.clone(),
        raft: parts.raft.clone(),
        clock: parts.clock.clone(),
        instance: parts.instance.clone(),
        view: keeper_tx,
        local: local_rx.clone(),
        lease: lease_tx,
        bootstrap_dynamic: Arc::new(config.bootstrap.dynamic.clone()),
        counters: parts.counters.clone(),
    };
    let arbiter = Arbiter {
        me: config.name.clone(),
        raft: parts.raft.clone(),
        clock: parts.clock.clone(),
        bootstrap_dynamic: config.bootstrap.dynamic.clone(),
    };
    let ha = HaLoop::new(
        Handles {
            me: config.name.clone(),
            config: parts.config.clone(),
            raft: parts.raft,
            instance: parts.instance,
            clock: parts.clock,
            lease: lease_rx.clone(),
            local: local_tx,
            scripts,
        },
        parts.counters,
    );
    let (t1, t2, t3) = (shutdown.clone(), shutdown.clone(), shutdown.clone());
    Runtime {
        tasks: vec![
            Task {
                name: "lease keeper",
                future: Box::pin(keeper.run(t1)),
            },
            Task {
                name: "arbiter",
                future: Box::pin(arbiter.run(t2)),
            },
            Task {
                name: "HA loop",
                future: Box::pin(ha.run(t3)),
            },
        ],
        local: local_rx,
        lease: lease_rx,
        keeper: keeper_rx,
    }
}

/// The runtime without PostgreSQL or openraft: three agents over `raft::memory` and
/// `instance::fake`, on tokio's paused clock. The lease keeper, the arbiter, the HA loop and the
/// executor are the real ones.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::VirtualClock;
    use crate::instance::fake::SimDatabases;
    use crate::raft::memory::MemoryRaft;
    use crate::types::{MemberName, UnixMillis};

    fn config(i: usize) -> Config {
        let yaml = format!(
            r#"
scope: unit
name: m{i}
restapi: {{listen: "10.0.0.{h}:8008", connect_address: "10.0.0.{h}:8008"}}
raft: {{self_addr: "10.0.0.{h}:2222", data_dir: /nonexistent}}
bootstrap: {{dcs: {{synchronous_mode: true, postgresql: {{use_pg_rewind: true}}}}}}
postgresql:
  listen: "10.0.0.{h}:5432"
  connect_address: "10.0.0.{h}:5432"
  data_dir: /nonexistent
  authentication:
    superuser: {{username: postgres, password: x}}
    replication: {{username: replicator, password: x}}
watchdog: {{mode: off}}
"#,
            h = i + 1
        );
        Config::from_yaml_str(&yaml, &|_| None).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_cut_off_fences_itself_and_another_member_is_promoted() {
        let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(UnixMillis(1_000_000)));
        let raft = MemoryRaft::new(1, clock.clone());
        let dbs = SimDatabases::new(2);
        let stop = CancellationToken::new();
        tokio::spawn(raft.clone().drive(stop.clone()));
        tokio::spawn(dbs.clone().drive(stop.clone()));
        let mut counters = Vec::new();
        for i in 0..3 {
            let config = Arc::new(config(i));
            let node = raft.add_node(i as u64 + 1, &config.raft.self_addr);
            let instance = dbs.add(&config.name);
            let c = Counters::default();
            counters.push(c.clone());
            let rt = start(
                Parts {
                    config: watch::channel(config).1,
                    raft: Arc::new(node),
                    instance: Some(Arc::new(instance)),
                    clock: clock.clone(),
                    watchdog: None,
                    counters: c,
                },
                &stop,
            );
            for task in rt.tasks {
                tokio::spawn(task.future);
            }
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
        let leader = raft
            .committed()
            .leader
            .clone()
            .expect("a primary after bootstrap");
        assert_eq!(dbs.writable(), vec![leader.member.clone()]);
        let p: usize = leader.member.as_str()[1..].parse().unwrap();
        // Cut the primary's host off from both others (Raft and databases).
        for j in (0..3).filter(|j| *j != p) {
            raft.set_link(p as u64 + 1, j as u64 + 1, false);
            dbs.set_link(
                &MemberName::from(format!("m{p}").as_str()),
                &MemberName::from(format!("m{j}").as_str()),
                false,
            );
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert_eq!(
            counters[p].lease_fences.get(),
            1,
            "the cut-off primary fenced itself"
        );
        let promoted = dbs.promotions().last().cloned().unwrap();
        assert_ne!(promoted.member.as_str(), format!("m{p}"));
        assert!(promoted.others_writable.is_empty(), "{promoted:?}");
        assert_eq!(dbs.writable(), vec![promoted.member]);
        stop.cancel();
    }
}
