//! One reset rule for the remote consumer, the local feed's: a cursor the
//! stream cannot serve gets one `Reset`, then every event from the oldest
//! the stream holds, with no gap after it: an expired cursor (older than
//! what a size-limited stream keeps), a cursor ahead of the stream
//! (`u64::MAX` included, without overflowing), and another epoch. A bare
//! `Seq::ZERO` asks for everything kept and is never expired. A reset is
//! delivered even when the record after it cannot be decoded.

mod support;

use std::time::Duration;

use futures::StreamExt;

use events::layers::journal::Journal;
use events::{Cursor, FeedItem, ResetReason, Seq};
use events_nats::{NatsError, RemoteFeed, RemoteStream, Replicator, StreamSpec};
use support::{Ev, Server, expect_events, fill, next_item, within};

async fn expect_reset(items: &mut RemoteStream<Ev>, expected: ResetReason, earliest: u64, latest: u64) {
    let item = next_item(items).await;
    assert!(
        matches!(&item, FeedItem::Reset { reason, earliest: e, latest: l }
            if *reason == expected && *e == Seq::new(earliest) && *l == Seq::new(latest)),
        "expected {expected:?} (earliest {earliest}, latest {latest}), got {item:?}"
    );
}

/// A stream `name` that keeps 100 messages, the replicator filling it from
/// a journal of 300 records (it holds 201..=300).
struct Limited {
    server: Server,
    js: async_nats::jetstream::Context,
    spec: StreamSpec,
    dir: tempfile::TempDir,
    journal: Journal,
    replicator: Replicator,
}

async fn limited(name: &str) -> Limited {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new(name, format!("feed.{}", name.to_lowercase())).max_messages(100);
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    fill(&mut journal, 1, 300);
    let replicator = Replicator::builder(dir.path(), js.clone(), spec.clone())
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("300 replicated", replicator.wait_for(300)).await.unwrap();
    Limited { server, js, spec, dir, journal, replicator }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_ahead_and_other_epoch_continue_at_the_oldest_available() {
    let Limited { server: _server, js, spec, dir: _dir, mut journal, replicator } = limited("LIMITED").await;
    let epoch = journal.epoch();
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());

    // Expired: the reset, then 201..=300 (the oldest kept) with no gap, then live.
    for cursor in [0, 10, 199] {
        let mut items = remote.stream_from(Cursor::new(Seq::new(cursor), epoch)).await.unwrap();
        expect_reset(&mut items, ResetReason::Expired, 201, 300).await;
        expect_events(&mut items, 201..=300).await;
    }
    let mut items = remote.stream_from(Seq::new(10)).await.unwrap();
    expect_reset(&mut items, ResetReason::Expired, 201, 300).await;
    expect_events(&mut items, 201..=210).await;
    // A bare zero asks for everything kept, as locally: never expired.
    let mut everything = remote.stream_from(Seq::ZERO).await.unwrap();
    expect_events(&mut everything, 201..=300).await;

    // A cursor the stream still serves: no reset, no gap.
    let mut served = remote.stream_from(Seq::new(200)).await.unwrap();
    expect_events(&mut served, 201..=300).await;

    // Ahead, and another epoch: the reset, then the oldest available.
    let mut ahead = remote.stream_from(Seq::new(5000)).await.unwrap();
    expect_reset(&mut ahead, ResetReason::Ahead, 201, 300).await;
    expect_events(&mut ahead, 201..=203).await;
    let mut other = remote.stream_from(Cursor::new(Seq::new(250), epoch ^ 1)).await.unwrap();
    expect_reset(&mut other, ResetReason::EpochMismatch { cursor_epoch: epoch ^ 1, journal_epoch: epoch }, 201, 300)
        .await;
    expect_events(&mut other, 201..=203).await;

    // Every one of them follows live afterwards.
    fill(&mut journal, 301, 301);
    within("301 replicated", replicator.wait_for(301)).await.unwrap();
    expect_events(&mut items, 211..=301).await;
    expect_events(&mut served, 301..=301).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_at_u64_max_is_ahead_not_an_overflow() {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new("MAX", "feed.max");
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    let replicator = Replicator::builder(dir.path(), js.clone(), spec.clone()).start().await.unwrap();
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());

    // An empty stream that never held anything.
    let mut empty = remote.stream_from(Seq::MAX).await.unwrap();
    expect_reset(&mut empty, ResetReason::Ahead, 0, 0).await;

    fill(&mut journal, 1, 10);
    within("10 replicated", replicator.wait_for(10)).await.unwrap();
    // What the empty stream's reader gets next is the oldest available.
    expect_events(&mut empty, 1..=10).await;
    for cursor in [Cursor::from(Seq::MAX), Cursor::new(Seq::MAX, journal.epoch())] {
        let mut items = remote.stream_from(cursor).await.unwrap();
        expect_reset(&mut items, ResetReason::Ahead, 1, 10).await;
        expect_events(&mut items, 1..=10).await;
    }
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// The reset comes first even when the record it lands on cannot be
/// decoded: then the decode error, then the events after it. The reader's
/// stream is made while the stream still serves its cursor, and the
/// messages after it are discarded before it reads them, so the reset is
/// found while reading, not when the stream is made. Before, the decode
/// error dropped the reset queued before it, and a reader that went on saw
/// the discarded range skipped silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_not_lost_when_the_record_after_it_cannot_be_decoded() {
    let Limited { server: _server, js, spec, dir: _dir, mut journal, replicator } = limited("UNDECODABLE").await;
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec);
    // async-nats sends no pull request before the first poll, so these
    // streams read nothing until the messages after their cursor are gone
    // (a client that fetched ahead would make this test fail, never pass
    // falsely).
    let mut items = remote.stream_from(Cursor::new(Seq::new(250), journal.epoch())).await.unwrap();
    let mut everything = remote.stream_from(Seq::ZERO).await.unwrap();
    fill(&mut journal, 301, 400);
    assert_eq!(journal.append(1_401, b"\xff\xff\xff\xff not an event").unwrap(), 401);
    fill(&mut journal, 402, 500);
    within("500 replicated", replicator.wait_for(500)).await.unwrap();
    // Whatever the consumer had fetched before the discard comes first, in order.
    let mut next = 251;
    loop {
        match within("the next item", items.next()).await {
            Some(Ok(FeedItem::Event(env))) if env.seq.get() == next => next += 1,
            Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, earliest, .. })) => {
                assert_eq!(earliest, Seq::new(401));
                break;
            }
            other => panic!("expected {next} or the reset, got {other:?}"),
        }
    }
    match within("the decode error", items.next()).await {
        Some(Err(NatsError::Decode { seq: 401, .. })) => {}
        other => panic!("expected the decode error of 401, got {other:?}"),
    }
    expect_events(&mut items, 402..=500).await;
    // A bare zero is never expired, even by a discard before its first read.
    match within("the first item", everything.next()).await {
        Some(Err(NatsError::Decode { seq: 401, .. })) => {}
        other => panic!("expected the decode error of 401 (no reset), got {other:?}"),
    }
    expect_events(&mut everything, 402..=403).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// A reader that is caught up (a cursor with its epoch), on a stream that
/// holds none of its feed's messages any more (a purge here; `max_age` on a
/// quiet feed does the same): no reset, then the next event. It got a
/// `Reset { Expired }` up front, as if it had missed something, and took
/// whatever came next as the oldest available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_reader_of_an_emptied_stream_gets_no_reset() {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new("EMPTIED", "feed.emptied");
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    fill(&mut journal, 1, 10);
    let start =
        || Replicator::builder(dir.path(), js.clone(), spec.clone()).poll_interval(Duration::from_millis(5)).start();
    let replicator = start().await.unwrap();
    within("10 replicated", replicator.wait_for(10)).await.unwrap();
    replicator.shutdown().await;
    js.get_stream("EMPTIED").await.unwrap().purge().await.unwrap();

    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(Cursor::new(Seq::new(10), journal.epoch())).await.unwrap();
    // A bare seq cannot tell another journal's events from these: a reset first.
    let mut bare = remote.stream_from(Seq::new(10)).await.unwrap();
    let replicator = start().await.unwrap();
    fill(&mut journal, 11, 11);
    within("11 replicated", replicator.wait_for(11)).await.unwrap();
    expect_events(&mut items, 11..=11).await;
    assert!(matches!(next_item(&mut bare).await, FeedItem::Reset { reason: ResetReason::Expired, .. }));
    replicator.shutdown().await;
    journal.close().unwrap();
}
