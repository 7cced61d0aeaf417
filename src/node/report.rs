//! Builds this member's published record (Patroni's member key) from the local view.

use crate::config::Config;
use crate::instance::DbRole;
use crate::node::view::LocalView;
use crate::state::{ClusterState, DbState, Member, MemberStatus, ReportedRole};
use crate::types::{MemberName, UnixMillis};

pub fn member_record(
    config: &Config,
    me: &MemberName,
    cluster: &ClusterState,
    view: &LocalView,
    previous: Option<&Member>,
) -> Member {
    let status = &view.status;
    let running = view.state() == DbState::Running;
    let role = if view.witness {
        ReportedRole::Witness
    } else {
        match (running, status.role) {
            (true, Some(DbRole::Primary)) if cluster.leader_name() == Some(me) => {
                ReportedRole::Primary
            }
            (true, Some(DbRole::Primary)) => ReportedRole::Demoted,
            (true, Some(DbRole::Standby))
                if cluster.leader_name() == Some(me) && is_standby_cluster(config, cluster) =>
            {
                ReportedRole::StandbyLeader
            }
            (true, Some(DbRole::Standby)) => ReportedRole::Replica,
            // Not running: keep the last role we reported, as Patroni does.
            _ => previous.map_or(ReportedRole::Uninitialized, |p| p.status.role),
        }
    };
    let standby = running && status.role == Some(DbRole::Standby);
    let primary = running && status.role == Some(DbRole::Primary);
    let permanent = &cluster.dynamic_or(&config.bootstrap.dynamic).slots;
    let slots = if primary {
        status
            .slots
            .iter()
            .filter(|s| permanent.contains_key(&s.name))
            .filter_map(|s| Some((s.name.clone(), s.position?)))
            .collect()
    } else {
        Default::default()
    };
    Member {
        api_url: config.restapi.api_url(),
        conn_url: config
            .postgresql
            .as_ref()
            .map(|pg| format!("postgres://{}/postgres", pg.connect_address)),
        raft_addr: Some(config.raft.self_addr.clone()),
        version: crate::VERSION.to_owned(),
        tags: config.tags.clone(),
        status: MemberStatus {
            role,
            state: if view.witness {
                DbState::Running
            } else {
                view.state()
            },
            timeline: status.timeline,
            wal_position: if primary { status.wal_position } else { None },
            received_lsn: if standby { status.received_lsn } else { None },
            replayed_lsn: if standby { status.replayed_lsn } else { None },
            replication_state: standby.then(|| {
                if status.streaming {
                    "streaming".to_owned()
                } else {
                    "in archive recovery".to_owned()
                }
            }),
            sysid: status.sysid.clone().or_else(|| view.sysid.clone()),
            server_version: status.server_version,
            pending_restart: status.pending_restart,
            pending_restart_reason: status.pending_restart_reason.clone(),
            failover_ack: None,
            slots,
        },
        reported_at: UnixMillis(0),
    }
}

/// Whether the cluster is a standby cluster: `standby_cluster` in the dynamic configuration
/// (the stored one, else `bootstrap.dcs` while none is stored).
pub fn is_standby_cluster(config: &Config, cluster: &ClusterState) -> bool {
    cluster
        .dynamic_or(&config.bootstrap.dynamic)
        .standby_cluster
        .is_some()
}

/// Whether a new report is worth a Raft write: something an operator or the HA logic reads
/// changed, or the last one is older than `loop_wait` (so staleness shows).
pub fn worth_reporting(
    new: &Member,
    old: Option<&Member>,
    now: UnixMillis,
    loop_wait_ms: u64,
) -> bool {
    match old {
        None => true,
        Some(old) => {
            let mut stamped = new.clone();
            stamped.reported_at = old.reported_at;
            stamped != *old || now.0.saturating_sub(old.reported_at.0) >= loop_wait_ms
        }
    }
}
