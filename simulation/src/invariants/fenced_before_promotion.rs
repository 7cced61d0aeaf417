//! A primary is fenced before another is promoted: at the instant a member becomes a writable
//! primary (promotion, or a start as primary), no other member accepts writes.

use super::Invariant;
use crate::cluster::SimCluster;

#[derive(Default)]
pub struct FencedBeforePromotion {
    seen: usize,
}

impl Invariant for FencedBeforePromotion {
    fn name(&self) -> &'static str {
        "fenced before promotion"
    }

    fn check(&mut self, cluster: &SimCluster) -> Result<(), String> {
        let promotions = cluster.dbs.promotions();
        let new = &promotions[self.seen.min(promotions.len())..];
        self.seen = promotions.len();
        for p in new.iter().filter(|p| super::made_the_primary(cluster, p)) {
            if !p.others_writable.is_empty() {
                let others: Vec<&str> = p.others_writable.iter().map(|m| m.as_str()).collect();
                return Err(format!(
                    "{} became primary while {} still accepted writes",
                    p.member,
                    others.join(", ")
                ));
            }
        }
        Ok(())
    }
}
