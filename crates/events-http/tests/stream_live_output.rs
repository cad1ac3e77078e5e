//! `GET /stream?live_output=1`: ephemeral events (streamed tokens) as
//! `event: ephemeral` frames with ids `<epoch>-<seq>.<index>`, interleaved
//! with the durable events in emit order; a client that reconnects with the
//! id of the last frame it got (as `EventSource` does) mid-response gets the
//! rest of the response and nothing twice; `?stream=` keeps one stream's
//! output; bad parameters and a feed without live output are refused.

mod support;

use events::{Feed, SyncPolicy};
use support::{Agent, Sse, get, live_feed, serve};

/// The text of a frame's event: the token or the message.
fn text(frame: &support::Frame) -> String {
    let event = &frame.json()["event"];
    event["Token"].as_str().or_else(|| event["Message"].as_str()).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_mid_response_gets_every_token_once() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = live_feed(tmp.path()).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    let session = feed.session("chat");
    session.emit(Agent::Message("question".into())).await.unwrap();
    let url = format!("http://{addr}/stream?live_output=1");
    let mut sse = Sse::open(&url, None).await;
    let first = sse.next().await;
    assert_eq!(
        (first.id.clone(), first.event.clone(), text(&first)),
        (Some(format!("{epoch}-1")), None, "question".into())
    );

    // A response streams; the client drops after the 4th token.
    let tokens: Vec<String> = (0..12).map(|n| format!("tok{n} ")).collect();
    for t in &tokens[..6] {
        session.emit(Agent::Token(t.clone())).await.unwrap();
    }
    let mut got = Vec::new();
    for n in 1..=4u32 {
        let frame = sse.next().await;
        assert_eq!(frame.event.as_deref(), Some("ephemeral"), "{frame:?}");
        assert_eq!(frame.id, Some(format!("{epoch}-1.{n}")));
        assert_eq!((frame.json()["seq"].as_u64(), frame.json()["index"].as_u64()), (Some(1), Some(u64::from(n))));
        assert_eq!(frame.json()["stream"], "chat");
        got.push(text(&frame));
    }
    let last = sse.last_id().unwrap();
    drop(sse);
    for t in &tokens[6..] {
        session.emit(Agent::Token(t.clone())).await.unwrap();
    }
    session.emit(Agent::Message(tokens.concat())).await.unwrap();

    // Reconnect with the last id: tokens 5.. then the message, once each.
    let mut sse = Sse::open(&url, Some(&last)).await;
    for _ in 4..12 {
        let frame = sse.next().await;
        assert_eq!(frame.event.as_deref(), Some("ephemeral"), "{frame:?}");
        got.push(text(&frame));
    }
    assert_eq!(got, tokens, "every token once, in order");
    let message = sse.next().await;
    assert_eq!(
        (message.id.clone(), message.event.clone(), text(&message)),
        (Some(format!("{epoch}-2")), None, tokens.concat())
    );

    // A late client of the same stream sees the whole conversation, and
    // `?stream=` of another stream sees none of it.
    let mut late = Sse::open(&format!("http://{addr}/stream?live_output=1&stream=chat"), None).await;
    let mut frames = Vec::new();
    for _ in 0..14 {
        frames.push(text(&late.next().await));
    }
    assert_eq!(frames[0], "question");
    assert_eq!(frames[1..13].concat(), tokens.concat());
    feed.record(Some("other"), &Agent::Token("elsewhere".into()));
    session.emit(Agent::Token("after".into())).await.unwrap();
    assert_eq!(text(&late.next().await), "after", "another stream's token leaked into ?stream=chat");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_and_a_feed_without_live_output_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = live_feed(tmp.path()).await;
    let addr = serve(events_http::router(feed.reader())).await;
    // A bare or empty parameter too: it had been "off", with no word.
    for bad in ["live_output=maybe", "live_output", "live_output="] {
        let refused = get(&format!("http://{addr}/stream?{bad}"), None).await;
        assert_eq!(refused.status(), 400, "{bad}");
        assert!(refused.text().await.unwrap().contains("invalid live_output"), "{bad}");
    }
    for bad in ["1-2.0", "1-2.x", "1-2.3.4"] {
        let refused = get(&format!("http://{addr}/stream?live_output=1"), Some(bad)).await;
        assert_eq!(refused.status(), 400, "{bad}");
    }
    feed.close().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let plain: Feed<Agent> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).open().await.unwrap();
    let addr = serve(events_http::router(plain.reader())).await;
    let refused = get(&format!("http://{addr}/stream?live_output=1"), None).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("live output is off"));
    // Without the parameter the same server streams durable events as before.
    plain.append(None, Agent::Message("m".into())).await.unwrap();
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(text(&sse.next().await), "m");
    plain.close().await.unwrap();
}

/// `since=latest&live_output=1` sends the position `FeedReader::live_latest`
/// picked first, as a `checkpoint` frame (the durable event and the last
/// token after it): a client that drops before its next frame and
/// reconnects with that id gets the tokens emitted meanwhile, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_latest_client_that_reconnects_before_its_next_frame_misses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = live_feed(tmp.path()).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    let session = feed.session("chat");
    session.emit(Agent::Message("question".into())).await.unwrap();
    for n in 1..=3 {
        session.emit(Agent::Token(format!("tok{n} "))).await.unwrap();
    }
    feed.sync().await.unwrap(); // the message journaled and published
    let picked = feed.reader().live_latest(None).unwrap();
    assert_eq!((picked.cursor.seq.get(), picked.index), (1, 3));
    let url = format!("http://{addr}/stream?since=latest&live_output=1");
    let mut first = Sse::open(&url, None).await;
    let start = first.next_any().await.expect("a first frame");
    assert_eq!(
        (start.id.as_deref(), start.event.as_deref()),
        (Some(format!("{epoch}-1.3").as_str()), Some("checkpoint"))
    );
    let resume = first.last_id();
    drop(first);
    for n in 4..=5 {
        session.emit(Agent::Token(format!("tok{n} "))).await.unwrap();
    }
    let mut again = Sse::open(&url, resume.as_deref()).await;
    for n in 4..=5u32 {
        let frame = again.next().await;
        assert_eq!((frame.id, frame.event.as_deref()), (Some(format!("{epoch}-1.{n}")), Some("ephemeral")));
    }
    feed.close().await.unwrap();
}
