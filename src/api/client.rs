//! A typed client of the REST API, used by `tribunectl` and the tests. Tries each known member
//! URL in turn, so one member being down does not stop an operator. Speaks HTTPS and sends
//! basic-auth credentials as [`ClientSecurity`] says, with patronictl's rules for where those
//! come from.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;

use super::security::{SecurityError, tls};
use super::{ClusterDocument, StatusDocument};
use crate::config::{Config, Credentials};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no member answered: {0}")]
    Unreachable(String),
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
    #[error(transparent)]
    Security(#[from] SecurityError),
}

/// How to reach a TLS- or password-protected REST API.
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    /// Sent as `Authorization: Basic` with every request, as patronictl does.
    pub credentials: Option<Credentials>,
    /// Do not verify the server's certificate (`ctl.insecure`, `tribunectl -k`).
    pub insecure: bool,
    /// The CA that signs the servers' certificates, with the key that named it (for errors).
    /// Without one, the system's roots.
    pub cacert: Option<(&'static str, PathBuf)>,
    /// A client certificate (`ctl.certfile`), for servers with `verify_client`.
    pub certfile: Option<PathBuf>,
    /// Its key (`ctl.keyfile`); without one the key is read from `certfile`.
    pub keyfile: Option<PathBuf>,
}

impl ClientSecurity {
    /// patronictl's rules: credentials from `ctl.authentication`, else
    /// `restapi.authentication`; the CA from `ctl.cacert`, else `restapi.cafile`; a client
    /// certificate from `ctl.certfile`/`ctl.keyfile` only.
    pub fn from_config(config: &Config) -> ClientSecurity {
        let ctl = &config.ctl;
        let api = &config.restapi;
        ClientSecurity {
            credentials: ctl
                .authentication
                .clone()
                .or_else(|| api.authentication.clone()),
            insecure: ctl.insecure,
            cacert: match (&ctl.cacert, &api.cafile) {
                (Some(path), _) => Some(("ctl.cacert", path.clone())),
                (None, Some(path)) => Some(("restapi.cafile", path.clone())),
                (None, None) => None,
            },
            certfile: ctl.certfile.clone(),
            keyfile: ctl.keyfile.clone(),
        }
    }

    fn apply(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ClientError> {
        let build = |e: reqwest::Error| ClientError::Build(e.to_string());
        if let Some(c) = &self.credentials {
            let pair = format!("{}:{}", c.username, c.password.as_deref().unwrap_or(""));
            let token = base64::engine::general_purpose::STANDARD.encode(pair);
            let mut value = HeaderValue::try_from(format!("Basic {token}")).map_err(|_| {
                ClientError::Build(
                    "the user name or password is not valid in an HTTP header".into(),
                )
            })?;
            value.set_sensitive(true);
            builder = builder.default_headers(HeaderMap::from_iter([(AUTHORIZATION, value)]));
        }
        if self.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some((key, path)) = &self.cacert {
            let roots = tls::certificates(key, path)?
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(build)?;
            builder = builder.tls_certs_only(roots);
        }
        if let Some(certfile) = &self.certfile {
            tls::certificates("ctl.certfile", certfile)?;
            let mut pem = tls::read("ctl.certfile", certfile)?;
            match &self.keyfile {
                Some(keyfile) => {
                    let (_, key_pem) =
                        tls::private_key("ctl.keyfile", keyfile, "ctl.keyfile_password")?;
                    pem.push(b'\n');
                    pem.extend(key_pem);
                }
                None => {
                    tls::private_key("ctl.certfile", certfile, "ctl.keyfile_password")?;
                }
            }
            builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(build)?);
        }
        Ok(builder)
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// Base URLs (`http://host:port`), tried in order.
    bases: Vec<String>,
}

/// A member's answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Answer {
    pub url: String,
    pub status: u16,
    pub body: String,
}

/// `http://host:port/patroni` or `host:port` -> `http://host:port`.
pub fn base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let url = url.strip_suffix("/patroni").unwrap_or(url);
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

impl Client {
    pub fn new(
        urls: &[String],
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<Self, ClientError> {
        // reqwest is built without a default TLS provider: install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(format!("tribunectl/{}", crate::VERSION));
        let http = security
            .apply(builder)?
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Self {
            http,
            bases: urls.iter().map(|u| base_url(u)).collect(),
        })
    }

    /// Send `method path` (with a JSON body, if any) to the first member that answers. An
    /// unsafe request moves on to the next member only when the connection could not be made,
    /// so it is never carried out twice.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, ClientError> {
        let safe = method == Method::GET || method == Method::HEAD || method == Method::OPTIONS;
        let mut failures = Vec::new();
        for base in &self.bases {
            let url = format!("{base}{path}");
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(body);
            }
            match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().await.unwrap_or_default();
                    return Ok(Answer { url, status, body });
                }
                Err(err) => {
                    failures.push(format!("{url}: {}", error_chain(&err)));
                    if !safe && !err.is_connect() {
                        break;
                    }
                }
            }
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let Answer { url, status, body } = self.request(Method::GET, path, None).await?;
        if !(200..300).contains(&status) && path != "/patroni" {
            return Err(ClientError::Status { url, status, body });
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Decode {
            url,
            detail: e.to_string(),
        })
    }

    pub async fn cluster(&self) -> Result<ClusterDocument, ClientError> {
        self.get("/cluster").await
    }

    pub async fn status(&self) -> Result<StatusDocument, ClientError> {
        self.get("/patroni").await
    }
}

/// An error with its causes (reqwest's own message hides why a TLS handshake failed).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
