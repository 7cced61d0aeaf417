//! Fuzz harness of the REST API (see `crate::fuzz`): every route, every method, query strings
//! and bodies (Patroni's bodies mutated, random bytes) sent to the real router over a one-node
//! Raft group. Invariants: never a panic, no 5xx but Patroni's own (501, 502, 503); a refusal (4xx) changes nothing in the
//! replicated state; answers stay small.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::{ApiState, router};
use crate::config::Config;
use crate::fuzz;
use crate::ha::LeaseView;
use crate::node::{LocalView, Views};
use crate::raft::{RaftNode, RaftSettings};

const PATHS: &[&str] = &[
    "/",
    "/patroni",
    "/cluster",
    "/history",
    "/config",
    "/switchover",
    "/failover",
    "/restart",
    "/reload",
    "/reinitialize",
    "/members",
    "/members/w0",
    "/members/%ff",
    "/failsafe",
    "/liveness",
    "/readiness",
    "/metrics",
    "/primary",
    "/master",
    "/leader",
    "/replica",
    "/read-only",
    "/read-write",
    "/standby-leader",
    "/health",
    "/sync",
    "/async",
    "/quorum",
    "/asynchronous",
    "/nope",
    "//",
    "/config/../cluster",
];

fn bodies() -> Vec<Value> {
    vec![
        json!({"leader": "w0", "candidate": "w1", "scheduled_at": "2030-01-01T12:00:00+00:00"}),
        json!({"candidate": "w0"}),
        json!({"role": "replica", "postgres_version": "15.1", "timeout": 30,
               "schedule": "2030-01-01T12:00:00Z", "restart_pending": true}),
        json!({"force": true, "from_leader": false}),
        json!({"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"work_mem": "8MB"}},
               "synchronous_mode": true, "pause": true, "standby_cluster": {"host": "h", "port": 1}}),
        json!({"name": "w9", "raft_addr": "127.0.0.1:2229"}),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let pair = (
        proptest::sample::select(vec!["lag", "tag_key", "replication_state", "mode", "x", ""]),
        fuzz::nasty_string(),
    )
        .prop_map(|(k, v)| format!("{k}={}", v.replace(['#', ' '], "%20")));
    proptest::collection::vec(pair, 0..4).prop_map(|pairs| pairs.join("&"))
}

#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    query: String,
    body: Vec<u8>,
}

fn calls() -> impl Strategy<Value = Call> {
    let method = proptest::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]);
    let path = prop_oneof![
        4 => proptest::sample::select(PATHS.to_vec()).prop_map(str::to_owned),
        1 => fuzz::nasty_string().prop_map(|s| format!("/{}", s.replace(['?', '#', ' '], "_"))),
    ];
    (method, path, query(), fuzz::bytes_near(bodies())).prop_map(|(method, path, query, body)| {
        Call {
            method,
            path,
            query,
            body,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_rest_requests() {
    let dir = TempDir::new().unwrap();
    let yaml = format!(
        "scope: fz\nname: w0\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n\
         raft:\n  self_addr: 127.0.0.1:2222\n  data_dir: {}\n",
        dir.path().display()
    );
    let config = Arc::new(Config::from_yaml_str(&yaml, &|_| None).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let raft = RaftNode::start(
        RaftSettings::new("fz", addr, Vec::new(), dir.path().join("raft")),
        listener,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let (_, local) = watch::channel(Arc::new(LocalView::new(true)));
    let (_, lease) = watch::channel(LeaseView::Unconfirmed);
    let (_, live) = watch::channel(config.clone());
    let views = Views {
        local,
        lease,
        config: live,
        reload: Arc::new(tokio::sync::Notify::new()),
        counters: Default::default(),
        keeper: watch::channel(Default::default()).1,
    };
    let app = router(ApiState::new(config, raft.clone(), views));
    fuzz::run("REST requests", calls(), |call| {
        let (app, raft) = (app.clone(), raft.clone());
        async move {
            let uri = if call.query.is_empty() {
                call.path.clone()
            } else {
                format!("{}?{}", call.path, call.query)
            };
            let Ok(request) = Request::builder()
                .method(call.method.clone())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from(call.body.clone()))
            else {
                // Not a request any client could send (the URI does not parse).
                return Ok(());
            };
            let before = raft.state();
            let response = app.oneshot(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 4 << 20)
                .await
                .map_err(|e| format!("the answer is over 4 MiB or broken: {e}"))?;
            // Patroni's own 5xx answers: 501 for an unsupported method, 502 for /failsafe, 503
            // for health checks and when Raft has no quorum. Anything else (a 500) is a bug.
            if status.is_server_error() && ![501, 502, 503].contains(&status.as_u16()) {
                return Err(format!(
                    "{} {uri}: {status}: {}",
                    call.method,
                    String::from_utf8_lossy(&body)
                ));
            }
            if status.is_client_error() && raft.state() != before {
                return Err(format!(
                    "{} {uri}: {status}, but the state changed",
                    call.method
                ));
            }
            Ok(())
        }
    })
    .await;
    raft.shutdown().await;
}
