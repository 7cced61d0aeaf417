//! The REST server's accept loop: plain TCP or TLS (rustls), HTTP/1.1 and HTTP/2, each request
//! carrying the [`Peer`] facts of its connection for the guard, and a bounded graceful
//! shutdown.
//!
//! Each connection runs in its own task, TLS handshake included, so a slow or silent client
//! never delays the next accept; a handshake that does not finish in [`HANDSHAKE_TIMEOUT`]
//! is dropped.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// The longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the guard knows about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// The client presented a certificate that the `cafile` verified.
    pub(crate) client_certificate: bool,
}

/// Accept connections on `listener` and serve `app` on each until `shutdown` is cancelled.
pub(super) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept: keep serving,
                    // without spinning on an error that lasts.
                    warn!(error = %err, "REST API: accept failed");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            match tls {
                None => {
                    let peer = Peer {
                        addr,
                        client_certificate: false,
                    };
                    serve_connection(stream, peer, app, watcher).await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => {
                            debug!(peer = %addr, error = %err, "REST API: TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(peer = %addr, "REST API: TLS handshake timed out");
                            return;
                        }
                    };
                    let peer = Peer {
                        addr,
                        client_certificate: stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty()),
                    };
                    serve_connection(stream, peer, app, watcher).await
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("REST API: requests still in flight after {DRAIN_TIMEOUT:?}; closing them");
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: Peer,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer);
        // The router is always ready and never fails (its error type is Infallible).
        app.clone().oneshot(request)
    });
    let builder = Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        debug!(peer = %peer.addr, error = %err, "REST API: connection ended with an error");
    }
}
