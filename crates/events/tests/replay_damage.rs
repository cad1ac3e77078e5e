//! Damage in a sealed segment (bit rot after the writer sealed it, read by
//! a reader in the same chunk as good records) costs only the damaged
//! record and what follows it: `stream_from` delivers every good event
//! before it, then ends with the journal error naming it; an `EventLog`
//! page ends before it and the next page is the error. An undecodable
//! record before the damage is still reported first, at its seq.

mod support;

use events::layers::journal::{Journal, JournalError, JournalOptions};
use events::{Bincode, Codec, Error, EventLog, Feed, FeedItem, FeedReader, OnUndecodable, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

const EVENTS: u64 = 200;

/// Segments in the directory: (first seq, path), in seq order.
fn segments(dir: &std::path::Path) -> Vec<(u64, std::path::PathBuf)> {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap(), p))
        .collect();
    segs.sort();
    segs
}

/// Writes `msg(1..=EVENTS)` in small segments, record `bad` (if any) a
/// CRC-valid frame that does not decode; returns the journal's segments.
async fn journal(dir: &std::path::Path, bad: Option<u64>) -> Vec<(u64, std::path::PathBuf)> {
    let open = || Feed::<Ev>::builder(dir).sync(SyncPolicy::Never).segment_bytes(1024).open();
    let mut feed = open().await.unwrap();
    for n in 1..=EVENTS {
        if Some(n) == bad {
            feed.close().await.unwrap();
            let (mut journal, _) = Journal::open(dir, JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
            journal.append_now([0x02, 0x99, 0x42]).unwrap(); // not a bincode `Ev`
            journal.close().unwrap();
            feed = open().await.unwrap();
        } else {
            feed.append(None, msg(n)).await.unwrap();
        }
    }
    feed.close().await.unwrap();
    segments(dir)
}

/// Flips a payload byte of the third record of the sealed segment `i`
/// (whose records all have one size); returns the damaged record's seq.
fn damage(segs: &[(u64, std::path::PathBuf)], i: usize) -> u64 {
    let ((first, path), (next, _)) = (&segs[i], &segs[i + 1]);
    let mut bytes = std::fs::read(path).unwrap();
    let frame = (bytes.len() - 64) / usize::try_from(next - first).unwrap();
    bytes[64 + 2 * frame + 24] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    first + 2
}

fn is_corrupt(err: &Error, seq: u64) -> bool {
    matches!(err, Error::Journal(JournalError::Corrupt { seq: Some(s), .. }) if *s == seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_before_damage_are_delivered_then_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = journal(tmp.path(), None).await;
    assert!(segs.len() >= 4, "{segs:?}");
    let damaged = damage(&segs, 1);
    let reader = FeedReader::<Ev>::open(tmp.path()).unwrap();

    let mut stream = reader.stream_from(Seq::ZERO);
    for n in 1..damaged {
        match stream.next().await {
            Some(Ok(FeedItem::Event(env))) => assert_eq!((env.seq, &env.event), (Seq::new(n), &msg(n))),
            other => panic!("event {n} expected, got {other:?}"),
        }
    }
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(is_corrupt(&err, damaged), "{err:?}");
    assert!(stream.next().await.is_none());

    // Pages: the good events, then the error, from any cursor before it.
    let page = reader.events_after(Seq::ZERO, 1_000).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq.get()).collect::<Vec<_>>(), (1..damaged).collect::<Vec<_>>());
    let err = reader.events_after(Seq::new(damaged - 1), 1_000).await.unwrap_err();
    assert!(is_corrupt(&err, damaged), "{err:?}");
    // The segments after the damaged one read on, and nothing was written.
    let after = segs[2].0;
    let page = reader.events_after(Seq::new(after), 5).await.unwrap();
    assert_eq!(page.first().map(|e| e.seq.get()), Some(after + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_record_is_reported_before_damage_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = journal(tmp.path(), Some(5)).await;
    let damaged = damage(&segs, 2);
    assert!(damaged > 6, "{segs:?}");
    let reader = FeedReader::<Ev>::open(tmp.path()).unwrap();

    // Fail: the events before the bad record, then its decode error.
    let mut fail = reader.stream_from(Seq::ZERO);
    for n in 1..5 {
        assert!(matches!(fail.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(n)));
    }
    let err = fail.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Decode { seq, .. } if seq == Seq::new(5)), "{err:?}");
    assert!(fail.next().await.is_none());

    // Skip: the bad record at its seq, the events up to the damage, the error.
    let mut skip = reader.on_undecodable(OnUndecodable::Skip).stream_from(Seq::ZERO);
    for n in 1..damaged {
        match skip.next().await {
            Some(Ok(FeedItem::Event(env))) if n != 5 => assert_eq!(env.seq, Seq::new(n)),
            Some(Ok(FeedItem::Undecodable { seq, .. })) if n == 5 => assert_eq!(seq, Seq::new(5)),
            other => panic!("item {n}: {other:?}"),
        }
    }
    let err = skip.next().await.unwrap().unwrap_err();
    assert!(is_corrupt(&err, damaged), "{err:?}");
}
