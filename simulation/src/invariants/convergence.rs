//! Every member converges after the faults heal: one leader whose database runs as a primary
//! and accepts writes, and every other member's database running as its standby, streaming.
//! A standby whose WAL went past the fork of the new primary's timeline counts as not converged
//! too: the agent must rewind it (`ha::divergence`).

use tribune::instance::DbRole;

use crate::cluster::SimCluster;

/// `Ok` once converged; `Err` says what is not yet.
pub fn converged(cluster: &SimCluster) -> Result<(), String> {
    check(cluster)
}

fn check(cluster: &SimCluster) -> Result<(), String> {
    let state = cluster.state();
    let Some(leader) = state.leader.as_ref() else {
        return Err("no leader".into());
    };
    let writable = cluster.dbs.writable();
    if writable != [leader.member.clone()] {
        return Err(format!(
            "the leader is {} but the members accepting writes are {writable:?}",
            leader.member
        ));
    }
    for agent in &cluster.agents {
        if agent.name == leader.member {
            continue;
        }
        let (role, upstream, streaming) = cluster.dbs.role_of(&agent.name);
        if role != Some(DbRole::Standby) || upstream.as_ref() != Some(&leader.member) || !streaming
        {
            return Err(format!(
                "{} is {role:?} streaming={streaming} from {upstream:?}, not a standby of {}",
                agent.name, leader.member
            ));
        }
    }
    Ok(())
}
