//! A journal salvaged by an operator (`RecoveryMode::SkipCorrupt`) has a
//! hole where a corrupt record was dropped. `stream_from` reports it as one
//! explicit `Reset { Gap }` between the records around it, never a silent
//! skip, and continues right after the hole.

mod support;

use events::{Feed, FeedItem, RecoveryMode, ResetReason, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvaged_hole_is_an_explicit_reset() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).open().await.unwrap();
    for n in 1..=10 {
        feed.append(None, msg(n)).await.unwrap();
    }
    feed.close().await.unwrap();

    // Every record has the same size; flip a payload byte of record 5.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let frame = (bytes.len() - 64) / 10;
    bytes[64 + 4 * frame + 24] ^= 0x01; // the first payload byte
    std::fs::write(&seg, &bytes).unwrap();

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
