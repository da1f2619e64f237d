//! `GET /api/v1/export`: the consolidated feed, streamed.

use super::caller::Caller;
use super::error::ApiError;
use crate::config::Role;
use crate::node::Node;
use crate::node::export::{ExportFilter, ExportFormat};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A response body fed by a channel, so a blocking writer can stream. An error in the
/// channel ends the body with an error, so the client sees a broken transfer rather
/// than a complete but truncated export.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    /// Set by the writer once the export is complete: a channel that closes without
    /// it (the export stopped, or its reader stalled and was cut off) ends the body
    /// with an error.
    complete: Arc<std::sync::atomic::AtomicBool>,
}

impl axum::body::HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) if !self.complete.load(std::sync::atomic::Ordering::SeqCst) => {
                Poll::Ready(Some(Err(std::io::Error::other(
                    "the export stopped before its end",
                ))))
            }
            p => p.map(|o| o.map(|b| b.map(http_body::Frame::data))),
        }
    }
}

/// A `Write` that sends 64 KiB chunks into the channel, giving up when the client
/// has not taken a chunk for `stall` (`limits.response_stall_secs`): an export runs on
/// a blocking thread, and a client that stops reading must not keep it (nor anything
/// it holds) for ever.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    runtime: tokio::runtime::Handle,
    stall: std::time::Duration,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.runtime
                .block_on(self.tx.send_timeout(Ok(chunk), self.stall))
                .map_err(|e| match e {
                    tokio::sync::mpsc::error::SendTimeoutError::Timeout(_) => std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading the export",
                    ),
                    tokio::sync::mpsc::error::SendTimeoutError::Closed(_) => {
                        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
                    }
                })?;
        }
        Ok(())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad-query", msg)
}

/// Parses export parameters.
pub fn parse(
    q: &[(String, String)],
    caller_max: TlpLevel,
) -> Result<(ExportFilter, ExportFormat), ApiError> {
    let mut f = ExportFilter {
        max_tlp: Some(caller_max),
        ..ExportFilter::default()
    };
    let mut format = ExportFormat::Stix;
    let list = |v: &str| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for (k, v) in q {
        match k.as_str() {
            "type" => f.types.extend(list(v)),
            "origin" => f.origins.extend(list(v)),
            "since" => {
                f.since = Some(
                    Timestamp::parse_day_or_instant(v)
                        .map_err(|e| bad(format!("since: {e}")))?
                        .as_micros(),
                )
            }
            "min_corroboration" => {
                f.min_corroboration = v
                    .parse()
                    .map_err(|_| bad("min_corroboration must be a number"))?;
            }
            "tlp" => {
                let l = TlpLevel::parse(v).map_err(|e| bad(format!("tlp: {e}")))?;
                f.max_tlp = Some(l.min(caller_max));
            }
            "format" => {
                format = match v.as_str() {
                    "stix" => ExportFormat::Stix,
                    "csv" => ExportFormat::Csv,
                    other => return Err(bad(format!("format {other:?}: use stix or csv"))),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?} (type, since, min_corroboration, origin, tlp, format)"
                )));
            }
        }
    }
    Ok((f, format))
}

/// The handler.
pub async fn export(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    let (filter, format) = parse(&q, caller.max_tlp())?;
    let Ok(turn) = node.export_gate().clone().try_acquire_owned() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-exports",
            format!(
                "{} exports are running (limits.max_concurrent_exports); try again when one has finished",
                node.config().limits.max_concurrent_exports
            ),
        ));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let runtime = tokio::runtime::Handle::current();
    let stall = std::time::Duration::from_secs(node.config().limits.response_stall_secs);
    let complete = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = complete.clone();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(64 * 1024),
            runtime,
            stall,
        };
        match node.export(&filter, format, &mut w) {
            Ok(_) => done.store(true, std::sync::atomic::Ordering::SeqCst),
            Err(e) => {
                tracing::warn!(error = %e, "export stopped");
                // The client may have stopped reading: never wait to tell it (the
                // body ends in error anyway, `complete` being unset).
                let _ = tx.try_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let ctype = match format {
        ExportFormat::Stix => "application/stix+json;version=2.1",
        ExportFormat::Csv => "text/csv",
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, ctype)],
        Body::new(ChannelBody { rx, complete }),
    )
        .into_response())
}
