//! Per-member actions: `restart`, `reload`, `reinit` and `flush`. Each request goes to the REST
//! API of the member it is for (a restart restarts the database of the member that receives
//! it), one line per member in patronictl's words (`Success: ...`, `Failed: ...`).
//!
//! The member table is printed first, then the questions (`--force` skips them). When any
//! member's request failed, the command ends with one `Error:` line naming them and exit code 1
//! (patronictl exits 0 there; a script should learn that a restart did not happen).

use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use super::list::print_members;
use super::prompt::Terminal;
use super::schedule;
use super::select::{self, Role};
use super::session::Session;
use crate::api::client::{Answer, ClientError, base_url};
use crate::api::{ClusterDocument, ClusterMember};
use crate::config::DynamicConfig;
use crate::types::UnixMillis;

#[derive(Args, Debug, Clone)]
pub struct RestartArgs {
    /// Cluster name.
    pub cluster: String,
    /// Members to restart (default: every member with the role).
    pub members: Vec<String>,
    /// Restart only members with this role.
    #[arg(short = 'r', long, value_enum, default_value_t = Role::Any)]
    pub role: Role,
    /// Restart one member, picked at random among those chosen.
    #[arg(long = "any")]
    pub any: bool,
    /// When: an ISO 8601 time (without a zone: local time) or `now` (asked when not given).
    #[arg(long, value_name = "TIMESTAMP")]
    pub scheduled: Option<String>,
    /// Restart only if the running PostgreSQL is older than this version (X.Y or X.Y.Z).
    #[arg(long = "pg-version", value_name = "VERSION")]
    pub pg_version: Option<String>,
    /// Restart only members that report a pending restart.
    #[arg(long)]
    pub pending: bool,
    /// Fail the restart when PostgreSQL takes longer than SEC seconds to start.
    #[arg(long, value_name = "SEC", value_parser = positive_seconds)]
    pub timeout: Option<f64>,
    /// Ask nothing.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ReloadArgs {
    /// Cluster name.
    pub cluster: String,
    /// Members to reload (default: every member with the role).
    pub members: Vec<String>,
    /// Reload only members with this role.
    #[arg(short = 'r', long, value_enum, default_value_t = Role::Any)]
    pub role: Role,
    /// Ask nothing.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ReinitArgs {
    /// Cluster name.
    pub cluster: String,
    /// Replicas to set aside and clone again (asked when none is given).
    pub members: Vec<String>,
    /// Clone from the leader even when a `clonefrom` member exists.
    #[arg(long = "from-leader")]
    pub from_leader: bool,
    /// Wait until every member has been cloned and runs again.
    #[arg(long)]
    pub wait: bool,
    /// Ask nothing, and cancel a reinitialisation already in progress.
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlushTarget {
    /// Withdraw scheduled restarts.
    Restart,
    /// Withdraw the scheduled switchover.
    Switchover,
}

#[derive(Args, Debug, Clone)]
pub struct FlushArgs {
    /// Cluster name.
    pub cluster: String,
    /// Members whose scheduled restart to withdraw (default: every member with the role), then
    /// what to withdraw: `restart` or `switchover`.
    #[arg(value_name = "[MEMBER]... restart|switchover", required = true, num_args = 1..)]
    pub words: Vec<String>,
    /// Only members with this role (restart).
    #[arg(short = 'r', long, value_enum, default_value_t = Role::Any)]
    pub role: Role,
    /// Ask nothing.
    #[arg(long)]
    pub force: bool,
}

impl FlushArgs {
    /// The members and the target: the last word is the target. (clap cannot take optional
    /// positionals before a required one, so the split is done here.)
    pub fn members_and_target(&self) -> anyhow::Result<(&[String], FlushTarget)> {
        let Some((last, members)) = self.words.split_last() else {
            anyhow::bail!("say what to flush: restart or switchover");
        };
        let target = FlushTarget::from_str(last, false).map_err(|_| {
            anyhow::anyhow!("'{last}' is not something to flush: restart or switchover")
        })?;
        Ok((members, target))
    }
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('s').parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}

/// patronictl's check of `--pg-version`: `X.Y` from PostgreSQL 10 on, `X.Y.Z` before.
fn check_pg_version(text: &str) -> anyhow::Result<()> {
    let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
    match parts.as_deref() {
        Some([major, _]) if *major >= 10 => Ok(()),
        Some([_, minor, patch]) if *minor < 100 && *patch < 100 => Ok(()),
        _ => anyhow::bail!("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {text}"),
    }
}

/// Seconds as patronictl prints `loop_wait`: `10`, or `0.5`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// The members that failed, for the closing error line.
struct Tally {
    verb: &'static str,
    total: usize,
    failed: Vec<String>,
}

impl Tally {
    fn new(verb: &'static str, total: usize) -> Self {
        Self {
            verb,
            total,
            failed: Vec::new(),
        }
    }

    /// Prints `line`; counts the member as failed when `ok` is false.
    fn record(&mut self, member: &str, ok: bool, line: String) {
        println!("{line}");
        if !ok {
            self.failed.push(member.to_owned());
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} failed on {} of {} members: {}",
            self.verb,
            self.failed.len(),
            self.total,
            self.failed.join(", ")
        )
    }
}

/// `Failed: <action> for member X, status code=N, (body)`, patronictl's line for an answer it
/// has no words for; `(error)` when there was no answer.
fn failed_line(action: &str, member: &str, answer: &Result<Answer, ClientError>) -> String {
    match answer {
        Ok(a) => format!(
            "Failed: {action} for member {member}, status code={}, ({})",
            a.status,
            a.body_line()
        ),
        Err(e) => format!("Failed: {action} for member {member}, ({e})"),
    }
}

async fn send(
    session: &Session,
    member: &ClusterMember,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, ClientError> {
    session
        .client
        .send(&base_url(&member.api_url), method, path, body)
        .await
}

/// Sends `request` to each member's own API and prints one line per member: `words` gives the
/// line for a status it knows and whether that is a success; any other answer, or none, is a
/// `Failed:` line. One closing error names the members that failed.
async fn each_member(
    session: &Session,
    members: &[&ClusterMember],
    (method, path, body): (Method, &str, Option<&Value>),
    action: &'static str,
    words: impl Fn(u16, &str) -> Option<(bool, String)>,
) -> anyhow::Result<()> {
    let mut tally = Tally::new(action, members.len());
    for m in members {
        let answer = send(session, m, method.clone(), path, body).await;
        let name = &m.name;
        match answer.as_ref().ok().and_then(|a| words(a.status, name)) {
            Some((ok, line)) => tally.record(name, ok, line),
            None => tally.record(name, false, failed_line(action, name, &answer)),
        }
    }
    tally.finish()
}

/// The members named (else all) with the role, leaving out witnesses when `database` is set:
/// they have no database to act on.
fn targets<'a>(
    doc: &'a ClusterDocument,
    names: &[String],
    role: Role,
    database: bool,
) -> anyhow::Result<Vec<&'a ClusterMember>> {
    let mut chosen = select::by_names_and_role(doc, names, role)?;
    if database {
        if let Some(w) = chosen
            .iter()
            .find(|m| select::is_witness(m) && !names.is_empty())
        {
            anyhow::bail!("{} is a witness: it has no database", w.name);
        }
        chosen.retain(|m| !select::is_witness(m));
        if chosen.is_empty() {
            anyhow::bail!(
                "no member of cluster {} with the role has a database",
                doc.scope
            );
        }
    }
    Ok(chosen)
}

/// patronictl's confirmation of an action on members, `Aborted <action>` when declined.
fn confirm_members(
    terminal: &mut Terminal,
    action: &str,
    members: &[&ClusterMember],
    scheduled_at: Option<&str>,
) -> anyhow::Result<()> {
    let names = select::names(members);
    let (question, refusal) = match scheduled_at {
        Some(at) => (
            format!("Are you sure you want to schedule {action} of members {names} at {at}?"),
            format!("Aborted scheduled {action}"),
        ),
        None => (
            format!("Are you sure you want to {action} members {names}?"),
            format!("Aborted {action}"),
        ),
    };
    if !terminal.confirm(&question)? {
        anyhow::bail!(refusal);
    }
    Ok(())
}

pub async fn restart(
    session: &mut Session,
    args: &RestartArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let doc = session.cluster(Some(&args.cluster)).await?;
    let mut members = targets(&doc, &args.members, args.role, true)?;
    print_members(&doc)?;
    let scheduled_at =
        schedule::scheduled_or_ask(terminal, args.scheduled.as_deref(), args.force, |example| {
            format!("When should the restart take place (e.g. {example})")
        })?;
    if args.any {
        let pick = UnixMillis::now().0 as usize % members.len();
        members = vec![members[pick]];
    }
    let version = match (&args.pg_version, args.force) {
        (Some(v), _) => v.clone(),
        (None, true) => String::new(),
        (None, false) => terminal.ask(
            "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)",
            "",
        )?,
    };
    let mut body = json!({});
    if args.pending {
        body["restart_pending"] = json!(true);
        if scheduled_at.is_none() {
            members.retain(|m| m.pending_restart == Some(true));
        }
    }
    if !version.is_empty() {
        check_pg_version(&version)?;
        body["postgres_version"] = json!(version);
    }
    if let Some(at) = &scheduled_at {
        if doc.pause == Some(true) {
            anyhow::bail!("Can't schedule restart in the paused state");
        }
        body["schedule"] = json!(at);
    }
    if let Some(timeout) = args.timeout {
        body["timeout"] = json!(timeout);
    }
    if members.is_empty() {
        println!("No member of cluster {} has a pending restart", doc.scope);
        return Ok(());
    }
    if !args.force {
        confirm_members(terminal, "restart", &members, scheduled_at.as_deref())?;
    }
    let request = (Method::POST, "/restart", Some(&body));
    each_member(
        session,
        &members,
        request,
        "restart",
        |status, name| match status {
            200 => Some((true, format!("Success: restart on member {name}"))),
            202 => Some((true, format!("Success: restart scheduled on member {name}"))),
            409 => Some((
                false,
                format!("Failed: another restart is already scheduled on member {name}"),
            )),
            _ => None,
        },
    )
    .await
}

pub async fn reload(
    session: &mut Session,
    args: &ReloadArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let doc = session.cluster(Some(&args.cluster)).await?;
    let members = targets(&doc, &args.members, args.role, false)?;
    print_members(&doc)?;
    if !args.force {
        confirm_members(terminal, "reload", &members, None)?;
    }
    let config = session.client.config().await.unwrap_or(Value::Null);
    let loop_wait = DynamicConfig::from_json(&config)
        .map(|c| c.loop_wait)
        .unwrap_or(crate::config::DEFAULT_LOOP_WAIT);
    let request = (Method::POST, "/reload", None);
    each_member(session, &members, request, "reload", |status, name| match status {
        200 => Some((true, format!("No changes to apply on member {name}"))),
        202 => Some((
            true,
            format!(
                "Reload request received for member {name} and will be processed within {} seconds",
                seconds(loop_wait)
            ),
        )),
        _ => None,
    })
    .await
}

pub async fn reinit(
    session: &mut Session,
    args: &ReinitArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let doc = session.cluster(Some(&args.cluster)).await?;
    print_members(&doc)?;
    let names = if !args.members.is_empty() {
        args.members.clone()
    } else if args.force {
        anyhow::bail!(
            "Name the members to reinitialize: reinit {} MEMBER...",
            doc.scope
        );
    } else {
        let replicas = targets(&doc, &[], Role::Replica, true)?;
        let answer = terminal.ask(
            &format!(
                "Which member do you want to reinitialize [{}]?",
                select::names(&replicas)
            ),
            "",
        )?;
        if answer.is_empty() {
            anyhow::bail!("No member to reinitialize");
        }
        vec![answer]
    };
    let members = targets(&doc, &names, Role::Any, true)?;
    if !args.force {
        confirm_members(terminal, "reinitialize", &members, None)?;
    }
    let mut tally = Tally::new("reinitialize", members.len());
    let mut started = Vec::new();
    for m in members {
        let name = &m.name;
        let before = session
            .client
            .status_of(&base_url(&m.api_url))
            .await
            .ok()
            .and_then(|s| s.postmaster_start_time);
        let mut force = args.force;
        loop {
            let body = json!({"force": force, "from_leader": args.from_leader});
            let answer = send(session, m, Method::POST, "/reinitialize", Some(&body)).await;
            if answer.as_ref().is_ok_and(Answer::is_success) {
                tally.record(
                    name,
                    true,
                    format!("Success: reinitialize for member {name}"),
                );
                started.push((m, before));
                break;
            }
            let in_progress = answer
                .as_ref()
                .is_ok_and(|a| a.body.trim_end().ends_with(" already in progress"));
            tally.record(name, false, failed_line("reinitialize", name, &answer));
            if in_progress
                && !force
                && terminal.confirm("Do you want to cancel it and reinitialize anyway?")?
            {
                tally.failed.retain(|f| f != name);
                force = true;
                continue;
            }
            break;
        }
    }
    if args.wait && !started.is_empty() {
        wait_for_reinit(session, &started, &mut tally).await;
    }
    tally.finish()
}

/// Polls each member's `GET /patroni` until its database runs again with a new postmaster (the
/// clone is done), or reports a failed state.
async fn wait_for_reinit(
    session: &Session,
    started: &[(&ClusterMember, Option<String>)],
    tally: &mut Tally,
) {
    let mut waiting: Vec<&(&ClusterMember, Option<String>)> = started.iter().collect();
    let mut shown = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<&str> = waiting.iter().map(|(m, _)| m.name.as_str()).collect();
        if names != shown {
            println!(
                "Waiting for reinitialize to complete on: {}",
                names.join(", ")
            );
            shown = names;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut still = Vec::new();
        for entry in waiting {
            let (m, before) = entry;
            let status = session.client.status_of(&base_url(&m.api_url)).await.ok();
            match status {
                Some(s) if s.state == "running" && s.postmaster_start_time != *before => {
                    println!("Reinitialize is completed on: {}", m.name);
                }
                Some(s) if s.state.ends_with("failed") => {
                    tally.record(
                        &m.name,
                        false,
                        format!("Reinitialize failed on: {} ({})", m.name, s.state),
                    );
                }
                _ => still.push(entry),
            }
        }
        waiting = still;
    }
}

pub async fn flush(
    session: &mut Session,
    args: &FlushArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let (members, target) = args.members_and_target()?;
    let doc = session.cluster(Some(&args.cluster)).await?;
    match target {
        FlushTarget::Restart => flush_restarts(session, &doc, members, args, terminal).await,
        FlushTarget::Switchover => flush_switchover(session, &doc).await,
    }
}

async fn flush_restarts(
    session: &Session,
    doc: &ClusterDocument,
    names: &[String],
    args: &FlushArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let members = targets(doc, names, args.role, true)?;
    print_members(doc)?;
    if !args.force {
        confirm_members(terminal, "flush", &members, None)?;
    }
    let request = (Method::DELETE, "/restart", None);
    each_member(
        session,
        &members,
        request,
        "flush scheduled restart",
        |status, name| match status {
            200 => Some((
                true,
                format!("Success: flush scheduled restart for member {name}"),
            )),
            404 => Some((true, format!("No scheduled restart for member {name}"))),
            _ => None,
        },
    )
    .await
}

/// `DELETE /switchover` on the leader, then on the others while none answers usefully.
async fn flush_switchover(session: &Session, doc: &ClusterDocument) -> anyhow::Result<()> {
    let leader = select::leader(doc).map(|l| l.name.as_str());
    for base in session.urls_from(doc, leader) {
        let Ok(answer) = session
            .client
            .send(&base, Method::DELETE, "/switchover", None)
            .await
        else {
            continue;
        };
        match answer.status {
            200 => {
                println!("Success: {}", answer.body_line());
                return Ok(());
            }
            404 => {
                println!("No pending scheduled switchover");
                return Ok(());
            }
            code => println!(
                "Failed: {base}, status code={code}, ({})",
                answer.body_line()
            ),
        }
    }
    anyhow::bail!("Can not find accessible cluster member")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::select::tests::doc;

    #[test]
    fn postgres_versions() {
        for good in ["15.4", "10.0", "9.6.24"] {
            assert!(check_pg_version(good).is_ok(), "{good}");
        }
        for bad in ["10", "9.6", "x.1", "15.4.1.2", ""] {
            assert_eq!(
                check_pg_version(bad).unwrap_err().to_string(),
                format!("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {bad}")
            );
        }
    }

    #[test]
    fn timeouts_and_loop_waits() {
        assert_eq!(positive_seconds("30"), Ok(30.0));
        assert_eq!(positive_seconds("2.5s"), Ok(2.5));
        assert!(positive_seconds("0").is_err());
        assert!(positive_seconds("-1").is_err());
        assert_eq!(seconds(Duration::from_secs(10)), "10");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn witnesses_have_no_database_to_act_on() {
        let doc = doc();
        let all = targets(&doc, &[], Role::Any, true).unwrap();
        assert_eq!(select::names(&all), "node0, node1, node2");
        assert_eq!(
            select::names(&targets(&doc, &[], Role::Any, false).unwrap()),
            "node0, node1, node2, w"
        );
        assert_eq!(
            targets(&doc, &["w".into()], Role::Any, true)
                .unwrap_err()
                .to_string(),
            "w is a witness: it has no database"
        );
    }
}
