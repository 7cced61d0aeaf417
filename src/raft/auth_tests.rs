//! Peer authentication on real sockets: in-process clusters with mutual TLS or `raft.password`,
//! intruders without the credentials (refused during the handshake, nothing changed), and the
//! reload of certificates and CA bundles while the cluster runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::json;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::{CertificateFiles, PeerAuth};
use super::cluster_tests::{agreed_leader, bind, wait_for};
use super::leader::Op;
use super::peers::Peers;
use super::proto::RaftMessage;
use super::settings::Tuning;
use super::transport::Transport;
use super::{ProposeError, RaftNode, RaftSettings};
use crate::state::{Command, Outcome};

/// A CA, and certificates it signs for 127.0.0.1 (server and client use).
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    name: &'static str,
}

impl Pki {
    fn new(dir: &Path, name: &'static str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Pki {
            dir: dir.to_owned(),
            ca,
            name,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A member's certificate for `host`, written as `<name>-<member>.pem` and `.key`.
    fn member(&self, member: &str, host: &str) -> CertificateFiles {
        let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let certfile = self.dir.join(format!("{}-{member}.pem", self.name));
        let keyfile = self.dir.join(format!("{}-{member}.key", self.name));
        std::fs::write(&certfile, cert.pem()).unwrap();
        std::fs::write(&keyfile, key.serialize_pem()).unwrap();
        CertificateFiles {
            certfile,
            keyfile: Some(keyfile),
            keyfile_password: None,
            cafile: self.ca_file(),
        }
    }
}

/// A CA bundle of several CAs' files.
fn bundle(dir: &Path, name: &str, cas: &[&Pki]) -> PathBuf {
    let path = dir.join(name);
    let text: String = cas
        .iter()
        .map(|ca| std::fs::read_to_string(ca.ca_file()).unwrap())
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

async fn start(
    addrs: &[String],
    i: usize,
    dir: &Path,
    listener: TcpListener,
    auth: PeerAuth,
) -> RaftNode {
    let partners = addrs.iter().filter(|a| **a != addrs[i]).cloned().collect();
    let mut settings = RaftSettings::new("alpha", &addrs[i], partners, dir);
    settings.heartbeat = Duration::from_millis(100);
    settings.election_timeout_min = Duration::from_millis(500);
    settings.election_timeout_max = Duration::from_millis(1000);
    settings.auth = auth;
    RaftNode::start_with(
        settings,
        Tuning::default(),
        listener,
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn pause() -> Command {
    Command::SetConfig {
        config: json!({"pause": true}),
        expected: None,
    }
}

/// A client of the cluster with `auth`, as an intruder would build it from `proto/`.
fn client(auth: PeerAuth) -> Peers {
    let transport = Arc::new(Transport::load(auth, "alpha").unwrap());
    Peers::with_local_ip(0xbad, "alpha", None, transport).unwrap()
}

/// Wait until every node applied `config`.
async fn settled(nodes: &[&RaftNode], config: serde_json::Value) {
    wait_for("every node to apply the configuration", || {
        nodes
            .iter()
            .all(|n| n.state().config.as_ref().map(|c| c.written()) == Some(&config))
            .then_some(())
    })
    .await
}

/// Every attempt of `intruder` on `addr` fails, and the cluster's term, leader, membership and
/// state are as before.
async fn assert_refused(intruder: &Peers, addr: &str, nodes: &[&RaftNode]) {
    let before: Vec<_> = nodes
        .iter()
        .map(|n| (n.status().borrow().clone(), n.state()))
        .collect();
    let forwarded = intruder
        .forward(addr, &Op::Write(Box::new(pause())), Duration::from_secs(2))
        .await;
    // Refused during the handshake: the connection fails (unreachable, or closed under the
    // call), never a refusal or an answer of the service, which would mean it decoded the
    // request.
    assert!(
        matches!(
            forwarded,
            Err(ProposeError::Unreachable(_) | ProposeError::Timeout)
        ),
        "{forwarded:?}"
    );
    let vote = json!({"vote": {"leader_id": {"term": 1000, "node_id": 0xbad}, "committed": false},
                      "last_log_id": null});
    let message = || RaftMessage {
        json: serde_json::to_vec(&vote).unwrap(),
    };
    let mut raft = intruder.client(addr).unwrap();
    // The failure is the transport's, never an answer of the service. (TLS 1.3: the client's
    // certificate is checked after the client considers the handshake done, so its first
    // request meets a closed connection rather than a failed connect.)
    let not_served = |status: tonic::Status| {
        let transport =
            std::error::Error::source(&status).is_some_and(|e| e.is::<tonic::transport::Error>());
        assert!(transport, "{status:?}");
    };
    not_served(
        raft.vote(intruder.request(message(), Duration::from_secs(2)))
            .await
            .unwrap_err(),
    );
    not_served(
        raft.append(intruder.request(message(), Duration::from_secs(2)))
            .await
            .unwrap_err(),
    );
    assert!(intruder.probe(addr, Duration::from_secs(2)).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (node, (status, state)) in nodes.iter().zip(before) {
        let now = node.status().borrow().clone();
        assert_eq!(now.term, status.term, "the term changed");
        assert_eq!(now.leader, status.leader, "the leader changed");
        assert_eq!(now.voters, status.voters, "the membership changed");
        assert_eq!(node.state().config, state.config, "the state changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_members_and_refuses_the_rest() {
    let dir = TempDir::new().unwrap();
    let cluster_ca = Pki::new(dir.path(), "cluster");
    let other_ca = Pki::new(dir.path(), "other");
    let (la, a) = bind().await;
    let (lb, b) = bind().await;
    let addrs = [a.clone(), b.clone()];
    let data: Vec<TempDir> = (0..2).map(|_| TempDir::new().unwrap()).collect();
    let files_a = cluster_ca.member("a", "127.0.0.1");
    let files_b = cluster_ca.member("b", "127.0.0.1");
    let node_a = start(
        &addrs,
        0,
        data[0].path(),
        la,
        PeerAuth::Certificates(files_a.clone()),
    )
    .await;
    let node_b = start(
        &addrs,
        1,
        data[1].path(),
        lb,
        PeerAuth::Certificates(files_b),
    )
    .await;
    agreed_leader(&[&node_a, &node_b]).await;
    let outcome = node_b.propose(pause()).await.unwrap();
    assert_eq!(outcome, Outcome::Applied, "a member forwards through TLS");
    let unpause = Command::SetConfig {
        config: json!({}),
        expected: None,
    };
    node_a.propose(unpause).await.unwrap();
    settled(&[&node_a, &node_b], json!({})).await;

    // Without credentials (plain text), with another CA's certificate, with a certificate of
    // the cluster's CA for another host (the client checks the server's name too).
    assert_refused(&client(PeerAuth::Open), &a, &[&node_a, &node_b]).await;
    let stranger = other_ca.member("x", "127.0.0.1");
    let stranger = CertificateFiles {
        cafile: cluster_ca.ca_file(),
        ..stranger
    };
    assert_refused(
        &client(PeerAuth::Certificates(stranger.clone())),
        &a,
        &[&node_a, &node_b],
    )
    .await;
    assert_refused(
        &client(PeerAuth::Password("guess".into())),
        &a,
        &[&node_a, &node_b],
    )
    .await;
    let wrong_name = CertificateFiles {
        cafile: cluster_ca.ca_file(),
        ..cluster_ca.member("y", "10.9.9.9")
    };
    let misnamed = client(PeerAuth::Certificates(CertificateFiles {
        certfile: wrong_name.certfile.clone(),
        keyfile: wrong_name.keyfile.clone(),
        keyfile_password: None,
        cafile: cluster_ca.ca_file(),
    }));
    // As a client, a certificate for another host is a member's (the server checks the CA);
    // as a server it is not: node a's certificate names 127.0.0.1, so dialling it by another
    // name is refused by the client.
    assert!(misnamed.probe(&a, Duration::from_secs(2)).await.is_ok());
    let by_name = a.replace("127.0.0.1", "localhost");
    assert!(
        misnamed
            .probe(&by_name, Duration::from_secs(2))
            .await
            .is_err()
    );

    // The control: once node a trusts the other CA too, the same stranger gets through.
    let both = bundle(dir.path(), "both.pem", &[&cluster_ca, &other_ca]);
    node_a
        .reload_peer_auth(PeerAuth::Certificates(CertificateFiles {
            cafile: both,
            ..files_a.clone()
        }))
        .await
        .unwrap();
    let welcome = client(PeerAuth::Certificates(stranger));
    assert!(welcome.probe(&a, Duration::from_secs(2)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_password_admits_members_and_refuses_the_rest() {
    let (la, a) = bind().await;
    let (lb, b) = bind().await;
    let addrs = [a.clone(), b.clone()];
    let data: Vec<TempDir> = (0..2).map(|_| TempDir::new().unwrap()).collect();
    let secret = || PeerAuth::Password("correct horse battery staple".into());
    let node_a = start(&addrs, 0, data[0].path(), la, secret()).await;
    let node_b = start(&addrs, 1, data[1].path(), lb, secret()).await;
    agreed_leader(&[&node_a, &node_b]).await;
    assert_eq!(node_b.propose(pause()).await.unwrap(), Outcome::Applied);
    let nodes = [&node_a, &node_b];
    settled(&nodes, json!({"pause": true})).await;
    assert_refused(&client(PeerAuth::Open), &a, &nodes).await;
    assert_refused(&client(PeerAuth::Password("wrong".into())), &b, &nodes).await;
    // The same password in another scope derives another key.
    let transport = Arc::new(Transport::load(secret(), "beta").unwrap());
    let other_scope = Peers::with_local_ip(0xbad, "alpha", None, transport).unwrap();
    assert!(other_scope.probe(&a, Duration::from_secs(2)).await.is_err());
    // The control: the right password gets an answer.
    assert!(
        client(secret())
            .probe(&a, Duration::from_secs(2))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_rotation_one_member_at_a_time_keeps_the_cluster_writable() {
    let dir = TempDir::new().unwrap();
    let old = Pki::new(dir.path(), "old");
    let new = Pki::new(dir.path(), "new");
    let both = bundle(dir.path(), "both.pem", &[&old, &new]);
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let (l, a) = bind().await;
        listeners.push(l);
        addrs.push(a);
    }
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let files = old.member(&format!("m{i}"), "127.0.0.1");
        nodes.push(
            start(
                &addrs,
                i,
                data[i].path(),
                listener,
                PeerAuth::Certificates(files),
            )
            .await,
        );
    }
    let refs: Vec<&RaftNode> = nodes.iter().collect();
    agreed_leader(&refs).await;
    let term = nodes[0].status().borrow().term;
    let mut written = 0;
    // Three rounds, one member at a time: trust both CAs; present the new CA's certificate;
    // trust only the new CA. A write goes through after every single reload.
    let steps: [&dyn Fn(usize) -> CertificateFiles; 3] = [
        &|i| CertificateFiles {
            cafile: both.clone(),
            ..old.member(&format!("m{i}"), "127.0.0.1")
        },
        &|i| CertificateFiles {
            cafile: both.clone(),
            ..new.member(&format!("m{i}"), "127.0.0.1")
        },
        &|i| new.member(&format!("m{i}"), "127.0.0.1"),
    ];
    for step in steps {
        for (i, node) in nodes.iter().enumerate() {
            node.reload_peer_auth(PeerAuth::Certificates(step(i)))
                .await
                .unwrap();
            for writer in &nodes {
                written += 1;
                let command = Command::SetConfig {
                    config: json!({ "written": written }),
                    expected: None,
                };
                assert_eq!(writer.propose(command).await.unwrap(), Outcome::Applied);
            }
        }
    }
    wait_for("every node to apply the last write", || {
        nodes
            .iter()
            .all(|n| {
                n.state().config.as_ref().map(|c| c.written())
                    == Some(&json!({ "written": written }))
            })
            .then_some(())
    })
    .await;
    let now = nodes[0].status().borrow().term;
    assert!(
        now <= term + 1,
        "elections during the rotation: term {term} -> {now}"
    );
    // The old CA is gone everywhere: its certificates no longer get in.
    let stale = client(PeerAuth::Certificates(old.member("late", "127.0.0.1")));
    assert!(
        stale
            .probe(&addrs[0], Duration::from_secs(2))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_reload_that_cannot_be_used_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let files = pki.member("a", "127.0.0.1");
    let transport = Transport::load(PeerAuth::Certificates(files.clone()), "alpha").unwrap();
    let before = transport.credentials().map(|c| Arc::as_ptr(&c));
    let missing = CertificateFiles {
        certfile: dir.path().join("missing.pem"),
        ..files.clone()
    };
    let err = transport
        .reload(PeerAuth::Certificates(missing))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("raft.certfile") && err.contains("missing.pem"),
        "{err}"
    );
    let err = transport
        .reload(PeerAuth::Password("x".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot change"), "{err}");
    assert_eq!(transport.credentials().map(|c| Arc::as_ptr(&c)), before);
    transport.reload(PeerAuth::Certificates(files)).unwrap();
    assert_ne!(transport.credentials().map(|c| Arc::as_ptr(&c)), before);
}

#[test]
fn an_encrypted_key_needs_its_password_and_errors_never_show_it() {
    let dir = TempDir::new().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let files = pki.member("a", "127.0.0.1");
    // An encrypted PKCS#8 key, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
    let plain = std::fs::read_to_string(files.keyfile.as_ref().unwrap()).unwrap();
    let (_, der) = pkcs8::der::Document::from_pem(&plain).unwrap();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"salt1234", &[7; 16])
            .unwrap();
    let encrypted = info
        .encrypt_with_params(params, "key-pass-123")
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    let keyfile = dir.path().join("encrypted.key");
    std::fs::write(&keyfile, encrypted.as_bytes()).unwrap();
    let with = |password: Option<&str>| {
        PeerAuth::Certificates(CertificateFiles {
            keyfile: Some(keyfile.clone()),
            keyfile_password: password.map(str::to_owned),
            ..files.clone()
        })
    };
    assert!(with(Some("key-pass-123")).load("alpha").is_ok());
    let err = with(None).load("alpha").unwrap_err().to_string();
    assert!(err.contains("raft.keyfile_password"), "{err}");
    let err = with(Some("wrong-pass-456"))
        .load("alpha")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot decrypt"), "{err}");
    assert!(!err.contains("wrong-pass-456"), "{err}");
    let shown = format!("{:?}", with(Some("key-pass-123")));
    assert!(!shown.contains("key-pass-123"), "{shown}");
    assert!(!format!("{:?}", PeerAuth::Password("pw-789".into())).contains("pw-789"));
}

/// The cost of peer authentication on the lease renewal's path (ignored in the normal run;
/// `scripts/bench-tls.sh`): three in-process nodes; a follower proposes `RenewLease` commands,
/// which it forwards to the Raft leader, which replicates them to a quorum, all over gRPC, as
/// a primary's agent that does not lead Raft does every `loop_wait / 2`. Prints the median and
/// p95 latency per mode; asserts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run scripts/bench-tls.sh"]
async fn bench_renewal_latency_by_peer_authentication() {
    let samples: usize = std::env::var("TRIBUNE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = TempDir::new().unwrap();
    let pki = Pki::new(dir.path(), "bench");
    for mode in ["none", "raft.password", "mutual TLS"] {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let (l, a) = bind().await;
            listeners.push(l);
            addrs.push(a);
        }
        let data: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
        let mut nodes = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let auth = match mode {
                "none" => PeerAuth::Open,
                "raft.password" => PeerAuth::Password("bench password".into()),
                _ => PeerAuth::Certificates(pki.member(&format!("{mode}{i}"), "127.0.0.1")),
            };
            nodes.push(start(&addrs, i, data[i].path(), listener, auth).await);
        }
        let refs: Vec<&RaftNode> = nodes.iter().collect();
        let leader = agreed_leader(&refs).await;
        let follower = nodes.iter().find(|n| n.node_id() != leader).unwrap();
        let renew = || Command::RenewLease {
            member: crate::types::MemberName::new("node0"),
            generation: crate::types::Generation(1),
            lease_ms: None,
        };
        for _ in 0..20 {
            follower.propose(renew()).await.unwrap();
        }
        let mut latencies = Vec::new();
        for _ in 0..samples {
            let started = std::time::Instant::now();
            follower.propose(renew()).await.unwrap();
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
        println!(
            "lease renewal through a follower, peers: {mode}: median {:.2} ms, p95 {:.2} ms, max {:.2} ms over {samples}",
            at(0.5),
            at(0.95),
            latencies[latencies.len() - 1]
        );
        for node in nodes {
            node.shutdown().await;
        }
    }
}
