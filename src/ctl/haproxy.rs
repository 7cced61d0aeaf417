//! `tribunectl haproxy-config`: an HAProxy configuration in the layout Patroni documents
//! (reference/patroni.md section 2): a `primary` listener whose servers are checked with
//! `OPTIONS /primary` and a `replicas` listener checked with `OPTIONS /replica`, each server
//! being a member's PostgreSQL address checked on its REST port, plus an optional stats page.
//!
//! Owns turning a `GET /cluster` document and the listeners' addresses into configuration text,
//! and the check timing (with its reasons, written into the file). It is pure: the caller
//! fetches the document and prints the text. It must not invent addresses: every server comes
//! from what a member reported (`host`/`port` from its `conn_url`, the check port from its
//! `api_url`); a member without a PostgreSQL address (a witness) is left out, and said so.
//!
//! [`render_fleet`] writes one file for many clusters (`haproxy-config --fleet`): a primary and
//! a replicas listener per cluster, named after it, on ports given by the cluster's position in
//! the list, so that a sharding proxy's storage units can point at fixed addresses.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::api::{ClusterDocument, ClusterMember};

/// Where HAProxy listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listeners {
    pub bind: IpAddr,
    /// Clients that need the primary (read-write) connect here.
    pub primary_port: u16,
    /// Clients that can use any streaming standby (read-only) connect here.
    pub replica_port: u16,
    /// HAProxy's own stats page (`http://bind:port/`), when wanted.
    pub stats_port: Option<u16>,
}

/// How often HAProxy asks each member's REST API, and how many answers change its mind. The
/// reasons are written into the generated file (see `timing_comment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckTiming {
    /// Between two checks of a server that is up.
    pub inter: Duration,
    /// Between two checks of a server whose state is changing (a check just failed or passed).
    pub fastinter: Duration,
    /// Between two checks of a server that is down: in the primary listener, every standby.
    pub downinter: Duration,
    /// Failed checks in a row that mark a server down.
    pub fall: u32,
    /// Passed checks in a row that mark a server up.
    pub rise: u32,
    /// How long a check may wait for the answer once connected.
    pub timeout: Duration,
}

/// The timing every generated file uses; the HAProxy integration tests derive their deadlines
/// from it.
pub const CHECK_TIMING: CheckTiming = CheckTiming {
    inter: Duration::from_secs(1),
    fastinter: Duration::from_millis(250),
    downinter: Duration::from_millis(500),
    fall: 2,
    rise: 1,
    timeout: Duration::from_secs(1),
};

/// Per server, as in Patroni's example: PostgreSQL's default `max_connections`.
const SERVER_MAXCONN: u32 = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HaproxyConfigError {
    #[error("--{first} and --{second} are both {port}: every listener needs its own port")]
    PortsCollide {
        first: &'static str,
        second: &'static str,
        port: u16,
    },
    #[error(
        "cluster '{scope}' has no member with a PostgreSQL address yet: nothing to put behind HAProxy"
    )]
    NoDatabaseMember { scope: String },
    #[error("member '{member}' reports api_url '{url}', which is not usable for a check: {reason}")]
    BadApiUrl {
        member: String,
        url: String,
        reason: String,
    },
    #[error(
        "member name '{0}' cannot be an HAProxy server name (letters, digits, '-', '_', '.', ':' only)"
    )]
    BadServerName(String),
    #[error(
        "cluster name '{0}' cannot be part of an HAProxy listener name (letters, digits, '-', '_', '.', ':' only)"
    )]
    BadClusterName(String),
    #[error(
        "{first} and {second} would both listen on port {port}: choose other ports or --port-step"
    )]
    FleetPortsCollide {
        first: String,
        second: String,
        port: u16,
    },
    #[error("{what} would listen on port {port}, beyond 65535: fewer clusters or lower ports")]
    PortOutOfRange { what: String, port: u32 },
    #[error("cluster '{0}' appears twice in the fleet")]
    DuplicateCluster(String),
    #[error("{label} could not be read ({reason}): give --skip-unreachable to write the others")]
    Unreachable { label: String, reason: String },
}

/// The configuration text, and the members that are not in it with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    pub left_out: Vec<String>,
}

/// One member as an HAProxy server line of both listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Server {
    name: String,
    /// PostgreSQL's `host:port`, in HAProxy's address syntax.
    address: String,
    /// The REST API's host when it is not PostgreSQL's (HAProxy's `addr`).
    check_addr: Option<String>,
    check_port: u16,
    check_tls: bool,
}

impl Server {
    fn line(&self) -> String {
        let mut line = format!(
            "server {} {} maxconn {SERVER_MAXCONN} check",
            self.name, self.address
        );
        if let Some(addr) = &self.check_addr {
            let _ = write!(line, " addr {addr}");
        }
        let _ = write!(line, " port {}", self.check_port);
        if self.check_tls {
            line += " check-ssl verify none";
        }
        line
    }
}

/// An address as HAProxy reads it: IPv6 in brackets, so that the port's colon is unambiguous.
fn haproxy_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// HAProxy accepts these characters in proxy and server names.
fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The member's server, or `Ok(None)` when it has no PostgreSQL address.
fn server(member: &ClusterMember) -> Result<Option<Server>, HaproxyConfigError> {
    let (Some(host), Some(port)) = (&member.host, member.port) else {
        return Ok(None);
    };
    if !valid_server_name(&member.name) {
        return Err(HaproxyConfigError::BadServerName(member.name.clone()));
    }
    let bad = |reason: &str| HaproxyConfigError::BadApiUrl {
        member: member.name.clone(),
        url: member.api_url.clone(),
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(&member.api_url).map_err(|e| bad(&e.to_string()))?;
    let check_tls = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let check_host = url
        .host_str()
        .ok_or_else(|| bad("it names no host"))?
        .trim_matches(['[', ']'])
        .to_owned();
    let check_port = url
        .port_or_known_default()
        .ok_or_else(|| bad("it names no port"))?;
    Ok(Some(Server {
        name: member.name.clone(),
        address: format!("{}:{port}", haproxy_host(host)),
        check_addr: (check_host != *host).then(|| haproxy_host(&check_host)),
        check_port,
        check_tls,
    }))
}

/// A duration in HAProxy's notation: `1s`, `250ms`.
fn haproxy_time(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The `default-server` line both listeners share.
fn default_server(t: &CheckTiming) -> String {
    format!(
        "default-server inter {} fastinter {} downinter {} fall {} rise {} on-marked-down shutdown-sessions",
        haproxy_time(t.inter),
        haproxy_time(t.fastinter),
        haproxy_time(t.downinter),
        t.fall,
        t.rise
    )
}

/// Why the checks are timed as they are, as comment lines of the generated file.
fn timing_comment(t: &CheckTiming) -> String {
    let (inter, fastinter, downinter, timeout) = (
        haproxy_time(t.inter),
        haproxy_time(t.fastinter),
        haproxy_time(t.downinter),
        haproxy_time(t.timeout),
    );
    let (fall, rise) = (t.fall, t.rise);
    format!(
        "\
# Check timing. Patroni's example uses `inter 3s fall 3 rise 2`; Tribune replaces a crashed
# primary in about `ttl` (3 s by default), so checks that slow would add up to 6 s. Instead:
# - inter {inter}: a server that is up is asked every {inter}. Agents answer from memory, so
#   checks cost next to nothing.
# - downinter {downinter}: a server that is down (in the primary listener, every standby) is
#   asked every {downinter}, so a newly promoted primary is found within {downinter}.
# - rise {rise}: one 200 marks a server up. Tribune answers 200 on /primary only while the
#   member holds a valid lease *and* its PostgreSQL runs as primary; Patroni's answer looks at
#   the leader lock alone, which is why its example waits for a second one.
# - fall {fall}, fastinter {fastinter}: {fall} failed checks {fastinter} apart mark a server down,
#   so one answer lost on a busy host does not end every session of a healthy primary.
# - timeout check {timeout}: an agent that accepts the connection but never answers (frozen)
#   fails its check after {timeout}.
# - on-marked-down shutdown-sessions: sessions to a server marked down are closed, so no
#   client stays on a former primary.
"
    )
}

impl Listeners {
    /// Refuses two listeners on one port (HAProxy would fail to start, less clearly).
    pub fn check(&self) -> Result<(), HaproxyConfigError> {
        let ports = [
            ("primary-port", Some(self.primary_port)),
            ("replica-port", Some(self.replica_port)),
            ("stats-port", self.stats_port),
        ];
        for (i, (first, a)) in ports.iter().enumerate() {
            for (second, b) in &ports[i + 1..] {
                if let (Some(a), Some(b)) = (a, b)
                    && a == b
                {
                    return Err(HaproxyConfigError::PortsCollide {
                        first,
                        second,
                        port: *a,
                    });
                }
            }
        }
        Ok(())
    }
}

/// `doc`'s members as servers, and the members left out with the reason.
fn servers(doc: &ClusterDocument) -> Result<(Vec<Server>, Vec<String>), HaproxyConfigError> {
    let mut servers = Vec::new();
    let mut left_out = Vec::new();
    for member in &doc.members {
        match server(member)? {
            Some(server) => servers.push(server),
            None => left_out.push(format!(
                "{}: it reports no PostgreSQL address (a witness?)",
                member.name
            )),
        }
    }
    if servers.is_empty() {
        return Err(HaproxyConfigError::NoDatabaseMember {
            scope: doc.scope.clone(),
        });
    }
    Ok((servers, left_out))
}

/// The `global` and `defaults` sections, for `servers` servers in two listeners each.
fn global_and_defaults(servers: usize, t: &CheckTiming) -> String {
    // Both listeners may fill every server, so the process limit is their sum.
    let global_maxconn = 2 * SERVER_MAXCONN as usize * servers;
    format!(
        "
global
    maxconn {global_maxconn}

defaults
    mode tcp
    log global
    retries 2
    timeout connect 4s
    timeout client 30m
    timeout server 30m
    timeout check {}
",
        haproxy_time(t.timeout)
    )
}

fn stats_section(bind: &str, port: u16) -> String {
    format!(
        "
listen stats
    mode http
    bind {bind}:{port}
    stats enable
    stats uri /
    stats refresh 2s
"
    )
}

/// A listener checking `servers` with `OPTIONS path`.
fn listener_section(name: &str, bind: &str, port: u16, path: &str, servers: &[Server]) -> String {
    let mut out = format!(
        "
listen {name}
    bind {bind}:{port}
    option httpchk OPTIONS {path}
    http-check expect status 200
    {}
",
        default_server(&CHECK_TIMING)
    );
    for server in servers {
        let _ = writeln!(out, "    {}", server.line());
    }
    out
}

const TLS_CHECK_COMMENT: &str = "\
#
# The REST API uses TLS: checks use `check-ssl verify none`, since they read only the status
# code. Add `ca-file <file>` and change `verify none` to `verify required` to verify agents.
";

/// The configuration for `doc`'s members behind `listeners`.
pub fn render(
    doc: &ClusterDocument,
    listeners: &Listeners,
) -> Result<Generated, HaproxyConfigError> {
    listeners.check()?;
    let (servers, left_out) = servers(doc)?;

    let bind = haproxy_host(&listeners.bind.to_string());
    let t = &CHECK_TIMING;
    let mut out = format!(
        "\
# HAProxy in front of the Tribune cluster '{scope}', written by `tribunectl haproxy-config`
# from the members GET /cluster reported. Regenerate it when members change.
#
# {bind}:{primary} reaches the primary (read-write), {bind}:{replica} a streaming standby
# (read-only). HAProxy forwards TCP to PostgreSQL and asks each member's REST API (`check
# port`) what it is: OPTIONS /primary and OPTIONS /replica answer 200 or 503.
#
",
        scope = doc.scope,
        primary = listeners.primary_port,
        replica = listeners.replica_port,
    );
    out += &timing_comment(t);
    if servers.iter().any(|s| s.check_tls) {
        out += TLS_CHECK_COMMENT;
    }
    for reason in &left_out {
        let _ = write!(out, "#\n# Left out: {reason}\n");
    }
    out += &global_and_defaults(servers.len(), t);
    if let Some(port) = listeners.stats_port {
        out += &stats_section(&bind, port);
    }
    out += &listener_section(
        "primary",
        &bind,
        listeners.primary_port,
        "/primary",
        &servers,
    );
    out += &listener_section(
        "replicas",
        &bind,
        listeners.replica_port,
        "/replica",
        &servers,
    );
    Ok(Generated {
        text: out,
        left_out,
    })
}

/// Where a fleet's listeners go: cluster `n` (from 0, in the fleet's order) listens on
/// `primary_port + n * port_step` and `replica_port + n * port_step`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetListeners {
    pub bind: IpAddr,
    pub primary_port: u16,
    pub replica_port: u16,
    pub port_step: u16,
    pub stats_port: Option<u16>,
}

impl FleetListeners {
    /// Cluster `n`'s primary and replica ports.
    pub fn ports(&self, n: usize) -> Result<(u16, u16), HaproxyConfigError> {
        let port = |first: u16, what: &str| {
            let port = u32::from(first) + n as u32 * u32::from(self.port_step);
            u16::try_from(port).map_err(|_| HaproxyConfigError::PortOutOfRange {
                what: format!("cluster number {n}'s {what} listener"),
                port,
            })
        };
        Ok((
            port(self.primary_port, "primary")?,
            port(self.replica_port, "replicas")?,
        ))
    }
}

/// One cluster of a fleet: its name and `GET /cluster`, or why it could not be read.
#[derive(Clone, Debug)]
pub struct FleetCluster {
    pub label: String,
    pub doc: Result<ClusterDocument, String>,
}

/// One configuration for a whole fleet: per cluster a `primary_<scope>` and a
/// `replicas_<scope>` listener on the ports of its position. With `skip_unreachable`, a cluster
/// that could not be read is left out (its ports stay reserved, so that no other cluster's
/// move); otherwise it is an error and nothing is written. A cluster of witnesses only has no
/// server to list and is left out.
pub fn render_fleet(
    clusters: &[FleetCluster],
    listeners: &FleetListeners,
    skip_unreachable: bool,
) -> Result<Generated, HaproxyConfigError> {
    let bind = haproxy_host(&listeners.bind.to_string());
    let mut ports: std::collections::BTreeMap<u16, String> = Default::default();
    let mut claim = |port: u16, what: String| match ports.get(&port) {
        Some(first) => Err(HaproxyConfigError::FleetPortsCollide {
            first: first.clone(),
            second: what,
            port,
        }),
        None => {
            ports.insert(port, what);
            Ok(())
        }
    };
    if let Some(port) = listeners.stats_port {
        claim(port, "the stats page".to_owned())?;
    }
    let mut sections = String::new();
    let mut index = String::new();
    let mut left_out = Vec::new();
    let mut scopes = std::collections::BTreeSet::new();
    let mut server_count = 0;
    let mut tls = false;
    for (n, cluster) in clusters.iter().enumerate() {
        let (primary, replica) = listeners.ports(n)?;
        claim(primary, format!("{}'s primary listener", cluster.label))?;
        claim(replica, format!("{}'s replicas listener", cluster.label))?;
        let doc = match &cluster.doc {
            Ok(doc) => doc,
            Err(reason) if skip_unreachable => {
                left_out.push(format!(
                    "{} ({reason}): ports {primary} and {replica} stay reserved for it",
                    cluster.label
                ));
                continue;
            }
            Err(reason) => {
                return Err(HaproxyConfigError::Unreachable {
                    label: cluster.label.clone(),
                    reason: reason.clone(),
                });
            }
        };
        if !valid_server_name(&doc.scope) {
            return Err(HaproxyConfigError::BadClusterName(doc.scope.clone()));
        }
        if !scopes.insert(doc.scope.clone()) {
            return Err(HaproxyConfigError::DuplicateCluster(doc.scope.clone()));
        }
        let (servers, members_left_out) = match servers(doc) {
            Ok(found) => found,
            Err(HaproxyConfigError::NoDatabaseMember { scope }) => {
                left_out.push(format!(
                    "{scope}: no member with a PostgreSQL address (witnesses only?); ports                      {primary} and {replica} stay reserved for it"
                ));
                continue;
            }
            Err(other) => return Err(other),
        };
        left_out.extend(
            members_left_out
                .into_iter()
                .map(|reason| format!("{}: {reason}", doc.scope)),
        );
        server_count += servers.len();
        tls |= servers.iter().any(|s| s.check_tls);
        let _ = writeln!(
            index,
            "#   {:<24} {bind}:{primary} primary, {bind}:{replica} replicas",
            doc.scope
        );
        let scope = &doc.scope;
        sections += &listener_section(
            &format!("primary_{scope}"),
            &bind,
            primary,
            "/primary",
            &servers,
        );
        sections += &listener_section(
            &format!("replicas_{scope}"),
            &bind,
            replica,
            "/replica",
            &servers,
        );
    }
    if server_count == 0 {
        return Err(HaproxyConfigError::NoDatabaseMember {
            scope: "any cluster of the fleet".to_owned(),
        });
    }
    let t = &CHECK_TIMING;
    let mut out = format!(
        "\
# HAProxy in front of {count} Tribune clusters, written by `tribunectl haproxy-config --fleet`
# from the members each cluster's GET /cluster reported. Regenerate it when members change;
# add new clusters at the end of the list so that no other cluster's ports move.
#
# Each cluster has a primary (read-write) and a replicas (read-only) listener. HAProxy forwards
# TCP to PostgreSQL and asks each member's REST API (`check port`) what it is: OPTIONS
# /primary and OPTIONS /replica answer 200 or 503.
#
{index}#
",
        count = clusters.len(),
    );
    out += &timing_comment(t);
    if tls {
        out += TLS_CHECK_COMMENT;
    }
    for reason in &left_out {
        let _ = write!(out, "#\n# Left out: {reason}\n");
    }
    out += &global_and_defaults(server_count, t);
    if let Some(port) = listeners.stats_port {
        out += &stats_section(&bind, port);
    }
    out += &sections;
    Ok(Generated {
        text: out,
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, host: Option<&str>, port: Option<u16>, api_url: &str) -> ClusterMember {
        ClusterMember {
            name: name.to_owned(),
            role: "replica".to_owned(),
            state: "streaming".to_owned(),
            api_url: api_url.to_owned(),
            host: host.map(str::to_owned),
            port,
            ..Default::default()
        }
    }

    fn doc(members: Vec<ClusterMember>) -> ClusterDocument {
        ClusterDocument {
            members,
            scope: "demo".to_owned(),
            ..Default::default()
        }
    }

    fn listeners() -> Listeners {
        Listeners {
            bind: "127.0.0.1".parse().unwrap(),
            primary_port: 5000,
            replica_port: 5001,
            stats_port: None,
        }
    }

    /// The cluster `scripts/demo.sh` starts, as `GET /cluster` reports it.
    fn demo_cluster() -> ClusterDocument {
        doc((0..3u16)
            .map(|i| {
                member(
                    &format!("node{i}"),
                    Some("127.0.0.1"),
                    Some(15432 + i),
                    &format!("http://127.0.0.1:{}/patroni", 8008 + i),
                )
            })
            .collect())
    }

    /// `scripts/haproxy.cfg` is what the generator prints for the demo (the demo regenerates
    /// it from the live cluster and says so if they differ).
    #[test]
    fn the_committed_demo_config_is_what_the_generator_prints() {
        let generated = render(
            &demo_cluster(),
            &Listeners {
                stats_port: Some(7000),
                ..listeners()
            },
        )
        .unwrap();
        assert_eq!(
            generated.text,
            include_str!("../../scripts/haproxy.cfg"),
            "regenerate scripts/haproxy.cfg with the demo running: \
             tribunectl --url http://127.0.0.1:8008 haproxy-config --stats-port 7000"
        );
        assert!(generated.left_out.is_empty());
    }

    #[test]
    fn both_listeners_check_every_member_on_its_rest_port() {
        let text = render(&demo_cluster(), &listeners()).unwrap().text;
        for (listener, check) in [
            (
                "listen primary\n    bind 127.0.0.1:5000\n",
                "OPTIONS /primary",
            ),
            (
                "listen replicas\n    bind 127.0.0.1:5001\n",
                "OPTIONS /replica",
            ),
        ] {
            let section = &text[text.find(listener).unwrap()..];
            assert!(section.contains(&format!("option httpchk {check}\n")));
            assert!(section.contains("http-check expect status 200\n"));
            assert!(section.contains(
                "default-server inter 1s fastinter 250ms downinter 500ms fall 2 rise 1 \
                 on-marked-down shutdown-sessions\n"
            ));
            assert!(section.contains("server node1 127.0.0.1:15433 maxconn 100 check port 8009\n"));
        }
        assert!(!text.contains("listen stats"));
        assert!(text.contains("    maxconn 600\n"));
    }

    #[test]
    fn a_rest_api_elsewhere_or_over_tls_is_checked_there() {
        let text = render(
            &doc(vec![
                member(
                    "a",
                    Some("10.0.0.1"),
                    Some(5432),
                    "https://10.0.0.1:8008/patroni",
                ),
                member("b", Some("::1"), Some(5432), "http://[::1]:8008/patroni"),
                member("c", Some("db-c"), Some(5432), "http://10.0.0.3/patroni"),
            ]),
            &Listeners {
                bind: "::".parse().unwrap(),
                ..listeners()
            },
        )
        .unwrap()
        .text;
        assert!(text.contains(
            "server a 10.0.0.1:5432 maxconn 100 check port 8008 check-ssl verify none\n"
        ));
        assert!(text.contains("server b [::1]:5432 maxconn 100 check port 8008\n"));
        assert!(text.contains("server c db-c:5432 maxconn 100 check addr 10.0.0.3 port 80\n"));
        assert!(text.contains("bind [::]:5000\n"));
        assert!(text.contains("# The REST API uses TLS"));
    }

    #[test]
    fn a_witness_is_left_out_and_named() {
        let mut members = demo_cluster().members;
        members.push(member(
            "witness",
            None,
            None,
            "http://127.0.0.1:8011/patroni",
        ));
        let generated = render(&doc(members), &listeners()).unwrap();
        assert_eq!(generated.left_out.len(), 1);
        assert!(generated.left_out[0].starts_with("witness: "));
        assert!(generated.text.contains("# Left out: witness: "));
        assert!(!generated.text.contains("server witness"));
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let colliding = Listeners {
            stats_port: Some(5001),
            ..listeners()
        };
        assert_eq!(
            render(&demo_cluster(), &colliding).unwrap_err(),
            HaproxyConfigError::PortsCollide {
                first: "replica-port",
                second: "stats-port",
                port: 5001
            }
        );
        assert_eq!(
            render(&doc(vec![]), &listeners()).unwrap_err(),
            HaproxyConfigError::NoDatabaseMember {
                scope: "demo".to_owned()
            }
        );
        let spaced = member(
            "node 0",
            Some("127.0.0.1"),
            Some(5432),
            "http://127.0.0.1:8008",
        );
        assert_eq!(
            render(&doc(vec![spaced]), &listeners()).unwrap_err(),
            HaproxyConfigError::BadServerName("node 0".to_owned())
        );
        for url in ["", "ftp://127.0.0.1:8008", "127.0.0.1:8008"] {
            let m = member("node0", Some("127.0.0.1"), Some(5432), url);
            let err = render(&doc(vec![m]), &listeners()).unwrap_err();
            assert!(
                matches!(err, HaproxyConfigError::BadApiUrl { .. }),
                "{url}: {err}"
            );
        }
    }

    fn fleet_listeners() -> FleetListeners {
        FleetListeners {
            bind: "0.0.0.0".parse().unwrap(),
            primary_port: 6000,
            replica_port: 6001,
            port_step: 2,
            stats_port: Some(7000),
        }
    }

    fn cluster(scope: &str, first_port: u16) -> FleetCluster {
        let mut doc = demo_cluster();
        doc.scope = scope.to_owned();
        for (i, m) in doc.members.iter_mut().enumerate() {
            m.port = Some(first_port + i as u16);
        }
        FleetCluster {
            label: scope.to_owned(),
            doc: Ok(doc),
        }
    }

    #[test]
    fn a_fleet_gets_a_listener_pair_per_cluster_by_position() {
        let mut witnesses = demo_cluster();
        witnesses.scope = "arbiters".to_owned();
        for m in &mut witnesses.members {
            m.host = None;
            m.port = None;
        }
        let clusters = vec![
            cluster("shard1", 15432),
            FleetCluster {
                label: "arbiters".to_owned(),
                doc: Ok(witnesses),
            },
            cluster("shard3", 25432),
        ];
        let generated = render_fleet(&clusters, &fleet_listeners(), false).unwrap();
        let text = &generated.text;
        for (listener, bind, server) in [
            ("primary_shard1", "0.0.0.0:6000", "127.0.0.1:15432"),
            ("replicas_shard1", "0.0.0.0:6001", "127.0.0.1:15432"),
            // The witness-only cluster keeps its ports (6002, 6003), so shard3 is third.
            ("primary_shard3", "0.0.0.0:6004", "127.0.0.1:25432"),
            ("replicas_shard3", "0.0.0.0:6005", "127.0.0.1:25433"),
        ] {
            let section = &text[text
                .find(&format!("listen {listener}\n"))
                .unwrap_or_else(|| panic!("no {listener}: {text}"))..];
            assert!(section.starts_with(&format!("listen {listener}\n    bind {bind}\n")));
            assert!(section.contains(&format!(" {server} maxconn 100 check port ")));
        }
        assert!(!text.contains("listen primary_arbiters"));
        assert!(text.contains("listen stats\n    mode http\n    bind 0.0.0.0:7000\n"));
        assert!(text.contains(
            "#   shard1                   0.0.0.0:6000 primary, 0.0.0.0:6001 replicas\n"
        ));
        assert!(
            text.contains("    maxconn 1200\n"),
            "2 listeners x 6 servers x 100"
        );
        assert_eq!(generated.left_out.len(), 1);
        assert!(generated.left_out[0].starts_with("arbiters: no member with a PostgreSQL address"));
    }

    #[test]
    fn an_unreachable_cluster_stops_the_fleet_unless_skipped() {
        let clusters = vec![
            cluster("shard1", 15432),
            FleetCluster {
                label: "http://10.0.0.9:8008".to_owned(),
                doc: Err("connection refused".to_owned()),
            },
            cluster("shard3", 25432),
        ];
        let err = render_fleet(&clusters, &fleet_listeners(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "http://10.0.0.9:8008 could not be read (connection refused): give \
             --skip-unreachable to write the others"
        );
        let generated = render_fleet(&clusters, &fleet_listeners(), true).unwrap();
        assert!(
            generated
                .text
                .contains("listen primary_shard3\n    bind 0.0.0.0:6004\n")
        );
        assert_eq!(
            generated.left_out,
            ["http://10.0.0.9:8008 (connection refused): ports 6002 and 6003 stay reserved for it"]
        );
    }

    #[test]
    fn a_fleet_that_cannot_be_laid_out_is_refused() {
        let two = vec![cluster("shard1", 15432), cluster("shard2", 25432)];
        let crowded = FleetListeners {
            port_step: 1,
            ..fleet_listeners()
        };
        assert_eq!(
            render_fleet(&two, &crowded, false).unwrap_err(),
            HaproxyConfigError::FleetPortsCollide {
                first: "shard1's replicas listener".to_owned(),
                second: "shard2's primary listener".to_owned(),
                port: 6001
            }
        );
        let on_stats = FleetListeners {
            stats_port: Some(6002),
            ..fleet_listeners()
        };
        assert!(matches!(
            render_fleet(&two, &on_stats, false).unwrap_err(),
            HaproxyConfigError::FleetPortsCollide { port: 6002, .. }
        ));
        let high = FleetListeners {
            primary_port: 65534,
            replica_port: 65535,
            ..fleet_listeners()
        };
        assert!(matches!(
            render_fleet(&two, &high, false).unwrap_err(),
            HaproxyConfigError::PortOutOfRange { port: 65536, .. }
        ));
        let twice = vec![cluster("shard1", 15432), cluster("shard1", 25432)];
        assert_eq!(
            render_fleet(&twice, &fleet_listeners(), false).unwrap_err(),
            HaproxyConfigError::DuplicateCluster("shard1".to_owned())
        );
        let spaced = vec![cluster("shard 1", 15432)];
        assert_eq!(
            render_fleet(&spaced, &fleet_listeners(), false).unwrap_err(),
            HaproxyConfigError::BadClusterName("shard 1".to_owned())
        );
    }

    #[test]
    fn durations_are_written_in_haproxy_notation() {
        assert_eq!(haproxy_time(Duration::from_secs(3)), "3s");
        assert_eq!(haproxy_time(Duration::from_millis(250)), "250ms");
        assert_eq!(haproxy_time(Duration::from_millis(1500)), "1500ms");
    }
}
