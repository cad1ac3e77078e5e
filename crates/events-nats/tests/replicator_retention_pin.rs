//! The replicator pins the journal's retention: registered as a durable
//! consumer (`consumers/replicator.<subject>`), it keeps the writer from
//! pruning what JetStream has not acknowledged, within the journal's
//! `consumer_limit`. The scenario: a journal of 1 KiB segments keeping 2
//! segments, a replicator caught up at seq 50, then `nats-server` is
//! SIGKILLed while the writer appends enough to roll about a hundred
//! segments, then restarted on the same port and store.
//!
//! * Pinned (generous limit): the journal keeps every segment from the
//!   checkpoint on while the server is down, and the stream ends up with
//!   every seq, no gap, `skipped == 0`; the final checkpoint releases the
//!   segments at the next prune.
//! * Control (`register_consumer(false)`): the same outage loses records,
//!   counted exactly in `skipped`, so the pinned case can fail.
//! * Cut loose (limit of 4 segments): retention goes on past the limit, the
//!   journal counts the replicator cut loose, and the replicator reports the
//!   lost seqs exactly as it reports any record lost to retention
//!   (`skipped`, `NatsError::Pruned` in `last_error`), never silently; the
//!   stream holds 1..=50, then the earliest retained seq on.

mod support;

use std::time::Duration;

use async_nats::jetstream::Context;
use events::layers::journal::{Journal, JournalOptions, Retention, SyncPolicy, list_consumers};
use events_nats::{ReplicationStats, Replicator, StreamSpec};
use support::{Server, payload, stream_messages, verify_stream, within};

/// Seqs replicated before the outage.
const BEFORE: u64 = 50;
/// The journal's last seq: about a hundred 1 KiB segments.
const N: u64 = 2_000;

/// What one outage left behind.
struct Outage {
    server: Server,
    js: Context,
    journal: Journal,
    _dir: tempfile::TempDir,
    /// The stream's name.
    stream: String,
    /// The writer's earliest seq when the server came back.
    earliest: u64,
    /// The replicator's stats then.
    during: ReplicationStats,
    /// `(segments, pinned_segments, consumers_cut_loose)` of the writer then.
    writer: (usize, usize, u64),
    /// The replicator's stats after `shutdown`.
    after: ReplicationStats,
    /// The consumers on disk after `shutdown`: `(name, seq)`.
    consumers: Vec<(String, u64)>,
}

/// The scenario of the module docs, with retention waiting for consumers up
/// to `limit`; `register` is the builder's `register_consumer`.
async fn outage(stream: &str, limit: Retention, register: bool) -> Outage {
    let mut server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions::new()
        .sync(SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(Retention::segments(2))
        .consumer_limit(limit);
    let mut journal = Journal::open(dir.path(), options).unwrap().0;
    let subject = format!("feed.{}", stream.to_lowercase());
    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new(stream, subject))
        .register_consumer(register)
        .window(64)
        .ack_timeout(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(5))
        .checkpoint_interval(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    // These 50 seqs span 3 segments, one more than retention keeps: each is
    // replicated before the next is appended, so none is lost before the
    // outage, registered (pinned from seq 1 on) or not.
    for n in 1..=BEFORE {
        append(&mut journal, n, n);
        within("the first seqs", replicator.wait_for(n)).await.unwrap();
    }
    if register {
        within("the checkpoint reaches the stream", async {
            while replicator.stats().checkpoint != Some(BEFORE) {
                tokio::time::sleep(Duration::from_millis(5)).await; // polling a counter
            }
        })
        .await;
    }

    // One record while the server is down: the replicator's publish fails
    // and it keeps retrying the server (not reading the journal) while the
    // writer rolls the rest, so whatever retention removes, it meets as one
    // pruned range once the server is back. (The client may still deliver
    // that record after the reconnect: the stream then ends at 51, not 50.)
    server.kill();
    append(&mut journal, BEFORE + 1, BEFORE + 1);
    within("the outage is reported", async {
        while replicator.stats().resyncs == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await; // polling a counter
        }
    })
    .await;
    append(&mut journal, BEFORE + 2, N);
    let earliest = journal.first_seq();
    let during = replicator.stats();
    let stats = journal.stats();
    let writer = (stats.segments, stats.pinned_segments, stats.consumers_cut_loose);

    server.restart();
    within("every seq after the restart", replicator.wait_for(N)).await.unwrap();
    let after = replicator.shutdown().await;
    let consumers = list_consumers(dir.path())
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.checkpoint.expect("a readable checkpoint").seq))
        .collect();
    Outage { server, js, journal, _dir: dir, stream: stream.to_owned(), earliest, during, writer, after, consumers }
}

/// Appends seqs `from..=to` one by one, so retention runs at every roll.
fn append(journal: &mut Journal, from: u64, to: u64) {
    for n in from..=to {
        assert_eq!(journal.append(1_000 + n, payload(n)).unwrap(), n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicator_pins_retention_through_a_server_outage() {
    let mut o = outage("PIN", Retention::unlimited(), true).await;

    // While the server was down, the writer kept what the replicator needs.
    assert!(o.earliest <= BEFORE + 1, "earliest {} is past checkpoint {BEFORE} + 1", o.earliest);
    assert_eq!((o.during.checkpoint, o.during.pinned), (Some(BEFORE), true), "{:?}", o.during);
    assert_eq!(o.during.lag_seqs, N - BEFORE);
    let (segments, pinned_segments, cut_loose) = o.writer;
    assert!(segments > 50, "the outage rolled many segments: {segments}");
    assert_eq!((pinned_segments, cut_loose), (segments - 2, 0), "retention alone keeps 2 segments");

    // Every seq reached the stream once, in order, and nothing was skipped.
    assert_eq!((o.after.replicated, o.after.skipped, o.after.lag_seqs), (N, 0, 0), "{:?}", o.after);
    assert!(o.after.errors >= 1, "the outage is reported: {:?}", o.after);
    verify_stream(&o.js, "PIN", N).await;

    // The shutdown flushed the checkpoint and kept it; it now pins nothing.
    assert_eq!((o.after.checkpoint, o.after.pinned), (Some(N), true));
    assert_eq!(o.consumers, [("replicator.feed.pin".to_owned(), N)]);
    o.journal.prune().unwrap();
    assert_eq!(o.journal.stats().segments, 2, "a caught-up replicator holds nothing back");
    o.server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_registration_the_same_outage_loses_records() {
    let o = outage("NOPIN", Retention::unlimited(), false).await;
    assert!(o.earliest > BEFORE + 1, "retention went on: earliest {}", o.earliest);
    assert_eq!((o.during.checkpoint, o.during.pinned), (None, false));
    assert_eq!(o.writer.1, 0, "nothing pinned");
    assert_one_hole(&o).await;
    assert_eq!(o.after.checkpoint, None);
    assert!(o.consumers.is_empty(), "nothing registered: {:?}", o.consumers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_consumer_limit_the_replicator_is_cut_loose_and_says_so() {
    let o = outage("LOOSE", Retention::segments(4), true).await;

    // Retention went on past the limit and counted the replicator cut loose.
    assert!(o.earliest > BEFORE + 1, "retention went on: earliest {}", o.earliest);
    let (segments, _, cut_loose) = o.writer;
    assert!(segments <= 4, "the pin never exceeds the limit: {segments} segments");
    assert_eq!(cut_loose, 1, "cut loose once");
    assert_eq!((o.during.checkpoint, o.during.pinned), (Some(BEFORE), false), "{:?}", o.during);

    // The replicator reports the loss as any loss to retention: exactly the
    // seqs pruned, counted in `skipped`, named in `last_error`.
    assert_one_hole(&o).await;
    assert_eq!((o.after.replicated, o.after.checkpoint, o.after.pinned), (N, Some(N), true));
}

/// Asserts the stream holds `1..=k` (`k`: 50, or 51 if the client delivered
/// the record journaled during the outage after reconnecting), then
/// `earliest..=N`, and that the replicator reported exactly `k + 1 ..
/// earliest` as pruned: counted in `skipped` and named in `last_error`.
async fn assert_one_hole(o: &Outage) {
    let seqs: Vec<u64> =
        stream_messages(&o.js, &o.stream).await.iter().map(|m| m.seq().expect("a record, no gap marker")).collect();
    let k = seqs.iter().take_while(|&&s| s < o.earliest).count() as u64;
    assert!(k == BEFORE || k == BEFORE + 1, "the stream holds 1..={k} before the hole");
    let expected: Vec<u64> = (1..=k).chain(o.earliest..=N).collect();
    assert_eq!(seqs, expected, "1..={k}, then the earliest retained seq {} on", o.earliest);
    assert_eq!(o.after.skipped, o.earliest - 1 - k, "{:?}", o.after);
    let last_error = o.after.last_error.as_deref().unwrap_or_default();
    assert!(last_error.contains(&format!("seqs {}..={} were pruned", k + 1, o.earliest - 1)), "{last_error}");
}
