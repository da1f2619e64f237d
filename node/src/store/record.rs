//! The per-envelope index record: everything the in-memory view needs about an
//! envelope and its objects, packed, so the view can be rebuilt at start without
//! re-parsing any JSON. One record per envelope keeps index writes per publish low.

use super::StoreError;
use super::log::LogPos;
use crate::envelope::Reason;
use crate::stix::tlp::{ALL_LEVELS, TlpLevel};

/// Format version of the packed record; bumped on any change (forces a rebuild).
pub const RECORD_FORMAT: u8 = 1;

/// The first byte of a retraction's record: the [`RECORD_FORMAT`] layout followed by
/// the retraction. Indexes written before retractions existed hold none, so they stay
/// readable; a build that does not know retractions refuses an index that has one.
const RETRACTION_RECORD: u8 = 2;

/// An object a retraction names, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetractedObject {
    /// STIX type.
    pub type_name: String,
    /// The UUID part of the id.
    pub uuid: u128,
    /// The version (`modified`, µs), or every version when `None`.
    pub modified: Option<i64>,
}

/// A retraction, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetractionEntry {
    /// Why.
    pub reason: Reason,
    /// The origin's note.
    pub note: String,
    /// Envelope ids taken back.
    pub envelopes: Vec<[u8; 32]>,
    /// Objects taken back.
    pub objects: Vec<RetractedObject>,
}

/// One object of an envelope, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// STIX type (`indicator`).
    pub type_name: String,
    /// The UUID part of the id.
    pub uuid: u128,
    /// `modified` in µs; `i64::MIN` for objects without `modified` (one version).
    pub modified: i64,
    /// First 16 bytes of the SHA-256 of the object's canonical form.
    pub hash: [u8; 16],
    /// Byte range of the object's canonical form within the envelope bytes.
    pub body_off: u32,
    /// Length of that range.
    pub body_len: u32,
    /// Effective TLP: the object's own marking, else the envelope's level.
    pub tlp: TlpLevel,
    /// `revoked: true`.
    pub revoked: bool,
    /// `spec_version` is "2.1" (or absent on an SCO, meaning 2.1).
    pub spec_21: bool,
    /// Normalised observable keys the object names.
    pub obs_keys: Vec<String>,
}

/// An accepted envelope, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRecord {
    /// Local order.
    pub ordinal: u64,
    /// SHA-256 envelope id.
    pub id: [u8; 32],
    /// Origin member.
    pub origin: String,
    /// Signing key.
    pub key_id: String,
    /// Origin sequence number.
    pub seq: u64,
    /// `signed_at` in µs.
    pub signed_at: i64,
    /// Envelope TLP.
    pub tlp: TlpLevel,
    /// Red recipients.
    pub recipients: Vec<String>,
    /// Peer it came from (`local` for own publishes).
    pub received_from: String,
    /// Receipt time (µs).
    pub received_at: i64,
    /// First `date_added` available to its new object versions (µs).
    pub date_added_base: i64,
    /// Envelope bytes in the log.
    pub pos: LogPos,
    /// Its objects, in bundle order.
    pub objects: Vec<ObjectEntry>,
    /// For a retraction: what it takes back.
    pub retraction: Option<RetractionEntry>,
}

fn tlp_byte(t: TlpLevel) -> u8 {
    ALL_LEVELS.iter().position(|l| *l == t).unwrap_or(4) as u8
}

fn tlp_from(b: u8) -> Option<TlpLevel> {
    ALL_LEVELS.get(b as usize).copied()
}

struct W(Vec<u8>);
impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

struct R<'a>(&'a [u8]);
impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.0.len() < n {
            return Err(StoreError::Corrupt("truncated index record".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(self.u64()? as i64)
    }
    fn str(&mut self) -> Result<String, StoreError> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| StoreError::Corrupt("index record string is not UTF-8".into()))
    }
    fn tlp(&mut self) -> Result<TlpLevel, StoreError> {
        tlp_from(self.u8()?)
            .ok_or_else(|| StoreError::Corrupt("bad TLP byte in index record".into()))
    }
}

impl EnvelopeRecord {
    /// Packs the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(128 + self.objects.len() * 96));
        w.u8(if self.retraction.is_some() {
            RETRACTION_RECORD
        } else {
            RECORD_FORMAT
        });
        w.u64(self.ordinal);
        w.bytes(&self.id);
        w.str(&self.origin);
        w.str(&self.key_id);
        w.u64(self.seq);
        w.i64(self.signed_at);
        w.u8(tlp_byte(self.tlp));
        w.u32(self.recipients.len() as u32);
        for r in &self.recipients {
            w.str(r);
        }
        w.str(&self.received_from);
        w.i64(self.received_at);
        w.i64(self.date_added_base);
        w.u32(self.pos.segment);
        w.u64(self.pos.offset);
        w.u32(self.pos.len);
        w.u32(self.objects.len() as u32);
        for o in &self.objects {
            w.str(&o.type_name);
            w.bytes(&o.uuid.to_le_bytes());
            w.i64(o.modified);
            w.bytes(&o.hash);
            w.u32(o.body_off);
            w.u32(o.body_len);
            w.u8(tlp_byte(o.tlp));
            w.u8(u8::from(o.revoked) | (u8::from(o.spec_21) << 1));
            w.u32(o.obs_keys.len() as u32);
            for k in &o.obs_keys {
                w.str(k);
            }
        }
        if let Some(r) = &self.retraction {
            w.u8(r.reason.as_byte());
            w.str(&r.note);
            w.u32(r.envelopes.len() as u32);
            for e in &r.envelopes {
                w.bytes(e);
            }
            w.u32(r.objects.len() as u32);
            for o in &r.objects {
                w.str(&o.type_name);
                w.bytes(&o.uuid.to_le_bytes());
                match o.modified {
                    Some(m) => {
                        w.u8(1);
                        w.i64(m);
                    }
                    None => w.u8(0),
                }
            }
        }
        w.0
    }

    /// Unpacks a record.
    pub fn decode(bytes: &[u8]) -> Result<EnvelopeRecord, StoreError> {
        let mut r = R(bytes);
        let format = r.u8()?;
        if format != RECORD_FORMAT && format != RETRACTION_RECORD {
            return Err(StoreError::Corrupt(format!(
                "index record format {format}, this build reads {RECORD_FORMAT}"
            )));
        }
        let ordinal = r.u64()?;
        let mut id = [0u8; 32];
        id.copy_from_slice(r.take(32)?);
        let origin = r.str()?;
        let key_id = r.str()?;
        let seq = r.u64()?;
        let signed_at = r.i64()?;
        let tlp = r.tlp()?;
        let n = r.u32()? as usize;
        let mut recipients = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            recipients.push(r.str()?);
        }
        let received_from = r.str()?;
        let received_at = r.i64()?;
        let date_added_base = r.i64()?;
        let pos = LogPos {
            segment: r.u32()?,
            offset: r.u64()?,
            len: r.u32()?,
        };
        let n = r.u32()? as usize;
        let mut objects = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            let type_name = r.str()?;
            let mut u = [0u8; 16];
            u.copy_from_slice(r.take(16)?);
            let modified = r.i64()?;
            let mut hash = [0u8; 16];
            hash.copy_from_slice(r.take(16)?);
            let body_off = r.u32()?;
            let body_len = r.u32()?;
            let tlp = r.tlp()?;
            let flags = r.u8()?;
            let k = r.u32()? as usize;
            let mut obs_keys = Vec::with_capacity(k.min(1024));
            for _ in 0..k {
                obs_keys.push(r.str()?);
            }
            objects.push(ObjectEntry {
                type_name,
                uuid: u128::from_le_bytes(u),
                modified,
                hash,
                body_off,
                body_len,
                tlp,
                revoked: flags & 1 != 0,
                spec_21: flags & 2 != 0,
                obs_keys,
            });
        }
        let retraction = if format == RETRACTION_RECORD {
            let reason = Reason::from_byte(r.u8()?).ok_or_else(|| {
                StoreError::Corrupt("bad retraction reason in index record".into())
            })?;
            let note = r.str()?;
            let n = r.u32()? as usize;
            let mut envelopes = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let mut id = [0u8; 32];
                id.copy_from_slice(r.take(32)?);
                envelopes.push(id);
            }
            let n = r.u32()? as usize;
            let mut objects = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let type_name = r.str()?;
                let mut u = [0u8; 16];
                u.copy_from_slice(r.take(16)?);
                let modified = match r.u8()? {
                    0 => None,
                    _ => Some(r.i64()?),
                };
                objects.push(RetractedObject {
                    type_name,
                    uuid: u128::from_le_bytes(u),
                    modified,
                });
            }
            Some(RetractionEntry {
                reason,
                note,
                envelopes,
                objects,
            })
        } else {
            None
        };
        Ok(EnvelopeRecord {
            ordinal,
            id,
            origin,
            key_id,
            seq,
            signed_at,
            tlp,
            recipients,
            received_from,
            received_at,
            date_added_base,
            pos,
            objects,
            retraction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let r = EnvelopeRecord {
            ordinal: 7,
            id: [9; 32],
            origin: "kaspersky".into(),
            key_id: "kaspersky-2026a".into(),
            seq: 3,
            signed_at: 123,
            tlp: TlpLevel::Red,
            recipients: vec!["interpol".into()],
            received_from: "groupib".into(),
            received_at: 456,
            date_added_base: 789,
            pos: LogPos {
                segment: 1,
                offset: 2,
                len: 3,
            },
            objects: vec![ObjectEntry {
                type_name: "indicator".into(),
                uuid: 42,
                modified: i64::MIN,
                hash: [1; 16],
                body_off: 10,
                body_len: 20,
                tlp: TlpLevel::AmberStrict,
                revoked: true,
                spec_21: true,
                obs_keys: vec!["ipv4-addr:203.0.113.7".into()],
            }],
            retraction: None,
        };
        let b = r.encode();
        assert_eq!(b[0], RECORD_FORMAT);
        assert_eq!(EnvelopeRecord::decode(&b).unwrap(), r);
        for cut in [0, 1, 40, b.len() - 1] {
            assert!(EnvelopeRecord::decode(&b[..cut]).is_err());
        }
        // A retraction's record.
        let r = EnvelopeRecord {
            objects: Vec::new(),
            retraction: Some(RetractionEntry {
                reason: Reason::WrongTlp,
                note: "amber, not green".into(),
                envelopes: vec![[7; 32]],
                objects: vec![
                    RetractedObject {
                        type_name: "indicator".into(),
                        uuid: 42,
                        modified: Some(1_000),
                    },
                    RetractedObject {
                        type_name: "malware".into(),
                        uuid: 43,
                        modified: None,
                    },
                ],
            }),
            ..r
        };
        let b = r.encode();
        assert_eq!(b[0], RETRACTION_RECORD);
        assert_eq!(EnvelopeRecord::decode(&b).unwrap(), r);
        for cut in [0, 1, 40, b.len() - 1] {
            assert!(EnvelopeRecord::decode(&b[..cut]).is_err());
        }
    }
}
