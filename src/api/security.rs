//! The REST API's access control and transport security, as Patroni's (reference/patroni.md
//! §1.13): who may call the unsafe methods, TLS, and the configured extra response headers.
//!
//! # What it owns
//!
//! - [`Security`]: everything `restapi` says about security, read and checked once at start-up
//!   ([`Security::load`]; unreadable or invalid files are errors that name the key and the
//!   file), then turned into a running server by [`Security::serve`].
//! - The request guard, a layer around the whole router, so it runs *before* routing: an
//!   unsafe request (any method but GET, HEAD and OPTIONS) is checked in Patroni's order —
//!   `restapi.allowlist`/`allowlist_include_members` (403 `Access is denied`), then a client
//!   certificate when `verify_client` is `optional` or `required` (403 `client certificate
//!   required`), then `restapi.authentication` (401 `no auth header received` / `not
//!   authenticated`, with `WWW-Authenticate: Basic realm="Patroni"`). Safe methods are never
//!   asked for anything, so HAProxy's checks and monitoring keep working unchanged. Unlike
//!   Patroni, which checks inside each unsafe handler, an unknown path gets 401/403 rather than
//!   501: an unauthenticated caller learns nothing about which paths exist.
//! - `http_extra_headers` (and `https_extra_headers` when TLS is on) on every response.
//! - `allowlist`: the allowed networks, with host names resolved off the request path.
//! - `tls`: PEM files to rustls configurations (also used by the client for `ctl.*`).
//! - `connection`: the accept loop (TLS handshake, the peer facts each request carries).
//!
//! # Hazards
//!
//! - The guard fails closed: a request that did not come through the accept loop (so carries
//!   no peer facts) is refused whenever an allowlist or a client certificate is required.
//! - Credentials are compared in constant time, on the whole `Basic` token, as Patroni does.
//! - Must not read the clock, the database or the network per request: host names are resolved
//!   by a background task and published through a watch channel.

mod allowlist;
pub mod ciphers;
mod connection;
pub(crate) mod tls;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{RestApi, VerifyClient};
use crate::state::ClusterState;

pub(crate) use connection::Peer;

/// The realm of the `WWW-Authenticate` challenge: Patroni's, byte for byte.
const REALM: &str = "Basic realm=\"Patroni\"";

/// A security setting that cannot be used. Each names the key it is about (and the file, for
/// files); the agent prints it and exits before starting anything.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    File(#[from] crate::pem::PemError),
    #[error("{key}: {message}")]
    Setting { key: String, message: String },
}

/// Why an unsafe request is refused (Patroni's status codes and messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// 403: the client address is not in the allowlist (nor a member's, when members count).
    NotAllowed,
    /// 403: `verify_client` is `optional` or `required` and no certificate was presented.
    NoClientCertificate,
    /// 401: authentication is configured and no `Authorization` header was sent.
    NoCredentials,
    /// 401: the credentials sent are not the configured ones.
    BadCredentials,
}

impl Denial {
    fn message(self) -> &'static str {
        match self {
            Denial::NotAllowed => "Access is denied",
            Denial::NoClientCertificate => "client certificate required",
            Denial::NoCredentials => "no auth header received",
            Denial::BadCredentials => "not authenticated",
        }
    }
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let status = match self {
            Denial::NotAllowed | Denial::NoClientCertificate => StatusCode::FORBIDDEN,
            Denial::NoCredentials | Denial::BadCredentials => StatusCode::UNAUTHORIZED,
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            self.message(),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
        }
        response
    }
}

/// GET, HEAD and OPTIONS; everything else (POST, PUT, PATCH, DELETE, and any other verb) is
/// unsafe and checked.
fn is_safe(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS
}

/// Everything `restapi` says about security, checked and with its files read.
pub struct Security {
    /// `base64(username:password)`, compared with the token of a `Basic` header.
    token: Option<Vec<u8>>,
    allowlist: allowlist::Allowlist,
    /// TLS with `verify_client: optional|required`: unsafe requests need a client certificate.
    client_certificate_for_unsafe: bool,
    headers: HeaderMap,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Security {
    /// Read and check the security settings of `api`: allowlist entries, extra headers, and
    /// with `certfile` the certificate, key and CA files. Blocking (small file reads).
    pub fn load(api: &RestApi) -> Result<Security, SecurityError> {
        let token = api.authentication.as_ref().map(|c| {
            let pair = format!("{}:{}", c.username, c.password.as_deref().unwrap_or(""));
            base64::engine::general_purpose::STANDARD
                .encode(pair)
                .into_bytes()
        });
        let tls = tls::server_config(api)?;
        let mut headers = HeaderMap::new();
        if let Ok(server) = HeaderValue::try_from(api.server_tokens.header()) {
            headers.insert(header::SERVER, server);
        }
        headers.extend(extra_headers(
            "restapi.http_extra_headers",
            &api.http_extra_headers,
        )?);
        let https = extra_headers("restapi.https_extra_headers", &api.https_extra_headers)?;
        if tls.is_some() {
            headers.extend(https);
        }
        Ok(Security {
            token,
            allowlist: allowlist::Allowlist::parse(&api.allowlist, api.allowlist_include_members)?,
            client_certificate_for_unsafe: tls.is_some() && api.verify_client != VerifyClient::None,
            headers,
            tls,
        })
    }

    /// Serve `app` on `listener` behind the guard until `shutdown` is cancelled. `cluster` is
    /// the replicated state, read for the members' addresses when `allowlist_include_members`
    /// is on.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        cluster: watch::Receiver<Arc<ClusterState>>,
        shutdown: CancellationToken,
    ) {
        let (allowed_tx, allowed) = watch::channel(Arc::new(Vec::new()));
        let allowlist_active = self.allowlist.is_active();
        let mut resolver = allowlist::Resolver::new(self.allowlist, cluster, allowed_tx);
        if allowlist_active {
            // Addresses are in force from the first request; names once looked up.
            resolver.publish_addresses().await;
        }
        let guard = Guard {
            token: self.token,
            allowlist_active,
            allowed,
            client_certificate_for_unsafe: self.client_certificate_for_unsafe,
            headers: self.headers,
        };
        let app = if guard.is_inert() {
            app
        } else {
            app.layer(middleware::from_fn_with_state(Arc::new(guard), check))
        };
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let resolving = async {
            if allowlist_active {
                resolver.run(shutdown.clone()).await;
            }
        };
        tokio::join!(
            connection::accept_loop(
                listener,
                app,
                acceptor,
                connection::Limits::default(),
                shutdown.clone()
            ),
            resolving
        );
    }
}

/// `restapi.http_extra_headers` (or `https_`) as header names and values.
fn extra_headers(
    key: &str,
    configured: &std::collections::BTreeMap<String, String>,
) -> Result<HeaderMap, SecurityError> {
    configured
        .iter()
        .map(|(name, value)| {
            let bad = |what: &str| SecurityError::Setting {
                key: format!("{key}.{name}"),
                message: format!("not a valid HTTP header {what}"),
            };
            let name = HeaderName::try_from(name.as_str()).map_err(|_| bad("name"))?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|_| bad("value"))?;
            Ok((name, value))
        })
        .collect()
}

/// The checks an unsafe request passes through, shared by every connection.
struct Guard {
    token: Option<Vec<u8>>,
    allowlist_active: bool,
    /// The allowed networks, kept current by the resolver.
    allowed: watch::Receiver<Arc<Vec<ipnet::IpNet>>>,
    client_certificate_for_unsafe: bool,
    headers: HeaderMap,
}

impl Guard {
    /// Nothing to check and nothing to add: the layer is left out entirely.
    fn is_inert(&self) -> bool {
        self.token.is_none()
            && !self.allowlist_active
            && !self.client_certificate_for_unsafe
            && self.headers.is_empty()
    }

    /// Patroni's order: allowlist, client certificate, credentials.
    fn admit(
        &self,
        peer: Option<&Peer>,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), Denial> {
        if self.allowlist_active
            && !peer.is_some_and(|p| allowlist::permits(&self.allowed.borrow(), p.addr.ip()))
        {
            return Err(Denial::NotAllowed);
        }
        if self.client_certificate_for_unsafe && !peer.is_some_and(|p| p.client_certificate) {
            return Err(Denial::NoClientCertificate);
        }
        match &self.token {
            None => Ok(()),
            Some(expected) => check_basic(expected, authorization),
        }
    }
}

/// `Authorization: Basic <token>`, the token compared with `expected` in constant time.
fn check_basic(expected: &[u8], authorization: Option<&HeaderValue>) -> Result<(), Denial> {
    let value = authorization.ok_or(Denial::NoCredentials)?;
    let token = value
        .as_bytes()
        .strip_prefix(b"Basic ")
        .ok_or(Denial::BadCredentials)?;
    if bool::from(token.ct_eq(expected)) {
        Ok(())
    } else {
        Err(Denial::BadCredentials)
    }
}

async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let verdict = if is_safe(request.method()) {
        Ok(())
    } else {
        guard.admit(
            request.extensions().get::<Peer>(),
            request.headers().get(header::AUTHORIZATION),
        )
    };
    let mut response = match verdict {
        Ok(()) => next.run(request).await,
        Err(denial) => {
            info!(
                method = %request.method(),
                path = request.uri().path(),
                peer = ?request.extensions().get::<Peer>().map(|p| p.addr),
                "refused an unsafe request: {}",
                denial.message()
            );
            denial.into_response()
        }
    };
    for (name, value) in &guard.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
