//! `tribunectl members list|add NAME RAFT_ADDR|remove NAME`: the Raft membership, through the
//! REST API's `/members` endpoints (Tribune's own; patronictl has no such verb).
//!
//! `add` adds the agent at RAFT_ADDR, which must already run with `partner_addrs` listing the
//! members; `remove` asks for confirmation unless `--force`, as patronictl does before anything
//! it cannot undo (a removed node's id is retired for good). Whichever member answers first
//! carries the request to the Raft leader. Refusals come back as the server's one line.
//!
//! Must not: talk to anything but the members' REST APIs.

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::api::MembersDocument;
use crate::api::client::base_url;

/// A membership change may wait for a new node to catch up: longer than the server's limit.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct MembersArgs {
    #[command(subcommand)]
    pub command: MembersCommand,
}

#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// Each member's Raft node: address, node id, voter or learner, reachable, last reported.
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Pretty)]
        format: ListFormat,
    },
    /// Add the agent at RAFT_ADDR, named NAME, as a Raft voter. Start it first, with
    /// partner_addrs listing the members; a database node then joins as a standby.
    Add {
        name: String,
        /// Its raft.self_addr, exactly as it advertises it (host:port).
        raft_addr: String,
    },
    /// Remove NAME from the Raft membership and retire its node id; then stop its agent.
    Remove {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Pretty,
    Json,
}

pub async fn run(urls: &[String], args: &MembersArgs) -> anyhow::Result<()> {
    match &args.command {
        MembersCommand::List { format } => {
            let (_, body) =
                call(urls, reqwest::Method::GET, "/members", None, READ_TIMEOUT).await?;
            let doc: MembersDocument =
                serde_json::from_str(&body).context("reading the answer of GET /members")?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
                ListFormat::Pretty => print!("{}", render(&doc)),
            }
            Ok(())
        }
        MembersCommand::Add { name, raft_addr } => {
            let body = serde_json::json!({"name": name, "raft_addr": raft_addr});
            let (_, text) = call(
                urls,
                reqwest::Method::POST,
                "/members",
                Some(body),
                CHANGE_TIMEOUT,
            )
            .await?;
            println!("{text}");
            Ok(())
        }
        MembersCommand::Remove { name, force } => {
            if !force {
                let question = format!(
                    "Are you sure you want to remove member {name} from the Raft cluster? Its \
                     node id is retired and cannot rejoin. [y/N]: "
                );
                if !confirm(&question)? {
                    bail!("aborted: {name} was not removed");
                }
            }
            let path = format!("/members/{name}");
            let (_, text) =
                call(urls, reqwest::Method::DELETE, &path, None, CHANGE_TIMEOUT).await?;
            println!("{text}");
            Ok(())
        }
    }
}

/// Ask on the terminal; anything but y/yes (or no answer at all) is a no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `method path` on the first member that answers; an answer other than 2xx is the error, in
/// the server's words.
async fn call(
    urls: &[String],
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
    timeout: Duration,
) -> anyhow::Result<(u16, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .build()?;
    let mut failures = Vec::new();
    for url in urls {
        let url = format!("{}{path}", base_url(url));
        let mut request = http.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let text = text.trim().to_owned();
                if !(200..300).contains(&status) {
                    bail!("{text} (HTTP {status})");
                }
                return Ok((status, text));
            }
            // A request that was sent may have been carried out: never send it twice.
            Err(err) if !err.is_connect() => bail!("{url}: {err}"),
            Err(err) => failures.push(format!("{url}: {err}")),
        }
    }
    bail!("no member answered: {}", failures.join("; "))
}

/// A bordered table, as patronictl draws its own.
fn render(doc: &MembersDocument) -> String {
    let header = [
        "Member",
        "Raft address",
        "Node id",
        "Raft role",
        "Role",
        "Reachable",
        "Last reported",
    ];
    let rows: Vec<[String; 7]> = doc
        .members
        .iter()
        .map(|m| {
            [
                m.name.clone().unwrap_or_else(|| "-".into()),
                m.raft_addr.clone(),
                m.node_id.to_string(),
                m.raft_role.clone(),
                m.role.clone().unwrap_or_default(),
                match m.reachable {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "unknown".into(),
                },
                m.last_reported.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!(" {c:<w$} "))
            .collect();
        format!("|{}|\n", cells.join("|"))
    };
    let rule: String = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let title = format!(" Raft members ({}) ", doc.scope);
    let top = match rule.get(1 + title.len()..) {
        Some(rest) if rule.len() > title.len() + 3 => format!("+{title}{rest}"),
        _ => rule.clone(),
    };
    let mut out = top;
    out.push_str(&line(&header));
    out.push_str(&rule);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out.push_str(&rule);
    let leader = doc.raft_leader.as_deref().unwrap_or("none (no quorum?)");
    out.push_str(&format!("Raft leader: {leader}"));
    if doc.change_in_progress {
        out.push_str("; a membership change is in progress");
    }
    out.push('\n');
    if !doc.retired.is_empty() {
        let retired: Vec<String> = doc
            .retired
            .iter()
            .map(|r| match &r.name {
                Some(name) => format!("{} ({name})", r.raft_addr),
                None => r.raft_addr.clone(),
            })
            .collect();
        out.push_str(&format!("Retired: {}\n", retired.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MembersRow, RetiredRow};

    #[test]
    fn the_table_lists_every_member_and_the_retired_addresses() {
        let doc = MembersDocument {
            scope: "demo".into(),
            raft_leader: Some("a".into()),
            change_in_progress: false,
            members: vec![
                MembersRow {
                    name: Some("a".into()),
                    raft_addr: "10.0.0.1:2222".into(),
                    node_id: 1,
                    raft_role: "voter".into(),
                    role: Some("primary".into()),
                    reachable: Some(true),
                    last_ack_ms: Some(0),
                    last_reported: Some("2024-01-01T00:00:00Z".into()),
                },
                MembersRow {
                    name: None,
                    raft_addr: "10.0.0.4:2222".into(),
                    node_id: 4,
                    raft_role: "learner".into(),
                    ..Default::default()
                },
            ],
            retired: vec![RetiredRow {
                node_id: 9,
                raft_addr: "10.0.0.9:2222".into(),
                name: Some("old".into()),
                retired_at: String::new(),
            }],
        };
        let table = render(&doc);
        let expected = "\
+ Raft members (demo) ---+---------+-----------+---------+-----------+----------------------+
| Member | Raft address  | Node id | Raft role | Role    | Reachable | Last reported        |
+--------+---------------+---------+-----------+---------+-----------+----------------------+
| a      | 10.0.0.1:2222 | 1       | voter     | primary | yes       | 2024-01-01T00:00:00Z |
| -      | 10.0.0.4:2222 | 4       | learner   |         | unknown   |                      |
+--------+---------------+---------+-----------+---------+-----------+----------------------+
Raft leader: a
Retired: 10.0.0.9:2222 (old)
";
        assert_eq!(table, expected);
    }
}
