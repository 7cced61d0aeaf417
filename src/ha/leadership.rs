//! When and to whom the Raft leader hands Raft leadership away (DESIGN section 4): the Raft
//! leader should not run on the database primary's host, so that a crash of that host needs no
//! Raft election before the primary's lease can be expired.
//!
//! Hand leadership only to a voter that Raft has just heard from *and* whose agent reported
//! recently (a hand-off to a dead voter stalls Raft until an election, long enough for a healthy
//! primary to fence itself; an agent's report alone is not evidence enough, as it stays fresh for
//! two loops after its host died), and only once the primary renewed its lease under this leader
//! (a leader elected because the old one's host died must first see the primary renew; right
//! after a promotion the cluster is busiest, and a hand-off there only adds risk).
//!
//! Pure: the arbiter's runtime (`node::arbiter`) passes what Raft and the state say, and
//! carries out the transfer [`HandOff::next`] returns.

use std::time::Duration;

use tokio::time::Instant;

use crate::state::ClusterState;
use crate::types::{Generation, MemberName, UnixMillis};

/// How long to wait between two attempts to hand Raft leadership away.
pub const TRANSFER_BACKOFF: Duration = Duration::from_secs(5);
/// Hand Raft leadership away only once the primary's lease has been renewed this often.
pub const SETTLED_RENEWALS: u64 = 3;

/// What the Raft leader knows when it considers handing leadership away.
#[derive(Clone, Copy, Debug)]
pub struct LeadershipView<'a> {
    pub me: &'a MemberName,
    pub cluster: &'a ClusterState,
    /// This node's Raft id.
    pub node: u64,
    /// The voters: (id, address).
    pub voters: &'a [(u64, String)],
    /// The voters Raft acknowledged a heartbeat from within the election timeout.
    pub heard: &'a [u64],
    pub now: Instant,
    pub wall_now: UnixMillis,
    pub loop_wait: Duration,
}

/// A transfer to carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub target: u64,
    pub addr: String,
}

/// The Raft leader's memory between arbiter ticks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandOff {
    /// The primary's lease (generation, renewals) when this node became the Raft leader.
    lease_at_election: Option<(Generation, u64)>,
    last_attempt: Option<Instant>,
    attempts: usize,
}

impl HandOff {
    /// This node was just elected Raft leader.
    pub fn elected(&mut self, cluster: &ClusterState) {
        self.lease_at_election = cluster.leader.as_ref().map(|l| (l.generation, l.renewals));
    }

    /// The transfer to make now, if one is due; an attempt is counted even when no voter
    /// qualifies, so the next one waits [`TRANSFER_BACKOFF`] and tries another voter.
    pub fn next(&mut self, v: &LeadershipView<'_>) -> Option<Transfer> {
        let settled = v.cluster.leader.as_ref().is_some_and(|l| {
            &l.member == v.me
                && l.renewals >= SETTLED_RENEWALS
                && self.lease_at_election != Some((l.generation, l.renewals))
        });
        let due = self
            .last_attempt
            .is_none_or(|t| v.now.saturating_duration_since(t) >= TRANSFER_BACKOFF);
        if !settled || !due {
            return None;
        }
        self.last_attempt = Some(v.now);
        let attempt = self.attempts;
        self.attempts += 1;
        let fresh_ms = 2 * v.loop_wait.as_millis() as u64;
        let alive = |addr: &str| {
            v.cluster.members.values().any(|m| {
                m.raft_addr.as_deref() == Some(addr)
                    && v.wall_now.0.saturating_sub(m.reported_at.0) <= fresh_ms
            })
        };
        let others: Vec<&(u64, String)> = v
            .voters
            .iter()
            .filter(|(id, addr)| *id != v.node && v.heard.contains(id) && alive(addr))
            .collect();
        if others.is_empty() {
            return None;
        }
        let (target, addr) = others[attempt % others.len()];
        Some(Transfer {
            target: *target,
            addr: addr.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Leader, Member, ReportedRole};

    const NOW_MS: u64 = 100_000;

    /// A cluster led by `a` (renewed `renewals` times), whose members run on Raft nodes 1-3
    /// (`a` on 1) and reported `age_ms` ago.
    fn cluster(renewals: u64, ages_ms: [u64; 3]) -> ClusterState {
        let mut c = ClusterState {
            leader: Some(Leader {
                member: "a".into(),
                generation: Generation(2),
                renewals,
                since: UnixMillis(0),
                renewed_at: UnixMillis(0),
                lease_ms: None,
            }),
            ..Default::default()
        };
        for (i, (name, age)) in ["a", "b", "c"].iter().zip(ages_ms).enumerate() {
            let mut m =
                Member::at_raft_addr(&format!("10.0.0.{}:2222", i + 1), ReportedRole::Replica);
            m.reported_at = UnixMillis(NOW_MS - age);
            c.members.insert((*name).into(), m);
        }
        c
    }

    fn voters() -> Vec<(u64, String)> {
        (1..=3).map(|i| (i, format!("10.0.0.{i}:2222"))).collect()
    }

    struct Row {
        name: &'static str,
        me: &'static str,
        renewals: u64,
        renewed_since_election: bool,
        ages_ms: [u64; 3],
        heard: &'static [u64],
        expect: Option<u64>,
    }

    #[test]
    fn hand_off_rows() {
        let rows = [
            Row {
                name: "the primary's host leading Raft hands leadership to a heard, reporting voter",
                me: "a",
                renewals: 5,
                renewed_since_election: true,
                ages_ms: [0, 100, 100],
                heard: &[2, 3],
                expect: Some(2),
            },
            Row {
                name: "a Raft leader that does not run the primary keeps leadership",
                me: "b",
                renewals: 5,
                renewed_since_election: true,
                ages_ms: [0, 100, 100],
                heard: &[1, 3],
                expect: None,
            },
            Row {
                name: "right after a promotion (few renewals) nothing is handed away",
                me: "a",
                renewals: 2,
                renewed_since_election: true,
                ages_ms: [0, 100, 100],
                heard: &[2, 3],
                expect: None,
            },
            Row {
                name: "a new Raft leader waits for the primary to renew under it",
                me: "a",
                renewals: 5,
                renewed_since_election: false,
                ages_ms: [0, 100, 100],
                heard: &[2, 3],
                expect: None,
            },
            Row {
                name: "a voter Raft has not heard from is never chosen, however fresh its report",
                me: "a",
                renewals: 5,
                renewed_since_election: true,
                ages_ms: [0, 100, 100],
                heard: &[3],
                expect: Some(3),
            },
            Row {
                name: "a heard voter whose agent stopped reporting is not chosen",
                me: "a",
                renewals: 5,
                renewed_since_election: true,
                ages_ms: [0, 2_500, 100],
                heard: &[2, 3],
                expect: Some(3),
            },
            Row {
                name: "no voter qualifies: no transfer",
                me: "a",
                renewals: 5,
                renewed_since_election: true,
                ages_ms: [0, 2_500, 2_500],
                heard: &[2, 3],
                expect: None,
            },
        ];
        let now = Instant::now();
        let voters = voters();
        for row in rows {
            let c = cluster(row.renewals, row.ages_ms);
            let mut hand_off = HandOff::default();
            if row.renewed_since_election {
                hand_off.elected(&cluster(row.renewals - 1, row.ages_ms));
            } else {
                hand_off.elected(&c);
            }
            let me: MemberName = row.me.into();
            let node = match row.me {
                "a" => 1,
                "b" => 2,
                _ => 3,
            };
            let view = LeadershipView {
                me: &me,
                cluster: &c,
                node,
                voters: &voters,
                heard: row.heard,
                now,
                wall_now: UnixMillis(NOW_MS),
                loop_wait: Duration::from_secs(1),
            };
            let got = hand_off.next(&view).map(|t| t.target);
            assert_eq!(got, row.expect, "{}", row.name);
        }
    }

    #[test]
    fn attempts_back_off_and_alternate_between_voters() {
        let c = cluster(5, [0, 100, 100]);
        let voters = voters();
        let me: MemberName = "a".into();
        let mut hand_off = HandOff::default();
        hand_off.elected(&cluster(4, [0, 100, 100]));
        let t0 = Instant::now();
        let at = |now| LeadershipView {
            me: &me,
            cluster: &c,
            node: 1,
            voters: &voters,
            heard: &[2, 3],
            now,
            wall_now: UnixMillis(NOW_MS),
            loop_wait: Duration::from_secs(1),
        };
        assert_eq!(hand_off.next(&at(t0)).map(|t| t.target), Some(2));
        assert_eq!(
            hand_off.next(&at(t0 + Duration::from_secs(1))),
            None,
            "backing off"
        );
        let again = hand_off.next(&at(t0 + TRANSFER_BACKOFF)).unwrap();
        assert_eq!((again.target, again.addr.as_str()), (3, "10.0.0.3:2222"));
    }
}
