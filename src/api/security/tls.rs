//! PEM files to rustls: the REST server's configuration (`restapi.certfile`, `keyfile`,
//! `keyfile_password`, `cafile`, `verify_client`) and the readers the client uses for `ctl.*`.
//!
//! Every error names the key and the file. Encrypted private keys are refused rather than
//! ignored: decrypting them would need a PKCS#5/PKCS#8 stack this build does not carry, and a
//! key that silently fails to load at a later reload is worse than a clear refusal at start.
//!
//! Hazards: rustls is built without a process-wide default crypto provider; every
//! configuration here names ring's explicitly, so nothing depends on an earlier
//! `install_default`.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::SecurityError;
use crate::config::{RestApi, VerifyClient};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The bytes of the file `key` names.
pub(crate) fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|error| SecurityError::Unreadable {
        key,
        path: path.to_owned(),
        error,
    })
}

/// Every certificate of a PEM file (a chain, or a CA bundle); at least one.
pub(crate) fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let pem = read(key, path)?;
    let invalid = |detail: String| SecurityError::Invalid {
        key,
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// Whether PEM text holds an encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a
/// traditional key with a `Proc-Type: 4,ENCRYPTED` header).
fn is_encrypted_key(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1), with its PEM text. An encrypted
/// key is refused, naming `password_key`; an unencrypted one ignores the password, as
/// OpenSSL does.
pub(crate) fn private_key(
    key: &'static str,
    path: &Path,
    password_key: &'static str,
) -> Result<(PrivateKeyDer<'static>, Vec<u8>), SecurityError> {
    let pem = read(key, path)?;
    if is_encrypted_key(&pem) {
        return Err(SecurityError::EncryptedKey {
            key,
            path: path.to_owned(),
            password_key,
        });
    }
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(der) => Ok((der, pem)),
        Err(e) => Err(SecurityError::Invalid {
            key,
            path: path.to_owned(),
            detail: format!("holds no usable PEM private key (PKCS#8, RSA or EC): {e}"),
        }),
    }
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
    let (key, _) = private_key(key_name, key_path, "restapi.keyfile_password")?;
    if api.keyfile_password.is_some() {
        tracing::warn!(
            "restapi.keyfile_password is set but {} is not encrypted: the password is not used",
            key_path.display()
        );
    }
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
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
                roots.add(cert).map_err(|e| SecurityError::Invalid {
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
            let verifier = verifier.build().map_err(|e| SecurityError::Invalid {
                key: "restapi.cafile",
                path: cafile.to_owned(),
                detail: format!("cannot verify client certificates with it: {e}"),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| SecurityError::Invalid {
            key: key_name,
            path: key_path.to_owned(),
            detail: format!("the key cannot serve the certificate of restapi.certfile: {e}"),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
