//! Newtypes shared by every layer: member names, generations (the fencing token), LSNs and
//! timelines. They exist so that a byte position is never confused with a term or a name, and so
//! that the textual forms operators know (`0/3000148`) are parsed and printed in one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A member's name, as in Patroni's `name`: unique in the cluster, used as the PostgreSQL
/// `application_name` and, normalised, as its replication slot name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberName(String);

impl MemberName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The replication slot name Patroni derives from a member name: lower-cased, `-` and `.`
    /// become `_`, any other character outside `[a-z0-9_]` becomes `u<codepoint>`, at most 63
    /// characters.
    pub fn slot_name(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for c in self.0.to_lowercase().chars() {
            match c {
                'a'..='z' | '0'..='9' | '_' => out.push(c),
                '-' | '.' => out.push('_'),
                other => out.push_str(&format!("u{:04x}", other as u32)),
            }
        }
        out.truncate(63);
        out
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MemberName {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Rises by one at every change of database primary. It is the fencing token: every command
/// that changes the leader is a compare-and-set on it, and openGauss receives it as `-T <term>`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Generation(pub u64);

impl Generation {
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A WAL position in bytes. Prints and parses as PostgreSQL does: `X/Y` in upper-case hex.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Bytes by which `self` is behind `ahead` (0 when `self` is not behind).
    pub fn lag_behind(self, ahead: Lsn) -> u64 {
        ahead.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid LSN {0:?}: expected two hexadecimal numbers separated by '/', like 0/3000148")]
pub struct LsnParseError(String);

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(s.to_owned());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// A PostgreSQL timeline id.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timeline(pub u32);

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Milliseconds since the Unix epoch, as stamped by the proposing Raft leader. Used for what
/// operators read (history, report ages); never for lease safety, which uses monotonic clocks.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(d.as_millis() as u64)
    }

    pub fn as_secs(self) -> u64 {
        self.0 / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_through_postgres_text_form() {
        for text in ["0/0", "0/3000148", "1/A000000", "FFFFFFFF/FFFFFFFF"] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("0/6A51F40".parse::<Lsn>().unwrap(), Lsn(0x6A51F40));
        assert_eq!("1/0".parse::<Lsn>().unwrap(), Lsn(1 << 32));
    }

    #[test]
    fn lsn_rejects_malformed_text() {
        for text in ["", "0", "0/", "/1", "g/1", "0/1/2", "100000000/0"] {
            assert!(text.parse::<Lsn>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn lag_is_zero_when_ahead() {
        assert_eq!(Lsn(10).lag_behind(Lsn(4)), 0);
        assert_eq!(Lsn(4).lag_behind(Lsn(10)), 6);
    }

    #[test]
    fn slot_names_follow_patroni() {
        assert_eq!(MemberName::from("postgres-1").slot_name(), "postgres_1");
        assert_eq!(MemberName::from("Node.A").slot_name(), "node_a");
        assert_eq!(MemberName::from("n@1").slot_name(), "nu00401");
        assert_eq!(MemberName::new("x".repeat(80)).slot_name().len(), 63);
    }
}
