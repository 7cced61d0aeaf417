//! `switchover` and `failover`: patronictl's questions and checks, then `POST /switchover` or
//! `POST /failover` to the leader's REST API (to the candidate's when there is no leader), to
//! the other members when that one is down. The member table is printed before and after.
//!
//! Checks done here, before anything is sent, with patronictl's words: a leader exists (for a
//! switchover) and is the one named, there are candidates, the candidate is one of them, no
//! switchover is scheduled in a paused cluster. Everything else is the server's to refuse; its
//! refusal is printed as `Switchover failed, details: <code>, <body>` and nothing changes.

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::list::print_members;
use super::prompt::Terminal;
use super::schedule;
use super::select::{self, python_list};
use super::session::Session;
use crate::api::ClusterDocument;
use crate::config::{DynamicConfig, SynchronousMode};
use crate::types::UnixMillis;

#[derive(Args, Debug, Clone)]
pub struct SwitchoverArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// The current leader (asked when not given).
    #[arg(long, visible_alias = "primary", alias = "master", value_name = "NAME")]
    pub leader: Option<String>,
    /// The member to promote (asked when not given; with --force, any healthy member).
    #[arg(long, value_name = "NAME")]
    pub candidate: Option<String>,
    /// When: an ISO 8601 time (without a zone: local time) or `now` (asked when not given).
    #[arg(long, value_name = "TIMESTAMP")]
    pub scheduled: Option<String>,
    /// Ask nothing.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// The member to promote (asked when not given; required with --force).
    #[arg(long, value_name = "NAME")]
    pub candidate: Option<String>,
    /// Ask nothing.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Switchover,
    Failover,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Switchover => "switchover",
            Action::Failover => "failover",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Action::Switchover => "Switchover",
            Action::Failover => "Failover",
        }
    }
}

/// The candidate given, else (unless `force`: none) the one answered, checked against the
/// members that may be promoted when `leader` leads; `None` when none is wanted (a switchover
/// to whichever member is best).
fn choose_candidate(
    terminal: &mut Terminal,
    doc: &ClusterDocument,
    leader: Option<&str>,
    action: Action,
    (given, force): (Option<&str>, bool),
) -> anyhow::Result<Option<String>> {
    let candidates = select::candidates(doc, leader);
    if candidates.is_empty() {
        anyhow::bail!("No candidates found to {} to", action.word());
    }
    let chosen = match (given, force) {
        (Some(c), _) => c.to_owned(),
        (None, true) => return Ok(None),
        (None, false) => terminal.ask(&format!("Candidate {}", python_list(&candidates)), "")?,
    };
    checked_candidate(doc, &candidates, chosen)
}

fn checked_candidate(
    doc: &ClusterDocument,
    candidates: &[String],
    chosen: String,
) -> anyhow::Result<Option<String>> {
    if chosen.is_empty() {
        return Ok(None);
    }
    if !candidates.contains(&chosen) {
        anyhow::bail!(
            "Member {chosen} does not exist in cluster {} or is tagged as nofailover",
            doc.scope
        );
    }
    Ok(Some(chosen))
}

/// `GET /cluster`, printed under "Current cluster topology" as both verbs start.
async fn current_topology(
    session: &mut Session,
    cluster: Option<&str>,
) -> anyhow::Result<ClusterDocument> {
    let doc = session.cluster(cluster).await?;
    println!("Current cluster topology");
    print_members(&doc)?;
    Ok(doc)
}

pub async fn switchover(
    session: &mut Session,
    args: &SwitchoverArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let action = Action::Switchover;
    let doc = current_topology(session, args.cluster.as_deref()).await?;
    let Some(current) = select::leader(&doc) else {
        anyhow::bail!("This cluster has no leader");
    };
    let leader = match (&args.leader, args.force) {
        (Some(l), _) => l.clone(),
        (None, true) => current.name.clone(),
        (None, false) => {
            let question = if current.role == "standby_leader" {
                "Standby Leader"
            } else {
                "Primary"
            };
            terminal.ask(question, &current.name)?
        }
    };
    if leader != current.name {
        anyhow::bail!("Member {leader} is not the leader of cluster {}", doc.scope);
    }
    let given = (args.candidate.as_deref(), args.force);
    let candidate = choose_candidate(terminal, &doc, Some(&leader), action, given)?;
    let scheduled_at =
        schedule::scheduled_or_ask(terminal, args.scheduled.as_deref(), args.force, |example| {
            format!("When should the switchover take place (e.g. {example} )")
        })?;
    if scheduled_at.is_some() && doc.pause == Some(true) {
        anyhow::bail!("Can't schedule switchover in the paused state");
    }
    if !args.force {
        let question = match &scheduled_at {
            Some(at) => format!(
                "Are you sure you want to schedule switchover of cluster {} at {at}, demoting current leader {leader}?",
                doc.scope
            ),
            None => format!(
                "Are you sure you want to switchover cluster {}, demoting current leader {leader}?",
                doc.scope
            ),
        };
        if !terminal.confirm(&question)? {
            match scheduled_at {
                Some(_) => anyhow::bail!("Aborting scheduled switchover"),
                None => anyhow::bail!("Aborting switchover"),
            }
        }
    }
    let mut body = json!({ "leader": leader });
    if let Some(c) = &candidate {
        body["candidate"] = json!(c);
    }
    if let Some(at) = &scheduled_at {
        body["scheduled_at"] = json!(at);
    }
    request(session, &doc, action, &leader, &body).await
}

/// Whether the cluster runs in synchronous mode with at least one synchronous standby that is
/// not `candidate`: promoting `candidate` may lose acknowledged writes.
fn candidate_is_asynchronous(doc: &ClusterDocument, config: &Value, candidate: &str) -> bool {
    let synchronous = DynamicConfig::from_json(config)
        .map(|c| c.synchronous_mode != SynchronousMode::Off)
        .unwrap_or(false);
    let is_sync = |role: &str| role == "sync_standby" || role == "quorum_standby";
    synchronous
        && doc.members.iter().any(|m| is_sync(&m.role))
        && !select::member(doc, candidate).is_some_and(|m| is_sync(&m.role))
}

pub async fn failover(
    session: &mut Session,
    args: &FailoverArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let action = Action::Failover;
    let doc = current_topology(session, args.cluster.as_deref()).await?;
    let leader = select::leader(&doc).map(|l| l.name.clone());
    let given = (args.candidate.as_deref(), args.force);
    let chosen = choose_candidate(terminal, &doc, leader.as_deref(), action, given)?;
    let Some(candidate) = chosen else {
        anyhow::bail!("Failover could be performed only to a specific candidate");
    };
    if !args.force {
        let config = session.client.config().await.unwrap_or(Value::Null);
        if candidate_is_asynchronous(&doc, &config, &candidate)
            && !terminal.confirm(&format!(
                "Are you sure you want to failover to the asynchronous node {candidate}?"
            ))?
        {
            anyhow::bail!("Aborting failover");
        }
        let demoting = leader
            .as_ref()
            .map(|l| format!(", demoting current leader {l}"))
            .unwrap_or_default();
        if !terminal.confirm(&format!(
            "Are you sure you want to failover cluster {}{demoting}?",
            doc.scope
        ))? {
            anyhow::bail!("Aborting failover");
        }
    }
    let body = json!({ "candidate": candidate });
    // Without a leader the candidate itself is asked first.
    let first = leader.clone().unwrap_or_else(|| candidate.clone());
    request(session, &doc, action, &first, &body).await
}

/// Sends the request to `first`'s API, then to the other members while none answers; prints the
/// answer after a timestamp and the table again, or fails with the server's refusal.
async fn request(
    session: &mut Session,
    doc: &ClusterDocument,
    action: Action,
    first: &str,
    body: &Value,
) -> anyhow::Result<()> {
    let order = session.urls_from(doc, Some(first));
    let path = format!("/{}", action.word());
    let (answered, answer) = session
        .client
        .send_first(&order, Method::POST, &path, Some(body))
        .await?;
    if !answer.is_success() {
        anyhow::bail!(
            "{} failed, details: {}, {}",
            action.title(),
            answer.status,
            answer.body_line()
        );
    }
    println!(
        "{} {}",
        schedule::local_timestamp(UnixMillis::now(), 5),
        answer.body_line()
    );
    // The member that answered has the change in its state; another may not have it yet.
    let after = session.client.cluster_from(&answered).await?;
    print_members(&after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::select::tests::doc;

    #[test]
    fn a_candidate_must_be_one_of_the_candidates() {
        let doc = doc();
        let candidates = select::candidates(&doc, Some("node0"));
        assert_eq!(
            checked_candidate(&doc, &candidates, "node1".into()).unwrap(),
            Some("node1".into())
        );
        assert_eq!(
            checked_candidate(&doc, &candidates, String::new()).unwrap(),
            None
        );
        for wrong in ["node2", "node0", "nobody", "w"] {
            assert_eq!(
                checked_candidate(&doc, &candidates, wrong.into())
                    .unwrap_err()
                    .to_string(),
                format!(
                    "Member {wrong} does not exist in cluster itest or is tagged as nofailover"
                )
            );
        }
    }

    #[test]
    fn an_asynchronous_candidate_is_one_outside_the_synchronous_standbys() {
        let doc = doc(); // node1 is the synchronous standby
        let on = json!({"synchronous_mode": true});
        assert!(!candidate_is_asynchronous(&doc, &on, "node1"));
        assert!(candidate_is_asynchronous(&doc, &on, "node2"));
        let off = json!({"synchronous_mode": false});
        assert!(!candidate_is_asynchronous(&doc, &off, "node2"));
        // Tribune's default is synchronous mode on.
        assert!(candidate_is_asynchronous(&doc, &json!({}), "node2"));
    }
}
