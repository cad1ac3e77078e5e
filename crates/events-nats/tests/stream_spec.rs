//! Start-up checks: a stream with an unusable configuration (memory
//! storage, a subject that does not capture the feed's, a short dedup
//! window, discarding new messages when full, sealed, or an exclusive
//! stream with other subjects or sourcing other streams), or holding
//! another journal's events, is
//! refused before the first publish.

mod support;

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use events_nats::{NatsError, Replicator, StreamSpec};
use support::{Server, fill, journal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_streams_are_refused() {
    let server = Server::start();
    let js = server.jetstream().await;
    js.create_stream(Config {
        name: "MEM".into(),
        subjects: vec!["feed.mem".into()],
        storage: StorageType::Memory,
        ..Config::default()
    })
    .await
    .unwrap();
    let err = StreamSpec::new("MEM", "feed.mem").ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "storage", .. }), "{err}");
    let err = StreamSpec::new("MEM", "feed.other").ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "subjects", .. }), "{err}");

    // Streams that stop taking messages for good, and an exclusive stream
    // another publisher can write to: the replicator had started, then
    // retried for ever (each full stream's refusal, each resync finding no
    // message of the feed in a stream that is not empty).
    js.create_stream(Config {
        name: "FULL".into(),
        subjects: vec!["feed.full".into()],
        max_messages: 3,
        discard: DiscardPolicy::New,
        ..Config::default()
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fill(&mut journal(tmp.path()), 1, 5);
    let err =
        Replicator::builder(tmp.path(), js.clone(), StreamSpec::new("FULL", "feed.full")).start().await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "discard", .. }), "{err}");
    let shared = StreamSpec::shared("FULL_SHARED", "full");
    js.create_stream(Config {
        name: "FULL_SHARED".into(),
        subjects: vec!["full.*".into()],
        max_bytes: 1 << 20,
        discard: DiscardPolicy::New,
        ..Config::default()
    })
    .await
    .unwrap();
    let err = shared.feed("a").ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "discard", .. }), "{err}");
    // A per-subject limit drops the subject's oldest message unless
    // `discard_new_per_subject` is set: such a stream keeps taking messages.
    js.create_stream(Config {
        name: "PER_SUBJECT".into(),
        subjects: vec!["per.*".into()],
        max_messages_per_subject: 3,
        discard: DiscardPolicy::New,
        ..Config::default()
    })
    .await
    .unwrap();
    StreamSpec::shared("PER_SUBJECT", "per").feed("a").ensure(&js).await.unwrap();
    js.create_stream(Config {
        name: "EXTRA".into(),
        subjects: vec!["feed.extra".into(), "other".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let err = StreamSpec::new("EXTRA", "feed.extra").ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "subjects", .. }), "{err}");
    // Sourced from another stream: its messages come in beside the feed's.
    js.create_stream(Config { name: "ORIGIN".into(), subjects: vec!["origin".into()], ..Config::default() })
        .await
        .unwrap();
    js.create_stream(Config {
        name: "SOURCED".into(),
        subjects: vec!["feed.sourced".into()],
        sources: Some(vec![async_nats::jetstream::stream::Source { name: "ORIGIN".into(), ..Default::default() }]),
        ..Config::default()
    })
    .await
    .unwrap();
    let err = StreamSpec::new("SOURCED", "feed.sourced").ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "sources", .. }), "{err}");
    let sealed = StreamSpec::new("SEALED", "feed.sealed");
    let mut config = sealed.ensure(&js).await.unwrap().cached_info().config.clone();
    config.sealed = true;
    js.update_stream(config).await.unwrap();
    let err = sealed.ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "sealed", .. }), "{err}");

    let short = StreamSpec::new("SHORT", "feed.short").duplicate_window(Duration::from_secs(10));
    short.ensure(&js).await.unwrap();
    let err = StreamSpec::new("SHORT", "feed.short").ensure(&js).await.unwrap_err();
    assert!(matches!(err, NatsError::StreamMismatch { field: "duplicate_window", .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_epoch_is_refused() {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new("EPOCH", "feed.epoch");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fill(&mut journal(a.path()), 1, 5);
    let mut jb = journal(b.path());
    fill(&mut jb, 1, 5);

    let first = Replicator::builder(a.path(), js.clone(), spec.clone()).start().await.unwrap();
    first.wait_for(5).await.unwrap();
    first.shutdown().await;
    let err = Replicator::builder(b.path(), js.clone(), spec).start().await.unwrap_err();
    match err {
        NatsError::EpochMismatch { journal_epoch, .. } => assert_eq!(journal_epoch, jb.epoch()),
        other => panic!("expected an epoch mismatch, got {other}"),
    }
    // The refused start registered no consumer: a checkpoint left behind
    // would pin the journal's retention for a replicator that never ran.
    let left = events::layers::journal::list_consumers(b.path()).unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// A poll interval or an ack timeout of zero is refused by `start`, naming
/// the setting, before the stream is made. Zero had been taken: a poll
/// interval of zero read the journal in a busy loop, and an ack timeout of
/// zero started, then timed out every publish, replicating nothing (found
/// by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_durations_are_refused_before_the_start() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    fill(&mut j, 1, 3);
    let spec = StreamSpec::new("ZERO", "feed.zero");
    let builder = || Replicator::builder(dir.path(), js.clone(), spec.clone());
    for (setting, refused) in [
        ("poll_interval", builder().poll_interval(Duration::ZERO).start().await),
        ("ack_timeout", builder().ack_timeout(Duration::ZERO).start().await),
    ] {
        match refused {
            Err(NatsError::Setting { setting: named, ref reason }) => {
                assert_eq!(named, setting);
                assert!(reason.contains("above zero"), "{reason}");
            }
            other => panic!("{setting}: expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
    assert!(js.get_stream("ZERO").await.is_err(), "no stream made");
    j.close().unwrap();
}
