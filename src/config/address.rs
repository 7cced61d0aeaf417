//! `host:port` addresses as Patroni writes them: `10.0.0.1:8008`, `[::1]:8008`, and for
//! `postgresql.listen` several hosts sharing one port (`127.0.0.1,10.0.0.1:5432`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use super::error::ConfigError;

/// Hosts that mean "every interface" when listening.
fn is_wildcard(host: &str) -> bool {
    matches!(host, "" | "*" | "0.0.0.0" | "::")
}

fn split(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let bad = |why: &str| ConfigError::at(key, format!("{why} in {value:?}: expected host:port"));
    let (host, port) = value
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| bad("no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port is not a number between 0 and 65535"))?;
    Ok((host.trim().to_owned(), port))
}

fn unbracket(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// An address others connect to: one non-wildcard host and a non-zero port.
pub(crate) fn connect(key: &str, value: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = split(key, value)?;
    let host = unbracket(&host);
    if is_wildcard(&host) {
        return Err(ConfigError::at(
            key,
            format!(
                "{value:?} is not an address others can connect to: give this host's name or IP"
            ),
        ));
    }
    if host.contains(',') {
        return Err(ConfigError::at(
            key,
            format!("{value:?} names several hosts: expected one host:port"),
        ));
    }
    if port == 0 {
        return Err(ConfigError::at(key, format!("port 0 in {value:?}")));
    }
    Ok((host, port))
}

/// A listen address: `host[,host2...]:port`; hosts may be `*`, `0.0.0.0` or empty (all
/// interfaces). `multiple` allows the comma-separated form (`postgresql.listen` only).
pub(crate) fn listen(
    key: &str,
    value: &str,
    multiple: bool,
) -> Result<(Vec<String>, u16), ConfigError> {
    let (hosts, port) = split(key, value)?;
    let hosts: Vec<String> = hosts.split(',').map(unbracket).collect();
    if hosts.len() > 1 && !multiple {
        return Err(ConfigError::at(
            key,
            format!("{value:?} names several hosts: expected one host:port"),
        ));
    }
    if hosts.len() > 1 && hosts.iter().any(String::is_empty) {
        return Err(ConfigError::at(key, format!("empty host in {value:?}")));
    }
    Ok((hosts, port))
}

/// The socket address to bind for a single-host listen address. Wildcards bind every interface;
/// a host name is resolved once, here.
pub(crate) fn bind_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let (hosts, port) = listen(key, value, false)?;
    let host = &hosts[0];
    if host == "::" {
        return Ok(SocketAddr::new(IpAddr::from([0u16; 8]), port));
    }
    if is_wildcard(host) {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ConfigError::at(key, format!("cannot resolve the host {host:?}")))
}

/// Patroni's host for local connections to PostgreSQL from `postgresql.listen`: `localhost`
/// when any listen host is a wildcard or loopback (connecting to `*` is impossible), otherwise
/// the first host.
pub(crate) fn local_host(hosts: &[String]) -> String {
    let local =
        |h: &String| is_wildcard(h) || matches!(h.as_str(), "127.0.0.1" | "::1" | "localhost");
    if hosts.iter().any(local) {
        "localhost".to_owned()
    } else {
        hosts[0].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_addresses_need_one_real_host_and_port() {
        assert_eq!(
            connect("k", "10.0.0.1:8008").unwrap(),
            ("10.0.0.1".into(), 8008)
        );
        assert_eq!(connect("k", "[::1]:8008").unwrap(), ("::1".into(), 8008));
        assert_eq!(
            connect("k", "db-1.example:5432").unwrap(),
            ("db-1.example".into(), 5432)
        );
        for bad in [
            "10.0.0.1",
            "10.0.0.1:http",
            "*:8008",
            ":8008",
            "a,b:1",
            "h:0",
            "h:70000",
        ] {
            let err = connect("k", bad).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("k"), "{bad}");
        }
    }

    #[test]
    fn listen_addresses_allow_wildcards_and_several_hosts() {
        assert_eq!(
            listen("k", "127.0.0.1,10.0.0.1:5432", true).unwrap(),
            (vec!["127.0.0.1".into(), "10.0.0.1".into()], 5432)
        );
        assert!(listen("k", "127.0.0.1,10.0.0.1:5432", false).is_err());
        assert_eq!(
            bind_addr("k", "*:8008").unwrap(),
            "0.0.0.0:8008".parse().unwrap()
        );
        assert_eq!(
            bind_addr("k", ":8008").unwrap(),
            "0.0.0.0:8008".parse().unwrap()
        );
        assert_eq!(
            bind_addr("k", "[::]:8008").unwrap(),
            "[::]:8008".parse().unwrap()
        );
        assert_eq!(
            bind_addr("k", "127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(bind_addr("k", "localhost:8008").unwrap().ip().is_loopback());
    }

    #[test]
    fn local_host_follows_patroni() {
        let hosts = |s: &[&str]| s.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(local_host(&hosts(&["10.0.0.1"])), "10.0.0.1");
        assert_eq!(local_host(&hosts(&["*"])), "localhost");
        assert_eq!(local_host(&hosts(&["10.0.0.1", "127.0.0.1"])), "localhost");
    }
}
