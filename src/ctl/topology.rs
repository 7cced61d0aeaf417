//! The replication tree `topology` prints: the leader first, under it the members replicating
//! from it, each followed by the members cascading from it (the member it reports streaming
//! from, else its `replicatefrom` tag), siblings by name, every level one `+ ` deeper. Pure; the table is `table::render_list`'s.
//!
//! Every member appears exactly once: a `replicatefrom` naming nobody, the leader, a witness or
//! the member itself counts as replicating from the leader, and members caught in a cycle of
//! `replicatefrom` tags hang under the leader. Witnesses replicate nothing and come last, at
//! the top level.

use std::collections::BTreeSet;

use crate::api::ClusterDocument;

use super::select::{is_leader, is_witness};

/// Indexes into `doc.members` in tree order, each with its depth (the leader is 0).
pub fn tree_order(doc: &ClusterDocument) -> Vec<(usize, usize)> {
    let members = &doc.members;
    let leader = members.iter().position(is_leader);
    let replicas: Vec<usize> = (0..members.len())
        .filter(|&i| Some(i) != leader && !is_witness(&members[i]))
        .collect();
    // The upstream of a replica: the member it reports streaming from, else the replica its
    // tag names, else the leader (None: no leader).
    let replica_named = |i: usize, name: &str| {
        replicas
            .iter()
            .copied()
            .find(|&j| j != i && members[j].name == name)
    };
    let upstream = |i: usize| -> Option<usize> {
        if let Some(actual) = &members[i].upstream {
            return replica_named(i, actual).or(leader);
        }
        let named = members[i]
            .tags
            .replicatefrom()
            .and_then(|name| replica_named(i, name.as_str()));
        named.or(leader)
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    let mut roots = Vec::new();
    for &i in &replicas {
        match upstream(i) {
            Some(parent) => children[parent].push(i),
            None => roots.push(i),
        }
    }
    let by_name = |v: &mut Vec<usize>| v.sort_by(|&a, &b| members[a].name.cmp(&members[b].name));
    children.iter_mut().for_each(by_name);
    by_name(&mut roots);

    let mut order = Vec::with_capacity(members.len());
    let mut seen = BTreeSet::new();
    fn walk(
        i: usize,
        depth: usize,
        children: &[Vec<usize>],
        seen: &mut BTreeSet<usize>,
        order: &mut Vec<(usize, usize)>,
    ) {
        if !seen.insert(i) {
            return;
        }
        order.push((i, depth));
        for &child in &children[i] {
            walk(child, depth + 1, children, seen, order);
        }
    }
    if let Some(l) = leader {
        walk(l, 0, &children, &mut seen, &mut order);
    }
    for &r in &roots {
        walk(r, 0, &children, &mut seen, &mut order);
    }
    // Left: members whose upstream chain is a cycle, never reached from the top.
    let stranded_depth = usize::from(leader.is_some());
    for &i in &replicas {
        walk(i, stranded_depth, &children, &mut seen, &mut order);
    }
    let mut witnesses: Vec<usize> = (0..members.len())
        .filter(|&i| is_witness(&members[i]))
        .collect();
    by_name(&mut witnesses);
    order.extend(witnesses.into_iter().map(|i| (i, 0)));
    order
}

/// A member's name at `depth` in the tree: `node0`, `+ node1`, `  + node3`.
pub fn tree_name(name: &str, depth: usize) -> String {
    match depth {
        0 => name.to_owned(),
        d => format!("{}+ {name}", "  ".repeat(d - 1)),
    }
}

/// `doc` with its members in tree order and their names indented, for the member table.
pub fn as_tree(doc: &ClusterDocument) -> ClusterDocument {
    let mut tree = doc.clone();
    tree.members = tree_order(doc)
        .into_iter()
        .map(|(i, depth)| {
            let mut m = doc.members[i].clone();
            m.name = tree_name(&m.name, depth);
            m
        })
        .collect();
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(members: serde_json::Value) -> ClusterDocument {
        serde_json::from_value(serde_json::json!({"scope": "s", "members": members})).unwrap()
    }

    fn shown(doc: &ClusterDocument) -> Vec<String> {
        as_tree(doc).members.into_iter().map(|m| m.name).collect()
    }

    #[test]
    fn replicas_hang_under_the_leader_and_cascades_go_deeper() {
        let d = doc(serde_json::json!([
            {"name": "a", "role": "replica", "state": "streaming", "api_url": ""},
            {"name": "b", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "d"}},
            {"name": "c", "role": "leader", "state": "running", "api_url": ""},
            {"name": "d", "role": "replica", "state": "streaming", "api_url": ""},
            {"name": "e", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "b"}},
            {"name": "w", "role": "witness", "state": "running", "api_url": ""}
        ]));
        assert_eq!(shown(&d), ["c", "+ a", "+ d", "  + b", "    + e", "w"]);
    }

    #[test]
    fn bad_or_circular_upstreams_still_show_every_member_once() {
        let d = doc(serde_json::json!([
            {"name": "a", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "b"}},
            {"name": "b", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "a"}},
            {"name": "c", "role": "leader", "state": "running", "api_url": ""},
            {"name": "d", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "d"}},
            {"name": "e", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "c"}}
        ]));
        assert_eq!(shown(&d), ["c", "+ d", "+ e", "+ a", "  + b"]);
    }

    #[test]
    fn the_member_a_replica_reports_streaming_from_wins_over_its_tag() {
        let d = doc(serde_json::json!([
            {"name": "a", "role": "leader", "state": "running", "api_url": ""},
            // Its tagged upstream is down: it streams from the leader meanwhile.
            {"name": "b", "role": "replica", "state": "streaming", "api_url": "",
             "tags": {"replicatefrom": "c"}, "upstream": "a"},
            {"name": "c", "role": "replica", "state": "streaming", "api_url": "", "upstream": "a"},
            // No tag, but it reports streaming from c.
            {"name": "d", "role": "replica", "state": "streaming", "api_url": "", "upstream": "c"}
        ]));
        assert_eq!(shown(&d), ["a", "+ b", "+ c", "  + d"]);
    }

    #[test]
    fn without_a_leader_the_replicas_are_the_top_level() {
        let d = doc(serde_json::json!([
            {"name": "a", "role": "replica", "state": "stopped", "api_url": ""},
            {"name": "b", "role": "replica", "state": "streaming", "api_url": "", "tags": {"replicatefrom": "a"}}
        ]));
        assert_eq!(shown(&d), ["a", "+ b"]);
    }
}
