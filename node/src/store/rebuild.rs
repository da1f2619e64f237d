//! `synergia rebuild`: every index rebuilt from the evidence log, every signature
//! verified again against the current roster.

use super::engine::{Op, Space};
use super::log::{EvidenceLog, LogRecord};
use super::view::View;
use super::{
    FORMAT_KEY, INDEXED_THROUGH_KEY, RECOVER_KEY, Store, StoreError, StoreOptions, open_engine,
    prepare, put_record, record, record_from,
};
use crate::envelope::{Envelope, VerifyOptions, verify_batch};
use crate::roster::Roster;
use crate::stix::tlp::{ALL_LEVELS, TlpLevel};
use std::path::Path;

/// What a rebuild found.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// Envelopes read from the log.
    pub envelopes: u64,
    /// Envelopes that no longer verify (ordinal, reason); left out of the view.
    pub rejected: Vec<(u64, String)>,
    /// Object versions in the rebuilt view.
    pub versions: u64,
    /// Digest per level after the rebuild.
    pub digests: Vec<(TlpLevel, super::ViewDigest)>,
}

impl Store {
    /// Rebuilds the index of the store in `dir` from its evidence log.
    ///
    /// The old index is deleted first, so this works when it cannot even be opened.
    /// Refused (`StoreError::InUse`) while a node serves this directory.
    pub fn rebuild(
        dir: &Path,
        opts: &StoreOptions,
        roster: &Roster,
    ) -> Result<RebuildReport, StoreError> {
        super::lock::private_dir(dir)?;
        let _lock = super::lock::DirLock::acquire(dir)?;
        let index = dir.join("index");
        if index.exists() {
            std::fs::remove_dir_all(&index).map_err(|source| StoreError::Io {
                path: index.display().to_string(),
                source,
            })?;
        }
        let engine = open_engine(dir, opts)?;
        engine.clear()?;
        engine.apply(vec![
            Op::Put(
                Space::Meta,
                FORMAT_KEY.to_vec(),
                vec![record::RECORD_FORMAT],
            ),
            // Whatever the log holds, it may lack this member's last envelopes.
            Op::Put(Space::Meta, RECOVER_KEY.to_vec(), vec![1]),
        ])?;
        let (log, _) = EvidenceLog::open(&dir.join("log"), u64::MAX)?;
        let mut view = View::new();
        let mut report = RebuildReport {
            envelopes: 0,
            rejected: Vec::new(),
            versions: 0,
            digests: Vec::new(),
        };
        let mut chunk: Vec<LogRecord> = Vec::with_capacity(64);
        let flush_chunk = |chunk: &mut Vec<LogRecord>,
                           view: &mut View,
                           report: &mut RebuildReport|
         -> Result<(), StoreError> {
            report.envelopes += chunk.len() as u64;
            let good = verified(chunk, roster, &mut report.rejected);
            let mut ops = Vec::with_capacity(good.len());
            for (r, env) in good {
                let p = prepare::prepare(&env)?;
                let rec = record_from(&env, &r.header, r.pos, p);
                view.apply(&rec);
                ops.push(put_record(&rec));
            }
            engine.apply(ops)
        };
        log.read_all(|r| {
            chunk.push(r);
            if chunk.len() == 64 {
                flush_chunk(&mut chunk, &mut view, &mut report)?;
            }
            Ok(())
        })?;
        flush_chunk(&mut chunk, &mut view, &mut report)?;
        if log.next_ordinal() > 0 {
            engine.apply(vec![Op::Put(
                Space::Meta,
                INDEXED_THROUGH_KEY.to_vec(),
                (log.next_ordinal() - 1).to_be_bytes().to_vec(),
            )])?;
        }
        engine.flush()?;
        report.versions = view.version_count() as u64;
        report.digests = ALL_LEVELS.iter().map(|l| (*l, view.digest(*l))).collect();
        Ok(report)
    }
}

/// Parses and verifies the log records of `chunk` (emptied) against `roster`, in one
/// batch: the records that verify, with their envelopes; each that does not is added
/// to `rejected` with its log ordinal and why.
pub(crate) fn verified(
    chunk: &mut Vec<LogRecord>,
    roster: &Roster,
    rejected: &mut Vec<(u64, String)>,
) -> Vec<(LogRecord, Envelope)> {
    let mut parsed = Vec::with_capacity(chunk.len());
    for r in chunk.drain(..) {
        match Envelope::from_slice(&r.envelope) {
            Ok(e) => parsed.push((r, e)),
            Err(e) => rejected.push((r.header.ordinal, e.to_string())),
        }
    }
    let envs: Vec<&Envelope> = parsed.iter().map(|(_, e)| e).collect();
    let verdicts = verify_batch(&envs, roster, &VerifyOptions::default());
    parsed
        .into_iter()
        .zip(verdicts)
        .filter_map(|(r, verdict)| match verdict {
            Ok(()) => Some(r),
            Err(e) => {
                rejected.push((r.0.header.ordinal, format!("[{}] {e}", e.code())));
                None
            }
        })
        .collect()
}
