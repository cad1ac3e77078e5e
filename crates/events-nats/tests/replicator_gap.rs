//! A salvaged journal replicates: where a salvage recovery dropped records,
//! the replicator publishes the records before the gap, one gap marker
//! (`Events-Gap`, its own `Nats-Msg-Id`), and the records after it, without
//! resyncing or re-sending; the remote consumer turns the marker into
//! `Reset { Gap }` with the exact missing range and goes on after it; and a
//! replicator restarted on a stream whose last message is a marker resumes
//! after the gap.

mod support;

use std::path::Path;
use std::time::Duration;

use events::layers::journal::{
    Journal, JournalError, JournalOptions, Reader, RecoveryAction, RecoveryMode, Retention, SyncPolicy,
};
use events::{FeedItem, ResetReason, Seq};
use events_nats::headers::{self, Entry, GapMarker};
use events_nats::{RemoteFeed, RemoteStream, Replicator, StreamSpec};
use support::{Ev, Server, damage_frame, expect_events, fill, next_item, segments, stream_messages, within};

/// Opens the journal in `dir` with a salvage recovery mode.
fn salvage(dir: &Path, mode: RecoveryMode) -> (Journal, Option<RecoveryAction>) {
    let opts = JournalOptions::new().sync(SyncPolicy::Never).recovery(mode).retention(Retention::unlimited());
    let (journal, report) = Journal::open(dir, opts).unwrap();
    (journal, report.action)
}

/// Writes seqs `1..=n` into one segment and closes the journal.
fn one_segment(dir: &Path, n: u64) {
    let mut journal = support::journal(dir);
    fill(&mut journal, 1, n);
    journal.close().unwrap();
    assert_eq!(segments(dir).len(), 1);
}

/// Asserts that the journal itself reports exactly `first..found` missing
/// after `first - 1`, then the records from `found` or nothing (the
/// precondition the replicator builds on).
fn assert_journal_gap(dir: &Path, first: u64, found: u64) {
    let reader = Reader::open(dir).unwrap();
    let mut records = reader.read_since(first - 1).unwrap();
    let item = records.next().expect("the gap is reported");
    assert!(
        matches!(&item, Err(JournalError::Gap { expected, found: f, .. }) if *expected == first && *f == found),
        "{item:?}"
    );
    // The record after the gap, when the journal holds one.
    match records.next() {
        Some(record) => assert_eq!(record.unwrap().seq(), found),
        None => assert!(found > reader.last_seq().unwrap(), "record {found} is missing after the gap"),
    }
}

async fn expect_gap(items: &mut RemoteStream<Ev>, first: u64, last: u64, earliest: u64, latest: u64) {
    let item = next_item(items).await;
    let expected = ResetReason::Gap { first_missing: Seq::new(first), last_missing: Seq::new(last) };
    assert!(
        matches!(&item, FeedItem::Reset { reason, earliest: e, latest: l }
            if *reason == expected && *e == Seq::new(earliest) && *l == Seq::new(latest)),
        "expected a gap reset {first}..={last} (earliest {earliest}, latest {latest}), got {item:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_corrupt_gap_is_replicated_as_a_marker_and_read_back_as_a_reset() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    one_segment(dir.path(), 300);
    damage_frame(&segments(dir.path())[0], 1, 150);
    let (mut journal, action) = salvage(dir.path(), RecoveryMode::SkipCorrupt);
    assert!(matches!(action, Some(RecoveryAction::Salvaged { .. })), "{action:?}");
    fill(&mut journal, 301, 320); // the salvaged journal goes on
    assert_journal_gap(dir.path(), 150, 151);
    let epoch = journal.epoch();

    let spec = StreamSpec::new("GAP", "feed.gap");
    let replicator = Replicator::builder(dir.path(), js.clone(), spec.clone())
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("everything after the gap", replicator.wait_for(320)).await.unwrap();

    // The stream: 1..=149, the marker, 151..=320, each once, in order.
    let messages = stream_messages(&js, "GAP").await;
    assert_eq!(messages.len(), 320);
    for msg in &messages {
        let entry = Entry::parse(Some(&msg.headers), "GAP", msg.stream_seq).unwrap();
        if msg.stream_seq == 150 {
            assert_eq!(entry, Entry::Gap(GapMarker { epoch, first_missing: 150, last_missing: 150 }));
            assert_eq!(msg.header(headers::GAP), Some("150-150"));
            assert_eq!(msg.header("Nats-Msg-Id"), Some(headers::gap_msg_id(epoch, 150).as_str()));
            assert_eq!(msg.header(headers::SEQ), None);
            assert!(msg.payload.is_empty());
        } else {
            let seq = msg.stream_seq; // a one-seq gap keeps stream seq = journal seq
            assert!(matches!(&entry, Entry::Record(c) if c.seq == seq), "stream seq {}: {entry:?}", msg.stream_seq);
            assert_eq!(msg.payload.as_ref(), support::payload(seq).as_slice(), "payload of seq {seq}");
        }
    }

    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(Seq::ZERO).await.unwrap();
    expect_events(&mut items, 1..=149).await;
    expect_gap(&mut items, 150, 150, 1, 320).await;
    expect_events(&mut items, 151..=320).await;
    // From just before the gap, and from inside it (nothing left to report).
    let mut items = remote.stream_from(Seq::new(149)).await.unwrap();
    expect_gap(&mut items, 150, 150, 1, 320).await;
    expect_events(&mut items, 151..=155).await;
    let mut items = remote.stream_from(Seq::new(150)).await.unwrap();
    expect_events(&mut items, 151..=155).await;

    // An observation window, not a synchronisation: a replicator that
    // fails on the gap re-pumps it over and over in this time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = replicator.stats();
    assert!(stats.resyncs <= 2, "{stats:?}");
    assert_eq!((stats.replicated, stats.lag_seqs, stats.gaps, stats.stalls), (320, 0, 1, 0), "{stats:?}");
    assert_eq!(stats.published, 320, "nothing re-sent: {stats:?}");
    replicator.shutdown().await;
    journal.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_last_in_the_stream_resumes_after_the_gap() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    one_segment(dir.path(), 300);
    damage_frame(&segments(dir.path())[0], 1, 200);
    // Drops 200 and every valid frame after it; writing goes on at 301.
    let (mut journal, action) = salvage(dir.path(), RecoveryMode::TruncateAtCorruption);
    assert!(matches!(action, Some(RecoveryAction::Salvaged { .. })), "{action:?}");
    assert_eq!(journal.next_seq(), 301);
    assert_journal_gap(dir.path(), 200, 301);

    let spec = StreamSpec::new("GAPLAST", "feed.gaplast");
    let first = Replicator::builder(dir.path(), js.clone(), spec.clone()).start().await.unwrap();
    within("through the gap", first.wait_for(300)).await.unwrap();
    first.shutdown().await;
    let messages = stream_messages(&js, "GAPLAST").await;
    assert_eq!(messages.len(), 200);
    let last = Entry::parse(Some(&messages[199].headers), "GAPLAST", 200).unwrap();
    assert!(matches!(last, Entry::Gap(GapMarker { first_missing: 200, last_missing: 300, .. })), "{last:?}");

    let second = Replicator::builder(dir.path(), js.clone(), spec.clone())
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    assert_eq!(second.stats().replicated, 300, "resumes after the marker's last missing seq");
    fill(&mut journal, 301, 310);
    within("after the restart", second.wait_for(310)).await.unwrap();
    let stats = second.stats();
    assert_eq!((stats.published, stats.gaps, stats.errors), (10, 0, 0), "nothing re-sent: {stats:?}");
    let messages = stream_messages(&js, "GAPLAST").await;
    let seqs: Vec<u64> = messages[200..]
        .iter()
        .map(|m| match Entry::parse(Some(&m.headers), "GAPLAST", m.stream_seq).unwrap() {
            Entry::Record(c) => c.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, (301..=310).collect::<Vec<_>>());

    // Cursors before, inside, and at the end of the gap.
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(Seq::new(199)).await.unwrap();
    expect_gap(&mut items, 200, 300, 1, 310).await;
    expect_events(&mut items, 301..=310).await;
    let mut items = remote.stream_from(Seq::new(250)).await.unwrap();
    expect_gap(&mut items, 251, 300, 1, 310).await;
    expect_events(&mut items, 301..=302).await;
    let mut items = remote.stream_from(Seq::new(300)).await.unwrap();
    expect_events(&mut items, 301..=310).await;
    second.shutdown().await;
    journal.close().unwrap();
}
