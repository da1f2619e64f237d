//! Who is calling: read once from the TLS client certificate (at the connection) or
//! the bearer token (per request), and handed to handlers as a typed [`Caller`].
//! Handlers never touch certificates or tokens.

use super::error::ApiError;
use crate::config::Role;
use crate::node::Node;
use crate::stix::tlp::TlpLevel;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

/// The identity a connection's client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertIdentity {
    /// No certificate presented.
    None,
    /// `synergia://member/<name>`.
    Member(String),
    /// `synergia://client/<name>`.
    Client(String),
    /// A certificate that chains to the CA but names no Synergia identity.
    Unrecognised(String),
}

/// Per-connection facts, attached to every request of the connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Remote address.
    pub remote: SocketAddr,
    /// What the client certificate says.
    pub identity: CertIdentity,
    /// The client certificate itself, when one was presented: checked against the
    /// membership log at every request (`Node::refuses_certificate`).
    pub leaf: Option<Arc<CertificateDer<'static>>>,
}

/// Reads the identity from a verified leaf certificate's URI SANs.
pub fn identity_of(certs: Option<&[CertificateDer<'_>]>) -> CertIdentity {
    let Some(leaf) = certs.and_then(|c| c.first()) else {
        return CertIdentity::None;
    };
    if x509_parser::parse_x509_certificate(leaf.as_ref()).is_err() {
        return CertIdentity::Unrecognised("certificate does not parse".into());
    }
    let uris = crate::tls::uri_sans(leaf);
    for u in &uris {
        if let Some(m) = u.strip_prefix("synergia://member/") {
            return CertIdentity::Member(m.to_string());
        }
        if let Some(c) = u.strip_prefix("synergia://client/") {
            return CertIdentity::Client(c.to_string());
        }
    }
    CertIdentity::Unrecognised(format!("no synergia:// URI SAN (URIs: {uris:?})"))
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Nobody authenticated (only `/healthz` accepts this).
    Anonymous,
    /// A peer member node (role `peer`).
    Peer(String),
    /// A local client with roles.
    Client {
        /// Client name.
        name: String,
        /// Its roles.
        roles: Vec<Role>,
        /// Most restrictive level it may read.
        max_tlp: TlpLevel,
    },
}

impl Caller {
    /// Requires a local client role (401 when nobody authenticated, 403 otherwise).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        match self {
            Caller::Client { roles, .. } if roles.contains(&role) => Ok(()),
            Caller::Anonymous => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication-required",
                "present a client certificate issued by the federation CA or a bearer token",
            )),
            other => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing-role",
                format!("{} does not have the {role:?} role", other.name()),
            )),
        }
    }

    /// Requires a peer member.
    pub fn require_peer(&self) -> Result<&str, ApiError> {
        match self {
            Caller::Peer(p) => Ok(p),
            Caller::Anonymous => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication-required",
                "federation endpoints require a member node certificate",
            )),
            other => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing-role",
                format!("{} is not a peer member", other.name()),
            )),
        }
    }

    /// Most restrictive TLP level the caller may read.
    pub fn max_tlp(&self) -> TlpLevel {
        match self {
            Caller::Client { max_tlp, .. } => *max_tlp,
            _ => TlpLevel::Clear,
        }
    }

    /// Whether the caller has a role.
    pub fn has(&self, role: Role) -> bool {
        matches!(self, Caller::Client { roles, .. } if roles.contains(&role))
    }

    /// For logs and messages.
    pub fn name(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Peer(p) => format!("peer {p}"),
            Caller::Client { name, .. } => format!("client {name}"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Anonymous))
    }
}

/// Compares in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn client(node: &Node, name: &str) -> Option<Caller> {
    let live = node.live();
    let c = live.clients.iter().find(|c| c.name == name)?;
    Some(Caller::Client {
        name: c.name.clone(),
        roles: c.roles.clone(),
        max_tlp: c.max_tlp,
    })
}

fn resolve(node: &Node, conn: Option<&ConnInfo>, auth: Option<&str>) -> Result<Caller, ApiError> {
    let forbidden = |why: String| {
        tracing::warn!(reason = %why, "refusing a client certificate");
        ApiError::new(StatusCode::FORBIDDEN, "unknown-identity", why)
    };
    if let Some(why) = conn
        .and_then(|c| c.leaf.as_deref())
        .and_then(|leaf| node.refuses_certificate(leaf))
    {
        tracing::warn!(reason = %why, "refusing a certificate the membership log refuses");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "certificate-refused",
            format!("this certificate is refused: {why}"),
        ));
    }
    match conn.map(|c| &c.identity) {
        Some(CertIdentity::Member(m)) => {
            // A member removed from the roster is no peer any more, whatever the
            // config says (its `[[peers]]` entry is dropped at the reload).
            return if node.live().is_peer(m) {
                Ok(Caller::Peer(m.clone()))
            } else {
                Err(forbidden(format!(
                    "member {m} is not a peer of this node (not in its roster, or not configured)"
                )))
            };
        }
        Some(CertIdentity::Client(c)) => {
            return client(node, c)
                .ok_or_else(|| forbidden(format!("client {c} is not configured on this node")));
        }
        Some(CertIdentity::Unrecognised(why)) => return Err(forbidden(why.clone())),
        Some(CertIdentity::None) | None => {}
    }
    let Some(auth) = auth else {
        return Ok(Caller::Anonymous);
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad-token",
                "Authorization must be `Bearer <token>`",
            )
        })?;
    let hash: String = Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Compare with every configured hash, without stopping early.
    let mut found = None;
    for c in &node.live().clients {
        if let Some(h) = &c.token_sha256
            && ct_eq(h.to_ascii_lowercase().as_bytes(), hash.as_bytes())
        {
            found = Some(c.name.clone());
        }
    }
    match found.and_then(|n| client(node, &n)) {
        Some(c) => Ok(c),
        None => {
            // The token itself is never logged.
            tracing::warn!("refusing an unknown bearer token");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad-token",
                "the bearer token is not valid on this node",
            ))
        }
    }
}

/// Middleware: authenticates every request and attaches the [`Caller`].
pub async fn authenticate(State(node): State<Arc<Node>>, mut req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match resolve(&node, conn.as_ref(), auth.as_deref()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            if req.uri().path().starts_with("/taxii2") {
                e.taxii().into_response()
            } else {
                e.into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
