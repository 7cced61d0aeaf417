//! `GET /metrics`: Patroni's metrics (names, types, HELP texts, the `scope`/`name` labels;
//! reference/patroni.md section 1.8) in the Prometheus text format, plus Tribune's own: the
//! Raft node, the lease, and whether synchronous replication has degraded.
//!
//! Tribune's own metrics go through `prometheus-client` (a registry with the `scope`/`name`
//! labels, its Prometheus text encoder). Patroni's block is rendered here by hand, because
//! that crate cannot print it as Patroni does and dashboards and `check_patroni` read it as
//! Patroni prints it: its encoders name every counter `<name>_total` (Patroni's
//! `patroni_xlog_location` is a counter without the suffix) and write no free comment lines
//! (Patroni puts `# Values: ...` between the HELP and TYPE lines of `patroni_postgres_state`).

use std::borrow::Cow;
use std::fmt::Write;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::state::DbState;

/// Everything the metrics show, gathered by the handler.
#[derive(Clone, Debug, Default)]
pub struct MetricsInput {
    pub scope: String,
    pub name: String,
    /// The member's `site` tag: a `site` label on every sample when set.
    pub site: Option<String>,
    /// The Patroni version whose API Tribune implements (`patroni_version`).
    pub version: String,
    /// Tribune's own version (`tribune_build_info`).
    pub tribune_version: String,
    pub state: DbState,
    pub running: bool,
    pub primary: bool,
    /// The standby leader of a standby cluster.
    pub standby_leader: bool,
    pub replica: bool,
    pub sync_standby: bool,
    pub quorum_standby: bool,
    pub postmaster_start_epoch: f64,
    pub xlog_location: u64,
    pub received_location: u64,
    pub replayed_location: u64,
    pub replayed_timestamp_epoch: f64,
    pub replay_paused: bool,
    /// `None` when not a running standby (Patroni then omits the two replication metrics).
    pub streaming: Option<bool>,
    pub server_version: u32,
    pub cluster_unlocked: bool,
    pub timeline: u32,
    pub dcs_last_seen: u64,
    pub pending_restart: bool,
    pub paused: bool,
    // Tribune's own.
    pub raft_term: u64,
    pub raft_leader: bool,
    pub raft_commit_index: u64,
    pub raft_applied_index: u64,
    pub raft_store_bytes: u64,
    pub lease_valid: bool,
    pub generation: u64,
    /// Synchronous mode is on but this primary has no synchronous standby: commits are
    /// acknowledged without one (non-strict) or blocked (strict).
    pub synchronous_degraded: bool,
    /// On the primary with `synchronous_site_survival` on: whether every acknowledged commit is
    /// also outside its site (`tribune_sync_site_guarantee`).
    pub site_guarantee: Option<bool>,
    /// The runtime's counters (fences, actions).
    pub counters: crate::node::Counters,
    /// The lease keeper's timings and watchdog.
    pub keeper: crate::node::lease::KeeperView,
}

/// Patroni's numeric `patroni_postgres_state`.
fn state_number(state: DbState) -> u8 {
    match state {
        DbState::InitializingNewCluster => 0,
        DbState::InitdbFailed => 1,
        DbState::CreatingReplica => 4,
        DbState::Running | DbState::Unknown => 5,
        DbState::Starting => 6,
        DbState::StartFailed => 8,
        DbState::Restarting => 9,
        DbState::Stopping => 11,
        DbState::Stopped | DbState::Rewinding => 12,
        DbState::StopFailed => 13,
        DbState::Crashed => 14,
    }
}

/// `4.1.5` -> `040105`.
fn version_digits(version: &str) -> String {
    version
        .split('.')
        .take(3)
        .map(|p| format!("{:02}", p.parse::<u32>().unwrap_or(0)))
        .collect()
}

fn b(v: bool) -> u8 {
    u8::from(v)
}

pub fn render(m: &MetricsInput) -> String {
    let site = m
        .site
        .as_deref()
        .map(|site| format!(",site=\"{}\"", escape(site)))
        .unwrap_or_default();
    let labels = format!(
        "{{scope=\"{}\",name=\"{}\"{site}}}",
        escape(&m.scope),
        escape(&m.name)
    );
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
        push_metric(&mut out, &labels, name, kind, help, value)
    };
    metric(
        "patroni_version",
        "gauge",
        "Patroni semver without periods.",
        &version_digits(&m.version),
    );
    metric(
        "patroni_postgres_running",
        "gauge",
        "Value is 1 if Postgres is running, 0 otherwise.",
        &b(m.running),
    );
    metric(
        "patroni_postmaster_start_time",
        "gauge",
        "Epoch seconds since Postgres started.",
        &m.postmaster_start_epoch,
    );
    metric(
        "patroni_primary",
        "gauge",
        "Value is 1 if this node is the leader, 0 otherwise.",
        &b(m.primary),
    );
    metric(
        "patroni_xlog_location",
        "counter",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        &m.xlog_location,
    );
    metric(
        "patroni_standby_leader",
        "gauge",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        &b(m.standby_leader),
    );
    metric(
        "patroni_replica",
        "gauge",
        "Value is 1 if this node is a replica, 0 otherwise.",
        &b(m.replica),
    );
    metric(
        "patroni_sync_standby",
        "gauge",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        &b(m.sync_standby),
    );
    metric(
        "patroni_quorum_standby",
        "gauge",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        &b(m.quorum_standby),
    );
    metric(
        "patroni_xlog_received_location",
        "counter",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        &m.received_location,
    );
    metric(
        "patroni_xlog_replayed_location",
        "counter",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        &m.replayed_location,
    );
    metric(
        "patroni_xlog_replayed_timestamp",
        "gauge",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        &m.replayed_timestamp_epoch,
    );
    metric(
        "patroni_xlog_paused",
        "gauge",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        &b(m.replay_paused),
    );
    if let Some(streaming) = m.streaming {
        metric(
            "patroni_postgres_streaming",
            "gauge",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            &b(streaming),
        );
        metric(
            "patroni_postgres_in_archive_recovery",
            "gauge",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            &b(!streaming),
        );
    }
    metric(
        "patroni_postgres_server_version",
        "gauge",
        "Version of Postgres (if running), 0 otherwise.",
        &m.server_version,
    );
    metric(
        "patroni_cluster_unlocked",
        "gauge",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        &b(m.cluster_unlocked),
    );
    metric(
        "patroni_failsafe_mode_is_active",
        "gauge",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        &0,
    );
    metric(
        "patroni_postgres_timeline",
        "gauge",
        "Postgres timeline of this node (if running), 0 otherwise.",
        &m.timeline,
    );
    metric(
        "patroni_dcs_last_seen",
        "gauge",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        &m.dcs_last_seen,
    );
    metric(
        "patroni_pending_restart",
        "gauge",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        &b(m.pending_restart),
    );
    metric(
        "patroni_is_paused",
        "gauge",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        &b(m.paused),
    );
    let _ = writeln!(
        out,
        "# HELP patroni_postgres_state Numeric representation of Postgres state."
    );
    let _ = writeln!(
        out,
        "# Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, \
         4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, \
         9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed"
    );
    let _ = writeln!(out, "# TYPE patroni_postgres_state gauge");
    let _ = writeln!(
        out,
        "patroni_postgres_state{labels} {}",
        state_number(m.state)
    );
    let _ = prometheus_text::encode(&mut out, &tribune_registry(m));
    out
}

/// Tribune's own metrics, with the same `scope` and `name` labels as Patroni's.
fn tribune_registry(m: &MetricsInput) -> Registry {
    let mut labels: Vec<(Cow<'static, str>, Cow<'static, str>)> = vec![
        ("scope".into(), m.scope.clone().into()),
        ("name".into(), m.name.clone().into()),
    ];
    if let Some(site) = &m.site {
        labels.push(("site".into(), site.clone().into()));
    }
    let mut registry = Registry::with_labels(labels.into_iter());
    registry.register(
        "tribune_build",
        "Tribune's own version (patroni_version is the Patroni API it implements)",
        prometheus_client::metrics::info::Info::new(vec![(
            "version".to_owned(),
            m.tribune_version.clone(),
        )]),
    );
    // The registry ends every help text with a full stop itself.
    let mut gauge = |name: &str, help: &str, value: u64| {
        registry.register(name, help, ConstGauge::new(value));
    };
    gauge(
        "tribune_raft_term",
        "Current Raft term of this node",
        m.raft_term,
    );
    gauge(
        "tribune_raft_leader",
        "Value is 1 if this node is the Raft leader, 0 otherwise",
        b(m.raft_leader).into(),
    );
    gauge(
        "tribune_raft_commit_index",
        "Highest Raft log index known committed",
        m.raft_commit_index,
    );
    gauge(
        "tribune_raft_applied_index",
        "Highest Raft log index applied to the cluster state",
        m.raft_applied_index,
    );
    gauge(
        "tribune_raft_store_bytes",
        "Size of the Raft store (sled) on disk, bytes",
        m.raft_store_bytes,
    );
    gauge(
        "tribune_lease_valid",
        "Value is 1 if this node holds a valid leader lease, 0 otherwise",
        b(m.lease_valid).into(),
    );
    gauge(
        "tribune_generation",
        "Cluster generation (the fencing token): rises at every change of primary",
        m.generation,
    );
    gauge(
        "tribune_synchronous_degraded",
        "Value is 1 if synchronous mode is on and this primary has no synchronous standby, 0 otherwise",
        b(m.synchronous_degraded).into(),
    );
    if let Some(site_guarantee) = m.site_guarantee {
        gauge(
            "tribune_sync_site_guarantee",
            "Value is 1 if every acknowledged commit is also on a member outside this primary's site (synchronous_site_survival), 0 if not (degraded or blocked)",
            b(site_guarantee).into(),
        );
    }
    registry.register(
        "tribune_lease_ttl_seconds",
        "The lease duration (ttl) this member's lease keeper applies now",
        ConstGauge::new(m.keeper.ttl.as_secs_f64()),
    );
    registry.register(
        "tribune_lease_fence_margin_seconds",
        "How long before ttl a primary that could not renew fences itself (retry_timeout)",
        ConstGauge::new(m.keeper.fence_margin.as_secs_f64()),
    );
    if let Some(watchdog) = m.keeper.watchdog {
        integer_gauge(
            &mut registry,
            "tribune_watchdog_armed",
            "Value is 1 if the watchdog is armed (this member holds the lease), 0 otherwise",
            b(watchdog.armed).into(),
        );
        integer_gauge(
            &mut registry,
            "tribune_watchdog_timeout_seconds",
            "The timeout the watchdog runs with, or will when armed: ttl minus safety_margin",
            watchdog.timeout_secs.into(),
        );
    }
    registry.register(
        "tribune_lease_fences",
        "How often this member stopped its database because its leader lease lapsed",
        m.counters.lease_fences.clone(),
    );
    registry.register(
        "tribune_peer_fences",
        "How often this member fenced a former primary's database over SQL",
        m.counters.peer_fences.clone(),
    );
    registry.register(
        "tribune_actions",
        "HA actions this member executed, by action and outcome (done, failed, unknown)",
        m.counters.actions.clone(),
    );
    registry
}

fn integer_gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    registry.register(name, help, ConstGauge::new(value));
}

/// One metric: its HELP and TYPE lines, then its sample.
fn push_metric(
    out: &mut String,
    labels: &str,
    name: &str,
    kind: &str,
    help: &str,
    value: &dyn std::fmt::Display,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name}{labels} {value}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary() -> MetricsInput {
        MetricsInput {
            scope: "batman".into(),
            name: "node1".into(),
            version: "4.1.5".into(),
            tribune_version: "0.1.0".into(),
            state: DbState::Running,
            running: true,
            primary: true,
            xlog_location: 134225048,
            server_version: 150018,
            timeline: 8,
            ..Default::default()
        }
    }

    #[test]
    fn samples_carry_patronis_labels_and_values() {
        let text = render(&primary());
        assert!(
            text.contains("patroni_version{scope=\"batman\",name=\"node1\"} 040105\n"),
            "{text}"
        );
        assert!(text.contains("patroni_primary{scope=\"batman\",name=\"node1\"} 1\n"));
        assert!(
            text.contains(
                "tribune_build_info{scope=\"batman\",name=\"node1\",version=\"0.1.0\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("patroni_xlog_location{scope=\"batman\",name=\"node1\"} 134225048\n")
        );
        assert!(text.contains("# TYPE patroni_xlog_location counter\n"));
        assert!(text.contains("patroni_postgres_state{scope=\"batman\",name=\"node1\"} 5\n"));
        // A primary is not a replica: no replication state metrics.
        assert!(!text.contains("patroni_postgres_streaming"));
    }

    #[test]
    fn every_metric_has_help_and_type_before_its_sample() {
        let mut m = primary();
        m.streaming = Some(true);
        let text = render(&m);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.starts_with('#'))
        {
            let name = line.split('{').next().unwrap();
            assert!(
                lines[i - 1] == format!("# TYPE {name} gauge")
                    || lines[i - 1] == format!("# TYPE {name} counter"),
                "{name}"
            );
            assert!(
                lines[..i]
                    .iter()
                    .rev()
                    .take(3)
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "{name}"
            );
        }
        assert!(text.contains("# HELP patroni_postgres_state Numeric representation of Postgres state.\n# Values: 0=initdb"));
        assert!(
            text.contains(
                "patroni_postgres_in_archive_recovery{scope=\"batman\",name=\"node1\"} 0\n"
            )
        );
    }

    #[test]
    fn a_standby_leader_is_neither_primary_nor_replica() {
        let m = MetricsInput {
            primary: false,
            standby_leader: true,
            xlog_location: 0,
            received_location: 134217824,
            streaming: Some(true),
            ..primary()
        };
        let text = render(&m);
        let value = |metric: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{metric}{{")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(value("patroni_standby_leader").as_deref(), Some("1"));
        assert_eq!(value("patroni_primary").as_deref(), Some("0"));
        assert_eq!(value("patroni_replica").as_deref(), Some("0"));
        assert_eq!(
            value("patroni_xlog_received_location").as_deref(),
            Some("134217824")
        );
        assert_eq!(
            render(&primary())
                .lines()
                .find(|l| l.starts_with("patroni_standby_leader{"))
                .and_then(|l| l.rsplit(' ').next()),
            Some("0")
        );
    }

    /// A member with a `site` tag labels every sample, Patroni's and Tribune's, with it.
    #[test]
    fn a_site_labels_every_sample() {
        let mut m = primary();
        m.site = Some("east".into());
        let text = render(&m);
        assert!(
            text.contains("patroni_primary{scope=\"batman\",name=\"node1\",site=\"east\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tribune_raft_leader{scope=\"batman\",name=\"node1\",site=\"east\"}"),
            "{text}"
        );
        assert!(!render(&primary()).contains("site="));
        assert!(!render(&primary()).contains("tribune_sync_site_guarantee"));
        for (guarantee, value) in [(true, 1), (false, 0)] {
            let mut m = primary();
            m.site_guarantee = Some(guarantee);
            assert!(
                render(&m).contains(&format!(
                    "tribune_sync_site_guarantee{{scope=\"batman\",name=\"node1\"}} {value}\n"
                )),
                "{guarantee}"
            );
        }
    }

    #[test]
    fn degraded_synchronous_replication_shows() {
        let mut m = primary();
        m.synchronous_degraded = true;
        assert!(
            render(&m)
                .contains("tribune_synchronous_degraded{scope=\"batman\",name=\"node1\"} 1\n")
        );
    }

    /// Tribune's metrics read as they did when they were rendered by hand: the same names,
    /// HELP texts ending in one full stop, gauge types, labels and integer values.
    #[test]
    fn tribune_metrics_keep_their_exposition() {
        let mut m = primary();
        m.scope = "bat\"man".into();
        m.raft_term = 7;
        m.raft_leader = true;
        m.raft_store_bytes = 123_456;
        let text = render(&m);
        let expected = "# HELP tribune_raft_term Current Raft term of this node.\n\
                        # TYPE tribune_raft_term gauge\n\
                        tribune_raft_term{scope=\"bat\\\"man\",name=\"node1\"} 7\n\
                        # HELP tribune_raft_leader Value is 1 if this node is the Raft leader, 0 otherwise.\n\
                        # TYPE tribune_raft_leader gauge\n\
                        tribune_raft_leader{scope=\"bat\\\"man\",name=\"node1\"} 1\n";
        assert!(text.contains(expected), "{text}");
        assert!(
            text.contains("tribune_raft_store_bytes{scope=\"bat\\\"man\",name=\"node1\"} 123456\n")
        );
        let types: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE tribune_"))
            .collect();
        assert_eq!(
            types,
            [
                "# TYPE tribune_build_info gauge",
                "# TYPE tribune_raft_term gauge",
                "# TYPE tribune_raft_leader gauge",
                "# TYPE tribune_raft_commit_index gauge",
                "# TYPE tribune_raft_applied_index gauge",
                "# TYPE tribune_raft_store_bytes gauge",
                "# TYPE tribune_lease_valid gauge",
                "# TYPE tribune_generation gauge",
                "# TYPE tribune_synchronous_degraded gauge",
                "# TYPE tribune_lease_ttl_seconds gauge",
                "# TYPE tribune_lease_fence_margin_seconds gauge",
                "# TYPE tribune_lease_fences_total counter",
                "# TYPE tribune_peer_fences_total counter",
            ],
            "tribune_actions_total shows once an action ran, tribune_watchdog_* with a watchdog"
        );
        assert!(!text.contains(".."), "a help text ends in two full stops");
        assert!(
            !text.contains("# EOF"),
            "the Prometheus format, not OpenMetrics"
        );
    }

    #[test]
    fn counters_show_with_their_labels() {
        let m = primary();
        m.counters.peer_fences.inc();
        let promote = crate::ha::Action::Promote {
            generation: crate::types::Generation(3),
        };
        m.counters
            .action(&promote, &crate::ha::ActionOutcome::done());
        let text = render(&m);
        assert!(
            text.contains("tribune_peer_fences_total{scope=\"batman\",name=\"node1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("tribune_lease_fences_total{scope=\"batman\",name=\"node1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "tribune_actions_total{scope=\"batman\",name=\"node1\",action=\"promote\",outcome=\"done\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn version_digits_are_zero_padded() {
        assert_eq!(version_digits("4.1.5"), "040105");
        assert_eq!(version_digits("0.1.0"), "000100");
    }
}
