//! A graceful shutdown of a server following a journal another process
//! writes (`FeedReader::open`), with a client on `/stream`: the stream of a
//! follower never ends by itself, so `axum::serve(..).with_graceful_shutdown`
//! waited for that client for ever. Closing the router's `StreamCloser` in
//! the shutdown signal ends every open response after the frame under way,
//! and the server returns; a request made after the close gets an event
//! stream that ends at once (after its `since=latest` position, if it asked
//! for one). The client missed nothing: reconnecting elsewhere with its
//! last id gives the events appended since.

mod support;

use std::future::IntoFuture;
use std::time::Duration;

use events::FeedReader;
use events_http::FeedRouter;
use support::{Sse, TestEvent, append, feed, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_streams_lets_a_graceful_shutdown_end_with_a_client_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let writer = feed(&dir).await;
    append(&writer, None, 1..=3).await;
    let epoch = writer.epoch();
    let routes = FeedRouter::new(FeedReader::<TestEvent>::open(&dir).unwrap()).keep_alive(Duration::from_millis(100));
    let closer = routes.closer();
    let mut clients = routes.clients();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = {
        let closer = closer.clone();
        async move {
            let _ = stopped.await;
            closer.close();
        }
    };
    let server = tokio::spawn(axum::serve(listener, routes.build()).with_graceful_shutdown(shutdown).into_future());

    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 3).await, [1, 2, 3]);
    assert_eq!(*clients.borrow_and_update(), 1);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the graceful shutdown never ended with a client on /stream")
        .unwrap()
        .unwrap();
    assert!(closer.is_closed());
    assert_eq!(sse.next_or_end().await, None, "the open response ended");
    assert_eq!(*clients.borrow(), 0);

    // Another router on the same journal: the client's last id resumes.
    append(&writer, None, 4..=5).await;
    let routes = FeedRouter::new(FeedReader::<TestEvent>::open(&dir).unwrap());
    let closer = routes.closer();
    let addr = support::serve(routes.build()).await;
    let mut resumed = Sse::open(&format!("http://{addr}/stream"), sse.last_id().as_deref()).await;
    assert_eq!(sse.last_id(), Some(id(epoch, 3)));
    assert_eq!(resumed.seqs_in(epoch, 2).await, [4, 5]);
    // Closed, it ends the open response, and a new one at once: an event
    // stream, which a browser reconnects after (not a `503`, after which
    // an `EventSource` gives up).
    closer.close();
    assert_eq!(resumed.next_or_end().await, None);
    let mut after_close = Sse::open(&format!("http://{addr}/stream"), sse.last_id().as_deref()).await;
    // Its one frame sets a browser's reconnect delay back to 3 s, after an
    // earlier response's error frame (30 s); it dispatches nothing.
    let frame = after_close.next_any().await.expect("the reconnect delay");
    assert_eq!((frame.retry, frame.data.as_str(), frame.id.as_deref()), (Some(3_000), "", None), "{frame:?}");
    assert_eq!(after_close.next_or_end().await, None);
    // `since=latest` after the close still names the position "now" was,
    // so a reconnect elsewhere resumes there: it had ended with no frame,
    // and the reconnect (no id, `since=latest` again) missed what came
    // between.
    let mut latest = Sse::open(&format!("http://{addr}/stream?since=latest"), None).await;
    let start = latest.next_or_end().await.expect("the start frame after the close");
    assert_eq!((start.event.as_deref(), start.id), (Some("checkpoint"), Some(id(epoch, 5))));
    assert_eq!(latest.next_or_end().await, None);
    writer.close().await.unwrap();
}

/// A client on a quiet feed (nothing after its cursor): its response's
/// first frame, sent at once, sets the client's reconnect delay back to
/// 3 s, so a response cut before any event (a network blip, the router's
/// close) has set it. It had ridden on the first event: the response
/// ended by the close ended with no such frame (until a frame was sent at
/// the end), and one cut by the network still has none, so a browser whose
/// earlier response ended in an error frame (30 s) kept waiting 30 s
/// before each reconnect (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_response_sets_the_reconnect_delay_before_any_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let writer = feed(&dir).await;
    append(&writer, None, 1..=2).await;
    let epoch = writer.epoch();
    let routes = FeedRouter::new(FeedReader::<TestEvent>::open(&dir).unwrap());
    let closer = routes.closer();
    let mut clients = routes.clients();
    let addr = support::serve(routes.build()).await;
    let mut quiet = Sse::open(&format!("http://{addr}/stream"), Some(&id(epoch, 2))).await;
    clients.wait_for(|open| *open == 1).await.unwrap();
    // Before the keep-alive's comment (15 s), and with no event to send.
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), quiet.next_any())
        .await
        .expect("a frame at once")
        .expect("the reconnect delay");
    assert_eq!((frame.retry, frame.data.as_str(), frame.id.as_deref()), (Some(3_000), "", None), "{frame:?}");
    closer.close();
    assert_eq!(quiet.next_or_end().await, None);
    writer.close().await.unwrap();
}
