//! One reset rule for the remote consumer, the local feed's: a cursor the
//! stream cannot serve gets one `Reset`, then every event from the oldest
//! the stream holds, with no gap after it: an expired cursor (older than
//! what a size-limited stream keeps), a cursor ahead of the stream
//! (`u64::MAX` included, without overflowing), and another epoch. A bare
//! `Seq::ZERO` asks for everything kept and is never expired, also when
//! its reader was made on an empty stream. A reset is delivered even when
//! the record after it cannot be decoded. A caught-up reader of a stream
//! that holds none of its feed's messages any more gets no reset up front:
//! the next message decides, as while reading.

mod support;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;

use events::layers::journal::Journal;
use events::{Cursor, FeedItem, ResetReason, Seq};
use events_nats::{NatsError, RemoteFeed, RemoteStream, Replicator, StreamSpec};
use support::{Ev, Server, expect_events, fill, next_item, stream_messages, within};

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
        // Naming where the record is: its stream, message and subject.
        Some(Err(e @ NatsError::Decode { seq: 401, .. })) => {
            let NatsError::Decode { stream, stream_seq, subject, .. } = &e else { unreachable!() };
            // The stream holds the journal from seq 1 on, one message each.
            assert_eq!((stream.as_str(), *stream_seq, subject.as_str()), ("UNDECODABLE", 401, "feed.undecodable"));
            let text = e.to_string();
            assert!(text.contains("stream UNDECODABLE, message 401, subject feed.undecodable"), "{text}");
        }
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

/// A stream that held records 1..=10 of `journal`, replicated and then
/// purged: it holds none of the feed's messages, its last sequence is 10.
/// No replicator runs.
struct Emptied {
    _server: Server,
    js: async_nats::jetstream::Context,
    spec: StreamSpec,
    dir: tempfile::TempDir,
    journal: Journal,
}

/// The stream `name`, with a dedup window of `window`, emptied as [`Emptied`] says.
async fn emptied(name: &str, window: Duration) -> Emptied {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new(name, format!("feed.{}", name.to_lowercase())).duplicate_window(window);
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    fill(&mut journal, 1, 10);
    let replicator = replicate(&js, dir.path(), &spec, 0).await;
    within("10 replicated", replicator.wait_for(10)).await.unwrap();
    replicator.shutdown().await;
    js.get_stream(name).await.unwrap().purge().await.unwrap();
    Emptied { _server: server, js, spec, dir, journal }
}

/// A replicator of the journal in `dir` into `spec`, starting after
/// `start_after` in a stream that holds none of its messages.
async fn replicate(js: &async_nats::jetstream::Context, dir: &Path, spec: &StreamSpec, start_after: u64) -> Replicator {
    Replicator::builder(dir, js.clone(), spec.clone())
        .poll_interval(Duration::from_millis(5))
        .start_after(start_after)
        .start()
        .await
        .unwrap()
}

/// A caught-up reader of an emptied stream whose next message is a later
/// seq than the one after its cursor (the replicator restarted after 12,
/// so 11 and 12 never reach the stream): the `Expired` reset a reader gets
/// when messages were discarded before it read them, then the events from
/// that message on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_reader_of_an_emptied_stream_gets_a_reset_when_the_next_message_is_later() {
    let Emptied { _server, js, spec, dir, mut journal } = emptied("EMPTIED_LATER", Duration::from_secs(120)).await;
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(Cursor::new(Seq::new(10), journal.epoch())).await.unwrap();
    fill(&mut journal, 11, 15);
    let replicator = replicate(&js, dir.path(), &spec, 12).await;
    within("13..=15 replicated", replicator.wait_for(15)).await.unwrap();
    expect_reset(&mut items, ResetReason::Expired, 13, 15).await;
    expect_events(&mut items, 13..=15).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// A caught-up reader of an emptied stream that another journal is then
/// replicated into (its replicator starts: the stream holds no message to
/// refuse it by): an `EpochMismatch` reset naming both epochs, then the
/// other journal's events from its first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_reader_of_an_emptied_stream_gets_a_reset_when_the_next_message_is_of_another_epoch() {
    let Emptied { _server, js, spec, dir: _dir, journal } = emptied("EMPTIED_EPOCH", Duration::from_secs(120)).await;
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let epoch = journal.epoch();
    let mut items = remote.stream_from(Cursor::new(Seq::new(10), epoch)).await.unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = support::journal(other_dir.path());
    assert_ne!(other.epoch(), epoch);
    fill(&mut other, 1, 3);
    let replicator = replicate(&js, other_dir.path(), &spec, 0).await;
    within("the other journal's 1..=3", replicator.wait_for(3)).await.unwrap();
    let reason = ResetReason::EpochMismatch { cursor_epoch: epoch, journal_epoch: other.epoch() };
    expect_reset(&mut items, reason, 1, 3).await;
    expect_events(&mut items, 1..=3).await;
    replicator.shutdown().await;
    other.close().unwrap();
    journal.close().unwrap();
}

/// A caught-up reader of an emptied stream that its restarted replicator
/// fills again from seq 1 (once the dedup window forgot 1..=10, it stores
/// them again): 1..=10, which its cursor covers, are not delivered again;
/// the next event is 11, with no reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_reader_of_an_emptied_stream_is_not_given_again_what_its_cursor_covers() {
    let window = Duration::from_millis(250);
    let Emptied { _server, js, spec, dir, mut journal } = emptied("EMPTIED_COVERED", window).await;
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(Cursor::new(Seq::new(10), journal.epoch())).await.unwrap();
    // The server forgets ids older than its window on a timer of about the
    // same period: no event tells when, so wait a few periods. The stream's
    // content is checked below: a window not yet forgotten fails the test.
    tokio::time::sleep(window * 5).await;
    let replicator = replicate(&js, dir.path(), &spec, 0).await;
    fill(&mut journal, 11, 11);
    within("11 replicated", replicator.wait_for(11)).await.unwrap();
    let seqs: Vec<u64> = stream_messages(&js, spec.name()).await.iter().filter_map(|m| m.seq()).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>(), "1..=10 stored again, then 11");
    expect_events(&mut items, 11..=11).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// A bare `Seq::ZERO` reader made on a stream that holds nothing yet (its
/// replicator made it), which keeps 100 messages, and 300 replicated before
/// its first read: everything the stream holds, 201..=300, with no reset,
/// as `stream_from(Seq::ZERO)` locally. (Before the stream exists there is
/// no reader to make: `stream_from` fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_zero_made_on_an_empty_stream_gets_everything_kept_with_no_reset() {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new("EMPTY_ZERO", "feed.empty_zero").max_messages(100);
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let missing = remote.stream_from(Seq::ZERO).await;
    assert!(matches!(missing, Err(NatsError::JetStream { op: "opening the stream", .. })), "{missing:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    let replicator = replicate(&js, dir.path(), &spec, 0).await;
    // async-nats sends no pull request before the first poll (see
    // `a_reset_is_not_lost_when_the_record_after_it_cannot_be_decoded`).
    let mut everything = remote.stream_from(Seq::ZERO).await.unwrap();
    fill(&mut journal, 1, 300);
    within("300 replicated", replicator.wait_for(300)).await.unwrap();
    expect_events(&mut everything, 201..=300).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// A stream of one feed whose last messages were deleted (31..=50 of 50)
/// while the server ran on: nats-server 2.9 answers "no message found"
/// for the feed's last message. A bare `Seq::ZERO` reader still gets
/// everything the stream holds, 1..=30, then the `Expired` reset that says
/// 31..=50 are gone, then 51; a reader with a cursor of 20 and its epoch
/// gets 21..=30, the reset, 51. The stream had been taken as holding none
/// of the feed's messages: the bare zero started after it and got only 51.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_stream_whose_last_messages_were_deleted_get_what_it_holds() {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new("TAIL_GONE", "feed.tail_gone");
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    fill(&mut journal, 1, 50);
    let replicator = replicate(&js, dir.path(), &spec, 0).await;
    within("50 replicated", replicator.wait_for(50)).await.unwrap();
    replicator.shutdown().await;
    support::delete_messages(&js, "TAIL_GONE", 31..=50).await;
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut everything = remote.stream_from(Seq::ZERO).await.unwrap();
    let mut after_twenty = remote.stream_from(Cursor::new(Seq::new(20), journal.epoch())).await.unwrap();
    // The replicator restarted sends 31..=50 again, which the dedup window
    // drops, then 51.
    fill(&mut journal, 51, 51);
    let replicator = replicate(&js, dir.path(), &spec, 0).await;
    within("51 replicated", replicator.wait_for(51)).await.unwrap();
    for (items, first) in [(&mut everything, 1), (&mut after_twenty, 21)] {
        expect_events(items, first..=30).await;
        expect_reset(items, ResetReason::Expired, 1, 51).await;
        expect_events(items, 51..=51).await;
    }
    replicator.shutdown().await;
    journal.close().unwrap();
}
