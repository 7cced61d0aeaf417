//! Scenario table for `ha::decide`: one named row per behaviour. Each row builds an observation
//! from a few facts and states the exact actions and a phrase of the reason.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::instance::{ClusterStateOnDisk, ControlData, DataDir, DbRole, LocalStatus, StopMode};
use crate::state::{
    ClusterState, DbState, FailoverIntent, FailoverReport, Initialize, Leader, Member,
    MemberStatus, ReinitRequest, ReportedRole, RestartRequest, RestartRole, SwitchoverRequest,
};
use crate::types::{Generation, Lsn, MemberName, Timeline, UnixMillis};

const GEN: Generation = Generation(5);

#[derive(Clone, Copy)]
enum Disk {
    Empty,
    Primary(ClusterStateOnDisk),
    Standby,
    OtherSysid,
    Unreadable,
    /// A former primary shut down cleanly on `timeline`, its last checkpoint at `lsn`.
    OldPrimary {
        timeline: u32,
        lsn: u64,
    },
}

#[derive(Clone, Copy)]
enum Db {
    Down,
    Starting,
    Primary,
    Standby {
        lsn: u64,
    },
    /// Running in recovery, not streaming, replaying `timeline` with WAL up to `lsn`.
    NotStreaming {
        timeline: u32,
        lsn: u64,
    },
}

#[derive(Clone, Copy)]
enum Lease {
    Unconfirmed,
    Valid,
    Lapsed,
}

#[derive(Clone, Copy)]
enum Cluster {
    Uninitialized,
    BootstrappingBy(&'static str),
    LedBy(&'static str),
    /// No leader; generation GEN ended; `b` already reported LSN 50.
    Leaderless {
        former: &'static str,
    },
    /// Led by the member, whose switch to timeline 2 is not recorded yet.
    JustPromoted(&'static str),
}

struct Row {
    name: &'static str,
    me: &'static str,
    cluster: Cluster,
    disk: Disk,
    db: Db,
    lease: Lease,
    memory: Memory,
    settings: fn(&mut HaSettings),
    /// Operators' requests (or other changes) on top of `cluster`.
    requests: fn(&mut ClusterState),
    actions: Vec<Action>,
    reason: &'static str,
}

fn row(name: &'static str, cluster: Cluster, disk: Disk, db: Db) -> Row {
    Row {
        name,
        me: "a",
        cluster,
        disk,
        db,
        lease: Lease::Unconfirmed,
        memory: Memory::default(),
        settings: |_| {},
        requests: |_| {},
        actions: vec![],
        reason: "",
    }
}

impl Row {
    fn seen_by(mut self, me: &'static str) -> Self {
        self.me = me;
        self
    }
    fn lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }
    fn memory(mut self, memory: Memory) -> Self {
        self.memory = memory;
        self
    }
    fn settings(mut self, f: fn(&mut HaSettings)) -> Self {
        self.settings = f;
        self
    }
    fn requests(mut self, f: fn(&mut ClusterState)) -> Self {
        self.requests = f;
        self
    }
    fn expect(mut self, actions: Vec<Action>, reason: &'static str) -> Self {
        self.actions = actions;
        self.reason = reason;
        self
    }
}

fn n(s: &str) -> MemberName {
    MemberName::from(s)
}

fn member(role: ReportedRole, state: DbState, port: u16) -> Member {
    Member {
        api_url: format!("http://127.0.0.1:{}/patroni", port + 1000),
        conn_url: Some(format!("postgres://127.0.0.1:{port}/postgres")),
        raft_addr: None,
        version: "test".into(),
        tags: Default::default(),
        proxy_url: None,
        status: MemberStatus {
            role,
            state,
            timeline: Some(Timeline(2)),
            ..Default::default()
        },
        reported_at: UnixMillis(1_000),
    }
}

fn cluster_state(c: Cluster) -> ClusterState {
    let mut s = ClusterState {
        generation: GEN,
        ..Default::default()
    };
    s.members.insert(
        n("a"),
        member(ReportedRole::Replica, DbState::Running, 5432),
    );
    s.members.insert(
        n("b"),
        member(ReportedRole::Replica, DbState::Running, 5433),
    );
    s.members.insert(
        n("c"),
        member(ReportedRole::Replica, DbState::Running, 5434),
    );
    let init = |by: &str, sysid: Option<&str>| Initialize {
        by: n(by),
        sysid: sysid.map(str::to_owned),
        at: UnixMillis(0),
    };
    let leader = |m: &str| Leader {
        member: n(m),
        generation: GEN,
        renewals: 3,
        since: UnixMillis(0),
        renewed_at: UnixMillis(0),
        lease_ms: None,
    };
    match c {
        Cluster::Uninitialized => {
            s.generation = Generation(0);
        }
        Cluster::BootstrappingBy(by) => {
            s.initialize = Some(init(by, None));
            s.leader = Some(leader(by));
        }
        Cluster::LedBy(m) | Cluster::JustPromoted(m) => {
            s.initialize = Some(init("a", Some("42")));
            s.leader = Some(leader(m));
            let status = &mut s.members.get_mut(&n(m)).unwrap().status;
            status.role = ReportedRole::Primary;
            status.timeline = Some(Timeline(2));
            if matches!(c, Cluster::LedBy(_)) {
                s.history.push(crate::state::HistoryEntry {
                    timeline: Timeline(1),
                    lsn: Lsn(50),
                    reason: "no recovery target specified".into(),
                    at: UnixMillis(0),
                    new_leader: n(m),
                });
            }
        }
        Cluster::Leaderless { former } => {
            s.initialize = Some(init("a", Some("42")));
            let mut intent = FailoverIntent {
                ended: GEN,
                former_leader: Some(n(former)),
                former_lsn: Some(Lsn(60)),
                opened_at: UnixMillis(0),
                reports: Default::default(),
                declined: None,
            };
            intent.reports.insert(
                n("b"),
                FailoverReport {
                    lsn: Lsn(50),
                    timeline: Some(Timeline(2)),
                },
            );
            s.failover = Some(intent);
        }
    }
    s
}

fn data_dir(d: Disk) -> Option<DataDir> {
    let cd = |state, standby, sysid: &str| {
        DataDir::Initialized(ControlData {
            sysid: sysid.into(),
            cluster_state: state,
            timeline: Timeline(2),
            standby_configured: standby,
            checkpoint: Some(Lsn(60)),
        })
    };
    match d {
        Disk::Empty => Some(DataDir::Empty),
        Disk::Primary(state) => Some(cd(state, false, "42")),
        Disk::Standby => Some(cd(ClusterStateOnDisk::ShutDownInRecovery, true, "42")),
        Disk::OtherSysid => Some(cd(ClusterStateOnDisk::ShutDown, false, "666")),
        Disk::Unreadable => None,
        Disk::OldPrimary { timeline, lsn } => Some(DataDir::Initialized(ControlData {
            sysid: "42".into(),
            cluster_state: ClusterStateOnDisk::ShutDown,
            timeline: Timeline(timeline),
            standby_configured: false,
            checkpoint: Some(Lsn(lsn)),
        })),
    }
}

fn local_status(db: Db) -> LocalStatus {
    match db {
        Db::Down => LocalStatus::default(),
        Db::Starting => LocalStatus {
            state: DbState::Starting,
            ..Default::default()
        },
        Db::Primary => LocalStatus {
            state: DbState::Running,
            role: Some(DbRole::Primary),
            wal_position: Some(Lsn(60)),
            timeline: Some(Timeline(2)),
            ..Default::default()
        },
        Db::Standby { lsn } => LocalStatus {
            state: DbState::Running,
            role: Some(DbRole::Standby),
            received_lsn: Some(Lsn(lsn)),
            replayed_lsn: Some(Lsn(lsn)),
            timeline: Some(Timeline(2)),
            streaming: true,
            ..Default::default()
        },
        Db::NotStreaming { timeline, lsn } => LocalStatus {
            state: DbState::Running,
            role: Some(DbRole::Standby),
            received_lsn: Some(Lsn(lsn)),
            replayed_lsn: Some(Lsn(lsn)),
            timeline: Some(Timeline(timeline)),
            streaming: false,
            replay_position: Some((Timeline(timeline), Lsn(lsn))),
            ..Default::default()
        },
    }
}

fn run(row: &Row, me: &str, now: Instant) -> Decision {
    let mut cluster = cluster_state(row.cluster);
    (row.requests)(&mut cluster);
    let mut settings = HaSettings {
        ttl: Duration::from_secs(3),
        loop_wait: Duration::from_secs(1),
        primary_start_timeout: Duration::from_secs(30),
        witness: false,
        nofailover: false,
        use_pg_rewind: true,
        paused: false,
        sync: Default::default(),
        standby_cluster: None,
        pre_promote: false,
        replica_without_leader: false,
        remove_data_on_rewind_failure: false,
        remove_data_on_diverged_timelines: false,
        replicatefrom: None,
    };
    (row.settings)(&mut settings);
    let disk = data_dir(row.disk);
    let db = local_status(row.db);
    let lease = match row.lease {
        Lease::Unconfirmed => LeaseView::Unconfirmed,
        Lease::Valid => LeaseView::Held {
            generation: GEN,
            valid_until: now + Duration::from_secs(2),
        },
        Lease::Lapsed => LeaseView::Held {
            generation: GEN,
            valid_until: now - Duration::from_millis(1),
        },
    };
    let me = n(me);
    decide(&Observation {
        me: &me,
        now,
        wall_now: WALL_NOW,
        cluster: &cluster,
        settings: &settings,
        lease,
        disk: disk.as_ref(),
        db: &db,
        memory: &row.memory,
    })
}

/// The failover after `member` declined the promotion of generation GEN at `at` (what
/// `Command::DeclinePromotion` leaves: no former leader to fence).
fn declined_by(c: &mut ClusterState, member: &str, at: u64) {
    let intent = c.failover.as_mut().expect("a leaderless cluster");
    intent.former_leader = None;
    intent.opened_at = UnixMillis(at);
    intent.declined = Some(crate::state::Declined {
        member: n(member),
        lsn: Lsn(60),
        reason: "exited with 1".into(),
    });
}

/// Member `m` runs as a streaming standby.
fn streaming(c: &mut ClusterState, m: &str) {
    c.members.get_mut(&n(m)).unwrap().status.replication_state = Some("streaming".into());
}

fn tag(c: &mut ClusterState, m: &str, tags: serde_json::Value) {
    c.members.get_mut(&n(m)).unwrap().tags = serde_json::from_value(tags).unwrap();
}

/// Why a diverged standby that may be neither rewound nor cloned again stays stopped.
const HELD_DIVERGED: &str = "not following leader (b): this replica replayed timeline 1 up to \
    0/46, past 0/32 where the timeline of leader (b) forked off it; use_pg_rewind and \
    remove_data_directory_on_diverged_timelines are off, so postgres stays stopped until this \
    member is reinitialized (tribunectl reinit)";

/// Members reported at 1 s; the operators' clock reads 2 s.
const WALL_NOW: UnixMillis = UnixMillis(2_000);

fn switchover_to(candidate: Option<&str>, scheduled_at: Option<u64>) -> SwitchoverRequest {
    SwitchoverRequest {
        leader: n("a"),
        candidate: candidate.map(n),
        scheduled_at: scheduled_at.map(UnixMillis),
        requested_at: UnixMillis(1_500),
    }
}

fn restart_request(role: Option<RestartRole>) -> RestartRequest {
    RestartRequest {
        schedule: None,
        role,
        postgres_version: None,
        restart_pending: false,
        timeout_secs: None,
        requested_at: UnixMillis(1_500),
    }
}

fn stop_immediate() -> Action {
    Action::Stop {
        mode: StopMode::Immediate,
    }
}

fn member_source(m: &str) -> StreamFrom {
    StreamFrom::Member(n(m))
}

fn start_following(m: &str) -> Action {
    Action::Start {
        upstream: Some(member_source(m)),
    }
}

/// The remote primary of the standby cluster in the standby-cluster rows.
fn remote() -> crate::config::StandbyCluster {
    crate::config::StandbyCluster {
        host: Some("10.9.9.9".into()),
        port: Some(5432),
        ..Default::default()
    }
}

fn from_remote() -> StreamFrom {
    StreamFrom::Remote(remote())
}

/// A standby cluster, with synchronous mode on (which a standby cluster ignores).
fn standby_cluster(s: &mut HaSettings) {
    s.standby_cluster = Some(remote());
    s.sync.mode = sync::SyncMode::On;
}

/// The leader reports itself as a standby leader.
fn led_by_standby_leader(c: &mut ClusterState) {
    let leader = c.leader_name().cloned().unwrap();
    c.members.get_mut(&leader).unwrap().status.role = ReportedRole::StandbyLeader;
}

fn scenarios(now: Instant) -> Vec<Row> {
    use Cluster::*;
    use ClusterStateOnDisk::{InProduction, ShutDown};
    vec![
        // --- bootstrap ---
        row(
            "empty node claims bootstrap of a new cluster",
            Uninitialized,
            Disk::Empty,
            Db::Down,
        )
        .expect(vec![Action::ClaimBootstrap], "trying to bootstrap"),
        row(
            "nofailover node never bootstraps",
            Uninitialized,
            Disk::Empty,
            Db::Down,
        )
        .settings(|s| s.nofailover = true)
        .expect(vec![], "waiting for a member that may bootstrap"),
        row(
            "claimer waits for its lease before initdb",
            BootstrappingBy("a"),
            Disk::Empty,
            Db::Down,
        )
        .expect(vec![], "waiting to confirm the leader lease"),
        row(
            "claimer with its lease runs initdb",
            BootstrappingBy("a"),
            Disk::Empty,
            Db::Down,
        )
        .lease(Lease::Valid)
        .expect(vec![Action::Bootstrap], "bootstrapping a new cluster"),
        row(
            "claimer whose primary runs records the system id",
            BootstrappingBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .expect(vec![Action::FinishBootstrap], "initialized a new cluster"),
        row(
            "others wait while a member bootstraps",
            BootstrappingBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .expect(vec![], "waiting for leader (b) to bootstrap"),
        row("witness does nothing", Uninitialized, Disk::Empty, Db::Down)
            .settings(|s| s.witness = true)
            .expect(vec![], "a witness"),
        row(
            "data of another cluster is never touched",
            LedBy("b"),
            Disk::OtherSysid,
            Db::Down,
        )
        .expect(vec![], "system ID mismatch"),
        row(
            "unreadable data directory: wait",
            LedBy("b"),
            Disk::Unreadable,
            Db::Down,
        )
        .expect(vec![], "could not be read"),
        // --- the lease holder ---
        row(
            "healthy primary keeps its slots",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .expect(vec![Action::SyncSlots], "the leader with the lock"),
        row(
            "a new primary records its timeline switch once",
            JustPromoted("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .expect(
            vec![
                Action::RecordHistory {
                    timeline: Timeline(2),
                },
                Action::SyncSlots,
            ],
            "recording the switch to timeline 2",
        ),
        row(
            "new leader promotes its standby",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .expect(
            vec![
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoted self to leader",
        ),
        row(
            "with pre_promote configured the new leader runs it before promoting",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(|s| s.pre_promote = true)
        .expect(
            vec![
                Action::PrePromote { generation: GEN },
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoted self to leader",
        ),
        row(
            "a leader whose pre_promote refused gives the lease back without promoting",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(|s| s.pre_promote = true)
        .memory(Memory {
            promotion_vetoed: Some((GEN, "exited with 1".into())),
            ..Default::default()
        })
        .expect(
            vec![Action::DeclinePromotion {
                generation: GEN,
                reason: "exited with 1".into(),
            }],
            "pre_promote script refused the promotion: exited with 1",
        ),
        row(
            "a refusal of an earlier generation does not stop this promotion",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(|s| s.pre_promote = true)
        .memory(Memory {
            promotion_vetoed: Some((Generation(4), "exited with 1".into())),
            ..Default::default()
        })
        .expect(
            vec![
                Action::PrePromote { generation: GEN },
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoted self to leader",
        ),
        row(
            "the member that declined stays out of the race for ttl",
            Leaderless { former: "x" },
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .requests(|c| declined_by(c, "a", 1_000))
        .expect(
            vec![],
            "not racing for leadership for ttl: my pre_promote script refused the promotion (exited with 1)",
        ),
        row(
            "then reports its position like any standby",
            Leaderless { former: "x" },
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .settings(|s| s.ttl = Duration::from_secs(1))
        .requests(|c| declined_by(c, "a", 0))
        .expect(
            vec![
                Action::StopStreaming { ended: GEN },
                Action::AckFailover { ended: GEN },
            ],
            "reporting WAL position 0/3C",
        ),
        row(
            "the others say who declined while they wait",
            Leaderless { former: "x" },
            Disk::Standby,
            Db::Standby { lsn: 50 },
        )
        .seen_by("b")
        .requests(|c| declined_by(c, "a", 1_000))
        .expect(
            vec![],
            "waiting for the failover decision (a declined the promotion: pre_promote exited with 1)",
        ),
        row(
            "in strict synchronous mode the standby loads `*` before it is promoted, blocking commits from the first",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(|s| {
            s.sync.mode = sync::SyncMode::Quorum;
            s.sync.strict = true;
        })
        .expect(
            vec![
                Action::SetSyncNames {
                    generation: GEN,
                    value: "ANY 1 (*)".into(),
                },
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoted self to leader",
        ),
        row(
            "with synchronous_site_survival, strict mode loads names that need a copy outside the site, not `*`",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(|s| {
            s.sync.mode = sync::SyncMode::On;
            s.sync.strict = true;
            s.sync.site_survival = true;
        })
        .requests(|c| {
            // a and b in east, c in west: one standby of a's own site, so 2 of (b, c).
            for (name, site) in [("a", "east"), ("b", "east"), ("c", "west")] {
                if let Some(m) = c.members.get_mut(&n(name)) {
                    m.tags = serde_json::from_value(serde_json::json!({ "site": site })).unwrap();
                }
            }
        })
        .expect(
            vec![
                Action::SetSyncNames {
                    generation: GEN,
                    value: "ANY 2 (\"b\",\"c\")".into(),
                },
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoted self to leader",
        ),
        row(
            "in non-strict synchronous mode the new primary names its standbys afterwards",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(|s| s.sync.mode = sync::SyncMode::On)
        .expect(
            vec![
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoted self to leader",
        ),
        row(
            "new leader does not promote before its lease is confirmed",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .expect(vec![], "waiting to confirm the leader lease"),
        row(
            "primary whose lease lapsed fences itself",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Lapsed)
        .expect(vec![stop_immediate()], "could not be renewed in time"),
        row(
            "crashed primary restarts while the lease holds",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Down,
        )
        .lease(Lease::Valid)
        .memory(Memory {
            primary_down_since: Some(now - Duration::from_secs(5)),
            ..Default::default()
        })
        .expect(
            vec![Action::Start { upstream: None }],
            "starting primary after failure",
        ),
        row(
            "in strict mode a crashed primary loads `*` before it starts, when nothing is claimed",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(|s| {
            s.sync.mode = sync::SyncMode::On;
            s.sync.strict = true;
        })
        .expect(
            vec![
                Action::SetSyncNames {
                    generation: GEN,
                    value: "*".into(),
                },
                Action::Start { upstream: None },
            ],
            "starting primary after failure",
        ),
        row(
            "a crashed primary waits for the standbys its sync record claims, strict or not",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(|s| s.sync.mode = sync::SyncMode::On)
        .requests(|c| {
            c.sync = crate::state::SyncRecord {
                generation: GEN,
                leader: Some(n("a")),
                standbys: [n("b")].into_iter().collect(),
                quorum: 0,
                site_guarantee: false,
            };
        })
        .expect(
            vec![
                Action::SetSyncNames {
                    generation: GEN,
                    value: "ANY 1 (\"b\")".into(),
                },
                Action::Start { upstream: None },
            ],
            "starting primary after failure",
        ),
        row(
            "primary that cannot start within primary_start_timeout releases the lease",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Down,
        )
        .lease(Lease::Valid)
        .memory(Memory {
            primary_down_since: Some(now - Duration::from_secs(31)),
            ..Default::default()
        })
        .expect(
            vec![stop_immediate(), Action::ReleaseLease { generation: GEN }],
            "failing to start postgres",
        ),
        row(
            "leader with an empty data directory releases the lease",
            LedBy("a"),
            Disk::Empty,
            Db::Down,
        )
        .lease(Lease::Valid)
        .expect(
            vec![Action::ReleaseLease { generation: GEN }],
            "data directory is empty",
        ),
        row(
            "starting primary is left to start",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Starting,
        )
        .lease(Lease::Valid)
        .expect(vec![], "waiting for postgres to start"),
        // --- followers ---
        row(
            "empty standby clones from the leader",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .expect(
            vec![
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "creating replica from leader (b)",
        ),
        row(
            "empty standby waits for the leader's database to clone it",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .requests(|c| c.members.get_mut(&n("b")).unwrap().status.state = DbState::Stopped)
        .expect(
            vec![],
            "waiting for leader (b) to accept connections before creating a replica",
        ),
        row(
            "empty standby with a no_leader method restores without the leader's database",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .requests(|c| c.members.get_mut(&n("b")).unwrap().status.state = DbState::Stopped)
        .settings(|s| s.replica_without_leader = true)
        .expect(
            vec![
                Action::CloneWithoutLeader {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "creating replica by a no_leader method while leader (b) does not accept connections",
        ),
        row(
            "streaming standby following the leader does nothing",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .expect(vec![Action::SyncSlots], "a secondary, and following a leader (b)"),
        row(
            "standby that replayed past the fork of the leader's timeline is rewound",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .expect(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::Rewind { from: n("b") },
                start_following("b"),
            ],
            "running pg_rewind from b: this replica replayed timeline 1 up to 0/46, past 0/32",
        ),
        row(
            "standby past the fork is cloned again when rewind is off",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .settings(|s| {
            s.use_pg_rewind = false;
            s.remove_data_on_diverged_timelines = true;
        })
        .expect(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::SetAsideDataDir,
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "re-creating the replica from leader (b): this replica replayed timeline 1",
        ),
        row(
            "standby past the fork is stopped and held when rewind and removal are off",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .settings(|s| s.use_pg_rewind = false)
        .expect(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::HoldStopped {
                    reason: HELD_DIVERGED.into(),
                },
            ],
            HELD_DIVERGED,
        ),
        row(
            "a held standby stays stopped",
            LedBy("b"),
            Disk::Standby,
            Db::Down,
        )
        .memory(Memory {
            held_stopped: Some(HELD_DIVERGED.into()),
            ..Default::default()
        })
        .settings(|s| s.use_pg_rewind = false)
        .expect(vec![], HELD_DIVERGED),
        row(
            "a held standby is still reinitialised on request",
            LedBy("b"),
            Disk::Standby,
            Db::Down,
        )
        .memory(Memory {
            held_stopped: Some(HELD_DIVERGED.into()),
            ..Default::default()
        })
        .requests(|c| {
            c.reinitializations.insert(
                n("a"),
                ReinitRequest {
                    from_leader: false,
                    requested_at: UnixMillis(1_500),
                },
            );
        })
        .expect(
            vec![Action::SetAsideDataDir, Action::FinishReinit { from_leader: false }],
            "reinitializing",
        ),
        row(
            "a standby with replicatefrom streams from that member",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .settings(|s| s.replicatefrom = Some(n("c")))
        .requests(|c| streaming(c, "c"))
        .expect(
            vec![Action::Follow {
                upstream: member_source("c"),
            }],
            "follow (c) as its replicatefrom tag says",
        ),
        row(
            "a cascading standby that follows its member only keeps its slots",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .memory(Memory {
            following: Some(member_source("c")),
            ..Default::default()
        })
        .settings(|s| s.replicatefrom = Some(n("c")))
        .requests(|c| streaming(c, "c"))
        .expect(
            vec![Action::SyncSlots],
            "following (c) as replicatefrom says; the leader is (b)",
        ),
        row(
            "a standby that others cascade from keeps their slots",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .requests(|c| tag(c, "c", serde_json::json!({"replicatefrom": "a"})))
        .expect(
            vec![Action::SyncSlots],
            "a secondary, and following a leader (b)",
        ),
        row(
            "a cascading standby goes back to the leader while its member does not stream",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .memory(Memory {
            following: Some(member_source("c")),
            ..Default::default()
        })
        .settings(|s| s.replicatefrom = Some(n("c")))
        .expect(
            vec![Action::Follow {
                upstream: member_source("b"),
            }],
            "follow new leader (b)",
        ),
        row(
            "a stopped cascading standby starts streaming from its member",
            LedBy("b"),
            Disk::Standby,
            Db::Down,
        )
        .settings(|s| s.replicatefrom = Some(n("c")))
        .requests(|c| streaming(c, "c"))
        .expect(
            vec![start_following("c")],
            "starting as a secondary of (c) as replicatefrom says",
        ),
        row(
            "an empty standby clones from a streaming member tagged clonefrom",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .requests(|c| {
            streaming(c, "c");
            tag(c, "c", serde_json::json!({"clonefrom": true}));
        })
        .expect(
            vec![
                Action::Clone {
                    from: member_source("c"),
                },
                start_following("b"),
            ],
            "creating replica from member (c), tagged clonefrom",
        ),
        row(
            "a reinitialisation asked from the leader copies the leader, not the clonefrom member",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .memory(Memory {
            clone_from_leader: true,
            ..Default::default()
        })
        .requests(|c| {
            streaming(c, "c");
            tag(c, "c", serde_json::json!({"clonefrom": true}));
        })
        .expect(
            vec![
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "creating replica from leader (b)",
        ),
        row(
            "a member tagged clonefrom that does not stream is passed over",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .requests(|c| tag(c, "c", serde_json::json!({"clonefrom": true})))
        .expect(
            vec![
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "creating replica from leader (b)",
        ),
        row(
            "a diverged standby is cloned again from a clonefrom member",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .settings(|s| {
            s.use_pg_rewind = false;
            s.remove_data_on_diverged_timelines = true;
        })
        .requests(|c| {
            streaming(c, "c");
            tag(c, "c", serde_json::json!({"clonefrom": true}));
        })
        .expect(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::SetAsideDataDir,
                Action::Clone {
                    from: member_source("c"),
                },
                start_following("b"),
            ],
            "re-creating the replica from member (c), tagged clonefrom: this replica",
        ),
        row(
            "standby stopped at the fork point is left to follow",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 50,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .expect(vec![Action::SyncSlots], "a secondary, and following a leader (b)"),
        row(
            "standby on the leader's timeline that does not stream is left alone",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 2,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .expect(vec![Action::SyncSlots], "a secondary, and following a leader (b)"),
        row(
            "standby past an unrecorded fork is left alone",
            JustPromoted("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .expect(vec![Action::SyncSlots], "a secondary, and following a leader (b)"),
        row(
            "standby past the fork is left alone in pause",
            LedBy("b"),
            Disk::Standby,
            Db::NotStreaming {
                timeline: 1,
                lsn: 70,
            },
        )
        .memory(Memory {
            following: Some(member_source("b")),
            ..Default::default()
        })
        .settings(|s| s.paused = true)
        .expect(vec![Action::SyncSlots], "following a leader (b)"),
        row(
            "standby of the old leader follows the new one",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .memory(Memory {
            following: Some(member_source("c")),
            ..Default::default()
        })
        .expect(
            vec![Action::Follow {
                upstream: member_source("b"),
            }],
            "follow new leader (b)",
        ),
        row(
            "stopped standby starts following the leader",
            LedBy("b"),
            Disk::Standby,
            Db::Down,
        )
        .expect(vec![start_following("b")], "starting as a secondary"),
        row(
            "former primary that crashed is rewound before it starts",
            LedBy("b"),
            Disk::Primary(InProduction),
            Db::Down,
        )
        .expect(
            vec![Action::Rewind { from: n("b") }, start_following("b")],
            "pg_rewind",
        ),
        row(
            "cleanly stopped former primary is rewound too",
            LedBy("b"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .expect(
            vec![Action::Rewind { from: n("b") }, start_following("b")],
            "pg_rewind",
        ),
        row(
            "former primary is re-cloned when rewind is off and removal allowed",
            LedBy("b"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .settings(|s| {
            s.use_pg_rewind = false;
            s.remove_data_on_diverged_timelines = true;
        })
        .expect(
            vec![
                Action::SetAsideDataDir,
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "re-creating the replica",
        ),
        row(
            "former primary starts as a standby when rewind and removal are off",
            LedBy("b"),
            Disk::Primary(InProduction),
            Db::Down,
        )
        .settings(|s| s.use_pg_rewind = false)
        .expect(
            vec![start_following("b")],
            "use_pg_rewind and remove_data_directory_on_diverged_timelines are off",
        ),
        row(
            "former primary stopped cleanly before the fork follows without a rewind",
            LedBy("b"),
            Disk::OldPrimary {
                timeline: 1,
                lsn: 40,
            },
            Db::Down,
        )
        .settings(|s| {
            s.use_pg_rewind = false;
            s.remove_data_on_diverged_timelines = true;
        })
        .expect(
            vec![start_following("b")],
            "stopped cleanly before the leader's timeline forked off",
        ),
        row(
            "former primary stopped cleanly past the fork is re-cloned",
            LedBy("b"),
            Disk::OldPrimary {
                timeline: 1,
                lsn: 55,
            },
            Db::Down,
        )
        .settings(|s| {
            s.use_pg_rewind = false;
            s.remove_data_on_diverged_timelines = true;
        })
        .expect(
            vec![
                Action::SetAsideDataDir,
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "may have diverged and use_pg_rewind is off",
        ),
        row(
            "a failed rewind is tried again, never removed, when removal is off",
            LedBy("b"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .memory(Memory {
            rewind_failed: true,
            ..Default::default()
        })
        .expect(
            vec![Action::Rewind { from: n("b") }, start_following("b")],
            "remove_data_directory_on_rewind_failure is off: keeping the data directory",
        ),
        row(
            "a failed rewind falls back to a fresh base backup when allowed",
            LedBy("b"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .settings(|s| s.remove_data_on_rewind_failure = true)
        .memory(Memory {
            rewind_failed: true,
            ..Default::default()
        })
        .expect(
            vec![
                Action::SetAsideDataDir,
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "could not be rewound",
        ),
        row(
            "a primary without the lock is fenced at once",
            LedBy("b"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .expect(
            vec![stop_immediate()],
            "I do not hold the leader lock (b does)",
        ),
        // --- leaderless ---
        row(
            "primary whose lease expired fences itself",
            Leaderless { former: "a" },
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .expect(vec![stop_immediate()], "lease expired"),
        row(
            "standby fences the former primary, then reports its final position",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 55 },
        )
        .seen_by("c")
        .expect(
            vec![
                Action::FencePeer {
                    member: n("a"),
                    ended: GEN,
                },
                Action::StopStreaming { ended: GEN },
                Action::AckFailover { ended: GEN },
            ],
            "reporting WAL position 0/37",
        ),
        row(
            "a standby fences the former primary once per failover",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 55 },
        )
        .seen_by("c")
        .memory(Memory {
            fenced_after: Some(GEN),
            ..Default::default()
        })
        .expect(
            vec![
                Action::StopStreaming { ended: GEN },
                Action::AckFailover { ended: GEN },
            ],
            "reporting WAL position 0/37",
        ),
        row(
            "a standby that stopped streaming reports its final position",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 55 },
        )
        .seen_by("c")
        .memory(Memory {
            fenced_after: Some(GEN),
            detached_after: Some(GEN),
            ..Default::default()
        })
        .expect(
            vec![Action::AckFailover { ended: GEN }],
            "reporting WAL position 0/37",
        ),
        row(
            "standby that reported waits for the decision",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 50 },
        )
        .seen_by("b")
        .expect(vec![], "waiting for the failover decision"),
        row(
            "nofailover standby reports too (its position is a quorum vote)",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 55 },
        )
        .seen_by("c")
        .settings(|s| s.nofailover = true)
        .expect(
            vec![
                Action::FencePeer {
                    member: "a".into(),
                    ended: Generation(5),
                },
                Action::StopStreaming {
                    ended: Generation(5),
                },
                Action::AckFailover {
                    ended: Generation(5),
                },
            ],
            "reporting WAL position",
        ),
        row(
            "the member whose lease ended does not report",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .expect(vec![], "I was the leader whose lease ended"),
        row(
            // Found by the simulation (seed 57): a stopped standby whose report the failover
            // needed waited for a leader forever, and the failover waited for its report.
            "a stopped standby starts, still following the former primary, to report",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Down,
        )
        .seen_by("c")
        .expect(
            vec![start_following("a")],
            "starting my standby to report its WAL position for the failover",
        ),
        row(
            "paused: a stopped standby waits without a leader",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Down,
        )
        .seen_by("c")
        .settings(|s| s.paused = true)
        .expect(vec![], "my database is not running"),
        row(
            "a stopped former primary's data does not start without a leader",
            Leaderless { former: "a" },
            Disk::Primary(ClusterStateOnDisk::InProduction),
            Db::Down,
        )
        .seen_by("c")
        .expect(vec![], "my database is not running"),
        // --- operators' requests ---
        row(
            "a switchover: checkpoint, stop cleanly, hand over once the target has every byte",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| c.switchover = Some(switchover_to(Some("b"), None)))
        .expect(
            vec![
                Action::Checkpoint,
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::HandOver {
                    generation: GEN,
                    to: n("b"),
                },
            ],
            "switching over to b",
        ),
        row(
            "a switchover to a standby still on the timeline this primary forked from is given up",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| {
            c.switchover = Some(switchover_to(Some("b"), None));
            c.members.get_mut(&n("b")).unwrap().status.timeline = Some(Timeline(1));
        })
        .expect(
            vec![Action::CancelSwitchover],
            "giving the switchover up: b is not on the primary's timeline 2 (it reports 1)",
        ),
        row(
            "a switchover scheduled for later waits",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| c.switchover = Some(switchover_to(Some("b"), Some(60_000))))
        .expect(vec![Action::SyncSlots], "the leader with the lock"),
        row(
            "a switchover to a standby that is not running is given up",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| {
            c.members.get_mut(&n("c")).unwrap().status.state = DbState::Stopped;
            c.switchover = Some(switchover_to(Some("c"), None));
        })
        .expect(
            vec![Action::CancelSwitchover],
            "giving the switchover up: c is not a running standby",
        ),
        row(
            "a switchover asked of another primary is not this one's",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| {
            let mut request = switchover_to(None, None);
            request.leader = n("b");
            c.switchover = Some(request);
        })
        .expect(vec![Action::SyncSlots], "the leader with the lock"),
        row(
            "a restart of the primary keeps its role",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| {
            c.restarts.insert(n("a"), restart_request(None));
        })
        .expect(
            vec![Action::Restart {
                requested_at: UnixMillis(1_500),
                upstream: None,
                timeout: None,
            }],
            "restarting postgres",
        ),
        row(
            "a restart for replicas only is dropped on the primary",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| {
            c.restarts
                .insert(n("a"), restart_request(Some(RestartRole::Replica)));
        })
        .expect(
            vec![Action::SkipRestart {
                requested_at: UnixMillis(1_500),
            }],
            "not restarting: the role is not replica",
        ),
        row(
            "a restart of a standby streams from the leader again",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .seen_by("b")
        .requests(|c| {
            c.restarts
                .insert(n("b"), restart_request(Some(RestartRole::Replica)));
        })
        .expect(
            vec![Action::Restart {
                requested_at: UnixMillis(1_500),
                upstream: Some(member_source("a")),
                timeout: None,
            }],
            "restarting postgres",
        ),
        row(
            // Found by the simulation (seed 3): the restart started the former primary's
            // diverged data as a standby, which could never stream.
            "a restart request on a stopped former primary waits for its rewind",
            LedBy("b"),
            Disk::Primary(ClusterStateOnDisk::ShutDown),
            Db::Down,
        )
        .requests(|c| {
            c.restarts.insert(n("a"), restart_request(None));
        })
        .expect(
            vec![Action::Rewind { from: n("b") }, start_following("b")],
            "running pg_rewind from b",
        ),
        row(
            "a reinitialised standby sets its data aside; the follower path clones it",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .seen_by("b")
        .requests(|c| {
            c.reinitializations.insert(
                n("b"),
                ReinitRequest {
                    from_leader: true,
                    requested_at: UnixMillis(1_500),
                },
            );
        })
        .expect(
            vec![
                stop_immediate(),
                Action::SetAsideDataDir,
                Action::FinishReinit { from_leader: true },
            ],
            "reinitializing",
        ),
        row(
            "a removed cluster: the running primary is left alone, nothing is claimed",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .requests(|c| {
            *c = ClusterState {
                removed: Some(UnixMillis(1)),
                ..ClusterState::default()
            }
        })
        .expect(vec![], "the cluster was removed"),
        // --- standby cluster ---
        row(
            "standby cluster: the bootstrap claimer copies the remote primary instead of initdb",
            BootstrappingBy("a"),
            Disk::Empty,
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .expect(
            vec![
                Action::Clone {
                    from: from_remote(),
                },
                Action::Start {
                    upstream: Some(from_remote()),
                },
                Action::FinishBootstrap,
            ],
            "bootstrapping a standby cluster: creating a replica from the remote primary \
             (10.9.9.9:5432)",
        ),
        row(
            "standby cluster: the claimer whose copy runs records the remote's system id",
            BootstrappingBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .expect(
            vec![Action::FinishBootstrap],
            "initialized a standby cluster",
        ),
        row(
            "standby cluster: a stopped copy starts as the remote's standby before finishing",
            BootstrappingBy("a"),
            Disk::Standby,
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .expect(
            vec![
                Action::Start {
                    upstream: Some(from_remote()),
                },
                Action::FinishBootstrap,
            ],
            "starting the standby leader",
        ),
        row(
            "standby cluster: an archive-only source cannot bootstrap a copy",
            BootstrappingBy("a"),
            Disk::Empty,
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(|s| {
            s.standby_cluster = Some(crate::config::StandbyCluster {
                restore_command: Some("cp /archive/%f %p".into()),
                ..Default::default()
            })
        })
        .expect(vec![], "names no host or port"),
        row(
            "standby leader healthy, following the remote; synchronous mode is ignored",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .requests(led_by_standby_leader)
        .memory(Memory {
            following: Some(from_remote()),
            ..Default::default()
        })
        .expect(
            vec![Action::SyncSlots],
            "no action. I am (a), the standby leader with the lock",
        ),
        row(
            "standby leader never promotes: its standby is pointed at the remote",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .expect(
            vec![
                Action::Follow {
                    upstream: from_remote(),
                },
                Action::SyncSlots,
            ],
            "changing primary_conninfo to follow the remote primary (10.9.9.9:5432) as the \
             standby leader",
        ),
        row(
            "new standby leader after a failover repoints from the old one to the remote",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .memory(Memory {
            following: Some(member_source("c")),
            detached_after: Some(Generation(4)),
            ..Default::default()
        })
        .expect(
            vec![
                Action::Follow {
                    upstream: from_remote(),
                },
                Action::SyncSlots,
            ],
            "to follow the remote primary",
        ),
        row(
            "standby leader follows a changed standby_cluster",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .memory(Memory {
            following: Some(StreamFrom::Remote(crate::config::StandbyCluster {
                host: Some("10.8.8.8".into()),
                ..remote()
            })),
            ..Default::default()
        })
        .expect(
            vec![
                Action::Follow {
                    upstream: from_remote(),
                },
                Action::SyncSlots,
            ],
            "to follow the remote primary (10.9.9.9:5432)",
        ),
        row(
            "crashed standby leader restarts as a standby of the remote",
            LedBy("a"),
            Disk::Standby,
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .memory(Memory {
            primary_down_since: Some(now - Duration::from_secs(5)),
            ..Default::default()
        })
        .expect(
            vec![Action::Start {
                upstream: Some(from_remote()),
            }],
            "starting standby leader after failure",
        ),
        row(
            "follower of a standby cluster clones from the standby leader",
            LedBy("b"),
            Disk::Empty,
            Db::Down,
        )
        .settings(standby_cluster)
        .requests(led_by_standby_leader)
        .expect(
            vec![
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "creating replica from leader (b)",
        ),
        row(
            "follower of a standby cluster streams from the standby leader (cascading)",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .settings(standby_cluster)
        .requests(led_by_standby_leader)
        .memory(Memory {
            following: Some(member_source("c")),
            ..Default::default()
        })
        .expect(
            vec![Action::Follow {
                upstream: member_source("b"),
            }],
            "follow new leader (b)",
        ),
        row(
            "promote-cluster: standby_cluster removed, the standby leader promotes",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .requests(led_by_standby_leader)
        .memory(Memory {
            following: Some(from_remote()),
            ..Default::default()
        })
        .expect(
            vec![
                Action::Promote { generation: GEN },
                Action::Checkpoint,
                Action::SyncSlots,
            ],
            "promoting the standby leader to primary: standby_cluster was removed",
        ),
        row(
            "switchover of a standby leader: stop, pass the lease at once",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .requests(|c| {
            led_by_standby_leader(c);
            c.switchover = Some(switchover_to(Some("b"), None));
        })
        .memory(Memory {
            following: Some(from_remote()),
            ..Default::default()
        })
        .expect(
            vec![
                Action::Stop {
                    mode: StopMode::Fast,
                },
                Action::PassLease {
                    generation: GEN,
                    to: n("b"),
                },
            ],
            "switching over to b: stopping the standby leader",
        ),
        row(
            "a restart for the standby_leader role restarts it as the remote's standby",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .requests(|c| {
            c.restarts
                .insert(n("a"), restart_request(Some(RestartRole::StandbyLeader)));
        })
        .expect(
            vec![Action::Restart {
                requested_at: UnixMillis(1_500),
                upstream: Some(from_remote()),
                timeout: None,
            }],
            "restarting postgres",
        ),
        row(
            "a restart for the primary role is dropped on a standby leader",
            LedBy("a"),
            Disk::Standby,
            Db::Standby { lsn: 60 },
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .requests(|c| {
            c.restarts
                .insert(n("a"), restart_request(Some(RestartRole::Primary)));
        })
        .expect(
            vec![Action::SkipRestart {
                requested_at: UnixMillis(1_500),
            }],
            "not restarting: the role is not primary",
        ),
        row(
            "a running primary is never demoted in place when standby_cluster appears",
            LedBy("a"),
            Disk::Primary(InProduction),
            Db::Primary,
        )
        .lease(Lease::Valid)
        .settings(standby_cluster)
        .expect(
            vec![Action::SyncSlots],
            "never demoted to a standby leader in place",
        ),
        // --- pause ---
        row(
            "paused: the primary's stopped database is left alone",
            LedBy("a"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .lease(Lease::Valid)
        .settings(|s| s.paused = true)
        .expect(vec![], "PAUSE: no action"),
        row(
            "paused: a stopped standby is left alone",
            LedBy("a"),
            Disk::Standby,
            Db::Down,
        )
        .seen_by("b")
        .settings(|s| s.paused = true)
        .expect(vec![], "PAUSE: no action"),
        row(
            "paused: the primary that just handed over in a switchover rejoins all the same",
            LedBy("b"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .settings(|s| s.paused = true)
        .memory(Memory {
            handed_over: true,
            ..Memory::default()
        })
        .expect(
            vec![Action::Rewind { from: n("b") }, start_following("b")],
            "running pg_rewind from b",
        ),
    ]
}

#[test]
fn decide_scenarios() {
    let now = Instant::now() + Duration::from_secs(100);
    let mut failures = Vec::new();
    for row in scenarios(now) {
        let decision = run(&row, row.me, now);
        if decision.actions != row.actions || !decision.reason.contains(row.reason) {
            failures.push(format!(
                "{}:\n  expected {:?} / {:?}\n  got      {:?} / {:?}",
                row.name, row.actions, row.reason, decision.actions, decision.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One row of "decide, outcome, next decide": the first decision is the row's own expectation;
/// each of its actions ends as `outcomes` says (the tick stops at the first that is not
/// `Done`); `Memory::remember` takes the outcomes in, `then` changes what the next observation
/// sees, and the next decision is `next`.
struct Sequence {
    row: Row,
    outcomes: Vec<ActionOutcome>,
    then: fn(&mut Row),
    next: (Vec<Action>, &'static str),
}

fn done() -> ActionOutcome {
    ActionOutcome::done()
}

fn failed() -> ActionOutcome {
    ActionOutcome::Failed("refused".into())
}

fn unknown() -> ActionOutcome {
    ActionOutcome::Unknown("timed out".into())
}

fn sequences() -> Vec<Sequence> {
    use Cluster::*;
    use ClusterStateOnDisk::ShutDown;
    let rewind = || {
        row(
            "a former primary is rewound",
            LedBy("b"),
            Disk::Primary(ShutDown),
            Db::Down,
        )
        .expect(
            vec![Action::Rewind { from: n("b") }, start_following("b")],
            "running pg_rewind from b",
        )
    };
    let recreate = || {
        (
            vec![
                Action::SetAsideDataDir,
                Action::Clone {
                    from: member_source("b"),
                },
                start_following("b"),
            ],
            "re-creating the replica from leader (b) because it could not be rewound",
        )
    };
    let follow = || {
        row(
            "a running standby is pointed at the new leader",
            LedBy("b"),
            Disk::Standby,
            Db::Standby { lsn: 55 },
        )
        .expect(
            vec![Action::Follow {
                upstream: member_source("b"),
            }],
            "changing primary_conninfo to follow new leader (b)",
        )
    };
    let failover = || {
        row(
            "a standby fences the former primary, detaches and reports",
            Leaderless { former: "a" },
            Disk::Standby,
            Db::Standby { lsn: 55 },
        )
        .seen_by("c")
        .expect(
            vec![
                Action::FencePeer {
                    member: n("a"),
                    ended: GEN,
                },
                Action::StopStreaming { ended: GEN },
                Action::AckFailover { ended: GEN },
            ],
            "reporting WAL position 0/37",
        )
    };
    vec![
        Sequence {
            row: row(
                "an operator's reinitialisation from the leader",
                LedBy("b"),
                Disk::Standby,
                Db::Down,
            )
            .requests(|c| {
                streaming(c, "c");
                tag(c, "c", serde_json::json!({"clonefrom": true}));
                c.reinitializations.insert(
                    n("a"),
                    ReinitRequest {
                        from_leader: true,
                        requested_at: UnixMillis(1_500),
                    },
                );
            })
            .expect(
                vec![
                    Action::SetAsideDataDir,
                    Action::FinishReinit { from_leader: true },
                ],
                "reinitializing",
            ),
            outcomes: vec![done(), done()],
            then: |r| {
                r.disk = Disk::Empty;
                r.requests = |c| {
                    streaming(c, "c");
                    tag(c, "c", serde_json::json!({"clonefrom": true}));
                };
            },
            next: (
                vec![
                    Action::Clone {
                        from: member_source("b"),
                    },
                    start_following("b"),
                ],
                "creating replica from leader (b)",
            ),
        },
        Sequence {
            row: rewind().settings(|s| s.remove_data_on_rewind_failure = true),
            outcomes: vec![failed()],
            then: |_| {},
            next: recreate(),
        },
        Sequence {
            row: rewind(),
            outcomes: vec![failed()],
            then: |_| {},
            next: (
                vec![Action::Rewind { from: n("b") }, start_following("b")],
                "pg_rewind from b failed",
            ),
        },
        Sequence {
            row: row(
                "a diverged standby that may not be re-cloned is stopped",
                LedBy("b"),
                Disk::Standby,
                Db::NotStreaming {
                    timeline: 1,
                    lsn: 70,
                },
            )
            .memory(Memory {
                following: Some(member_source("b")),
                ..Default::default()
            })
            .settings(|s| s.use_pg_rewind = false)
            .expect(
                vec![
                    Action::Stop {
                        mode: StopMode::Fast,
                    },
                    Action::HoldStopped {
                        reason: HELD_DIVERGED.into(),
                    },
                ],
                HELD_DIVERGED,
            ),
            outcomes: vec![done(), done()],
            then: |r| r.db = Db::Down,
            next: (vec![], HELD_DIVERGED),
        },
        Sequence {
            row: rewind()
                .settings(|s| s.remove_data_on_diverged_timelines = true)
                .memory(Memory {
                    following: Some(member_source("b")),
                    ..Memory::default()
                }),
            outcomes: vec![unknown()],
            then: |_| {},
            next: recreate(),
        },
        Sequence {
            row: rewind(),
            outcomes: vec![done(), done()],
            then: |r| r.db = Db::Standby { lsn: 60 },
            next: (
                vec![Action::SyncSlots],
                "no action. I am (a), a secondary, and following a leader (b)",
            ),
        },
        Sequence {
            row: follow(),
            outcomes: vec![done()],
            then: |_| {},
            next: (
                vec![Action::SyncSlots],
                "no action. I am (a), a secondary, and following a leader (b)",
            ),
        },
        Sequence {
            row: follow(),
            outcomes: vec![unknown()],
            then: |_| {},
            next: (
                vec![Action::Follow {
                    upstream: member_source("b"),
                }],
                "changing primary_conninfo to follow new leader (b)",
            ),
        },
        Sequence {
            row: failover(),
            outcomes: vec![done(), done(), unknown()],
            then: |_| {},
            next: (
                vec![Action::AckFailover { ended: GEN }],
                "reporting WAL position 0/37",
            ),
        },
        Sequence {
            row: failover(),
            outcomes: vec![failed()],
            then: |_| {},
            next: (
                vec![
                    Action::FencePeer {
                        member: n("a"),
                        ended: GEN,
                    },
                    Action::StopStreaming { ended: GEN },
                    Action::AckFailover { ended: GEN },
                ],
                "reporting WAL position 0/37",
            ),
        },
        Sequence {
            row: failover(),
            outcomes: vec![done(), unknown()],
            then: |_| {},
            next: (
                vec![
                    Action::StopStreaming { ended: GEN },
                    Action::AckFailover { ended: GEN },
                ],
                "reporting WAL position 0/37",
            ),
        },
        Sequence {
            row: row(
                "in pause, a switchover's old primary hands over, then rejoins as a standby",
                LedBy("a"),
                Disk::Primary(ClusterStateOnDisk::InProduction),
                Db::Primary,
            )
            .lease(Lease::Valid)
            .settings(|s| s.paused = true)
            .requests(|c| c.switchover = Some(switchover_to(Some("b"), None)))
            .expect(
                vec![
                    Action::Checkpoint,
                    Action::Stop {
                        mode: StopMode::Fast,
                    },
                    Action::HandOver {
                        generation: GEN,
                        to: n("b"),
                    },
                ],
                "switching over to b",
            ),
            outcomes: vec![done(), done(), done()],
            then: |r| {
                r.cluster = LedBy("b");
                r.disk = Disk::Primary(ShutDown);
                r.db = Db::Down;
                r.lease = Lease::Unconfirmed;
                r.requests = |_| {};
            },
            next: (
                vec![Action::Rewind { from: n("b") }, start_following("b")],
                "running pg_rewind from b",
            ),
        },
        Sequence {
            row: row(
                "a new replica is cloned from the leader and started",
                LedBy("b"),
                Disk::Empty,
                Db::Down,
            )
            .requests(|c| {
                c.members.get_mut(&n("b")).unwrap().status.state = DbState::Running;
            })
            .expect(
                vec![
                    Action::Clone {
                        from: member_source("b"),
                    },
                    start_following("b"),
                ],
                "creating replica from leader (b)",
            ),
            outcomes: vec![done(), unknown()],
            then: |r| {
                r.disk = Disk::Standby;
                r.db = Db::Standby { lsn: 50 };
            },
            next: (
                vec![Action::Follow {
                    upstream: member_source("b"),
                }],
                "changing primary_conninfo to follow new leader (b)",
            ),
        },
    ]
}

#[test]
fn decide_outcome_next_decide() {
    let now = Instant::now() + Duration::from_secs(100);
    let mut failures = Vec::new();
    for mut seq in sequences() {
        let first = run(&seq.row, seq.row.me, now);
        if first.actions != seq.row.actions || !first.reason.contains(seq.row.reason) {
            failures.push(format!(
                "{} (first decision):\n  expected {:?} / {:?}\n  got      {:?} / {:?}",
                seq.row.name, seq.row.actions, seq.row.reason, first.actions, first.reason
            ));
            continue;
        }
        let mut memory = seq.row.memory.clone();
        for (action, outcome) in first.actions.iter().zip(&seq.outcomes) {
            memory.remember(action, outcome);
            if !outcome.is_done() {
                break;
            }
        }
        seq.row.memory = memory;
        (seq.then)(&mut seq.row);
        let next = run(&seq.row, seq.row.me, now);
        if next.actions != seq.next.0 || !next.reason.contains(seq.next.1) {
            failures.push(format!(
                "{} (next decision):\n  expected {:?} / {:?}\n  got      {:?} / {:?}",
                seq.row.name, seq.next.0, seq.next.1, next.actions, next.reason
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
