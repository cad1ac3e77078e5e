//! An event the served reader cannot decode: under `OnUndecodable::Skip` an
//! SSE client gets one `event: undecodable` frame whose id moves its cursor
//! past the record, then every later event; a client that reconnects with
//! that id does not see it again. Under the default `Fail`, the `error`
//! frame, after the events before it, whose `retry:` the next response's
//! first frame sets back.

mod support;

use events::layers::journal::{Journal, JournalOptions};
use events::{Bincode, Codec, FeedReader, OnUndecodable};
use support::{Sse, TestEvent, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_sends_one_undecodable_frame_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    support::append(&feed, None, 1..=3).await;
    feed.close().await.unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    journal.append_now([0x02, 0x99]).unwrap(); // seq 4: not a bincode option
    journal.close().unwrap();
    let feed = support::feed(tmp.path()).await;
    support::append(&feed, None, 5..=6).await;
    let epoch = feed.epoch();

    let reader = FeedReader::<TestEvent>::open(tmp.path()).unwrap().on_undecodable(OnUndecodable::Skip);
    let addr = support::serve(events_http::router(reader)).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 3).await, [1, 2, 3]);
    let frame = sse.next().await;
    assert_eq!(frame.event.as_deref(), Some("undecodable"), "{frame:?}");
    assert_eq!(frame.id, Some(id(epoch, 4)));
    assert_eq!((frame.json()["seq"].as_u64(), frame.json()["version"].as_u64()), (Some(4), Some(1)));
    assert!(frame.json()["error"].as_str().is_some_and(|e| e.contains("bincode")), "{frame:?}");
    assert_eq!(sse.seqs_in(epoch, 2).await, [5, 6]);

    // Reconnecting after it: not sent again.
    let mut again = Sse::open(&format!("http://{addr}/stream"), Some(&id(epoch, 4))).await;
    assert_eq!(again.seqs_in(epoch, 2).await, [5, 6]);

    // The default policy: the events before it, then the error frame.
    let strict = support::serve(events_http::router(FeedReader::<TestEvent>::open(tmp.path()).unwrap())).await;
    let mut sse = Sse::open(&format!("http://{strict}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 3).await, [1, 2, 3]);
    let frame = sse.next().await;
    assert_eq!(frame.event.as_deref(), Some("error"), "{frame:?}");
    assert!(frame.json()["error"].as_str().is_some_and(|e| e.contains("seq 4")), "{frame:?}");
    // A browser would meet the same error again from the same cursor: it
    // waits 30 s, not its default few seconds, before it asks again.
    assert_eq!(frame.retry, Some(30_000), "{frame:?}");
    // A browser keeps the last `retry:` it got: the next response's first
    // frame sets it back to 3 s (it had stayed at 30 s for every later
    // reconnect, a stall's or a graceful shutdown's included), and only
    // the first frame carries it: one of `retry:` alone, sent before any
    // event (below: before there is one to send).
    let mut after = Sse::open(&format!("http://{strict}/stream"), Some(&id(epoch, 4))).await;
    let reset = after.next_any().await.expect("the reconnect delay");
    assert_eq!((reset.retry, reset.data.as_str(), reset.id.as_deref()), (Some(3_000), "", None), "{reset:?}");
    let (first, second) = (after.next().await, after.next().await);
    assert_eq!((first.seq_in(epoch), first.retry), (5, None), "{first:?}");
    assert_eq!((second.seq_in(epoch), second.retry), (6, None), "{second:?}");
    let mut latest = Sse::open(&format!("http://{strict}/stream?since=latest"), None).await;
    let start = latest.next().await;
    assert_eq!((start.event.as_deref(), start.retry), (Some("checkpoint"), Some(3_000)), "{start:?}");
    feed.close().await.unwrap();
}

/// An event the reader decodes but JSON cannot carry (a map with tuple
/// keys): under `Skip` it is one `undecodable` frame with its id, saying
/// why, and the stream goes on; under the default `Fail`, the `error`
/// frame. It was the error frame, with no id, whatever the policy: a
/// client reconnecting from its last id met it again, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_json_cannot_carry_follows_the_undecodable_policy() {
    use std::collections::BTreeMap;
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Grid(BTreeMap<(u8, u8), u8>);
    impl events::Event for Grid {}
    let tmp = tempfile::tempdir().unwrap();
    let feed: events::Feed<Grid> = events::Feed::builder(tmp.path()).open().await.unwrap();
    for cells in [vec![], vec![((1, 2), 3)], vec![]] {
        feed.append(None, Grid(cells.into_iter().collect())).await.unwrap();
    }
    let epoch = feed.epoch();

    let addr = support::serve(events_http::router(feed.reader().on_undecodable(OnUndecodable::Skip))).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 1).await, [1]);
    let frame = sse.next().await;
    assert_eq!((frame.event.as_deref(), frame.id.clone()), (Some("undecodable"), Some(id(epoch, 2))), "{frame:?}");
    assert!(frame.json()["error"].as_str().is_some_and(|e| e.contains("JSON")), "{frame:?}");
    assert_eq!(sse.seqs_in(epoch, 1).await, [3]);

    let strict = support::serve(events_http::router(feed.reader())).await;
    let mut sse = Sse::open(&format!("http://{strict}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 1).await, [1]);
    let frame = sse.next().await;
    assert_eq!(frame.event.as_deref(), Some("error"), "{frame:?}");
    feed.close().await.unwrap();
}

/// An event whose `Serialize` panics for JSON (human-readable formats)
/// only, so the journal's codec took it: under `Skip` one `undecodable`
/// frame with its id, saying it panicked, and the stream goes on; under
/// the default `Fail`, the `error` frame. The panic had ended the
/// connection's task with no frame, and every reconnect from the same
/// cursor met it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_serialize_panics_for_json_follows_the_undecodable_policy() {
    #[derive(Clone, Debug, serde::Deserialize)]
    struct Touchy(u32);
    impl serde::Serialize for Touchy {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            assert!(!(s.is_human_readable() && self.0 == 2), "Touchy(2) will not be JSON");
            s.serialize_newtype_struct("Touchy", &self.0)
        }
    }
    impl events::Event for Touchy {}
    let tmp = tempfile::tempdir().unwrap();
    let feed: events::Feed<Touchy> = events::Feed::builder(tmp.path()).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, Touchy(n)).await.unwrap();
    }
    let epoch = feed.epoch();

    let addr = support::serve(events_http::router(feed.reader().on_undecodable(OnUndecodable::Skip))).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 1).await, [1]);
    let frame = sse.next().await;
    assert_eq!((frame.event.as_deref(), frame.id.clone()), (Some("undecodable"), Some(id(epoch, 2))), "{frame:?}");
    assert!(frame.json()["error"].as_str().is_some_and(|e| e.contains("Touchy(2) will not be JSON")), "{frame:?}");
    assert_eq!(sse.seqs_in(epoch, 1).await, [3]);

    let strict = support::serve(events_http::router(feed.reader())).await;
    let mut sse = Sse::open(&format!("http://{strict}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 1).await, [1]);
    let frame = sse.next().await;
    assert_eq!(frame.event.as_deref(), Some("error"), "{frame:?}");
    assert!(frame.json()["error"].as_str().is_some_and(|e| e.contains("panicked")), "{frame:?}");
    feed.close().await.unwrap();
}

/// An event whose `Drop` panics, let go by the response that sent it (the
/// last reference to an event a catch-up decoded): the panic is logged
/// and every event goes out. It had ended the connection's task before
/// the event's frame went out, at every reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_does_not_end_the_response() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: AtomicBool = AtomicBool::new(false);
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Fragile(u32);
    impl Drop for Fragile {
        fn drop(&mut self) {
            assert!(!(ARMED.load(Ordering::Relaxed) && self.0 == 2), "Fragile(2) breaks when let go");
        }
    }
    impl events::Event for Fragile {}
    let tmp = tempfile::tempdir().unwrap();
    let feed: events::Feed<Fragile> = events::Feed::builder(tmp.path()).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, Fragile(n)).await.unwrap();
    }
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    ARMED.store(true, Ordering::Relaxed);

    let reader = events::FeedReader::<Fragile>::open(tmp.path()).unwrap();
    let addr = support::serve(events_http::router(reader)).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs_in(epoch, 3).await, [1, 2, 3]);
}
