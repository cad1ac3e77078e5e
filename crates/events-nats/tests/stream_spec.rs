//! Start-up checks: a stream with an unusable configuration, or holding
//! another journal's events, is refused before the first publish.

mod support;

use std::time::Duration;

use async_nats::jetstream::stream::{Config, StorageType};
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
}
