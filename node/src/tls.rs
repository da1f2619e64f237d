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

/// The server configuration: TLS 1.2 and 1.3, no 0-RTT, HTTP/2 and HTTP/1.1,
/// client certificates verified against the federation CA (and its revocation list,
/// when configured) when presented.
pub fn server_config(cfg: &Config) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let roots = Arc::new(load_roots(&cfg.tls.ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .with_crls(load_crls(cfg)?)
        .only_check_end_entity_revocation()
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
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
    let roots = Arc::new(load_roots(&cfg.tls.ca)?);
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .with_crls(load_crls(cfg)?)
        .only_check_end_entity_revocation()
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let verifier = Arc::new(PeerVerifier {
        inner,
        expected: format!("synergia://member/{peer}"),
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
    pub fn new(cfg: &Config) -> Result<TlsReloader, TlsError> {
        let sc = server_config(cfg)?;
        Ok(TlsReloader {
            stamp: RwLock::new(stamps(&Self::paths(cfg))),
            cfg: cfg.clone(),
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
        let sc = server_config(&self.cfg)?;
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
