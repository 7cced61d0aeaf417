//! Scenario table of an upgrade's steps (`ha::upgrade`), through `decide` as the agent calls it:
//! one named row per behaviour, with the exact actions and a phrase of the reason; then the Raft
//! leader's rules and the API's refusals.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::ha::{Decision, HaSettings, LeaseView, Memory, decide};
use crate::instance::{ClusterStateOnDisk, ControlData, DbRole, LocalStatus};
use crate::state::{
    ClusterBinaries, Initialize, Leader, Member, MemberStatus, UpgradeCheck, UpgradePhase,
};
use crate::types::{Generation, Lsn, Timeline};

const GEN: Generation = Generation(7);
const ID: UnixMillis = UnixMillis(1_000);
const WALL_NOW: UnixMillis = UnixMillis(100_000);

fn n(s: &str) -> MemberName {
    MemberName::from(s)
}

fn member(role: ReportedRole, port: u16) -> Member {
    Member {
        api_url: String::new(),
        conn_url: Some(format!("postgres://127.0.0.1:{port}/postgres")),
        raft_addr: None,
        version: String::new(),
        tags: Default::default(),
        proxy_url: None,
        status: MemberStatus {
            role,
            state: DbState::Running,
            replication_state: (role == ReportedRole::Replica).then(|| "streaming".to_owned()),
            sysid: Some("100".into()),
            server_version: Some(150018),
            ..Default::default()
        },
        reported_at: UnixMillis(99_500),
    }
}

/// `a` leads generation 7 of system 100 on PostgreSQL 15; `b` and `c` stream from it; an
/// upgrade to 18 in `phase`, or none.
fn cluster(phase: Option<UpgradePhase>) -> ClusterState {
    let mut s = ClusterState {
        initialize: Some(Initialize {
            by: n("a"),
            sysid: Some("100".into()),
            at: UnixMillis(0),
        }),
        leader: Some(Leader {
            member: n("a"),
            generation: GEN,
            renewals: 4,
            since: UnixMillis(0),
            renewed_at: UnixMillis(0),
            lease_ms: None,
        }),
        generation: GEN,
        ..Default::default()
    };
    s.members
        .insert(n("a"), member(ReportedRole::Primary, 5432));
    s.members
        .insert(n("b"), member(ReportedRole::Replica, 5433));
    s.members
        .insert(n("c"), member(ReportedRole::Replica, 5434));
    let Some(phase) = phase else { return s };
    let past_commit =
        !phase.before_point_of_no_return() && !matches!(phase, UpgradePhase::RollingBack { .. });
    let passed = UpgradeCheck::Passed {
        version: "18.6".into(),
        major: 18,
        from_major: 15,
    };
    s.upgrade = Some(Upgrade {
        id: ID,
        bin_dir: PathBuf::from("/opt/pg18/bin"),
        primary: n("a"),
        generation: GEN,
        members: [n("a"), n("b"), n("c")].into(),
        checks: if phase == UpgradePhase::Checking {
            [(n("b"), passed)].into()
        } else {
            ["a", "b", "c"]
                .into_iter()
                .map(|m| (n(m), passed.clone()))
                .collect()
        },
        phase,
        phase_since: UnixMillis(95_000),
        sysid: Some("100".into()),
    });
    if past_commit {
        committed(&mut s);
    }
    s
}

/// What `CommitUpgrade` wrote: system 200 on PostgreSQL 18.
fn committed(s: &mut ClusterState) {
    s.initialize.as_mut().unwrap().sysid = Some("200".into());
    s.binaries = Some(ClusterBinaries {
        bin_dir: PathBuf::from("/opt/pg18/bin"),
        major: 18,
        version: "18.6".into(),
        previous_sysid: Some("100".into()),
    });
}

/// The upgraded primary `a` runs 18 (system 200).
fn primary_upgraded(s: &mut ClusterState) {
    let a = &mut s.members.get_mut(&n("a")).unwrap().status;
    a.server_version = Some(180006);
    a.sysid = Some("200".into());
}

/// `name` streams on the new system.
fn rebuilt(s: &mut ClusterState, name: &str) {
    let m = &mut s.members.get_mut(&n(name)).unwrap().status;
    m.server_version = Some(180006);
    m.sysid = Some("200".into());
}

#[derive(Clone, Copy, Debug)]
enum Db {
    Stopped,
    Primary(u32),
    Standby(u32),
}

struct Row {
    name: &'static str,
    me: &'static str,
    cluster: ClusterState,
    /// The system identifier of the data directory (`None`: empty).
    disk: Option<&'static str>,
    db: Db,
    actions: Vec<Action>,
    reason: &'static str,
}

fn row(name: &'static str, me: &'static str, cluster: ClusterState, db: Db) -> Row {
    Row {
        name,
        me,
        cluster,
        disk: Some("100"),
        db,
        actions: vec![],
        reason: "",
    }
}

impl Row {
    fn disk(mut self, sysid: Option<&'static str>) -> Self {
        self.disk = sysid;
        self
    }
    fn expect(mut self, actions: Vec<Action>, reason: &'static str) -> Self {
        self.actions = actions;
        self.reason = reason;
        self
    }
}

fn run(row: &Row, now: Instant) -> Decision {
    let settings = HaSettings {
        ttl: Duration::from_secs(3),
        loop_wait: Duration::from_secs(1),
        primary_start_timeout: Duration::from_secs(30),
        witness: false,
        nofailover: false,
        use_pg_rewind: true,
        paused: row.cluster.paused(&Default::default()),
        sync: crate::ha::sync::SyncSettings {
            mode: crate::ha::sync::SyncMode::On,
            strict: false,
            node_count: 1,
            maximum_lag_on_syncnode: None,
            site_survival: false,
        },
        standby_cluster: None,
        pre_promote: false,
        replica_without_leader: false,
        remove_data_on_rewind_failure: false,
        remove_data_on_diverged_timelines: false,
        replicatefrom: None,
    };
    let disk = match row.disk {
        None => DataDir::Empty,
        Some(sysid) => DataDir::Initialized(ControlData {
            sysid: sysid.into(),
            cluster_state: ClusterStateOnDisk::InArchiveRecovery,
            timeline: Timeline(1),
            standby_configured: row.me != "a",
            checkpoint: Some(Lsn(60)),
        }),
    };
    let db = match row.db {
        Db::Stopped => LocalStatus::default(),
        Db::Primary(v) | Db::Standby(v) => LocalStatus {
            state: DbState::Running,
            role: Some(if matches!(row.db, Db::Primary(_)) {
                DbRole::Primary
            } else {
                DbRole::Standby
            }),
            server_version: Some(v),
            streaming: matches!(row.db, Db::Standby(_)),
            ..Default::default()
        },
    };
    let me = n(row.me);
    // A standby already follows the leader.
    let memory = Memory {
        following: row
            .cluster
            .leader_name()
            .filter(|l| **l != me)
            .map(StreamFrom::member),
        ..Default::default()
    };
    decide(&Observation {
        me: &me,
        now,
        wall_now: WALL_NOW,
        cluster: &row.cluster,
        settings: &settings,
        lease: LeaseView::Held {
            generation: GEN,
            valid_until: now + Duration::from_secs(2),
        },
        disk: Some(&disk),
        db: &db,
        memory: &memory,
    })
}

fn stop_fast() -> Action {
    Action::Stop {
        mode: StopMode::Fast,
    }
}

fn rebuild_from(leader: &str) -> Vec<Action> {
    let from = StreamFrom::member(&n(leader));
    vec![
        Action::SetAsideDataDir,
        Action::Clone { from: from.clone() },
        Action::Start {
            upstream: Some(from),
        },
    ]
}

fn scenarios() -> Vec<Row> {
    use UpgradePhase::*;
    let rolling_back = || RollingBack {
        reason: "pg_upgrade failed".into(),
    };
    vec![
        row(
            "each member checks its host once",
            "a",
            cluster(Some(Checking)),
            Db::Primary(150018),
        )
        .expect(
            vec![Action::CheckUpgrade { id: ID }],
            "checking whether this member can be upgraded to the PostgreSQL in /opt/pg18/bin",
        ),
        row(
            "a member that reported waits, paused",
            "b",
            cluster(Some(Checking)),
            Db::Standby(150018),
        )
        .expect(
            vec![Action::SyncSlots],
            "a secondary, and following a leader (a)",
        ),
        row(
            "the primary stops cleanly, then waits for its standbys",
            "a",
            cluster(Some(Stopping)),
            Db::Primary(150018),
        )
        .expect(
            vec![
                Action::Checkpoint,
                stop_fast(),
                Action::AwaitUpgradeStandbys {
                    id: ID,
                    generation: GEN,
                },
            ],
            "stopping the primary cleanly",
        ),
        row(
            "a primary already stopped only waits for its standbys",
            "a",
            cluster(Some(Stopping)),
            Db::Stopped,
        )
        .expect(
            vec![Action::AwaitUpgradeStandbys {
                id: ID,
                generation: GEN,
            }],
            "waiting for the standbys",
        ),
        row(
            "standbys stay as they are while the primary stops",
            "b",
            cluster(Some(Stopping)),
            Db::Standby(150018),
        )
        .expect(
            vec![Action::SyncSlots],
            "a secondary, and following a leader (a)",
        ),
        row(
            "the stopped primary runs pg_upgrade",
            "a",
            cluster(Some(Upgrading)),
            Db::Stopped,
        )
        .expect(
            vec![Action::RunUpgrade {
                id: ID,
                generation: GEN,
            }],
            "running pg_upgrade --link",
        ),
        row(
            "the standbys keep the old cluster intact during pg_upgrade",
            "c",
            cluster(Some(Upgrading)),
            Db::Standby(150018),
        )
        .expect(
            vec![Action::SyncSlots],
            "a secondary, and following a leader (a)",
        ),
        row(
            "past the point of no return the primary swaps in the new data and starts it",
            "a",
            cluster(Some(Starting)),
            Db::Stopped,
        )
        .expect(
            vec![
                Action::SwitchToUpgraded { id: ID },
                Action::SetSyncNames {
                    generation: GEN,
                    value: String::new(),
                },
                Action::Start { upstream: None },
                Action::ReportUpgradeStarted {
                    id: ID,
                    generation: GEN,
                },
            ],
            "past the point of no return: starting the primary",
        ),
        row(
            "a restarted agent whose new primary already runs only reports it",
            "a",
            cluster(Some(Starting)),
            Db::Primary(180006),
        )
        .disk(Some("200"))
        .expect(
            vec![Action::ReportUpgradeStarted {
                id: ID,
                generation: GEN,
            }],
            "the new primary runs",
        ),
        row(
            "a standby of the old system is set aside and copied from the new primary",
            "b",
            {
                let mut c = cluster(Some(Rebuilding));
                primary_upgraded(&mut c);
                c
            },
            Db::Standby(150018),
        )
        .expect(
            [vec![stop_fast()], rebuild_from("a")].concat(),
            "re-creating the replica from leader (a) on PostgreSQL 18.6",
        ),
        row(
            "a stopped standby of the old system is not stopped again",
            "b",
            {
                let mut c = cluster(Some(Rebuilding));
                primary_upgraded(&mut c);
                c
            },
            Db::Stopped,
        )
        .expect(rebuild_from("a"), "set aside, not deleted"),
        row(
            "a standby waits for the new primary to run before it copies",
            "b",
            cluster(Some(Rebuilding)),
            Db::Stopped,
        )
        .expect(vec![], "waiting for leader (a) to accept connections"),
        row(
            "a copied standby is an ordinary follower",
            "c",
            {
                let mut c = cluster(Some(Rebuilding));
                primary_upgraded(&mut c);
                c
            },
            Db::Standby(180006),
        )
        .disk(Some("200"))
        .expect(
            vec![Action::SyncSlots],
            "a secondary, and following a leader (a)",
        ),
        row(
            "the new primary waits while a standby is copied",
            "a",
            {
                let mut c = cluster(Some(Rebuilding));
                primary_upgraded(&mut c);
                rebuilt(&mut c, "b");
                c.members.get_mut(&n("c")).unwrap().status.state = DbState::CreatingReplica;
                c.members.get_mut(&n("c")).unwrap().reported_at = UnixMillis(0);
                c
            },
            Db::Primary(180006),
        )
        .disk(Some("200"))
        // The ordinary primary's steps: `CommitUpgrade` dropped the old system's
        // synchronous record, so it records the new one (none streams yet), not the end.
        .expect(
            vec![
                Action::SetSyncRecord {
                    generation: GEN,
                    standbys: Default::default(),
                    quorum: 0,
                    site_guarantee: false,
                },
                Action::SyncSlots,
            ],
            "recording the synchronous standbys of generation 7",
        ),
        row(
            "the new primary ends the upgrade once every standby streams on it",
            "a",
            {
                let mut c = cluster(Some(Rebuilding));
                primary_upgraded(&mut c);
                rebuilt(&mut c, "b");
                rebuilt(&mut c, "c");
                c
            },
            Db::Primary(180006),
        )
        .disk(Some("200"))
        .expect(
            vec![Action::FinishUpgrade { id: ID }],
            "every member runs PostgreSQL 18.6",
        ),
        row(
            "a standby presumed down is not waited for",
            "a",
            {
                let mut c = cluster(Some(Rebuilding));
                primary_upgraded(&mut c);
                rebuilt(&mut c, "b");
                c.members.get_mut(&n("c")).unwrap().reported_at = UnixMillis(0);
                c.members.get_mut(&n("c")).unwrap().status.state = DbState::Stopped;
                c
            },
            Db::Primary(180006),
        )
        .disk(Some("200"))
        .expect(
            vec![Action::FinishUpgrade { id: ID }],
            "the upgrade is done",
        ),
        row(
            "a new primary that went down is started again, paused or not",
            "a",
            cluster(Some(Rebuilding)),
            Db::Stopped,
        )
        .disk(Some("200"))
        .expect(
            vec![Action::Start { upstream: None }],
            "starting the upgraded primary",
        ),
        row(
            "after a failure the primary restores its old data directory",
            "a",
            cluster(Some(rolling_back())),
            Db::Stopped,
        )
        .expect(
            vec![Action::UndoUpgrade { id: ID }],
            "rolling the upgrade back (pg_upgrade failed)",
        ),
        row(
            "the former primary of a rollback restores its data even as a follower",
            "a",
            {
                let mut c = cluster(Some(rolling_back()));
                c.leader.as_mut().unwrap().member = n("b");
                c
            },
            Db::Stopped,
        )
        .expect(
            vec![Action::UndoUpgrade { id: ID }],
            "restoring the old data directory",
        ),
        row(
            "a copy of the old system found after the upgrade is rebuilt",
            "c",
            {
                let mut c = cluster(None);
                committed(&mut c);
                primary_upgraded(&mut c);
                c
            },
            Db::Stopped,
        )
        .expect(
            rebuild_from("a"),
            "holds the cluster as it was before the upgrade",
        ),
        row(
            "a foreign data directory is still refused by the system guard",
            "c",
            {
                let mut c = cluster(None);
                committed(&mut c);
                primary_upgraded(&mut c);
                c
            },
            Db::Stopped,
        )
        .disk(Some("666"))
        .expect(vec![], "system ID mismatch"),
        row(
            "an old copy with no leader to copy from waits",
            "c",
            {
                let mut c = cluster(None);
                committed(&mut c);
                c.leader = None;
                c
            },
            Db::Stopped,
        )
        .expect(vec![], "waiting for a leader to copy from"),
    ]
}

#[test]
fn upgrade_scenarios() {
    let now = Instant::now();
    for row in scenarios() {
        let decision = run(&row, now);
        assert_eq!(
            decision.actions, row.actions,
            "{}: {}",
            row.name, decision.reason
        );
        assert!(
            decision.reason.contains(row.reason),
            "{}: the reason {:?} does not contain {:?}",
            row.name,
            decision.reason,
            row.reason
        );
    }
}

#[test]
fn the_primarys_downtime_during_an_upgrade_never_releases_its_lease() {
    let mut c = cluster(Some(UpgradePhase::Upgrading));
    let mut memory = Memory::default();
    let now = Instant::now();
    memory.observe(&n("a"), &c, &LocalStatus::default(), now);
    assert_eq!(memory.primary_down_since, None);
    c.upgrade = None;
    memory.observe(&n("a"), &c, &LocalStatus::default(), now);
    assert_eq!(memory.primary_down_since, Some(now));
}

fn watch_at(c: &ClusterState, since: Instant) -> LeaseWatch {
    LeaseWatch::restart(c, since)
}

#[test]
fn the_raft_leader_rolls_back_an_upgrade_whose_primary_went_silent() {
    let ttl = Duration::from_secs(3);
    let t0 = Instant::now();
    for phase in [
        UpgradePhase::Checking,
        UpgradePhase::Stopping,
        UpgradePhase::Upgrading,
    ] {
        let c = cluster(Some(phase.clone()));
        let watch = watch_at(&c, t0);
        assert_eq!(
            arbitrate(&c, ttl, &watch, t0 + ttl / 2, WALL_NOW),
            None,
            "{phase:?}"
        );
        let (command, reason) = arbitrate(&c, ttl, &watch, t0 + ttl, WALL_NOW).unwrap();
        assert!(
            matches!(command, Command::AbandonUpgrade { id: ID, .. }),
            "{command:?}"
        );
        assert!(reason.contains("stopped renewing its lease"), "{reason}");
    }
    // Past the point of no return it waits for the primary's agent, however long.
    for phase in [UpgradePhase::Starting, UpgradePhase::Rebuilding] {
        let c = cluster(Some(phase));
        let watch = watch_at(&c, t0);
        assert_eq!(arbitrate(&c, ttl, &watch, t0 + ttl * 100, WALL_NOW), None);
    }
    // A lease that ended (or passed to another member) ends the upgrade too.
    let mut c = cluster(Some(UpgradePhase::Stopping));
    c.leader = None;
    let (_, reason) = arbitrate(&c, ttl, &watch_at(&c, t0), t0, WALL_NOW).unwrap();
    assert!(reason.contains("no longer holds the lease"), "{reason}");
}

#[test]
fn checks_that_never_end_are_given_up_naming_who_did_not_report() {
    let ttl = Duration::from_secs(3);
    let c = cluster(Some(UpgradePhase::Checking));
    let t0 = Instant::now();
    let mut watch = watch_at(&c, t0);
    let late = UnixMillis(95_000 + CHECK_DEADLINE.as_millis() as u64);
    watch.since = t0;
    assert_eq!(arbitrate(&c, ttl, &watch, t0, UnixMillis(late.0 - 1)), None);
    let (command, reason) = arbitrate(&c, ttl, &watch, t0, late).unwrap();
    assert!(matches!(command, Command::AbandonUpgrade { .. }));
    assert!(reason.contains("no check report from a, c"), "{reason}");
}

#[test]
fn refusals_before_a_request_is_written() {
    let dynamic = DynamicConfig::default();
    assert_eq!(refusal(&cluster(None), &dynamic, WALL_NOW), None);
    type Change = Box<dyn Fn(&mut ClusterState, &mut DynamicConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "already in progress",
            Box::new(|c, _| *c = cluster(Some(UpgradePhase::Stopping))),
        ),
        ("no leader", Box::new(|c, _| c.leader = None)),
        ("paused", Box::new(|_, d| d.pause = true)),
        (
            "b is not a streaming standby",
            Box::new(|c, _| {
                c.members.get_mut(&n("b")).unwrap().status.replication_state =
                    Some("in archive recovery".into())
            }),
        ),
        (
            "c has not reported",
            Box::new(|c, _| c.members.get_mut(&n("c")).unwrap().reported_at = UnixMillis(0)),
        ),
        (
            "does not run as a primary",
            Box::new(|c, _| c.members.get_mut(&n("a")).unwrap().status.state = DbState::Stopped),
        ),
    ];
    for (why, change) in cases {
        let (mut c, mut d) = (cluster(None), dynamic.clone());
        change(&mut c, &mut d);
        let reason = refusal(&c, &d, WALL_NOW).unwrap_or_default();
        assert!(reason.contains(why), "{why}: {reason:?}");
    }
}
