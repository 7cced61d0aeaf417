//! The process-wide signal that this process's REST API serves: [`serve`](super::serve)
//! announces its bound address as it starts answering, and the agent's `main` waits for it to
//! tell systemd `READY=1` (`Type=notify`), so that `systemctl start` returns when HAProxy's
//! checks and `tribunectl` can be answered.
//!
//! Must not: be used to decide anything inside the agent (it says only that a server started).

use std::net::SocketAddr;
use std::sync::LazyLock;

use tokio::sync::watch;

static SERVING: LazyLock<watch::Sender<Option<SocketAddr>>> =
    LazyLock::new(|| watch::Sender::new(None));

/// A REST server of this process accepts connections on `addr` from now on.
pub(super) fn announce(addr: SocketAddr) {
    SERVING.send_replace(Some(addr));
}

/// Resolves with the address once a REST server of this process serves (at once if one
/// already does).
pub async fn serving() -> SocketAddr {
    let mut rx = SERVING.subscribe();
    loop {
        if let Some(addr) = *rx.borrow_and_update() {
            return addr;
        }
        // The sender lives in a static: it is never dropped.
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Other tests of this binary start REST servers too, so this checks that waiters are
    /// woken, not which address they get.
    #[tokio::test]
    async fn waiters_are_answered_whenever_they_ask() {
        let limit = std::time::Duration::from_secs(5);
        let early = tokio::spawn(tokio::time::timeout(limit, serving()));
        tokio::task::yield_now().await;
        announce("127.0.0.1:8008".parse().unwrap());
        assert!(early.await.unwrap().is_ok(), "a waiter is woken");
        assert!(
            tokio::time::timeout(limit, serving()).await.is_ok(),
            "a late waiter is answered at once"
        );
    }
}
