//! [`IndexEngine`] on sled 0.34.
//!
//! sled is used for compact per-envelope records, not per-object rows: measured here,
//! sled 0.34 sustains tens of thousands of inserts per second, so a row per object per
//! index would cap ingest far below the target. One record per envelope keeps sled
//! writes at a few per publish.

use super::StoreError;
use super::engine::{Entry, IndexEngine, Op, Space};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long closing the index waits for sled's final flush (see the `Drop` impl).
const CLOSE_DEADLINE: Duration = Duration::from_secs(20);

/// sled-backed index engine.
pub struct SledEngine {
    /// Always `Some` while the engine is in use; `Drop` takes it to close it on a
    /// thread of its own.
    open: Option<Open>,
    path: PathBuf,
    cache_bytes: u64,
}

/// The open database and its trees.
struct Open {
    db: sled::Db,
    trees: Vec<(Space, sled::Tree)>,
}

fn engine_err(e: sled::Error) -> StoreError {
    match e {
        // Keep the I/O error itself so a full disk is recognised as such.
        sled::Error::Io(source) => StoreError::Io {
            path: "index".into(),
            source,
        },
        e => StoreError::Engine(Box::new(e)),
    }
}

/// Whether opening failed because the database's file lock is held. sled 0.34 reports
/// that as an `Other` I/O error whose text names the lock (its `config.rs`), not as
/// `WouldBlock`.
fn lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

impl SledEngine {
    /// Opens (or creates) the engine in `path`. `cache_bytes` bounds sled's page cache.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<SledEngine, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(1000));
        // A Db dropped a moment ago (a rebuild, a restart in-process) can still hold its
        // file lock while its flusher thread winds down (up to a flush interval, longer
        // on a loaded machine): retry that case for up to 10 s.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if lock_busy(&e) && attempts < 500 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(StoreError::IndexUnavailable {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        };
        let mut trees = Vec::new();
        for s in Space::ALL {
            trees.push((s, db.open_tree(s.name()).map_err(engine_err)?));
        }
        Ok(SledEngine {
            open: Some(Open { db, trees }),
            path: path.to_path_buf(),
            cache_bytes,
        })
    }

    fn handles(&self) -> Result<&Open, StoreError> {
        self.open
            .as_ref()
            .ok_or_else(|| StoreError::Engine("the index is closed".into()))
    }

    fn tree(&self, space: Space) -> Result<&sled::Tree, StoreError> {
        // Every Space is opened in `open`, in Space::ALL order.
        let trees = &self.handles()?.trees;
        Ok(&trees[Space::ALL.iter().position(|s| *s == space).unwrap_or(0)].1)
    }
}

impl Drop for SledEngine {
    /// sled flushes when the last handle drops and waits for that flush without limit.
    /// Once, at the end of a five-node demo, that wait never ended (the closing thread
    /// sat in sled's `make_stable` for 15 minutes with its I/O threads idle), and the
    /// process hung. Nothing depends on this flush: every acknowledged envelope is in
    /// the fsynced evidence log, and opening the store replays whatever the index had
    /// not recorded; the rest is bookkeeping that is safe to lose (peer cursors and
    /// TAXII statuses written without a flush of their own: a cursor that goes back
    /// only brings envelopes this node then skips as held). So the flush and the drop
    /// run on a thread of their own, and the owner waits for them at most
    /// [`CLOSE_DEADLINE`]; after that it goes on (and the process can exit) without
    /// them.
    fn drop(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("index-close".into())
            .spawn(move || {
                let flushed = open.db.flush().map(|_| ());
                drop(open);
                let _ = tx.send(flushed);
            });
        if let Err(e) = spawned {
            // The handles went down with the closure, closed on this thread.
            tracing::warn!(error = %e, "no thread to close the index on; closed it in place");
            return;
        }
        let path = self.path.display().to_string();
        match rx.recv_timeout(CLOSE_DEADLINE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(
                path,
                error = %e,
                "the index's final flush failed; the next start replays the log into it"
            ),
            Err(_) => tracing::warn!(
                path,
                "the index did not close within {} s; leaving it (the next start replays \
                 the log into it)",
                CLOSE_DEADLINE.as_secs()
            ),
        }
    }
}

impl IndexEngine for SledEngine {
    fn reopened(self: Box<Self>) -> Result<Box<dyn IndexEngine>, StoreError> {
        // Closing flushes (within its deadline, see `Drop`).
        let (path, cache) = (self.path.clone(), self.cache_bytes);
        drop(self);
        Ok(Box::new(SledEngine::open(&path, cache)?))
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(space)?
            .get(key)
            .map_err(engine_err)?
            .map(|v| v.to_vec()))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut batches: Vec<(Space, sled::Batch)> = Vec::new();
        for op in ops {
            let space = match &op {
                Op::Put(s, ..) | Op::Delete(s, _) => *s,
            };
            let idx = match batches.iter().position(|(s, _)| *s == space) {
                Some(i) => i,
                None => {
                    batches.push((space, sled::Batch::default()));
                    batches.len() - 1
                }
            };
            match op {
                Op::Put(_, k, v) => batches[idx].1.insert(k, v),
                Op::Delete(_, k) => batches[idx].1.remove(k),
            }
        }
        for (space, batch) in batches {
            self.tree(space)?.apply_batch(batch).map_err(engine_err)?;
        }
        Ok(())
    }

    fn scan(&self, space: Space, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        self.tree(space)?
            .range(from..)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(engine_err))
            .collect()
    }

    fn last(&self, space: Space) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .tree(space)?
            .last()
            .map_err(engine_err)?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.handles()?.db.flush().map(|_| ()).map_err(engine_err)
    }

    fn clear(&self) -> Result<(), StoreError> {
        for (_, t) in &self.handles()?.trees {
            t.clear().map_err(engine_err)?;
        }
        self.flush()
    }

    fn disk_bytes(&self) -> u64 {
        dir_size(&self.path)
    }
}

/// Bytes of every file below a directory.
pub fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second open of the same index waits for the first to let go of the file lock
    /// (a restart right after a crash, the reopen after the start-up scan) instead of
    /// failing at once.
    #[test]
    fn open_waits_for_a_held_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let first = SledEngine::open(&path, 1 << 20).unwrap();
        first
            .apply(vec![Op::Put(Space::Meta, b"k".to_vec(), b"v".to_vec())])
            .unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        let t = std::time::Instant::now();
        let second = SledEngine::open(&path, 1 << 20).expect("waits for the lock");
        assert!(t.elapsed() >= std::time::Duration::from_millis(250));
        assert_eq!(second.get(Space::Meta, b"k").unwrap(), Some(b"v".to_vec()));
        holder.join().unwrap();
    }

    /// Dropping the engine closes it on its own thread and flushes what was written
    /// without a flush of its own: a reopen finds it, and finds the lock released.
    #[test]
    fn drop_flushes_and_releases_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let first = SledEngine::open(&path, 1 << 20).unwrap();
        first
            .apply(vec![Op::Put(
                Space::Peers,
                b"p".to_vec(),
                b"cursor".to_vec(),
            )])
            .unwrap();
        drop(first);
        let t = std::time::Instant::now();
        let second = SledEngine::open(&path, 1 << 20).unwrap();
        assert!(t.elapsed() < CLOSE_DEADLINE);
        assert_eq!(
            second.get(Space::Peers, b"p").unwrap(),
            Some(b"cursor".to_vec())
        );
    }
}
