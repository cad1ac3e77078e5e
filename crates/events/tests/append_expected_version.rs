//! Conditional appends: a stream's version is the seq of its latest
//! retained event, checked by the writer atomically with seq allocation.
//! Racing appenders on one version: exactly one wins, the others get the
//! current version; versions survive a restart (rebuilt from the per-stream
//! index, sealed segments included) and follow retention; a conflict
//! journals nothing.

use std::sync::Arc;

use events::{AppendOptions, Durability, Error, Event, Expected, Feed, Retention, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Edit {
    Put { by: u32, n: u32 },
    Cursor,
}

impl Event for Edit {
    fn durability(&self) -> Durability {
        match self {
            Edit::Put { .. } => Durability::Durable,
            Edit::Cursor => Durability::Ephemeral,
        }
    }
}

fn put(by: u32, n: u32) -> Edit {
    Edit::Put { by, n }
}

fn expect(e: Expected) -> AppendOptions {
    AppendOptions::new().expect(e)
}

async fn open(dir: &std::path::Path) -> Feed<Edit> {
    Feed::builder(dir).segment_bytes(4096).retention(Retention::unlimited()).open().await.unwrap()
}

#[tokio::test]
async fn expectations_are_checked_and_a_conflict_journals_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path()).await;
    let a = feed.append_with(Some("doc"), put(0, 0), expect(Expected::NoStream)).await.unwrap();
    assert!(!a.duplicate);
    // Other streams do not move this one's version.
    feed.append(Some("other"), put(0, 1)).await.unwrap();
    let again = feed.append_with(Some("doc"), put(0, 2), expect(Expected::NoStream)).await;
    match again {
        Err(Error::VersionConflict { stream, expected: Expected::NoStream, current }) => {
            assert_eq!((stream.as_str(), current), ("doc", Some(a.seq)));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let b = feed.append_with(Some("doc"), put(0, 3), expect(Expected::Exact(a.seq))).await.unwrap();
    let latest = feed.latest_seq();
    let stale = feed.append_with(Some("doc"), put(0, 4), expect(Expected::Exact(a.seq))).await;
    assert!(matches!(stale, Err(Error::VersionConflict { current: Some(c), .. }) if c == b.seq), "{stale:?}");
    assert_eq!(feed.latest_seq(), latest, "a refused append journaled something");
    // `record` moves the version too; the caller's stream wins over none.
    feed.record(Some("doc"), &put(0, 5));
    feed.sync().await.unwrap();
    let stale = feed.append_with(Some("doc"), put(0, 6), expect(Expected::Exact(b.seq))).await;
    assert!(matches!(stale, Err(Error::VersionConflict { current: Some(c), .. }) if c > b.seq), "{stale:?}");
    // Bad input: no stream, an ephemeral event, a bad id.
    let before_bad = feed.latest_seq();
    let none = feed.append_with(None, put(0, 7), expect(Expected::NoStream)).await;
    assert!(matches!(none, Err(Error::MissingStream)), "{none:?}");
    let ephemeral = feed.append_with(Some("doc"), Edit::Cursor, expect(Expected::Any)).await;
    assert!(matches!(ephemeral, Err(Error::Ephemeral)), "{ephemeral:?}");
    let long = feed.append_with(Some("doc"), put(0, 8), AppendOptions::new().id("x".repeat(129))).await;
    assert!(matches!(long, Err(Error::EventIdInvalid { len: 129, limit: 128 })), "{long:?}");
    let empty = feed.append_with(Some("doc"), put(0, 9), AppendOptions::new().id("")).await;
    assert!(matches!(empty, Err(Error::EventIdInvalid { len: 0, .. })), "{empty:?}");
    let stats = feed.stats();
    assert_eq!(stats.conflicts, 3);
    // Nothing refused reached the journal, in any stream or none.
    feed.sync().await.unwrap();
    assert_eq!(feed.latest_seq(), before_bad, "a refused append journaled something");
    let mut seen = Vec::new();
    let mut all = feed.read_stream("doc", Seq::ZERO).unwrap();
    while let Some(env) = all.next().await {
        seen.push(env.unwrap().event.clone());
    }
    assert_eq!(seen, vec![put(0, 0), put(0, 3), put(0, 5)]);
    feed.close().await.unwrap();
}

/// 16 appenders, each appending 12 events to one stream with optimistic
/// concurrency: expect the version last seen, and on a conflict take the
/// current version from the error and try again. Every version is won by
/// exactly one append, and the winners chain: each expected the previous
/// winner's seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_racing_appenders_each_version_is_won_once() {
    const APPENDERS: u32 = 16;
    const EACH: u32 = 12;
    let tmp = tempfile::tempdir().unwrap();
    let feed = Feed::<Edit>::builder(tmp.path()).sync(SyncPolicy::Always).open().await.unwrap();
    let wins = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for by in 0..APPENDERS {
        let (feed, wins) = (feed.clone(), Arc::clone(&wins));
        tasks.push(tokio::spawn(async move {
            let mut seen: Option<Seq> = None;
            let mut conflicts = 0u32;
            for n in 0..EACH {
                loop {
                    match feed.append_with(Some("doc"), put(by, n), expect(Expected::from(seen))).await {
                        Ok(done) => {
                            wins.lock().push((seen, done.seq));
                            seen = Some(done.seq);
                            break;
                        }
                        Err(Error::VersionConflict { current, .. }) => {
                            assert_ne!(current, seen, "a conflict must report a version other than the expected one");
                            conflicts += 1;
                            seen = current;
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    let mut wins = wins.lock().clone();
    wins.sort_by_key(|&(_, seq)| seq);
    assert_eq!(wins.len(), (APPENDERS * EACH) as usize);
    let mut previous = None;
    for &(expected, seq) in &wins {
        assert_eq!(expected, previous, "the append that won seq {seq} expected {expected:?}");
        previous = Some(seq);
    }
    assert!(conflicts > 0, "the appenders never raced");
    assert_eq!(feed.stats().conflicts, u64::from(conflicts));
    feed.close().await.unwrap();
}

#[tokio::test]
async fn versions_survive_a_restart_and_follow_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let mut last = std::collections::HashMap::new();
    {
        let feed = open(tmp.path()).await;
        // Enough events over 4 KiB segments that four streams' versions
        // live in sealed segments (their sidecars: those streams end at
        // half-way) and three in the active one.
        for i in 0..400u32 {
            let stream = if i < 200 { format!("doc-{}", i % 7) } else { format!("doc-{}", 4 + i % 3) };
            let seq = feed.append(Some(&stream), put(i, i)).await.unwrap();
            last.insert(stream, seq);
        }
        feed.close().await.unwrap();
    }
    let newest_first: u64 = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.unwrap().path().file_name()?.to_str()?.strip_suffix(".seg")?.parse().ok())
        .max()
        .unwrap();
    for sealed in ["doc-0", "doc-1", "doc-2", "doc-3"] {
        assert!(last[sealed].get() < newest_first, "{sealed} at {:?} must sit in a sealed segment", last[sealed]);
    }
    assert!(last["doc-4"].get() >= newest_first, "doc-4 in the active segment");
    let feed = open(tmp.path()).await;
    for (stream, &seq) in &last {
        let older = feed.append_with(Some(stream), put(0, 0), expect(Expected::Exact(Seq::new(seq.get() - 1)))).await;
        assert!(
            matches!(older, Err(Error::VersionConflict { current: Some(c), .. }) if c == seq),
            "{stream}: {older:?}"
        );
        let ok = feed.append_with(Some(stream), put(0, 1), expect(Expected::Exact(seq))).await.unwrap();
        assert!(ok.seq > seq);
    }
    let fresh = feed.append_with(Some("never-written"), put(0, 2), expect(Expected::NoStream)).await;
    assert!(fresh.is_ok(), "{fresh:?}");
    feed.close().await.unwrap();

    // A stream whose every event was pruned has no version.
    let feed =
        Feed::<Edit>::builder(tmp.path()).segment_bytes(4096).retention(Retention::segments(2)).open().await.unwrap();
    for i in 0..300u32 {
        feed.append(Some("churn"), put(i, i)).await.unwrap();
    }
    assert!(feed.earliest_seq() > last["doc-0"], "retention did not prune doc-0");
    let gone = feed.append_with(Some("doc-0"), put(0, 3), expect(Expected::NoStream)).await;
    assert!(gone.is_ok(), "a fully pruned stream still had a version: {gone:?}");
    feed.close().await.unwrap();
}

/// After a new stream's first append has read every sealed segment's
/// index (and kept a filter of its stream ids), streams that live only in
/// older sealed segments are still found: the filters skip segments, never
/// a stream's own.
#[tokio::test]
async fn a_new_streams_check_leaves_every_older_stream_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut last = std::collections::HashMap::new();
    {
        let feed = open(tmp.path()).await;
        for i in 0..60u32 {
            let stream = format!("old-{}", i % 12);
            last.insert(stream.clone(), feed.append(Some(&stream), put(i, i)).await.unwrap());
        }
        for i in 0..1_000u32 {
            feed.append(Some("churn"), put(i, i)).await.unwrap();
        }
        feed.close().await.unwrap();
    }
    let feed = open(tmp.path()).await;
    let segments = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()));
    assert!(segments.count() > 8, "the old streams must sit in sealed segments far from the active one");
    for n in 0..3u32 {
        let fresh = feed.append_with(Some(&format!("fresh-{n}")), put(0, n), expect(Expected::NoStream)).await;
        assert!(fresh.is_ok(), "{fresh:?}");
    }
    for (stream, &seq) in &last {
        let again = feed.append_with(Some(stream), put(0, 0), expect(Expected::NoStream)).await;
        assert!(
            matches!(again, Err(Error::VersionConflict { current: Some(c), .. }) if c == seq),
            "{stream} was taken for a new stream: {again:?}"
        );
    }
    let fresh_again = feed.append_with(Some("fresh-0"), put(0, 9), expect(Expected::NoStream)).await;
    assert!(matches!(fresh_again, Err(Error::VersionConflict { .. })), "{fresh_again:?}");
    feed.close().await.unwrap();
}

/// The race exactly: 16 appenders all expect the same version at
/// once, 20 rounds. One wins each round; the 15 others get
/// `VersionConflict` carrying the winner's seq, the stream's version now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_appenders_expecting_one_version_one_wins_the_rest_see_it() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = Feed::<Edit>::builder(tmp.path()).sync(SyncPolicy::Always).open().await.unwrap();
    let mut version = None;
    for round in 0..20u32 {
        let mut tasks = Vec::new();
        for by in 0..16u32 {
            let feed = feed.clone();
            let expected = Expected::from(version);
            tasks.push(tokio::spawn(
                async move { feed.append_with(Some("doc"), put(by, round), expect(expected)).await },
            ));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let winners: Vec<Seq> = outcomes.iter().filter_map(|o| o.as_ref().ok().map(|a| a.seq)).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for outcome in &outcomes {
            match outcome {
                Ok(_) => {}
                Err(Error::VersionConflict { current, .. }) => assert_eq!(*current, Some(winners[0]), "round {round}"),
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        version = Some(winners[0]);
    }
    assert_eq!(feed.latest_seq(), Seq::new(20), "one event journaled per round");
    feed.close().await.unwrap();
}

/// A failed watermark write leaves the readers' files behind the
/// acknowledged seq: the writer's version lookup reads through them, so it
/// brings the watermark up to date first. It had answered from the files:
/// `Exact(2)` refused with `current: Some(1)` and `Exact(1)` accepted, a
/// lost update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_is_read_past_a_watermark_a_failed_write_left_behind() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Edit> = Feed::builder(tmp.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(Some("s"), put(1, 1)).await.unwrap();
    plan.inject_next(Step::Watermark, Fault::Errno(libc::EIO));
    assert_eq!(feed.append(Some("s"), put(1, 2)).await.unwrap(), Seq::new(2));
    assert_eq!(plan.fired(), [(Step::Watermark, Fault::Errno(libc::EIO))]);
    let stale = feed.append_with(Some("s"), put(2, 1), expect(Expected::Exact(Seq::new(1)))).await;
    assert!(
        matches!(&stale, Err(Error::VersionConflict { current: Some(seq), .. }) if *seq == Seq::new(2)),
        "{stale:?}"
    );
    let fresh = feed.append_with(Some("s"), put(2, 2), expect(Expected::Exact(Seq::new(2)))).await.unwrap();
    assert_eq!(fresh.seq, Seq::new(3));
    feed.close().await.unwrap();
}

/// A conditional append refused because the watermark it must bring up
/// to date fails to write again: the refusal's failure is counted at once
/// (`watermark_errors` 2), not at the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_write_failing_for_a_conditional_append_is_counted_at_once() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Edit> = Feed::builder(tmp.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(Some("s"), put(1, 1)).await.unwrap();
    let next = plan.count(Step::Watermark);
    plan.inject(Step::Watermark, next, Fault::Errno(libc::EIO));
    plan.inject(Step::Watermark, next + 1, Fault::Errno(libc::EIO));
    feed.append(Some("s"), put(1, 2)).await.unwrap();
    assert_eq!(feed.stats().watermark_errors, 1);
    let refused = feed.append_with(Some("s"), put(2, 1), expect(Expected::Exact(Seq::new(2)))).await;
    assert!(matches!(refused, Err(Error::Journal(_))), "{refused:?}");
    assert_eq!(feed.stats().watermark_errors, 2, "counted with the refusal");
    feed.close().await.unwrap();
}
