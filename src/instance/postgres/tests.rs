//! The whole lifecycle against real PostgreSQL: bootstrap, clone, stream, promote, rewind.
//!
//! Ignored by default: PostgreSQL refuses to run as root, and it needs the binaries. Run it as
//! the database's OS user, for example (as root):
//!
//! ```text
//! cargo test --lib --no-run          # prints the test binary's path
//! cp target/debug/deps/tribune-<hash> /tmp/tribune-tests && chmod 755 /tmp/tribune-tests
//! cd /tmp && runuser -u postgres -- /tmp/tribune-tests instance::postgres::tests --ignored --nocapture
//! ```
//!
//! `TRIBUNE_PG_BIN` overrides the binaries' directory (default `/usr/lib/postgresql/15/bin`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::types::Timeline;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn settings(dir: &Path, bin: &Path, name: &str, port: u16) -> PostgresSettings {
    PostgresSettings {
        name: MemberName::from(name),
        scope: "lifecycle".into(),
        data_dir: dir.join(name),
        bin_dir: Some(bin.to_path_buf()),
        bin_name: Default::default(),
        pg_ident: Vec::new(),
        custom_conf: None,
        superuser_libpq: Vec::new(),
        replication_libpq: Vec::new(),
        rewind_libpq: Vec::new(),
        use_unix_socket_repl: false,
        listen_host: "127.0.0.1".into(),
        listen_port: port,
        connect_host: "127.0.0.1".into(),
        connect_port: port,
        superuser: ("postgres".into(), Some("su'secret".into())),
        replication: ("replicator".into(), Some("rep secret".into())),
        rewind: Some(("rewinder".into(), Some("rw:secret".into()))),
        pgpass: dir.join(format!("{name}.pgpass")),
        parameters: BTreeMap::from([
            ("shared_buffers".to_owned(), serde_json::json!("16MB")),
            ("max_connections".to_owned(), serde_json::json!(30)),
        ]),
        pg_hba: Vec::new(),
        initdb_args: vec!["--encoding=UTF8".into(), "--no-sync".into()],
        basebackup_args: Vec::new(),
        replica_methods: vec![crate::config::ReplicaMethod::Basebackup],
        recovery_conf: Default::default(),
        bootstrap_method: None,
        use_slots: true,
        nostream: false,
        use_pg_rewind: true,
        pg_ctl_timeout: Duration::from_secs(60),
    }
}

fn upstream(pg: &Postgres) -> Upstream {
    Upstream {
        member: pg.settings().name.clone(),
        host: pg.settings().connect_host.clone(),
        port: pg.settings().connect_port,
    }
}

fn source(pg: &Postgres) -> WalSource {
    WalSource::Member(upstream(pg))
}

async fn exec(pg: &Postgres, sql: &str) -> Vec<String> {
    let rows = pg.sql(sql, Duration::from_secs(10)).await.expect(sql);
    rows_column(&rows, 0)
}

/// Polls `check` on `pg`'s status until it holds, for up to 60 s.
async fn wait_status(
    pg: &Postgres,
    what: &str,
    check: impl Fn(&LocalStatus) -> bool,
) -> LocalStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = pg.status().await;
        if check(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "{what}: last status {st:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_rows(pg: &Postgres, expected: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = pg
            .sql("SELECT v FROM t ORDER BY v", Duration::from_secs(5))
            .await
            .map(|r| rows_column(&r, 0));
        if let Ok(rows) = &rows
            && rows == expected
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rows {rows:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The binaries' directory; a test asked to run where it cannot fails with the reason (these
/// tests are ignored unless asked for).
fn pg_bin() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var("TRIBUNE_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
    );
    let reason = if nix::unistd::geteuid().is_root() {
        "PostgreSQL does not run as root; run this test as the postgres user".to_owned()
    } else if !bin.join("pg_ctl").exists() {
        format!("no pg_ctl in {}", bin.display())
    } else {
        return bin;
    };
    panic!("cannot run here: {reason}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL binaries and a non-root user"]
async fn lifecycle_bootstrap_clone_promote_rewind() {
    let bin = pg_bin();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let tmp = tempfile::tempdir().unwrap();
    // TRIBUNE_KEEP_TMP=1 keeps the directories (data, logs) for inspection.
    let tmp_path = if std::env::var_os("TRIBUNE_KEEP_TMP").is_some() {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    let a = Postgres::new(settings(&tmp_path, &bin, "node-a", free_port()));
    let b = Postgres::new(settings(&tmp_path, &bin, "node-b", free_port()));
    let members = crate::instance::slots::SlotTargets {
        role: crate::instance::slots::SlotRole::Primary,
        members: vec![a.settings().name.clone(), b.settings().name.clone()],
        retained: vec![],
        permanent: Default::default(),
        ignore: vec![],
        primary: Default::default(),
        upstream: None,
    };

    // Bootstrap a primary.
    assert_eq!(a.data_dir().await.unwrap(), DataDir::Empty);
    assert_eq!(a.status().await.state, DbState::Stopped);
    let sysid = a.bootstrap().await.expect("bootstrap");
    let st = a.status().await;
    assert_eq!(st.state, DbState::Running);
    assert_eq!(st.role, Some(DbRole::Primary));
    assert_eq!(st.timeline, Some(Timeline(1)));
    assert_eq!(st.sysid.as_deref(), Some(sysid.as_str()));
    assert!(st.server_version.unwrap() >= 130000);
    assert!(st.wal_position.is_some());
    let opts = std::fs::read_to_string(a.settings().file("postmaster.opts")).unwrap();
    assert!(opts.contains("--max_connections=30"), "{opts}");
    assert!(opts.contains("--wal_log_hints=on"), "{opts}");
    a.start(None).await.expect("start is idempotent");
    exec(
        &a,
        "CREATE TABLE t (v text PRIMARY KEY); INSERT INTO t VALUES ('one')",
    )
    .await;
    a.sync_replication_slots(&members).await.unwrap();
    assert_eq!(
        exec(&a, "SELECT slot_name FROM pg_replication_slots").await,
        ["node_b"]
    );

    // Clone a standby and stream.
    b.clone_from(&source(&a)).await.expect("clone");
    match b.data_dir().await.unwrap() {
        DataDir::Initialized(cd) => {
            assert_eq!(cd.sysid, sysid);
            assert!(cd.standby_configured);
        }
        DataDir::Empty => panic!("clone left an empty data directory"),
    }
    b.start(Some(&source(&a))).await.expect("start standby");
    let st = wait_status(&b, "standby streams", |s| s.streaming).await;
    assert_eq!(st.role, Some(DbRole::Standby));
    assert_eq!(
        st.upstream.as_deref(),
        Some(format!("127.0.0.1:{}", a.settings().listen_port).as_str())
    );
    exec(&a, "INSERT INTO t VALUES ('two')").await;
    wait_rows(&b, &["one", "two"]).await;
    let st = wait_status(&a, "primary sees its standby", |s| {
        !s.replication.is_empty()
    })
    .await;
    assert_eq!(st.replication[0].application_name, "node-b");
    assert_eq!(st.replication[0].usename, "replicator");
    b.follow(&source(&a))
        .await
        .expect("follow the same upstream");
    b.start(Some(&source(&a)))
        .await
        .expect("start standby is idempotent");
    let st = wait_status(&b, "standby streams after reloads", |s| s.streaming).await;
    assert!(
        !st.pending_restart,
        "a reload must not leave a restart pending"
    );

    // Strict synchronous mode: the standby loads the names it will run with as primary, and
    // goes on streaming meanwhile.
    assert_eq!(b.set_synchronous_standby_names("*").await.unwrap(), None);
    assert_eq!(
        exec(&b, "SELECT current_setting('synchronous_standby_names')").await,
        ["*"]
    );
    exec(&a, "INSERT INTO t VALUES ('before failover')").await;
    wait_rows(&b, &["before failover", "one", "two"]).await;

    // Fail over: kill the primary, promote the standby.
    a.stop(StopMode::Immediate).await.expect("immediate stop");
    assert_eq!(a.status().await.state, DbState::Stopped);
    a.stop(StopMode::Fast).await.expect("stopping twice");
    b.promote(Generation(2)).await.expect("promote");
    // Commits wait from the promotion on, before any later write of the agent.
    assert_eq!(
        exec(&b, "SELECT current_setting('synchronous_standby_names')").await,
        ["*"]
    );
    b.promote(Generation(2))
        .await
        .expect("promote is idempotent");
    assert!(b.set_synchronous_standby_names("").await.unwrap().is_some());
    b.checkpoint().await.expect("checkpoint");
    let st = b.status().await;
    assert_eq!(st.role, Some(DbRole::Primary));
    assert_eq!(st.timeline, Some(Timeline(2)));
    assert!(!b.settings().file("standby.signal").exists());
    exec(&b, "INSERT INTO t VALUES ('three')").await;
    b.sync_replication_slots(&members).await.unwrap();

    // Rejoin the old primary with pg_rewind.
    match a.data_dir().await.unwrap() {
        DataDir::Initialized(cd) => {
            assert_eq!(cd.cluster_state, ClusterStateOnDisk::InProduction);
            assert_eq!(cd.timeline, Timeline(1));
        }
        DataDir::Empty => panic!("data directory vanished"),
    }
    // The old primary comes back on its own for a moment and writes what must be lost.
    a.start(None).await.expect("restart the old primary");
    exec(&a, "INSERT INTO t VALUES ('lost')").await;
    a.stop(StopMode::Immediate).await.unwrap();
    assert_eq!(a.status().await.state, DbState::Stopped);
    a.rewind(&upstream(&b)).await.expect("rewind");
    a.start(Some(&source(&b)))
        .await
        .expect("start rewound standby");
    let st = wait_status(&a, "old primary streams from the new one", |s| s.streaming).await;
    assert_eq!(st.role, Some(DbRole::Standby));
    assert_eq!(st.timeline, Some(Timeline(2)));
    wait_rows(&a, &["before failover", "one", "three", "two"]).await;

    // Wrong-role requests fail without side effects.
    assert!(b.follow(&source(&a)).await.is_err());
    assert!(a.start(None).await.is_err());

    // Shut down, set aside.
    a.stop(StopMode::Fast).await.unwrap();
    b.stop(StopMode::Fast).await.unwrap();
    assert_eq!(b.status().await.state, DbState::Stopped);
    let aside = a.set_aside_data_dir().await.unwrap();
    assert!(aside.join("PG_VERSION").exists());
    assert_eq!(a.data_dir().await.unwrap(), DataDir::Empty);
}

/// Without a `local` line in `pg_hba` the agent logs in over TCP with the password; a killed
/// postmaster reads as crashed and restarts with PostgreSQL's own crash recovery.
#[tokio::test]
#[ignore = "needs PostgreSQL binaries and a non-root user"]
async fn tcp_login_and_crash_detection() {
    let bin = pg_bin();
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path(), &bin, "solo", free_port());
    s.pg_hba = vec![
        "host all all 127.0.0.1/32 scram-sha-256".into(),
        "host replication replicator 127.0.0.1/32 scram-sha-256".into(),
    ];
    s.pg_ident = vec!["tribune_map postgres postgres".into()];
    let pg = Postgres::new(s);
    pg.bootstrap().await.expect("bootstrap over TCP");
    assert_eq!(pg.status().await.role, Some(DbRole::Primary));
    // postgresql.pg_ident is the server's pg_ident.conf.
    assert_eq!(
        exec(
            &pg,
            "SELECT map_name || ' ' || sys_name FROM pg_ident_file_mappings"
        )
        .await,
        ["tribune_map postgres"]
    );
    assert_eq!(
        exec(
            &pg,
            "SELECT client_addr IS NOT NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        .await,
        ["t"]
    );

    let pid = match datadir::postmaster(&pg.settings().data_dir) {
        datadir::Postmaster::Alive(p) => p.pid.unwrap(),
        other => panic!("postmaster {other:?}"),
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_status(&pg, "a killed postmaster reads as crashed", |s| {
        s.state == DbState::Crashed
    })
    .await;
    match pg.data_dir().await.unwrap() {
        DataDir::Initialized(cd) => {
            assert_eq!(cd.cluster_state, ClusterStateOnDisk::InProduction)
        }
        DataDir::Empty => panic!("data directory vanished"),
    }
    // Children of a SIGKILLed postmaster may linger for a moment and hold the shared memory.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match pg.start(None).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("retrying start after crash: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("start after crash: {e}"),
        }
    }
    assert_eq!(pg.status().await.state, DbState::Running);
    pg.stop(StopMode::Fast).await.unwrap();
}
