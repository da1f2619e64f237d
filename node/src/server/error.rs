//! Error answers: a stable machine `code`, a human `message`, the right status.
//!
//! Node API and federation errors are `{"error": code, "message": …}`; TAXII errors
//! are TAXII 2.1 error resources (`title`, `description`, `error_code`,
//! `http_status`) with the TAXII media type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The TAXII 2.1 media type.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`missing-role`, `invalid-stix`, …).
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// Extra machine-readable detail (validation findings).
    pub details: Option<Value>,
    /// Render as a TAXII error resource.
    pub taxii: bool,
    /// Close the connection after answering (the request was not read to its end).
    pub close_connection: bool,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            taxii: false,
            close_connection: false,
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 500 for store failures: the cause is logged, not shown.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "internal error answering a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node could not complete the request; see its log",
        )
    }

    /// A store failure: 507 `insufficient-storage` when the disk is full (nothing was
    /// acknowledged; the request can be repeated once space is freed), otherwise 500.
    pub fn store(err: crate::store::StoreError) -> ApiError {
        if err.is_storage_full() {
            tracing::error!(error = %err, "the disk is full: refusing to store");
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient-storage",
                "the node's disk is full; nothing was stored; retry once space is freed",
            )
        } else if let crate::store::StoreError::Database(db) = &err
            && db.is_unavailable()
        {
            tracing::error!(error = %err, "the database is unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "the node's database is unavailable; what this request was storing may or may not be stored: repeat it once the database is back (objects already stored are reported held)",
            )
        } else if let crate::store::StoreError::LogUnsafe { .. } = err {
            tracing::error!(error = %err, "refusing to store: the evidence log is unsafe");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-failed",
                "the node's evidence log had an I/O error; nothing was stored, and nothing more is until the node is restarted",
            )
        } else {
            ApiError::internal(err)
        }
    }

    /// A push that could not be taken whole: the store failed, or an envelope refused
    /// for a passing reason could not be kept (503 `retry-set-full`: the pusher tries
    /// the same envelopes again later, so none is lost).
    pub fn keep(err: crate::node::peers::deferred::KeepError) -> ApiError {
        use crate::node::peers::deferred::KeepError;
        match err {
            KeepError::Store(e) => ApiError::store(e),
            KeepError::Backend(e) => ApiError::backend(e),
            full @ KeepError::Full { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "retry-set-full",
                format!("{full}; nothing from this push was refused for good: push it again later"),
            ),
        }
    }

    /// An operation the node's store backend cannot do yet: 501 `not-on-this-backend`.
    pub fn backend(err: crate::node::backend::NotOnThisBackend) -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not-on-this-backend",
            err.to_string(),
        )
    }

    /// Adds machine-readable detail.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// Renders as a TAXII error resource.
    pub fn taxii(mut self) -> ApiError {
        self.taxii = true;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (body, ctype) = if self.taxii {
            let mut b = json!({
                "title": self.status.canonical_reason().unwrap_or("Error"),
                "description": self.message,
                "error_code": self.code,
                "http_status": self.status.as_u16().to_string(),
            });
            if let Some(d) = self.details {
                b["details"] = d;
            }
            (b, TAXII_MEDIA_TYPE)
        } else {
            let mut b = json!({"error": self.code, "message": self.message});
            if let Some(d) = self.details {
                b["details"] = d;
            }
            (b, "application/json")
        };
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if self.close_connection {
            // The rest of the body was not read: the connection cannot be reused.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
