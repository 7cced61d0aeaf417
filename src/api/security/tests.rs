//! The guard and TLS on the real router, served by the real accept loop on 127.0.0.1 with a
//! one-node Raft group behind it, and reached by the real client ([`Client`]). Certificates
//! are made per test with rcgen; nothing leaves the machine.
//!
//! Until the control endpoints exist, an unsafe request that passes the guard meets the
//! router's own answer (501 for an unknown unsafe method); the tests compare with what the
//! same request gets from a server without any security, so they hold whatever the router
//! answers later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use reqwest::Method;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Security, SecurityError};
use crate::api::client::{Answer, Client, ClientError, ClientOptions, KeyPassword};
use crate::api::{ApiState, serve};
use crate::config::{Config, Credentials};
use crate::ha::LeaseView;
use crate::node::{LocalView, Views};
use crate::raft::{RaftNode, RaftSettings};
use crate::state::{Command, Member, MemberStatus};
use crate::types::UnixMillis;

const WAIT: Duration = Duration::from_secs(10);

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new().unwrap();
        let ca = authority("test CA");
        let server = leaf(&ca, ExtendedKeyUsagePurpose::ServerAuth);
        let client = leaf(&ca, ExtendedKeyUsagePurpose::ClientAuth);
        // A client certificate from a CA the server does not trust.
        let stranger = leaf(&authority("other CA"), ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ca.pem());
        write("server.pem", &server.0);
        write("server.key", &server.1);
        write("client.pem", &client.0);
        write("client.key", &client.1);
        write("stranger.pem", &stranger.0);
        write("stranger.key", &stranger.1);
        write("client-with-key.pem", &format!("{}{}", client.0, client.1));
        write("server-encrypted.key", &encrypted(&server.1, KEY_PASSWORD));
        write("encrypted-client.pem", &client.0);
        write("encrypted-client.key", &encrypted(&client.1, KEY_PASSWORD));
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `restapi` lines for TLS with `verify_client`.
    fn restapi(&self, verify_client: &str) -> String {
        format!(
            "certfile: {}\n  keyfile: {}\n  cafile: {}\n  verify_client: {verify_client}\n",
            self.path("server.pem").display(),
            self.path("server.key").display(),
            self.path("ca.pem").display(),
        )
    }

    /// Client settings: this CA, and the named client certificate (`client`, `stranger`).
    fn client(&self, certificate: Option<&str>) -> ClientOptions {
        ClientOptions {
            ca_file: Some(self.path("ca.pem")),
            client_cert: certificate.map(|c| {
                (
                    self.path(&format!("{c}.pem")),
                    self.path(&format!("{c}.key")),
                )
            }),
            ..ClientOptions::default()
        }
    }
}

/// The password of the test's encrypted keys.
const KEY_PASSWORD: &str = "key pass 1";

/// `key_pem` (PKCS#8) encrypted with `password` as `openssl pkcs8 -topk8 -v2 aes-256-cbc`
/// writes it (PBES2, PBKDF2-SHA256, AES-256-CBC).
fn encrypted(key_pem: &str, password: &str) -> String {
    use pkcs8::der::Decode;
    let (_, der) = pkcs8::der::Document::from_pem(key_pem).unwrap();
    let info = pkcs8::PrivateKeyInfo::from_der(der.as_bytes()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"salt1234", &[7; 16])
            .unwrap();
    info.encrypt_with_params(params, password)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// (certificate PEM, key PEM) for 127.0.0.1 and localhost, signed by `ca`.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// One agent's REST API over a one-node Raft group (a witness: no database).
struct Server {
    addr: SocketAddr,
    raft: RaftNode,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: TempDir,
}

fn config(restapi_lines: &str, dir: &Path) -> Config {
    let yaml = format!(
        "scope: sec\nname: w0\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\n  {restapi_lines}\nraft:\n  self_addr: 127.0.0.1:2222\n  data_dir: {}\n",
        dir.display()
    );
    Config::from_yaml_str(&yaml, &|_| None).unwrap()
}

impl Server {
    /// Serve with these extra `restapi` lines (indented by two spaces after the first).
    async fn start(restapi_lines: &str) -> Server {
        let dir = TempDir::new().unwrap();
        let config = config(restapi_lines, dir.path());
        let security = Security::load(&config.restapi).expect("the security settings load");
        let raft_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let raft_addr = raft_listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let raft = RaftNode::start(
            RaftSettings::new("sec", raft_addr, Vec::new(), dir.path().join("raft")),
            raft_listener,
            shutdown.child_token(),
        )
        .await
        .unwrap();
        let (_, local) = watch::channel(Arc::new(LocalView::new(true)));
        let (_, lease) = watch::channel(LeaseView::Unconfirmed);
        let config = Arc::new(config);
        let (_, live_config) = watch::channel(config.clone());
        let views = Views {
            local,
            lease,
            config: live_config,
            reload: Arc::new(tokio::sync::Notify::new()),
            counters: Default::default(),
            keeper: watch::channel(Default::default()).1,
        };
        let state = ApiState::new(config, raft.clone(), views);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(serve(listener, state, security, shutdown.child_token()));
        Server {
            addr,
            raft,
            shutdown,
            served,
            _dir: dir,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    fn client(&self, scheme: &str, options: &ClientOptions) -> Client {
        Client::with_options(&[self.url(scheme)], options).unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.served.await.unwrap().unwrap();
        self.raft.shutdown().await;
    }
}

fn credentials(user: &str, password: &str) -> ClientOptions {
    ClientOptions {
        auth: Some(Credentials {
            username: user.into(),
            password: Some(password.into()),
        }),
        ..ClientOptions::default()
    }
}

async fn send(client: &Client, method: Method, path: &str) -> Answer {
    client
        .request(method.clone(), path, None)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// What the router itself answers `method path`, with no security configured.
async fn unguarded(method: Method, path: &str) -> u16 {
    let server = Server::start("").await;
    let status = send(
        &server.client("http", &ClientOptions::default()),
        method,
        path,
    )
    .await
    .status;
    server.stop().await;
    status
}

/// A raw request, to see headers (the client answers status and body only).
async fn raw(url: &str, method: Method, authorization: Option<&str>) -> reqwest::Response {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut request = http.request(method, url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap()
}

const AUTH: &str = "authentication:\n    username: admin\n    password: s3cret";

#[tokio::test]
async fn unsafe_methods_need_the_credentials_and_are_checked_before_routing() {
    let server = Server::start(AUTH).await;
    let anonymous = server.client("http", &ClientOptions::default());
    let wrong = server.client("http", &credentials("admin", "guess"));
    let right = server.client("http", &credentials("admin", "s3cret"));

    for (method, path) in [
        (Method::POST, "/reload"),
        (Method::POST, "/switchover"),
        (Method::PATCH, "/config"),
        (Method::PUT, "/config"),
        (Method::DELETE, "/restart"),
        (Method::POST, "/no-such-path"),
    ] {
        let a = send(&anonymous, method.clone(), path).await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (401, "no auth header received"),
            "{method} {path}"
        );
        let a = send(&wrong, method.clone(), path).await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (401, "not authenticated"),
            "{method} {path}"
        );
        let a = send(&right, method.clone(), path).await;
        assert_eq!(
            a.status,
            unguarded(method.clone(), path).await,
            "{method} {path}"
        );
    }

    // The challenge and content type are Patroni's.
    let url = format!("{}/reload", server.url("http"));
    let response = raw(&url, Method::POST, None).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"Patroni\""
    );
    assert_eq!(response.headers()["content-type"], "text/html");
    // Only `Basic ` exactly, then the whole token, as Patroni compares it.
    for header in [
        "basic YWRtaW46czNjcmV0",
        "Bearer YWRtaW46czNjcmV0",
        "Basic  YWRtaW46czNjcmV0",
        "Basic YWRtaW46",
    ] {
        let response = raw(&url, Method::POST, Some(header)).await;
        assert_eq!(response.status(), 401, "{header}");
    }
    let response = raw(&url, Method::POST, Some("Basic YWRtaW46czNjcmV0")).await;
    assert_ne!(response.status(), 401);

    // Safe methods are never asked for credentials.
    for (method, path) in [
        (Method::GET, "/patroni"),
        (Method::GET, "/cluster"),
        (Method::GET, "/primary"),
        (Method::HEAD, "/replica"),
        (Method::OPTIONS, "/primary"),
    ] {
        let status = send(&anonymous, method.clone(), path).await.status;
        assert!(status != 401 && status != 403, "{method} {path}: {status}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_allowlist_admits_listed_addresses_only() {
    // Clients here come from 127.0.0.1.
    let denied = Server::start(&format!("allowlist: ['10.0.0.0/8', '192.0.2.7']\n  {AUTH}")).await;
    let right = denied.client("http", &credentials("admin", "s3cret"));
    let a = send(&right, Method::POST, "/reload").await;
    assert_eq!((a.status, a.body.as_str()), (403, "Access is denied"));
    // The allowlist comes first: no credentials is still 403, not 401.
    let anonymous = denied.client("http", &ClientOptions::default());
    assert_eq!(send(&anonymous, Method::POST, "/reload").await.status, 403);
    assert_eq!(send(&anonymous, Method::GET, "/patroni").await.status, 200);
    denied.stop().await;

    let router_says = unguarded(Method::POST, "/reload").await;
    for listed in ["'127.0.0.0/8'", "'127.0.0.1'", "localhost"] {
        let allowed = Server::start(&format!("allowlist: [{listed}]\n  {AUTH}")).await;
        let right = allowed.client("http", &credentials("admin", "s3cret"));
        // Addresses hold from the first request; a name once it is looked up.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = send(&right, Method::POST, "/reload").await.status;
            if status == router_says {
                break;
            }
            assert!(listed == "localhost" && status == 403, "{listed}: {status}");
            assert!(tokio::time::Instant::now() < deadline, "{listed} resolves");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Listed, but still without credentials: 401.
        let anonymous = allowed.client("http", &ClientOptions::default());
        assert_eq!(
            send(&anonymous, Method::POST, "/reload").await.status,
            401,
            "{listed}"
        );
        allowed.stop().await;
    }
}

fn member(api_url: &str) -> Member {
    Member {
        api_url: api_url.into(),
        conn_url: None,
        raft_addr: None,
        version: "test".into(),
        tags: Default::default(),
        proxy_url: None,
        status: MemberStatus::default(),
        reported_at: UnixMillis(0),
    }
}

#[tokio::test]
async fn allowlist_include_members_admits_the_members_hosts() {
    let server = Server::start("allowlist_include_members: true").await;
    let client = server.client("http", &ClientOptions::default());
    // No member yet at 127.0.0.1.
    let report = |url: &str| Command::Report {
        member: "w0".into(),
        record: Box::new(member(url)),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while server
        .raft
        .propose(report("http://192.0.2.1:8008/patroni"))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the one-node group elects itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(send(&client, Method::POST, "/reload").await.status, 403);
    // The member moves to this host: allowed as soon as the resolver sees it.
    server
        .raft
        .propose(report("http://127.0.0.1:8008/patroni"))
        .await
        .unwrap();
    let router_says = unguarded(Method::POST, "/reload").await;
    loop {
        let status = send(&client, Method::POST, "/reload").await.status;
        if status == router_says {
            break;
        }
        assert_eq!(status, 403);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the member's host is allowed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn extra_headers_are_on_every_response() {
    let server = Server::start(&format!(
        "http_extra_headers:\n    X-Frame-Options: SAMEORIGIN\n  https_extra_headers:\n    Strict-Transport-Security: max-age=300\n  {AUTH}"
    ))
    .await;
    for (method, path) in [
        (Method::GET, "/patroni"),
        (Method::OPTIONS, "/primary"),
        (Method::GET, "/nonexistent"),
        (Method::POST, "/reload"),
    ] {
        let response = raw(
            &format!("{}{path}", server.url("http")),
            method.clone(),
            None,
        )
        .await;
        assert_eq!(
            response.headers()["x-frame-options"],
            "SAMEORIGIN",
            "{method} {path}"
        );
        // Plain HTTP: the https_ ones are not sent.
        assert!(
            response
                .headers()
                .get("strict-transport-security")
                .is_none()
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn https_with_the_configured_certificate() {
    let pki = Pki::new();
    let server = Server::start(&format!(
        "{}  https_extra_headers:\n    Strict-Transport-Security: max-age=300\n",
        pki.restapi("none")
    ))
    .await;
    let trusted = server.client("https", &pki.client(None));
    assert_eq!(send(&trusted, Method::GET, "/patroni").await.status, 200);
    let doc = trusted.status().await.unwrap();
    assert_eq!(doc.patroni.name, "w0");
    // A client that does not trust the CA refuses the server...
    let untrusted = server.client("https", &ClientOptions::default());
    let err = untrusted.status().await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err}");
    // ... unless told not to check (ctl.insecure, tribunectl -k).
    let insecure = ClientOptions {
        insecure: true,
        ..ClientOptions::default()
    };
    assert_eq!(
        send(&server.client("https", &insecure), Method::GET, "/patroni")
            .await
            .status,
        200
    );
    // Plain HTTP gets nothing from a TLS port.
    let plain = server.client("http", &ClientOptions::default());
    assert!(plain.status().await.is_err());
    // https_extra_headers are sent over TLS.
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(pki.path("ca.pem")).unwrap(),
        )
        .unwrap()])
        .build()
        .unwrap();
    let response = http
        .get(format!("{}/patroni", server.url("https")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=300"
    );
    server.stop().await;
}

#[tokio::test]
async fn verify_client_optional_asks_a_certificate_for_unsafe_methods_only() {
    let pki = Pki::new();
    let server = Server::start(&format!("{}  {AUTH}", pki.restapi("optional"))).await;
    let router_says = unguarded(Method::POST, "/reload").await;
    let with_password = |certificate| ClientOptions {
        auth: credentials("admin", "s3cret").auth,
        ..pki.client(certificate)
    };
    let anonymous = server.client("https", &with_password(None));
    assert_eq!(send(&anonymous, Method::GET, "/patroni").await.status, 200);
    let a = send(&anonymous, Method::POST, "/reload").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (403, "client certificate required")
    );
    let certified = server.client("https", &with_password(Some("client")));
    assert_eq!(
        send(&certified, Method::POST, "/reload").await.status,
        router_says
    );
    // The certificate comes before the password: with a certificate, no password is 401.
    let no_password = server.client("https", &pki.client(Some("client")));
    assert_eq!(
        send(&no_password, Method::POST, "/reload").await.status,
        401
    );
    // A certificate from a CA the server does not trust fails the handshake.
    let stranger = server.client("https", &with_password(Some("stranger")));
    assert!(
        stranger
            .request(Method::GET, "/patroni", None)
            .await
            .is_err()
    );
    server.stop().await;
}

/// Encrypted PKCS#8 keys, as Patroni's `keyfile_password`: the server's key with
/// `restapi.keyfile_password`, the client's with `ctl.keyfile_password`.
#[tokio::test]
async fn encrypted_keys_are_read_with_their_passwords() {
    let pki = Pki::new();
    let restapi = format!(
        "certfile: {}\n  keyfile: {}\n  keyfile_password: {KEY_PASSWORD}\n  cafile: {}\n  verify_client: required\n",
        pki.path("server.pem").display(),
        pki.path("server-encrypted.key").display(),
        pki.path("ca.pem").display(),
    );
    let server = Server::start(&restapi).await;
    let with_key_password = |password: Option<&str>| ClientOptions {
        keyfile_password: password.map(|p| KeyPassword(p.to_owned())),
        ..pki.client(Some("encrypted-client"))
    };
    let client = server.client("https", &with_key_password(Some(KEY_PASSWORD)));
    assert_eq!(send(&client, Method::GET, "/patroni").await.status, 200);
    for (password, expected) in [
        (None, "ctl.keyfile_password"),
        (
            Some("wrong"),
            "cannot decrypt the key with ctl.keyfile_password",
        ),
    ] {
        let err = Client::with_options(&[server.url("https")], &with_key_password(password))
            .err()
            .unwrap_or_else(|| panic!("a client was built with {password:?}"));
        assert!(err.to_string().contains(expected), "{password:?}: {err}");
    }
    server.stop().await;
}

#[tokio::test]
async fn verify_client_required_refuses_any_request_without_a_certificate() {
    let pki = Pki::new();
    let server = Server::start(&pki.restapi("required")).await;
    let anonymous = server.client("https", &pki.client(None));
    let err = anonymous
        .request(Method::GET, "/patroni", None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err}");
    let certified = server.client("https", &pki.client(Some("client")));
    assert_eq!(send(&certified, Method::GET, "/patroni").await.status, 200);
    assert_eq!(
        send(&certified, Method::POST, "/reload").await.status,
        unguarded(Method::POST, "/reload").await
    );
    server.stop().await;
}

/// The security settings of `restapi_lines`, loaded.
fn load(restapi_lines: &str) -> Result<Security, SecurityError> {
    let dir = TempDir::new().unwrap();
    Security::load(&config(restapi_lines, dir.path()).restapi)
}

#[test]
fn bad_files_and_settings_name_the_key_and_the_file() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let encrypted = pki.path("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let with = |certfile: &Path, keyfile: &Path| {
        format!(
            "certfile: {}\n  keyfile: {}\n",
            certfile.display(),
            keyfile.display()
        )
    };
    let key = pki.path("server.key");
    let cert = pki.path("server.pem");
    let cases: Vec<(String, &str, Option<&Path>)> = vec![
        (with(&missing, &key), "restapi.certfile", Some(&missing)),
        (with(&garbage, &key), "restapi.certfile", Some(&garbage)),
        (with(&cert, &missing), "restapi.keyfile", Some(&missing)),
        (with(&cert, &garbage), "restapi.keyfile", Some(&garbage)),
        (with(&cert, &encrypted), "restapi.keyfile", Some(&encrypted)),
        // The client's key does not belong to the server's certificate.
        (
            with(&cert, &pki.path("client.key")),
            "restapi.keyfile",
            None,
        ),
        // Without keyfile the key must be in certfile.
        (
            format!("certfile: {}\n", cert.display()),
            "restapi.certfile",
            Some(&cert),
        ),
        (
            format!("{}  verify_client: required\n", with(&cert, &key)),
            "restapi.cafile",
            None,
        ),
        (
            format!(
                "{}  cafile: {}\n  verify_client: optional\n",
                with(&cert, &key),
                garbage.display()
            ),
            "restapi.cafile",
            Some(&garbage),
        ),
        (
            "allowlist: ['10.0.0.0/40']".into(),
            "restapi.allowlist",
            None,
        ),
        (
            "http_extra_headers:\n    'X Bad': 1".into(),
            "restapi.http_extra_headers.X Bad",
            None,
        ),
    ];
    for (lines, key, file) in cases {
        let err = match load(&lines) {
            Ok(_) => panic!("accepted: {lines}"),
            Err(err) => err.to_string(),
        };
        assert!(err.starts_with(&format!("{key}: ")), "{lines}\n=> {err}");
        if let Some(file) = file {
            assert!(
                err.contains(&file.display().to_string()),
                "{lines}\n=> {err}"
            );
        }
        assert!(!err.contains('\n'), "one line: {err}");
    }
    assert!(matches!(
        load(&with(&cert, &encrypted)),
        Err(SecurityError::File(
            crate::pem::PemError::EncryptedKey { .. }
        ))
    ));
    // An encrypted key: read with its password, refused with a wrong one; a key in OpenSSL's
    // legacy encrypted format is refused with the command that converts it.
    let server_encrypted = pki.path("server-encrypted.key");
    load(&format!(
        "{}  keyfile_password: {KEY_PASSWORD}\n",
        with(&cert, &server_encrypted)
    ))
    .unwrap();
    let err = load(&format!(
        "{}  keyfile_password: nope\n",
        with(&cert, &server_encrypted)
    ))
    .err()
    .expect("a wrong password is refused")
    .to_string();
    assert!(
        err.starts_with("restapi.keyfile: ")
            && err.contains("cannot decrypt the key with restapi.keyfile_password"),
        "{err}"
    );
    let legacy = pki.path("legacy.key");
    std::fs::write(
        &legacy,
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = load(&format!("{}  keyfile_password: x\n", with(&cert, &legacy)))
        .err()
        .expect("a legacy encrypted key is refused")
        .to_string();
    assert!(err.contains("openssl pkcs8 -topk8"), "{err}");
    // The key may also be in certfile.
    let combined = pki.path("combined.pem");
    std::fs::write(
        &combined,
        [std::fs::read(&cert).unwrap(), std::fs::read(&key).unwrap()].concat(),
    )
    .unwrap();
    load(&format!("certfile: {}\n", combined.display())).unwrap();
    // A password for a key that is not encrypted is not used, and not an error.
    load(&format!(
        "{}  keyfile_password: unused\n",
        with(&cert, &key)
    ))
    .unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_changes_nothing() {
    let server = Server::start("").await;
    let client = server.client("http", &ClientOptions::default());
    let before = server.raft.state().config.clone();
    let huge = serde_json::json!({"pause": true, "filler": "x".repeat(crate::api::MAX_BODY)});
    for path in ["/config", "/switchover", "/restart", "/failover"] {
        let method = if path == "/config" {
            Method::PATCH
        } else {
            Method::POST
        };
        let answer = client.request(method, path, Some(&huge)).await.unwrap();
        assert_eq!(answer.status, 413, "{path}: {}", answer.body);
    }
    assert_eq!(
        server.raft.state().config,
        before,
        "a refused body changed the state"
    );
    // The same call with a small body goes through: the refusal is the size's.
    let small = serde_json::json!({"pause": true});
    let answer = client
        .request(Method::PATCH, "/config", Some(&small))
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    server.stop().await;
}

/// A TLS handshake with the server, the client offering only `suite`; the suite negotiated or
/// the handshake's error.
async fn handshake_offering(
    server: &Server,
    pki: &Pki,
    suite: rustls::CipherSuite,
) -> Result<rustls::CipherSuite, std::io::Error> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = rustls::ALL_VERSIONS
        .iter()
        .copied()
        .filter(|v| provider.cipher_suites.iter().any(|s| s.version() == *v))
        .collect();
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::pem::certificates("ca", &pki.path("ca.pem")).unwrap() {
        roots.add(cert).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(server.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await?;
    Ok(stream
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|s| s.suite())
        .expect("a finished handshake has a suite"))
}

#[tokio::test]
async fn ciphers_restrict_the_suites_the_server_accepts() {
    use rustls::CipherSuite as S;
    let pki = Pki::new();
    // The test certificates are ECDSA: an ECDSA suite is chosen; TLS 1.3 is left on.
    let server = Server::start(&format!(
        "{}  ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL:!MD5'\n",
        pki.restapi("none")
    ))
    .await;
    let allowed = S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    assert_eq!(
        handshake_offering(&server, &pki, allowed).await.unwrap(),
        allowed
    );
    let not_listed = handshake_offering(&server, &pki, S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
        .await
        .unwrap_err();
    assert!(
        not_listed.to_string().to_lowercase().contains("handshake"),
        "{not_listed}"
    );
    let tls13 = S::TLS13_AES_256_GCM_SHA384;
    assert_eq!(
        handshake_offering(&server, &pki, tls13).await.unwrap(),
        tls13
    );
    server.stop().await;

    // Naming TLS 1.3 suites only turns TLS 1.2 off.
    let server = Server::start(&format!(
        "{}  ciphers: TLS_AES_128_GCM_SHA256\n",
        pki.restapi("none")
    ))
    .await;
    assert!(handshake_offering(&server, &pki, allowed).await.is_err());
    assert!(handshake_offering(&server, &pki, tls13).await.is_err());
    let tls13_chosen = S::TLS13_AES_128_GCM_SHA256;
    assert_eq!(
        handshake_offering(&server, &pki, tls13_chosen)
            .await
            .unwrap(),
        tls13_chosen
    );
    server.stop().await;
}

#[test]
fn ciphers_not_understood_are_refused_naming_the_key() {
    let pki = Pki::new();
    let err = load(&format!(
        "{}  ciphers: 'AES128-SHA:HIGH'\n",
        pki.restapi("none")
    ))
    .err()
    .expect("an unknown cipher is refused");
    let text = err.to_string();
    assert!(
        text.contains("restapi.ciphers") && text.contains("AES128-SHA"),
        "{text}"
    );
}

#[tokio::test]
async fn server_tokens_choose_the_server_header() {
    for (setting, expected) in [
        ("", format!("Tribune/{}", crate::VERSION)),
        (
            "server_tokens: Original",
            format!("Tribune/{}", crate::VERSION),
        ),
        (
            "server_tokens: minimal",
            format!("Patroni/{}", crate::PATRONI_API_VERSION),
        ),
        ("server_tokens: ProductOnly", "Patroni".to_owned()),
    ] {
        let server = Server::start(setting).await;
        let response = raw(
            &format!("{}/patroni", server.url("http")),
            Method::GET,
            None,
        )
        .await;
        assert_eq!(
            response.headers()["server"],
            expected.as_str(),
            "{setting:?}"
        );
        server.stop().await;
    }
}
