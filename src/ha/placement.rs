//! Placement advice for multi-site clusters: which single site's loss would stop failover.
//!
//! Failover needs the Raft majority (only the Raft leader expires a lease and promotes), so a
//! site whose voters leave fewer than a majority behind is a single point of failure for the
//! whole cluster, however many databases run elsewhere: two sites of two voters, or one site
//! with three of five, lose failover with either site. Two voters in each of two sites plus a
//! witness in a third (2 + 2 + 1) survives the loss of any one site.
//!
//! Pure: the caller (the agent's arbiter task, the `/cluster` document) passes the voters of the
//! current Raft membership with the sites their member records carry, at start and whenever
//! the membership or the records change. Says nothing when no voter has a site (a single-site
//! cluster by intent).

use std::collections::BTreeMap;

/// One Raft voter: who it is (a member name, or its Raft address before its member record
/// exists) and its `tags.site`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub name: String,
    pub site: Option<String>,
}

/// Warnings about the voters' layout, one sentence each, worst first; empty when the loss of
/// any one site leaves a Raft majority.
pub fn advice(voters: &[Voter]) -> Vec<String> {
    if voters.iter().all(|v| v.site.is_none()) {
        return Vec::new();
    }
    let total = voters.len();
    let majority = total / 2 + 1;
    let mut sites: BTreeMap<&str, usize> = BTreeMap::new();
    for site in voters.iter().filter_map(|v| v.site.as_deref()) {
        *sites.entry(site).or_default() += 1;
    }
    let mut fatal: Vec<(&str, usize)> = sites
        .into_iter()
        .filter(|(_, held)| total - held < majority)
        .collect();
    fatal.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut out: Vec<String> = fatal
        .into_iter()
        .map(|(site, held)| {
            let why = if held >= majority {
                "a Raft majority"
            } else {
                "the others are not a Raft majority"
            };
            format!(
                "losing site {site} stops failover: it holds {held} of {total} voters ({why}); \
                 spread the voters so that no site holds half of them, e.g. 2 + 2 + 1 witness \
                 across three sites"
            )
        })
        .collect();
    let unsited: Vec<&str> = voters
        .iter()
        .filter(|v| v.site.is_none())
        .map(|v| v.name.as_str())
        .collect();
    if !unsited.is_empty() {
        out.push(format!(
            "voters without a site tag ({}): which site's loss they share cannot be judged",
            unsited.join(", ")
        ));
    }
    out
}

/// The voters of the Raft membership (`(node id, Raft address)`) with the sites of the member
/// records whose `raft_addr` they are.
pub fn voters_with_sites<I: std::fmt::Display>(
    membership: &[(I, String)],
    cluster: &crate::state::ClusterState,
) -> Vec<Voter> {
    membership
        .iter()
        .map(|(_, addr)| {
            let member = cluster
                .members
                .iter()
                .find(|(_, m)| m.raft_addr.as_deref() == Some(addr.as_str()));
            Voter {
                name: member.map_or_else(|| addr.clone(), |(name, _)| name.to_string()),
                site: member.and_then(|(_, m)| m.tags.site().map(str::to_owned)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(sites: &[Option<&str>]) -> Vec<Voter> {
        sites
            .iter()
            .enumerate()
            .map(|(i, site)| Voter {
                name: format!("n{i}"),
                site: site.map(str::to_owned),
            })
            .collect()
    }

    #[test]
    fn a_site_whose_loss_leaves_no_majority_is_named() {
        let (a, b, c) = (Some("a"), Some("b"), Some("c"));
        type Row<'a> = (&'a str, Vec<Option<&'a str>>, Vec<&'a str>);
        let cases: [Row; 8] = [
            (
                "no sites at all: nothing to say",
                vec![None, None, None],
                vec![],
            ),
            (
                "2 + 2 + 1 witness across three sites survives any one",
                vec![a, a, b, b, c],
                vec![],
            ),
            ("1 + 1 + 1 survives any one", vec![a, b, c], vec![]),
            (
                "3 + 2: the site with the majority",
                vec![a, a, a, b, b],
                vec!["losing site a stops failover: it holds 3 of 5 voters (a Raft majority)"],
            ),
            (
                "2 + 2: either site, though neither holds a majority",
                vec![a, a, b, b],
                vec![
                    "losing site a stops failover: it holds 2 of 4 voters (the others are not a \
                     Raft majority)",
                    "losing site b stops failover: it holds 2 of 4 voters (the others are not a \
                     Raft majority)",
                ],
            ),
            (
                "2 + 1 in two sites",
                vec![a, b, a],
                vec!["losing site a stops failover: it holds 2 of 3 voters (a Raft majority)"],
            ),
            (
                "one site only",
                vec![a, a, a],
                vec!["losing site a stops failover: it holds 3 of 3 voters (a Raft majority)"],
            ),
            (
                "a voter without a site is named",
                vec![a, b, None],
                vec!["voters without a site tag (n2)"],
            ),
        ];
        for (name, sites, expected) in cases {
            let got = advice(&layout(&sites));
            assert_eq!(got.len(), expected.len(), "{name}: {got:?}");
            for (line, want) in got.iter().zip(&expected) {
                assert!(
                    line.starts_with(want),
                    "{name}: {line:?} does not start with {want:?}"
                );
            }
        }
    }

    #[test]
    fn voters_are_matched_to_member_records_by_raft_address() {
        let mut cluster = crate::state::ClusterState::default();
        let member = |addr: &str, site: Option<&str>| crate::state::Member {
            api_url: String::new(),
            conn_url: None,
            raft_addr: Some(addr.into()),
            proxy_url: None,
            version: String::new(),
            tags: serde_json::from_value(match site {
                Some(site) => serde_json::json!({ "site": site }),
                None => serde_json::json!({}),
            })
            .unwrap(),
            status: Default::default(),
            reported_at: crate::types::UnixMillis(0),
        };
        cluster
            .members
            .insert("x".into(), member("h1:1", Some("east")));
        cluster.members.insert("y".into(), member("h2:1", None));
        let voters = voters_with_sites(
            &[
                (1, "h1:1".to_owned()),
                (2, "h2:1".to_owned()),
                (3, "h3:1".to_owned()),
            ],
            &cluster,
        );
        assert_eq!(
            voters,
            vec![
                Voter {
                    name: "x".into(),
                    site: Some("east".into())
                },
                Voter {
                    name: "y".into(),
                    site: None
                },
                Voter {
                    name: "h3:1".into(),
                    site: None
                },
            ]
        );
    }
}
