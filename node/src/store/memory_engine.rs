//! [`IndexEngine`] in memory: for tests, and the proof that the store does not depend
//! on sled (an engine is a trait implementation, nothing more).

use super::StoreError;
use super::engine::{Entry, IndexEngine, Op, Space};
use std::collections::BTreeMap;
use std::sync::Mutex;

type Entries = BTreeMap<(Space, Vec<u8>), Vec<u8>>;

/// In-memory ordered engine.
#[derive(Default)]
pub struct MemoryEngine {
    spaces: Mutex<Entries>,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IndexEngine for MemoryEngine {
    fn reopened(self: Box<Self>) -> Result<Box<dyn IndexEngine>, StoreError> {
        // Nothing to drop: the entries are the engine.
        Ok(self)
    }

    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(&(space, key.to_vec())).cloned())
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut m = self.lock();
        for op in ops {
            match op {
                Op::Put(s, k, v) => {
                    m.insert((s, k), v);
                }
                Op::Delete(s, k) => {
                    m.remove(&(s, k));
                }
            }
        }
        Ok(())
    }

    fn scan(&self, space: Space, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        Ok(self
            .lock()
            .range((space, from.to_vec())..)
            .take_while(|((s, _), _)| *s == space)
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, space: Space) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .lock()
            .iter()
            .rev()
            .find(|((s, _), _)| *s == space)
            .map(|((_, k), v)| (k.clone(), v.clone())))
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.lock().clear();
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        0
    }
}
