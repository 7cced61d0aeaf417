//! openGauss's HA vocabulary: `local_role`, `db_state` and `detail_information` exactly as
//! `pg_stat_get_stream_replications()` returns them and `gs_ctl query` prints them, and what the
//! agent reads from them: whether the server is a primary or a standby, and whether a standby
//! in `Need repair` must be rebuilt.
//!
//! Pure; the strings are openGauss's (capitalised, with spaces). A value this module does not
//! know is kept as written, never guessed.

use std::fmt;

/// `local_role` / `peer_role`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalRole {
    /// A single instance: writable, but not waiting for any standby.
    Normal,
    Primary,
    Standby,
    CascadeStandby,
    MainStandby,
    /// Started with `-M pending`: replaying, waiting for `gs_ctl notify`.
    Pending,
    Unknown,
    Other(String),
}

impl LocalRole {
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "Normal" => Self::Normal,
            "Primary" => Self::Primary,
            "Standby" => Self::Standby,
            "Cascade Standby" => Self::CascadeStandby,
            "Main Standby" => Self::MainStandby,
            "Pending" => Self::Pending,
            "Unknown" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// A server that streams from another (and may be rebuilt from it).
    pub fn is_standby(&self) -> bool {
        matches!(
            self,
            Self::Standby | Self::CascadeStandby | Self::MainStandby
        )
    }
}

/// `db_state` / `peer_state` (and the WAL receiver's `state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbStateText {
    Normal,
    Unknown,
    NeedRepair,
    Starting,
    WaitPromoting,
    Demoting,
    Promoting,
    Building,
    Catchup,
    Coredump,
    Other(String),
}

impl DbStateText {
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "Normal" => Self::Normal,
            "Unknown" => Self::Unknown,
            "Need repair" => Self::NeedRepair,
            "Starting" => Self::Starting,
            "Wait promoting" => Self::WaitPromoting,
            "Demoting" => Self::Demoting,
            "Promoting" => Self::Promoting,
            "Building" => Self::Building,
            "Catchup" => Self::Catchup,
            "Coredump" => Self::Coredump,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// `detail_information`: why a standby is (or would be) in `Need repair`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Normal,
    /// No primary found yet: not a data problem.
    Connecting,
    /// No usable `replconninfo` channel.
    Disconnected,
    /// The primary lacks WAL this standby needs, or this standby's last record is not on the
    /// primary (it diverged, e.g. a former primary): only a rebuild helps.
    WalSegmentRemoved,
    VersionNotMatched,
    ModeNotMatched,
    SystemIdNotMatched,
    TimelineNotMatched,
    DcfLogLoss,
    Unknown,
    Other(String),
}

impl Detail {
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "Normal" => Self::Normal,
            "Connecting..." => Self::Connecting,
            "Disconnected" => Self::Disconnected,
            "WAL segment removed" => Self::WalSegmentRemoved,
            "Version not matched" => Self::VersionNotMatched,
            "Mode not matched" => Self::ModeNotMatched,
            "System id not matched" => Self::SystemIdNotMatched,
            "Timeline not matched" => Self::TimelineNotMatched,
            "DCF log loss" => Self::DcfLogLoss,
            "Unknown" => Self::Unknown,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// What a standby in `Need repair` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Its WAL cannot continue from its upstream's: rebuild it from the upstream (incremental,
    /// else a fresh copy).
    Rebuild(Detail),
    /// The upstream is of another cluster, version or mode: rebuilding would copy the wrong
    /// thing; an operator must look.
    Operator(Detail),
}

/// One row of `pg_stat_get_stream_replications()` (or `gs_ctl query`'s "HA state").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaState {
    pub local_role: LocalRole,
    pub db_state: DbStateText,
    pub detail: Detail,
}

impl HaState {
    pub fn parse(local_role: &str, db_state: &str, detail: &str) -> Self {
        Self {
            local_role: LocalRole::parse(local_role),
            db_state: DbStateText::parse(db_state),
            detail: Detail::parse(detail),
        }
    }

    /// `Need repair` on a standby, mapped to what fixes it; `None` when nothing is wrong with
    /// the data (including `Connecting...`: no primary reached yet).
    pub fn repair(&self) -> Option<Repair> {
        if !self.local_role.is_standby() || self.db_state != DbStateText::NeedRepair {
            return None;
        }
        match &self.detail {
            d @ (Detail::WalSegmentRemoved | Detail::TimelineNotMatched) => {
                Some(Repair::Rebuild(d.clone()))
            }
            d @ (Detail::SystemIdNotMatched
            | Detail::VersionNotMatched
            | Detail::ModeNotMatched
            | Detail::DcfLogLoss) => Some(Repair::Operator(d.clone())),
            _ => None,
        }
    }

    /// A primary that streams to standbys, in a state to acknowledge commits.
    pub fn is_serving_primary(&self) -> bool {
        self.local_role == LocalRole::Primary && self.db_state == DbStateText::Normal
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}/{:?} ({:?})",
            self.local_role, self.db_state, self.detail
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_string_parses() {
        for role in [
            "Normal",
            "Primary",
            "Standby",
            "Cascade Standby",
            "Main Standby",
            "Pending",
            "Unknown",
        ] {
            assert!(
                !matches!(LocalRole::parse(role), LocalRole::Other(_)),
                "{role}"
            );
        }
        for state in [
            "Normal",
            "Unknown",
            "Need repair",
            "Starting",
            "Wait promoting",
            "Demoting",
            "Promoting",
            "Building",
            "Catchup",
            "Coredump",
        ] {
            assert!(
                !matches!(DbStateText::parse(state), DbStateText::Other(_)),
                "{state}"
            );
        }
        for detail in [
            "Normal",
            "Connecting...",
            "Disconnected",
            "WAL segment removed",
            "Version not matched",
            "Mode not matched",
            "System id not matched",
            "Timeline not matched",
            "DCF log loss",
            "Unknown",
        ] {
            assert!(
                !matches!(Detail::parse(detail), Detail::Other(_)),
                "{detail}"
            );
        }
        assert_eq!(
            LocalRole::parse("Secondary"),
            LocalRole::Other("Secondary".into())
        );
    }

    #[test]
    fn need_repair_maps_to_a_rebuild_or_to_an_operator() {
        let state = |role, detail| HaState::parse(role, "Need repair", detail);
        assert_eq!(
            state("Standby", "WAL segment removed").repair(),
            Some(Repair::Rebuild(Detail::WalSegmentRemoved))
        );
        assert_eq!(
            state("Cascade Standby", "Timeline not matched").repair(),
            Some(Repair::Rebuild(Detail::TimelineNotMatched))
        );
        assert_eq!(
            state("Standby", "System id not matched").repair(),
            Some(Repair::Operator(Detail::SystemIdNotMatched))
        );
        assert_eq!(state("Standby", "Connecting...").repair(), None);
        assert_eq!(state("Standby", "Disconnected").repair(), None);
        assert_eq!(state("Pending", "WAL segment removed").repair(), None);
        assert_eq!(HaState::parse("Standby", "Normal", "Normal").repair(), None);
    }

    #[test]
    fn a_serving_primary_is_primary_and_normal() {
        assert!(HaState::parse("Primary", "Normal", "Normal").is_serving_primary());
        assert!(!HaState::parse("Normal", "Normal", "Normal").is_serving_primary());
        assert!(!HaState::parse("Primary", "Demoting", "Normal").is_serving_primary());
    }
}
