//! Injecting a scheduled fault into the hosts and healing it: resolve its target from what the
//! cluster reports now, record the start, do it, hold it, undo it, record the heal. Operator
//! actions go through the members' REST API, as `tribunectl` sends them.
//!
//! Must not wait for the cluster to recover: the runner checks convergence after the heal.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use rand::SeedableRng as _;
use rand::seq::SliceRandom as _;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::{Background, FaultSpec, Nemesis, Target};
use crate::history::{Event, Phase, Recorder};
use crate::hosts::{Cut, Hosts};
use crate::observe::{self, Targets};

/// The members as the cluster reports them when a fault starts.
struct View {
    /// Member name -> role in `GET /cluster` (`leader`, `sync_standby`, `replica`, ...).
    roles: BTreeMap<String, String>,
    members: Vec<usize>,
}

/// What the observers and probers should look at: the members now.
pub fn targets(hosts: &Hosts) -> Targets {
    hosts
        .members()
        .into_iter()
        .map(|i| {
            let h = &hosts.hosts[i];
            (h.name.clone(), h.api(), h.database)
        })
        .collect()
}

pub struct Injector<'a> {
    pub hosts: &'a mut Hosts,
    pub client: &'a reqwest::Client,
    pub recorder: &'a Recorder,
    pub ttl: f64,
    /// How to log in to a member's database, by address.
    pub login: &'a dyn Fn(&str) -> String,
    /// Set when the membership changed (HAProxy's configuration must follow).
    pub membership_changed: bool,
}

impl Injector<'_> {
    async fn view(&self) -> View {
        let roles = observe::cluster_roles(self.client, &targets(self.hosts))
            .await
            .unwrap_or_default();
        View {
            roles,
            members: self.hosts.members(),
        }
    }

    fn name(&self, i: usize) -> String {
        self.hosts.hosts[i].name.clone()
    }

    fn start(&self, spec: &FaultSpec, detail: &str) {
        self.recorder.record(Event::Nemesis {
            t: self.recorder.now(),
            index: spec.index,
            phase: Phase::Start,
            nemesis: spec.nemesis.name(),
            detail: detail.to_owned(),
        });
    }

    fn heal(&self, spec: &FaultSpec, detail: &str) {
        self.recorder.record(Event::Nemesis {
            t: self.recorder.now(),
            index: spec.index,
            phase: Phase::Heal,
            nemesis: spec.nemesis.name(),
            detail: detail.to_owned(),
        });
    }

    fn leader(&self, view: &View) -> Option<usize> {
        view.roles
            .iter()
            .find(|(_, r)| r.as_str() == "leader")
            .and_then(|(n, _)| self.hosts.index_of(n))
    }

    fn replicas(&self, view: &View) -> Vec<usize> {
        let leader = self.leader(view);
        view.members
            .iter()
            .copied()
            .filter(|i| self.hosts.hosts[*i].database && Some(*i) != leader)
            .collect()
    }

    /// The host a fault hits: the spec's role, then `pick` among its holders.
    fn resolve(
        &self,
        view: &View,
        target: Target,
        pick: u32,
        database_only: bool,
    ) -> Option<usize> {
        let candidates: Vec<usize> = match target {
            Target::Primary => self.leader(view).into_iter().collect(),
            Target::Replica => self.replicas(view),
            Target::Any => view
                .members
                .iter()
                .copied()
                .filter(|i| !database_only || self.hosts.hosts[*i].database)
                .collect(),
        };
        let candidates = if candidates.is_empty() {
            // No primary right now (or no replica): any database member.
            view.members
                .iter()
                .copied()
                .filter(|i| self.hosts.hosts[*i].database)
                .collect()
        } else {
            candidates
        };
        (!candidates.is_empty()).then(|| candidates[pick as usize % candidates.len()])
    }

    fn role_of(&self, view: &View, i: usize) -> String {
        view.roles
            .get(&self.hosts.hosts[i].name)
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }

    fn peers_ips(&self, view: &View, i: usize) -> Vec<String> {
        view.members
            .iter()
            .filter(|j| **j != i)
            .map(|j| self.hosts.hosts[*j].ip.clone())
            .collect()
    }

    /// Injects `spec`, holds it, heals it. Errors are the harness's own (a command that could
    /// not run), not the cluster's.
    pub async fn run(&mut self, spec: &FaultSpec) -> anyhow::Result<()> {
        let view = self.view().await;
        if spec.nemesis.needs_sites() {
            return self.site_fault(spec, &view).await;
        }
        let hold = Duration::from_secs_f64(spec.hold_s);
        let needs_database = matches!(
            spec.nemesis,
            Nemesis::KillPostgres | Nemesis::PausePostgres | Nemesis::WalFull
        );
        let target = match spec.nemesis {
            Nemesis::PartitionPrimary | Nemesis::WalFull => Target::Primary,
            _ => spec.target,
        };
        let Some(i) = self.resolve(&view, target, spec.pick, needs_database) else {
            self.start(spec, "no member to hit");
            self.heal(spec, "nothing to heal");
            return Ok(());
        };
        let who = format!("{} ({})", self.name(i), self.role_of(&view, i));
        match spec.nemesis {
            Nemesis::KillAgent => {
                self.start(
                    spec,
                    &format!(
                        "kill -9 the agent of {who}; restart after {:.1}s",
                        spec.hold_s
                    ),
                );
                self.hosts.kill_agent(i);
                tokio::time::sleep(hold).await;
                self.hosts.start_agent(i)?;
                self.heal(spec, &format!("agent of {} restarted", self.name(i)));
            }
            Nemesis::KillPostgres => {
                let pid = self.hosts.kill_postmaster(i);
                let detail = match pid {
                    Some(pid) => format!("kill -9 the postmaster (pid {pid}) of {who}"),
                    None => format!("{who} has no running postmaster to kill"),
                };
                self.start(spec, &detail);
                self.heal(spec, "left to the agent to restart");
            }
            Nemesis::KillHost => {
                self.start(
                    spec,
                    &format!("crash the host of {who}; restart after {:.1}s", spec.hold_s),
                );
                self.hosts.crash(i);
                tokio::time::sleep(hold).await;
                self.hosts.start_agent(i)?;
                self.heal(spec, &format!("{} restarted", self.name(i)));
            }
            Nemesis::PauseAgent | Nemesis::PausePostgres | Nemesis::PauseHost => {
                let (agent, postmaster, what) = match spec.nemesis {
                    Nemesis::PauseAgent => (true, false, "the agent"),
                    Nemesis::PausePostgres => (false, true, "the postmaster"),
                    _ => (true, true, "the agent and the postmaster"),
                };
                // Continue exactly the processes that were stopped.
                let agent_pid = agent.then(|| self.hosts.hosts[i].agent_pid()).flatten();
                let pm_pid = postmaster
                    .then(|| self.hosts.hosts[i].postmaster_pid())
                    .flatten();
                self.start(
                    spec,
                    &format!(
                        "SIGSTOP {what} of {who} for {:.1}s ({}x ttl)",
                        spec.hold_s,
                        spec.hold_s / self.ttl
                    ),
                );
                for pid in agent_pid.into_iter().chain(pm_pid) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGSTOP);
                }
                tokio::time::sleep(hold).await;
                for pid in agent_pid.into_iter().chain(pm_pid) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGCONT);
                }
                self.heal(spec, &format!("SIGCONT {what} of {}", self.name(i)));
            }
            Nemesis::PartitionPrimary => {
                let peers = self.peers_ips(&view, i);
                self.start(
                    spec,
                    &format!(
                        "cut {who} off from its peers (clients still reach it) for {:.1}s",
                        spec.hold_s
                    ),
                );
                self.hosts.net.cut(i, &Cut::Both(peers)).await?;
                tokio::time::sleep(hold).await;
                self.hosts.net.mend(i).await?;
                self.heal(spec, "partition removed");
            }
            Nemesis::PartitionNode => {
                self.start(
                    spec,
                    &format!("cut {who} off from everything for {:.1}s", spec.hold_s),
                );
                self.hosts.net.cut(i, &Cut::Everything).await?;
                tokio::time::sleep(hold).await;
                self.hosts.net.mend(i).await?;
                self.heal(spec, "partition removed");
            }
            Nemesis::PartitionOneWay => {
                let peers = self.peers_ips(&view, i);
                self.start(
                    spec,
                    &format!(
                        "{who} receives nothing from its peers for {:.1}s",
                        spec.hold_s
                    ),
                );
                self.hosts.net.cut(i, &Cut::Incoming(peers)).await?;
                tokio::time::sleep(hold).await;
                self.hosts.net.mend(i).await?;
                self.heal(spec, "partition removed");
            }
            Nemesis::PartitionHalves | Nemesis::PartitionBridge => {
                let mut order = view.members.clone();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(u64::from(spec.pick)));
                let (a, c, bridge) = if spec.nemesis == Nemesis::PartitionHalves {
                    let minority = order.len() / 2;
                    (order[..minority].to_vec(), order[minority..].to_vec(), None)
                } else {
                    let bridge = order[0];
                    let rest = &order[1..];
                    let half = rest.len() / 2;
                    (rest[..half].to_vec(), rest[half..].to_vec(), Some(bridge))
                };
                let names = |side: &[usize]| {
                    side.iter()
                        .map(|i| self.name(*i))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let detail = match bridge {
                    None => format!(
                        "split [{}] | [{}] for {:.1}s",
                        names(&a),
                        names(&c),
                        spec.hold_s
                    ),
                    Some(b) => format!(
                        "bridge [{}] - {} - [{}] for {:.1}s",
                        names(&a),
                        self.name(b),
                        names(&c),
                        spec.hold_s
                    ),
                };
                self.start(spec, &detail);
                self.split_for(&a, &c, hold).await?;
                self.heal(spec, "partition removed");
            }
            Nemesis::KillPrimaryAndSync => {
                let primary = self.leader(&view).unwrap_or(i);
                let sync = view
                    .roles
                    .iter()
                    .filter(|(_, r)| r.as_str() == "sync_standby" || r.as_str() == "quorum_standby")
                    .filter_map(|(n, _)| self.hosts.index_of(n))
                    .next()
                    .or_else(|| self.replicas(&view).first().copied());
                let hit: Vec<usize> = std::iter::once(primary).chain(sync).collect();
                let names: Vec<String> = hit
                    .iter()
                    .map(|h| format!("{} ({})", self.name(*h), self.role_of(&view, *h)))
                    .collect();
                self.start(
                    spec,
                    &format!(
                        "crash the hosts of {} together; restart after {:.1}s",
                        names.join(" and "),
                        spec.hold_s
                    ),
                );
                for h in &hit {
                    self.hosts.crash(*h);
                }
                tokio::time::sleep(hold).await;
                for h in &hit {
                    self.hosts.start_agent(*h)?;
                }
                self.heal(spec, "both restarted");
            }
            Nemesis::KillRaftLeader => {
                let leader = observe::raft_leader(self.client, &targets(self.hosts))
                    .await
                    .and_then(|n| self.hosts.index_of(&n))
                    .unwrap_or(i);
                let who = format!("{} ({})", self.name(leader), self.role_of(&view, leader));
                self.start(
                    spec,
                    &format!(
                        "crash the Raft leader's host {who}; restart after {:.1}s",
                        spec.hold_s
                    ),
                );
                self.hosts.crash(leader);
                tokio::time::sleep(hold).await;
                self.hosts.start_agent(leader)?;
                self.heal(spec, &format!("{} restarted", self.name(leader)));
            }
            Nemesis::RestartStorm => {
                self.start(
                    spec,
                    "kill -9 and restart every agent, one after another, 300 ms apart",
                );
                for m in view.members.clone() {
                    self.hosts.kill_agent(m);
                    self.hosts.start_agent(m)?;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                self.heal(spec, "every agent restarted");
            }
            Nemesis::WalFull => {
                let bytes = self.hosts.fill_volume(i)?;
                self.start(
                    spec,
                    &format!(
                        "fill the WAL volume of {who} ({} MB of ballast) for {:.1}s, with a \
                         burst of WAL segment switches",
                        bytes >> 20,
                        spec.hold_s
                    ),
                );
                let filled_at = tokio::time::Instant::now();
                let burst = wal_burst((self.login)(&self.hosts.hosts[i].ip));
                let _ = tokio::time::timeout(hold, burst).await;
                tokio::time::sleep(hold.saturating_sub(filled_at.elapsed())).await;
                self.hosts.free_volume(i)?;
                self.heal(spec, "volume freed");
            }
            Nemesis::ClockJump => {
                self.start(
                    spec,
                    &format!(
                        "the wall clock of {who} jumps {:+} s for {:.1}s",
                        spec.jump_s, spec.hold_s
                    ),
                );
                self.hosts.set_clock_offset(i, spec.jump_s)?;
                tokio::time::sleep(hold).await;
                self.hosts.set_clock_offset(i, 0)?;
                self.heal(spec, "the wall clock jumps back");
            }
            Nemesis::Switchover
            | Nemesis::Failover
            | Nemesis::Maintenance
            | Nemesis::Membership => {
                self.operator(spec, &view).await?;
            }
            Nemesis::SiteCut | Nemesis::SiteCrash => unreachable!("handled by site_fault"),
        }
        Ok(())
    }

    /// Cuts the hosts `a` and `b` apart, both ways (each still reaches its own side and the
    /// hub), holds the split for `hold`, then removes every rule of both sides.
    async fn split_for(&self, a: &[usize], b: &[usize], hold: Duration) -> anyhow::Result<()> {
        let ips = |side: &[usize]| -> Vec<String> {
            side.iter()
                .map(|i| self.hosts.hosts[*i].ip.clone())
                .collect()
        };
        for (side, other) in [(a, b), (b, a)] {
            let other = ips(other);
            for m in side {
                self.hosts.net.cut(*m, &Cut::Both(other.clone())).await?;
            }
        }
        tokio::time::sleep(hold).await;
        for m in a.iter().chain(b) {
            self.hosts.net.mend(*m).await?;
        }
        Ok(())
    }

    /// The site a site fault hits: the primary's (target primary), another site with a
    /// database member (replica), or any site (any), then `pick` among those.
    fn resolve_site(&self, view: &View, target: Target, pick: u32) -> Option<&'static str> {
        let site_of = |i: usize| self.hosts.hosts[i].site;
        let primary_site = self.leader(view).and_then(site_of);
        let mut sites: Vec<&'static str> =
            view.members.iter().filter_map(|i| site_of(*i)).collect();
        sites.sort_unstable();
        sites.dedup();
        let with_database = |site: &str| {
            view.members
                .iter()
                .any(|i| self.hosts.hosts[*i].database && site_of(*i) == Some(site))
        };
        let candidates: Vec<&'static str> = match target {
            Target::Primary => primary_site.into_iter().collect(),
            Target::Replica => sites
                .iter()
                .copied()
                .filter(|s| Some(*s) != primary_site && with_database(s))
                .collect(),
            Target::Any => sites.clone(),
        };
        let candidates = if candidates.is_empty() {
            sites
        } else {
            candidates
        };
        (!candidates.is_empty()).then(|| candidates[pick as usize % candidates.len()])
    }

    /// A whole site cut off from the other sites (the hub's clients and HAProxy still reach
    /// it), or every host in it crashed; healed after the hold.
    async fn site_fault(&mut self, spec: &FaultSpec, view: &View) -> anyhow::Result<()> {
        let Some(site) = self.resolve_site(view, spec.target, spec.pick) else {
            self.start(spec, "no site to hit");
            self.heal(spec, "nothing to heal");
            return Ok(());
        };
        let (inside, outside): (Vec<usize>, Vec<usize>) = view
            .members
            .iter()
            .copied()
            .partition(|i| self.hosts.hosts[*i].site == Some(site));
        let names = |hosts: &[usize]| hosts.iter().map(|i| self.name(*i)).collect::<Vec<_>>();
        let outside_databases: Vec<usize> = outside
            .iter()
            .copied()
            .filter(|i| self.hosts.hosts[*i].database)
            .collect();
        let primary = self
            .leader(view)
            .filter(|l| inside.contains(l))
            .map(|l| self.name(l));
        self.recorder.record(Event::SiteLost {
            t: self.recorder.now(),
            index: spec.index,
            site: site.to_owned(),
            members: names(&inside),
            primary: primary.clone(),
            outside: names(&outside_databases),
            outside_sites: outside_databases
                .iter()
                .filter_map(|i| self.hosts.hosts[*i].site.map(str::to_owned))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
        let who = format!(
            "site {site} [{}]{}",
            names(&inside).join(","),
            primary.map_or(String::new(), |p| format!(" with the primary {p}"))
        );
        let hold = Duration::from_secs_f64(spec.hold_s);
        if spec.nemesis == Nemesis::SiteCut {
            self.start(
                spec,
                &format!(
                    "cut {who} off from the other sites (clients still reach it) for {:.1}s",
                    spec.hold_s
                ),
            );
            self.split_for(&inside, &outside, hold).await?;
            self.heal(spec, "site reconnected");
        } else {
            self.start(
                spec,
                &format!(
                    "crash every host of {who}; restart after {:.1}s",
                    spec.hold_s
                ),
            );
            for i in &inside {
                self.hosts.crash(*i);
            }
            tokio::time::sleep(hold).await;
            for i in &inside {
                self.hosts.start_agent(*i)?;
            }
            self.heal(spec, &format!("site {site} restarted"));
        }
        Ok(())
    }

    /// An operator action, issued during a milder fault when the spec has one.
    async fn operator(&mut self, spec: &FaultSpec, view: &View) -> anyhow::Result<()> {
        let replicas = self.replicas(view);
        let leader = self.leader(view);
        let candidate =
            (!replicas.is_empty()).then(|| replicas[spec.pick as usize % replicas.len()]);
        // The background fault hits another replica than the candidate when there is one.
        let victim = replicas
            .iter()
            .copied()
            .find(|r| Some(*r) != candidate)
            .or(candidate);
        let mut background_detail = String::new();
        let mut stopped_agent = None;
        if let (Some(bg), Some(v)) = (spec.background, victim) {
            background_detail = match bg {
                Background::KillReplicaPostgres => {
                    self.hosts.kill_postmaster(v);
                    format!(" during a kill -9 of {}'s postmaster", self.name(v))
                }
                Background::PartitionReplica => {
                    let peers = self.peers_ips(view, v);
                    self.hosts.net.cut(v, &Cut::Both(peers)).await?;
                    format!(" while {} is cut off from its peers", self.name(v))
                }
                Background::PauseReplicaAgent => {
                    stopped_agent = self.hosts.hosts[v].agent_pid();
                    self.hosts.signal(v, true, false, Signal::SIGSTOP);
                    format!(" while {}'s agent is stopped", self.name(v))
                }
            };
        }
        // Any member takes control calls; ask one by `pick`.
        let via = view.members[spec.pick as usize % view.members.len()];
        let api = self.hosts.hosts[via].api();
        let leader_name = leader.map(|l| self.name(l));
        let outcome = match spec.nemesis {
            Nemesis::Switchover => {
                let mut body = json!({ "leader": leader_name });
                let target = if spec.named { candidate } else { None };
                if let Some(c) = target {
                    body["candidate"] = json!(self.name(c));
                }
                let what = format!(
                    "switchover from {} to {}",
                    leader_name.as_deref().unwrap_or("?"),
                    target.map_or("any replica".to_owned(), |c| self.name(c))
                );
                self.start(spec, &format!("{what}{background_detail}"));
                self.call("POST", &format!("{api}/switchover"), Some(body))
                    .await
            }
            Nemesis::Failover => {
                let name = candidate.map(|c| self.name(c));
                self.start(
                    spec,
                    &format!(
                        "failover to {}{background_detail}",
                        name.as_deref().unwrap_or("?")
                    ),
                );
                self.call(
                    "POST",
                    &format!("{api}/failover"),
                    Some(json!({ "candidate": name })),
                )
                .await
            }
            Nemesis::Maintenance => {
                self.start(
                    spec,
                    &format!(
                        "pause for {:.1}s, then resume{background_detail}",
                        spec.hold_s
                    ),
                );
                let paused = self
                    .call(
                        "PATCH",
                        &format!("{api}/config"),
                        Some(json!({"pause": true})),
                    )
                    .await;
                tokio::time::sleep(Duration::from_secs_f64(spec.hold_s)).await;
                let resumed = self
                    .call(
                        "PATCH",
                        &format!("{api}/config"),
                        Some(json!({"pause": false})),
                    )
                    .await;
                format!("pause: {paused}; resume: {resumed}")
            }
            _ => self.membership(spec, &api, &background_detail).await?,
        };
        // Let the background fault last a little past the action, then heal it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let (Some(bg), Some(v)) = (spec.background, victim) {
            match bg {
                Background::KillReplicaPostgres => {}
                Background::PartitionReplica => self.hosts.net.mend(v).await?,
                Background::PauseReplicaAgent => {
                    if let Some(pid) = stopped_agent {
                        tokio::time::sleep(
                            Duration::from_secs_f64(self.ttl - 1.0).max(Duration::ZERO),
                        )
                        .await;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            Signal::SIGCONT,
                        );
                    }
                }
            }
        }
        self.heal(spec, &outcome);
        Ok(())
    }

    /// Adds the spare as a new database member, or removes it.
    async fn membership(
        &mut self,
        spec: &FaultSpec,
        api: &str,
        background: &str,
    ) -> anyhow::Result<String> {
        let s = self.hosts.spare;
        let name = self.name(s);
        if !self.hosts.spare_joined {
            let raft_addr = self.hosts.renew_spare()?;
            self.start(spec, &format!("add {name} at {raft_addr}{background}"));
            self.hosts.start_agent(s)?;
            // The new agent needs a moment before it answers as ready to be added (412 until).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let (code, text) = self
                    .call_raw(
                        "POST",
                        &format!("{api}/members"),
                        Some(json!({"name": name, "raft_addr": raft_addr})),
                    )
                    .await;
                if code == Some(200) || code == Some(201) || code == Some(202) {
                    self.hosts.set_spare_joined(true);
                    self.membership_changed = true;
                    return Ok(format!("added {name}: {}", code.unwrap_or_default()));
                }
                // 412 (not ready to be added yet), 409 (another change in progress) and 503 (no
                // quorum) may pass; anything else is the answer.
                let retry = matches!(code, None | Some(409 | 412 | 503));
                if !retry || tokio::time::Instant::now() >= deadline {
                    // Not added: take the spare down again.
                    self.hosts.crash(s);
                    return Ok(format!(
                        "add {name} refused: {} {text}",
                        code.map_or("no answer".into(), |c| c.to_string())
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        } else {
            self.start(spec, &format!("remove {name}{background}"));
            let (code, text) = self
                .call_raw("DELETE", &format!("{api}/members/{name}"), None)
                .await;
            if matches!(code, Some(200..=299)) {
                self.hosts.crash(s);
                self.hosts.set_spare_joined(false);
                self.membership_changed = true;
                Ok(format!("removed {name}: {}", code.unwrap_or_default()))
            } else {
                Ok(format!(
                    "remove {name} refused: {} {text}",
                    code.map_or("no answer".into(), |c| c.to_string())
                ))
            }
        }
    }

    async fn call_raw(
        &self,
        method: &str,
        url: &str,
        body: Option<serde_json::Value>,
    ) -> (Option<u16>, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut req = self
            .client
            .request(method, url)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (Some(code), text.chars().take(200).collect())
            }
            Err(e) => (None, e.to_string()),
        }
    }

    /// A control call; its answer in words.
    async fn call(&self, method: &str, url: &str, body: Option<serde_json::Value>) -> String {
        let (code, text) = self.call_raw(method, url, body).await;
        match code {
            Some(code) => format!("{code} {}", text.trim()),
            None => format!("no answer: {text}"),
        }
    }
}

/// WAL that needs new segment files: a few rows, then a segment switch, ten times. With the
/// volume full, the first segment PostgreSQL cannot recycle fails to be created (the server
/// panics); the errors are the point and are not reported.
async fn wal_burst(conninfo: String) {
    let Ok(Ok((client, conn))) = tokio::time::timeout(
        Duration::from_secs(1),
        tokio_postgres::connect(&conninfo, tokio_postgres::NoTls),
    )
    .await
    else {
        return;
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    for _ in 0..10 {
        let step = client.batch_execute(
            "CREATE TABLE IF NOT EXISTS wal_burst (x int); INSERT INTO wal_burst \
             SELECT generate_series(1, 100); SELECT pg_switch_wal();",
        );
        if !matches!(
            tokio::time::timeout(Duration::from_secs(1), step).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

/// Ends every fault the harness may have left (a failed injection): partitions removed,
/// processes continued, volumes freed, clocks reset, every member's agent running.
pub async fn heal_everything(hosts: &mut Hosts) -> anyhow::Result<()> {
    for i in hosts.members() {
        hosts.net.mend(i).await.context("remove a partition")?;
        hosts.signal(i, true, true, Signal::SIGCONT);
        hosts.free_volume(i)?;
        hosts.set_clock_offset(i, 0)?;
        hosts.start_agent(i)?;
    }
    Ok(())
}
