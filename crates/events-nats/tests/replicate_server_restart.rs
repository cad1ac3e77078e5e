//! Replication survives the server: `nats-server` is SIGKILLed mid-way, the
//! journal grows while it is down, and it is restarted on the same port and
//! store; the replicator reports the outage, reconnects, resumes after the
//! stream's last message, and the stream holds every seq once, in order, with
//! the right payload.

mod support;

use std::path::Path;
use std::time::Duration;

use events::layers::journal::Journal;
use events_nats::{Replicator, StreamSpec};
use support::{Server, fill, journal, verify_stream, within};

const N: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_way() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(dir.path());
    fill(&mut journal, 1, 50_000);
    let spec = StreamSpec::new("RESTART", "feed.restart");
    let replicator = Replicator::builder(dir.path(), js.clone(), spec)
        .window(512)
        .ack_timeout(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("first 20k", replicator.wait_for(20_000)).await.unwrap();

    // The second half is journaled while the server is down, so the replicator is
    // publishing into the outage (however far it got before the kill) and must report it.
    server.kill();
    fill(&mut journal, 50_001, N);
    within("the outage is reported", async {
        while replicator.stats().errors == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await; // polling a counter
        }
    })
    .await;
    server.restart();
    within("all 100k after the restart", replicator.wait_for(N)).await.unwrap();

    let stats = replicator.stats();
    assert_eq!((stats.replicated, stats.lag_seqs), (N, 0));
    assert!(stats.errors >= 1 && stats.last_error.is_some(), "the outage is reported: {stats:?}");
    assert_eq!(stats.skipped, 0);
    replicator.shutdown().await;
    verify_stream(&js, "RESTART", N).await;
}

/// `shutdown` cut short (a `timeout` around it) while the server is down
/// and acknowledgements wait (up to an ack timeout of 30 s): the dropped
/// call ends the replication task as a drop does, so the replicator's
/// consumer is free for its successor within 2 s. The task had been taken
/// out of the replicator before the wait, so the drop could not abort it:
/// it ran on, unsupervised, holding the consumer until its waits timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_cut_short_ends_the_task_and_frees_the_consumer() {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(dir.path());
    fill(&mut journal, 1, 50);
    let spec = StreamSpec::new("CUT_SHORT", "feed.cut_short");
    let replicator = Replicator::builder(dir.path(), js.clone(), spec)
        .ack_timeout(Duration::from_secs(30))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("50", replicator.wait_for(50)).await.unwrap();
    let name = replicator.consumer_name().unwrap().to_owned();
    server.kill();
    fill(&mut journal, 51, 60);
    // The replicator reads 51..=60 and publishes them into the outage.
    within("51..=60 sent", async {
        while replicator.stats().published < 60 {
            tokio::time::sleep(Duration::from_millis(5)).await; // polling a counter
        }
    })
    .await;
    let cut = tokio::time::timeout(Duration::from_millis(100), replicator.shutdown()).await;
    assert!(cut.is_err(), "the shutdown waits for acknowledgements that cannot come");
    let (dir_path, epoch) = (dir.path().to_owned(), journal.epoch());
    let free = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match events::layers::journal::ConsumerFile::open(&dir_path, &name, epoch) {
                Ok(_) => return Ok(()),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)), // polling the lock
            }
        }
    })
    .await
    .unwrap();
    assert!(free.is_ok(), "the consumer is still held: {free:?}");
}

/// Sends `sig` (`-STOP`, `-CONT`) to process `pid`.
fn signal(sig: &str, pid: u32) {
    let status = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// A journal in `dir` whose 1..=10 `spec`'s replicator (under
/// `ack_timeout`) has replicated, then the server frozen (SIGSTOP) and
/// 11..=20 appended; the server's pid, to thaw it.
async fn frozen_after_ten(
    server: &Server,
    js: &async_nats::jetstream::Context,
    dir: &Path,
    spec: StreamSpec,
    ack_timeout: Duration,
) -> (Journal, Replicator, u32) {
    let mut journal = journal(dir);
    fill(&mut journal, 1, 10);
    let replicator = Replicator::builder(dir, js.clone(), spec)
        .ack_timeout(ack_timeout)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("10", replicator.wait_for(10)).await.unwrap();
    let pid = server.pid().unwrap();
    signal("-STOP", pid);
    fill(&mut journal, 11, 20);
    (journal, replicator, pid)
}

/// `ack_timeout` is how long one acknowledgement may take, also past the
/// JetStream context's own 5 s: a server frozen for 7 s (SIGSTOP, as a
/// long leader election or a stalled disk holds it) with publishes in
/// flight, under `ack_timeout(30 s)`, answers them once it runs again, and
/// the replicator goes on with no resync and no error. The context's 5 s
/// had timed each one out ("awaiting an acknowledgement: timed out") and
/// resynchronised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_timeout_past_the_contexts_own_is_waited_for() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new("FROZEN", "feed.frozen");
    let (journal, replicator, pid) = frozen_after_ten(&server, &js, dir.path(), spec, Duration::from_secs(30)).await;
    within("11..=20 sent", async {
        while replicator.stats().published < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await; // polling a counter
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await; // the freeze, past the context's 5 s
    signal("-CONT", pid);
    within("20", replicator.wait_for(20)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.resyncs, stats.errors, &stats.last_error), (0, 0, &None), "{stats:?}");
    verify_stream(&js, "FROZEN", 20).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// Only publishes take `ack_timeout`: a start's requests keep the caller's
/// request timeout. A server frozen for 7 s (SIGSTOP) while a replicator
/// starts on a connection whose request timeout is 60 s, under the default
/// ack timeout of 5 s: the start waits for the server and succeeds, then
/// replicates. With the ack timeout set on every request, the start had
/// failed at 5 s ("timed out").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_keeps_the_callers_request_timeout() {
    let server = Server::start();
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(60)))
        .connect(server.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(dir.path());
    fill(&mut journal, 1, 10);
    let pid = server.pid().unwrap();
    signal("-STOP", pid);
    let thaw = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(7)).await; // the freeze, past the ack timeout
        signal("-CONT", pid);
    });
    let started = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("SLOW_START", "feed.slow_start"))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await;
    thaw.await.unwrap();
    let replicator = started.expect("the start waited for the frozen server");
    within("10", replicator.wait_for(10)).await.unwrap();
    verify_stream(&js, "SLOW_START", 10).await;
    replicator.shutdown().await;
    journal.close().unwrap();
}

/// A shutdown after publishes were given up on unacknowledged (a server
/// frozen with SIGSTOP: their acknowledgements timed out, and the task
/// has been failing to resync since) says so in
/// `ReplicationStats::unacknowledged`: the server may still store them
/// once it runs again, past `replicated`. Only a failure while stopping
/// had set it, so this shutdown said nothing was in flight (and `events
/// replicate` printed "the next run resumes there").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_after_publishes_were_given_up_on_says_they_went_unacknowledged() {
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = StreamSpec::new("GIVEN_UP", "feed.given_up");
    let (journal, replicator, pid) = frozen_after_ten(&server, &js, dir.path(), spec, Duration::from_millis(300)).await;
    let first_error = within("the acknowledgements timed out", async {
        loop {
            // `errors` counts up before `last_error` is set.
            if let Some(error) = replicator.stats().last_error {
                break error;
            }
            tokio::time::sleep(Duration::from_millis(5)).await; // polling a counter
        }
    })
    .await;
    // The timeout names the record whose acknowledgement it gave up on
    // (the resync after it, failing 300 ms later, may have replaced it
    // already on a slow machine: then there is nothing to check).
    if first_error.contains("acknowledgement") {
        assert!(first_error.contains("journal seq 11: timed out"), "{first_error}");
    }
    let stats = within("the shutdown", replicator.shutdown()).await;
    signal("-CONT", pid);
    assert_eq!(stats.replicated, 10, "{stats:?}");
    assert!(stats.unacknowledged.is_some(), "{stats:?}");
    journal.close().unwrap();
}
