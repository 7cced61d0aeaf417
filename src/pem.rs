//! PEM files to rustls types, shared by the REST server (`restapi.*`), its client (`ctl.*`)
//! and the agents' gRPC transport (`raft.*`): certificate chains and CA bundles, and private
//! keys, encrypted PKCS#8 ones decrypted with their `keyfile_password` (the `pkcs8` crate:
//! PBES2 with PBKDF2 or scrypt and AES).
//!
//! Every error names the configuration key and the file, never the file's content nor the
//! password. Keys in OpenSSL's legacy encrypted format are refused with the command that
//! converts them.

use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file that cannot be used. Each names the key it is about and the file.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("{key}: cannot read {}: {error}", path.display())]
    Unreadable {
        key: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{key}: {}: {detail}", path.display())]
    Invalid {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "{key}: {} holds an encrypted private key: set {password_key} to its password",
        path.display()
    )]
    EncryptedKey {
        key: &'static str,
        path: PathBuf,
        password_key: &'static str,
    },
}

/// The bytes of the file `key` names.
pub(crate) fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|error| PemError::Unreadable {
        key,
        path: path.to_owned(),
        error,
    })
}

/// Every certificate of a PEM file (a chain, or a CA bundle); at least one.
pub(crate) fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(key, path)?;
    let invalid = |detail: String| PemError::Invalid {
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
) -> Result<LoadedKey, PemError> {
    let pem = read(key, path)?;
    let invalid = |detail: String| PemError::Invalid {
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
            return Err(PemError::EncryptedKey {
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
