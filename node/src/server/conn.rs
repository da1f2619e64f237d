//! Connection admission and lifetime (security finding 5): one slot per connection
//! out of `limits.max_connections`; connections without a client certificate —
//! handshakes under way and bearer-token clients — are also counted per IP address
//! (`max_connections_per_address`), and, once established, against the places kept
//! for them (`max_connections_without_certificate`), so that callers who cannot
//! authenticate cannot take the slots of those who can.

use crate::config::Limits;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The node's connection slots.
#[derive(Debug)]
pub struct Slots {
    total: Arc<Semaphore>,
    total_size: u32,
    without_certificate: Arc<Semaphore>,
    per_address_limit: usize,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A place counted against one address until dropped.
#[derive(Debug)]
struct AddressPlace {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection whose handshake has not finished.
#[derive(Debug)]
pub struct Admitted {
    total: OwnedSemaphorePermit,
    address: AddressPlace,
    without_certificate: Arc<Semaphore>,
}

/// An established connection's places, released when it ends.
#[derive(Debug)]
pub struct Established {
    _total: OwnedSemaphorePermit,
    _address: Option<AddressPlace>,
    _without_certificate: Option<OwnedSemaphorePermit>,
}

impl Slots {
    /// Slots for `limits`.
    pub fn new(limits: &Limits) -> Slots {
        let total_size = u32::try_from(limits.max_connections).unwrap_or(u32::MAX >> 4);
        Slots {
            total: Arc::new(Semaphore::new(total_size as usize)),
            total_size,
            without_certificate: Arc::new(Semaphore::new(
                limits.max_connections_without_certificate,
            )),
            per_address_limit: limits.max_connections_per_address,
            per_address: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Admits a new TCP connection from `ip`, or says which limit refuses it.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, &'static str> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| "total")?;
        {
            let mut m = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(ip).or_default();
            if *n >= self.per_address_limit {
                return Err("per-address");
            }
            *n += 1;
        }
        Ok(Admitted {
            total,
            address: AddressPlace {
                ip,
                counts: self.per_address.clone(),
            },
            without_certificate: self.without_certificate.clone(),
        })
    }

    /// Waits until every connection has ended, up to `limit`; whether they all did.
    pub async fn drained(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.total.acquire_many(self.total_size))
            .await
            .is_ok()
    }
}

impl Admitted {
    /// The handshake finished: a connection with a client certificate (verified by
    /// TLS against the federation CA) leaves its address's count; one without takes
    /// a place of those kept for certificate-less callers, or is refused.
    pub fn established(self, with_certificate: bool) -> Result<Established, &'static str> {
        if with_certificate {
            return Ok(Established {
                _total: self.total,
                _address: None,
                _without_certificate: None,
            });
        }
        let place = self
            .without_certificate
            .clone()
            .try_acquire_owned()
            .map_err(|_| "without-certificate")?;
        Ok(Established {
            _total: self.total,
            _address: Some(self.address),
            _without_certificate: Some(place),
        })
    }
}

/// What a connection is doing: requests under way and when the last one ended, for
/// the idle timeout.
#[derive(Debug, Clone)]
pub struct Activity(Arc<ActivityInner>);

#[derive(Debug)]
struct ActivityInner {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `start` to the end of the last request.
    last_end_ms: AtomicU64,
}

/// A request under way; its end is noted when dropped.
#[derive(Debug)]
pub struct Busy(Activity);

/// A response body that keeps its request counted as under way until the body has
/// been sent (or dropped): a long streamed export is not an idle connection.
pub struct HeldBody {
    inner: axum::body::Body,
    _busy: Busy,
}

impl HeldBody {
    /// `inner`, holding `busy` while it is sent.
    pub fn new(inner: axum::body::Body, busy: Busy) -> HeldBody {
        HeldBody { inner, _busy: busy }
    }
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0.0;
        let ms = u64::try_from(a.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.last_end_ms.store(ms, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    /// A new connection, active now.
    pub fn new() -> Activity {
        Activity(Arc::new(ActivityInner {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }))
    }

    /// A request begins.
    pub fn begin(&self) -> Busy {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Whether no request is under way and none ended within `limit`.
    pub fn idle_for(&self, limit: Duration) -> bool {
        let a = &self.0;
        if a.in_flight.load(Ordering::Relaxed) > 0 {
            return false;
        }
        let last = Duration::from_millis(a.last_end_ms.load(Ordering::Relaxed));
        a.start.elapsed().saturating_sub(last) >= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize, without: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_address: per_address,
            max_connections_without_certificate: without,
            ..Limits::default()
        }
    }

    #[test]
    fn an_address_without_certificates_cannot_take_every_slot() {
        let slots = Slots::new(&limits(10, 3, 4));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| slots.admit(a).unwrap()).collect();
        assert_eq!(slots.admit(a).unwrap_err(), "per-address");
        // Established without certificates: still counted against the address, and
        // against the places kept for certificate-less callers.
        let est: Vec<_> = held
            .into_iter()
            .map(|h| h.established(false).unwrap())
            .collect();
        assert_eq!(slots.admit(a).unwrap_err(), "per-address");
        let fourth = slots.admit(b).unwrap().established(false).unwrap();
        assert_eq!(
            slots.admit(b).unwrap().established(false).unwrap_err(),
            "without-certificate"
        );
        // A caller with a certificate still gets in, from either address once a
        // place frees, and does not count against its address.
        let with_cert = slots.admit(b).unwrap().established(true).unwrap();
        let again = slots.admit(b).unwrap().established(true).unwrap();
        drop(est);
        let _c = slots.admit(a).unwrap();
        drop((fourth, with_cert, again));
    }

    #[test]
    fn idle_is_measured_from_the_end_of_the_last_request() {
        let a = Activity::new();
        assert!(!a.idle_for(Duration::from_secs(60)));
        assert!(a.idle_for(Duration::ZERO));
        let busy = a.begin();
        assert!(!a.idle_for(Duration::ZERO));
        drop(busy);
        assert!(a.idle_for(Duration::ZERO));
    }
}
