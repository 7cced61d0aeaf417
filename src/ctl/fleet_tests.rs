use serde_json::json;

use super::*;
use crate::api::ClusterMember;

fn member(name: &str, role: &str, state: &str, lag: Option<Value>) -> ClusterMember {
    ClusterMember {
        name: name.to_owned(),
        role: role.to_owned(),
        state: state.to_owned(),
        api_url: format!("http://{name}:8008/patroni"),
        host: (role != "witness").then(|| name.to_owned()),
        port: (role != "witness").then_some(5432),
        lag,
        ..Default::default()
    }
}

fn doc(scope: &str, members: Vec<ClusterMember>) -> ClusterDocument {
    ClusterDocument {
        members,
        scope: scope.to_owned(),
        ..Default::default()
    }
}

fn raft(names: &[(&str, Option<bool>)], leader: Option<&str>) -> MembersDocument {
    MembersDocument {
        scope: "x".to_owned(),
        raft_leader: leader.map(str::to_owned),
        members: names
            .iter()
            .map(|(name, reachable)| crate::api::MembersRow {
                name: Some(name.to_string()),
                reachable: *reachable,
                raft_role: "voter".to_owned(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A healthy three-member cluster in synchronous mode with one timeline switch.
fn healthy() -> Snapshot {
    Snapshot {
        cluster: doc(
            "db1",
            vec![
                member("a", "leader", "running", None),
                member("b", "sync_standby", "streaming", Some(json!(0))),
                member("c", "replica", "streaming", Some(json!(3_145_728))),
            ],
        ),
        members: Ok(raft(
            &[("a", Some(true)), ("b", Some(true)), ("c", Some(true))],
            Some("b"),
        )),
        history: Ok(vec![vec![
            json!(1),
            json!(25_165_824),
            json!("no recovery target specified"),
            json!("2026-11-01T12:00:00.123456+00:00"),
            json!("a"),
        ]]),
        config: Ok(json!({"ttl": 3, "synchronous_mode": true})),
    }
}

#[test]
fn a_healthy_cluster_is_one_complete_row() {
    let row = FleetRow::from_snapshot(&healthy());
    assert_eq!(
        row,
        FleetRow {
            cluster: "db1".to_owned(),
            primary: Some(("a".to_owned(), false)),
            healthy: 3,
            members: 3,
            databases: 3,
            sync: SyncState::Synchronous(vec!["b".to_owned()]),
            max_lag: MaxLag::Bytes(3_145_728),
            last_failover: Some(("2026-11-01 12:00:00+00:00".to_owned(), "a".to_owned())),
            paused: false,
            problem: None,
        }
    );
    assert!(!row.needs_attention());
}

#[test]
fn each_kind_of_trouble_shows_in_its_column() {
    // The Raft leader no longer hears c; b stopped streaming.
    let mut s = healthy();
    s.cluster.members[1].state = "running".to_owned();
    s.members = Ok(raft(
        &[("a", Some(true)), ("b", Some(true)), ("c", Some(false))],
        Some("a"),
    ));
    let row = FleetRow::from_snapshot(&s);
    assert_eq!((row.healthy, row.members), (1, 3));
    assert!(row.needs_attention());

    // No synchronous standby: degraded, or blocked in strict mode.
    let mut s = healthy();
    s.cluster.members[1].role = "replica".to_owned();
    assert_eq!(FleetRow::from_snapshot(&s).sync, SyncState::Degraded);
    s.config = Ok(json!({"synchronous_mode": "on", "synchronous_mode_strict": true}));
    let row = FleetRow::from_snapshot(&s);
    assert_eq!(row.sync, SyncState::Blocked);
    assert!(row.needs_attention());

    // Quorum commit: any k of the quorum standbys.
    let mut s = healthy();
    s.cluster.members[1].role = "quorum_standby".to_owned();
    s.cluster.members[2].role = "quorum_standby".to_owned();
    s.config = Ok(json!({"synchronous_mode": "quorum", "synchronous_node_count": 1}));
    assert_eq!(FleetRow::from_snapshot(&s).sync.text(), "quorum 1 of b, c");

    // Asynchronous by configuration is not a problem.
    let mut s = healthy();
    s.cluster.members[1].role = "replica".to_owned();
    s.config = Ok(json!({"synchronous_mode": false}));
    let row = FleetRow::from_snapshot(&s);
    assert_eq!(row.sync, SyncState::Asynchronous);
    assert!(!row.needs_attention());

    // No primary, no Raft leader, a standby whose position is unknown, paused.
    let mut s = healthy();
    s.cluster.members[0].role = "replica".to_owned();
    s.cluster.members[0].state = "stopped".to_owned();
    s.cluster.members[2].lag = Some(json!("unknown"));
    s.cluster.pause = Some(true);
    s.members = Ok(raft(&[("a", None), ("b", None), ("c", None)], None));
    let row = FleetRow::from_snapshot(&s);
    assert_eq!(row.primary, None);
    assert_eq!(row.max_lag, MaxLag::Unknown);
    assert!(row.paused);
    assert_eq!(row.problem.as_deref(), Some("no Raft leader"));
    assert_eq!(row.healthy, 2, "reachability unknown: the states decide");

    // Documents that did not come: the row says which.
    let mut s = healthy();
    s.history = Err("/history: no answer within the deadline".to_owned());
    s.config = Err("/config answered 502: the cluster has no configuration yet".to_owned());
    let row = FleetRow::from_snapshot(&s);
    assert_eq!(row.sync, SyncState::Unknown);
    assert_eq!(row.last_failover, None);
    assert_eq!(
        row.problem.as_deref(),
        Some(
            "configuration unknown: /config answered 502: the cluster has no configuration yet; \
             history unknown: /history: no answer within the deadline"
        )
    );
}

#[test]
fn witnesses_and_standby_clusters_are_not_held_to_a_primary() {
    let witnesses = Snapshot {
        cluster: doc("arbiters", vec![member("w1", "witness", "running", None)]),
        members: Ok(raft(&[("w1", Some(true))], Some("w1"))),
        history: Ok(vec![]),
        config: Ok(json!({})),
    };
    let row = FleetRow::from_snapshot(&witnesses);
    assert_eq!(row.sync, SyncState::NotApplicable);
    assert_eq!((row.healthy, row.members), (1, 1));
    assert!(!row.needs_attention());

    let mut standby = healthy();
    standby.cluster.members[0].role = "standby_leader".to_owned();
    standby.cluster.members[0].state = "streaming".to_owned();
    standby.cluster.members[1].role = "replica".to_owned();
    standby.config = Ok(json!({"standby_cluster": {"host": "10.1.0.1", "port": 5432}}));
    let row = FleetRow::from_snapshot(&standby);
    assert_eq!(row.primary, Some(("a".to_owned(), true)));
    assert_eq!(row.sync, SyncState::Asynchronous);
    assert_eq!(
        row.healthy, 3,
        "a standby leader streams: its state is `streaming`"
    );
}

#[test]
fn the_pretty_table_summarises_the_fleet_in_its_border() {
    let mut second = healthy();
    second.cluster.scope = "db2".to_owned();
    second.cluster.members[1].role = "replica".to_owned();
    second.cluster.pause = Some(true);
    second.history = Ok(vec![]);
    let rows = vec![
        FleetRow::from_snapshot(&healthy()),
        FleetRow::from_snapshot(&second),
        FleetRow::unreachable("http://10.0.0.9:8008", "connection refused"),
    ];
    let text = render(&rows, Format::Pretty).unwrap();
    assert_eq!(
        text,
        "\
+ Fleet: 3 clusters, 2 needing attention, 1 unreachable ------+---------------+--------------------------------+--------+---------------------------------+
| Cluster              | Primary | Members | Sync             | Max Lag in MB | Last Failover                  | Paused | Problem                         |
+----------------------+---------+---------+------------------+---------------+--------------------------------+--------+---------------------------------+
| db1                  | a       |     3/3 | sync: b          |             3 | 2026-11-01 12:00:00+00:00 -> a |        |                                 |
| db2                  | a       |     3/3 | DEGRADED (async) |             3 |                                | yes    |                                 |
| http://10.0.0.9:8008 |         |         |                  |               |                                |        | unreachable: connection refused |
+----------------------+---------+---------+------------------+---------------+--------------------------------+--------+---------------------------------+
"
    );
}

#[test]
fn json_and_yaml_records_keep_the_values_typed() {
    let rows = vec![
        FleetRow::from_snapshot(&healthy()),
        FleetRow::unreachable("http://10.0.0.9:8008", "timed out"),
    ];
    let text = render(&rows, Format::Json).unwrap();
    let records: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        records[0],
        json!({"Cluster": "db1", "Primary": "a", "Healthy": 3, "Members": 3, "Sync": "sync: b",
               "Max Lag in MB": 3, "Last Failover": "2026-11-01 12:00:00+00:00 -> a",
               "Paused": false})
    );
    assert_eq!(
        records[1],
        json!({"Cluster": "http://10.0.0.9:8008", "Problem": "unreachable: timed out"})
    );
    let yaml = render(&rows, Format::Yaml).unwrap();
    assert!(yaml.contains("Cluster: db1"), "{yaml}");
    let tsv = render(&rows, Format::Tsv).unwrap();
    assert!(
        tsv.starts_with("Cluster\tPrimary\tHealthy\tMembers\tSync\t"),
        "{tsv}"
    );
}

#[test]
fn times_are_shortened_to_seconds_with_their_offset() {
    assert_eq!(
        short_time("2026-11-01T12:00:00.5+02:00"),
        "2026-11-01 12:00:00+02:00"
    );
    assert_eq!(
        short_time("2026-11-01T12:00:00-05:00"),
        "2026-11-01 12:00:00-05:00"
    );
    assert_eq!(short_time("2026-11-01T12:00:00Z"), "2026-11-01 12:00:00Z");
    assert_eq!(short_time(""), "");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn clusters_come_from_urls_configuration_files_and_lists() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("conf");
    std::fs::create_dir(&configs).unwrap();
    write(
        &configs,
        "a-node1.yml",
        "scope: alpha\nrestapi: {connect_address: 10.0.0.1:8008}\n",
    );
    write(
        &configs,
        "a-node2.yaml",
        "scope: alpha\nrestapi: {connect_address: 10.0.0.2:8008, certfile: /c.pem}\n",
    );
    write(
        &configs,
        "b.yml",
        "scope: beta\nrestapi: {listen: 0.0.0.0:8010}\nctl: {insecure: true}\n",
    );
    write(&configs, "notes.txt", "not a configuration");
    let list = write(
        dir.path(),
        "fleet.txt",
        "# storage units\nhttp://10.1.0.1:8008, http://10.1.0.2:8008  # shard 1\n\nftp://10.1.1.1:8008\n",
    );
    let sources = vec![
        "http://10.9.0.1:8008".to_owned(),
        configs.display().to_string(),
        list.display().to_string(),
    ];
    let found = targets(&sources, &Global::default()).unwrap_err();
    assert!(
        found.to_string().contains("line 4")
            && found
                .root_cause()
                .to_string()
                .contains("ftp://10.1.1.1:8008"),
        "a line that is no REST URL is refused with its line number: {found:#}"
    );

    write(
        dir.path(),
        "fleet.txt",
        "# storage units\nhttp://10.1.0.1:8008, http://10.1.0.2:8008/  # shard 1\n10.1.1.1:8008\n",
    );
    let found = targets(&sources, &Global::default()).unwrap();
    let summary: Vec<(&str, Vec<&str>, bool)> = found
        .iter()
        .map(|t| {
            (
                t.label.as_str(),
                t.urls.iter().map(String::as_str).collect(),
                t.settings.insecure,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("http://10.9.0.1:8008", vec!["http://10.9.0.1:8008"], false),
            (
                "alpha",
                vec!["http://10.0.0.1:8008", "https://10.0.0.2:8008"],
                false
            ),
            ("beta", vec!["http://127.0.0.1:8010"], true),
            (
                "http://10.1.0.1:8008",
                vec!["http://10.1.0.1:8008", "http://10.1.0.2:8008"],
                false
            ),
            ("http://10.1.1.1:8008", vec!["http://10.1.1.1:8008"], false),
        ]
    );
}

#[test]
fn bad_sources_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let global = Global::default();
    let refused = |sources: &[&str]| {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        format!("{:#}", targets(&sources, &global).unwrap_err())
    };
    assert!(refused(&["/nonexistent/fleet"]).contains("neither a REST URL"));
    assert!(refused(&["http://"]).contains("neither a REST URL"));
    assert!(refused(&["http://a:8008,ftp://b"]).contains("neither a REST URL"));
    assert!(refused(&["fleet.txt"]).contains("neither a REST URL"));
    assert!(refused(&[&dir.path().display().to_string()]).contains("holds no .yml"));
    let no_scope = write(dir.path(), "n.yml", "restapi: {listen: 10.0.0.1:8008}\n");
    assert!(refused(&[&no_scope.display().to_string()]).contains("names no scope"));
    let no_api = write(dir.path(), "m.yml", "scope: s\n");
    assert!(refused(&[&no_api.display().to_string()]).contains("names no REST API"));
    let empty = write(dir.path(), "empty.txt", "# nothing yet\n");
    assert!(refused(&[&empty.display().to_string()]).contains("list none"));
}

#[test]
fn the_deadline_must_be_a_positive_number_of_seconds() {
    assert_eq!(deadline("1.5"), Ok(1.5));
    for bad in ["0", "-1", "nan", "inf", "soon"] {
        assert!(deadline(bad).is_err(), "{bad}");
    }
}

/// A cluster that accepts connections but never answers is shown unreachable once the
/// deadline passes, while the others are shown: one slow cluster does not hold the table.
#[tokio::test]
async fn a_silent_cluster_costs_the_deadline_not_more() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_addr = refused.local_addr().unwrap();
    drop(refused);
    let targets: Vec<Target> = [
        format!("http://{}", silent.local_addr().unwrap()),
        format!("http://{refused_addr}"),
    ]
    .iter()
    .map(|u| url_target(u, &Settings::default()).unwrap())
    .collect();
    let started = std::time::Instant::now();
    let rows = survey(&targets, Duration::from_millis(300)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(rows.len(), 2);
    let problem = |i: usize| rows[i].problem.clone().unwrap_or_default();
    assert!(
        rows.iter().all(|r| r
            .problem
            .as_deref()
            .unwrap_or_default()
            .starts_with("unreachable: ")),
        "{rows:?}"
    );
    assert!(
        (0..2).any(|i| problem(i).contains("timed out") || problem(i).contains("deadline")),
        "{rows:?}"
    );
    assert!((0..2).any(|i| problem(i).contains("refused")), "{rows:?}");
}
