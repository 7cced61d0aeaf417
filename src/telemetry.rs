//! Process-wide measurements for `/metrics` that Patroni has no names for: how long the REST
//! API takes to answer, how long lease renewals take and how they end, and whether it is a
//! witness (fences and actions are counted per agent in `node::counters`). Operators' alerts and dashboards
//! (`monitoring/`) read them.
//!
//! Owns the metrics (prometheus-client histograms and counters) and their text encoding, with
//! the same `scope`/`name` labels as Patroni's block (`api::metrics`). The values are
//! process-wide, as a Prometheus client library's default registry is: an agent process runs
//! one agent, and the hooks ([`rest_timing`], [`timed_renewal`]) are single
//! calls at the edges of the REST router and the lease keeper, so that they merge easily with
//! work on those modules.
//!
//! Must not: block (every hook is a few atomic operations and one short lock), or take
//! unbounded label values from the network (a request's path is reduced to a known route or
//! `other`).

use std::borrow::Cow;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::Outcome;

/// Upper bounds of the REST latency buckets, seconds: health checks answer from memory in well
/// under a millisecond (`scripts/bench-rest.sh`: p50 0.3 ms), control calls take up to seconds.
const REST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Upper bounds of the lease renewal buckets, seconds: a renewal is one Raft round trip
/// (milliseconds on a LAN); `retry_timeout` (0.5 s by default) ends it.
const RENEWAL_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The routes of the REST API, each its own label. A member's path (`/members/NAME`) is
/// `/members/{name}` and any other path `other`, so that no client can grow the number of
/// series.
const ROUTES: [&str; 32] = [
    "/",
    "/primary",
    "/master",
    "/leader",
    "/read-write",
    "/standby-leader",
    "/standby_leader",
    "/replica",
    "/read-only",
    "/health",
    "/sync",
    "/synchronous",
    "/async",
    "/asynchronous",
    "/quorum",
    "/read-only-sync",
    "/read-only-synchronous",
    "/read-only-quorum",
    "/liveness",
    "/readiness",
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
    "/failsafe",
    "/metrics",
];

/// The label of a request's path: the route it names (a trailing `/` ignored),
/// `/members/{name}` for one member, else `other`.
pub fn route_label(path: &str) -> &'static str {
    let trimmed = path.trim_end_matches('/');
    let path = if trimmed.is_empty() { "/" } else { trimmed };
    if let Some(route) = ROUTES.iter().find(|r| **r == path) {
        return route;
    }
    match path.strip_prefix("/members/") {
        Some(name) if !name.contains('/') => "/members/{name}",
        _ => "other",
    }
}

/// The label of a request's method: one of HTTP's standard methods, else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestLabels {
    method: &'static str,
    path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RenewalLabels {
    outcome: &'static str,
}

/// How a lease renewal ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// Committed through Raft: the lease was extended.
    Committed,
    /// Refused by the state machine (the lease had passed on, or another generation).
    Rejected,
    /// The proposal failed (no Raft leader, a network error).
    Failed,
    /// No answer within `retry_timeout`.
    TimedOut,
}

impl RenewalOutcome {
    fn label(self) -> &'static str {
        match self {
            RenewalOutcome::Committed => "committed",
            RenewalOutcome::Rejected => "rejected",
            RenewalOutcome::Failed => "failed",
            RenewalOutcome::TimedOut => "timeout",
        }
    }

    /// The outcome of `tokio::time::timeout(retry_timeout, raft.propose(renewal))`.
    pub fn of<E>(result: &Result<Result<Outcome, E>, tokio::time::error::Elapsed>) -> Self {
        match result {
            Ok(Ok(Outcome::Applied)) => RenewalOutcome::Committed,
            Ok(Ok(Outcome::Rejected(_))) => RenewalOutcome::Rejected,
            Ok(Err(_)) => RenewalOutcome::Failed,
            Err(_) => RenewalOutcome::TimedOut,
        }
    }
}

fn histogram<const N: usize>(buckets: [f64; N]) -> Histogram {
    Histogram::new(buckets)
}

fn rest_histogram() -> Histogram {
    histogram(REST_BUCKETS)
}

struct Telemetry {
    rest: Family<RestLabels, Histogram>,
    renewals: Family<RenewalLabels, Counter>,
    renewal_seconds: Histogram,
}

static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(|| Telemetry {
    rest: Family::new_with_constructor(rest_histogram),
    renewals: Family::default(),
    renewal_seconds: histogram(RENEWAL_BUCKETS),
});

/// axum middleware: times every request the router answers (`tribune_rest_request_duration_seconds`),
/// from its arrival at the router to its response headers.
pub async fn rest_timing(request: Request, next: Next) -> Response {
    let labels = RestLabels {
        method: method_label(request.method()),
        path: route_label(request.uri().path()),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    TELEMETRY
        .rest
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Runs one lease renewal (`tokio::time::timeout(retry_timeout, raft.propose(..))`) and counts
/// how long it took and how it ended.
pub async fn timed_renewal<E>(
    renewal: impl Future<Output = Result<Result<Outcome, E>, tokio::time::error::Elapsed>>,
) -> Result<Result<Outcome, E>, tokio::time::error::Elapsed> {
    let started = Instant::now();
    let result = renewal.await;
    record_renewal(RenewalOutcome::of(&result), started.elapsed().as_secs_f64());
    result
}

fn record_renewal(outcome: RenewalOutcome, seconds: f64) {
    TELEMETRY
        .renewals
        .get_or_create(&RenewalLabels {
            outcome: outcome.label(),
        })
        .inc();
    TELEMETRY.renewal_seconds.observe(seconds);
}

/// Appends these metrics to `out` in the Prometheus text format, labelled as Patroni's are.
pub fn encode(out: &mut String, scope: &str, name: &str, witness: bool) {
    let labels: [(Cow<'static, str>, Cow<'static, str>); 2] = [
        ("scope".into(), scope.to_owned().into()),
        ("name".into(), name.to_owned().into()),
    ];
    let mut registry = Registry::with_labels(labels.into_iter());
    let t = &*TELEMETRY;
    // The registry ends every help text with a full stop itself.
    registry.register(
        "tribune_witness",
        "Value is 1 if this member is a witness (a Raft voter without a database), 0 otherwise",
        ConstGauge::new(i64::from(witness)),
    );
    registry.register(
        "tribune_rest_request_duration_seconds",
        "Time the REST API took to answer a request, by method and route",
        t.rest.clone(),
    );
    registry.register(
        "tribune_lease_renewals",
        "Leader lease renewals this member sent, by outcome (committed, rejected, failed, timeout)",
        t.renewals.clone(),
    );
    registry.register(
        "tribune_lease_renewal_duration_seconds",
        "Time a leader lease renewal took to be committed or to fail",
        t.renewal_seconds.clone(),
    );
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(out, &registry);
}

#[cfg(test)]
mod monitoring_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_a_bounded_set_of_routes() {
        for (path, label) in [
            ("/primary", "/primary"),
            ("/primary/", "/primary"),
            ("/", "/"),
            ("/members/node1", "/members/{name}"),
            ("/members/node1/x", "other"),
            ("/members/", "/members"),
            ("//", "/"),
            ("/../../etc/passwd", "other"),
            ("/replica?lag=1MB", "other"),
            ("/metrics", "/metrics"),
        ] {
            assert_eq!(route_label(path), label, "{path}");
        }
        let custom = axum::http::Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_label(&custom), "other");
        assert_eq!(method_label(&axum::http::Method::OPTIONS), "OPTIONS");
    }

    #[test]
    fn renewal_outcomes_are_classified() {
        let rejection = crate::state::Rejection::StaleGeneration {
            expected: crate::types::Generation(1),
            current: crate::types::Generation(2),
        };
        let applied: Result<Result<Outcome, ()>, _> = Ok(Ok(Outcome::Applied));
        let rejected: Result<Result<Outcome, ()>, _> = Ok(Ok(Outcome::Rejected(rejection)));
        let failed: Result<Result<Outcome, ()>, _> = Ok(Err(()));
        assert_eq!(RenewalOutcome::of(&applied), RenewalOutcome::Committed);
        assert_eq!(RenewalOutcome::of(&rejected), RenewalOutcome::Rejected);
        assert_eq!(RenewalOutcome::of(&failed), RenewalOutcome::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_times_out_is_counted_as_such() {
        let before = renewals("timeout");
        let pending = std::future::pending::<Result<Outcome, ()>>();
        let result = timed_renewal(tokio::time::timeout(
            std::time::Duration::from_secs(1),
            pending,
        ))
        .await;
        assert!(result.is_err());
        assert!(renewals("timeout") > before);
    }

    fn renewals(outcome: &'static str) -> u64 {
        TELEMETRY
            .renewals
            .get_or_create(&RenewalLabels { outcome })
            .get()
    }

    fn text(witness: bool) -> String {
        let mut out = String::new();
        encode(&mut out, "batman", "node1", witness);
        out
    }

    #[test]
    fn metrics_carry_patronis_labels() {
        record_renewal(RenewalOutcome::Committed, 0.002);
        let text = text(true);
        assert!(
            text.contains("tribune_witness{scope=\"batman\",name=\"node1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "tribune_lease_renewals_total{scope=\"batman\",name=\"node1\",outcome=\"committed\"} "
        ));
        assert!(text.contains(
            "tribune_lease_renewal_duration_seconds_bucket{scope=\"batman\",name=\"node1\",le=\"0.0025\"} "
        ));
        assert!(self::text(false).contains("tribune_witness{scope=\"batman\",name=\"node1\"} 0\n"));
    }

    /// Every metric family appears once in `/metrics` as the handler composes it (Patroni's
    /// block, then these): Prometheus rejects a whole scrape that repeats one. This fails if
    /// another module starts rendering a name defined here (as `tribune_lease_fences` was, by both).
    #[test]
    fn no_metric_family_is_rendered_twice() {
        // An empty family prints nothing: observe one request so that it shows.
        TELEMETRY
            .rest
            .get_or_create(&RestLabels {
                method: "GET",
                path: "/patroni",
            })
            .observe(0.001);
        let mut out = crate::api::metrics::render(&crate::api::metrics::MetricsInput {
            streaming: Some(true),
            ..Default::default()
        });
        encode(&mut out, "s", "n", false);
        let mut seen = std::collections::BTreeSet::new();
        for line in out.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line
                .split_whitespace()
                .nth(2)
                .unwrap_or_default()
                .to_owned();
            assert!(seen.insert(name.clone()), "{name} is rendered twice");
        }
        assert!(seen.contains("tribune_rest_request_duration_seconds"));
        assert!(seen.contains("patroni_primary"));
    }
}
