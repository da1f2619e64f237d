//! Why an envelope is refused.

use crate::stix::tlp::TlpLevel;

/// A precise reason an envelope is not accepted. The `code()` is stable: it names the
/// rejection in HTTP errors, per-peer counters and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JSON object of the envelope shape (missing or mistyped member).
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope's text is longer than [`super::MAX_ENVELOPE_BYTES`] (protocol §3):
    /// every node must be able to serve it in one feed page.
    #[error("envelope of {0} bytes, more than the {max} bytes an envelope may have", max = super::MAX_ENVELOPE_BYTES)]
    TooLarge(usize),
    /// `seq` is not a positive integer.
    #[error("malformed envelope: seq must be a positive integer, got {0}")]
    BadSeq(String),
    /// `signature` is not base64url without padding.
    #[error("signature is not base64url without padding: {0}")]
    BadBase64(String),
    /// The origin is not in the roster.
    #[error("origin {0:?} is not a member of the roster")]
    UnknownOrigin(String),
    /// The origin was removed from the federation (membership log) before
    /// `signed_at`: what it signs from then on is refused for good; what it signed
    /// before stays valid.
    #[error(
        "origin {origin} was removed from the federation at {removed_at}; envelope signed at {signed_at}"
    )]
    MemberRemoved {
        /// The origin.
        origin: String,
        /// The removal instant.
        removed_at: String,
        /// Signing instant.
        signed_at: String,
    },
    /// `origin_identity` is not the roster's identity for `origin`.
    #[error("origin_identity {got} does not match the roster identity {expected} of {origin}")]
    IdentityMismatch {
        /// The origin.
        origin: String,
        /// The roster's identity.
        expected: String,
        /// The envelope's.
        got: String,
    },
    /// The key id is not one of the origin's keys.
    #[error("key {key_id:?} is not a roster key of {origin}")]
    UnknownKey {
        /// The origin.
        origin: String,
        /// The key id.
        key_id: String,
    },
    /// `signed_at` is before the key's `not_before`.
    #[error("key {key_id} is not valid until {not_before}; envelope signed at {signed_at}")]
    KeyNotYetValid {
        /// The key id.
        key_id: String,
        /// Window start.
        not_before: String,
        /// Signing instant.
        signed_at: String,
    },
    /// `signed_at` is after the key's `not_after`.
    #[error("key {key_id} expired at {not_after}; envelope signed at {signed_at}")]
    KeyExpired {
        /// The key id.
        key_id: String,
        /// Window end.
        not_after: String,
        /// Signing instant.
        signed_at: String,
    },
    /// `signed_at` is at or after the key's revocation.
    #[error("key {key_id} was revoked at {revoked_at}; envelope signed at {signed_at}")]
    KeyRevoked {
        /// The key id.
        key_id: String,
        /// Revocation instant.
        revoked_at: String,
        /// Signing instant.
        signed_at: String,
    },
    /// The roster key is a small-order point: any signature would verify.
    #[error("key {0} is a weak (small-order) ed25519 key")]
    WeakKey(String),
    /// `signed_at` lies further in the future than the allowed clock skew.
    #[error("envelope signed at {signed_at}, later than now plus the allowed clock skew")]
    SignedInFuture {
        /// Signing instant.
        signed_at: String,
    },
    /// The signature does not verify over the canonical form (content or metadata
    /// changed after signing, or a forgery).
    #[error("signature does not verify over the envelope's canonical form")]
    BadSignature,
    /// The bundle is not valid STIX 2.1 (every error the validator found).
    #[error("bundle is not valid STIX 2.1: {0}")]
    InvalidBundle(#[source] crate::stix::ContentError),
    /// An object is marked more restrictively than the envelope's `tlp`.
    #[error("object {object_id} is marked {object_tlp} but the envelope claims {envelope_tlp}")]
    TlpMismatch {
        /// The offending object.
        object_id: String,
        /// Its marking.
        object_tlp: TlpLevel,
        /// The envelope's level.
        envelope_tlp: TlpLevel,
    },
    /// An object's `created_by_ref` names another member's identity: a node signs
    /// only for its own member, and only an object's creator may version it.
    #[error(
        "object {object_id} names member {creator} as its creator (created_by_ref) but is signed by {origin}"
    )]
    ForeignCreator {
        /// The offending object.
        object_id: String,
        /// The member its `created_by_ref` names.
        creator: String,
        /// The envelope's origin.
        origin: String,
    },
    /// An object's `created` or `modified` is later than the envelope's `signed_at`
    /// plus the allowed clock skew: nobody can sign a version before it exists, and a
    /// far-future `modified` would win over every later version.
    #[error(
        "object {object_id} has {property} {value}, later than the envelope's signed_at {signed_at} plus the allowed clock skew"
    )]
    ObjectAfterSigning {
        /// The offending object.
        object_id: String,
        /// `created` or `modified`.
        property: &'static str,
        /// Its value.
        value: String,
        /// The envelope's `signed_at`.
        signed_at: String,
    },
    /// `recipients` names someone not in the roster, or is used below red.
    #[error("recipients: {0}")]
    BadRecipients(String),
    /// A retraction names an envelope this node holds that another member signed:
    /// only an envelope's origin may take it back.
    #[error("the retraction names envelope {envelope}, which {owner} published, not {origin}")]
    ForeignRetraction {
        /// The envelope named.
        envelope: String,
        /// Its origin.
        owner: String,
        /// The retraction's origin.
        origin: String,
    },
    /// A retraction names a retraction: what is retracted stays retracted.
    #[error(
        "the retraction names {0}, which is itself a retraction; a retraction cannot be taken back"
    )]
    RetractsRetraction(String),
}

impl VerifyError {
    /// Every code [`VerifyError::code`] returns, so that counters by reason can be
    /// shown at zero from the start.
    pub const CODES: [&'static str; 21] = [
        "malformed",
        "envelope-too-large",
        "bad-seq",
        "bad-base64",
        "unknown-origin",
        "identity-mismatch",
        "unknown-key",
        "key-not-yet-valid",
        "key-expired",
        "key-revoked",
        "weak-key",
        "signed-in-future",
        "bad-signature",
        "invalid-stix",
        "tlp-mismatch",
        "bad-recipients",
        "foreign-creator",
        "object-after-signing",
        "foreign-retraction",
        "retracts-retraction",
        "member-removed",
    ];

    /// The stable code for counters, metrics and HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::TooLarge(_) => "envelope-too-large",
            VerifyError::BadSeq(_) => "bad-seq",
            VerifyError::BadBase64(_) => "bad-base64",
            VerifyError::UnknownOrigin(_) => "unknown-origin",
            VerifyError::IdentityMismatch { .. } => "identity-mismatch",
            VerifyError::UnknownKey { .. } => "unknown-key",
            VerifyError::KeyNotYetValid { .. } => "key-not-yet-valid",
            VerifyError::KeyExpired { .. } => "key-expired",
            VerifyError::KeyRevoked { .. } => "key-revoked",
            VerifyError::WeakKey(_) => "weak-key",
            VerifyError::SignedInFuture { .. } => "signed-in-future",
            VerifyError::BadSignature => "bad-signature",
            VerifyError::InvalidBundle(_) => "invalid-stix",
            VerifyError::TlpMismatch { .. } => "tlp-mismatch",
            VerifyError::BadRecipients(_) => "bad-recipients",
            VerifyError::ForeignCreator { .. } => "foreign-creator",
            VerifyError::ObjectAfterSigning { .. } => "object-after-signing",
            VerifyError::ForeignRetraction { .. } => "foreign-retraction",
            VerifyError::RetractsRetraction(_) => "retracts-retraction",
            VerifyError::MemberRemoved { .. } => "member-removed",
        }
    }
}

/// Why signing failed (a caller bug or unsignable content, never a peer's doing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The bundle has no canonical form.
    #[error(transparent)]
    Canonical(#[from] super::canonical::CanonicalError),
    /// The bundle is not a JSON object.
    #[error("bundle must be a JSON object")]
    NotAnObject,
}
