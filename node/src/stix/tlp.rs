//! Traffic Light Protocol levels and how STIX objects carry them.
//!
//! Sharing policy (SPEC section 5) is decided per envelope by the most restrictive TLP
//! level of the objects inside, so recognising every way a producer can mark an object
//! matters: TLP 2.0 ids, the TLP 1.0 ids of the STIX 2.1 core specification, other
//! tools' ids for the same levels, and marking definitions carried in the same bundle
//! (`definition_type: "tlp"`, a `TLP:…` name, or the TLP 2.0 extension).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// A TLP level, ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TlpLevel {
    /// TLP:CLEAR (TLP 1.0: WHITE) — no restriction.
    #[serde(rename = "clear")]
    Clear,
    /// TLP:GREEN — the community.
    #[serde(rename = "green")]
    Green,
    /// TLP:AMBER — the recipient organisation and its clients.
    #[serde(rename = "amber")]
    Amber,
    /// TLP:AMBER+STRICT — the recipient organisation only.
    #[serde(rename = "amber+strict")]
    AmberStrict,
    /// TLP:RED — named recipients only.
    #[serde(rename = "red")]
    Red,
}

/// Every level, least restrictive first.
pub const ALL_LEVELS: [TlpLevel; 5] = [
    TlpLevel::Clear,
    TlpLevel::Green,
    TlpLevel::Amber,
    TlpLevel::AmberStrict,
    TlpLevel::Red,
];

/// A string that names no TLP level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TLP level {0:?} (expected clear, green, amber, amber+strict or red)")]
pub struct UnknownTlp(pub String);

impl TlpLevel {
    /// The lower-case name used in envelopes and config (`amber+strict`).
    pub fn as_str(self) -> &'static str {
        match self {
            TlpLevel::Clear => "clear",
            TlpLevel::Green => "green",
            TlpLevel::Amber => "amber",
            TlpLevel::AmberStrict => "amber+strict",
            TlpLevel::Red => "red",
        }
    }

    /// Parses a level name, accepting the forms people type: `GREEN`, `TLP:GREEN`,
    /// `white` (TLP 1.0 name of clear), `amber_strict`.
    pub fn parse(s: &str) -> Result<Self, UnknownTlp> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_prefix("tlp:").unwrap_or(&t);
        match t {
            "clear" | "white" => Ok(TlpLevel::Clear),
            "green" => Ok(TlpLevel::Green),
            "amber" => Ok(TlpLevel::Amber),
            "amber+strict" | "amber_strict" | "amber-strict" => Ok(TlpLevel::AmberStrict),
            "red" => Ok(TlpLevel::Red),
            _ => Err(UnknownTlp(s.to_string())),
        }
    }

    /// The TLP 2.0 marking-definition id for this level.
    pub fn marking_id(self) -> &'static str {
        match self {
            TlpLevel::Clear => "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
            TlpLevel::Green => "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
            TlpLevel::Amber => "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
            TlpLevel::AmberStrict => "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
            TlpLevel::Red => "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        }
    }

    /// Whether objects at this level may be forwarded by a node that is not their
    /// origin (SPEC section 5: only clear and green travel transitively).
    pub fn is_transitive(self) -> bool {
        matches!(self, TlpLevel::Clear | TlpLevel::Green)
    }
}

impl fmt::Display for TlpLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TlpLevel {
    type Err = UnknownTlp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TlpLevel::parse(s)
    }
}

/// The level of a well-known marking-definition id, whatever version or tool
/// published it.
pub fn level_of_marking_id(id: &str) -> Option<TlpLevel> {
    let uuid = id.strip_prefix("marking-definition--")?;
    Some(match uuid {
        // TLP 2.0 (OASIS extension-definition--60a3c5c5-…).
        "94868c89-83c2-464b-929b-a1a8aa3c8487" => TlpLevel::Clear,
        "bab4a63c-aed9-4cf5-a766-dfca5abac2bb" => TlpLevel::Green,
        "55d920b0-5e8b-4f79-9ee9-91f868d9b421" => TlpLevel::Amber,
        "939a9414-2ddd-4d32-a0cd-375ea402b003" => TlpLevel::AmberStrict,
        "e828b379-4e03-4974-9ac4-e53a884c97c1" => TlpLevel::Red,
        // TLP 1.0 (STIX 2.1 core specification section 7.2.1.4).
        "613f2e26-407d-48c7-9eca-b8e91df99dc9" => TlpLevel::Clear,
        "34098fce-860f-48ae-8e50-ebd3cc5e41da" => TlpLevel::Green,
        "f88d31f6-486f-44da-b317-01333bde0b82" => TlpLevel::Amber,
        "5e57c739-391a-4eb3-b6be-7d15ca92d5ed" => TlpLevel::Red,
        // OpenCTI's AMBER+STRICT (it maps CLEAR to the TLP 1.0 WHITE id above).
        "826578e1-40ad-459f-bc73-ede076f81f37" => TlpLevel::AmberStrict,
        _ => return None,
    })
}

/// The TLP level a marking-definition object itself declares, if it is a TLP marking:
/// TLP 1.0 form (`definition_type: "tlp"`, `definition.tlp`), TLP 2.0 extension form
/// (`tlp_2_0`), or a `TLP:…` name as other tools write it.
pub fn level_of_marking_definition(obj: &Value) -> Option<TlpLevel> {
    if obj.get("type").and_then(Value::as_str) != Some("marking-definition") {
        return None;
    }
    if let Some(id) = obj.get("id").and_then(Value::as_str)
        && let Some(level) = level_of_marking_id(id)
    {
        return Some(level);
    }
    if obj.get("definition_type").and_then(Value::as_str) == Some("tlp")
        && let Some(t) = obj.pointer("/definition/tlp").and_then(Value::as_str)
    {
        return TlpLevel::parse(t).ok();
    }
    if let Some(exts) = obj.get("extensions").and_then(Value::as_object) {
        for ext in exts.values() {
            if let Some(t) = ext.get("tlp_2_0").and_then(Value::as_str) {
                return TlpLevel::parse(t).ok();
            }
        }
    }
    let name = obj.get("name").and_then(Value::as_str)?;
    if name.len() > 4 && name[..4].eq_ignore_ascii_case("tlp:") {
        return TlpLevel::parse(name).ok();
    }
    None
}

/// Whether `obj` references a marking that is not a well-known TLP id: only then can
/// marking definitions elsewhere in its bundle change its level, so a caller can skip
/// looking for them (a pass over every object of the bundle) for objects that don't.
pub fn references_unknown_marking(obj: &Value) -> bool {
    let unknown = |id: Option<&str>| id.is_none_or(|id| level_of_marking_id(id).is_none());
    let refs = obj.get("object_marking_refs").and_then(Value::as_array);
    let granular = obj.get("granular_markings").and_then(Value::as_array);
    refs.into_iter().flatten().any(|r| unknown(r.as_str()))
        || granular
            .into_iter()
            .flatten()
            .any(|g| unknown(g.get("marking_ref").and_then(Value::as_str)))
}

/// What an object says of its own TLP level, found from the object alone: one pass
/// over its marking references while it is at hand (validation), so that later steps
/// need not look up its members again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnLevel {
    /// It is a TLP marking definition of this level (itself public: see
    /// [`TlpResolver::object_level`]).
    Definition(TlpLevel),
    /// Its markings are all well-known TLP ids (or not TLP at all, but none unknown):
    /// the most restrictive of them, `None` when it carries no TLP marking.
    Known(Option<TlpLevel>),
    /// It references a marking id that is not well known: a definition elsewhere in
    /// its bundle may give it a level.
    NeedsDefinitions,
}

/// What `obj` says of its own TLP level (see [`OwnLevel`]).
pub fn own_level(obj: &Value) -> OwnLevel {
    if let Some(level) = level_of_marking_definition(obj) {
        return OwnLevel::Definition(level);
    }
    level_of_markings(obj.get("object_marking_refs"), obj.get("granular_markings"))
}

/// What an object's `object_marking_refs` and `granular_markings` (the values, when
/// it has them) say of its TLP level: [`own_level`] of an object that is not a marking
/// definition, for a caller that has found those properties already.
pub fn level_of_markings(refs: Option<&Value>, granular: Option<&Value>) -> OwnLevel {
    let mut level: Option<TlpLevel> = None;
    let mut see = |id: Option<&str>| match id.and_then(level_of_marking_id) {
        Some(l) => {
            level = Some(level.map_or(l, |cur| cur.max(l)));
            true
        }
        None => false,
    };
    if let Some(refs) = refs.and_then(Value::as_array)
        && !refs.iter().all(|r| see(r.as_str()))
    {
        return OwnLevel::NeedsDefinitions;
    }
    if let Some(gms) = granular.and_then(Value::as_array)
        && !gms
            .iter()
            .all(|g| see(g.get("marking_ref").and_then(Value::as_str)))
    {
        return OwnLevel::NeedsDefinitions;
    }
    OwnLevel::Known(level)
}

/// Resolves marking references to TLP levels: the well-known ids plus TLP marking
/// definitions found in the same bundle.
#[derive(Debug, Default, Clone)]
pub struct TlpResolver {
    local: HashMap<String, TlpLevel>,
}

impl TlpResolver {
    /// A resolver that knows only the well-known ids.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver that also knows every TLP marking definition among `objects`.
    pub fn for_objects<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut local = HashMap::new();
        for obj in objects {
            if let (Some(level), Some(id)) = (
                level_of_marking_definition(obj),
                obj.get("id").and_then(Value::as_str),
            ) {
                local.insert(id.to_string(), level);
            }
        }
        TlpResolver { local }
    }

    /// A resolver that also knows the given TLP marking definitions (id, level), as
    /// [`level_of_marking_definition`] found them.
    pub fn with_definitions(definitions: impl IntoIterator<Item = (String, TlpLevel)>) -> Self {
        TlpResolver {
            local: definitions.into_iter().collect(),
        }
    }

    /// The level a marking id stands for, if it is a TLP marking.
    pub fn resolve(&self, marking_id: &str) -> Option<TlpLevel> {
        level_of_marking_id(marking_id).or_else(|| self.local.get(marking_id).copied())
    }

    /// The most restrictive TLP level marking `obj` (object markings and granular
    /// markings alike), or `None` when it carries no TLP marking.
    ///
    /// A TLP marking-definition object is itself public (it only defines a level).
    pub fn object_level(&self, obj: &Value) -> Option<TlpLevel> {
        if level_of_marking_definition(obj).is_some() {
            return Some(TlpLevel::Clear);
        }
        let mut level: Option<TlpLevel> = None;
        let mut see = |id: &str| {
            if let Some(l) = self.resolve(id) {
                level = Some(level.map_or(l, |cur| cur.max(l)));
            }
        };
        if let Some(refs) = obj.get("object_marking_refs").and_then(Value::as_array) {
            refs.iter().filter_map(Value::as_str).for_each(&mut see);
        }
        if let Some(gms) = obj.get("granular_markings").and_then(Value::as_array) {
            gms.iter()
                .filter_map(|g| g.get("marking_ref").and_then(Value::as_str))
                .for_each(&mut see);
        }
        level
    }

    /// The level an object is shared at: its own most restrictive TLP marking, or
    /// `default` when it has none.
    pub fn effective_level(&self, obj: &Value, default: TlpLevel) -> TlpLevel {
        self.object_level(obj).unwrap_or(default)
    }

    /// [`TlpResolver::object_level`] of `obj`, given what [`own_level`] found in it:
    /// only an object that references unknown markings is looked at again.
    pub fn object_level_given(&self, obj: &Value, own: OwnLevel) -> Option<TlpLevel> {
        match own {
            OwnLevel::Definition(_) => Some(TlpLevel::Clear),
            OwnLevel::Known(level) => level,
            OwnLevel::NeedsDefinitions => self.object_level(obj),
        }
    }
}

/// Each object's own TLP level ([`TlpResolver::object_level`] with the marking
/// definitions among `objects`), looking at each object's members once unless it
/// references a marking that is not well known.
pub fn object_levels(objects: &[Value]) -> Vec<Option<TlpLevel>> {
    object_levels_given(objects, objects.iter().map(own_level).collect())
}

/// [`object_levels`], given each object's [`own_level`] (as validation notes it).
pub fn object_levels_given(objects: &[Value], own: Vec<OwnLevel>) -> Vec<Option<TlpLevel>> {
    if own.len() != objects.len() {
        return object_levels(objects);
    }
    let resolver = if own.contains(&OwnLevel::NeedsDefinitions) {
        TlpResolver::with_definitions(objects.iter().zip(&own).filter_map(|(o, own)| match own {
            OwnLevel::Definition(level) => Some((o.get("id")?.as_str()?.to_string(), *level)),
            _ => None,
        }))
    } else {
        TlpResolver::new()
    };
    objects
        .iter()
        .zip(own)
        .map(|(o, own)| resolver.object_level_given(o, own))
        .collect()
}

/// The most restrictive level among the objects of a bundle (`objects` array),
/// with unmarked objects counted at `default`. `None` for an empty bundle.
pub fn bundle_level(bundle: &Value, default: TlpLevel) -> Option<TlpLevel> {
    let objects = bundle.get("objects")?.as_array()?;
    let resolver = TlpResolver::for_objects(objects);
    objects
        .iter()
        .map(|o| resolver.effective_level(o, default))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn corpus(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/oasis")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn ordering_is_restrictiveness() {
        assert!(TlpLevel::Clear < TlpLevel::Green);
        assert!(TlpLevel::Amber < TlpLevel::AmberStrict);
        assert!(TlpLevel::AmberStrict < TlpLevel::Red);
        assert_eq!(ALL_LEVELS.iter().max(), Some(&TlpLevel::Red));
    }

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for l in ALL_LEVELS {
            assert_eq!(TlpLevel::parse(l.as_str()), Ok(l));
            assert_eq!(level_of_marking_id(l.marking_id()), Some(l));
            let j = serde_json::to_string(&l).unwrap();
            assert_eq!(serde_json::from_str::<TlpLevel>(&j).unwrap(), l);
        }
        assert_eq!(TlpLevel::parse("TLP:WHITE"), Ok(TlpLevel::Clear));
        assert_eq!(TlpLevel::parse("AMBER_STRICT"), Ok(TlpLevel::AmberStrict));
        assert!(TlpLevel::parse("orange").is_err());
    }

    #[test]
    fn every_known_id_is_recognised() {
        let cases = [
            ("613f2e26-407d-48c7-9eca-b8e91df99dc9", TlpLevel::Clear),
            ("34098fce-860f-48ae-8e50-ebd3cc5e41da", TlpLevel::Green),
            ("f88d31f6-486f-44da-b317-01333bde0b82", TlpLevel::Amber),
            ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", TlpLevel::Red),
            (
                "826578e1-40ad-459f-bc73-ede076f81f37",
                TlpLevel::AmberStrict,
            ),
        ];
        for (uuid, level) in cases {
            let id = format!("marking-definition--{uuid}");
            assert_eq!(level_of_marking_id(&id), Some(level));
        }
        assert_eq!(
            level_of_marking_id("marking-definition--00000000-0000-4000-8000-000000000000"),
            None
        );
    }

    #[test]
    fn corpus_tlp_definitions_declare_their_level() {
        for (file, level) in [
            ("tlp2-clear.json", TlpLevel::Clear),
            ("tlp2-green.json", TlpLevel::Green),
            ("tlp2-amber.json", TlpLevel::Amber),
            ("tlp2-amber-strict.json", TlpLevel::AmberStrict),
            ("tlp2-red.json", TlpLevel::Red),
        ] {
            let b = corpus(file);
            let defs: Vec<_> = b["objects"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(level_of_marking_definition)
                .collect();
            assert!(defs.contains(&level), "{file}");
            // The definition itself is public.
            assert_eq!(
                bundle_level(&b, TlpLevel::Red),
                Some(TlpLevel::Clear),
                "{file}"
            );
        }
    }

    #[test]
    fn bundle_local_tlp_definitions_and_granular_markings_count() {
        let b = json!({"type": "bundle", "id": "bundle--1", "objects": [
            {"type": "marking-definition", "id": "marking-definition--aaaaaaaa-0000-4000-8000-000000000000",
             "definition_type": "tlp", "definition": {"tlp": "amber"}},
            {"type": "marking-definition", "id": "marking-definition--bbbbbbbb-0000-4000-8000-000000000000",
             "name": "TLP:RED", "definition_type": "statement", "definition": {"statement": "x"}},
            {"type": "indicator", "id": "indicator--1",
             "object_marking_refs": ["marking-definition--aaaaaaaa-0000-4000-8000-000000000000"]},
            {"type": "indicator", "id": "indicator--2",
             "granular_markings": [{"marking_ref": "marking-definition--bbbbbbbb-0000-4000-8000-000000000000", "selectors": ["name"]}],
             "object_marking_refs": [TlpLevel::Green.marking_id()]},
        ]});
        let objs = b["objects"].as_array().unwrap();
        let r = TlpResolver::for_objects(objs);
        assert_eq!(r.object_level(&objs[2]), Some(TlpLevel::Amber));
        assert_eq!(r.object_level(&objs[3]), Some(TlpLevel::Red));
        assert_eq!(bundle_level(&b, TlpLevel::Clear), Some(TlpLevel::Red));
    }

    #[test]
    fn one_pass_levels_equal_the_resolver_levels() {
        let local_amber = "marking-definition--aaaaaaaa-0000-4000-8000-000000000000";
        let statement = "marking-definition--cccccccc-0000-4000-8000-000000000000";
        let objects = vec![
            json!({"type": "marking-definition", "id": local_amber,
                   "definition_type": "tlp", "definition": {"tlp": "amber"}}),
            json!({"type": "marking-definition", "id": statement,
                   "definition_type": "statement", "definition": {"statement": "x"}}),
            json!({"type": "indicator", "id": "indicator--1"}),
            json!({"type": "indicator", "id": "indicator--2",
                   "object_marking_refs": [TlpLevel::Green.marking_id(), TlpLevel::Amber.marking_id()]}),
            json!({"type": "indicator", "id": "indicator--3",
                   "object_marking_refs": [TlpLevel::Green.marking_id()],
                   "granular_markings": [{"marking_ref": TlpLevel::Red.marking_id(), "selectors": ["name"]}]}),
            json!({"type": "indicator", "id": "indicator--4", "object_marking_refs": [local_amber]}),
            json!({"type": "indicator", "id": "indicator--5", "object_marking_refs": [statement]}),
            json!({"type": "indicator", "id": "indicator--6",
                   "object_marking_refs": [TlpLevel::Clear.marking_id(), statement]}),
            json!({"type": "indicator", "id": "indicator--7",
                   "granular_markings": [{"marking_ref": local_amber, "selectors": ["name"]},
                                         {"selectors": ["pattern"], "lang": "en"}]}),
            json!({"type": "indicator", "id": "indicator--8", "object_marking_refs": [7]}),
        ];
        let expected: Vec<_> = {
            let r = TlpResolver::for_objects(&objects);
            objects.iter().map(|o| r.object_level(o)).collect()
        };
        assert_eq!(object_levels(&objects), expected);
        assert_eq!(
            expected,
            vec![
                Some(TlpLevel::Clear),
                None,
                None,
                Some(TlpLevel::Amber),
                Some(TlpLevel::Red),
                Some(TlpLevel::Amber),
                None,
                Some(TlpLevel::Clear),
                Some(TlpLevel::Amber),
                None,
            ]
        );
        // Only well-known ids: nothing needs the bundle's definitions.
        assert_eq!(own_level(&objects[4]), OwnLevel::Known(Some(TlpLevel::Red)));
        assert_eq!(own_level(&objects[5]), OwnLevel::NeedsDefinitions);
        assert_eq!(
            own_level(&objects[0]),
            OwnLevel::Definition(TlpLevel::Amber)
        );
        for file in ["tlp2-green.json", "tlp2-red.json"] {
            let b = corpus(file);
            let objs = b["objects"].as_array().unwrap();
            let r = TlpResolver::for_objects(objs);
            let want: Vec<_> = objs.iter().map(|o| r.object_level(o)).collect();
            assert_eq!(object_levels(objs), want, "{file}");
        }
    }

    #[test]
    fn unmarked_objects_take_the_default() {
        let b = json!({"type": "bundle", "id": "bundle--1", "objects": [
            {"type": "indicator", "id": "indicator--1"},
            {"type": "indicator", "id": "indicator--2", "object_marking_refs": [TlpLevel::Clear.marking_id()]},
        ]});
        assert_eq!(bundle_level(&b, TlpLevel::Amber), Some(TlpLevel::Amber));
        assert_eq!(bundle_level(&b, TlpLevel::Clear), Some(TlpLevel::Clear));
        assert_eq!(bundle_level(&json!({"objects": []}), TlpLevel::Clear), None);
    }
}
