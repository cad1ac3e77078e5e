//! `reconcile` against the real feed: a sink that drops most of a burst
//! (a channel of 4 nobody drains), a restart of the feed, and a consumer that
//! gets exactly the events it missed back from the journal, in order, with
//! their payloads, through the reopened `Feed` and through a `FeedReader`
//! opened on the directory as another process would. A cursor whose
//! successors retention removed fails with `Error::Expired`; it never skips.

mod support;

use std::time::Duration;

use events::layers::sink::ChannelSink;
use events::{DurableStore, Envelope, Error, EventLog, Feed, FeedReader, Seq, StreamId, SyncPolicy, reconcile};
use support::{Ev, msg, pruned_feed};

const EVENTS: u64 = 100;

/// Asserts `got` is exactly the journaled `msg(n)` for seqs `from..=to`.
fn assert_exactly(got: &[Envelope<Ev>], from: u64, to: u64) {
    let got: Vec<(u64, Option<StreamId>, Ev)> =
        got.iter().map(|e| (e.seq.get(), e.stream.clone(), e.event.clone())).collect();
    let want: Vec<(u64, Option<StreamId>, Ev)> = (from..=to).map(|n| (n, None, msg(n))).collect();
    assert_eq!(got, want);
}

/// The consumer's position: the end of the gap-free prefix of what the sink
/// delivered (seq 0 when it delivered nothing, or not seq 1 first).
fn last_seen(delivered: &[Envelope<Ev>]) -> Seq {
    delivered.iter().zip(1..).take_while(|(env, n)| env.seq.get() == *n).last().map_or(Seq::ZERO, |(env, _)| env.seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_sink_then_restart_reconciles_exactly_the_missed_events() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, mut rx) = ChannelSink::<Envelope<Ev>>::new(4);
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).sink(sink).open().await.unwrap();
    for n in 1..=EVENTS {
        assert_eq!(feed.append(None, msg(n)).await.unwrap(), Seq::new(n));
    }
    // The restart. Closing ends the sink task, which drops the channel's
    // sender: the receiver then yields what the channel held, and ends.
    feed.close().await.unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(10), async {
        let mut delivered = Vec::new();
        while let Some(env) = rx.recv().await {
            delivered.push(env);
        }
        delivered
    })
    .await
    .expect("the sink's channel never closed after the feed did");
    // The channel held 4 while nobody read it during the appends; batches
    // still queued for the sink task when the feed closed may arrive while
    // we drain, so only "fewer than all" is certain.
    assert!(delivered.len() < EVENTS as usize, "a channel of 4 took all {} envelopes", delivered.len());
    let seen = last_seen(&delivered);
    assert_exactly(&delivered[..seen.get() as usize], 1, seen.get());
    assert!(seen.get() < EVENTS, "the sink lost nothing: the test did not exercise reconcile");

    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    let missed = reconcile(&feed, seen).await.unwrap();
    assert_exactly(&missed, seen.get() + 1, EVENTS);

    // Another process's view of the same directory serves the same events.
    let follower: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();
    assert_exactly(&reconcile(&follower, seen).await.unwrap(), seen.get() + 1, EVENTS);
    assert_exactly(&reconcile(&feed.reader(), Seq::ZERO).await.unwrap(), 1, EVENTS);

    // Pages are bounded by `limit`; the end of the log (or past it) is an
    // empty page, not an error.
    assert_exactly(&feed.events_after(Seq::new(10), 5).await.unwrap(), 11, 15);
    assert!(feed.events_after(Seq::new(10), 0).await.unwrap().is_empty());
    assert!(reconcile(&feed, Seq::new(EVENTS)).await.unwrap().is_empty());
    assert!(follower.events_after(Seq::new(EVENTS + 50), 10).await.unwrap().is_empty());

    // The trait's append returns the envelope as journaled: the next seq,
    // and the event's own stream id, which the writer resolved.
    let own = Ev::Msg { n: EVENTS + 1, own_stream: Some("own".into()) };
    let env = DurableStore::append(&feed, None, own.clone()).await.unwrap();
    assert_eq!(
        (env.seq, env.stream.as_ref().map(StreamId::as_str), &env.event),
        (Seq::new(EVENTS + 1), Some("own"), &own)
    );
    assert_eq!(feed.events_after(Seq::new(EVENTS), 10).await.unwrap(), std::slice::from_ref(&env));
    assert_eq!(reconcile(&follower, Seq::new(EVENTS)).await.unwrap(), [env]);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_from_a_pruned_cursor_fails_with_expired() {
    let dir = tempfile::tempdir().unwrap();
    let feed = pruned_feed(dir.path(), 200).await;
    let earliest = feed.earliest_seq();
    let follower: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();

    let err = reconcile(&feed, Seq::new(1)).await.unwrap_err();
    assert!(matches!(err, Error::Expired { cursor, earliest: e } if cursor == Seq::new(1) && e == earliest), "{err:?}");
    let err = reconcile(&follower, Seq::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::Expired { cursor: Seq::ZERO, earliest: e } if e == earliest), "{err:?}");

    // Right before the earliest retained seq nothing is lost: every retained event.
    let before = Seq::new(earliest.get() - 1);
    assert_exactly(&reconcile(&feed, before).await.unwrap(), earliest.get(), 200);
    assert_exactly(&reconcile(&follower, before).await.unwrap(), earliest.get(), 200);
    feed.close().await.unwrap();
}

/// A page reaches past what the files show: in the writer's process after
/// a failed watermark write (the writer's kept envelopes serve it), and in
/// another process while a writer is opening the journal (the read waits
/// for it). Each had ended `reconcile` early, silently: an empty page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reaches_the_acknowledged_end_past_a_lagging_or_hidden_newest_segment() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).faults(plan.clone()).open().await.unwrap();
    for n in 1..=2 {
        feed.append(None, msg(n)).await.unwrap();
    }
    plan.inject_next(Step::Watermark, Fault::Errno(libc::EIO));
    feed.append(None, msg(3)).await.unwrap();
    assert_exactly(&reconcile(&feed, Seq::new(1)).await.unwrap(), 2, 3);
    feed.close().await.unwrap();

    let follower: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();
    let plan = FaultPlan::new();
    plan.inject(Step::Lease, 0, Fault::Hold);
    let opening = tokio::spawn(Feed::<Ev>::builder(dir.path()).faults(plan.clone()).open());
    support::eventually("the writer is opening", || plan.count(Step::Lease) >= 1).await;
    // Still paging while the writer is held opening (it had ended there,
    // with an empty page; a stall had let a slow machine start it after
    // the open, checking nothing).
    let paging = tokio::spawn(async move { reconcile(&follower, Seq::ZERO).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waited = !paging.is_finished();
    plan.release();
    assert_exactly(&paging.await.unwrap().unwrap(), 1, 3);
    assert!(waited, "reconcile ended while the writer was opening");
    opening.await.unwrap().unwrap().close().await.unwrap();
}

/// A follower's pages stay in the journal it opened. After the directory
/// was recreated under it, a page after a seq of the old journal is an
/// epoch mismatch: also once the follower took on the new journal's epoch
/// (its streams and `epoch()` do), and when the old cursor lies past the
/// new journal's end. Before, the first served the new journal's events
/// after the old seq, and the second an empty page ("nothing missed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_pages_after_the_directory_was_recreated_are_an_epoch_mismatch() {
    use events::layers::journal::{JournalError, ReadError};
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 1..=EVENTS {
        feed.append(None, msg(n)).await.unwrap();
    }
    let old_epoch = feed.epoch();
    feed.close().await.unwrap();
    let follower: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();

    std::fs::remove_dir_all(dir.path()).unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 1..=20 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let new_epoch = feed.epoch();
    assert_eq!(follower.epoch(), new_epoch, "the follower looks at the files again");
    // Inside the new journal, and past its end.
    for cursor in [10, EVENTS - 1] {
        let err = reconcile(&follower, Seq::new(cursor)).await.unwrap_err();
        let Error::Read(ReadError::Journal(JournalError::EpochMismatch { expected, found, .. })) = err else {
            panic!("cursor {cursor}: {err:?}")
        };
        assert_eq!((expected, found), (old_epoch, new_epoch), "cursor {cursor}");
    }
    let fresh: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();
    assert_exactly(&reconcile(&fresh, Seq::new(10)).await.unwrap(), 11, 20);
    feed.close().await.unwrap();
}
