//! SQL on the local server for every adapter: one cached connection, a time limit on every
//! statement, and the polling wait for effects the server applies asynchronously (a reload, a
//! WAL receiver going away, a promotion).
//!
//! The adapters build the `tokio_postgres::Config` (PostgreSQL: the Unix socket or TCP with a
//! password; openGauss: the Unix socket only, because tokio-postgres cannot do its sha256
//! login) and own the SQL text; this module only runs it.
//!
//! Hazards: a statement that times out leaves its connection in an unknown state, so the
//! connection is dropped and opened again on the next call. Every statement uses the simple
//! protocol, so every column arrives as text (or NULL).

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow};

use super::{InstanceError, PeerFence};

/// How often a wait for the server checks again: such waits lie on the failover path, and a
/// check is one local query.
pub const WAIT_POLL: Duration = Duration::from_millis(20);
/// The time limit of each statement of a wait.
const WAIT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// One open connection and the task driving it (aborted with it).
struct Conn {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why a statement did not run.
#[derive(Debug)]
pub enum SqlError {
    Timeout(Duration),
    Other(String),
}

impl SqlError {
    /// A timeout leaves the effect unknown; anything else failed.
    pub fn into_instance(self, operation: &'static str) -> InstanceError {
        match self {
            SqlError::Timeout(timeout) => InstanceError::Unknown { operation, timeout },
            SqlError::Other(detail) => InstanceError::failed(operation, detail),
        }
    }

    /// The error as one line, for logs and the `status()` fallback.
    pub fn describe(&self) -> String {
        match self {
            SqlError::Timeout(t) => format!("no answer within {t:?}"),
            SqlError::Other(e) => e.clone(),
        }
    }
}

/// The cached connection to the local server.
pub struct LocalSql {
    config: tokio_postgres::Config,
    connect_timeout: Duration,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl LocalSql {
    pub fn new(config: tokio_postgres::Config, connect_timeout: Duration) -> Self {
        Self {
            config,
            connect_timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Conn, SqlError> {
        let (client, connection) = tokio::time::timeout(
            self.connect_timeout,
            self.config.connect(tokio_postgres::NoTls),
        )
        .await
        .map_err(|_| SqlError::Timeout(self.connect_timeout))?
        .map_err(|e| SqlError::Other(format!("could not connect: {}", error_text(&e))))?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection closed");
            }
        });
        Ok(Conn { client, task })
    }

    /// Runs `sql` (one or more statements) on the cached connection within `timeout`,
    /// reconnecting first when needed. Returns the rows of every statement.
    pub async fn query(
        &self,
        sql: &str,
        timeout: Duration,
    ) -> Result<Vec<SimpleQueryRow>, SqlError> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_some_and(|c| c.client.is_closed()) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(self.connect().await?);
        }
        let Some(conn) = guard.as_ref() else {
            return Err(SqlError::Other("no connection".into()));
        };
        let result = tokio::time::timeout(timeout, conn.client.simple_query(sql)).await;
        match result {
            Ok(Ok(messages)) => Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                })
                .collect()),
            Ok(Err(e)) => {
                if conn.client.is_closed() {
                    *guard = None;
                }
                Err(SqlError::Other(error_text(&e)))
            }
            Err(_) => {
                // The connection may be stuck mid-query; start afresh next time.
                *guard = None;
                Err(SqlError::Timeout(timeout))
            }
        }
    }

    /// [`Self::query`] for an operation: a timeout is `Unknown`, anything else `Failed`.
    pub async fn query_for(
        &self,
        operation: &'static str,
        sql: &str,
        timeout: Duration,
    ) -> Result<Vec<SimpleQueryRow>, InstanceError> {
        self.query(sql, timeout)
            .await
            .map_err(|e| e.into_instance(operation))
    }

    /// The first column of the first row of `sql`, `None` for NULL or no row.
    pub async fn value(
        &self,
        operation: &'static str,
        sql: &str,
        timeout: Duration,
    ) -> Result<Option<String>, InstanceError> {
        let rows = self.query_for(operation, sql, timeout).await?;
        Ok(first_value(&rows))
    }

    /// Forgets the connection (the server stops, or its role changes under it).
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// Polls `sql` (one value) every [`WAIT_POLL`] until it returns `expected`; `Unknown`
    /// after `limit`. For effects the server applies asynchronously.
    pub async fn wait_for_value(
        &self,
        operation: &'static str,
        sql: &str,
        expected: &str,
        limit: Duration,
    ) -> Result<(), InstanceError> {
        let deadline = Instant::now() + limit;
        loop {
            let rows = self
                .query_for(operation, sql, WAIT_STATEMENT_TIMEOUT)
                .await?;
            if first_value(&rows).as_deref() == Some(expected) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(InstanceError::Unknown {
                    operation,
                    timeout: limit,
                });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
}

/// A database error's message with its severity when there is one.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Column `idx` of every row that has a value there.
pub fn rows_column(rows: &[SimpleQueryRow], idx: usize) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r.try_get(idx).ok().flatten().map(str::to_owned))
        .collect()
}

/// The first column of the first row.
pub fn first_value(rows: &[SimpleQueryRow]) -> Option<String> {
    rows.first()
        .and_then(|r| r.try_get(0).ok().flatten())
        .map(str::to_owned)
}

/// Fences another member's database over SQL with `statements`, run one at a time after it
/// answered `in_recovery_sql` (one boolean) with false. A peer that cannot be reached within
/// `connect_timeout`, for any reason, is [`PeerFence::Unreachable`]: that is an answer, not a
/// failure. `timeout` bounds the statements.
pub async fn fence_over_sql(
    config: &tokio_postgres::Config,
    connect_timeout: Duration,
    in_recovery_sql: &str,
    statements: &[&str],
    timeout: Duration,
) -> Result<PeerFence, InstanceError> {
    let Some(session) = HeldSession::open(config, connect_timeout).await else {
        return Ok(PeerFence::Unreachable);
    };
    session
        .fence(timeout, in_recovery_sql, statements, timeout)
        .await
}

/// A session to another member's database opened while it was healthy and kept, so that a
/// fence can still reach it when it no longer accepts connections: a primary whose postmaster
/// is frozen (SIGSTOP, a stalled process) with its agent goes on committing on the sessions it
/// has, in asynchronous mode without waiting for anyone, while no new session can be opened to
/// fence it. Ending its client sessions needs no postmaster (`pg_terminate_backend` signals
/// them directly), and no client can connect again while the postmaster is frozen.
pub struct HeldSession {
    client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<()>,
}

impl HeldSession {
    /// `None` when the peer cannot be reached within `connect_timeout`.
    pub async fn open(config: &tokio_postgres::Config, connect_timeout: Duration) -> Option<Self> {
        let connect = config.connect(tokio_postgres::NoTls);
        let (client, connection) = match tokio::time::timeout(connect_timeout, connect).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                tracing::debug!(error = %error_text(&e), "peer's database unreachable");
                return None;
            }
            Err(_) => return None,
        };
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Some(Self { client, connection })
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The fence over this session. A session that does not answer `in_recovery_sql` within
    /// `answer_timeout` (a peer cut off, or frozen whole) is [`PeerFence::Unreachable`].
    pub async fn fence(
        &self,
        answer_timeout: Duration,
        in_recovery_sql: &str,
        statements: &[&str],
        timeout: Duration,
    ) -> Result<PeerFence, InstanceError> {
        const OP: &str = "fence peer";
        let rows =
            match tokio::time::timeout(answer_timeout, self.client.simple_query(in_recovery_sql))
                .await
            {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    tracing::debug!(error = %error_text(&e), "peer's database unreachable");
                    return Ok(PeerFence::Unreachable);
                }
                Err(_) => return Ok(PeerFence::Unreachable),
            };
        let in_recovery = rows.iter().any(
            |m| matches!(m, SimpleQueryMessage::Row(r) if matches!(r.get(0), Some("t" | "true"))),
        );
        if in_recovery {
            return Ok(PeerFence::NotPrimary);
        }
        let run = async {
            for statement in statements {
                self.client.simple_query(statement).await?;
            }
            Ok::<_, tokio_postgres::Error>(PeerFence::Fenced)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(outcome)) => Ok(outcome),
            // Our own session can be among those ended by the fence: it succeeded if the server
            // now refuses to acknowledge writes, which the caller's next probe shows.
            Ok(Err(e)) => Err(InstanceError::failed(OP, error_text(&e))),
            Err(_) => Err(InstanceError::Unknown {
                operation: OP,
                timeout,
            }),
        }
    }
}

impl Drop for HeldSession {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The first value `sql` returns on another member's database (e.g. its replay position);
/// `Ok(None)` when the peer cannot be reached within `connect_timeout` or returns no row.
pub async fn peer_value(
    config: &tokio_postgres::Config,
    connect_timeout: Duration,
    operation: &'static str,
    sql: &str,
    timeout: Duration,
) -> Result<Option<String>, InstanceError> {
    let connect = config.connect(tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            tracing::debug!(error = %error_text(&e), "peer's database unreachable");
            return Ok(None);
        }
        Err(_) => return Ok(None),
    };
    let task = tokio::spawn(connection);
    let result = tokio::time::timeout(timeout, client.simple_query(sql)).await;
    task.abort();
    match result {
        Ok(Ok(messages)) => Ok(messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })),
        Ok(Err(e)) => Err(InstanceError::failed(operation, error_text(&e))),
        Err(_) => Err(InstanceError::Unknown { operation, timeout }),
    }
}
