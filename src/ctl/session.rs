//! Finding the cluster and talking to it: the global options (`-c/--config-file`,
//! `PATRONICTL_CONFIG_FILE`, `--url`/`TRIBUNECTL_URL`, `-k/--insecure`), the few keys of a
//! Patroni or patronictl configuration file the CLI needs, and the REST client built from them.
//!
//! As patronictl, the configuration file is read without schema validation: a node's
//! `patroni.yml` and a `patronictl.yaml` holding only `ctl:` both do. Read: `scope` (the default
//! cluster name), `restapi.connect_address` (else `listen`) and `restapi.certfile` (https), and
//! for requests `ctl.authentication`/`insecure`/`cacert`/`certfile`/`keyfile`, falling back to
//! `restapi.authentication` and `restapi.cafile`.
//!
//! Must not: talk to anything but the members' REST APIs, or send a request in [`Session::open`]
//! (`tribunectl version` and `--help` work with no cluster up).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::api::ClusterDocument;
use crate::api::client::{Client, ClientOptions, KeyPassword};
use crate::config::Credentials;

/// The options every verb takes, before or after its name.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// A Patroni/Tribune or patronictl configuration file: the REST address, credentials and
    /// default cluster name come from it.
    #[arg(
        short = 'c',
        long = "config-file",
        env = "PATRONICTL_CONFIG_FILE",
        global = true
    )]
    pub config_file: Option<PathBuf>,
    /// REST API URL of a member (repeatable, or comma separated); tried in order, then the
    /// other members the first one names.
    #[arg(
        long = "url",
        env = "TRIBUNECTL_URL",
        global = true,
        value_delimiter = ','
    )]
    pub url: Vec<String>,
    /// Do not verify the members' TLS certificates.
    #[arg(short = 'k', long = "insecure", global = true)]
    pub insecure: bool,
}

/// What the CLI takes from a configuration file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub scope: Option<String>,
    /// This member's REST API (`http(s)://connect_address`).
    pub url: Option<String>,
    pub auth: Option<Credentials>,
    pub insecure: bool,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub keyfile_password: Option<KeyPassword>,
    /// `postgresql.authentication.superuser`, then `.replication`: the logins
    /// `promote-cluster` tries on a standby cluster's source.
    pub db_logins: Vec<Credentials>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn credentials(section: Option<&Value>) -> Option<Credentials> {
    let section = section?;
    Some(Credentials {
        username: text(section.get("username"))?,
        password: text(section.get("password")),
    })
}

/// `host:port` others reach a `listen` address at: a wildcard host becomes the loopback.
fn reachable(listen: &str) -> String {
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, "8008"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let wildcard = host.is_empty()
        || host == "*"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip: IpAddr| ip.is_unspecified());
    if wildcard {
        format!("127.0.0.1:{port}")
    } else {
        listen.to_owned()
    }
}

impl Settings {
    /// The keys the CLI reads from a parsed configuration document; anything else is ignored.
    pub fn from_document(doc: &Value) -> Settings {
        let restapi = doc.get("restapi");
        let ctl = doc.get("ctl");
        let get = |section: Option<&Value>, key: &str| section.and_then(|s| s.get(key)).cloned();
        let address = text(restapi.and_then(|r| r.get("connect_address")))
            .or_else(|| text(restapi.and_then(|r| r.get("listen"))).map(|l| reachable(&l)));
        let tls = text(restapi.and_then(|r| r.get("certfile"))).is_some();
        let path = |v: Option<Value>| text(v.as_ref()).map(PathBuf::from);
        let certfile = path(get(ctl, "certfile"));
        let keyfile = path(get(ctl, "keyfile"));
        Settings {
            scope: text(doc.get("scope")),
            url: address.map(|a| {
                if a.contains("://") {
                    a
                } else if tls {
                    format!("https://{a}")
                } else {
                    format!("http://{a}")
                }
            }),
            auth: credentials(ctl.and_then(|c| c.get("authentication")))
                .or_else(|| credentials(restapi.and_then(|r| r.get("authentication")))),
            insecure: matches!(get(ctl, "insecure"), Some(Value::Bool(true))),
            ca_file: path(get(ctl, "cacert")).or_else(|| path(get(restapi, "cafile"))),
            client_cert: match (certfile.clone(), keyfile) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (Some(cert), None) => Some((cert.clone(), cert)),
                _ => None,
            },
            keyfile_password: ctl
                .and_then(|c| c.get("keyfile_password"))
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(|p| KeyPassword(p.to_owned())),
            db_logins: ["superuser", "replication"]
                .into_iter()
                .filter_map(|user| {
                    credentials(
                        doc.get("postgresql")
                            .and_then(|p| p.get("authentication"))
                            .and_then(|a| a.get(user)),
                    )
                })
                .collect(),
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let doc = super::yaml::parse(&text)
            .with_context(|| format!("cannot parse {} as YAML", path.display()))?;
        Ok(Settings::from_document(&doc))
    }
}

/// patronictl's default configuration file: `~/.config/patroni/patronictl.yaml`.
fn default_config_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".config/patroni/patronictl.yaml");
    path.is_file().then_some(path)
}

/// A client of the cluster's REST API and the default cluster name.
pub struct Session {
    pub client: Client,
    scope: Option<String>,
    /// The REST API URLs given (`--url`, the configuration file).
    urls: Vec<String>,
    /// The database logins of the configuration file (`Settings::db_logins`).
    pub db_logins: Vec<Credentials>,
}

impl Session {
    /// From the global options; sends nothing.
    pub fn open(global: &Global) -> anyhow::Result<Session> {
        let file = global.config_file.clone().or_else(default_config_file);
        let settings = match &file {
            Some(path) => Settings::read(path)?,
            None => Settings::default(),
        };
        let urls: Vec<String> = if global.url.is_empty() {
            settings.url.iter().cloned().collect()
        } else {
            global.url.clone()
        };
        if urls.is_empty() {
            match &file {
                Some(path) => bail!(
                    "{} names no REST API (restapi.connect_address): give --url http://host:8008",
                    path.display()
                ),
                None => bail!(
                    "no cluster to talk to: give --url http://host:8008 (or TRIBUNECTL_URL) or -c CONFIG.yml (or PATRONICTL_CONFIG_FILE)"
                ),
            }
        }
        let db_logins = settings.db_logins.clone();
        let options = ClientOptions {
            auth: settings.auth,
            insecure: global.insecure || settings.insecure,
            ca_file: settings.ca_file,
            client_cert: settings.client_cert,
            keyfile_password: settings.keyfile_password,
            ..ClientOptions::default()
        };
        Ok(Session {
            client: Client::with_options(&urls, &options)?,
            scope: settings.scope,
            urls,
            db_logins,
        })
    }

    /// The REST API URLs given (`--url`, the configuration file), in order.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// `GET /cluster` from the first member that answers. The cluster must be `name` (else the
    /// configuration's scope, when there is one). Every member's URL is then tried by later
    /// requests.
    pub async fn cluster(&mut self, name: Option<&str>) -> anyhow::Result<ClusterDocument> {
        let doc = self
            .client
            .cluster()
            .await
            .context("reading the cluster (GET /cluster)")?;
        if let Some(expected) = name.or(self.scope.as_deref())
            && expected != doc.scope
        {
            bail!(
                "Cluster {expected} not found: the members reached belong to cluster {}",
                doc.scope
            );
        }
        self.client.learn_members(&doc);
        Ok(doc)
    }

    /// Every known member URL, `first`'s (a member of `doc`) before the others.
    pub fn urls_from(&self, doc: &ClusterDocument, first: Option<&str>) -> Vec<String> {
        let first = first
            .and_then(|name| doc.members.iter().find(|m| m.name == name))
            .map(|m| crate::api::client::base_url(&m.api_url));
        first
            .iter()
            .chain(
                self.client
                    .bases()
                    .iter()
                    .filter(|b| Some(*b) != first.as_ref()),
            )
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_configuration() {
        let s = Settings::from_document(&json!({
            "scope": "batman", "name": "node0",
            "restapi": {"listen": "0.0.0.0:8008", "connect_address": "10.0.0.1:8008",
                        "authentication": {"username": "api", "password": "secret"},
                        "certfile": "/etc/ssl/api.pem", "cafile": "/etc/ssl/ca.pem"},
            "postgresql": {"data_dir": "/data"}
        }));
        assert_eq!(s.scope.as_deref(), Some("batman"));
        assert_eq!(s.url.as_deref(), Some("https://10.0.0.1:8008"));
        assert_eq!(s.auth.as_ref().map(|a| a.username.as_str()), Some("api"));
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/ssl/ca.pem")));
        assert!(!s.insecure);
    }

    #[test]
    fn ctl_settings_win_over_restapi_ones() {
        let s = Settings::from_document(&json!({
            "restapi": {"listen": "*:8009", "authentication": {"username": "api", "password": "a"},
                        "cafile": "/ca-server.pem"},
            "ctl": {"authentication": {"username": "ctl", "password": "c"}, "insecure": true,
                    "cacert": "/ca.pem", "certfile": "/me.pem", "keyfile": "/me.key",
                    "keyfile_password": " pass "}
        }));
        assert_eq!(s.scope, None);
        assert_eq!(s.url.as_deref(), Some("http://127.0.0.1:8009"));
        assert_eq!(s.auth.as_ref().map(|a| a.username.as_str()), Some("ctl"));
        assert!(s.insecure);
        assert_eq!(s.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            s.client_cert,
            Some((PathBuf::from("/me.pem"), PathBuf::from("/me.key")))
        );
        assert_eq!(s.keyfile_password, Some(KeyPassword(" pass ".into())));
    }

    #[test]
    fn a_patronictl_file_with_only_ctl_names_no_url() {
        let s = Settings::from_document(&json!({"ctl": {"insecure": false}}));
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_on_the_loopback() {
        assert_eq!(reachable("0.0.0.0:8008"), "127.0.0.1:8008");
        assert_eq!(reachable("[::]:8008"), "127.0.0.1:8008");
        assert_eq!(reachable(":8008"), "127.0.0.1:8008");
        assert_eq!(reachable("10.0.0.2:8008"), "10.0.0.2:8008");
    }
}
