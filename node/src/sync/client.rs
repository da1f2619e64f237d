//! HTTPS client for a peer's federation API: the federation CA as the only root, this
//! node's certificate as identity, bounded responses.

use crate::config::Config;
use crate::envelope::EnvelopeId;
use crate::node::receive::Offer;
use crate::tls::{TlsError, client_config_gated};
use serde_json::Value;
use serde_json::value::RawValue;
use std::time::Duration;

/// Largest response body accepted from a peer (a hostile peer cannot exhaust memory).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Why talking to a peer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// TLS material cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Connection, TLS handshake or timeout.
    #[error("cannot reach {peer}: {message}")]
    Unreachable {
        /// Peer.
        peer: String,
        /// Cause.
        message: String,
    },
    /// The peer answered with an error status.
    #[error("{peer} answered {status}: {body}")]
    Status {
        /// Peer.
        peer: String,
        /// HTTP status.
        status: u16,
        /// Start of the answer.
        body: String,
    },
    /// The answer did not come whole within `limits.peer_timeout_secs`.
    #[error("{peer} did not answer in time: {message}")]
    TimedOut {
        /// Peer.
        peer: String,
        /// Cause.
        message: String,
    },
    /// The answer was larger than [`MAX_RESPONSE_BYTES`].
    #[error("{peer} sent an answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge {
        /// Peer.
        peer: String,
    },
    /// The peer's answer is not what the protocol says.
    #[error("{peer} sent a malformed answer: {message}")]
    Malformed {
        /// Peer.
        peer: String,
        /// What is wrong.
        message: String,
    },
    /// The store failed while taking what the peer sent.
    #[error("{}", store_failure(.0))]
    Store(#[from] crate::store::StoreError),
    /// An envelope the peer sent, refused for a passing reason, cannot be kept for a
    /// retry because the peer's retry set is full: nothing more is taken from it.
    #[error("{0}; nothing more is taken from this peer until some of them pass")]
    RetrySetFull(crate::node::peers::deferred::KeepError),
}

impl From<crate::node::peers::deferred::KeepError> for SyncError {
    fn from(e: crate::node::peers::deferred::KeepError) -> Self {
        match e {
            crate::node::peers::deferred::KeepError::Store(e) => SyncError::Store(e),
            other @ (crate::node::peers::deferred::KeepError::Full { .. }
            | crate::node::peers::deferred::KeepError::Backend(_)) => {
                SyncError::RetrySetFull(other)
            }
        }
    }
}

/// What a failed store says in a peer's status: a full disk in so many words, since
/// that is the one an operator can act on at once.
fn store_failure(e: &crate::store::StoreError) -> String {
    if e.is_storage_full() {
        format!("the disk is full; nothing more is taken until space is freed ({e})")
    } else {
        format!("cannot store what the peer sent: {e}")
    }
}

impl SyncError {
    /// Whether the peer says the cursor is past the end of its log (its log was
    /// restored from an older backup): the pull starts again from 0.
    pub fn is_cursor_beyond_head(&self) -> bool {
        matches!(self, SyncError::Status { status: 409, body, .. } if body.contains("cursor-beyond-head"))
    }

    /// Whether the failure may come from the size of what was asked for (an answer
    /// too large, or too slow to arrive whole): the same request made smaller may go
    /// through.
    pub fn is_size_or_time(&self) -> bool {
        matches!(
            self,
            SyncError::TimedOut { .. } | SyncError::TooLarge { .. }
        )
    }

    /// A stable name of the kind of failure, for the per-peer failure counts operators
    /// see (`GET /api/v1/peers`, `/metrics`): one of `node::peers::FAILURE_KINDS`.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::Tls(_) => "tls",
            SyncError::Unreachable { .. } => "unreachable",
            SyncError::TimedOut { .. } => "timeout",
            SyncError::TooLarge { .. } => "too-large",
            SyncError::Status { .. } => "http-status",
            SyncError::Malformed { .. } => "malformed",
            SyncError::Store(e) if e.is_storage_full() => "disk-full",
            SyncError::Store(_) => "store",
            SyncError::RetrySetFull(_) => "retry-set-full",
        }
    }
}

/// A feed page as sent: the envelopes are kept as text (`null` for a relayed one
/// listed by id only). Duplicate members are refused (serde's derived reader does),
/// and each envelope is read strictly when parsed.
#[derive(serde::Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    envelopes: Vec<Option<&'a RawValue>>,
    #[serde(default)]
    ids: Option<Vec<&'a str>>,
    next: &'a str,
    #[serde(default)]
    more: bool,
    #[serde(default)]
    head: Option<u64>,
    #[serde(default)]
    epoch: Option<&'a str>,
}

/// One page of a peer's feed.
#[derive(Debug)]
pub struct FeedPage {
    /// Envelopes as received, with the ids the peer states for them.
    pub envelopes: Vec<Offer>,
    /// Relayed envelopes the page listed by id only (asked for with `relayed=ids`).
    pub relayed: Vec<EnvelopeId>,
    /// Cursor for the next page.
    pub next: u64,
    /// Whether more follows now.
    pub more: bool,
    /// The peer's log head.
    pub head: u64,
    /// The peer's TLS certificate expiry (epoch seconds).
    pub cert_not_after: Option<i64>,
    /// The peer's log epoch, when it says.
    pub epoch: Option<String>,
}

/// How much of a feed a puller asks for in one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    /// Envelopes, at most.
    pub envelopes: usize,
    /// Bytes of envelopes, about (the page holds at least one envelope).
    pub bytes: usize,
}

impl PageSize {
    /// The smallest page: one envelope.
    const SMALLEST: PageSize = PageSize {
        envelopes: 1,
        bytes: 64 << 10,
    };

    /// The full page.
    pub fn full(envelopes: usize) -> PageSize {
        PageSize {
            envelopes,
            bytes: crate::node::peers::wire::MAX_FEED_BYTES,
        }
    }

    /// Half of this page (down to one envelope): asked for after a page failed for
    /// its size or its time, so that a large or slow page is never asked for again
    /// the same way.
    pub fn halved(self) -> PageSize {
        PageSize {
            envelopes: (self.envelopes / 2).max(Self::SMALLEST.envelopes),
            bytes: (self.bytes / 2).max(Self::SMALLEST.bytes),
        }
    }

    /// Twice this page, up to `full`: after a page came through.
    pub fn doubled(self, full: PageSize) -> PageSize {
        PageSize {
            envelopes: (self.envelopes * 2).min(full.envelopes),
            bytes: (self.bytes * 2).min(full.bytes),
        }
    }
}

/// A page of a peer's membership log (`GET /federation/v1/membership`).
#[derive(Debug)]
pub struct MembershipPage {
    /// Its entries, in order.
    pub entries: Vec<crate::membership::Entry>,
    /// Whether more follow.
    pub more: bool,
    /// The other side of a fork the peer saw.
    pub conflicting: Option<crate::membership::Entry>,
}

/// An HTTPS client and what it was built from.
struct Built {
    client: reqwest::Client,
    stamp: Vec<Option<std::time::SystemTime>>,
    refused: std::sync::Arc<crate::tls::Refused>,
}

/// A client for one peer.
pub struct PeerClient {
    /// Peer member name.
    pub name: String,
    base: String,
    cfg: Config,
    gate: crate::tls::Gate,
    /// The HTTPS client, and the TLS files' modification times and the membership
    /// gate it was built under.
    http: std::sync::Mutex<Built>,
}

impl PeerClient {
    /// A client for `name` at `url`.
    /// `gate`: the certificates the membership log refuses (the node's, shared).
    pub fn new(
        cfg: &Config,
        name: &str,
        url: &str,
        gate: crate::tls::Gate,
    ) -> Result<PeerClient, SyncError> {
        let stamp = crate::tls::material_stamp(cfg);
        let refused = crate::tls::refused_now(&gate);
        let client = Self::build(cfg, name, &gate)?;
        Ok(PeerClient {
            name: name.to_string(),
            base: url.trim_end_matches('/').to_string(),
            cfg: cfg.clone(),
            gate,
            http: std::sync::Mutex::new(Built {
                client,
                stamp,
                refused,
            }),
        })
    }

    fn build(
        cfg: &Config,
        name: &str,
        gate: &crate::tls::Gate,
    ) -> Result<reqwest::Client, SyncError> {
        let timeout = Duration::from_secs(cfg.limits.peer_timeout_secs);
        reqwest::Client::builder()
            .tls_backend_preconfigured(client_config_gated(cfg, name, gate)?)
            .tls_info(true)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| SyncError::Unreachable {
                peer: name.into(),
                message: e.to_string(),
            })
    }

    /// The HTTPS client, built again first when this node's TLS files (CA,
    /// certificate, key) changed since: outbound TLS follows a rotation or a new CA
    /// like inbound TLS does, without a restart. If the new files cannot be used, the
    /// old client stays (and the failure is logged). Built again too when the
    /// membership log changed what TLS refuses: its pooled connections were made
    /// under the old rules (the peer's certificate may be revoked since).
    fn http(&self) -> reqwest::Client {
        let mut held = self.http.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::tls::material_stamp(&self.cfg);
        let refused = crate::tls::refused_now(&self.gate);
        let files_changed = now != held.stamp;
        if files_changed || !std::sync::Arc::ptr_eq(&refused, &held.refused) {
            match Self::build(&self.cfg, &self.name, &self.gate) {
                Ok(c) => {
                    if files_changed {
                        tracing::info!(peer = %self.name, "TLS files changed; client for this peer rebuilt");
                    }
                    held.client = c;
                }
                Err(e) => {
                    tracing::warn!(peer = %self.name, error = %e, "TLS files changed but cannot be used; keeping the old client");
                }
            }
            held.stamp = now;
            held.refused = refused;
        }
        held.client.clone()
    }

    fn unreachable(&self, e: reqwest::Error) -> SyncError {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        if e.is_timeout() {
            SyncError::TimedOut {
                peer: self.name.clone(),
                message: msg,
            }
        } else {
            SyncError::Unreachable {
                peer: self.name.clone(),
                message: msg,
            }
        }
    }

    fn malformed(&self, message: impl Into<String>) -> SyncError {
        SyncError::Malformed {
            peer: self.name.clone(),
            message: message.into(),
        }
    }

    /// Reads a response body up to [`MAX_RESPONSE_BYTES`] and parses it strictly.
    async fn body(&self, resp: reqwest::Response) -> Result<(Value, Option<i64>), SyncError> {
        let (buf, cert_not_after) = self.body_bytes(resp).await?;
        let v = crate::json::from_slice_strict(&buf)
            .map_err(|e| self.malformed(format!("not JSON: {e}")))?;
        Ok((v, cert_not_after))
    }

    /// Reads a successful response body up to [`MAX_RESPONSE_BYTES`], with the peer
    /// certificate's expiry.
    async fn body_bytes(
        &self,
        mut resp: reqwest::Response,
    ) -> Result<(Vec<u8>, Option<i64>), SyncError> {
        let cert_not_after = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .and_then(|der| {
                x509_parser::parse_x509_certificate(der)
                    .ok()
                    .map(|(_, c)| c.validity().not_after.timestamp())
            });
        let status = resp.status();
        // Sized once when the peer states the length (growing by doubling copied each
        // multi-megabyte page about twice over).
        let expected = resp.content_length().unwrap_or(0);
        let mut buf = Vec::with_capacity(
            usize::try_from(expected)
                .unwrap_or(0)
                .min(MAX_RESPONSE_BYTES),
        );
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(SyncError::TooLarge {
                    peer: self.name.clone(),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(SyncError::Status {
                peer: self.name.clone(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&buf[..buf.len().min(300)]).into_owned(),
            });
        }
        Ok((buf, cert_not_after))
    }

    /// `GET /federation/v1/feed?after=…&limit=…[&relayed=ids]`.
    ///
    /// The page is read without parsing its envelopes: each is kept as text with the
    /// id the peer states for it, and parsed only if this node does not hold it
    /// (see [`Offer`]). With `relayed_as_ids`, envelopes of other origins come as ids
    /// only ([`FeedPage::relayed`]).
    pub async fn feed(
        &self,
        after: u64,
        size: PageSize,
        relayed_as_ids: bool,
        own: bool,
    ) -> Result<FeedPage, SyncError> {
        let mut query = vec![
            ("after", after.to_string()),
            ("limit", size.envelopes.to_string()),
        ];
        if own {
            query.push(("own", "1".to_string()));
        }
        if size.bytes < crate::node::peers::wire::MAX_FEED_BYTES {
            query.push(("max_bytes", size.bytes.to_string()));
        }
        if relayed_as_ids {
            query.push(("relayed", "ids".to_string()));
        }
        let resp = self
            .http()
            .get(format!("{}/federation/v1/feed", self.base))
            .query(&query)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let (bytes, cert_not_after) = self.body_bytes(resp).await?;
        let bytes = bytes::Bytes::from(bytes);
        let page: RawPage = serde_json::from_slice(&bytes).map_err(|e| {
            if e.is_data() {
                self.malformed(format!("not a feed page: {e}"))
            } else {
                self.malformed(format!("not JSON: {e}"))
            }
        })?;
        let next = page
            .next
            .parse::<u64>()
            .map_err(|_| self.malformed("feed without a numeric next cursor"))?;
        if next < after {
            return Err(self.malformed(format!("feed cursor went backwards ({after} to {next})")));
        }
        if page.more && next == after {
            // A page that promises more without moving would be asked for again at
            // once, forever.
            return Err(self.malformed("feed says more but does not advance"));
        }
        let claimed: Vec<Option<EnvelopeId>> = match &page.ids {
            None => vec![None; page.envelopes.len()],
            Some(ids) if ids.len() == page.envelopes.len() => ids
                .iter()
                .map(|s| {
                    EnvelopeId::parse(s).map(Some).ok_or_else(|| {
                        self.malformed(format!("feed states a bad envelope id {s:?}"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(self.malformed("feed ids do not match its envelopes")),
        };
        let mut envelopes = Vec::with_capacity(page.envelopes.len());
        let mut relayed = Vec::new();
        for (raw, claimed) in page.envelopes.into_iter().zip(claimed) {
            match (raw, claimed) {
                (Some(raw), claimed) => envelopes.push(Offer::within(&bytes, raw.get(), claimed)),
                (None, Some(id)) if relayed_as_ids => relayed.push(id),
                (None, _) => {
                    return Err(self.malformed(if relayed_as_ids {
                        "feed lists an envelope as null without its id"
                    } else {
                        "feed lists an envelope as null without being asked to"
                    }));
                }
            }
        }
        Ok(FeedPage {
            envelopes,
            relayed,
            next,
            more: page.more,
            head: page.head.unwrap_or(next),
            epoch: page.epoch.map(str::to_string),
            cert_not_after,
        })
    }

    /// `POST /federation/v1/envelopes` with a body of held envelopes and their ids
    /// (so the peer can skip parsing the ones it holds), written by
    /// [`crate::node::peers::wire::EnvelopeList`].
    pub async fn push(&self, body: Vec<u8>) -> Result<Value, SyncError> {
        let resp = self
            .http()
            .post(format!("{}/federation/v1/envelopes", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(self.body(resp).await?.0)
    }

    /// `GET /federation/v1/membership?from=N`: entries from index `N`, and whether
    /// more follow. Each entry is parsed strictly; the caller checks them.
    pub async fn membership(&self, from: u64) -> Result<MembershipPage, SyncError> {
        let resp = self
            .http()
            .get(format!("{}/federation/v1/membership", self.base))
            .query(&[("from", from.to_string())])
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let (v, _) = self.body(resp).await?;
        let more = v.get("more").and_then(Value::as_bool).unwrap_or(false);
        let Some(list) = v.get("entries").and_then(Value::as_array) else {
            return Err(self.malformed("membership answer without entries"));
        };
        let entry = |e: &Value| {
            let text = serde_json::to_vec(e).unwrap_or_default();
            crate::membership::Entry::from_slice(&text)
                .map_err(|err| self.malformed(format!("membership entry: {err}")))
        };
        if list.len() > crate::node::membership::MAX_ENTRIES_PAGE {
            return Err(self.malformed(format!(
                "membership page of {} entries (at most {})",
                list.len(),
                crate::node::membership::MAX_ENTRIES_PAGE
            )));
        }
        let entries = list.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        if let Some((i, e)) = entries
            .iter()
            .enumerate()
            .find(|(i, e)| e.index != from + *i as u64)
        {
            return Err(self.malformed(format!(
                "membership page from {from} holds entry {} at place {i}",
                e.index
            )));
        }
        let conflicting = match v.get("conflicting") {
            None | Some(Value::Null) => None,
            Some(e) => Some(entry(e)?),
        };
        Ok(MembershipPage {
            entries,
            more,
            conflicting,
        })
    }

    /// `GET /federation/v1/digest`.
    pub async fn digest(&self) -> Result<Value, SyncError> {
        let resp = self
            .http()
            .get(format!("{}/federation/v1/digest", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(self.body(resp).await?.0)
    }
}

#[cfg(test)]
mod page_size_tests {
    use super::PageSize;

    #[test]
    fn a_failing_page_is_asked_for_smaller_down_to_one_envelope_then_grows_back() {
        let full = PageSize::full(200);
        let mut s = full;
        let mut steps = 0;
        while s != s.halved() {
            let h = s.halved();
            assert!(h.envelopes < s.envelopes || h.bytes < s.bytes);
            s = h;
            steps += 1;
        }
        assert_eq!(s.envelopes, 1);
        assert_eq!(s.bytes, 64 << 10);
        assert!(steps <= 8, "{steps}");
        let mut back = 0;
        while s != full {
            s = s.doubled(full);
            back += 1;
        }
        assert!(back <= 8, "{back}");
    }
}
