//! Bad input and the other routes: a malformed `Last-Event-ID` or `since`
//! is a 400 that says what was wrong (even when the other one is valid), an
//! unknown path is a 404 that names the routes and the viewer page, another
//! method than GET is a 405 with a one-line body, and `/status` reports
//! where the feed stands as JSON.

mod support;

use support::{Sse, append, feed, id, serve};

/// A one-line body: some text and a single trailing newline.
fn assert_one_line(text: &str) {
    assert!(text.ends_with('\n') && text.trim_end().len() > 10 && !text.trim_end().contains('\n'), "{text:?}");
}

/// A feed holding seqs 1..=3, served: the feed, its epoch, a client and
/// the URL of `/stream`.
async fn served(dir: &std::path::Path) -> (events::Feed<support::TestEvent>, u64, reqwest::Client, String) {
    let feed = feed(dir).await;
    append(&feed, None, 1..=3).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    (feed, epoch, reqwest::Client::new(), format!("http://{addr}/stream"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cursors_are_400_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (feed, epoch, client, url) = served(tmp.path()).await;

    for bad in
        ["abc", "-1", "+2", "7-", "-7", "1-2-3", "0x10", "1.0", "1.5.6", "1-2.x", "18446744073709551616", "latest"]
    {
        let response = client.get(&url).header("Last-Event-ID", bad).send().await.unwrap();
        assert_eq!(response.status(), 400, "Last-Event-ID: {bad}");
        let text = response.text().await.unwrap();
        assert!(text.contains(&format!("invalid Last-Event-ID header {bad:?}")), "{text}");
        assert!(text.contains("<epoch>-<seq>"), "the message shows the expected form: {text}");
        assert_one_line(&text);
    }

    // A bad header is refused even with a good since (the header would win)...
    let response = client.get(format!("{url}?since=2")).header("Last-Event-ID", "-1").send().await.unwrap();
    assert_eq!(response.status(), 400);
    // ...and a bad since is refused even with a good header: never ignored.
    let response = client.get(format!("{url}?since=2-x")).header("Last-Event-ID", id(epoch, 1)).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("invalid since=\"2-x\""), "{text}");

    for bad in ["soon", "7-", "-3", "3-latest"] {
        let response = client.get(format!("{url}?since={bad}")).send().await.unwrap();
        assert_eq!(response.status(), 400, "since={bad}");
        let text = response.text().await.unwrap();
        assert!(text.contains(&format!("invalid since={bad:?}")), "{text}");
        assert_one_line(&text);
    }
    feed.close().await.unwrap();
}

/// A parameter `/stream` does not take, a repeated parameter or
/// `Last-Event-ID` header, and an empty `stream=` are 400s naming what was
/// wrong. Unknown ones had been served as if absent (`?from=2` replayed
/// everything, `?live-output=1` left the live output out, `?streams=a`
/// served every stream), a repeated parameter refused with axum's generic
/// message, the second header ignored, and an empty stream id filtered on
/// the id of no bytes: checkpoints only, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repeated_or_empty_parameters_are_400_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (feed, epoch, client, url) = served(tmp.path()).await;
    let cases = [
        ("?from=2", "unknown query parameter \"from\""),
        ("?since=1&live-output=1", "unknown query parameter \"live-output\""),
        ("?streams=a", "unknown query parameter \"streams\""),
        ("?since=1&since=2", "the query parameter since was given more than once"),
        ("?stream=a&stream=b", "the query parameter stream was given more than once"),
        ("?stream=", "invalid stream= parameter: empty"),
    ];
    for (query, why) in cases {
        let response = client.get(format!("{url}{query}")).send().await.unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let text = response.text().await.unwrap();
        assert!(text.contains(why), "{query}: {text}");
        assert_one_line(&text);
    }
    let response = client
        .get(&url)
        .header("Last-Event-ID", id(epoch, 1))
        .header("Last-Event-ID", id(epoch, 2))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("the Last-Event-ID header was given more than once"), "{text}");
    // The parameters it takes, each once, still serve.
    let response = client.get(format!("{url}?since=1&stream=a&live_output=0")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // `lastEventId`, as EventSource polyfills send it on a reconnect, counts
    // as the header: it wins over `since` (the first connection's URL).
    let mut sse = Sse::open(&format!("{url}?since=1&lastEventId={}", id(epoch, 2)), None).await;
    assert_eq!(sse.next().await.seq_in(epoch), 3);
    let response = client.get(format!("{url}?lastEventId=x")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.starts_with("invalid lastEventId=\"x\": expected the id"), "the parameter named: {text}");
    // An empty header counts as absent: the parameter is the cursor. (It
    // had been "no cursor", replaying seqs 1 and 2 again, or with
    // `since=latest` skipping what came after 2.)
    let mut sse = Sse::open(&format!("{url}?since=latest&lastEventId={}", id(epoch, 2)), Some("")).await;
    assert_eq!(sse.next().await.seq_in(epoch), 3, "event 3 itself");
    // Both given: both checked, and the header wins (a page that put
    // `lastEventId` in its `EventSource`'s URL reconnects with that URL and
    // the newer id in the header).
    let both = |header: String, param: String| {
        client.get(format!("{url}?lastEventId={param}")).header("Last-Event-ID", header).send()
    };
    let response = both(id(epoch, 2), "x".into()).await.unwrap();
    assert_eq!(response.status(), 400, "a bad parameter beside a good header");
    // The parameter is named, not the good header (it had read "invalid
    // Last-Event-ID header \"x\"").
    let text = response.text().await.unwrap();
    assert!(text.starts_with("invalid lastEventId=\"x\""), "{text}");
    let response = both("x".into(), id(epoch, 2)).await.unwrap();
    assert_eq!(response.status(), 400, "a bad header beside a good parameter");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("invalid Last-Event-ID header \"x\""), "{text}");
    let mut sse = Sse::open(&format!("{url}?lastEventId={}", id(epoch, 1)), Some(&id(epoch, 2))).await;
    assert_eq!(sse.next().await.seq_in(epoch), 3, "after the header's event 2");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_other_methods_405_each_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    let addr = serve(events_http::router(feed.reader()).merge(events_http::viewer())).await;
    let client = reqwest::Client::new();

    let response = client.get(format!("http://{addr}/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let text = response.text().await.unwrap();
    assert!(text.contains("GET /nope") && text.contains("GET /stream") && text.contains("GET /status"), "{text}");
    assert!(text.contains("viewer page at GET / "), "the 404 points to the viewer: {text}");
    assert_one_line(&text);

    for path in ["/stream", "/status", "/"] {
        let response = client.post(format!("http://{addr}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 405, "POST {path}");
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        assert!(allow.as_deref().is_some_and(|a| a.contains("GET")), "Allow: {allow:?}");
        let text = response.text().await.unwrap();
        assert_eq!(
            text,
            format!("method POST not allowed on {path}: this feed is read-only and answers only GET (and HEAD)\n")
        );
    }
    let response = client.delete(format!("http://{addr}/stream?since=1")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.text().await.unwrap().starts_with("method DELETE not allowed on /stream"));
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_seqs_epoch_clients_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, None, 1..=7).await;
    let addr = serve(events_http::router(feed.reader()).merge(events_http::viewer())).await;

    let _open = support::Sse::open(&format!("http://{addr}/stream"), None).await;
    let status: serde_json::Value =
        serde_json::from_str(&reqwest::get(format!("http://{addr}/status")).await.unwrap().text().await.unwrap())
            .unwrap();
    assert_eq!(status["latest_seq"], 7);
    assert_eq!(status["earliest_seq"], 1);
    assert_eq!(status["epoch"], feed.epoch().to_string());
    assert_eq!(status["latest_id"], id(feed.epoch(), 7));
    assert_eq!(status["http_clients"], 1);
    assert_eq!(status["stats"]["appended"], 7);
    assert_eq!(status["stats"]["healthy"], true);

    // `latest_id` is a `since` that starts after the latest event.
    let latest_id = status["latest_id"].as_str().unwrap();
    let mut after = support::Sse::open(&format!("http://{addr}/stream?since={latest_id}"), None).await;
    append(&feed, None, 8..=8).await;
    assert_eq!(after.next().await.seq_in(feed.epoch()), 8);

    // The viewer page is served at / and talks to the routes beside it.
    let page = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("new EventSource(\"stream?\"") && html.contains("fetch(\"status\""));
    feed.close().await.unwrap();
}

/// `FeedRouter::keep_alive` at its extremes: `Duration::MAX` serves events
/// (the interval is held to a day; a timer that far ahead had overflowed,
/// and the response ended at its first event with a panic), and zero sends
/// keep-alive comments at most every 100 ms, not in a busy loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_extremes_are_held_to_a_sane_interval() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, None, 1..=3).await;
    let far = serve(events_http::FeedRouter::new(feed.reader()).keep_alive(Duration::MAX).build()).await;
    let mut sse = support::Sse::open(&format!("http://{far}/stream?since=0"), None).await;
    assert_eq!(sse.seqs(3).await, vec![1, 2, 3]);

    let zero = serve(events_http::FeedRouter::new(feed.reader()).keep_alive(Duration::ZERO).build()).await;
    let mut idle = support::Sse::open(&format!("http://{zero}/stream?since=latest"), None).await;
    let start = std::time::Instant::now();
    let mut comments = 0;
    while start.elapsed() < Duration::from_millis(500) {
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(100), idle.next_any()).await
            && frame.comment.is_some()
        {
            comments += 1;
        }
    }
    assert!((1..=10).contains(&comments), "{comments} keep-alive comments in 500 ms");
    feed.close().await.unwrap();
}
