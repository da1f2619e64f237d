//! What a property's value may be, property tables, object classes and type lists.

use super::super::checks::{Ctx, Ptr};
use serde_json::{Map, Value};

/// A STIX object as parsed.
pub(super) type Obj = Map<String, Value>;

/// What a property's value must look like.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Bool,
    /// Integer within an inclusive range.
    Int(i64, i64),
    /// Number within an inclusive range.
    Num(f64, f64),
    Ts,
    /// Timestamp with at least millisecond precision.
    TsMs,
    /// Identifier whose type must be one of the targets (see [`target_ok`]).
    Ref(&'static [&'static str]),
    /// Non-empty list of such identifiers.
    Refs(&'static [&'static str]),
    /// Non-empty list of strings.
    Strs,
    /// String from an open vocabulary (warning when outside it).
    Open(&'static str, &'static [&'static str]),
    /// Non-empty list of strings from an open vocabulary.
    OpenList(&'static str, &'static [&'static str]),
    /// String from a closed enumeration (error when outside it).
    Closed(&'static [&'static str]),
    /// Non-empty list of strings from a closed enumeration.
    ClosedList(&'static [&'static str]),
    Hashes,
    Phases,
    /// Non-empty JSON object.
    Dict,
    /// Non-empty list of anything.
    List,
    /// Hexadecimal string.
    Hex,
    /// Base64 string.
    Binary,
    Lang,
    SpecVersion,
    ExtRefs,
    Granular,
    Extensions,
    Any,
}

pub(super) struct Prop {
    /// Property name.
    pub(super) name: &'static str,
    /// Whether every object of the type must have it.
    pub(super) required: bool,
    /// What its value must look like.
    pub(super) kind: Kind,
}

/// A property every object of the type must have.
pub(super) const fn required(name: &'static str, kind: Kind) -> Prop {
    Prop {
        name,
        required: true,
        kind,
    }
}

/// A property objects of the type may have.
pub(super) const fn optional(name: &'static str, kind: Kind) -> Prop {
    Prop {
        name,
        required: false,
        kind,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Sdo,
    Sro,
    Sco,
    /// language-content, extension-definition: SDO-like common properties.
    Meta,
    Marking,
}

pub(super) struct TypeRule {
    /// Its own properties (besides the common ones of its class).
    pub(super) props: &'static [Prop],
    /// Which common properties apply.
    pub(super) class: Class,
    /// The checks that relate several properties.
    pub(super) extra: fn(&mut Ctx, Ptr, &Obj),
}

pub(super) const ANY: &[&str] = &[];
pub(super) const IDENTITY: &[&str] = &["identity"];
pub(super) const MARKING: &[&str] = &["marking-definition"];
/// Any SDO (custom object types included).
pub(super) const SDO: &[&str] = &["@sdo"];
/// Any SCO (custom object types included).
pub(super) const SCO: &[&str] = &["@sco"];
/// Anything a relationship may connect: not an SRO or meta object.
pub(super) const SDO_SCO: &[&str] = &["@sdo-sco"];
pub(super) const SOFTWARE: &[&str] = &["software"];
pub(super) const FILE_ARTIFACT: &[&str] = &["file", "artifact"];
pub(super) const ADDRS: &[&str] = &["ipv4-addr", "ipv6-addr", "domain-name"];
pub(super) const ENDPOINTS: &[&str] = &["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"];

pub(crate) const SDO_TYPES: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
];

pub(crate) const SCO_TYPES: &[&str] = &[
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

pub(super) const NON_SDO_SCO: &[&str] = &[
    "relationship",
    "sighting",
    "bundle",
    "marking-definition",
    "language-content",
    "extension-definition",
];

pub(super) fn target_ok(ty: &str, targets: &[&str]) -> bool {
    match targets {
        [] => true,
        ["@sdo"] => !SCO_TYPES.contains(&ty) && !NON_SDO_SCO.contains(&ty),
        ["@sco"] => !SDO_TYPES.contains(&ty) && !NON_SDO_SCO.contains(&ty),
        ["@sdo-sco"] => !NON_SDO_SCO.contains(&ty),
        ts => ts.contains(&ty),
    }
}

pub(super) fn describe_targets(targets: &[&str]) -> String {
    match targets {
        ["@sdo"] => "an SDO".into(),
        ["@sco"] => "an SCO".into(),
        ["@sdo-sco"] => "an SDO or SCO".into(),
        ts => ts.join(" or "),
    }
}

pub(super) const COMMON: &[Prop] = &[
    required("spec_version", Kind::SpecVersion),
    required("created", Kind::TsMs),
    required("modified", Kind::TsMs),
    optional("created_by_ref", Kind::Ref(IDENTITY)),
    optional("revoked", Kind::Bool),
    optional("labels", Kind::Strs),
    optional("confidence", Kind::Int(0, 100)),
    optional("lang", Kind::Lang),
    optional("external_references", Kind::ExtRefs),
    optional("object_marking_refs", Kind::Refs(MARKING)),
    optional("granular_markings", Kind::Granular),
    optional("extensions", Kind::Extensions),
];

pub(super) const SCO_COMMON: &[Prop] = &[
    optional("spec_version", Kind::SpecVersion),
    optional("object_marking_refs", Kind::Refs(MARKING)),
    optional("granular_markings", Kind::Granular),
    optional("defanged", Kind::Bool),
    optional("extensions", Kind::Extensions),
];

pub(super) const MARKING_COMMON: &[Prop] = &[
    required("spec_version", Kind::SpecVersion),
    required("created", Kind::TsMs),
    optional("created_by_ref", Kind::Ref(IDENTITY)),
    optional("external_references", Kind::ExtRefs),
    optional("object_marking_refs", Kind::Refs(MARKING)),
    optional("granular_markings", Kind::Granular),
    optional("extensions", Kind::Extensions),
    optional("name", Kind::Str),
    optional(
        "definition_type",
        Kind::Open("marking-definition-type", &["statement", "tlp"]),
    ),
    optional("definition", Kind::Dict),
];

/// Properties reserved by the specification for future use; objects MUST NOT use them.
pub(super) const RESERVED: &[&str] = &["severity", "action", "username", "phone_numbers"];

pub(super) const OPINION: &[&str] = &[
    "strongly-disagree",
    "disagree",
    "neutral",
    "agree",
    "strongly-agree",
];
pub(super) const ENCRYPTION: &[&str] = &["AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated"];
pub(super) const EXTENSION_TYPES: &[&str] = &[
    "new-sdo",
    "new-sco",
    "new-sro",
    "property-extension",
    "toplevel-property-extension",
];
pub(super) const REG_DATATYPES: &[&str] = &[
    "REG_NONE",
    "REG_SZ",
    "REG_EXPAND_SZ",
    "REG_BINARY",
    "REG_DWORD",
    "REG_DWORD_BIG_ENDIAN",
    "REG_DWORD_LITTLE_ENDIAN",
    "REG_LINK",
    "REG_MULTI_SZ",
    "REG_RESOURCE_LIST",
    "REG_FULL_RESOURCE_DESCRIPTION",
    "REG_RESOURCE_REQUIREMENTS_LIST",
    "REG_QWORD",
    "REG_INVALID_TYPE",
];

pub(super) const MAX_COUNT: i64 = 999_999_999;
pub(super) const U: i64 = i64::MAX;
pub(super) const PORT: Kind = Kind::Int(0, 65_535);

pub(super) fn none(_: &mut Ctx, _: Ptr, _: &Obj) {}
