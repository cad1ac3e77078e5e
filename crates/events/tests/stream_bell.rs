//! A writer's streams, once caught up, wait on its bell and take what it
//! published from the envelopes it keeps, or from the journal when they
//! fell behind those: every waiting stream hears every batch, and a stream
//! whose catch-up ran on one journal iterator while the writer published
//! past what it keeps (and closed, or went quiet) still reads on, as does
//! one whose next kept events retention's timer removed on an idle feed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use events::{Feed, FeedItem, FeedStream, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

/// Twice the façade's replay chunk: a catch-up's journal iterator made at
/// this length ends exactly where its second read ahead begins.
const TWO_CHUNKS: u64 = 8_192;

/// The next event, which must come within 10 s. The deadline is looked at
/// first: a stream that was never woken is not polled once more when it
/// passes (as `tokio::time::timeout` would), so a missed wake-up fails.
async fn next_event(stream: &mut FeedStream<Ev>) -> Arc<events::Envelope<Ev>> {
    tokio::select! {
        biased;
        () = tokio::time::sleep(Duration::from_secs(10)) => panic!("no event in 10 s"),
        item = stream.next() => match item {
            Some(Ok(FeedItem::Event(env))) => env,
            other => panic!("expected an event, got {other:?}"),
        },
    }
}

/// A feed that keeps 16 envelopes, holding `TWO_CHUNKS` events, and a
/// stream from 0 that took its first event: its journal iterator is made.
async fn caught_up_to_first() -> (tempfile::TempDir, Feed<Ev>, FeedStream<Ev>) {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).live_capacity(16).open().await.unwrap();
    for n in 1..=TWO_CHUNKS {
        feed.append(None, msg(n)).await.unwrap();
    }
    let mut stream = feed.reader().stream_from(Seq::ZERO);
    assert_eq!(next_event(&mut stream).await.seq, Seq::new(1));
    // Past what the feed keeps: the stream must read them from the journal.
    for n in TWO_CHUNKS + 1..=TWO_CHUNKS + 100 {
        feed.append(None, msg(n)).await.unwrap();
    }
    (tmp, feed, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_whose_iterator_ended_before_the_writer_closed_reads_the_rest() {
    let (_tmp, feed, mut stream) = caught_up_to_first().await;
    feed.close().await.unwrap();
    let mut last = 1;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("no end in 10 s") {
        let Ok(FeedItem::Event(env)) = item else { panic!("expected an event, got {item:?}") };
        last += 1;
        assert_eq!(env.seq, Seq::new(last));
    }
    assert_eq!(last, TWO_CHUNKS + 100, "the stream ended before the writer's last events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_whose_iterator_ended_before_the_feed_went_quiet_reads_the_rest() {
    let (_tmp, feed, mut stream) = caught_up_to_first().await;
    for n in 2..=TWO_CHUNKS + 100 {
        assert_eq!(next_event(&mut stream).await.seq, Seq::new(n), "with no append to come");
    }
    feed.close().await.unwrap();
    assert!(stream.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiting_stream_hears_every_batch_and_a_dropped_one_is_no_bother() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let mut streams: Vec<_> = (0..100).map(|_| feed.stream_from(Seq::new(1))).collect();
    for round in 2..=4 {
        // Each stream waits in a task of its own, its waker stored before
        // the append: the append must wake it.
        let (ready, mut all_waiting) = tokio::sync::mpsc::unbounded_channel();
        let waiting: Vec<_> = streams
            .drain(..)
            .map(|mut stream| {
                let ready = ready.clone();
                tokio::spawn(async move {
                    assert!(futures::poll!(stream.next()).is_pending(), "nothing to take before the append");
                    ready.send(()).unwrap();
                    let env = next_event(&mut stream).await;
                    (stream, env.seq)
                })
            })
            .collect();
        for _ in 0..waiting.len() {
            all_waiting.recv().await.unwrap();
        }
        feed.append(None, msg(round)).await.unwrap();
        for task in waiting {
            let (stream, seq) = task.await.unwrap();
            assert_eq!(seq, Seq::new(round));
            streams.push(stream);
        }
        // Half of them go: their slots are given back, the rest still hear.
        streams.truncate(streams.len() / 2);
    }
    feed.close().await.unwrap();
    for mut stream in streams {
        assert!(stream.next().await.is_none(), "ends after the close");
    }
}

/// A caught-up stream that took the first of the events the writer keeps,
/// then retention's timer (no append, so no bell) removed the segments of
/// the rest: the stream's next look at the kept envelopes finds its next
/// event expired. It reads the journal, which says so (`Reset { Expired
/// }`), and goes on. It had waited for a bell that an idle feed never rings
/// (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_next_kept_events_expire_on_an_idle_feed_is_told() {
    const EVENTS: u64 = 6_000;
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Never)
        .live_capacity(10_000)
        .segment_bytes(4096)
        // Long enough for the appends and the first look on a loaded machine.
        .retention(events::Retention::age(Duration::from_secs(3)))
        .retention_check(Duration::from_millis(20))
        .open()
        .await
        .unwrap();
    let mut stream = feed.reader().stream_from(Seq::ZERO);
    // Polled once: caught up, it waits on the bell.
    assert!(futures::poll!(stream.next()).is_pending());
    let inbox = feed.inbox();
    for n in 1..=EVENTS {
        inbox.forward(None, msg(n)).await.unwrap();
    }
    feed.sync().await.unwrap();
    assert_eq!(feed.latest_seq(), Seq::new(EVENTS));
    // Its first look takes a replay chunk's worth of kept envelopes.
    assert_eq!(next_event(&mut stream).await.seq, Seq::new(1));
    support::eventually("retention removed the segments past the stream's chunk", || {
        feed.earliest_seq() > Seq::new(TWO_CHUNKS / 2 + 1)
    })
    .await;
    let mut last = 1;
    let item = loop {
        let item = tokio::select! {
            biased;
            () = tokio::time::sleep(Duration::from_secs(10)) => panic!("nothing in 10 s after seq {last}"),
            item = stream.next() => item,
        };
        match item {
            Some(Ok(FeedItem::Event(env))) => {
                last += 1;
                assert_eq!(env.seq, Seq::new(last));
            }
            other => break other,
        }
    };
    assert_eq!(last, TWO_CHUNKS / 2, "the chunk it took, then the reset");
    assert!(matches!(item, Some(Ok(FeedItem::Reset { reason: events::ResetReason::Expired, .. }))), "{item:?}");
    feed.close().await.unwrap();
}
