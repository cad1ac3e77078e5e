//! Bad input and the other routes: a non-numeric `Last-Event-ID` or `since`
//! is a 400 that says what was wrong, an unknown path is a 404, and
//! `/status` reports where the feed stands as JSON.

mod common;

use common::{append, feed, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cursors_are_400_and_unknown_paths_404() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    let addr = serve(events_http::router(feed.clone())).await;
    let client = reqwest::Client::new();

    let response = client.get(format!("http://{addr}/stream")).header("Last-Event-ID", "abc").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("invalid Last-Event-ID header \"abc\""), "{text}");

    // The header wins, so a bad header is refused even with a good since.
    let response =
        client.get(format!("http://{addr}/stream?since=2")).header("Last-Event-ID", "-1").send().await.unwrap();
    assert_eq!(response.status(), 400);

    let response = client.get(format!("http://{addr}/stream?since=soon")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("invalid since=\"soon\""), "{text}");

    let response = client.get(format!("http://{addr}/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let text = response.text().await.unwrap();
    assert!(text.contains("GET /nope") && text.contains("/stream"), "{text}");

    let response = client.post(format!("http://{addr}/stream")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_seqs_epoch_clients_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, None, 1..=7).await;
    let addr = serve(events_http::router(feed.clone()).merge(events_http::viewer())).await;

    let _open = common::Sse::open(&format!("http://{addr}/stream"), None).await;
    let status: serde_json::Value =
        serde_json::from_str(&reqwest::get(format!("http://{addr}/status")).await.unwrap().text().await.unwrap())
            .unwrap();
    assert_eq!(status["latest_seq"], 7);
    assert_eq!(status["earliest_seq"], 1);
    assert_eq!(status["epoch"], feed.epoch().to_string());
    assert_eq!(status["http_clients"], 1);
    assert_eq!(status["stats"]["appended"], 7);
    assert_eq!(status["stats"]["healthy"], true);

    // The viewer page is served at / and talks to the routes beside it.
    let page = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("new EventSource(\"stream?\"") && html.contains("fetch(\"status\")"));
    feed.close().await.unwrap();
}
