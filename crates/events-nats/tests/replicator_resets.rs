//! What the replicator does with each reset its journal follower reports
//! (the salvage `Gap` is in `replicator_gap.rs`):
//!
//! * `Epoch`: the directory is recreated under a running replicator; it
//!   stops with `EpochMismatch` and the stream keeps only the old journal.
//! * `Ahead`: the directory is rolled back to an older copy (same epoch,
//!   fewer records); it stops with `JournalReset` instead of publishing the
//!   restored journal's next records under seqs the stream already holds.
//!   (Seen only while the restored journal is behind the stream: one that
//!   already grew past it has the same epoch and contiguous seqs, which no
//!   reader can tell from the original.)
//! * `Ahead` with an empty stream and `start_after` past the journal's end:
//!   not a rollback; it waits for the journal to get there.
//! * `Expired`: retention pruned records before they were replicated; they
//!   are counted in `skipped` and named in `last_error`, and replication
//!   goes on with the earliest retained record. Records a replicator of
//!   this journal acknowledged (its checkpoint says so) are not, when the
//!   stream holds none of the journal's messages; they are when the stream
//!   holds some but ends before them, and so are those a checkpoint of
//!   another journal names.
//!
//! Not a journal reset, but checked here too: the stream deleted and made
//! again under the same name while the replicator runs, with a shorter
//! dedup window than asked: it stops with `StreamMismatch` rather than
//! replicate into it. And a restart into its stream whose last messages
//! were deleted, which a 2.9 server answers with no last message of the
//! subject.
//!
//! Neighbours: `tests/support` (server, journal filler); the rules are in
//! `src/replicator.rs`'s module docs. Directories are swapped by rename, so
//! the replicator sees the old journal or the complete new one.

mod support;

use std::path::Path;
use std::time::Duration;

use events::layers::journal::{Journal, JournalOptions, Reader, Reset, Retention, SyncPolicy, list_consumers};
use events_nats::headers::Coordinates;
use events_nats::{NatsError, Replicator, StreamSpec, replicator_consumer_name};
use support::{Server, fill, journal, seqs_of_epoch, stopped, stream_messages, verify_stream, within};

/// Copies the files of journal directory `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    events_testkit::fs::copy_files(from, to);
}

/// Replaces directory `dir` with `with` (a rename: readers see one or the other).
fn replace_dir(dir: &Path, with: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::rename(with, dir).unwrap();
}

/// Returns once stream `name` exists and holds `n` messages (polling the
/// server every 10 ms; bound it with `within`).
async fn holds(js: &async_nats::jetstream::Context, name: &str, n: u64) {
    while js.get_stream(name).await.ok().map(|s| s.cached_info().state.messages) != Some(n) {
        tokio::time::sleep(Duration::from_millis(10)).await; // polling the server
    }
}

/// A journal in `dir` holding records `1..=n`, and a replicator into a
/// stream `name` (subject `subject`) that has replicated them.
async fn replicating(
    js: &async_nats::jetstream::Context,
    dir: &Path,
    name: &str,
    subject: &str,
    n: u64,
) -> (Journal, Replicator) {
    replicated(js, &StreamSpec::new(name, subject), dir, n).await
}

/// A new journal in `dir` holding records `1..=n`, and `spec`'s replicator
/// of it, which has replicated them.
async fn replicated(
    js: &async_nats::jetstream::Context,
    spec: &StreamSpec,
    dir: &Path,
    n: u64,
) -> (Journal, Replicator) {
    let mut j = journal(dir);
    fill(&mut j, 1, n);
    let replicator = Replicator::builder(dir, js.clone(), spec.clone())
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("the first records", replicator.wait_for(n)).await.unwrap();
    (j, replicator)
}

/// The server loses its last writes to stream `name` (killed, its message
/// block cut to `keep_percent`%, as a power loss before it synced them
/// leaves it); a context on the restarted server, and the stream's last
/// sequence now.
async fn lose_last_writes(
    server: &mut Server,
    js: async_nats::jetstream::Context,
    name: &str,
    keep_percent: u64,
) -> (async_nats::jetstream::Context, u64) {
    drop(js);
    server.kill();
    support::lose_last_writes(server.store(), name, keep_percent);
    server.restart();
    let js = server.jetstream().await;
    let left = js.get_stream(name).await.unwrap().cached_info().state.last_sequence;
    (js, left)
}

/// The `(epoch, seq)` of every message of stream `name`, in stream order.
async fn coordinates(js: &async_nats::jetstream::Context, name: &str) -> Vec<(u64, u64)> {
    stream_messages(js, name)
        .await
        .iter()
        .map(|m| {
            let at = Coordinates::parse(Some(&m.headers), name, m.stream_seq).unwrap();
            (at.epoch, at.seq)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_directory_stops_the_replicator() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let mut old = journal(&dir);
    fill(&mut old, 1, 10);
    let old_epoch = old.epoch();
    let replicator = Replicator::builder(&dir, js.clone(), StreamSpec::new("RECREATED", "feed.recreated"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("the old journal", replicator.wait_for(10)).await.unwrap();
    old.close().unwrap();

    // A new journal, longer than the old one, where the old one was.
    let staging = tmp.path().join("staging");
    let mut new = journal(&staging);
    fill(&mut new, 1, 30);
    let new_epoch = new.epoch();
    assert_ne!(new_epoch, old_epoch);
    new.close().unwrap();
    replace_dir(&dir, &staging);

    let stats = stopped(&replicator).await;
    let last_error = stats.last_error.clone().unwrap();
    assert!(
        last_error.contains(&old_epoch.to_string()) && last_error.contains(&new_epoch.to_string()),
        "the error names both epochs: {last_error}"
    );
    assert_eq!((stats.replicated, stats.published), (10, 10), "{stats:?}");
    // The fatal error as it is, for code to act on: it had been a
    // `JetStream` error holding its text.
    let waited = replicator.wait_for(11).await;
    assert!(
        matches!(waited, Err(NatsError::EpochMismatch { stream_epoch, journal_epoch, .. })
            if stream_epoch == old_epoch && journal_epoch == new_epoch),
        "{waited:?}"
    );
    let expected: Vec<(u64, u64)> = (1..=10).map(|seq| (old_epoch, seq)).collect();
    assert_eq!(coordinates(&js, "RECREATED").await, expected, "nothing of the new journal");

    // A new replicator refuses the stream the same way.
    let again = Replicator::builder(&dir, js.clone(), StreamSpec::new("RECREATED", "feed.recreated")).start().await;
    assert!(matches!(again, Err(NatsError::EpochMismatch { stream_epoch, journal_epoch, .. })
        if stream_epoch == old_epoch && journal_epoch == new_epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_journal_stops_the_replicator() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let backup = tmp.path().join("backup");
    let mut j = journal(&dir);
    fill(&mut j, 1, 10);
    j.close().unwrap();
    copy_dir(&dir, &backup); // the journal at seq 10
    let mut j = journal(&dir);
    fill(&mut j, 11, 20);
    let epoch = j.epoch();

    let replicator = Replicator::builder(&dir, js.clone(), StreamSpec::new("ROLLBACK", "feed.rollback"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("20", replicator.wait_for(20)).await.unwrap();
    j.close().unwrap();
    replace_dir(&dir, &backup);

    let stats = stopped(&replicator).await;
    let last_error = stats.last_error.clone().unwrap();
    assert!(last_error.contains("ends at seq 10") && last_error.contains("after seq 20"), "{last_error}");
    assert_eq!((stats.replicated, stats.published), (20, 20), "{stats:?}");
    let waited = replicator.wait_for(21).await;
    assert!(
        matches!(waited, Err(NatsError::JournalReset { after: 20, reset: Reset::Ahead { latest: 10, .. }, .. })),
        "{waited:?}"
    );
    // The restored journal goes on: its seqs 11.. are not the stream's
    // 11..=20, and none of them is published.
    let mut restored = journal(&dir);
    assert_eq!(restored.epoch(), epoch);
    fill(&mut restored, 11, 25);
    let expected: Vec<(u64, u64)> = (1..=20).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "ROLLBACK").await, expected, "nothing re-sent or added");
    assert_eq!(replicator.stats().published, 20);
    restored.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_after_past_the_end_waits_for_the_journal() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    fill(&mut j, 1, 10);
    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("LATER", "feed.later"))
        .poll_interval(Duration::from_millis(5))
        .start_after(15)
        .start()
        .await
        .unwrap();
    // An observation window, not a synchronisation: twenty polls that each
    // find the journal behind `start_after`, none of them fatal.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = replicator.stats();
    assert_eq!((stats.published, stats.errors, stats.stopped), (0, 0, false), "{stats:?}");
    fill(&mut j, 11, 20);
    within("16..=20", replicator.wait_for(20)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.published, stats.errors, stats.stopped), (5, 0, false), "{stats:?}");
    let epoch = j.epoch();
    let expected: Vec<(u64, u64)> = (16..=20).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "LATER").await, expected);
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A replicator waiting for its journal to reach `start_after`, whose
/// directory is recreated meanwhile with another journal, still short of
/// `start_after`: it stops with `EpochMismatch`, as when it replicates.
/// While waiting it no longer makes a follower each poll, which is where
/// the epoch was checked: it had waited on in silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_recreated_while_waiting_for_start_after_stops_the_replicator() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let mut old = journal(&dir);
    fill(&mut old, 1, 10);
    let replicator = Replicator::builder(&dir, js.clone(), StreamSpec::new("WAITED", "feed.waited"))
        .poll_interval(Duration::from_millis(5))
        .start_after(1000)
        .start()
        .await
        .unwrap();
    within("the replicator waits", async {
        while !replicator.stats().waiting_for_start_after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(!replicator.stats().stopped);
    old.close().unwrap();
    let staging = tmp.path().join("staging");
    let mut new = journal(&staging);
    fill(&mut new, 1, 5);
    new.close().unwrap();
    replace_dir(&dir, &staging);
    let waited = within("the replicator stops", replicator.wait_for(1001)).await;
    assert!(matches!(waited, Err(NatsError::EpochMismatch { .. })), "{waited:?}");
    assert!(!replicator.stats().waiting_for_start_after, "a stopped replicator waits for nothing");
}

/// A journal in `dir` whose retention keeps two segments, holding 1..=50
/// in its first.
fn fifty_kept_two_segments_at_a_time(dir: &Path) -> Journal {
    let opts = JournalOptions::new().sync(SyncPolicy::Never).retention(Retention::segments(2));
    let (mut j, _) = Journal::open(dir, opts).unwrap();
    fill(&mut j, 1, 50);
    j
}

/// Runs retention on `j` (in `dir`) until the journal starts at `first`:
/// once each replicator's checkpoint lets go of what it pinned (polling the
/// files every 10 ms; bound it with `within`).
async fn prune_until_first(j: &mut Journal, dir: &Path, first: u64) {
    while Reader::open(dir).unwrap().first_seq().unwrap() != first {
        j.prune().unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await; // polling the files
    }
}

/// After records 1..=50 in the journal's first segment: 51..=150 in two
/// more, and retention (two segments kept) prunes 1..=50.
fn roll_twice_and_prune(j: &mut Journal, dir: &Path) {
    j.roll().unwrap();
    fill(j, 51, 100);
    j.roll().unwrap();
    fill(j, 101, 150);
    j.prune().unwrap();
    assert_eq!(Reader::open(dir).unwrap().first_seq().unwrap(), 51, "retention pruned 1..=50");
}

/// A replicator restarted into its stream emptied by a purge (or its
/// limits), with retention having pruned what it had replicated before:
/// those seqs are not reported as pruned before replication (its
/// checkpoint says it acknowledged them), and the rest is replicated. They
/// had been counted in `skipped`, with an error saying they were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_replicated_before_a_restart_into_an_emptied_stream_are_not_reported_lost() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = fifty_kept_two_segments_at_a_time(dir.path());
    let start = || {
        Replicator::builder(dir.path(), js.clone(), StreamSpec::new("EMPTIED", "feed.emptied"))
            .poll_interval(Duration::from_millis(5))
            .start()
    };
    let replicator = start().await.unwrap();
    within("50", replicator.wait_for(50)).await.unwrap();
    replicator.shutdown().await;
    roll_twice_and_prune(&mut j, dir.path());
    js.get_stream("EMPTIED").await.unwrap().purge().await.unwrap();

    let replicator = start().await.unwrap();
    within("150", replicator.wait_for(150)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.errors, &stats.last_error), (0, 0, &None), "{stats:?}");
    assert_eq!(stats.published, 100, "{stats:?}");
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A replicator restarted into its stream emptied (a purge, its limits)
/// sends again from `start_after` (0 here), below the journal's earliest
/// seq (51): its checkpoint goes back no further than that less one, so it
/// still pins what it has not replicated. It had been written as 0, which
/// retention takes for an expired checkpoint: with the stream refusing
/// every record (its `max_message_size` cut to 1 byte after the first run),
/// the next roll removed 51..=100, never replicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_into_an_emptied_stream_keeps_pinning_what_it_has_not_replicated() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = fifty_kept_two_segments_at_a_time(dir.path());
    let start = || {
        Replicator::builder(dir.path(), js.clone(), StreamSpec::new("HELD", "feed.held"))
            .poll_interval(Duration::from_millis(5))
            .start()
    };
    let replicator = start().await.unwrap();
    within("50", replicator.wait_for(50)).await.unwrap();
    assert_eq!(replicator.shutdown().await.checkpoint, Some(50));
    roll_twice_and_prune(&mut j, dir.path());
    let stream = js.get_stream("HELD").await.unwrap();
    let mut config = stream.cached_info().config.clone();
    config.max_message_size = 1;
    js.update_stream(config).await.unwrap();
    js.get_stream("HELD").await.unwrap().purge().await.unwrap();

    let replicator = start().await.unwrap();
    assert_eq!(replicator.stats().checkpoint, Some(50), "back to the journal's earliest seq less one, no further");
    let stats = within("the stream refuses 51", stopped(&replicator)).await;
    assert_eq!((stats.checkpoint, stats.pinned), (Some(50), true), "{stats:?}");
    j.roll().unwrap();
    fill(&mut j, 151, 200);
    j.prune().unwrap();
    assert_eq!(Reader::open(dir.path()).unwrap().first_seq().unwrap(), 51, "51..=150 are kept for the replicator");
    replicator.shutdown().await;
    j.close().unwrap();
}

/// The same while the replicator runs: its stream deleted (`nats stream
/// rm`, or a server back without its store) after it replicated 1..=150
/// and retention pruned 1..=50. The resync makes the stream again and fills
/// it with what the journal still holds, 51..=160, and 1..=50 are not
/// reported as pruned before replication: this replicator acknowledged
/// them. They had been counted in `skipped`, with an error saying they
/// were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_replicated_before_the_stream_was_deleted_under_the_replicator_are_not_reported_lost() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = fifty_kept_two_segments_at_a_time(dir.path());
    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("REMADE", "feed.remade"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    j.roll().unwrap();
    fill(&mut j, 51, 100);
    j.roll().unwrap();
    fill(&mut j, 101, 150);
    within("150", replicator.wait_for(150)).await.unwrap();
    // Once the replicator's checkpoint lets it go (it pins what it has
    // not replicated), retention prunes 1..=50.
    within("retention pruned 1..=50", prune_until_first(&mut j, dir.path(), 51)).await;
    js.delete_stream("REMADE").await.unwrap();
    fill(&mut j, 151, 160);
    within("the stream made again and filled", holds(&js, "REMADE", 110)).await;
    within("160", replicator.wait_for(160)).await.unwrap();
    let stats = replicator.stats();
    // The error is the publish that found the stream gone, not a loss.
    assert_eq!(stats.skipped, 0, "{stats:?}");
    assert!(stats.last_error.as_ref().is_none_or(|e| !e.contains("pruned")), "{stats:?}");
    let epoch = j.epoch();
    let expected: Vec<(u64, u64)> = (51..=160).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "REMADE").await, expected);
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A remote reader following the stream live while it is deleted and made
/// again under the replicator, retention having pruned 1..=50 (the new
/// stream holds 51..=160 at stream sequences 1..=110, not where the old
/// one held them): the reader goes on after the last event it got, 150,
/// with 151..=160 and no duplicate, nothing between skipped. It had waited
/// at stream sequence 151 of the new stream (the client's ordered consumer
/// recreated after the last message it got), so until the journal reached
/// 201, then reported 151..=200 as expired. The same for `RemoteFeeds` on
/// a shared stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_reader_goes_on_across_its_stream_made_again() {
    let server = Server::start();
    let js = server.jetstream().await;
    let (one, all) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut j = fifty_kept_two_segments_at_a_time(one.path());
    let mut k = fifty_kept_two_segments_at_a_time(all.path());
    let spec = StreamSpec::new("FOLLOWED", "feed.followed");
    let shared = StreamSpec::shared("FOLLOWED_ALL", "app").feed("a");
    let start = |dir: &Path, spec: &StreamSpec| {
        Replicator::builder(dir, js.clone(), spec.clone()).poll_interval(Duration::from_millis(5)).start()
    };
    let (replicate_one, replicate_all) =
        (start(one.path(), &spec).await.unwrap(), start(all.path(), &shared).await.unwrap());
    within("50", replicate_one.wait_for(50)).await.unwrap();
    within("50", replicate_all.wait_for(50)).await.unwrap();
    let remote: events_nats::RemoteFeed<support::Ev> = events_nats::RemoteFeed::new(js.clone(), spec);
    let mut items = remote.stream_from(events::Seq::ZERO).await.unwrap();
    let feeds: events_nats::RemoteFeeds<support::Ev> =
        events_nats::RemoteFeeds::new(js.clone(), StreamSpec::shared("FOLLOWED_ALL", "app"));
    let mut feed_items = feeds.stream_from(&events_nats::FeedCursors::default()).await.unwrap();
    support::expect_events(&mut items, 1..=50).await;
    expect_feed_events(&mut feed_items, 1..=50).await;
    for (journal, dir) in [(&mut j, one.path()), (&mut k, all.path())] {
        journal.roll().unwrap();
        fill(journal, 51, 100);
        journal.roll().unwrap();
        fill(journal, 101, 150);
        within("retention pruned 1..=50", prune_until_first(journal, dir, 51)).await;
    }
    support::expect_events(&mut items, 51..=150).await;
    expect_feed_events(&mut feed_items, 51..=150).await;
    js.delete_stream("FOLLOWED").await.unwrap();
    js.delete_stream("FOLLOWED_ALL").await.unwrap();
    fill(&mut j, 151, 160);
    fill(&mut k, 151, 160);
    within("the stream made again and filled", holds(&js, "FOLLOWED", 110)).await;
    within("the shared stream made again and filled", holds(&js, "FOLLOWED_ALL", 110)).await;
    support::expect_events(&mut items, 151..=160).await;
    expect_feed_events(&mut feed_items, 151..=160).await;
    replicate_one.shutdown().await;
    replicate_all.shutdown().await;
    j.close().unwrap();
    k.close().unwrap();
}

/// Stream `name` deleted, then made again by `spec`'s replicator of a new
/// journal in `dir` (another epoch) holding records `1..=300`.
async fn made_again_by(
    js: &async_nats::jetstream::Context,
    spec: &StreamSpec,
    name: &str,
    dir: &Path,
) -> (Journal, Replicator) {
    js.delete_stream(name).await.unwrap();
    replicated(js, spec, dir, 300).await
}

/// A remote reader caught up at 150 of journal A, whose stream is deleted
/// and made again by the replicator of a new journal B (another epoch),
/// which fills it past 150 before the reader's consumer comes back: the
/// reader gets `Reset { EpochMismatch }`, then B's events from 1. It had
/// gone on at its old place in the stream: B's 1..=150 skipped behind the
/// reset (found by audit; only an `Expired` jump made it look for a
/// stream made again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_reader_reads_a_new_journal_from_its_start_when_its_stream_is_made_again_ahead_of_it() {
    let server = Server::start();
    let js = server.jetstream().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = StreamSpec::new("REMADE", "feed.remade");
    let (a, replicate_a) = replicated(&js, &spec, a_dir.path(), 150).await;
    let remote: events_nats::RemoteFeed<support::Ev> = events_nats::RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(events::Seq::ZERO).await.unwrap();
    support::expect_events(&mut items, 1..=150).await;
    replicate_a.shutdown().await;
    let (b, replicate_b) = made_again_by(&js, &spec, "REMADE", b_dir.path()).await;
    match support::next_item(&mut items).await {
        events::FeedItem::Reset { reason: events::ResetReason::EpochMismatch { .. }, .. } => {}
        other => panic!("expected the new journal's reset, got {other:?}"),
    }
    support::expect_events(&mut items, 1..=300).await;
    replicate_b.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

/// The same for a `RemoteFeeds` reader of a shared stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_feeds_reader_reads_a_new_journal_from_its_start_when_its_stream_is_made_again_ahead_of_it() {
    use futures::StreamExt;
    let server = Server::start();
    let js = server.jetstream().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = StreamSpec::shared("REMADE_ALL", "app").feed("a");
    let (a, replicate_a) = replicated(&js, &spec, a_dir.path(), 150).await;
    let feeds: events_nats::RemoteFeeds<support::Ev> =
        events_nats::RemoteFeeds::new(js.clone(), StreamSpec::shared("REMADE_ALL", "app"));
    let mut items = feeds.stream_from(&events_nats::FeedCursors::default()).await.unwrap();
    expect_feed_events(&mut items, 1..=150).await;
    replicate_a.shutdown().await;
    let (b, replicate_b) = made_again_by(&js, &spec, "REMADE_ALL", b_dir.path()).await;
    let next = within("the reset", items.next()).await.expect("the stream does not end").unwrap();
    match next.item {
        events::FeedItem::Reset { reason: events::ResetReason::EpochMismatch { .. }, .. } if &*next.feed == "a" => {}
        other => panic!("expected the new journal's reset, got {other:?}"),
    }
    expect_feed_events(&mut items, 1..=300).await;
    replicate_b.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

/// Asserts the next items of a `RemoteFeeds` reader are feed `a`'s events `seqs`.
async fn expect_feed_events(
    items: &mut events_nats::RemoteFeedsStream<support::Ev>,
    seqs: std::ops::RangeInclusive<u64>,
) {
    expect_events_of(items, "a", seqs).await;
}

/// Asserts the next items of a `RemoteFeeds` reader are feed `feed`'s events `seqs`.
async fn expect_events_of(
    items: &mut events_nats::RemoteFeedsStream<support::Ev>,
    feed: &str,
    seqs: std::ops::RangeInclusive<u64>,
) {
    use futures::StreamExt;
    for seq in seqs {
        let next = within("next feed item", items.next()).await.expect("the stream does not end").unwrap();
        match next.item {
            events::FeedItem::Event(env) if &*next.feed == feed => assert_eq!(env.seq, events::Seq::new(seq)),
            other => panic!("unexpected {other:?} of feed {} before {feed}'s seq {seq}", next.feed),
        }
    }
}

/// A `RemoteFeeds` reader caught up in feeds `a` (at 30) and `b` (at 20),
/// whose shared stream is deleted and made again while `b` is filled only
/// up to 10 (its first ten messages published again as its replicator did,
/// which is then away, as on a machine that is down): it goes on with `a`'s
/// next events, and with `b`'s after 20 once `b`'s replicator is back and
/// has filled the stream on, no duplicate and no reset in either. It had
/// waited for every feed to be filled up to where it stood in it: `a`'s
/// new events held for as long as `b`'s replicator was away (found by
/// audit; a feed with no message in the new stream did not hold it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_feeds_reader_goes_on_in_a_stream_made_again_while_one_feed_is_not_filled() {
    let server = Server::start();
    let js = server.jetstream().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = StreamSpec::shared("AWAY_ALL", "app");
    let (mut a, replicate_a) = replicated(&js, &shared.clone().feed("a"), a_dir.path(), 30).await;
    let (mut b, replicate_b) = replicated(&js, &shared.clone().feed("b"), b_dir.path(), 20).await;
    let feeds: events_nats::RemoteFeeds<support::Ev> = events_nats::RemoteFeeds::new(js.clone(), shared.clone());
    let mut items = feeds.stream_from(&events_nats::FeedCursors::default()).await.unwrap();
    expect_events_of(&mut items, "a", 1..=30).await;
    expect_events_of(&mut items, "b", 1..=20).await;
    replicate_b.shutdown().await;
    let b_first_ten: Vec<_> = stream_messages(&js, "AWAY_ALL").await.into_iter().skip(30).take(10).collect();
    js.delete_stream("AWAY_ALL").await.unwrap();
    // `a`'s replicator makes the stream again when it next publishes.
    fill(&mut a, 31, 31);
    within("the stream made again and filled with a", holds(&js, "AWAY_ALL", 31)).await;
    for message in b_first_ten {
        // As `b`'s replicator published them, less the guard (the new
        // stream's sequences are not the old one's).
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in message.headers.iter().filter(|(name, _)| !name.to_string().starts_with("Nats-Expected"))
        {
            for value in values {
                headers.append(name.clone(), value.clone());
            }
        }
        js.publish_with_headers("app.b", headers, message.payload).await.unwrap().await.unwrap();
    }
    // The reader looks whether its stream was made again at a jump in
    // seqs (its consumer, recreated by the client, reads on somewhere in
    // the new stream) or when nothing came for a while: either comes after
    // `b`'s ten, so it finds `b` filled up to 10 of its 20.
    fill(&mut a, 32, 40);
    expect_events_of(&mut items, "a", 31..=40).await;
    fill(&mut b, 21, 25);
    let replicate_b = Replicator::builder(b_dir.path(), js.clone(), shared.clone().feed("b"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    expect_events_of(&mut items, "b", 21..=25).await;
    fill(&mut a, 41, 42);
    expect_events_of(&mut items, "a", 41..=42).await;
    replicate_a.shutdown().await;
    replicate_b.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_pruned_before_replication_are_counted_and_reported() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = fifty_kept_two_segments_at_a_time(dir.path());
    roll_twice_and_prune(&mut j, dir.path());
    let earliest = 51;

    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("PRUNED", "feed.pruned"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("150", replicator.wait_for(150)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.errors, stats.stopped), (earliest - 1, 1, false), "{stats:?}");
    let last_error = stats.last_error.clone().unwrap();
    assert!(last_error.contains(&format!("seqs 1..={} were pruned", earliest - 1)), "{last_error}");
    assert_eq!(stats.published, 151 - earliest, "{stats:?}");
    let epoch = j.epoch();
    let expected: Vec<(u64, u64)> = (earliest..=150).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "PRUNED").await, expected);
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A replicator restarted into its stream that holds some of the
/// journal's messages, but fewer than a replicator acknowledged: its
/// checkpoint says 50, the stream ends at 30 (31..=50 deleted and the
/// server restarted, as a server that lost its last writes comes back),
/// and retention pruned 1..=50. The checkpoint gives no pass there:
/// 31..=50, lost from the stream and from the journal, are counted in
/// `skipped` and named in `last_error`, and replication goes on with 51.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_acknowledged_then_lost_by_a_stream_that_holds_some_are_counted_and_reported() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut j = fifty_kept_two_segments_at_a_time(dir.path());
    let start = |js: &async_nats::jetstream::Context| {
        Replicator::builder(dir.path(), js.clone(), StreamSpec::new("SHORTENED", "feed.shortened"))
            .poll_interval(Duration::from_millis(5))
            .start()
    };
    let js = server.jetstream().await;
    let replicator = start(&js).await.unwrap();
    within("50", replicator.wait_for(50)).await.unwrap();
    replicator.shutdown().await;
    let consumers = list_consumers(dir.path()).unwrap();
    let name = replicator_consumer_name("feed.shortened");
    let checkpoint = consumers.iter().find(|c| c.name == name).map(|c| c.checkpoint.clone());
    assert!(
        matches!(&checkpoint, Some(Ok(c)) if (c.seq, c.epoch) == (50, j.epoch())),
        "the checkpoint says 50 were acknowledged: {checkpoint:?}"
    );
    roll_twice_and_prune(&mut j, dir.path());
    support::delete_messages(&js, "SHORTENED", 31..=50).await;
    // nats-server 2.9 finds no last message of the subject after its last
    // ones were deleted, until it restarts; a restart is also how a server
    // that lost its last writes comes back.
    drop(js);
    server.restart();
    let js = server.jetstream().await;

    let replicator = start(&js).await.unwrap();
    within("150", replicator.wait_for(150)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.errors, stats.stopped), (20, 1, false), "{stats:?}");
    let last_error = stats.last_error.clone().unwrap();
    assert!(last_error.contains("seqs 31..=50 were pruned"), "{last_error}");
    assert_eq!(stats.published, 100, "{stats:?}");
    let epoch = j.epoch();
    let expected: Vec<(u64, u64)> = (1..=30).chain(51..=150).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "SHORTENED").await, expected);
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A replicator restarted into its own stream whose last messages were
/// deleted (31..=50, by hand) while the server ran on: nats-server 2.9
/// then answers "no message found" for the subject's last message, though
/// the stream holds 1..=30. The replicator finds the last message by its
/// stream sequence and goes on from it, as after a server that lost its
/// last writes: 31..=50 are sent again, and the server's dedup window,
/// which still holds their ids, keeps them out. Its start had failed with
/// the server's "no message found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_into_its_stream_whose_last_messages_were_deleted_goes_on() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut j, replicator) = replicating(&js, dir.path(), "TAIL_DELETED", "feed.tail_deleted", 50).await;
    replicator.shutdown().await;
    support::delete_messages(&js, "TAIL_DELETED", 31..=50).await;

    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("TAIL_DELETED", "feed.tail_deleted"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    fill(&mut j, 51, 60);
    within("60", replicator.wait_for(60)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.stopped), (0, false), "{stats:?}");
    // The duplicates throw the expected last sequence of the publishes
    // after them off: one refusal, one resync after it.
    assert!(stats.errors <= 1, "{stats:?}");
    let epoch = j.epoch();
    let expected: Vec<(u64, u64)> = (1..=30).chain(51..=60).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "TAIL_DELETED").await, expected);
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A replicator started into its stream holding 1..=50 (acknowledged to
/// the replicator before it, not to this one) runs on while the server
/// loses its last writes (killed, its message block cut to 60%, as a
/// power loss before it synced them leaves it; about 30 messages left;
/// the restarted server's dedup window, rebuilt from what it holds, has
/// not their ids). The next publish is refused, and the resync finds the
/// feed's last message below the one the start found: what came after it
/// is sent again. It had resumed after
/// 50, the progress its start read: the lost records never came back, with
/// nothing counted or reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_replicator_sends_again_what_the_server_lost_after_its_start() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    fill(&mut j, 1, 50);
    let start = |js: &async_nats::jetstream::Context| {
        let spec = StreamSpec::new("LOST_TAIL", "feed.lost_tail");
        Replicator::builder(dir.path(), js.clone(), spec).poll_interval(Duration::from_millis(5)).start()
    };
    let first = start(&js).await.unwrap();
    within("50", first.wait_for(50)).await.unwrap();
    first.shutdown().await;
    let replicator = start(&js).await.unwrap();
    within("50 again", replicator.wait_for(50)).await.unwrap();
    let (js, left) = lose_last_writes(&mut server, js, "LOST_TAIL", 60).await;
    assert!((1..50).contains(&left), "the server lost its last writes: {left} left");
    fill(&mut j, 51, 60);
    within("60", replicator.wait_for(60)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.stopped), (0, false), "{stats:?}");
    let epoch = j.epoch();
    let expected: Vec<(u64, u64)> = (1..=60).map(|seq| (epoch, seq)).collect();
    assert_eq!(coordinates(&js, "LOST_TAIL").await, expected);
    replicator.shutdown().await;
    j.close().unwrap();
}

/// The same in a shared stream when the server lost every message of the
/// feed: feed `b` replicated 1..=30, then `a` 1..=20 after them; the
/// server is killed and keeps about the first 25 messages (all `b`'s).
/// `a`'s next publish is refused, and its resync finds the feed's subject
/// empty in a stream whose last sequence fell below what `a` stored there:
/// `a` is sent again from its start. It had resumed after 20, its
/// progress, as after a purge: `a`'s 1..=20 never came back, with nothing
/// counted or reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_replicator_sends_again_a_feed_the_server_lost_all_of_from_a_shared_stream() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let spec = |feed: &str| StreamSpec::shared("SHARED_LOST", "app").feed(feed);
    let (b, other) = replicated(&js, &spec("b"), &tmp.path().join("b"), 30).await;
    other.shutdown().await;
    let (mut a, replicator) = replicated(&js, &spec("a"), &tmp.path().join("a"), 20).await;
    let (js, left) = lose_last_writes(&mut server, js, "SHARED_LOST", 50).await;
    assert!((1..=30).contains(&left), "the server lost all of a's messages: {left} left");
    fill(&mut a, 21, 25);
    within("25", replicator.wait_for(25)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.stopped), (0, false), "{stats:?}");
    let epoch = a.epoch();
    let of_a = seqs_of_epoch(&js, "SHARED_LOST", epoch).await;
    assert_eq!(of_a, (1..=25).collect::<Vec<_>>());
    replicator.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

/// The same when another feed publishes after the server came back,
/// before `a` does: the stream's last sequence is past what `a` stored
/// again, and only the sequence `a`'s last message was stored at, now
/// holding `b`'s, tells the loss. `a` is sent again from its start. It had
/// resumed after its progress, as after a purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_another_feed_published_past_is_found_by_the_reused_sequence() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let spec = |feed: &str| StreamSpec::shared("SHARED_REUSED", "app").feed(feed);
    let (mut b, other) = replicated(&js, &spec("b"), &tmp.path().join("b"), 30).await;
    other.shutdown().await;
    let (mut a, replicator) = replicated(&js, &spec("a"), &tmp.path().join("a"), 20).await;
    let (js, _) = lose_last_writes(&mut server, js, "SHARED_REUSED", 50).await;
    fill(&mut b, 31, 60);
    let other = Replicator::builder(tmp.path().join("b"), js.clone(), spec("b"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("b's 60", other.wait_for(60)).await.unwrap();
    let last = js.get_stream("SHARED_REUSED").await.unwrap().cached_info().state.last_sequence;
    assert!(last >= 50, "b's publishes took the last sequence past a's last stored one: {last}");
    fill(&mut a, 21, 25);
    within("25", replicator.wait_for(25)).await.unwrap();
    let epoch = a.epoch();
    let of_a = seqs_of_epoch(&js, "SHARED_REUSED", epoch).await;
    assert_eq!(of_a, (1..=25).collect::<Vec<_>>());
    other.shutdown().await;
    replicator.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

/// The same when retention has pruned what the server lost (`a`'s 1..=20,
/// acknowledged and then pruned from the journal, with 21 and 22 kept):
/// those are gone from both, and reported once as such
/// (`NatsError::LostByServer`), not as pruned before replication, nor
/// counted in `skipped` (the stream's limits could have removed them as
/// well). The resend from `a`'s start meets the journal's earliest seq and
/// goes on. They had been reported as "pruned before they were
/// replicated".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_the_server_lost_all_of_and_retention_pruned_is_not_reported_as_pruned_before_replication() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let spec = |feed: &str| StreamSpec::shared("SHARED_LOST_PRUNED", "app").feed(feed);
    let (b, other) = replicated(&js, &spec("b"), &tmp.path().join("b"), 30).await;
    other.shutdown().await;
    let dir = tmp.path().join("a");
    let opts = JournalOptions::new().sync(SyncPolicy::Never).retention(Retention::segments(2));
    let (mut a, _) = Journal::open(&dir, opts).unwrap();
    fill(&mut a, 1, 20);
    let replicator = Replicator::builder(&dir, js.clone(), spec("a"))
        .poll_interval(Duration::from_millis(5))
        .checkpoint_interval(Duration::from_millis(10))
        .start()
        .await
        .unwrap();
    within("20", replicator.wait_for(20)).await.unwrap();
    // Two more segments: retention (two kept) may prune the first once
    // the replicator's checkpoint lets go of it.
    a.roll().unwrap();
    fill(&mut a, 21, 21);
    a.roll().unwrap();
    fill(&mut a, 22, 22);
    within("22", replicator.wait_for(22)).await.unwrap();
    within("1..=20 pruned", prune_until_first(&mut a, &dir, 21)).await;
    let (js, left) = lose_last_writes(&mut server, js, "SHARED_LOST_PRUNED", 50).await;
    assert!((1..=30).contains(&left), "the server lost all of a's messages: {left} left");
    fill(&mut a, 23, 25);
    within("25", replicator.wait_for(25)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.stopped), (0, false), "{stats:?}");
    let last_error = stats.last_error.clone().unwrap_or_default();
    assert!(last_error.contains("no longer holds seqs 1..=20 it had acknowledged"), "{stats:?}");
    let epoch = a.epoch();
    let of_a = seqs_of_epoch(&js, "SHARED_LOST_PRUNED", epoch).await;
    assert_eq!(of_a, (21..=25).collect::<Vec<_>>());
    replicator.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

/// Seqs retention pruned before they were replicated (`a`'s 1..=10,
/// counted and reported then), then the server loses every message of
/// `a` (11..=12): the resend from `a`'s start meets 1..=10 again, which
/// the stream never held, and reports nothing more about them (`skipped`
/// stays 10, no `LostByServer`). They had been reported a second time, as
/// records the stream no longer held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_pruned_before_replication_are_not_reported_again_after_a_loss() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let spec = |feed: &str| StreamSpec::shared("SHARED_PRUNED_THEN_LOST", "app").feed(feed);
    let (b, other) = replicated(&js, &spec("b"), &tmp.path().join("b"), 30).await;
    other.shutdown().await;
    let dir = tmp.path().join("a");
    let opts = JournalOptions::new().sync(SyncPolicy::Never).retention(Retention::segments(2));
    let (mut a, _) = Journal::open(&dir, opts).unwrap();
    fill(&mut a, 1, 10);
    a.roll().unwrap();
    fill(&mut a, 11, 11);
    a.roll().unwrap();
    fill(&mut a, 12, 12);
    assert_eq!(Reader::open(&dir).unwrap().first_seq().unwrap(), 11, "1..=10 pruned before any replicator");
    let replicator =
        Replicator::builder(&dir, js.clone(), spec("a")).poll_interval(Duration::from_millis(5)).start().await.unwrap();
    within("12", replicator.wait_for(12)).await.unwrap();
    assert_eq!(replicator.stats().skipped, 10);
    let (js, _) = lose_last_writes(&mut server, js, "SHARED_PRUNED_THEN_LOST", 50).await;
    fill(&mut a, 13, 15);
    within("15", replicator.wait_for(15)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.stopped), (10, false), "{stats:?}");
    assert!(!stats.last_error.as_deref().unwrap_or("").contains("no longer holds"), "{stats:?}");
    let epoch = a.epoch();
    let of_a = seqs_of_epoch(&js, "SHARED_PRUNED_THEN_LOST", epoch).await;
    assert_eq!(of_a, (11..=15).collect::<Vec<_>>());
    replicator.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}

/// A replicator started into an emptied stream with, under its consumer
/// name, the checkpoint of another journal (copied from the directory of
/// the journal that filled the stream, which acknowledged 1..=50): only a
/// checkpoint of this journal says its records were replicated, so the
/// 1..=50 retention pruned from this one before any replicator sent them
/// are counted in `skipped` and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_journal_does_not_pass_pruned_records_as_replicated() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let (first, replicator) = replicating(&js, &tmp.path().join("first"), "FOREIGN", "feed.foreign", 50).await;
    replicator.shutdown().await;
    first.close().unwrap();
    js.get_stream("FOREIGN").await.unwrap().purge().await.unwrap();

    let dir = tmp.path().join("second");
    let mut j = fifty_kept_two_segments_at_a_time(&dir);
    roll_twice_and_prune(&mut j, &dir);
    let name = replicator_consumer_name("feed.foreign");
    std::fs::create_dir_all(dir.join("consumers")).unwrap();
    std::fs::copy(tmp.path().join("first/consumers").join(&name), dir.join("consumers").join(&name)).unwrap();
    let copied = list_consumers(&dir).unwrap();
    assert!(
        matches!(&copied[..], [c] if c.checkpoint.as_ref().is_ok_and(|c| c.seq == 50 && c.epoch != j.epoch())),
        "a checkpoint of another journal that acknowledged 50: {copied:?}"
    );

    let replicator = Replicator::builder(&dir, js.clone(), StreamSpec::new("FOREIGN", "feed.foreign"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("150", replicator.wait_for(150)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.skipped, stats.errors, stats.published), (50, 1, 100), "{stats:?}");
    let last_error = stats.last_error.clone().unwrap();
    assert!(last_error.contains("seqs 1..=50 were pruned"), "{last_error}");
    replicator.shutdown().await;
    j.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_made_again_that_no_longer_fits_stops_the_replicator() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, replicator) = replicating(&js, &tmp.path().join("journal"), "RECHECK", "feed.recheck", 3).await;
    js.delete_stream("RECHECK").await.unwrap();
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RECHECK".into(),
        subjects: vec!["feed.recheck".into()],
        duplicate_window: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .unwrap();
    fill(&mut j, 4, 4);
    let stats = stopped(&replicator).await;
    let last_error = stats.last_error.clone().unwrap();
    assert!(last_error.contains("duplicate_window"), "{last_error}");
    // The resync's check, not a refused publish.
    let waited = within("the replicator's error", replicator.wait_for(4)).await;
    assert!(matches!(waited, Err(NatsError::StreamMismatch { field: "duplicate_window", .. })), "{waited:?}");
    let mut stream = js.get_stream("RECHECK").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 0, "nothing replicated into it");
}

/// The replicator's stream sealed in place while it runs (same stream, same
/// creation time): the resync after the refused publish checks the stream
/// again and stops the replicator with `StreamMismatch` naming `sealed`.
/// Only a stream made again had been checked again: the replicator retried
/// the refused publish for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sealed_under_the_replicator_stops_it() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, replicator) = replicating(&js, &tmp.path().join("journal"), "SEAL", "feed.seal", 3).await;
    let mut config = js.get_stream("SEAL").await.unwrap().cached_info().config.clone();
    config.sealed = true;
    js.update_stream(config).await.unwrap();
    fill(&mut j, 4, 4);
    let stats = stopped(&replicator).await;
    let last_error = stats.last_error.clone().unwrap();
    assert!(last_error.contains("sealed"), "{last_error}");
    // The resync's check, not the server's refusal of the publish (which
    // says "sealed" too).
    let waited = within("the replicator's error", replicator.wait_for(4)).await;
    assert!(matches!(waited, Err(NatsError::StreamMismatch { field: "sealed", .. })), "{waited:?}");
    assert_eq!(stats.replicated, 3, "{stats:?}");
    j.close().unwrap();
}

/// The replicator's stream deleted while it runs (`nats stream rm`, or a
/// server back without its store): the next resync makes it again from the
/// replicator's spec, as a start does, and replicates the journal's
/// retained records into it, 1..=20 once each. It had asked for the
/// missing stream every 2 s, for ever, neither replicating nor stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_under_the_replicator_is_made_again_and_filled() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, replicator) = replicating(&js, &tmp.path().join("journal"), "GONE", "feed.gone", 10).await;
    js.delete_stream("GONE").await.unwrap();
    fill(&mut j, 11, 20);
    within("the stream made again and filled", holds(&js, "GONE", 20)).await;
    verify_stream(&js, "GONE", 20).await;
    let stats = replicator.stats();
    assert!(!stats.stopped, "{stats:?}");
    replicator.shutdown().await;
    j.close().unwrap();
}

/// A shared stream deleted and made again by another feed's replicator,
/// and this replicator's first resync into it cut short (its last-message
/// read lost in flight, as a restarting server loses one): the retried
/// resync still takes the stream as new and fills it from the start, this
/// feed's 1..=11 once each. The failed resync had already recorded the new
/// stream as the one it published to, so the retry resumed after 10 (what
/// the old stream held): 1..=10 were missing from the new stream, with no
/// gap marker and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_cut_short_in_a_recreated_stream_still_fills_it_from_the_start() {
    let server = Server::start();
    let js = server.jetstream().await;
    let proxy = support::cut::CutProxy::start(server.port()).await;
    let through_proxy = async_nats::jetstream::new(async_nats::connect(proxy.url()).await.unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let (mut a, mut b) = (journal(&tmp.path().join("a")), journal(&tmp.path().join("b")));
    fill(&mut a, 1, 10);
    fill(&mut b, 1, 3);
    let spec = |feed: &str| StreamSpec::shared("RESYNC_CUT", "app").feed(feed);
    let replicate_a = Replicator::builder(tmp.path().join("a"), through_proxy, spec("a"))
        .poll_interval(Duration::from_millis(5))
        .ack_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    let replicate_b = Replicator::builder(tmp.path().join("b"), js.clone(), spec("b"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("a's records", replicate_a.wait_for(10)).await.unwrap();
    within("b's records", replicate_b.wait_for(3)).await.unwrap();

    js.delete_stream("RESYNC_CUT").await.unwrap();
    // b's next record finds the stream gone: b makes it again and fills it
    // with its own records. a, idle, has not looked.
    fill(&mut b, 4, 4);
    within("b's records in the new stream", holds(&js, "RESYNC_CUT", 4)).await;
    proxy.arm("STREAM.MSG.GET.RESYNC_CUT");
    fill(&mut a, 11, 11);
    within("a's record 11", replicate_a.wait_for(11)).await.unwrap();
    assert_eq!(proxy.cuts(), 1, "a's resync read the last message through the proxy");
    let of_a = seqs_of_epoch(&js, "RESYNC_CUT", a.epoch()).await;
    assert_eq!(of_a, (1..=11).collect::<Vec<_>>(), "a's records in the new stream, once each");
    replicate_a.shutdown().await;
    replicate_b.shutdown().await;
    a.close().unwrap();
    b.close().unwrap();
}
