//! Faults on the primary under a write workload, in synchronous mode: after each, no
//! acknowledged write is missing on the final primary, and no two members acknowledged writes
//! for overlapping periods (every acknowledgement of the old primary precedes every one of the
//! new).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::*;

/// A cluster in synchronous mode (strict if asked), healthy, with the workload running.
pub async fn loaded_cluster_with(
    strict: bool,
    database: Database,
) -> (
    reqwest::Client,
    Cluster,
    usize,
    Acks,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (client, cluster, p) = sync_cluster(strict, database).await;
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = start_workload(&cluster, p, conninfos).await;
    (client, cluster, p, acks, stop, writer)
}

/// A three-node cluster in synchronous mode (strict if asked) with a primary and a
/// synchronous standby; returns the primary.
pub async fn sync_cluster(strict: bool, database: Database) -> (reqwest::Client, Cluster, usize) {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "true",
            synchronous_mode_strict: strict,
            database,
            ..Options::default()
        },
    );
    cluster.start_all();
    let p = wait_for(
        Duration::from_secs(90),
        "a primary and a synchronous standby",
        &cluster,
        || async {
            let p = primary(&client, &cluster).await?;
            let doc = get_json(&client, &format!("{}/cluster", cluster.nodes[p].api())).await?;
            let sync = doc["members"]
                .as_array()?
                .iter()
                .any(|m| m["role"] == "sync_standby");
            sync.then_some(p)
        },
    )
    .await;
    (client, cluster, p)
}

/// Create the workload's tables on primary `p`, then run the writer and the prober against
/// `conninfos` (members that join later may be listed already) until the token is cancelled.
/// The handle checks the probes when it ends.
pub async fn start_workload(
    cluster: &Cluster,
    p: usize,
    conninfos: Vec<String>,
) -> (
    Acks,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let pg = connect(&cluster.nodes[p])
        .await
        .expect("connect to the primary");
    pg.batch_execute(
        "CREATE TABLE acked (id bigint PRIMARY KEY); CREATE TABLE probe (id bigint PRIMARY KEY)",
    )
    .await
    .unwrap();
    let acks: Acks = Default::default();
    let probes: Acks = Default::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer_task = tokio::spawn(writer(conninfos.clone(), acks.clone(), stop.clone()));
    let prober_task = tokio::spawn(prober(conninfos, probes.clone(), stop.clone()));
    let writer = tokio::spawn(async move {
        let _ = writer_task.await;
        let _ = prober_task.await;
        let probes = probes.lock().unwrap().clone();
        assert!(!probes.is_empty(), "no probe write was ever acknowledged");
        assert_no_overlap("probe writes to every member", &probes);
    });
    wait_for(
        Duration::from_secs(20),
        "the workload's first acknowledged write",
        cluster,
        || async { (!acks.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    (acks, stop, writer)
}

/// The member the REST API names as synchronous standby, if exactly one.
async fn sync_standby(client: &reqwest::Client, cluster: &Cluster, p: usize) -> Option<usize> {
    let doc = get_json(client, &format!("{}/cluster", cluster.nodes[p].api())).await?;
    let names: Vec<&str> = doc["members"]
        .as_array()?
        .iter()
        .filter(|m| m["role"] == "sync_standby")
        .filter_map(|m| m["name"].as_str())
        .collect();
    match names[..] {
        [one] => cluster.nodes.iter().position(|n| n.name == one),
        _ => None,
    }
}

/// Stop the workload; check that nothing acknowledged is missing on `final_primary` and that
/// acknowledgements never interleave between two members.
pub async fn check_history(
    cluster: &Cluster,
    final_primary: usize,
    acks: &Acks,
    stop: tokio_util::sync::CancellationToken,
    writer: tokio::task::JoinHandle<()>,
) {
    stop.cancel();
    // The workload's writes and the 100 ms probes of every member: no overlap in either.
    writer.await.unwrap();
    let acks = acks.lock().unwrap().clone();
    assert_no_overlap("the write workload", &acks);
    let present = ids(&cluster.nodes[final_primary]).await.unwrap();
    let present: std::collections::HashSet<i64> = present.into_iter().collect();
    let lost: Vec<i64> = acks
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| !present.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_agent_is_fenced_before_another_member_is_promoted() {
    frozen_primary_agent_is_fenced(Database::Postgres).await;
}

/// The primary's agent frozen (SIGSTOP) past `ttl` under writes: the standbys fence its
/// database over SQL before one of them is promoted; thawed, it rejoins as a standby.
pub async fn frozen_primary_agent_is_fenced(database: Database) {
    let (client, cluster, p, acks, stop, writer) = loaded_cluster_with(false, database).await;
    let frozen_at = Instant::now();
    cluster.signal_agent(p, Signal::SIGSTOP);
    let np = wait_for(
        Duration::from_secs(30),
        "a write on another member",
        &cluster,
        || async { first_ack_elsewhere(&acks, frozen_at, p).map(|(_, node)| node) },
    )
    .await;
    println!(
        "frozen agent: {} took over after {:.2}s",
        cluster.nodes[np].name,
        frozen_at.elapsed().as_secs_f64()
    );
    // The old primary's database, its agent still frozen, acknowledges nothing any more.
    assert!(
        !insert(&cluster.nodes[p], -1).await,
        "the frozen primary's database still acknowledges writes"
    );
    let mut fences = 0.0;
    for (i, node) in cluster.nodes.iter().enumerate().filter(|(i, _)| *i != p) {
        let text = get_text(&client, &format!("{}/metrics", node.api()))
            .await
            .unwrap_or_else(|| panic!("{} answers /metrics", cluster.nodes[i].name));
        fences += metric(&text, "tribune_peer_fences_total").unwrap_or(0.0);
    }
    assert!(
        fences >= 1.0,
        "no member fenced the frozen primary's database"
    );
    // Thawed well past its lease (a deliberate pause, not a stand-in for a condition: the
    // point is an agent that wakes with a stale view), it fences first and rejoins.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.signal_agent(p, Signal::SIGCONT);
    wait_streaming_replica(
        &client,
        &cluster,
        p,
        "the thawed member to rejoin as a replica",
    )
    .await;
    assert_eq!(primary(&client, &cluster).await, Some(np));
    check_history(&cluster, np, &acks, stop, writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_postmaster_restarts_in_place_while_the_lease_holds() {
    let (client, cluster, p, acks, stop, writer) =
        loaded_cluster_with(false, Database::Postgres).await;
    let starts = starts_as_primary(&client, &cluster, p).await;
    let crashed_at = Instant::now();
    cluster.crash_postmaster(p);
    wait_for(
        Duration::from_secs(30),
        "writes on the same primary again",
        &cluster,
        || async {
            acks.lock()
                .unwrap()
                .iter()
                .find(|(_, t, node)| *t > crashed_at + Duration::from_millis(200) && *node == p)
                .map(|_| ())
        },
    )
    .await;
    println!(
        "postmaster crash: {} restarted and took writes after {:.2}s",
        cluster.nodes[p].name,
        crashed_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "the primary changed"
    );
    assert!(
        starts_as_primary(&client, &cluster, p).await > starts,
        "not restarted in place"
    );
    check_history(&cluster, p, &acks, stop, writer).await;
}

/// How often member `i`'s agent started its database as a primary (`/metrics`).
async fn starts_as_primary(client: &reqwest::Client, cluster: &Cluster, i: usize) -> f64 {
    let text = get_text(client, &format!("{}/metrics", cluster.nodes[i].api()))
        .await
        .expect("the primary answers /metrics");
    text.lines()
        .find(|l| {
            l.starts_with("tribune_actions_total{")
                && l.contains("action=\"start_primary\"")
                && l.contains("outcome=\"done\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_replaces_a_lost_synchronous_standby_and_blocks_without_one() {
    strict_mode_replaces_and_blocks(Database::Postgres).await;
}

/// Strict synchronous mode under writes: a lost synchronous standby is replaced by the other;
/// with no standby replicating, commits block (rather than being acknowledged by the primary
/// alone) until replication is repaired.
pub async fn strict_mode_replaces_and_blocks(database: Database) {
    let (client, mut cluster, p, acks, stop, writer) = loaded_cluster_with(true, database).await;
    let first = wait_for(
        Duration::from_secs(20),
        "a synchronous standby",
        &cluster,
        || sync_standby(&client, &cluster, p),
    )
    .await;
    let second = (0..3).find(|i| *i != p && *i != first).unwrap();

    // The synchronous standby dies: the other one takes its place, and writes go on.
    cluster.crash(first);
    wait_for(
        Duration::from_secs(20),
        "the other standby to become synchronous",
        &cluster,
        || async { (sync_standby(&client, &cluster, p).await == Some(second)).then_some(()) },
    )
    .await;
    let resumed_after = Instant::now();
    wait_for_writes_after(
        &acks,
        resumed_after,
        Duration::from_secs(20),
        "writes with the new synchronous standby",
        &cluster,
    )
    .await;

    // The remaining standby's host stays up (so does the Raft majority) but its replication
    // breaks: no synchronous standby is left, and strict mode blocks commits rather than
    // acknowledging them alone.
    cluster.break_replication(second).await;
    wait_for(
        Duration::from_secs(20),
        "the degraded metric",
        &cluster,
        || async {
            let text = get_text(&client, &format!("{}/metrics", cluster.nodes[p].api())).await?;
            (metric(&text, "tribune_synchronous_degraded") == Some(1.0)).then_some(())
        },
    )
    .await;
    // The primary blocks commits once it names no standby it could wait for ('*').
    let primary_db = connect(&cluster.nodes[p]).await.unwrap();
    wait_for(
        Duration::from_secs(20),
        "commits blocked (synchronous_standby_names '*')",
        &cluster,
        || async {
            let row = primary_db
                .query_one("SHOW synchronous_standby_names", &[])
                .await
                .ok()?;
            (row.get::<_, String>(0) == "*").then_some(())
        },
    )
    .await;
    let blocked_since = Instant::now();
    // An observation window, not a stand-in for a condition: nothing may be acknowledged in it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked_while_alone = acks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t, _)| *t > blocked_since)
        .count();
    assert_eq!(
        acked_while_alone, 0,
        "strict mode acknowledged writes with no synchronous standby"
    );
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "the primary changed"
    );

    // Replication is repaired: the standby becomes synchronous and commits resume.
    cluster.repair_replication(second).await;
    let back = Instant::now();
    wait_for_writes_after(
        &acks,
        back,
        Duration::from_secs(30),
        "writes once the standby is back",
        &cluster,
    )
    .await;
    wait_for(
        Duration::from_secs(20),
        "synchronous replication restored",
        &cluster,
        || async {
            let text = get_text(&client, &format!("{}/metrics", cluster.nodes[p].api())).await?;
            (metric(&text, "tribune_synchronous_degraded") == Some(0.0)).then_some(())
        },
    )
    .await;
    assert_eq!(primary(&client, &cluster).await, Some(p));
    check_history(&cluster, p, &acks, stop, writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_root_tests),
    ignore = "needs root for nftables: built with TRIBUNE_ROOT_TESTS, as scripts/test.sh does as root"
)]
async fn a_primary_cut_off_from_its_peers_fences_itself_and_another_takes_over() {
    require_root();
    let (client, cluster, p, acks, stop, writer) =
        loaded_cluster_with(false, Database::Postgres).await;
    let cut_at = Instant::now();
    let partition = Partition::isolate(&cluster.nodes[p].ip);
    let np = wait_for(
        Duration::from_secs(30),
        "a write on another member",
        &cluster,
        || async { first_ack_elsewhere(&acks, cut_at, p).map(|(_, node)| node) },
    )
    .await;
    println!(
        "partition: {} took over {:.2}s after {} was cut off",
        cluster.nodes[np].name,
        cut_at.elapsed().as_secs_f64(),
        cluster.nodes[p].name
    );
    drop(partition);
    // The cut-off primary stopped its database on its own, before anyone was promoted (its
    // counter is read once it is reachable again).
    let fences = wait_for(
        Duration::from_secs(20),
        "the healed member's /metrics",
        &cluster,
        || async {
            let text = get_text(&client, &format!("{}/metrics", cluster.nodes[p].api())).await?;
            metric(&text, "tribune_lease_fences_total")
        },
    )
    .await;
    assert!(fences >= 1.0, "the cut-off primary did not fence itself");
    wait_streaming_replica(
        &client,
        &cluster,
        p,
        "the cut-off member to rejoin as a replica",
    )
    .await;
    assert_eq!(primary(&client, &cluster).await, Some(np));
    check_history(&cluster, np, &acks, stop, writer).await;
}

#[test]
#[should_panic(expected = "interleaved periods")]
fn the_overlap_check_catches_two_writable_primaries() {
    let t = Instant::now();
    let ms = Duration::from_millis;
    // Member 0, then member 1, then member 0 again: two writable primaries at once.
    assert_no_overlap(
        "example",
        &[(1, t, 0), (2, t + ms(10), 1), (3, t + ms(20), 0)],
    );
}

#[test]
fn the_overlap_check_accepts_a_clean_handover() {
    let t = Instant::now();
    let ms = Duration::from_millis;
    assert_no_overlap(
        "example",
        &[(1, t, 0), (2, t + ms(10), 0), (3, t + ms(20), 1)],
    );
}

/// The Raft leader runs on a standby (it is kept off the primary's host). When that host
/// crashes, a new Raft leader must be elected before the primary's lease lapses: the primary
/// keeps running, and writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_raft_leader_does_not_stop_the_primary() {
    let (client, mut cluster, p, acks, stop, writer) =
        loaded_cluster_with(false, Database::Postgres).await;
    let raft_leader = wait_for(
        Duration::from_secs(20),
        "the Raft leader on a standby",
        &cluster,
        || async {
            for (i, node) in cluster.nodes.iter().enumerate() {
                let text = get_text(&client, &format!("{}/metrics", node.api())).await?;
                if metric(&text, "tribune_raft_leader") == Some(1.0) && i != p {
                    return Some(i);
                }
            }
            None
        },
    )
    .await;
    cluster.crash(raft_leader);
    wait_for(
        Duration::from_secs(20),
        "a new Raft leader among the survivors",
        &cluster,
        || async {
            for (i, node) in cluster.nodes.iter().enumerate() {
                if i == raft_leader {
                    continue;
                }
                let text = get_text(&client, &format!("{}/metrics", node.api())).await?;
                if metric(&text, "tribune_raft_leader") == Some(1.0) {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    let after = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "writes on the same primary",
        &cluster,
        || async {
            acks.lock()
                .unwrap()
                .iter()
                .any(|(_, t, node)| *t > after && *node == p)
                .then_some(())
        },
    )
    .await;
    let text = get_text(&client, &format!("{}/metrics", cluster.nodes[p].api()))
        .await
        .expect("the primary answers /metrics");
    assert_eq!(
        metric(&text, "tribune_lease_fences_total"),
        Some(0.0),
        "the primary fenced itself while Raft elected a new leader"
    );
    assert_eq!(primary(&client, &cluster).await, Some(p));
    check_history(&cluster, p, &acks, stop, writer).await;
}

/// The stall the chaos suite's convergence checker names (README, Benchmarks: about 1 crash in
/// 40): the asynchronous standby replayed WAL the synchronous one never received (commits not
/// yet acknowledged), the primary crashed, the synchronous standby was promoted, and its new
/// timeline forks off before the asynchronous standby's position. That standby cannot follow
/// ("forked off ... before current recovery point"); the agent must see it (its replay
/// timeline, from IDENTIFY_SYSTEM) and rewind it, with no operator action.
///
/// Made deterministic: nftables drops what the primary sends the synchronous standby while
/// commits that will never be acknowledged send their WAL to the asynchronous standby (run as
/// root, as CI does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_root_tests),
    ignore = "needs root for nftables: built with TRIBUNE_ROOT_TESTS, as scripts/test.sh does as root"
)]
async fn an_asynchronous_standby_past_the_new_timelines_fork_is_rewound() {
    require_root();
    let (client, mut cluster, p) = sync_cluster(false, Database::Postgres).await;
    let s = wait_for(
        Duration::from_secs(20),
        "a synchronous standby",
        &cluster,
        || sync_standby(&client, &cluster, p),
    )
    .await;
    let a = (0..3).find(|i| *i != p && *i != s).unwrap();
    let pg = connect(&cluster.nodes[p]).await.unwrap();
    pg.batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    assert!(insert(&cluster.nodes[p], 1).await, "a first write");
    wait_streaming_replica(&client, &cluster, a, "the asynchronous standby streaming").await;

    // Nothing the primary sends reaches the synchronous standby any more: no commit is
    // acknowledged from now on, but the primary still sends its WAL to the asynchronous standby.
    let standby = connect(&cluster.nodes[s]).await.unwrap();
    // Its WAL receiver connects from 127.0.0.1 (no source address is bound on loopback): the
    // stream is told apart by the receiver's port, which the primary reports.
    let receiver_port: i32 = pg
        .query_one(
            "SELECT client_port FROM pg_stat_replication WHERE application_name = $1",
            &[&cluster.nodes[s].name],
        )
        .await
        .unwrap()
        .get(0);
    let cut = Partition::drop_stream(
        &cluster.nodes[p].ip,
        cluster.nodes[p].pg_port,
        receiver_port,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen_at: String = standby
        .query_one("SELECT pg_last_wal_receive_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let primary_conninfo = cluster.nodes[p].conninfo();
    for id in 2..12 {
        let conninfo = primary_conninfo.clone();
        // Never acknowledged: each waits for the frozen standby until its timeout.
        tokio::spawn(async move { insert_at(&conninfo, id).await });
    }
    let async_standby = connect(&cluster.nodes[a]).await.unwrap();
    wait_for(
        Duration::from_secs(10),
        "the asynchronous standby to replay past the synchronous one",
        &cluster,
        || async {
            let row = async_standby
                .query_one(
                    &format!("SELECT pg_last_wal_replay_lsn() > '{frozen_at}'::pg_lsn"),
                    &[],
                )
                .await
                .ok()?;
            row.get::<_, bool>(0).then_some(())
        },
    )
    .await;
    drop(async_standby);

    cluster.crash(p);
    let np = wait_for(Duration::from_secs(30), "a new primary", &cluster, || {
        primary(&client, &cluster)
    })
    .await;
    // Only now: the crashed primary's kernel (this machine's) would still deliver what its
    // sockets held, which a real host crash takes with it.
    drop(cut);
    assert_eq!(
        np, s,
        "only the synchronous standby may be promoted (it holds every acknowledged commit)"
    );
    // Before the fix, the asynchronous standby stayed `in archive recovery` for good.
    wait_streaming_replica(
        &client,
        &cluster,
        a,
        "the asynchronous standby to rejoin the new timeline",
    )
    .await;
    let log = std::fs::read_to_string(cluster.nodes[a].log()).unwrap_or_default();
    assert!(
        log.contains("past") && log.contains("running pg_rewind from"),
        "the asynchronous standby was not rewound:\n{}",
        cluster.log_tail(a, 40)
    );
    let present = ids(&cluster.nodes[np]).await.unwrap();
    assert!(present.contains(&1), "the acknowledged write was lost");
    assert_eq!(ids(&cluster.nodes[a]).await.unwrap(), present);
}

/// In asynchronous mode a commit waits for no one: a primary whose agent and postmaster are
/// frozen (its backends still run) went on acknowledging writes on the sessions it had while
/// another member was promoted, for as long as it stayed frozen: two writable primaries (found
/// by the chaos suite, seed 201, `pause-host` of the leader for 5 x ttl). No new session can
/// reach it to fence it; the standbys now fence it through the session each keeps open to the
/// member it streams from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_frozen_with_its_agent_in_asynchronous_mode_is_fenced_through_a_held_session() {
    let client = http_client();
    let mut cluster = Cluster::new(3, Options::default());
    cluster.start_all();
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(&client, &cluster).await
    })
    .await;
    for i in (0..3).filter(|i| *i != p) {
        wait_streaming_replica(&client, &cluster, i, "both standbys streaming").await;
    }
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = start_workload(&cluster, p, conninfos).await;

    let postmaster = cluster.nodes[p]
        .postmaster_pid()
        .expect("a running postmaster");
    let postmaster = nix::unistd::Pid::from_raw(postmaster);
    let frozen_at = Instant::now();
    cluster.signal_agent(p, Signal::SIGSTOP);
    nix::sys::signal::kill(postmaster, Signal::SIGSTOP).unwrap();
    // Before the fix, the workload's writer never left the frozen primary: its session there
    // went on committing. So: the promotion as the API reports it.
    let np = wait_for(
        Duration::from_secs(30),
        "a new primary",
        &cluster,
        || async { primary(&client, &cluster).await.filter(|np| *np != p) },
    )
    .await;
    println!(
        "{} promoted {:.1}s after the freeze",
        cluster.nodes[np].name,
        frozen_at.elapsed().as_secs_f64()
    );
    // The old primary stays frozen a while longer: its sessions must not commit meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    nix::sys::signal::kill(postmaster, Signal::SIGCONT).unwrap();
    cluster.signal_agent(p, Signal::SIGCONT);
    wait_streaming_replica(&client, &cluster, p, "the thawed member to rejoin").await;
    assert_eq!(primary(&client, &cluster).await, Some(np));
    stop.cancel();
    // The workload's writes and the 100 ms probes of every member: no overlap in either
    // (asynchronous mode may lose acknowledged writes, so nothing else is checked).
    writer.await.unwrap();
    assert_no_overlap("the write workload", &acks.lock().unwrap());
}
