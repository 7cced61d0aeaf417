//! `tribunectl fleet`: one table over many clusters (a sharded database's storage units, a
//! team's hundreds of clusters): per cluster its primary, how many members are healthy of how
//! many, the synchronous replication state, the largest lag, the last change of primary and
//! whether it is paused.
//!
//! Owns: reading the list of clusters ([`targets`]: REST URLs, configuration files, a
//! directory of them, a file listing URLs), asking every cluster at once with one deadline
//! ([`survey`]), turning each cluster's answers into a row ([`FleetRow::from_snapshot`], pure)
//! and printing the rows ([`render`], pure). A cluster that does not answer in time is a row
//! saying so, never a wait for it.
//!
//! Each cluster is asked through one of its members: `GET /cluster` from the first of its URLs
//! that answers, then `GET /members` (who the Raft leader hears), `/history` (the last change
//! of primary) and `/config` (the synchronous mode) from that same member, one after another on
//! one connection, so that a fleet costs one socket per cluster.
//!
//! Must not: change anything on any cluster (only `GET`s), or let one slow cluster hold the
//! table past the deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::list::Watch;
use super::session::{Global, Settings};
use super::{Format, schedule, table};
use crate::api::client::{Client, ClientOptions, base_url};
use crate::api::{ClusterDocument, MembersDocument};
use crate::config::{DynamicConfig, SynchronousMode};
use crate::types::UnixMillis;

#[derive(Args, Debug, Clone)]
pub struct FleetArgs {
    /// The clusters: a member's REST URL (several members of one cluster joined by commas), a
    /// node's configuration file, a directory of configuration files (files with the same
    /// `scope` are one cluster), or a file listing clusters, one line of URLs each.
    #[arg(value_name = "CLUSTERS", required = true)]
    pub sources: Vec<String>,
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    /// Seconds every cluster has to answer; a cluster that has not answered by then is shown
    /// unreachable.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.5, value_parser = deadline)]
    pub timeout: f64,
    /// Print a timestamp before the table.
    #[arg(short = 't', long)]
    pub timestamp: bool,
    #[command(flatten)]
    pub watch: Watch,
}

fn deadline(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds (0 to 3600)")),
    }
}

/// One cluster to ask: the URLs of members to try in order, and how to reach them.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What the row says until the cluster answers: the `scope` of its configuration files,
    /// else its first URL.
    pub label: String,
    pub urls: Vec<String>,
    /// The TLS and authentication settings of its configuration file (`ctl`, `restapi`), or the
    /// command line's.
    pub settings: Settings,
}

/// The clusters named by `sources`, in the order given (files of a directory by name); files
/// that name the same `scope` are one cluster whose members are tried in turn.
pub fn targets(sources: &[String], global: &Global) -> anyhow::Result<Vec<Target>> {
    let mut out: Vec<Target> = Vec::new();
    let mut by_scope: BTreeMap<String, usize> = BTreeMap::new();
    let base = Settings {
        insecure: global.insecure,
        ..Settings::default()
    };
    for source in sources {
        let path = Path::new(source);
        if path.is_dir() {
            let files = config_files(path)?;
            if files.is_empty() {
                bail!("{source}: the directory holds no .yml or .yaml file");
            }
            for file in files {
                add_config(&mut out, &mut by_scope, &file, global)?;
            }
        } else if is_yaml(path) {
            add_config(&mut out, &mut by_scope, path, global)?;
        } else if path.is_file() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the cluster list {source}"))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let target =
                    url_target(line, &base).with_context(|| format!("{source} line {}", n + 1))?;
                out.push(target);
            }
        } else if source.split(',').all(|u| rest_url(u.trim()).is_some()) {
            out.push(url_target(source, &base)?);
        } else {
            bail!(
                "'{source}' is neither a REST URL (http://host:8008, host:8008) nor an existing \
                 file or directory"
            );
        }
    }
    if out.is_empty() {
        bail!("no cluster to ask: the sources given list none");
    }
    Ok(out)
}

/// A member's REST URL as [`base_url`] gives it: `http(s)://host[:port]`, or `host:port`
/// (http); `None` for anything else.
fn rest_url(text: &str) -> Option<String> {
    let candidate = if text.contains("://") {
        text.to_owned()
    } else {
        // Without a scheme only `host:port`: a path must not pass for a host name.
        let (host, port) = text.rsplit_once(':')?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
            return None;
        }
        format!("http://{text}")
    };
    let url = reqwest::Url::parse(&candidate).ok()?;
    let usable = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.query().is_none();
    usable.then(|| base_url(&candidate))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    )
}

/// `URL[,URL...]`: the members of one cluster.
fn url_target(line: &str, settings: &Settings) -> anyhow::Result<Target> {
    let urls = line
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            rest_url(u).ok_or_else(|| {
                anyhow::anyhow!("'{u}' is not a REST URL (http://host:8008, host:8008)")
            })
        })
        .collect::<anyhow::Result<Vec<String>>>()?;
    let Some(first) = urls.first() else {
        bail!("no URL in '{line}'");
    };
    Ok(Target {
        label: first.clone(),
        urls,
        settings: settings.clone(),
    })
}

/// The `.yml`/`.yaml` files of `dir`, by name.
fn config_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_yaml(p))
        .collect();
    files.sort();
    Ok(files)
}

fn add_config(
    out: &mut Vec<Target>,
    by_scope: &mut BTreeMap<String, usize>,
    file: &Path,
    global: &Global,
) -> anyhow::Result<()> {
    let mut settings = Settings::read(file)?;
    settings.insecure |= global.insecure;
    let Some(scope) = settings.scope.clone() else {
        bail!("{} names no scope (the cluster's name)", file.display());
    };
    let Some(url) = settings.url.clone() else {
        bail!(
            "{} names no REST API (restapi.connect_address or restapi.listen)",
            file.display()
        );
    };
    match by_scope.get(&scope) {
        Some(&i) => {
            if !out[i].urls.contains(&url) {
                out[i].urls.push(url);
            }
        }
        None => {
            by_scope.insert(scope.clone(), out.len());
            out.push(Target {
                label: scope,
                urls: vec![url],
                settings,
            });
        }
    }
    Ok(())
}

/// What one cluster answered.
#[derive(Clone, Debug)]
pub enum Report {
    Answered(Box<Snapshot>),
    /// No member answered `GET /cluster` in time; why.
    Unreachable(String),
}

/// One cluster's documents; each but the first may be missing (the reason instead).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub cluster: ClusterDocument,
    pub members: Result<MembersDocument, String>,
    /// `GET /history` rows: `[timeline, lsn, reason, timestamp, new_leader]`.
    pub history: Result<Vec<Vec<Value>>, String>,
    pub config: Result<Value, String>,
}

/// The synchronous replication state of a cluster, as the row says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// A cluster without database members (witnesses only), or one that said nothing usable.
    NotApplicable,
    /// `synchronous_mode` off.
    Asynchronous,
    /// `synchronous_mode: on`: these standbys are synchronous.
    Synchronous(Vec<String>),
    /// `synchronous_mode: quorum`: any `k` of these standbys hold every commit.
    Quorum { k: u32, standbys: Vec<String> },
    /// Synchronous mode with no synchronous standby: commits are acknowledged without one.
    Degraded,
    /// Strict synchronous mode with no synchronous standby: commits wait.
    Blocked,
    /// The configuration could not be read.
    Unknown,
}

impl SyncState {
    pub fn text(&self) -> String {
        match self {
            SyncState::NotApplicable => String::new(),
            SyncState::Asynchronous => "async".to_owned(),
            SyncState::Synchronous(names) => format!("sync: {}", names.join(", ")),
            SyncState::Quorum { k, standbys } => {
                format!("quorum {k} of {}", standbys.join(", "))
            }
            SyncState::Degraded => "DEGRADED (async)".to_owned(),
            SyncState::Blocked => "BLOCKED (strict, no standby)".to_owned(),
            SyncState::Unknown => "unknown".to_owned(),
        }
    }

    /// Whether the cluster keeps every acknowledged commit on another member (or is not asked
    /// to).
    fn is_problem(&self) -> bool {
        matches!(self, SyncState::Degraded | SyncState::Blocked)
    }
}

/// The largest lag of a cluster's standbys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxLag {
    /// No standby.
    None,
    Bytes(u64),
    /// A standby's position is not known.
    Unknown,
}

/// One row of the fleet table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetRow {
    /// The cluster's scope, or the target's label when it did not answer.
    pub cluster: String,
    /// The member holding the leader lease, and whether it is a standby cluster's leader.
    pub primary: Option<(String, bool)>,
    pub healthy: usize,
    pub members: usize,
    /// Members with a database (not witnesses).
    pub databases: usize,
    pub sync: SyncState,
    pub max_lag: MaxLag,
    /// The last change of primary: when, and to whom (`/history`; empty on openGauss, whose
    /// timeline does not change).
    pub last_failover: Option<(String, String)>,
    pub paused: bool,
    /// Why the row is incomplete or the cluster is in trouble: unreachable, no Raft leader, a
    /// document that could not be read.
    pub problem: Option<String>,
}

/// A member counts as healthy when the Raft leader hears it (when that is known) and it is
/// running as its role should: the primary and witnesses `running`, standbys `streaming`.
fn is_healthy(m: &crate::api::ClusterMember, members: Option<&MembersDocument>) -> bool {
    let heard = members
        .and_then(|d| {
            d.members
                .iter()
                .find(|r| r.name.as_deref() == Some(m.name.as_str()))
        })
        .and_then(|r| r.reachable)
        .unwrap_or(true);
    let state_ok = match m.role.as_str() {
        "leader" | "primary" | "master" | "witness" => m.state == "running",
        _ => m.state == "streaming",
    };
    heard && state_ok
}

fn lag_bytes(v: &Option<Value>) -> Option<Result<u64, ()>> {
    match v.as_ref()? {
        Value::Number(n) => Some(n.as_u64().ok_or(())),
        _ => Some(Err(())),
    }
}

/// `2026-11-01T12:00:00.123+00:00` -> `2026-11-01 12:00:00+00:00`.
fn short_time(iso: &str) -> String {
    let (date_time, zone) = match iso.find(['+', 'Z']).or_else(|| {
        // A negative offset: the last '-' after the time.
        iso.rfind('-').filter(|&i| i > 10)
    }) {
        Some(i) => iso.split_at(i),
        None => (iso, ""),
    };
    let seconds = date_time.split('.').next().unwrap_or(date_time);
    format!("{}{zone}", seconds.replacen('T', " ", 1))
}

impl FleetRow {
    pub fn unreachable(label: &str, reason: &str) -> FleetRow {
        FleetRow {
            cluster: label.to_owned(),
            primary: None,
            healthy: 0,
            members: 0,
            databases: 0,
            sync: SyncState::NotApplicable,
            max_lag: MaxLag::None,
            last_failover: None,
            paused: false,
            problem: Some(format!("unreachable: {reason}")),
        }
    }

    pub fn from_snapshot(s: &Snapshot) -> FleetRow {
        let doc = &s.cluster;
        let members = s.members.as_ref().ok();
        let primary = doc
            .members
            .iter()
            .find(|m| matches!(m.role.as_str(), "leader" | "standby_leader"))
            .map(|m| (m.name.clone(), m.role == "standby_leader"));
        let databases: Vec<_> = doc.members.iter().filter(|m| m.role != "witness").collect();
        let mut problems = Vec::new();
        if let Some(d) = members
            && d.raft_leader.is_none()
        {
            problems.push("no Raft leader".to_owned());
        }
        if let Err(e) = &s.members {
            problems.push(format!("members unknown: {e}"));
        }
        let sync = if databases.is_empty() {
            SyncState::NotApplicable
        } else {
            match &s.config {
                Ok(config) => match DynamicConfig::from_json(config) {
                    Ok(dynamic) => sync_state(doc, &dynamic),
                    Err(e) => {
                        problems.push(format!("configuration unreadable: {e}"));
                        SyncState::Unknown
                    }
                },
                Err(e) => {
                    problems.push(format!("configuration unknown: {e}"));
                    SyncState::Unknown
                }
            }
        };
        let mut max_lag = MaxLag::None;
        for m in databases.iter().filter(|m| !m.role.contains("leader")) {
            max_lag = match (max_lag, lag_bytes(&m.lag)) {
                (MaxLag::Unknown, _) | (_, Some(Err(()))) => MaxLag::Unknown,
                (MaxLag::None, Some(Ok(b))) => MaxLag::Bytes(b),
                (MaxLag::Bytes(a), Some(Ok(b))) => MaxLag::Bytes(a.max(b)),
                (other, None) => other,
            };
        }
        let last_failover = match &s.history {
            Ok(rows) => rows.last().map(|row| {
                let text = |i: usize| row.get(i).and_then(Value::as_str).unwrap_or_default();
                (short_time(text(3)), text(4).to_owned())
            }),
            Err(e) => {
                problems.push(format!("history unknown: {e}"));
                None
            }
        };
        FleetRow {
            cluster: doc.scope.clone(),
            primary,
            healthy: doc
                .members
                .iter()
                .filter(|m| is_healthy(m, members))
                .count(),
            members: doc.members.len(),
            databases: databases.len(),
            sync,
            max_lag,
            last_failover,
            paused: doc.pause == Some(true),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }

    /// Whether an operator should look at this cluster.
    pub fn needs_attention(&self) -> bool {
        self.problem.is_some()
            || (self.databases > 0 && self.primary.is_none())
            || self.healthy < self.members
            || self.sync.is_problem()
    }
}

fn sync_state(doc: &ClusterDocument, dynamic: &DynamicConfig) -> SyncState {
    let named = |role: &str| -> Vec<String> {
        doc.members
            .iter()
            .filter(|m| m.role == role)
            .map(|m| m.name.clone())
            .collect()
    };
    let standbys = match dynamic.synchronous_mode {
        SynchronousMode::Off => return SyncState::Asynchronous,
        SynchronousMode::On => named("sync_standby"),
        SynchronousMode::Quorum => named("quorum_standby"),
    };
    if dynamic.standby_cluster.is_some() {
        // Synchronous mode is not managed in a standby cluster: nobody writes locally.
        return SyncState::Asynchronous;
    }
    match (standbys.is_empty(), dynamic.synchronous_mode) {
        (true, _) if dynamic.synchronous_mode_strict => SyncState::Blocked,
        (true, _) => SyncState::Degraded,
        (false, SynchronousMode::Quorum) => SyncState::Quorum {
            k: dynamic.synchronous_node_count,
            standbys,
        },
        (false, _) => SyncState::Synchronous(standbys),
    }
}

const COLUMNS: [&str; 9] = [
    "Cluster",
    "Primary",
    "Healthy",
    "Members",
    "Sync",
    "Max Lag in MB",
    "Last Failover",
    "Paused",
    "Problem",
];

fn lag_mb(lag: MaxLag) -> Option<Value> {
    match lag {
        MaxLag::None => None,
        MaxLag::Bytes(b) => Some(json!((b as f64 / 1_048_576.0).round() as u64)),
        MaxLag::Unknown => Some(json!("unknown")),
    }
}

fn primary_text(row: &FleetRow) -> Option<String> {
    row.primary.as_ref().map(|(name, standby_leader)| {
        if *standby_leader {
            format!("{name} (standby leader)")
        } else {
            name.clone()
        }
    })
}

/// The rows as the cells of [`COLUMNS`] (`None`: an empty cell).
fn cells(row: &FleetRow) -> Vec<Option<Value>> {
    let answered = !row
        .problem
        .as_deref()
        .is_some_and(|p| p.starts_with("unreachable"));
    vec![
        Some(json!(row.cluster)),
        primary_text(row).map(Value::String),
        answered.then(|| json!(row.healthy)),
        answered.then(|| json!(row.members)),
        Some(row.sync.text())
            .filter(|t| !t.is_empty())
            .map(Value::String),
        lag_mb(row.max_lag),
        row.last_failover
            .as_ref()
            .map(|(at, to)| json!(format!("{at} -> {to}"))),
        answered.then(|| json!(row.paused)),
        row.problem.clone().map(Value::String),
    ]
}

/// The fleet table: patronictl's bordered layout with a summary in the top border, or tsv,
/// json, yaml records with the columns as keys.
pub fn render(rows: &[FleetRow], format: Format) -> anyhow::Result<String> {
    let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    let all: Vec<Vec<Option<Value>>> = rows.iter().map(cells).collect();
    if format != Format::Pretty {
        return table::records(&columns, &all, format);
    }
    let unreachable = rows
        .iter()
        .filter(|r| {
            r.problem
                .as_deref()
                .is_some_and(|p| p.starts_with("unreachable"))
        })
        .count();
    let attention = rows.iter().filter(|r| r.needs_attention()).count();
    let title = format!(
        "Fleet: {} cluster{}, {attention} needing attention, {unreachable} unreachable",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    // Pretty: Healthy and Members as one `healthy/total` cell, Paused as `yes`, and the Problem
    // column only when a row has one.
    let with_problems = rows.iter().any(|r| r.problem.is_some());
    let mut headers = vec![
        "Cluster",
        "Primary",
        "Members",
        "Sync",
        "Max Lag in MB",
        "Last Failover",
        "Paused",
    ];
    if with_problems {
        headers.push("Problem");
    }
    let text = |v: &Option<Value>| match v {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let lines: Vec<Vec<Vec<String>>> = rows
        .iter()
        .zip(&all)
        .map(|(row, c)| {
            let members = match (&c[2], &c[3]) {
                (Some(h), Some(m)) => {
                    format!("{}/{}", text(&Some(h.clone())), text(&Some(m.clone())))
                }
                _ => String::new(),
            };
            let mut line = vec![
                text(&c[0]),
                text(&c[1]),
                members,
                text(&c[4]),
                text(&c[5]),
                text(&c[6]),
                if row.paused {
                    "yes".to_owned()
                } else {
                    String::new()
                },
            ];
            if with_problems {
                line.push(text(&c[8]));
            }
            line.into_iter().map(|cell| vec![cell]).collect()
        })
        .collect();
    let headers: Vec<String> = headers.into_iter().map(str::to_owned).collect();
    let right: Vec<bool> = headers
        .iter()
        .map(|h| h == "Members" || h == "Max Lag in MB")
        .collect();
    Ok(table::bordered(Some(&title), &headers, &right, &lines))
}

/// A `GET` of one member, decoded; the error as one line.
async fn get<T: DeserializeOwned>(client: &Client, base: &str, path: &str) -> Result<T, String> {
    let answer = client
        .send(base, Method::GET, path, None)
        .await
        .map_err(|e| e.to_string())?;
    if !answer.is_success() {
        return Err(format!(
            "{path} answered {}: {}",
            answer.status,
            answer.body_line()
        ));
    }
    serde_json::from_str(&answer.body).map_err(|e| format!("{path}: {e}"))
}

/// [`get`] that gives up at `deadline`.
async fn get_by<T: DeserializeOwned>(
    client: &Client,
    base: &str,
    path: &str,
    deadline: Instant,
) -> Result<T, String> {
    tokio::time::timeout_at(deadline, get(client, base, path))
        .await
        .unwrap_or_else(|_| Err(format!("{path}: no answer within the deadline")))
}

/// `GET /cluster` from the first of the target's members that answers before `deadline`: that
/// member's base URL and the document, or why none did.
async fn ask_cluster(
    client: &Client,
    target: &Target,
    deadline: Instant,
) -> Result<(String, ClusterDocument), String> {
    let first = tokio::time::timeout_at(deadline, async {
        let mut failures = Vec::new();
        for url in &target.urls {
            let base = base_url(url);
            match get::<ClusterDocument>(client, &base, "/cluster").await {
                Ok(doc) => return Ok((base, doc)),
                Err(e) => failures.push(e),
            }
        }
        Err(failures.join("; "))
    })
    .await;
    first.unwrap_or_else(|_| {
        Err(format!(
            "no answer within the deadline ({})",
            target.urls.join(", ")
        ))
    })
}

/// Asks one cluster, giving up at `deadline`: `GET /cluster` from the first member that
/// answers, then the other documents from the same member while time remains.
pub async fn ask(client: &Client, target: &Target, deadline: Instant) -> Report {
    let (base, cluster) = match ask_cluster(client, target, deadline).await {
        Ok(found) => found,
        Err(why) => return Report::Unreachable(why),
    };
    let members = get_by(client, &base, "/members", deadline).await;
    let history = get_by(client, &base, "/history", deadline).await;
    let config = get_by(client, &base, "/config", deadline).await;
    Report::Answered(Box::new(Snapshot {
        cluster,
        members,
        history,
        config,
    }))
}

/// One client per distinct way of reaching members (most fleets share one).
fn clients(targets: &[Target], timeout: Duration) -> anyhow::Result<Vec<Client>> {
    let mut built: Vec<(ClientOptions, Client)> = Vec::new();
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        let s = &target.settings;
        let options = ClientOptions {
            timeout,
            auth: s.auth.clone(),
            insecure: s.insecure,
            ca_file: s.ca_file.clone(),
            client_cert: s.client_cert.clone(),
            keyfile_password: s.keyfile_password.clone(),
        };
        let same = |o: &ClientOptions| {
            o.auth == options.auth
                && o.insecure == options.insecure
                && o.ca_file == options.ca_file
                && o.client_cert == options.client_cert
                && o.keyfile_password == options.keyfile_password
        };
        let client = match built.iter().find(|(o, _)| same(o)) {
            Some((_, client)) => client.clone(),
            None => {
                let client = Client::with_options(&[], &options)
                    .with_context(|| format!("preparing to ask {}", target.label))?;
                built.push((options, client.clone()));
                client
            }
        };
        out.push(client);
    }
    Ok(out)
}

/// Every cluster at once, each within `timeout`; the rows sorted by cluster name.
pub async fn survey(targets: &[Target], timeout: Duration) -> anyhow::Result<Vec<FleetRow>> {
    raise_open_files_limit(targets.len());
    let clients = clients(targets, timeout)?;
    let deadline = Instant::now() + timeout;
    let reports = futures::future::join_all(
        targets
            .iter()
            .zip(&clients)
            .map(|(target, client)| ask(client, target, deadline)),
    )
    .await;
    let mut rows: Vec<FleetRow> = targets
        .iter()
        .zip(&reports)
        .map(|(target, report)| match report {
            Report::Answered(snapshot) => FleetRow::from_snapshot(snapshot),
            Report::Unreachable(why) => FleetRow::unreachable(&target.label, why),
        })
        .collect();
    rows.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    Ok(rows)
}

/// `GET /cluster` of every target at once, each within `timeout`, in the targets' order (for
/// `haproxy-config --fleet`).
pub async fn cluster_documents(
    targets: &[Target],
    timeout: Duration,
) -> anyhow::Result<Vec<Result<ClusterDocument, String>>> {
    raise_open_files_limit(targets.len());
    let clients = clients(targets, timeout)?;
    let deadline = Instant::now() + timeout;
    Ok(futures::future::join_all(
        targets
            .iter()
            .zip(&clients)
            .map(|(target, client)| async move {
                ask_cluster(client, target, deadline)
                    .await
                    .map(|(_, doc)| doc)
            }),
    )
    .await)
}

/// Asking a thousand clusters at once needs a socket each: raise the soft limit on open files
/// towards the hard one when the default (often 1,024) is too low. Best effort: if it cannot be
/// raised, the clusters beyond it are shown unreachable with the reason.
fn raise_open_files_limit(clusters: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let wanted = clusters as u64 + 64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < wanted
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
    }
}

pub async fn fleet(global: &Global, args: &FleetArgs) -> anyhow::Result<()> {
    let targets = targets(&args.sources, global)?;
    let timeout = Duration::from_secs_f64(args.timeout);
    loop {
        let rows = survey(&targets, timeout).await?;
        let stamp = if args.timestamp {
            schedule::local_timestamp(UnixMillis::now(), 0) + "\n"
        } else {
            String::new()
        };
        print!("{stamp}{}", render(&rows, args.format)?);
        match args.watch.interval() {
            Some(interval) => tokio::time::sleep(interval).await,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
