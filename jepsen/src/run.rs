//! One run, start to end: build the hosts, bootstrap the cluster, put HAProxy in front, start
//! the workload and the role sampler, inject every scheduled fault and wait for convergence
//! after each heal, heal everything, read the final state, tear the hosts down, check the
//! history, write the report.
//!
//! Owns the order of things and the run directory's files; the parts are in their modules.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio_util::sync::CancellationToken;

use crate::checkers::{self, Findings};
use crate::history::{Event, History, ReadFrom, Recorder};
use crate::hosts::{self, Hosts, Net, Plan, config};
use crate::nemesis::FaultSpec;
use crate::nemesis::inject::{self, Injector};
use crate::observe::{self, Targets};
use crate::options::{Engine, RunSpec};
use crate::report;
use crate::workload::{self, ProbeTargets, Workload};

/// How long a fresh cluster may take to bootstrap (initdb, base backups).
const BOOTSTRAP_DEADLINE: Duration = Duration::from_secs(120);

/// How a run ended.
pub enum Ending {
    Pass,
    Violations,
    Interrupted,
}

pub struct Binaries {
    pub agent: PathBuf,
    pub ctl: PathBuf,
    pub opengauss: PathBuf,
    /// PostgreSQL's programs (`None`: the agent's default).
    pub postgres: Option<PathBuf>,
}

/// How clients log in: through HAProxy, or straight to a member.
fn conninfo(engine: Engine, host: &str, port: u16) -> String {
    let (user, password) = match engine {
        Engine::Postgres => (config::SUPERUSER, config::SUPERUSER_PASSWORD),
        Engine::Opengauss => (config::OPENGAUSS_ADMIN, config::OPENGAUSS_ADMIN_PASSWORD),
    };
    format!(
        "host={host} port={port} user={user} password='{password}' dbname=postgres connect_timeout=1"
    )
}

fn probe_targets(hosts: &Hosts, engine: Engine) -> Vec<(String, String)> {
    hosts
        .database_members()
        .into_iter()
        .map(|i| {
            let h = &hosts.hosts[i];
            (h.name.clone(), conninfo(engine, &h.ip, config::PG_PORT))
        })
        .collect()
}

/// How long the cluster must look converged, poll after poll, to count as converged: longer
/// than an agent takes to notice a fault (loop_wait), so that a fault whose heal is immediate
/// (a killed postmaster) is not judged before the members have seen it.
const STABLE: Duration = Duration::from_millis(2500);

/// Polls until the cluster has looked converged for [`STABLE`], or `deadline` passes:
/// `(converged, waited until the stable state began, detail)`.
async fn await_convergence(
    client: &reqwest::Client,
    targets: &Targets,
    deadline: Duration,
    interrupted: &CancellationToken,
) -> (bool, Duration, String) {
    let started = Instant::now();
    let mut since: Option<Duration> = None;
    loop {
        let statuses = observe::statuses(client, targets).await;
        let now = started.elapsed();
        match observe::convergence(&statuses) {
            Ok(detail) => {
                let first = *since.get_or_insert(now);
                if now - first >= STABLE {
                    return (true, first, detail);
                }
            }
            Err(wrong) => {
                since = None;
                if now >= deadline + STABLE || interrupted.is_cancelled() {
                    return (false, now, wrong);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn execute(
    spec: &RunSpec,
    schedule: &[FaultSpec],
    out: &Path,
    net: Net,
    bins: &Binaries,
) -> anyhow::Result<Ending> {
    let interrupted = CancellationToken::new();
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("chaos: interrupted; healing, checking what ran and cleaning up");
            interrupted.cancel();
        });
    }
    let uses_clock = schedule
        .iter()
        .any(|f| f.nemesis == crate::nemesis::Nemesis::ClockJump);
    let mut hosts = Hosts::build(
        net,
        out,
        Plan {
            shape: spec.shape,
            engine: spec.engine,
            mode: spec.mode,
            ttl: spec.ttl,
            agent_bin: bins.agent.clone(),
            ctl_bin: bins.ctl.clone(),
            opengauss_bin: bins.opengauss.clone(),
            pg_bin: bins.postgres.clone(),
            faketime: uses_clock,
        },
    )?;
    let client = observe::http_client();
    for i in hosts.members() {
        hosts.start_agent(i)?;
    }
    let targets: Arc<Mutex<Targets>> = Arc::new(Mutex::new(inject::targets(&hosts)));
    let now_targets = || targets.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (ok, waited, detail) =
        await_convergence(&client, &now_targets(), BOOTSTRAP_DEADLINE, &interrupted).await;
    if !ok {
        bail!(
            "the cluster did not bootstrap within {:.0} s: {detail} (see {}/nodes/*/agent.log)",
            waited.as_secs_f64(),
            out.display()
        );
    }
    println!(
        "chaos: cluster up in {:.1} s: {detail}",
        waited.as_secs_f64()
    );
    hosts.start_proxy()?;
    let proxy = conninfo(spec.engine, "127.0.0.1", hosts::PRIMARY_PORT);
    let schema_deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = workload::execute(&proxy, workload::SCHEMA).await {
        if Instant::now() >= schema_deadline {
            bail!("could not create the workload's tables through HAProxy: {e:#}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let recorder = Recorder::with_journal(Instant::now(), &out.join("history.jsonl"))?;
    let probes: ProbeTargets = Arc::new(Mutex::new(probe_targets(&hosts, spec.engine)));
    let all_names: Vec<String> = hosts
        .hosts
        .iter()
        .filter(|h| h.database)
        .map(|h| h.name.clone())
        .collect();
    let workload = Workload::start(&recorder, &proxy, &all_names, probes.clone());
    let sampler_stop = CancellationToken::new();
    let sampler = tokio::spawn(observe::sample_roles(
        client.clone(),
        targets.clone(),
        recorder.clone(),
        sampler_stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let deadline = Duration::from_secs_f64(spec.convergence_deadline_s);
    let run_started = Instant::now();
    let mut unchecked = None;
    for fault in schedule {
        if interrupted.is_cancelled() {
            break;
        }
        let login = |ip: &str| conninfo(spec.engine, ip, config::PG_PORT);
        let mut injector = Injector {
            hosts: &mut hosts,
            client: &client,
            recorder: &recorder,
            ttl: spec.ttl,
            login: &login,
            membership_changed: false,
        };
        let injected = injector.run(fault).await;
        let membership_changed = injector.membership_changed;
        if let Err(e) = injected {
            eprintln!(
                "chaos: fault {} ({}) could not be injected: {e:#}",
                fault.index,
                fault.nemesis.name()
            );
            inject::heal_everything(&mut hosts).await?;
        }
        if membership_changed {
            *targets.lock().unwrap_or_else(|p| p.into_inner()) = inject::targets(&hosts);
            *probes.lock().unwrap_or_else(|p| p.into_inner()) = probe_targets(&hosts, spec.engine);
        }
        let (ok, waited, detail) =
            await_convergence(&client, &now_targets(), deadline, &interrupted).await;
        if interrupted.is_cancelled() {
            // Cut short by the operator, not stuck: the final check below judges this fault.
            unchecked = Some(fault.index);
            break;
        }
        recorder.record(Event::Convergence {
            t: recorder.now(),
            index: fault.index,
            converged: ok,
            waited_s: waited.as_secs_f64(),
            deadline_s: spec.convergence_deadline_s,
            detail: detail.clone(),
        });
        if membership_changed && let Err(e) = hosts.start_proxy() {
            eprintln!("chaos: HAProxy's configuration could not follow the membership: {e:#}");
        }
        println!(
            "[{}/{}] {:<20} {} {:.1} s ({:.0} s in)",
            fault.index + 1,
            schedule.len(),
            fault.nemesis.name(),
            if ok {
                "converged in"
            } else {
                "NOT CONVERGED after"
            },
            waited.as_secs_f64(),
            run_started.elapsed().as_secs_f64()
        );
        if !ok {
            println!("        still wrong: {detail}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The end: everything healed, one last convergence, the workload stopped, the final read.
    inject::heal_everything(&mut hosts).await?;
    let (ok, waited, detail) =
        await_convergence(&client, &now_targets(), deadline, &CancellationToken::new()).await;
    recorder.record(Event::Convergence {
        t: recorder.now(),
        index: unchecked.unwrap_or(schedule.len()),
        converged: ok,
        waited_s: waited.as_secs_f64(),
        deadline_s: spec.convergence_deadline_s,
        detail,
    });
    workload.finish().await;
    let read_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match workload::read_all(&proxy).await {
            Ok(ids) => {
                recorder.record(Event::FinalRead {
                    t: recorder.now(),
                    from: ReadFrom::Primary,
                    member: "haproxy primary port".into(),
                    ids,
                });
                break;
            }
            Err(e) if Instant::now() >= read_deadline => {
                eprintln!("chaos: no final read through the primary port: {e:#}");
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    for (name, conn) in probe_targets(&hosts, spec.engine) {
        if let Ok(ids) = workload::read_all(&conn).await {
            recorder.record(Event::FinalRead {
                t: recorder.now(),
                from: ReadFrom::Member,
                member: name,
                ids,
            });
        }
    }
    sampler_stop.cancel();
    let _ = sampler.await;
    recorder.close_journal();
    let history = recorder.snapshot();
    history.write(&out.join("history.jsonl"))?;
    hosts.teardown();
    drop(hosts);

    let findings = check_and_report(spec, &history, out)?;
    Ok(if interrupted.is_cancelled() {
        Ending::Interrupted
    } else if findings.passed() {
        Ending::Pass
    } else {
        Ending::Violations
    })
}

/// Runs the checkers on `history`, writes `summary.json` and `report.html`, prints the summary.
pub fn check_and_report(spec: &RunSpec, history: &History, out: &Path) -> anyhow::Result<Findings> {
    let findings = checkers::check_all(
        history,
        checkers::Context {
            mode: spec.mode,
            convergence_deadline_s: spec.convergence_deadline_s,
        },
    )
    .context("pair the history's operations")?;
    let ops = history.operations()?;
    let summary = report::summarize(spec, history, &findings);
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("write {}", path.display()))?;
    report::write_html(out, spec, history, &ops, &findings, &summary)?;
    print!("{}", report::text(&summary, out));
    Ok(findings)
}
