//! Per-stream reads (`read_stream`) against the filtered full scan
//! (`stream_from` filtered by stream id): over random stream mixes, segment
//! sizes and retention; with sidecar indexes deleted, corrupted, truncated,
//! stale or lying; for unknown and over-long ids; for a journal written
//! before sidecars existed; from another process's reader; and live.

mod support;

use std::path::{Path, PathBuf};

use events::layers::journal::{SegmentIndex, Sidecar, sidecar_path};
use events::{Error, Feed, FeedItem, FeedReader, MAX_STREAM_ID_BYTES, Retention, Seq, SyncPolicy};
use futures::{StreamExt, TryStreamExt};
use proptest::prelude::*;
use support::{Ev, msg};

const STREAMS: [&str; 4] = ["a", "b", "c", "sess-7"];

fn stream_of(pick: u8) -> Option<&'static str> {
    STREAMS.get(pick as usize).copied()
}

async fn open(dir: &Path, segment_bytes: u64, retention: Retention) -> Feed<Ev> {
    Feed::builder(dir).sync(SyncPolicy::Never).segment_bytes(segment_bytes).retention(retention).open().await.unwrap()
}

/// A feed over 512-byte segments with `msg(0..n)` appended, event `n` to
/// stream `n % streams` (round-robin over the first `streams` of `STREAMS`).
async fn filled(dir: &Path, n: u64, streams: u64) -> Feed<Ev> {
    let feed = open(dir, 512, Retention::unlimited()).await;
    for i in 0..n {
        feed.append(stream_of((i % streams) as u8), msg(i)).await.unwrap();
    }
    feed
}

/// `(seq, event)` of every retained event of `id` after `from`: the filtered full scan.
async fn scan(feed: &FeedReader<Ev>, id: &str, from: Seq) -> Vec<(Seq, Ev)> {
    let latest = feed.latest_seq();
    let mut out = Vec::new();
    if latest == Seq::ZERO {
        return out;
    }
    let mut all = feed.stream_from(Seq::ZERO);
    while let Some(item) = all.next().await {
        let Ok(FeedItem::Event(env)) = item else { panic!("unexpected {item:?}") };
        if env.seq > from && env.stream.as_ref().is_some_and(|s| s.as_str() == id) {
            out.push((env.seq, env.event.clone()));
        }
        if env.seq >= latest {
            break;
        }
    }
    out
}

async fn read(feed: &FeedReader<Ev>, id: &str, from: Seq) -> Vec<(Seq, Ev)> {
    let got: Vec<_> = feed.read_stream(id, from).unwrap().try_collect().await.unwrap();
    got.iter().map(|env| (env.seq, env.event.clone())).collect()
}

/// The sidecar files of `dir`.
fn sidecars(dir: &Path) -> Vec<PathBuf> {
    events_testkit::fs::with_extension(dir, "idx")
}

/// Every sidecar of `dir` is valid and describes its segment.
fn assert_sidecars_describe_their_segments(dir: &Path) {
    for file in sidecars(dir) {
        Sidecar::open(&file).unwrap().describes(&file.with_extension("seg")).unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn read_stream_equals_the_filtered_full_scan(
        picks in prop::collection::vec(0u8..6, 0..400),
        segment_bytes in 300u64..4096,
        keep in prop::option::of(2usize..6),
        froms in prop::collection::vec(0u64..450, 3),
    ) {
        runtime().block_on(async {
            let tmp = tempfile::tempdir().unwrap();
            let retention = keep.map_or_else(Retention::unlimited, Retention::segments);
            let feed = open(tmp.path(), segment_bytes, retention).await;
            for (n, pick) in picks.iter().enumerate() {
                // Picks 4 and 5 have no stream id; stream "c" also comes from the event's own id.
                let ev = if *pick == 2 { Ev::Msg { n: n as u64, own_stream: Some("c".into()) } } else { msg(n as u64) };
                let caller = if *pick == 2 { None } else { stream_of(*pick) };
                feed.append(caller, ev).await.unwrap();
            }
            let reader = feed.reader();
            for id in STREAMS.iter().chain(&["unknown"]) {
                for from in froms.iter().copied().chain([0]) {
                    let from = Seq::new(from);
                    assert_eq!(read(&reader, id, from).await, scan(&reader, id, from).await, "id {id} from {from:?}");
                }
            }
            // Every sidecar written describes its segment, and verify agrees.
            let report = events::layers::journal::verify(tmp.path()).unwrap();
            assert!(report.is_ok(), "{:?}", report.problems);
            feed.close().await.unwrap();
        });
    }
}

/// A feed over several 512-byte segments with every stream in each, read
/// once so that its sealed segments have sidecars.
async fn indexed_feed(dir: &Path) -> (Feed<Ev>, Vec<(Seq, Ev)>) {
    let feed = filled(dir, 200, 4).await;
    let want = scan(&feed.reader(), "b", Seq::ZERO).await;
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want);
    assert!(sidecars(dir).len() >= 5, "sealed segments got sidecars: {:?}", sidecars(dir));
    (feed, want)
}

#[tokio::test]
async fn a_deleted_corrupted_truncated_or_stale_sidecar_is_rebuilt_with_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (feed, want) = indexed_feed(tmp.path()).await;
    let files = sidecars(tmp.path());
    let good = std::fs::read(&files[1]).unwrap();

    std::fs::remove_file(&files[1]).unwrap();
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want, "deleted");
    assert_eq!(std::fs::read(&files[1]).unwrap(), good, "rebuilt identically");

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    std::fs::write(&files[1], &flipped).unwrap();
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want, "flipped byte");
    assert_eq!(std::fs::read(&files[1]).unwrap(), good);

    std::fs::write(&files[1], &good[..good.len() - 7]).unwrap();
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want, "truncated");
    assert_eq!(std::fs::read(&files[1]).unwrap(), good);

    // Stale: a valid sidecar, but of another segment.
    std::fs::copy(&files[0], &files[1]).unwrap();
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want, "another segment's sidecar");
    assert_eq!(std::fs::read(&files[1]).unwrap(), good);

    // Lying: valid CRC, describes the segment, but points "b" at the records of "a".
    let segment = files[1].with_extension("seg");
    let side = Sidecar::open(&files[1]).unwrap();
    let mut keys: std::collections::BTreeMap<Vec<u8>, Vec<_>> = side.all().map(|(k, v)| (k.to_vec(), v)).collect();
    let a = keys[&b"a".to_vec()].clone();
    assert!(!a.is_empty());
    keys.insert(b"b".to_vec(), a);
    let lie = SegmentIndex {
        epoch: side.epoch(),
        first_seq: side.first_seq(),
        seg_len: side.seg_len(),
        next_seq: side.next_seq(),
        records: side.records(),
        stopped_early: false,
        keys,
    };
    lie.write(&segment).unwrap();
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want, "lying sidecar");
    assert_eq!(std::fs::read(&files[1]).unwrap(), good);

    assert!(events::layers::journal::verify(tmp.path()).unwrap().is_ok());
    feed.close().await.unwrap();
}

#[tokio::test]
async fn verify_reports_a_damaged_sidecar_against_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (feed, _) = indexed_feed(tmp.path()).await;
    feed.close().await.unwrap();
    let files = sidecars(tmp.path());
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[70] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    let report = events::layers::journal::verify(tmp.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, files[0].with_extension("seg"));
    assert!(report.problems[0].what.contains("sidecar"), "{}", report.problems[0].what);
    assert!(report.ignored.is_empty(), "sidecars are not strangers: {:?}", report.ignored);
}

#[tokio::test]
async fn an_unknown_stream_is_empty_and_an_over_long_id_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 512, Retention::unlimited()).await;
    assert!(read(&feed.reader(), "a", Seq::ZERO).await.is_empty(), "empty journal");
    for n in 0..50 {
        feed.append(Some("a"), msg(n)).await.unwrap();
    }
    assert!(read(&feed.reader(), "nobody", Seq::ZERO).await.is_empty());
    assert_eq!(read(&feed.reader(), "a", Seq::new(1000)).await, [], "from past the end");

    let long = "x".repeat(MAX_STREAM_ID_BYTES + 1);
    let err = feed.read_stream(&long, Seq::ZERO).unwrap_err();
    assert!(matches!(err, Error::StreamIdTooLong { len: 257, limit: 256 }), "{err:?}");
    let err = feed.append(Some(&long), msg(1)).await.unwrap_err();
    assert!(matches!(err, Error::StreamIdTooLong { len: 257, limit: 256 }), "{err:?}");
    let own = Ev::Msg { n: 1, own_stream: Some(long.clone()) };
    assert!(matches!(feed.append(None, own).await, Err(Error::StreamIdTooLong { .. })));
    let before = feed.stats().encode_errors;
    feed.record(Some(&long), &msg(3));
    support::eventually("the over-long record is counted", || feed.stats().encode_errors > before).await;
    let at_limit = "y".repeat(MAX_STREAM_ID_BYTES);
    let seq = feed.append(Some(&at_limit), msg(2)).await.unwrap();
    assert_eq!(read(&feed.reader(), &at_limit, Seq::ZERO).await, [(seq, msg(2))]);
    feed.close().await.unwrap();
}

#[tokio::test]
async fn a_journal_without_sidecars_opens_and_gets_them_built() {
    let tmp = tempfile::tempdir().unwrap();
    let (feed, want) = indexed_feed(tmp.path()).await;
    feed.close().await.unwrap();
    for file in sidecars(tmp.path()) {
        std::fs::remove_file(file).unwrap();
    }
    // As a journal written before sidecars existed: it opens cleanly.
    let (feed, report) = Feed::<Ev>::builder(tmp.path()).segment_bytes(512).open_with_report().await.unwrap();
    assert!(report.ignored.is_empty());
    assert!(sidecars(tmp.path()).is_empty());
    assert_eq!(read(&feed.reader(), "b", Seq::ZERO).await, want);
    assert!(sidecars(tmp.path()).len() >= 5);
    assert_sidecars_describe_their_segments(tmp.path());
    feed.close().await.unwrap();
}

#[tokio::test]
async fn another_process_reader_reads_a_stream_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = filled(tmp.path(), 120, 3).await;
    let want = scan(&feed.reader(), "c", Seq::new(17)).await;
    feed.close().await.unwrap();
    for file in sidecars(tmp.path()) {
        std::fs::remove_file(file).unwrap();
    }
    let follower: FeedReader<Ev> = FeedReader::open(tmp.path()).unwrap();
    assert_eq!(read(&follower, "c", Seq::new(17)).await, want);
    assert!(sidecars(tmp.path()).is_empty(), "a follower never writes");
}

#[tokio::test]
async fn the_writer_indexes_sealed_segments_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = filled(tmp.path(), 100, 4).await;
    let sealed = events_testkit::fs::segments(tmp.path()).len() - 1;
    assert!(sealed >= 3);
    support::eventually("sidecars built without a read", || sidecars(tmp.path()).len() == sealed).await;
    assert_sidecars_describe_their_segments(tmp.path());
    feed.close().await.unwrap();
}

#[tokio::test]
async fn follow_stream_reads_the_history_then_goes_on_live() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = filled(tmp.path(), 40, 2).await;
    let mut follow = feed.follow_stream("b", Seq::new(30)).unwrap();
    let seqs_of = |items: Vec<FeedItem<Ev>>| items.iter().map(|i| i.event().unwrap().seq.get()).collect::<Vec<_>>();
    let history: Vec<_> = follow.by_ref().take(5).try_collect().await.unwrap();
    assert_eq!(seqs_of(history), [32, 34, 36, 38, 40]);
    feed.append(Some("a"), msg(100)).await.unwrap();
    feed.append(Some("b"), msg(101)).await.unwrap();
    let Some(Ok(FeedItem::Event(env))) = follow.next().await else { panic!("expected the live event") };
    assert_eq!((env.seq, &env.event), (Seq::new(42), &msg(101)));
    feed.close().await.unwrap();
}

#[tokio::test]
async fn retention_removes_sidecars_with_their_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 512, Retention::segments(3)).await;
    for n in 0..200 {
        feed.append(stream_of((n % 4) as u8), msg(n)).await.unwrap();
        if n % 20 == 0 {
            let _ = read(&feed.reader(), "a", Seq::ZERO).await;
        }
    }
    let _ = read(&feed.reader(), "a", Seq::ZERO).await;
    // Under `SyncPolicy::Never` a roll's retention finishes on the journal's
    // sealer thread (which also sweeps a sidecar a read wrote meanwhile): `sync` waits for it.
    feed.sync().await.unwrap();
    for file in sidecars(tmp.path()) {
        assert!(file.with_extension("seg").exists(), "{} outlived its segment", file.display());
    }
    assert!(!sidecars(tmp.path()).is_empty());
    feed.close().await.unwrap();
}

#[test]
fn sidecar_paths_sit_beside_their_segments() {
    let seg = Path::new("/j/00000000000000000042.seg");
    assert_eq!(sidecar_path(seg), Path::new("/j/00000000000000000042.idx"));
}

/// A follower that read a stream of the newest segment, then the directory
/// recreated under it with as many bytes of another stream's events: its
/// in-memory index of the newest segment described the old file, so the
/// read of the new stream began where the old file ended and returned only
/// its last events.
#[tokio::test]
async fn a_follower_reads_a_recreated_journal_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fill = |id: &'static str, n: u64| async move {
        let feed = open(dir, 1 << 20, Retention::unlimited()).await;
        for i in 0..n {
            feed.append(Some(id), msg(i)).await.unwrap();
        }
        feed.close().await.unwrap();
    };
    fill("b", 50).await;
    let follower: FeedReader<Ev> = FeedReader::open(dir).unwrap();
    assert_eq!(read(&follower, "b", Seq::ZERO).await.len(), 50);
    std::fs::remove_dir_all(dir).unwrap();
    fill("a", 60).await;
    let _ = follower.epoch(); // the follower notices the new journal
    let got = read(&follower, "a", Seq::ZERO).await;
    assert_eq!(got.iter().map(|(s, _)| s.get()).collect::<Vec<_>>(), (1..=60).collect::<Vec<_>>());
}

/// A follower's per-stream read that reaches the newest segment while a
/// writer is opening the journal (recovering: readers stop at the sealed
/// segments) waits for the writer instead of ending early. It ended with
/// nothing of the newest segment, silently, and `follow_stream` went on
/// live after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_waits_for_a_writer_that_is_opening() {
    let tmp = tempfile::tempdir().unwrap();
    let follower = three_events_of_a(tmp.path()).await;
    let events = follower.read_stream("a", Seq::ZERO).unwrap();
    assert_eq!(events.limit(), Seq::new(3));
    let (plan, opening) = a_writer_held_opening(tmp.path()).await;
    let reading = tokio::spawn(events.try_collect::<Vec<_>>());
    // Still reading while the writer is held opening (it had ended there).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let waited = !reading.is_finished();
    plan.release();
    let got = reading.await.unwrap().unwrap();
    assert_eq!(got.iter().map(|env| env.seq.get()).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(waited, "the read ended while the writer was opening");
    opening.await.unwrap().unwrap().close().await.unwrap();
}

/// While a writer opens the journal, a follower's latest seq stays what
/// the last writer acknowledged (the `Recovering` record keeps it), so a
/// history read from now still holds the newest segment's events and
/// `subscribe` starts after them. With one segment it had read 0: the
/// history came back empty, and `subscribe` (and an SSE `since=latest`)
/// replayed the whole journal once the writer was up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_latest_seq_holds_while_a_writer_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let follower = three_events_of_a(tmp.path()).await;
    let (plan, opening) = a_writer_held_opening(tmp.path()).await;
    assert_eq!(follower.latest_seq(), Seq::new(3), "while the writer opens");
    let history = follower.read_stream("a", Seq::ZERO).unwrap();
    assert_eq!(history.limit(), Seq::new(3));
    let mut new_events = follower.subscribe();
    assert!(!opening.is_finished(), "the writer opened before the checks: they tested nothing");
    plan.release();
    let feed = opening.await.unwrap().unwrap();
    feed.append(Some("a"), msg(3)).await.unwrap();
    let got: Vec<_> = history.try_collect().await.unwrap();
    assert_eq!(got.iter().map(|env| env.seq.get()).collect::<Vec<_>>(), [1, 2, 3]);
    match tokio::time::timeout(std::time::Duration::from_secs(10), new_events.next()).await {
        Ok(Some(Ok(FeedItem::Event(env)))) => assert_eq!(env.seq, Seq::new(4), "subscribe replayed"),
        other => panic!("expected seq 4, got {other:?}"),
    }
    feed.close().await.unwrap();
}

/// A closed one-segment feed of three events of stream "a", and a
/// follower of it.
async fn three_events_of_a(dir: &Path) -> FeedReader<Ev> {
    let feed = open(dir, 1 << 20, Retention::unlimited()).await;
    for i in 0..3 {
        feed.append(Some("a"), msg(i)).await.unwrap();
    }
    feed.close().await.unwrap();
    FeedReader::open(dir).unwrap()
}

/// A writer held `seconds` in its open after recovery began (at the seq
/// lease): readers' watermark says `Recovering` until then.
async fn a_writer_held_opening(
    dir: &Path,
) -> (events::layers::journal::fault::FaultPlan, tokio::task::JoinHandle<events::Result<Feed<Ev>>>) {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let plan = FaultPlan::new();
    plan.inject(Step::Lease, 0, Fault::Hold);
    let opening = tokio::spawn(Feed::<Ev>::builder(dir).faults(plan.clone()).open());
    support::eventually("the writer is opening", || plan.count(Step::Lease) >= 1).await;
    (plan, opening)
}

/// A record of the stream that does not decode, between two that do (its
/// stream id is readable, its event is not): `read_stream` yields
/// `Error::Decode` naming its seq and, under `OnUndecodable::Fail`, ends
/// there; under `Skip` it goes on, and `follow_stream` turns it into one
/// `Undecodable` item. `follow_stream` never goes on live after an error in
/// the history: it had skipped the stream's events between the bad record
/// and the read's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_record_of_the_stream_follows_the_readers_policy() {
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec, OnUndecodable};
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("s"), msg(1)).await.unwrap();
    feed.close().await.unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    journal.append_now([1, 1, b's', 7]).unwrap(); // stream "s", then a variant `Ev` does not have
    journal.close().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("s"), msg(3)).await.unwrap();
    let reader = feed.reader();

    let got: Vec<_> = reader.read_stream("s", Seq::ZERO).unwrap().collect().await;
    assert_eq!(got.len(), 2, "the event, then the error: {got:?}");
    assert!(matches!(&got[1], Err(Error::Decode { seq, .. }) if *seq == Seq::new(2)), "{got:?}");
    let skip = reader.clone().on_undecodable(OnUndecodable::Skip);
    let got: Vec<_> = skip.read_stream("s", Seq::ZERO).unwrap().collect().await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2].as_ref().unwrap().seq, Seq::new(3));

    let mut followed = skip.follow_stream("s", Seq::ZERO).unwrap();
    let mut items = Vec::new();
    for _ in 0..3 {
        items.push(followed.next().await.unwrap().unwrap());
    }
    assert!(matches!(items[1], FeedItem::Undecodable { seq, .. } if seq == Seq::new(2)), "{items:?}");
    assert!(matches!(&items[2], FeedItem::Event(env) if env.seq == Seq::new(3)), "{items:?}");

    let mut failing = reader.follow_stream("s", Seq::ZERO).unwrap();
    assert!(matches!(failing.next().await, Some(Ok(FeedItem::Event(_)))));
    assert!(matches!(failing.next().await, Some(Err(Error::Decode { .. }))));
    feed.append(Some("s"), msg(4)).await.unwrap();
    assert!(failing.next().await.is_none(), "the stream went on after the error");
    feed.close().await.unwrap();
}

/// A follower's `follow_stream("a")` and `stream_filtered(Filter::stream("a"))`
/// (default policy `OnUndecodable::Fail`) while the journal gains an event
/// of stream "b" that this reader's types do not decode, then one of "a":
/// both pass over "b"'s event (its stream id decodes) and deliver "a"'s.
/// `follow_stream`'s live part had been an unfiltered `stream_from`: it
/// ended with `Error::Decode` for the other stream's event, which
/// `read_stream` never reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_streams_undecodable_event_is_passed_over_by_a_stream_filtered_read() {
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec, Filter};
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("a"), msg(1)).await.unwrap();
    feed.close().await.unwrap();
    let follower: FeedReader<Ev> =
        FeedReader::open(tmp.path()).unwrap().poll_interval(std::time::Duration::from_millis(2));
    let mut followed = follower.follow_stream("a", Seq::ZERO).unwrap();
    let first = followed.next().await.unwrap().unwrap();
    assert!(matches!(&first, FeedItem::Event(env) if env.seq == Seq::new(1)), "{first:?}");
    let mut filtered = follower.stream_filtered(Seq::new(1), Filter::stream("a")).unwrap();

    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    journal.append_now([1, 1, b'b', 7]).unwrap(); // stream "b", then a variant `Ev` does not have
    journal.close().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("a"), msg(3)).await.unwrap();

    let within = std::time::Duration::from_secs(10);
    let next = tokio::time::timeout(within, followed.next()).await.expect("follow_stream delivers seq 3");
    assert!(matches!(&next, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(3)), "{next:?}");
    let next = tokio::time::timeout(within, async {
        loop {
            match filtered.next().await {
                Some(Ok(FeedItem::Checkpoint { .. })) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("stream_filtered delivers seq 3");
    assert!(matches!(&next, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(3)), "{next:?}");
    // From the start: seq 1 and the undecodable seq 2 come in one read.
    let from_start = follower.stream_filtered(Seq::ZERO, Filter::stream("a")).unwrap();
    assert_eq!(event_seqs(from_start, 2).await, [1, 3], "stream_filtered from the start");
    // Its own undecodable events are still the policy's: `read_stream`
    // and the test above.
    feed.close().await.unwrap();
}

/// The seqs of the first `n` events of a filtered stream (its checkpoints
/// passed over; any other item, or an error, fails the test), within 10 s.
async fn event_seqs(stream: impl futures::Stream<Item = events::Result<FeedItem<Ev>>>, n: usize) -> Vec<u64> {
    let events = stream
        .filter_map(|item| async move {
            match item.unwrap() {
                FeedItem::Event(env) => Some(env.seq.get()),
                FeedItem::Checkpoint { .. } => None,
                other => panic!("{other:?}"),
            }
        })
        .take(n)
        .collect();
    tokio::time::timeout(std::time::Duration::from_secs(10), events).await.expect("the events within 10 s")
}

/// A record whose stream id does not decode either (a foreign payload
/// appended through the journal) is no stream's: `stream_filtered` by
/// stream id passes over it under `OnUndecodable::Fail` whether its
/// segment was indexed or not, as `read_stream` does; an unfiltered
/// `stream_from` still ends with `Error::Decode` at it. The filter had
/// ended with that error where it read the record (a segment not indexed
/// yet, the active one) and passed over it where an index skipped the
/// segment: the answer depended on the background indexer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_stream_id_does_not_decode_is_no_streams_whether_or_not_it_was_indexed() {
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec, Filter};
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("a"), msg(1)).await.unwrap();
    feed.close().await.unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    journal.append_now([0x02, 0x99, 0x42]).unwrap(); // an option tag of 2: not bincode's, no stream id either
    journal.close().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("a"), msg(3)).await.unwrap();
    let filtered = feed.stream_filtered(Seq::ZERO, Filter::stream("a")).unwrap();
    assert_eq!(event_seqs(filtered, 2).await, [1, 3], "stream_filtered");
    let read: Vec<u64> = feed.read_stream("a", Seq::ZERO).unwrap().map(|e| e.unwrap().seq.get()).collect().await;
    assert_eq!(read, [1, 3]);
    let mut all = feed.stream_from(Seq::ZERO);
    assert!(matches!(all.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(1)));
    let next = all.next().await;
    assert!(matches!(next, Some(Err(events::Error::Decode { seq, .. })) if seq == Seq::new(2)), "{next:?}");
    feed.close().await.unwrap();
}

/// `read_stream` lists the segments at its first step. When retention
/// removes the segment that was active then before the read reaches it,
/// the read ends with `Error::Expired`, as it does for a sealed segment
/// removed under it. It had ended with the raw `Io` error of opening the
/// missing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_segment_pruned_before_the_read_reaches_it_is_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 4096, Retention::segments(2)).await;
    let journal = events::layers::journal::Reader::open(tmp.path()).unwrap();
    let firsts = || journal.segments().unwrap().into_iter().map(|(first, _)| first).collect::<Vec<_>>();
    let mut n = 0;
    while firsts().len() < 2 {
        n += 1;
        feed.append(Some("a"), msg(n)).await.unwrap();
    }
    feed.append(Some("a"), msg(n + 1)).await.unwrap(); // one event in the active segment
    let mut history = feed.reader().read_stream("a", Seq::new(1)).unwrap();
    assert_eq!(history.next().await.unwrap().unwrap().seq, Seq::new(2));

    // Roll twice: the two segments the read listed are removed.
    let first_active = *firsts().last().unwrap();
    while firsts()[0] <= first_active {
        n += 1;
        feed.append(Some("b"), msg(n)).await.unwrap();
    }
    let (mut last, mut delivered) = (None, Seq::new(2));
    while let Some(item) = history.next().await {
        if let Ok(env) = &item {
            delivered = env.seq;
        }
        last = Some(item);
        if last.as_ref().is_some_and(Result::is_err) {
            break;
        }
    }
    // It names where a caller resumes: the last seq handed out, not the read's start.
    assert!(matches!(last, Some(Err(Error::Expired { cursor, .. })) if cursor == delivered), "{last:?}");
    assert!(delivered > Seq::new(2), "the read handed out the listed segments' events first");
    feed.close().await.unwrap();
}

/// The same for sealed segments a read had already read ahead (a read
/// reads the records of several sealed segments at once): retention
/// removes the segments after the first before the consumer takes their
/// events, and the read ends with `Error::Expired` where they were, as
/// when it reads each as it comes. The records read ahead had been handed
/// out from the removed files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_pruned_after_the_read_read_them_ahead_are_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 512, Retention::segments(12)).await;
    let journal = events::layers::journal::Reader::open(tmp.path()).unwrap();
    let firsts = || journal.segments().unwrap().into_iter().map(|(first, _)| first).collect::<Vec<_>>();
    let mut n = 0;
    while firsts().len() < 10 {
        n += 1;
        feed.append(Some("a"), msg(n)).await.unwrap();
    }
    let mut history = feed.reader().read_stream("a", Seq::ZERO).unwrap();
    let first = history.next().await.unwrap().unwrap();
    assert_eq!(first.seq, Seq::new(1));

    // Roll until the three oldest segments are removed.
    let third = firsts()[2];
    while firsts()[0] <= third {
        n += 1;
        feed.append(Some("b"), msg(n)).await.unwrap();
    }
    let (mut last, mut delivered) = (None, first.seq);
    while let Some(item) = history.next().await {
        let failed = item.is_err();
        last = Some(item.map(|env| env.seq));
        match &last {
            Some(Ok(seq)) => delivered = *seq,
            _ if failed => break,
            _ => {}
        }
    }
    assert!(matches!(last, Some(Err(Error::Expired { cursor, .. })) if cursor == delivered), "{last:?}");
    feed.close().await.unwrap();
}

/// `follow_stream` from a cursor whose next events of the stream were
/// pruned: one `Reset { Expired }` first (as `stream_from` gives), then
/// the stream's retained events; under `OnExpired::Fail`, the error. A
/// stream none of whose events were pruned after its cursor (the
/// pruned-segments summary shows it) gets no reset. The pruned events had
/// been skipped with no reset at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stream_from_a_pruned_cursor_starts_with_a_reset() {
    use events::{OnExpired, ResetReason};
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 512, Retention::segments(2)).await;
    feed.append(Some("a"), msg(1)).await.unwrap();
    feed.append(Some("a"), msg(2)).await.unwrap();
    for n in 3..=60 {
        feed.append(Some("b"), msg(n)).await.unwrap();
    }
    feed.append(Some("a"), msg(61)).await.unwrap();
    feed.append(Some("c"), msg(62)).await.unwrap();
    let earliest = feed.earliest_seq();
    assert!(earliest > Seq::new(2), "seqs 1 and 2 were pruned (earliest {earliest:?})");
    let reader = feed.reader();

    let mut a = reader.follow_stream("a", Seq::new(1)).unwrap();
    match a.next().await {
        Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, earliest: at, .. })) => assert_eq!(at, earliest),
        other => panic!("expected an expired reset first: {other:?}"),
    }
    assert!(matches!(a.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(61)));

    let mut strict = reader.clone().on_expired(OnExpired::Fail).follow_stream("a", Seq::new(1)).unwrap();
    assert!(matches!(strict.next().await, Some(Err(Error::Expired { .. }))));
    assert!(strict.next().await.is_none());

    // Seq 0 of this journal (a client that stored the position before the
    // first event) is a position too: expired once seq 1 is pruned, as
    // `stream_from` and `stream_filtered` take it. Only a bare `Seq::ZERO`
    // asks for whatever is retained. It had been read as the bare one: the
    // history started at the earliest retained event with no reset.
    let mut at_zero = reader.follow_stream("a", events::Cursor::new(Seq::ZERO, feed.epoch())).unwrap();
    let first = at_zero.next().await;
    assert!(matches!(first, Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, .. }))), "{first:?}");
    let mut bare = reader.follow_stream("a", Seq::ZERO).unwrap();
    assert!(matches!(bare.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(61)));

    // Stream c had no event among the pruned ones: no reset.
    let mut c = reader.follow_stream("c", Seq::new(1)).unwrap();
    assert!(matches!(c.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(62)));
    feed.close().await.unwrap();
}

/// A journal in `dir` (512-byte segments) holding `msg(n)` of stream "a"
/// for each `n` of `events`; returns its epoch.
async fn events_of_a(dir: &Path, events: std::ops::Range<u64>) -> u64 {
    let feed = open(dir, 512, Retention::unlimited()).await;
    for n in events {
        feed.append(Some("a"), msg(n)).await.unwrap();
    }
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    epoch
}

/// A follower's per-stream read across many segments, the directory
/// recreated (with another journal holding the same stream id over the
/// same seqs) after its first segment was read: the read ends with
/// `EpochMismatch` naming both epochs. It had read on through the paths it
/// listed, now the new journal's files, and handed out the two journals'
/// events as one history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_read_across_a_recreated_directory_fails_instead_of_mixing_journals() {
    use events::layers::journal::JournalError;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let old = events_of_a(dir, 0..40).await;
    let follower: FeedReader<Ev> = FeedReader::open(dir).unwrap();
    let mut events = follower.read_stream("a", Seq::ZERO).unwrap();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.event, msg(0));
    std::fs::remove_dir_all(dir).unwrap();
    let new = events_of_a(dir, 1000..1040).await;
    let mut rest = Vec::new();
    while let Some(item) = events.next().await {
        match item {
            Ok(env) => rest.push(env.event.clone()),
            Err(Error::Journal(JournalError::EpochMismatch { expected, found, .. })) => {
                assert_eq!((expected, found), (old, new));
                let old_events: Vec<_> = (0..40).map(msg).collect();
                assert!(rest.iter().all(|e| old_events.contains(e)), "no event of the new journal: {rest:?}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the read ended without an error, after {rest:?}");
}

/// `follow_stream` on a follower, the directory recreated between the call
/// and the first poll: the history is of the journal the call pinned, so it
/// ends with `EpochMismatch` instead of handing out the new journal's
/// events after the old journal's seq (the read had taken its epoch at its
/// first poll, the new journal's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stream_reads_the_journal_it_was_asked_in() {
    use events::layers::journal::JournalError;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    events_of_a(dir, 0..20).await;
    let follower: FeedReader<Ev> = FeedReader::open(dir).unwrap();
    let mut followed = follower.follow_stream("a", Seq::new(5)).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    events_of_a(dir, 1000..1020).await;
    match followed.next().await {
        Some(Err(Error::Journal(JournalError::EpochMismatch { .. }))) => {}
        other => panic!("expected the pinned journal's epoch check: {other:?}"),
    }
}

/// `follow_stream` from a cursor of a journal since deleted and made
/// again: one `Reset { EpochMismatch }`, then the stream's whole history
/// in the new journal. The cursor had been a bare seq: its seq 5 was read
/// as the new journal's, and the new journal's events 1..=5 never came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stream_from_a_cursor_of_a_recreated_journal_resets_and_reads_it_from_its_start() {
    use events::{Cursor, ResetReason};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let old_epoch = events_of_a(dir, 0..20).await;
    std::fs::remove_dir_all(dir).unwrap();
    events_of_a(dir, 1000..1010).await;
    let follower: FeedReader<Ev> = FeedReader::open(dir).unwrap();
    let new_epoch = follower.epoch();
    let mut followed = follower.follow_stream("a", Cursor::new(Seq::new(5), old_epoch)).unwrap();
    match followed.next().await {
        Some(Ok(FeedItem::Reset { reason: ResetReason::EpochMismatch { cursor_epoch, journal_epoch }, .. })) => {
            assert_eq!((cursor_epoch, journal_epoch), (old_epoch, new_epoch));
        }
        other => panic!("expected an epoch reset first: {other:?}"),
    }
    let mut seqs = Vec::new();
    for _ in 0..10 {
        match followed.next().await {
            Some(Ok(FeedItem::Event(env))) => seqs.push(env.seq.get()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    // A cursor of this journal reads on after its seq.
    let mut same = follower.follow_stream("a", Cursor::new(Seq::new(5), new_epoch)).unwrap();
    assert!(matches!(same.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(6)));
}

/// The same, with events of the stream pruned between the call and the
/// first poll: the epoch reset is made at the first poll, as
/// `stream_from`'s is, and names the earliest seq retained then, where the
/// history starts. The reset had been made at the call, naming seq 1,
/// with the history going on from whatever was retained at the first poll:
/// the events between skipped with no word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stream_after_an_epoch_reset_does_not_skip_events_pruned_before_the_first_poll() {
    use events::{Cursor, ResetReason};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let old_epoch = events_of_a(dir, 0..20).await;
    std::fs::remove_dir_all(dir).unwrap();
    let feed = open(dir, 512, Retention::segments(2)).await;
    feed.append(Some("a"), msg(1)).await.unwrap();
    let mut followed = feed.reader().follow_stream("a", Cursor::new(Seq::new(5), old_epoch)).unwrap();
    let mut n = 2;
    while feed.earliest_seq() <= Seq::new(1) {
        feed.append(Some("a"), msg(n)).await.unwrap();
        n += 1;
    }
    match followed.next().await {
        Some(Ok(FeedItem::Reset { reason: ResetReason::EpochMismatch { .. }, earliest, .. })) => {
            assert_eq!(earliest, feed.earliest_seq(), "the earliest retained at the first poll");
        }
        other => panic!("expected an epoch reset first: {other:?}"),
    }
    let next = followed.next().await;
    assert!(matches!(&next, Some(Ok(FeedItem::Event(env))) if env.seq == feed.earliest_seq()), "{next:?}");
    feed.close().await.unwrap();
}

/// Whether `dir` holds more than one segment file.
fn rolled(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
        .count()
        > 1
}

/// `follow_stream` and `read_stream` from a cursor whose next events of the
/// stream were retained when the call was made, and pruned before the first
/// poll: `follow_stream` starts with `Reset { Expired }` (its `OnExpired`
/// policy's answer, looked at on the first poll), `read_stream` ends with
/// `Expired`. Both had started their history at the next retained event of
/// the stream as if nothing came between (the call checked retention; the
/// read listed the segments only at its first poll). A stream none of whose
/// events were pruned reads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_pruned_between_the_call_and_the_first_poll_are_not_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 512, Retention::segments(2)).await;
    feed.append(Some("a"), msg(1)).await.unwrap();
    feed.append(Some("a"), msg(2)).await.unwrap();
    let mut n = 3;
    while !rolled(tmp.path()) {
        feed.append(Some("b"), msg(n)).await.unwrap();
        n += 1;
    }
    // Stream a's next event, in the second segment; stream c's first.
    let x = feed.append(Some("a"), msg(n)).await.unwrap();
    feed.append(Some("c"), msg(n + 1)).await.unwrap();
    assert_eq!(feed.earliest_seq(), Seq::new(1), "nothing pruned yet");
    let reader = feed.reader();
    let mut followed = reader.follow_stream("a", Seq::new(1)).unwrap();
    let mut read = reader.read_stream("a", Seq::new(1)).unwrap();
    let mut c = reader.follow_stream("c", Seq::new(1)).unwrap();
    let mut n = n + 2;
    while feed.earliest_seq() <= Seq::new(2) {
        feed.append(Some("b"), msg(n)).await.unwrap();
        n += 1;
    }
    assert!(feed.earliest_seq() <= x, "a's next event is still retained");

    match followed.next().await {
        Some(Ok(FeedItem::Reset { reason: events::ResetReason::Expired, earliest, .. })) => {
            assert_eq!(earliest, feed.earliest_seq());
        }
        other => panic!("expected an expired reset, not a history without seq 2: {other:?}"),
    }
    assert!(matches!(followed.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == x));
    let expired = read.next().await;
    assert!(
        matches!(&expired, Some(Err(Error::Expired { cursor, earliest })) if *cursor == Seq::new(1) && *earliest == feed.earliest_seq()),
        "{expired:?}"
    );
    assert!(read.next().await.is_none(), "the read ends after its error");
    assert!(matches!(c.next().await, Some(Ok(FeedItem::Event(env))) if env.event == msg(x.get() + 1)));
    feed.close().await.unwrap();
}

/// Damage in acknowledged records of the active segment (a flipped byte
/// in record 2, beside the live writer): a per-stream read delivers the
/// stream's events before it, then `Corrupt` naming seq 2, as a replay
/// does; and a version check fails with the same error rather than pass.
/// The in-memory index of the active segment had stopped at the damage
/// with no word: the read ended cleanly after event 1, event 3 missing,
/// and `Exact(1)` passed although the stream's version was 3 (a lost
/// update).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_active_segment_is_an_error_for_per_stream_reads_and_version_checks() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    for (n, stream) in ["a", "b", "a"].into_iter().enumerate() {
        feed.append(Some(stream), msg(n as u64)).await.unwrap();
    }
    let [segment] = events_testkit::fs::segments(tmp.path()).try_into().unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&segment).unwrap();
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, 64).unwrap();
    // Record 2's first payload byte: the segment's 64-byte header, record
    // 1's frame (a 24-byte header and its payload), record 2's header.
    let at = 64 + 24 + u64::from(u32::from_le_bytes(len)) + 24;
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();

    let check = events::AppendOptions::new().expect(events::Expected::Exact(Seq::new(1)));
    let checked = feed.append_with(Some("a"), msg(9), check).await;
    assert!(matches!(checked, Err(Error::Journal(_))), "a version check on a stream with damage passed: {checked:?}");
    let mut read = feed.read_stream("a", Seq::ZERO).unwrap();
    let first = read.next().await.expect("event 1").expect("event 1 is readable");
    assert_eq!(first.seq, Seq::new(1));
    match read.next().await {
        Some(Err(Error::Journal(events::layers::journal::JournalError::Corrupt { seq, .. }))) => {
            assert_eq!(seq, Some(2));
        }
        other => panic!("expected Corrupt at seq 2 after event 1, got {other:?}"),
    }
    let after = read.next().await;
    assert!(after.is_none(), "the read ends after its error: {after:?}");
    drop(feed);
}

/// The active segment's header damaged (a flipped byte of its creation
/// time) beside the live writer: a per-stream read and a version check
/// fail with the error the journal's own reads give for it, `HeaderCrc`
/// naming the file. The version check, which reads the header itself, had
/// failed with `Corrupt` and the reason "segment header: Crc", a variant a
/// caller matching on `HeaderCrc` would miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_active_segment_header_is_the_journals_header_error() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), 1 << 20, Retention::unlimited()).await;
    feed.append(Some("a"), msg(1)).await.unwrap();
    let [segment] = events_testkit::fs::segments(tmp.path()).try_into().unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&segment).unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 32).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], 32).unwrap();
    let mut read = feed.read_stream("a", Seq::ZERO).unwrap();
    match read.next().await {
        Some(Err(Error::Journal(events::layers::journal::JournalError::HeaderCrc { path }))) => {
            assert_eq!(path, segment);
        }
        other => panic!("expected HeaderCrc naming the segment, got {other:?}"),
    }
    // A version check reads the active segment's header itself.
    let check = events::AppendOptions::new().expect(events::Expected::Exact(Seq::new(1)));
    match feed.append_with(Some("a"), msg(2), check).await {
        Err(Error::Journal(events::layers::journal::JournalError::HeaderCrc { path })) => assert_eq!(path, segment),
        other => panic!("expected HeaderCrc naming the segment, got {other:?}"),
    }
    drop(feed);
}
