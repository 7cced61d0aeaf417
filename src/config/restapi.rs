//! `restapi` (the Patroni-compatible HTTP server) and `ctl` (how `tribunectl` reaches it), with
//! the credentials both use.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::address;
use super::error::ConfigError;
use super::value::{Section, as_text};

/// A user name and an optional password. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .finish()
    }
}

pub(crate) fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl Credentials {
    /// `{username, password}`; `None` when the section is absent. `username` is required when
    /// the section is written.
    pub(crate) fn parse(s: &Section<'_>, what: &str) -> Result<Option<Credentials>, ConfigError> {
        if !s.is_present() {
            return Ok(None);
        }
        Ok(Some(Credentials {
            username: s.required_string("username", what)?,
            password: s.string("password")?,
        }))
    }
}

/// `restapi.verify_client`: whether client certificates are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyClient {
    #[default]
    None,
    /// Required for unsafe endpoints (PUT, POST, PATCH, DELETE).
    Optional,
    /// Required for every request.
    Required,
}

#[derive(Clone, PartialEq)]
pub struct RestApi {
    /// host:port as written.
    pub listen: String,
    /// `listen` resolved; a `*` or empty host binds every interface (0.0.0.0).
    pub listen_addr: SocketAddr,
    /// host:port others reach this agent at.
    pub connect_address: String,
    pub authentication: Option<Credentials>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: Option<PathBuf>,
    pub verify_client: VerifyClient,
    pub allowlist: Vec<String>,
    pub allowlist_include_members: bool,
    pub http_extra_headers: BTreeMap<String, String>,
    /// Added to `http_extra_headers` when TLS is on.
    pub https_extra_headers: BTreeMap<String, String>,
    /// OpenSSL-style cipher list for HTTPS (mapped onto rustls's suites, `api::security`).
    pub ciphers: Option<String>,
    /// What the `Server` header says.
    pub server_tokens: ServerTokens,
    /// The listen backlog; `None`: the operating system's usual 1024 rather than Patroni's
    /// default of 5, which drops connections when HAProxy checks several members at once.
    pub request_queue_size: Option<u32>,
}

/// `restapi.server_tokens`: the `Server` header, as Patroni's three settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerTokens {
    /// The server's own banner: `Tribune/<version>` (Patroni: `BaseHTTP/0.6 Python/3.x`).
    #[default]
    Original,
    /// `Patroni/4.1.5`: the product and the version of the API served.
    Minimal,
    /// `Patroni`.
    ProductOnly,
}

impl ServerTokens {
    pub fn header(self) -> String {
        match self {
            ServerTokens::Original => format!("Tribune/{}", crate::VERSION),
            ServerTokens::Minimal => format!("Patroni/{}", crate::PATRONI_API_VERSION),
            ServerTokens::ProductOnly => "Patroni".to_owned(),
        }
    }
}

impl fmt::Debug for RestApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestApi")
            .field("listen", &self.listen)
            .field("listen_addr", &self.listen_addr)
            .field("connect_address", &self.connect_address)
            .field("authentication", &self.authentication)
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field("keyfile_password", &redacted(&self.keyfile_password))
            .field("cafile", &self.cafile)
            .field("verify_client", &self.verify_client)
            .field("allowlist", &self.allowlist)
            .field("allowlist_include_members", &self.allowlist_include_members)
            .field("http_extra_headers", &self.http_extra_headers)
            .field("https_extra_headers", &self.https_extra_headers)
            .field("ciphers", &self.ciphers)
            .field("server_tokens", &self.server_tokens)
            .field("request_queue_size", &self.request_queue_size)
            .finish()
    }
}

impl RestApi {
    /// Whether the server speaks HTTPS (a certificate is configured).
    pub fn tls(&self) -> bool {
        self.certfile.is_some()
    }

    /// The member's `api_url`: `http(s)://{connect_address}/patroni`.
    pub fn api_url(&self) -> String {
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://{}/patroni", self.connect_address)
    }

    pub(crate) fn parse(s: &Section<'_>) -> Result<RestApi, ConfigError> {
        let listen = s.required_string("listen", "the host:port the REST API binds")?;
        let listen_addr = address::bind_addr(&s.key("listen"), &listen)?;
        let connect_address = s.required_string(
            "connect_address",
            "the host:port other members and clients reach this REST API at",
        )?;
        address::connect(&s.key("connect_address"), &connect_address)?;
        let verify_client = match s.string("verify_client")?.as_deref() {
            None => VerifyClient::None,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "none" => VerifyClient::None,
                "optional" => VerifyClient::Optional,
                "required" => VerifyClient::Required,
                _ => {
                    return Err(ConfigError::at(
                        s.key("verify_client"),
                        format!("expected none, optional or required, got {v:?}"),
                    ));
                }
            },
        };
        let certfile = s.path_buf("certfile")?;
        let keyfile = s.path_buf("keyfile")?;
        let keyfile_password = s.string("keyfile_password")?.filter(|p| !p.is_empty());
        let cafile = s.path_buf("cafile")?;
        // TLS settings without a certificate would be silently without effect.
        let orphans = [
            ("keyfile", keyfile.is_some()),
            ("keyfile_password", keyfile_password.is_some()),
            ("cafile", cafile.is_some()),
        ];
        if let Some((key, _)) = orphans.iter().find(|(_, set)| *set && certfile.is_none()) {
            return Err(ConfigError::at(
                s.key(key),
                "set without restapi.certfile (the server certificate that enables HTTPS)",
            ));
        }
        if certfile.is_none() && verify_client != VerifyClient::None {
            return Err(ConfigError::at(
                s.key("verify_client"),
                "client certificates need HTTPS: set restapi.certfile",
            ));
        }
        Ok(RestApi {
            listen,
            listen_addr,
            connect_address,
            authentication: Credentials::parse(
                &s.section("authentication")?,
                "the user name for basic authentication",
            )?,
            certfile,
            keyfile,
            keyfile_password,
            cafile,
            verify_client,
            allowlist: s.string_list("allowlist")?.unwrap_or_default(),
            allowlist_include_members: s.bool("allowlist_include_members")?.unwrap_or(false),
            http_extra_headers: headers(s, "http_extra_headers")?,
            https_extra_headers: headers(s, "https_extra_headers")?,
            ciphers: s.string("ciphers")?.filter(|c| !c.trim().is_empty()),
            server_tokens: match s.string("server_tokens")?.as_deref().map(str::trim) {
                None => ServerTokens::Original,
                Some(t) if t.eq_ignore_ascii_case("original") => ServerTokens::Original,
                Some(t) if t.eq_ignore_ascii_case("minimal") => ServerTokens::Minimal,
                Some(t) if t.eq_ignore_ascii_case("productonly") => ServerTokens::ProductOnly,
                Some(other) => {
                    return Err(ConfigError::at(
                        s.key("server_tokens"),
                        format!("expected original, minimal or productonly, got {other:?}"),
                    ));
                }
            },
            request_queue_size: s.integer("request_queue_size", 0, 4096)?.map(|n| n as u32),
        })
    }
}

/// `http_extra_headers` / `https_extra_headers`: a mapping of header names to text values.
fn headers(s: &Section<'_>, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(map) = s.object(key)? else {
        return Ok(BTreeMap::new());
    };
    map.iter()
        .map(|(name, v)| {
            as_text(v).map(|text| (name.clone(), text)).ok_or_else(|| {
                ConfigError::wrong_type(
                    format!("{}.{name}", s.key(key)),
                    "a header value (string)",
                    v,
                )
            })
        })
        .collect()
}

/// `ctl`: how `tribunectl` talks to the REST API.
#[derive(Clone, Default, PartialEq)]
pub struct Ctl {
    pub authentication: Option<Credentials>,
    /// Do not verify the server certificate.
    pub insecure: bool,
    pub cacert: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    /// The password of an encrypted `keyfile` (PKCS#8).
    pub keyfile_password: Option<String>,
}

impl fmt::Debug for Ctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctl")
            .field("authentication", &self.authentication)
            .field("insecure", &self.insecure)
            .field("cacert", &self.cacert)
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field("keyfile_password", &redacted(&self.keyfile_password))
            .finish()
    }
}

impl Ctl {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Ctl, ConfigError> {
        Ok(Ctl {
            authentication: Credentials::parse(
                &s.section("authentication")?,
                "the user name for basic authentication",
            )?,
            insecure: s.bool("insecure")?.unwrap_or(false),
            cacert: s.path_buf("cacert")?,
            certfile: s.path_buf("certfile")?,
            keyfile: s.path_buf("keyfile")?,
            keyfile_password: s.string("keyfile_password")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn restapi(doc: serde_json::Value) -> Result<RestApi, ConfigError> {
        RestApi::parse(&Section::new("restapi", Some(&doc)).unwrap())
    }

    #[test]
    fn api_url_follows_tls() {
        let plain =
            restapi(json!({"listen": "*:8008", "connect_address": "10.0.0.1:8008"})).unwrap();
        assert!(!plain.tls());
        assert_eq!(plain.api_url(), "http://10.0.0.1:8008/patroni");
        assert_eq!(plain.listen_addr, "0.0.0.0:8008".parse().unwrap());
        let tls = restapi(json!({
            "listen": "0.0.0.0:8008", "connect_address": "10.0.0.1:8008",
            "certfile": "/etc/ssl/server.pem", "keyfile": "", "verify_client": "optional",
            "http_extra_headers": {"X-Frame-Options": "SAMEORIGIN"}
        }))
        .unwrap();
        assert!(tls.tls());
        assert_eq!(tls.keyfile, None);
        assert_eq!(tls.verify_client, VerifyClient::Optional);
        assert_eq!(tls.api_url(), "https://10.0.0.1:8008/patroni");
        assert_eq!(tls.http_extra_headers["X-Frame-Options"], "SAMEORIGIN");
    }

    #[test]
    fn debug_hides_secrets() {
        let api = restapi(json!({
            "listen": "*:8008", "connect_address": "10.0.0.1:8008", "keyfile_password": "kp-secret",
            "certfile": "/etc/ssl/server.pem",
            "authentication": {"username": "admin", "password": "pw-secret"}
        }))
        .unwrap();
        let text = format!("{api:?}");
        assert!(text.contains("admin"), "{text}");
        assert!(
            !text.contains("pw-secret") && !text.contains("kp-secret"),
            "{text}"
        );
    }

    #[test]
    fn bad_verify_client_names_the_key() {
        let err = restapi(json!({
            "listen": "*:8008", "connect_address": "10.0.0.1:8008", "verify_client": "always"
        }))
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("restapi.verify_client"));
    }

    #[test]
    fn bad_server_tokens_and_queue_sizes_name_the_key() {
        for (key, value) in [
            ("server_tokens", json!("full")),
            ("request_queue_size", json!(-1)),
            ("request_queue_size", json!(100_000)),
        ] {
            let mut doc = json!({"listen": "*:8008", "connect_address": "10.0.0.1:8008"});
            doc[key] = value.clone();
            let err = restapi(doc).unwrap_err();
            assert_eq!(
                err.key.as_deref(),
                Some(&*format!("restapi.{key}")),
                "{value}"
            );
        }
    }

    #[test]
    fn tls_settings_without_a_certificate_are_refused() {
        for (key, value) in [
            ("keyfile", json!("/etc/ssl/key.pem")),
            ("keyfile_password", json!("secret")),
            ("cafile", json!("/etc/ssl/ca.pem")),
            ("verify_client", json!("required")),
        ] {
            let mut doc = json!({"listen": "*:8008", "connect_address": "10.0.0.1:8008"});
            doc[key] = value.clone();
            let err = restapi(doc.clone()).unwrap_err();
            assert_eq!(err.key, Some(format!("restapi.{key}")), "{err}");
            doc["certfile"] = json!("/etc/ssl/server.pem");
            restapi(doc).unwrap();
        }
        // `none` and empty values say nothing, as Patroni reads them.
        restapi(json!({
            "listen": "*:8008", "connect_address": "10.0.0.1:8008",
            "verify_client": "none", "keyfile": "", "cafile": ""
        }))
        .unwrap();
    }

    #[test]
    fn https_extra_headers_are_read_like_http_ones() {
        let api = restapi(json!({
            "listen": "*:8008", "connect_address": "10.0.0.1:8008", "certfile": "/c.pem",
            "https_extra_headers": {"Strict-Transport-Security": "max-age=31536000"}
        }))
        .unwrap();
        assert_eq!(
            api.https_extra_headers["Strict-Transport-Security"],
            "max-age=31536000"
        );
        let err = restapi(json!({
            "listen": "*:8008", "connect_address": "10.0.0.1:8008",
            "https_extra_headers": {"X-A": ["list"]}
        }))
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("restapi.https_extra_headers.X-A"));
    }
}
