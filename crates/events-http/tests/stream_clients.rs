//! What a client's connection costs the server: a disconnect frees its
//! stream at once, a client that stops reading makes its stream fall back
//! to the journal (no unbounded buffer) and still gets everything in order,
//! and after the stall timeout its response ends and its stream is freed
//! (a client of a quiet feed is never ended); an idle stream carries
//! keep-alive comments, the response tells proxies not to buffer it, and
//! requests beyond `max_clients` get a `503`.

mod support;

use std::time::Duration;

use events::{Feed, SyncPolicy};
use events_http::FeedRouter;
use futures::StreamExt;
use support::{Sse, TestEvent, WAIT, append, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_frees_the_stream_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    append(&feed, None, 1..=3).await;
    let routes = FeedRouter::new(feed.reader());
    let mut clients = routes.clients();
    let addr = serve(routes.build()).await;

    let mut first = Sse::open(&format!("http://{addr}/stream"), None).await;
    let mut second = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!((first.next().await.seq(), second.next().await.seq()), (1, 1));
    assert_eq!(*clients.borrow(), 2);

    // The client goes away while its stream is idle (caught up, waiting
    // for live events): the server must notice without an event to send.
    assert_eq!(first.seqs(2).await, vec![2, 3]);
    drop(first);
    tokio::time::timeout(WAIT, clients.wait_for(|n| *n == 1)).await.expect("freed in time").unwrap();
    drop(second);
    tokio::time::timeout(WAIT, clients.wait_for(|n| *n == 0)).await.expect("freed in time").unwrap();
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_falls_back_to_the_journal_and_gets_everything() {
    // Far more than the loopback socket buffers hold, so the server must
    // stop producing frames while the client does not read.
    const TOTAL: u64 = 6000;
    let pad = "p".repeat(4096);
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<TestEvent> =
        Feed::builder(tmp.path()).sync(SyncPolicy::Never).live_capacity(16).open().await.unwrap();
    let addr = serve(events_http::router(feed.reader())).await;

    let response = reqwest::get(format!("http://{addr}/stream")).await.unwrap();
    assert_eq!(response.status(), 200);
    // The client reads nothing while the feed runs far ahead.
    for n in 1..=TOTAL {
        feed.append(None, TestEvent { n, pad: pad.clone() }).await.unwrap();
    }
    assert!(
        feed.stats().lagged_fallbacks >= 1,
        "the stalled stream left the live tail for the journal instead of buffering: {:?}",
        feed.stats()
    );

    // Now it reads, and everything is there, in order.
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut next = 1;
    let mut opened = false;
    let epoch = feed.epoch();
    while next <= TOTAL {
        let chunk = tokio::time::timeout(WAIT, body.next()).await.expect("data in time").unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if !std::mem::replace(&mut opened, true) {
                assert_eq!(frame, "retry: 3000\n\n", "the response's first frame");
                continue;
            }
            let expected = format!("id: {epoch}-{next}\ndata: {{\"seq\":{next},");
            assert!(frame.starts_with(&expected), "expected seq {next}, got {:?}", &frame[..frame.len().min(80)]);
            next += 1;
        }
    }
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_carries_keep_alive_comments() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    let addr = serve(FeedRouter::new(feed.reader()).keep_alive(Duration::from_millis(50)).build()).await;

    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    let frame = sse.next_any().await.expect("a frame");
    assert_eq!(frame.retry, Some(3_000), "the response's first frame: {frame:?}");
    let frame = sse.next_any().await.expect("a frame");
    assert_eq!(frame.comment.as_deref(), Some("keep-alive"), "{frame:?}");
    append(&feed, None, 1..=1).await;
    assert_eq!(sse.next().await.seq(), 1);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_asks_proxies_and_caches_to_pass_each_frame_on() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    append(&feed, None, 1..=1).await;
    let addr = serve(events_http::router(feed.reader())).await;

    let response = reqwest::get(format!("http://{addr}/stream")).await.unwrap();
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    // Behind nginx's default `proxy_buffering on`, a quiet feed's frames
    // would wait in the proxy's buffer until keep-alives filled it.
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    drop(response);
    feed.close().await.unwrap();
}

/// A client that stops reading while events flow: once a frame has waited
/// the stall timeout for its connection, its response is ended and its
/// stream freed (the client count drops with the connection still open).
/// When it reads again it gets what was sent, in order, then the end of
/// the response, and resumes from its last id with the next event. Its
/// stream had lived as long as the connection: two chunks of events read
/// ahead, and the journal segments they came from, held on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stopped_reading_is_ended_after_the_stall_timeout() {
    // Far more than the loopback socket buffers and hyper's hold.
    const TOTAL: u64 = 400;
    let pad = "p".repeat(64 << 10);
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    let routes = FeedRouter::new(feed.reader()).stall_timeout(Duration::from_millis(300));
    let mut clients = routes.clients();
    let addr = serve(routes.build()).await;
    let epoch = feed.epoch();

    let response = reqwest::get(format!("http://{addr}/stream")).await.unwrap();
    assert_eq!(response.status(), 200);
    for n in 1..=TOTAL {
        feed.append(None, TestEvent { n, pad: pad.clone() }).await.unwrap();
    }
    tokio::time::timeout(WAIT, clients.wait_for(|n| *n == 0)).await.expect("the stalled client ended").unwrap();

    // It reads again: events from the first, in order, then the end.
    let mut body = response.bytes_stream();
    let (mut text, mut next, mut opened) = (String::new(), 1, false);
    while let Some(chunk) = tokio::time::timeout(WAIT, body.next()).await.expect("data in time") {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            if !std::mem::replace(&mut opened, true) {
                assert_eq!(frame, "retry: 3000\n\n", "the response's first frame");
                continue;
            }
            let expected = format!("id: {epoch}-{next}\ndata: {{\"seq\":{next},");
            assert!(frame.starts_with(&expected), "expected seq {next}, got {:?}", &frame[..frame.len().min(80)]);
            next += 1;
        }
    }
    assert!(text.is_empty(), "the response ended between frames: {text:?}");
    assert!(next <= TOTAL, "the response ended before the last event, as stalled: {next}");
    let mut again = Sse::open(&format!("http://{addr}/stream"), Some(&support::id(epoch, next - 1))).await;
    assert_eq!(again.next().await.seq_in(epoch), next, "no gap, no duplicate");
    drop(again);
    feed.close().await.unwrap();
}

/// A client of a quiet feed has no frame waiting for it: it is never
/// judged stalled, however long the feed stays quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_quiet_feed_is_not_stalled() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    append(&feed, None, 1..=3).await;
    let routes = FeedRouter::new(feed.reader()).stall_timeout(Duration::from_millis(100));
    let clients = routes.clients();
    let addr = serve(routes.build()).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs(3).await, [1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(*clients.borrow(), 1, "the quiet client was ended");
    append(&feed, None, 4..=4).await;
    assert_eq!(sse.next().await.seq(), 4);
    feed.close().await.unwrap();
}

/// `max_clients(1)`: a second `/stream` while one is open is a `503` with
/// `Retry-After` and a line naming the limit; once the first is gone, a
/// new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_clients_are_refused_with_503() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    append(&feed, None, 1..=1).await;
    let routes = FeedRouter::new(feed.reader()).max_clients(1);
    let mut clients = routes.clients();
    let addr = serve(routes.build()).await;
    let url = format!("http://{addr}/stream");

    let mut first = Sse::open(&url, None).await;
    assert_eq!(first.next().await.seq(), 1);
    let refused = reqwest::get(&url).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("5"));
    let why = refused.text().await.unwrap();
    assert!(why.starts_with("too many clients: 1 /stream responses are open") && why.ends_with('\n'), "{why:?}");
    assert_eq!(*clients.borrow(), 1, "the refused request was never counted");
    // `/status` is not limited.
    assert_eq!(reqwest::get(format!("http://{addr}/status")).await.unwrap().status(), 200);

    drop(first);
    tokio::time::timeout(WAIT, clients.wait_for(|n| *n == 0)).await.expect("freed in time").unwrap();
    let mut second = Sse::open(&url, None).await;
    assert_eq!(second.next().await.seq(), 1);

    // Shutting down, at the limit: the empty event stream a browser
    // reconnects after, not the `503` it would give up on.
    let full = FeedRouter::new(feed.reader()).max_clients(0);
    let closer = full.closer();
    let addr = serve(full.build()).await;
    let url = format!("http://{addr}/stream");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 503);
    closer.close();
    let mut ended = Sse::open(&url, None).await;
    assert_eq!(ended.next_or_end().await, None, "an event stream that ends at once");
    feed.close().await.unwrap();
}
