//! No acknowledged commit is lost in synchronous mode: every primary, the moment it becomes
//! one, holds every commit acknowledged so far. Checked in strict mode, where every commit is
//! acknowledged only once a standby has it; non-strict mode may degrade to asynchronous
//! replication when no standby is left, and a commit acknowledged then may be lost by design
//! (DESIGN section 5, rule 4).

use super::Invariant;
use crate::cluster::SimCluster;

pub struct AckedCommitsKept {
    strict: bool,
    seen: usize,
}

impl AckedCommitsKept {
    pub fn new(strict: bool) -> Self {
        Self { strict, seen: 0 }
    }
}

impl Invariant for AckedCommitsKept {
    fn name(&self) -> &'static str {
        "no acknowledged commit lost"
    }

    fn check(&mut self, cluster: &SimCluster) -> Result<(), String> {
        let promotions = cluster.dbs.promotions();
        let new = &promotions[self.seen.min(promotions.len())..];
        self.seen = promotions.len();
        if !self.strict {
            return Ok(());
        }
        for p in new.iter().filter(|p| super::made_the_primary(cluster, p)) {
            if !p.missing_acks.is_empty() {
                let some: Vec<String> = p.missing_acks.iter().take(5).map(u64::to_string).collect();
                return Err(format!(
                    "{} became primary without {} acknowledged commits (e.g. {})",
                    p.member,
                    p.missing_acks.len(),
                    some.join(", ")
                ));
            }
        }
        Ok(())
    }
}
