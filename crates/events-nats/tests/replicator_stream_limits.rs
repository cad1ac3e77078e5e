//! A shared stream whose messages of one feed are all removed while its
//! replicator runs (here a purge of its subject; the stream's limits do the
//! same when the other feeds are busy), then every message of the stream:
//! the replicator goes on after what it had acknowledged. It used to take "no message of mine in the stream" for
//! "never replicated" and start over from seq 1, whose re-sends the dedup
//! window answered as duplicates, each resetting the subject guard to the
//! removed message, so the next new record was refused for ever.

mod support;

use std::time::Duration;

use events_nats::{Replicator, StreamSpec};
use support::{Server, fill, journal, seqs_of_epoch, stream_messages, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_messages_were_removed_goes_on_after_what_it_replicated() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let (mut a, mut b) = (journal(&tmp.path().join("a")), journal(&tmp.path().join("b")));
    fill(&mut a, 1, 5);
    fill(&mut b, 1, 3);
    let start = |dir: &str, feed: &str| {
        Replicator::builder(tmp.path().join(dir), js.clone(), StreamSpec::shared("SHARED", "app").feed(feed))
            .poll_interval(Duration::from_millis(5))
            .start()
    };
    let replicate_a = start("a", "a").await.unwrap();
    let replicate_b = start("b", "b").await.unwrap();
    within("a's first records", replicate_a.wait_for(5)).await.unwrap();
    within("b's records", replicate_b.wait_for(3)).await.unwrap();

    let stream = js.get_stream("SHARED").await.unwrap();
    stream.purge().filter("app.a").await.unwrap();
    fill(&mut a, 6, 8);
    within("a's next records", replicate_a.wait_for(8)).await.unwrap();

    let of_a = seqs_of_epoch(&js, "SHARED", a.epoch()).await;
    assert_eq!(of_a, [6, 7, 8], "only the new records, once each");

    // Now every feed's messages are gone (a purge; `max_age` on a quiet
    // system does the same): the stream is empty, its last sequence is not.
    stream.purge().await.unwrap();
    fill(&mut a, 9, 10);
    within("a's records after the stream emptied", replicate_a.wait_for(10)).await.unwrap();
    let left: Vec<u64> = stream_messages(&js, "SHARED").await.iter().filter_map(|m| m.seq()).collect();
    assert_eq!(left, [9, 10]);
    let stats = replicate_a.shutdown().await;
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    replicate_b.shutdown().await;
}

/// A replicator restarted into an emptied stream whose dedup window still
/// holds the ids of its latest messages: the older records are stored
/// again, the latest are acknowledged as duplicates (not stored), and the
/// next new record goes in after one resync. The resync went back to the
/// stream's last message, sent the duplicates again, and met the guard's
/// refusal after them, resync after resync, until the window forgot them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_into_an_emptied_stream_within_the_dedup_window_goes_on() {
    let server = Server::start();
    let js = server.jetstream().await;
    let window = Duration::from_secs(1);
    let exclusive = StreamSpec::new("PURGED", "purged").duplicate_window(window);
    let shared = StreamSpec::shared("PURGED_SHARED", "app").feed("a").duplicate_window(window);
    for spec in [exclusive, shared] {
        restart_into_the_emptied_stream(&js, spec).await;
    }
}

async fn restart_into_the_emptied_stream(js: &async_nats::jetstream::Context, spec: StreamSpec) {
    let name = spec.name().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let mut j = journal(tmp.path());
    let start =
        || Replicator::builder(tmp.path(), js.clone(), spec.clone()).poll_interval(Duration::from_millis(5)).start();
    let replicator = start().await.unwrap();
    fill(&mut j, 1, 10);
    within("1..=10", replicator.wait_for(10)).await.unwrap();
    // The server forgets ids older than its window (1 s) on a timer of the
    // same period: no event tells when, so wait a few periods. Then the
    // window is made long, so 11..=20 stay in it however slow the rest is.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let mut config = js.get_stream(&name).await.unwrap().cached_info().config.clone();
    config.duplicate_window = Duration::from_secs(120);
    js.update_stream(config).await.unwrap();
    fill(&mut j, 11, 20);
    within("11..=20", replicator.wait_for(20)).await.unwrap();
    replicator.shutdown().await;
    js.get_stream(&name).await.unwrap().purge().await.unwrap();

    let replicator = start().await.unwrap();
    fill(&mut j, 21, 21);
    within("21 after the restart", replicator.wait_for(21)).await.unwrap();
    let stats = replicator.shutdown().await;
    assert!(stats.resyncs <= 1, "{name}: {stats:?}");
    assert_eq!(stats.duplicates, 10, "{name}: 11..=20 were in the dedup window: {stats:?}");
    let seqs: Vec<u64> = stream_messages(js, &name).await.iter().filter_map(|m| m.seq()).collect();
    let mut expected: Vec<u64> = (1..=10).collect();
    expected.push(21);
    assert_eq!(seqs, expected, "{name}: 1..=10 stored again, 11..=20 duplicates, then 21");
}
