//! The nemeses: which faults exist, and the schedule of them drawn from a seed.
//!
//! The schedule is pure and deterministic: the same seed, count and nemesis list give the same
//! list of [`FaultSpec`]s, stored as `schedule.json` so that `--replay` runs it again. A spec
//! names its target by *role* (the primary, a replica, the synchronous standby) plus a number
//! that picks among the members holding it when the fault starts; which host that is depends on
//! the cluster at that moment. Faults come in rounds: each round is every nemesis once, in an
//! order drawn from the seed, so even a short run mixes every kind.
//!
//! The injection of each fault and its recovery is in [`inject`].

pub mod inject;

use clap::ValueEnum;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Nemesis {
    /// kill -9 of a member's agent (its database lives on), restarted after 1-3 s.
    KillAgent,
    /// kill -9 of a member's postmaster (its agent lives on and restarts it).
    KillPostgres,
    /// kill -9 of every process of a member (agent and database: a host crash), restarted
    /// after 1-3 s.
    KillHost,
    /// SIGSTOP of a member's agent for 0.5, 1, 2 or 5 times ttl, then SIGCONT.
    PauseAgent,
    /// SIGSTOP of a member's postmaster for 0.5, 1, 2 or 5 times ttl, then SIGCONT.
    PausePostgres,
    /// SIGSTOP of a member's agent and postmaster for 0.5, 1, 2 or 5 times ttl, then SIGCONT.
    PauseHost,
    /// The primary cut off from its peers (clients and HAProxy still reach it) for 4-8 s.
    PartitionPrimary,
    /// A random member cut off from everything for 4-8 s.
    PartitionNode,
    /// The members split into a majority and a minority for 4-8 s.
    PartitionHalves,
    /// A bridge: A-B-C, A and C cannot see each other, B sees both, for 4-8 s.
    PartitionBridge,
    /// One member receives nothing from its peers (what it sends still arrives) for 4-8 s.
    PartitionOneWay,
    /// The primary's and its synchronous standby's hosts crashed together, restarted after 2 s.
    KillPrimaryAndSync,
    /// The host of the Raft leader crashed, restarted after 2 s.
    KillRaftLeader,
    /// Every agent killed and restarted, one after another.
    RestartStorm,
    /// The primary's WAL volume filled to the last byte for 5 s, then freed.
    WalFull,
    /// One host's wall clock jumps minutes forward or back for 5 s, then back: nothing may
    /// change.
    ClockJump,
    /// Operator: a switchover (to a named replica or any), during a fault or not.
    Switchover,
    /// Operator: a failover to a named replica, during a fault or not.
    Failover,
    /// Operator: pause (maintenance mode) for 4 s, then resume, during a fault or not.
    Maintenance,
    /// Operator: a member added (a new database node) or removed, during a fault or not.
    Membership,
    /// A whole site cut off from the other sites for 8-16 s: its hosts still reach each other,
    /// and the clients and HAProxy still reach them (clients inside that site keep writing).
    /// Multi-site shapes only.
    SiteCut,
    /// Every host of a site crashed together, restarted after 8-16 s. Multi-site shapes only.
    SiteCrash,
}

impl Nemesis {
    pub const ALL: [Nemesis; 22] = [
        Nemesis::KillAgent,
        Nemesis::KillPostgres,
        Nemesis::KillHost,
        Nemesis::PauseAgent,
        Nemesis::PausePostgres,
        Nemesis::PauseHost,
        Nemesis::PartitionPrimary,
        Nemesis::PartitionNode,
        Nemesis::PartitionHalves,
        Nemesis::PartitionBridge,
        Nemesis::PartitionOneWay,
        Nemesis::KillPrimaryAndSync,
        Nemesis::KillRaftLeader,
        Nemesis::RestartStorm,
        Nemesis::WalFull,
        Nemesis::ClockJump,
        Nemesis::Switchover,
        Nemesis::Failover,
        Nemesis::Maintenance,
        Nemesis::Membership,
        Nemesis::SiteCut,
        Nemesis::SiteCrash,
    ];

    /// The nemeses a run of this shape draws from when none are named: the site faults only
    /// where there are sites.
    pub fn defaults(has_sites: bool) -> Vec<Nemesis> {
        Nemesis::ALL
            .into_iter()
            .filter(|n| has_sites || !n.needs_sites())
            .collect()
    }

    /// Whether this fault hits a site (`tags.site`), so that it needs a multi-site shape.
    pub fn needs_sites(self) -> bool {
        matches!(self, Nemesis::SiteCut | Nemesis::SiteCrash)
    }

    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    fn is_operator(self) -> bool {
        matches!(
            self,
            Nemesis::Switchover | Nemesis::Failover | Nemesis::Maintenance | Nemesis::Membership
        )
    }
}

/// Whom a fault hits, by role when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Primary,
    Replica,
    /// Any member (database or witness).
    Any,
}

/// A milder fault an operator action is issued during.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Background {
    /// A replica's postmaster killed (its agent restarts it).
    KillReplicaPostgres,
    /// A replica cut off from its peers.
    PartitionReplica,
    /// A replica's agent stopped for one ttl.
    PauseReplicaAgent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub index: usize,
    pub nemesis: Nemesis,
    pub target: Target,
    /// Picks among the candidates (members with the target's role, sorted by name) and makes
    /// any other choice (a grouping, a candidate) when the fault starts.
    pub pick: u32,
    /// How long the fault lasts before it is healed (a pause: its multiple of ttl).
    pub hold_s: f64,
    /// clock-jump: the wall-clock offset, seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jump_s: i64,
    /// Operator actions: the fault they are issued during.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Background>,
    /// switchover: whether a candidate is named.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub named: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// `count` faults drawn from `nemeses` with `seed`; pauses last multiples of `ttl`.
pub fn schedule(seed: u64, count: usize, nemeses: &[Nemesis], ttl: f64) -> Vec<FaultSpec> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut faults = Vec::with_capacity(count);
    let mut round: Vec<Nemesis> = Vec::new();
    while faults.len() < count {
        if round.is_empty() {
            round = nemeses.to_vec();
            round.shuffle(&mut rng);
            round.reverse();
        }
        let Some(nemesis) = round.pop() else {
            break;
        };
        let index = faults.len();
        let target = match rng.gen_range(0..10) {
            0..=4 => Target::Primary,
            5..=7 => Target::Replica,
            _ => Target::Any,
        };
        let pick = rng.r#gen::<u32>();
        let hold_s = match nemesis {
            Nemesis::KillAgent | Nemesis::KillHost => rng.gen_range(1.0..3.0),
            Nemesis::PauseAgent | Nemesis::PausePostgres | Nemesis::PauseHost => {
                [0.5, 1.0, 2.0, 5.0][rng.gen_range(0..4)] * ttl
            }
            Nemesis::PartitionPrimary
            | Nemesis::PartitionNode
            | Nemesis::PartitionHalves
            | Nemesis::PartitionBridge
            | Nemesis::PartitionOneWay => rng.gen_range(4.0..8.0),
            Nemesis::KillPrimaryAndSync | Nemesis::KillRaftLeader => 2.0,
            // Longer than a failover takes, so that a lost site is replaced, not waited for.
            Nemesis::SiteCut | Nemesis::SiteCrash => rng.gen_range(8.0..16.0),
            Nemesis::WalFull | Nemesis::ClockJump => 5.0,
            Nemesis::Maintenance => 4.0,
            Nemesis::KillPostgres
            | Nemesis::RestartStorm
            | Nemesis::Switchover
            | Nemesis::Failover
            | Nemesis::Membership => 0.0,
        };
        let jump_s = if nemesis == Nemesis::ClockJump {
            let minutes = rng.gen_range(2..=10);
            if rng.gen_bool(0.5) {
                minutes * 60
            } else {
                -minutes * 60
            }
        } else {
            0
        };
        let background = if nemesis.is_operator() {
            match rng.gen_range(0..6) {
                0 => Some(Background::KillReplicaPostgres),
                1 => Some(Background::PartitionReplica),
                2 => Some(Background::PauseReplicaAgent),
                _ => None,
            }
        } else {
            None
        };
        let named = rng.gen_bool(0.5);
        faults.push(FaultSpec {
            index,
            nemesis,
            target,
            pick,
            hold_s: (hold_s * 100.0_f64).round() / 100.0,
            jump_s,
            background,
            named,
        });
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = schedule(7, 50, &Nemesis::ALL, 3.0);
        assert_eq!(a, schedule(7, 50, &Nemesis::ALL, 3.0));
        assert_ne!(a, schedule(8, 50, &Nemesis::ALL, 3.0));
        assert_eq!(a.len(), 50);
    }

    #[test]
    fn every_round_holds_every_nemesis_once() {
        let faults = schedule(1, Nemesis::ALL.len(), &Nemesis::ALL, 3.0);
        let mut kinds: Vec<Nemesis> = faults.iter().map(|f| f.nemesis).collect();
        kinds.sort();
        assert_eq!(kinds, Nemesis::ALL.to_vec());
    }

    #[test]
    fn site_faults_are_drawn_only_for_a_shape_with_sites() {
        let plain = Nemesis::defaults(false);
        assert!(!plain.iter().any(|n| n.needs_sites()));
        assert_eq!(plain.len(), Nemesis::ALL.len() - 2);
        assert_eq!(Nemesis::defaults(true), Nemesis::ALL.to_vec());
        for f in schedule(5, 100, &[Nemesis::SiteCut, Nemesis::SiteCrash], 3.0) {
            assert!((8.0..=16.0).contains(&f.hold_s), "{}", f.hold_s);
        }
    }

    #[test]
    fn pauses_last_multiples_of_ttl() {
        for f in schedule(3, 400, &[Nemesis::PauseAgent], 3.0) {
            assert!([1.5, 3.0, 6.0, 15.0].contains(&f.hold_s), "{}", f.hold_s);
        }
        for f in schedule(3, 100, &[Nemesis::ClockJump], 3.0) {
            assert!((120..=600).contains(&f.jump_s.abs()));
        }
    }

    #[test]
    fn names_are_the_same_on_the_command_line_and_in_files() {
        for n in Nemesis::ALL {
            assert_eq!(Nemesis::from_str(&n.name(), false), Ok(n));
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, format!("\"{}\"", n.name()));
        }
        assert!(Nemesis::from_str("kill-all", false).is_err());
    }

    #[test]
    fn the_schedule_survives_json() {
        let faults = schedule(11, 40, &Nemesis::ALL, 3.0);
        let text = serde_json::to_string(&faults).unwrap();
        let back: Vec<FaultSpec> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, faults);
    }
}
