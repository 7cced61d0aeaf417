//! The Patroni-compatible REST API (axum) and its typed client.
//!
//! Handlers answer from the agent's published view, the live lease and the replicated state in
//! memory; none queries the database, so HAProxy's checks stay cheap and never pile up behind a
//! slow database. Status codes, paths and JSON field names follow reference/patroni.md.
//! [`security`] owns the accept loop, TLS and the checks on unsafe methods around the router.

pub mod client;
mod control;
mod documents;
#[cfg(test)]
mod fuzz_tests;
pub mod health;
mod members;
pub mod metrics;
pub mod security;
pub mod serving;
mod upgrade;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::node::Views;
use crate::raft::RaftNode;

pub use documents::{
    ClusterDocument, ClusterMember, StatusDocument, TribuneInfo, UpgradeDocument,
    UpgradeOutcomeDocument,
};
pub use members::{MembersDocument, MembersRow, RetiredRow};
pub use security::{Security, SecurityError};

/// What every handler reads. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    raft: RaftNode,
    views: Views,
}

impl ApiState {
    pub fn new(config: Arc<Config>, raft: RaftNode, views: Views) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                raft,
                views,
            }),
        }
    }
}

pub fn router(state: ApiState) -> Router {
    // As Patroni: HEAD and OPTIONS on any path, and GET on a path without a document, run the
    // health check (`HEAD /patroni` is 503, not the document's 200); other methods without a
    // handler are 501.
    let only_get =
        |handler: MethodRouter<ApiState>| handler.head(health_check).fallback(health_check);
    Router::new()
        .route("/patroni", only_get(get(patroni)))
        .route(
            "/cluster",
            get(cluster)
                .delete(control::delete_cluster)
                .head(health_check)
                .fallback(health_check),
        )
        .route("/history", only_get(get(history)))
        .route(
            "/config",
            get(config)
                .patch(control::patch_config)
                .put(control::put_config)
                .head(health_check)
                .fallback(health_check),
        )
        .route(
            "/switchover",
            post(control::post_switchover)
                .delete(control::delete_switchover)
                .fallback(health_check),
        )
        .route(
            "/failover",
            post(control::post_failover).fallback(health_check),
        )
        .route(
            "/restart",
            post(control::post_restart)
                .delete(control::delete_restart)
                .fallback(health_check),
        )
        .route("/reload", post(control::post_reload).fallback(health_check))
        .route(
            "/reinitialize",
            post(control::post_reinitialize).fallback(health_check),
        )
        // Tribune's own: a major-version upgrade of the whole cluster (upgrade.rs).
        .route(
            "/upgrade",
            post(upgrade::post_upgrade).fallback(health_check),
        )
        // Tribune's own: the Raft membership (members.rs).
        .route(
            "/members",
            get(members::get_members)
                .post(members::post_members)
                .head(health_check)
                .fallback(health_check),
        )
        .route(
            "/members/{name}",
            delete(members::delete_member).fallback(health_check),
        )
        .route(
            "/failsafe",
            get(failsafe)
                .post(failsafe)
                .head(health_check)
                .fallback(health_check),
        )
        .route("/liveness", only_get(get(liveness)))
        .route("/readiness", only_get(get(readiness)))
        .route("/metrics", only_get(get(metrics_handler)))
        .fallback(health_check)
        // Patroni's bodies are a few hundred bytes; a larger one is refused with 413.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::telemetry::rest_timing))
}

/// The largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// Serve until `shutdown` is cancelled, behind `security` (TLS, allowlist, credentials and
/// extra headers; see [`security`]). Accept errors (out of descriptors) are logged and
/// retried, so this returns only at shutdown.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    security: Security,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let cluster = state.inner.raft.subscribe();
    serving::announce(listener.local_addr()?);
    security
        .serve(listener, router(state), cluster, shutdown)
        .await;
    Ok(())
}

fn json(code: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

async fn patroni(State(s): State<ApiState>) -> Response {
    json(StatusCode::OK, &documents::status(&s.inner))
}

async fn cluster(State(s): State<ApiState>) -> Response {
    json(StatusCode::OK, &documents::cluster(&s.inner))
}

async fn history(State(s): State<ApiState>) -> Response {
    let cluster = s.inner.raft.state();
    let rows: Vec<_> = cluster
        .history
        .iter()
        .map(|h| {
            serde_json::json!([
                h.timeline.0,
                h.lsn.0,
                h.reason,
                documents::iso_time(h.at),
                h.new_leader.as_str()
            ])
        })
        .collect();
    json(StatusCode::OK, &rows)
}

async fn config(State(s): State<ApiState>) -> Response {
    let cluster = s.inner.raft.state();
    match &cluster.config {
        Some(stored) => json(StatusCode::OK, stored.written()),
        None => (
            StatusCode::BAD_GATEWAY,
            "the cluster has no configuration yet",
        )
            .into_response(),
    }
}

async fn metrics_handler(State(s): State<ApiState>) -> Response {
    let input = documents::metrics_input(&s.inner);
    let mut text = metrics::render(&input);
    crate::telemetry::encode(
        &mut text,
        &input.scope,
        &input.name,
        s.inner.config.is_witness(),
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET` and `POST /failsafe`: 502, Patroni's answer when failsafe mode is off. Tribune never
/// needs it: the agents are the coordination store, so a primary that still reaches every
/// member (what Patroni's failsafe mode asks) also reaches a Raft majority and keeps its lease.
async fn failsafe() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        "failsafe_mode is not used by Tribune: a primary keeps its lease while it reaches a \
         majority of the agents",
    )
        .into_response()
}

/// `GET /liveness`: 200 unless the HA loop is stuck (no tick for `ttl`, `2*ttl` on a
/// non-primary), as Patroni. Status line only.
async fn liveness(State(s): State<ApiState>) -> StatusCode {
    let facts = documents::facts(&s.inner);
    let view = s.inner.views.local.borrow().clone();
    let limit = if facts.health.is_leader {
        facts.ttl
    } else {
        facts.ttl * 2
    };
    if facts.paused || view.last_tick.elapsed() < limit {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /readiness[?lag=&mode=apply|write]`: the leader, or a streaming replica within lag.
async fn readiness(
    State(s): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> StatusCode {
    let facts = documents::facts(&s.inner);
    if facts.health.is_leader {
        return StatusCode::OK;
    }
    let view = s.inner.views.local.borrow().clone();
    if !view.is_running_standby() || !view.status.streaming {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let max = query
        .get("lag")
        .and_then(|v| health::parse_lag(v))
        .unwrap_or(facts.maximum_lag_on_failover);
    let lag = if query.get("mode").map(String::as_str) == Some("write") {
        facts.receive_lag
    } else {
        facts.health.replay_lag
    };
    match lag {
        Some(lag) if lag <= max => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Every other path: Patroni's health check for GET, HEAD and OPTIONS (GET with the status
/// document as body); other methods are not implemented.
async fn health_check(
    State(s): State<ApiState>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if method != Method::GET && method != Method::HEAD && method != Method::OPTIONS {
        return (
            StatusCode::NOT_IMPLEMENTED,
            format!("Unsupported method ('{method}')"),
        )
            .into_response();
    }
    let facts = documents::facts(&s.inner);
    let code = StatusCode::from_u16(health::health_code(uri.path(), &query, &facts.health))
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    if method == Method::GET {
        json(code, &documents::status(&s.inner))
    } else {
        code.into_response()
    }
}

/// The current time as Patroni prints it (`YYYY-MM-DD HH:MM:SS`), for `tribunectl -t`.
pub fn documents_now() -> String {
    documents::iso_time(crate::types::UnixMillis::now())
        .replace('T', " ")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned()
}
