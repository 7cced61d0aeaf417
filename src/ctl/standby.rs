//! `promote-cluster` and `demote-cluster`: take `standby_cluster` out of the dynamic
//! configuration (the standby leader becomes a primary) or put it in (the cluster follows a
//! remote primary), then print a status line every second until the leader's role shows it.
//!
//! Both are one `PATCH /config` to the leader first; the server validates the change and, for
//! a demotion of a running cluster, refuses it with its reason (see `api::control`), which is
//! printed as the error. Nothing is retried.
//!
//! Before a promotion (a disaster-recovery cluster taking over) it asks the source cluster at
//! `standby_cluster` host:port, with the configuration file's superuser or replication login,
//! whether it still runs a primary: if it does, or answers without saying, the promotion is
//! refused unless `--force` (two clusters would accept writes). It also shows how far this
//! cluster is behind: WAL bytes against the source primary's position when it answers, else
//! what the standby leader reports, and how long ago its last replayed commit was made.
//! The decision is [`verdict`], pure and table-tested; the probe is [`probe_source`].

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::prompt::Terminal;
use super::select;
use super::session::Session;
use crate::api::ClusterDocument;
use crate::config::Credentials;
use crate::types::Lsn;

/// How long the command waits for the leader's new role before it gives up waiting (the
/// change itself stays stored).
const WAIT_LIMIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(1);

#[derive(Args, Debug, Clone)]
pub struct PromoteClusterArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// Do not ask for confirmation, and promote even while the source cluster still runs a
    /// primary (or answers without saying).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DemoteClusterArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// Address of the remote primary to replicate from.
    #[arg(long)]
    pub host: Option<String>,
    /// Port of the remote primary.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Command that fetches WAL from the remote's archive.
    #[arg(long, value_name = "CMD")]
    pub restore_command: Option<String>,
    /// Replication slot on the remote primary to stream through.
    #[arg(long, value_name = "S")]
    pub primary_slot_name: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// The `standby_cluster` section `demote-cluster` writes.
fn demote_section(args: &DemoteClusterArgs) -> anyhow::Result<Value> {
    if args.host.is_none() && args.port.is_none() && args.restore_command.is_none() {
        bail!("At least --host, --port or --restore-command should be specified");
    }
    let mut section = Map::new();
    if let Some(host) = &args.host {
        section.insert("host".into(), json!(host));
    }
    if let Some(port) = args.port {
        section.insert("port".into(), json!(port));
    }
    if let Some(cmd) = &args.restore_command {
        section.insert("restore_command".into(), json!(cmd));
    }
    if let Some(slot) = &args.primary_slot_name {
        section.insert("primary_slot_name".into(), json!(slot));
    }
    Ok(Value::Object(section))
}

/// What the leader looks like now, on one line; `None` while the cluster has no leader.
fn leader_line(doc: &ClusterDocument) -> String {
    match select::leader(doc) {
        Some(m) => format!("leader {} is {} ({})", m.name, m.role, m.state),
        None => "the cluster has no leader".to_owned(),
    }
}

/// Whether the leader runs in `role` (`leader` for a primary, `standby_leader`).
fn leader_runs_as(doc: &ClusterDocument, role: &str) -> bool {
    select::leader(doc).is_some_and(|m| {
        m.role == role
            && matches!(
                m.state.as_str(),
                "running" | "streaming" | "in archive recovery"
            )
    })
}

/// What the standby cluster's source answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// It runs a primary, at this WAL position.
    Primary { lsn: Option<Lsn> },
    /// It is in recovery itself (not a primary).
    InRecovery,
    /// It answers but could not be asked (a login refused, a query failed): the reason.
    Unanswered(String),
    /// Nothing answers at its address: the reason.
    Unreachable(String),
    /// It cannot be asked: the reason (archive only, no login in the configuration file).
    Unknown(String),
}

/// Whether the promotion may go ahead: `Ok` with what to tell the operator, or `Err` with why
/// it is refused. `address` is the source's `host:port`.
pub fn verdict(source: &Source, address: &str, force: bool) -> Result<String, String> {
    let live = match source {
        Source::Primary { .. } => format!(
            "the source cluster at {address} still runs a primary (pg_is_in_recovery() is false)"
        ),
        Source::Unanswered(why) => format!(
            "the source cluster at {address} answers, but could not be asked whether it runs a \
             primary ({why})"
        ),
        Source::InRecovery => {
            return Ok(format!(
                "the source cluster at {address} runs no primary (it is in recovery)"
            ));
        }
        Source::Unreachable(why) => {
            return Ok(format!(
                "the source cluster at {address} does not answer ({why})"
            ));
        }
        Source::Unknown(why) => {
            return Ok(format!(
                "the source cluster cannot be checked ({why}): make sure it no longer runs a \
                 primary"
            ));
        }
    };
    if force {
        Ok(format!("{live}: promoting anyway (--force)"))
    } else {
        Err(format!(
            "{live}: promoting this cluster now would leave two clusters accepting writes. Stop \
             or demote the source first, or pass --force if it is lost to its clients"
        ))
    }
}

/// The standby leader's replication as its `/patroni` shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StandbyPosition {
    pub received: Option<Lsn>,
    pub replayed: Option<Lsn>,
    /// Epoch seconds of the last replayed commit.
    pub replayed_at: Option<f64>,
}

impl StandbyPosition {
    fn of(status: &crate::api::StatusDocument) -> Self {
        let xlog = status.xlog.as_ref();
        let lsn = |key: &str| {
            xlog.and_then(|x| x.get(key))
                .and_then(Value::as_u64)
                .filter(|l| *l > 0)
                .map(Lsn)
        };
        Self {
            received: lsn("received_location"),
            replayed: lsn("replayed_location"),
            replayed_at: xlog
                .and_then(|x| x.get("replayed_timestamp"))
                .and_then(Value::as_str)
                .and_then(crate::timestamp::epoch_seconds),
        }
    }
}

/// How far this cluster is behind its source, in one line: bytes against the source primary's
/// WAL position when known, else the standby leader's own receive-to-replay distance; and how
/// long ago the last replayed commit was made (`now` in epoch seconds).
pub fn lag_line(standby: &StandbyPosition, source: &Source, now: f64) -> String {
    let mb = |bytes: u64| format!("{bytes} bytes ({:.1} MB)", bytes as f64 / 1_048_576.0);
    let mut parts = Vec::new();
    match (source, standby.received, standby.replayed) {
        (Source::Primary { lsn: Some(primary) }, received, replayed) => {
            if let Some(received) = received {
                parts.push(format!(
                    "received WAL is {} behind the source primary",
                    mb(received.lag_behind(*primary))
                ));
            }
            if let Some(replayed) = replayed {
                parts.push(format!(
                    "replayed WAL is {}",
                    mb(replayed.lag_behind(*primary))
                ));
            }
        }
        (_, Some(received), Some(replayed)) => parts.push(format!(
            "the standby leader has {} received but not replayed (the source's position is not \
             known)",
            mb(replayed.lag_behind(received))
        )),
        _ => parts.push("the standby leader reports no WAL position".to_owned()),
    }
    if let Some(at) = standby.replayed_at {
        parts.push(format!(
            "its last replayed commit was made {:.0} s ago",
            (now - at).max(0.0)
        ));
    }
    format!("Lag: {}", parts.join("; "))
}

/// Asks the source at `section`'s host:port (the `standby_cluster` of `/config`) whether it runs
/// a primary, with each login in turn.
pub async fn probe_source(section: &Value, logins: &[Credentials]) -> Source {
    let host = section.get("host").and_then(Value::as_str);
    let port = section.get("port").and_then(|p| {
        p.as_u64()
            .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
    });
    if host.is_none() && port.is_none() {
        return Source::Unknown("it is fed from the WAL archive only (restore_command)".into());
    }
    if logins.is_empty() {
        return Source::Unknown(
            "the configuration file has no postgresql.authentication login to ask it with".into(),
        );
    }
    let mut last = Source::Unreachable("no login was tried".into());
    for login in logins {
        let mut config = tokio_postgres::Config::new();
        config
            .host(host.unwrap_or("localhost"))
            .port(port.map_or(5432, |p| p as u16))
            .user(&login.username)
            .dbname("postgres")
            .application_name("tribunectl promote-cluster")
            .connect_timeout(PROBE_TIMEOUT);
        if let Some(password) = &login.password {
            config.password(password);
        }
        let connect = config.connect(tokio_postgres::NoTls);
        let (client, connection) = match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) if e.as_db_error().is_some() => {
                last = Source::Unanswered(crate::instance::sql::error_text(&e));
                continue;
            }
            Ok(Err(e)) => {
                return Source::Unreachable(crate::instance::sql::error_text(&e));
            }
            Err(_) => return Source::Unreachable(format!("no answer within {PROBE_TIMEOUT:?}")),
        };
        let task = tokio::spawn(connection);
        let sql = "SELECT pg_is_in_recovery()::text, CASE WHEN pg_is_in_recovery() THEN '' \
                   ELSE pg_current_wal_lsn()::text END";
        let answer = tokio::time::timeout(PROBE_TIMEOUT, client.simple_query(sql)).await;
        task.abort();
        let row = match answer {
            Ok(Ok(messages)) => messages.into_iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                    r.get(0).map(str::to_owned),
                    r.get(1).and_then(|l| l.parse::<Lsn>().ok()),
                )),
                _ => None,
            }),
            Ok(Err(e)) => {
                last = Source::Unanswered(crate::instance::sql::error_text(&e));
                continue;
            }
            Err(_) => {
                last = Source::Unanswered(format!("no answer within {PROBE_TIMEOUT:?}"));
                continue;
            }
        };
        return match row {
            Some((Some(recovery), _)) if recovery == "true" => Source::InRecovery,
            Some((Some(_), lsn)) => Source::Primary { lsn },
            _ => Source::Unanswered("pg_is_in_recovery() returned no row".into()),
        };
    }
    last
}

/// How long the source may take to answer `promote-cluster`'s check.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The source's check and this cluster's lag, printed; `Err` when the promotion is refused.
async fn check_source(session: &Session, doc: &ClusterDocument, force: bool) -> anyhow::Result<()> {
    let config = session
        .client
        .config()
        .await
        .context("reading the configuration (GET /config)")?;
    let Some(section) = config.get("standby_cluster").filter(|v| !v.is_null()) else {
        // Not a standby cluster: `confirmed` says so.
        return Ok(());
    };
    let address = crate::config::StandbyCluster {
        host: section
            .get("host")
            .and_then(Value::as_str)
            .map(str::to_owned),
        port: section
            .get("port")
            .and_then(|p| {
                p.as_u64()
                    .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
            })
            .and_then(|p| u16::try_from(p).ok()),
        primary_slot_name: None,
        restore_command: None,
        archive_cleanup_command: None,
        recovery_min_apply_delay: None,
    }
    .address();
    let source = probe_source(section, &session.db_logins).await;
    let standby = match select::leader(doc) {
        Some(leader) => session
            .client
            .status_of(&leader.api_url)
            .await
            .map(|s| StandbyPosition::of(&s))
            .unwrap_or_default(),
        None => StandbyPosition::default(),
    };
    let now = crate::types::UnixMillis::now().0 as f64 / 1000.0;
    println!("{}", lag_line(&standby, &source, now));
    match verdict(&source, &address, force) {
        Ok(note) => {
            println!("{note}");
            Ok(())
        }
        Err(refusal) => bail!("{refusal}"),
    }
}

pub async fn promote_cluster(
    session: &mut Session,
    args: &PromoteClusterArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let doc = session.cluster(args.cluster.as_deref()).await?;
    check_source(session, &doc, args.force).await?;
    let doc = confirmed(
        session,
        args.cluster.as_deref(),
        args.force,
        terminal,
        Turn::Promote,
    )
    .await?;
    change(session, &doc, json!({ "standby_cluster": null }), "leader").await?;
    println!("Success: cluster {} was promoted", doc.scope);
    Ok(())
}

pub async fn demote_cluster(
    session: &mut Session,
    args: &DemoteClusterArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let section = demote_section(args)?;
    let doc = confirmed(
        session,
        args.cluster.as_deref(),
        args.force,
        terminal,
        Turn::Demote,
    )
    .await?;
    change(
        session,
        &doc,
        json!({ "standby_cluster": section }),
        "standby_leader",
    )
    .await?;
    println!("Success: cluster {} was demoted", doc.scope);
    Ok(())
}

/// Which way a cluster is turned.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    Promote,
    Demote,
}

/// The cluster, once its configuration allows the turn (a promotion needs a standby cluster, a
/// demotion a normal one) and the operator confirmed it (unless `force`).
async fn confirmed(
    session: &mut Session,
    cluster: Option<&str>,
    force: bool,
    terminal: &mut Terminal,
    turn: Turn,
) -> anyhow::Result<ClusterDocument> {
    let doc = session.cluster(cluster).await?;
    let config = session
        .client
        .config()
        .await
        .context("reading the configuration (GET /config)")?;
    let standby = config.get("standby_cluster").is_some_and(|v| !v.is_null());
    let (verb, noun) = match turn {
        Turn::Promote if !standby => bail!("Cluster is not in standby mode"),
        Turn::Demote if standby => bail!("Cluster is already in standby mode"),
        Turn::Promote => ("promote", "promotion"),
        Turn::Demote => ("demote", "demotion"),
    };
    if !force
        && !terminal.confirm(&format!(
            "Are you sure you want to {verb} {} cluster?",
            doc.scope
        ))?
    {
        bail!("Aborted cluster {noun}");
    }
    Ok(doc)
}

/// PATCH `/config` with `patch` (the leader first), then print a status line every second until
/// the leader runs as `role`.
async fn change(
    session: &mut Session,
    doc: &ClusterDocument,
    patch: Value,
    role: &str,
) -> anyhow::Result<()> {
    let leader = select::leader(doc).map(|l| l.name.clone());
    let urls = session.urls_from(doc, leader.as_deref());
    let (first, answer) = session
        .client
        .send_first(&urls, Method::PATCH, "/config", Some(&patch))
        .await
        .map_err(|_| anyhow::anyhow!("Can not find accessible cluster member"))?;
    if !answer.is_success() {
        bail!(
            "Config modification failed, details: {}, {}",
            answer.status,
            answer.body_line()
        );
    }
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        let now = session.client.cluster_from(&first).await;
        if let Ok(now) = &now {
            if leader_runs_as(now, role) {
                return Ok(());
            }
            println!(
                "{} waiting for the leader to run as {role}: {}",
                crate::timestamp::iso_time(crate::types::UnixMillis::now()),
                leader_line(now)
            );
        } else {
            println!("waiting for the leader to run as {role}: no member answers");
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the configuration was changed, but the leader did not run as {role} within {} s",
                WAIT_LIMIT.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterMember;

    fn args(host: Option<&str>, port: Option<u16>, restore: Option<&str>) -> DemoteClusterArgs {
        DemoteClusterArgs {
            cluster: None,
            host: host.map(str::to_owned),
            port,
            restore_command: restore.map(str::to_owned),
            primary_slot_name: Some("dr".into()),
            force: true,
        }
    }

    /// One row per answer of the source, with and without `--force`.
    #[test]
    fn promotion_is_refused_while_the_source_runs_a_primary() {
        let at = "10.0.0.1:5432";
        let primary = Source::Primary {
            lsn: Some(Lsn(100)),
        };
        let cases: [(&str, Source, bool, Result<&str, &str>); 8] = [
            (
                "a live primary refuses",
                primary.clone(),
                false,
                Err("still runs a primary"),
            ),
            (
                "--force overrides",
                primary,
                true,
                Ok("promoting anyway (--force)"),
            ),
            (
                "an answer that says nothing refuses too",
                Source::Unanswered("password authentication failed".into()),
                false,
                Err("could not be asked whether it runs a primary"),
            ),
            (
                "--force overrides that",
                Source::Unanswered("password authentication failed".into()),
                true,
                Ok("promoting anyway"),
            ),
            (
                "a source in recovery is no primary",
                Source::InRecovery,
                false,
                Ok("runs no primary"),
            ),
            (
                "a lost source is the disaster-recovery case",
                Source::Unreachable("connection refused".into()),
                false,
                Ok("does not answer (connection refused)"),
            ),
            (
                "an archive-only source cannot be asked: said, not refused",
                Source::Unknown("it is fed from the WAL archive only (restore_command)".into()),
                false,
                Ok("cannot be checked"),
            ),
            (
                "the refusal says what to do",
                Source::Primary { lsn: None },
                false,
                Err("Stop or demote the source first, or pass --force"),
            ),
        ];
        for (name, source, force, expected) in cases {
            let got = verdict(&source, at, force);
            match (&got, expected) {
                (Ok(note), Ok(needle)) | (Err(note), Err(needle)) => {
                    assert!(note.contains(needle), "{name}: {note}")
                }
                _ => panic!("{name}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn lag_against_the_source_primary_or_as_the_standby_leader_reports_it() {
        let standby = StandbyPosition {
            received: Some(Lsn(1_000)),
            replayed: Some(Lsn(900)),
            replayed_at: Some(1_000.0),
        };
        let primary = Source::Primary {
            lsn: Some(Lsn(2_048_576)),
        };
        assert_eq!(
            lag_line(&standby, &primary, 1_012.0),
            "Lag: received WAL is 2047576 bytes (2.0 MB) behind the source primary; replayed WAL \
             is 2047676 bytes (2.0 MB); its last replayed commit was made 12 s ago"
        );
        assert_eq!(
            lag_line(&standby, &Source::Unreachable("x".into()), 1_012.0),
            "Lag: the standby leader has 100 bytes (0.0 MB) received but not replayed (the \
             source's position is not known); its last replayed commit was made 12 s ago"
        );
        assert_eq!(
            lag_line(&StandbyPosition::default(), &Source::InRecovery, 0.0),
            "Lag: the standby leader reports no WAL position"
        );
        let status: crate::api::StatusDocument = serde_json::from_value(json!({
            "state": "running", "role": "standby_leader", "dcs_last_seen": 0,
            "patroni": {"version": "4.0.0", "scope": "dr", "name": "n1"},
            "xlog": {"received_location": 1000, "replayed_location": 900,
                     "replayed_timestamp": "2026-12-07 12:00:00+00:00", "paused": false}
        }))
        .unwrap();
        let position = StandbyPosition::of(&status);
        assert_eq!(position.received, Some(Lsn(1000)));
        assert_eq!(position.replayed, Some(Lsn(900)));
        assert!(position.replayed_at.is_some());
    }

    #[test]
    fn demotion_needs_a_source() {
        let err = demote_section(&args(None, None, None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "At least --host, --port or --restore-command should be specified"
        );
        assert_eq!(
            demote_section(&args(Some("10.0.0.1"), Some(5433), None)).unwrap(),
            json!({"host": "10.0.0.1", "port": 5433, "primary_slot_name": "dr"})
        );
        assert_eq!(
            demote_section(&args(None, None, Some("cp %f %p"))).unwrap(),
            json!({"restore_command": "cp %f %p", "primary_slot_name": "dr"})
        );
    }

    #[test]
    fn the_wait_ends_when_the_leader_runs_in_the_new_role() {
        let doc = |role: &str, state: &str| ClusterDocument {
            members: vec![ClusterMember {
                name: "node0".into(),
                role: role.into(),
                state: state.into(),
                ..Default::default()
            }],
            scope: "b".into(),
            ..Default::default()
        };
        assert!(!leader_runs_as(
            &doc("standby_leader", "streaming"),
            "leader"
        ));
        assert!(!leader_runs_as(&doc("leader", "starting"), "leader"));
        assert!(leader_runs_as(&doc("leader", "running"), "leader"));
        assert!(leader_runs_as(
            &doc("standby_leader", "streaming"),
            "standby_leader"
        ));
        assert_eq!(
            leader_line(&doc("standby_leader", "streaming")),
            "leader node0 is standby_leader (streaming)"
        );
        assert_eq!(
            leader_line(&ClusterDocument::default()),
            "the cluster has no leader"
        );
    }
}
