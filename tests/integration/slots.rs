//! Permanent replication slots (`slots`, `ignore_slots` in the dynamic configuration): a
//! logical slot survives a failover, so a consumer reconnects to the new primary with the same
//! slot and misses no acknowledged commit; a slot matched by `ignore_slots` is kept and a slot
//! removed from the configuration is dropped.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const SLOTS_DCS: &str = "    slots:
      cdc:
        type: logical
        database: postgres
        plugin: test_decoding
      keep_phys:
        type: physical
    ignore_slots:
      - name: foreign
";

/// The slots of member `i` as `name:type`, or `None` when it does not answer.
async fn slots_of(cluster: &Cluster, i: usize) -> Option<BTreeSet<String>> {
    let pg = connect(&cluster.nodes[i]).await?;
    let rows = pg
        .query(
            "SELECT slot_name || ':' || slot_type FROM pg_replication_slots",
            &[],
        )
        .await
        .ok()?;
    Some(rows.iter().map(|r| r.get(0)).collect())
}

/// `confirmed_flush_lsn` of `cdc` on member `i` as a number of bytes.
async fn cdc_position(cluster: &Cluster, i: usize) -> Option<i64> {
    let pg = connect(&cluster.nodes[i]).await?;
    let row = pg
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots \
             WHERE slot_name = 'cdc'",
            &[],
        )
        .await
        .ok()??;
    row.get(0)
}

/// `pg_recvlogical` on slot `cdc` of member `i`, writing decoded changes to `out` (flushed
/// every second, so the slot's confirmed position never passes what the file holds), until
/// `end` when given.
fn recvlogical(cluster: &Cluster, i: usize, out: &Path, end: Option<&str>) -> Consumer {
    let bin = postgres_bin_dir()
        .unwrap_or_else(|| Path::new("/usr/lib/postgresql/15/bin").to_path_buf())
        .join("pg_recvlogical");
    let mut cmd = Command::new(bin);
    cmd.args(["-d", &cluster.nodes[i].conninfo()])
        .args([
            "--slot",
            "cdc",
            "--start",
            "-F",
            "1",
            "-s",
            "1",
            "--no-loop",
        ])
        .arg("-f")
        .arg(out);
    if let Some(end) = end {
        cmd.args(["-E", end]);
    }
    let errors = std::fs::File::create(out.with_extension("err")).unwrap();
    Consumer(
        cmd.stdout(Stdio::null())
            .stderr(errors)
            .spawn()
            .expect("start pg_recvlogical"),
    )
}

/// A `pg_recvlogical` this test started, ended by its PID when dropped.
struct Consumer(Child);

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The ids of `acked` rows inserted in the decoded output of `files`.
fn decoded_ids(files: &[&Path]) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("table public.acked: INSERT: id[bigint]:")
                && let Ok(id) = rest.trim().parse()
            {
                ids.insert(id);
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logical_slot_survives_a_failover_without_a_gap() {
    require_root();
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "true",
            extra_dcs: SLOTS_DCS.to_owned(),
            ..Options::default()
        },
    );
    for i in 0..3 {
        cluster.edit_config(i, |yaml| {
            yaml.replacen(
                "        wal_keep_size: 64MB\n",
                "        wal_keep_size: 64MB\n        wal_level: logical\n",
                1,
            )
        });
    }
    cluster.start_all();
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(&client, &cluster).await
    })
    .await;
    let pg = connect(&cluster.nodes[p]).await.expect("connect");
    pg.batch_execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
        .await
        .unwrap();

    // A consumer decodes while a writer commits, once the agent has made the slot (while it
    // makes it, the slot is active and a consumer is refused).
    wait_for(
        Duration::from_secs(20),
        "the logical slot on the primary",
        &cluster,
        || async {
            let row = pg
                .query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdc' AND NOT active",
                    &[],
                )
                .await
                .ok()?;
            row.map(drop)
        },
    )
    .await;
    let out1 = cluster.root.path().join("decoded-1.txt");
    let out2 = cluster.root.path().join("decoded-2.txt");
    let consumer = recvlogical(&cluster, p, &out1, None);
    let acks: Acks = Default::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let conninfos = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let writer_task = tokio::spawn(writer(conninfos, acks.clone(), stop.clone()));

    // Both permanent slots on every member: the logical one is copied to a standby once the
    // primary's slot restarts from WAL the standby has (the clone was taken after the slot was
    // made), which its consumer's progress past a checkpoint brings about.
    for i in 0..3 {
        wait_for(
            Duration::from_secs(40),
            "the permanent slots on every member",
            &cluster,
            || async {
                let _ = pg.batch_execute("CHECKPOINT").await;
                let slots = slots_of(&cluster, i).await?;
                (slots.contains("cdc:logical") && slots.contains("keep_phys:physical"))
                    .then_some(())
            },
        )
        .await;
    }
    // The standbys' copies follow what the consumer confirms.
    let standbys: Vec<usize> = (0..3).filter(|i| *i != p).collect();
    for &s in &standbys {
        let start = cdc_position(&cluster, s).await.unwrap_or(0);
        wait_for(
            Duration::from_secs(20),
            "a standby's copy of the slot advanced",
            &cluster,
            || async { (cdc_position(&cluster, s).await? > start).then_some(()) },
        )
        .await;
    }

    // The consumer stops; commits go on; then the primary crashes. What was committed since
    // the consumer's last confirmation must still be decoded from the new primary: the copies
    // were never advanced past what it confirmed, though the standbys replayed further.
    drop(consumer);
    let before = acks.lock().unwrap().len();
    wait_for(
        Duration::from_secs(20),
        "writes after the consumer stopped",
        &cluster,
        || async { (acks.lock().unwrap().len() > before + 30).then_some(()) },
    )
    .await;
    let replayed = |s: usize| {
        let node = &cluster.nodes[s];
        async move {
            let pg = connect(node).await?;
            let lsn: i64 = pg
                .query_one("SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint", &[])
                .await
                .ok()?
                .get(0);
            Some(lsn)
        }
    };
    // The standbys replay past the consumer.
    let target = replayed(standbys[0]).await.unwrap_or(0);
    wait_for(
        Duration::from_secs(10),
        "the standbys to replay past the consumer",
        &cluster,
        || async {
            let mut all = true;
            for &s in &standbys {
                all &= replayed(s).await? > target;
            }
            all.then_some(())
        },
    )
    .await;
    // Not a wait for a condition: an observation window. Every standby runs its slot
    // synchronisation each loop_wait (1 s); one that advanced its copy past the consumer
    // would do so within it, and lose those commits below.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.crash(p);
    let q = wait_for(
        Duration::from_secs(30),
        "a new primary",
        &cluster,
        || async { primary(&client, &cluster).await.filter(|q| *q != p) },
    )
    .await;
    let before = acks.lock().unwrap().len();
    wait_for(
        Duration::from_secs(20),
        "writes on the new primary",
        &cluster,
        || async { (acks.lock().unwrap().len() > before + 20).then_some(()) },
    )
    .await;
    stop.cancel();
    writer_task.await.unwrap();

    // The same slot on the new primary: every acknowledged insert arrives.
    let pg = connect(&cluster.nodes[q])
        .await
        .expect("connect to the new primary");
    let end: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    let mut consumer = recvlogical(&cluster, q, &out2, Some(&end));
    let decoded = wait_for(
        Duration::from_secs(20),
        "the consumer to reach the end",
        &cluster,
        || {
            let status = consumer.0.try_wait();
            async move { status.ok().flatten() }
        },
    )
    .await;
    assert!(
        decoded.success(),
        "pg_recvlogical on the new primary: {decoded}: {}",
        std::fs::read_to_string(out2.with_extension("err")).unwrap_or_default()
    );
    let got = decoded_ids(&[&out1, &out2]);
    let acked: Vec<i64> = acks.lock().unwrap().iter().map(|(id, _, _)| *id).collect();
    assert!(acked.len() > 20, "too few writes: {}", acked.len());
    let missing: Vec<i64> = acked
        .iter()
        .filter(|id| !got.contains(id))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged inserts never decoded, first {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );

    // ignore_slots keeps a foreign slot; an unknown one is dropped.
    pg.batch_execute(
        "SELECT pg_create_physical_replication_slot('foreign'); \
         SELECT pg_create_physical_replication_slot('stray')",
    )
    .await
    .unwrap();
    let slots = wait_for(
        Duration::from_secs(10),
        "the unknown slot dropped",
        &cluster,
        || async {
            let slots = slots_of(&cluster, q).await?;
            (!slots.contains("stray:physical")).then_some(slots)
        },
    )
    .await;
    assert!(slots.contains("foreign:physical"), "{slots:?}");

    // Removed from the configuration: dropped on the primary and the standby.
    let r = client
        .patch(format!("{}/config", cluster.nodes[q].api()))
        .json(&json!({"slots": {"keep_phys": null}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "PATCH /config: {}", r.status());
    let other = (0..3).find(|i| *i != p && *i != q).unwrap();
    for i in [q, other] {
        wait_for(
            Duration::from_secs(10),
            "keep_phys dropped",
            &cluster,
            || async {
                let slots = slots_of(&cluster, i).await?;
                (!slots.contains("keep_phys:physical") && slots.contains("cdc:logical"))
                    .then_some(())
            },
        )
        .await;
    }
}
