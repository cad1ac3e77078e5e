//! The live viewer: one static HTML page (`viewer.html`, embedded at build
//! time) that lists a feed's events as they arrive, using the browser's
//! `EventSource` against the `stream` and `status` routes beside it.
//!
//! Invariant: the page uses relative URLs, so it works wherever the router
//! is nested, as long as the page is served from the same prefix (nested at
//! `/feed`, the page is served at `/feed`, against which a relative URL
//! names a route under `/`: the page is then given a `<base>` of `./feed/`);
//! it keeps
//! its cursor in the `<epoch>-<seq>` form of `cursor.rs` (`<epoch>-<seq>.<index>`
//! after an ephemeral event), so it follows a recreated journal through an
//! explicit reset and resumes live output mid-response.

use std::borrow::Cow;

use axum::Router;
use axum::extract::rejection::NestedPathRejection;
use axum::extract::{NestedPath, OriginalUri};
use axum::response::Html;
use axum::routing::get;

use crate::fallback::method_not_allowed;

/// The viewer page: a table of seq / time / stream / type, auto-scrolling,
/// with a connection indicator. It reads `stream?since=…` and `status`
/// relative to its own URL, and keeps the id of the last frame it received
/// (`<epoch>-<seq>`) as its cursor when it reconnects. A `gap` reset is
/// shown as a row and the table goes on after the gap; any other reset
/// (`expired`, `ahead`, `epoch_mismatch`) clears the table, says why in its
/// first row, and the events that follow (from where the reset's id says
/// the stream goes on: the oldest one kept, or after the latest under
/// `OnExpired::Latest`) are the new history; when that is more than 100
/// events behind the latest one, the page (without a `stream` filter)
/// reconnects after the latest 100 instead, as a fresh page starts,
/// rather than take in the whole retained journal only to show its end. Page query parameters: `since` (an event id or a bare seq;
/// default: the latest 100 events), `stream` (a stream id filter), `rows`
/// (rows kept in the table; default 500), `live_output` (`1`: read
/// `stream?live_output=1`, for a feed with live output served in its
/// writer's process; default off).
///
/// With `live_output=1` the table gets a `text` column (an event's `text`
/// field, or a newtype variant's string), and a stream's ephemeral events
/// (`event: ephemeral` frames) accumulate their text in one in-progress row
/// per stream, token by token. The stream's next durable event replaces that
/// row; the durable row keeps what was streamed in its `data-streamed`
/// attribute (and the count in `data-tokens`). A `live_output_expired`
/// reset marks in-progress text incomplete, as does a token skipped as
/// `undecodable`. A token whose position is not after its row's last is a
/// restarted writer's new run: the old row stays, marked interrupted and
/// incomplete, and a new row starts. A row keeps the last 64 Ki characters
/// of a response (`data-truncated` when it cut some). A reconnect keeps the
/// in-progress text: `EventSource` resends the last id,
/// `<epoch>-<seq>.<index>`, and the stream resumes right after that token.
pub const VIEWER_HTML: &str = include_str!("viewer.html");

/// A router serving [`VIEWER_HTML`] at `GET /` (another method is a `405`
/// with a one-line body); merge it with [`router`](crate::router). Nested
/// (`Router::nest("/feed", …)`), the page is served at `/feed` and reads
/// `/feed/stream` and `/feed/status`.
///
/// # Example
///
/// ```
/// use events::{Event, FeedReader};
/// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
/// # impl Event for Ping {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let feed: events::Feed<Ping> = events::Feed::builder(tmp.path()).open().await?;
/// let reader: FeedReader<Ping> = FeedReader::open(tmp.path())?;
/// let app = events_http::router(reader).merge(events_http::viewer());
/// # drop(app); feed.close().await?; Ok(()) }
/// ```
pub fn viewer() -> Router {
    Router::new().route("/", get(page)).method_not_allowed_fallback(method_not_allowed)
}

/// The page, as served at `uri`: as it is, unless the router is nested and
/// the page's own path does not end in `/` (axum serves a nested `/` at
/// `/feed`, never `/feed/`). A relative `stream` would then name `/stream`:
/// a `<base>` of `./feed/` (the path's last segment, so a proxy's prefix in
/// front of it is kept) makes it `/feed/stream`.
async fn page(
    nested: Result<NestedPath, NestedPathRejection>,
    OriginalUri(uri): OriginalUri,
) -> Html<Cow<'static, str>> {
    let path = uri.path();
    if nested.is_err() || path.ends_with('/') {
        return Html(Cow::Borrowed(VIEWER_HTML));
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    let base = format!("<meta charset=\"utf-8\">\n<base href=\"./{}/\">", escape_attribute(last));
    Html(Cow::Owned(VIEWER_HTML.replacen("<meta charset=\"utf-8\">", &base, 1)))
}

/// `text` made safe inside a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_charset_line_a_nested_base_goes_after() {
        assert_eq!(VIEWER_HTML.matches("<meta charset=\"utf-8\">").count(), 1);
    }

    #[test]
    fn a_path_segment_cannot_leave_the_base_attribute() {
        assert_eq!(escape_attribute(r#"a"><script>&"#), "a&quot;&gt;&lt;script&gt;&amp;");
    }
}
