//! Generations only rise: the committed generation (the fencing token) never goes back, and a
//! leader never holds a generation above it.

use super::Invariant;
use crate::cluster::SimCluster;

#[derive(Default)]
pub struct GenerationsRise {
    last: u64,
}

impl Invariant for GenerationsRise {
    fn name(&self) -> &'static str {
        "generations only rise"
    }

    fn check(&mut self, cluster: &SimCluster) -> Result<(), String> {
        let state = cluster.state();
        let now = state.generation.0;
        if now < self.last {
            return Err(format!(
                "the generation went back from {} to {now}",
                self.last
            ));
        }
        if let Some(leader) = &state.leader
            && leader.generation.0 > now
        {
            return Err(format!(
                "{} leads generation {} above the cluster's {now}",
                leader.member, leader.generation
            ));
        }
        self.last = now;
        Ok(())
    }
}
