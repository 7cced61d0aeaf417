//! The agents' own port under mutual TLS (`raft.certfile`, `keyfile`, `keyfile_password`,
//! `cafile`) on real agents and PostgreSQL: a three-member cluster boots, switches over and
//! fails over under writes without losing an acknowledged one; rogue clients that know the
//! scope but lack a certificate of the cluster's CA cannot forward, vote, append or ask to
//! join, and change nothing (a control with a member's certificate shows the same attack
//! would work); a CA rotation one member at a time under writes loses nothing and costs no
//! failover; and no secret of the run appears in an API answer, `tribunectl show-config` or
//! a log line.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tonic::transport::{Channel, Endpoint};

use crate::cluster::{create_table, wait_healthy, wait_rows};
use crate::faults::{check_history, start_workload};
use crate::harness::*;

/// The gRPC client an attacker builds from `proto/tribune.proto`.
mod proto {
    #![allow(clippy::all, clippy::pedantic, dead_code)]
    tonic::include_proto!("tribune");
}

use proto::raft_client::RaftClient;

/// The REST password of these clusters, among the secrets that must never appear.
const REST_PASSWORD: &str = "rest-pass-91c2";
/// The `raft.password` of the password cluster.
const RAFT_PASSWORD: &str = "raft-pass-5d1a-0be7";

/// How a rogue client dials a member's Raft port.
enum Rogue {
    /// Plain-text HTTP/2.
    PlainText,
    /// TLS, trusting the cluster's CA, with this client certificate and key (PEM), or none.
    Tls(Option<(String, String)>),
}

/// A channel to `addr` the way `rogue` dials.
fn rogue_channel(addr: &str, rogue: &Rogue, cluster_ca: &str) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(3));
    let Rogue::Tls(identity) = rogue else {
        return endpoint.connect_lazy();
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(cluster_ca) {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            use rustls::pki_types::PrivateKeyDer;
            use rustls::pki_types::pem::PemObject;
            builder
                .with_client_auth_cert(
                    rustls_pemfile_certs(cert),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let addr = addr.to_owned();
    endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
        let (config, addr) = (config.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let host = addr.rsplit_once(':').unwrap().0.to_owned();
            let name = rustls::pki_types::ServerName::try_from(host).unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    }))
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}

fn with_scope<T>(scope: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-tribune-scope", scope.parse().unwrap());
    request
}

/// What a rogue client tries on `addr`: a forwarded `pause`, a vote with a huge term, an
/// append, a membership change adding itself, a membership probe. Returns how many calls the
/// member answered at all (a service answer, even a refusal, means it decoded the request).
async fn attack(addr: &str, scope: &str, rogue: &Rogue, cluster_ca: &str) -> usize {
    let mut client = RaftClient::new(rogue_channel(addr, rogue, cluster_ca));
    let pause = tribune::state::Command::SetConfig {
        config: json!({"pause": true}),
        expected: None,
    };
    let command = serde_json::to_vec(&pause).unwrap();
    let vote = serde_json::to_vec(&json!({
        "vote": {"leader_id": {"term": 1000, "node_id": 7}, "committed": false},
        "last_log_id": null
    }))
    .unwrap();
    let join = serde_json::to_vec(
        &json!({"Change": {"Add": {"name": "rogue", "raft_addr": "10.9.9.9:1"}}}),
    )
    .unwrap();
    let answered = |result: Result<(), tonic::Status>| match result {
        Ok(()) => true,
        Err(status) => {
            std::error::Error::source(&status).is_none_or(|e| !e.is::<tonic::transport::Error>())
        }
    };
    let mut served = 0;
    let results = [
        client
            .forward(with_scope(scope, proto::ForwardRequest { command }))
            .await
            .map(drop),
        client
            .vote(with_scope(scope, proto::RaftMessage { json: vote.clone() }))
            .await
            .map(drop),
        client
            .append(with_scope(scope, proto::RaftMessage { json: vote }))
            .await
            .map(drop),
        client
            .forward_members(with_scope(
                scope,
                proto::ForwardMembersRequest { request: join },
            ))
            .await
            .map(drop),
        client
            .membership(with_scope(scope, proto::MembershipRequest {}))
            .await
            .map(drop),
    ];
    for result in results {
        if answered(result) {
            served += 1;
        }
    }
    served
}

/// What an attack must not change: every member's Raft term, its view of the membership, the
/// members of `/cluster`, the pause flag.
async fn cluster_facts(client: &reqwest::Client, nodes: &[Node]) -> Vec<Value> {
    let mut facts = Vec::new();
    for node in nodes {
        let metrics = get_text(client, &format!("{}/metrics", node.api()))
            .await
            .unwrap_or_default();
        let members = get_json(client, &format!("{}/members", node.api())).await;
        let doc = get_json(client, &format!("{}/cluster", node.api())).await;
        let names: BTreeSet<String> = doc
            .as_ref()
            .and_then(|d| d["members"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["name"].as_str().map(str::to_owned))
            .collect();
        let voters = members.as_ref().map(|m| {
            let mut v: Vec<String> = m["members"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|m| format!("{}@{} {}", m["name"], m["raft_addr"], m["raft_role"]))
                .collect();
            v.sort();
            v
        });
        facts.push(json!({
            "term": metric(&metrics, "tribune_raft_term"),
            "voters": voters,
            "members": names,
            "pause": doc.as_ref().map(|d| d["pause"].clone()),
        }));
    }
    facts
}

/// The attacks' vote carries term 1000: had one got through, a member's term would have jumped
/// there. A spontaneous election of a loaded machine may raise the term by one or two, which
/// is no attack's doing; membership, members and the pause flag must be exactly as before.
fn assert_unchanged(before: &[Value], after: &[Value]) {
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(after) {
        let (bt, at) = (
            b["term"].as_f64().unwrap_or(0.0),
            a["term"].as_f64().unwrap_or(0.0),
        );
        assert!(
            at < 1000.0 && at <= bt + 2.0,
            "the term went from {bt} to {at}"
        );
        for key in ["voters", "members", "pause"] {
            assert_eq!(b[key], a[key], "an attack changed {key}");
        }
    }
}

fn tls_options() -> Options {
    Options {
        synchronous_mode: "true",
        agent_auth: AgentAuth::Certificates,
        ..Options::default()
    }
}

/// Adds basic auth on the REST API's unsafe methods (a secret that must not leak either).
fn protect_rest_api(cluster: &Cluster) {
    for node in &cluster.nodes {
        let text = std::fs::read_to_string(&node.config).unwrap().replacen(
            "restapi:\n",
            &format!(
                "restapi:\n  authentication:\n    username: admin\n    password: {REST_PASSWORD}\n"
            ),
            1,
        );
        std::fs::write(&node.config, text).unwrap();
    }
}

/// Every secret of these clusters' configurations, and lines of their private keys.
fn secrets(cluster: &Cluster) -> Vec<String> {
    let mut secrets: Vec<String> = [
        AGENT_KEY_PASSWORD,
        RAFT_PASSWORD,
        REST_PASSWORD,
        SUPERUSER_PASSWORD,
        "rep-secret",
        "rewind-secret",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for node in &cluster.nodes {
        let key = std::fs::read_to_string(node.dir.join("raft.key")).unwrap_or_default();
        secrets.extend(
            key.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 40)
                .map(str::to_owned),
        );
    }
    secrets
}

/// No secret in any API answer, in `tribunectl show-config`, or in any agent's log.
async fn assert_no_secret_shown(client: &reqwest::Client, cluster: &Cluster) {
    let secrets = secrets(cluster);
    let mut shown = Vec::new();
    for node in &cluster.nodes {
        for path in [
            "/patroni",
            "/cluster",
            "/config",
            "/metrics",
            "/history",
            "/members",
            "/health",
            "/liveness",
            "/readiness",
            "/primary",
            "/replica",
        ] {
            let text = get_text(client, &format!("{}{path}", node.api()))
                .await
                .unwrap_or_default();
            shown.push((format!("{} {path}", node.name), text));
        }
        shown.push((
            format!("{} log", node.name),
            std::fs::read_to_string(node.log()).unwrap_or_default(),
        ));
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args(["--url", &cluster.nodes[0].api(), "show-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    shown.push((
        "tribunectl show-config".into(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ));
    let texts: usize = shown.iter().map(|(_, t)| t.len()).sum();
    assert!(texts > 10_000, "too little was read to tell: {texts} bytes");
    for (what, text) in &shown {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} shows a secret ({secret:.6}...)"
            );
        }
    }
}

/// The write workload and the probes again, on the tables `start_workload` created.
async fn resume_workload(
    conninfos: Vec<String>,
) -> (
    Acks,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let acks: Acks = Default::default();
    let probes: Acks = Default::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer_task = tokio::spawn(writer(conninfos.clone(), acks.clone(), stop.clone()));
    let prober_task = tokio::spawn(prober(conninfos, probes.clone(), stop.clone()));
    let handle = tokio::spawn(async move {
        let _ = writer_task.await;
        let _ = prober_task.await;
        assert_no_overlap("probe writes to every member", &probes.lock().unwrap());
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    (acks, stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tls_cluster_switches_over_and_fails_over_under_writes_and_shows_no_secret() {
    let client = http_client();
    let mut cluster = Cluster::new(3, tls_options());
    protect_rest_api(&cluster);
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, Duration::from_secs(90)).await;
    for i in 0..3 {
        let log = std::fs::read_to_string(cluster.nodes[i].log()).unwrap();
        assert!(
            !log.contains("accepts any peer"),
            "{}: warned of an open port although TLS is on",
            cluster.nodes[i].name
        );
    }
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = start_workload(&cluster, p, conninfos).await;

    // A switchover through another member (the REST call needs the REST password).
    let candidate = (p + 1) % 3;
    let via = cluster.nodes[(p + 2) % 3].api();
    let asked = Instant::now();
    let answer = client
        .post(format!("{via}/switchover"))
        .basic_auth("admin", Some(REST_PASSWORD))
        .json(&json!({"leader": cluster.nodes[p].name, "candidate": cluster.nodes[candidate].name}))
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "{:?}", answer.text().await);
    wait_for_writes_after(
        &acks,
        asked,
        Duration::from_secs(15),
        "writes after the switchover",
        &cluster,
    )
    .await;
    wait_streaming_replica(&client, &cluster, p, "the old primary to stream again").await;
    assert_eq!(primary(&client, &cluster).await, Some(candidate));
    check_history(&cluster, candidate, &acks, stop, writer).await;
    // A new workload (the checkers require each member's writes to form one period, and the
    // crash may give the primary back to the first member), its ids counted from the start.
    connect(&cluster.nodes[candidate])
        .await
        .unwrap()
        .batch_execute("TRUNCATE acked")
        .await
        .unwrap();
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = resume_workload(conninfos).await;

    // A crash of the new primary's host.
    let crashed = Instant::now();
    cluster.crash(candidate);
    let (_, np) = wait_for(
        Duration::from_secs(30),
        "a write on another member",
        &cluster,
        || async { first_ack_elsewhere(&acks, crashed, candidate) },
    )
    .await;
    println!(
        "agent TLS: {} took over {:.2}s after the crash",
        cluster.nodes[np].name,
        crashed.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    check_history(&cluster, np, &acks, stop, writer).await;
    cluster.start(candidate);
    wait_streaming_replica(&client, &cluster, candidate, "the crashed member to rejoin").await;
    assert_no_secret_shown(&client, &cluster).await;
    for node in &cluster.nodes {
        use std::os::unix::fs::PermissionsExt;
        let pgpass = node.dir.join("pgpass");
        if let Ok(meta) = std::fs::metadata(&pgpass) {
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "{}",
                pgpass.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_agents_without_the_clusters_certificate_change_nothing() {
    let client = http_client();
    let mut cluster = Cluster::new(3, tls_options());
    cluster.start_all();
    wait_healthy(&client, &cluster, Duration::from_secs(90)).await;
    let pki = cluster.pki.as_ref().unwrap();
    let ca = pki.ca_pem();
    let other = Pki::new("other");
    let before = cluster_facts(&client, &cluster.nodes).await;
    let rogues = [
        ("plain text", Rogue::PlainText),
        ("TLS without a certificate", Rogue::Tls(None)),
        (
            "a certificate of another CA",
            Rogue::Tls(Some(other.member("127.0.0.1", None))),
        ),
    ];
    for (what, rogue) in &rogues {
        for i in 0..3 {
            let served = attack(&cluster.raft_addr(i), &cluster.scope, rogue, &ca).await;
            assert_eq!(
                served, 0,
                "{what}: {} answered {served} calls",
                cluster.nodes[i].name
            );
        }
    }
    // A real agent with the right scope and partners but without certificates: it never
    // gets in, and the cluster never lists it.
    let rogue = cluster.add_node(true);
    let config = std::fs::read_to_string(&cluster.nodes[rogue].config).unwrap();
    let stripped: String = config
        .lines()
        .filter(|l| {
            !["certfile:", "keyfile:", "keyfile_password:", "cafile:"]
                .iter()
                .any(|k| l.trim_start().starts_with(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&cluster.nodes[rogue].config, stripped).unwrap();
    cluster.start(rogue);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = std::fs::read_to_string(cluster.nodes[rogue].log()).unwrap();
    assert!(
        log.contains("accepts any peer"),
        "the rogue agent did not warn:\n{log}"
    );
    let after = cluster_facts(&client, &cluster.nodes[..3]).await;
    assert_unchanged(&before, &after);
    for i in 0..3 {
        let log = std::fs::read_to_string(cluster.nodes[i].log()).unwrap();
        assert!(
            log.contains("refused a connection: TLS handshake failed"),
            "{}",
            cluster.nodes[i].name
        );
    }

    // The control: the same attack with a member's certificate gets answers, and the pause
    // it forwards takes effect: the refusals above are the certificates' doing.
    let member = std::fs::read_to_string(cluster.nodes[0].dir.join("raft.pem")).unwrap();
    let key = std::fs::read_to_string(cluster.nodes[0].dir.join("raft.key")).unwrap();
    let key = decrypted_key(&key, AGENT_KEY_PASSWORD);
    // To every member, so that the Raft leader is among them and commits the pause (a
    // follower answers a forward with where the leader is, and writes nothing).
    for i in 0..3 {
        let identity = Rogue::Tls(Some((member.clone(), key.clone())));
        let served = attack(&cluster.raft_addr(i), &cluster.scope, &identity, &ca).await;
        assert!(served >= 3, "a member's certificate got {served} answers");
    }
    for node in &cluster.nodes[..3] {
        wait_for(
            Duration::from_secs(10),
            "the control's pause",
            &cluster,
            || async {
                let doc = get_json(&client, &format!("{}/patroni", node.api())).await?;
                (doc["pause"] == true).then_some(())
            },
        )
        .await;
    }
}

/// A PKCS#8 key decrypted (the control presents a member's own key).
fn decrypted_key(pem: &str, password: &str) -> String {
    let (_, der) = pkcs8::der::Document::from_pem(pem).unwrap();
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_bytes()).unwrap();
    info.decrypt(password)
        .unwrap()
        .to_pem("PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_one_member_at_a_time_under_writes_loses_nothing() {
    let client = http_client();
    let mut cluster = Cluster::new(3, tls_options());
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, Duration::from_secs(90)).await;
    let generation = |client: reqwest::Client, api: String| async move {
        let text = get_text(&client, &format!("{api}/metrics")).await?;
        metric(&text, "tribune_generation")
    };
    let first_generation = generation(client.clone(), cluster.nodes[p].api())
        .await
        .unwrap();
    let conninfos: Vec<String> = cluster.nodes.iter().map(|n| n.conninfo()).collect();
    let (acks, stop, writer) = start_workload(&cluster, p, conninfos).await;
    let old = cluster.pki.take().unwrap();
    let new = Pki::new("new");
    let both = format!("{}{}", old.ca_pem(), new.ca_pem());
    let started = Instant::now();
    // Round 1: every member trusts both CAs; round 2: each presents a certificate of the new
    // CA; round 3: each trusts only the new one. One member at a time, SIGHUP, writes between.
    for round in 0..3 {
        for i in 0..3 {
            let dir = &cluster.nodes[i].dir;
            let (cert, key) = if round == 1 {
                new.member(&cluster.nodes[i].ip, Some(AGENT_KEY_PASSWORD))
            } else {
                (
                    std::fs::read_to_string(dir.join("raft.pem")).unwrap(),
                    std::fs::read_to_string(dir.join("raft.key")).unwrap(),
                )
            };
            let bundle = if round == 2 {
                new.ca_pem()
            } else {
                both.clone()
            };
            cluster.install_agent_credentials(i, &cert, &key, &bundle);
            let reloaded = Instant::now();
            cluster.signal_agent(i, Signal::SIGHUP);
            wait_for(
                Duration::from_secs(10),
                "the reload to be logged",
                &cluster,
                || async {
                    let log = std::fs::read_to_string(cluster.nodes[i].log()).ok()?;
                    (log.matches("reloaded the Raft peers' credentials").count() > round)
                        .then_some(())
                },
            )
            .await;
            wait_for_writes_after(
                &acks,
                reloaded,
                Duration::from_secs(10),
                "writes after a reload",
                &cluster,
            )
            .await;
            // Heartbeats and renewals run on the new connections for a while.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    // Every member drops its channels once more: from here on, only connections handshaken
    // with the new CA alone carry the cluster.
    let last_round = Instant::now();
    for i in 0..3 {
        cluster.signal_agent(i, Signal::SIGHUP);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_writes_after(
        &acks,
        last_round + Duration::from_secs(2),
        Duration::from_secs(10),
        "writes on the new connections",
        &cluster,
    )
    .await;
    let rotated = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let longest_gap = {
        let acks = acks.lock().unwrap();
        let times: Vec<Instant> = acks
            .iter()
            .map(|(_, t, _)| *t)
            .filter(|t| *t > started)
            .collect();
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    println!(
        "CA rotation: 9 reloads in {:.1}s; longest pause between acknowledged writes {:.3}s",
        rotated.as_secs_f64(),
        longest_gap.as_secs_f64()
    );
    assert_eq!(
        primary(&client, &cluster).await,
        Some(p),
        "the rotation caused a failover"
    );
    let now = generation(client.clone(), cluster.nodes[p].api())
        .await
        .unwrap();
    assert_eq!(
        now, first_generation,
        "the lease changed hands during the rotation"
    );
    // A lease survives only while Raft has a quorum within ttl (3 s): the writes never stopped
    // for longer than an election and a retry.
    assert!(
        longest_gap < Duration::from_secs(3),
        "writes stopped for {longest_gap:?}"
    );
    check_history(&cluster, p, &acks, stop, writer).await;
    // The old CA is no longer trusted anywhere.
    let stale = Rogue::Tls(Some(old.member("127.0.0.1", None)));
    for i in 0..3 {
        assert_eq!(
            attack(&cluster.raft_addr(i), &cluster.scope, &stale, &new.ca_pem()).await,
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_password_cluster_runs_and_refuses_agents_without_the_password() {
    let client = http_client();
    let mut cluster = Cluster::new(
        3,
        Options {
            synchronous_mode: "true",
            agent_auth: AgentAuth::Password(RAFT_PASSWORD),
            ..Options::default()
        },
    );
    cluster.start_all();
    let p = wait_healthy(&client, &cluster, Duration::from_secs(90)).await;
    create_table(&cluster.nodes[p]).await;
    assert!(insert(&cluster.nodes[p], 1).await);
    for i in 0..3 {
        wait_rows(&cluster, i, &[1], Duration::from_secs(20)).await;
    }
    let before = cluster_facts(&client, &cluster.nodes).await;
    for i in 0..3 {
        let served = attack(&cluster.raft_addr(i), &cluster.scope, &Rogue::PlainText, "").await;
        assert_eq!(served, 0, "plain text: {} answered", cluster.nodes[i].name);
    }
    // A real agent of the same scope with another password never gets in.
    let rogue = cluster.add_node(true);
    let config = std::fs::read_to_string(&cluster.nodes[rogue].config).unwrap();
    std::fs::write(
        &cluster.nodes[rogue].config,
        config.replace(RAFT_PASSWORD, "a-guess"),
    )
    .unwrap();
    cluster.start(rogue);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = cluster_facts(&client, &cluster.nodes[..3]).await;
    assert_unchanged(&before, &after);
    let refused = (0..3).all(|i| {
        std::fs::read_to_string(cluster.nodes[i].log())
            .unwrap()
            .contains("refused a connection: TLS handshake failed")
    });
    assert!(refused, "the members did not refuse the rogue agent");
    cluster.stop(rogue);
    assert_no_secret_shown(&client, &cluster).await;
}
