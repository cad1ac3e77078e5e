//! Catch-up decodes a large journal chunk on two threads (`replay.rs`):
//! whatever the split, a reader sees every event in seq order exactly once,
//! and undecodable records in either half, on the cut and across segment
//! boundaries are reported at their seq, after exactly the events before
//! them (`OnUndecodable::Skip`), or end the stream there (`Fail`).

use events::layers::journal::{Journal, JournalOptions};
use events::{Bincode, Codec, Error, Event, Feed, FeedItem, FeedReader, OnUndecodable, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Note {
    n: u64,
    text: String,
}
impl Event for Note {}

/// Events in the journal; chunks of replay are 4,096, so this spans three.
const EVENTS: u64 = 10_400;

/// Seqs written as CRC-valid frames that do not decode: in the first and
/// second half of the first chunk, right on its cut (2,049 = 1 + 4,096 / 2),
/// the last of a chunk, and in the third chunk.
const BAD: [u64; 5] = [800, 2_049, 2_800, 4_096, 9_600];

async fn journal_with_bad_payloads(dir: &std::path::Path) {
    let mut seq = 0;
    for bad in BAD.iter().copied().chain([EVENTS + 1]) {
        let feed: Feed<Note> = Feed::builder(dir).sync(SyncPolicy::Never).segment_bytes(64 << 10).open().await.unwrap();
        while seq + 1 < bad.min(EVENTS + 1) {
            seq += 1;
            feed.append(None, Note { n: seq, text: "x".repeat((seq % 97) as usize) }).await.unwrap();
        }
        feed.close().await.unwrap();
        if bad <= EVENTS {
            let (mut journal, _) = Journal::open(dir, JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
            journal.append_now([0x02, 0x99, 0x42]).unwrap(); // an option tag of 2: not bincode's
            journal.close().unwrap();
            seq += 1;
        }
    }
    assert_eq!(seq, EVENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_once_in_order_and_each_bad_record_at_its_seq() {
    let tmp = tempfile::tempdir().unwrap();
    journal_with_bad_payloads(tmp.path()).await;
    let reader = FeedReader::<Note>::open(tmp.path()).unwrap();

    let mut skip = reader.clone().on_undecodable(OnUndecodable::Skip).stream_from(Seq::ZERO);
    let mut next = 1;
    while next <= EVENTS {
        match skip.next().await.expect("stream ended").unwrap() {
            FeedItem::Event(env) => {
                assert!(!BAD.contains(&next), "event {} where bad record {next} was due", env.seq);
                assert_eq!((env.seq, env.event.n), (Seq::new(next), next));
                assert_eq!(env.event.text.len() as u64, next % 97);
            }
            FeedItem::Undecodable { seq, error, .. } => {
                assert_eq!(seq, Seq::new(next), "undecodable item out of place");
                assert!(BAD.contains(&next) && error.contains(Bincode::NAME), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
        next += 1;
    }

    // Fail: the events before the first bad record, then the error at its seq.
    let mut fail = reader.stream_from(Seq::ZERO);
    for n in 1..BAD[0] {
        assert!(matches!(fail.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(n)));
    }
    let err = fail.next().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Decode { seq, .. } if seq == Seq::new(BAD[0])), "{err:?}");
    assert!(fail.next().await.is_none());

    // From every cursor around the cuts, the first item is the next seq.
    for cursor in [0, 2_047, 2_048, 2_049, 4_095, 4_096, 4_097, 8_191] {
        let mut s = FeedReader::<Note>::open(tmp.path())
            .unwrap()
            .on_undecodable(OnUndecodable::Skip)
            .stream_from(Seq::new(cursor));
        let first = match s.next().await.unwrap().unwrap() {
            FeedItem::Event(env) => env.seq,
            FeedItem::Undecodable { seq, .. } => seq,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(first, Seq::new(cursor + 1));
    }
}

/// With one blocking thread in the whole runtime, the thread reading a
/// chunk can never hand half of it to another: it must decode both halves
/// itself instead of waiting for a thread that cannot start (the state
/// of a server whose blocking pool is full of catching-up readers).
#[test]
fn a_full_blocking_pool_does_not_stall_a_catch_up() {
    let tmp = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let feed: Feed<Note> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).open().await.unwrap();
        for n in 1..=EVENTS {
            feed.record(None, &Note { n, text: String::new() });
            if n % 512 == 0 {
                feed.sync().await.unwrap(); // `record` drops on a full inbox: let the writer catch up
            }
        }
        feed.sync().await.unwrap();
        assert_eq!(feed.stats().dropped, 0);
        feed.close().await.unwrap();
    });
    let (done, finished) = std::sync::mpsc::channel();
    let dir = tmp.path().to_owned();
    std::thread::spawn(move || {
        runtime.block_on(async {
            let mut stream = FeedReader::<Note>::open(&dir).unwrap().stream_from(Seq::ZERO);
            for n in 1..=EVENTS {
                match stream.next().await {
                    Some(Ok(FeedItem::Event(env))) => assert_eq!(env.event.n, n),
                    other => panic!("unexpected {other:?} at {n}"),
                }
            }
        });
        let _ = done.send(());
    });
    finished.recv_timeout(std::time::Duration::from_secs(60)).expect("the catch-up stalled (or panicked)");
}
