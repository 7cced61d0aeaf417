//! The executor's part of a major-version upgrade (the decisions are `ha::upgrade`): each
//! member's checks, the primary's wait for its standbys after its clean stop, and the
//! pg_upgrade run that ends in the point of no return or in a rollback. Every failure before
//! that point gives the upgrade up (`AbandonUpgrade`), so it rolls back rather than stalls.

use std::time::Duration;

use tracing::{debug, info, warn};

use super::{Effect, Executor, Fault, upstream};
use crate::instance::{ClusterStateOnDisk, DataDir, UpgradeRole, UpgradeTarget};
use crate::state::{ClusterState, Command, UpgradeCheck};
use crate::types::{Generation, UnixMillis};

/// How long the stopped primary waits for every standby to replay its last record.
const CATCH_UP: Duration = Duration::from_secs(30);
const CATCH_UP_POLL: Duration = Duration::from_millis(20);

/// The upgrade `id` as the instance needs it, if it is still the one in progress.
pub(super) fn target(cluster: &ClusterState, id: UnixMillis) -> Result<UpgradeTarget, Fault> {
    match &cluster.upgrade {
        Some(u) if u.id == id => Ok(UpgradeTarget {
            id,
            bin_dir: u.bin_dir.clone(),
        }),
        _ => Err(Fault::failed(format!(
            "upgrade {} is no longer in progress",
            id.0
        ))),
    }
}

impl Executor {
    /// Tell the instance about the cluster's upgraded programs when they changed, and say
    /// once when the configuration file still names others.
    pub async fn sync_binaries(&mut self, cluster: &ClusterState) {
        let Some(instance) = self.h.instance.clone() else {
            return;
        };
        if self.binaries_for.as_ref() == Some(&cluster.binaries) {
            return;
        }
        instance.use_binaries(cluster.binaries.as_ref());
        if let Some(b) = &cluster.binaries {
            let configured = self
                .local_config()
                .postgresql
                .as_ref()
                .and_then(|pg| pg.bin_dir.clone());
            if configured.as_ref() != Some(&b.bin_dir) {
                warn!(
                    bin_dir = %b.bin_dir.display(),
                    configured = ?configured,
                    "the cluster runs PostgreSQL {} since its upgrade: its data directory is run \
                     with the programs in {}; postgresql.bin_dir in the configuration file still \
                     names others (update it)",
                    b.version,
                    b.bin_dir.display()
                );
            }
        }
        self.binaries_for = Some(cluster.binaries.clone());
    }

    /// Give the upgrade up before its point of no return: it rolls back. Returns the failure
    /// to report for the action.
    async fn abandon(&self, id: UnixMillis, reason: String) -> Fault {
        warn!(reason = %reason, "giving the upgrade up: it rolls back");
        let outcome = self
            .propose(Command::AbandonUpgrade {
                id,
                reason: reason.clone(),
            })
            .await;
        match outcome {
            Ok(_) => Fault::failed(reason),
            Err(fault) => fault.context(format!("giving the upgrade up ({reason})")),
        }
    }

    pub(super) async fn check_upgrade(&self, cluster: &ClusterState, id: UnixMillis) -> Effect {
        let target = target(cluster, id)?;
        let role = match &cluster.upgrade {
            Some(u) if u.primary == self.h.me => UpgradeRole::Primary,
            _ => UpgradeRole::Standby,
        };
        let check = match self.instance()?.check_upgrade(&target, role).await {
            Ok(facts) => {
                info!(version = %facts.version, "this member can be upgraded");
                UpgradeCheck::Passed {
                    version: facts.version,
                    major: facts.major,
                    from_major: facts.from_major,
                }
            }
            Err(err) => {
                warn!(error = %err, "this member cannot be upgraded");
                UpgradeCheck::Failed {
                    reason: err.to_string(),
                }
            }
        };
        self.propose(Command::ReportUpgradeCheck {
            member: self.h.me.clone(),
            id,
            check,
        })
        .await
    }

    /// The primary, stopped cleanly: every standby of the upgrade must replay past its
    /// shutdown checkpoint, so each holds the whole old cluster (the way back until the new
    /// version first starts).
    pub(super) async fn await_upgrade_standbys(
        &self,
        cluster: &ClusterState,
        id: UnixMillis,
        generation: Generation,
    ) -> Effect {
        self.require_lease()?;
        let instance = self.instance()?;
        let last = match instance.data_dir().await? {
            DataDir::Initialized(cd) if cd.cluster_state == ClusterStateOnDisk::ShutDown => {
                cd.checkpoint
            }
            _ => None,
        };
        let Some(last) = last else {
            return Err(self
                .abandon(id, "the primary did not shut down cleanly".into())
                .await);
        };
        let upgrade = cluster
            .upgrade
            .as_ref()
            .filter(|u| u.id == id)
            .ok_or_else(|| Fault::failed("the upgrade is no longer in progress"))?;
        let standbys = upgrade
            .members
            .iter()
            .filter(|m| **m != self.h.me)
            .map(|m| upstream(cluster, m))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = self.h.clock.now() + CATCH_UP;
        let mut behind = standbys.clone();
        loop {
            let mut still = Vec::new();
            for standby in behind {
                match instance.peer_replayed_lsn(&standby).await {
                    Ok(Some(replayed)) if replayed > last => {}
                    Ok(_) => still.push(standby),
                    Err(err) => {
                        debug!(error = %err, member = %standby.member, "reading a standby's position");
                        still.push(standby);
                    }
                }
            }
            behind = still;
            if behind.is_empty() {
                break;
            }
            if self.h.clock.now() >= deadline {
                let names: Vec<String> = behind.iter().map(|s| s.member.to_string()).collect();
                return Err(self
                    .abandon(
                        id,
                        format!(
                            "{} did not replay the primary's last record ({last}) within {}s",
                            names.join(", "),
                            CATCH_UP.as_secs()
                        ),
                    )
                    .await);
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
        info!(%last, "every standby replayed the primary's last record; upgrading");
        self.propose(Command::UpgradeStopped {
            member: self.h.me.clone(),
            generation,
            id,
        })
        .await
    }

    /// pg_upgrade on the stopped primary, then the point of no return (`CommitUpgrade`), or
    /// the rollback when it failed.
    pub(super) async fn run_upgrade(
        &self,
        cluster: &ClusterState,
        id: UnixMillis,
        generation: Generation,
    ) -> Effect {
        self.require_lease()?;
        let target = target(cluster, id)?;
        match self.instance()?.upgrade(&target).await {
            Ok(sysid) => {
                info!(%sysid, "pg_upgrade succeeded; committing the upgrade (no way back from here)");
                self.propose(Command::CommitUpgrade {
                    member: self.h.me.clone(),
                    generation,
                    id,
                    sysid,
                })
                .await
            }
            Err(err) => Err(self.abandon(id, format!("pg_upgrade failed: {err}")).await),
        }
    }
}
