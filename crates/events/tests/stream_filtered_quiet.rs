//! The quiet-stream rule: a client filtered by stream id whose cursor was
//! pruned is reset only if events of its own stream were pruned. Stream
//! `a` is read, the client leaves, other streams churn through many small
//! segments that retention removes (`a`'s own earlier events with them),
//! and the client comes back from its last checkpoint: no reset, no
//! duplicate, a checkpoint at the end of the pruned range, then `a`'s new
//! events; the same from a reader of another process. The converse: `a`'s
//! own event pruned after the cursor, a pruned range longer than the
//! summary remembers, a damaged summary, and a predicate filter all reset.

mod support;

use std::path::Path;
use std::time::Duration;

use events::layers::journal::{PRUNED_FILE, PRUNED_MAX_SEGMENTS, PrunedLog};
use events::{Cursor, Feed, FeedItem, FeedReader, Filter, FilteredStream, ResetReason, Retention, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

async fn open(dir: &Path) -> Feed<Ev> {
    Feed::builder(dir)
        .sync(SyncPolicy::Never)
        .segment_bytes(512)
        .retention(Retention::segments(3))
        .open()
        .await
        .unwrap()
}

async fn next(s: &mut FilteredStream<Ev>) -> FeedItem<Ev> {
    tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("stalled").expect("ended").unwrap()
}

/// Reads `s` until an item at or past `until`; returns the events' seqs and
/// the last checkpoint, failing on a reset.
async fn read_until(s: &mut FilteredStream<Ev>, until: u64) -> (Vec<u64>, u64) {
    let (mut events, mut checkpoint) = (Vec::new(), 0);
    loop {
        let at = match next(s).await {
            FeedItem::Event(env) => {
                assert_eq!(env.stream.as_ref().map(|s| s.as_str()), Some("a"));
                events.push(env.seq.get());
                env.seq.get()
            }
            FeedItem::Checkpoint { seq } => {
                checkpoint = seq.get();
                seq.get()
            }
            other => panic!("expected events and checkpoints only, got {other:?}"),
        };
        if at >= until {
            return (events, checkpoint);
        }
    }
}

/// Appends events of streams `b` and `c` until retention has removed every
/// seq up to `past` (and at least `min` events were appended).
async fn churn(feed: &Feed<Ev>, past: u64, min: u64) {
    let mut n = 0;
    while n < min || feed.earliest_seq().get() <= past {
        feed.append(Some(if n % 2 == 0 { "b" } else { "c" }), msg(n)).await.unwrap();
        n += 1;
    }
}

fn filtered(reader: &FeedReader<Ev>, cursor: Cursor) -> FilteredStream<Ev> {
    reader.stream_filtered(cursor, Filter::stream("a")).unwrap().checkpoint_after(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_is_reset_only_when_its_own_events_were_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path()).await;
    let epoch = feed.epoch();
    for (n, stream) in ["a", "b", "a", "c", "b"].into_iter().enumerate() {
        feed.append(Some(stream), msg(n as u64)).await.unwrap();
    }

    // First connection: a's events, then a checkpoint past b's and c's.
    let mut client = filtered(&feed.reader(), Cursor::from(Seq::ZERO));
    let (events, checkpoint) = read_until(&mut client, 5).await;
    assert_eq!((events, checkpoint), (vec![1, 3], 5));
    drop(client);

    // Others churn through retention; a's own events 1 and 3 go with them.
    churn(&feed, 5, 150).await;
    let earliest = feed.earliest_seq().get();
    let summary = PrunedLog::read(tmp.path()).expect("a pruned-segments summary");
    assert!(summary.segments.len() >= 5, "only {} segments pruned", summary.segments.len());

    // Reconnect from the checkpoint: no reset, a checkpoint at the end of
    // the pruned range, then a's next event and nothing of a before it.
    for reader in [feed.reader(), FeedReader::open(tmp.path()).unwrap()] {
        let mut client = filtered(&reader, Cursor::new(Seq::new(5), epoch));
        assert!(matches!(next(&mut client).await, FeedItem::Checkpoint { seq } if seq.get() == earliest - 1));
        let latest = feed.latest_seq().get();
        let (events, checkpoint) = read_until(&mut client, latest).await;
        assert_eq!((events, checkpoint), (vec![], latest), "only other streams' events are retained");
    }
    let a = feed.append(Some("a"), msg(1000)).await.unwrap().get();
    let mut client = filtered(&feed.reader(), Cursor::new(Seq::new(5), epoch));
    let (events, _) = read_until(&mut client, a).await;
    assert_eq!(events, [a], "no duplicate, no reset, then a's new event");
    drop(client);

    // A predicate cannot be checked against the summary: reset as before.
    let keep_a = Filter::predicate(|env: &events::Envelope<Ev>| env.stream_str() == Some("a"));
    let mut by_predicate = feed.stream_filtered(Cursor::new(Seq::new(5), epoch), keep_a).unwrap();
    assert!(matches!(by_predicate.next().await, Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, .. }))));

    // The converse: a's own event after the cursor is pruned → reset.
    let cursor = Cursor::new(feed.latest_seq(), epoch);
    let lost = feed.append(Some("a"), msg(1001)).await.unwrap().get();
    churn(&feed, lost, 0).await;
    let mut client = filtered(&feed.reader(), cursor);
    match next(&mut client).await {
        FeedItem::Reset { reason: ResetReason::Expired, earliest, .. } => assert!(earliest.get() > lost),
        other => panic!("a's event {lost} was pruned: expected a reset, got {other:?}"),
    }

    // A damaged summary proves nothing: reset.
    let cursor = Cursor::new(feed.latest_seq(), epoch);
    churn(&feed, cursor.seq.get(), 0).await;
    let path = tmp.path().join(PRUNED_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let good = bytes.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut client = filtered(&feed.reader(), cursor);
    assert!(matches!(next(&mut client).await, FeedItem::Reset { reason: ResetReason::Expired, .. }));
    std::fs::write(&path, &good).unwrap();
    let mut client = filtered(&feed.reader(), cursor);
    assert!(matches!(next(&mut client).await, FeedItem::Checkpoint { .. }), "the same cursor with the summary intact");

    // Away for longer than the summary remembers: reset, although a was quiet.
    let cursor = Cursor::new(feed.latest_seq(), epoch);
    churn(&feed, cursor.seq.get(), 0).await;
    while PrunedLog::read(tmp.path()).unwrap().segments[0].first_seq <= cursor.seq.get() + 1 {
        churn(&feed, feed.latest_seq().get(), 0).await;
    }
    assert_eq!(PrunedLog::read(tmp.path()).unwrap().segments.len(), PRUNED_MAX_SEGMENTS);
    let mut client = filtered(&feed.reader(), cursor);
    assert!(matches!(next(&mut client).await, FeedItem::Reset { reason: ResetReason::Expired, .. }));
    feed.close().await.unwrap();
}
