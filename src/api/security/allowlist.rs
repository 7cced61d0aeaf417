//! `restapi.allowlist` and `restapi.allowlist_include_members`: the client addresses allowed to
//! call unsafe methods.
//!
//! Entries are IP addresses, CIDR networks (host bits allowed, as Patroni's
//! `ip_network(v, False)`) or host names. Patroni resolves names on every unsafe request; here a
//! [`Resolver`] task resolves them off the request path — at start, whenever the set of member
//! hosts changes, and every [`REFRESH`] — and publishes the allowed networks through a watch
//! channel the guard reads. Members count by the hosts of both their `api_url` (Patroni's
//! rule) and their `conn_url`, since a member may reach this API from its database address on
//! a multi-homed host.
//!
//! A name that does not resolve allows nothing until it does (as Patroni, which logs and skips
//! it); a malformed network is a start-up error rather than Patroni's log line.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::SecurityError;
use crate::state::ClusterState;

/// How often names are resolved again when nothing else changed.
const REFRESH: Duration = Duration::from_secs(30);
/// The longest one name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Net(IpNet),
    Host(String),
}

impl Entry {
    fn parse(text: &str) -> Result<Entry, SecurityError> {
        let text = text.trim();
        let bad = |message: String| SecurityError::Setting {
            key: "restapi.allowlist".into(),
            message,
        };
        if text.contains('/') {
            return text
                .parse::<IpNet>()
                .map(|net| Entry::Net(net.trunc()))
                .map_err(|_| {
                    bad(format!(
                        "{text:?} is not a network (expected ADDRESS/PREFIX, e.g. 10.0.0.0/8)"
                    ))
                });
        }
        if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(Entry::Net(IpNet::from(canonical(ip))));
        }
        let host_name = !text.is_empty()
            && text.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if host_name {
            Ok(Entry::Host(text.to_owned()))
        } else {
            Err(bad(format!(
                "{text:?} is neither an IP address, a network (ADDRESS/PREFIX) nor a host name"
            )))
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, how a dual-stack listener sees IPv4 clients) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Whether `ip` lies in one of `nets`.
pub(super) fn permits(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|net| net.contains(&ip))
}

/// The configured allowlist.
#[derive(Clone, Debug, Default)]
pub(super) struct Allowlist {
    entries: Vec<Entry>,
    include_members: bool,
}

impl Allowlist {
    pub(super) fn parse(entries: &[String], include_members: bool) -> Result<Self, SecurityError> {
        Ok(Allowlist {
            entries: entries
                .iter()
                .map(|e| Entry::parse(e))
                .collect::<Result<_, _>>()?,
            include_members,
        })
    }

    /// Whether unsafe requests are checked against it at all (Patroni: a non-empty list, or
    /// members included).
    pub(super) fn is_active(&self) -> bool {
        !self.entries.is_empty() || self.include_members
    }
}

/// The host of a URL (`http://host:port/patroni`, `postgres://host:port/postgres`), without
/// brackets for IPv6.
fn url_host(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
}

/// The hosts the members of `state` are reached at.
fn member_hosts(state: &ClusterState) -> BTreeSet<String> {
    state
        .members
        .values()
        .flat_map(|m| std::iter::once(m.api_url.as_str()).chain(m.conn_url.as_deref()))
        .filter_map(url_host)
        .collect()
}

/// The addresses of `host` (an IP address is its own), or why not.
async fn lookup(host: &str) -> Result<Vec<IpNet>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![IpNet::from(canonical(ip))]);
    }
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(addrs)) => Ok(addrs.map(|a| IpNet::from(canonical(a.ip()))).collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
    }
}

/// Keeps the published allowed networks current.
pub(super) struct Resolver {
    allowlist: Allowlist,
    cluster: watch::Receiver<Arc<ClusterState>>,
    out: watch::Sender<Arc<Vec<IpNet>>>,
    members: BTreeSet<String>,
    /// The names that failed last time, so a lasting failure is logged once, not every refresh.
    failing: BTreeSet<String>,
}

impl Resolver {
    pub(super) fn new(
        allowlist: Allowlist,
        cluster: watch::Receiver<Arc<ClusterState>>,
        out: watch::Sender<Arc<Vec<IpNet>>>,
    ) -> Self {
        Resolver {
            allowlist,
            cluster,
            out,
            members: BTreeSet::new(),
            failing: BTreeSet::new(),
        }
    }

    /// Publish the addresses that need no name look-up (networks, addresses, members reached
    /// at an IP address), so they are in force from the first request; names follow as soon
    /// as [`Resolver::run`] has looked them up.
    pub(super) async fn publish_addresses(&mut self) {
        self.resolve(false).await;
    }

    /// Resolve everything (`names`: host names too) and publish the result.
    async fn resolve(&mut self, names: bool) {
        if self.allowlist.include_members {
            self.members = member_hosts(&self.cluster.borrow_and_update());
        }
        let mut nets = Vec::new();
        let mut failing = BTreeSet::new();
        let hosts = self
            .allowlist
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Net(net) => {
                    nets.push(*net);
                    None
                }
                Entry::Host(host) => Some(host.clone()),
            })
            .collect::<BTreeSet<_>>();
        for host in hosts.iter().chain(&self.members) {
            if !names && host.parse::<IpAddr>().is_err() {
                continue;
            }
            match lookup(host).await {
                Ok(found) => nets.extend(found),
                Err(why) => {
                    if !self.failing.contains(host) {
                        warn!(host = %host, "allowlist: cannot resolve {host}: {why}; it allows nothing until it resolves");
                    }
                    failing.insert(host.clone());
                }
            }
        }
        nets.sort();
        nets.dedup();
        debug!(?nets, "allowlist resolved");
        self.failing = failing;
        self.out.send_if_modified(|current| {
            let changed = **current != nets;
            if changed {
                *current = Arc::new(nets);
            }
            changed
        });
    }

    /// Resolve everything at once, then every [`REFRESH`] and whenever the members' hosts
    /// change, until `shutdown`.
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.resolve(true) => {}
            }
            let next = tokio::time::Instant::now() + REFRESH;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => break,
                    changed = self.cluster.changed(), if self.allowlist.include_members => {
                        if changed.is_err() {
                            // The Raft node is gone: the agent is shutting down.
                            shutdown.cancelled().await;
                            return;
                        }
                        if member_hosts(&self.cluster.borrow_and_update()) != self.members {
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Member, MemberStatus};
    use crate::types::UnixMillis;

    fn nets(entries: &[&str]) -> Vec<IpNet> {
        entries
            .iter()
            .map(|e| match Entry::parse(e).unwrap() {
                Entry::Net(n) => n,
                Entry::Host(h) => panic!("{h} is a host"),
            })
            .collect()
    }

    #[test]
    fn entries_are_addresses_networks_or_names() {
        assert_eq!(
            Entry::parse("10.1.2.3/8").unwrap(),
            Entry::Net("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            Entry::parse(" 127.0.0.1 ").unwrap(),
            Entry::Net("127.0.0.1/32".parse().unwrap())
        );
        assert_eq!(
            Entry::parse("[::1]").unwrap(),
            Entry::Net("::1/128".parse().unwrap())
        );
        assert_eq!(
            Entry::parse("db-1.example.com").unwrap(),
            Entry::Host("db-1.example.com".into())
        );
        for bad in ["10.0.0.0/33", "10.0.0/8", "", "bad host", "a..b", "x/y"] {
            let err = Entry::parse(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("restapi.allowlist: "),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn permits_only_covered_addresses() {
        let allowed = nets(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]);
        let yes = ["10.200.1.1", "192.168.1.7", "::ffff:10.0.0.9", "fd00::1"];
        let no = ["11.0.0.1", "192.168.1.8", "127.0.0.1", "::1"];
        for ip in yes {
            assert!(permits(&allowed, ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!permits(&allowed, ip.parse().unwrap()), "{ip}");
        }
        assert!(!permits(&[], "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn members_count_by_api_and_conn_hosts() {
        let mut state = ClusterState::default();
        let member = |api: &str, conn: Option<&str>| Member {
            api_url: api.into(),
            conn_url: conn.map(Into::into),
            raft_addr: None,
            version: "test".into(),
            tags: Default::default(),
            proxy_url: None,
            status: MemberStatus::default(),
            reported_at: UnixMillis(0),
        };
        state.members.insert(
            "a".into(),
            member(
                "http://10.0.0.1:8008/patroni",
                Some("postgres://10.0.1.1:5432/postgres"),
            ),
        );
        state
            .members
            .insert("b".into(), member("https://[fd00::2]:8008/patroni", None));
        state
            .members
            .insert("c".into(), member("http://db-c.example:8008/patroni", None));
        let hosts: Vec<String> = member_hosts(&state).into_iter().collect();
        assert_eq!(hosts, ["10.0.0.1", "10.0.1.1", "db-c.example", "fd00::2"]);
    }

    #[tokio::test]
    async fn resolver_publishes_addresses_and_resolved_names() {
        let allowlist =
            Allowlist::parse(&["10.0.0.0/8".into(), "localhost".into()], false).unwrap();
        assert!(allowlist.is_active());
        let (_state_tx, state_rx) = watch::channel(Arc::new(ClusterState::default()));
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        Resolver::new(allowlist, state_rx, tx).resolve(true).await;
        let allowed = rx.borrow().clone();
        assert!(permits(&allowed, "10.9.9.9".parse().unwrap()));
        assert!(
            permits(&allowed, "127.0.0.1".parse().unwrap()),
            "{allowed:?}"
        );
        assert!(!permits(&allowed, "192.0.2.1".parse().unwrap()));
        assert!(!Allowlist::parse(&[], false).unwrap().is_active());
        assert!(Allowlist::parse(&[], true).unwrap().is_active());
    }
}
