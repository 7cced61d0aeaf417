//! Reloading the local configuration (`POST /reload`, SIGHUP), as Patroni's reload: read the
//! file again, and if it is valid publish what can change while the agent runs (`tags`,
//! `postgresql.parameters`, `postgresql.pg_hba`; see `Config::reload_from`). The HA loop then
//! reports the tags and gives the database its new configuration; keys that need a restart of
//! the agent are named in the log and keep their running values. An invalid file changes
//! nothing. The Raft peers' certificates, keys and CA bundle (or `raft.password`) are read
//! again at every reload, changed paths or not (a renewed certificate replaces the file);
//! unusable ones leave the running credentials in place.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::raft::{PeerAuth, RaftNode};

pub async fn run(
    config: watch::Sender<Arc<Config>>,
    raft: RaftNode,
    bell: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(err) => {
            warn!(error = %err, "cannot listen for SIGHUP; reload through POST /reload only");
            None
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = bell.notified() => {}
            Some(()) = async {
                match hangups.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        reload(&config, &raft).await;
    }
}

async fn reload(config: &watch::Sender<Arc<Config>>, raft: &RaftNode) {
    let running = config.borrow().clone();
    let reloaded = match Config::load(running.source.as_deref()) {
        Ok(c) => c,
        Err(err) => {
            warn!(error = %err, "the configuration was not reloaded: it is invalid");
            return;
        }
    };
    let (mut live, needs_restart) = running.reload_from(&reloaded);
    match raft
        .reload_peer_auth(PeerAuth::from_config(&reloaded.raft))
        .await
    {
        Ok(()) => info!("reloaded the Raft peers' credentials"),
        Err(err) => {
            warn!(error = %err, "the Raft peers' credentials were not reloaded; the running ones stay");
            live.raft.take_credentials_from(&running.raft);
        }
    }
    if !needs_restart.is_empty() {
        warn!(
            keys = %needs_restart.join(", "),
            "changed in the configuration file; they take effect when the agent restarts"
        );
    }
    if live == *running {
        info!("reloaded the configuration: no changes to apply");
    } else {
        info!("reloaded the configuration: applying the changes");
        config.send_replace(Arc::new(live));
    }
}
