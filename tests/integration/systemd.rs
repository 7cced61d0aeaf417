//! The agent under systemd's readiness protocol (`Type=notify`), with the test standing in for
//! systemd: it owns the NOTIFY_SOCKET datagram socket. The agent says READY=1 once its REST API
//! answers and STOPPING=1 when told to stop; PostgreSQL, started by the agent, does not inherit
//! the socket (it would send its own READY=1 to the agent's unit).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::harness::*;

/// The notifications received within `limit`, as text, until `until` is among them.
fn receive_until(socket: &UnixDatagram, until: &str, limit: Duration) -> Vec<String> {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = text.lines().any(|l| l == until);
            got.push(text);
            if done {
                break;
            }
        }
    }
    got
}

fn notify_socket(cluster: &Cluster) -> (UnixDatagram, String) {
    let path = cluster.root.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    // The agent runs as postgres.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    (socket, path.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_tells_systemd_when_it_serves_and_when_it_stops() {
    let client = http_client();
    let mut cluster = Cluster::new(
        1,
        Options {
            scope: "notify",
            ..Options::default()
        },
    );
    let (socket, path) = notify_socket(&cluster);
    cluster.start_with_env(0, &[("NOTIFY_SOCKET", &path)]);
    let ready = receive_until(&socket, "READY=1", Duration::from_secs(60));
    assert!(
        ready
            .last()
            .is_some_and(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1: {ready:?}\n{}",
        cluster.dump_logs()
    );
    assert!(
        ready
            .last()
            .unwrap()
            .contains("STATUS=REST API serving on "),
        "{ready:?}"
    );
    // Ready means answering.
    let api = cluster.nodes[0].api();
    assert_eq!(
        status_code(&client, &format!("{api}/liveness")).await,
        Some(200)
    );

    // PostgreSQL, once the agent starts it, has no NOTIFY_SOCKET in its environment.
    let node = &cluster.nodes[0];
    let postmaster = wait_for(Duration::from_secs(60), "PostgreSQL", &cluster, || async {
        let pid = node.postmaster_pid()?;
        (status_code(&client, &format!("{api}/primary")).await == Some(200)).then_some(pid)
    })
    .await;
    let environ =
        std::fs::read(format!("/proc/{postmaster}/environ")).expect("the postmaster's environment");
    assert!(
        !environ
            .split(|b| *b == 0)
            .any(|v| v.starts_with(b"NOTIFY_SOCKET=")),
        "PostgreSQL inherited NOTIFY_SOCKET"
    );

    // SIGTERM: STOPPING=1 first, then the agent stops PostgreSQL and exits.
    let pid = cluster.nodes[0].child.as_ref().unwrap().id() as i32;
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let stopping = receive_until(&socket, "STOPPING=1", Duration::from_secs(10));
    assert!(
        stopping
            .iter()
            .any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1: {stopping:?}"
    );
    let mut child = cluster.nodes[0].child.take().unwrap();
    let exited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap();
    assert!(exited.is_ok());
    assert!(
        node_postmaster_gone(postmaster),
        "the agent stopped PostgreSQL before exiting"
    );
    // This member is the Raft leader as well as the primary (a cluster of one): its lease is
    // released through its own Raft node, which must still run after PostgreSQL has stopped.
    // (It stopped with the signal, and the release failed with "raft stopped".)
    let log = std::fs::read_to_string(cluster.nodes[0].log()).unwrap_or_default();
    assert!(
        log.contains("released the leader lease"),
        "{}",
        cluster.log_tail(0, 15)
    );
}

/// Gone, or a zombie: an orphaned postmaster is reparented to this machine's PID 1, which may
/// reap it late.
fn node_postmaster_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// A stopped primary's agent (`systemctl stop`: SIGTERM) stops PostgreSQL, then gives its lease
/// up with its final WAL position, so a standby takes over at once instead of after `ttl`. With
/// `ttl: 30` the difference is plain.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_primary_hands_its_lease_over_without_waiting_for_ttl() {
    let client = http_client();
    let options = Options {
        ttl: 30.0,
        synchronous_mode: "true",
        scope: "handover",
        ..Options::default()
    };
    let (mut cluster, old) = started_cluster(&client, options).await;
    // A synchronous standby holds every commit: the one a release hands the lease to.
    wait_sync_standby(&client, &cluster, old).await;
    let stopped_at = std::time::Instant::now();
    cluster.stop(old);
    let new = wait_for(
        Duration::from_secs(60),
        "a new primary",
        &cluster,
        || async { primary(&client, &cluster).await },
    )
    .await;
    let took = stopped_at.elapsed();
    assert_ne!(new, old);
    assert!(
        took < Duration::from_secs(15),
        "the new primary came {took:?} after the stop: the lease was not released (ttl is 30 s)\n{}",
        cluster.log_tail(old, 20)
    );
    let log = std::fs::read_to_string(cluster.nodes[old].log()).unwrap_or_default();
    assert!(
        log.contains("released the leader lease"),
        "{}",
        cluster.log_tail(old, 20)
    );
}
