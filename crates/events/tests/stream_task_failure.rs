//! A replay read that panics (here: the event type's own `Deserialize`) is
//! a typed `Error::Task` on the stream, which then ends; the records before
//! the failed chunk are delivered in order, and the journal is untouched.

use events::{Error, Event, Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Deserializer, Serialize};

/// The seq whose payload panics when decoded: in the second replay chunk, so
/// the panic happens in the read ahead.
const POISON: u64 = 6_000;
const N: u64 = 8_000;

#[derive(Clone, Debug, PartialEq, Serialize)]
struct Ev(u64);

/// Armed once every event is appended: the writer decodes what it encodes
/// back (every event in debug builds), which must not panic.
static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl<'de> Deserialize<'de> for Ev {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        let armed = ARMED.load(std::sync::atomic::Ordering::SeqCst);
        assert!(!armed || n != POISON, "this event type panics while decoding {POISON}");
        Ok(Ev(n))
    }
}

impl Event for Ev {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_replay_read_is_a_typed_error_and_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Kept envelopes are never decoded again: keep few, so the replay reads the journal.
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).live_capacity(64).open().await.unwrap();
    for n in 1..=N {
        feed.append(None, Ev(n)).await.unwrap();
    }
    ARMED.store(true, std::sync::atomic::Ordering::SeqCst);

    let mut stream = feed.stream_from(Seq::ZERO);
    let mut seen = 0;
    let err = loop {
        match stream.next().await.expect("the stream reports the failure before it ends") {
            Ok(FeedItem::Event(env)) => {
                seen += 1;
                assert_eq!((env.seq.get(), &env.event), (seen, &Ev(seen)), "in order, no gap");
            }
            Ok(other) => panic!("unexpected item {other:?}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Task(_)), "{err:?}");
    assert!(events::error_chain(&err).starts_with("a blocking journal task failed"), "{}", events::error_chain(&err));
    assert_eq!(seen, 4_096, "the first chunk is delivered whole, the failed one not at all");
    assert!(stream.next().await.is_none(), "the stream ends after the error");

    // Nothing journaled was harmed: the feed still appends after N, and a
    // stream from past the poisoned seq reads on.
    assert_eq!(feed.append(None, Ev(N + 1)).await.unwrap(), Seq::new(N + 1));
    let mut after = feed.stream_from(Seq::new(POISON));
    let Some(Ok(FeedItem::Event(env))) = after.next().await else { panic!("expected an event") };
    assert_eq!(env.seq.get(), POISON + 1);
    feed.close().await.unwrap();
}
