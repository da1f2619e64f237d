//! What each STIX 2.1 object type must contain, and the checks that walk a document.
//!
//! Properties are described by small static tables (name, required, kind) so the
//! common path is one loop per object; rules that relate several properties live in
//! per-type functions.

use super::checks::{self, Ctx, Ptr, json_type};
use super::vocab as ov;
use super::{Report, check_stix_pattern};
use crate::stix::observable::{ObservableKey, keys_from_pattern};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::{OwnLevel, level_of_markings, own_level};
use serde_json::{Map, Value};
use std::collections::HashSet;

type Obj = Map<String, Value>;

/// What a property's value must look like.
#[derive(Clone, Copy)]
enum K {
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

struct P {
    n: &'static str,
    req: bool,
    k: K,
}

const fn r(n: &'static str, k: K) -> P {
    P { n, req: true, k }
}
const fn o(n: &'static str, k: K) -> P {
    P { n, req: false, k }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Sdo,
    Sro,
    Sco,
    /// language-content, extension-definition: SDO-like common properties.
    Meta,
    Marking,
}

struct TypeRule {
    props: &'static [P],
    class: Class,
    extra: fn(&mut Ctx, Ptr, &Obj),
}

const ANY: &[&str] = &[];
const IDENTITY: &[&str] = &["identity"];
const MARKING: &[&str] = &["marking-definition"];
/// Any SDO (custom object types included).
const SDO: &[&str] = &["@sdo"];
/// Any SCO (custom object types included).
const SCO: &[&str] = &["@sco"];
/// Anything a relationship may connect: not an SRO or meta object.
const SDO_SCO: &[&str] = &["@sdo-sco"];
const SOFTWARE: &[&str] = &["software"];
const FILE_ARTIFACT: &[&str] = &["file", "artifact"];
const ADDRS: &[&str] = &["ipv4-addr", "ipv6-addr", "domain-name"];
const ENDPOINTS: &[&str] = &["ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"];

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

const NON_SDO_SCO: &[&str] = &[
    "relationship",
    "sighting",
    "bundle",
    "marking-definition",
    "language-content",
    "extension-definition",
];

fn target_ok(ty: &str, targets: &[&str]) -> bool {
    match targets {
        [] => true,
        ["@sdo"] => !SCO_TYPES.contains(&ty) && !NON_SDO_SCO.contains(&ty),
        ["@sco"] => !SDO_TYPES.contains(&ty) && !NON_SDO_SCO.contains(&ty),
        ["@sdo-sco"] => !NON_SDO_SCO.contains(&ty),
        ts => ts.contains(&ty),
    }
}

fn describe_targets(targets: &[&str]) -> String {
    match targets {
        ["@sdo"] => "an SDO".into(),
        ["@sco"] => "an SCO".into(),
        ["@sdo-sco"] => "an SDO or SCO".into(),
        ts => ts.join(" or "),
    }
}

const COMMON: &[P] = &[
    r("spec_version", K::SpecVersion),
    r("created", K::TsMs),
    r("modified", K::TsMs),
    o("created_by_ref", K::Ref(IDENTITY)),
    o("revoked", K::Bool),
    o("labels", K::Strs),
    o("confidence", K::Int(0, 100)),
    o("lang", K::Lang),
    o("external_references", K::ExtRefs),
    o("object_marking_refs", K::Refs(MARKING)),
    o("granular_markings", K::Granular),
    o("extensions", K::Extensions),
];

const SCO_COMMON: &[P] = &[
    o("spec_version", K::SpecVersion),
    o("object_marking_refs", K::Refs(MARKING)),
    o("granular_markings", K::Granular),
    o("defanged", K::Bool),
    o("extensions", K::Extensions),
];

const MARKING_COMMON: &[P] = &[
    r("spec_version", K::SpecVersion),
    r("created", K::TsMs),
    o("created_by_ref", K::Ref(IDENTITY)),
    o("external_references", K::ExtRefs),
    o("object_marking_refs", K::Refs(MARKING)),
    o("granular_markings", K::Granular),
    o("extensions", K::Extensions),
    o("name", K::Str),
    o(
        "definition_type",
        K::Open("marking-definition-type", &["statement", "tlp"]),
    ),
    o("definition", K::Dict),
];

/// Properties reserved by the specification for future use; objects MUST NOT use them.
const RESERVED: &[&str] = &["severity", "action", "username", "phone_numbers"];

const OPINION: &[&str] = &[
    "strongly-disagree",
    "disagree",
    "neutral",
    "agree",
    "strongly-agree",
];
const ENCRYPTION: &[&str] = &["AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated"];
const EXTENSION_TYPES: &[&str] = &[
    "new-sdo",
    "new-sco",
    "new-sro",
    "property-extension",
    "toplevel-property-extension",
];
const REG_DATATYPES: &[&str] = &[
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

const MAX_COUNT: i64 = 999_999_999;
const U: i64 = i64::MAX;
const PORT: K = K::Int(0, 65_535);

fn none(_: &mut Ctx, _: Ptr, _: &Obj) {}

macro_rules! rule {
    ($class:ident, [$($p:expr),* $(,)?]) => {
        rule!($class, [$($p),*], none)
    };
    ($class:ident, [$($p:expr),* $(,)?], $extra:expr) => {{
        const R: TypeRule = TypeRule { props: &[$($p),*], class: Class::$class, extra: $extra };
        &R
    }};
}

fn rule_for(ty: &str) -> Option<&'static TypeRule> {
    use K::*;
    Some(match ty {
        "attack-pattern" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o("aliases", Strs),
                o("kill_chain_phases", Phases)
            ]
        ),
        "campaign" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o("aliases", Strs),
                o("first_seen", Ts),
                o("last_seen", Ts),
                o("objective", Str)
            ],
            seen
        ),
        "course-of-action" => rule!(
            Sdo,
            [r("name", Str), o("description", Str), o("action", Any)]
        ),
        "grouping" => rule!(
            Sdo,
            [
                r(
                    "context",
                    Open("grouping-context-ov", ov::GROUPING_CONTEXT_OV)
                ),
                r("object_refs", Refs(ANY)),
                o("name", Str),
                o("description", Str)
            ]
        ),
        "identity" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o("roles", Strs),
                o(
                    "identity_class",
                    Open("identity-class-ov", ov::IDENTITY_CLASS_OV)
                ),
                o(
                    "sectors",
                    OpenList("industry-sector-ov", ov::INDUSTRY_SECTOR_OV)
                ),
                o("contact_information", Str)
            ]
        ),
        "incident" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o("kill_chain_phases", Phases)
            ]
        ),
        "indicator" => rule!(
            Sdo,
            [
                r("pattern", Str),
                r(
                    "pattern_type",
                    Open("pattern-type-ov", ov::INDICATOR_PATTERN_OV)
                ),
                r("valid_from", Ts),
                o("name", Str),
                o("description", Str),
                o(
                    "indicator_types",
                    OpenList("indicator-type-ov", ov::INDICATOR_TYPE_OV)
                ),
                o("pattern_version", Str),
                o("valid_until", Ts),
                o("kill_chain_phases", Phases)
            ],
            indicator
        ),
        "infrastructure" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o(
                    "infrastructure_types",
                    OpenList("infrastructure-type-ov", ov::INFRASTRUCTURE_TYPE_OV)
                ),
                o("aliases", Strs),
                o("kill_chain_phases", Phases),
                o("first_seen", Ts),
                o("last_seen", Ts)
            ],
            seen
        ),
        "intrusion-set" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o("aliases", Strs),
                o("first_seen", Ts),
                o("last_seen", Ts),
                o("goals", Strs),
                o(
                    "resource_level",
                    Open("attack-resource-level-ov", ov::ATTACK_RESOURCE_LEVEL_OV)
                ),
                o(
                    "primary_motivation",
                    Open("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                ),
                o(
                    "secondary_motivations",
                    OpenList("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                )
            ],
            seen
        ),
        "location" => rule!(
            Sdo,
            [
                o("name", Str),
                o("description", Str),
                o("latitude", Num(-90.0, 90.0)),
                o("longitude", Num(-180.0, 180.0)),
                o("precision", Num(0.0, f64::MAX)),
                o("region", Open("region-ov", ov::REGION_OV)),
                o("country", Str),
                o("administrative_area", Str),
                o("city", Str),
                o("street_address", Str),
                o("postal_code", Str)
            ],
            location
        ),
        "malware" => rule!(
            Sdo,
            [
                r("is_family", Bool),
                o("name", Str),
                o("description", Str),
                o(
                    "malware_types",
                    OpenList("malware-type-ov", ov::MALWARE_TYPE_OV)
                ),
                o("aliases", Strs),
                o("kill_chain_phases", Phases),
                o("first_seen", Ts),
                o("last_seen", Ts),
                o("operating_system_refs", Refs(SOFTWARE)),
                o(
                    "architecture_execution_envs",
                    OpenList("processor-architecture-ov", ov::PROCESSOR_ARCHITECTURE_OV)
                ),
                o(
                    "implementation_languages",
                    OpenList(
                        "implementation-language-ov",
                        ov::IMPLEMENTATION_LANGUAGES_OV
                    )
                ),
                o(
                    "capabilities",
                    OpenList("malware-capabilities-ov", ov::MALWARE_CAPABILITIES_OV)
                ),
                o("sample_refs", Refs(FILE_ARTIFACT))
            ],
            malware
        ),
        "malware-analysis" => rule!(
            Sdo,
            [
                r("product", Str),
                o("version", Str),
                o("host_vm_ref", Ref(SOFTWARE)),
                o("operating_system_ref", Ref(SOFTWARE)),
                o("installed_software_refs", Refs(SOFTWARE)),
                o("configuration_version", Str),
                o("modules", Strs),
                o("analysis_engine_version", Str),
                o("analysis_definition_version", Str),
                o("submitted", Ts),
                o("analysis_started", Ts),
                o("analysis_ended", Ts),
                o("result_name", Str),
                o("result", Open("malware-result-ov", ov::MALWARE_RESULT_OV)),
                o("analysis_sco_refs", Refs(SCO)),
                o("sample_ref", Ref(FILE_ARTIFACT))
            ],
            malware_analysis
        ),
        "note" => rule!(
            Sdo,
            [
                r("content", Str),
                r("object_refs", Refs(ANY)),
                o("abstract", Str),
                o("authors", Strs)
            ]
        ),
        "observed-data" => rule!(
            Sdo,
            [
                r("first_observed", Ts),
                r("last_observed", Ts),
                r("number_observed", Int(1, MAX_COUNT)),
                o("objects", Dict),
                o("object_refs", Refs(SCO_OR_SRO))
            ],
            observed_data
        ),
        "opinion" => rule!(
            Sdo,
            [
                r("opinion", Closed(OPINION)),
                r("object_refs", Refs(ANY)),
                o("explanation", Str),
                o("authors", Strs)
            ]
        ),
        "report" => rule!(
            Sdo,
            [
                r("name", Str),
                r("published", Ts),
                r("object_refs", Refs(ANY)),
                o("description", Str),
                o(
                    "report_types",
                    OpenList("report-type-ov", ov::REPORT_TYPE_OV)
                )
            ]
        ),
        "threat-actor" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o(
                    "threat_actor_types",
                    OpenList("threat-actor-type-ov", ov::THREAT_ACTOR_TYPE_OV)
                ),
                o("aliases", Strs),
                o("first_seen", Ts),
                o("last_seen", Ts),
                o(
                    "roles",
                    OpenList("threat-actor-role-ov", ov::THREAT_ACTOR_ROLE_OV)
                ),
                o("goals", Strs),
                o(
                    "sophistication",
                    Open(
                        "threat-actor-sophistication-ov",
                        ov::THREAT_ACTOR_SOPHISTICATION_OV
                    )
                ),
                o(
                    "resource_level",
                    Open("attack-resource-level-ov", ov::ATTACK_RESOURCE_LEVEL_OV)
                ),
                o(
                    "primary_motivation",
                    Open("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                ),
                o(
                    "secondary_motivations",
                    OpenList("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                ),
                o(
                    "personal_motivations",
                    OpenList("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                )
            ],
            seen
        ),
        "tool" => rule!(
            Sdo,
            [
                r("name", Str),
                o("description", Str),
                o("tool_types", OpenList("tool-type-ov", ov::TOOL_TYPE_OV)),
                o("aliases", Strs),
                o("kill_chain_phases", Phases),
                o("tool_version", Str)
            ]
        ),
        "vulnerability" => rule!(Sdo, [r("name", Str), o("description", Str)]),
        "relationship" => rule!(
            Sro,
            [
                r("relationship_type", Str),
                r("source_ref", Ref(SDO_SCO)),
                r("target_ref", Ref(SDO_SCO)),
                o("description", Str),
                o("start_time", Ts),
                o("stop_time", Ts)
            ],
            relationship
        ),
        "sighting" => rule!(
            Sro,
            [
                r("sighting_of_ref", Ref(SDO)),
                o("description", Str),
                o("first_seen", Ts),
                o("last_seen", Ts),
                o("count", Int(0, MAX_COUNT)),
                o("observed_data_refs", Refs(&["observed-data"])),
                o("where_sighted_refs", Refs(&["identity", "location"])),
                o("summary", Bool)
            ],
            seen
        ),
        "language-content" => rule!(
            Meta,
            [
                r("object_ref", Ref(ANY)),
                // Optional in STIX 2.1 (section 7.1): without it the content applies
                // to every version of the object.
                o("object_modified", TsMs),
                r("contents", Dict)
            ],
            language_content
        ),
        "extension-definition" => rule!(
            Meta,
            [
                r("name", Str),
                r("schema", Str),
                r("version", Str),
                r("extension_types", ClosedList(EXTENSION_TYPES)),
                o("description", Str),
                o("extension_properties", Strs)
            ],
            extension_definition
        ),
        "marking-definition" => rule!(Marking, [], marking_definition),
        "artifact" => rule!(
            Sco,
            [
                o("mime_type", Str),
                o("payload_bin", Binary),
                o("url", Str),
                o("hashes", Hashes),
                o("encryption_algorithm", Closed(ENCRYPTION)),
                o("decryption_key", Str)
            ],
            artifact
        ),
        "autonomous-system" => rule!(
            Sco,
            [r("number", Int(0, U)), o("name", Str), o("rir", Str)],
            sco_id
        ),
        "directory" => rule!(
            Sco,
            [
                r("path", Str),
                o("path_enc", Str),
                o("ctime", Ts),
                o("mtime", Ts),
                o("atime", Ts),
                o("contains_refs", Refs(&["file", "directory"]))
            ],
            sco_id
        ),
        "domain-name" => rule!(
            Sco,
            [r("value", Str), o("resolves_to_refs", Refs(ADDRS))],
            sco_id
        ),
        "email-addr" => rule!(
            Sco,
            [
                r("value", Str),
                o("display_name", Str),
                o("belongs_to_ref", Ref(&["user-account"]))
            ],
            sco_id
        ),
        "email-message" => rule!(
            Sco,
            [
                r("is_multipart", Bool),
                o("date", Ts),
                o("content_type", Str),
                o("from_ref", Ref(&["email-addr"])),
                o("sender_ref", Ref(&["email-addr"])),
                o("to_refs", Refs(&["email-addr"])),
                o("cc_refs", Refs(&["email-addr"])),
                o("bcc_refs", Refs(&["email-addr"])),
                o("message_id", Str),
                o("subject", Str),
                o("received_lines", Strs),
                o("additional_header_fields", Dict),
                o("body", Str),
                o("body_multipart", List),
                o("raw_email_ref", Ref(&["artifact"]))
            ],
            email_message
        ),
        "file" => rule!(
            Sco,
            [
                o("hashes", Hashes),
                o("size", Int(0, U)),
                o("name", Str),
                o("name_enc", Str),
                o("magic_number_hex", Hex),
                o("mime_type", Str),
                o("ctime", Ts),
                o("mtime", Ts),
                o("atime", Ts),
                o("parent_directory_ref", Ref(&["directory"])),
                o("contains_refs", Refs(SCO)),
                o("content_ref", Ref(&["artifact"]))
            ],
            file
        ),
        "ipv4-addr" => rule!(
            Sco,
            [
                r("value", Str),
                o("resolves_to_refs", Refs(&["mac-addr"])),
                o("belongs_to_refs", Refs(&["autonomous-system"]))
            ],
            sco_id
        ),
        "ipv6-addr" => rule!(
            Sco,
            [
                r("value", Str),
                o("resolves_to_refs", Refs(&["mac-addr"])),
                o("belongs_to_refs", Refs(&["autonomous-system"]))
            ],
            sco_id
        ),
        "mac-addr" => rule!(Sco, [r("value", Str)], sco_id),
        "mutex" => rule!(Sco, [r("name", Str)], sco_id),
        "network-traffic" => rule!(
            Sco,
            [
                r("protocols", Strs),
                o("start", Ts),
                o("end", Ts),
                o("is_active", Bool),
                o("src_ref", Ref(ENDPOINTS)),
                o("dst_ref", Ref(ENDPOINTS)),
                o("src_port", PORT),
                o("dst_port", PORT),
                o("src_byte_count", Int(0, U)),
                o("dst_byte_count", Int(0, U)),
                o("src_packets", Int(0, U)),
                o("dst_packets", Int(0, U)),
                o("ipfix", Dict),
                o("src_payload_ref", Ref(&["artifact"])),
                o("dst_payload_ref", Ref(&["artifact"])),
                o("encapsulates_refs", Refs(&["network-traffic"])),
                o("encapsulated_by_ref", Ref(&["network-traffic"]))
            ],
            network_traffic
        ),
        "process" => rule!(
            Sco,
            [
                o("is_hidden", Bool),
                o("pid", Int(0, U)),
                o("created_time", Ts),
                o("cwd", Str),
                o("command_line", Str),
                o("environment_variables", Dict),
                o("opened_connection_refs", Refs(&["network-traffic"])),
                o("creator_user_ref", Ref(&["user-account"])),
                o("image_ref", Ref(&["file"])),
                o("parent_ref", Ref(&["process"])),
                o("child_refs", Refs(&["process"]))
            ],
            process
        ),
        "software" => rule!(
            Sco,
            [
                r("name", Str),
                o("cpe", Str),
                o("swid", Str),
                o("languages", Strs),
                o("vendor", Str),
                o("version", Str)
            ],
            sco_id
        ),
        "url" => rule!(Sco, [r("value", Str)], sco_id),
        "user-account" => rule!(
            Sco,
            [
                o("user_id", Str),
                o("credential", Str),
                o("account_login", Str),
                o("account_type", Open("account-type-ov", ov::ACCOUNT_TYPE_OV)),
                o("display_name", Str),
                o("is_service_account", Bool),
                o("is_privileged", Bool),
                o("can_escalate_privs", Bool),
                o("is_disabled", Bool),
                o("account_created", Ts),
                o("account_expires", Ts),
                o("credential_last_changed", Ts),
                o("account_first_login", Ts),
                o("account_last_login", Ts)
            ],
            sco_id
        ),
        "windows-registry-key" => rule!(
            Sco,
            [
                o("key", Str),
                o("values", List),
                o("modified_time", Ts),
                o("creator_user_ref", Ref(&["user-account"])),
                o("number_of_subkeys", Int(0, U))
            ],
            registry_key
        ),
        "x509-certificate" => rule!(
            Sco,
            [
                o("is_self_signed", Bool),
                o("hashes", Hashes),
                o("version", Str),
                o("serial_number", Str),
                o("signature_algorithm", Str),
                o("issuer", Str),
                o("validity_not_before", Ts),
                o("validity_not_after", Ts),
                o("subject", Str),
                o("subject_public_key_algorithm", Str),
                o("subject_public_key_modulus", Str),
                o("subject_public_key_exponent", Int(0, U)),
                o("x509_v3_extensions", Dict)
            ],
            x509
        ),
        _ => return None,
    })
}

/// Observed-data `object_refs` point at SCOs and SROs.
const SCO_OR_SRO: &[&str] = &["@sco"];

/// Validates a bundle document; returns, for each of its objects, the observable
/// keys of its STIX pattern when it has one that parsed.
///
/// `levels` gets, per object, what its own markings say of its TLP level (found here
/// while the object is in cache).
pub(crate) fn bundle(
    doc: &Value,
    report: &mut Report,
    levels: &mut Vec<OwnLevel>,
) -> Vec<Option<Vec<ObservableKey>>> {
    let root = Ptr::root("");
    let id = doc.get("id").and_then(Value::as_str);
    let mut cx = Ctx {
        report,
        id,
        pattern_keys: None,
    };
    let Value::Object(m) = doc else {
        cx.error(
            "invalid-property-type",
            root,
            format!("a bundle must be a JSON object, not {}", json_type(doc)),
        );
        return Vec::new();
    };
    match m.get("type") {
        Some(Value::String(t)) if t == "bundle" => {}
        Some(v) => cx.error(
            "invalid-bundle",
            root.key("type"),
            format!("a bundle's type must be 'bundle', not {v}"),
        ),
        None => cx.error(
            "missing-property",
            root.key("type"),
            "a bundle needs 'type'".into(),
        ),
    }
    match m.get("id") {
        Some(Value::String(s)) => match checks::identifier(s) {
            Ok("bundle") => {}
            Ok(t) => cx.error(
                "id-type-mismatch",
                root.key("id"),
                format!("a bundle id must start with 'bundle--', not '{t}--'"),
            ),
            Err(e) => cx.error("invalid-identifier", root.key("id"), e),
        },
        Some(v) => cx.error(
            "invalid-property-type",
            root.key("id"),
            format!("id must be a string, not {}", json_type(v)),
        ),
        None => cx.error(
            "missing-property",
            root.key("id"),
            "a bundle needs 'id'".into(),
        ),
    }
    let Some(objects) = m.get("objects") else {
        return Vec::new();
    };
    let Value::Array(objects) = objects else {
        cx.error(
            "invalid-property-type",
            root.key("objects"),
            "objects must be an array".into(),
        );
        return Vec::new();
    };
    if objects.is_empty() {
        cx.error(
            "empty-list",
            root.key("objects"),
            "objects must not be empty".into(),
        );
    }
    let objs_ptr = root.key("objects");
    // Versions seen so far, to find duplicates while each object is still in cache
    // (a second pass over a large bundle costs a cache miss per object) and in
    // expected linear time.
    let mut versions: HashSet<(&str, Option<&str>)> = HashSet::with_capacity(objects.len());
    let mut keys = Vec::with_capacity(objects.len());
    levels.reserve(objects.len());
    for (i, obj) in objects.iter().enumerate() {
        keys.push(object_at(obj, objs_ptr.idx(i), report));
        let fields = Fields::of(obj);
        duplicate(&fields, i, &mut versions, objs_ptr, report);
        levels.push(match fields.type_name {
            Some("marking-definition") => own_level(obj),
            _ => level_of_markings(fields.marking_refs, fields.granular_markings),
        });
    }
    keys
}

/// The properties of an object that the bundle-level checks read (duplicate versions,
/// TLP level), found in one pass over its members.
///
/// A map search compares the name with member names one by one, for each of the five;
/// one walk compares each member's name only with those of the same length. This runs
/// for every object published or received.
#[derive(Default)]
struct Fields<'a> {
    id: Option<&'a str>,
    modified: Option<&'a str>,
    type_name: Option<&'a str>,
    marking_refs: Option<&'a Value>,
    granular_markings: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    fn of(obj: &'a Value) -> Fields<'a> {
        let mut f = Fields::default();
        if let Value::Object(m) = obj {
            for (k, v) in m {
                match k.as_str() {
                    "id" => f.id = v.as_str(),
                    "modified" => f.modified = v.as_str(),
                    "type" => f.type_name = v.as_str(),
                    "object_marking_refs" => f.marking_refs = Some(v),
                    "granular_markings" => f.granular_markings = Some(v),
                    _ => {}
                }
            }
        }
        f
    }
}

/// Warns about an object whose id and version already appeared earlier in the bundle
/// (at the later occurrence, so the first copy stays unflagged).
fn duplicate<'a>(
    fields: &Fields<'a>,
    i: usize,
    versions: &mut HashSet<(&'a str, Option<&'a str>)>,
    at: Ptr,
    report: &mut Report,
) {
    let Some(id) = fields.id else {
        return;
    };
    let modified = fields.modified;
    if !versions.insert((id, modified)) {
        let mut cx = Ctx {
            report,
            id: Some(id),
            pattern_keys: None,
        };
        cx.warn(
            "duplicate-object",
            at.idx(i),
            format!("object {id} appears twice with the same version"),
        );
    }
}

/// Validates one object at `base`; returns the observable keys of its STIX pattern
/// when it has one that parsed.
pub(crate) fn object(v: &Value, base: &str, report: &mut Report) -> Option<Vec<ObservableKey>> {
    object_at(v, Ptr::root(base), report)
}

/// Validates one object at `at` (the pointer is rendered only for a finding).
fn object_at(v: &Value, at: Ptr, report: &mut Report) -> Option<Vec<ObservableKey>> {
    let Value::Object(m) = v else {
        let mut cx = Ctx {
            report,
            id: None,
            pattern_keys: None,
        };
        cx.error(
            "invalid-property-type",
            at,
            format!("a STIX object must be a JSON object, not {}", json_type(v)),
        );
        return None;
    };
    let id = m.get("id").and_then(Value::as_str);
    let mut cx = Ctx {
        report,
        id,
        pattern_keys: None,
    };
    let ty = match m.get("type") {
        Some(Value::String(t)) => {
            if let Some(why) = checks::type_name_error(t) {
                cx.error("invalid-type-name", at.key("type"), format!("'{t}': {why}"));
            } else if t == "action" {
                cx.error(
                    "reserved-type",
                    at.key("type"),
                    "'action' is a reserved type".into(),
                );
            }
            Some(t.as_str())
        }
        Some(v) => {
            cx.error(
                "invalid-property-type",
                at.key("type"),
                format!("type must be a string, not {}", json_type(v)),
            );
            None
        }
        None => {
            cx.error(
                "missing-property",
                at.key("type"),
                "every object needs 'type'".into(),
            );
            None
        }
    };
    match m.get("id") {
        Some(Value::String(s)) => match checks::identifier(s) {
            Ok(p) => {
                if let Some(t) = ty
                    && p != t
                {
                    cx.error(
                        "id-type-mismatch",
                        at.key("id"),
                        format!("the id prefix '{p}' does not match the type '{t}'"),
                    );
                }
            }
            Err(e) => cx.error("invalid-identifier", at.key("id"), e),
        },
        Some(v) => cx.error(
            "invalid-property-type",
            at.key("id"),
            format!("id must be a string, not {}", json_type(v)),
        ),
        None => cx.error(
            "missing-property",
            at.key("id"),
            "every object needs 'id'".into(),
        ),
    }
    let ty = ty?;
    match rule_for(ty) {
        Some(rule) => known(&mut cx, at, m, rule),
        None => custom_object(&mut cx, at, ty, m),
    }
    cx.pattern_keys
}

/// Most property-table entries (common ones included) any type has; [`known`] keeps
/// one slot per entry on the stack. A test checks every table fits.
const MAX_PROPS: usize = 48;

/// Where property `k` is in the table `common` followed by `props`.
///
/// Each table is searched as a plain slice (a chained iterator was most of this
/// function's time), and names of equal length rarely share a first byte, so
/// comparing those two first skips almost every string comparison.
fn table_index(common: &[P], props: &[P], k: &str) -> Option<usize> {
    let kb = k.as_bytes();
    let find = |table: &[P]| table.iter().position(|p| same_name(p.n.as_bytes(), kb));
    find(common).or_else(|| find(props).map(|i| common.len() + i))
}

/// Whether two property names are equal: length and first byte first, then the rest,
/// compared in place (names are short: a library call costs more than the bytes).
fn same_name(n: &[u8], k: &[u8]) -> bool {
    n.len() == k.len() && n.first() == k.first() && n.iter().zip(k).all(|(a, b)| a == b)
}

fn known(cx: &mut Ctx, at: Ptr, m: &Obj, rule: &TypeRule) {
    let common = match rule.class {
        Class::Sdo | Class::Sro | Class::Meta => COMMON,
        Class::Sco => SCO_COMMON,
        Class::Marking => MARKING_COMMON,
    };
    // One pass over the object files each property under its table entry: this runs
    // for every ingested object, and one map lookup per table entry (most of them
    // absent) cost more than the checks themselves.
    let mut slots: [Option<&Value>; MAX_PROPS] = [None; MAX_PROPS];
    let mut customs = 0usize;
    for (k, v) in m {
        match table_index(common, rule.props, k) {
            Some(i) => {
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(v);
                }
            }
            None if k == "type" || k == "id" => {}
            None => customs += 1,
        }
    }
    for (i, p) in common.iter().chain(rule.props).enumerate() {
        let found = if i < MAX_PROPS { slots[i] } else { m.get(p.n) };
        match found {
            Some(v) => value(cx, at.key(p.n), p.n, v, p.k, m),
            None if p.req => cx.error(
                "missing-property",
                at.key(p.n),
                format!("required property '{}' is missing", p.n),
            ),
            None => {}
        }
    }
    if customs > 0 {
        for (k, v) in m {
            if k == "type" || k == "id" || table_index(common, rule.props, k).is_some() {
                continue;
            }
            custom_property(cx, at, k, v);
        }
    }
    if rule.class != Class::Sco && rule.class != Class::Marking {
        order(cx, at, m, "created", "modified", false);
    }
    (rule.extra)(cx, at, m);
}

fn custom_property(cx: &mut Ctx, at: Ptr, k: &str, v: &Value) {
    let here = at.key(k);
    if RESERVED.contains(&k) {
        cx.error(
            "reserved-property",
            here,
            format!("'{k}' is reserved and must not be used"),
        );
        return;
    }
    if let Some(why) = checks::property_name_error(k) {
        cx.error("invalid-property-name", here, format!("'{k}': {why}"));
    } else if !k.starts_with("x_") {
        cx.warn(
            "custom-property-prefix",
            here,
            format!("custom property '{k}' should start with 'x_'"),
        );
    }
    match v {
        Value::Null => cx.error("null-value", here, format!("'{k}' must not be null")),
        Value::Array(a) if a.is_empty() => cx.error(
            "empty-list",
            here,
            format!("'{k}' must not be an empty list"),
        ),
        _ => {}
    }
}

/// Objects of types the specification does not define: custom objects.
fn custom_object(cx: &mut Ctx, at: Ptr, ty: &str, m: &Obj) {
    if !ty.starts_with("x-") {
        cx.warn(
            "custom-object-prefix",
            at.key("type"),
            format!("custom object type '{ty}' should start with 'x-'"),
        );
    }
    for (k, v) in m {
        let here = at.key(k);
        match k.as_str() {
            "type" | "id" => {}
            "spec_version" => value(cx, here, k, v, K::SpecVersion, m),
            "created" | "modified" => value(cx, here, k, v, K::TsMs, m),
            "created_by_ref" => value(cx, here, k, v, K::Ref(IDENTITY), m),
            "object_marking_refs" => value(cx, here, k, v, K::Refs(MARKING), m),
            "granular_markings" => value(cx, here, k, v, K::Granular, m),
            "external_references" => value(cx, here, k, v, K::ExtRefs, m),
            "confidence" => value(cx, here, k, v, K::Int(0, 100), m),
            "revoked" | "defanged" => value(cx, here, k, v, K::Bool, m),
            "extensions" => value(cx, here, k, v, K::Extensions, m),
            "lang" => value(cx, here, k, v, K::Lang, m),
            _ => {
                if let Some(why) = checks::property_name_error(k) {
                    cx.error("invalid-property-name", here, format!("'{k}': {why}"));
                }
                if RESERVED.contains(&k.as_str()) {
                    cx.error("reserved-property", here, format!("'{k}' is reserved"));
                }
                if v.is_null() {
                    cx.error("null-value", here, format!("'{k}' must not be null"));
                }
            }
        }
    }
    if m.contains_key("created") || m.contains_key("modified") {
        for req in ["spec_version", "created", "modified"] {
            if !m.contains_key(req) {
                cx.error(
                    "missing-property",
                    at.key(req),
                    format!("custom object is missing required property '{req}'"),
                );
            }
        }
    }
    order(cx, at, m, "created", "modified", false);
}

fn str_of<'v>(cx: &mut Ctx, at: Ptr, name: &str, v: &'v Value) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        _ => {
            cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be a string, not {}", json_type(v)),
            );
            None
        }
    }
}

fn list_of<'v>(cx: &mut Ctx, at: Ptr, name: &str, v: &'v Value) -> Option<&'v [Value]> {
    match v {
        Value::Array(a) if a.is_empty() => {
            cx.error(
                "empty-list",
                at,
                format!("'{name}' must not be an empty list"),
            );
            None
        }
        Value::Array(a) => Some(a),
        _ => {
            cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be a list, not {}", json_type(v)),
            );
            None
        }
    }
}

fn reference(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, targets: &[&str]) {
    let Some(s) = str_of(cx, at, name, v) else {
        return;
    };
    match checks::identifier(s) {
        Ok(t) if !target_ok(t, targets) => cx.error(
            "invalid-reference-type",
            at,
            format!(
                "'{name}' must refer to {}, not a {t}",
                describe_targets(targets)
            ),
        ),
        Ok(_) => {}
        Err(e) => cx.error("invalid-identifier", at, e),
    }
}

fn vocab(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, vocab_name: &str, values: &[&str]) {
    if let Some(s) = str_of(cx, at, name, v)
        && !values.contains(&s)
    {
        cx.warn(
            "vocabulary-value",
            at,
            format!("'{s}' is not in the {vocab_name} vocabulary"),
        );
    }
}

fn closed(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, values: &[&str]) {
    if let Some(s) = str_of(cx, at, name, v)
        && !values.contains(&s)
    {
        cx.error(
            "invalid-enum-value",
            at,
            format!(
                "'{s}' is not allowed for '{name}'; use one of {}",
                values.join(", ")
            ),
        );
    }
}

/// Checks one property value against its kind.
fn value(cx: &mut Ctx, at: Ptr, name: &str, v: &Value, k: K, obj: &Obj) {
    match k {
        K::Any => {}
        K::Str => {
            str_of(cx, at, name, v);
        }
        K::Bool => {
            if !v.is_boolean() {
                cx.error(
                    "invalid-property-type",
                    at,
                    format!("'{name}' must be a boolean, not {}", json_type(v)),
                );
            }
        }
        K::Int(lo, hi) => match v.as_i64() {
            Some(n) if n < lo || n > hi => cx.error(
                "out-of-range",
                at,
                format!("'{name}' must be between {lo} and {hi}, got {n}"),
            ),
            Some(_) => {}
            None => {
                if v.as_u64().is_some() {
                    cx.error("out-of-range", at, format!("'{name}' is too large"));
                } else {
                    cx.error(
                        "invalid-property-type",
                        at,
                        format!("'{name}' must be an integer, not {v}"),
                    );
                }
            }
        },
        K::Num(lo, hi) => match v.as_f64() {
            Some(n) if n < lo || n > hi => cx.error(
                "out-of-range",
                at,
                format!("'{name}' must be between {lo} and {hi}, got {n}"),
            ),
            Some(_) => {}
            None => cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be a number, not {}", json_type(v)),
            ),
        },
        K::Ts | K::TsMs => {
            if let Some(s) = str_of(cx, at, name, v)
                && let Err(e) = checks::timestamp(s, matches!(k, K::TsMs))
            {
                cx.error("invalid-timestamp", at, format!("'{name}': {e}"));
            }
        }
        K::Ref(t) => reference(cx, at, name, v, t),
        K::Refs(t) => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    reference(cx, at.idx(i), name, e, t);
                }
            }
        }
        K::Strs => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    str_of(cx, at.idx(i), name, e);
                }
            }
        }
        K::Open(vn, vals) => vocab(cx, at, name, v, vn, vals),
        K::OpenList(vn, vals) => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    vocab(cx, at.idx(i), name, e, vn, vals);
                }
            }
        }
        K::Closed(vals) => closed(cx, at, name, v, vals),
        K::ClosedList(vals) => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    closed(cx, at.idx(i), name, e, vals);
                }
            }
        }
        K::Hashes => checks::hashes(cx, at, v),
        K::Phases => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    kill_chain_phase(cx, at.idx(i), e);
                }
            }
        }
        K::Dict => match v {
            Value::Object(d) if d.is_empty() => cx.error(
                "empty-dictionary",
                at,
                format!("'{name}' must not be empty"),
            ),
            Value::Object(d) => {
                for k in d.keys() {
                    if let Some(why) = checks::dict_key_error(k) {
                        cx.warn("dictionary-key-format", at.key(k), format!("'{k}': {why}"));
                    }
                }
            }
            _ => cx.error(
                "invalid-property-type",
                at,
                format!("'{name}' must be an object, not {}", json_type(v)),
            ),
        },
        K::List => {
            list_of(cx, at, name, v);
        }
        K::Hex => {
            if let Some(s) = str_of(cx, at, name, v)
                && (s.len() % 2 != 0 || !s.bytes().all(|c| c.is_ascii_hexdigit()))
            {
                cx.error("invalid-hex", at, format!("'{name}' must be hexadecimal"));
            }
        }
        K::Binary => {
            if let Some(s) = str_of(cx, at, name, v) {
                use base64::Engine;
                if base64::engine::general_purpose::STANDARD.decode(s).is_err() {
                    cx.error("invalid-binary", at, format!("'{name}' must be base64"));
                }
            }
        }
        K::Lang => {
            if let Some(s) = str_of(cx, at, name, v)
                && !checks::language_tag_ok(s)
            {
                cx.error(
                    "invalid-language",
                    at,
                    format!("'{s}' is not an RFC 5646 language tag"),
                );
            }
        }
        K::SpecVersion => {
            if let Some(s) = str_of(cx, at, name, v)
                && s != "2.1"
            {
                cx.error(
                    "invalid-spec-version",
                    at,
                    format!("spec_version must be '2.1', not '{s}'"),
                );
            }
        }
        K::ExtRefs => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    external_reference(cx, at.idx(i), e);
                }
            }
        }
        K::Granular => {
            if let Some(a) = list_of(cx, at, name, v) {
                for (i, e) in a.iter().enumerate() {
                    granular_marking(cx, at.idx(i), e, obj);
                }
            }
        }
        K::Extensions => extensions(cx, at, v),
    }
}

fn kill_chain_phase(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            "a kill chain phase must be an object".into(),
        );
        return;
    };
    for p in ["kill_chain_name", "phase_name"] {
        match m.get(p) {
            None => cx.error(
                "missing-property",
                at.key(p),
                format!("kill chain phase needs '{p}'"),
            ),
            Some(v) => {
                if let Some(s) = str_of(cx, at.key(p), p, v)
                    && !s
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                {
                    cx.warn(
                        "kill-chain-name-format",
                        at.key(p),
                        format!("'{s}' should be all lowercase with hyphens"),
                    );
                }
            }
        }
    }
}

fn external_reference(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            "an external reference must be an object".into(),
        );
        return;
    };
    let source = match m.get("source_name") {
        None => {
            cx.error(
                "missing-property",
                at.key("source_name"),
                "external reference needs 'source_name'".into(),
            );
            None
        }
        Some(v) => str_of(cx, at.key("source_name"), "source_name", v),
    };
    for p in ["description", "url", "external_id"] {
        if let Some(v) = m.get(p) {
            str_of(cx, at.key(p), p, v);
        }
    }
    if let Some(h) = m.get("hashes") {
        checks::hashes(cx, at.key("hashes"), h);
    }
    if !(m.contains_key("description") || m.contains_key("url") || m.contains_key("external_id")) {
        cx.error(
            "external-reference-incomplete",
            at,
            "an external reference needs at least one of description, url, external_id".into(),
        );
    }
    let ext_id = m.get("external_id").and_then(Value::as_str);
    match (source, ext_id) {
        (Some("cve"), Some(id)) if !cve_ok(id) => cx.error(
            "invalid-external-id",
            at.key("external_id"),
            format!("'{id}' is not a CVE id (CVE-YYYY-NNNN)"),
        ),
        (Some("capec"), Some(id)) if !capec_ok(id) => cx.error(
            "invalid-external-id",
            at.key("external_id"),
            format!("'{id}' is not a CAPEC id (CAPEC-N)"),
        ),
        (Some(s @ ("cve" | "capec")), None) => cx.error(
            "missing-property",
            at.key("external_id"),
            format!("a '{s}' external reference needs 'external_id'"),
        ),
        _ => {}
    }
}

fn cve_ok(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|c| c.is_ascii_digit())
        && num.len() >= 4
        && num.bytes().all(|c| c.is_ascii_digit())
        && (num.len() == 4 || !num.starts_with('0'))
}

fn capec_ok(id: &str) -> bool {
    id.strip_prefix("CAPEC-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

fn granular_marking(cx: &mut Ctx, at: Ptr, v: &Value, obj: &Obj) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            "a granular marking must be an object".into(),
        );
        return;
    };
    match (m.get("marking_ref"), m.get("lang")) {
        (Some(r), None) => reference(cx, at.key("marking_ref"), "marking_ref", r, MARKING),
        (None, Some(l)) => value(cx, at.key("lang"), "lang", l, K::Lang, obj),
        (Some(_), Some(_)) => cx.error(
            "granular-marking-ambiguous",
            at,
            "a granular marking has either marking_ref or lang, not both".into(),
        ),
        (None, None) => cx.error(
            "missing-property",
            at.key("marking_ref"),
            "a granular marking needs marking_ref or lang".into(),
        ),
    }
    let Some(sel) = m.get("selectors") else {
        cx.error(
            "missing-property",
            at.key("selectors"),
            "a granular marking needs selectors".into(),
        );
        return;
    };
    let sp = at.key("selectors");
    if let Some(a) = list_of(cx, sp, "selectors", sel) {
        for (i, s) in a.iter().enumerate() {
            if let Some(s) = str_of(cx, sp.idx(i), "selectors", s)
                && !selector_resolves(obj, s)
            {
                cx.error(
                    "invalid-selector",
                    sp.idx(i),
                    format!("selector '{s}' does not select a property of this object"),
                );
            }
        }
    }
}

/// Whether a granular-marking selector (`a.b.[0].c`) names a part of the object.
fn selector_resolves(obj: &Obj, sel: &str) -> bool {
    let mut parts = sel.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut cur) = obj.get(first) else {
        return false;
    };
    for part in parts {
        let next = if let Some(ix) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            match (ix.parse::<usize>(), cur) {
                (Ok(i), Value::Array(a)) => a.get(i),
                _ => None,
            }
        } else {
            cur.as_object().and_then(|m| m.get(part))
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    true
}

fn extensions(cx: &mut Ctx, at: Ptr, v: &Value) {
    let Value::Object(m) = v else {
        cx.error(
            "invalid-property-type",
            at,
            format!("extensions must be an object, not {}", json_type(v)),
        );
        return;
    };
    if m.is_empty() {
        cx.error(
            "empty-dictionary",
            at,
            "extensions must not be empty".into(),
        );
    }
    for (k, e) in m {
        let here = at.key(k);
        if k.starts_with("extension-definition--") {
            match checks::identifier(k) {
                Ok(_) => {}
                Err(e) => cx.error("invalid-extension-key", here, e),
            }
            match e {
                Value::Object(em) => match em.get("extension_type") {
                    Some(t) => closed(
                        cx,
                        here.key("extension_type"),
                        "extension_type",
                        t,
                        EXTENSION_TYPES,
                    ),
                    None => cx.error(
                        "missing-property",
                        here.key("extension_type"),
                        "an extension-definition extension needs 'extension_type'".into(),
                    ),
                },
                _ => cx.error(
                    "invalid-property-type",
                    here,
                    "an extension must be an object".into(),
                ),
            }
        } else {
            let ok = k
                .strip_suffix("-ext")
                .is_some_and(|n| checks::type_name_error(&format!("{n}-ext")).is_none());
            if !ok {
                cx.error(
                    "invalid-extension-key",
                    here,
                    format!("'{k}' is neither an extension-definition id nor a '<name>-ext' name"),
                );
            }
            match e {
                Value::Object(em) if em.is_empty() => cx.error(
                    "empty-dictionary",
                    here,
                    "an extension must not be empty".into(),
                ),
                Value::Object(_) => {}
                _ => cx.error(
                    "invalid-property-type",
                    here,
                    "an extension must be an object".into(),
                ),
            }
        }
    }
}

fn ts_of(m: &Obj, k: &str) -> Option<Timestamp> {
    m.get(k)
        .and_then(Value::as_str)
        .and_then(|s| Timestamp::parse(s).ok())
}

/// `later` must be at or after `earlier` (strictly after when `strict`); compared as
/// instants, not as text.
fn order(cx: &mut Ctx, at: Ptr, m: &Obj, earlier: &str, later: &str, strict: bool) {
    // `later` is the one usually absent (valid_until, last_seen), so look at it first;
    // identical text is the same instant (or unparseable, reported elsewhere), which
    // saves parsing `created` and `modified` a second time on nearly every object.
    let Some(later_v) = m.get(later) else {
        return;
    };
    if !strict && m.get(earlier) == Some(later_v) {
        return;
    }
    let (Some(a), Some(b)) = (ts_of(m, earlier), ts_of(m, later)) else {
        return;
    };
    let bad = if strict { b <= a } else { b < a };
    if bad {
        cx.error(
            "timestamp-order",
            at.key(later),
            format!(
                "'{later}' must be {} '{earlier}'",
                if strict {
                    "later than"
                } else {
                    "later than or equal to"
                }
            ),
        );
    }
}

fn seen(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "first_seen", "last_seen", false);
}

fn indicator(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "valid_from", "valid_until", true);
    if m.get("pattern_type").and_then(Value::as_str) == Some("stix")
        && let Some(p) = m.get("pattern").and_then(Value::as_str)
    {
        match check_stix_pattern(p) {
            Ok(pattern) => cx.pattern_keys = Some(keys_from_pattern(&pattern)),
            Err((offset, msg)) => cx.error(
                "invalid-pattern",
                at.key("pattern"),
                format!("pattern does not parse at character {offset}: {msg}"),
            ),
        }
    }
}

fn location(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let lat = m.contains_key("latitude");
    let lon = m.contains_key("longitude");
    if lat != lon {
        cx.error(
            "dependent-property",
            at.key(if lat { "longitude" } else { "latitude" }),
            "latitude and longitude must be given together".into(),
        );
    }
    if m.contains_key("precision") && !(lat && lon) {
        cx.error(
            "dependent-property",
            at.key("precision"),
            "precision requires latitude and longitude".into(),
        );
    }
    if !(m.contains_key("region") || m.contains_key("country") || (lat && lon)) {
        cx.error(
            "missing-property",
            at,
            "a location needs region, country, or latitude and longitude".into(),
        );
    }
}

fn malware(cx: &mut Ctx, at: Ptr, m: &Obj) {
    seen(cx, at, m);
    if m.get("is_family") == Some(&Value::Bool(true)) && !m.contains_key("name") {
        cx.error(
            "missing-property",
            at.key("name"),
            "a malware family (is_family: true) needs a name".into(),
        );
    }
}

fn malware_analysis(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !(m.contains_key("result") || m.contains_key("analysis_sco_refs")) {
        cx.error(
            "missing-property",
            at,
            "a malware-analysis needs result or analysis_sco_refs".into(),
        );
    }
    order(cx, at, m, "analysis_started", "analysis_ended", false);
}

fn observed_data(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "first_observed", "last_observed", false);
    match (m.contains_key("objects"), m.contains_key("object_refs")) {
        (true, true) => cx.error(
            "mutually-exclusive",
            at.key("objects"),
            "objects and object_refs must not both be present".into(),
        ),
        (false, false) => cx.error(
            "missing-property",
            at.key("object_refs"),
            "observed-data needs object_refs (or the deprecated objects)".into(),
        ),
        (true, false) => cx.warn(
            "deprecated-property",
            at.key("objects"),
            "'objects' is deprecated; use object_refs".into(),
        ),
        _ => {}
    }
}

fn relationship(cx: &mut Ctx, at: Ptr, m: &Obj) {
    order(cx, at, m, "start_time", "stop_time", true);
    if let Some(t) = m.get("relationship_type").and_then(Value::as_str)
        && (t.is_empty()
            || !t
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'))
    {
        cx.error(
            "invalid-relationship-type",
            at.key("relationship_type"),
            format!("'{t}' may only contain a-z, 0-9 and '-'"),
        );
    }
}

fn language_content(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let Some(Value::Object(c)) = m.get("contents") else {
        return;
    };
    let cp = at.key("contents");
    for (lang, tr) in c {
        if !checks::language_tag_ok(lang) {
            cx.error(
                "invalid-language",
                cp.key(lang),
                format!("'{lang}' is not an RFC 5646 language tag"),
            );
        }
        match tr {
            Value::Object(t) => {
                for k in t.keys() {
                    if let Some(why) = checks::property_name_error(k) {
                        cx.error(
                            "invalid-property-name",
                            cp.key(lang).key(k),
                            format!("'{k}': {why}"),
                        );
                    }
                }
            }
            _ => cx.error(
                "invalid-property-type",
                cp.key(lang),
                "each language's contents must be an object".into(),
            ),
        }
    }
}

fn extension_definition(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !m.contains_key("created_by_ref") {
        cx.error(
            "missing-property",
            at.key("created_by_ref"),
            "an extension-definition needs created_by_ref".into(),
        );
    }
}

/// TLP 1.0 levels and the ids the specification fixes for them.
const TLP1: &[(&str, &str)] = &[
    (
        "white",
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    ),
    (
        "green",
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    ),
    (
        "amber",
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    ),
    (
        "red",
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
    ),
];

/// TLP 2.0 levels and their fixed ids.
const TLP2: &[(&str, &str)] = &[
    (
        "clear",
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    ),
    (
        "green",
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    ),
    (
        "amber",
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    ),
    (
        "amber+strict",
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    ),
    (
        "red",
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    ),
];

const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

fn marking_definition(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let id = m.get("id").and_then(Value::as_str).unwrap_or("");
    if let Some(Value::Array(refs)) = m.get("object_marking_refs")
        && refs.iter().any(|r| r.as_str() == Some(id))
    {
        cx.error(
            "circular-marking",
            at.key("object_marking_refs"),
            "a marking definition must not mark itself".into(),
        );
    }
    let dt = m.get("definition_type").and_then(Value::as_str);
    let has_ext = m.contains_key("extensions");
    match (
        dt.is_some() || m.contains_key("definition_type"),
        m.get("definition"),
    ) {
        (true, None) => cx.error(
            "missing-property",
            at.key("definition"),
            "definition_type requires definition".into(),
        ),
        (false, Some(_)) => cx.error(
            "missing-property",
            at.key("definition_type"),
            "definition requires definition_type".into(),
        ),
        (false, None) if !has_ext => cx.error(
            "missing-property",
            at.key("definition_type"),
            "a marking definition needs definition_type and definition, or extensions".into(),
        ),
        _ => {}
    }
    let def = m.get("definition");
    let dp = at.key("definition");
    match dt {
        Some("tlp") => {
            let level = def.and_then(|d| d.get("tlp")).and_then(Value::as_str);
            match level.and_then(|l| TLP1.iter().find(|(n, _)| *n == l)) {
                None => cx.error(
                    "invalid-tlp",
                    dp.key("tlp"),
                    "a TLP definition needs tlp: white, green, amber or red".into(),
                ),
                Some((l, fixed)) if *fixed != id => cx.error(
                    "tlp-id-mismatch",
                    at.key("id"),
                    format!(
                        "TLP:{} must use the predefined id {fixed}",
                        l.to_uppercase()
                    ),
                ),
                Some(_) => {}
            }
        }
        Some("statement")
            if def
                .and_then(|d| d.get("statement"))
                .and_then(Value::as_str)
                .is_none() =>
        {
            cx.error(
                "missing-property",
                dp.key("statement"),
                "a statement marking needs definition.statement (a string)".into(),
            );
        }
        _ => {}
    }
    if let Some(ext) = m.get("extensions").and_then(|e| e.get(TLP2_EXTENSION)) {
        let exts = at.key("extensions");
        let ep = exts.key(TLP2_EXTENSION);
        let level = ext.get("tlp_2_0").and_then(Value::as_str);
        match level.and_then(|l| TLP2.iter().find(|(n, _)| *n == l)) {
            None => cx.error(
                "invalid-tlp",
                ep.key("tlp_2_0"),
                "the TLP 2.0 extension needs tlp_2_0: clear, green, amber, amber+strict or red"
                    .into(),
            ),
            Some((l, fixed)) if *fixed != id => cx.warn(
                "tlp-id-mismatch",
                at.key("id"),
                format!(
                    "TLP:{} should use the predefined id {fixed}",
                    l.to_uppercase()
                ),
            ),
            Some(_) => {}
        }
    }
}

fn artifact(cx: &mut Ctx, at: Ptr, m: &Obj) {
    match (m.contains_key("payload_bin"), m.contains_key("url")) {
        (true, true) => cx.error(
            "mutually-exclusive",
            at.key("url"),
            "payload_bin and url must not both be present".into(),
        ),
        (false, true) if !m.contains_key("hashes") => cx.error(
            "missing-property",
            at.key("hashes"),
            "an artifact with url needs hashes".into(),
        ),
        _ => {}
    }
    if m.contains_key("decryption_key") && !m.contains_key("encryption_algorithm") {
        cx.error(
            "dependent-property",
            at.key("decryption_key"),
            "decryption_key requires encryption_algorithm".into(),
        );
    }
    sco_id(cx, at, m);
}

fn email_message(cx: &mut Ctx, at: Ptr, m: &Obj) {
    match m.get("is_multipart") {
        Some(Value::Bool(true)) if m.contains_key("body") => cx.error(
            "mutually-exclusive",
            at.key("body"),
            "a multipart message uses body_multipart, not body".into(),
        ),
        Some(Value::Bool(false)) if m.contains_key("body_multipart") => cx.error(
            "mutually-exclusive",
            at.key("body_multipart"),
            "a non-multipart message uses body, not body_multipart".into(),
        ),
        _ => {}
    }
    if let Some(Value::Array(parts)) = m.get("body_multipart") {
        let bp = at.key("body_multipart");
        for (i, p) in parts.iter().enumerate() {
            match p {
                Value::Object(pm) => {
                    if pm.contains_key("body") && pm.contains_key("body_raw_ref") {
                        cx.error(
                            "mutually-exclusive",
                            bp.idx(i),
                            "a MIME part has body or body_raw_ref, not both".into(),
                        );
                    }
                    if let Some(r) = pm.get("body_raw_ref") {
                        reference(
                            cx,
                            bp.idx(i).key("body_raw_ref"),
                            "body_raw_ref",
                            r,
                            FILE_ARTIFACT,
                        );
                    }
                }
                _ => cx.error(
                    "invalid-property-type",
                    bp.idx(i),
                    "a MIME part must be an object".into(),
                ),
            }
        }
    }
    sco_id(cx, at, m);
}

fn file(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !(m.contains_key("hashes") || m.contains_key("name")) {
        cx.error("missing-property", at, "a file needs hashes or name".into());
    }
    sco_id(cx, at, m);
}

fn network_traffic(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if !(m.contains_key("src_ref") || m.contains_key("dst_ref")) {
        cx.error(
            "missing-property",
            at,
            "network-traffic needs src_ref or dst_ref".into(),
        );
    }
    if m.get("is_active") == Some(&Value::Bool(true)) && m.contains_key("end") {
        cx.error(
            "mutually-exclusive",
            at.key("end"),
            "an active flow (is_active: true) must not have end".into(),
        );
    }
    order(cx, at, m, "start", "end", false);
    sco_id(cx, at, m);
}

fn process(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if let Some(id) = m.get("id").and_then(Value::as_str)
        && checks::identifier(id).is_ok()
        && checks::uuid_version(id) != Some(4)
    {
        cx.error(
            "sco-id-not-v4",
            at.key("id"),
            "a process id must be a UUIDv4".into(),
        );
    }
    if m.len() <= 2
        || m.keys()
            .all(|k| matches!(k.as_str(), "type" | "id" | "spec_version"))
    {
        cx.error(
            "missing-property",
            at,
            "a process needs at least one property".into(),
        );
    }
}

fn registry_key(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if let Some(Value::Array(vals)) = m.get("values") {
        let vp = at.key("values");
        for (i, v) in vals.iter().enumerate() {
            match v {
                Value::Object(vm) => {
                    let item = vp.idx(i);
                    for (k, x) in vm {
                        let here = item.key(k);
                        match k.as_str() {
                            "name" | "data" => {
                                str_of(cx, here, k, x);
                            }
                            "data_type" => closed(cx, here, k, x, REG_DATATYPES),
                            _ => {}
                        }
                    }
                }
                _ => cx.error(
                    "invalid-property-type",
                    vp.idx(i),
                    "a registry value must be an object".into(),
                ),
            }
        }
    }
    sco_id(cx, at, m);
}

fn x509(cx: &mut Ctx, at: Ptr, m: &Obj) {
    if m.keys().all(|k| {
        matches!(
            k.as_str(),
            "type"
                | "id"
                | "spec_version"
                | "object_marking_refs"
                | "granular_markings"
                | "defanged"
                | "extensions"
        )
    }) {
        cx.error(
            "missing-property",
            at,
            "an x509-certificate needs at least one certificate property".into(),
        );
    }
    order(
        cx,
        at,
        m,
        "validity_not_before",
        "validity_not_after",
        false,
    );
    sco_id(cx, at, m);
}

/// The namespace STIX 2.1 uses for deterministic SCO ids (UUIDv5).
const SCO_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7,
]);

fn id_contributing(ty: &str) -> &'static [&'static str] {
    match ty {
        "artifact" => &["hashes", "payload_bin"],
        "autonomous-system" => &["number"],
        "directory" => &["path"],
        "domain-name" | "email-addr" | "ipv4-addr" | "ipv6-addr" | "mac-addr" | "url" => &["value"],
        "email-message" => &["from_ref", "subject", "body"],
        "file" => &["hashes", "name", "extensions", "parent_directory_ref"],
        "mutex" => &["name"],
        "network-traffic" => &[
            "start",
            "end",
            "src_ref",
            "dst_ref",
            "src_port",
            "dst_port",
            "protocols",
            "extensions",
        ],
        "software" => &["name", "cpe", "swid", "vendor", "version"],
        "user-account" => &["account_type", "user_id", "account_login"],
        "windows-registry-key" => &["key", "values"],
        "x509-certificate" => &["hashes", "serial_number"],
        _ => &[],
    }
}

fn uuid5_of(map: &Obj) -> Option<String> {
    let bytes = serde_json_canonicalizer::to_vec(map).ok()?;
    Some(uuid::Uuid::new_v5(&SCO_NAMESPACE, &bytes).to_string())
}

/// Warns when an SCO's id is not the deterministic UUIDv5 of its id-contributing
/// properties (so two producers reporting the same observable would use different
/// ids), and errors when an SCO without any of them does not use a UUIDv4.
fn sco_id(cx: &mut Ctx, at: Ptr, m: &Obj) {
    let (Some(ty), Some(id)) = (
        m.get("type").and_then(Value::as_str),
        m.get("id").and_then(Value::as_str),
    ) else {
        return;
    };
    if checks::identifier(id).is_err() {
        return;
    }
    let Some((_, uuid)) = id.split_once("--") else {
        return;
    };
    let props = id_contributing(ty);
    let mut contrib = Obj::new();
    for p in props {
        if let Some(v) = m.get(*p) {
            contrib.insert((*p).to_string(), v.clone());
        }
    }
    if contrib.is_empty() {
        if checks::uuid_version(id) != Some(4) {
            cx.error(
                "sco-id-not-v4",
                at.key("id"),
                "an SCO without id-contributing properties must use a UUIDv4".into(),
            );
        }
        return;
    }
    let uuid = uuid.to_ascii_lowercase();
    let mut candidates = vec![uuid5_of(&contrib)];
    // Producers differ on `hashes`: the specification's examples use one preferred
    // hash, so accept the id made from any single hash too.
    if let Some(Value::Object(h)) = contrib.get("hashes").cloned() {
        for (alg, d) in h {
            let mut one = contrib.clone();
            let mut hm = Obj::new();
            hm.insert(alg, d);
            one.insert("hashes".into(), Value::Object(hm));
            candidates.push(uuid5_of(&one));
        }
    }
    if !candidates.iter().flatten().any(|c| *c == uuid) {
        let expected = candidates.first().cloned().flatten().unwrap_or_default();
        cx.warn(
            "sco-id-not-deterministic",
            at.key("id"),
            format!("the id of this {ty} should be {ty}--{expected} (UUIDv5 of its id-contributing properties)"),
        );
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    /// `known` files each property under one table slot: every table must fit the
    /// slots and name each property once.
    #[test]
    fn every_property_table_fits_and_has_unique_names() {
        let types = SDO_TYPES.iter().chain(SCO_TYPES).chain(NON_SDO_SCO);
        let mut checked = 0;
        for ty in types {
            let Some(rule) = rule_for(ty) else { continue };
            let common = match rule.class {
                Class::Sdo | Class::Sro | Class::Meta => COMMON,
                Class::Sco => SCO_COMMON,
                Class::Marking => MARKING_COMMON,
            };
            let names: Vec<&str> = common.iter().chain(rule.props).map(|p| p.n).collect();
            assert!(names.len() <= MAX_PROPS, "{ty}: {} properties", names.len());
            let unique: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(
                unique.len(),
                names.len(),
                "{ty}: a property is listed twice"
            );
            for (i, n) in names.iter().enumerate() {
                assert_eq!(table_index(common, rule.props, n), Some(i));
                // Names that are not in the table are not found: one byte more, one
                // less, the last byte changed.
                for other in [
                    format!("{n}x"),
                    n[..n.len() - 1].to_string(),
                    format!("{}~", &n[..n.len() - 1]),
                ] {
                    if !names.contains(&other.as_str()) {
                        assert_eq!(table_index(common, rule.props, &other), None, "{other}");
                    }
                }
            }
            assert_eq!(table_index(common, rule.props, "type"), None);
            assert_eq!(table_index(common, rule.props, "id"), None);
            checked += 1;
        }
        assert!(checked >= 40, "only {checked} types have rules");
    }
}
