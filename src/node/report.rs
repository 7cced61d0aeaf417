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
        proxy_url: config
            .postgresql
            .as_ref()
            .and_then(|pg| pg.proxy_address.as_ref())
            .map(|proxy| format!("postgres://{proxy}/postgres")),
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
            upstream: standby
                .then(|| streams_from(cluster, status.upstream.as_deref()?))
                .flatten(),
            slots,
        },
        reported_at: UnixMillis(0),
    }
}

/// The member whose database listens at `address` (`host:port`, as the WAL receiver reports
/// its sender).
fn streams_from(cluster: &ClusterState, address: &str) -> Option<MemberName> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_matches(['[', ']']);
    cluster
        .members
        .iter()
        .find(|(_, m)| m.host_port().is_some_and(|(h, p)| h == host && p == port))
        .map(|(name, _)| name.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_is_the_member_at_the_senders_address() {
        let mut cluster = ClusterState::default();
        for (name, url) in [
            ("a", "postgres://10.0.0.1:5432/postgres"),
            ("b", "postgres://10.0.0.2:5432/postgres"),
            ("c", "postgres://[::1]:5433/postgres"),
        ] {
            let mut m = Member::at_raft_addr("x:1", crate::state::ReportedRole::Replica);
            m.conn_url = Some(url.into());
            cluster.members.insert(MemberName::from(name), m);
        }
        let found = |address| streams_from(&cluster, address).map(|n| n.to_string());
        assert_eq!(found("10.0.0.2:5432").as_deref(), Some("b"));
        assert_eq!(found("[::1]:5433").as_deref(), Some("c"));
        assert_eq!(found("10.0.0.2:5433"), None, "another port");
        assert_eq!(found("nowhere"), None);
    }
}
