//! Serde models of STIX 2.1 objects.
//!
//! The models exist so code can read objects with types instead of poking at JSON,
//! but they must never change what a producer signed: parse → serialise keeps the RFC
//! 8785 canonical form. Hence timestamps and identifiers keep their text, every
//! optional property is an `Option` that is skipped when absent (no `"revoked": false`
//! appears from nowhere), and every struct has a flattened `extra` map that keeps
//! custom (`x_`) and unmodelled properties verbatim. Objects of types we do not know
//! become [`StixObject::Custom`].
//!
//! Validation is separate (`crate::stix::validate`): a model parses anything that has
//! the right JSON shape, valid STIX or not.

mod common;

pub use common::{
    CommonProperties, Extensions, ExternalReference, GranularMarking, Hashes, Identifier,
    KillChainPhase, ScoCommonProperties, StixTimestamp,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Defines one struct per object type plus the [`StixObject`] enum dispatching on
/// `type`, so each type is listed once with its required and optional properties.
macro_rules! stix_objects {
    ($(
        $(#[$meta:meta])*
        $name:ident = $tyname:literal, $common:ty {
            required { $( $(#[$rm:meta])* $rf:ident : $rt:ty ),* $(,)? }
            optional { $( $(#[$om:meta])* $of:ident : $ot:ty ),* $(,)? }
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            pub struct $name {
                /// Properties every object of this family carries.
                #[serde(flatten)]
                pub common: $common,
                $( $(#[$rm])* pub $rf: $rt, )*
                $( $(#[$om])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $of: Option<$ot>, )*
                /// Custom and unmodelled properties, kept verbatim.
                #[serde(flatten)]
                pub extra: Map<String, Value>,
            }

            impl $name {
                /// The STIX `type` of this object.
                pub const TYPE: &'static str = $tyname;
            }
        )*

        /// Any STIX object, dispatched on its `type` property.
        ///
        /// Variants are boxed so the enum stays small however large one type grows.
        #[derive(Debug, Clone, PartialEq)]
        pub enum StixObject {
            $(
                #[doc = concat!("A `", $tyname, "` object.")]
                $name(Box<$name>),
            )*
            /// A `marking-definition` object.
            MarkingDefinition(Box<MarkingDefinition>),
            /// An object of a type this crate does not model (custom objects, future
            /// types), kept verbatim.
            Custom(Map<String, Value>),
        }

        impl StixObject {
            /// Builds the typed object from a JSON map, choosing the model by `type`.
            pub fn from_map(map: Map<String, Value>) -> Result<Self, serde_json::Error> {
                let ty = match map.get("type") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Ok(StixObject::Custom(map)),
                };
                let v = Value::Object(map);
                Ok(match ty.as_str() {
                    $( $tyname => StixObject::$name(Box::new(serde_json::from_value(v)?)), )*
                    MarkingDefinition::TYPE => {
                        StixObject::MarkingDefinition(Box::new(serde_json::from_value(v)?))
                    }
                    _ => match v {
                        Value::Object(m) => StixObject::Custom(m),
                        _ => unreachable_custom(),
                    },
                })
            }

            /// The object's `type`.
            pub fn type_name(&self) -> &str {
                match self {
                    $( StixObject::$name(_) => $tyname, )*
                    StixObject::MarkingDefinition(_) => MarkingDefinition::TYPE,
                    StixObject::Custom(m) => m.get("type").and_then(Value::as_str).unwrap_or(""),
                }
            }

            /// The object's `id`, when it has one.
            pub fn id(&self) -> Option<&str> {
                match self {
                    $( StixObject::$name(o) => Some(o.common.id.as_str()), )*
                    StixObject::MarkingDefinition(o) => Some(o.id.as_str()),
                    StixObject::Custom(m) => m.get("id").and_then(Value::as_str),
                }
            }
        }

        impl Serialize for StixObject {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( StixObject::$name(o) => o.serialize(s), )*
                    StixObject::MarkingDefinition(o) => o.serialize(s),
                    StixObject::Custom(m) => m.serialize(s),
                }
            }
        }
    };
}

/// `from_map` rebuilt the `Value` from a map just above, so this branch cannot be
/// reached; it returns an empty custom object rather than panicking.
fn unreachable_custom() -> StixObject {
    StixObject::Custom(Map::new())
}

impl<'de> Deserialize<'de> for StixObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        StixObject::from_map(map).map_err(serde::de::Error::custom)
    }
}

type Ts = StixTimestamp;
type Id = Identifier;
type Strings = Vec<String>;
type Ids = Vec<Identifier>;
type Phases = Vec<KillChainPhase>;
type Dict = Map<String, Value>;

stix_objects! {
    /// An adversary behaviour (TTP), e.g. an ATT&CK technique.
    AttackPattern = "attack-pattern", CommonProperties {
        required { name: String }
        optional { description: String, aliases: Strings, kill_chain_phases: Phases }
    }
    /// A set of adversary behaviour over time against a set of targets.
    Campaign = "campaign", CommonProperties {
        required { name: String }
        optional { description: String, aliases: Strings, first_seen: Ts, last_seen: Ts, objective: String }
    }
    /// A recommendation to prevent or respond to an attack.
    CourseOfAction = "course-of-action", CommonProperties {
        required { name: String }
        optional { description: String, action: Value }
    }
    /// A set of objects an analyst considers related (shared context).
    Grouping = "grouping", CommonProperties {
        required { context: String, object_refs: Ids }
        optional { name: String, description: String }
    }
    /// An individual, organisation or group; federation members are identities.
    Identity = "identity", CommonProperties {
        required { name: String }
        optional { description: String, roles: Strings, identity_class: String, sectors: Strings, contact_information: String }
    }
    /// A security incident (a stub in STIX 2.1).
    Incident = "incident", CommonProperties {
        required { name: String }
        optional { description: String, kill_chain_phases: Phases }
    }
    /// A detection pattern; the bulk of every feed.
    Indicator = "indicator", CommonProperties {
        required { pattern: String, pattern_type: String, valid_from: Ts }
        optional {
            name: String, description: String, indicator_types: Strings, pattern_version: String,
            valid_until: Ts, kill_chain_phases: Phases,
        }
    }
    /// Systems or services used by or targeted by an adversary (C2 servers, botnets).
    Infrastructure = "infrastructure", CommonProperties {
        required { name: String }
        optional {
            description: String, infrastructure_types: Strings, aliases: Strings,
            kill_chain_phases: Phases, first_seen: Ts, last_seen: Ts,
        }
    }
    /// A grouped set of adversary behaviour and resources (an APT group).
    IntrusionSet = "intrusion-set", CommonProperties {
        required { name: String }
        optional {
            description: String, aliases: Strings, first_seen: Ts, last_seen: Ts, goals: Strings,
            resource_level: String, primary_motivation: String, secondary_motivations: Strings,
        }
    }
    /// A geographic location.
    Location = "location", CommonProperties {
        required {}
        optional {
            name: String, description: String, latitude: f64, longitude: f64, precision: f64,
            region: String, country: String, administrative_area: String, city: String,
            street_address: String, postal_code: String,
        }
    }
    /// Malicious code, a family or an instance.
    Malware = "malware", CommonProperties {
        required { is_family: bool }
        optional {
            name: String, description: String, malware_types: Strings, aliases: Strings,
            kill_chain_phases: Phases, first_seen: Ts, last_seen: Ts, operating_system_refs: Ids,
            architecture_execution_envs: Strings, implementation_languages: Strings,
            capabilities: Strings, sample_refs: Ids,
        }
    }
    /// The result of analysing a malware sample.
    MalwareAnalysis = "malware-analysis", CommonProperties {
        required { product: String }
        optional {
            version: String, host_vm_ref: Id, operating_system_ref: Id, installed_software_refs: Ids,
            configuration_version: String, modules: Strings, analysis_engine_version: String,
            analysis_definition_version: String, submitted: Ts, analysis_started: Ts,
            analysis_ended: Ts, result_name: String, result: String, analysis_sco_refs: Ids,
            sample_ref: Id,
        }
    }
    /// Analyst commentary on other objects.
    Note = "note", CommonProperties {
        required { content: String, object_refs: Ids }
        optional { r#abstract: String, authors: Strings }
    }
    /// Raw observations (counts of SCOs seen in a window).
    ObservedData = "observed-data", CommonProperties {
        required { first_observed: Ts, last_observed: Ts, number_observed: i64 }
        optional { objects: Dict, object_refs: Ids }
    }
    /// An assessment of the correctness of other objects.
    Opinion = "opinion", CommonProperties {
        required { opinion: String, object_refs: Ids }
        optional { explanation: String, authors: Strings }
    }
    /// A published threat report and the objects it covers.
    Report = "report", CommonProperties {
        required { name: String, published: Ts, object_refs: Ids }
        optional { description: String, report_types: Strings }
    }
    /// An actual individual or group operating with malicious intent.
    ThreatActor = "threat-actor", CommonProperties {
        required { name: String }
        optional {
            description: String, threat_actor_types: Strings, aliases: Strings, first_seen: Ts,
            last_seen: Ts, roles: Strings, goals: Strings, sophistication: String,
            resource_level: String, primary_motivation: String, secondary_motivations: Strings,
            personal_motivations: Strings,
        }
    }
    /// Legitimate software an adversary uses.
    Tool = "tool", CommonProperties {
        required { name: String }
        optional { description: String, tool_types: Strings, aliases: Strings, kill_chain_phases: Phases, tool_version: String }
    }
    /// A software flaw (typically a CVE).
    Vulnerability = "vulnerability", CommonProperties {
        required { name: String }
        optional { description: String }
    }
    /// A typed link between two objects (`indicator indicates malware`).
    Relationship = "relationship", CommonProperties {
        required { relationship_type: String, source_ref: Id, target_ref: Id }
        optional { description: String, start_time: Ts, stop_time: Ts }
    }
    /// The belief that something (an indicator, malware …) was seen.
    Sighting = "sighting", CommonProperties {
        required { sighting_of_ref: Id }
        optional {
            description: String, first_seen: Ts, last_seen: Ts, count: i64,
            observed_data_refs: Ids, where_sighted_refs: Ids, summary: bool,
        }
    }
    /// Translations of another object's text properties.
    LanguageContent = "language-content", CommonProperties {
        required { object_ref: Id, object_modified: Ts, contents: Dict }
        optional {}
    }
    /// The definition of a STIX extension (e.g. TLP 2.0).
    ExtensionDefinition = "extension-definition", CommonProperties {
        required { name: String, schema: String, version: String, extension_types: Strings }
        optional { description: String, extension_properties: Strings }
    }
    /// A binary or file-like object.
    Artifact = "artifact", ScoCommonProperties {
        required {}
        optional {
            mime_type: String, payload_bin: String, url: String, hashes: Hashes,
            encryption_algorithm: String, decryption_key: String,
        }
    }
    /// An autonomous system (routing domain).
    AutonomousSystem = "autonomous-system", ScoCommonProperties {
        required { number: i64 }
        optional { name: String, rir: String }
    }
    /// A file system directory.
    Directory = "directory", ScoCommonProperties {
        required { path: String }
        optional { path_enc: String, ctime: Ts, mtime: Ts, atime: Ts, contains_refs: Ids }
    }
    /// A network domain name.
    DomainName = "domain-name", ScoCommonProperties {
        required { value: String }
        optional { resolves_to_refs: Ids }
    }
    /// An email address.
    EmailAddr = "email-addr", ScoCommonProperties {
        required { value: String }
        optional { display_name: String, belongs_to_ref: Id }
    }
    /// An email message (RFC 5322).
    EmailMessage = "email-message", ScoCommonProperties {
        required { is_multipart: bool }
        optional {
            date: Ts, content_type: String, from_ref: Id, sender_ref: Id, to_refs: Ids,
            cc_refs: Ids, bcc_refs: Ids, message_id: String, subject: String,
            received_lines: Strings, additional_header_fields: Dict, body: String,
            body_multipart: Vec<Value>, raw_email_ref: Id,
        }
    }
    /// A computer file, identified mostly by its hashes.
    File = "file", ScoCommonProperties {
        required {}
        optional {
            hashes: Hashes, size: i64, name: String, name_enc: String, magic_number_hex: String,
            mime_type: String, ctime: Ts, mtime: Ts, atime: Ts, parent_directory_ref: Id,
            contains_refs: Ids, content_ref: Id,
        }
    }
    /// An IPv4 address or CIDR block.
    Ipv4Addr = "ipv4-addr", ScoCommonProperties {
        required { value: String }
        optional { resolves_to_refs: Ids, belongs_to_refs: Ids }
    }
    /// An IPv6 address or CIDR block.
    Ipv6Addr = "ipv6-addr", ScoCommonProperties {
        required { value: String }
        optional { resolves_to_refs: Ids, belongs_to_refs: Ids }
    }
    /// A MAC address.
    MacAddr = "mac-addr", ScoCommonProperties {
        required { value: String }
        optional {}
    }
    /// A named mutual-exclusion object (a common malware marker).
    Mutex = "mutex", ScoCommonProperties {
        required { name: String }
        optional {}
    }
    /// A network flow between two endpoints.
    NetworkTraffic = "network-traffic", ScoCommonProperties {
        required { protocols: Strings }
        optional {
            start: Ts, end: Ts, is_active: bool, src_ref: Id, dst_ref: Id, src_port: i64,
            dst_port: i64, src_byte_count: i64, dst_byte_count: i64, src_packets: i64,
            dst_packets: i64, ipfix: Dict, src_payload_ref: Id, dst_payload_ref: Id,
            encapsulates_refs: Ids, encapsulated_by_ref: Id,
        }
    }
    /// A running program instance.
    Process = "process", ScoCommonProperties {
        required {}
        optional {
            is_hidden: bool, pid: i64, created_time: Ts, cwd: String, command_line: String,
            environment_variables: Dict, opened_connection_refs: Ids, creator_user_ref: Id,
            image_ref: Id, parent_ref: Id, child_refs: Ids,
        }
    }
    /// A software product.
    Software = "software", ScoCommonProperties {
        required { name: String }
        optional { cpe: String, swid: String, languages: Strings, vendor: String, version: String }
    }
    /// A URL.
    Url = "url", ScoCommonProperties {
        required { value: String }
        optional {}
    }
    /// A user account on a system or service.
    UserAccount = "user-account", ScoCommonProperties {
        required {}
        optional {
            user_id: String, credential: String, account_login: String, account_type: String,
            display_name: String, is_service_account: bool, is_privileged: bool,
            can_escalate_privs: bool, is_disabled: bool, account_created: Ts,
            account_expires: Ts, credential_last_changed: Ts, account_first_login: Ts,
            account_last_login: Ts,
        }
    }
    /// A Windows registry key and its values.
    WindowsRegistryKey = "windows-registry-key", ScoCommonProperties {
        required {}
        optional { key: String, values: Vec<Value>, modified_time: Ts, creator_user_ref: Id, number_of_subkeys: i64 }
    }
    /// An X.509 certificate.
    X509Certificate = "x509-certificate", ScoCommonProperties {
        required {}
        optional {
            is_self_signed: bool, hashes: Hashes, version: String, serial_number: String,
            signature_algorithm: String, issuer: String, validity_not_before: Ts,
            validity_not_after: Ts, subject: String, subject_public_key_algorithm: String,
            subject_public_key_modulus: String, subject_public_key_exponent: i64,
            x509_v3_extensions: Dict,
        }
    }
}

/// A marking definition: TLP levels, statements, or extension-defined markings.
///
/// It has no `modified` (marking definitions are immutable), so it does not use
/// [`CommonProperties`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkingDefinition {
    /// Always `marking-definition`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `2.1`.
    pub spec_version: String,
    /// `marking-definition--<uuid>`; TLP levels have fixed ids.
    pub id: Identifier,
    /// When the definition was created.
    pub created: StixTimestamp,
    /// The identity that created the definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<Identifier>,
    /// References to non-STIX information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_references: Option<Vec<ExternalReference>>,
    /// Markings applied to the definition itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_marking_refs: Option<Vec<Identifier>>,
    /// Granular markings applied to the definition itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granular_markings: Option<Vec<GranularMarking>>,
    /// Extension content; TLP 2.0 lives here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
    /// A name such as `TLP:GREEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tlp` or `statement` (deprecated in favour of extensions, still common).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_type: Option<String>,
    /// The marking content (`{"tlp": "green"}`, `{"statement": "…"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
    /// Custom and unmodelled properties, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MarkingDefinition {
    /// The STIX `type` of this object.
    pub const TYPE: &'static str = "marking-definition";
}

/// A STIX bundle: the container feeds and envelopes carry objects in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// Always `bundle`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `bundle--<uuid>`.
    pub id: Identifier,
    /// The objects; absent and empty are kept apart to preserve the canonical form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<StixObject>>,
    /// Custom and unmodelled properties (e.g. a STIX 2.0 `spec_version`), verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests;
