//! What a [`Watched`] store promises around failure: a failed append returns
//! the store's error and reaches no sink; a sink that panics cannot fail an
//! append; emission is uniform, so terminal events reach the sink like any
//! other unless a `Filter` excludes them.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use events_core::{Envelope, Seq};
use events_sink::{DurableStore, EventSink, MemoryStore, MemoryStoreError, SinkExt, Watched};
use support::Recorder;

#[tokio::test]
async fn failing_append_is_returned_and_never_emitted() {
    let recorder = Recorder::<Envelope<&'static str>>::new();
    let store = Watched::new(MemoryStore::new(), Arc::clone(&recorder));

    store.append(None, "first").await.unwrap();
    store.store().fail_next(2);
    let err = store.append(None, "refused").await.unwrap_err();
    assert!(matches!(err, MemoryStoreError::Injected { seq } if seq == Seq::new(2)));
    assert!(store.append(None, "refused too").await.is_err());
    let third = store.append(None, "second").await.unwrap();

    assert_eq!(third.seq, Seq::new(2), "a failed append must not consume a seq");
    let emitted: Vec<&str> = recorder.seen().iter().map(|e| e.event).collect();
    assert_eq!(emitted, ["first", "second"]);
    let stats = store.stats();
    assert_eq!((stats.appended, stats.failed), (2, 2));
}

/// The events a sink was given, kept by the test.
type Given = std::sync::Arc<std::sync::Mutex<Vec<u32>>>;

struct Panics(Given);

#[async_trait]
impl EventSink<Envelope<u32>> for Panics {
    async fn emit(&self, event: &Envelope<u32>) {
        self.0.lock().unwrap().push(event.event);
        assert!(event.event != 13, "this sink cannot stand 13");
    }
}

#[tokio::test]
async fn panicking_sink_cannot_fail_the_append() {
    let given = Given::default();
    let store = Watched::new(MemoryStore::new(), Panics(given.clone()));
    for n in [12, 13, 14] {
        let env = store.append(None, n).await.expect("the sink must not fail an append");
        assert_eq!(env.event, n);
    }
    assert_eq!(store.store().len(), 3);
    let stats = store.stats();
    assert_eq!((stats.appended, stats.sink_panics), (3, 1));
    assert_eq!(*given.lock().unwrap(), [12, 13, 14], "the sink gets the event after its panic");
}

/// A sink written without `#[async_trait]` that panics before it returns
/// its future, on 13.
struct PanicsEagerly(Given);

impl EventSink<Envelope<u32>> for PanicsEagerly {
    fn emit<'s, 'e, 'f>(&'s self, event: &'e Envelope<u32>) -> Pin<Box<dyn Future<Output = ()> + Send + 'f>>
    where
        's: 'f,
        'e: 'f,
        Self: 'f,
    {
        self.0.lock().unwrap().push(event.event);
        assert!(event.event != 13, "this sink cannot stand 13, not even to build its future");
        Box::pin(async {})
    }
}

/// The panic comes while the sink builds its future, not while it runs:
/// the append still stands. `Watched` called `emit` outside its guard, and
/// the append panicked with the event already stored.
#[tokio::test]
async fn a_sink_that_panics_building_its_future_cannot_fail_the_append() {
    let given = Given::default();
    let store = Watched::new(MemoryStore::new(), PanicsEagerly(given.clone()));
    for n in [12, 13, 14] {
        let env = store.append(None, n).await.expect("the sink must not fail an append");
        assert_eq!(env.event, n);
    }
    let stats = store.stats();
    assert_eq!((stats.appended, stats.sink_panics), (3, 1));
    assert_eq!(*given.lock().unwrap(), [12, 13, 14], "the sink gets the event after its panic");
}

#[derive(Clone, Debug, PartialEq)]
enum Job {
    Progress(u8),
    Done,
}

#[tokio::test]
async fn emission_is_uniform_and_filter_is_the_host_choice() {
    let everything = Recorder::<Envelope<Job>>::new();
    let progress_only = Recorder::<Envelope<Job>>::new();
    let sink = Arc::clone(&everything).tee(Arc::clone(&progress_only).filter(|e: &Envelope<Job>| e.event != Job::Done));
    let store = Watched::new(MemoryStore::new(), sink);

    for job in [Job::Progress(50), Job::Done, Job::Progress(0), Job::Done] {
        store.append(Some("job-1".into()), job).await.unwrap();
    }

    let all: Vec<Job> = everything.seen().into_iter().map(|e| e.event).collect();
    assert_eq!(all, [Job::Progress(50), Job::Done, Job::Progress(0), Job::Done]);
    let filtered: Vec<u64> = progress_only.seen().iter().map(|e| e.seq.get()).collect();
    assert_eq!(filtered, [1, 3]);
    let stats = store.sink().stats();
    assert_eq!((stats.emitted, stats.filtered, stats.lost()), (4, 2, 0));
}

/// A sink that never finishes its emit.
struct Stalls;

#[async_trait]
impl EventSink<Envelope<u32>> for Stalls {
    async fn emit(&self, _: &Envelope<u32>) {
        std::future::pending::<()>().await;
    }
}

/// A caller gives up on its append while the sink runs: the event is
/// stored, and the emit cut short is counted (it had been counted nowhere:
/// `appended` said the sink had it). The next append goes through.
#[tokio::test]
async fn an_emit_cut_short_by_a_dropped_append_is_counted() {
    let store = Watched::new(MemoryStore::new(), Stalls);
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(20), store.append(None, 1)).await;
    assert!(gave_up.is_err(), "the sink stalls");
    assert_eq!(store.store().len(), 1, "the event stays stored");
    assert_eq!((store.stats().appended, store.stats().sink_cut), (1, 1), "{:?}", store.stats());
    let again = tokio::time::timeout(std::time::Duration::from_millis(20), store.append(None, 2)).await;
    assert!(again.is_err());
    assert_eq!((store.store().len(), store.stats().sink_cut), (2, 2));
}
