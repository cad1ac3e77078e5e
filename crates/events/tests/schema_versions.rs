//! Versioned records and upcasting, with the default (not self-describing)
//! codec: a journal written with `V1` types over several segments and a
//! restart is read with `V2` types (a field added, a variant renamed, one
//! removed) through `Event::upcast`; records written after the upgrade
//! carry version 2 and read directly. Without an upcaster the error names
//! the seq, the codec and the version. Under `OnUndecodable::Skip`, one
//! corrupt payload (CRC-valid frame, undecodable bytes) becomes one
//! `FeedItem::Undecodable` and every other event arrives; under the default
//! `Fail`, the events before it arrive, then `Error::Decode` at its seq.

use events::layers::journal::{Journal, JournalOptions};
use events::{
    Bincode, Codec, CodecError, Error, Event, Feed, FeedItem, FeedReader, Old, OnUndecodable, Seq, SyncPolicy,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum V1 {
    Sent { text: String },
    Deleted { id: u64 },
    Obsolete,
}
impl Event for V1 {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum V2 {
    Posted { text: String, edited: bool },
    Deleted { id: u64 },
}

impl Event for V2 {
    const VERSION: u32 = 2;

    fn upcast<C: Codec>(old: Old<'_, C>) -> Result<Self, CodecError> {
        match old.version() {
            1 => match old.decode::<V1>()? {
                V1::Sent { text } => Ok(V2::Posted { text, edited: false }),
                V1::Deleted { id } => Ok(V2::Deleted { id }),
                V1::Obsolete => Ok(V2::Deleted { id: 0 }),
            },
            _ => Err(old.unsupported(Self::VERSION)),
        }
    }
}

/// The same V2 without an upcaster.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum V2Strict {
    Posted { text: String, edited: bool },
    Deleted { id: u64 },
}
impl Event for V2Strict {
    const VERSION: u32 = 2;
}

fn v1(n: u64) -> V1 {
    if n.is_multiple_of(2) { V1::Sent { text: format!("m{n}") } } else { V1::Deleted { id: n } }
}

fn as_v2(n: u64) -> V2 {
    if n.is_multiple_of(2) { V2::Posted { text: format!("m{n}"), edited: false } } else { V2::Deleted { id: n } }
}

async fn write_v1(dir: &std::path::Path) {
    for half in [1..=100, 101..=200] {
        let feed: Feed<V1> = Feed::builder(dir).sync(SyncPolicy::Never).segment_bytes(1024).open().await.unwrap();
        for n in half {
            feed.append(None, v1(n)).await.unwrap();
        }
        feed.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_records_are_upcast_and_v2_records_read_directly() {
    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path()).await;
    let feed: Feed<V2> = Feed::builder(tmp.path()).open().await.unwrap();
    let new = V2::Posted { text: "new".into(), edited: true };
    feed.append(None, new.clone()).await.unwrap();
    let mut stream = feed.stream_from(Seq::ZERO);
    for n in 1..=200 {
        let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("seq {n}: expected an event") };
        assert_eq!((env.seq.get(), &env.event), (n, &as_v2(n)));
    }
    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("the v2 record") };
    assert_eq!(env.event, new);
    feed.close().await.unwrap();

    // The v2 record carries its version; v1 code cannot read it and says so.
    let reader = FeedReader::<V1>::open(tmp.path()).unwrap();
    let mut old = reader.stream_from(Seq::new(200));
    match old.next().await {
        Some(Err(Error::Decode {
            seq,
            version: 2,
            source: source @ CodecError::Version { codec: "bincode", version: 2, current: 1 },
        })) => {
            assert_eq!(seq, Seq::new(201));
            // Newer than the code: no upcaster could read it, and the error says so.
            assert!(source.to_string().contains("written by newer code"), "{source}");
        }
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upcaster_the_error_names_seq_codec_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    write_v1(tmp.path()).await;
    let reader = FeedReader::<V2Strict>::open(tmp.path()).unwrap();
    let err = match reader.stream_from(Seq::new(4)).next().await {
        Some(Err(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(matches!(err, Error::Decode { seq, version: 1, .. } if seq == Seq::new(5)), "{err:?}");
    let text = events::error_chain(&err);
    assert!(text.contains("seq 5") && text.contains("bincode") && text.contains("version 1"), "{text}");
}

/// A feed of ten events with a CRC-valid, undecodable record at seq 6.
async fn journal_with_a_bad_payload(dir: &std::path::Path) {
    let feed: Feed<V1> = Feed::builder(dir).open().await.unwrap();
    for n in 1..=5 {
        feed.append(None, v1(n)).await.unwrap();
    }
    feed.close().await.unwrap();
    let (mut journal, _) = Journal::open(dir, JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    journal.append_now([0x02, 0x99, 0x42]).unwrap(); // an option tag of 2: not bincode's
    journal.close().unwrap();
    let feed: Feed<V1> = Feed::builder(dir).open().await.unwrap();
    for n in 7..=10 {
        feed.append(None, v1(n)).await.unwrap();
    }
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_yields_one_undecodable_item_and_everything_else() {
    let tmp = tempfile::tempdir().unwrap();
    journal_with_a_bad_payload(tmp.path()).await;
    let reader = FeedReader::<V1>::open(tmp.path()).unwrap();

    let mut skip = reader.clone().on_undecodable(OnUndecodable::Skip).stream_from(Seq::ZERO);
    let mut seen = Vec::new();
    while seen.len() < 10 {
        match skip.next().await.expect("stream ended").unwrap() {
            FeedItem::Event(env) => seen.push(format!("{}", env.seq)),
            FeedItem::Undecodable { seq, version, error } => {
                assert_eq!(version, 1);
                assert!(error.contains("bincode"), "{error}");
                seen.push(format!("undecodable {seq}"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["1", "2", "3", "4", "5", "undecodable 6", "7", "8", "9", "10"]);

    // Fail (the default): the five before it, then the error at seq 6, then the end.
    let mut fail = reader.stream_from(Seq::ZERO);
    for n in 1..=5 {
        assert!(matches!(fail.next().await, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(n)));
    }
    assert!(matches!(fail.next().await, Some(Err(Error::Decode { seq, .. })) if seq == Seq::new(6)));
    assert!(fail.next().await.is_none());
}
