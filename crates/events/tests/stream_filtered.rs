//! `stream_filtered` against the filtered full scan, over random stream
//! mixes, segment sizes, retention, filters (a stream id or a predicate)
//! and checkpoint cadences: it yields exactly the matching events; its
//! checkpoints are strictly increasing, never past the latest seq, each
//! after every matching event at or below it; and resuming from any
//! checkpoint (or event) yields exactly the matching events after it. Also:
//! the cadence (every N skipped, idle, at the end), a stream id over the
//! limit, and a follower in another "process".

mod support;

use std::path::Path;
use std::time::Duration;

use events::{Cursor, Error, Feed, FeedItem, FeedReader, Filter, FilteredStream, MAX_STREAM_ID_BYTES, Retention, Seq};
use events::{StreamId, SyncPolicy};
use futures::StreamExt;
use proptest::prelude::*;
use support::{Ev, msg};

const STREAMS: [&str; 3] = ["a", "b", "sess-7"];

fn stream_of(pick: u8) -> Option<&'static str> {
    STREAMS.get(pick as usize).copied()
}

/// What a filtered stream yielded, as seqs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    events: Vec<u64>,
    checkpoints: Vec<u64>,
    /// Every item in order: (is a checkpoint, seq).
    order: Vec<(bool, u64)>,
}

/// Reads `s`, which starts after `from`, until it has scanned `latest` (an
/// event or a checkpoint at it), asserting there is no other kind of item.
async fn drain(s: &mut FilteredStream<Ev>, from: u64, latest: u64) -> Seen {
    let mut seen = Seen::default();
    if from >= latest {
        return seen; // nothing to scan: nothing comes
    }
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("stalled");
        let seq = match item {
            Some(Ok(FeedItem::Event(env))) => {
                seen.events.push(env.seq.get());
                seen.order.push((false, env.seq.get()));
                env.seq.get()
            }
            Some(Ok(FeedItem::Checkpoint { seq })) => {
                seen.checkpoints.push(seq.get());
                seen.order.push((true, seq.get()));
                seq.get()
            }
            other => panic!("unexpected {other:?}"),
        };
        if seq >= latest {
            return seen;
        }
    }
}

/// The seqs of the retained events after `from` that pass `filter`.
async fn scan(reader: &FeedReader<Ev>, filter: &Filter<Ev>, from: u64) -> Vec<u64> {
    let latest = reader.latest_seq().get();
    let mut out = Vec::new();
    if latest == 0 {
        return out;
    }
    let mut all = reader.stream_from(Seq::ZERO);
    while let Some(item) = all.next().await {
        let Ok(FeedItem::Event(env)) = item else { panic!("unexpected {item:?}") };
        if env.seq.get() > from && filter.matches(&env) {
            out.push(env.seq.get());
        }
        if env.seq.get() >= latest {
            break;
        }
    }
    out
}

/// Runs the whole check on a feed already filled.
async fn check(reader: &FeedReader<Ev>, filter: Filter<Ev>, every: u64) {
    let latest = reader.latest_seq().get();
    let epoch = reader.epoch();
    let open = |cursor: Cursor| {
        reader.stream_filtered(cursor, filter.clone()).unwrap().checkpoint_every(every).checkpoint_after(Duration::ZERO)
    };
    let want = scan(reader, &filter, 0).await;
    let seen = drain(&mut open(Cursor::from(Seq::ZERO)), 0, latest).await;
    assert_eq!(seen.events, want, "the matching events, in order");
    // Strictly increasing positions, checkpoints included, none past the latest.
    let positions: Vec<u64> = seen.order.iter().map(|(_, seq)| *seq).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions go forward: {:?}", seen.order);
    assert!(positions.iter().all(|&p| p <= latest));
    // Never more than `every` skipped events between two items, except
    // where a stream-id filter jumped to the end of a sealed segment through
    // its sidecar.
    let firsts = segment_firsts(reader.dir());
    let mut last = reader.earliest_seq().get().saturating_sub(1);
    for &(checkpoint, seq) in &seen.order {
        let jump = checkpoint && matches!(filter, Filter::Stream(_)) && firsts.contains(&(seq + 1));
        assert!(seq - last <= every || jump, "{} events skipped before {seq} (every {every})", seq - last - 1);
        last = seq;
    }
    // Resuming from any position: exactly the matching events after it.
    for &(_, at) in &seen.order {
        let rest = drain(&mut open(Cursor::new(Seq::new(at), epoch)), at, latest).await;
        let after: Vec<u64> = want.iter().copied().filter(|&s| s > at).collect();
        assert_eq!(rest.events, after, "resumed from {at}");
        assert!(rest.checkpoints.iter().all(|&c| c > at), "resumed from {at}: {:?}", rest.checkpoints);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn open(dir: &Path, segment_bytes: u64, retention: Retention) -> Feed<Ev> {
    Feed::builder(dir).sync(SyncPolicy::Never).segment_bytes(segment_bytes).retention(retention).open().await.unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn filtered_stream_equals_the_filtered_scan_and_resumes_from_any_checkpoint(
        picks in proptest::collection::vec(0u8..4, 0..120),
        segment_bytes in prop_oneof![Just(256u64), Just(1024), Just(1 << 20)],
        keep in prop_oneof![Just(None), Just(Some(3usize)), Just(Some(6))],
        want in 0u8..4,
        every in 1u64..8,
    ) {
        runtime().block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let retention = keep.map_or_else(Retention::unlimited, Retention::segments);
            let feed = open(tmp.path(), segment_bytes, retention).await;
            for (n, pick) in picks.iter().enumerate() {
                feed.append(stream_of(*pick), msg(n as u64)).await.unwrap();
            }
            let filter = match stream_of(want) {
                Some(id) => Filter::stream(id),
                // No stream id to filter on: a predicate on the payload.
                None => Filter::predicate(|env: &events::Envelope<Ev>| matches!(env.event, Ev::Msg { n, .. } if n % 3 == 0)),
            };
            check(&feed.reader(), filter.clone(), every).await;
            // The same from a reader of another process.
            check(&FeedReader::open(tmp.path()).unwrap(), filter, every).await;
            feed.close().await.unwrap();
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_come_every_n_skipped_when_idle_and_live() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    for n in 0..10 {
        feed.append(Some("b"), msg(n)).await.unwrap();
    }
    // Every 4 skipped: checkpoints at 4 and 8; then the idle one at 10.
    let mut s = feed.stream_filtered(Seq::ZERO, Filter::stream("a")).unwrap().checkpoint_every(4);
    for want in [4, 8] {
        assert!(matches!(s.next().await, Some(Ok(FeedItem::Checkpoint { seq })) if seq.get() == want));
    }
    // The idle checkpoint waits for `checkpoint_after` (1 s by default).
    let started = tokio::time::Instant::now();
    assert!(matches!(s.next().await, Some(Ok(FeedItem::Checkpoint { seq })) if seq.get() == 10));
    assert!(started.elapsed() >= Duration::from_millis(900), "came after {:?}", started.elapsed());
    // Live: a match goes out at once, with no checkpoint before it.
    feed.append(Some("b"), msg(10)).await.unwrap();
    feed.append(Some("a"), msg(11)).await.unwrap();
    match s.next().await {
        Some(Ok(FeedItem::Event(env))) => {
            assert_eq!((env.seq.get(), env.stream.as_ref().map(StreamId::as_str)), (12, Some("a")));
        }
        other => panic!("expected the event of a, got {other:?}"),
    }
    // Only skipped events since: a checkpoint once idle; then the end, with
    // a checkpoint for what was skipped since, when the feed closes.
    feed.append(Some("b"), msg(12)).await.unwrap();
    assert!(matches!(s.next().await, Some(Ok(FeedItem::Checkpoint { seq })) if seq.get() == 13));
    feed.append(Some("b"), msg(13)).await.unwrap();
    feed.close().await.unwrap();
    assert!(matches!(s.next().await, Some(Ok(FeedItem::Checkpoint { seq })) if seq.get() == 14));
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn a_stream_id_over_the_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    let long = "x".repeat(MAX_STREAM_ID_BYTES + 1);
    let refused = feed.stream_filtered(Seq::ZERO, Filter::stream(long)).unwrap_err();
    assert!(
        matches!(refused, Error::StreamIdTooLong { len, limit } if len == MAX_STREAM_ID_BYTES + 1 && limit == MAX_STREAM_ID_BYTES)
    );
    assert!(feed.stream_filtered(Seq::ZERO, Filter::stream("x".repeat(MAX_STREAM_ID_BYTES))).is_ok());
    feed.close().await.unwrap();
}

/// The first seqs of the segments of `dir`, from their file names.
fn segment_firsts(dir: &Path) -> Vec<u64> {
    let name = |p: &std::path::PathBuf| p.file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap();
    events_testkit::fs::segments(dir).iter().map(name).collect()
}

/// Reads `s` until the event at `last`: the events' seqs and the checkpoints'.
async fn events_and_checkpoints(s: &mut FilteredStream<Ev>, last: u64) -> (Vec<u64>, Vec<u64>) {
    let seen = drain(s, 0, last).await;
    (seen.events, seen.checkpoints)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_id_catch_up_jumps_over_sealed_segments_its_index_proves_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 512, Retention::unlimited()).await;
    let first = feed.append(Some("a"), msg(0)).await.unwrap().get();
    for n in 1..=200 {
        feed.append(Some("b"), msg(n)).await.unwrap();
    }
    let last = feed.append(Some("a"), msg(201)).await.unwrap().get();
    feed.append(Some("b"), msg(202)).await.unwrap();
    let sealed = segment_firsts(tmp.path()).len() - 1;
    assert!(sealed >= 5, "only {sealed} sealed segments");
    support::eventually("the writer indexed every sealed segment", || {
        events_testkit::fs::with_extension(tmp.path(), "idx").len() == sealed
    })
    .await;

    // No cadence checkpoint can come (none after any count, none before an
    // hour): every checkpoint is a jump, and ends at a segment's end.
    let quiet = |s: FilteredStream<Ev>| s.checkpoint_every(u64::MAX).checkpoint_after(Duration::from_secs(3600));
    let firsts = segment_firsts(tmp.path());
    for reader in [feed.reader(), FeedReader::open(tmp.path()).unwrap()] {
        let mut s = quiet(reader.stream_filtered(Seq::ZERO, Filter::stream("a")).unwrap());
        let (events, checkpoints) = events_and_checkpoints(&mut s, last).await;
        assert_eq!(events, [first, last]);
        assert!(!checkpoints.is_empty(), "the catch-up read every b event");
        for c in &checkpoints {
            assert!(firsts.contains(&(c + 1)) && *c < last, "checkpoint {c} is not the end of a sealed segment");
        }
    }

    // Without sidecars (a reader of another process never builds them for
    // this): every record is read, the same events, no jump.
    for idx in events_testkit::fs::with_extension(tmp.path(), "idx") {
        std::fs::remove_file(idx).unwrap();
    }
    let follower = FeedReader::<Ev>::open(tmp.path()).unwrap();
    let mut s = quiet(follower.stream_filtered(Seq::ZERO, Filter::stream("a")).unwrap());
    assert_eq!(events_and_checkpoints(&mut s, last).await, (vec![first, last], vec![]));
    // A predicate never jumps.
    let keep_a = Filter::predicate(|env: &events::Envelope<Ev>| env.stream_str() == Some("a"));
    let mut s = quiet(feed.stream_filtered(Seq::ZERO, keep_a).unwrap());
    assert_eq!(events_and_checkpoints(&mut s, last).await, (vec![first, last], vec![]));
    feed.close().await.unwrap();
}
