//! `tribunectl`: the operators' CLI, with patronictl's verbs, options, questions, messages and
//! table layouts. It talks only to the REST API (never to Raft directly), trying the next
//! member when one is down.
//!
//! # Layout
//!
//! - [`session`]: finding the cluster (`-c`, `--url`, environment) and the REST client.
//! - [`list`]: `list`, `topology`; [`table`] and [`topology`] draw them.
//! - [`switchover`]: `switchover`, `failover`.
//! - [`actions`]: per-member requests: `restart`, `reload`, `reinit`, `flush`.
//! - [`dynamic`]: the dynamic configuration: `show-config`, `edit-config`, `pause`, `resume`;
//!   [`edit`] (assignments, merge patches), [`diff`] and [`yaml`] are its pure parts.
//! - [`info`]: `history`, `dsn`, `version`.
//! - [`haproxy`]: the HAProxy configuration `haproxy-config` prints (one cluster, or a fleet).
//! - [`fleet`]: `fleet`, one table over many clusters (Tribune's own; not in patronictl).
//! - [`remove`]: `remove`, with patronictl's three questions.
//! - [`standby`]: `promote-cluster`, `demote-cluster` (the `standby_cluster` key).
//! - [`upgrade`]: `upgrade --bin-dir`, a major-version upgrade of the whole cluster (Tribune's
//!   own).
//! - [`select`] (members by role and name, candidates), [`prompt`] (questions),
//!   [`schedule`] (`--scheduled` times, timestamps).
//!
//! Errors end the command with one line, `Error: <text>` on stderr, and exit code 1 (the
//! binary prints them); a refused command changes nothing.

pub mod actions;
pub mod diff;
pub mod dynamic;
pub mod edit;
pub mod fleet;
pub mod haproxy;
pub mod info;
pub mod list;
mod members;
pub mod prompt;
pub mod remove;
pub mod schedule;
pub mod select;
pub mod session;
pub mod standby;
pub mod switchover;
pub mod table;
pub mod topology;
pub mod upgrade;
pub mod yaml;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use prompt::Terminal;
use session::Session;

#[derive(Parser, Debug)]
#[command(
    name = "tribunectl",
    version,
    about = "Operate a Tribune cluster (patronictl's verbs)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: session::Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the members of the cluster.
    List(list::ListArgs),
    /// The members as a replication tree.
    Topology(list::TopologyArgs),
    /// Hand the leader role over to another member, now or at a scheduled time.
    Switchover(switchover::SwitchoverArgs),
    /// Promote a member, with or without a healthy leader.
    Failover(switchover::FailoverArgs),
    /// Restart PostgreSQL on members, now or at a scheduled time.
    Restart(actions::RestartArgs),
    /// Reload the agents' local configuration and PostgreSQL's.
    Reload(actions::ReloadArgs),
    /// Set a replica's data aside and clone it again.
    Reinit(actions::ReinitArgs),
    /// Withdraw scheduled restarts or the scheduled switchover.
    Flush(actions::FlushArgs),
    /// Put the cluster in maintenance mode: no automatic failover.
    Pause(dynamic::PauseArgs),
    /// Leave maintenance mode.
    Resume(dynamic::PauseArgs),
    /// Print the dynamic configuration.
    ShowConfig(dynamic::ShowConfigArgs),
    /// Change the dynamic configuration.
    EditConfig(dynamic::EditConfigArgs),
    /// The timeline switches (failovers and switchovers).
    History(info::HistoryArgs),
    /// A member's connection string.
    Dsn(info::DsnArgs),
    /// The version of tribunectl, and of the members of CLUSTER.
    Version(info::VersionArgs),
    /// Wipe the cluster's state (after typing its name, as patronictl asks).
    Remove(remove::RemoveArgs),
    /// Make a standby cluster a normal one: its standby leader becomes the primary.
    PromoteCluster(standby::PromoteClusterArgs),
    /// Make the cluster a standby cluster of a remote primary.
    DemoteCluster(standby::DemoteClusterArgs),
    /// The Raft membership: list, add or remove a member (Tribune's own; not in patronictl).
    Members(members::MembersArgs),
    /// Upgrade the whole cluster to a new PostgreSQL major version (pg_upgrade --link on the
    /// primary, the standbys copied afresh from it; Tribune's own, not in patronictl).
    Upgrade(upgrade::UpgradeArgs),
    /// One table over many clusters: primary, healthy members, synchronous state, largest lag,
    /// last failover, pause (Tribune's own; not in patronictl).
    Fleet(fleet::FleetArgs),
    /// Print an HAProxy configuration for the cluster's members: a primary (read-write) and a
    /// replicas (read-only) listener, each server checked on its member's REST API. With
    /// --fleet, one configuration for many clusters.
    HaproxyConfig {
        /// Port of the listener that reaches the primary (with --fleet: the first cluster's).
        #[arg(long, default_value_t = 5000, value_parser = listener_port)]
        primary_port: u16,
        /// Port of the listener that reaches a streaming standby (with --fleet: the first
        /// cluster's).
        #[arg(long, default_value_t = 5001, value_parser = listener_port)]
        replica_port: u16,
        /// Address every listener binds (loopback unless clients are elsewhere).
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port of HAProxy's stats page; none when omitted.
        #[arg(long, value_parser = listener_port)]
        stats_port: Option<u16>,
        /// A listener pair for each of these clusters (as `tribunectl fleet` takes them: URLs,
        /// configuration files, directories, list files). Cluster N, counted from 0 in the
        /// order given, listens on --primary-port + N * --port-step and --replica-port + N *
        /// --port-step: add new clusters at the end so that no other cluster's ports move.
        #[arg(long, value_name = "CLUSTERS", num_args = 1..)]
        fleet: Vec<String>,
        /// With --fleet: how far apart two clusters' ports are.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..), requires = "fleet")]
        port_step: u16,
        /// With --fleet: write the configuration even if some clusters cannot be read (their
        /// ports stay reserved); without it nothing is written then.
        #[arg(long, requires = "fleet")]
        skip_unreachable: bool,
        /// With --fleet: seconds every cluster has to answer.
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 5.0,
            requires = "fleet"
        )]
        timeout: f64,
    },
}

/// A TCP port a listener can bind: 1-65535.
fn listener_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{text}' is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

/// Output formats of `list` and `history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let open = || Session::open(&cli.global);
    let terminal = Terminal::stdio;
    match &cli.command {
        Command::List(args) => list::list(&mut open()?, args).await,
        Command::Topology(args) => list::topology(&mut open()?, args).await,
        Command::Switchover(args) => {
            switchover::switchover(&mut open()?, args, &mut terminal()).await
        }
        Command::Failover(args) => switchover::failover(&mut open()?, args, &mut terminal()).await,
        Command::Restart(args) => actions::restart(&mut open()?, args, &mut terminal()).await,
        Command::Reload(args) => actions::reload(&mut open()?, args, &mut terminal()).await,
        Command::Reinit(args) => actions::reinit(&mut open()?, args, &mut terminal()).await,
        Command::Flush(args) => actions::flush(&mut open()?, args, &mut terminal()).await,
        Command::Pause(args) => dynamic::toggle_pause(&mut open()?, args, true).await,
        Command::Resume(args) => dynamic::toggle_pause(&mut open()?, args, false).await,
        Command::ShowConfig(args) => dynamic::show_config(&mut open()?, args).await,
        Command::EditConfig(args) => {
            dynamic::edit_config(&mut open()?, args, &mut terminal()).await
        }
        Command::History(args) => info::history(&mut open()?, args).await,
        Command::Dsn(args) => info::dsn(&mut open()?, args).await,
        Command::Version(args) => match &args.cluster {
            Some(_) => info::version(Some(&mut open()?), args).await,
            None => info::version(None, args).await,
        },
        Command::Remove(args) => remove::remove(&mut open()?, args, &mut terminal()).await,
        Command::PromoteCluster(args) => {
            standby::promote_cluster(&mut open()?, args, &mut terminal()).await
        }
        Command::DemoteCluster(args) => {
            standby::demote_cluster(&mut open()?, args, &mut terminal()).await
        }
        Command::Members(args) => members::run(open()?.urls(), args).await,
        Command::Upgrade(args) => upgrade::upgrade(&mut open()?, args, &mut terminal()).await,
        Command::Fleet(args) => fleet::fleet(&cli.global, args).await,
        Command::HaproxyConfig {
            primary_port,
            replica_port,
            bind,
            stats_port,
            fleet: sources,
            port_step,
            skip_unreachable,
            timeout,
        } if !sources.is_empty() => {
            let listeners = haproxy::FleetListeners {
                bind: *bind,
                primary_port: *primary_port,
                replica_port: *replica_port,
                port_step: *port_step,
                stats_port: *stats_port,
            };
            let timeout = std::time::Duration::try_from_secs_f64(*timeout)
                .ok()
                .filter(|t| !t.is_zero())
                .context("--timeout must be a positive number of seconds")?;
            let targets = fleet::targets(sources, &cli.global)?;
            let docs = fleet::cluster_documents(&targets, timeout).await?;
            let clusters: Vec<haproxy::FleetCluster> = targets
                .iter()
                .zip(docs)
                .map(|(target, doc)| haproxy::FleetCluster {
                    label: target.label.clone(),
                    doc,
                })
                .collect();
            let generated = haproxy::render_fleet(&clusters, &listeners, *skip_unreachable)?;
            for reason in &generated.left_out {
                eprintln!("tribunectl: left out {reason}");
            }
            print!("{}", generated.text);
            Ok(())
        }
        Command::HaproxyConfig {
            primary_port,
            replica_port,
            bind,
            stats_port,
            ..
        } => {
            let listeners = haproxy::Listeners {
                bind: *bind,
                primary_port: *primary_port,
                replica_port: *replica_port,
                stats_port: *stats_port,
            };
            listeners.check()?;
            let doc = open()?
                .cluster(None)
                .await
                .context("reading the members from GET /cluster")?;
            let generated = haproxy::render(&doc, &listeners)?;
            for reason in &generated.left_out {
                eprintln!("tribunectl: left out {reason}");
            }
            print!("{}", generated.text);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flush_takes_members_then_the_target() {
        let flush = |words: &[&str]| match Cli::try_parse_from(words).map(|c| c.command) {
            Ok(Command::Flush(args)) => args,
            other => panic!("{other:?}"),
        };
        let args = flush(&["tribunectl", "flush", "c", "m1", "m2", "restart"]);
        let (members, target) = args.members_and_target().unwrap();
        assert_eq!(members, ["m1", "m2"]);
        assert_eq!(target, actions::FlushTarget::Restart);
        let args = flush(&["tribunectl", "flush", "c", "switchover", "--force"]);
        let (members, target) = args.members_and_target().unwrap();
        assert!(members.is_empty() && args.force);
        assert_eq!(target, actions::FlushTarget::Switchover);
        let args = flush(&["tribunectl", "flush", "c", "m1", "now"]);
        assert_eq!(
            args.members_and_target().unwrap_err().to_string(),
            "'now' is not something to flush: restart or switchover"
        );
        assert!(Cli::try_parse_from(["tribunectl", "flush", "c"]).is_err());
    }

    #[test]
    fn global_options_go_before_or_after_the_verb() {
        let cli = Cli::try_parse_from([
            "tribunectl",
            "switchover",
            "--primary",
            "a",
            "--url",
            "h1:8008,h2:8008",
            "-k",
        ])
        .unwrap();
        assert_eq!(cli.global.url, ["h1:8008", "h2:8008"]);
        assert!(cli.global.insecure);
        assert!(matches!(cli.command, Command::Switchover(a) if a.leader.as_deref() == Some("a")));
    }
}
