//! The operators' monitoring files (`monitoring/`) against the metrics the agent serves: every
//! metric name a Grafana panel or a Prometheus alert reads must be one `/metrics` renders, and
//! the dashboard must be a well-formed Grafana document. (`scripts/check-monitoring.sh` checks
//! the PromQL itself with promtool.)

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::metrics::{MetricsInput, render};

/// Every sample name `/metrics` can show, a witness's and a standby's together.
fn served_names() -> BTreeSet<String> {
    let mut text = render(&MetricsInput {
        streaming: Some(true),
        site_guarantee: Some(true),
        ..Default::default()
    });
    // Families without samples print nothing: give each one.
    super::record_renewal(super::RenewalOutcome::Committed, 0.001);
    super::TELEMETRY
        .rest
        .get_or_create(&super::RestLabels {
            method: "GET",
            path: "/primary",
        })
        .observe(0.001);
    super::encode(&mut text, "s", "n", false);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The `patroni_*` and `tribune_*` names in a PromQL expression.
fn referenced(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if (word.starts_with("patroni_") || word.starts_with("tribune_")) && c != '=' {
            names.push(word.clone());
        }
        word.clear();
    }
    names
}

fn expressions_of_dashboard(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in doc["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            out.push((
                panel["title"].as_str().unwrap_or("?").to_owned(),
                expr.to_owned(),
            ));
        }
    }
    for annotation in doc["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push(("annotation".to_owned(), expr.to_owned()));
        }
    }
    for variable in doc["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = variable["query"]["query"].as_str() {
            out.push(("variable".to_owned(), query.to_owned()));
        }
    }
    out
}

fn dashboard() -> Value {
    serde_json::from_str(include_str!(
        "../../monitoring/grafana/tribune-dashboard.json"
    ))
    .expect("the dashboard is JSON")
}

#[test]
fn the_dashboard_reads_only_metrics_the_agent_serves() {
    let served = served_names();
    let exprs = expressions_of_dashboard(&dashboard());
    assert!(exprs.len() > 20, "{}", exprs.len());
    for (panel, expr) in exprs {
        let names = referenced(&expr);
        assert!(!names.is_empty(), "{panel}: {expr} reads no Tribune metric");
        for name in names {
            assert!(
                served.contains(&name),
                "panel {panel:?} reads {name}, which /metrics does not serve"
            );
        }
    }
}

#[test]
fn the_dashboard_is_a_well_formed_grafana_document() {
    let doc = dashboard();
    assert_eq!(doc["uid"], "tribune-clusters");
    assert!(doc["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let panels = doc["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric id")),
            "ids are unique"
        );
        let grid = &panel["gridPos"];
        for key in ["x", "y", "w", "h"] {
            assert!(grid[key].is_u64(), "{} lacks gridPos.{key}", panel["title"]);
        }
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24);
        if panel["type"] != "row" {
            assert!(!panel["targets"].as_array().unwrap().is_empty());
            assert_eq!(panel["datasource"]["uid"], "${datasource}");
        }
    }
    let variables: Vec<&str> = doc["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "scope"]);
}

#[test]
fn the_alerts_read_only_metrics_the_agent_serves() {
    let served = served_names();
    let rules = crate::ctl::yaml::parse(include_str!(
        "../../monitoring/prometheus/tribune-alerts.yml"
    ))
    .expect("the rules are YAML");
    let mut alerts = 0;
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alerting rules only");
            let expr = rule["expr"].as_str().expect("an expr");
            assert!(
                rule["labels"]["severity"].is_string(),
                "{name} has a severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name} has a summary"
            );
            for metric in referenced(expr) {
                assert!(
                    served.contains(&metric),
                    "alert {name} reads {metric}, which /metrics does not serve"
                );
            }
            alerts += 1;
        }
    }
    assert_eq!(alerts, 12);
}

#[test]
fn metric_names_are_found_in_expressions() {
    assert_eq!(
        referenced("sum by (scope) (patroni_primary{scope=~\"$scope\"} + tribune_witness)"),
        ["patroni_primary", "tribune_witness"]
    );
    assert!(referenced("rate(up[5m])").is_empty());
}
