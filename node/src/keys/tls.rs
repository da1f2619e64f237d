//! The federation CA and the certificates it issues.
//!
//! Node certificates name their member in a URI SAN (`synergia://member/<name>`),
//! local client certificates in `synergia://client/<name>`; the server reads that SAN
//! once at the edge and handlers only see the typed identity.

use super::{KeyError, io_err, read_private};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use std::path::Path;

/// PEM certificate and private key.
#[derive(Clone)]
pub struct CertifiedKey {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey").finish_non_exhaustive()
    }
}

/// Validity window by calendar date (UTC midnight).
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// (year, month, day) of not_before.
    pub not_before: (i32, u8, u8),
    /// (year, month, day) of not_after.
    pub not_after: (i32, u8, u8),
}

impl Validity {
    /// From yesterday for `years` years (yesterday absorbs clock skew between members).
    pub fn years_from_now(years: i32) -> Validity {
        let now = crate::stix::timestamp::Timestamp::now();
        let y = crate::stix::timestamp::Timestamp::from_micros(now.as_micros() - 86_400_000_000);
        let parse = |s: String| -> (i32, u8, u8) {
            let yy = s[0..4].parse().unwrap_or(2026);
            let mm = s[5..7].parse().unwrap_or(1);
            let dd = s[8..10].parse().unwrap_or(1);
            (yy, mm, dd)
        };
        let nb = parse(y.to_millis_string());
        // Feb 29 + n years may not exist; the 28th always does.
        let na = (nb.0 + years, nb.1, nb.2.min(28));
        Validity {
            not_before: nb,
            not_after: na,
        }
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Synergia federation");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn apply(params: &mut CertificateParams, v: Validity) {
    params.not_before = date_time_ymd(v.not_before.0, v.not_before.1, v.not_before.2);
    params.not_after = date_time_ymd(v.not_after.0, v.not_after.1, v.not_after.2);
}

/// Creates a federation CA.
pub fn new_ca(name: &str, validity: Validity) -> Result<CertifiedKey, KeyError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(&format!("{name} federation CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    apply(&mut params, validity);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// A member's node: server and client auth, SAN `synergia://member/<name>`,
    /// DNS `localhost`, IP 127.0.0.1 (plus any extra DNS names).
    Node,
    /// A local client: client auth only, SAN `synergia://client/<name>`.
    Client,
}

/// What a certificate of `role` for `name` says: its names, usages and validity.
fn params_for(
    role: CertRole,
    name: &str,
    extra_names: &[String],
    validity: Validity,
) -> Result<CertificateParams, KeyError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let bad = |e: rcgen::Error| KeyError::Usage(format!("bad certificate name {name:?}: {e}"));
    match role {
        CertRole::Node => {
            params.distinguished_name = dn(&format!("{name} node"));
            let uri = format!("synergia://member/{name}");
            params.subject_alt_names = vec![
                SanType::URI(uri.try_into().map_err(bad)?),
                SanType::DnsName("localhost".try_into().map_err(bad)?),
                SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
            ];
            for d in extra_names {
                let san = match d.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(d.clone().try_into().map_err(bad)?),
                };
                if !params.subject_alt_names.contains(&san) {
                    params.subject_alt_names.push(san);
                }
            }
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        CertRole::Client => {
            params.distinguished_name = dn(&format!("{name} client"));
            let uri = format!("synergia://client/{name}");
            params.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(bad)?)];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    apply(&mut params, validity);
    Ok(params)
}

fn issuer_of(ca: &CertifiedKey) -> Result<Issuer<'static, KeyPair>, KeyError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    Ok(Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?)
}

/// Issues a certificate signed by `ca`, with a new key pair.
pub fn issue(
    ca: &CertifiedKey,
    role: CertRole,
    name: &str,
    extra_names: &[String],
    validity: Validity,
) -> Result<CertifiedKey, KeyError> {
    let issuer = issuer_of(ca)?;
    let params = params_for(role, name, extra_names, validity)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Issues a certificate signed by `ca` for the public key of a certificate signing
/// request (PEM), whose signature is checked: the requester keeps its private key.
/// Only the request's key is taken; names, usages and validity are ours, whatever the
/// request asks for.
pub fn issue_for_request(
    ca: &CertifiedKey,
    role: CertRole,
    name: &str,
    extra_names: &[String],
    validity: Validity,
    request_pem: &str,
) -> Result<String, KeyError> {
    let request = rcgen::CertificateSigningRequestParams::from_pem(request_pem)
        .map_err(|e| KeyError::Usage(format!("not a usable certificate signing request: {e}")))?;
    let issuer = issuer_of(ca)?;
    let ours = rcgen::CertificateSigningRequestParams {
        params: params_for(role, name, extra_names, validity)?,
        public_key: request.public_key,
    };
    Ok(ours.signed_by(&issuer)?.pem())
}

/// A new key pair and a certificate signing request for a member's node (names as
/// [`issue`] gives them): (request PEM, private key PEM).
pub fn new_request(name: &str, extra_names: &[String]) -> Result<(String, String), KeyError> {
    // A request carries names only: usages and validity are the CA's to set.
    let full = params_for(
        CertRole::Node,
        name,
        extra_names,
        Validity::years_from_now(1),
    )?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = full.distinguished_name;
    params.subject_alt_names = full.subject_alt_names;
    let key = KeyPair::generate()?;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// The serial number of the first certificate of a PEM text (big-endian bytes).
pub fn serial_of(pem_text: &str) -> Result<Vec<u8>, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.raw_serial().to_vec())
}

/// The serial numbers a PEM revocation list names.
pub fn revoked_serials(pem_text: &str) -> Result<Vec<Vec<u8>>, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| format!("not a PEM revocation list: {e}"))?;
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents)
        .map_err(|e| format!("not an X.509 revocation list: {e}"))?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect())
}

/// A revocation list signed by `ca` naming `serials`, numbered `number`, valid from
/// today for `years` (PEM).
pub fn revocation_list(
    ca: &CertifiedKey,
    serials: &[Vec<u8>],
    number: u64,
    years: i32,
) -> Result<String, KeyError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let v = Validity::years_from_now(years);
    let (y, m, d) = v.not_before;
    let (ny, nm, nd) = v.not_after;
    let this_update = date_time_ymd(y, m, d);
    let params = rcgen::CertificateRevocationListParams {
        this_update,
        next_update: date_time_ymd(ny, nm, nd),
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(s),
                revocation_time: this_update,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(&issuer)?.pem()?)
}

/// Reads a CA (certificate + private key) from PEM files.
pub fn load_ca(cert: &Path, key: &Path) -> Result<CertifiedKey, KeyError> {
    Ok(CertifiedKey {
        cert_pem: std::fs::read_to_string(cert).map_err(io_err(cert))?,
        key_pem: read_private(key)?,
    })
}

/// What operators want to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject common name.
    pub subject: String,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub not_after: i64,
}

/// Parses the first certificate of a PEM text.
pub fn summarise(pem_text: &str) -> Result<CertSummary, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string();
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(u) = n {
                uris.push(u.to_string());
            }
        }
    }
    Ok(CertSummary {
        subject,
        uris,
        not_after: cert.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_client_certificates_carry_their_identity() {
        let v = Validity::years_from_now(1);
        let ca = new_ca("test", v).unwrap();
        let node = issue(&ca, CertRole::Node, "kaspersky", &[], v).unwrap();
        let s = summarise(&node.cert_pem).unwrap();
        assert_eq!(s.uris, vec!["synergia://member/kaspersky".to_string()]);
        assert!(s.not_after > crate::stix::timestamp::Timestamp::now().as_secs());
        let client = issue(&ca, CertRole::Client, "pipeline", &[], v).unwrap();
        assert_eq!(
            summarise(&client.cert_pem).unwrap().uris,
            vec!["synergia://client/pipeline".to_string()]
        );
        assert!(summarise("nonsense").is_err());
    }
}
