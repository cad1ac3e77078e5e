//! A corrupt frame in a sealed segment cannot be fixed by asking the server
//! again: the replicator publishes every record before it, reports the
//! error (file and offset) in its stats as a stall, and retries the read
//! with a growing pause: a bounded number of attempts in a fixed time, no
//! resync, no busy loop, and it still shuts down at once.

mod support;

use std::time::Duration;

use events_nats::{Replicator, StreamSpec};
use support::{Server, damage_frame, fill, frame_offset, segments, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_sealed_frame_backs_off_and_is_reported() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    fill(&mut journal, 1, 200);
    journal.roll().unwrap(); // seals the segment holding 1..=200
    fill(&mut journal, 201, 300);
    journal.close().unwrap();
    let sealed = segments(dir.path())[0].clone();
    damage_frame(&sealed, 1, 120);

    let spec = StreamSpec::new("CORRUPT", "feed.corrupt");
    let replicator = Replicator::builder(dir.path(), js.clone(), spec)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("everything before the damage", replicator.wait_for(119)).await.unwrap();
    within("the stall is reported", async {
        while replicator.stats().stalls == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await; // polling a counter
        }
    })
    .await;

    // An observation window, not a synchronisation: a replicator without
    // backoff would read the damaged frame thousands of times in it. With
    // pauses of 50, 100, 200, 400, 800 ms, at most six more attempts fit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = replicator.stats();
    assert!((1..=8).contains(&stats.stalls), "bounded attempts: {stats:?}");
    assert!(stats.errors >= stats.stalls && stats.resyncs == 0, "a local error is no resync: {stats:?}");
    assert_eq!((stats.replicated, stats.published, stats.acked, stats.gaps), (119, 119, 119, 0), "{stats:?}");
    assert!(
        stats.lag_seqs > 0 && stats.lag > Duration::ZERO,
        "a stuck replicator shows its lag in time too: {stats:?}"
    );
    let last_error = stats.last_error.expect("the error is reported");
    let offset = frame_offset(1, 120).to_string();
    assert!(last_error.contains(&sealed.display().to_string()) && last_error.contains(&offset), "{last_error}");
    within("shutdown during a pause", replicator.shutdown()).await;
    support::verify_stream(&js, "CORRUPT", 119).await;
}
