//! At most one member accepts writes at any simulated instant: a running primary, neither
//! frozen nor fenced, that could acknowledge a commit now (asynchronously, or with the standbys
//! its `synchronous_standby_names` asks for streaming from it).

use super::Invariant;
use crate::cluster::SimCluster;

pub struct SingleWriter;

impl Invariant for SingleWriter {
    fn name(&self) -> &'static str {
        "single writer"
    }

    fn check(&mut self, cluster: &SimCluster) -> Result<(), String> {
        let writable = cluster.dbs.writable();
        if writable.len() > 1 {
            let names: Vec<&str> = writable.iter().map(|m| m.as_str()).collect();
            return Err(format!("{} accept writes at once", names.join(" and ")));
        }
        Ok(())
    }
}
