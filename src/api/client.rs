//! A typed client of the REST API, used by `tribunectl` and the tests. Reads go to each known
//! member URL in turn, so one member being down does not stop an operator; an action meant for
//! one member (`POST /restart` on that member) goes to that member only.
//!
//! Owns: the HTTP client (timeouts, basic authentication, TLS trust), the list of member URLs
//! to try, and the typed reads (`/cluster`, `/patroni`, `/history`, `/config`). Must not decide
//! anything: callers read the status code and the body of every answer.
//!
//! Hazard: loading the system's certificate store costs tens of milliseconds, more than the
//! rest of a `tribunectl list`. It is loaded only for the first `https` URL that must be
//! verified against it (no CA file given, verification not turned off).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ClusterDocument, StatusDocument};
use crate::config::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no member answered: {0}")]
    Unreachable(String),
    #[error("{url}: {detail}")]
    NoAnswer { url: String, detail: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} sent a document that could not be read: {detail}")]
    Decode { url: String, detail: String },
    #[error("could not build the HTTP client: {0}")]
    Build(String),
}

/// How to reach the REST API: the `ctl` section of a configuration (falling back to
/// `restapi.authentication` and `restapi.cafile`, as patronictl does).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Limit of a read (`GET`); actions get [`ACTION_TIMEOUT`].
    pub timeout: Duration,
    /// Basic authentication sent with every request.
    pub auth: Option<Credentials>,
    /// Accept any server certificate (`ctl.insecure`, `-k`).
    pub insecure: bool,
    /// PEM file of the certificate authority that signed the servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key of this client, for servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The password of an encrypted client key (`ctl.keyfile_password`).
    pub keyfile_password: Option<KeyPassword>,
}

/// A private key's password; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPassword(pub String);

impl std::fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            auth: None,
            insecure: false,
            ca_file: None,
            client_cert: None,
            keyfile_password: None,
        }
    }
}

/// How long an action may take to be answered: an immediate switchover or restart is answered
/// when it is done (a restart waits up to its timeout, `primary_start_timeout` by default).
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One HTTP answer: the status code and the body as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body on one line, for messages (an HTML error page must not spill over lines).
    pub fn body_line(&self) -> String {
        self.body.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    /// For `http` URLs, and for `https` ones when the trust is configured (a CA file, or no
    /// verification): built without the system's certificate store.
    http: reqwest::Client,
    /// For `https` URLs verified against the system's certificate store: built on first use.
    system_tls: Arc<OnceLock<Result<reqwest::Client, String>>>,
    options: ClientOptions,
    /// Base URLs (`http://host:port`), tried in order.
    bases: Vec<String>,
}

/// `http://host:port/patroni` or `host:port` -> `http://host:port`.
pub fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/patroni").unwrap_or(url);
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

fn read_pem(path: &PathBuf, what: &str) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError::Build(format!("cannot read the {what} {}: {e}", path.display())))
}

/// A reqwest client trusting the configured CA file only, or with `system_roots` the system's
/// certificate store (and the CA file).
fn build(options: &ClientOptions, system_roots: bool) -> Result<reqwest::Client, ClientError> {
    let mut roots = Vec::new();
    if let Some(path) = &options.ca_file {
        roots.push(
            reqwest::Certificate::from_pem(&read_pem(path, "CA certificate")?)
                .map_err(|e| ClientError::Build(format!("{}: {e}", path.display())))?,
        );
    }
    let mut builder = reqwest::Client::builder()
        .connect_timeout(options.timeout)
        .danger_accept_invalid_certs(options.insecure);
    builder = if system_roots {
        builder.tls_certs_merge(roots)
    } else {
        builder.tls_certs_only(roots)
    };
    if let Some((cert, key)) = &options.client_cert {
        let mut pem = read_pem(cert, "client certificate")?;
        let key = crate::pem::private_key(
            "ctl.keyfile",
            key,
            options.keyfile_password.as_ref().map(|p| p.0.as_str()),
            "ctl.keyfile_password",
        )
        .map_err(|e| ClientError::Build(e.to_string()))?;
        // A key in the certificate file (no `ctl.keyfile`) is there already, and stays in
        // `pem` only when it is not encrypted: rustls must not meet the encrypted copy.
        pem = crate::pem::without_encrypted_key(pem);
        pem.extend(key.pem);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| ClientError::Build(format!("{}: {e}", cert.display())))?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

impl Client {
    pub fn new(urls: &[String], timeout: Duration) -> Result<Self, ClientError> {
        Self::with_options(
            urls,
            &ClientOptions {
                timeout,
                ..ClientOptions::default()
            },
        )
    }

    pub fn with_options(urls: &[String], options: &ClientOptions) -> Result<Self, ClientError> {
        // reqwest is built without a default TLS provider: install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = Self {
            http: build(options, false)?,
            system_tls: Arc::default(),
            options: options.clone(),
            bases: Vec::new(),
        };
        for url in urls {
            client.add_url(url);
        }
        Ok(client)
    }

    /// The HTTP client for `url`.
    fn http_for(&self, url: &str) -> Result<&reqwest::Client, ClientError> {
        let configured = self.options.insecure || self.options.ca_file.is_some();
        if !url.starts_with("https:") || configured {
            return Ok(&self.http);
        }
        self.system_tls
            .get_or_init(|| build(&self.options, true).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ClientError::Build(e.clone()))
    }

    /// Adds a member URL to the ones tried, after those already known.
    pub fn add_url(&mut self, url: &str) {
        let base = base_url(url);
        if !self.bases.contains(&base) {
            self.bases.push(base);
        }
    }

    /// Adds every member's `api_url` from a `GET /cluster` document, so that later requests
    /// can go on when the member first asked goes down.
    pub fn learn_members(&mut self, doc: &ClusterDocument) {
        for member in &doc.members {
            if !member.api_url.is_empty() {
                self.add_url(&member.api_url);
            }
        }
    }

    /// The base URLs tried, in order.
    pub fn bases(&self) -> &[String] {
        &self.bases
    }

    /// One request to one member (`base` as given by [`base_url`]). Any HTTP status is an
    /// answer; only a failure to get one is an error.
    pub async fn send(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let timeout = if method == Method::GET {
            self.options.timeout
        } else {
            ACTION_TIMEOUT
        };
        let url = format!("{}{path}", base_url(base));
        let mut request = self.http_for(&url)?.request(method, &url).timeout(timeout);
        if let Some(auth) = &self.options.auth {
            request = request.basic_auth(&auth.username, auth.password.as_ref());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let no_answer = |e: reqwest::Error| ClientError::NoAnswer {
            url: url.clone(),
            detail: error_chain(&e),
        };
        let response = request.send().await.map_err(no_answer)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(no_answer)?;
        Ok(Answer { status, body })
    }

    /// The same request to each of `bases` in turn until one answers; that member's base URL
    /// and its answer.
    pub async fn send_first(
        &self,
        bases: &[String],
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(String, Answer), ClientError> {
        let mut failures = Vec::new();
        for base in bases {
            match self.send(base, method.clone(), path, body).await {
                Ok(answer) => return Ok((base.clone(), answer)),
                Err(err @ ClientError::NoAnswer { .. }) => failures.push(err.to_string()),
                Err(err) => return Err(err),
            }
        }
        if failures.is_empty() {
            failures.push("no member URL is known".to_owned());
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }

    /// `method path` to the first known member that answers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        self.send_first(&self.bases, method, path, body)
            .await
            .map(|(_, answer)| answer)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get_in(&self.bases, path).await
    }

    /// `GET path` from the first of `bases` that answers.
    async fn get_in<T: DeserializeOwned>(
        &self,
        bases: &[String],
        path: &str,
    ) -> Result<T, ClientError> {
        let (base, answer) = self.send_first(bases, Method::GET, path, None).await?;
        let url = format!("{base}{path}");
        // `/patroni` answers 503 with the status document while the database is down.
        if !answer.is_success() && path != "/patroni" {
            return Err(ClientError::Status {
                url,
                status: answer.status,
                body: answer.body_line(),
            });
        }
        serde_json::from_str(&answer.body).map_err(|e| ClientError::Decode {
            url,
            detail: e.to_string(),
        })
    }

    pub async fn cluster(&self) -> Result<ClusterDocument, ClientError> {
        self.get("/cluster").await
    }

    /// The known base URLs with `first` before the others.
    fn starting_with(&self, first: &str) -> Vec<String> {
        let first = base_url(first);
        let mut bases = vec![first.clone()];
        bases.extend(self.bases.iter().filter(|b| **b != first).cloned());
        bases
    }

    /// `GET /cluster` from `first`, then from the others. A member's state lags the Raft
    /// leader's by a moment: reading from the member that carried out a change shows it.
    pub async fn cluster_from(&self, first: &str) -> Result<ClusterDocument, ClientError> {
        self.get_in(&self.starting_with(first), "/cluster").await
    }

    /// `GET /config` from `first`, then from the others (see [`Client::cluster_from`]).
    pub async fn config_from(&self, first: &str) -> Result<Value, ClientError> {
        self.get_in(&self.starting_with(first), "/config").await
    }

    pub async fn status(&self) -> Result<StatusDocument, ClientError> {
        self.get("/patroni").await
    }

    /// `GET /history`: `[timeline, lsn, reason, timestamp, new_leader]` rows (older entries
    /// may be shorter).
    pub async fn history(&self) -> Result<Vec<Vec<Value>>, ClientError> {
        self.get("/history").await
    }

    /// `GET /config`: the dynamic configuration as stored.
    pub async fn config(&self) -> Result<Value, ClientError> {
        self.get("/config").await
    }

    /// `GET /patroni` of one member.
    pub async fn status_of(&self, base: &str) -> Result<StatusDocument, ClientError> {
        let answer = self.send(base, Method::GET, "/patroni", None).await?;
        serde_json::from_str(&answer.body).map_err(|e| ClientError::Decode {
            url: format!("{}/patroni", base_url(base)),
            detail: e.to_string(),
        })
    }
}

/// What went wrong, in the words of the innermost cause ("Connection refused (os error 111)",
/// "invalid peer certificate: UnknownIssuer"); reqwest's own layers add only "error sending
/// request".
fn error_chain(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let mut innermost: &dyn std::error::Error = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("http://10.0.0.1:8008/patroni"),
            "http://10.0.0.1:8008"
        );
        assert_eq!(base_url("10.0.0.1:8008/"), "http://10.0.0.1:8008");
        assert_eq!(base_url("https://db1:8008"), "https://db1:8008");
    }

    #[test]
    fn members_are_tried_after_the_given_urls_once_each() {
        let mut client =
            Client::new(&["127.0.0.1:8008".to_owned()], Duration::from_secs(1)).expect("a client");
        let doc: ClusterDocument = serde_json::from_value(serde_json::json!({
            "scope": "s",
            "members": [
                {"name": "a", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni"},
                {"name": "b", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.2:8008/patroni"}
            ]
        }))
        .unwrap();
        client.learn_members(&doc);
        assert_eq!(
            client.bases(),
            ["http://127.0.0.1:8008", "http://127.0.0.2:8008"]
        );
    }

    #[test]
    fn the_system_certificate_store_is_loaded_only_for_https_that_needs_it() {
        let client = Client::new(&[], Duration::from_secs(1)).unwrap();
        client.http_for("http://10.0.0.1:8008/cluster").unwrap();
        assert!(client.system_tls.get().is_none());
        client.http_for("https://10.0.0.1:8008/cluster").unwrap();
        assert!(client.system_tls.get().is_some());
        let insecure = ClientOptions {
            insecure: true,
            ..ClientOptions::default()
        };
        let client = Client::with_options(&[], &insecure).unwrap();
        client.http_for("https://10.0.0.1:8008/cluster").unwrap();
        assert!(client.system_tls.get().is_none());
    }

    #[tokio::test]
    async fn a_member_that_does_not_answer_is_named_with_the_cause() {
        let client = Client::new(&["127.0.0.1:1".to_owned()], Duration::from_secs(1)).unwrap();
        let err = client.cluster().await.unwrap_err().to_string();
        assert!(
            err.starts_with("no member answered: http://127.0.0.1:1/cluster: Connection refused"),
            "{err}"
        );
    }

    #[test]
    fn an_answer_body_is_one_line() {
        let answer = Answer {
            status: 400,
            body: "<html>\n  bad\n request</html>\n".to_owned(),
        };
        assert_eq!(answer.body_line(), "<html> bad request</html>");
        assert!(!answer.is_success());
    }
}
