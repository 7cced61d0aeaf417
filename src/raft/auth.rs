//! How agents authenticate each other on the gRPC port ([`PeerAuth`]), and the rustls
//! configurations that enforce it ([`Credentials`]), for both ends of every connection.
//!
//! Three modes, chosen by the `raft` section:
//!
//! - **Certificates** (`certfile`, `keyfile`, `keyfile_password`, `cafile`): TLS 1.3 only, and
//!   both ends present a certificate that chains to `cafile`. The server's certificate must
//!   also be valid for the host of the address the client dialled (the peer's `self_addr` as
//!   the membership lists it: a DNS name or an IP address in its subjectAltName); the client's
//!   needs the clientAuth usage. The CA is the credential: any certificate it signed is a
//!   member's, so it must be the cluster's own CA, not one that signs other services' clients.
//! - **Password** (Patroni's `raft.password`): TLS 1.3 with one Ed25519 key pair that every
//!   member derives from the password and the scope (PBKDF2-HMAC-SHA256, [`KDF_ITERATIONS`]),
//!   presented as a raw public key (RFC 7250) and pinned at the other end: a peer that does not
//!   know the password cannot complete the handshake. Confidentiality, integrity and replay
//!   protection are TLS's; what it does not give is an identity per member (anyone with the
//!   password is every member), and it is only as strong as the password: whoever can reach
//!   the port receives the public key and can test guesses offline, each costing the KDF.
//! - **Open** (neither): plain-text HTTP/2; the agent warns at start.
//!
//! Hazard: a verifier here refuses during the handshake, so nothing a refused peer sends is
//! ever decoded. [`Credentials::still_trusts`] re-checks a connection's peer after a reload.
//! Must not log or display a password or a key.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use super::RaftError;
use crate::pem::{self, PemError};

/// PBKDF2 rounds for `raft.password`: about 0.1 s once per start and reload, and as much for
/// each guess of an attacker who obtained the public key.
pub(crate) const KDF_ITERATIONS: u32 = 200_000;
/// Salt prefix; the scope follows it, so two clusters with one password have different keys.
const KDF_SALT: &[u8] = b"tribune raft.password v1\0";
/// The ALPN protocol of every connection: gRPC's HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// How the agents of a cluster authenticate each other (see the module header).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum PeerAuth {
    /// No authentication: any process that knows the scope is a peer.
    #[default]
    Open,
    /// `raft.password`.
    Password(String),
    /// `raft.certfile`, `keyfile`, `keyfile_password`, `cafile`.
    Certificates(CertificateFiles),
}

/// The files of [`PeerAuth::Certificates`].
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub certfile: PathBuf,
    /// `None`: the key is in `certfile`.
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: PathBuf,
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAuth::Open => f.write_str("Open"),
            PeerAuth::Password(_) => f.write_str("Password(<redacted>)"),
            PeerAuth::Certificates(files) => f.debug_tuple("Certificates").field(files).finish(),
        }
    }
}

impl fmt::Debug for CertificateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateFiles")
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field(
                "keyfile_password",
                &self.keyfile_password.as_ref().map(|_| "<redacted>"),
            )
            .field("cafile", &self.cafile)
            .finish()
    }
}

impl PeerAuth {
    /// The mode the `raft` section asks for: certificates win over a password.
    pub fn from_config(raft: &crate::config::Raft) -> PeerAuth {
        match (&raft.certfile, &raft.cafile, &raft.password) {
            (Some(certfile), Some(cafile), _) => PeerAuth::Certificates(CertificateFiles {
                certfile: certfile.clone(),
                keyfile: raft.keyfile.clone(),
                keyfile_password: raft.keyfile_password.clone(),
                cafile: cafile.clone(),
            }),
            (_, _, Some(password)) => PeerAuth::Password(password.clone()),
            _ => PeerAuth::Open,
        }
    }

    /// The mode's name, for logs and refusals.
    pub fn mode(&self) -> &'static str {
        match self {
            PeerAuth::Open => "no peer authentication",
            PeerAuth::Password(_) => "raft.password",
            PeerAuth::Certificates(_) => "certificates (raft.certfile, raft.cafile)",
        }
    }

    pub(crate) fn same_mode(&self, other: &PeerAuth) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Whether the files can be used (read, parsed, the key matching the certificate), as at
    /// start; for `tribune --validate-config`. Blocking.
    pub fn check(&self, scope: &str) -> Result<(), RaftError> {
        self.load(scope).map(|_| ())
    }

    /// Read the files (or derive the password's key) into rustls configurations; `None` for
    /// [`PeerAuth::Open`]. Blocking: file reads and the password's key derivation.
    pub(crate) fn load(&self, scope: &str) -> Result<Option<Arc<Credentials>>, RaftError> {
        match self {
            PeerAuth::Open => Ok(None),
            PeerAuth::Password(password) => {
                Ok(Some(Arc::new(password_credentials(password, scope)?)))
            }
            PeerAuth::Certificates(files) => Ok(Some(Arc::new(certificate_credentials(files)?))),
        }
    }
}

/// The rustls configurations of one [`PeerAuth`], as loaded at start or at the last reload.
pub(crate) struct Credentials {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
    /// Checks a client's certificate again after a reload ([`Credentials::still_trusts`]).
    client_verifier: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

impl Credentials {
    /// Whether a client that presented `chain` (end entity first) in an earlier handshake
    /// would be admitted by these credentials.
    pub(crate) fn still_trusts(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        self.client_verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    }

    /// The name the client checks the server's certificate against: the host of the address
    /// it dials (`host:port`, `[v6]:port`).
    pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host:?} cannot be checked against a certificate: {e}"))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn setting(key: &'static str, message: String) -> RaftError {
    RaftError::InvalidSettings(format!("{key}: {message}"))
}

fn file_error(e: PemError) -> RaftError {
    RaftError::InvalidSettings(e.to_string())
}

fn certificate_credentials(files: &CertificateFiles) -> Result<Credentials, RaftError> {
    let chain = pem::certificates("raft.certfile", &files.certfile).map_err(file_error)?;
    let (key_name, key_path) = match &files.keyfile {
        Some(path) => ("raft.keyfile", path),
        None => ("raft.certfile", &files.certfile),
    };
    let key = pem::private_key(
        key_name,
        key_path,
        files.keyfile_password.as_deref(),
        "raft.keyfile_password",
    )
    .map_err(file_error)?
    .der;
    let mut roots = RootCertStore::empty();
    for cert in pem::certificates("raft.cafile", &files.cafile).map_err(file_error)? {
        roots.add(cert).map_err(|e| {
            file_error(PemError::Invalid {
                key: "raft.cafile",
                path: files.cafile.clone(),
                detail: format!("not a usable CA certificate: {e}"),
            })
        })?;
    }
    let roots = Arc::new(roots);
    let provider = provider();
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| {
                file_error(PemError::Invalid {
                    key: "raft.cafile",
                    path: files.cafile.clone(),
                    detail: format!("cannot verify certificates with it: {e}"),
                })
            })?;
    let key_mismatch = |e: rustls::Error| {
        file_error(PemError::Invalid {
            key: key_name,
            path: key_path.clone(),
            detail: format!("the key cannot serve the certificate of raft.certfile: {e}"),
        })
    };
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setting("raft.certfile", format!("TLS cannot be set up: {e}")))?
        .with_client_cert_verifier(client_verifier.clone())
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(key_mismatch)?;
    server.alpn_protocols = vec![ALPN_H2.to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setting("raft.certfile", format!("TLS cannot be set up: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(key_mismatch)?;
    client.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Credentials {
        server: Arc::new(server),
        client: Arc::new(client),
        client_verifier,
    })
}

/// DER of an Ed25519 PKCS#8 v1 private key, before its 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an Ed25519 SubjectPublicKeyInfo, before its 32-byte public key (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The Ed25519 key pair `raft.password` stands for in cluster `scope`: (PKCS#8, SPKI).
fn password_key_pair(password: &str, scope: &str) -> Result<(Vec<u8>, Vec<u8>), RaftError> {
    use ring::signature::KeyPair as _;
    let mut seed = [0u8; 32];
    let salt = [KDF_SALT, scope.as_bytes()].concat();
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(KDF_ITERATIONS).expect("a positive constant"),
        &salt,
        password.as_bytes(),
        &mut seed,
    );
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| setting("raft.password", "cannot derive a key from it".to_owned()))?;
    let pkcs8 = [&ED25519_PKCS8_PREFIX[..], &seed].concat();
    let spki = [&ED25519_SPKI_PREFIX[..], pair.public_key().as_ref()].concat();
    Ok((pkcs8, spki))
}

fn password_credentials(password: &str, scope: &str) -> Result<Credentials, RaftError> {
    let (pkcs8, spki) = password_key_pair(password, scope)?;
    let provider = provider();
    let signing_key = rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(pkcs8))
        .map_err(|e| setting("raft.password", format!("cannot use the derived key: {e}")))?;
    let certified = Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki.clone())],
        signing_key,
    ));
    let pinned = Arc::new(PinnedKey {
        spki,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setting("raft.password", format!("TLS cannot be set up: {e}")))?
        .with_client_cert_verifier(pinned.clone())
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified.clone()),
        ));
    server.alpn_protocols = vec![ALPN_H2.to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setting("raft.password", format!("TLS cannot be set up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(pinned.clone())
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified),
        ));
    client.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Credentials {
        server: Arc::new(server),
        client: Arc::new(client),
        client_verifier: pinned,
    })
}

/// Both configurations are TLS 1.3 only, so rustls never asks for a TLS 1.2 signature.
fn tls12_refused() -> rustls::Error {
    rustls::Error::General("the agents speak TLS 1.3 only".into())
}

/// Both ends of a `raft.password` connection: the peer's raw public key must be the one the
/// password derives, and its handshake signature must verify with it.
#[derive(Debug)]
struct PinnedKey {
    spki: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedKey {
    fn check(&self, presented: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if presented.as_ref() == self.spki.as_slice() {
            Ok(())
        } else {
            // The peer does not know the password (or belongs to another scope).
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn signature(
        &self,
        message: &[u8],
        key: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check(key)?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(key.as_ref()),
            dss,
            &self.algorithms,
        )
    }
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for PinnedKey {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_key_is_the_same_on_every_member_and_differs_by_password_and_scope() {
        let (private, public) = password_key_pair("pw", "alpha").unwrap();
        assert_eq!(
            password_key_pair("pw", "alpha").unwrap(),
            (private.clone(), public.clone())
        );
        assert_eq!((private.len(), public.len()), (48, 44));
        assert_ne!(password_key_pair("pw2", "alpha").unwrap().1, public);
        assert_ne!(password_key_pair("pw", "beta").unwrap().1, public);
        assert!(matches!(PeerAuth::Open.load("alpha"), Ok(None)));
    }

    #[test]
    fn the_server_name_is_the_host_of_the_dialled_address() {
        let name = |addr| Credentials::server_name(addr).map(|n| n.to_str().into_owned());
        assert_eq!(name("127.0.0.1:2222").unwrap(), "127.0.0.1");
        assert_eq!(name("db-1.example:2222").unwrap(), "db-1.example");
        assert_eq!(name("[::1]:2222").unwrap(), "::1");
        assert!(name("bad host:1").is_err());
    }

    #[test]
    fn the_mode_follows_the_raft_section_and_certificates_win() {
        let raft = |extra: &str| {
            let yaml = format!(
                "scope: s\nname: node0\nrestapi: {{listen: 127.0.0.1:8008, connect_address: \
                 127.0.0.1:8008}}\nraft: {{self_addr: '127.0.0.1:2222', data_dir: /r{extra}}}\n"
            );
            crate::config::Config::from_yaml_str(&yaml, &|_| None)
                .unwrap()
                .raft
        };
        assert_eq!(PeerAuth::from_config(&raft("")), PeerAuth::Open);
        assert_eq!(
            PeerAuth::from_config(&raft(", password: pw")),
            PeerAuth::Password("pw".into())
        );
        let both = raft(", password: pw, certfile: /c.pem, cafile: /ca.pem");
        assert!(matches!(
            PeerAuth::from_config(&both),
            PeerAuth::Certificates(CertificateFiles { keyfile: None, .. })
        ));
        assert!(
            both.peer_authentication_warning("s")
                .unwrap()
                .contains("not used")
        );
        let open = raft("").peer_authentication_warning("s").unwrap();
        assert!(
            open.contains("accepts any peer") && open.contains("127.0.0.1:2222"),
            "{open}"
        );
        assert_eq!(
            raft(", password: pw").peer_authentication_warning("s"),
            None
        );
    }
}
