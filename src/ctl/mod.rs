//! `tribunectl`: the operators' CLI, with patronictl's verbs and table layouts. It talks only to
//! the REST API (never to Raft directly), trying the next member when one is down.

mod table;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::api::client::{Client, ClientSecurity};

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
    /// Do not verify the members' TLS certificates (as `ctl.insecure`).
    #[arg(short = 'k', long = "insecure", global = true)]
    pub insecure: bool,
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
    /// Print the version of tribunectl.
    Version,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    Yaml,
    Yml,
}

/// A client of the members' REST API: the URLs are `--url`, else the config file's
/// `restapi.connect_address`; TLS and credentials come from the config file's `ctl` section
/// (with patronictl's fallbacks to `restapi`), and `-k` turns certificate checks off.
fn client(cli: &Cli) -> anyhow::Result<Client> {
    let config = match &cli.config_file {
        Some(path) => Some(
            crate::config::Config::load(Some(path))
                .with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let urls = match &config {
        _ if !cli.url.is_empty() => cli.url.clone(),
        Some(config) => vec![config.restapi.api_url()],
        None => bail!("no cluster to talk to: give --url http://host:8008 or -c CONFIG.yml"),
    };
    let mut security = config
        .as_ref()
        .map(ClientSecurity::from_config)
        .unwrap_or_default();
    security.insecure |= cli.insecure;
    Ok(Client::new(&urls, Duration::from_secs(5), &security)?)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Version => {
            println!("tribunectl version {}", crate::VERSION);
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
            let client = client(&cli)?;
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
