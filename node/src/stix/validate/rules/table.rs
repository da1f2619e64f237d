//! Every type's properties and extra rule.

use super::super::vocab as ov;
use super::kinds::*;
use super::types::*;

macro_rules! rule {
    ($class:ident, [$($p:expr),* $(,)?]) => {
        rule!($class, [$($p),*], none)
    };
    ($class:ident, [$($p:expr),* $(,)?], $extra:expr) => {{
        const R: TypeRule = TypeRule { props: &[$($p),*], class: Class::$class, extra: $extra };
        &R
    }};
}

pub(super) fn rule_for(ty: &str) -> Option<&'static TypeRule> {
    use Kind::*;
    Some(match ty {
        "attack-pattern" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("aliases", Strs),
                optional("kill_chain_phases", Phases)
            ]
        ),
        "campaign" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("aliases", Strs),
                optional("first_seen", Ts),
                optional("last_seen", Ts),
                optional("objective", Str)
            ],
            seen
        ),
        "course-of-action" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("action", Any)
            ]
        ),
        "grouping" => rule!(
            Sdo,
            [
                required(
                    "context",
                    Open("grouping-context-ov", ov::GROUPING_CONTEXT_OV)
                ),
                required("object_refs", Refs(ANY)),
                optional("name", Str),
                optional("description", Str)
            ]
        ),
        "identity" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("roles", Strs),
                optional(
                    "identity_class",
                    Open("identity-class-ov", ov::IDENTITY_CLASS_OV)
                ),
                optional(
                    "sectors",
                    OpenList("industry-sector-ov", ov::INDUSTRY_SECTOR_OV)
                ),
                optional("contact_information", Str)
            ]
        ),
        "incident" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("kill_chain_phases", Phases)
            ]
        ),
        "indicator" => rule!(
            Sdo,
            [
                required("pattern", Str),
                required(
                    "pattern_type",
                    Open("pattern-type-ov", ov::INDICATOR_PATTERN_OV)
                ),
                required("valid_from", Ts),
                optional("name", Str),
                optional("description", Str),
                optional(
                    "indicator_types",
                    OpenList("indicator-type-ov", ov::INDICATOR_TYPE_OV)
                ),
                optional("pattern_version", Str),
                optional("valid_until", Ts),
                optional("kill_chain_phases", Phases)
            ],
            indicator
        ),
        "infrastructure" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional(
                    "infrastructure_types",
                    OpenList("infrastructure-type-ov", ov::INFRASTRUCTURE_TYPE_OV)
                ),
                optional("aliases", Strs),
                optional("kill_chain_phases", Phases),
                optional("first_seen", Ts),
                optional("last_seen", Ts)
            ],
            seen
        ),
        "intrusion-set" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("aliases", Strs),
                optional("first_seen", Ts),
                optional("last_seen", Ts),
                optional("goals", Strs),
                optional(
                    "resource_level",
                    Open("attack-resource-level-ov", ov::ATTACK_RESOURCE_LEVEL_OV)
                ),
                optional(
                    "primary_motivation",
                    Open("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                ),
                optional(
                    "secondary_motivations",
                    OpenList("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                )
            ],
            seen
        ),
        "location" => rule!(
            Sdo,
            [
                optional("name", Str),
                optional("description", Str),
                optional("latitude", Num(-90.0, 90.0)),
                optional("longitude", Num(-180.0, 180.0)),
                optional("precision", Num(0.0, f64::MAX)),
                optional("region", Open("region-ov", ov::REGION_OV)),
                optional("country", Str),
                optional("administrative_area", Str),
                optional("city", Str),
                optional("street_address", Str),
                optional("postal_code", Str)
            ],
            location
        ),
        "malware" => rule!(
            Sdo,
            [
                required("is_family", Bool),
                optional("name", Str),
                optional("description", Str),
                optional(
                    "malware_types",
                    OpenList("malware-type-ov", ov::MALWARE_TYPE_OV)
                ),
                optional("aliases", Strs),
                optional("kill_chain_phases", Phases),
                optional("first_seen", Ts),
                optional("last_seen", Ts),
                optional("operating_system_refs", Refs(SOFTWARE)),
                optional(
                    "architecture_execution_envs",
                    OpenList("processor-architecture-ov", ov::PROCESSOR_ARCHITECTURE_OV)
                ),
                optional(
                    "implementation_languages",
                    OpenList(
                        "implementation-language-ov",
                        ov::IMPLEMENTATION_LANGUAGES_OV
                    )
                ),
                optional(
                    "capabilities",
                    OpenList("malware-capabilities-ov", ov::MALWARE_CAPABILITIES_OV)
                ),
                optional("sample_refs", Refs(FILE_ARTIFACT))
            ],
            malware
        ),
        "malware-analysis" => rule!(
            Sdo,
            [
                required("product", Str),
                optional("version", Str),
                optional("host_vm_ref", Ref(SOFTWARE)),
                optional("operating_system_ref", Ref(SOFTWARE)),
                optional("installed_software_refs", Refs(SOFTWARE)),
                optional("configuration_version", Str),
                optional("modules", Strs),
                optional("analysis_engine_version", Str),
                optional("analysis_definition_version", Str),
                optional("submitted", Ts),
                optional("analysis_started", Ts),
                optional("analysis_ended", Ts),
                optional("result_name", Str),
                optional("result", Open("malware-result-ov", ov::MALWARE_RESULT_OV)),
                optional("analysis_sco_refs", Refs(SCO)),
                optional("sample_ref", Ref(FILE_ARTIFACT))
            ],
            malware_analysis
        ),
        "note" => rule!(
            Sdo,
            [
                required("content", Str),
                required("object_refs", Refs(ANY)),
                optional("abstract", Str),
                optional("authors", Strs)
            ]
        ),
        "observed-data" => rule!(
            Sdo,
            [
                required("first_observed", Ts),
                required("last_observed", Ts),
                required("number_observed", Int(1, MAX_COUNT)),
                optional("objects", Dict),
                optional("object_refs", Refs(SCO_OR_SRO))
            ],
            observed_data
        ),
        "opinion" => rule!(
            Sdo,
            [
                required("opinion", Closed(OPINION)),
                required("object_refs", Refs(ANY)),
                optional("explanation", Str),
                optional("authors", Strs)
            ]
        ),
        "report" => rule!(
            Sdo,
            [
                required("name", Str),
                required("published", Ts),
                required("object_refs", Refs(ANY)),
                optional("description", Str),
                optional(
                    "report_types",
                    OpenList("report-type-ov", ov::REPORT_TYPE_OV)
                )
            ]
        ),
        "threat-actor" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional(
                    "threat_actor_types",
                    OpenList("threat-actor-type-ov", ov::THREAT_ACTOR_TYPE_OV)
                ),
                optional("aliases", Strs),
                optional("first_seen", Ts),
                optional("last_seen", Ts),
                optional(
                    "roles",
                    OpenList("threat-actor-role-ov", ov::THREAT_ACTOR_ROLE_OV)
                ),
                optional("goals", Strs),
                optional(
                    "sophistication",
                    Open(
                        "threat-actor-sophistication-ov",
                        ov::THREAT_ACTOR_SOPHISTICATION_OV
                    )
                ),
                optional(
                    "resource_level",
                    Open("attack-resource-level-ov", ov::ATTACK_RESOURCE_LEVEL_OV)
                ),
                optional(
                    "primary_motivation",
                    Open("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                ),
                optional(
                    "secondary_motivations",
                    OpenList("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                ),
                optional(
                    "personal_motivations",
                    OpenList("attack-motivation-ov", ov::ATTACK_MOTIVATION_OV)
                )
            ],
            seen
        ),
        "tool" => rule!(
            Sdo,
            [
                required("name", Str),
                optional("description", Str),
                optional("tool_types", OpenList("tool-type-ov", ov::TOOL_TYPE_OV)),
                optional("aliases", Strs),
                optional("kill_chain_phases", Phases),
                optional("tool_version", Str)
            ]
        ),
        "vulnerability" => rule!(Sdo, [required("name", Str), optional("description", Str)]),
        "relationship" => rule!(
            Sro,
            [
                required("relationship_type", Str),
                required("source_ref", Ref(SDO_SCO)),
                required("target_ref", Ref(SDO_SCO)),
                optional("description", Str),
                optional("start_time", Ts),
                optional("stop_time", Ts)
            ],
            relationship
        ),
        "sighting" => rule!(
            Sro,
            [
                required("sighting_of_ref", Ref(SDO)),
                optional("description", Str),
                optional("first_seen", Ts),
                optional("last_seen", Ts),
                optional("count", Int(0, MAX_COUNT)),
                optional("observed_data_refs", Refs(&["observed-data"])),
                optional("where_sighted_refs", Refs(&["identity", "location"])),
                optional("summary", Bool)
            ],
            seen
        ),
        "language-content" => rule!(
            Meta,
            [
                required("object_ref", Ref(ANY)),
                // Optional in STIX 2.1 (section 7.1): without it the content applies
                // to every version of the object.
                optional("object_modified", TsMs),
                required("contents", Dict)
            ],
            language_content
        ),
        "extension-definition" => rule!(
            Meta,
            [
                required("name", Str),
                required("schema", Str),
                required("version", Str),
                required("extension_types", ClosedList(EXTENSION_TYPES)),
                optional("description", Str),
                optional("extension_properties", Strs)
            ],
            extension_definition
        ),
        "marking-definition" => rule!(Marking, [], marking_definition),
        "artifact" => rule!(
            Sco,
            [
                optional("mime_type", Str),
                optional("payload_bin", Binary),
                optional("url", Str),
                optional("hashes", Hashes),
                optional("encryption_algorithm", Closed(ENCRYPTION)),
                optional("decryption_key", Str)
            ],
            artifact
        ),
        "autonomous-system" => rule!(
            Sco,
            [
                required("number", Int(0, U)),
                optional("name", Str),
                optional("rir", Str)
            ],
            sco_id
        ),
        "directory" => rule!(
            Sco,
            [
                required("path", Str),
                optional("path_enc", Str),
                optional("ctime", Ts),
                optional("mtime", Ts),
                optional("atime", Ts),
                optional("contains_refs", Refs(&["file", "directory"]))
            ],
            sco_id
        ),
        "domain-name" => rule!(
            Sco,
            [
                required("value", Str),
                optional("resolves_to_refs", Refs(ADDRS))
            ],
            sco_id
        ),
        "email-addr" => rule!(
            Sco,
            [
                required("value", Str),
                optional("display_name", Str),
                optional("belongs_to_ref", Ref(&["user-account"]))
            ],
            sco_id
        ),
        "email-message" => rule!(
            Sco,
            [
                required("is_multipart", Bool),
                optional("date", Ts),
                optional("content_type", Str),
                optional("from_ref", Ref(&["email-addr"])),
                optional("sender_ref", Ref(&["email-addr"])),
                optional("to_refs", Refs(&["email-addr"])),
                optional("cc_refs", Refs(&["email-addr"])),
                optional("bcc_refs", Refs(&["email-addr"])),
                optional("message_id", Str),
                optional("subject", Str),
                optional("received_lines", Strs),
                optional("additional_header_fields", Dict),
                optional("body", Str),
                optional("body_multipart", List),
                optional("raw_email_ref", Ref(&["artifact"]))
            ],
            email_message
        ),
        "file" => rule!(
            Sco,
            [
                optional("hashes", Hashes),
                optional("size", Int(0, U)),
                optional("name", Str),
                optional("name_enc", Str),
                optional("magic_number_hex", Hex),
                optional("mime_type", Str),
                optional("ctime", Ts),
                optional("mtime", Ts),
                optional("atime", Ts),
                optional("parent_directory_ref", Ref(&["directory"])),
                optional("contains_refs", Refs(SCO)),
                optional("content_ref", Ref(&["artifact"]))
            ],
            file
        ),
        "ipv4-addr" => rule!(
            Sco,
            [
                required("value", Str),
                optional("resolves_to_refs", Refs(&["mac-addr"])),
                optional("belongs_to_refs", Refs(&["autonomous-system"]))
            ],
            sco_id
        ),
        "ipv6-addr" => rule!(
            Sco,
            [
                required("value", Str),
                optional("resolves_to_refs", Refs(&["mac-addr"])),
                optional("belongs_to_refs", Refs(&["autonomous-system"]))
            ],
            sco_id
        ),
        "mac-addr" => rule!(Sco, [required("value", Str)], sco_id),
        "mutex" => rule!(Sco, [required("name", Str)], sco_id),
        "network-traffic" => rule!(
            Sco,
            [
                required("protocols", Strs),
                optional("start", Ts),
                optional("end", Ts),
                optional("is_active", Bool),
                optional("src_ref", Ref(ENDPOINTS)),
                optional("dst_ref", Ref(ENDPOINTS)),
                optional("src_port", PORT),
                optional("dst_port", PORT),
                optional("src_byte_count", Int(0, U)),
                optional("dst_byte_count", Int(0, U)),
                optional("src_packets", Int(0, U)),
                optional("dst_packets", Int(0, U)),
                optional("ipfix", Dict),
                optional("src_payload_ref", Ref(&["artifact"])),
                optional("dst_payload_ref", Ref(&["artifact"])),
                optional("encapsulates_refs", Refs(&["network-traffic"])),
                optional("encapsulated_by_ref", Ref(&["network-traffic"]))
            ],
            network_traffic
        ),
        "process" => rule!(
            Sco,
            [
                optional("is_hidden", Bool),
                optional("pid", Int(0, U)),
                optional("created_time", Ts),
                optional("cwd", Str),
                optional("command_line", Str),
                optional("environment_variables", Dict),
                optional("opened_connection_refs", Refs(&["network-traffic"])),
                optional("creator_user_ref", Ref(&["user-account"])),
                optional("image_ref", Ref(&["file"])),
                optional("parent_ref", Ref(&["process"])),
                optional("child_refs", Refs(&["process"]))
            ],
            process
        ),
        "software" => rule!(
            Sco,
            [
                required("name", Str),
                optional("cpe", Str),
                optional("swid", Str),
                optional("languages", Strs),
                optional("vendor", Str),
                optional("version", Str)
            ],
            sco_id
        ),
        "url" => rule!(Sco, [required("value", Str)], sco_id),
        "user-account" => rule!(
            Sco,
            [
                optional("user_id", Str),
                optional("credential", Str),
                optional("account_login", Str),
                optional("account_type", Open("account-type-ov", ov::ACCOUNT_TYPE_OV)),
                optional("display_name", Str),
                optional("is_service_account", Bool),
                optional("is_privileged", Bool),
                optional("can_escalate_privs", Bool),
                optional("is_disabled", Bool),
                optional("account_created", Ts),
                optional("account_expires", Ts),
                optional("credential_last_changed", Ts),
                optional("account_first_login", Ts),
                optional("account_last_login", Ts)
            ],
            sco_id
        ),
        "windows-registry-key" => rule!(
            Sco,
            [
                optional("key", Str),
                optional("values", List),
                optional("modified_time", Ts),
                optional("creator_user_ref", Ref(&["user-account"])),
                optional("number_of_subkeys", Int(0, U))
            ],
            registry_key
        ),
        "x509-certificate" => rule!(
            Sco,
            [
                optional("is_self_signed", Bool),
                optional("hashes", Hashes),
                optional("version", Str),
                optional("serial_number", Str),
                optional("signature_algorithm", Str),
                optional("issuer", Str),
                optional("validity_not_before", Ts),
                optional("validity_not_after", Ts),
                optional("subject", Str),
                optional("subject_public_key_algorithm", Str),
                optional("subject_public_key_modulus", Str),
                optional("subject_public_key_exponent", Int(0, U)),
                optional("x509_v3_extensions", Dict)
            ],
            x509
        ),
        _ => return None,
    })
}

/// Observed-data `object_refs` point at SCOs and SROs.
pub(super) const SCO_OR_SRO: &[&str] = &["@sco"];
