//! A stream id or event id that a NATS header cannot carry (a CR or LF in
//! it; the feed accepts any id) does not stop replication: the record is
//! published without that header, the records after it follow, and a
//! remote reader gets the ids back from the payload. async-nats panics on
//! such a header value, and the panic ended the replication task for good,
//! with `stopped` still false and no `last_error`; every restart panicked
//! on the same record, while retention went on pruning what was never
//! replicated.
//!
//! Neighbours: `replicator_cut_back.rs` checks the headers of records
//! whose ids a header can carry.

mod support;

use std::time::Duration;

use events::{AppendOptions, Bincode, Feed, FeedItem, Seq, SyncPolicy};
use events_nats::headers::{self, Coordinates};
use events_nats::{RemoteFeed, Replicator, StreamSpec};
use futures::StreamExt;
use support::{Ev, Server, stream_messages, within};

fn ev(n: u64) -> Ev {
    Ev { n, note: format!("event number {n}") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_with_a_line_break_travels_without_its_header() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Never).open().await.unwrap();
    // (stream id, event id) of seqs 1..=4.
    let ids = [("doc-1", None), ("line\nbreak", Some("req\r\n2")), ("doc-3", Some("op-3")), ("doc-4", Some("cr\r4"))];
    for (n, (stream, id)) in (1..).zip(ids) {
        let options = id.map_or_else(AppendOptions::new, |id| AppendOptions::new().id(id));
        assert_eq!(feed.append_with(Some(stream), ev(n), options).await.unwrap().seq, Seq::new(n));
    }
    let spec = StreamSpec::new("HEADERS", "feed.headers");
    let replicator = Replicator::builder(&dir, js.clone(), spec.clone())
        .stream_ids(Bincode)
        .poll_interval(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    let replicated = within("all four replicated", replicator.wait_for(4)).await;
    let stats = replicator.stats();
    replicated.unwrap_or_else(|e| panic!("replication stopped: {e}; {stats:?}"));
    assert!(!stats.stopped && stats.last_error.is_none(), "{stats:?}");

    let messages = stream_messages(&js, "HEADERS").await;
    let mut seen = Vec::new();
    for msg in &messages {
        let at = Coordinates::parse(Some(&msg.headers), "HEADERS", msg.stream_seq).unwrap();
        let (stream, id) = ids[usize::try_from(at.seq).unwrap() - 1];
        let carried = |value: &'static str| (!value.contains(['\r', '\n'])).then_some(value);
        assert_eq!(msg.header(headers::STREAM_ID), carried(stream), "seq {}", at.seq);
        assert_eq!(msg.header(headers::EVENT_ID), id.and_then(carried), "seq {}", at.seq);
        seen.push(at.seq);
    }
    assert_eq!(seen, [1, 2, 3, 4]);

    // The ids are in the payload: a remote reader has them all.
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec);
    let mut items = remote.stream_from(Seq::ZERO).await.unwrap();
    for (n, (stream, id)) in (1..).zip(ids) {
        match within("remote item", items.next()).await.expect("the remote stream does not end").unwrap() {
            FeedItem::Event(env) => {
                assert_eq!((env.seq, &env.event), (Seq::new(n), &ev(n)));
                assert_eq!(env.stream.as_ref().map(|s| s.as_str()), Some(stream));
                assert_eq!(env.id.as_ref().map(|i| i.as_str()), id);
            }
            other => panic!("unexpected {other:?} before seq {n}"),
        }
    }
    within("shutdown", replicator.shutdown()).await;
    feed.close().await.unwrap();
}
