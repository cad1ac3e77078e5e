//! An event the codec cannot encode is refused on its own: `append` returns
//! `Error::Codec`, `record` counts it in `encode_errors`, nothing is
//! journaled or published for it, and the events around it in the same
//! batch are journaled with contiguous seqs.

use events::{AppendOptions, Error, Event, Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Ev {
    Ok(u64),
    Unencodable(#[serde(serialize_with = "refuse")] u64),
}

impl Event for Ev {}

fn refuse<S: Serializer>(_: &u64, _: S) -> Result<S::Ok, S::Error> {
    Err(serde::ser::Error::custom("this value refuses to be encoded"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unencodable_events_are_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    let mut live = feed.stream_from(Seq::ZERO);

    assert_eq!(feed.append(None, Ev::Ok(1)).await.unwrap(), Seq::new(1));
    let err = feed.append(None, Ev::Unencodable(2)).await.unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err:?}");
    assert!(events::error_chain(&err).contains("refuses to be encoded"), "{}", events::error_chain(&err));
    feed.record(None, &Ev::Unencodable(3));
    feed.record(None, &Ev::Ok(4));
    assert_eq!(feed.append(None, Ev::Ok(5)).await.unwrap(), Seq::new(3));

    let stats = feed.stats();
    assert_eq!(stats.encode_errors, 2);
    assert_eq!(stats.dropped, 0);
    assert!(stats.healthy, "an encode error is the event's fault, not the journal's");
    let mut got = Vec::new();
    for _ in 0..3 {
        let Some(Ok(FeedItem::Event(env))) = live.next().await else { panic!("expected an event") };
        got.push((env.seq.get(), env.event.clone()));
    }
    assert_eq!(got, vec![(1, Ev::Ok(1)), (2, Ev::Ok(4)), (3, Ev::Ok(5))]);
    feed.close().await.unwrap();
}

/// An untagged enum: bincode writes it, but its `Deserialize` asks for a
/// self-describing format, so no reader could ever read it back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Loose {
    Number(u64),
    Text(String),
}

impl Event for Loose {}

/// An event the codec writes but cannot read back is refused when it is
/// appended (`Error::Unreadable` naming the codec; counted for `record`
/// and a session's emit), and nothing is journaled. It was journaled, and
/// every reader that reached it from the journal failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_does_not_decode_back_is_refused_when_appended() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Loose> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    let err = feed.append(None, Loose::Number(1)).await.unwrap_err();
    assert!(matches!(err, Error::Unreadable { codec: "bincode", .. }), "{err:?}");
    feed.record(None, &Loose::Text("x".into()));
    let session = feed.session("s");
    let mut ui = session.subscribe();
    assert!(matches!(session.emit(Loose::Number(2)).await, Err(Error::Unreadable { .. })));
    assert!(futures::FutureExt::now_or_never(ui.next()).is_none(), "a UI was shown it");
    feed.sync().await.unwrap();
    let stats = feed.stats();
    assert_eq!((stats.latest_seq, stats.encode_errors), (0, 3), "{stats:?}");
    feed.close().await.unwrap();
}

/// A type only some of whose values the codec cannot read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Mixed {
    Plain(u64),
    Loose(Loose),
}

impl Event for Mixed {}

/// A value that does not read back is refused however many readable ones
/// came before it in the writer's run or the feed's session emits: each
/// event of a shape not read back before is. Release builds had read back
/// the first 16 events of each and journaled the 17th unread, so every
/// reader that reached it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_value_after_many_readable_ones_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Mixed> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    let session = feed.session("s");
    for n in 0..40 {
        feed.append(None, Mixed::Plain(n)).await.unwrap();
        session.emit(Mixed::Plain(n)).await.unwrap();
    }
    let err = feed.append(None, Mixed::Loose(Loose::Number(1))).await.unwrap_err();
    assert!(matches!(err, Error::Unreadable { codec: "bincode", .. }), "{err:?}");
    let err = session.emit(Mixed::Loose(Loose::Text("x".into()))).await.unwrap_err();
    assert!(matches!(err, Error::Unreadable { codec: "bincode", .. }), "{err:?}");
    // Refused each time, not only the first: a failed shape is not remembered.
    assert!(matches!(feed.append(None, Mixed::Loose(Loose::Number(2))).await, Err(Error::Unreadable { .. })));
    assert_eq!(feed.append(None, Mixed::Plain(99)).await.unwrap(), Seq::new(81));
    feed.close().await.unwrap();
    let mut read = Vec::new();
    let reader = events::FeedReader::<Mixed>::open(dir.path()).unwrap();
    let mut stream = reader.stream_from(Seq::ZERO);
    while read.len() < 81 {
        match stream.next().await {
            Some(Ok(FeedItem::Event(env))) => read.push(env.seq.get()),
            Some(Ok(_)) => {}
            other => panic!("the journal did not read back: {other:?}"),
        }
    }
    assert_eq!(read, (1..=81).collect::<Vec<_>>());
}

/// A codec of one's own whose decoding depends on a value: bincode, but a
/// payload holding the byte `0xEE` does not decode.
#[derive(Clone, Copy, Debug, Default)]
struct Picky;

impl events::Codec for Picky {
    const ID: u32 = 901;
    const NAME: &'static str = "picky";
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), events::CodecError> {
        events::Bincode.encode(value, out)
    }
    fn decode_prefix<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), events::CodecError> {
        if bytes.contains(&0xEE) {
            return Err(events::CodecError::Decode { codec: Self::NAME, len: bytes.len(), source: "0xEE".into() });
        }
        events::Bincode.decode_prefix(bytes)
    }
}

/// With a codec that does not say its decoding depends on shapes alone
/// (`Codec::READ_BACK_BY_SHAPE`, `false` by default), every event is read
/// back: a value that does not decode, of the same shape as 40 that did,
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codec_of_ones_own_has_every_event_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Mixed, Picky> = Feed::builder(dir.path()).codec(Picky).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 0..40 {
        feed.append(None, Mixed::Plain(n)).await.unwrap();
    }
    let err = feed.append(None, Mixed::Plain(0xEE)).await.unwrap_err();
    assert!(matches!(err, Error::Unreadable { codec: "picky", .. }), "{err:?}");
    feed.close().await.unwrap();
}

/// An enum with a skipped variant: bincode writes the variants after it by
/// their position among all variants, and serde reads that position among
/// the ones not skipped, so `Done` read back as `Cancelled`, with no error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Shifted {
    Started,
    #[serde(skip)]
    InMemory,
    Done,
    Cancelled,
}

impl Event for Shifted {}

/// Such an event is refused when it is appended (`Error::Unreadable`
/// naming the variant and the one it reads back as), and nothing is
/// journaled; a variant before the skipped one is appended. `Done` had
/// been journaled, and every reader got `Cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_that_reads_back_as_another_is_refused_when_appended() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Shifted> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    assert_eq!(feed.append(None, Shifted::Started).await.unwrap(), Seq::new(1));
    let err = feed.append(None, Shifted::Done).await.unwrap_err();
    assert!(matches!(err, Error::Unreadable { codec: "bincode", .. }), "{err:?}");
    let chain = events::error_chain(&err);
    assert!(chain.contains("variant `Done`") && chain.contains("with `Cancelled` in its place"), "{chain}");
    assert!(feed.append(None, Shifted::InMemory).await.is_err(), "serde refuses a skipped variant");
    feed.sync().await.unwrap();
    assert_eq!(feed.stats().latest_seq, 1);
    feed.close().await.unwrap();
}

/// A codec of one's own whose decode of a payload's stream id alone panics
/// (bincode otherwise): what reads stream ids without the event (the
/// retention's summary of a segment it removes, version checks, the index
/// of sealed segments) gets a decode error, on the writer's thread and the
/// index builder's. The panic had ended the writer thread: the feed
/// failed, and a reopen met the same segment at its first retention pass.
#[derive(Clone, Copy, Debug, Default)]
struct Jumpy;

impl events::Codec for Jumpy {
    const ID: u32 = 902;
    const NAME: &'static str = "jumpy";
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), events::CodecError> {
        events::Bincode.encode(value, out)
    }
    fn decode_prefix<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), events::CodecError> {
        let name = std::any::type_name::<T>();
        assert!(!(name.starts_with("core::option::Option<") && name.contains("StreamId")), "jumpy on a stream id");
        events::Bincode.decode_prefix(bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codec_that_panics_on_a_stream_id_alone_fails_no_feed() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Mixed, Jumpy> = Feed::builder(dir.path())
        .codec(Jumpy)
        .sync(SyncPolicy::Never)
        .segment_bytes(4 << 10)
        .retention(events::Retention::segments(2))
        .open()
        .await
        .unwrap();
    for n in 1..=300u64 {
        let stream = format!("s{}", n % 3);
        feed.append(Some(&stream), Mixed::Plain(n)).await.unwrap();
    }
    // A version check reads the stream's latest version: its records' stream
    // ids read as none, so the check counts it empty (as for a codec that
    // returns the error).
    let checked = feed
        .append_with(Some("s1"), Mixed::Plain(302), AppendOptions::new().expect(events::Expected::Exact(Seq::new(1))))
        .await;
    assert!(feed.stats().healthy, "{checked:?}: {:?}", feed.stats());
    assert!(feed.earliest_seq() > Seq::new(1), "retention removed segments: {:?}", feed.stats());
    let next = feed.append(Some("s2"), Mixed::Plain(303)).await;
    assert!(next.is_ok(), "{next:?}: {:?}", feed.stats());
    feed.close().await.unwrap();
}
