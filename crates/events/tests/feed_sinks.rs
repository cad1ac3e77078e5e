//! Sinks see durable events in seq order, only after they are readable from
//! the journal, and a sink that never returns neither blocks appends nor the
//! other sinks: the timeout cuts it and counts it, and without one it loses
//! only its own events.

mod support;

use std::sync::Arc;
use std::time::Duration;

use events::layers::journal::Reader;
use events::{Envelope, EventSink, Feed, SyncPolicy};
use parking_lot::Mutex;
use support::{Ev, eventually, msg};
use tokio::sync::mpsc;

/// Checks, for each envelope, that the journal already holds it.
struct JournalCheckingSink {
    reader: Reader,
    tx: mpsc::UnboundedSender<(u64, bool)>,
}

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for JournalCheckingSink {
    async fn emit(&self, env: &Envelope<Ev>) {
        let readable = self.reader.last_seq().unwrap() >= env.seq.get();
        let _ = self.tx.send((env.seq.get(), readable));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_see_durable_events_in_seq_order_after_journaling() {
    let dir = tempfile::tempdir().unwrap();
    // Create the journal so the sink's reader can open it before the feed.
    Feed::<Ev>::builder(dir.path()).open().await.unwrap().close().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = JournalCheckingSink { reader: Reader::open(dir.path()).unwrap(), tx };
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).sink(sink).open().await.unwrap();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let feed = feed.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    feed.append(Some("s"), msg(t * 1000 + n)).await.unwrap();
                }
                feed.record(None, &Ev::Token(1)); // ephemeral: never reaches sinks
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut expected = 1;
    while expected <= 400 {
        let (seq, readable) = rx.recv().await.unwrap();
        assert_eq!(seq, expected, "sink saw events out of seq order");
        assert!(readable, "sink saw seq {seq} before it was readable from the journal");
        expected += 1;
    }
    assert_eq!(feed.stats().sink_dropped, 0);
    feed.close().await.unwrap();
}

struct Stuck;

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for Stuck {
    async fn emit(&self, _env: &Envelope<Ev>) {
        futures::future::pending::<()>().await;
    }
}

struct Collect(Arc<Mutex<Vec<u64>>>);

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for Collect {
    async fn emit(&self, env: &Envelope<Ev>) {
        self.0.lock().push(env.seq.get());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_sink_is_cut_by_timeout_and_never_blocks_appends() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .sink(Stuck)
        .sink(Collect(Arc::clone(&seen)))
        .sink_timeout(Duration::from_millis(5))
        .sink_queue(2)
        .open()
        .await
        .unwrap();
    for n in 1..=50 {
        // Appends complete even though the first sink never returns.
        feed.append(None, msg(n)).await.unwrap();
    }
    assert_eq!(feed.stats().appended, 50);
    // The stuck sink is cut by the timeout, and that shows in the stats.
    tokio::time::timeout(Duration::from_secs(10), async {
        while feed.stats().sink_timeouts == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("no sink timeout was counted");
    let handle = feed.clone();
    feed.close().await.unwrap();
    // Whatever was not dropped reached the second sink, in order: each
    // event either reached it or is counted against its own queue.
    let seen = seen.lock().clone();
    let dropped = handle.stats().sinks[1].queue_dropped;
    assert!(!seen.is_empty(), "the second sink got nothing");
    assert_eq!(seen.len() as u64 + dropped, 50, "{seen:?}, {dropped} dropped");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
}

/// A sink that never returns, with no timeout: it loses its own events
/// (its queue fills, counted in its report), while the sink beside it sees
/// every event in order. Both used to share one task, so the stuck sink
/// starved the other for the feed's life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sink_without_a_timeout_starves_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .named_sink("stuck", Stuck)
        .named_sink("collect", Collect(Arc::clone(&seen)))
        .sink_queue(2)
        .sink_close_wait(Duration::from_millis(50))
        .open()
        .await
        .unwrap();
    for n in 1..=50 {
        // A bound on a hang (an append waiting on the stuck sink), not a timing.
        tokio::time::timeout(Duration::from_secs(20), feed.append(None, msg(n)))
            .await
            .expect("an append waited on the stuck sink")
            .unwrap();
        // One event at a time, so the healthy sink's own queue never fills.
        eventually("the sink beside the stuck one got the event", || seen.lock().len() >= n as usize).await;
    }
    assert_eq!(*seen.lock(), (1..=50).collect::<Vec<u64>>());
    let stats = feed.stats();
    let (stuck, collect) = (&stats.sinks[0], &stats.sinks[1]);
    assert_eq!((stuck.name.as_str(), collect.name.as_str()), ("stuck", "collect"));
    assert!(stuck.queue_dropped > 0, "{stats:?}");
    assert_eq!(collect.queue_dropped, 0, "{stats:?}");
    assert_eq!(stats.sink_dropped, stuck.queue_dropped);
    feed.close().await.unwrap();
}

/// Takes 1 ms per event, then records its seq.
struct Slow(Arc<Mutex<Vec<u64>>>);

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for Slow {
    async fn emit(&self, env: &Envelope<Ev>) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.0.lock().push(env.seq.get());
    }
}

/// A sink slower than the appends: when `close` returns, it has seen every
/// journaled event (the feed waited for the sink task to drain its queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_after_the_sinks_took_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .sink(Slow(Arc::clone(&seen)))
        .sink_queue(1024)
        .open()
        .await
        .unwrap();
    for n in 1..=100 {
        feed.record(None, &msg(n));
    }
    feed.close().await.unwrap();
    let seen = seen.lock().clone();
    assert_eq!(seen, (1..=100).collect::<Vec<_>>(), "close returned before the sink saw everything");
}

/// A sink behind its own queue (`Offload`, as the sink crate advises for a
/// slow one) or one that writes out in `flush`: `close` flushes each after
/// its last event, so both have delivered everything when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_sinks_that_queue_or_buffer() {
    /// Holds events until `flush`, as a sink writing in groups does.
    struct Buffered {
        held: Mutex<Vec<u64>>,
        written: Arc<Mutex<Vec<u64>>>,
    }

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for Buffered {
        async fn emit(&self, env: &Envelope<Ev>) {
            self.held.lock().push(env.seq.get());
        }
        async fn flush(&self) {
            let held = std::mem::take(&mut *self.held.lock());
            self.written.lock().extend(held);
        }
    }

    /// Takes every event and panics in its `flush`.
    struct FlushPanics;

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for FlushPanics {
        async fn emit(&self, _: &Envelope<Ev>) {}
        async fn flush(&self) {
            panic!("this sink's flush panics");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let (offloaded, written) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .sink(FlushPanics)
        .sink(events::layers::sink::Offload::new(Slow(Arc::clone(&offloaded)), 1024))
        .sink(Buffered { held: Mutex::new(Vec::new()), written: Arc::clone(&written) })
        .open()
        .await
        .unwrap();
    for n in 1..=100 {
        feed.record(None, &msg(n));
    }
    let reader = feed.reader();
    feed.close().await.expect("a sink's panicking flush is no failure of the close");
    let all = (1..=100).collect::<Vec<_>>();
    assert_eq!(*offloaded.lock(), all, "close returned before the offloaded sink saw everything");
    assert_eq!(*written.lock(), all, "close never flushed the buffering sink");
    // Caught and counted as that sink's, the others flushed after it.
    let stats = reader.stats();
    let panics: Vec<u64> = stats.sinks.iter().map(|s| s.panics).collect();
    assert_eq!((panics, stats.sink_panics), (vec![1, 0, 0], 1), "{stats:?}");
}

/// A sink that never finishes its first event: `close` waits for it as
/// long as `sink_close_wait` says (10 s by default), then returns Ok (the
/// journal closed), and every event stays journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_a_stuck_sink_only_as_long_as_it_is_told() {
    struct Stuck;

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for Stuck {
        async fn emit(&self, _: &Envelope<Ev>) {
            std::future::pending::<()>().await;
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_millis(300);
    let feed: Feed<Ev> =
        Feed::builder(dir.path()).sync(SyncPolicy::Never).sink(Stuck).sink_close_wait(wait).open().await.unwrap();
    for n in 1..=100 {
        feed.record(None, &msg(n));
    }
    feed.sync().await.unwrap();
    let start = std::time::Instant::now();
    // Under the 10 s default: a close that ignored `sink_close_wait` fails here.
    tokio::time::timeout(Duration::from_secs(8), feed.close())
        .await
        .expect("close waited for the stuck sink longer than it was told")
        .unwrap();
    assert!(start.elapsed() >= wait, "close returned after {:?}, before the sink's wait", start.elapsed());
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.last_seq().unwrap(), 100, "every recorded event is journaled");
}

/// `close` driven outside tokio (`futures::executor::block_on` on a plain
/// thread, as `append_acks.rs` closes a feed without sinks) on a feed with
/// a sink: it waits for the sink as it does inside a runtime, and the sink
/// has every event when it returns. The wait's bound was a tokio timer,
/// which panicked there ("no reactor running").
#[test]
fn close_from_a_plain_thread_waits_for_the_sinks() {
    use events::layers::sink::FnSink;
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&seen);
    let sink = FnSink::new(move |_: &Envelope<Ev>| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let feed: Feed<Ev> = rt.block_on(async {
        let feed = Feed::builder(dir.path()).sync(SyncPolicy::Never).sink(sink).open().await.unwrap();
        for n in 1..=5 {
            feed.append(None, msg(n)).await.unwrap();
        }
        feed
    });
    futures::executor::block_on(feed.close()).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 5, "the sink got every event before close returned");
}

/// One sink (the same `Arc`) given to a feed and, right after that feed's
/// last handle is dropped, to a feed reopened on the directory, while the
/// sink is still working through the first feed's events: it sees every
/// seq once, in order (the new feed's sinks wait for the old feed's). The
/// two feeds' sink tasks had run at once: 3, 21, 4, 22, ...
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_shared_across_a_reopen_sees_seqs_in_order() {
    struct Slow(Mutex<Vec<u64>>);

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for Slow {
        async fn emit(&self, env: &Envelope<Ev>) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.0.lock().push(env.seq.get());
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Slow(Mutex::new(Vec::new())));
    // No fdatasync per append: the appends outrun the sink's 5 ms per event.
    let open = || Feed::<Ev>::builder(dir.path()).sync(SyncPolicy::Never).sink(Arc::clone(&sink)).open();
    let first = open().await.unwrap();
    for n in 1..=20 {
        first.append(None, msg(n)).await.unwrap();
    }
    assert!(sink.0.lock().len() < 20, "the sink was done before the reopen: nothing overlapped");
    drop(first);
    let second = open().await.unwrap();
    for n in 21..=25 {
        second.append(None, msg(n)).await.unwrap();
    }
    second.close().await.unwrap();
    assert_eq!(*sink.0.lock(), (1..=25).collect::<Vec<_>>());
}

/// A sink whose `emit` blocks its thread (a sleep standing for synchronous
/// I/O) on a current-thread runtime, the form the façade's examples use: on
/// a thread of its own (`offload_thread`) it holds only that thread. The
/// appends return, the sink beside it gets every event, and `close`
/// returns within its `sink_close_wait`; the blocked sink's queue fills and
/// drops, counted. On the runtime's thread (a plain sink, or `offload`,
/// whose task shares the runtime) the same blocking call stalls all of it:
/// no `Timeout` can cut a call that never reaches an await.
#[test]
fn a_sink_that_blocks_its_thread_on_a_thread_of_its_own_stalls_nothing_else() {
    use events::layers::sink::{FnSink, SinkExt};
    use std::sync::atomic::{AtomicBool, Ordering};
    let release = Arc::new(AtomicBool::new(false));
    let held = Arc::clone(&release);
    let blocking = FnSink::new(move |_: &Envelope<Ev>| {
        while !held.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let blocking = blocking.offload_thread(2).unwrap();
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let stats = rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let feed: Feed<Ev> = Feed::builder(dir.path())
                .sync(SyncPolicy::Never)
                .named_sink("blocking", blocking)
                .named_sink("collect", Collect(Arc::clone(&seen)))
                .sink_close_wait(Duration::from_millis(100))
                .open()
                .await
                .unwrap();
            for n in 1..=20 {
                feed.append(None, msg(n)).await.unwrap();
            }
            eventually("the sink beside the blocked one got every event", || seen.lock().len() == 20).await;
            let stats = feed.stats();
            feed.close().await.unwrap();
            stats
        });
        done_tx.send(stats).unwrap();
    });
    let stats = done.recv_timeout(Duration::from_secs(30)).expect("the blocked sink stalled the feed's runtime");
    release.store(true, Ordering::Release);
    let (blocking, collect) = (&stats.sinks[0], &stats.sinks[1]);
    // One event in the blocked call (if its thread took it in time), two
    // queued: the other 17 (or 18) are dropped, by the blocked sink alone.
    assert_eq!(blocking.stats.emitted, 20, "{stats:?}");
    assert!((17..=18).contains(&blocking.stats.dropped), "{stats:?}");
    assert_eq!((collect.queue_dropped, stats.sink_dropped), (0, blocking.stats.dropped), "{stats:?}");
}
