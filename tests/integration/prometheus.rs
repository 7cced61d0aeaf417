//! A real Prometheus (Debian's `prometheus`) scraping a running three-member cluster with the
//! alerting rules operators install (monitoring/prometheus/tribune-alerts.yml, unchanged): the
//! rule for a missing primary fires while the crashed primary is not yet replaced and resolves
//! after the failover; the change of primary is announced.
//!
//! TribuneNoPrimary waits 15 s (`for: 15s`: Tribune replaces a primary in about `ttl`, so only a
//! late failover is an alert). The cluster here runs with `ttl: 30` so that the failover takes
//! about 30 s and the alert has a window to fire in; Prometheus scrapes and evaluates every
//! second.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::*;

/// A Prometheus server of this test, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> &'static str {
    for path in ["/usr/bin/prometheus", "/usr/local/bin/prometheus"] {
        if Path::new(path).is_file() {
            return path;
        }
    }
    panic!("prometheus is not installed (scripts/setup.sh installs Debian's package)");
}

fn start_prometheus(dir: &Path, targets: &[String]) -> Prometheus {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/monitoring/prometheus/tribune-alerts.yml"
    );
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 900ms\n\
         rule_files: ['{rules}']\n\
         scrape_configs:\n  - job_name: tribune\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let ip = format!("127.{}.0.200", test_net());
    let port = PortPool::new().take(&ip);
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(prometheus_binary())
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={ip}:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        url: format!("http://{ip}:{port}"),
    }
}

/// The alerts Prometheus has for `name`: their states (`pending`, `firing`).
async fn alert_states(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    name: &str,
) -> Option<Vec<String>> {
    let doc = get_json(client, &format!("{}/api/v1/alerts", prometheus.url)).await?;
    Some(
        doc["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .filter_map(|a| a["state"].as_str().map(str::to_owned))
            .collect(),
    )
}

/// Waits until `name` fires (`firing`) or is gone (`!firing`); the time since `since` then.
async fn wait_alert(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    cluster: &Cluster,
    name: &str,
    firing: bool,
    limit: Duration,
    since: Instant,
) -> Duration {
    let what = format!("{name} to {}", if firing { "fire" } else { "resolve" });
    wait_for(limit, &what, cluster, || async {
        let states = alert_states(client, prometheus, name).await?;
        let done = if firing {
            states.iter().any(|s| s == "firing")
        } else {
            states.is_empty()
        };
        done.then(|| since.elapsed())
    })
    .await
}

async fn query(
    client: &reqwest::Client,
    prometheus: &Prometheus,
    promql: &str,
) -> Option<Vec<Value>> {
    let url = reqwest::Url::parse_with_params(
        &format!("{}/api/v1/query", prometheus.url),
        &[("query", promql)],
    )
    .ok()?;
    let doc = get_json(client, url.as_str()).await?;
    doc["data"]["result"].as_array().cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_alerts_while_a_crashed_primary_is_not_replaced_and_resolves_after() {
    let client = http_client();
    let options = Options {
        ttl: 30.0,
        synchronous_mode: "true",
        ..Options::default()
    };
    let (mut cluster, old) = started_cluster(&client, options).await;
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("{}:{}", n.ip, n.api_port))
        .collect();
    let prometheus = start_prometheus(cluster.root.path(), &targets);

    // Every agent scraped, the metrics there, and no alert about the primary yet.
    wait_for(
        Duration::from_secs(60),
        "Prometheus scraping every agent",
        &cluster,
        || async {
            let up = query(&client, &prometheus, "up{job=\"tribune\"} == 1").await?;
            let renewals = query(
                &client,
                &prometheus,
                "tribune_lease_renewals_total{outcome=\"committed\"} > 0",
            )
            .await?;
            let rest = query(
                &client,
                &prometheus,
                "tribune_rest_request_duration_seconds_count",
            )
            .await?;
            // Until every agent has been scraped once, the first evaluations may see only
            // standbys: TribuneNoPrimary is pending for a second, never firing (`for: 15s`).
            let quiet = alert_states(&client, &prometheus, "TribuneNoPrimary")
                .await?
                .is_empty();
            (up.len() == 3 && renewals.len() == 1 && !rest.is_empty() && quiet).then_some(())
        },
    )
    .await;

    // The primary's host crashes: its series go stale, the standbys report no primary.
    let crashed_at = Instant::now();
    cluster.crash(old);
    let no_primary = "TribuneNoPrimary";
    let fired_after = wait_alert(
        &client,
        &prometheus,
        &cluster,
        no_primary,
        true,
        Duration::from_secs(28),
        crashed_at,
    )
    .await;
    assert!(
        primary(&client, &cluster).await.is_none(),
        "the alert fired while the cluster had no primary"
    );

    // The lease ends after ttl (30 s) and a standby is promoted; the alert resolves.
    let new = wait_for(
        Duration::from_secs(60),
        "the failover",
        &cluster,
        || async { primary(&client, &cluster).await },
    )
    .await;
    assert_ne!(new, old);
    let failover_after = crashed_at.elapsed();
    let resolved_after = wait_alert(
        &client,
        &prometheus,
        &cluster,
        no_primary,
        false,
        Duration::from_secs(20),
        crashed_at,
    )
    .await;
    // The generation rose: the change of primary is announced.
    let changed = "TribunePrimaryChanged";
    let limit = Duration::from_secs(20);
    wait_alert(
        &client,
        &prometheus,
        &cluster,
        changed,
        true,
        limit,
        crashed_at,
    )
    .await;
    eprintln!(
        "TribuneNoPrimary fired {:.1} s after the crash, the failover came after {:.1} s, \
         the alert resolved after {:.1} s",
        fired_after.as_secs_f64(),
        failover_after.as_secs_f64(),
        resolved_after.as_secs_f64()
    );
}
