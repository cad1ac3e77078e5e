//! A recreated journal directory (DESIGN §3, invariant 11): its epoch is
//! new, so a client holding an `<epoch>-<seq>` id of the old journal gets
//! one `epoch_mismatch` reset frame and then the new journal from its
//! beginning — never the new journal from the middle, even when it has
//! grown past the client's old seq. A server that follows the directory
//! with a `FeedReader` tells its connected clients the same way (a client
//! whose stream looked while the directory was missing or empty first gets
//! a transitional frame, and rides it out by reconnecting with its last id
//! as a browser does), and its `/status` reports the new epoch.

mod support;

use std::path::Path;

use events::{Feed, FeedReader};
use support::{Frame, Sse, TestEvent, append, id, serve};

/// Closes `feed`, deletes its directory and opens a new feed in the same
/// path: a new journal, with a new epoch.
async fn recreate(feed: Feed<TestEvent>, dir: &Path) -> Feed<TestEvent> {
    let old = feed.epoch();
    feed.close().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    let feed = support::feed(dir).await;
    assert_ne!(feed.epoch(), old, "a recreated directory has a new epoch");
    feed
}

/// Checks that `frame` is the `epoch_mismatch` reset from `old` to `new`,
/// for a journal holding `1..=latest`, that goes on from its beginning.
fn assert_epoch_reset(frame: &Frame, old: u64, new: u64, latest: u64) {
    assert_eq!(frame.event.as_deref(), Some("reset"), "{frame:?}");
    assert_eq!(
        frame.json(),
        serde_json::json!({
            "reason": "epoch_mismatch",
            "cursor_epoch": old.to_string(),
            "journal_epoch": new.to_string(),
            "earliest": 1,
            "latest": latest,
        })
    );
    assert_eq!(frame.id, Some(id(new, 0)), "a reconnect starts the new journal from its beginning");
}

async fn status(addr: std::net::SocketAddr) -> serde_json::Value {
    let text = reqwest::get(format!("http://{addr}/status")).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_of_a_recreated_journal_gets_an_epoch_reset_then_the_new_journal_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed = support::feed(&dir).await;
    append(&feed, None, 1..=3).await;
    let old = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs_in(old, 3).await, vec![1, 2, 3]);
    let last_id = id(old, 3);
    drop(sse);

    // The directory is recreated, and the new journal grows past seq 3:
    // a bare-seq cursor would now be served from its middle.
    let feed = recreate(feed, &dir).await;
    let new = feed.epoch();
    append(&feed, None, 101..=110).await;
    let addr = serve(events_http::router(feed.reader())).await;

    let mut sse = Sse::open(&format!("http://{addr}/stream"), Some(&last_id)).await;
    assert_epoch_reset(&sse.next().await, old, new, 10);
    let mut seqs = Vec::new();
    for _ in 0..10 {
        let frame = sse.next().await;
        assert_eq!(frame.json()["event"]["n"], frame.seq_in(new) + 100, "an event of the new journal: {frame:?}");
        seqs.push(frame.seq());
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());

    // `?since=` with the old id is the same reset.
    let mut since = Sse::open(&format!("http://{addr}/stream?since={last_id}"), None).await;
    assert_epoch_reset(&since.next().await, old, new, 10);
    assert_eq!(since.seqs_in(new, 10).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(status(addr).await["epoch"], new.to_string());
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_served_client_gets_the_epoch_reset_when_the_directory_is_recreated_under_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed = support::feed(&dir).await;
    append(&feed, None, 1..=3).await;
    let old = feed.epoch();
    let reader: FeedReader<TestEvent> = FeedReader::open(&dir).unwrap();
    let addr = serve(events_http::router(reader)).await;
    let url = format!("http://{addr}/stream");

    let mut live = Sse::open(&url, None).await;
    assert_eq!(live.seqs_in(old, 3).await, vec![1, 2, 3]);
    assert_eq!(status(addr).await["latest_id"], id(old, 3));

    let feed = recreate(feed, &dir).await;
    let new = feed.epoch();
    append(&feed, None, 101..=105).await;

    // The connected client gets one reset into the new epoch, then the new
    // journal from its beginning. Before that reset it may see transitional
    // frames, depending on when its stream looked at the directory: an
    // `ahead` reset (the directory was empty) or an `error` frame that ends
    // the response (the directory was missing), after which it reconnects
    // with its last id, as a browser's `EventSource` does. Never an event.
    let mut last_id = live.last_id();
    let mut transitional = Vec::new();
    let reset = loop {
        let Some(frame) = live.next_or_end().await else {
            assert!(transitional.len() < 50, "no epoch reset after {} transitional frames", transitional.len());
            live = Sse::open(&url, last_id.as_deref()).await;
            continue;
        };
        if frame.id.is_some() {
            last_id.clone_from(&frame.id);
        }
        match frame.event.as_deref() {
            Some("reset") if frame.json()["reason"] == "epoch_mismatch" => break frame,
            Some("reset" | "error") => transitional.push(frame),
            _ => panic!("an event before the epoch reset (after {transitional:?}): {frame:?}"),
        }
    };
    eprintln!("transitional frames before the epoch reset: {transitional:?}");
    let data = reset.json();
    assert_eq!((&data["cursor_epoch"], &data["journal_epoch"]), (&old.to_string().into(), &new.to_string().into()));
    assert_eq!(reset.id, Some(id(new, 0)), "{reset:?}");
    assert_eq!(live.seqs_in(new, 5).await, vec![1, 2, 3, 4, 5]);

    // `/status` follows the directory too.
    let status = status(addr).await;
    assert_eq!((&status["epoch"], &status["latest_seq"]), (&new.to_string().into(), &5.into()), "{status}");
    assert_eq!(status["latest_id"], id(new, 5));

    // A client reconnecting with an id of the old journal: the reset, then
    // the new journal from its start; with an id of the new one: no reset.
    let mut stale = Sse::open(&url, Some(&id(old, 3))).await;
    assert_epoch_reset(&stale.next().await, old, new, 5);
    assert_eq!(stale.seqs_in(new, 5).await, vec![1, 2, 3, 4, 5]);
    let mut fresh = Sse::open(&url, live.last_id().as_deref()).await;
    append(&feed, None, 106..=106).await;
    assert_eq!(fresh.next().await.seq_in(new), 6);
    assert_eq!(live.next().await.seq_in(new), 6);
    feed.close().await.unwrap();
}

/// `/status` of a server following a directory that goes away: `healthy`
/// false, and `problem` says the journal cannot be read (its positions are
/// the last read); once a journal is there again, healthy, in the new
/// epoch. It had answered `healthy: true` with the old figures all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_status_says_when_it_cannot_read_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed = support::feed(&dir).await;
    append(&feed, None, 1..=3).await;
    feed.close().await.unwrap();
    let reader: FeedReader<TestEvent> = FeedReader::open(&dir).unwrap();
    let addr = serve(events_http::router(reader)).await;
    let before = status(addr).await;
    assert_eq!((&before["stats"]["healthy"], &before["stats"]["problem"]), (&true.into(), &serde_json::Value::Null));

    std::fs::remove_dir_all(&dir).unwrap();
    let gone = status(addr).await;
    assert_eq!((&gone["stats"]["healthy"], &gone["latest_seq"]), (&false.into(), &3.into()), "{gone}");
    let problem = gone["stats"]["problem"].as_str().unwrap_or_default();
    let named = problem.starts_with("cannot read the journal") && problem.contains(&dir.display().to_string());
    assert!(named, "{gone}");

    let feed = support::feed(&dir).await;
    append(&feed, None, 1..=2).await;
    let back = status(addr).await;
    assert_eq!((&back["stats"]["healthy"], &back["latest_seq"]), (&true.into(), &2.into()), "{back}");
    assert_eq!(back["epoch"], feed.epoch().to_string());
    feed.close().await.unwrap();
}
