//! Request bodies: read within a per-request limit and within a node-wide memory
//! budget, so that many concurrent large bodies cannot exhaust memory (security
//! finding 6).

use super::error::ApiError;
use crate::node::Node;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Parses a JSON body strictly (duplicate keys, unsafe integers refused).
pub(crate) fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    crate::json::from_slice_strict(bytes).map_err(malformed_json)
}

/// The answer to a body that is not JSON (400 `malformed-json`).
pub(crate) fn malformed_json(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("malformed-json", format!("body is not valid JSON: {e}"))
}

/// A share of the budget, given back when dropped: keep it as long as the body (or
/// what was parsed from it) is in memory.
#[derive(Debug)]
pub struct BodyShare(Option<OwnedSemaphorePermit>);

impl BodyShare {
    /// Takes `bytes` more, waiting up to `wait` for other bodies to finish.
    async fn grow(
        &mut self,
        budget: &Arc<Semaphore>,
        bytes: usize,
        wait: Duration,
    ) -> Result<(), ApiError> {
        let units =
            u32::try_from(bytes.div_ceil(crate::node::BODY_BUDGET_UNIT)).unwrap_or(u32::MAX);
        if units == 0 {
            return Ok(());
        }
        let busy = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "the node is reading as many request bodies as its memory budget allows (limits.max_body_memory_bytes); try again shortly",
            )
        };
        let permit = tokio::time::timeout(wait, budget.clone().acquire_many_owned(units))
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        match &mut self.0 {
            Some(p) => p.merge(permit),
            None => self.0 = Some(permit),
        }
        Ok(())
    }
}

/// Reads a request body up to `limit` bytes (413 past it), taking its size from the
/// node's body budget as it arrives (503 `busy` when the budget stays full for half
/// the request timeout).
///
/// Past the limit the rest of the body is read and discarded (up to as much again, at
/// most 64 MiB) so the client can finish sending and read the 413; a body larger still
/// gets the 413 on a connection that is then closed. Discarded bytes take nothing from
/// the budget.
pub(crate) async fn read_body(
    body: Body,
    node: &Node,
    limit: usize,
) -> Result<(Bytes, BodyShare), ApiError> {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("request body exceeds {limit} bytes"),
        )
        // So that a client can split what it sends to fit (`synergia push`).
        .with_details(serde_json::json!({"max_body_bytes": limit}))
    };
    let budget = node.body_budget();
    let wait = Duration::from_secs(node.config().limits.request_timeout_secs / 2);
    let mut share = BodyShare(None);
    let mut body = body;
    // Sized once from Content-Length when the client sent one (within the limit):
    // growing by doubling copied a large publish about twice over.
    let expected = usize::try_from(body.size_hint().exact().unwrap_or(0)).unwrap_or(usize::MAX);
    // A body announced larger than the limit is refused without holding a byte of
    // it: it is drained (as below) so the client can read the 413.
    let mut over = expected > limit;
    let expected = if over { 0 } else { expected };
    // The budget is taken as the bytes arrive, not as announced: a client that
    // announces a large body and sends it slowly (or never) holds only what it sent.
    let mut taken = 0usize;
    let mut buf: Vec<u8> = Vec::with_capacity(expected);
    let mut discarded = 0usize;
    // As much again as the limit (at most 64 MiB), counted from the limit: a body
    // announced too large is drained from its first byte, since none of it is kept.
    let drain_budget = limit.min(64 << 20) + if over { limit } else { 0 };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("bad-body", format!("cannot read the request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if over {
            discarded += data.len();
            if discarded > drain_budget {
                let mut e = too_large();
                e.close_connection = true;
                return Err(e);
            }
            continue;
        }
        if buf.len() + data.len() > limit {
            over = true;
            buf = Vec::new();
            continue;
        }
        let needed = buf.len() + data.len();
        if needed > taken {
            // Take what the body grows by, in steps of at least 1 MiB so that small
            // frames do not each wait on the semaphore.
            let step = (needed - taken).max(1 << 20).min(limit - taken.min(limit));
            let step = step.max(needed - taken);
            share.grow(budget, step, wait).await?;
            taken += step;
        }
        buf.extend_from_slice(&data);
    }
    if over {
        return Err(too_large());
    }
    Ok((Bytes::from(buf), share))
}
