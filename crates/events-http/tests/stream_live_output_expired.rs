//! `GET /stream?live_output=1` with a cursor inside output the writer's ring
//! no longer holds: one `event: reset` frame whose reason is
//! `live_output_expired` (the name the viewer page looks for), then the
//! next durable event; a cursor the ring still covers gets the rest of the
//! response and no reset.

mod support;

use events::{Feed, LiveOutput, SyncPolicy};
use support::{Agent, Sse, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_ring_gets_a_live_output_expired_reset_then_the_message() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = live_feed(tmp.path()).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    let session = feed.session("chat");
    session.emit(Agent::Message("question".into())).await.unwrap();
    for n in 1..=50 {
        session.emit(Agent::Token(format!("t{n} "))).await.unwrap();
    }
    session.emit(Agent::Message("answer".into())).await.unwrap();
    // `emit` returns once the writer's inbox holds the event, not once it is
    // journaled: `sync` is queued behind them, so the server knows seq 2 when
    // the clients connect (a cursor past what it knows is `ahead`).
    feed.sync().await.unwrap();
    let url = format!("http://{addr}/stream?live_output=1");

    // A client that saw the 5th token: tokens 6..=40 are gone.
    let mut sse = Sse::open(&url, Some(&format!("{epoch}-1.5"))).await;
    let reset = sse.next().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.json()["reason"], "live_output_expired", "{reset:?}");
    assert_eq!(reset.json()["earliest"], 2, "{reset:?}");
    // Its id is past the lost run, so a reconnect with it is not reset again.
    assert_eq!(reset.id, Some(format!("{epoch}-1.{}", u32::MAX)), "{reset:?}");
    let message = sse.next().await;
    assert_eq!((message.event.clone(), message.id.clone()), (None, Some(format!("{epoch}-2"))), "{message:?}");
    assert_eq!(message.json()["event"]["Message"], "answer");
    // Counted with the other resets (`/status`, `events_resets_total`).
    assert_eq!(feed.stats().resets, 1);
    let body = support::get(&format!("http://{addr}/status"), None).await.text().await.unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["stats"]["resets"], 1, "{status}");
    let mut again = Sse::open(&url, reset.id.as_deref()).await;
    let first = again.next().await;
    assert_eq!((first.event.clone(), first.id.clone()), (None, Some(format!("{epoch}-2"))), "{first:?}");

    // A client that saw the 45th token gets tokens 46..=50, then the answer.
    let mut sse = Sse::open(&url, Some(&format!("{epoch}-1.45"))).await;
    for n in 46..=50 {
        let frame = sse.next().await;
        assert_eq!((frame.event.as_deref(), frame.id.clone()), (Some("ephemeral"), Some(format!("{epoch}-1.{n}"))));
        assert_eq!(frame.json()["event"]["Token"], format!("t{n} "));
    }
    assert_eq!(sse.next().await.id, Some(format!("{epoch}-2")));
    assert_eq!(feed.stats().resets, 1, "neither later client was reset");
    feed.close().await.unwrap();
}

/// `?since=latest&live_output=1` is a client that has seen nothing: in the
/// middle of a response whose start the ring dropped, it gets the next
/// token and the answer; after a restart (the earlier process's output is
/// gone), the same, this writer's output having positions of its own.
/// Neither gets a `live_output_expired` reset (both got one, for output
/// they never asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_live_client_starts_with_what_comes_next_and_no_reset() {
    let tmp = tempfile::tempdir().unwrap();
    for restart in [false, true] {
        let feed = live_feed(tmp.path()).await;
        let epoch = feed.epoch();
        let addr = serve(events_http::router(feed.reader())).await;
        let session = feed.session("chat");
        if !restart {
            session.emit(Agent::Message("question".into())).await.unwrap();
            // A long response: the ring keeps its last 10 tokens.
            for n in 1..=50 {
                session.emit(Agent::Token(format!("t{n} "))).await.unwrap();
            }
        }
        feed.sync().await.unwrap();
        let latest = feed.latest_seq().get();
        let mut sse = Sse::open(&format!("http://{addr}/stream?since=latest&live_output=1"), None).await;
        sse.start_checkpoint().await;
        session.emit(Agent::Token("next ".into())).await.unwrap();
        session.emit(Agent::Message("answer".into())).await.unwrap();
        // After a restart too: this writer's output after the latest durable
        // event has positions of its own, apart from the earlier process's
        // (it had been skipped, sharing their positions).
        let token = sse.next().await;
        assert_eq!(token.event.as_deref(), Some("ephemeral"), "restart {restart}: {token:?}");
        assert_eq!(token.json()["event"]["Token"], "next ", "restart {restart}: {token:?}");
        let first = sse.next().await;
        assert_eq!(first.event, None, "restart {restart}: no reset, the answer: {first:?}");
        assert_eq!(first.id, Some(format!("{epoch}-{}", latest + 1)), "restart {restart}: {first:?}");
        feed.close().await.unwrap();
    }
}

/// A feed whose ring keeps the last 10 tokens of a stream.
async fn live_feed(dir: &std::path::Path) -> Feed<Agent> {
    Feed::builder(dir).sync(SyncPolicy::Never).live_output(LiveOutput::new().per_stream(10)).open().await.unwrap()
}

/// After a restart, a client inside the earlier process's run gets a
/// `live_output_expired` reset whose id is where the new writer's output of
/// that run starts: a client that reconnects with it before its first new
/// token gets that token. The id had been the run's end (`.4294967295`),
/// and the reconnect skipped every token of the new response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_a_restart_resumes_before_the_new_writers_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = live_feed(tmp.path()).await;
    let session = feed.session("chat");
    session.emit(Agent::Message("question".into())).await.unwrap();
    for n in 1..=3 {
        session.emit(Agent::Token(format!("t{n} "))).await.unwrap();
    }
    feed.close().await.unwrap();

    let feed = live_feed(tmp.path()).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    let url = format!("http://{addr}/stream?live_output=1");
    // A client that saw the earlier process's 2nd token: the rest is gone.
    let mut sse = Sse::open(&url, Some(&format!("{epoch}-1.2"))).await;
    let reset = sse.next().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.json()["reason"], "live_output_expired", "{reset:?}");
    let resume = reset.id.clone().expect("the reset's id");
    assert_ne!(resume, format!("{epoch}-1.{}", u32::MAX), "past the new writer's run: {reset:?}");
    drop(sse);

    let session = feed.session("chat");
    session.emit(Agent::Token("hello ".into())).await.unwrap();
    session.emit(Agent::Message("answer".into())).await.unwrap();
    let mut again = Sse::open(&url, Some(&resume)).await;
    let token = again.next().await;
    assert_eq!(token.event.as_deref(), Some("ephemeral"), "the new token, not the answer: {token:?}");
    assert_eq!(token.json()["event"]["Token"], "hello ", "{token:?}");
    let message = again.next().await;
    assert_eq!((message.event.clone(), message.id.clone()), (None, Some(format!("{epoch}-2"))), "{message:?}");
    feed.close().await.unwrap();
}
