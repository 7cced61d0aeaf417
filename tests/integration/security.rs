//! The REST API's security on the real agent binary: HTTPS with client certificates required,
//! basic auth on unsafe methods, `tribunectl` reaching it through its `ctl` section; and a
//! certificate that cannot be read refusing the start before anything is touched.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use reqwest::Method;
use tribune::api::client::{Client, ClientOptions};
use tribune::config::Credentials;

use crate::harness::*;

/// Writes `ca.pem`, `server.pem`/`.key` (for `ip`) and `client.pem`/`.key` into `dir`.
fn make_pki(dir: &Path, ip: &str) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tribune test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut params = CertificateParams::new(vec![ip.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates_auth_and_tribunectl() {
    let mut cluster = Cluster::new(1, Options::default());
    let node = &cluster.nodes[0];
    make_pki(&node.dir, &node.ip);
    let d = node.dir.display();
    let config = fs::read_to_string(&node.config)
        .unwrap()
        .replacen(
            "restapi:\n",
            &format!(
                "restapi:\n  certfile: {d}/server.pem\n  keyfile: {d}/server.key\n  \
                 cafile: {d}/ca.pem\n  verify_client: required\n  authentication:\n    \
                 username: admin\n    password: s3cret\n  https_extra_headers:\n    \
                 Strict-Transport-Security: max-age=300\n"
            ),
            1,
        )
        .replacen(
            "raft:\n",
            &format!(
                "ctl:\n  cacert: {d}/ca.pem\n  certfile: {d}/client.pem\n  keyfile: {d}/client.key\nraft:\n"
            ),
            1,
        );
    fs::write(&node.config, config).unwrap();
    cluster.start_all();
    let node = &cluster.nodes[0];
    let https = format!("https://{}:{}", node.ip, node.api_port);
    let tls = |certificate: bool, password: Option<&str>| ClientOptions {
        timeout: Duration::from_secs(2),
        ca_file: Some(node.dir.join("ca.pem")),
        client_cert: certificate
            .then(|| (node.dir.join("client.pem"), node.dir.join("client.key"))),
        auth: password.map(|p| Credentials {
            username: "admin".into(),
            password: Some(p.into()),
        }),
        ..ClientOptions::default()
    };
    let client = |options: ClientOptions| {
        Client::with_options(std::slice::from_ref(&https), &options).unwrap()
    };
    let certified = client(tls(true, None));
    wait_for(
        Duration::from_secs(60),
        "the agent's HTTPS API",
        &cluster,
        || async { certified.status().await.ok() },
    )
    .await;

    // verify_client: required — no certificate, no request at all; plain HTTP neither.
    assert!(client(tls(false, None)).status().await.is_err());
    assert!(
        status_code(&http_client(), &format!("{}/patroni", node.api()))
            .await
            .is_none()
    );

    // Unsafe methods: 401 without or with wrong credentials, through with the right ones.
    let answer = certified
        .request(Method::POST, "/reload", None)
        .await
        .unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, "no auth header received")
    );
    let wrong = client(tls(true, Some("guess")));
    let answer = wrong.request(Method::POST, "/reload", None).await.unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (401, "not authenticated")
    );
    let right = client(tls(true, Some("s3cret")));
    let answer = right.request(Method::POST, "/reload", None).await.unwrap();
    assert!(
        answer.status != 401 && answer.status != 403,
        "{}: {}",
        answer.status,
        answer.body
    );

    // tribunectl reads the ctl section (CA, client certificate) and the https api_url.
    let out = Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args([
            "-c",
            &node.config.display().to_string(),
            "list",
            "-f",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"node0\""),
        "tribunectl list: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the client certificate it fails, naming the member it tried.
    let without_cert = fs::read_to_string(&node.config)
        .unwrap()
        .replace(
            &format!("  certfile: {}/client.pem\n", node.dir.display()),
            "",
        )
        .replace(
            &format!("  keyfile: {}/client.key\n", node.dir.display()),
            "",
        );
    let other = node.dir.join("no-client-cert.yml");
    fs::write(&other, without_cert).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tribunectl"))
        .args(["-c", &other.display().to_string(), "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&https), "{stderr}");
}

#[test]
fn an_unreadable_certificate_refuses_the_start_and_touches_nothing() {
    // A witness (no database), so this runs as root too.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let yaml = format!(
        "scope: demo\nname: w0\nrestapi:\n  listen: 127.0.0.1:0\n  connect_address: 127.0.0.1:18008\n  \
         certfile: {d}/missing.pem\n  keyfile: {d}/missing.key\n\
         raft:\n  self_addr: 127.0.0.1:12299\n  data_dir: {d}/raft\n"
    );
    let path = dir.path().join("bad.yml");
    fs::write(&path, yaml).unwrap();
    let mut child = Command::new(built_agent())
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("restapi.certfile") && text.contains(&format!("{d}/missing.pem")),
        "{text}"
    );
    assert!(
        !dir.path().join("raft").exists(),
        "the raft directory was created"
    );
}
