//! Replicas and restores from a real pgBackRest repository (on local disk, under the test's
//! directory), configured as a Patroni user writes it: `archive_command` in the parameters,
//! `create_replica_methods: [pgbackrest, basebackup]`, `recovery_conf.restore_command`, and
//! `bootstrap.method: pgbackrest`.
//!
//! - A replica is built by the basebackup fallback while the repository has no stanza, then,
//!   reinitialised once a backup exists, by the pgbackrest method (the agent's log says which
//!   method built it and why one failed); stopped while the primary recycles the WAL it needs
//!   (no slot, `wal_keep_size: 0`), it catches up from the archive through `restore_command`.
//! - A new cluster is bootstrapped from the backup plus archived WAL up to a point in time, and
//!   holds exactly the rows committed before it; its method's first run fails, and the retry
//!   starts from a clean data directory.
//!
//! Built only with `TRIBUNE_PGBACKREST` (scripts/test.sh sets it): otherwise ignored.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const STANZA: &str = "itest";

/// `pgbackrest.conf` for a repository under `root`: no stanza paths (each member's commands
/// name their own data directory), no compression (a small test cluster).
fn write_pgbackrest_conf(cluster: &Cluster) -> String {
    let root = cluster.root.path();
    let conf = root.join("pgbackrest.conf");
    let text = format!(
        "[global]\nrepo1-path={root}/repo\nlock-path={root}/pgbackrest-lock\n\
         log-level-console=warn\nlog-level-file=off\nstart-fast=y\ncompress-type=none\n\
         archive-timeout=30\n\n[{STANZA}]\n",
        root = root.display()
    );
    cluster.write_owned(&conf, &text, 0o644);
    conf.display().to_string()
}

/// `pgbackrest --config=.. --stanza=.. --pg1-path=<member's data directory>`
fn pgbackrest(conf: &str, node: &Node) -> String {
    format!(
        "pgbackrest --config={conf} --stanza={STANZA} --pg1-path={}",
        node.data_dir().display()
    )
}

/// Archiving into the repository, in the member's own parameters.
fn archive_parameters(text: String, conf: &str, node: &Node) -> String {
    text.replacen(
        "  parameters:\n    max_connections: 40\n",
        &format!(
            "  parameters:\n    max_connections: 40\n    archive_mode: 'on'\n    \
             archive_command: '{} archive-push %p'\n",
            pgbackrest(conf, node)
        ),
        1,
    )
}

/// Runs pgbackrest `command` against member `i`'s running server; panics with its output.
fn run_pgbackrest(cluster: &Cluster, conf: &str, i: usize, command: &[&str]) {
    let node = &cluster.nodes[i];
    let mut args = vec![
        format!("--config={conf}"),
        format!("--stanza={STANZA}"),
        format!("--pg1-path={}", node.data_dir().display()),
        format!("--pg1-port={}", node.pg_port),
        format!("--pg1-socket-path={}", node.dir.display()),
        format!("--pg1-user={SUPERUSER}"),
    ];
    args.extend(command.iter().map(|c| c.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cluster.run_as_database_user("pgbackrest", &args);
    assert!(
        out.status.success(),
        "pgbackrest {command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn sql(node: &Node, statement: &str) -> Vec<String> {
    let client = connect(node).await.expect("connect");
    let rows = client.simple_query(statement).await.expect(statement);
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

async fn insert_range(node: &Node, ids: std::ops::RangeInclusive<i64>) {
    for id in ids {
        assert!(insert(node, id).await, "insert {id} on {}", node.name);
    }
}

/// Waits until the primary archived the segment holding everything written so far.
async fn archive_everything(cluster: &Cluster, p: usize) {
    let node = &cluster.nodes[p];
    let segment = sql(
        node,
        "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_switch_wal())",
    )
    .await
    .remove(0);
    wait_for(
        Duration::from_secs(30),
        "the last segment archived",
        cluster,
        || async {
            let done = sql(node, "SELECT last_archived_wal FROM pg_stat_archiver").await;
            (done.first().is_some_and(|last| *last >= segment)).then_some(())
        },
    )
    .await;
}

fn log_has(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

async fn reinitialize(client: &reqwest::Client, node: &Node) -> (u16, String) {
    let response = client
        .post(format!("{}/reinitialize", node.api()))
        .json(&json!({}))
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .expect("the REST API answers");
    let code = response.status().as_u16();
    (code, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_pgbackrest),
    ignore = "needs pgbackrest: build with TRIBUNE_PGBACKREST set (scripts/test.sh does)"
)]
async fn a_replica_is_restored_from_pgbackrest_and_catches_up_from_the_archive() {
    let client = http_client();
    let options = Options {
        scope: "backup",
        ..Options::default()
    };
    let mut cluster = Cluster::new(2, options);
    let conf = write_pgbackrest_conf(&cluster);
    for i in 0..2 {
        let node = &cluster.nodes[i];
        let tool = pgbackrest(&conf, node);
        cluster.edit_config(i, |text| {
            // No slot and no kept WAL: a stopped standby's WAL is recycled at the next
            // checkpoints, so only the archive can bring it back.
            let text = text
                .replacen("      use_slots: true\n", "      use_slots: false\n", 1)
                .replacen(
                    "        wal_keep_size: 64MB\n",
                    "        wal_keep_size: 0\n",
                    1,
                );
            let text = archive_parameters(text, &conf, node);
            text.replacen(
                "  pg_ctl_timeout: 30\n",
                &format!(
                    "  pg_ctl_timeout: 30\n  create_replica_methods: [pgbackrest, basebackup]\n  \
                     pgbackrest:\n    command: pgbackrest --config={conf} --stanza={STANZA} \
                     restore\n    keep_data: true\n    no_params: true\n    pg1-path: {data}\n  \
                     recovery_conf:\n    restore_command: '{tool} archive-get %f \"%p\"'\n",
                    data = node.data_dir().display()
                ),
                1,
            )
        });
    }
    cluster.start_all();
    let p = wait_for(Duration::from_secs(90), "bootstrap", &cluster, || async {
        primary(&client, &cluster).await
    })
    .await;
    let r = 1 - p;
    wait_streaming_replica(&client, &cluster, r, "the first replica to stream").await;
    // No stanza yet: the pgbackrest method failed and basebackup built the replica.
    let log = cluster.nodes[r].log();
    assert!(
        log_has(&log, "error creating replica using method pgbackrest"),
        "{}",
        cluster.log_tail(r, 80)
    );
    assert!(log_has(&log, "replica has been created using basebackup"));

    sql(
        &cluster.nodes[p],
        "CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY)",
    )
    .await;
    insert_range(&cluster.nodes[p], 1..=10).await;
    run_pgbackrest(&cluster, &conf, p, &["stanza-create"]);
    run_pgbackrest(&cluster, &conf, p, &["--type=full", "backup"]);
    insert_range(&cluster.nodes[p], 11..=20).await;

    let (code, text) = reinitialize(&client, &cluster.nodes[r]).await;
    assert_eq!(code, 200, "{text}");
    wait_for(
        Duration::from_secs(60),
        "the replica rebuilt by the pgbackrest method",
        &cluster,
        || async { log_has(&log, "replica has been created using pgbackrest").then_some(()) },
    )
    .await;
    wait_streaming_replica(&client, &cluster, r, "the restored replica to stream").await;
    wait_for(
        Duration::from_secs(30),
        "rows 1..=20 on the replica",
        &cluster,
        || async { (ids(&cluster.nodes[r]).await? == (1..=20).collect::<Vec<_>>()).then_some(()) },
    )
    .await;

    // The standby stops; the primary writes and checkpoints until the segment the standby
    // needs next is gone from its pg_wal (archived first: PostgreSQL removes no segment
    // before it is archived).
    let needed = sql(
        &cluster.nodes[p],
        "SELECT pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn())",
    )
    .await
    .remove(0);
    cluster.stop(r);
    wait_for(
        Duration::from_secs(30),
        "the standby stopped",
        &cluster,
        || async { cluster.nodes[r].postmaster_pid().is_none().then_some(()) },
    )
    .await;
    let mut id = 100;
    wait_for(
        Duration::from_secs(30),
        "the standby's next segment recycled on the primary",
        &cluster,
        || {
            id += 1;
            let id = id;
            let node = &cluster.nodes[p];
            let needed = needed.clone();
            async move {
                assert!(insert(node, id).await);
                sql(node, "SELECT pg_catalog.pg_switch_wal()").await;
                sql(node, "CHECKPOINT").await;
                let left = sql(
                    node,
                    &format!(
                        "SELECT count(*) FROM pg_catalog.pg_ls_waldir() WHERE name = '{needed}'"
                    ),
                )
                .await;
                (left == ["0"]).then_some(())
            }
        },
    )
    .await;
    let written: Vec<i64> = (1..=20).chain(101..=id).collect();
    cluster.start(r);
    wait_for(
        Duration::from_secs(60),
        "the standby caught up through the archive",
        &cluster,
        || async { (ids(&cluster.nodes[r]).await? == written).then_some(()) },
    )
    .await;
    let server_log = cluster.nodes[r].dir.join("data.log");
    assert!(
        log_has(
            &server_log,
            &format!("restored log file \"{needed}\" from archive")
        ),
        "the standby did not restore {needed} from the archive"
    );
    wait_streaming_replica(&client, &cluster, r, "the standby to stream again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tribune_pgbackrest),
    ignore = "needs pgbackrest: build with TRIBUNE_PGBACKREST set (scripts/test.sh does)"
)]
async fn a_new_cluster_is_restored_from_pgbackrest_to_a_point_in_time() {
    let client = http_client();
    let mut source = Cluster::new(
        1,
        Options {
            scope: "backup-source",
            ..Options::default()
        },
    );
    let conf = write_pgbackrest_conf(&source);
    source.edit_config(0, |text| archive_parameters(text, &conf, &source.nodes[0]));
    source.start(0);
    wait_for(
        Duration::from_secs(60),
        "the source cluster",
        &source,
        || async { primary(&client, &source).await },
    )
    .await;
    let primary_node = &source.nodes[0];
    sql(primary_node, "CREATE TABLE acked (id bigint PRIMARY KEY)").await;
    insert_range(primary_node, 1..=5).await;
    run_pgbackrest(&source, &conf, 0, &["stanza-create"]);
    run_pgbackrest(&source, &conf, 0, &["--type=full", "backup"]);
    insert_range(primary_node, 6..=8).await;
    let target = sql(primary_node, "SELECT pg_catalog.clock_timestamp()::text")
        .await
        .remove(0);
    insert_range(primary_node, 9..=10).await;
    archive_everything(&source, 0).await;
    source.stop(0);

    let mut restored = Cluster::new(
        1,
        Options {
            scope: "backup-restored",
            name_prefix: "restored",
            first_ip: 21,
            ..Options::default()
        },
    );
    let data = restored.nodes[0].data_dir().display().to_string();
    let tool = pgbackrest(&conf, &restored.nodes[0]);
    let marker = restored.root.path().join("restore-ran");
    // The method's command: a wrapper that fails its first run after leaving a file in the
    // data directory (pgbackrest then restores only if the retry starts clean), then leaves a
    // marker with its arguments and restores.
    let failed_once = restored.root.path().join("failed-once");
    let wrapper = restored.root.path().join("restore.sh");
    restored.write_owned(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ ! -e {failed} ]; then touch {failed} {data}/partial; \
             echo first attempt fails >&2; exit 3; fi\n\
             echo \"$@\" > {marker}\nexec pgbackrest --config={conf} \
             --stanza={STANZA} \"$@\" restore\n",
            failed = failed_once.display(),
            marker = marker.display()
        ),
        0o755,
    );
    restored.edit_config(0, |text| {
        text.replacen(
            "  initdb:\n",
            &format!(
                "  method: pgbackrest\n  pgbackrest:\n    command: {wrapper}\n    no_params: \
                 true\n    pg1-path: {data}\n    recovery_conf:\n      restore_command: '{tool} \
                 archive-get %f \"%p\"'\n      recovery_target_time: '{target}'\n      \
                 recovery_target_action: promote\n  initdb:\n",
                wrapper = wrapper.display(),
            ),
            1,
        )
    });
    restored.start(0);
    wait_for(
        Duration::from_secs(60),
        "the restored cluster",
        &restored,
        || async { primary(&client, &restored).await },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&marker)
            .unwrap_or_else(|e| panic!("{e}: {}", restored.log_tail(0, 80)))
            .trim(),
        format!("--pg1-path={data}"),
        "no_params: only the section's own keys are passed"
    );
    assert_eq!(
        ids(&restored.nodes[0]).await.unwrap(),
        (1..=8).collect::<Vec<_>>(),
        "the rows committed before the target time, and none after"
    );
    assert!(
        insert(&restored.nodes[0], 11).await,
        "the restored cluster takes writes"
    );
    let log = restored.nodes[0].log();
    assert!(log_has(&log, "running custom bootstrap script"));
    assert!(log_has(&log, "the bootstrap method pgbackrest: "));
    assert!(log_has(&log, "removed the failed restore's copy"));
}
