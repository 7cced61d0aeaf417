//! `remove CLUSTER`: wipe the cluster's replicated state, after the three answers patronictl
//! asks for (the cluster's name, "Yes I am aware", and the leader's name when there is one).
//! The server (`DELETE /cluster`) checks the name and the leader again and leaves a tombstone:
//! the agents stop managing the databases, which keep running as they are. Tribune keeps its
//! state in the agents, so unlike patronictl this asks the running agents, not a DCS.

use anyhow::bail;
use clap::Args;
use reqwest::Method;
use serde_json::json;

use super::list::print_members;
use super::prompt::Terminal;
use super::select;
use super::session::Session;

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The cluster to remove: its name must be typed again to confirm.
    pub cluster: String,
}

pub async fn remove(
    session: &mut Session,
    args: &RemoveArgs,
    terminal: &mut Terminal,
) -> anyhow::Result<()> {
    let doc = session.cluster(Some(&args.cluster)).await?;
    print_members(&doc)?;
    let name = terminal.ask("Please confirm the cluster name to remove", "")?;
    if name != args.cluster {
        bail!("Cluster names specified do not match");
    }
    let aware = terminal.ask(
        &format!(
            "You are about to remove all information in DCS for {}, please type: \"Yes I am aware\"",
            args.cluster
        ),
        "",
    )?;
    if aware != "Yes I am aware" {
        bail!("You did not exactly type \"Yes I am aware\"");
    }
    let leader = match select::leader(&doc) {
        Some(current) => {
            let typed = terminal.ask(
                "This cluster currently is healthy. Please specify the leader name to continue",
                "",
            )?;
            if typed != current.name {
                bail!("You did not specify the current leader of the cluster");
            }
            Some(typed)
        }
        None => None,
    };
    let urls = session.urls_from(&doc, leader.as_deref());
    let body = json!({ "scope": args.cluster, "leader": leader });
    let (_, answer) = session
        .client
        .send_first(&urls, Method::DELETE, "/cluster", Some(&body))
        .await?;
    if !answer.is_success() {
        bail!(
            "Remove failed, details: {}, {}",
            answer.status,
            answer.body_line()
        );
    }
    println!(
        "Cluster {} removed: the agents no longer manage its databases; stop them and clear \
         their raft.data_dir before starting a new cluster",
        args.cluster
    );
    Ok(())
}
