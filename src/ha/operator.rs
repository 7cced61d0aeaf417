//! Operators' requests, as steps of `decide`: a planned switchover on the primary, a restart
//! of this member's database, a reinitialisation of this standby. The requests live in the
//! replicated state (`state::requests`); this module says when each is due and what to do.
//!
//! Switchover (DESIGN section 5, planned): checkpoint, stop the primary cleanly, wait until the
//! target has replayed everything up to the shutdown checkpoint, then hand the lease over in one
//! committed command. No acknowledged commit can be lost, whatever the target's synchronous
//! state, because the old primary wrote nothing the target has not replayed.

use std::cmp::Reverse;
use std::time::Duration;

use super::{Action, Decision, Observation, StreamFrom};
use crate::instance::{DbRole, StopMode};
use crate::state::{
    ClusterState, DbState, ReportedRole, RestartRequest, RestartRole, SwitchoverRequest,
};
use crate::types::{Generation, MemberName, Timeline, UnixMillis};

/// The pending switchover this primary must carry out now, if any.
pub fn switchover(o: &Observation<'_>, generation: Generation) -> Option<Decision> {
    let request = o.cluster.switchover.as_ref()?;
    if &request.leader != o.me {
        return None;
    }
    if request.scheduled_at.is_some_and(|at| at > o.wall_now) {
        return None;
    }
    match switchover_target(
        o.cluster,
        o.me,
        request,
        o.wall_now,
        o.settings.ttl,
        o.db.timeline,
    ) {
        Ok(to) => Some(Decision::act(
            vec![
                Action::Checkpoint,
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::HandOver {
                    generation,
                    to: to.clone(),
                },
            ],
            format!("switching over to {to}: stopping the primary cleanly"),
        )),
        Err(why) => Some(Decision::act(
            vec![Action::CancelSwitchover],
            format!("giving the switchover up: {why}"),
        )),
    }
}

/// The pending switchover the standby leader of a standby cluster must carry out now: stop,
/// and pass the lease at once (nothing was written here that the target could lack: every
/// member replicates the remote, and the target streams from it directly once it leads).
pub fn standby_leader_switchover(o: &Observation<'_>, generation: Generation) -> Option<Decision> {
    let request = o.cluster.switchover.as_ref()?;
    if &request.leader != o.me || request.scheduled_at.is_some_and(|at| at > o.wall_now) {
        return None;
    }
    // Every member replays the remote's timeline: no timeline of this cluster to match.
    match switchover_target(o.cluster, o.me, request, o.wall_now, o.settings.ttl, None) {
        Ok(to) => Some(Decision::act(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::PassLease {
                    generation,
                    to: to.clone(),
                },
            ],
            format!("switching over to {to}: stopping the standby leader and passing the lease"),
        )),
        Err(why) => Some(Decision::act(
            vec![Action::CancelSwitchover],
            format!("giving the switchover up: {why}"),
        )),
    }
}

/// The member to hand over to: the named candidate if it is a healthy standby, otherwise the
/// best healthy standby (a synchronous one first, then the most advanced, then
/// `failover_priority`, then name). With the primary's `timeline`, a healthy standby reports
/// that timeline: positions on another one do not compare (a standby still on the timeline
/// the primary forked from, waiting to be rewound, was handed the lease because its position
/// there was higher; found by the simulation, seed 1002268).
pub fn switchover_target(
    cluster: &ClusterState,
    me: &MemberName,
    request: &SwitchoverRequest,
    wall_now: UnixMillis,
    ttl: Duration,
    timeline: Option<Timeline>,
) -> Result<MemberName, String> {
    let fresh_ms = 2 * ttl.as_millis() as u64;
    let healthy = |name: &MemberName| -> Result<(), String> {
        let m = cluster
            .members
            .get(name)
            .ok_or_else(|| format!("{name} is not a member"))?;
        if m.conn_url.is_none() || m.nofailover() {
            return Err(format!(
                "{name} may not be promoted (nofailover or no database)"
            ));
        }
        if m.status.role != ReportedRole::Replica || m.status.state != DbState::Running {
            return Err(format!("{name} is not a running standby"));
        }
        if wall_now.0.saturating_sub(m.reported_at.0) > fresh_ms {
            return Err(format!("{name} has not reported for {}s", fresh_ms / 1000));
        }
        if let Some(primary) = timeline
            && m.status.timeline != Some(primary)
        {
            let theirs = m
                .status
                .timeline
                .map_or_else(|| "none".to_owned(), |t| t.to_string());
            return Err(format!(
                "{name} is not on the primary's timeline {primary} (it reports {theirs})"
            ));
        }
        Ok(())
    };
    if let Some(candidate) = &request.candidate {
        healthy(candidate)?;
        return Ok(candidate.clone());
    }
    let sync = cluster
        .leader
        .as_ref()
        .and_then(|l| cluster.sync.standbys_of(l.generation));
    cluster
        .members
        .iter()
        .filter(|(name, _)| *name != me && healthy(name).is_ok())
        .max_by_key(|(name, m)| {
            (
                sync.is_some_and(|s| s.contains(*name)),
                m.status.replayed_lsn.or(m.status.received_lsn),
                m.failover_priority(),
                Reverse(*name),
            )
        })
        .map(|(name, _)| name.clone())
        .ok_or_else(|| "no good candidates have been found".to_owned())
}

/// A restart request for this member that is due: restart, or drop it when its conditions do
/// not hold. `upstream` is whom a standby streams from after the restart.
pub fn restart(
    o: &Observation<'_>,
    role: RestartRole,
    upstream: Option<StreamFrom>,
) -> Option<Decision> {
    let request = o.cluster.restarts.get(o.me)?;
    if request.schedule.is_some_and(|at| at > o.wall_now) {
        return None;
    }
    let requested_at = request.requested_at;
    if let Err(why) = restart_conditions(request, role, o) {
        return Some(Decision::act(
            vec![Action::SkipRestart { requested_at }],
            format!("not restarting: {why}"),
        ));
    }
    Some(Decision::act(
        vec![Action::Restart {
            requested_at,
            upstream,
            timeout: request.timeout_secs.map(Duration::from_secs),
        }],
        "restarting postgres as requested".to_owned(),
    ))
}

fn restart_conditions(
    request: &RestartRequest,
    role: RestartRole,
    o: &Observation<'_>,
) -> Result<(), String> {
    if request.role.is_some_and(|wanted| wanted != role) {
        let wanted = match request.role.unwrap_or(role) {
            RestartRole::Primary => "primary",
            RestartRole::Replica => "replica",
            RestartRole::StandbyLeader => "standby_leader",
        };
        return Err(format!("the role is not {wanted}"));
    }
    let running = o.db.state == DbState::Running;
    if let Some(wanted) = request.postgres_version
        && !(running && o.db.server_version.is_some_and(|v| v < wanted))
    {
        return Err(format!("the running version is not older than {wanted}"));
    }
    if request.restart_pending && !(running && o.db.pending_restart) {
        return Err("no restart is pending".into());
    }
    Ok(())
}

/// The role a restart request's `role` filter compares with: the lease holder of a standby
/// cluster running as a standby is its `standby_leader`.
pub fn restart_role(o: &Observation<'_>, leader: bool) -> RestartRole {
    let standby_cluster = o.settings.standby_cluster.is_some();
    match (leader, o.db.role) {
        (true, Some(DbRole::Standby) | None) if standby_cluster => RestartRole::StandbyLeader,
        (true, Some(DbRole::Primary)) | (true, None) => RestartRole::Primary,
        _ => RestartRole::Replica,
    }
}

/// A reinitialisation asked of this standby: stop, set the data aside; the follower path then
/// clones it afresh from the leader.
pub fn reinitialize(o: &Observation<'_>) -> Option<Decision> {
    let request = o.cluster.reinitializations.get(o.me)?;
    let mut actions = Vec::new();
    if o.db.state != DbState::Stopped {
        actions.push(Action::Stop {
            mode: StopMode::Immediate,
        });
    }
    actions.push(Action::SetAsideDataDir);
    actions.push(Action::FinishReinit {
        from_leader: request.from_leader,
    });
    Some(Decision::act(
        actions,
        "reinitializing: setting the data directory aside for a fresh copy",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Leader, Member, MemberStatus, SyncRecord};
    use crate::types::Lsn;

    const TTL: Duration = Duration::from_secs(3);
    const NOW: UnixMillis = UnixMillis(100_000);

    fn n(s: &str) -> MemberName {
        MemberName::from(s)
    }

    /// Members as (name, role, replayed LSN, reported at, tags).
    fn cluster(rows: &[(&str, ReportedRole, u64, u64, serde_json::Value)]) -> ClusterState {
        let mut c = ClusterState {
            leader: Some(Leader {
                member: n("a"),
                generation: Generation(3),
                renewals: 1,
                since: UnixMillis(0),
                renewed_at: UnixMillis(0),
                lease_ms: None,
            }),
            ..Default::default()
        };
        for (name, role, lsn, at, tags) in rows {
            c.members.insert(
                n(name),
                Member {
                    api_url: String::new(),
                    conn_url: Some("postgres://h:1/postgres".into()),
                    raft_addr: None,
                    version: String::new(),
                    tags: serde_json::from_value(tags.clone()).unwrap(),
                    proxy_url: None,
                    status: MemberStatus {
                        role: *role,
                        state: DbState::Running,
                        replayed_lsn: Some(Lsn(*lsn)),
                        timeline: Some(TL),
                        ..Default::default()
                    },
                    reported_at: UnixMillis(*at),
                },
            );
        }
        c
    }

    const TL: Timeline = Timeline(2);

    fn request(candidate: Option<&str>) -> SwitchoverRequest {
        SwitchoverRequest {
            leader: n("a"),
            candidate: candidate.map(n),
            scheduled_at: None,
            requested_at: NOW,
        }
    }

    #[test]
    fn switchover_targets() {
        use ReportedRole::{Primary, Replica};
        let none = serde_json::json!({});
        let nofailover = serde_json::json!({"nofailover": true});
        let base = [
            ("a", Primary, 100, NOW.0, none.clone()),
            ("b", Replica, 90, NOW.0, none.clone()),
            ("c", Replica, 95, NOW.0, none.clone()),
            ("d", Replica, 99, NOW.0, nofailover.clone()),
            ("e", Replica, 99, 1_000, none.clone()),
        ];
        let c = cluster(&base);
        let target = |c: &ClusterState, candidate| {
            switchover_target(c, &n("a"), &request(candidate), NOW, TTL, Some(TL))
        };
        assert_eq!(
            target(&c, None),
            Ok(n("c")),
            "the most advanced healthy standby"
        );
        assert_eq!(target(&c, Some("b")), Ok(n("b")), "the named candidate");
        for (candidate, why) in [
            ("d", "may not be promoted"),
            ("e", "has not reported"),
            ("a", "not a running standby"),
            ("zz", "not a member"),
        ] {
            let err = target(&c, Some(candidate)).unwrap_err();
            assert!(err.contains(why), "{candidate}: {err}");
        }
        // A synchronous standby goes first, even if another is further ahead.
        let mut sync = c.clone();
        sync.sync = SyncRecord {
            generation: Generation(3),
            leader: Some(n("a")),
            standbys: [n("b")].into(),
            quorum: 0,
            site_guarantee: false,
        };
        assert_eq!(target(&sync, None), Ok(n("b")));
        // A standby still on the timeline the primary forked from (waiting to be rewound) is
        // no candidate, however far it replayed there.
        let mut behind = c.clone();
        for name in ["b", "c"] {
            behind.members.get_mut(&n(name)).unwrap().status.timeline = Some(Timeline(1));
        }
        let err = target(&behind, Some("c")).unwrap_err();
        assert!(
            err.contains("c is not on the primary's timeline 2 (it reports 1)"),
            "{err}"
        );
        assert_eq!(
            target(&behind, None),
            Err("no good candidates have been found".to_owned())
        );
        assert_eq!(
            switchover_target(&behind, &n("a"), &request(None), NOW, TTL, None),
            Ok(n("c")),
            "without the primary's timeline (a standby cluster) positions alone decide"
        );
        let alone = cluster(&[("a", Primary, 100, NOW.0, none)]);
        assert_eq!(
            target(&alone, None),
            Err("no good candidates have been found".to_owned())
        );
    }
}
