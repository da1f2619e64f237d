//! Running independent CPU-bound work on every core.
//!
//! Publishing and receiving spend nearly all their time on work that is independent
//! per object or per envelope: parsing, STIX validation, the canonical form, hashes and
//! signatures. A node has few cores (two on the machines our members run), and one
//! request would otherwise use one of them. These helpers cut such work into one
//! contiguous part per core, run the parts on scoped threads and return the results in
//! input order. Small inputs stay on the calling thread, where a thread would cost more
//! than it saves.
//!
//! Threads are scoped per call rather than pooled: a call does milliseconds of work, a
//! thread costs microseconds, and nothing outlives the request that started it.

use std::sync::OnceLock;

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
    let size = items.len().div_ceil(n);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(size)
            .enumerate()
            .skip(1)
            .map(|(c, chunk)| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, t)| f(c * size + i, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        let mut out: Vec<R> = items[..size.min(items.len())]
            .iter()
            .enumerate()
            .map(|(i, t)| f(i, t))
            .collect();
        out.reserve(items.len() - out.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
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
    let size = items.len().div_ceil(n);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(n);
    let mut rest = items;
    while rest.len() > size {
        let tail = rest.split_off(size);
        chunks.push(rest);
        rest = tail;
    }
    chunks.push(rest);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|chunk| s.spawn(move || chunk.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = first.into_iter().map(f).collect();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
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
