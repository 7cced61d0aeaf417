//! The clients: what production traffic does, recorded operation by operation.
//!
//! - *inserts*: unique ids inserted through HAProxy's primary port, by a few clients;
//! - *reads*: through the same port, the ids above a recent floor, which must include every
//!   insert acknowledged before the read began;
//! - *probes*: every 100 ms a write straight to every member's database, to see two members
//!   accepting writes at once.
//!
//! Each operation is recorded as invoked, then `ok`, `fail` (the server refused it before it
//! could commit, or no connection was made: nothing happened) or `info` (timeout, connection
//! lost, server shutting down: it may have happened). A timeout is never a failure.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

use crate::history::{OpValue, Outcome, Recorder};

/// How long an operation may take before its outcome is unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two inserts of one client.
const INSERT_PAUSE: Duration = Duration::from_millis(20);
const INSERT_CLIENTS: usize = 2;
const READ_EVERY: Duration = Duration::from_millis(200);
/// A read covers the ids above `next id - READ_WINDOW`.
const READ_WINDOW: i64 = 1000;
const PROBE_EVERY: Duration = Duration::from_millis(100);

pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS inserts (id bigint PRIMARY KEY); \
                          CREATE TABLE IF NOT EXISTS probe (id bigint PRIMARY KEY, member text)";

/// The members to probe: (name, conninfo), changed as members come and go.
pub type ProbeTargets = Arc<Mutex<Vec<(String, String)>>>;

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, String> {
    let connecting = tokio_postgres::connect(conninfo, tokio_postgres::NoTls);
    match tokio::time::timeout(OP_TIMEOUT, connecting).await {
        Ok(Ok((client, conn))) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => Err(format!("connect: {e}")),
        Err(_) => Err("connect: timed out".to_owned()),
    }
}

/// Whether an error means the statement certainly did not commit.
fn definite_failure(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection broke; the commit may have happened.
        return false;
    };
    [
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::UNDEFINED_TABLE,
        SqlState::UNIQUE_VIOLATION,
    ]
    .contains(code)
}

/// Runs one statement on `client` (connecting first when there is none), recording it.
async fn operate<F, Fut>(
    recorder: &Recorder,
    process: &str,
    conninfo: &str,
    client: &mut Option<tokio_postgres::Client>,
    op: OpValue,
    statement: F,
) where
    F: FnOnce(tokio_postgres::Client) -> Fut,
    Fut: std::future::Future<
            Output = (
                tokio_postgres::Client,
                Result<OpValue, tokio_postgres::Error>,
            ),
        >,
{
    recorder.invoke(process, op.clone());
    let c = match client.take() {
        Some(c) if !c.is_closed() => c,
        _ => match connect(conninfo).await {
            Ok(c) => c,
            Err(e) => {
                // Nothing was sent: certainly not done.
                recorder.complete(process, Outcome::Fail, op, Some(e));
                return;
            }
        },
    };
    match tokio::time::timeout(OP_TIMEOUT, statement(c)).await {
        Ok((c, Ok(done))) => {
            recorder.complete(process, Outcome::Ok, done, None);
            *client = Some(c);
        }
        Ok((c, Err(e))) => {
            let outcome = if definite_failure(&e) {
                Outcome::Fail
            } else {
                Outcome::Info
            };
            recorder.complete(process, outcome, op, Some(e.to_string()));
            if !c.is_closed() && outcome == Outcome::Fail {
                *client = Some(c);
            }
        }
        Err(_) => recorder.complete(process, Outcome::Info, op, Some("timed out".to_owned())),
    }
}

async fn inserter(
    process: String,
    conninfo: String,
    ids: Arc<AtomicI64>,
    recorder: Recorder,
    stop: CancellationToken,
) {
    let mut client = None;
    while !stop.is_cancelled() {
        let id = ids.fetch_add(1, Ordering::SeqCst);
        operate(
            &recorder,
            &process,
            &conninfo,
            &mut client,
            OpValue::Insert { id },
            |c| async move {
                let r = c
                    .execute("INSERT INTO inserts(id) VALUES ($1)", &[&id])
                    .await;
                let r = r.map(|_| OpValue::Insert { id });
                (c, r)
            },
        )
        .await;
        tokio::time::sleep(INSERT_PAUSE).await;
    }
}

async fn reader(
    conninfo: String,
    ids: Arc<AtomicI64>,
    recorder: Recorder,
    stop: CancellationToken,
) {
    let mut client = None;
    while !stop.is_cancelled() {
        let floor = ids.load(Ordering::SeqCst) - READ_WINDOW;
        operate(
            &recorder,
            "reader",
            &conninfo,
            &mut client,
            OpValue::Read {
                floor,
                seen: vec![],
            },
            |c| async move {
                let r = c
                    .query("SELECT id FROM inserts WHERE id > $1", &[&floor])
                    .await
                    .map(|rows| OpValue::Read {
                        floor,
                        seen: rows.iter().map(|r| r.get(0)).collect(),
                    });
                (c, r)
            },
        )
        .await;
        tokio::time::sleep(READ_EVERY).await;
    }
}

async fn prober(
    member: String,
    targets: ProbeTargets,
    ids: Arc<AtomicI64>,
    recorder: Recorder,
    stop: CancellationToken,
) {
    let process = format!("probe-{member}");
    let mut client = None;
    while !stop.is_cancelled() {
        tokio::time::sleep(PROBE_EVERY).await;
        let conninfo = targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(m, _)| *m == member)
            .map(|(_, c)| c.clone());
        let Some(conninfo) = conninfo else {
            client = None;
            continue;
        };
        let id = ids.fetch_add(1, Ordering::SeqCst);
        let name = member.clone();
        operate(
            &recorder,
            &process,
            &conninfo,
            &mut client,
            OpValue::Probe {
                member: member.clone(),
                id,
            },
            |c| async move {
                let r = c
                    .execute(
                        "INSERT INTO probe(id, member) VALUES ($1, $2)",
                        &[&id, &name],
                    )
                    .await
                    .map(|_| OpValue::Probe { member: name, id });
                (c, r)
            },
        )
        .await;
    }
}

/// The running clients; `stop` ends them.
pub struct Workload {
    pub stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Starts the inserts and reads through `primary_conninfo` and a prober for each name in
    /// `probe_names` (it probes while its member is in `targets`).
    pub fn start(
        recorder: &Recorder,
        primary_conninfo: &str,
        probe_names: &[String],
        targets: ProbeTargets,
    ) -> Workload {
        let stop = CancellationToken::new();
        let ids = Arc::new(AtomicI64::new(1));
        let probe_ids = Arc::new(AtomicI64::new(1));
        let mut tasks = Vec::new();
        for k in 0..INSERT_CLIENTS {
            tasks.push(tokio::spawn(inserter(
                format!("insert-{k}"),
                primary_conninfo.to_owned(),
                ids.clone(),
                recorder.clone(),
                stop.clone(),
            )));
        }
        tasks.push(tokio::spawn(reader(
            primary_conninfo.to_owned(),
            ids,
            recorder.clone(),
            stop.clone(),
        )));
        for name in probe_names {
            tasks.push(tokio::spawn(prober(
                name.clone(),
                targets.clone(),
                probe_ids.clone(),
                recorder.clone(),
                stop.clone(),
            )));
        }
        Workload { stop, tasks }
    }

    /// Stops every client and waits for them (an open operation ends as `info`... or not at
    /// all: the history pairs it as never completed).
    pub async fn finish(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Every id in `inserts`, read through `conninfo`.
pub async fn read_all(conninfo: &str) -> anyhow::Result<Vec<i64>> {
    let client = connect(conninfo)
        .await
        .map_err(|e| anyhow::anyhow!("final read: {e}"))?;
    let rows = tokio::time::timeout(
        Duration::from_secs(30),
        client.query("SELECT id FROM inserts ORDER BY id", &[]),
    )
    .await
    .map_err(|_| anyhow::anyhow!("final read: timed out"))??;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Runs `sql` once through `conninfo` (the schema at start).
pub async fn execute(conninfo: &str, sql: &str) -> anyhow::Result<()> {
    let client = connect(conninfo)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    client.batch_execute(sql).await?;
    Ok(())
}
