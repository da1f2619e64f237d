//! The view digest: a per-TLP-level summary of the latest versions a node holds, so
//! two operators can tell at a glance whether their nodes agree.
//!
//! Each latest version contributes `SHA-256(type "--" uuid | modified | content hash)`;
//! contributions are added modulo 2^256. Addition is commutative and invertible, so the
//! digest is independent of arrival order and is updated in O(1) when a latest version
//! changes (subtract the old contribution, add the new) — no scan per write.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// A 256-bit order-independent digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ViewDigest {
    limbs: [u64; 4],
    /// Number of latest versions summarised.
    pub count: u64,
}

/// The contribution of one object version.
pub fn contribution(type_name: &str, uuid: u128, modified: i64, hash: &[u8; 16]) -> [u64; 4] {
    let mut h = Sha256::new();
    h.update(type_name.as_bytes());
    h.update(b"--");
    h.update(uuid.to_be_bytes());
    h.update(modified.to_be_bytes());
    h.update(hash);
    let d = h.finalize();
    let mut limbs = [0u64; 4];
    for (i, l) in limbs.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[i * 8..i * 8 + 8]);
        *l = u64::from_le_bytes(b);
    }
    limbs
}

impl ViewDigest {
    /// Adds a version (mod 2^256).
    pub fn add(&mut self, c: &[u64; 4]) {
        let mut carry = 0u64;
        for (l, x) in self.limbs.iter_mut().zip(c) {
            let (s1, o1) = l.overflowing_add(*x);
            let (s2, o2) = s1.overflowing_add(carry);
            *l = s2;
            carry = u64::from(o1) + u64::from(o2);
        }
        self.count += 1;
    }

    /// Removes a version previously added.
    pub fn remove(&mut self, c: &[u64; 4]) {
        let mut borrow = 0u64;
        for (l, x) in self.limbs.iter_mut().zip(c) {
            let (s1, o1) = l.overflowing_sub(*x);
            let (s2, o2) = s1.overflowing_sub(borrow);
            *l = s2;
            borrow = u64::from(o1) + u64::from(o2);
        }
        self.count = self.count.saturating_sub(1);
    }

    /// A digest from its four limbs (least significant first) and count, as a
    /// database keeps it.
    pub fn from_parts(limbs: [u64; 4], count: u64) -> ViewDigest {
        ViewDigest { limbs, count }
    }

    /// Its four limbs, least significant first.
    pub fn limbs(&self) -> [u64; 4] {
        self.limbs
    }

    /// Hex form (64 digits), what operators compare.
    pub fn hex(&self) -> String {
        self.limbs
            .iter()
            .rev()
            .map(|l| format!("{l:016x}"))
            .collect()
    }
}

impl fmt::Display for ViewDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.count, self.hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_invertible() {
        let a = contribution("indicator", 1, 5, &[1; 16]);
        let b = contribution("indicator", 2, 5, &[2; 16]);
        let c = contribution("malware", 3, 9, &[3; 16]);
        let mut x = ViewDigest::default();
        x.add(&a);
        x.add(&b);
        x.add(&c);
        let mut y = ViewDigest::default();
        y.add(&c);
        y.add(&a);
        y.add(&b);
        assert_eq!(x, y);
        y.remove(&b);
        assert_ne!(x, y);
        y.add(&b);
        assert_eq!(x, y);
        let mut z = ViewDigest::default();
        z.add(&a);
        z.remove(&a);
        assert_eq!(z, ViewDigest::default());
        assert_eq!(x.hex().len(), 64);
    }
}
