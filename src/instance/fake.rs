//! Simulated databases: the fake beside [`Instance`] for the runtime's unit tests and the
//! deterministic simulation. A [`SimDatabases`] world holds every member's database as the
//! facts the agent acts on (the data directory with its WAL, timeline and history, whether the
//! server runs and as what, whom a standby streams from, `synchronous_standby_names`, a fence)
//! and the clients' commits, acknowledged as PostgreSQL would: at once without synchronous
//! standbys, else once enough of the named standbys have the commit.
//!
//! WAL is a list of records with unique ids, so "which acknowledged commits does this database
//! hold" has an exact answer, and a standby streams only while its WAL is a prefix of its
//! upstream's (a standby that went past the fork of a new timeline stays stuck, as a real one
//! does, until it is rewound). A driver task ([`SimDatabases::drive`]) streams and acknowledges.
//!
//! Faults a test sets: a member's host frozen (its server does nothing, reachable by nobody),
//! links cut between hosts, operations slowed down or ending `Unknown`. Time is tokio's, the
//! randomness seeded: a run repeats exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    ClusterStateOnDisk, ControlData, DataDir, DbRole, Instance, InstanceError, LocalStatus,
    PeerFence, StopMode, TimelineSwitch, Upstream, WalSender, WalSource,
};
use crate::state::DbState;
use crate::types::{Generation, Lsn, MemberName, Timeline};

/// How often the driver streams WAL and acknowledges commits.
const STEP: Duration = Duration::from_millis(10);
/// As `pg_ctl_timeout`: a start or stop that takes longer ends `Unknown` (it goes on).
const CTL_TIMEOUT: Duration = Duration::from_secs(30);
/// PostgreSQL's default `wal_sender_timeout`: how long a primary keeps listing a standby cut off
/// from it (its connection not closed) as `streaming`, with the position it last confirmed.
const WAL_SENDER_TIMEOUT: Duration = Duration::from_secs(60);

/// How operations behave, changed by the test at any time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpFaults {
    /// An operation takes up to this long.
    pub max_delay: Duration,
    /// The chance that an operation is slow: up to `slow_delay` instead.
    pub slow_chance: f64,
    pub slow_delay: Duration,
    /// The chance that an operation that changes something ends `Unknown` after doing it.
    pub unknown_chance: f64,
}

impl Default for OpFaults {
    fn default() -> Self {
        Self {
            max_delay: Duration::from_millis(20),
            slow_chance: 0.0,
            slow_delay: Duration::from_secs(5),
            unknown_chance: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    id: u64,
    timeline: u32,
}

#[derive(Clone, Debug)]
struct Data {
    sysid: String,
    wal: Vec<Record>,
    timeline: u32,
    history: Vec<TimelineSwitch>,
    standby: bool,
    /// Stopped cleanly (a shutdown checkpoint is the last record).
    clean: bool,
    checkpoint: Option<Lsn>,
}

impl Data {
    fn end(&self) -> Lsn {
        Lsn(self.wal.len() as u64)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    Stopped,
    Starting { until: Instant, role: DbRole },
    Running(DbRole),
}

#[derive(Clone, Debug)]
struct Db {
    data: Option<Data>,
    run: Run,
    frozen: bool,
    fenced: bool,
    /// A running standby's upstream (its `primary_conninfo`).
    upstream: Option<MemberName>,
    streaming: bool,
    /// This standby was cut off from its upstream while streaming: the upstream's WAL sender
    /// still lists it until `wal_sender_timeout` (or the upstream stops), confirming nothing.
    lingering: Option<Lingering>,
    sync_running: String,
    sync_conf: String,
}

/// A WAL sender whose standby went silent without closing the connection.
#[derive(Clone, Debug)]
struct Lingering {
    upstream: MemberName,
    flushed: Lsn,
    until: Instant,
}

impl Db {
    fn new() -> Self {
        Db {
            data: None,
            run: Run::Stopped,
            frozen: false,
            fenced: false,
            upstream: None,
            streaming: false,
            lingering: None,
            sync_running: String::new(),
            sync_conf: String::new(),
        }
    }

    fn running_as(&self, role: DbRole) -> bool {
        self.run == Run::Running(role)
    }
}

/// A commit acknowledged to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub id: u64,
    pub member: MemberName,
    /// Acknowledged after standbys confirmed it (`synchronous_standby_names` was set), not by
    /// the primary alone.
    pub synchronous: bool,
}

/// A member becoming a writable primary (promotion or start as primary), with the members that
/// could acknowledge writes at that instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub member: MemberName,
    pub others_writable: Vec<MemberName>,
    /// Acknowledged synchronous commits its WAL lacks.
    pub missing_acks: Vec<u64>,
}

struct Pending {
    id: u64,
    member: MemberName,
    /// The record's end position on that member.
    lsn: Lsn,
}

struct World {
    dbs: BTreeMap<MemberName, Db>,
    cut: BTreeSet<(MemberName, MemberName)>,
    next_id: u64,
    next_sysid: u64,
    rng: fastrand::Rng,
    faults: OpFaults,
    pending: Vec<Pending>,
    acked: Vec<Ack>,
    promotions: Vec<Promotion>,
}

/// What `synchronous_standby_names` asks: how many of which standbys (`None`: any).
fn sync_rule(names: &str) -> Option<(usize, Option<Vec<String>>)> {
    let value = names.trim();
    if value.is_empty() {
        return None;
    }
    let (k, list) = match value.find('(') {
        Some(open) => {
            let head = value[..open].trim();
            let count = head
                .trim_start_matches("FIRST")
                .trim_start_matches("ANY")
                .trim();
            let list = value[open + 1..].trim_end_matches(')');
            (count.parse().unwrap_or(1), list)
        }
        None => (1, value),
    };
    let names: Vec<String> = list
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_owned())
        .collect();
    if names.iter().any(|n| n == "*") {
        return Some((k, None));
    }
    Some((k, Some(names)))
}

impl World {
    fn reaches(&self, a: &MemberName, b: &MemberName) -> bool {
        let up = |m: &MemberName| self.dbs.get(m).is_some_and(|d| !d.frozen);
        if a == b {
            return up(a);
        }
        let pair = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        up(a) && up(b) && !self.cut.contains(&pair)
    }

    /// The standbys streaming from `primary`, with how far they have flushed.
    fn streaming_from(&self, primary: &MemberName) -> Vec<(MemberName, Lsn)> {
        self.dbs
            .iter()
            .filter(|(_, d)| d.running_as(DbRole::Standby) && d.streaming)
            .filter(|(_, d)| d.upstream.as_ref() == Some(primary))
            .filter_map(|(name, d)| Some((name.clone(), d.data.as_ref()?.end())))
            .collect()
    }

    /// The standbys `primary`'s WAL senders list now: those streaming, then those cut off
    /// whose connection has not timed out yet, with the position each last confirmed.
    fn listed_by(&self, primary: &MemberName, now: Instant) -> Vec<(MemberName, Lsn)> {
        let mut listed = self.streaming_from(primary);
        for (name, db) in &self.dbs {
            if let Some(l) = &db.lingering
                && &l.upstream == primary
                && l.until > now
                && !listed.iter().any(|(n, _)| n == name)
            {
                listed.push((name.clone(), l.flushed));
            }
        }
        listed
    }

    /// `member`'s server stopped: its WAL senders, and the connections they held, are gone.
    fn close_senders_of(&mut self, member: &MemberName) {
        for db in self.dbs.values_mut() {
            if db.lingering.as_ref().is_some_and(|l| &l.upstream == member) {
                db.lingering = None;
            }
        }
    }

    /// Whether `primary` would acknowledge a commit at `lsn` now.
    fn acknowledges(&self, primary: &MemberName, lsn: Lsn) -> bool {
        let Some(db) = self.dbs.get(primary) else {
            return false;
        };
        let Some((k, names)) = sync_rule(&db.sync_running) else {
            return true;
        };
        let flushed = self
            .streaming_from(primary)
            .into_iter()
            .filter(|(name, _)| {
                names
                    .as_ref()
                    .is_none_or(|list| list.iter().any(|n| n == name.as_str()))
            })
            .filter(|(_, at)| *at >= lsn)
            .count();
        flushed >= k
    }

    /// Whether `member` accepts writes now: a running primary, neither frozen nor fenced,
    /// with the standbys its synchronous rule needs streaming from it.
    fn writable(&self, member: &MemberName) -> bool {
        let Some(db) = self.dbs.get(member) else {
            return false;
        };
        if !db.running_as(DbRole::Primary) || db.frozen || db.fenced {
            return false;
        }
        match sync_rule(&db.sync_running) {
            None => true,
            Some((k, names)) => {
                self.streaming_from(member)
                    .iter()
                    .filter(|(name, _)| {
                        names
                            .as_ref()
                            .is_none_or(|list| list.iter().any(|n| n == name.as_str()))
                    })
                    .count()
                    >= k
            }
        }
    }

    fn note_promotion(&mut self, member: &MemberName) {
        let others_writable = self
            .dbs
            .keys()
            .filter(|m| *m != member && self.writable(m))
            .cloned()
            .collect();
        let held: BTreeSet<u64> = self.dbs[member]
            .data
            .as_ref()
            .map(|d| d.wal.iter().map(|r| r.id).collect())
            .unwrap_or_default();
        let missing_acks = self
            .acked
            .iter()
            .filter(|a| a.synchronous && !held.contains(&a.id))
            .map(|a| a.id)
            .collect();
        self.promotions.push(Promotion {
            member: member.clone(),
            others_writable,
            missing_acks,
        });
    }

    /// Stream WAL to standbys and acknowledge commits.
    fn step(&mut self, now: Instant) {
        let names: Vec<MemberName> = self.dbs.keys().cloned().collect();
        for name in &names {
            let db = &self.dbs[name];
            if let Run::Starting { until, role } = db.run
                && now >= until
                && !db.frozen
            {
                if let Some(d) = self.dbs.get_mut(name) {
                    d.run = Run::Running(role);
                }
                if role == DbRole::Primary {
                    self.note_promotion(name);
                }
            }
        }
        for name in &names {
            let db = &self.dbs[name];
            if !db.running_as(DbRole::Standby) || db.frozen {
                continue;
            }
            let Some(up) = db.upstream.clone() else {
                if let Some(d) = self.dbs.get_mut(name) {
                    d.streaming = false;
                }
                continue;
            };
            let serving = self
                .dbs
                .get(&up)
                .filter(|u| !u.frozen && matches!(u.run, Run::Running(_)));
            // Cut off while streaming: no FIN reaches the upstream, whose sender lingers.
            let cut_off = serving.is_some() && !self.reaches(name, &up);
            let source = serving.filter(|_| !cut_off);
            let (Some(source), Some(mine)) =
                (source.and_then(|u| u.data.as_ref()), db.data.as_ref())
            else {
                let flushed = db.data.as_ref().map(Data::end);
                if let Some(d) = self.dbs.get_mut(name) {
                    if d.streaming
                        && cut_off
                        && let Some(flushed) = flushed
                    {
                        d.lingering = Some(Lingering {
                            upstream: up.clone(),
                            flushed,
                            until: now + WAL_SENDER_TIMEOUT,
                        });
                    }
                    d.streaming = false;
                }
                continue;
            };
            let prefix =
                mine.wal.len() <= source.wal.len() && source.wal[..mine.wal.len()] == mine.wal[..];
            if !prefix || source.sysid != mine.sysid {
                if let Some(d) = self.dbs.get_mut(name) {
                    d.streaming = false;
                }
                continue;
            }
            let take = source.wal[mine.wal.len()..].to_vec();
            let (timeline, history) = (source.timeline, source.history.clone());
            let d = self.dbs.get_mut(name).expect("listed");
            d.streaming = true;
            d.lingering = None;
            if let Some(data) = d.data.as_mut() {
                data.wal.extend(take);
                data.timeline = timeline;
                data.history = history;
            }
        }
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let Some(db) = self.dbs.get(&p.member) else {
                continue;
            };
            if !db.running_as(DbRole::Primary) {
                continue; // the client saw an error
            }
            if db.frozen || db.fenced || !self.acknowledges(&p.member, p.lsn) {
                still.push(p);
                continue;
            }
            let synchronous = sync_rule(&db.sync_running).is_some();
            self.acked.push(Ack {
                id: p.id,
                member: p.member,
                synchronous,
            });
        }
        self.pending = still;
    }
}

/// The world of simulated databases. Cheap to clone.
#[derive(Clone)]
pub struct SimDatabases {
    world: Arc<Mutex<World>>,
}

impl SimDatabases {
    pub fn new(seed: u64) -> Self {
        Self {
            world: Arc::new(Mutex::new(World {
                dbs: BTreeMap::new(),
                cut: BTreeSet::new(),
                next_id: 1,
                next_sysid: 7_000_000_000_000_000_000,
                rng: fastrand::Rng::with_seed(seed),
                faults: OpFaults::default(),
                pending: Vec::new(),
                acked: Vec::new(),
                promotions: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The database of `member` (empty data directory, stopped).
    pub fn add(&self, member: &MemberName) -> SimInstance {
        self.lock().dbs.insert(member.clone(), Db::new());
        SimInstance {
            member: member.clone(),
            world: self.clone(),
        }
    }

    /// Stream and acknowledge until `shutdown`.
    pub async fn drive(self, shutdown: CancellationToken) {
        loop {
            self.lock().step(Instant::now());
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(STEP) => {}
            }
        }
    }

    pub fn set_faults(&self, faults: OpFaults) {
        self.lock().faults = faults;
    }

    /// Freeze or thaw a member's host: its server does nothing and nobody reaches it.
    pub fn set_frozen(&self, member: &MemberName, frozen: bool) {
        if let Some(db) = self.lock().dbs.get_mut(member) {
            db.frozen = frozen;
        }
    }

    /// The postmaster dies (kill -9): a primary's data is left "in production".
    pub fn crash(&self, member: &MemberName) {
        let mut w = self.lock();
        w.close_senders_of(member);
        if let Some(db) = w.dbs.get_mut(member) {
            db.run = Run::Stopped;
            db.streaming = false;
            db.fenced = false;
            if let Some(data) = db.data.as_mut() {
                data.clean = false;
            }
        }
    }

    pub fn set_link(&self, a: &MemberName, b: &MemberName, connected: bool) {
        let pair = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        let mut w = self.lock();
        if connected {
            w.cut.remove(&pair);
        } else {
            w.cut.insert(pair);
        }
    }

    pub fn heal_links(&self) {
        self.lock().cut.clear();
    }

    /// A client's commit on `member`, if it runs as a writable-looking primary (it may never be
    /// acknowledged). `Some(id)` when the server took it.
    pub fn write(&self, member: &MemberName) -> Option<u64> {
        let mut w = self.lock();
        let id = w.next_id;
        let db = w.dbs.get_mut(member)?;
        if !db.running_as(DbRole::Primary) || db.frozen || db.fenced {
            return None;
        }
        let data = db.data.as_mut()?;
        data.wal.push(Record {
            id,
            timeline: data.timeline,
        });
        let lsn = data.end();
        w.next_id += 1;
        w.pending.push(Pending {
            id,
            member: member.clone(),
            lsn,
        });
        Some(id)
    }

    /// Members that accept writes now.
    pub fn writable(&self) -> Vec<MemberName> {
        let w = self.lock();
        w.dbs.keys().filter(|m| w.writable(m)).cloned().collect()
    }

    pub fn acked(&self) -> Vec<Ack> {
        self.lock().acked.clone()
    }

    /// Every member that became a primary, in order, with what was true at that instant.
    pub fn promotions(&self) -> Vec<Promotion> {
        self.lock().promotions.clone()
    }

    /// The ids of the commits `member`'s WAL holds.
    pub fn holds(&self, member: &MemberName) -> BTreeSet<u64> {
        self.lock()
            .dbs
            .get(member)
            .and_then(|d| d.data.as_ref())
            .map(|d| d.wal.iter().map(|r| r.id).collect())
            .unwrap_or_default()
    }

    /// Whether `member`'s WAL went past the point where `leader`'s timeline forked from it (it
    /// holds a record `leader` does not): it cannot stream from `leader` until it is rewound.
    pub fn diverged_from(&self, member: &MemberName, leader: &MemberName) -> bool {
        let w = self.lock();
        let wal = |m: &MemberName| w.dbs.get(m).and_then(|d| d.data.as_ref()).map(|d| &d.wal);
        match (wal(member), wal(leader)) {
            (Some(mine), Some(theirs)) => !theirs.starts_with(mine),
            _ => false,
        }
    }

    /// (running as, streaming from) of `member`, for convergence checks.
    pub fn role_of(&self, member: &MemberName) -> (Option<DbRole>, Option<MemberName>, bool) {
        let w = self.lock();
        let Some(db) = w.dbs.get(member) else {
            return (None, None, false);
        };
        let role = match db.run {
            Run::Running(role) => Some(role),
            _ => None,
        };
        (role, db.upstream.clone(), db.streaming)
    }

    /// A one-line description of every database, for a failing schedule's report.
    pub fn describe(&self) -> String {
        let w = self.lock();
        w.dbs
            .iter()
            .map(|(name, d)| {
                let data = d.data.as_ref().map_or("empty".to_owned(), |data| {
                    format!(
                        "tl {} wal {} {}{}",
                        data.timeline,
                        data.wal.len(),
                        if data.standby { "standby" } else { "primary" },
                        if data.clean { " clean" } else { "" }
                    )
                });
                format!(
                    "{name}: {:?} up={:?} streaming={} sync='{}' fenced={} frozen={} [{data}]",
                    d.run, d.upstream, d.streaming, d.sync_running, d.fenced, d.frozen
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One member's simulated database.
#[derive(Clone)]
pub struct SimInstance {
    member: MemberName,
    world: SimDatabases,
}

impl SimInstance {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock()
    }

    /// How long the next operation takes, and whether it ends `Unknown` after doing its work.
    async fn operation(&self) -> bool {
        let (delay, unknown) = {
            let mut w = self.lock();
            let f = w.faults;
            let slow = w.rng.f64() < f.slow_chance;
            let max = if slow { f.slow_delay } else { f.max_delay };
            (max.mul_f64(w.rng.f64()), w.rng.f64() < f.unknown_chance)
        };
        tokio::time::sleep(delay).await;
        // A frozen host does nothing until it is thawed.
        while self.lock().dbs.get(&self.member).is_some_and(|d| d.frozen) {
            tokio::time::sleep(STEP).await;
        }
        unknown
    }

    fn unknown(operation: &'static str) -> InstanceError {
        InstanceError::Unknown {
            operation,
            timeout: CTL_TIMEOUT,
        }
    }

    fn with_db<T>(&self, f: impl FnOnce(&mut Db) -> T) -> T {
        let mut w = self.lock();
        let db = w.dbs.entry(self.member.clone()).or_insert_with(Db::new);
        f(db)
    }

    fn source_member(source: &WalSource) -> Result<MemberName, InstanceError> {
        match source {
            WalSource::Member(up) => Ok(up.member.clone()),
            WalSource::Remote(_) => Err(InstanceError::Unsupported {
                engine: "simulated",
                operation: "replicate from a remote cluster",
                why: "the simulation has no standby clusters",
            }),
        }
    }
}

#[async_trait]
impl Instance for SimInstance {
    fn engine(&self) -> &'static str {
        "simulated"
    }

    async fn data_dir(&self) -> Result<DataDir, InstanceError> {
        Ok(self.with_db(|db| match &db.data {
            None => DataDir::Empty,
            Some(data) => DataDir::Initialized(ControlData {
                sysid: data.sysid.clone(),
                cluster_state: match (db.run, data.standby, data.clean) {
                    (Run::Running(DbRole::Primary), _, _) => ClusterStateOnDisk::InProduction,
                    (Run::Running(DbRole::Standby), _, _) => ClusterStateOnDisk::InArchiveRecovery,
                    (Run::Starting { .. }, _, _) => ClusterStateOnDisk::Other,
                    (Run::Stopped, false, true) => ClusterStateOnDisk::ShutDown,
                    (Run::Stopped, true, true) => ClusterStateOnDisk::ShutDownInRecovery,
                    (Run::Stopped, false, false) => ClusterStateOnDisk::InProduction,
                    (Run::Stopped, true, false) => ClusterStateOnDisk::InArchiveRecovery,
                },
                timeline: Timeline(data.timeline),
                standby_configured: data.standby,
                checkpoint: data.checkpoint,
            }),
        }))
    }

    async fn status(&self) -> LocalStatus {
        let w = self.lock();
        let Some(db) = w.dbs.get(&self.member) else {
            return LocalStatus::default();
        };
        if db.frozen {
            return LocalStatus {
                state: DbState::Unknown,
                ..Default::default()
            };
        }
        let data = db.data.as_ref();
        let sysid = data.map(|d| d.sysid.clone());
        match db.run {
            Run::Stopped => LocalStatus {
                sysid,
                ..Default::default()
            },
            Run::Starting { .. } => LocalStatus {
                state: DbState::Starting,
                sysid,
                ..Default::default()
            },
            Run::Running(role) => {
                let end = data.map(Data::end);
                let mut status = LocalStatus {
                    state: DbState::Running,
                    role: Some(role),
                    timeline: data.map(|d| Timeline(d.timeline)),
                    sysid,
                    server_version: Some(150000),
                    synchronous_standby_names: db.sync_running.clone(),
                    ..Default::default()
                };
                match role {
                    DbRole::Primary => {
                        status.wal_position = end;
                        let rule = sync_rule(&db.sync_running);
                        let mut first_left = rule.as_ref().map_or(0, |(k, _)| *k);
                        status.replication = w
                            .listed_by(&self.member, Instant::now())
                            .into_iter()
                            .map(|(name, flushed)| {
                                let listed = rule.as_ref().is_some_and(|(_, names)| {
                                    names
                                        .as_ref()
                                        .is_none_or(|l| l.iter().any(|n| n == name.as_str()))
                                });
                                let quorum = db.sync_running.trim_start().starts_with("ANY");
                                let sync_state = match (listed, quorum) {
                                    (false, _) => "async",
                                    (true, true) => "quorum",
                                    (true, false) if first_left > 0 => {
                                        first_left -= 1;
                                        "sync"
                                    }
                                    (true, false) => "potential",
                                };
                                WalSender {
                                    usename: "replicator".into(),
                                    application_name: name.to_string(),
                                    client_addr: None,
                                    state: "streaming".into(),
                                    sync_state: sync_state.into(),
                                    sync_priority: 1,
                                    flush_lsn: Some(flushed),
                                }
                            })
                            .collect();
                    }
                    DbRole::Standby => {
                        status.received_lsn = end;
                        status.replayed_lsn = end;
                        // Where a diverged standby stands (ha::divergence): its own timeline and
                        // how far it has WAL on it, as PostgreSQL's IDENTIFY_SYSTEM reports.
                        status.replay_position = data.map(|d| (Timeline(d.timeline), d.end()));
                        status.streaming = db.streaming;
                        status.upstream = db.upstream.as_ref().map(|m| m.to_string());
                    }
                }
                status
            }
        }
    }

    async fn bootstrap(&self) -> Result<String, InstanceError> {
        let unknown = self.operation().await;
        let mut w = self.lock();
        let sysid = w.next_sysid.to_string();
        w.next_sysid += 1;
        let id = w.next_id;
        w.next_id += 1;
        let member = self.member.clone();
        let db = w.dbs.get_mut(&member).expect("added");
        if db.data.is_some() {
            return Err(InstanceError::failed(
                "initdb",
                "the data directory is not empty",
            ));
        }
        db.data = Some(Data {
            sysid: sysid.clone(),
            wal: vec![Record { id, timeline: 1 }],
            timeline: 1,
            history: Vec::new(),
            standby: false,
            clean: false,
            checkpoint: None,
        });
        db.run = Run::Running(DbRole::Primary);
        db.sync_running = db.sync_conf.clone();
        w.note_promotion(&member);
        if unknown {
            return Err(Self::unknown("bootstrap"));
        }
        Ok(sysid)
    }

    async fn set_replication_peers(&self, _peers: &[Upstream]) -> Result<(), InstanceError> {
        Ok(())
    }

    async fn clone_from(&self, source: &WalSource) -> Result<(), InstanceError> {
        let from = Self::source_member(source)?;
        let unknown = self.operation().await;
        let mut w = self.lock();
        if !w.reaches(&self.member, &from) {
            return Err(InstanceError::failed(
                "base backup",
                format!("{from} is unreachable"),
            ));
        }
        let Some(data) = w
            .dbs
            .get(&from)
            .filter(|d| matches!(d.run, Run::Running(_)))
            .and_then(|d| d.data.clone())
        else {
            return Err(InstanceError::failed(
                "base backup",
                format!("{from} is not running"),
            ));
        };
        let db = w.dbs.get_mut(&self.member).expect("added");
        if db.data.is_some() {
            return Err(InstanceError::failed(
                "base backup",
                "the data directory is not empty",
            ));
        }
        db.data = Some(Data {
            standby: true,
            clean: true,
            checkpoint: None,
            ..data
        });
        if unknown {
            return Err(Self::unknown("base backup"));
        }
        Ok(())
    }

    async fn start(&self, upstream: Option<&WalSource>) -> Result<(), InstanceError> {
        let from = upstream.map(Self::source_member).transpose()?;
        let unknown = self.operation().await;
        let until = {
            let mut w = self.lock();
            let startup = Duration::from_millis(50 + w.rng.u64(..250));
            let db = w.dbs.get_mut(&self.member).expect("added");
            if matches!(db.run, Run::Running(_)) {
                return Ok(());
            }
            let Some(data) = db.data.as_mut() else {
                return Err(InstanceError::failed(
                    "start",
                    "the data directory is empty",
                ));
            };
            let role = match &from {
                Some(_) => DbRole::Standby,
                None => DbRole::Primary,
            };
            if role == DbRole::Primary && data.standby {
                // Recovery ends: a new timeline, as a promotion.
                let at = data.end();
                data.history.push(TimelineSwitch {
                    timeline: Timeline(data.timeline),
                    lsn: at,
                    reason: "no recovery target specified".into(),
                });
                data.timeline += 1;
            }
            data.standby = role == DbRole::Standby;
            data.clean = false;
            data.checkpoint = None;
            db.upstream = from;
            db.streaming = false;
            db.fenced = false;
            db.sync_running = if role == DbRole::Primary {
                db.sync_conf.clone()
            } else {
                String::new()
            };
            let until = Instant::now() + startup;
            db.run = Run::Starting { until, role };
            until
        };
        // Wait until it accepts connections (the driver makes it run).
        while Instant::now() < until || matches!(self.with_db(|d| d.run), Run::Starting { .. }) {
            tokio::time::sleep(STEP).await;
            if !matches!(
                self.with_db(|d| d.run),
                Run::Starting { .. } | Run::Running(_)
            ) {
                return Err(InstanceError::failed(
                    "start",
                    "the server stopped while starting",
                ));
            }
        }
        if unknown {
            return Err(Self::unknown("start"));
        }
        Ok(())
    }

    async fn stop(&self, mode: StopMode) -> Result<(), InstanceError> {
        let unknown = if mode == StopMode::Immediate {
            // Fencing: an immediate stop is quick and sure.
            false
        } else {
            self.operation().await
        };
        let mut w = self.lock();
        w.close_senders_of(&self.member);
        let id = w.next_id;
        let db = w.dbs.get_mut(&self.member).expect("added");
        let was_primary = matches!(db.run, Run::Running(DbRole::Primary));
        db.run = Run::Stopped;
        db.streaming = false;
        db.fenced = false;
        let mut used_id = false;
        if let Some(data) = db.data.as_mut() {
            if mode == StopMode::Immediate {
                data.clean = false;
            } else {
                if was_primary {
                    // The shutdown checkpoint: the last record this primary writes.
                    data.checkpoint = Some(data.end());
                    data.wal.push(Record {
                        id,
                        timeline: data.timeline,
                    });
                    used_id = true;
                }
                data.clean = true;
            }
        }
        if used_id {
            w.next_id += 1;
            // Before a primary's clean stop completes, its WAL senders send everything,
            // shutdown checkpoint included, to the standbys streaming from it.
            let member = self.member.clone();
            let Some(final_wal) = w.dbs[&member].data.as_ref().map(|d| d.wal.clone()) else {
                return Ok(());
            };
            let reached: BTreeSet<MemberName> = w
                .dbs
                .keys()
                .filter(|m| w.reaches(&member, m))
                .cloned()
                .collect();
            for (name, standby) in w.dbs.iter_mut() {
                if standby.upstream.as_ref() == Some(&member)
                    && reached.contains(name)
                    && standby.streaming
                    && !standby.frozen
                    && let Some(data) = standby.data.as_mut()
                    && final_wal.starts_with(&data.wal)
                {
                    data.wal = final_wal.clone();
                }
            }
        }
        if unknown {
            return Err(Self::unknown("stop"));
        }
        Ok(())
    }

    async fn promote(&self, _generation: Generation) -> Result<(), InstanceError> {
        let unknown = self.operation().await;
        let mut w = self.lock();
        let member = self.member.clone();
        let db = w.dbs.get_mut(&member).expect("added");
        if db.running_as(DbRole::Primary) {
            return Ok(());
        }
        if !db.running_as(DbRole::Standby) {
            return Err(InstanceError::failed(
                "promote",
                "the server is not a running standby",
            ));
        }
        tracing::debug!(member = %member, sync_running = %db.sync_running, sync_conf = %db.sync_conf, "simulated promote");
        let data = db.data.as_mut().expect("a running server has data");
        data.history.push(TimelineSwitch {
            timeline: Timeline(data.timeline),
            lsn: data.end(),
            reason: "promoted".into(),
        });
        data.timeline += 1;
        data.standby = false;
        db.run = Run::Running(DbRole::Primary);
        db.upstream = None;
        db.streaming = false;
        // As PostgreSQL's promotion: the server goes on with the synchronous_standby_names it
        // had loaded as a standby (none, unless the agent loaded them for this promotion); the
        // configured ones take effect at the agent's next write and reload.
        w.note_promotion(&member);
        if unknown {
            return Err(Self::unknown("promote"));
        }
        Ok(())
    }

    async fn follow(&self, upstream: &WalSource) -> Result<(), InstanceError> {
        let from = Self::source_member(upstream)?;
        let unknown = self.operation().await;
        self.with_db(|db| {
            if db.running_as(DbRole::Standby) {
                db.upstream = Some(from);
                db.streaming = false;
                // The adapters write a standby's configuration without names, and reload.
                db.sync_running = String::new();
                Ok(())
            } else {
                Err(InstanceError::failed(
                    "follow",
                    "the server is not a running standby",
                ))
            }
        })?;
        if unknown {
            return Err(Self::unknown("follow"));
        }
        Ok(())
    }

    async fn stop_replication(&self) -> Result<(), InstanceError> {
        let unknown = self.operation().await;
        self.with_db(|db| {
            db.upstream = None;
            db.streaming = false;
            if db.running_as(DbRole::Standby) {
                db.sync_running = String::new();
            }
        });
        if unknown {
            return Err(Self::unknown("stop replication"));
        }
        Ok(())
    }

    async fn rewind(&self, source: &Upstream) -> Result<(), InstanceError> {
        let unknown = self.operation().await;
        let mut w = self.lock();
        if !w.reaches(&self.member, &source.member) {
            return Err(InstanceError::failed(
                "rewind",
                format!("{} is unreachable", source.member),
            ));
        }
        let Some(from) = w
            .dbs
            .get(&source.member)
            .filter(|d| matches!(d.run, Run::Running(_)))
            .and_then(|d| d.data.clone())
        else {
            return Err(InstanceError::failed("rewind", "the source is not running"));
        };
        let db = w.dbs.get_mut(&self.member).expect("added");
        if db.run != Run::Stopped {
            return Err(InstanceError::failed("rewind", "the server is running"));
        }
        let Some(mine) = db.data.as_mut() else {
            return Err(InstanceError::failed(
                "rewind",
                "the data directory is empty",
            ));
        };
        if mine.sysid != from.sysid {
            return Err(InstanceError::failed("rewind", "another cluster's data"));
        }
        // The diverged end is discarded; what the source has is copied.
        *mine = Data {
            standby: true,
            clean: true,
            checkpoint: None,
            ..from
        };
        db.upstream = Some(source.member.clone());
        if unknown {
            return Err(Self::unknown("rewind"));
        }
        Ok(())
    }

    async fn set_aside_data_dir(&self) -> Result<std::path::PathBuf, InstanceError> {
        self.operation().await;
        self.with_db(|db| {
            if db.run != Run::Stopped {
                return Err(InstanceError::failed("set aside", "the server is running"));
            }
            db.data = None;
            Ok(std::path::PathBuf::from("data.failed"))
        })
    }

    async fn sync_replication_slots(
        &self,
        _targets: &super::slots::SlotTargets,
    ) -> Result<Vec<String>, InstanceError> {
        Ok(Vec::new())
    }

    async fn set_synchronous_standby_names(
        &self,
        value: &str,
    ) -> Result<Option<Lsn>, InstanceError> {
        let unknown = self.operation().await;
        tracing::debug!(member = %self.member, value, unknown, "simulated set synchronous_standby_names");
        let at = self.with_db(|db| {
            db.sync_conf = value.to_owned();
            if db.running_as(DbRole::Primary) {
                // The agent rewrites its configuration and reloads: a peer's fence (ALTER
                // SYSTEM) is not kept, as the adapters strip it whenever they write.
                db.fenced = false;
                db.sync_running = value.to_owned();
                db.data.as_ref().map(Data::end)
            } else {
                if db.running_as(DbRole::Standby) {
                    // Loaded for a promotion; a standby waits for nobody.
                    db.sync_running = value.to_owned();
                }
                None
            }
        });
        if unknown {
            return Err(Self::unknown("set synchronous_standby_names"));
        }
        Ok(at)
    }

    async fn reconfigure(
        &self,
        _parameters: &BTreeMap<String, serde_json::Value>,
        _pg_hba: &[String],
    ) -> Result<bool, InstanceError> {
        Ok(false)
    }

    async fn peer_replayed_lsn(&self, peer: &Upstream) -> Result<Option<Lsn>, InstanceError> {
        self.operation().await;
        let w = self.lock();
        if !w.reaches(&self.member, &peer.member) {
            return Ok(None);
        }
        Ok(w.dbs
            .get(&peer.member)
            .filter(|d| d.running_as(DbRole::Standby))
            .and_then(|d| d.data.as_ref().map(Data::end)))
    }

    async fn fence_peer(&self, peer: &Upstream) -> Result<PeerFence, InstanceError> {
        self.operation().await;
        let mut w = self.lock();
        if !w.reaches(&self.member, &peer.member) {
            return Ok(PeerFence::Unreachable);
        }
        let Some(db) = w.dbs.get_mut(&peer.member) else {
            return Ok(PeerFence::Unreachable);
        };
        match db.run {
            Run::Running(DbRole::Primary) => {
                // As the real fence: writes refused, and synchronous_standby_names naming a
                // standby that never exists, which the running server then reports.
                db.fenced = true;
                db.sync_running =
                    format!("\"{}\"", crate::instance::postgres::fence::FENCED_STANDBY);
                Ok(PeerFence::Fenced)
            }
            Run::Running(DbRole::Standby) => Ok(PeerFence::NotPrimary),
            _ => Ok(PeerFence::Unreachable),
        }
    }

    async fn timeline_history(
        &self,
        timeline: Timeline,
    ) -> Result<Vec<TimelineSwitch>, InstanceError> {
        Ok(self.with_db(|db| {
            db.data
                .as_ref()
                .map(|d| {
                    d.history
                        .iter()
                        .filter(|s| s.timeline.0 < timeline.0)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    async fn checkpoint(&self) -> Result<(), InstanceError> {
        self.operation().await;
        self.with_db(|db| {
            if matches!(db.run, Run::Running(DbRole::Primary)) {
                Ok(())
            } else {
                Err(InstanceError::failed(
                    "checkpoint",
                    "the server is not a running primary",
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(member: &MemberName) -> WalSource {
        WalSource::Member(Upstream {
            member: member.clone(),
            host: "127.0.0.1".into(),
            port: 5432,
        })
    }

    /// The standbys `primary` reports, as (name, flushed).
    async fn listed(instance: &SimInstance) -> Vec<(String, Option<Lsn>)> {
        instance
            .status()
            .await
            .replication
            .into_iter()
            .map(|w| (w.application_name, w.flush_lsn))
            .collect()
    }

    /// As PostgreSQL does: a standby cut off while streaming stays listed by its primary, at
    /// the position it last confirmed and confirming nothing more, until `wal_sender_timeout`
    /// or until the primary stops; a standby that streams again replaces the stale entry.
    #[tokio::test(start_paused = true)]
    async fn a_standby_cut_off_stays_listed_until_wal_sender_timeout() {
        let dbs = SimDatabases::new(1);
        let (a, b) = (MemberName::new("a"), MemberName::new("b"));
        let (primary, standby) = (dbs.add(&a), dbs.add(&b));
        let driver = CancellationToken::new();
        tokio::spawn(dbs.clone().drive(driver.clone()));
        primary.bootstrap().await.unwrap();
        primary.start(None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        standby.clone_from(&source(&a)).await.unwrap();
        standby.start(Some(&source(&a))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = listed(&primary).await;
        assert_eq!(before.len(), 1, "{before:?}");
        primary
            .set_synchronous_standby_names("FIRST 1 (\"b\")")
            .await
            .unwrap();
        let confirmed = dbs.write(&a).expect("the primary takes the write");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            dbs.acked().iter().any(|ack| ack.id == confirmed),
            "b confirms while it streams"
        );
        let before = listed(&primary).await;

        dbs.set_link(&a, &b, false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let id = dbs.write(&a).expect("the primary takes the write");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            listed(&primary).await,
            before,
            "still listed, at the old position"
        );
        assert!(
            !dbs.acked().iter().any(|ack| ack.id == id),
            "a cut-off standby confirms nothing"
        );
        tokio::time::sleep(WAL_SENDER_TIMEOUT).await;
        assert!(listed(&primary).await.is_empty(), "gone after the timeout");

        // Cut off again, then the primary restarts: its senders are gone at once.
        dbs.set_link(&a, &b, true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(listed(&primary).await.len(), 1);
        dbs.set_link(&a, &b, false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(listed(&primary).await.len(), 1);
        dbs.crash(&a);
        primary.start(None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(listed(&primary).await.is_empty());
        driver.cancel();
    }
}
