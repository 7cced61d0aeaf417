//! `tribunectl`: the operators' CLI, with patronictl's verbs and table layouts. It talks only to
//! the REST API (never to Raft directly), trying the next member when one is down.
//!
//! - `table`: patronictl's `list` layouts.
//! - [`haproxy`]: the HAProxy configuration `haproxy-config` prints.

pub mod haproxy;
mod members;
mod table;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::api::client::Client;

#[derive(Parser, Debug)]
#[command(
    name = "tribunectl",
    version,
    about = "Operate a Tribune cluster (patronictl's verbs)"
)]
pub struct Cli {
    /// A Patroni/Tribune configuration file: the members' REST addresses come from it.
    #[arg(
        short = 'c',
        long = "config-file",
        env = "PATRONICTL_CONFIG_FILE",
        global = true
    )]
    pub config_file: Option<PathBuf>,
    /// REST API URL of a member (repeatable); tried in order.
    #[arg(
        long = "url",
        env = "TRIBUNECTL_URL",
        global = true,
        value_delimiter = ','
    )]
    pub url: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the members of the cluster (patronictl list).
    List {
        /// Cluster name (defaults to the configuration's scope).
        cluster: Option<String>,
        /// Show every optional column.
        #[arg(short = 'e', long)]
        extended: bool,
        /// Print a timestamp before the table.
        #[arg(short = 't', long)]
        timestamp: bool,
        #[arg(short = 'f', long, value_enum, default_value_t = Format::Pretty)]
        format: Format,
        /// Repeat every 2 seconds.
        #[arg(short = 'W')]
        watch_default: bool,
        /// Repeat every SEC seconds.
        #[arg(short = 'w', long = "watch", value_name = "SEC")]
        watch: Option<f64>,
    },
    /// Print an HAProxy configuration for the cluster's members: a primary (read-write) and a
    /// replicas (read-only) listener, each server checked on its member's REST API.
    HaproxyConfig {
        /// Port of the listener that reaches the primary.
        #[arg(long, default_value_t = 5000, value_parser = listener_port)]
        primary_port: u16,
        /// Port of the listener that reaches a streaming standby.
        #[arg(long, default_value_t = 5001, value_parser = listener_port)]
        replica_port: u16,
        /// Address every listener binds (loopback unless clients are elsewhere).
        #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Port of HAProxy's stats page; none when omitted.
        #[arg(long, value_parser = listener_port)]
        stats_port: Option<u16>,
    },
    /// Print the version of tribunectl.
    Version,
    /// The Raft membership: list, add or remove a member (Tribune's own; not in patronictl).
    Members(members::MembersArgs),
}

/// A TCP port a listener can bind: 1-65535.
fn listener_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("'{text}' is not a port (1-65535)")),
        Ok(port) => Ok(port),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
}

/// The REST URLs to try: `--url`, else the config file's `restapi.connect_address`.
fn urls(cli: &Cli) -> anyhow::Result<Vec<String>> {
    if !cli.url.is_empty() {
        return Ok(cli.url.clone());
    }
    let Some(path) = &cli.config_file else {
        bail!("no cluster to talk to: give --url http://host:8008 or -c CONFIG.yml");
    };
    let config = crate::config::Config::load(Some(path))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(vec![config.restapi.api_url()])
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Version => {
            println!("tribunectl version {}", crate::VERSION);
            Ok(())
        }
        Command::Members(args) => members::run(&urls(&cli)?, args).await,
        Command::HaproxyConfig {
            primary_port,
            replica_port,
            bind,
            stats_port,
        } => {
            let listeners = haproxy::Listeners {
                bind: *bind,
                primary_port: *primary_port,
                replica_port: *replica_port,
                stats_port: *stats_port,
            };
            listeners.check()?;
            let client = Client::new(&urls(&cli)?, Duration::from_secs(5))?;
            let doc = client
                .cluster()
                .await
                .context("reading the members from GET /cluster")?;
            let generated = haproxy::render(&doc, &listeners)?;
            for reason in &generated.left_out {
                eprintln!("tribunectl: left out {reason}");
            }
            print!("{}", generated.text);
            Ok(())
        }
        Command::List {
            cluster,
            extended,
            timestamp,
            format,
            watch_default,
            watch,
        } => {
            let client = Client::new(&urls(&cli)?, Duration::from_secs(5))?;
            let interval = watch.or(watch_default.then_some(2.0));
            loop {
                let doc = client.cluster().await?;
                if let Some(name) = cluster
                    && *name != doc.scope
                {
                    bail!("cluster '{name}' not found (this is '{}')", doc.scope);
                }
                if *timestamp {
                    println!("{}", crate::api::documents_now());
                }
                print!("{}", table::render_list(&doc, *format, *extended)?);
                match interval {
                    Some(sec) if sec > 0.0 => {
                        tokio::time::sleep(Duration::from_secs_f64(sec)).await
                    }
                    _ => return Ok(()),
                }
            }
        }
    }
}
