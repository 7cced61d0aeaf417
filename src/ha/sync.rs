//! Synchronous replication on the primary (DESIGN section 5, rule 1), one step per tick.
//!
//! Two statements describe where acknowledged commits are:
//! - what PostgreSQL guarantees: `synchronous_standby_names` makes each commit wait for `k` of
//!   the standbys it lists (`FIRST n (...)` lists exactly the `n` wanted; `ANY k (...)`);
//! - what the replicated `sync` record claims: every acknowledged commit of this generation is
//!   on all but `quorum` of its standbys, so a failover needs `quorum + 1` of their positions.
//!
//! Both are [`Copies`]: "on at least `k` of these members". The record must never claim more
//! than PostgreSQL guaranteed for any commit acknowledged so far, so every step keeps that true:
//! 1. the names change only when their guarantee covers the record's claim;
//! 2. otherwise the record first weakens to a claim that the old and the new names both cover
//!    (more standbys, a larger quorum: a failover then waits for more positions);
//! 3. the record strengthens to the target only once PostgreSQL reports each of its standbys
//!    `sync`/`quorum`, and, unless the old claim implies the new one, once enough of them have
//!    flushed past the WAL position at which the current names took effect: commits
//!    acknowledged before that waited for other standbys.
//!
//! Targets: mode `on` names `synchronous_node_count` standbys, `FIRST n (...)` (quorum 0);
//! mode `quorum` names every eligible streaming standby, `ANY k (...)` with
//! `k = min(synchronous_node_count, standbys)` (quorum `standbys - k`), as Patroni does. With no
//! standby to wait for, strict mode blocks commits (`*`, `ANY 1 (*)`) and non-strict mode
//! replicates asynchronously, which the API, the log and the metrics report as degraded.
//!
//! `synchronous_site_survival` (multi-site clusters, `tags.site`): every acknowledged commit
//! must also be on a member outside the primary's site, so losing that whole site loses none.
//! PostgreSQL cannot nest groups in `synchronous_standby_names`, but `ANY k` over every
//! eligible streaming standby with `k` = (those inside the primary's site) + 1 (at least
//! `synchronous_node_count`) puts each commit on at least one standby outside it. A member
//! without a site, and every member when the primary has none, counts as inside. The record's
//! `site_guarantee` says whether its own claim implies that (`Sites::survive`): derived from
//! a claim that is always true, it is true too, and it is rewritten before anything else
//! whenever the members' sites make it wrong. With no standby outside the site streaming,
//! strict mode names those it has not got (or `*` when none is known), so commits block
//! until one streams; non-strict mode falls back to the usual target and records no site
//! guarantee, which the log, `/cluster` and `tribune_sync_site_guarantee` report.
//!
//! A standby PostgreSQL still lists as `streaming` is not counted when it has confirmed nothing
//! for `ttl` while the primary had WAL it lacked (`silent`, from [`Memory::observe`]): one cut
//! off without its connection closing stays `streaming` until `wal_sender_timeout` (a minute by
//! default), and commits waiting for it would block that long even in non-strict mode.
//! Pure: the caller passes the primary's own WAL senders and the replicated state.
//!
//! [`Memory::observe`]: super::Memory::observe

use std::collections::BTreeSet;

use super::{Action, SyncNamesApplied};
use crate::instance::LocalStatus;
use crate::state::ClusterState;
use crate::types::{Generation, MemberName};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    #[default]
    Off,
    /// Patroni's `synchronous_mode: on`: `FIRST n`, every named standby confirms each commit.
    On,
    /// Patroni's `synchronous_mode: quorum`: `ANY k` of every eligible standby.
    Quorum,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncSettings {
    pub mode: SyncMode,
    pub strict: bool,
    /// `synchronous_node_count`: how many standbys every commit waits for.
    pub node_count: u32,
    /// `maximum_lag_on_syncnode` (when > 0): a standby further behind the most advanced one
    /// (the primary, when only one streams) is not made synchronous, and a synchronous one that
    /// falls this far behind is swapped for another, as Patroni does.
    pub maximum_lag_on_syncnode: Option<u64>,
    /// `synchronous_site_survival`: every acknowledged commit also outside the primary's site.
    pub site_survival: bool,
}

/// The members' sites as the primary `me` sees them, for `synchronous_site_survival`.
pub struct Sites<'a> {
    cluster: &'a ClusterState,
    /// The primary's own site.
    home: Option<&'a str>,
}

impl<'a> Sites<'a> {
    pub fn of(me: &MemberName, cluster: &'a ClusterState) -> Self {
        Self {
            cluster,
            home: cluster.members.get(me).and_then(|m| m.tags.site()),
        }
    }

    /// Whether `name` is known to run outside the primary's site.
    pub fn outside(&self, name: &MemberName) -> bool {
        self.home.is_some_and(|home| {
            self.cluster
                .members
                .get(name)
                .and_then(|m| m.tags.site())
                .is_some_and(|site| site != home)
        })
    }

    /// Whether every commit with `copies` is on a member outside the primary's site: it is on
    /// more of the listed members than the site holds.
    pub fn survive(&self, copies: &Copies) -> bool {
        copies.k > 0 && copies.k > copies.among.iter().filter(|m| !self.outside(m)).count()
    }

    fn home(&self) -> &str {
        self.home.unwrap_or("(none: the primary has no site tag)")
    }
}

/// "Every acknowledged commit is on at least `k` of `among`"; `k` 0 says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copies {
    pub k: usize,
    pub among: BTreeSet<MemberName>,
}

impl Copies {
    fn none() -> Self {
        Self::default()
    }

    /// What `synchronous_standby_names` guarantees. `*`, an empty value or one this module
    /// cannot read guarantee nothing about any particular standby.
    pub fn guaranteed_by(names: &str) -> Self {
        parse_names(names).unwrap_or_default()
    }

    /// What the record claims for `generation`.
    pub fn claimed(cluster: &ClusterState, generation: Generation) -> Self {
        let k = cluster.sync.copies_of(generation);
        if k == 0 {
            return Self::none();
        }
        Self {
            k,
            among: cluster.sync.standbys.clone(),
        }
    }

    /// Whether every commit with these copies also has the copies `claim` speaks of.
    pub fn implies(&self, claim: &Copies) -> bool {
        claim.k == 0
            || self
                .k
                .saturating_sub(self.among.difference(&claim.among).count())
                >= claim.k
    }

    /// The record's `quorum` for this claim.
    fn quorum(&self) -> u32 {
        (self.among.len() - self.k) as u32
    }

    /// The `sync` record of this claim; `site_guarantee` as [`Sites::survive`] found it.
    fn record(&self, generation: Generation, site_guarantee: bool) -> Action {
        let claim = if self.k == 0 {
            Self::none()
        } else {
            self.clone()
        };
        Action::SetSyncRecord {
            generation,
            quorum: claim.quorum(),
            standbys: claim.among,
            site_guarantee: site_guarantee && claim.k > 0,
        }
    }

    fn describe(&self) -> String {
        if self.k == 0 {
            return "none".into();
        }
        let names: Vec<&str> = self.among.iter().map(|m| m.as_str()).collect();
        format!("{} of {} ({})", self.k, self.among.len(), names.join(", "))
    }
}

/// Reads the values [`standby_names`] writes, and Patroni's (`2 (a,b)`, `a,b`).
fn parse_names(value: &str) -> Option<Copies> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let (k, list) = match value.find('(') {
        Some(open) => {
            let head = value[..open].trim();
            let count = head
                .strip_prefix("FIRST")
                .or_else(|| head.strip_prefix("ANY"))
                .unwrap_or(head)
                .trim();
            let list = value[open + 1..].strip_suffix(')')?;
            (count.parse::<usize>().ok()?, list)
        }
        None => (1, value),
    };
    let mut among = BTreeSet::new();
    for name in list.split(',') {
        let name = name.trim();
        let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => name.to_owned(),
        };
        if name.is_empty() || name == "*" {
            return None;
        }
        among.insert(MemberName::from(name.as_str()));
    }
    (k > 0).then_some(Copies {
        k: k.min(among.len()),
        among,
    })
}

/// `synchronous_standby_names` for `copies` in `mode` (names quoted, sorted); with nobody to
/// wait for, `*` / `ANY 1 (*)` in strict mode and empty otherwise. A `k` above the number of
/// names (only `synchronous_site_survival` in strict mode wants one) lists `*` too: commits
/// then wait for a standby that is not named yet.
pub fn standby_names(copies: &Copies, mode: SyncMode, strict: bool) -> String {
    let quorum = mode == SyncMode::Quorum;
    if copies.k == 0 {
        return match (strict, quorum) {
            (false, _) => String::new(),
            (true, false) => "*".into(),
            (true, true) => "ANY 1 (*)".into(),
        };
    }
    let mut list: Vec<String> = copies
        .among
        .iter()
        .map(|m| format!("\"{}\"", m.as_str().replace('"', "\"\"")))
        .collect();
    if copies.k > copies.among.len() {
        list.push("*".into());
    }
    let method = if quorum { "ANY" } else { "FIRST" };
    format!("{method} {} ({})", copies.k, list.join(","))
}

fn nosync(cluster: &ClusterState, name: &MemberName) -> bool {
    cluster
        .members
        .get(name)
        .is_none_or(|m| m.tags.nosync() || m.conn_url.is_none())
}

/// The standbys the primary should wait for, and for how many of them.
fn target(
    me: &MemberName,
    claimed: &Copies,
    cluster: &ClusterState,
    db: &LocalStatus,
    silent: &BTreeSet<String>,
    settings: &SyncSettings,
) -> Copies {
    // Streaming standbys that may be synchronous, most advanced first.
    let mut streaming: Vec<(&MemberName, crate::types::Lsn)> = db
        .replication
        .iter()
        .filter(|w| w.state == "streaming" && !silent.contains(&w.application_name))
        .filter_map(|w| {
            let name = cluster
                .members
                .keys()
                .find(|m| m.as_str() == w.application_name)?;
            (name != me && !nosync(cluster, name))
                .then_some((name, w.flush_lsn.unwrap_or_default()))
        })
        .collect();
    streaming.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if let Some(max_lag) = settings.maximum_lag_on_syncnode {
        // Compared with the most advanced standby, or with the primary when only one streams.
        let reference = match streaming.as_slice() {
            [_, _, ..] => streaming.first().map(|(_, lsn)| *lsn),
            _ => db.wal_position,
        };
        if let Some(reference) = reference {
            streaming.retain(|(_, lsn)| lsn.lag_behind(reference) <= max_lag);
        }
    }
    let count = settings.node_count.max(1) as usize;
    if settings.site_survival {
        let streaming: BTreeSet<MemberName> = streaming.iter().map(|(n, _)| (*n).clone()).collect();
        return site_target(me, cluster, streaming, count, settings.strict);
    }
    if settings.mode == SyncMode::Quorum {
        let among: BTreeSet<MemberName> = streaming.iter().map(|(n, _)| (*n).clone()).collect();
        return Copies {
            k: count.min(among.len()),
            among,
        };
    }
    // Keep the current synchronous standbys while they stream (no churn), then fill up.
    let mut among: BTreeSet<MemberName> = streaming
        .iter()
        .filter(|(n, _)| claimed.among.contains(*n))
        .map(|(n, _)| (*n).clone())
        .take(count)
        .collect();
    for (name, _) in &streaming {
        if among.len() >= count {
            break;
        }
        among.insert((*name).clone());
    }
    Copies {
        k: among.len(),
        among,
    }
}

/// `synchronous_site_survival`'s target: `ANY k` of every eligible streaming standby with `k`
/// one more than those inside the primary's site (at least `count`). With none outside it
/// streaming, strict mode also names the eligible members outside the site that do not stream
/// (or wants one standby more than it names, `*`), so commits wait for one of them; non-strict
/// mode falls back to `ANY min(count, n)` of the streaming ones (degraded).
fn site_target(
    me: &MemberName,
    cluster: &ClusterState,
    mut among: BTreeSet<MemberName>,
    count: usize,
    strict: bool,
) -> Copies {
    let sites = Sites::of(me, cluster);
    let inside = among.iter().filter(|m| !sites.outside(m)).count();
    let outside = among.len() - inside;
    if outside == 0 && !strict {
        return Copies {
            k: count.min(among.len()),
            among,
        };
    }
    if outside == 0 {
        among.extend(
            cluster
                .members
                .keys()
                .filter(|m| *m != me && sites.outside(m) && !nosync(cluster, m))
                .cloned(),
        );
        let named = among.len();
        let k = if named > inside {
            count.max(inside + 1).min(named)
        } else {
            inside + 1
        };
        return Copies { k, among };
    }
    Copies {
        k: count.max(inside + 1).min(among.len()),
        among,
    }
}

/// Whether the `sync` record is `me`'s, of `generation`: only then does its claim speak of the
/// commits this primary acknowledged.
fn owns_record(me: &MemberName, generation: Generation, cluster: &ClusterState) -> bool {
    cluster.sync.generation == generation && cluster.sync.leader.as_ref() == Some(me)
}

/// What a standby about to be promoted in strict mode loads before `pg_ctl promote`, so that
/// no commit is acknowledged under a weaker rule between the promotion and the first names the
/// new primary plans: `*` (any one standby), or, with `synchronous_site_survival`, `ANY k` over
/// every eligible member with `k` one more than those in its own site, as [`site_target`]
/// with every member counted as streaming (`*` alone would let a standby of the same site
/// acknowledge commits that losing the site loses). Non-strict mode loads nothing: it
/// degrades until the names are planned, as it does without a standby.
pub fn before_promotion(
    me: &MemberName,
    cluster: &ClusterState,
    settings: &SyncSettings,
) -> String {
    if settings.site_survival && Sites::of(me, cluster).home.is_some() {
        let among: BTreeSet<MemberName> = cluster
            .members
            .keys()
            .filter(|m| *m != me && !nosync(cluster, m))
            .cloned()
            .collect();
        let copies = site_target(
            me,
            cluster,
            among,
            settings.node_count.max(1) as usize,
            true,
        );
        return standby_names(&copies, SyncMode::Quorum, true);
    }
    standby_names(&Copies::default(), settings.mode, true)
}

/// The names the lease holder loads before it starts its stopped server as the primary. The
/// agent's own copy of the names is lost when the agent restarts with its database (a crash of
/// both), and a server started without names would acknowledge commits the `sync` record says
/// its standbys hold: first what the record claims for this generation (`ANY k (...)`), else,
/// in strict mode, what a promotion loads. `None`: nothing to wait for (synchronous mode off,
/// or non-strict with nothing claimed, which degrades until the names are planned).
pub fn before_start(
    me: &MemberName,
    generation: Generation,
    cluster: &ClusterState,
    settings: &SyncSettings,
) -> Option<String> {
    if settings.mode == SyncMode::Off {
        return None;
    }
    if owns_record(me, generation, cluster) {
        let claimed = Copies::claimed(cluster, generation);
        if claimed.k > 0 {
            return Some(standby_names(&claimed, SyncMode::Quorum, settings.strict));
        }
    }
    settings
        .strict
        .then(|| before_promotion(me, cluster, settings))
}

/// The next step towards the wanted synchronous standbys, with its reason; `None` when the
/// record and `synchronous_standby_names` already say what they should, or when the next step
/// must wait for a standby.
pub fn plan(
    me: &MemberName,
    generation: Generation,
    cluster: &ClusterState,
    db: &LocalStatus,
    silent: &BTreeSet<String>,
    applied: Option<&SyncNamesApplied>,
    settings: &SyncSettings,
) -> Option<(Action, String)> {
    let has_record = owns_record(me, generation, cluster);
    let claimed = if has_record {
        Copies::claimed(cluster, generation)
    } else {
        Copies::none()
    };
    let set_names =
        |value: String, reason: String| Some((Action::SetSyncNames { generation, value }, reason));

    if settings.mode == SyncMode::Off {
        if has_record && !cluster.sync.standbys.is_empty() {
            return Some((
                Copies::none().record(generation, false),
                "synchronous mode is off: clearing the synchronous standbys".into(),
            ));
        }
        if !db.synchronous_standby_names.is_empty() {
            return set_names(
                String::new(),
                "synchronous mode is off: replicating asynchronously".into(),
            );
        }
        return None;
    }
    if !has_record {
        return Some((
            Copies::none().record(generation, false),
            format!("recording the synchronous standbys of generation {generation}"),
        ));
    }

    // The record's site guarantee follows its claim and the members' current sites, before
    // anything else changes (a weaker one first of all).
    let sites = Sites::of(me, cluster);
    let survives = |copies: &Copies| settings.site_survival && sites.survive(copies);
    if cluster.sync.site_guarantee != survives(&claimed) {
        let reason = if survives(&claimed) {
            format!(
                "every acknowledged commit is on a member outside site {}: losing that site \
                 loses none",
                sites.home()
            )
        } else {
            format!(
                "acknowledged commits are no longer known to be outside site {}: losing that \
                 site may lose some (degraded)",
                sites.home()
            )
        };
        return Some((claimed.record(generation, survives(&claimed)), reason));
    }

    let wanted = target(me, &claimed, cluster, db, silent, settings);
    // Why a standby PostgreSQL lists as streaming is left out, for the log.
    let silent_note = if silent.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = silent.iter().map(String::as_str).collect();
        format!(
            " ({} listed as streaming but confirmed nothing for ttl: cut off?)",
            names.join(", ")
        )
    };
    // `synchronous_site_survival` counts copies whichever standbys hold them: `ANY k`.
    let naming = if settings.site_survival {
        SyncMode::Quorum
    } else {
        settings.mode
    };
    let names = standby_names(&wanted, naming, settings.strict);
    if db.synchronous_standby_names != names {
        if wanted.implies(&claimed) {
            let reason = if settings.site_survival && wanted.k > 0 && !sites.survive(&wanted) {
                format!(
                    "no standby outside site {} is streaming: setting synchronous replication \
                     to {}; losing that site may lose acknowledged commits (degraded)",
                    sites.home(),
                    wanted.describe()
                )
            } else if settings.site_survival && wanted.k > wanted.among.len() {
                format!(
                    "no standby outside site {} is streaming: blocking commits until one is \
                     (synchronous_site_survival, synchronous_mode_strict)",
                    sites.home()
                )
            } else if wanted.k == 0 && settings.strict {
                "no synchronous standby is available: blocking commits (synchronous_mode_strict)"
                    .to_owned()
            } else if wanted.k == 0 {
                "no synchronous standby is available: replicating asynchronously (degraded)"
                    .to_owned()
            } else {
                format!("setting synchronous replication to {}", wanted.describe())
            };
            return set_names(names, reason + &silent_note);
        }
        // Weaken the claim to what the current and the wanted names both guarantee.
        let current = Copies::guaranteed_by(&db.synchronous_standby_names);
        let among: BTreeSet<MemberName> = claimed
            .among
            .iter()
            .chain(&wanted.among)
            .chain(
                current
                    .among
                    .iter()
                    .filter(|m| cluster.members.contains_key(*m)),
            )
            .cloned()
            .collect();
        let k_current = current
            .k
            .saturating_sub(current.among.difference(&among).count());
        let weaker = Copies {
            k: claimed.k.min(wanted.k).min(k_current),
            among,
        };
        let reason = if weaker.k == 0 {
            "no synchronous standby is available: clearing the synchronous standbys".to_owned()
        } else {
            format!(
                "setting leader to {me}, quorum to {} before changing synchronous_standby_names",
                weaker.describe()
            )
        };
        return Some((
            weaker.record(generation, survives(&weaker)),
            reason + &silent_note,
        ));
    }

    // A claim on more standbys than are named (strict site survival waiting for one) is
    // never recorded.
    if claimed == wanted || wanted.k > wanted.among.len() {
        return None;
    }
    let confirmed = wanted.among.iter().all(|name| {
        db.replication.iter().any(|w| {
            w.application_name == name.as_str()
                && matches!(w.sync_state.as_str(), "sync" | "quorum")
        })
    });
    if !confirmed {
        return None;
    }
    if !claimed.implies(&wanted) {
        // Commits acknowledged before the names took effect may be on other standbys only.
        let Some(applied) = applied.filter(|a| a.generation == generation && a.value == names)
        else {
            return set_names(
                names,
                "noting the WAL position at which synchronous_standby_names took effect".into(),
            );
        };
        let caught_up = db
            .replication
            .iter()
            .filter(|w| {
                wanted
                    .among
                    .iter()
                    .any(|m| m.as_str() == w.application_name)
            })
            .filter(|w| w.flush_lsn.is_some_and(|lsn| lsn >= applied.at))
            .count();
        if caught_up < wanted.k {
            return None;
        }
    }
    let added: Vec<&str> = wanted
        .among
        .difference(&claimed.among)
        .map(|m| m.as_str())
        .collect();
    let reason = if added.is_empty() {
        format!("setting leader to {me}, quorum to {}", wanted.describe())
    } else {
        format!(
            "assigning synchronous standby status to {} ({})",
            added.join(", "),
            wanted.describe()
        )
    };
    Some((wanted.record(generation, survives(&wanted)), reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::WalSender;
    use crate::state::{Member, MemberStatus, SyncRecord};
    use crate::types::{Lsn, UnixMillis};

    const GEN: Generation = Generation(7);

    fn n(s: &str) -> MemberName {
        MemberName::from(s)
    }

    fn set(names: &[&str]) -> BTreeSet<MemberName> {
        names.iter().map(|s| n(s)).collect()
    }

    /// Members a (the primary) to d; `record` is (standbys, quorum) of generation `GEN`.
    fn cluster(record: Option<(&[&str], u32)>, nosync: &[&str]) -> ClusterState {
        let mut c = ClusterState::default();
        for name in ["a", "b", "c", "d"] {
            let tags = if nosync.contains(&name) {
                serde_json::from_value(serde_json::json!({"nosync": true})).unwrap()
            } else {
                crate::state::Tags::default()
            };
            c.members.insert(
                n(name),
                Member {
                    api_url: String::new(),
                    conn_url: Some("postgres://h:1/postgres".into()),
                    raft_addr: None,
                    version: String::new(),
                    tags,
                    proxy_url: None,
                    status: MemberStatus::default(),
                    reported_at: UnixMillis(0),
                },
            );
        }
        if let Some((standbys, quorum)) = record {
            c.sync = SyncRecord {
                generation: GEN,
                leader: Some(n("a")),
                standbys: set(standbys),
                quorum,
                site_guarantee: false,
            };
        }
        c
    }

    /// WAL senders as (name, state, sync_state, flush).
    fn db(senders: &[(&str, &str, &str, u64)], names: &str) -> LocalStatus {
        LocalStatus {
            replication: senders
                .iter()
                .map(|(name, state, sync, lsn)| WalSender {
                    usename: "replicator".into(),
                    application_name: (*name).into(),
                    client_addr: None,
                    state: (*state).into(),
                    sync_state: (*sync).into(),
                    sync_priority: 0,
                    flush_lsn: Some(Lsn(*lsn)),
                })
                .collect(),
            synchronous_standby_names: names.into(),
            ..Default::default()
        }
    }

    fn settings(mode: SyncMode, count: u32, strict: bool) -> SyncSettings {
        SyncSettings {
            mode,
            strict,
            node_count: count,
            maximum_lag_on_syncnode: None,
            site_survival: false,
        }
    }

    fn on(count: u32, strict: bool) -> SyncSettings {
        settings(SyncMode::On, count, strict)
    }

    fn quorum(count: u32, strict: bool) -> SyncSettings {
        settings(SyncMode::Quorum, count, strict)
    }

    fn applied(value: &str, at: u64) -> Option<SyncNamesApplied> {
        Some(SyncNamesApplied {
            generation: GEN,
            value: value.into(),
            at: Lsn(at),
        })
    }

    struct Case {
        name: &'static str,
        cluster: ClusterState,
        db: LocalStatus,
        applied: Option<SyncNamesApplied>,
        settings: SyncSettings,
        expect: Option<Action>,
    }

    fn record(standbys: &[&str], quorum: u32) -> Option<Action> {
        Some(Action::SetSyncRecord {
            generation: GEN,
            standbys: set(standbys),
            quorum,
            site_guarantee: false,
        })
    }

    fn names(value: &str) -> Option<Action> {
        Some(Action::SetSyncNames {
            generation: GEN,
            value: value.into(),
        })
    }

    fn check(cases: Vec<Case>) {
        let mut failures = Vec::new();
        for case in cases {
            let got = plan(
                &n("a"),
                GEN,
                &case.cluster,
                &case.db,
                &BTreeSet::new(),
                case.applied.as_ref(),
                &case.settings,
            )
            .map(|(a, _)| a);
            if got != case.expect {
                failures.push(format!(
                    "{}: expected {:?}, got {:?}",
                    case.name, case.expect, got
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    const FIRST_B: &str = "FIRST 1 (\"b\")";
    const FIRST_C: &str = "FIRST 1 (\"c\")";
    const ANY_1_BC: &str = "ANY 1 (\"b\",\"c\")";
    const ANY_2_BC: &str = "ANY 2 (\"b\",\"c\")";

    /// A standby PostgreSQL still lists as streaming but that confirmed nothing for `ttl`
    /// while commits waited (cut off, its connection not yet timed out) is replaced like one
    /// that stopped streaming; not silent, it stays.
    #[test]
    fn a_silent_standby_counts_as_gone() {
        let listed = db(
            &[
                ("b", "streaming", "sync", 10),
                ("c", "streaming", "async", 20),
            ],
            FIRST_B,
        );
        let step = |silent: &[&str], record: (&[&str], u32), strict: bool| {
            let silent: BTreeSet<String> = silent.iter().map(|s| (*s).to_owned()).collect();
            plan(
                &n("a"),
                GEN,
                &cluster(Some(record), &[]),
                &listed,
                &silent,
                None,
                &on(1, strict),
            )
        };
        let action = |silent: &[&str], record: (&[&str], u32), strict: bool| {
            step(silent, record, strict).map(|(a, _)| a)
        };
        assert_eq!(action(&[], (&["b"], 0), false), None);
        let (_, reason) = step(&["b"], (&["b"], 0), false).unwrap();
        assert!(
            reason.ends_with("(b listed as streaming but confirmed nothing for ttl: cut off?)"),
            "{reason}"
        );
        assert_eq!(action(&["b"], (&["b"], 0), false), record(&["b", "c"], 1));
        assert_eq!(action(&["b"], (&["b", "c"], 1), false), names(FIRST_C));
        // Both silent in strict mode: nothing to name but what blocks.
        assert_eq!(action(&["b", "c"], (&["b"], 0), true), record(&[], 0));
    }

    #[test]
    fn mode_on_steps() {
        check(vec![
            Case {
                name: "a new primary first creates its own (empty) record",
                cluster: cluster(None, &[]),
                db: db(&[("b", "streaming", "async", 10)], ""),
                applied: None,
                settings: on(1, false),
                expect: record(&[], 0),
            },
            Case {
                name: "then names the most advanced streaming standby",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_B),
            },
            Case {
                name: "and records it only once PostgreSQL reports it sync",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "potential", 10)], FIRST_B),
                applied: applied(FIRST_B, 5),
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "without the position at which the names took effect, notes it first",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_B),
            },
            Case {
                name: "a position noted by an earlier generation does not count",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: Some(SyncNamesApplied {
                    generation: Generation(6),
                    value: FIRST_B.into(),
                    at: Lsn(5),
                }),
                settings: on(1, false),
                expect: names(FIRST_B),
            },
            Case {
                name: "a sync standby still short of that position is not recorded yet",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: applied(FIRST_B, 11),
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "records a sync standby that flushed past that position",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: applied(FIRST_B, 10),
                settings: on(1, false),
                expect: record(&["b"], 0),
            },
            Case {
                name: "a settled primary does nothing",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 20),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: on(1, false),
                expect: None,
            },
            Case {
                name: "a standby that stopped streaming: first widen the record to both",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(&[("c", "streaming", "async", 20)], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "then wait for the replacement",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("c", "streaming", "async", 20)], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_C),
            },
            Case {
                name: "which enters alone once it has every earlier commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("c", "streaming", "sync", 20)], FIRST_C),
                applied: applied(FIRST_C, 20),
                settings: on(1, false),
                expect: record(&["c"], 0),
            },
            Case {
                name: "strict mode with no standby claims nothing, then blocks commits",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(&[], FIRST_B),
                applied: None,
                settings: on(1, true),
                expect: record(&[], 0),
            },
            Case {
                name: "strict mode: commits block until a standby connects",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[], FIRST_B),
                applied: None,
                settings: on(1, true),
                expect: names("*"),
            },
            Case {
                name: "non-strict mode with no standby degrades to asynchronous",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[], FIRST_B),
                applied: None,
                settings: on(1, false),
                expect: names(""),
            },
            Case {
                name: "nosync members are never synchronous",
                cluster: cluster(Some((&[], 0)), &["b"]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_C),
            },
            Case {
                // Regression: the configuration accepts `nosync: "on"` (Patroni's spellings),
                // but this rule read only a JSON `true` and made such a member synchronous.
                name: "nosync written as a string is nosync too",
                cluster: {
                    let mut c = cluster(Some((&[], 0)), &[]);
                    c.members.get_mut(&n("b")).unwrap().tags =
                        serde_json::from_value(serde_json::json!({"nosync": "on"})).unwrap();
                    c
                },
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: on(1, false),
                expect: names(FIRST_C),
            },
            Case {
                name: "synchronous_node_count 2 names two standbys",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 5),
                        ("d", "catchup", "async", 1),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: on(2, false),
                expect: names("FIRST 2 (\"b\",\"c\")"),
            },
            Case {
                name: "maximum_lag_on_syncnode: a synchronous standby that fell behind is swapped",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 100),
                        ("c", "streaming", "async", 5000),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: SyncSettings {
                    maximum_lag_on_syncnode: Some(1000),
                    ..on(1, false)
                },
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "maximum_lag_on_syncnode: a standby within the limit is kept",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 4500),
                        ("c", "streaming", "async", 5000),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: SyncSettings {
                    maximum_lag_on_syncnode: Some(1000),
                    ..on(1, false)
                },
                expect: None,
            },
            Case {
                name: "maximum_lag_on_syncnode: a lone standby far behind the primary is not named",
                cluster: cluster(Some((&[], 0)), &[]),
                db: LocalStatus {
                    wal_position: Some(Lsn(9000)),
                    ..db(&[("b", "streaming", "async", 100)], "")
                },
                applied: None,
                settings: SyncSettings {
                    maximum_lag_on_syncnode: Some(1000),
                    ..on(1, false)
                },
                expect: None,
            },
            Case {
                name: "switching synchronous mode off clears the record first",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: None,
                settings: SyncSettings::default(),
                expect: record(&[], 0),
            },
            Case {
                name: "then the names",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[("b", "streaming", "sync", 10)], FIRST_B),
                applied: None,
                settings: SyncSettings::default(),
                expect: names(""),
            },
        ]);
    }

    #[test]
    fn quorum_mode_steps() {
        let both_quorum = |names: &str| {
            db(
                &[
                    ("b", "streaming", "quorum", 10),
                    ("c", "streaming", "quorum", 10),
                ],
                names,
            )
        };
        check(vec![
            Case {
                name: "names every streaming standby, ANY k",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 5),
                    ],
                    "",
                ),
                applied: None,
                settings: quorum(1, false),
                expect: names(ANY_1_BC),
            },
            Case {
                name: "records 1 of 2 (quorum 1) once both report quorum and caught up",
                cluster: cluster(Some((&[], 0)), &[]),
                db: both_quorum(ANY_1_BC),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "not while one of them is not counted by PostgreSQL yet",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "potential", 10),
                    ],
                    ANY_1_BC,
                ),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: None,
            },
            Case {
                name: "raising the count raises ANY k first (the record still asks for 2 positions)",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: both_quorum(ANY_1_BC),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(2, false),
                expect: names(ANY_2_BC),
            },
            Case {
                name: "then lowers the quorum once both hold every earlier commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: both_quorum(ANY_2_BC),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(2, false),
                expect: record(&["b", "c"], 0),
            },
            Case {
                name: "but not while one of them may lack an earlier commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "quorum", 9),
                    ],
                    ANY_2_BC,
                ),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(2, false),
                expect: None,
            },
            Case {
                name: "lowering the count raises the quorum first",
                cluster: cluster(Some((&["b", "c"], 0)), &[]),
                db: both_quorum(ANY_2_BC),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(1, false),
                expect: record(&["b", "c"], 1),
            },
            Case {
                name: "then lowers ANY k",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: both_quorum(ANY_2_BC),
                applied: applied(ANY_2_BC, 10),
                settings: quorum(1, false),
                expect: names(ANY_1_BC),
            },
            Case {
                name: "a new voter joins the record before the names (raising the quorum)",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "quorum", 10),
                        ("d", "streaming", "async", 10),
                    ],
                    ANY_1_BC,
                ),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: record(&["b", "c", "d"], 2),
            },
            Case {
                name: "and the names follow",
                cluster: cluster(Some((&["b", "c", "d"], 2)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "quorum", 10),
                        ("c", "streaming", "quorum", 10),
                        ("d", "streaming", "async", 10),
                    ],
                    ANY_1_BC,
                ),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: names("ANY 1 (\"b\",\"c\",\"d\")"),
            },
            Case {
                name: "a voter that left: the names shrink first (fewer voters, same k)",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("b", "streaming", "quorum", 10)], ANY_1_BC),
                applied: applied(ANY_1_BC, 10),
                settings: quorum(1, false),
                expect: names("ANY 1 (\"b\")"),
            },
            Case {
                name: "the record shrinks once the remaining voter holds every commit",
                cluster: cluster(Some((&["b", "c"], 1)), &[]),
                db: db(&[("b", "streaming", "quorum", 10)], "ANY 1 (\"b\")"),
                applied: applied("ANY 1 (\"b\")", 10),
                settings: quorum(1, false),
                expect: record(&["b"], 0),
            },
            Case {
                name: "strict quorum mode with no standby blocks commits as Patroni does",
                cluster: cluster(Some((&[], 0)), &[]),
                db: db(&[], ""),
                applied: None,
                settings: quorum(1, true),
                expect: names("ANY 1 (*)"),
            },
            Case {
                name: "switching from on to quorum keeps the claim while the names change",
                cluster: cluster(Some((&["b"], 0)), &[]),
                db: db(
                    &[
                        ("b", "streaming", "sync", 10),
                        ("c", "streaming", "async", 10),
                    ],
                    FIRST_B,
                ),
                applied: None,
                settings: quorum(1, false),
                expect: record(&["b", "c"], 1),
            },
        ]);
    }

    /// a (the primary) and b in site east, c and d in west, unless `sites` says otherwise;
    /// `record` is (standbys, quorum, site_guarantee) of generation `GEN`.
    fn sited(record: Option<(&[&str], u32, bool)>, sites: [&str; 4]) -> ClusterState {
        let mut c = cluster(record.map(|(s, q, _)| (s, q)), &[]);
        for (name, site) in ["a", "b", "c", "d"].into_iter().zip(sites) {
            let tags = if site.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "site": site })
            };
            c.members.get_mut(&n(name)).unwrap().tags = serde_json::from_value(tags).unwrap();
        }
        c.sync.site_guarantee = record.is_some_and(|(_, _, site)| site);
        c
    }

    const TWO_SITES: [&str; 4] = ["east", "east", "west", "west"];
    const ANY_2_BCD: &str = "ANY 2 (\"b\",\"c\",\"d\")";

    fn site_record(standbys: &[&str], quorum: u32, site_guarantee: bool) -> Option<Action> {
        Some(Action::SetSyncRecord {
            generation: GEN,
            standbys: set(standbys),
            quorum,
            site_guarantee,
        })
    }

    fn surviving(mode: SyncMode, count: u32, strict: bool) -> SyncSettings {
        SyncSettings {
            site_survival: true,
            ..settings(mode, count, strict)
        }
    }

    fn all_quorum(names: &str) -> LocalStatus {
        db(
            &[
                ("b", "streaming", "quorum", 10),
                ("c", "streaming", "quorum", 10),
                ("d", "streaming", "quorum", 10),
            ],
            names,
        )
    }

    /// `synchronous_site_survival`: `ANY (local standbys + 1)` of every standby, the record's
    /// site guarantee kept truthful (weakened before the names), strict blocking and non-strict
    /// degrading when no standby outside the primary's site streams.
    #[test]
    fn site_survival_steps() {
        let only_b = |names: &str| db(&[("b", "streaming", "quorum", 10)], names);
        check(vec![
            Case {
                name: "names ANY k of every standby, k = the standbys in the primary's site + 1",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: db(
                    &[
                        ("b", "streaming", "async", 10),
                        ("c", "streaming", "async", 10),
                        ("d", "streaming", "async", 10),
                    ],
                    "",
                ),
                applied: None,
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: names(ANY_2_BCD),
            },
            Case {
                name: "mode on names ANY k too (FIRST cannot count copies across sites)",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: all_quorum(""),
                applied: None,
                settings: surviving(SyncMode::On, 1, false),
                expect: names(ANY_2_BCD),
            },
            Case {
                name: "synchronous_node_count above that wins",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: all_quorum(""),
                applied: None,
                settings: surviving(SyncMode::Quorum, 3, false),
                expect: names("ANY 3 (\"b\",\"c\",\"d\")"),
            },
            Case {
                name: "the record claims the site guarantee once every voter has every commit",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: site_record(&["b", "c", "d"], 1, true),
            },
            Case {
                name: "not while the standbys may lack commits acknowledged before the names",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 11),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: None,
            },
            Case {
                name: "then nothing changes",
                cluster: sited(Some((&["b", "c", "d"], 1, true)), TWO_SITES),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: None,
            },
            Case {
                name: "the remote standbys stop, non-strict: the record weakens first",
                cluster: sited(Some((&["b", "c", "d"], 1, true)), TWO_SITES),
                db: only_b(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: site_record(&["b", "c", "d"], 2, false),
            },
            Case {
                name: "then the names degrade to the local standby",
                cluster: sited(Some((&["b", "c", "d"], 2, false)), TWO_SITES),
                db: only_b(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: names("ANY 1 (\"b\")"),
            },
            Case {
                name: "the remote standbys stop, strict: the names stay, commits wait for one",
                cluster: sited(Some((&["b", "c", "d"], 1, true)), TWO_SITES),
                db: only_b(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, true),
                expect: None,
            },
            Case {
                name: "strict with only a local standby streaming names the remote members",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: only_b(""),
                applied: None,
                settings: surviving(SyncMode::Quorum, 1, true),
                expect: names(ANY_2_BCD),
            },
            Case {
                name: "and never records the claim while they do not stream",
                cluster: sited(Some((&[], 0, false)), TWO_SITES),
                db: only_b(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, true),
                expect: None,
            },
            Case {
                name: "strict with no member outside the site: one standby more than it names",
                cluster: sited(Some((&[], 0, false)), ["east"; 4]),
                db: only_b(""),
                applied: None,
                settings: surviving(SyncMode::Quorum, 1, true),
                expect: names("ANY 2 (\"b\",*)"),
            },
            Case {
                name: "which it never records",
                cluster: sited(Some((&[], 0, false)), ["east"; 4]),
                db: only_b("ANY 2 (\"b\",*)"),
                applied: applied("ANY 2 (\"b\",*)", 10),
                settings: surviving(SyncMode::Quorum, 1, true),
                expect: None,
            },
            Case {
                name: "remote standbys relabelled into the primary's site: guarantee withdrawn",
                cluster: sited(Some((&["b", "c", "d"], 1, true)), ["east"; 4]),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: site_record(&["b", "c", "d"], 1, false),
            },
            Case {
                name: "a primary without a site tag has no site to survive",
                cluster: sited(
                    Some((&["b", "c", "d"], 1, true)),
                    ["", "east", "west", "west"],
                ),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: site_record(&["b", "c", "d"], 1, false),
            },
            Case {
                name: "an existing claim that already implies the guarantee gets it recorded",
                cluster: sited(Some((&["b", "c", "d"], 1, false)), TWO_SITES),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: surviving(SyncMode::Quorum, 1, false),
                expect: site_record(&["b", "c", "d"], 1, true),
            },
            Case {
                name: "switching the policy off withdraws the guarantee",
                cluster: sited(Some((&["b", "c", "d"], 1, true)), TWO_SITES),
                db: all_quorum(ANY_2_BCD),
                applied: applied(ANY_2_BCD, 10),
                settings: quorum(1, false),
                expect: site_record(&["b", "c", "d"], 1, false),
            },
        ]);
        // The degraded step says so (the log line).
        let (_, reason) = plan(
            &n("a"),
            GEN,
            &sited(Some((&["b", "c", "d"], 2, false)), TWO_SITES),
            &only_b(ANY_2_BCD),
            &BTreeSet::new(),
            applied(ANY_2_BCD, 10).as_ref(),
            &surviving(SyncMode::Quorum, 1, false),
        )
        .unwrap();
        assert!(
            reason.contains("no standby outside site east is streaming")
                && reason.contains("degraded"),
            "{reason}"
        );
    }

    #[test]
    fn names_are_written_and_read_back() {
        let bc = Copies {
            k: 2,
            among: set(&["b", "c"]),
        };
        assert_eq!(
            standby_names(&bc, SyncMode::On, false),
            "FIRST 2 (\"b\",\"c\")"
        );
        assert_eq!(standby_names(&bc, SyncMode::Quorum, false), ANY_2_BC);
        assert_eq!(standby_names(&Copies::none(), SyncMode::On, true), "*");
        assert_eq!(
            standby_names(&Copies::none(), SyncMode::Quorum, true),
            "ANY 1 (*)"
        );
        assert_eq!(standby_names(&Copies::none(), SyncMode::On, false), "");
        for mode in [SyncMode::On, SyncMode::Quorum] {
            assert_eq!(Copies::guaranteed_by(&standby_names(&bc, mode, false)), bc);
        }
        // Patroni's own spellings.
        assert_eq!(Copies::guaranteed_by("2 (b,c)"), bc);
        assert_eq!(
            Copies::guaranteed_by("b"),
            Copies {
                k: 1,
                among: set(&["b"])
            }
        );
        for nothing in [
            "",
            "*",
            "ANY 1 (*)",
            "FIRST 0 (b)",
            "FIRST x (b)",
            "ANY 2 (b",
        ] {
            assert_eq!(
                Copies::guaranteed_by(nothing),
                Copies::none(),
                "{nothing:?}"
            );
        }
        let quoted = Copies::guaranteed_by("ANY 1 (\"we\"\"ird\")");
        assert_eq!(quoted.among, set(&["we\"ird"]));
    }

    #[test]
    fn implication_between_claims() {
        let c = |k: usize, among: &[&str]| Copies {
            k,
            among: set(among),
        };
        // Every commit on both b and c is on one of them, and on b.
        assert!(c(2, &["b", "c"]).implies(&c(1, &["b", "c"])));
        assert!(c(2, &["b", "c"]).implies(&c(1, &["b"])));
        // A commit on one of b, c is not known to be on both, nor on b.
        assert!(!c(1, &["b", "c"]).implies(&c(2, &["b", "c"])));
        assert!(!c(1, &["b", "c"]).implies(&c(1, &["b"])));
        // Adding a voter and raising the quorum keeps the claim.
        assert!(c(1, &["b"]).implies(&c(1, &["b", "c"])));
        // Nothing implies the empty claim; the empty claim implies nothing else.
        assert!(Copies::none().implies(&Copies::none()));
        assert!(!Copies::none().implies(&c(1, &["b"])));
    }
}
