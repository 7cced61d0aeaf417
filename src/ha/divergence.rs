//! Whether a standby has gone past the point where the leader's timeline forked off its own:
//! it then holds WAL the leader never had, cannot follow it ("new timeline N forked off current
//! database system timeline M before current recovery point"), and stays stuck until it is
//! rewound (or cloned again).
//!
//! This happens to an asynchronous standby that received and replayed the last WAL of a primary
//! that crashed before its synchronous standby had it (commits not yet acknowledged); that
//! synchronous standby is promoted, and its new timeline forks off before the asynchronous
//! standby's position. Patroni checks the same (`Rewind._check_timeline_and_lsn`).
//!
//! Pure: the standby's replay timeline and position come from the adapter (on PostgreSQL,
//! `IDENTIFY_SYSTEM` over a replication connection to itself: the SQL functions of PostgreSQL 15
//! report a standby's timeline only from its WAL receiver or its last restartpoint), the
//! leader's timeline switches from the replicated cluster history.

use crate::state::HistoryEntry;
use crate::types::{Lsn, Timeline};

/// How a standby's position relates to the leader's timeline history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// On the leader's timeline, or behind the point where the leader's history left its own:
    /// it can follow.
    Follows,
    /// It replayed WAL of `timeline` up to `position`, past `fork`, where the leader's history
    /// left that timeline: it cannot follow without a rewind.
    Diverged {
        timeline: Timeline,
        fork: Lsn,
        position: Lsn,
    },
    /// The history does not say where the standby's timeline ended: no conclusion (never act
    /// on a guess).
    Unknown,
}

/// `replay`: the standby's replay timeline and how far it has WAL on it; `leader_timeline`: the
/// timeline the leader runs on; `history`: the cluster's recorded timeline switches (each: the
/// timeline that ended and where).
pub fn standby_divergence(
    replay: (Timeline, Lsn),
    leader_timeline: Timeline,
    history: &[HistoryEntry],
) -> Divergence {
    let (timeline, position) = replay;
    if timeline >= leader_timeline {
        return Divergence::Follows;
    }
    // The last recorded end of the standby's timeline: a timeline ends once in a history, but a
    // history re-recorded after an operator's action may repeat it.
    let Some(end) = history.iter().rev().find(|e| e.timeline == timeline) else {
        return Divergence::Unknown;
    };
    // A standby at the fork point itself has nothing the leader lacks.
    if position > end.lsn {
        Divergence::Diverged {
            timeline,
            fork: end.lsn,
            position,
        }
    } else {
        Divergence::Follows
    }
}

/// Whether a member whose WAL ends at `replay` holds everything the primary of timeline
/// `former_timeline` had when that timeline began: it is on that timeline (or a later one), or
/// on the one just before it and exactly at the point where it forked off (at least as far, and
/// not past it into WAL the newer timeline never had). A member further behind lacks WAL that
/// may hold commits acknowledged in earlier generations; an unknown timeline holds nothing sure.
pub fn holds_timeline_start(
    replay: (Option<Timeline>, Lsn),
    former_timeline: Timeline,
    history: &[HistoryEntry],
) -> bool {
    let (Some(timeline), position) = replay else {
        return false;
    };
    if timeline >= former_timeline {
        return true;
    }
    if timeline.0 + 1 != former_timeline.0 {
        return false;
    }
    history
        .iter()
        .rev()
        .find(|e| e.timeline == timeline)
        .is_some_and(|end| position == end.lsn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{MemberName, UnixMillis};

    fn ended(timeline: u32, lsn: u64) -> HistoryEntry {
        HistoryEntry {
            timeline: Timeline(timeline),
            lsn: Lsn(lsn),
            reason: "no recovery target specified".into(),
            at: UnixMillis(0),
            new_leader: MemberName::from("b"),
        }
    }

    #[test]
    fn cases() {
        let history = [ended(1, 100), ended(2, 300)];
        let diverged = |timeline, fork, position| Divergence::Diverged {
            timeline: Timeline(timeline),
            fork: Lsn(fork),
            position: Lsn(position),
        };
        /// (case, the standby's replay timeline and position, the leader's timeline, the
        /// history, the verdict)
        type Case<'a> = (&'a str, (u32, u64), u32, &'a [HistoryEntry], Divergence);
        let cases: [Case; 7] = [
            (
                "on the leader's timeline",
                (3, 500),
                3,
                &history,
                Divergence::Follows,
            ),
            (
                "ahead of the leader (a stale view)",
                (4, 10),
                3,
                &history,
                Divergence::Follows,
            ),
            (
                "behind the fork of its timeline",
                (2, 250),
                3,
                &history,
                Divergence::Follows,
            ),
            (
                "exactly at the fork",
                (2, 300),
                3,
                &history,
                Divergence::Follows,
            ),
            (
                "past the fork of its timeline",
                (2, 301),
                3,
                &history,
                diverged(2, 300, 301),
            ),
            (
                "an older timeline, past its fork",
                (1, 150),
                3,
                &history,
                diverged(1, 100, 150),
            ),
            (
                "a timeline the history does not know",
                (1, 150),
                2,
                &[],
                Divergence::Unknown,
            ),
        ];
        for (name, (tl, lsn), leader, history, expected) in cases {
            let got = standby_divergence((Timeline(tl), Lsn(lsn)), Timeline(leader), history);
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn only_a_member_at_or_past_the_start_of_the_former_timeline_holds_it() {
        let history = [ended(1, 100), ended(2, 300)];
        // (why, replay timeline, position, former timeline, holds)
        let table = [
            ("on the former timeline", Some(3), 150, 3, true),
            ("on a later timeline", Some(4), 10, 3, true),
            ("at the fork of the timeline before", Some(2), 300, 3, true),
            ("behind the fork", Some(2), 299, 3, false),
            ("past the fork: diverged", Some(2), 301, 3, false),
            (
                "two timelines behind, even at its fork",
                Some(1),
                100,
                3,
                false,
            ),
            ("timeline unknown", None, 300, 3, false),
            ("the fork not recorded", Some(3), 400, 4, false),
        ];
        for (why, timeline, position, former, holds) in table {
            assert_eq!(
                holds_timeline_start(
                    (timeline.map(Timeline), Lsn(position)),
                    Timeline(former),
                    &history
                ),
                holds,
                "{why}"
            );
        }
    }
}
