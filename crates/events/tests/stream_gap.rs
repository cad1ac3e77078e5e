//! A journal salvaged by an operator (`RecoveryMode::SkipCorrupt`) has a
//! hole where a corrupt record was dropped. `stream_from` reports it as one
//! explicit `Reset { Gap }` between the records around it, never a silent
//! skip, and continues right after the hole.

mod support;

use events::{Feed, FeedItem, RecoveryMode, ResetReason, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

/// A closed journal of 10 events in `dir` whose record 5 fails its CRC.
async fn ten_with_record_5_damaged(dir: &std::path::Path) {
    let feed: Feed<Ev> = Feed::builder(dir).sync(SyncPolicy::Always).open().await.unwrap();
    for n in 1..=10 {
        feed.append(None, msg(n)).await.unwrap();
    }
    feed.close().await.unwrap();
    // Every record has the same size; flip a payload byte of record 5.
    let seg = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let frame = (bytes.len() - 64) / 10;
    bytes[64 + 4 * frame + 24] ^= 0x01; // the first payload byte
    std::fs::write(&seg, &bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvaged_hole_is_an_explicit_reset() {
    let dir = tempfile::tempdir().unwrap();
    ten_with_record_5_damaged(dir.path()).await;
    let refused = Feed::<Ev>::builder(dir.path()).open().await.unwrap_err();
    assert!(refused.to_string().contains("journal"), "{refused}");
    let feed: Feed<Ev> = Feed::builder(dir.path()).recovery(RecoveryMode::SkipCorrupt).open().await.unwrap();
    let mut s = feed.stream_from(Seq::ZERO);
    let mut seen = Vec::new();
    loop {
        match s.next().await.unwrap().unwrap() {
            FeedItem::Event(env) => {
                seen.push(env.seq.get());
                if env.seq.get() == 10 {
                    break;
                }
            }
            FeedItem::Reset { reason, .. } => {
                assert_eq!(reason, ResetReason::Gap { first_missing: Seq::new(5), last_missing: Seq::new(5) });
                seen.push(0);
            }
            other @ FeedItem::Undecodable { .. } => panic!("every event decodes here: {other:?}"),
            other @ FeedItem::Checkpoint { .. } => panic!("an unfiltered stream has no checkpoints: {other:?}"),
            other @ FeedItem::Ephemeral { .. } => panic!("stream_from is durable only: {other:?}"),
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 0, 6, 7, 8, 9, 10]);
    feed.close().await.unwrap();
}

/// A follower's gap is a gap of the journal it reads: when the directory is
/// recreated after the read that found it, and another call on the same
/// reader (`epoch()`, as a status page's `stats()`) adopts the new journal
/// first, the stream still reports the gap, then `EpochMismatch`, then the
/// new journal from its first event. The gap's reset had taken the new
/// epoch for its cursor, and the stream went on with the new journal's 6..
/// as if it were the old one's, its 1..=5 skipped with no reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_gap_stays_in_its_journal_when_another_handle_sees_it_recreated() {
    let dir = tempfile::tempdir().unwrap();
    ten_with_record_5_damaged(dir.path()).await;
    let salvaged: Feed<Ev> = Feed::builder(dir.path()).recovery(RecoveryMode::SkipCorrupt).open().await.unwrap();
    let old_epoch = salvaged.epoch();
    salvaged.close().await.unwrap();

    let reader = events::FeedReader::<Ev>::open(dir.path()).unwrap();
    let mut s = reader.stream_from(Seq::ZERO);
    for n in 1..=4 {
        let item = s.next().await.unwrap().unwrap();
        assert!(matches!(&item, FeedItem::Event(env) if env.seq.get() == n), "{item:?}");
    }
    // The directory recreated, and the reader told of it by another call.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) }.unwrap();
    }
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).open().await.unwrap();
    for n in 101..=120 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let new_epoch = feed.epoch();
    feed.close().await.unwrap();
    assert_ne!(new_epoch, old_epoch);
    assert_eq!(reader.epoch(), new_epoch);

    let gap = s.next().await.unwrap().unwrap();
    let want = ResetReason::Gap { first_missing: Seq::new(5), last_missing: Seq::new(5) };
    assert!(matches!(gap, FeedItem::Reset { reason, .. } if reason == want), "{gap:?}");
    let next = s.next().await.unwrap().unwrap();
    let mismatch = ResetReason::EpochMismatch { cursor_epoch: old_epoch, journal_epoch: new_epoch };
    assert!(
        matches!(next, FeedItem::Reset { reason, .. } if reason == mismatch),
        "the new journal's 6 as the old one's: {next:?}"
    );
    let first = s.next().await.unwrap().unwrap();
    assert!(matches!(&first, FeedItem::Event(env) if env.seq.get() == 1 && env.event == msg(101)), "{first:?}");
}
