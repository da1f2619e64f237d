//! Running independent CPU-bound work on every core.
//!
//! Publishing and receiving spend nearly all their time on work that is independent
//! per object or per envelope: parsing, STIX validation, the canonical form, hashes and
//! signatures. A node has few cores (two on the machines our members run), and one
//! request would otherwise use one of them. These helpers cut such work into small
//! contiguous blocks that scoped threads, one per core, take in turn (so that a core
//! slowed by other work does not hold up the others), and return the results in input
//! order. Small inputs stay on the calling thread, where a thread would cost more
//! than it saves.
//!
//! Threads are scoped per call rather than pooled: a call does milliseconds of work, a
//! thread costs microseconds, and nothing outlives the request that started it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Most threads one call uses.
const MAX_THREADS: usize = 8;

/// Threads one call may use: the machine's cores, at most [`MAX_THREADS`].
pub fn threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, MAX_THREADS)
    })
}

/// How many parts `len` items are cut into when work starts at `min_len` items.
fn parts(len: usize, min_len: usize) -> usize {
    if len < min_len.max(2) {
        1
    } else {
        threads().min(len)
    }
}

/// Items per block when `len` items are spread over `n` threads: small enough that a
/// thread slowed by other work (another request, a drop, the store) leaves its share
/// to the others, large enough that taking a block costs nothing next to its work.
fn block_size(len: usize, n: usize) -> usize {
    len.div_ceil(n * BLOCKS_PER_THREAD).max(1)
}

/// Blocks per thread: see [`block_size`].
const BLOCKS_PER_THREAD: usize = 16;

/// Runs `work(block)` for blocks `0..blocks` on `n` threads (the calling one among
/// them), each taking the next block as soon as it is done with one; returns every
/// block's result in block order.
///
/// A panic in `work` is re-raised on the calling thread, as if the work had run there.
fn run_blocks<R, W>(n: usize, blocks: usize, work: W) -> Vec<R>
where
    R: Send,
    W: Fn(usize) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let take = || {
        let mut done = Vec::new();
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= blocks {
                return done;
            }
            done.push((b, work(b)));
        }
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..n).map(|_| s.spawn(take)).collect();
        let mut all = take();
        for h in handles {
            match h.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|&(b, _)| b);
    all.into_iter().map(|(_, r)| r).collect()
}

/// `f(index, item)` for every item, in order, spread over the cores once there are at
/// least `min_len` items.
///
/// A panic in `f` is re-raised on the calling thread, as if the work had run there.
pub fn map<T, R, F>(items: &[T], min_len: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(usize, &T) -> R + Sync,
{
    let n = parts(items.len(), min_len);
    if n == 1 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let size = block_size(items.len(), n);
    let blocks = run_blocks(n, items.len().div_ceil(size), |b| {
        let first = b * size;
        items[first..(first + size).min(items.len())]
            .iter()
            .enumerate()
            .map(|(i, t)| f(first + i, t))
            .collect::<Vec<R>>()
    });
    blocks.into_iter().flatten().collect()
}

/// Like [`map`], for work that consumes its items.
pub fn map_owned<T, R, F>(items: Vec<T>, min_len: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = parts(items.len(), min_len);
    if n == 1 {
        return items.into_iter().map(f).collect();
    }
    let size = block_size(items.len(), n);
    let mut items = items.into_iter();
    let chunks: Vec<Mutex<Vec<T>>> = (0..items.len().div_ceil(size))
        .map(|_| Mutex::new(items.by_ref().take(size).collect()))
        .collect();
    let blocks = run_blocks(n, chunks.len(), |b| {
        // Each block is taken once: the lock is never contended.
        let chunk = std::mem::take(&mut *chunks[b].lock().unwrap_or_else(|p| p.into_inner()));
        chunk.into_iter().map(&f).collect::<Vec<R>>()
    });
    blocks.into_iter().flatten().collect()
}

/// How [`pipeline`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum PipelineEnd<E> {
    /// Every item was worked on and handed on.
    Done,
    /// `work` failed for an item: the items before it were handed on, none after.
    WorkFailed(E),
    /// `sink` failed: nothing more was handed on.
    SinkFailed(E),
}

/// Runs `work` on each item on every core, each core taking the next item as soon as
/// it is done with one, while the calling thread hands the results to `sink` in input
/// order: every time results are ready, all of those that follow the ones handed on
/// already, in one call (so that a sink that must write in order, such as a store that
/// makes each batch durable with one `fsync`, writes while the next are worked on).
///
/// A failure stops the workers after the item at hand. After a failed item, the
/// results after it are never handed on: the sink sees an unbroken prefix of the
/// input (a publish never stores an envelope whose predecessor was not stored).
pub fn pipeline<T, R, E, W, S>(items: Vec<T>, work: W, mut sink: S) -> PipelineEnd<E>
where
    T: Send,
    R: Send,
    E: Send,
    W: Fn(T) -> Result<R, E> + Sync,
    S: FnMut(Vec<R>) -> Result<(), E>,
{
    use std::sync::atomic::AtomicBool;
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (done, results) = std::sync::mpsc::channel::<(usize, Result<R, E>)>();
        for _ in 0..threads().min(slots.len()) {
            let (done, slots, next, stop, work) = (done.clone(), &slots, &next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = slots
                        .get(i)
                        .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take())
                    else {
                        break;
                    };
                    let result = work(item);
                    let failed = result.is_err();
                    // A closed channel means the sink failed.
                    if done.send((i, result)).is_err() || failed {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(done);
        let mut handed = 0usize;
        let mut waiting: std::collections::BTreeMap<usize, R> = Default::default();
        let mut end = PipelineEnd::Done;
        while let Ok(first) = results.recv() {
            for (i, result) in std::iter::once(first).chain(results.try_iter()) {
                match result {
                    Ok(r) => {
                        waiting.insert(i, r);
                    }
                    Err(e) => {
                        if matches!(end, PipelineEnd::Done) {
                            end = PipelineEnd::WorkFailed(e);
                        }
                    }
                }
            }
            let mut ready = Vec::new();
            while let Some(r) = waiting.remove(&(handed + ready.len())) {
                ready.push(r);
            }
            if ready.is_empty() {
                continue;
            }
            handed += ready.len();
            if let Err(e) = sink(ready) {
                end = PipelineEnd::SinkFailed(e);
                break;
            }
        }
        // Workers still at work stop after their item.
        stop.store(true, Ordering::Relaxed);
        end
    })
}

/// Drops `value` on a thread of its own.
///
/// Freeing what a large publish or sync batch parsed (hundreds of thousands of JSON
/// nodes) takes milliseconds that the answer to the request need not wait for. If no
/// thread can be started, the value is dropped here.
pub fn drop_elsewhere<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_indexes() {
        for len in [0usize, 1, 2, 3, 7, 100, 1001] {
            let items: Vec<usize> = (0..len).collect();
            let out = map(&items, 2, |i, &t| (i, t * 2));
            assert_eq!(out.len(), len);
            for (i, &(ix, v)) in out.iter().enumerate() {
                assert_eq!((ix, v), (i, i * 2));
            }
            let owned = map_owned(items.clone(), 2, |t| t + 1);
            assert_eq!(owned, (1..=len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn small_inputs_stay_on_the_calling_thread() {
        let me = std::thread::current().id();
        let items = [1, 2, 3];
        assert!(
            map(&items, 4, |_, _| std::thread::current().id() == me)
                .iter()
                .all(|&same| same)
        );
        assert!(
            map_owned(items.to_vec(), 4, |_| std::thread::current().id() == me)
                .iter()
                .all(|&same| same)
        );
    }

    #[test]
    fn a_core_held_up_leaves_its_share_to_the_others() {
        if threads() < 2 {
            return;
        }
        // The thread that takes the first block is held up there; the others take
        // every block after it, so it ends up with far less than an equal share.
        let items: Vec<usize> = (0..4000).collect();
        let out = map(&items, 2, |i, _| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            std::thread::current().id()
        });
        let held_up = out[0];
        let its_share = out.iter().filter(|&&t| t == held_up).count();
        assert!(
            its_share < items.len() / 4,
            "{its_share} of {}",
            items.len()
        );
        let owned = map_owned(items.clone(), 2, |i| {
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            (i, std::thread::current().id())
        });
        assert!(owned.iter().enumerate().all(|(k, &(i, _))| k == i));
        let held_up = owned[0].1;
        let its_share = owned.iter().filter(|&&(_, t)| t == held_up).count();
        assert!(
            its_share < items.len() / 4,
            "{its_share} of {}",
            items.len()
        );
    }

    #[test]
    fn a_pipeline_hands_on_results_in_order_and_stops_at_a_failure() {
        for len in [0usize, 1, 5, 300] {
            let mut seen = Vec::new();
            let end = pipeline(
                (0..len).collect(),
                |i: usize| -> Result<usize, String> {
                    if i % 7 == 3 {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    Ok(i * 10)
                },
                |batch| {
                    seen.extend(batch);
                    Ok(())
                },
            );
            assert_eq!(end, PipelineEnd::Done);
            assert_eq!(seen, (0..len).map(|i| i * 10).collect::<Vec<_>>());
        }
        // Work fails at 40: exactly 0..40 are handed on.
        let mut seen = Vec::new();
        let end = pipeline(
            (0..200).collect(),
            |i: usize| {
                if i == 40 {
                    Err(format!("item {i}"))
                } else {
                    Ok(i)
                }
            },
            |batch| {
                seen.extend(batch);
                Ok(())
            },
        );
        assert_eq!(end, PipelineEnd::WorkFailed("item 40".to_string()));
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        // The sink fails: nothing is handed on after the failing call.
        let mut calls = 0;
        let end = pipeline(
            (0..200).collect(),
            |i: usize| -> Result<usize, String> { Ok(i) },
            |_| {
                calls += 1;
                Err("full".to_string())
            },
        );
        assert_eq!(end, PipelineEnd::SinkFailed("full".to_string()));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_panic_reaches_the_caller() {
        let items: Vec<u32> = (0..64).collect();
        let r = std::panic::catch_unwind(|| {
            map(&items, 2, |_, &t| {
                assert!(t != 50, "item 50");
                t
            })
        });
        assert!(r.is_err());
    }
}
