//! [`RequestError`]: what a client got wrong in a request, answered with
//! `400 Bad Request` and a one-line explanation. Neighbour of `sse.rs`, which
//! parses the cursor.
//!
//! Invariant: a malformed cursor is refused, never guessed: silently
//! treating it as 0 or as "latest" would replay or skip events the client
//! did not ask for.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A request the server refuses with `400 Bad Request`; the response body is
/// this error's message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The `Last-Event-ID` header is not a decimal seq.
    #[error("invalid Last-Event-ID header {value:?}: expected the decimal seq of the last event received")]
    LastEventId {
        /// The header as sent (lossily decoded).
        value: String,
    },
    /// The `since` query parameter is neither a decimal seq nor `latest`.
    #[error("invalid since={value:?}: expected a decimal seq, or `latest` for new events only")]
    Since {
        /// The parameter as sent.
        value: String,
    },
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("{self}\n")).into_response()
    }
}
