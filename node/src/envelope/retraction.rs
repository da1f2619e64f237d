//! Retractions: the second kind of envelope, by which an origin takes back envelopes
//! or object versions it published (protocol §11).
//!
//! A retraction is signed, numbered and sent exactly like an envelope (same header,
//! same `seq` space, same cursors and policy); its `retraction` member takes the place
//! of the `bundle`. What it names is never deleted: the evidence log keeps the original
//! envelopes and the retraction side by side, and the view leaves out the deliveries
//! it names (`store::view`).

use super::EnvelopeId;
use crate::stix::timestamp::Timestamp;
use serde_json::{Map, Value, json};
use std::fmt;

/// The `type` member of a retraction.
pub const RETRACTION_TYPE: &str = "synergia-retraction";

/// At most this many targets (envelopes plus objects) in one retraction: a retraction
/// stays far below the envelope size limit, and applying one is bounded work.
pub const MAX_TARGETS: usize = 10_000;

/// Longest `note`, in bytes.
pub const MAX_NOTE_BYTES: usize = 4096;

/// Why an origin takes something back. A closed list: receivers and dashboards count
/// retractions by reason, so free text goes in the note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The indicator was wrong (a benign CDN range reported as malicious).
    FalsePositive,
    /// Shared at a less restrictive level than it should have been; the origin may
    /// publish it again at the right level.
    WrongTlp,
    /// Test content that should never have left the pipeline.
    TestData,
    /// Replaced by something else the origin published.
    Superseded,
    /// Anything else (the note says what).
    Other,
}

impl Reason {
    /// Every reason, in the order the protocol lists them.
    pub const ALL: [Reason; 5] = [
        Reason::FalsePositive,
        Reason::WrongTlp,
        Reason::TestData,
        Reason::Superseded,
        Reason::Other,
    ];

    /// The reason's code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FalsePositive => "false-positive",
            Reason::WrongTlp => "wrong-tlp",
            Reason::TestData => "test-data",
            Reason::Superseded => "superseded",
            Reason::Other => "other",
        }
    }

    /// The reason a code names.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A compact number for the index record.
    pub fn as_byte(self) -> u8 {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(4) as u8
    }

    /// The reason of [`Reason::as_byte`].
    pub fn from_byte(b: u8) -> Option<Reason> {
        Reason::ALL.get(b as usize).copied()
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object a retraction names: one version (`modified`) or, without it, every
/// version the origin delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectTarget {
    /// The STIX id, `type--uuid`.
    pub id: String,
    /// The version's `modified`, as a timestamp.
    pub modified: Option<Timestamp>,
}

impl ObjectTarget {
    /// Parses `ID` or `ID@MODIFIED` (the CLI's form).
    pub fn parse_cli(s: &str) -> Result<ObjectTarget, String> {
        let (id, modified) = match s.split_once('@') {
            Some((id, m)) => (
                id,
                Some(Timestamp::parse(m).map_err(|e| format!("{s:?}: version {m:?}: {e}"))?),
            ),
            None => (s, None),
        };
        check_object_id(id).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(ObjectTarget {
            id: id.to_string(),
            modified,
        })
    }
}

impl fmt::Display for ObjectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.modified {
            Some(m) => write!(f, "{}@{}", self.id, m.to_micros_string()),
            None => f.write_str(&self.id),
        }
    }
}

/// The `retraction` member of a retraction envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retraction {
    /// Envelopes taken back as a whole.
    pub envelopes: Vec<EnvelopeId>,
    /// Object versions taken back, from whichever of the origin's envelopes carry them.
    pub objects: Vec<ObjectTarget>,
    /// Why.
    pub reason: Reason,
    /// Free text for the people reading it (may be empty).
    pub note: String,
}

fn check_object_id(id: &str) -> Result<(), String> {
    let well_formed = crate::stix::validate::split_identifier(id).is_some_and(|(t, u)| {
        crate::stix::validate::type_name_error(t).is_none() && uuid::Uuid::parse_str(u).is_ok()
    });
    if well_formed {
        Ok(())
    } else {
        Err(format!("{id:?} is not a STIX id (type--uuid)"))
    }
}

impl Retraction {
    /// Reads and checks the `retraction` member: exactly `envelopes`, `objects`,
    /// `reason` and `note`; at least one target and at most [`MAX_TARGETS`]; no
    /// target twice; every envelope id `sha256:` and 64 lower-case hex digits; every
    /// object `{"id"}` or `{"id", "modified"}` with a STIX id and timestamp; a known
    /// reason; a note of at most [`MAX_NOTE_BYTES`]. The message says what is wrong.
    pub fn from_value(v: &Value) -> Result<Retraction, String> {
        let Value::Object(m) = v else {
            return Err("retraction must be an object".into());
        };
        const MEMBERS: [&str; 4] = ["envelopes", "objects", "reason", "note"];
        if let Some(extra) = m.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
            return Err(format!("retraction: unknown member {extra:?}"));
        }
        let list = |name: &str| match m.get(name) {
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(format!("retraction.{name} must be an array")),
            None => Err(format!("retraction: missing member {name}")),
        };
        let mut envelopes = Vec::new();
        for e in list("envelopes")? {
            let id = e
                .as_str()
                .and_then(EnvelopeId::parse)
                .ok_or_else(|| format!("retraction.envelopes: {e} is not an envelope id"))?;
            if envelopes.contains(&id) {
                return Err(format!("retraction.envelopes names {id} twice"));
            }
            envelopes.push(id);
        }
        let mut objects: Vec<ObjectTarget> = Vec::new();
        for o in list("objects")? {
            let Value::Object(om) = o else {
                return Err("retraction.objects: each entry is an object".into());
            };
            if let Some(extra) = om.keys().find(|k| *k != "id" && *k != "modified") {
                return Err(format!("retraction.objects: unknown member {extra:?}"));
            }
            let id = om
                .get("id")
                .and_then(Value::as_str)
                .ok_or("retraction.objects: each entry needs an id string")?;
            check_object_id(id).map_err(|e| format!("retraction.objects: {e}"))?;
            let modified = match om.get("modified") {
                None => None,
                Some(Value::String(s)) => Some(
                    Timestamp::parse(s)
                        .map_err(|e| format!("retraction.objects: modified {s:?}: {e}"))?,
                ),
                Some(_) => return Err("retraction.objects: modified must be a string".into()),
            };
            let t = ObjectTarget {
                id: id.to_string(),
                modified,
            };
            if objects.contains(&t) {
                return Err(format!("retraction.objects names {t} twice"));
            }
            objects.push(t);
        }
        let n = envelopes.len() + objects.len();
        if n == 0 {
            return Err("a retraction names at least one envelope or object".into());
        }
        if n > MAX_TARGETS {
            return Err(format!(
                "a retraction names at most {MAX_TARGETS} envelopes and objects, this one {n}"
            ));
        }
        let reason = match m.get("reason") {
            Some(Value::String(s)) => Reason::parse(s).ok_or_else(|| {
                format!(
                    "retraction.reason {s:?} is not one of {}",
                    Reason::ALL.map(Reason::as_str).join(", ")
                )
            })?,
            Some(_) => return Err("retraction.reason must be a string".into()),
            None => return Err("retraction: missing member reason".into()),
        };
        let note = match m.get("note") {
            Some(Value::String(s)) if s.len() <= MAX_NOTE_BYTES => s.clone(),
            Some(Value::String(s)) => {
                return Err(format!(
                    "retraction.note has {} bytes, at most {MAX_NOTE_BYTES} are allowed",
                    s.len()
                ));
            }
            Some(_) => return Err("retraction.note must be a string".into()),
            None => return Err("retraction: missing member note".into()),
        };
        Ok(Retraction {
            envelopes,
            objects,
            reason,
            note,
        })
    }

    /// The `retraction` member as signed: the lists in the order given. Object
    /// versions are written with the precision they were given in (microseconds
    /// when needed, else milliseconds).
    pub fn to_value(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|o| {
                let mut m = Map::new();
                m.insert("id".into(), o.id.clone().into());
                if let Some(t) = &o.modified {
                    let text = if t.as_micros() % 1000 == 0 {
                        t.to_millis_string()
                    } else {
                        t.to_micros_string()
                    };
                    m.insert("modified".into(), text.into());
                }
                Value::Object(m)
            })
            .collect();
        json!({
            "envelopes": self.envelopes.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "objects": objects,
            "reason": self.reason.as_str(),
            "note": self.note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        format!("sha256:{}", "ab".repeat(32))
    }

    #[test]
    fn a_retraction_reads_back_what_it_writes() {
        let r = Retraction {
            envelopes: vec![EnvelopeId::parse(&id()).unwrap()],
            objects: vec![
                ObjectTarget::parse_cli("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f").unwrap(),
                ObjectTarget::parse_cli(
                    "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f@2026-01-02T03:04:05.123456Z",
                )
                .unwrap(),
            ],
            reason: Reason::WrongTlp,
            note: "should have been amber".into(),
        };
        assert_eq!(Retraction::from_value(&r.to_value()).unwrap(), r);
    }

    #[test]
    fn every_shape_error_is_named() {
        let ok = json!({"envelopes": [id()], "objects": [], "reason": "other", "note": ""});
        assert!(Retraction::from_value(&ok).is_ok());
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "must be an object"),
            (
                json!({"envelopes": [], "objects": [], "reason": "other", "note": ""}),
                "at least one",
            ),
            (
                json!({"envelopes": [id(), id()], "objects": [], "reason": "other", "note": ""}),
                "twice",
            ),
            (
                json!({"envelopes": ["sha256:AB"], "objects": [], "reason": "other", "note": ""}),
                "not an envelope id",
            ),
            (
                json!({"envelopes": [id()], "objects": [], "reason": "oops", "note": ""}),
                "is not one of",
            ),
            (
                json!({"envelopes": [id()], "objects": [], "reason": "other"}),
                "missing member note",
            ),
            (
                json!({"envelopes": [id()], "objects": [], "reason": "other", "note": "", "x": 1}),
                "unknown member",
            ),
            (
                json!({"envelopes": [], "objects": [{"id": "nope"}], "reason": "other", "note": ""}),
                "not a STIX id",
            ),
            (
                json!({"envelopes": [], "objects": [{"id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f", "modified": "yesterday"}], "reason": "other", "note": ""}),
                "modified",
            ),
            (
                json!({"envelopes": [id()], "objects": [], "reason": "other", "note": "x".repeat(MAX_NOTE_BYTES + 1)}),
                "bytes",
            ),
        ];
        for (v, want) in cases {
            let e = Retraction::from_value(&v).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
        let many: Vec<String> = (0..=MAX_TARGETS)
            .map(|i| format!("sha256:{:064x}", i))
            .collect();
        let e = Retraction::from_value(
            &json!({"envelopes": many, "objects": [], "reason": "other", "note": ""}),
        )
        .unwrap_err();
        assert!(e.contains("at most"), "{e}");
    }
}
