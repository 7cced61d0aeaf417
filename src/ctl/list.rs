//! `list` and `topology`: the member table, once or every few seconds (`-W`, `-w SEC`).

use std::time::Duration;

use clap::Args;

use super::session::Session;
use super::{Format, schedule, table};
use crate::api::ClusterDocument;
use crate::types::UnixMillis;

/// How often to repeat: `-W` is every 2 seconds, `-w SEC` every SEC.
#[derive(Args, Debug, Clone, Default)]
pub struct Watch {
    /// Repeat every 2 seconds.
    #[arg(short = 'W')]
    pub every_two: bool,
    /// Repeat every SEC seconds.
    #[arg(short = 'w', long = "watch", value_name = "SEC")]
    pub seconds: Option<f64>,
}

impl Watch {
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.seconds
            .or(self.every_two.then_some(2.0))
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
    }
}

#[derive(Args, Debug, Clone)]
pub struct ListArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// Show every optional column.
    #[arg(short = 'e', long)]
    pub extended: bool,
    /// Print a timestamp before the table.
    #[arg(short = 't', long)]
    pub timestamp: bool,
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    #[command(flatten)]
    pub watch: Watch,
}

#[derive(Args, Debug, Clone)]
pub struct TopologyArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    #[command(flatten)]
    pub watch: Watch,
}

/// The member table as the action verbs show it before they act.
pub fn print_members(doc: &ClusterDocument) -> anyhow::Result<()> {
    print!("{}", table::render_list(doc, Format::Pretty, false)?);
    Ok(())
}

async fn repeat(
    session: &mut Session,
    cluster: Option<&str>,
    watch: &Watch,
    mut show: impl FnMut(&ClusterDocument) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    loop {
        let doc = session.cluster(cluster).await?;
        print!("{}", show(&doc)?);
        match watch.interval() {
            Some(interval) => tokio::time::sleep(interval).await,
            None => return Ok(()),
        }
    }
}

pub async fn list(session: &mut Session, args: &ListArgs) -> anyhow::Result<()> {
    repeat(session, args.cluster.as_deref(), &args.watch, |doc| {
        let stamp = if args.timestamp {
            schedule::local_timestamp(UnixMillis::now(), 0) + "\n"
        } else {
            String::new()
        };
        Ok(stamp + &table::render_list(doc, args.format, args.extended)?)
    })
    .await
}

pub async fn topology(session: &mut Session, args: &TopologyArgs) -> anyhow::Result<()> {
    repeat(session, args.cluster.as_deref(), &args.watch, |doc| {
        Ok(table::render_topology(doc))
    })
    .await
}
