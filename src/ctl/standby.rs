//! `promote-cluster` and `demote-cluster`: take `standby_cluster` out of the dynamic
//! configuration (the standby leader becomes a primary) or put it in (the cluster follows a
//! remote primary), then print a status line every second until the leader's role shows it.
//!
//! Both are one `PATCH /config` to the leader first; the server validates the change and, for
//! a demotion of a running cluster, refuses it with its reason (see `api::control`), which is
//! printed as the error. Nothing is retried.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::prompt::Terminal;
use super::select;
use super::session::Session;
use crate::api::ClusterDocument;

/// How long the command waits for the leader's new role before it gives up waiting (the
/// change itself stays stored).
const WAIT_LIMIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(1);

#[derive(Args, Debug, Clone)]
pub struct PromoteClusterArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// Do not ask for confirmation.
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

pub async fn promote_cluster(
    session: &mut Session,
    args: &PromoteClusterArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
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
