//! The `{"envelopes":[…],"ids":[…]` part of a push and of a feed page, written
//! straight from the evidence log.
//!
//! Both carry held envelopes, megabytes of them per request. Each envelope is read
//! from the log into the body itself, which is sized once from the lengths the index
//! records: no buffer per envelope copied into the body, and no body grown (and
//! copied) by doubling.

use crate::envelope::EnvelopeId;
use crate::store::view::EnvMeta;
use crate::store::{Store, StoreError};

/// Largest feed page, envelopes.
pub const MAX_FEED_PAGE: usize = 500;
/// Largest feed page, bytes (a page stops early rather than grow past it). Small
/// pages keep both sides' memory low (a parsed envelope takes several times its text)
/// and let the puller store one page while the next is on its way.
pub const MAX_FEED_BYTES: usize = 4 << 20;

/// What one entry of the list carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// The envelope's bytes.
    Body,
    /// `null` in its place: only its id (a relayed envelope the peer asks for by id).
    IdOnly,
}

impl Carry {
    /// Bytes the entry takes in the `envelopes` array, without its comma.
    pub fn text_len(self, e: &EnvMeta) -> usize {
        match self {
            Carry::Body => e.pos.len as usize,
            Carry::IdOnly => 4,
        }
    }
}

/// An `envelopes` array and the `ids` array beside it, being written.
#[derive(Debug)]
pub struct EnvelopeList {
    body: Vec<u8>,
    ids: Vec<u8>,
    count: usize,
}

/// Bytes of one id in the `ids` array: `"sha256:<64 hex>"` and a comma.
const ID_BYTES: usize = 7 + 64 + 3;

impl EnvelopeList {
    /// A list for `entries`, with room for all of them and for `tail` more bytes
    /// after (what the caller writes once [`EnvelopeList::finish`] returns).
    pub fn for_entries(entries: &[(&EnvMeta, Carry)], tail: usize) -> EnvelopeList {
        EnvelopeList::with_capacity(entries.iter().map(|(e, c)| c.text_len(e)), tail)
    }

    /// A list with room for entries of these text lengths (bytes, or 4 for an id
    /// only) and `tail` more bytes.
    pub fn with_capacity(
        lengths: impl ExactSizeIterator<Item = usize>,
        tail: usize,
    ) -> EnvelopeList {
        let n = lengths.len();
        let bodies: usize = lengths.map(|l| l + 1).sum();
        let ids = n * ID_BYTES;
        let mut body = Vec::with_capacity(16 + bodies + 10 + ids + tail);
        body.extend_from_slice(b"{\"envelopes\":[");
        EnvelopeList {
            body,
            ids: Vec::with_capacity(ids),
            count: 0,
        }
    }

    /// Appends one envelope (its bytes read from `store`'s log, or `null`). On error
    /// the list is as it was.
    pub fn add(&mut self, store: &Store, e: &EnvMeta, carry: Carry) -> Result<(), StoreError> {
        self.add_with(&e.id, carry, |out| store.envelope_bytes_onto(e, out))
    }

    /// Adds the envelope `id`, its bytes (with [`Carry::Body`]) written by `write`;
    /// on error the list is as it was.
    pub fn add_with(
        &mut self,
        id: &[u8; 32],
        carry: Carry,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mark = self.body.len();
        if self.count > 0 {
            self.body.push(b',');
        }
        match carry {
            Carry::Body => {
                if let Err(err) = write(&mut self.body) {
                    self.body.truncate(mark);
                    return Err(err);
                }
            }
            Carry::IdOnly => self.body.extend_from_slice(b"null"),
        }
        if self.count > 0 {
            self.ids.push(b',');
        }
        self.ids.push(b'"');
        self.ids
            .extend_from_slice(EnvelopeId::from_digest_bytes(id).as_str().as_bytes());
        self.ids.push(b'"');
        self.count += 1;
        Ok(())
    }

    /// How many envelopes (or ids) the list holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The body so far, up to the end of the `ids` array: the caller closes the
    /// object (`}`) after any members of its own.
    pub fn finish(self) -> Vec<u8> {
        let EnvelopeList { mut body, ids, .. } = self;
        body.extend_from_slice(b"],\"ids\":[");
        body.extend_from_slice(&ids);
        body.push(b']');
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list reads each envelope from the log into the body, writes `null` for an
    /// id-only entry, keeps the ids in the same order, and is sized once: the body
    /// never grows past the capacity it was given.
    #[test]
    fn the_list_carries_the_logged_bytes_in_one_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::tests::memory_store(dir.path());
        let texts = crate::store::tests::ingest_signed(&store, 3);
        let view = store.read();
        let envs = view.envelopes();
        assert_eq!(envs.len(), 3);
        let entries = [
            (&envs[0], Carry::Body),
            (&envs[1], Carry::IdOnly),
            (&envs[2], Carry::Body),
        ];
        let mut list = EnvelopeList::for_entries(&entries, 2);
        let capacity = list.body.capacity();
        for (e, c) in entries {
            list.add(&store, e, c).unwrap();
        }
        assert_eq!(list.len(), 3);
        let mut body = list.finish();
        body.push(b'}');
        assert_eq!(body.capacity(), capacity, "sized once");
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let got = doc["envelopes"].as_array().unwrap();
        assert_eq!(
            got[0],
            serde_json::from_slice::<serde_json::Value>(&texts[0]).unwrap()
        );
        assert!(got[1].is_null());
        assert_eq!(
            got[2],
            serde_json::from_slice::<serde_json::Value>(&texts[2]).unwrap()
        );
        let ids: Vec<String> = doc["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = envs
            .iter()
            .map(|e| EnvelopeId::from_digest_bytes(&e.id).to_string())
            .collect();
        assert_eq!(ids, want);
    }

    /// An envelope the log cannot give leaves the list as it was.
    #[test]
    fn a_failed_read_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::tests::memory_store(dir.path());
        crate::store::tests::ingest_signed(&store, 1);
        let view = store.read();
        let good = view.envelopes()[0].clone();
        let mut bad = good.clone();
        bad.pos.len += 1_000_000;
        let mut list = EnvelopeList::for_entries(&[(&good, Carry::Body)], 1);
        list.add(&store, &good, Carry::Body).unwrap();
        assert!(list.add(&store, &bad, Carry::Body).is_err());
        assert_eq!(list.len(), 1);
        let mut body = list.finish();
        body.push(b'}');
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["envelopes"].as_array().unwrap().len(), 1);
        assert_eq!(doc["ids"].as_array().unwrap().len(), 1);
    }
}
