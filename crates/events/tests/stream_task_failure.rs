//! A record whose decode panics (here: the event type's own `Deserialize`)
//! is an undecodable record, for the reader's `OnUndecodable` policy like
//! any other: under `Fail`, the events before it, then `Error::Decode`
//! naming its seq and the panic, and the end; under `Skip`, an
//! `Undecodable` item and the events after it. The journal is untouched.
//! It had panicked the read: `Error::Task` naming no record, the rest of its
//! chunk withheld, under every policy, for every reader reaching that seq.
//! Each read that meets the record decodes it once, so the panic hook
//! reports it once per read (a replay had decoded its chunk again, each
//! record's panic caught, and reported it twice).

use events::{Error, Event, Feed, FeedItem, OnUndecodable, Seq, SyncPolicy};
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
async fn a_record_whose_decode_panics_is_undecodable_for_the_readers_policy() {
    let dir = tempfile::tempdir().unwrap();
    // Kept envelopes are never decoded again: keep few, so the replay reads the journal.
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).live_capacity(64).open().await.unwrap();
    for n in 1..=N {
        feed.append(Some("s"), Ev(n)).await.unwrap();
    }
    ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
    static REPORTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload_as_str().is_some_and(|m| m.contains("panics while decoding")) {
            REPORTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        report(info);
    }));

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
    assert!(matches!(err, Error::Decode { seq, .. } if seq == Seq::new(POISON)), "{err:?}");
    assert!(events::error_chain(&err).contains("panicked: this event type panics"), "{}", events::error_chain(&err));
    assert_eq!(seen, POISON - 1, "every event before it is delivered");
    assert!(stream.next().await.is_none(), "the stream ends after the error");

    // Under `Skip`: the item, then the events after it.
    let reader = feed.reader().on_undecodable(OnUndecodable::Skip);
    let mut skipping = reader.stream_from(Seq::new(POISON - 1));
    match skipping.next().await {
        Some(Ok(FeedItem::Undecodable { seq, error, .. })) => {
            assert_eq!(seq, Seq::new(POISON));
            assert!(error.contains("panicked"), "{error}");
        }
        other => panic!("expected the undecodable item: {other:?}"),
    }
    let Some(Ok(FeedItem::Event(env))) = skipping.next().await else { panic!("expected the next event") };
    assert_eq!(env.seq.get(), POISON + 1);
    // A per-stream read under `Skip`: the error naming it, then on.
    let mut history = reader.read_stream("s", Seq::new(POISON - 1)).unwrap();
    let first = history.next().await;
    assert!(matches!(&first, Some(Err(Error::Decode { seq, .. })) if *seq == Seq::new(POISON)), "{first:?}");
    assert!(matches!(history.next().await, Some(Ok(env)) if env.seq == Seq::new(POISON + 1)));

    // Three reads met it (the replay, the replay under `Skip`, the
    // per-stream read): reported three times, once each.
    assert_eq!(REPORTED.load(std::sync::atomic::Ordering::SeqCst), 3, "the panic is reported once per read");

    // Nothing journaled was harmed: the feed still appends after N.
    assert_eq!(feed.append(None, Ev(N + 1)).await.unwrap(), Seq::new(N + 1));
    feed.close().await.unwrap();
}
