//! REST benchmark (run by `scripts/bench-rest.sh`, ignored in the normal test run): `wrk`
//! against `GET /primary` and `GET /patroni` of the primary's agent while a three-node cluster
//! runs, then that agent's resident memory (VmRSS) and its peak (VmHWM). Figures are printed,
//! never asserted: speed is shown, not tested.
//!
//! Knobs (environment): `TRIBUNE_BENCH_SECONDS` (10) per endpoint, `TRIBUNE_BENCH_CONNECTIONS`
//! (32) and `TRIBUNE_BENCH_THREADS` (1) for wrk.

use std::time::Duration;

use crate::harness::*;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of `pid`, in kB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What one wrk run reports.
struct WrkFigures {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    errors: String,
}

/// A wrk latency such as `812.00us`, `1.25ms` or `2.01s`, in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(output: &str) -> WrkFigures {
    let percentile = |label: &str| {
        output
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(label))
            .and_then(|rest| millis(rest.trim()))
            .unwrap_or(f64::NAN)
    };
    WrkFigures {
        requests_per_sec: output
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0),
        p50_ms: percentile("50%"),
        p99_ms: percentile("99%"),
        non_2xx: output
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        errors: output
            .lines()
            .find(|l| l.trim().starts_with("Socket errors:"))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default(),
    }
}

#[test]
fn wrk_output_is_read() {
    let sample = "Running 10s test @ http://127.0.0.11:20001/primary
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   9.10ms   90.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.50ms
     99%    2.25ms
  200000 requests in 10.00s, 150.00MB read
  Non-2xx or 3xx responses: 7
Requests/sec:  20000.50
Transfer/sec:     15.00MB
";
    let f = parse_wrk(sample);
    assert_eq!(f.requests_per_sec, 20000.5);
    assert!((f.p50_ms - 0.812).abs() < 1e-9);
    assert_eq!(f.p99_ms, 2.25);
    assert_eq!(f.non_2xx, 7);
    assert!((millis("2.01s").unwrap() - 2010.0).abs() < 1e-9);
    assert_eq!(millis("12"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-rest.sh"]
async fn bench_rest_endpoints() {
    let seconds = knob("TRIBUNE_BENCH_SECONDS", 10);
    let connections = knob("TRIBUNE_BENCH_CONNECTIONS", 32);
    let threads = knob("TRIBUNE_BENCH_THREADS", 1);
    let client = http_client();
    // Tribune's default settings, as bench-failover: ttl 3, loop_wait 1, synchronous_mode on.
    let (cluster, p) = default_cluster(&client).await;
    for i in (0..cluster.nodes.len()).filter(|i| *i != p) {
        wait_streaming_replica(&client, &cluster, i, "every replica streaming").await;
    }
    // Let start-up allocations settle before the first reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node = &cluster.nodes[p];
    let pid = node.child.as_ref().expect("the primary's agent runs").id();
    let (rss, hwm) = memory_kb(pid);
    println!(
        "agent {} (pid {pid}) before the load: VmRSS {:.1} MB, VmHWM {:.1} MB",
        node.name,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    for path in ["/primary", "/patroni"] {
        let url = format!("{}{path}", node.api());
        let out = tokio::process::Command::new("wrk")
            .args([
                &format!("-t{threads}"),
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "--latency",
                &url,
            ])
            .output()
            .await
            .expect("run wrk (scripts/bench-rest.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "wrk failed: {text}");
        let f = parse_wrk(&text);
        let (rss, hwm) = memory_kb(pid);
        println!(
            "GET {path}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx{}{} \
             (wrk -t{threads} -c{connections} -d{seconds}s); agent VmRSS {:.1} MB, VmHWM {:.1} MB",
            f.requests_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.non_2xx,
            if f.errors.is_empty() { "" } else { ", " },
            f.errors,
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    // The primary must still be the primary: the load did not cost it its lease.
    let still = primary(&client, &cluster).await;
    println!(
        "after the load the primary is {}",
        still.map_or("nobody".to_owned(), |i| cluster.nodes[i].name.clone())
    );
}
