//! Explicit resets: a cursor below retention yields one `Reset { Expired }`;
//! a cursor ahead of a recreated journal yields `Reset { Ahead }`; a cursor
//! from another epoch yields `Reset { EpochMismatch }`. After each, the
//! stream goes on with the earliest retained event, then live.

mod support;

use events::{Cursor, Feed, FeedItem, ResetReason, Seq};
use futures::StreamExt;
use support::{Ev, msg, pruned_feed, take_events};

async fn next_item(s: &mut events::FeedStream<Ev>) -> FeedItem<Ev> {
    s.next().await.expect("stream ended").expect("stream error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_below_retention_resets_then_continues_live() {
    let dir = tempfile::tempdir().unwrap();
    let feed = pruned_feed(dir.path(), 500).await;
    let earliest = feed.earliest_seq();

    let mut s = feed.stream_from(Seq::new(1));
    let FeedItem::Reset { reason, earliest: e, latest } = next_item(&mut s).await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::Expired);
    assert_eq!(e, earliest);
    assert_eq!(latest, Seq::new(500));
    feed.append(None, msg(501)).await.unwrap();
    let got = take_events(&mut s, (502 - earliest.get()) as usize).await;
    assert_eq!(got.iter().map(|e| e.0.get()).collect::<Vec<_>>(), (earliest.get()..=501).collect::<Vec<_>>());
    assert_eq!(got.last().unwrap().1, msg(501));

    // A cursor just inside the window is served without a reset.
    let mut inside = feed.stream_from(earliest.prev().unwrap());
    let first = take_events(&mut inside, 1).await;
    assert_eq!(first[0].0, earliest);
    assert_eq!(feed.stats().resets, 1);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_ahead_of_recreated_journal_resets() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    for n in 1..=50 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let old_epoch = feed.epoch();
    feed.close().await.unwrap();
    std::fs::remove_dir_all(dir.path()).unwrap();

    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    assert_ne!(feed.epoch(), old_epoch, "a recreated directory gets a new epoch");
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let mut s = feed.stream_from(Seq::new(50));
    let FeedItem::Reset { reason, latest, .. } = next_item(&mut s).await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::Ahead);
    assert_eq!(latest, Seq::new(3));
    feed.append(None, msg(4)).await.unwrap();
    assert_eq!(take_events(&mut s, 4).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

    // The same seq with the old epoch is refused for its epoch first, and
    // the new journal is served from its beginning.
    let mut s = feed.stream_from(Cursor::new(Seq::new(2), old_epoch));
    let FeedItem::Reset { reason, .. } = next_item(&mut s).await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::EpochMismatch { cursor_epoch: old_epoch, journal_epoch: feed.epoch() });
    assert_eq!(take_events(&mut s, 4).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

    // With the right epoch it resumes normally.
    let mut s = feed.stream_from(Cursor::new(Seq::new(2), feed.epoch()));
    assert_eq!(take_events(&mut s, 2).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), vec![3, 4]);
    feed.close().await.unwrap();
}

/// A failed watermark write leaves the journal's readers behind the
/// acknowledged seq until the next batch: no reason for a reset, and no
/// event of a followed stream is skipped. Before, a stream from the latest
/// seq (a new subscriber, a client resuming at its last event) read while
/// the watermark lagged got a `Reset { Ahead }` and the whole journal
/// again, and `follow_stream`'s history stopped where the files did while
/// its live part went on after the acknowledged seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_behind_the_latest_seq_is_no_reason_to_reset() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).faults(plan.clone()).open().await.unwrap();
    for n in 1..=2 {
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    plan.inject_next(Step::Watermark, Fault::Errno(libc::EIO));
    assert_eq!(feed.append(Some("s"), msg(3)).await.unwrap(), Seq::new(3), "the append does not fail");
    assert_eq!(plan.fired(), [(Step::Watermark, Fault::Errno(libc::EIO))]);
    // Counted, so an operator sees it: readers in other processes stay at 2.
    let stats = feed.stats();
    assert_eq!((stats.watermark_errors, stats.healthy), (1, true));

    // Read while the files still end at 2.
    let mut subscriber = feed.subscribe();
    let mut resumed = feed.stream_from(Cursor::new(Seq::new(3), feed.epoch()));
    for s in [&mut subscriber, &mut resumed] {
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), s.next()).await;
        assert!(quiet.is_err(), "nothing new to yield, got {quiet:?}");
    }
    let mut followed = feed.follow_stream("s", Seq::ZERO).unwrap();
    // A client that already had seq 3 (its history reads nothing: it stops
    // at the files' 2): its live part starts after 3, not after 2.
    let mut from_three = feed.follow_stream("s", Seq::new(3)).unwrap();
    let mut seqs = Vec::new();
    let mut take = async |n: usize, seqs: &mut Vec<u64>| {
        for _ in 0..n {
            let next = tokio::time::timeout(std::time::Duration::from_secs(10), followed.next()).await;
            match next.unwrap_or_else(|_| panic!("no event after {seqs:?}")).expect("ended").expect("error") {
                FeedItem::Event(env) => seqs.push(env.seq.get()),
                other => panic!("{other:?} after {seqs:?}"),
            }
        }
    };
    take(2, &mut seqs).await;
    feed.append(Some("s"), msg(4)).await.unwrap();
    take(2, &mut seqs).await;
    assert_eq!(seqs, [1, 2, 3, 4]);
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), from_three.next()).await.unwrap();
    let Some(Ok(FeedItem::Event(env))) = first else { panic!("{first:?}") };
    assert_eq!(env.seq, Seq::new(4), "seq 3 handed out again");
    for s in [&mut subscriber, &mut resumed] {
        assert_eq!(take_events(s, 1).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), [4]);
    }
    assert_eq!(feed.stats().resets, 0);
    feed.close().await.unwrap();
}

/// A failed watermark write, then a journal failure at the very next
/// batch, nothing writing the watermark again: a stream that reads the
/// journal after the failure (its writer's streams end once it failed)
/// still gets the batch the lagging watermark leaves out of the files'
/// readers' reach, from the writer's kept envelopes (one event kept, the
/// least `live_capacity`), then the failure: no acknowledged event short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_failing_after_a_failed_watermark_write_leaves_its_streams_every_acknowledged_event() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).live_capacity(1).faults(plan.clone()).open().await.unwrap();
    for n in 1..=2 {
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    plan.inject_next(Step::Watermark, Fault::Errno(libc::EIO));
    assert_eq!(feed.append(Some("s"), msg(3)).await.unwrap(), Seq::new(3));
    plan.inject_next(Step::AppendWrite, Fault::Errno(libc::EIO));
    assert!(feed.append(Some("s"), msg(4)).await.is_err());
    assert_eq!(
        plan.fired(),
        [(Step::Watermark, Fault::Errno(libc::EIO)), (Step::AppendWrite, Fault::Errno(libc::EIO))]
    );
    let stream = feed.stream_from(Seq::ZERO);
    let items = tokio::time::timeout(std::time::Duration::from_secs(10), stream.collect::<Vec<_>>()).await.unwrap();
    let seqs: Vec<u64> = items.iter().filter_map(|i| i.as_ref().ok()?.event().map(|e| e.seq.get())).collect();
    assert_eq!(seqs, [1, 2, 3], "{items:?}");
    assert!(matches!(items.last(), Some(Err(events::Error::Unhealthy { .. }))), "{items:?}");
    let _ = feed.close().await;
}

/// A feed in `dir` whose watermark writes fail (`EIO`, the timer's
/// retries too) while 300 events are appended to stream "s", more than the
/// 64 envelopes it keeps, so the journal's readers stop at 0; and a stream
/// from 0, checked to wait on the live tail with nothing readable.
async fn behind_a_lagging_watermark(
    dir: &std::path::Path,
    plan: &events::layers::journal::fault::FaultPlan,
    retention_check: std::time::Duration,
) -> (Feed<Ev>, events::FeedStream<Ev>) {
    use events::layers::journal::fault::{Fault, Step};
    let feed: Feed<Ev> = Feed::builder(dir)
        .faults(plan.clone())
        .live_capacity(64)
        .retention_check(retention_check)
        .open()
        .await
        .unwrap();
    let first = plan.count(Step::Watermark);
    for nth in first..first + 10_000 {
        plan.inject(Step::Watermark, nth, Fault::Errno(libc::EIO));
    }
    for n in 1..=300 {
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    assert_eq!(feed.latest_seq(), Seq::new(300));
    let files = events::layers::journal::Reader::open(dir).unwrap().last_seq().unwrap();
    assert_eq!(files, 0, "the files' readers see nothing yet");
    let mut s = feed.stream_from(Seq::ZERO);
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(500), s.next()).await;
    assert!(quiet.is_err(), "nothing readable yet, got {quiet:?}");
    (feed, s)
}

/// Takes the 300 events of [`behind_a_lagging_watermark`] (within 10 s).
async fn all_three_hundred(s: &mut events::FeedStream<Ev>) {
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), take_events(s, 300))
        .await
        .expect("the stream waited with acknowledged events undelivered");
    assert_eq!(got.iter().map(|e| e.0.get()).collect::<Vec<_>>(), (1..=300).collect::<Vec<_>>());
}

/// A writer's watermark writes fail (`EIO`, the timer's retries too), so
/// the journal's readers stop at 0 while 300 events are acknowledged,
/// more than the 64 envelopes the feed keeps; then the feed goes quiet. A
/// stream from 0 reads what it can and waits on the live tail. Once the
/// disk is healthy again, the timer's retention pass writes the watermark
/// and tells waiting streams, which read the rest. They had waited until the next append, which on a
/// quiet feed never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_behind_a_lagging_watermark_catches_up_when_it_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let plan = events::layers::journal::fault::FaultPlan::new();
    let (feed, mut s) = behind_a_lagging_watermark(dir.path(), &plan, std::time::Duration::from_millis(200)).await;
    plan.disarm();
    all_three_hundred(&mut s).await;
    feed.close().await.unwrap();
}

/// While the watermark lags, a stream at what the files' readers read
/// (0), whose next seq the kept envelopes let go, waits for a ring: the
/// journal cannot help it either. It had gone back and forth between the
/// kept envelopes and an empty journal read, thousands of reads on the
/// blocking pool while nothing was readable, each counted as a lagged
/// fallback (found by review of the fix for expired kept events, which
/// skipped the wait for every such stream, not only for one retention
/// had passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_behind_a_lagging_watermark_waits_without_reading_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let plan = events::layers::journal::fault::FaultPlan::new();
    // No timer pass meanwhile: only an append rings.
    let (feed, mut s) = behind_a_lagging_watermark(dir.path(), &plan, std::time::Duration::from_secs(60)).await;
    let before = feed.stats().lagged_fallbacks;
    assert!(tokio::time::timeout(std::time::Duration::from_millis(500), s.next()).await.is_err());
    let fallbacks = feed.stats().lagged_fallbacks - before;
    assert!(fallbacks <= 2, "{fallbacks} journal reads while nothing was readable");
    plan.disarm();
    feed.append(Some("s"), msg(301)).await.unwrap(); // writes the watermark, rings
    all_three_hundred(&mut s).await;
    feed.close().await.unwrap();
}

/// As above, but the watermark is written again by a conditional append
/// (refused: it reads the stream's version from the files, so it first
/// brings the watermark up), before any timer pass. The waiting stream is
/// told then. It was not, and the timer's pass after it, finding the
/// watermark already written, told nobody: the stream waited for the next
/// append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_behind_a_lagging_watermark_catches_up_when_a_conditional_append_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = events::layers::journal::fault::FaultPlan::new();
    let (feed, mut s) = behind_a_lagging_watermark(dir.path(), &plan, std::time::Duration::from_secs(2)).await;
    plan.disarm();
    let options = events::AppendOptions::new().expect(events::Expected::NoStream);
    let refused = feed.append_with(Some("s"), msg(301), options).await;
    assert!(matches!(refused, Err(events::Error::VersionConflict { .. })), "{refused:?}");
    all_three_hundred(&mut s).await;
    feed.close().await.unwrap();
}

/// A cursor of `Seq::MAX` on a writer's feed (an SSE client may send one)
/// is ahead like any other: one `Reset { Ahead }`, plain and filtered. Its
/// successor overflowed, a panic in debug builds. And `follow_stream` from
/// past the history's end goes on after its `from`: it went on after the
/// history's end, handing out the stream's events at or before `from`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_past_the_end_are_ahead_and_follow_stream_goes_on_after_from() {
    use events::Filter;
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    for n in 1..=5 {
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    let ahead = |item: &Option<events::Result<FeedItem<Ev>>>| {
        matches!(item, Some(Ok(FeedItem::Reset { reason: ResetReason::Ahead, .. })))
    };
    let first = feed.stream_from(Seq::MAX).next().await;
    assert!(ahead(&first), "{first:?}");
    let mut filtered = feed.stream_filtered(Cursor::new(Seq::MAX, feed.epoch()), Filter::stream("s")).unwrap();
    let first = filtered.next().await;
    assert!(ahead(&first), "{first:?}");
    // Past the end when made, no longer when read: the events after 7.
    let mut followed = feed.follow_stream("s", Seq::new(7)).unwrap();
    for n in 6..=8 {
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    let first = followed.next().await;
    assert!(matches!(&first, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(8)), "{first:?}");
    // Still past the end when read: `stream_from`'s `Reset { Ahead }` first,
    // then the stream's events from the earliest retained one.
    let mut past = feed.follow_stream("s", Seq::new(100)).unwrap();
    let first = past.next().await;
    assert!(ahead(&first), "{first:?}");
    let next = past.next().await;
    assert!(matches!(&next, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(1)), "{next:?}");
    feed.close().await.unwrap();
}

/// A follower's stream from a bare `Seq::ZERO` ("everything retained",
/// never expired) that moved on to a recreated journal (one `EpochMismatch`
/// reset) holds a position in that journal from then on: when retention
/// removes what follows it before it reads on, that is a `Reset { Expired }`
/// (or `Error::Expired` under `OnExpired::Fail`), as for any cursor. It
/// still took itself for "everything" and skipped ahead silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_epoch_reset_a_bare_zero_stream_is_told_what_retention_removed() {
    use events::layers::journal::Retention;
    use events::{FeedReader, OnExpired};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed: Feed<Ev> = Feed::builder(&dir).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    feed.close().await.unwrap();
    let follower: FeedReader<Ev> = FeedReader::open(&dir).unwrap().poll_interval(std::time::Duration::from_millis(5));
    let mut lenient = follower.stream_from(Seq::ZERO);
    let mut strict = follower.clone().on_expired(OnExpired::Fail).stream_from(Seq::ZERO);
    for s in [&mut lenient, &mut strict] {
        assert_eq!(take_events(s, 1).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), [1]);
    }

    std::fs::remove_dir_all(&dir).unwrap();
    let feed: Feed<Ev> = Feed::builder(&dir).segment_bytes(512).retention(Retention::segments(2)).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    for s in [&mut lenient, &mut strict] {
        let item = next_within(s).await;
        assert!(
            matches!(item, Some(Ok(FeedItem::Reset { reason: ResetReason::EpochMismatch { .. }, .. }))),
            "{item:?}"
        );
    }
    let mut n = 2;
    while feed.earliest_seq() <= Seq::new(1) {
        feed.append(None, msg(n)).await.unwrap();
        n += 1;
    }
    let item = next_within(&mut lenient).await;
    assert!(matches!(item, Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, .. }))), "{item:?}");
    let item = next_within(&mut strict).await;
    assert!(matches!(item, Some(Err(events::Error::Expired { .. }))), "{item:?}");
    feed.close().await.unwrap();
}

/// The next item of `s`, failing the test after 10 s instead of hanging it.
async fn next_within(s: &mut events::FeedStream<Ev>) -> Option<events::Result<FeedItem<Ev>>> {
    tokio::time::timeout(std::time::Duration::from_secs(10), s.next()).await.expect("no item within 10 s")
}
