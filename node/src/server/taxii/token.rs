//! TAXII `next` tokens: opaque, stateless, tamper-evident.
//!
//! A token carries the `date_added` of the last object of the page it ends. It is
//! bound by an HMAC (keyed with a secret the node keeps in its store, so tokens
//! survive restarts) to the collection and the query's filters: a forged token, or one
//! replayed against another collection or other filters, is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;

fn mac(key: &[u8; 32], scope: &str, filters: &str, after: i64) -> [u8; MAC_LEN] {
    let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| {
        // HMAC accepts keys of any length; this cannot happen.
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&[0u8; 32]).expect("HMAC key")
    });
    m.update(&[VERSION]);
    m.update(scope.as_bytes());
    m.update(&[0]);
    m.update(filters.as_bytes());
    m.update(&[0]);
    m.update(&after.to_be_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// Makes a token resuming after `after` (µs `date_added`).
pub fn encode(key: &[u8; 32], scope: &str, filters: &str, after: i64) -> String {
    let mut b = Vec::with_capacity(1 + 8 + MAC_LEN);
    b.push(VERSION);
    b.extend_from_slice(&after.to_be_bytes());
    b.extend_from_slice(&mac(key, scope, filters, after));
    URL_SAFE_NO_PAD.encode(b)
}

/// Checks a token and returns the `date_added` it resumes after.
pub fn decode(key: &[u8; 32], scope: &str, filters: &str, token: &str) -> Option<i64> {
    if token.len() > 64 {
        return None;
    }
    let b = URL_SAFE_NO_PAD.decode(token).ok()?;
    if b.len() != 1 + 8 + MAC_LEN || b[0] != VERSION {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[1..9]);
    let after = i64::from_be_bytes(a);
    let expected = mac(key, scope, filters, after);
    let diff = expected
        .iter()
        .zip(&b[9..])
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    (diff == 0).then_some(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let k = [7u8; 32];
        let t = encode(&k, "consolidated", "type=indicator", 1234);
        assert_eq!(decode(&k, "consolidated", "type=indicator", &t), Some(1234));
        assert_eq!(
            decode(&k, "local", "type=indicator", &t),
            None,
            "other collection"
        );
        assert_eq!(decode(&k, "consolidated", "", &t), None, "other filters");
        assert_eq!(
            decode(&[8u8; 32], "consolidated", "type=indicator", &t),
            None,
            "other node"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[8] ^= 1;
        assert_eq!(
            decode(
                &k,
                "consolidated",
                "type=indicator",
                &URL_SAFE_NO_PAD.encode(raw)
            ),
            None
        );
        for junk in ["", "!!", "AAAA", &"A".repeat(500)] {
            assert_eq!(decode(&k, "consolidated", "", junk), None);
        }
    }
}
