//! The REST server's accept loop: plain TCP or TLS (rustls), HTTP/1.1 and HTTP/2, each request
//! carrying the [`Peer`] facts of its connection for the guard, and a bounded graceful
//! shutdown.
//!
//! Each connection runs in its own task, TLS handshake included, so a slow or silent client
//! never delays the next accept; a handshake that does not finish in [`HANDSHAKE_TIMEOUT`]
//! is dropped.
//!
//! [`Limits`] keep a slow or hostile client from exhausting the agent: open connections are
//! capped (more are closed at once), a request's headers must arrive within a deadline (which
//! also closes an HTTP/1 connection idle that long between requests), and headers are bounded
//! in size and number. Request bodies are bounded by the router (`api::MAX_BODY`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::{debug, warn};

/// The longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for requests in flight before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What one client may hold of the REST server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Open connections, all clients together (HAProxy's checks, monitoring, tribunectl).
    pub(crate) max_connections: usize,
    /// The longest a client may take to send a request's headers, or stay idle between two
    /// requests on one HTTP/1 connection.
    pub(crate) header_read_timeout: Duration,
    /// HTTP/1: the largest header block; larger is answered 431.
    pub(crate) max_header_bytes: usize,
    /// HTTP/1: the most header lines.
    pub(crate) max_headers: usize,
    /// HTTP/2: streams per connection, and the largest header list.
    pub(crate) max_streams: u32,
    pub(crate) max_header_list: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_streams: 64,
            max_header_list: 16 * 1024,
        }
    }
}

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
    limits: Limits,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let slots = std::sync::Arc::new(Semaphore::new(limits.max_connections));
    let mut refusal_logged = false;
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !std::mem::replace(&mut refusal_logged, true) {
                warn!(
                    peer = %addr,
                    "REST API: {} connections are open; closing new ones until some end \
                     (logged once)",
                    limits.max_connections
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => {
                    let peer = Peer {
                        addr,
                        client_certificate: false,
                    };
                    serve_connection(stream, peer, app, limits, watcher).await
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
                    serve_connection(stream, peer, app, limits, watcher).await
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
    limits: Limits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper reads the first bytes (to tell HTTP/1 from HTTP/2) before its own header timeout
    // starts: a client that sends nothing at all is closed here.
    let stream = crate::first_bytes::FirstBytes::new(stream, limits.header_read_timeout);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer);
        // The router is always ready and never fails (its error type is Infallible).
        app.clone().oneshot(request)
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(limits.max_header_list)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        debug!(peer = %peer.addr, error = %err, "REST API: connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn server(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let shutdown = CancellationToken::new();
        tokio::spawn(accept_loop(listener, app, None, limits, shutdown.clone()));
        (addr, shutdown)
    }

    /// Read until the server closes the connection (or `limit` passes); what it sent.
    async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&text).into()),
                Ok(Ok(n)) => text.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_and_idle_ones_time_out() {
        let limits = Limits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (addr, shutdown) = server(limits).await;
        let mut idle = Vec::new();
        for _ in 0..2 {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            read_to_close(&mut third, Duration::from_millis(500))
                .await
                .as_deref(),
            Some(""),
            "a connection over the limit is closed at once"
        );
        // A slow client: half a request line, then nothing.
        idle[0].write_all(b"GET / HT").await.unwrap();
        let started = Instant::now();
        for stream in &mut idle {
            assert!(
                read_to_close(stream, Duration::from_secs(3))
                    .await
                    .is_some(),
                "an idle connection stays open"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(3));
        // Their slots are free again.
        let mut next = TcpStream::connect(addr).await.unwrap();
        next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut next, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn oversized_headers_are_refused_with_431() {
        let (addr, shutdown) = server(Limits::default()).await;
        for request in [
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(40_000)
            ),
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                (0..100)
                    .map(|i| format!("X-{i}: v\r\n"))
                    .collect::<String>()
            ),
        ] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let _ = stream.write_all(request.as_bytes()).await;
            let answer = read_to_close(&mut stream, Duration::from_secs(2))
                .await
                .unwrap();
            assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
        }
        shutdown.cancel();
    }
}
