//! [`RequestError`]: what a client got wrong in a request, answered with
//! `400 Bad Request` and a one-line explanation. Neighbour of `sse.rs`, which
//! parses the cursor with `cursor.rs`.
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
    /// The `Last-Event-ID` header is neither `<epoch>-<seq>` nor a bare seq.
    #[error(
        "invalid Last-Event-ID header {value:?}: expected the id of the last event received, \
         <epoch>-<seq> in decimal (or a bare decimal seq), with .<index> for an ephemeral event"
    )]
    LastEventId {
        /// The header as sent (lossily decoded).
        value: String,
    },
    /// The `lastEventId` query parameter (which counts as the header, as
    /// EventSource polyfills send it) is neither `<epoch>-<seq>` nor a bare
    /// seq. Named apart from the header: beside a valid header, the
    /// client is told which of the two it got wrong.
    #[error(
        "invalid lastEventId={value:?}: expected the id of the last event received, \
         <epoch>-<seq> in decimal (or a bare decimal seq), with .<index> for an ephemeral event"
    )]
    LastEventIdParameter {
        /// The parameter as sent.
        value: String,
    },
    /// The `since` query parameter is neither `<epoch>-<seq>`, a bare seq,
    /// nor `latest`. It is refused even when a valid `Last-Event-ID` header
    /// would win over it.
    #[error(
        "invalid since={value:?}: expected an event id <epoch>-<seq> in decimal, a bare decimal seq, \
         or `latest` for new events only"
    )]
    Since {
        /// The parameter as sent.
        value: String,
    },
    /// The `live_output` query parameter is not `1`/`true`/`0`/`false`.
    #[error(
        "invalid live_output={value:?}: expected 1 (or true) for live output, 0 (or false) for durable events only"
    )]
    LiveOutput {
        /// The parameter as sent.
        value: String,
    },
    /// Live output was asked of a server whose feed does not keep it (not
    /// opened with `FeedBuilder::live_output`, or a reader of another
    /// process's journal).
    #[error("live_output=1: {reason}")]
    LiveOutputOff {
        /// Why (the façade's message).
        reason: String,
    },
    /// The `stream` query parameter is longer than the feed accepts
    /// ([`events::MAX_STREAM_ID_BYTES`]).
    #[error("invalid stream= parameter: {len} bytes, over the limit of {limit} bytes for a stream id")]
    StreamId {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A query parameter `GET /stream` does not take (`?from=` for
    /// `?since=`, say): served as if absent, the stream would start
    /// somewhere the client did not ask for.
    #[error("unknown query parameter {name:?}: /stream takes since, stream, live_output and lastEventId")]
    UnknownParameter {
        /// The parameter's name as sent.
        name: String,
    },
    /// A query parameter or the `Last-Event-ID` header given more than
    /// once: which one the client meant is not known.
    #[error("the {name} was given more than once: give it once")]
    Repeated {
        /// What was repeated ("query parameter since", "Last-Event-ID header").
        name: String,
    },
    /// `?stream=` with no value: leave the parameter out for every stream.
    #[error("invalid stream= parameter: empty (leave it out for the events of every stream)")]
    EmptyStream,
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("{self}\n")).into_response()
    }
}
