//! openGauss's term: the fencing token that `gs_ctl failover`, `notify -M primary` and
//! `switchover` take as `-T`, made from the cluster's generation.
//!
//! Every WAL record carries the term of the primary that wrote it, and a standby refuses to
//! stream from a primary whose term is below its own, so promoting with the generation makes a
//! stale primary one that no standby follows. A term is a `uint32` whose highest bit openGauss
//! reserves (it marks records for logical decoding), and 0 means "none": terms run from 1 to
//! 2^31 - 1. A fresh cluster's primary has term 1, as the first generation does.

use std::fmt;

use crate::types::Generation;

/// The largest term openGauss accepts (`XLOG_MASK_TERM`).
pub const MAX_TERM: u32 = 0x7FFF_FFFF;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Term(u32);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("generation {0} cannot be an openGauss term: terms run from 1 to {MAX_TERM}")]
pub struct TermOutOfRange(pub u64);

impl TryFrom<Generation> for Term {
    type Error = TermOutOfRange;

    fn try_from(generation: Generation) -> Result<Self, Self::Error> {
        match u32::try_from(generation.0) {
            Ok(t) if (1..=MAX_TERM).contains(&t) => Ok(Term(t)),
            _ => Err(TermOutOfRange(generation.0)),
        }
    }
}

impl Term {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_map_onto_terms_one_to_one() {
        assert_eq!(Term::try_from(Generation(1)).unwrap().get(), 1);
        assert_eq!(Term::try_from(Generation(7)).unwrap().to_string(), "7");
        assert_eq!(
            Term::try_from(Generation(u64::from(MAX_TERM)))
                .unwrap()
                .get(),
            MAX_TERM
        );
    }

    #[test]
    fn out_of_range_generations_are_refused() {
        assert_eq!(
            Term::try_from(Generation(0)),
            Err(TermOutOfRange(0)),
            "0 is no term"
        );
        let too_big = Generation(u64::from(MAX_TERM) + 1);
        let err = Term::try_from(too_big).unwrap_err();
        assert!(err.to_string().contains("2147483647"), "{err}");
    }
}
