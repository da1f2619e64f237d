//! The node's HTTPS server: one listener, TLS 1.2/1.3 with client certificates from the
//! federation CA, and three interfaces on it — TAXII 2.1 (`/taxii2/`), the node API
//! (`/api/v1/`, `/metrics`, `/healthz`) and the federation API (`/federation/v1/`).
//!
//! The accept loop is our own (tokio-rustls + hyper): it reads the client identity from
//! the certificate once per connection, bounds connections, handshake and header time,
//! and swaps TLS material without a restart.

pub mod api;
pub mod body;
pub mod caller;
mod conn;
pub mod error;
pub mod export;
pub mod federation;
pub mod taxii;

use crate::node::Node;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use caller::ConnInfo;
use error::ApiError;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// TLS material cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The listener failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Every route, with authentication and request limits.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .merge(taxii::routes())
        .merge(api::routes())
        .merge(federation::routes())
        .layer(middleware::from_fn_with_state(
            node.clone(),
            caller::authenticate,
        ))
        .layer(middleware::from_fn_with_state(node.clone(), observe))
        .with_state(node)
}

/// Request timeout, metrics and a tracing span per request.
async fn observe(State(node): State<Arc<Node>>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    let limit = Duration::from_secs(node.config().limits.request_timeout_secs);
    let taxii = req.uri().path().starts_with("/taxii2");
    let resp =
        match tokio::time::timeout(limit, tracing::Instrument::instrument(next.run(req), span))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                let e = ApiError::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    format!("the request took longer than {} s", limit.as_secs()),
                );
                if taxii {
                    e.taxii().into_response()
                } else {
                    e.into_response()
                }
            }
        };
    node.metrics().http(route, resp.status().as_u16());
    resp
}

/// A low-cardinality label for metrics.
fn route_label(path: &str) -> &'static str {
    if path.starts_with("/taxii2") {
        "taxii"
    } else if path.starts_with("/federation") {
        "federation"
    } else if path.starts_with("/api/v1/bundles") {
        "publish"
    } else if path.starts_with("/api") {
        "api"
    } else if path == "/metrics" {
        "metrics"
    } else {
        "other"
    }
}

/// How often the TLS files, roster and config are checked for changes (SIGHUP
/// checks at once).
const RELOAD_POLL: Duration = Duration::from_secs(5);

/// Serves the node on `listener` until `shutdown` completes, then drains connections
/// (up to 10 s).
///
/// `background` are the tasks that run beside the server for as long as it serves
/// (the sync tasks, `sync::spawn`, started by the caller: the server does not know
/// sync); they are stopped before the store is flushed.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    background: Vec<tokio::task::JoinHandle<()>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let tls = Arc::new(crate::tls::TlsReloader::new(
        node.config(),
        node.tls_gate(),
    )?);
    let app = router(node.clone());
    let limits = node.config().limits.clone();
    let slots = Arc::new(conn::Slots::new(&limits));
    // Bumped when the TLS material is reloaded (connections made under the old
    // material close gracefully) and set to `u64::MAX` at shutdown.
    let (closing, _) = tokio::sync::watch::channel(0u64);
    let closing = Arc::new(closing);
    let reloader = {
        let tls = tls.clone();
        let closing = closing.clone();
        let node = node.clone();
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                let tick = tokio::time::sleep(RELOAD_POLL);
                let forced = match hup.as_mut() {
                    Some(h) => tokio::select! {
                        _ = h.recv() => true,
                        _ = tick => false,
                    },
                    None => {
                        tick.await;
                        false
                    }
                };
                let tls_reloaded = if forced {
                    tls.reload()
                        .map_err(|e| tracing::warn!(error = %e, "TLS reload failed"))
                        .is_ok()
                } else {
                    tls.reload_if_changed()
                };
                // Roster, signing key, peers and clients (`node::live`): read in a
                // blocking task, they are files.
                let n = node.clone();
                let access_lost = tokio::task::spawn_blocking(move || n.reload(forced))
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|c| c.access_lost());
                // Connections made under the old material, or by a peer or client
                // that lost its access, close gracefully; their callers come back and
                // are judged afresh. (Each request is judged afresh anyway; this ends
                // long responses such as an export.)
                if tls_reloaded || access_lost {
                    closing.send_modify(|g| *g = g.saturating_add(1).min(u64::MAX - 1));
                }
            }
        })
    };
    let address = listener.local_addr()?;
    // On PostgreSQL the member's other processes, and its maintenance, see this one.
    let beat = node
        .backend()
        .postgres()
        .map(|_| tokio::spawn(process_beat(node.clone(), address.to_string())));
    tracing::info!(%address, member = %node.member(), "serving");
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = match slots.admit(remote.ip()) {
            Ok(a) => a,
            Err(why) => {
                tracing::warn!(%remote, reason = why, "connection refused");
                node.metrics().connection_refused(why);
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
        let generation = *closing.borrow();
        let mut closing = closing.subscribe();
        let app = app.clone();
        let handshake = Duration::from_secs(limits.handshake_timeout_secs);
        let header_timeout = Duration::from_secs(limits.header_timeout_secs);
        let idle_limit = Duration::from_secs(limits.idle_timeout_secs);
        // Capped at a year: an absurd setting must not overflow the clock.
        let max_age = Duration::from_secs(limits.max_connection_age_secs.min(365 * 86_400));
        let drain = Duration::from_secs(limits.request_timeout_secs.max(10));
        let metrics_node = node.clone();
        // Subscribed before the handshake: a change of what the membership log
        // refuses while it runs still reaches the connection's check below.
        let mut live_changes = node.live_changes();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let certs = stream.get_ref().1.peer_certificates();
            let identity = caller::identity_of(certs);
            let leaf = certs
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.clone().into_owned()));
            let cert_not_after = certs
                .and_then(|c| c.first())
                .and_then(crate::tls::not_after);
            // A connection with a certificate no longer counts against its address;
            // one without takes a place of those kept for certificate-less callers.
            let _admitted = match admitted.established(identity != caller::CertIdentity::None) {
                Ok(a) => a,
                Err(why) => {
                    tracing::warn!(%remote, reason = why, "connection refused after the handshake");
                    metrics_node.metrics().connection_refused(why);
                    return;
                }
            };
            let info = ConnInfo {
                remote,
                identity,
                leaf: leaf.clone(),
            };
            // The membership log may come to refuse this certificate (its member
            // removed, or the certificate revoked) while the connection is open.
            let mut watching = leaf.is_some();
            let activity = conn::Activity::new();
            let svc = {
                let activity = activity.clone();
                tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    let busy = activity.begin();
                    let fut = app.clone().oneshot(req.map(Body::new));
                    async move {
                        let r = fut.await;
                        // Counted as under way until its body is sent.
                        r.map(|resp| resp.map(|b| Body::new(conn::HeldBody::new(b, busy))))
                    }
                })
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .max_concurrent_streams(64);
            // The protocol detection of the auto builder reads before hyper's header
            // timeout applies: bound the wait for the first bytes ourselves, or an idle
            // connection would hold its slot for ever.
            let stream = FirstByteDeadline::new(stream, header_timeout);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
            tokio::pin!(conn);
            // The connection ends by itself, or is closed gracefully (requests under
            // way finish) at the first of: its maximum age, its client certificate's
            // expiry, idleness, a TLS reload, shutdown.
            let now_secs = crate::stix::timestamp::Timestamp::now().as_secs();
            let until_expiry = cert_not_after.map(|t| {
                Duration::from_secs(u64::try_from(t.saturating_sub(now_secs)).unwrap_or(0))
            });
            let ends_at =
                tokio::time::Instant::now() + until_expiry.map_or(max_age, |e| e.min(max_age));
            let mut check = tokio::time::interval(Duration::from_secs(1).min(idle_limit));
            let result = loop {
                tokio::select! {
                    r = conn.as_mut() => break r,
                    _ = tokio::time::sleep_until(ends_at) => {}
                    changed = closing.changed() => {
                        if changed.is_ok() && *closing.borrow() == generation {
                            continue;
                        }
                    }
                    _ = check.tick() => {
                        if !activity.idle_for(idle_limit) {
                            continue;
                        }
                    }
                    changed = live_changes.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                            continue;
                        }
                        let refused = leaf
                            .as_deref()
                            .and_then(|c| metrics_node.refuses_certificate(c));
                        match refused {
                            None => continue,
                            Some(why) => {
                                // Closed at once, requests under way included.
                                tracing::info!(%remote, reason = %why, "closing a connection whose certificate the membership log now refuses");
                                break Ok(());
                            }
                        }
                    }
                }
                // Requests under way may finish: as long as a request may take.
                conn.as_mut().graceful_shutdown();
                break match tokio::time::timeout(drain, conn.as_mut()).await {
                    Ok(r) => r,
                    Err(_) => Ok(()),
                };
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    reloader.abort();
    if let Some(b) = beat {
        b.abort();
    }
    for t in background {
        t.abort();
    }
    // The pulls stopped with them: another process of the member takes them over now
    // rather than when the leases expire, and maintenance need not wait.
    if let Some(pg) = node.backend().postgres() {
        match tokio::time::timeout(Duration::from_secs(5), pg.store.release_leases(&pg.holder))
            .await
        {
            Ok(Ok(n)) if n > 0 => tracing::info!(leases = n, "pull leases given up"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot give the pull leases up; they expire by themselves")
            }
            Err(_) => tracing::warn!(
                "giving the pull leases up took more than 5 s; they expire by themselves"
            ),
        }
    }
    closing.send_replace(u64::MAX);
    if !slots.drained(Duration::from_secs(10)).await {
        tracing::warn!("connections still open after 10 s; closing");
    }
    // Drained: maintenance need not wait for this process's row to age.
    if let Some(pg) = node.backend().postgres()
        && let Ok(Err(e)) =
            tokio::time::timeout(Duration::from_secs(5), pg.store.process_stopped(&pg.holder)).await
    {
        tracing::warn!(error = %e, "cannot record this process as stopped; its row ages out");
    }
    // Bounded, like the index's own close (store/sled_engine.rs): a flush that never
    // returns must not keep the process from exiting; the log is durable either way.
    let closing = node.clone();
    let flush = tokio::task::spawn_blocking(move || match closing.backend() {
        crate::node::backend::Backend::Embedded(store) => store.flush(),
        // Every write was committed before it was acknowledged.
        crate::node::backend::Backend::Postgres(_) => Ok(()),
    });
    match tokio::time::timeout(Duration::from_secs(20), flush).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "index flush at shutdown failed (the log is durable; the index catches up at start)")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "index flush at shutdown did not run"),
        Err(_) => tracing::warn!(
            "index flush at shutdown still running after 20 s; exiting without it (the log is durable; the index catches up at start)"
        ),
    }
    Ok(())
}

/// Says every [`crate::store::postgres::lease::PROCESS_BEAT`] that this process
/// serves the member (a node on PostgreSQL).
async fn process_beat(node: Arc<Node>, listen: String) {
    let Some(pg) = node.backend().postgres() else {
        return;
    };
    loop {
        if let Err(e) = pg.store.process_seen(&pg.holder, &listen).await {
            tracing::debug!(error = %e, "cannot record this process as running");
        }
        tokio::time::sleep(crate::store::postgres::lease::PROCESS_BEAT).await;
    }
}

/// A stream whose reads fail with `TimedOut` if no byte arrives within a deadline from
/// its creation; once a byte has arrived it is a plain pass-through.
struct FirstByteDeadline<S> {
    inner: S,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> FirstByteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        FirstByteDeadline {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByteDeadline<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request within the header timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByteDeadline<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
