//! What the client and server limit on one publish, met by the replicator:
//!
//! * a record larger than the server takes in one message (`max_payload`,
//!   1 MiB by default), or than the stream stores (`max_msg_size`): the
//!   replicator stops before it with a typed `TooLarge` naming its seq,
//!   after the records before it. It had taken the refusal for a passing
//!   server error and resynced every 2 s, for ever, replicating nothing
//!   after it;
//! * a window larger than the context's `max_ack_inflight` (the number of
//!   acknowledgements it lets be pending; 5,000 by default): replication
//!   goes on. The send waited for a slot only the replicator's own oldest
//!   acknowledgement could free, and neither replication nor `shutdown`
//!   ever went on. So does a window of `usize::MAX`, whose queue had been
//!   allocated at that size up front;
//! * a shutdown under a window of one (a shared stream's): it stops before
//!   the next record, not after the rest of the chunk under way.

mod support;

use std::time::Duration;

use events_nats::{Replicator, StreamSpec};
use support::{Server, fill, journal, stopped, stream_messages, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_the_server_takes_stops_the_replicator_before_it() {
    let server = Server::start();
    let js = server.jetstream().await;
    let error = stops_before(&js, StreamSpec::new("BIG", "big"), 6, 2 << 20).await;
    assert!(error.contains("record 6 (2097152 bytes)"), "{error}");
}

/// Replicates a journal of records `1..seq` and `seq + 1..=seq + 4`, and
/// between them record `seq` of `bytes` bytes, into `spec`'s stream: the
/// replicator must stop after the records before it, with no resync.
/// Returns its last error.
async fn stops_before(js: &async_nats::jetstream::Context, spec: StreamSpec, seq: u64, bytes: usize) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let mut j = journal(&dir);
    fill(&mut j, 1, seq - 1);
    assert_eq!(j.append(0, vec![7u8; bytes]).unwrap(), seq);
    fill(&mut j, seq + 1, seq + 4);
    let name = spec.name().to_owned();
    let replicator =
        Replicator::builder(&dir, js.clone(), spec).poll_interval(Duration::from_millis(5)).start().await.unwrap();
    let stats = stopped(&replicator).await;
    assert_eq!((stats.replicated, stats.resyncs), (seq - 1, 0), "{stats:?}");
    let seqs: Vec<u64> = stream_messages(js, &name).await.iter().filter_map(|m| m.seq()).collect();
    assert_eq!(seqs, (1..seq).collect::<Vec<_>>());
    assert!(replicator.wait_for(seq).await.is_err(), "waiting for the record it cannot publish fails");
    within("shutdown", replicator.shutdown()).await;
    stats.last_error.unwrap_or_default()
}

/// The same for a record the stream refuses in its acknowledgement: one
/// over a stream's `max_msg_size` (here 1 KiB, a stream made by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_larger_than_the_stream_stores_stops_the_replicator_before_it() {
    use async_nats::jetstream::stream::Config;
    let server = Server::start();
    let js = server.jetstream().await;
    let config = Config {
        name: "SMALL".into(),
        subjects: vec!["small".into()],
        max_message_size: 1024,
        duplicate_window: Duration::from_secs(120),
        ..Config::default()
    };
    js.create_stream(config).await.unwrap();
    let error = stops_before(&js, StreamSpec::new("SMALL", "small"), 4, 2_000).await;
    assert!(error.contains("record 4 (2000 bytes)") && error.contains("the stream refused it"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_larger_than_the_contexts_pending_acknowledgements_goes_on() {
    let server = Server::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::ContextBuilder::new().max_ack_inflight(16).build(client);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let mut j = journal(&dir);
    fill(&mut j, 1, 1_000);

    // Also the widest window there is: its queue had been allocated at
    // that size ("capacity overflow"), so the replicator stopped at once.
    for (name, window) in [("WIDE", 64), ("WIDEST", usize::MAX)] {
        let replicator = Replicator::builder(&dir, js.clone(), StreamSpec::new(name, name.to_lowercase()))
            .window(window)
            .poll_interval(Duration::from_millis(5))
            .start()
            .await
            .unwrap();
        within("every record replicated", replicator.wait_for(1_000)).await.unwrap();
        let stats = within("shutdown", replicator.shutdown()).await;
        assert_eq!((stats.resyncs, stats.duplicates), (0, 0), "{name}: {stats:?}");
        let seqs: Vec<u64> = stream_messages(&js, name).await.iter().filter_map(|m| m.seq()).collect();
        assert_eq!(seqs, (1..=1_000).collect::<Vec<_>>(), "{name}");
    }
}

/// A shutdown while a shared stream's window of one works through a chunk
/// of records read from the journal: it stops before the next record, not
/// after the rest of the chunk (up to 1,023 more round trips; 50 s at
/// 50 ms each, past `shutdown`'s ack timeout and a supervisor's grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_before_the_rest_of_the_batch_under_way() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    fill(&mut j, 1, 3000);
    let spec = StreamSpec::shared("STOPPING", "app").feed("a");
    let replicator = Replicator::builder(dir.path(), js.clone(), spec).start().await.unwrap();
    within("the first record", replicator.wait_for(1)).await.unwrap();
    let stats = replicator.shutdown().await;
    assert!(stats.replicated < 100, "published {} records after the shutdown", stats.replicated);
    assert_eq!(stream_messages(&js, "STOPPING").await.len() as u64, stats.replicated);
}
