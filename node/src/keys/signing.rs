//! ed25519 signing keys: generation, PKCS#8 PEM files, fingerprints.

use super::{KeyError, read_private, write_private};
use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, EncodePrivateKey as _, spki::der::pem::LineEnding,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::Path;

/// A fresh signing key from the operating system's CSPRNG.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| KeyError::Usage(format!("no system randomness: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes a signing key as PKCS#8 PEM, mode 0600.
pub fn save(key: &SigningKey, path: &Path) -> Result<(), KeyError> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Format {
            path: path.to_path_buf(),
            message: format!("cannot encode key: {e}"),
        })?;
    write_private(path, pem.as_bytes())
}

/// Reads a PKCS#8 PEM signing key (refusing loose permissions).
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = read_private(path)?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
        path: path.to_path_buf(),
        // Never echo the file's contents: it is key material.
        message: "not a PKCS#8 PEM ed25519 private key".into(),
    })
}

/// Short fingerprint of a public key: `SHA256:` and the first 16 bytes in hex, as
/// operators compare them by eye.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let d = Sha256::digest(key.to_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.pem");
        let k = generate().unwrap();
        save(&k, &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(load(&p).unwrap().to_bytes(), k.to_bytes());
        assert_eq!(fingerprint(&k.verifying_key()).len(), 7 + 32);
    }

    #[test]
    fn garbage_key_file_is_a_format_error_without_contents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.pem");
        write_private(&p, b"hunter2").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("PKCS#8") && !e.contains("hunter2"), "{e}");
    }
}
