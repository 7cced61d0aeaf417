//! The dynamic configuration: `show-config`, `edit-config`, and `pause`/`resume` (which set
//! `pause` in it). Reads are `GET /config`; writes are `PATCH /config` (a merge patch from the
//! configuration read to the one approved) or `PUT /config` (`--replace`), to the leader first.
//!
//! `edit-config` shows the change as a unified diff of the YAML, asks `Apply these changes?`,
//! and checks just before writing that the configuration is still the one the diff was made
//! from (else patronictl's `Config modification aborted due to concurrent changes`). The server
//! validates the result and refuses an invalid one with its reason; nothing is stored then.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::prompt::Terminal;
use super::session::Session;
use super::{diff, edit, select, yaml};
use crate::api::client::Answer;

#[derive(Args, Debug, Clone)]
pub struct ShowConfigArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct EditConfigArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// Do not show the diff.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set KEY.PATH to VALUE (parsed as YAML; `null` removes the key).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Set the PostgreSQL parameter GUC (`postgresql.parameters.GUC`).
    #[arg(short = 'p', long = "pg", value_name = "GUC=VALUE")]
    pub pg: Vec<String>,
    /// Merge the YAML of FILE (`-` for stdin) into the configuration.
    #[arg(long, value_name = "FILE", conflicts_with = "replace")]
    pub apply: Option<PathBuf>,
    /// Replace the configuration with the YAML of FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub replace: Option<PathBuf>,
    /// Apply without asking.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct PauseArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// Wait until every member reports the change.
    #[arg(long)]
    pub wait: bool,
}

pub async fn show_config(session: &mut Session, args: &ShowConfigArgs) -> anyhow::Result<()> {
    session.cluster(args.cluster.as_deref()).await?;
    let config = session
        .client
        .config()
        .await
        .context("reading the configuration (GET /config)")?;
    print!("{}", yaml::dump(&config)?);
    Ok(())
}

/// A YAML mapping from FILE, or from stdin for `-`.
fn read_document(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the configuration from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let origin = if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    match yaml::parse(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => bail!("{origin} is not a YAML mapping of configuration keys"),
        Err(e) => bail!(
            "cannot parse {origin} as YAML: {}",
            e.to_string().lines().next().unwrap_or_default()
        ),
    }
}

/// `$EDITOR` (else `editor`, else `vi`) on a temporary file holding `text`; the edited text.
fn invoke_editor(text: &str) -> anyhow::Result<String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
    };
    let editor = match std::env::var("EDITOR") {
        Ok(e) if !e.trim().is_empty() => e,
        _ => match ["editor", "vi"].into_iter().find(|e| on_path(e)) {
            Some(e) => e.to_owned(),
            None => bail!("EDITOR environment variable is not set. editor or vi are not available"),
        },
    };
    let path = std::env::temp_dir().join(format!(
        "tribunectl-config-{}-{}.yaml",
        std::process::id(),
        crate::types::UnixMillis::now().0
    ));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    // Through the shell, so EDITOR may carry arguments ("code --wait").
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status();
    let edited = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    let status = status.with_context(|| format!("cannot run the editor {editor}"))?;
    if !status.success() {
        bail!(
            "Editor exited with return code {}",
            status.code().map_or("none".to_owned(), |c| c.to_string())
        );
    }
    edited.context("reading the edited configuration")
}

/// What the operator asked for, applied to `before`.
fn edited(
    args: &EditConfigArgs,
    before: &Map<String, Value>,
) -> anyhow::Result<Map<String, Value>> {
    let mut after = match &args.replace {
        Some(path) => Value::Object(read_document(path)?),
        None => Value::Object(before.clone()),
    };
    if let Some(path) = &args.apply {
        edit::merge(&mut after, &Value::Object(read_document(path)?));
    }
    let settings = args.set.iter().cloned().chain(
        args.pg
            .iter()
            .map(|p| format!("postgresql.parameters.{}", p.trim_start())),
    );
    for setting in settings {
        let (path, value) = edit::parse_setting(&setting)?;
        edit::set_path(&mut after, &path, value);
    }
    let nothing_given =
        args.replace.is_none() && args.apply.is_none() && args.set.is_empty() && args.pg.is_empty();
    if nothing_given {
        let text = invoke_editor(&yaml::dump(&Value::Object(before.clone()))?)?;
        after = match yaml::parse(&text) {
            Ok(Value::Object(map)) => Value::Object(map),
            Ok(Value::Null) => Value::Object(Map::new()),
            Ok(_) => bail!("the edited configuration is not a YAML mapping of keys"),
            Err(e) => bail!(
                "the edited configuration is not YAML: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        };
    }
    match after {
        Value::Object(map) => Ok(map),
        _ => bail!("the configuration must be a mapping of keys"),
    }
}

fn config_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub async fn edit_config(
    session: &mut Session,
    args: &EditConfigArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let from_stdin = [&args.apply, &args.replace]
        .into_iter()
        .flatten()
        .any(|p| p == Path::new("-"));
    if from_stdin && !args.force {
        bail!(
            "Use --force when the configuration comes from stdin: stdin cannot also answer the question"
        );
    }
    let doc = session.cluster(args.cluster.as_deref()).await?;
    // Read, check and write through one member, the leader's first: reads of one member never
    // go back in time, so a difference between the two reads is a change made meanwhile.
    let leader = select::leader(&doc).map(|l| l.name.as_str());
    let urls = session.urls_from(&doc, leader);
    let first = urls.first().cloned().unwrap_or_default();
    let before = config_object(
        session
            .client
            .config_from(&first)
            .await
            .context("reading the configuration (GET /config)")?,
    );
    let after = edited(args, &before)?;
    let (before_text, after_text) = (
        yaml::dump(&Value::Object(before.clone()))?,
        yaml::dump(&Value::Object(after.clone()))?,
    );
    if !args.quiet {
        print!("{}", diff::unified(&before_text, &after_text, 3));
    }
    if after == before {
        if !args.quiet {
            println!("Not changed");
        }
        return Ok(());
    }
    if !args.force && !terminal.confirm("Apply these changes?")? {
        return Ok(());
    }
    let (method, body) = match args.replace {
        Some(_) => (Method::PUT, Value::Object(after)),
        None => (
            Method::PATCH,
            Value::Object(edit::merge_patch(&before, &after)),
        ),
    };
    let now = config_object(session.client.config_from(&first).await?);
    if now != before {
        bail!("Config modification aborted due to concurrent changes");
    }
    let (_, answer) = session
        .client
        .send_first(&urls, method, "/config", Some(&body))
        .await?;
    match answer.status {
        200..=299 => {
            println!("Configuration changed");
            Ok(())
        }
        409 => bail!("Config modification aborted due to concurrent changes"),
        _ => bail!("{}", config_refusal(&answer)),
    }
}

/// The server's refusal of a configuration on one line: its reason for a 400, else the code too.
fn config_refusal(answer: &Answer) -> String {
    if answer.status == 400 {
        answer.body_line()
    } else {
        format!(
            "Config modification failed, details: {}, {}",
            answer.status,
            answer.body_line()
        )
    }
}

/// `pause` (`paused`) or `resume`: `PATCH /config` `{"pause": true}` / `{"pause": null}` to
/// the leader, else the first member that answers.
pub async fn toggle_pause(
    session: &mut Session,
    args: &PauseArgs,
    paused: bool,
) -> anyhow::Result<()> {
    let doc = session.cluster(args.cluster.as_deref()).await?;
    let is_paused = doc.pause == Some(true);
    match (paused, is_paused) {
        (true, true) => bail!("Cluster is already paused"),
        (false, false) => bail!("Cluster is not paused"),
        _ => {}
    }
    let (verb, state) = if paused {
        ("pause", "paused")
    } else {
        ("resume", "resumed")
    };
    let leader = select::leader(&doc).map(|l| l.name.as_str());
    let urls = session.urls_from(&doc, leader);
    let body = json!({ "pause": if paused { json!(true) } else { Value::Null } });
    let (_, answer) = session
        .client
        .send_first(&urls, Method::PATCH, "/config", Some(&body))
        .await
        .map_err(|_| anyhow::anyhow!("Can not find accessible cluster member"))?;
    if !answer.is_success() {
        bail!(
            "{} failed, details: {}, {}",
            if paused { "Pause" } else { "Resume" },
            answer.status,
            answer.body_line()
        );
    }
    if args.wait {
        println!("'{verb}' request sent, waiting until it is recognized by all nodes");
        wait_for_pause(session, &doc, paused).await?;
    }
    println!("Success: cluster management is {state}");
    Ok(())
}

/// Polls every member's `GET /patroni` until each that answers reports `pause` as wanted.
async fn wait_for_pause(
    session: &Session,
    doc: &crate::api::ClusterDocument,
    paused: bool,
) -> anyhow::Result<()> {
    const LIMIT: Duration = Duration::from_secs(60);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let mut behind = Vec::new();
        for m in &doc.members {
            let base = crate::api::client::base_url(&m.api_url);
            if let Ok(status) = session.client.status_of(&base).await
                && status.pause.unwrap_or(false) != paused
            {
                behind.push(m.name.as_str());
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "not recognized after {} s by: {}",
                LIMIT.as_secs(),
                behind.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(set: &[&str], pg: &[&str]) -> EditConfigArgs {
        EditConfigArgs {
            cluster: None,
            quiet: false,
            set: set.iter().map(|s| s.to_string()).collect(),
            pg: pg.iter().map(|s| s.to_string()).collect(),
            apply: None,
            replace: None,
            force: true,
        }
    }

    #[test]
    fn settings_and_pg_shorthands_apply_in_order() {
        let before = config_object(json!({"ttl": 30, "postgresql": {"use_slots": true}}));
        let after = edited(
            &args(
                &["ttl=20", "loop_wait=null"],
                &["max_connections=150", "work_mem='4MB'"],
            ),
            &before,
        )
        .unwrap();
        assert_eq!(
            Value::Object(after),
            json!({"ttl": 20, "postgresql": {"use_slots": true,
                "parameters": {"max_connections": 150, "work_mem": "4MB"}}})
        );
        assert!(edited(&args(&["ttl"], &[]), &before).is_err());
    }

    #[test]
    fn a_refused_configuration_is_one_line() {
        let bad = Answer {
            status: 400,
            body: "invalid configuration: loop_wait\n must be below ttl".into(),
        };
        assert_eq!(
            config_refusal(&bad),
            "invalid configuration: loop_wait must be below ttl"
        );
        let other = Answer {
            status: 503,
            body: "no leader".into(),
        };
        assert_eq!(
            config_refusal(&other),
            "Config modification failed, details: 503, no leader"
        );
    }
}
