//! The reset policy for expired cursors, on one pruned journal, for the
//! writer's own streams and for a follower's: `Seq::ZERO` ("everything
//! retained") gets every retained event and no reset; `Earliest` resets then
//! serves every retained event; `Latest` resets then serves only what comes
//! after; `Fail` yields `Error::Expired` naming the cursor, then ends.

mod support;

use events::{Error, FeedItem, FeedReader, FeedStream, OnExpired, ResetReason, Seq};
use futures::StreamExt;
use support::{Ev, msg, pruned_feed, take_events};

const N: u64 = 500;

async fn next_item(s: &mut FeedStream<Ev>) -> events::Result<FeedItem<Ev>> {
    s.next().await.expect("stream ended")
}

fn seqs(items: &[(Seq, Ev)]) -> Vec<u64> {
    items.iter().map(|(seq, _)| seq.get()).collect()
}

/// Runs every policy against `reader`, on a journal holding `earliest..=N`.
async fn check_policies(reader: &FeedReader<Ev>, earliest: u64, what: &str) {
    let retained = (N + 1 - earliest) as usize;

    // Everything retained, no reset, whatever the policy.
    for policy in [OnExpired::Earliest, OnExpired::Latest, OnExpired::Fail] {
        let mut s = reader.clone().on_expired(policy).stream_from(Seq::ZERO);
        let got = take_events(&mut s, retained).await;
        assert_eq!(seqs(&got), (earliest..=N).collect::<Vec<_>>(), "{what}: Seq::ZERO under {policy:?}");
    }

    // Earliest (the default): one reset, then every retained event.
    let mut s = reader.stream_from(Seq::new(1));
    let FeedItem::Reset { reason, earliest: e, latest } = next_item(&mut s).await.unwrap() else {
        panic!("{what}: expected a reset")
    };
    assert_eq!((reason, e.get(), latest.get()), (ResetReason::Expired, earliest, N), "{what}");
    assert_eq!(seqs(&take_events(&mut s, retained).await), (earliest..=N).collect::<Vec<_>>(), "{what}: Earliest");

    // Latest: one reset naming the latest seq (what follows is checked by the caller).
    let mut s = reader.clone().on_expired(OnExpired::Latest).stream_from(Seq::new(1));
    let FeedItem::Reset { reason, latest, .. } = next_item(&mut s).await.unwrap() else {
        panic!("{what}: expected a reset")
    };
    assert_eq!((reason, latest.get()), (ResetReason::Expired, N), "{what}");

    // Fail: a typed error naming the cursor and the earliest, then the end.
    let mut s = reader.clone().on_expired(OnExpired::Fail).stream_from(Seq::new(7));
    match next_item(&mut s).await {
        Err(Error::Expired { cursor, earliest: e }) => assert_eq!((cursor.get(), e.get()), (7, earliest), "{what}"),
        other => panic!("{what}: expected Error::Expired, got {other:?}"),
    }
    assert!(s.next().await.is_none(), "{what}: a failed stream ends");

    // A cursor inside the window is served under every policy, without a reset.
    let mut s = reader.clone().on_expired(OnExpired::Fail).stream_from(Seq::new(earliest));
    assert_eq!(seqs(&take_events(&mut s, 1).await), [earliest + 1], "{what}: inside the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_on_one_pruned_journal_writer_and_follower() {
    let dir = tempfile::tempdir().unwrap();
    let feed = pruned_feed(dir.path(), N).await;
    let earliest = feed.earliest_seq().get();
    let resets_before = feed.stats().resets;

    check_policies(&feed.reader(), earliest, "writer").await;
    let follower = FeedReader::<Ev>::open(dir.path()).unwrap();
    check_policies(&follower, earliest, "follower").await;
    assert_eq!(feed.stats().resets, resets_before + 2, "only the writer's Earliest and Latest resets are counted here");

    // Latest goes on after the latest seq at the reset: the next event is a new one.
    for reader in [feed.reader(), follower.clone()] {
        let mut s = reader.on_expired(OnExpired::Latest).stream_from(Seq::new(1));
        assert!(matches!(next_item(&mut s).await.unwrap(), FeedItem::Reset { reason: ResetReason::Expired, .. }));
        let next = feed.latest_seq().get() + 1;
        feed.append(None, msg(next)).await.unwrap();
        let got = take_events(&mut s, 1).await;
        assert_eq!(got, [(Seq::new(next), msg(next))], "Latest skips the retained events");
    }

    // The feed-wide default comes from the builder.
    feed.close().await.unwrap();
    let strict: events::Feed<Ev> = events::Feed::builder(dir.path()).on_expired(OnExpired::Fail).open().await.unwrap();
    let mut s = strict.stream_from(Seq::new(1));
    assert!(matches!(next_item(&mut s).await, Err(Error::Expired { .. })), "the builder's policy applies");
    strict.close().await.unwrap();
}

/// A stream from a bare `Seq::ZERO` (everything retained) that caught up
/// with an empty journal, then is not polled while events 1.. are appended
/// and retention prunes the first of them: polled again, it says so with
/// one `Reset { Expired }`, as any stream that caught up. Those events came
/// after it began: it needed them. "Everything retained" had held for as
/// long as the cursor was 0, and the stream went on with the earliest
/// event left, passing over the pruned ones in silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_zero_that_caught_up_resets_when_events_after_it_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let feed: events::Feed<Ev> = events::Feed::builder(dir.path())
        .sync(events::SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(events::Retention::segments(2))
        .live_capacity(1)
        .open()
        .await
        .unwrap();
    let mut stream = feed.stream_from(Seq::ZERO);
    assert!(futures::poll!(stream.next()).is_pending(), "caught up with an empty journal");
    while feed.earliest_seq() < Seq::new(3) {
        let n = feed.latest_seq().get() + 1;
        feed.append(None, msg(n)).await.unwrap();
    }
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap();
    assert!(matches!(first, Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, .. }))), "{first:?}");
    feed.close().await.unwrap();
}

/// A follower's stream from a bare `Seq::ZERO` that starts while a writer
/// is opening a journal whose one segment (the newest, which a read skips
/// while a writer opens) starts past seq 1: its first read finds nothing,
/// and "everything retained" becomes the position before the earliest
/// event then, counted over every segment. Once the writer is open, it
/// reads that segment's events with no reset. Taken as the position 0,
/// it reported the events pruned before it began as expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_zero_follower_started_while_a_writer_opens_gets_no_reset() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let options = |feed: events::FeedBuilder<Ev>| {
        feed.sync(events::SyncPolicy::Never).segment_bytes(1024).retention(events::Retention::segments(1))
    };
    let feed: events::Feed<Ev> = options(events::Feed::builder(dir.path())).open().await.unwrap();
    while feed.earliest_seq() < Seq::new(3) {
        let n = feed.latest_seq().get() + 1;
        feed.append(None, msg(n)).await.unwrap();
    }
    let earliest = feed.earliest_seq();
    for _ in 0..3 {
        let n = feed.latest_seq().get() + 1;
        feed.append(None, msg(n)).await.unwrap();
    }
    assert_eq!(feed.earliest_seq(), earliest, "one segment still");
    let latest = feed.latest_seq();
    feed.close().await.unwrap();
    let follower = FeedReader::<Ev>::open(dir.path()).unwrap().poll_interval(std::time::Duration::from_millis(5));
    let plan = FaultPlan::new();
    plan.inject(Step::Lease, 0, Fault::Hold);
    let opening = tokio::spawn(options(events::Feed::builder(dir.path())).faults(plan.clone()).open());
    support::eventually("the writer is opening", || plan.count(Step::Lease) >= 1).await;
    let mut stream = follower.stream_from(Seq::ZERO);
    // Its first reads while the writer is held opening: nothing yet (a
    // stall had let a slow machine start it after the open, checking
    // nothing).
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), stream.next()).await;
    assert!(early.is_err(), "an item while the writer opens: {early:?}");
    assert!(!opening.is_finished(), "the writer opened");
    plan.release();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap();
    match first {
        Some(Ok(FeedItem::Event(env))) => assert_eq!(env.seq, earliest),
        other => panic!("{other:?}"),
    }
    let rest = take_events(&mut stream, 3).await;
    assert_eq!(rest.last().map(|e| e.0), Some(latest));
    opening.await.unwrap().unwrap().close().await.unwrap();
}
