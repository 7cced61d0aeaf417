//! PEM files to rustls: the REST server's configuration (`restapi.certfile`, `keyfile`,
//! `keyfile_password`, `cafile`, `verify_client`) and the readers the client uses for `ctl.*`.
//!
//! Every error names the key and the file. Encrypted PKCS#8 keys are decrypted with their
//! `keyfile_password` (the `pkcs8` crate: PBES2 with PBKDF2 or scrypt and AES); keys in
//! OpenSSL's legacy encrypted format are refused with the command that converts them.
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

/// The PEM label of an encrypted PKCS#8 key (`openssl genpkey -aes256`, `openssl pkcs8 -topk8`).
const ENCRYPTED_PKCS8_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// A private key read from a PEM file: what rustls loads, and an unencrypted PEM of it for
/// clients that take PEM text (reqwest's identity).
pub(crate) struct LoadedKey {
    pub der: PrivateKeyDer<'static>,
    pub pem: Vec<u8>,
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1). An encrypted PKCS#8 key is
/// decrypted with `password`; without one, the error names `password_key`. An unencrypted
/// key ignores the password, as OpenSSL does. Keys encrypted in OpenSSL's legacy format
/// (`Proc-Type: 4,ENCRYPTED`) are refused with the command that converts them.
pub(crate) fn private_key(
    key: &'static str,
    path: &Path,
    password: Option<&str>,
    password_key: &'static str,
) -> Result<LoadedKey, SecurityError> {
    let pem = read(key, path)?;
    let invalid = |detail: String| SecurityError::Invalid {
        key,
        path: path.to_owned(),
        detail,
    };
    let text = String::from_utf8_lossy(&pem);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(invalid(
            "holds a key encrypted in OpenSSL's legacy format, which Tribune cannot read: \
             convert it to encrypted PKCS#8 (`openssl pkcs8 -topk8 -in OLD -out NEW`)"
                .into(),
        ));
    }
    if let Some(block) = pem_block(&text, ENCRYPTED_PKCS8_LABEL) {
        let Some(password) = password else {
            return Err(SecurityError::EncryptedKey {
                key,
                path: path.to_owned(),
                password_key,
            });
        };
        let decrypted = decrypt_pkcs8(block, password).map_err(|detail| {
            invalid(format!(
                "cannot decrypt the key with {password_key}: {detail}"
            ))
        })?;
        let der = PrivateKeyDer::Pkcs8(decrypted.as_bytes().to_vec().into());
        let plain = decrypted
            .to_pem("PRIVATE KEY", pkcs8::LineEnding::LF)
            .map_err(|e| invalid(format!("cannot re-encode the decrypted key: {e}")))?;
        return Ok(LoadedKey {
            der,
            pem: plain.as_bytes().to_vec(),
        });
    }
    if password.is_some() {
        tracing::warn!(
            "{password_key} is set but {} is not encrypted: the password is not used",
            path.display()
        );
    }
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(der) => Ok(LoadedKey { der, pem }),
        Err(e) => Err(invalid(format!(
            "holds no usable PEM private key (PKCS#8, RSA or EC): {e}"
        ))),
    }
}

/// The first PEM block labelled `label` in `text`, armour included.
fn pem_block<'t>(text: &'t str, label: &str) -> Option<&'t str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

/// PEM text without its encrypted PKCS#8 key block, if it has one.
pub(crate) fn without_encrypted_key(pem: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&pem);
    match pem_block(&text, ENCRYPTED_PKCS8_LABEL) {
        Some(block) => text.replacen(block, "", 1).into_bytes(),
        None => pem,
    }
}

/// An encrypted PKCS#8 PEM block decrypted (PBES2: PBKDF2 or scrypt with AES-CBC).
fn decrypt_pkcs8(block: &str, password: &str) -> Result<pkcs8::SecretDocument, String> {
    let encrypted = pkcs8::der::Document::from_pem(block)
        .map_err(|e| format!("not a PEM encrypted key: {e}"))?
        .1;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(encrypted.as_bytes())
        .map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
    info.decrypt(password)
        .map_err(|_| "wrong password, or a cipher other than PBES2 with AES".to_owned())
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
