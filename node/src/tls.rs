//! TLS for the node: the server side (client certificates verified against the
//! federation CA) and the client side used to reach peers.
//!
//! Client certificates are optional at the TLS layer so that local clients can use
//! bearer tokens; a certificate that is presented must chain to the federation CA (or
//! the handshake fails), and federation endpoints require a peer certificate. The
//! server certificate and CA are reloaded without restart (SIGHUP, or a change of the
//! files' modification time). A revocation list from the federation CA (`tls.crl`)
//! refuses the certificates it names, on both sides.

use crate::config::Config;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// Why TLS material cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file is missing or unreadable or holds no usable item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A private key file is readable by others, or unreadable.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(path, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(file_err(path, "no certificate in file"));
    }
    Ok(certs)
}

/// Reads a PEM private key, refusing loose permissions.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = crate::keys::read_private(path)?;
    PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|_| file_err(path, "not a PEM private key (PKCS#8, SEC1 or PKCS#1)"))
}

/// The federation CA as a root store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| file_err(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The certificate revocation lists of the config (`tls.crl`), if any.
pub fn load_crls(cfg: &Config) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let Some(path) = &cfg.tls.crl else {
        return Ok(Vec::new());
    };
    let crls: Vec<_> = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| file_err(path, format!("cannot read the revocation list: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(path, format!("bad PEM revocation list: {e}")))?;
    if crls.is_empty() {
        return Err(file_err(path, "no revocation list (X509 CRL) in file"));
    }
    Ok(crls)
}

/// Certificates the membership log refuses (protocol §12): those naming a former
/// member (`synergia://member/<name>`), and those revoked by serial or SHA-256
/// fingerprint. Checked in the handshake on both sides, on top of the CA's checks and
/// its revocation list, and swapped whole when the log changes: the node holds the
/// handle ([`Gate`]) the TLS configurations read at every handshake.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Former members' names.
    pub members: std::collections::BTreeSet<String>,
    /// Serial numbers, lower-case hex without leading zeros.
    pub serials: std::collections::BTreeSet<String>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprints: std::collections::BTreeSet<String>,
}

/// The [`Refused`] set in force, shared between the node and its TLS configurations.
pub type Gate = Arc<RwLock<Arc<Refused>>>;

/// An empty gate (no membership log: nothing refused beyond the CA's checks).
pub fn open_gate() -> Gate {
    Arc::new(RwLock::new(Arc::new(Refused::default())))
}

/// A certificate's serial number, lower-case hex without leading zeros, and its
/// SHA-256 fingerprint (hex); `None` when it does not parse.
pub fn cert_ids(cert: &CertificateDer<'_>) -> Option<(String, String)> {
    use sha2::Digest as _;
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let serial = normalise_serial(&hex(c.raw_serial()));
    Some((serial, hex(&sha2::Sha256::digest(cert.as_ref()))))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Serials compare as numbers: `00ab` and `ab` are one serial.
pub fn normalise_serial(s: &str) -> String {
    let t = s.trim_start_matches('0').to_ascii_lowercase();
    if t.is_empty() { "0".into() } else { t }
}

impl Refused {
    /// Why this certificate is refused, if it is.
    pub fn refuses(&self, cert: &CertificateDer<'_>) -> Option<String> {
        if self.members.is_empty() && self.serials.is_empty() && self.fingerprints.is_empty() {
            return None;
        }
        for u in uri_sans(cert) {
            if let Some(m) = u.strip_prefix("synergia://member/")
                && self.members.contains(m)
            {
                return Some(format!("{m} was removed from the federation"));
            }
        }
        let (serial, fingerprint) = cert_ids(cert)?;
        if self.serials.contains(&serial) {
            return Some(format!("certificate serial {serial} is revoked"));
        }
        if self.fingerprints.contains(&fingerprint) {
            return Some(format!("certificate sha256 {fingerprint} is revoked"));
        }
        None
    }
}

fn refused_error(why: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(RefusedByMembership(why)),
    )))
}

/// A certificate the membership log refuses.
#[derive(Debug)]
struct RefusedByMembership(String);

impl std::fmt::Display for RefusedByMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the membership log: {}", self.0)
    }
}

impl std::error::Error for RefusedByMembership {}

/// The [`Refused`] set a gate holds now.
pub fn refused_now(gate: &Gate) -> Arc<Refused> {
    gate.read()
        .map(|g| g.clone())
        .unwrap_or_else(|p| p.into_inner().clone())
}

fn gate_check(gate: &Gate, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    match refused_now(gate).refuses(cert) {
        Some(why) => Err(refused_error(why)),
        None => Ok(()),
    }
}

/// The CA's client verifier, then the membership gate.
#[derive(Debug)]
struct GatedClientVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    gate: Gate,
}

impl rustls::server::danger::ClientCertVerifier for GatedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        gate_check(&self.gate, end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server configuration: TLS 1.2 and 1.3, no 0-RTT, HTTP/2 and HTTP/1.1,
/// client certificates verified against the federation CA (and its revocation list,
/// when configured) when presented.
pub fn server_config(cfg: &Config) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_gated(cfg, &open_gate())
}

/// [`server_config`], refusing what `gate` refuses as well.
pub fn server_config_gated(
    cfg: &Config,
    gate: &Gate,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let roots = Arc::new(load_roots(&cfg.tls.ca)?);
    let inner = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .with_crls(load_crls(cfg)?)
        .only_check_end_entity_revocation()
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = Arc::new(GatedClientVerifier {
        inner,
        gate: gate.clone(),
    });
    let mut sc = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&cfg.tls.cert)?, load_key(&cfg.tls.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    sc.max_early_data_size = 0;
    Ok(Arc::new(sc))
}

/// The client configuration for reaching peer `peer`: the federation CA as the only
/// root, this node's certificate as client identity, and the server certificate
/// required to name `synergia://member/<peer>` as well as the host name. Every node
/// certificate carries `localhost` and `127.0.0.1`, and a member may run its node on
/// another's former address: the host name alone does not say which member answers,
/// so a node presenting another member's certificate never receives what is meant
/// for `peer` (security finding 7).
pub fn client_config(cfg: &Config, peer: &str) -> Result<rustls::ClientConfig, TlsError> {
    client_config_gated(cfg, peer, &open_gate())
}

/// [`client_config`], refusing what `gate` refuses as well.
pub fn client_config_gated(
    cfg: &Config,
    peer: &str,
    gate: &Gate,
) -> Result<rustls::ClientConfig, TlsError> {
    let roots = Arc::new(load_roots(&cfg.tls.ca)?);
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .with_crls(load_crls(cfg)?)
        .only_check_end_entity_revocation()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = Arc::new(PeerVerifier {
        inner,
        expected: format!("synergia://member/{peer}"),
        gate: gate.clone(),
    });
    let mut cc = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(load_certs(&cfg.tls.cert)?, load_key(&cfg.tls.key)?)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cc)
}

/// A client configuration for the node's PostgreSQL database: the server's
/// certificate must chain to the CA in `ca` (the federation's, or one named in
/// `store.ca`) and name the host the URL gives. No client certificate: the database
/// authenticates the node by password.
pub fn database_client_config(ca: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let roots = load_roots(ca)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The modification times of the TLS files a configuration was built from: a change
/// means the configuration must be built again (rotation, a new CA).
pub fn material_stamp(cfg: &Config) -> Vec<Option<SystemTime>> {
    stamps(&TlsReloader::paths(cfg))
}

/// The web PKI checks (chain to the federation CA, validity, host name), then the
/// member identity: the end-entity certificate must carry the expected URI SAN.
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: String,
    gate: Gate,
}

impl rustls::client::danger::ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        gate_check(&self.gate, end_entity)?;
        let names = uri_sans(end_entity);
        if names.contains(&self.expected) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(WrongMember {
                    expected: self.expected.clone(),
                    found: names,
                }))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A peer's certificate names another member (or none).
#[derive(Debug)]
struct WrongMember {
    expected: String,
    found: Vec<String>,
}

impl std::fmt::Display for WrongMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server certificate does not name {} (its URI SANs: {:?})",
            self.expected, self.found
        )
    }
}

impl std::error::Error for WrongMember {}

/// Holds the current server configuration and swaps it when the files change.
pub struct TlsReloader {
    cfg: Config,
    gate: Gate,
    current: RwLock<Arc<rustls::ServerConfig>>,
    stamp: RwLock<Vec<Option<SystemTime>>>,
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl TlsReloader {
    /// Loads the initial configuration.
    pub fn new(cfg: &Config, gate: Gate) -> Result<TlsReloader, TlsError> {
        let sc = server_config_gated(cfg, &gate)?;
        Ok(TlsReloader {
            stamp: RwLock::new(stamps(&Self::paths(cfg))),
            cfg: cfg.clone(),
            gate,
            current: RwLock::new(sc),
        })
    }

    fn paths(cfg: &Config) -> Vec<PathBuf> {
        let mut p = vec![
            cfg.tls.ca.clone(),
            cfg.tls.cert.clone(),
            cfg.tls.key.clone(),
        ];
        p.extend(cfg.tls.crl.clone());
        p
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reloads from the files. On error the old configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let sc = server_config_gated(&self.cfg, &self.gate)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = sc;
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = stamps(&Self::paths(&self.cfg));
        tracing::info!("TLS certificate and CA reloaded");
        Ok(())
    }

    /// Reloads when a file's modification time changed since the last load; whether
    /// new material is now in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&Self::paths(&self.cfg));
        let changed = *self.stamp.read().unwrap_or_else(|p| p.into_inner()) != now;
        if !changed {
            return false;
        }
        match self.reload() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "TLS files changed but cannot be loaded; keeping the old ones");
                false
            }
        }
    }
}

/// The URI SANs of a certificate (none when it does not parse).
pub fn uri_sans(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(u) = n {
                uris.push(u.to_string());
            }
        }
    }
    uris
}

/// The end of a certificate's validity (epoch seconds), when it parses.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(c.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tls::{CertRole, Validity, issue, new_ca};

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// The membership gate refuses a former member's certificate by its SAN, and any
    /// certificate by serial (however many leading zeros the entry wrote) or by
    /// fingerprint; nothing else.
    #[test]
    fn the_gate_refuses_former_members_and_revoked_certificates_only() {
        let validity = Validity {
            not_before: (2026, 1, 1),
            not_after: (2030, 1, 1),
        };
        let ca = new_ca("test", validity).unwrap();
        let node = der(&issue(&ca, CertRole::Node, "kaspersky", &[], validity)
            .unwrap()
            .cert_pem);
        let other = der(&issue(&ca, CertRole::Node, "interpol", &[], validity)
            .unwrap()
            .cert_pem);
        let (serial, fingerprint) = cert_ids(&node).unwrap();
        assert!(Refused::default().refuses(&node).is_none());
        let gone = Refused {
            members: ["kaspersky".to_string()].into(),
            ..Default::default()
        };
        assert!(gone.refuses(&node).unwrap().contains("removed"));
        assert!(gone.refuses(&other).is_none());
        let by_serial = Refused {
            serials: [normalise_serial(&format!("000{serial}"))].into(),
            ..Default::default()
        };
        assert!(by_serial.refuses(&node).unwrap().contains(&serial));
        assert!(by_serial.refuses(&other).is_none());
        let by_fingerprint = Refused {
            fingerprints: [fingerprint.clone()].into(),
            ..Default::default()
        };
        assert!(
            by_fingerprint
                .refuses(&node)
                .unwrap()
                .contains(&fingerprint)
        );
        assert!(by_fingerprint.refuses(&other).is_none());
    }
}
