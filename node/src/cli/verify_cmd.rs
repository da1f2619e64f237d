//! `synergia verify`.

use super::EXIT_INVALID;
use anyhow::Context as _;
use std::path::PathBuf;
use synergia::envelope::{Envelope, VerifyOptions};
use synergia::roster::Roster;
use synergia::stix::timestamp::Timestamp;

/// Verify a signed envelope or retraction offline against a roster, and say exactly
/// why it fails.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The envelope (JSON), or - for standard input.
    file: PathBuf,
    /// The federation roster.
    #[arg(long)]
    roster: PathBuf,
    /// Verify as of this instant instead of now (key windows, clock skew).
    #[arg(long)]
    now: Option<Timestamp>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let roster = Roster::load(&a.roster)?;
    let bytes = if a.file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .context("reading standard input")?;
        b
    } else {
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?
    };
    let opts = VerifyOptions {
        now: a.now.unwrap_or_else(Timestamp::now),
        ..VerifyOptions::default()
    };
    let result = Envelope::from_slice(&bytes).and_then(|e| e.verify(&roster, &opts).map(|_| e));
    match result {
        Ok(e) => {
            let h = e.header();
            // What the signature vouches for, by kind.
            let (kind, content) = match e.retraction() {
                Some(r) => (
                    "retraction",
                    format!(
                        "{} envelope(s), {} object(s), reason {}",
                        r.envelopes.len(),
                        r.objects.len(),
                        r.reason
                    ),
                ),
                None => ("envelope", format!("{} objects", e.objects().len())),
            };
            println!(
                "{}: valid {kind} {} from {} (key {}, seq {}, signed {}, tlp {}): {content}",
                a.file.display(),
                e.id(),
                h.origin,
                h.key_id,
                h.seq,
                h.signed_at,
                h.tlp,
            );
            Ok(0)
        }
        Err(err) => {
            println!("{}: INVALID [{}] {err}", a.file.display(), err.code());
            Ok(EXIT_INVALID)
        }
    }
}
