//! `tribunectl fleet` and `haproxy-config --fleet` over real clusters: a PostgreSQL cluster of
//! three, a witness-only cluster of three, a single witness, and a cluster of witnesses that was
//! started and then stopped (down). Each cluster has addresses of its own.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::*;

fn fleet_command(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args(args)
        .env_remove("TRIBUNECTL_URL")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run tribunectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn witness_options(scope: &'static str, first_ip: u8) -> Options {
    Options {
        scope,
        name_prefix: "w",
        first_ip,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_shows_database_and_witness_clusters_and_one_that_is_down() {
    let client = http_client();
    let (db, _) = default_cluster(&client).await;
    let mut arbiters = Cluster::witnesses(3, witness_options("arbiters", 31));
    arbiters.start_all();
    let mut lone = Cluster::witnesses(1, witness_options("lone", 41));
    lone.start_all();
    let mut gone = Cluster::witnesses(1, witness_options("gone", 51));
    gone.start_all();
    for cluster in [&arbiters, &lone, &gone] {
        wait_for(
            Duration::from_secs(30),
            "the witnesses' cluster",
            cluster,
            || async {
                let doc = get_json(&client, &format!("{}/cluster", cluster.nodes[0].api())).await?;
                let members = doc["members"].as_array()?;
                (members.len() == cluster.nodes.len()).then_some(())
            },
        )
        .await;
    }
    // The database cluster's synchronous standby is in place before the table is read.
    wait_sync_standby(&client, &db, 0).await;
    gone.stop(0);
    let gone_url = gone.nodes[0].api();

    // Sources of each kind: a node's configuration file, URLs of several members, a list file.
    let list = db.root.path().join("fleet.txt");
    std::fs::write(
        &list,
        format!(
            "# witness clusters\n{}\n{}\n",
            arbiters
                .nodes
                .iter()
                .map(|n| n.api())
                .collect::<Vec<_>>()
                .join(","),
            lone.nodes[0].api()
        ),
    )
    .unwrap();
    let db_config = db.nodes[0].config.display().to_string();
    let list_file = list.display().to_string();
    let sources = [db_config.as_str(), list_file.as_str(), gone_url.as_str()];

    let started = Instant::now();
    let mut args = vec!["fleet", "--timeout", "2", "-f", "json"];
    args.extend(sources);
    let (ok, out, err) = fleet_command(&args);
    let took = started.elapsed();
    assert!(ok, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).expect(&out);
    let row = |cluster: &str| {
        rows.iter()
            .find(|r| r["Cluster"] == cluster)
            .unwrap_or_else(|| panic!("no row for {cluster}: {out}"))
    };
    assert_eq!(rows.len(), 4, "{out}");

    let itest = row("itest");
    let primary = primary(&client, &db).await.expect("a primary");
    assert_eq!(itest["Primary"], db.nodes[primary].name.as_str(), "{out}");
    assert_eq!(
        (itest["Healthy"].as_u64(), itest["Members"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(
        itest["Sync"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sync: "),
        "{out}"
    );
    assert_eq!(itest["Paused"], false);
    assert!(itest.get("Problem").is_none(), "{out}");
    assert!(itest["Max Lag in MB"].is_u64(), "{out}");

    let arbiters_row = row("arbiters");
    assert_eq!(
        (
            arbiters_row["Healthy"].as_u64(),
            arbiters_row["Members"].as_u64()
        ),
        (Some(3), Some(3)),
        "{out}"
    );
    assert!(arbiters_row.get("Primary").is_none() && arbiters_row.get("Sync").is_none());
    assert_eq!(row("lone")["Members"], 1);

    let down = row(&gone_url);
    assert!(
        down["Problem"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unreachable: "),
        "{out}"
    );
    assert!(took < Duration::from_secs(5), "the table took {took:?}");

    // The pretty table says the same, with the down cluster counted in its border.
    let mut args = vec!["fleet"];
    args.extend(sources);
    let (ok, table, err) = fleet_command(&args);
    assert!(ok, "{err}");
    assert!(
        table.starts_with("+ Fleet: 4 clusters, 1 needing attention, 1 unreachable "),
        "{table}"
    );
    assert!(table.contains("| itest "), "{table}");

    // One HAProxy configuration for the fleet: refused while a cluster is down, unless told
    // to skip it; the witness clusters have no servers and are said to be left out.
    let mut args = vec![
        "haproxy-config",
        "--primary-port",
        "16000",
        "--replica-port",
        "16001",
        "--fleet",
    ];
    args.extend(sources);
    let (ok, _, err) = fleet_command(&args);
    assert!(!ok, "a fleet with a cluster down is refused");
    assert!(err.contains("--skip-unreachable"), "{err}");
    args.push("--skip-unreachable");
    let (ok, cfg, err) = fleet_command(&args);
    assert!(ok, "{err}");
    assert!(
        cfg.contains("listen primary_itest\n    bind 127.0.0.1:16000\n"),
        "{cfg}"
    );
    assert!(
        cfg.contains("listen replicas_itest\n    bind 127.0.0.1:16001\n"),
        "{cfg}"
    );
    for node in &db.nodes {
        assert!(
            cfg.contains(&format!(
                " {}:{} maxconn 100 check port {}",
                node.ip, node.pg_port, node.api_port
            )),
            "{cfg}"
        );
    }
    assert!(!cfg.contains("primary_arbiters"));
    assert!(
        err.contains("left out arbiters: no member with a PostgreSQL address"),
        "{err}"
    );
    assert!(err.contains("ports 16006 and 16007 stay reserved"), "{err}");
    // HAProxy accepts it.
    let file = db.root.path().join("fleet-haproxy.cfg");
    std::fs::write(&file, &cfg).unwrap();
    let check = std::process::Command::new("/usr/sbin/haproxy")
        .args(["-c", "-q", "-f"])
        .arg(&file)
        .output()
        .expect("run haproxy -c");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
