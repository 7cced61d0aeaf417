//! The JSON documents of `GET /patroni` and `GET /cluster`, with Patroni's field names, and the
//! facts the health rules read. Built from memory only.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Inner;
use super::health::HealthFacts;
use crate::config::DynamicConfig;
use crate::instance::{DbRole, WalSender};
use crate::state::{ClusterState, DbState, Member, ParamChange, ReportedRole, Tags};
use crate::types::{Lsn, UnixMillis};

/// Everything derived per request: health facts plus the timing the liveness rule needs.
pub struct Facts {
    pub health: HealthFacts,
    pub ttl: Duration,
    pub paused: bool,
    pub maximum_lag_on_failover: u64,
    pub receive_lag: Option<u64>,
}

/// The dynamic configuration the cluster runs with (see `ClusterState::dynamic_or`).
pub(super) fn dynamic<'a>(inner: &'a Inner, cluster: &'a ClusterState) -> &'a DynamicConfig {
    cluster.dynamic_or(&inner.config.bootstrap.dynamic)
}

/// How the current leader's `sync` record lists a member (Patroni's `/sync` key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SyncRole {
    None,
    /// `synchronous_mode: on`: a synchronous standby (`sync_standby`).
    Sync,
    /// `synchronous_mode: quorum`: a quorum voter (`quorum_standby`).
    Quorum,
}

fn sync_role(cluster: &ClusterState, dynamic: &DynamicConfig, name: &str) -> SyncRole {
    let listed = cluster.leader.as_ref().is_some_and(|l| {
        cluster.sync.leader.as_ref() == Some(&l.member)
            && cluster
                .sync
                .standbys_of(l.generation)
                .is_some_and(|s| s.iter().any(|m| m.as_str() == name))
    });
    match dynamic.synchronous_mode {
        _ if !listed => SyncRole::None,
        crate::config::SynchronousMode::Off => SyncRole::None,
        // `synchronous_site_survival` runs `ANY k` whatever the mode: each listed standby
        // is a quorum voter, not sure to hold every commit (`/sync` must not send reads there).
        crate::config::SynchronousMode::On if dynamic.synchronous_site_survival => SyncRole::Quorum,
        crate::config::SynchronousMode::On => SyncRole::Sync,
        crate::config::SynchronousMode::Quorum => SyncRole::Quorum,
    }
}

/// The leader's last reported WAL position (Patroni's `/status` optime).
fn leader_position(cluster: &ClusterState) -> Option<Lsn> {
    cluster
        .leader_name()
        .and_then(|l| cluster.members.get(l))
        .and_then(|m| m.wal_position())
}

pub fn facts(inner: &Inner) -> Facts {
    let cluster = inner.raft.state();
    let view = inner.views.local.borrow().clone();
    let lease = *inner.views.lease.borrow();
    let dynamic = dynamic(inner, &cluster);
    let me = &inner.config.name;
    let holds_lease = cluster.leader.as_ref().is_some_and(|l| {
        &l.member == me && lease.valid_for(l.generation, tokio::time::Instant::now())
    });
    let leader_lsn = leader_position(&cluster);
    let lag = |lsn: Option<Lsn>| match (lsn, leader_lsn) {
        (Some(lsn), Some(leader)) => Some(lsn.lag_behind(leader)),
        (Some(_), None) => Some(0),
        _ => None,
    };
    let tags = inner.views.config.borrow().tags.clone();
    let noloadbalance = tags.noloadbalance();
    let standby_cluster = dynamic.standby_cluster.is_some();
    // The standby leader leads as a standby; a primary in a standby cluster (only when
    // standby_cluster was set under it, which the API refuses) still answers as a leader.
    let leads = view.is_running_primary() || (standby_cluster && view.is_running_standby());
    Facts {
        health: HealthFacts {
            is_leader: holds_lease && leads,
            standby_cluster,
            running: view.state() == DbState::Running,
            running_replica: view.is_running_standby(),
            noloadbalance,
            tags,
            replay_lag: lag(view.status.replayed_lsn),
            sync_standby: sync_role(&cluster, dynamic, me.as_str()) == SyncRole::Sync,
            quorum_standby: sync_role(&cluster, dynamic, me.as_str()) == SyncRole::Quorum,
        },
        ttl: dynamic.ttl,
        paused: cluster.paused(dynamic),
        maximum_lag_on_failover: dynamic.maximum_lag_on_failover,
        receive_lag: lag(view.status.received_lsn),
    }
}

/// The figures of `GET /metrics`, from memory only.
pub fn metrics_input(inner: &Inner) -> super::metrics::MetricsInput {
    let cluster = inner.raft.state();
    let view = inner.views.local.borrow().clone();
    let dynamic = dynamic(inner, &cluster);
    let raft = inner.raft.status().borrow().clone();
    let me = &inner.config.name;
    let s = &view.status;
    let running = view.state() == DbState::Running;
    let primary = running && s.role == Some(DbRole::Primary);
    let standby_leader = running
        && s.role == Some(DbRole::Standby)
        && dynamic.standby_cluster.is_some()
        && cluster.leader_name() == Some(me);
    let replica = running && s.role == Some(DbRole::Standby) && !standby_leader;
    let received = running && s.role == Some(DbRole::Standby);
    let lease_valid = cluster.leader.as_ref().is_some_and(|l| {
        &l.member == me
            && inner
                .views
                .lease
                .borrow()
                .valid_for(l.generation, tokio::time::Instant::now())
    });
    let synchronous_degraded = primary
        && dynamic.synchronous_mode != crate::config::SynchronousMode::Off
        && cluster
            .leader
            .as_ref()
            .is_some_and(|l| &l.member == me && cluster.sync.copies_of(l.generation) == 0);
    super::metrics::MetricsInput {
        scope: inner.config.scope.clone(),
        name: me.to_string(),
        site: inner.views.config.borrow().tags.site().map(str::to_owned),
        site_guarantee: site_guarantee(&cluster, dynamic)
            .filter(|_| cluster.leader_name() == Some(me)),
        version: crate::PATRONI_API_VERSION.to_owned(),
        tribune_version: crate::VERSION.to_owned(),
        state: view.state(),
        running,
        primary,
        standby_leader,
        replica,
        sync_standby: replica && sync_role(&cluster, dynamic, me.as_str()) == SyncRole::Sync,
        quorum_standby: replica && sync_role(&cluster, dynamic, me.as_str()) == SyncRole::Quorum,
        postmaster_start_epoch: s
            .postmaster_start_time
            .as_deref()
            .filter(|_| running)
            .and_then(epoch_seconds)
            .unwrap_or(0.0),
        xlog_location: if primary {
            s.wal_position.map_or(0, |l| l.0)
        } else {
            0
        },
        received_location: if received {
            s.received_lsn.map_or(0, |l| l.0)
        } else {
            0
        },
        replayed_location: if received {
            s.replayed_lsn.map_or(0, |l| l.0)
        } else {
            0
        },
        replayed_timestamp_epoch: s
            .replayed_timestamp
            .as_deref()
            .and_then(epoch_seconds)
            .unwrap_or(0.0),
        replay_paused: s.replay_paused,
        streaming: received.then_some(s.streaming),
        server_version: if running {
            s.server_version.unwrap_or(0)
        } else {
            0
        },
        cluster_unlocked: cluster.leader.is_none() || raft.leader.is_none(),
        timeline: if running {
            s.timeline.map_or(0, |t| t.0)
        } else {
            0
        },
        dcs_last_seen: UnixMillis::now().as_secs(),
        pending_restart: s.pending_restart,
        paused: cluster.paused(dynamic),
        raft_term: raft.term,
        raft_leader: raft.is_leader,
        raft_commit_index: raft.committed.unwrap_or(0),
        raft_applied_index: raft.applied.unwrap_or(0),
        raft_store_bytes: inner.raft.store_size_on_disk(),
        lease_valid,
        generation: cluster.generation.0,
        synchronous_degraded,
        counters: inner.views.counters.clone(),
        keeper: *inner.views.keeper.borrow(),
    }
}

pub use crate::timestamp::{epoch_seconds, iso_time};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PatroniInfo {
    /// The Patroni version whose API Tribune implements ([`crate::PATRONI_API_VERSION`]).
    pub version: String,
    pub scope: String,
    pub name: String,
}

/// Tribune's own field of `GET /patroni`: its version, beside the Patroni API version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TribuneInfo {
    pub version: String,
}

/// `GET /patroni`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusDocument {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub postmaster_start_time: Option<String>,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub server_version: Option<u32>,
    /// Tribune's own field, for engines whose `server_version` is not their version: openGauss
    /// reports its PostgreSQL base there (90204); this says `openGauss 6.0.2`. Absent for
    /// PostgreSQL, so its document is Patroni's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub xlog: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sync_standby: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quorum_standby: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timeline: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replication_state: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub replication: Vec<WalSender>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pause: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cluster_unlocked: Option<bool>,
    pub dcs_last_seen: u64,
    #[serde(skip_serializing_if = "Tags::is_empty", default)]
    pub tags: Tags,
    /// The pooler in front of this member (`postgresql.proxy_address`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub proxy_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database_system_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_restart: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub pending_restart_reason: BTreeMap<String, ParamChange>,
    pub patroni: PatroniInfo,
    /// Absent in a document from Patroni itself (or an earlier Tribune).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tribune: Option<TribuneInfo>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduled_restart: Option<serde_json::Value>,
}

/// A pending scheduled restart as Patroni shows it: the schedule and the filters given.
fn scheduled_restart(cluster: &ClusterState, name: &str) -> Option<serde_json::Value> {
    let (_, r) = cluster.restarts.iter().find(|(m, _)| m.as_str() == name)?;
    let at = r.schedule?;
    let mut doc = serde_json::json!({ "schedule": iso_time(at) });
    if let Some(role) = r.role {
        doc["role"] = serde_json::to_value(role).unwrap_or_default();
    }
    if let Some(v) = r.postgres_version {
        doc["postgres_version"] = serde_json::json!(format!("{}.{}", v / 10_000, v % 10_000));
    }
    if r.restart_pending {
        doc["restart_pending"] = serde_json::json!(true);
    }
    if let Some(t) = r.timeout_secs {
        doc["timeout"] = serde_json::json!(t);
    }
    Some(doc)
}

pub fn status(inner: &Inner) -> StatusDocument {
    let cluster = inner.raft.state();
    let view = inner.views.local.borrow().clone();
    let dynamic = dynamic(inner, &cluster);
    let me = &inner.config.name;
    let s = &view.status;
    let running = view.state() == DbState::Running;
    let standby_leader = dynamic.standby_cluster.is_some() && cluster.leader_name() == Some(me);
    let role = match (running, s.role) {
        (true, Some(DbRole::Primary)) => "primary".to_owned(),
        (true, Some(DbRole::Standby)) if standby_leader => "standby_leader".to_owned(),
        (true, Some(DbRole::Standby)) => "replica".to_owned(),
        _ => cluster
            .members
            .get(me)
            .map_or(ReportedRole::Uninitialized, |m| m.status.role)
            .as_str()
            .to_owned(),
    };
    let xlog = running.then(|| match s.role {
        Some(DbRole::Primary) => {
            serde_json::json!({ "location": s.wal_position.map_or(0, |l| l.0) })
        }
        _ => serde_json::json!({
            "received_location": s.received_lsn.or(s.replayed_lsn).map_or(0, |l| l.0),
            "replayed_location": s.replayed_lsn.map_or(0, |l| l.0),
            "replayed_timestamp": s.replayed_timestamp,
            "paused": s.replay_paused,
        }),
    });
    let has_leader = inner.raft.status().borrow().leader.is_some();
    StatusDocument {
        state: view.state().as_str().to_owned(),
        postmaster_start_time: running.then(|| s.postmaster_start_time.clone()).flatten(),
        role,
        server_version: running.then_some(s.server_version).flatten(),
        engine: running.then(|| s.engine_version.clone()).flatten(),
        xlog,
        sync_standby: (s.role == Some(DbRole::Standby)
            && sync_role(&cluster, dynamic, me.as_str()) == SyncRole::Sync)
            .then_some(true),
        quorum_standby: (s.role == Some(DbRole::Standby)
            && sync_role(&cluster, dynamic, me.as_str()) == SyncRole::Quorum)
            .then_some(true),
        timeline: running.then(|| s.timeline.map(|t| t.0)).flatten(),
        replication_state: (running && s.role == Some(DbRole::Standby)).then(|| {
            if s.streaming {
                "streaming"
            } else {
                "in archive recovery"
            }
            .to_owned()
        }),
        replication: if running {
            s.replication.clone()
        } else {
            Vec::new()
        },
        pause: cluster.paused(dynamic).then_some(true),
        cluster_unlocked: (cluster.leader.is_none() || !has_leader).then_some(true),
        dcs_last_seen: UnixMillis::now().as_secs(),
        tags: inner.views.config.borrow().tags.clone(),
        proxy_url: inner
            .views
            .config
            .borrow()
            .postgresql
            .as_ref()
            .and_then(|pg| pg.proxy_address.as_ref())
            .map(|proxy| format!("postgres://{proxy}/postgres")),
        database_system_identifier: s
            .sysid
            .clone()
            .or_else(|| view.sysid.clone())
            .or_else(|| cluster.sysid().map(str::to_owned)),
        pending_restart: s.pending_restart.then_some(true),
        pending_restart_reason: s.pending_restart_reason.clone(),
        scheduled_restart: scheduled_restart(&cluster, me.as_str()),
        patroni: PatroniInfo {
            version: crate::PATRONI_API_VERSION.to_owned(),
            scope: inner.config.scope.clone(),
            name: me.to_string(),
        },
        tribune: Some(TribuneInfo {
            version: crate::VERSION.to_owned(),
        }),
    }
}

/// One member of `GET /cluster`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterMember {
    pub name: String,
    pub role: String,
    pub state: String,
    pub api_url: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timeline: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_restart: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub pending_restart_reason: BTreeMap<String, ParamChange>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduled_restart: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Tags::is_empty", default)]
    pub tags: Tags,
    /// The pooler in front of this member (`postgresql.proxy_address`), from its record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub proxy_url: Option<String>,
    /// Tribune addition: the member this standby streams from (the leader, or the member it
    /// cascades from); absent when it does not stream.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub receive_lag: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub receive_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replay_lag: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub replay_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lag: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lsn: Option<String>,
}

/// `GET /cluster`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterDocument {
    pub members: Vec<ClusterMember>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pause: Option<bool>,
    /// `{"at", "from", "to"}` while a scheduled switchover waits.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheduled_switchover: Option<serde_json::Value>,
    pub scope: String,
    /// Tribune addition: the system identifier, so `tribunectl list` needs one request.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database_system_identifier: Option<String>,
    /// Tribune addition: the major-version upgrade in progress (the cluster is paused for it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upgrade: Option<UpgradeDocument>,
    /// Tribune addition: how the last upgrade ended.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_upgrade: Option<UpgradeOutcomeDocument>,
    /// Tribune addition, with `synchronous_site_survival` on: whether every acknowledged
    /// commit of the current primary is also outside its site (false: degraded or blocked).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub site_guarantee: Option<bool>,
    /// Tribune addition: the Raft voters' layout warnings (`ha::placement`), e.g. a site whose
    /// loss stops failover.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub placement: Vec<String>,
}

/// The upgrade in progress, as `GET /cluster` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeDocument {
    pub id: u64,
    pub bin_dir: String,
    pub primary: String,
    /// `checking`, `stopping`, `upgrading`, `starting`, `rebuilding` or `rolling back`.
    pub phase: String,
    /// When the phase began (ISO 8601).
    pub since: String,
    /// Whether a failure now rolls back to the old version (before the point of no return).
    pub rollback_possible: bool,
    /// The new version, once every member's checks passed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// Why it rolls back.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Each member's check: `passed (18.6)` or the reason it failed; absent until reported.
    #[serde(default)]
    pub checks: BTreeMap<String, String>,
}

/// How the last upgrade ended, as `GET /cluster` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpgradeOutcomeDocument {
    pub id: u64,
    pub bin_dir: String,
    /// When it ended (ISO 8601).
    pub at: String,
    /// `upgraded`, `rolled_back` or `refused`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

fn upgrade_document(upgrade: &crate::state::Upgrade) -> UpgradeDocument {
    use crate::state::{UpgradeCheck, UpgradePhase};
    UpgradeDocument {
        id: upgrade.id.0,
        bin_dir: upgrade.bin_dir.display().to_string(),
        primary: upgrade.primary.to_string(),
        phase: upgrade.phase.name().to_owned(),
        since: iso_time(upgrade.phase_since),
        rollback_possible: upgrade.phase.before_point_of_no_return(),
        version: upgrade
            .verdict()
            .and_then(Result::ok)
            .and_then(|()| upgrade.target())
            .map(|(_, v)| v.to_owned()),
        reason: match &upgrade.phase {
            UpgradePhase::RollingBack { reason } => Some(reason.clone()),
            _ => None,
        },
        checks: upgrade
            .checks
            .iter()
            .map(|(name, check)| {
                let text = match check {
                    UpgradeCheck::Passed { version, .. } => format!("passed ({version})"),
                    UpgradeCheck::Failed { reason } => format!("failed: {reason}"),
                };
                (name.to_string(), text)
            })
            .collect(),
    }
}

fn upgrade_outcome_document(outcome: &crate::state::UpgradeOutcome) -> UpgradeOutcomeDocument {
    use crate::state::UpgradeResult;
    let (result, version, reason) = match &outcome.result {
        UpgradeResult::Upgraded { version } => ("upgraded", Some(version.clone()), None),
        UpgradeResult::RolledBack { reason } => ("rolled_back", None, Some(reason.clone())),
        UpgradeResult::Refused { reason } => ("refused", None, Some(reason.clone())),
    };
    UpgradeOutcomeDocument {
        id: outcome.id.0,
        bin_dir: outcome.bin_dir.display().to_string(),
        at: iso_time(outcome.at),
        result: result.to_owned(),
        version,
        reason,
    }
}

fn cluster_member(
    cluster: &ClusterState,
    dynamic: &DynamicConfig,
    name: &str,
    m: &Member,
) -> ClusterMember {
    let is_leader = cluster.leader_name().is_some_and(|l| l.as_str() == name);
    let (host, port) = m
        .host_port()
        .map_or((None, None), |(h, p)| (Some(h), Some(p)));
    let standby_leader = is_leader && dynamic.standby_cluster.is_some();
    // A standby leader shows its replication state, as the replicas do.
    let state = if is_leader && !standby_leader {
        m.status.state.as_str().to_owned()
    } else {
        m.status
            .replication_state
            .clone()
            .unwrap_or_else(|| m.status.state.as_str().to_owned())
    };
    let mut out = ClusterMember {
        name: name.to_owned(),
        role: if standby_leader {
            "standby_leader"
        } else if is_leader {
            "leader"
        } else {
            match sync_role(cluster, dynamic, name) {
                SyncRole::Sync => "sync_standby",
                SyncRole::Quorum => "quorum_standby",
                SyncRole::None => "replica",
            }
        }
        .to_owned(),
        state,
        api_url: m.api_url.clone(),
        host,
        port,
        timeline: m.status.timeline.map(|t| t.0),
        pending_restart: m.status.pending_restart.then_some(true),
        pending_restart_reason: m.status.pending_restart_reason.clone(),
        scheduled_restart: scheduled_restart(cluster, name),
        tags: m.tags.clone(),
        proxy_url: m.proxy_url.clone(),
        upstream: m.status.upstream.as_ref().map(|u| u.as_str().to_owned()),
        ..Default::default()
    };
    if m.status.role == ReportedRole::Witness {
        out.role = "witness".to_owned();
    }
    if !is_leader && m.status.role != ReportedRole::Witness {
        let optime = leader_position(cluster);
        let lag = |lsn: Option<Lsn>| match (lsn, optime) {
            (Some(l), Some(o)) => serde_json::json!(l.lag_behind(o)),
            (Some(_), None) => serde_json::json!(0),
            _ => serde_json::json!("unknown"),
        };
        let text = |lsn: Option<Lsn>| Some(lsn.map_or("unknown".to_owned(), |l| l.to_string()));
        out.receive_lag = Some(lag(m.status.received_lsn));
        out.receive_lsn = text(m.status.received_lsn);
        out.replay_lag = Some(lag(m.status.replayed_lsn));
        out.replay_lsn = text(m.status.replayed_lsn);
        out.lag = Some(lag(m.wal_position()));
        out.lsn = text(m.wal_position());
    }
    out
}

pub fn cluster(inner: &Inner) -> ClusterDocument {
    let cluster = inner.raft.state();
    let dynamic = dynamic(inner, &cluster);
    ClusterDocument {
        members: cluster
            .members
            .iter()
            .map(|(name, m)| cluster_member(&cluster, dynamic, name.as_str(), m))
            .collect(),
        pause: cluster.paused(dynamic).then_some(true),
        scheduled_switchover: cluster.switchover.as_ref().and_then(|r| {
            let at = r.scheduled_at?;
            let mut doc = serde_json::json!({"at": iso_time(at), "from": r.leader.as_str()});
            if let Some(to) = &r.candidate {
                doc["to"] = serde_json::json!(to.as_str());
            }
            Some(doc)
        }),
        scope: inner.config.scope.clone(),
        database_system_identifier: cluster.sysid().map(str::to_owned),
        upgrade: cluster.upgrade.as_ref().map(upgrade_document),
        last_upgrade: cluster.last_upgrade.as_ref().map(upgrade_outcome_document),
        site_guarantee: site_guarantee(&cluster, dynamic),
        placement: crate::ha::placement::advice(&crate::ha::placement::voters_with_sites(
            &inner.raft.status().borrow().voters,
            &cluster,
        )),
    }
}

/// With `synchronous_site_survival` on and a primary (not in a standby cluster, where nobody
/// writes locally): whether its `sync` record holds the site guarantee.
pub fn site_guarantee(cluster: &ClusterState, dynamic: &DynamicConfig) -> Option<bool> {
    if !dynamic.synchronous_site_survival
        || dynamic.synchronous_mode == crate::config::SynchronousMode::Off
        || dynamic.standby_cluster.is_some()
    {
        return None;
    }
    let leader = cluster.leader.as_ref()?;
    Some(
        cluster.sync.generation == leader.generation
            && cluster.sync.leader.as_ref() == Some(&leader.member)
            && cluster.sync.site_guarantee,
    )
}

#[cfg(test)]
mod site_tests {
    use super::*;
    use crate::state::{Leader, SyncRecord};
    use crate::types::{Generation, UnixMillis};

    /// With `synchronous_site_survival` the primary runs `ANY k` even in mode `on`: its listed
    /// standbys are quorum voters (`/quorum`), not synchronous ones (`/sync`), and `/cluster`
    /// says whether the record holds the site guarantee.
    #[test]
    fn site_survival_lists_quorum_voters_and_the_guarantee() {
        let mut cluster = ClusterState {
            leader: Some(Leader {
                member: "a".into(),
                generation: Generation(2),
                renewals: 0,
                since: UnixMillis(0),
                renewed_at: UnixMillis(0),
                lease_ms: None,
            }),
            ..Default::default()
        };
        cluster.sync = SyncRecord {
            generation: Generation(2),
            leader: Some("a".into()),
            standbys: ["b".into(), "c".into()].into(),
            quorum: 1,
            site_guarantee: true,
        };
        let mut dynamic = DynamicConfig::default();
        assert_eq!(sync_role(&cluster, &dynamic, "b"), SyncRole::Sync);
        assert_eq!(site_guarantee(&cluster, &dynamic), None);
        dynamic.synchronous_site_survival = true;
        assert_eq!(sync_role(&cluster, &dynamic, "b"), SyncRole::Quorum);
        assert_eq!(site_guarantee(&cluster, &dynamic), Some(true));
        cluster.sync.site_guarantee = false;
        assert_eq!(site_guarantee(&cluster, &dynamic), Some(false));
        cluster.sync.generation = Generation(1);
        cluster.sync.site_guarantee = true;
        assert_eq!(
            site_guarantee(&cluster, &dynamic),
            Some(false),
            "an older record"
        );
    }
}
