//! The REST server's rustls configuration (`restapi.certfile`, `keyfile`, `keyfile_password`,
//! `cafile`, `verify_client`, `ciphers`), from the PEM readers of [`crate::pem`].
//!
//! Every error names the key and the file.
//!
//! Hazards: rustls is built without a process-wide default crypto provider; every
//! configuration here names ring's explicitly, so nothing depends on an earlier
//! `install_default`.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;

use super::SecurityError;
use crate::config::{RestApi, VerifyClient};
use crate::pem::{PemError, certificates, private_key};

type Versions = Vec<&'static rustls::SupportedProtocolVersion>;

/// ring's provider restricted to `restapi.ciphers` (all of its suites without it), and the
/// protocol versions those suites leave.
fn provider(
    api: &RestApi,
) -> Result<(Arc<rustls::crypto::CryptoProvider>, Versions), SecurityError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let mut versions: Versions = rustls::DEFAULT_VERSIONS.to_vec();
    if let Some(ciphers) = &api.ciphers {
        let suites = super::ciphers::suites(ciphers).map_err(|message| SecurityError::Setting {
            key: "restapi.ciphers".into(),
            message,
        })?;
        versions.retain(|v| suites.iter().any(|s| s.version() == *v));
        provider.cipher_suites = suites;
    }
    Ok((Arc::new(provider), versions))
}

/// The server's TLS configuration, `None` without `certfile` (plain HTTP).
pub(super) fn server_config(
    api: &RestApi,
) -> Result<Option<Arc<rustls::ServerConfig>>, SecurityError> {
    let Some(certfile) = &api.certfile else {
        return Ok(None);
    };
    let chain = certificates("restapi.certfile", certfile)?;
    // As Patroni (OpenSSL's load_cert_chain): without keyfile, the key is in certfile.
    let (key_name, key_path) = match &api.keyfile {
        Some(path) => ("restapi.keyfile", path),
        None => ("restapi.certfile", certfile),
    };
    let key = private_key(
        key_name,
        key_path,
        api.keyfile_password.as_deref(),
        "restapi.keyfile_password",
    )?
    .der;
    let (provider, versions) = provider(api)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| SecurityError::Setting {
            key: "restapi.certfile".into(),
            message: format!("TLS cannot be set up: {e}"),
        })?;
    let builder = match api.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        VerifyClient::Optional | VerifyClient::Required => {
            let cafile = api
                .cafile
                .as_deref()
                .ok_or_else(|| SecurityError::Setting {
                    key: "restapi.cafile".into(),
                    message: "required when restapi.verify_client is optional or required: the CA \
                          that signs the clients' certificates"
                        .into(),
                })?;
            let mut roots = RootCertStore::empty();
            for cert in certificates("restapi.cafile", cafile)? {
                roots.add(cert).map_err(|e| PemError::Invalid {
                    key: "restapi.cafile",
                    path: cafile.to_owned(),
                    detail: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // optional: a certificate is asked for, checked when sent, and required by the
            // guard only for unsafe methods; required: the handshake itself needs one.
            let verifier = if api.verify_client == VerifyClient::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| PemError::Invalid {
                key: "restapi.cafile",
                path: cafile.to_owned(),
                detail: format!("cannot verify client certificates with it: {e}"),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| PemError::Invalid {
            key: key_name,
            path: key_path.to_owned(),
            detail: format!("the key cannot serve the certificate of restapi.certfile: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
