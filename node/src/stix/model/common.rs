//! Property types shared by many STIX objects.
//!
//! Everything here keeps the producer's text verbatim: timestamps and identifiers are
//! newtypes over `String`, and every struct carries an `extra` map so that properties
//! we do not model (custom `x_` properties, newer spec additions) survive a round trip.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::stix::timestamp::{Timestamp, TimestampError};

/// A STIX timestamp kept exactly as the producer wrote it.
///
/// Re-rendering a timestamp could change its precision and therefore the canonical
/// bytes that were signed, so the text is the value; [`StixTimestamp::parse`] gives the
/// instant when one is needed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StixTimestamp(pub String);

impl StixTimestamp {
    /// Parses the text as a STIX timestamp (RFC 3339, UTC, `Z`).
    pub fn parse(&self) -> Result<Timestamp, TimestampError> {
        Timestamp::parse(&self.0)
    }

    /// The original text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A STIX identifier (`<type>--<uuid>`), kept as text; the validator checks its form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Identifier(pub String);

impl Identifier {
    /// The object type named by the identifier's prefix, if it has the `--` separator.
    pub fn type_prefix(&self) -> Option<&str> {
        self.0.split_once("--").map(|(t, _)| t)
    }

    /// The original text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `hashes` dictionary: algorithm name to digest text.
///
/// A `BTreeMap` keeps the output order stable; the canonical form sorts keys anyway.
pub type Hashes = BTreeMap<String, String>;

/// Free-form extension content keyed by extension name or `extension-definition--` id.
pub type Extensions = Map<String, Value>;

/// A reference to non-STIX information (a report URL, a CVE, an ATT&CK id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalReference {
    /// The source the reference comes from (`mitre-attack`, `cve`, a vendor name).
    pub source_name: String,
    /// Human-readable description of the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the referenced material lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Digests of the material at `url`, so readers can tell if it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
    /// The identifier within the source (`T1566`, `CVE-2024-1234`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Properties this model does not name, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A phase of a kill chain (Lockheed Martin, MITRE ATT&CK tactics …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KillChainPhase {
    /// The kill chain's name (`lockheed-martin-cyber-kill-chain`, `mitre-attack`).
    pub kill_chain_name: String,
    /// The phase within that chain.
    pub phase_name: String,
    /// Properties this model does not name, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A marking that applies to selected properties of an object only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GranularMarking {
    /// Language of the selected text (mutually exclusive with `marking_ref`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The marking-definition that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marking_ref: Option<Identifier>,
    /// Selectors (`description`, `external_references.[0].url`) naming the properties.
    pub selectors: Vec<String>,
    /// Properties this model does not name, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Properties common to SDOs, SROs, language-content and extension-definition objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommonProperties {
    /// The object's type name, kept so the object re-serialises on its own.
    #[serde(rename = "type")]
    pub type_: String,
    /// Always `2.1` for the objects this crate produces.
    pub spec_version: String,
    /// `<type>--<uuid>`.
    pub id: Identifier,
    /// When the first version of the object was created.
    pub created: StixTimestamp,
    /// When this version was made; `(id, modified)` names a version.
    pub modified: StixTimestamp,
    /// The identity that created the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<Identifier>,
    /// Whether the object has been withdrawn by its creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
    /// Free-form terms describing the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The creator's confidence, 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<i64>,
    /// Language of the text properties (RFC 5646).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// References to non-STIX information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_references: Option<Vec<ExternalReference>>,
    /// Markings (TLP, statements) that apply to the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_marking_refs: Option<Vec<Identifier>>,
    /// Markings that apply to parts of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granular_markings: Option<Vec<GranularMarking>>,
    /// Extension content, by extension name or definition id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
}

/// Properties common to STIX Cyber-observable Objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoCommonProperties {
    /// The object's type name.
    #[serde(rename = "type")]
    pub type_: String,
    /// `<type>--<uuid>`, ideally the deterministic UUIDv5 of the object.
    pub id: Identifier,
    /// `2.1` when present (SCOs may omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<String>,
    /// Markings that apply to the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_marking_refs: Option<Vec<Identifier>>,
    /// Markings that apply to parts of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granular_markings: Option<Vec<GranularMarking>>,
    /// Whether the values have been defanged (`hxxp://`, `[.]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defanged: Option<bool>,
    /// Extension content (`file` has `ntfs-ext`, `pdf-ext`, … or definition ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
}
