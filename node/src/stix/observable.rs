//! Normalised observable keys: one string per observable, whoever reported it and
//! however they wrote it.
//!
//! The store indexes every indicator pattern and every SCO under these keys, so that
//! "who reported 203.0.113.7?" is one point lookup and corroboration can be
//! counted across origins. Two spellings of the same observable (`EVIL.example.`
//! and `evil.example`, `2001:DB8:0::1` and `2001:db8::1`) must give the same key;
//! `docs/observables.md` states the rules.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde_json::Value;

use super::pattern::{
    ComparisonExpression, ComparisonOperator, Constant, ObservationExpression, PathComponent,
    Pattern,
};

/// A normalised observable, written `type:value` (`ipv4-addr:203.0.113.7`,
/// `file:sha-256:<hex>`, …).
///
/// Only the constructors in this module build one, so the text is always in
/// canonical form; ordering, equality and hashing are those of that text.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ObservableKey(String);

/// An IP address or network in the ordered address space (base address, prefix
/// length): what a range lookup scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpBlock {
    /// An IPv4 network (`len` 32: one address).
    V4 {
        /// First address.
        base: u32,
        /// Prefix length.
        len: u8,
    },
    /// An IPv6 network (`len` 128: one address).
    V6 {
        /// First address.
        base: u128,
        /// Prefix length.
        len: u8,
    },
}

impl IpBlock {
    /// Its observable key, as [`ObservableKey::new`] normalises it.
    pub fn key(&self) -> ObservableKey {
        match *self {
            IpBlock::V4 { base, len: 32 } => {
                ObservableKey(format!("ipv4-addr:{}", dotted(Ipv4Addr::from(base))))
            }
            IpBlock::V4 { base, len } => {
                ObservableKey(format!("ipv4-addr:{}/{len}", dotted(Ipv4Addr::from(base))))
            }
            IpBlock::V6 { base, len: 128 } => {
                ObservableKey(format!("ipv6-addr:{}", Ipv6Addr::from(base)))
            }
            IpBlock::V6 { base, len } => {
                ObservableKey(format!("ipv6-addr:{}/{len}", Ipv6Addr::from(base)))
            }
        }
    }

    /// The last address it covers.
    pub fn last(&self) -> u128 {
        match *self {
            IpBlock::V4 { base, len } => {
                u128::from(base | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0))
            }
            IpBlock::V6 { base, len } => base | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0),
        }
    }

    /// The block a normalised key text names (`ipv4-addr:…`, `ipv6-addr:…`), read
    /// without allocating: the view indexes every address it holds this way.
    pub fn of_key(key: &str) -> Option<IpBlock> {
        let (kind, value) = key.split_once(':')?;
        let (addr, len) = split_prefix(value);
        match kind {
            "ipv4-addr" => Some(IpBlock::V4 {
                base: u32::from(addr.parse::<Ipv4Addr>().ok()?),
                len: len.unwrap_or(32).min(32) as u8,
            }),
            "ipv6-addr" => Some(IpBlock::V6 {
                base: u128::from(addr.parse::<Ipv6Addr>().ok()?),
                len: len.unwrap_or(128).min(128) as u8,
            }),
            _ => None,
        }
    }

    /// Its prefix length.
    pub fn prefix_len(&self) -> u8 {
        match *self {
            IpBlock::V4 { len, .. } | IpBlock::V6 { len, .. } => len,
        }
    }
}

/// Why a text is not an observable we can key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObservableError {
    /// `type:value` names a type we do not index.
    #[error("observable type {0:?} is not indexed")]
    UnsupportedType(String),
    /// The value is not valid for its type.
    #[error("invalid {kind} value {value:?}: {reason}")]
    InvalidValue {
        /// The observable type.
        kind: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Free text that looks like no observable we know.
    #[error("cannot tell what kind of observable {0:?} is")]
    Unrecognised(String),
}

fn invalid(kind: &'static str, value: &str, reason: &'static str) -> ObservableError {
    ObservableError::InvalidValue {
        kind,
        value: value.to_owned(),
        reason,
    }
}

/// The SCO types we key, with the property that identifies each.
const TYPES: &[&str] = &[
    "ipv4-addr",
    "ipv6-addr",
    "domain-name",
    "url",
    "email-addr",
    "file",
    "mac-addr",
    "autonomous-system",
    "mutex",
    "windows-registry-key",
    "x509-certificate",
];

impl ObservableKey {
    /// The observable type (`ipv4-addr`, `file`, …).
    pub fn kind(&self) -> &str {
        self.0.split_once(':').map_or(self.0.as_str(), |(k, _)| k)
    }

    /// The normalised value after `type:`.
    pub fn value(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, v)| v)
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds a key from an SCO type and the value of its identifying property
    /// (for `file` and `x509-certificate`, use [`ObservableKey::hash`]).
    pub fn new(kind: &str, value: &str) -> Result<Self, ObservableError> {
        let v = match kind {
            "ipv4-addr" => normalise_ipv4(value)?,
            "ipv6-addr" => normalise_ipv6(value)?,
            "domain-name" => normalise_domain(value)?,
            "url" => normalise_url(value)?,
            "email-addr" => normalise_email(value)?,
            "mac-addr" => normalise_mac(value)?,
            "autonomous-system" => normalise_asn(value)?,
            "mutex" => {
                if value.is_empty() {
                    return Err(invalid("mutex", value, "empty name"));
                }
                // Windows mutex (kernel object) names are case-sensitive.
                value.to_owned()
            }
            "windows-registry-key" => normalise_registry_key(value)?,
            "file" | "x509-certificate" => {
                let Some((algo, hash)) = value.split_once(':') else {
                    return Err(invalid("file", value, "expected <algorithm>:<hash>"));
                };
                return Self::hash(kind, algo, hash);
            }
            other => return Err(ObservableError::UnsupportedType(other.to_owned())),
        };
        Ok(ObservableKey::joined(&[kind, &v]))
    }

    /// `parts` joined by `:`, in a string sized once (every indicator received makes
    /// one or more keys, and `format!` cost more than the normalising).
    fn joined(parts: &[&str]) -> ObservableKey {
        let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            s.push_str(p);
        }
        ObservableKey(s)
    }

    /// Builds a `file:` or `x509-certificate:` key from a hash algorithm name as
    /// found in a `hashes` dictionary (`SHA-256`, `'SHA256'`, `md5`) and its value.
    pub fn hash(kind: &str, algorithm: &str, value: &str) -> Result<Self, ObservableError> {
        let kind_static: &'static str = match kind {
            "file" => "file",
            "x509-certificate" => "x509-certificate",
            other => return Err(ObservableError::UnsupportedType(other.to_owned())),
        };
        let (algo, hex_len) = normalise_hash_algorithm(algorithm);
        let value = value.trim();
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(invalid(
                kind_static,
                value,
                "empty hash or hash with spaces",
            ));
        }
        let v = match hex_len {
            Some(n) => {
                if value.len() != n || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        kind_static,
                        value,
                        "wrong length or non-hex digit for the algorithm",
                    ));
                }
                value.to_ascii_lowercase()
            }
            None if algo == "ssdeep" => value.to_owned(),
            None => value.to_ascii_lowercase(),
        };
        Ok(ObservableKey::joined(&[kind_static, &algo, &v]))
    }

    /// Interprets what an analyst types into a lookup: an IP address or CIDR, a
    /// domain, a URL, an e-mail address, a hash (its length picks the algorithm),
    /// a MAC address, `AS64500`, or an already-typed key such as
    /// `domain-name:evil.example`.
    pub fn from_user_input(input: &str) -> Result<Self, ObservableError> {
        let s = input.trim();
        if let Some((prefix, _)) = s.split_once(':')
            && TYPES.contains(&prefix)
        {
            return s.parse();
        }
        if s.is_empty() {
            return Err(ObservableError::Unrecognised(input.to_owned()));
        }
        let host = s.split_once('/').map_or(s, |(h, _)| h);
        if host.parse::<Ipv4Addr>().is_ok() {
            return Self::new("ipv4-addr", s);
        }
        if host.parse::<Ipv6Addr>().is_ok() {
            return Self::new("ipv6-addr", s);
        }
        if s.contains("://") {
            return Self::new("url", s);
        }
        if let Some(n) = s.strip_prefix("AS").or_else(|| s.strip_prefix("as"))
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            return Self::new("autonomous-system", n);
        }
        if s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let algo = match s.len() {
                32 => "MD5",
                40 => "SHA-1",
                64 => "SHA-256",
                128 => "SHA-512",
                _ => return Err(ObservableError::Unrecognised(input.to_owned())),
            };
            return Self::hash("file", algo, s);
        }
        if normalise_mac(s).is_ok() {
            return Self::new("mac-addr", s);
        }
        if s.contains('@') {
            return Self::new("email-addr", s);
        }
        if s.contains('.') {
            return Self::new("domain-name", s);
        }
        Err(ObservableError::Unrecognised(input.to_owned()))
    }

    /// For an IPv4/IPv6 address or network: where it sits in the ordered address
    /// space (an address is a network of the full length). `None` for other kinds.
    pub fn ip_block(&self) -> Option<IpBlock> {
        IpBlock::of_key(&self.0)
    }

    /// For an IPv4/IPv6 address or network: every network key, of every shorter
    /// prefix length, that contains it (`/0` up to one bit shorter than its own
    /// prefix; the key itself is not included). Lets the store find the CIDR
    /// indicators covering an address with point lookups. Empty for other kinds.
    pub fn containing_networks(&self) -> Vec<ObservableKey> {
        let (addr, len) = split_prefix(self.value());
        match self.kind() {
            "ipv4-addr" => {
                let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                    return Vec::new();
                };
                let bits = u32::from(ip);
                let len = len.unwrap_or(32).min(32);
                (0..len)
                    .map(|p| {
                        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                        ObservableKey(format!("ipv4-addr:{}/{p}", Ipv4Addr::from(bits & mask)))
                    })
                    .collect()
            }
            "ipv6-addr" => {
                let Ok(ip) = addr.parse::<Ipv6Addr>() else {
                    return Vec::new();
                };
                let bits = u128::from(ip);
                let len = len.unwrap_or(128).min(128);
                (0..len)
                    .map(|p| {
                        let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                        ObservableKey(format!("ipv6-addr:{}/{p}", Ipv6Addr::from(bits & mask)))
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for ObservableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ObservableKey {
    type Err = ObservableError;

    /// Parses `type:value`, normalising the value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((kind, value)) = s.split_once(':') else {
            return Err(ObservableError::Unrecognised(s.to_owned()));
        };
        Self::new(kind, value)
    }
}

impl TryFrom<String> for ObservableKey {
    type Error = ObservableError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ObservableKey> for String {
    fn from(k: ObservableKey) -> String {
        k.0
    }
}

// ---------------------------------------------------------------- normalisers

fn split_prefix(s: &str) -> (&str, Option<u32>) {
    match s.split_once('/') {
        Some((a, p)) => (a, p.parse().ok().or(Some(u32::MAX))),
        None => (s, None),
    }
}

fn parse_prefix_len(
    kind: &'static str,
    value: &str,
    p: &str,
    max: u32,
) -> Result<u32, ObservableError> {
    if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(kind, value, "bad prefix length"));
    }
    match p.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(invalid(kind, value, "prefix length out of range")),
    }
}

/// `ip` in dotted-quad form, as `Ipv4Addr`'s `Display` writes it, without the
/// formatting machinery: every IPv4 indicator received or published makes a key, and
/// `to_string` cost more than parsing the address.
fn dotted(ip: Ipv4Addr) -> String {
    let mut s = String::with_capacity(15);
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + octet / 10 % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

fn normalise_ipv4(value: &str) -> Result<String, ObservableError> {
    let (a, p) = match value.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value.trim(), None),
    };
    let ip: Ipv4Addr = a
        .parse()
        .map_err(|_| invalid("ipv4-addr", value, "not a dotted-quad IPv4 address"))?;
    let Some(p) = p else {
        return Ok(dotted(ip));
    };
    let len = parse_prefix_len("ipv4-addr", value, p, 32)?;
    if len == 32 {
        return Ok(dotted(ip));
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let mut s = dotted(Ipv4Addr::from(u32::from(ip) & mask));
    s.push('/');
    s.push_str(&len.to_string());
    Ok(s)
}

fn normalise_ipv6(value: &str) -> Result<String, ObservableError> {
    let (a, p) = match value.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value.trim(), None),
    };
    let ip: Ipv6Addr = a
        .parse()
        .map_err(|_| invalid("ipv6-addr", value, "not an IPv6 address"))?;
    let Some(p) = p else {
        return Ok(ip.to_string());
    };
    let len = parse_prefix_len("ipv6-addr", value, p, 128)?;
    if len == 128 {
        return Ok(ip.to_string());
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ok(format!("{}/{len}", Ipv6Addr::from(u128::from(ip) & mask)))
}

fn normalise_domain(value: &str) -> Result<String, ObservableError> {
    let d = value.trim().trim_end_matches('.').to_lowercase();
    if d.is_empty()
        || d.len() > 253
        || d.split('.').any(str::is_empty)
        || d.chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | ':' | '@' | '\\'))
    {
        return Err(invalid("domain-name", value, "not a domain name"));
    }
    Ok(d)
}

fn normalise_email(value: &str) -> Result<String, ObservableError> {
    let e = value.trim().to_lowercase();
    match e.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !e.contains(char::is_whitespace) =>
        {
            Ok(e)
        }
        _ => Err(invalid("email-addr", value, "expected local@domain")),
    }
}

fn normalise_url(value: &str) -> Result<String, ObservableError> {
    let u = value.trim();
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(invalid("url", value, "expected scheme://host/…"));
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return Err(invalid("url", value, "bad scheme"));
    }
    let scheme = scheme.to_ascii_lowercase();
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    // Host and optional port; IPv6 literals are bracketed.
    let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
        match stripped.split_once(']') {
            Some((h, after)) => (format!("[{h}]"), after.strip_prefix(':')),
            None => return Err(invalid("url", value, "unclosed IPv6 host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() && scheme != "file" {
        return Err(invalid("url", value, "no host"));
    }
    let default_port = match scheme.as_str() {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        "ftp" => Some("21"),
        _ => None,
    };
    let port = port.filter(|p| !p.is_empty() && Some(*p) != default_port);
    let mut out = format!("{scheme}://");
    if let Some(u) = userinfo {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host.to_lowercase());
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    if !tail.starts_with('/') {
        out.push('/');
    }
    out.push_str(tail);
    Ok(out)
}

fn normalise_mac(value: &str) -> Result<String, ObservableError> {
    let v = value.trim();
    let hex: String = if v.contains(':') || v.contains('-') {
        let parts: Vec<&str> = v.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(invalid("mac-addr", value, "expected six octets"));
        }
        parts.concat()
    } else if v.contains('.') {
        let parts: Vec<&str> = v.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
            return Err(invalid("mac-addr", value, "expected xxxx.xxxx.xxxx"));
        }
        parts.concat()
    } else {
        return Err(invalid("mac-addr", value, "expected six octets"));
    };
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("mac-addr", value, "non-hex digit"));
    }
    let hex = hex.to_ascii_lowercase();
    let octets: Vec<&str> = (0..6).filter_map(|i| hex.get(i * 2..i * 2 + 2)).collect();
    Ok(octets.join(":"))
}

fn normalise_asn(value: &str) -> Result<String, ObservableError> {
    let v = value.trim();
    let digits = v
        .strip_prefix("AS")
        .or_else(|| v.strip_prefix("as"))
        .unwrap_or(v);
    match digits.parse::<u32>() {
        Ok(n) if !digits.starts_with('+') => Ok(format!("AS{n}")),
        _ => Err(invalid("autonomous-system", value, "expected an AS number")),
    }
}

/// Registry keys are case-insensitive on Windows, so we lower-case them and
/// spell the hive in full (`HKLM` → `hkey_local_machine`).
fn normalise_registry_key(value: &str) -> Result<String, ObservableError> {
    let v = value.trim().trim_end_matches('\\');
    if v.is_empty() {
        return Err(invalid("windows-registry-key", value, "empty key"));
    }
    let lower = v.to_lowercase();
    let (hive, rest) = match lower.split_once('\\') {
        Some((h, r)) => (h.to_owned(), Some(r.to_owned())),
        None => (lower.clone(), None),
    };
    let hive = match hive.as_str() {
        "hklm" => "hkey_local_machine",
        "hkcu" => "hkey_current_user",
        "hkcr" => "hkey_classes_root",
        "hku" => "hkey_users",
        "hkcc" => "hkey_current_config",
        other => other,
    };
    Ok(match rest {
        Some(r) => format!("{hive}\\{r}"),
        None => hive.to_owned(),
    })
}

/// Canonical algorithm name (STIX hash-algorithm-ov spelling, lower case) and the
/// hex length its values must have, if it is a fixed-length hex digest.
fn normalise_hash_algorithm(name: &str) -> (String, Option<usize>) {
    let key: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '\'' | ' '))
        .flat_map(char::to_uppercase)
        .collect();
    let (algo, len) = match key.as_str() {
        "MD5" => ("md5", Some(32)),
        "SHA1" => ("sha-1", Some(40)),
        "SHA224" => ("sha-224", Some(56)),
        "SHA256" => ("sha-256", Some(64)),
        "SHA384" => ("sha-384", Some(96)),
        "SHA512" => ("sha-512", Some(128)),
        "SHA3224" => ("sha3-224", Some(56)),
        "SHA3256" => ("sha3-256", Some(64)),
        "SHA3384" => ("sha3-384", Some(96)),
        "SHA3512" => ("sha3-512", Some(128)),
        "RIPEMD160" => ("ripemd-160", Some(40)),
        "WHIRLPOOL" => ("whirlpool", Some(128)),
        "SSDEEP" => ("ssdeep", None),
        "TLSH" => ("tlsh", None),
        _ => return (name.trim_matches('\'').to_lowercase(), None),
    };
    (algo.to_owned(), len)
}

// ---------------------------------------------------------------- extraction

/// Keys of the observables a pattern names positively: `=` comparisons and `IN`
/// sets on identifying properties (`ipv4-addr:value`, `file:hashes.*`, …), and
/// `ISSUBSET` on `ipv4-addr:value` / `ipv6-addr:value` (a CIDR). Negated
/// comparisons, `!=`, ordering, `LIKE` and `MATCHES` name no single observable
/// and give no key; values that do not normalise are skipped. Sorted, no
/// duplicates.
pub fn keys_from_pattern(pattern: &Pattern) -> Vec<ObservableKey> {
    // Most patterns name one or two observables.
    let mut out = Vec::with_capacity(2);
    collect_observation(&pattern.expression, &mut out);
    out.sort();
    out.dedup();
    out
}

fn collect_observation(e: &ObservationExpression, out: &mut Vec<ObservableKey>) {
    match e {
        ObservationExpression::Observation(c) => collect_comparison(c, out),
        ObservationExpression::And(l, r)
        | ObservationExpression::Or(l, r)
        | ObservationExpression::FollowedBy(l, r) => {
            collect_observation(l, out);
            collect_observation(r, out);
        }
        ObservationExpression::Qualified(inner, _) => collect_observation(inner, out),
    }
}

fn collect_comparison(e: &ComparisonExpression, out: &mut Vec<ObservableKey>) {
    let c = match e {
        ComparisonExpression::And(l, r) | ComparisonExpression::Or(l, r) => {
            collect_comparison(l, out);
            collect_comparison(r, out);
            return;
        }
        ComparisonExpression::Exists(_) => return,
        ComparisonExpression::Comparison(c) => c,
    };
    if c.negated {
        return;
    }
    let values: &[Constant] = match (c.operator, &c.value) {
        (ComparisonOperator::Equal, v) => std::slice::from_ref(v),
        (ComparisonOperator::In, Constant::Set(items)) => items,
        (ComparisonOperator::IsSubset, v)
            if matches!(c.path.object_type.as_str(), "ipv4-addr" | "ipv6-addr") =>
        {
            std::slice::from_ref(v)
        }
        _ => return,
    };
    let t = c.path.object_type.as_str();
    let comps = &c.path.components;
    let prop = |i: usize| match comps.get(i) {
        Some(PathComponent::Property(p)) => Some(p.as_str()),
        _ => None,
    };
    for v in values {
        let key = match (t, comps.len(), prop(0)) {
            ("file" | "x509-certificate", 2, Some("hashes")) => match (prop(1), v) {
                (Some(algo), Constant::String(s)) => ObservableKey::hash(t, algo, s).ok(),
                _ => None,
            },
            (_, 1, Some(p)) if identifying_property(t) == Some(p) => match v {
                Constant::String(s) => ObservableKey::new(t, s).ok(),
                Constant::Int(n) if t == "autonomous-system" => {
                    ObservableKey::new(t, &n.to_string()).ok()
                }
                _ => None,
            },
            _ => None,
        };
        out.extend(key);
    }
}

/// The property whose value identifies an SCO of this type.
fn identifying_property(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "ipv4-addr" | "ipv6-addr" | "domain-name" | "url" | "email-addr" | "mac-addr" => "value",
        "autonomous-system" => "number",
        "mutex" => "name",
        "windows-registry-key" => "key",
        _ => return None,
    })
}

/// Keys for one STIX object: an indicator with `pattern_type: stix` gives the keys
/// of its pattern (none if it does not parse); an SCO gives the key of its
/// identifying property or, for `file` and `x509-certificate`, one key per hash.
/// Other objects give none. Sorted, no duplicates.
pub fn keys_from_object(object: &Value) -> Vec<ObservableKey> {
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match kind {
        "indicator" => {
            if object.get("pattern_type").and_then(Value::as_str) == Some("stix")
                && let Some(p) = object.get("pattern").and_then(Value::as_str)
                && let Ok(pattern) = super::pattern::parse(p)
            {
                return keys_from_pattern(&pattern);
            }
        }
        "file" | "x509-certificate" => {
            if let Some(hashes) = object.get("hashes").and_then(Value::as_object) {
                for (algo, v) in hashes {
                    if let Some(s) = v.as_str() {
                        out.extend(ObservableKey::hash(kind, algo, s).ok());
                    }
                }
            }
        }
        _ => {
            if let Some(prop) = identifying_property(kind) {
                let key = match object.get(prop) {
                    Some(Value::String(s)) => ObservableKey::new(kind, s).ok(),
                    Some(Value::Number(n)) => ObservableKey::new(kind, &n.to_string()).ok(),
                    _ => None,
                };
                out.extend(key);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
