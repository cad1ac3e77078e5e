//! The plain-text answers for requests no handler serves: `404` for an
//! unknown path and `405` for a known path asked with another method than
//! `GET`. `router.rs` and `viewer.rs` mount them.
//!
//! Invariant: every refusal carries a one-line body that says what was
//! asked and what the server does serve, so a person with curl is never
//! left with an empty response.

use axum::http::{Method, StatusCode, Uri};

/// The fallback of the router: no such path.
pub(crate) async fn not_found(method: Method, uri: Uri) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!(
            "no such resource: {method} {uri} (this feed serves GET /stream, GET /status, \
             GET /metrics where enabled, and the live viewer page at GET / where it is mounted)\n"
        ),
    )
}

/// The fallback of a known path asked with another method; axum adds the
/// `Allow` header.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> (StatusCode, String) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed on {uri}: this feed is read-only and answers only GET (and HEAD)\n"),
    )
}
