//! A real HAProxy in front of a three-node cluster, configured by `tribunectl haproxy-config`
//! from the cluster's own `GET /cluster`: the path production traffic takes.
//!
//! [`Haproxy`] starts HAProxy in front of a running cluster and says which member a connection
//! through a listener reaches; every test that needs HAProxy (failover here; switchover and
//! pause later) uses it. HAProxy must be installed (`scripts/setup.sh` does it): a missing
//! binary fails the test, it never skips.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tribune::ctl::haproxy::CHECK_TIMING;

use crate::cluster::{BOOTSTRAP_DEADLINE, wait_healthy};
use crate::harness::*;

/// HAProxy binds loopback only, like every server the tests start.
const BIND: &str = "127.0.0.1";

/// A connection attempt through HAProxy, from connect to the query's answer. While no server
/// is up in a listener, HAProxy holds a new connection in its queue for `timeout connect` (4 s)
/// and forwards it as soon as one comes up, so an attempt may take that long.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(5);

/// How long HAProxy's checks take to agree with the cluster once it is healthy: every server
/// starts up and is marked down at its first failed check, and the first checks are spread
/// over `inter` (1 s). Ten times that, for a shared two-core machine.
const ROUTING_DEADLINE: Duration = Duration::from_secs(10);

/// Tribune replaces a crashed primary in about `ttl` (3 s): README's benchmark measured a
/// median of 2.86 s and a maximum of 3.31 s from the crash to the first write on the new
/// primary, over 20 crashes.
const TRIBUNE_FAILOVER: Duration = Duration::from_millis(3_500);

/// Slack for a shared two-core machine running three agents, three PostgreSQL servers and
/// HAProxy.
const MARGIN: Duration = Duration::from_secs(3);

/// From the crash of the primary to the first write acknowledged through HAProxy's primary
/// port: Tribune's failover, then `rise` passing checks of the new primary, each at most
/// `downinter` apart while it is down in the primary listener (connections made meanwhile wait
/// in HAProxy's queue and go through as soon as it is up), plus the margin: 3.5 + 0.5 + 3 s.
const PRIMARY_PORT_FAILOVER_DEADLINE: Duration = Duration::from_millis(
    TRIBUNE_FAILOVER.as_millis() as u64
        + CHECK_TIMING.downinter.as_millis() as u64 * CHECK_TIMING.rise as u64
        + MARGIN.as_millis() as u64,
);

/// From the new primary being reached through the primary port to the replicas listener
/// dropping it: its `/replica` answers 503 from its promotion on, and `fall` failed checks,
/// the first within `inter` and the rest `fastinter` apart, each failing at once (the agent
/// answers), mark it down: 1 + 0.25 s, plus the margin.
const REPLICA_PORT_FAILOVER_DEADLINE: Duration = Duration::from_millis(
    CHECK_TIMING.inter.as_millis() as u64
        + CHECK_TIMING.fastinter.as_millis() as u64 * (CHECK_TIMING.fall as u64 - 1)
        + MARGIN.as_millis() as u64,
);

/// HAProxy's two listeners, as `tribunectl haproxy-config` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Primary,
    Replicas,
}

/// The member a connection through HAProxy reached, as that member's PostgreSQL tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reached {
    pub node: usize,
    pub in_recovery: bool,
}

/// HAProxy as a child process, in front of one cluster; ended by PID when dropped (with its
/// output printed if the test is failing).
pub struct Haproxy {
    child: Child,
    pub primary_port: u16,
    pub replica_port: u16,
    pub stats_port: u16,
    log: PathBuf,
    /// How clients log in to the databases behind it.
    database: Database,
}

/// The installed `haproxy`: on PATH, or in /usr/sbin where Debian puts it (not on an ordinary
/// user's PATH).
fn haproxy_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
        .expect("haproxy is not installed: run scripts/setup.sh (apt-get install haproxy)")
}

impl Haproxy {
    /// Writes the configuration `tribunectl haproxy-config` prints for `cluster` (in the
    /// cluster's directory), starts HAProxy on loopback ports of its own, and returns once
    /// its primary port accepts connections. Its checks may not have run yet.
    pub fn start(cluster: &Cluster) -> Haproxy {
        let binary = haproxy_binary();
        let mut ports = PortPool::new();
        let (primary_port, replica_port, stats_port) =
            (ports.take(BIND), ports.take(BIND), ports.take(BIND));
        drop(ports);
        let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api()).collect();
        let out = Command::new(env!("CARGO_BIN_EXE_tribunectl"))
            .args(["--url", &urls.join(","), "haproxy-config", "--bind", BIND])
            .args(["--primary-port", &primary_port.to_string()])
            .args(["--replica-port", &replica_port.to_string()])
            .args(["--stats-port", &stats_port.to_string()])
            .output()
            .expect("run tribunectl haproxy-config");
        assert!(
            out.status.success(),
            "tribunectl haproxy-config failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = cluster.root.path();
        let config = dir.join("haproxy.cfg");
        fs::write(&config, &out.stdout).expect("write haproxy.cfg");
        let log = dir.join("haproxy.log");
        let output = fs::File::create(&log).expect("create haproxy.log");
        // -db: stay in the foreground, so the child is HAProxy itself and its PID ends it.
        let child = Command::new(&binary)
            .arg("-f")
            .arg(&config)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut haproxy = Haproxy {
            child,
            primary_port,
            replica_port,
            stats_port,
            log,
            database: cluster.options.database.clone(),
        };
        haproxy.wait_listening(&config);
        haproxy
    }

    fn wait_listening(&mut self, config: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((BIND, self.primary_port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "haproxy -f {} exited ({status}) before listening:\n{}",
                    config.display(),
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {BIND}:{} within 10 s:\n{}",
                self.primary_port,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self, listener: Listener) -> u16 {
        match listener {
            Listener::Primary => self.primary_port,
            Listener::Replicas => self.replica_port,
        }
    }

    pub fn conninfo(&self, listener: Listener) -> String {
        self.database.conninfo(BIND, self.port(listener))
    }

    /// What HAProxy's own output says so far (server state changes, errors).
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// HAProxy's view of every server, one `listener/member status check code` line each,
    /// from its stats page.
    pub fn server_states(&self) -> String {
        self.stats_csv()
            .lines()
            .map(|line| line.split(',').collect::<Vec<_>>())
            // pxname, svname, ..., status (17), ..., check_status (36), check_code (37)
            .filter(|f| {
                f.len() > 37 && !f[0].starts_with('#') && !matches!(f[1], "FRONTEND" | "BACKEND")
            })
            .map(|f| format!("{}/{} {} {} {}", f[0], f[1], f[17], f[36], f[37]))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// HAProxy's stats page as CSV, or why it could not be read.
    fn stats_csv(&self) -> String {
        use std::io::{Read, Write};
        let fetch = || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect((BIND, self.stats_port))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /;csv HTTP/1.0\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        };
        fetch().unwrap_or_else(|e| format!("(no stats: {e})"))
    }

    /// The member a new connection through `listener` reaches, told by its PostgreSQL port;
    /// `None` when no connection or answer came within [`ATTEMPT_LIMIT`].
    pub async fn reached(&self, cluster: &Cluster, listener: Listener) -> Option<Reached> {
        let attempt = async {
            let client = connect_to(&self.conninfo(listener)).await?;
            let row = client
                .query_one(
                    "SELECT pg_is_in_recovery(), current_setting('port')::int",
                    &[],
                )
                .await
                .ok()?;
            let port = u16::try_from(row.get::<_, i32>(1)).ok()?;
            let node = cluster.nodes.iter().position(|n| n.pg_port == port)?;
            Some(Reached {
                node,
                in_recovery: row.get(0),
            })
        };
        tokio::time::timeout(ATTEMPT_LIMIT, attempt)
            .await
            .ok()
            .flatten()
    }

    /// Wait until `connections` new connections in a row through the primary port all reach
    /// member `node`, writable.
    pub async fn wait_primary_port_reaches(&self, cluster: &Cluster, node: usize, limit: Duration) {
        let what = format!(
            "HAProxy's primary port to reach {} (the primary) only",
            cluster.nodes[node].name
        );
        let expected = Reached {
            node,
            in_recovery: false,
        };
        wait_for(limit, &what, cluster, || async {
            for _ in 0..3 {
                if self.reached(cluster, Listener::Primary).await != Some(expected) {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    /// Wait until new connections through the replica port reach exactly `standbys`, each in
    /// recovery: `2 × standbys` connections in a row, spread by HAProxy's round robin.
    pub async fn wait_replica_port_reaches(
        &self,
        cluster: &Cluster,
        standbys: &[usize],
        limit: Duration,
    ) {
        let expected: BTreeSet<usize> = standbys.iter().copied().collect();
        let names: Vec<&str> = standbys
            .iter()
            .map(|&i| cluster.nodes[i].name.as_str())
            .collect();
        let what = format!("HAProxy's replica port to reach {names:?} only");
        wait_for(limit, &what, cluster, || async {
            let mut seen = BTreeSet::new();
            for _ in 0..2 * standbys.len() {
                let reached = self.reached(cluster, Listener::Replicas).await?;
                if !reached.in_recovery || !expected.contains(&reached.node) {
                    return None;
                }
                seen.insert(reached.node);
            }
            (seen == expected).then_some(())
        })
        .await
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== haproxy servers ====\n{}\n==== haproxy output ====\n{}",
                self.server_states(),
                self.output()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HAProxy layout of Patroni's documentation, with Tribune's check timing: the primary port
/// reaches the primary and the replica port the two standbys; after a crash of the primary's
/// host the primary port reaches the new primary, within a deadline, and the replica port the
/// remaining standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_reaches_the_primary_and_standbys_and_follows_a_failover() {
    haproxy_follows_a_failover(Database::Postgres).await;
}

pub async fn haproxy_follows_a_failover(database: Database) {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            database,
            ..Options::default()
        },
    );
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    let haproxy = Haproxy::start(&cluster);
    let standbys: Vec<usize> = (0..3).filter(|i| *i != p).collect();
    haproxy
        .wait_primary_port_reaches(&cluster, p, ROUTING_DEADLINE)
        .await;
    haproxy
        .wait_replica_port_reaches(&cluster, &standbys, ROUTING_DEADLINE)
        .await;
    let through_primary_port = haproxy.conninfo(Listener::Primary);
    connect_to(&through_primary_port)
        .await
        .expect("connect through HAProxy's primary port")
        .batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .expect("create a table through HAProxy's primary port");
    assert!(insert_at(&through_primary_port, 1).await);

    // Crash the primary's host; write through HAProxy's primary port until a write succeeds.
    let crashed_at = Instant::now();
    cluster.crash(p);
    let mut next_id = 1000;
    wait_for(
        PRIMARY_PORT_FAILOVER_DEADLINE,
        "a write acknowledged through HAProxy's primary port after the crash",
        &cluster,
        || {
            next_id += 1;
            let (id, conninfo) = (next_id, &through_primary_port);
            async move { insert_at(conninfo, id).await.then_some(()) }
        },
    )
    .await;
    let took = crashed_at.elapsed();
    println!(
        "failover through HAProxy: first write acknowledged through the primary port {:.2}s \
         after the crash of {} (deadline {:.1}s)",
        took.as_secs_f64(),
        cluster.nodes[p].name,
        PRIMARY_PORT_FAILOVER_DEADLINE.as_secs_f64()
    );
    assert!(
        took <= PRIMARY_PORT_FAILOVER_DEADLINE,
        "the first write through HAProxy took {took:?}, more than {PRIMARY_PORT_FAILOVER_DEADLINE:?}"
    );

    // It went to the member the REST API names as primary, and only there; the replica port
    // now reaches the remaining standby only.
    let np = primary(&client, &cluster)
        .await
        .expect("a member answers /primary after the failover");
    assert_ne!(np, p, "the crashed member answers /primary");
    assert_eq!(
        haproxy.reached(&cluster, Listener::Primary).await,
        Some(Reached {
            node: np,
            in_recovery: false
        }),
        "HAProxy's primary port after the failover"
    );
    let remaining: Vec<usize> = standbys.iter().copied().filter(|i| *i != np).collect();
    haproxy
        .wait_replica_port_reaches(&cluster, &remaining, REPLICA_PORT_FAILOVER_DEADLINE)
        .await;
}

/// A planned switchover answers in under a second (README's measurement: 0.74 s); HAProxy then
/// needs `rise` checks of the new primary, `downinter` apart, plus the margin.
const PRIMARY_PORT_SWITCHOVER_DEADLINE: Duration = Duration::from_millis(
    1_000
        + CHECK_TIMING.downinter.as_millis() as u64 * CHECK_TIMING.rise as u64
        + MARGIN.as_millis() as u64,
);

/// Pause and switchover through HAProxy: in pause the endpoints answer as Patroni's (a
/// running primary and running standbys keep their codes; a standby whose server stopped
/// answers 503 everywhere and leaves the replica port, and the agent does not start it); a
/// switchover to a named candidate, allowed in pause, moves the primary port within a deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_follows_a_switchover_and_a_paused_cluster() {
    haproxy_follows_a_switchover_in_pause(Database::Postgres).await;
}

pub async fn haproxy_follows_a_switchover_in_pause(database: Database) {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            database,
            ..Options::default()
        },
    );
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, BOOTSTRAP_DEADLINE).await;
    let haproxy = Haproxy::start(&cluster);
    let (s1, s2) = ((p + 1) % 3, (p + 2) % 3);
    haproxy
        .wait_primary_port_reaches(&cluster, p, ROUTING_DEADLINE)
        .await;
    haproxy
        .wait_replica_port_reaches(&cluster, &[s1, s2], ROUTING_DEADLINE)
        .await;

    let paused = client
        .patch(format!("{}/config", cluster.nodes[s1].api()))
        .json(&serde_json::json!({"pause": true}))
        .send()
        .await
        .expect("PATCH /config");
    assert_eq!(paused.status().as_u16(), 200);
    wait_every_member_paused(&client, &cluster, ROUTING_DEADLINE).await;
    // The standby s2's server stops: in pause nobody starts it again.
    cluster.crash_postmaster(s2);
    let s2_api = cluster.nodes[s2].api();
    wait_for(
        ROUTING_DEADLINE,
        "the stopped standby to answer 503",
        &cluster,
        || async {
            (status_code(&client, &format!("{s2_api}/health")).await == Some(503)).then_some(())
        },
    )
    .await;
    let expected = [
        ("primary", [200, 503, 503]),
        ("replica", [503, 200, 503]),
        ("read-only", [200, 200, 503]),
        ("health", [200, 200, 503]),
        ("leader", [200, 503, 503]),
        ("async", [503, 200, 503]),
    ];
    for (path, codes) in expected {
        for (node, code) in [p, s1, s2].into_iter().zip(codes) {
            let url = format!("{}/{path}", cluster.nodes[node].api());
            let got = client
                .request(reqwest::Method::OPTIONS, &url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok();
            assert_eq!(
                got,
                Some(code),
                "OPTIONS /{path} on {} in pause",
                cluster.nodes[node].name
            );
        }
    }
    haproxy
        .wait_replica_port_reaches(&cluster, &[s1], REPLICA_PORT_FAILOVER_DEADLINE)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        status_code(&client, &format!("{s2_api}/health")).await,
        Some(503),
        "the agent started a stopped server in pause"
    );

    // A switchover to a named candidate, in pause, through HAProxy.
    let asked = Instant::now();
    let answer = client
        .post(format!("{}/switchover", cluster.nodes[s2].api()))
        .timeout(Duration::from_secs(40))
        .json(&serde_json::json!({
            "leader": cluster.nodes[p].name, "candidate": cluster.nodes[s1].name
        }))
        .send()
        .await
        .expect("POST /switchover");
    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);
    haproxy
        .wait_primary_port_reaches(&cluster, s1, PRIMARY_PORT_SWITCHOVER_DEADLINE)
        .await;
    println!(
        "switchover through HAProxy: the primary port reaches the new primary {:.2}s after the request",
        asked.elapsed().as_secs_f64()
    );
    // The operator asked for it: the old primary rejoins as a standby even in pause.
    wait_streaming_replica(&client, &cluster, p, "the old primary to rejoin in pause").await;
}
