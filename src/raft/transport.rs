//! [`Transport`]: the connections of the gRPC port, both ways, under the cluster's
//! [`PeerAuth`](super::PeerAuth): TLS (certificates or `raft.password`) or plain text, the
//! limits that keep a slow or hostile client from exhausting the agent, and the reload of the
//! credentials while connections are open.
//!
//! Server side ([`Transport::incoming`]): one task accepts; each connection is handshaken in
//! its own task, so a silent client never delays the next. Limits: at most
//! [`MAX_CONNECTIONS`] open connections (more are closed at once), [`HANDSHAKE_TIMEOUT`] for
//! the TLS handshake and then for the first bytes of HTTP/2, and the HTTP/2 limits set on the
//! tonic server (`node`). A peer that fails the handshake never reaches tonic: nothing it sent
//! is decoded.
//!
//! Client side ([`Transport::connector`]): TCP from this node's listen address, then TLS with
//! the credentials current *at connect time*, checking the server's certificate against the
//! host it dialled.
//!
//! Reload ([`Transport::reload`]): new connections use the new credentials at once; cached
//! channels are dropped by `Peers::reset`, so the next call to each peer reconnects; and an
//! incoming connection whose peer the new credentials would refuse is closed at its next read.
//! The mode (open, password, certificates) cannot change while the agent runs: peers in
//! different modes cannot talk, so that change needs a planned restart of the whole cluster.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http::Uri;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, info, warn};

use super::RaftError;
use super::auth::{Credentials, PeerAuth};
use crate::first_bytes::FirstBytes;

/// Open connections the gRPC port keeps at once; a cluster needs a few per member.
pub(crate) const MAX_CONNECTIONS: usize = 128;
/// The longest a client may take for the TLS handshake, then for its first HTTP/2 bytes.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

type Current = Option<Arc<Credentials>>;

/// The credentials in force and how they were configured.
#[derive(Debug)]
pub(crate) struct Transport {
    scope: String,
    auth: Mutex<PeerAuth>,
    current: watch::Sender<Current>,
}

impl Transport {
    /// Load `auth`'s files (or derive the password's key). Blocking.
    pub(crate) fn load(auth: PeerAuth, scope: &str) -> Result<Transport, RaftError> {
        let credentials = auth.load(scope)?;
        Ok(Transport {
            scope: scope.to_owned(),
            auth: Mutex::new(auth),
            current: watch::channel(credentials).0,
        })
    }

    /// Plain text, for tests of the layers above.
    #[cfg(test)]
    pub(crate) fn open() -> Transport {
        Transport::load(PeerAuth::Open, "test").expect("no files to read")
    }

    pub(crate) fn credentials(&self) -> Current {
        self.current.borrow().clone()
    }

    /// Read the credentials again. Refused, changing nothing, when the files are unusable or
    /// `auth` is another mode than the running one. Blocking.
    pub(crate) fn reload(&self, auth: PeerAuth) -> Result<(), RaftError> {
        let mut running = self
            .auth
            .lock()
            .map_err(|_| RaftError::Start("the credentials lock is poisoned".into()))?;
        if !running.same_mode(&auth) {
            return Err(RaftError::InvalidSettings(format!(
                "the agents' authentication cannot change from {} to {} while the agent runs: \
                 restart the agents",
                running.mode(),
                auth.mode()
            )));
        }
        let credentials = auth.load(&self.scope)?;
        *running = auth;
        self.current.send_replace(credentials);
        Ok(())
    }

    /// The connections accepted on `listener`, handshaken and within the limits, until `stop`.
    pub(crate) fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> impl Stream<Item = io::Result<PeerConnection>> + use<> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(accept_loop(listener, self.clone(), tx, stop));
        futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|connection| (Ok(connection), rx))
        })
    }

    /// A tonic connector to `addr` (`host:port`), from `local_ip` when given.
    pub(crate) fn connector(self: &Arc<Self>, addr: &str, local_ip: Option<IpAddr>) -> Connector {
        Connector {
            transport: self.clone(),
            addr: addr.to_owned(),
            local_ip,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    transport: Arc<Transport>,
    accepted: mpsc::Sender<PeerConnection>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refused = Arc::new(Refused::default());
    let mut refusals_logged = false;
    loop {
        let (stream, addr) = tokio::select! {
            _ = stop.cancelled() => return,
            result = listener.accept() => match result {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a reset before accept: keep serving, without
                    // spinning on an error that lasts.
                    warn!(error = %e, "raft port: accept failed");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !std::mem::replace(&mut refusals_logged, true) {
                warn!(
                    peer = %addr,
                    "raft port: {MAX_CONNECTIONS} connections are open; refusing more (logged once)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let transport = transport.clone();
        let accepted = accepted.clone();
        let stop = stop.clone();
        let refused = refused.clone();
        tokio::spawn(async move {
            let credentials = transport.current.subscribe();
            let tls = credentials.borrow().clone();
            let local = stream.local_addr().ok();
            let (io, chain) = match tls {
                None => (Either::Left(stream), None),
                Some(credentials) => {
                    let acceptor = TlsAcceptor::from(credentials.server.clone());
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    match tokio::select! { _ = stop.cancelled() => return, h = handshake => h } {
                        Ok(Ok(tls)) => {
                            let chain = tls.get_ref().1.peer_certificates().map(|c| {
                                c.iter().map(|c| c.clone().into_owned()).collect::<Vec<_>>()
                            });
                            (Either::Right(tls), chain)
                        }
                        Ok(Err(e)) => {
                            // At info once per address (a rogue peer retrying must not flood
                            // the log), at debug after that.
                            if refused.first(addr.ip()) {
                                info!(
                                    peer = %addr,
                                    "raft port: refused a connection: TLS handshake failed: {e} \
                                     (logged once per address)"
                                );
                            } else {
                                debug!(peer = %addr, "raft port: refused a connection: {e}");
                            }
                            return;
                        }
                        Err(_) => {
                            debug!(peer = %addr, "raft port: TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let connection = PeerConnection {
                io: FirstBytes::new(io, HANDSHAKE_TIMEOUT),
                info: TcpConnectInfo {
                    local_addr: local,
                    remote_addr: Some(addr),
                },
                chain,
                credentials,
                _slot: slot,
            };
            let _ = accepted.send(connection).await;
        });
    }
}

/// The addresses whose failed handshakes were logged; at most [`Refused::MAX`], then none is
/// remembered any more (and every refusal is logged at debug only).
#[derive(Default)]
struct Refused(Mutex<std::collections::HashSet<IpAddr>>);

impl Refused {
    const MAX: usize = 1024;

    /// Whether this is the first refusal of `ip` worth logging.
    fn first(&self, ip: IpAddr) -> bool {
        self.0
            .lock()
            .map(|mut seen| seen.len() < Self::MAX && seen.insert(ip))
            .unwrap_or(false)
    }
}

/// One accepted connection, handshaken: what tonic's server reads and writes.
pub(crate) struct PeerConnection {
    io: FirstBytes<Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>>,
    info: TcpConnectInfo,
    /// The client's certificate chain (or raw public key), when TLS is on.
    chain: Option<Vec<CertificateDer<'static>>>,
    /// Changes at every reload: the peer is checked again at the next read.
    credentials: watch::Receiver<Current>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl PeerConnection {
    /// After a reload: whether the new credentials still admit this connection's peer.
    fn still_admitted(&mut self) -> io::Result<()> {
        if !self.credentials.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let current = self.credentials.borrow_and_update().clone();
        let admitted = match (&current, &self.chain) {
            (None, None) => true,
            (Some(credentials), Some(chain)) => credentials.still_trusts(chain),
            _ => false,
        };
        if admitted {
            Ok(())
        } else {
            info!(
                peer = ?self.info.remote_addr,
                "raft port: closing a connection whose peer the reloaded credentials refuse"
            );
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the peer is no longer trusted",
            ))
        }
    }
}

impl Connected for PeerConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.still_admitted()?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Dials one peer for tonic: TCP, then TLS when the cluster uses it.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    transport: Arc<Transport>,
    addr: String,
    local_ip: Option<IpAddr>,
}

type ClientIo = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<ClientIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect().await.map(TokioIo::new) })
    }
}

impl Connector {
    async fn connect(self) -> io::Result<ClientIo> {
        let stream = self.tcp().await?;
        let Some(credentials) = self.transport.credentials() else {
            return Ok(Either::Left(stream));
        };
        let name = Credentials::server_name(&self.addr)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = TlsConnector::from(credentials.client.clone())
            .connect(name, stream)
            .await
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("TLS handshake with {} failed: {e}", self.addr),
                )
            })?;
        Ok(Either::Right(tls))
    }

    async fn tcp(&self) -> io::Result<TcpStream> {
        let mut last = None;
        for target in tokio::net::lookup_host(&self.addr).await? {
            match self.dial(target).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", self.addr),
            )
        }))
    }

    async fn dial(&self, target: SocketAddr) -> io::Result<TcpStream> {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // Outgoing connections start from the listen address (DESIGN 8), when it has the
        // target's family.
        if let Some(ip) = self.local_ip.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(target).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}
