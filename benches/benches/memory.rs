//! Memory per idle client, in one run, counted by a global allocator
//! ([`CountingAlloc`]: live heap bytes of every thread):
//!
//! * `memory/stream_from idle client`: 1,000 `stream_from(latest)` streams
//!   on a feed of 1,000 events (256-byte texts), each polled until it is
//!   caught up and waiting: rounds of polls 10 ms apart (at least three)
//!   until two in a row leave the heap as they found it, so the first
//!   look at the journal that every stream starts on the blocking pool
//!   has finished and been freed (with three rounds only, 1,000 such reads
//!   queued on two cores were still in flight, and their tasks were
//!   counted).
//! * `memory/session subscriber`: 1,000 subscribers of one `Feed::session`
//!   (the lossless events-fanout behind it, default capacity 256), each
//!   polled once (its waker registered).
//! * `memory/tokio broadcast receiver`: 1,000 receivers of a
//!   `tokio::sync::broadcast` channel of the same capacity, each polled once
//!   (its `recv()` future dropped after the poll, so not waiting).
//! * `memory/tokio broadcast receiver waiting`: the same, each moved into a
//!   boxed future that waits in its `recv()`, polled once: a receiver
//!   waiting for its next event, as the idle clients above wait (their
//!   wakers registered). The goal compares with this one.
//!
//! A figure is (live bytes after − before) / 1,000, the median of three
//! rounds, where "after" includes the `Vec` holding the handles, so each
//! handle's own size counts beside the heap it owns. One handle of each
//! kind is made and polled before the baseline, so one-off allocations
//! (the first stream's shared state, the runtime's timer) are not charged
//! to the thousand. The sizes counted are those asked for, not the system
//! allocator's rounding. Printed for `cargo xtask bench`'s report, whose
//! goal is DESIGN's: at most 2× a broadcast receiver. Not a criterion
//! bench.

#![allow(missing_docs, reason = "a bench binary")]

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use events::{Feed, SyncPolicy};
use events_benches::SampleEvent;
use events_benches::counting_alloc::CountingAlloc;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

#[global_allocator]
static HEAP: CountingAlloc = CountingAlloc::new();

/// Clients of each kind.
const CLIENTS: usize = 1_000;
/// Events in the feed the streams start from.
const EVENTS: u64 = 1_000;
/// The session fan-out's default capacity, and the broadcast channel's.
const CAPACITY: usize = 256;

/// Measurements of each kind; the median is printed.
const ROUNDS: usize = 3;
/// Most rounds of polls before the clients must have settled (10 ms apart).
const SETTLE_ROUNDS: usize = 500;

/// Live heap bytes per handle that `make` returns, `settle` having polled
/// them (the handles are kept until after the second reading): the median
/// of [`ROUNDS`] rounds of [`CLIENTS`] handles.
async fn per_client<T>(mut make: impl FnMut() -> T, settle: impl AsyncFn(&mut [T])) -> f64 {
    let mut warm = make();
    settle(std::slice::from_mut(&mut warm)).await;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let before = HEAP.live();
        let mut clients = Vec::with_capacity(CLIENTS);
        clients.extend((0..CLIENTS).map(|_| make()));
        settle(&mut clients).await;
        let after = HEAP.live();
        drop(clients);
        rounds.push((after - before) as f64 / CLIENTS as f64);
    }
    events_benches::median(&mut rounds)
}

/// Polls every stream until it is pending, in rounds 10 ms apart (at least
/// three), until two rounds in a row leave the live heap as they found it:
/// any read a stream started in the background has then finished and been
/// freed. It must yield nothing but may end nowhere: the clients are idle.
async fn settle_streams<S: Stream + Unpin>(streams: &mut [S]) {
    let (mut last, mut unchanged) = (HEAP.live(), 0);
    for round in 0..SETTLE_ROUNDS {
        for stream in streams.iter_mut() {
            assert!(futures::poll!(stream.next()).is_pending(), "an idle client got an item");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let live = HEAP.live();
        unchanged = if live == last { unchanged + 1 } else { 0 };
        if round >= 2 && unchanged >= 2 {
            return;
        }
        last = live;
    }
    panic!("the heap still changed after {SETTLE_ROUNDS} rounds of polls: the clients are not idle");
}

async fn settle_receivers<T: Clone>(receivers: &mut [broadcast::Receiver<T>]) {
    for rx in receivers.iter_mut() {
        let mut recv = std::pin::pin!(rx.recv());
        assert!(matches!(futures::poll!(recv.as_mut()), Poll::Pending), "an idle receiver got an item");
    }
}

/// Polls every waiting receiver's future once: its waiter is then queued.
async fn settle_waiting<F: std::future::Future<Output = ()>>(waiting: &mut [std::pin::Pin<Box<F>>]) {
    for recv in waiting.iter_mut() {
        assert!(futures::poll!(recv.as_mut()).is_pending(), "an idle receiver got an item");
    }
}

fn main() {
    // `cargo bench` passes criterion-style arguments; a filter that does
    // not name this bench skips it.
    if std::env::args().any(|a| a == "--list") || events_benches::filtered_out(&["memory"]) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (streams, subscribers, receivers, waiting) = rt.block_on(async {
        events_benches::fill_feed(tmp.path(), EVENTS, |i| (None, events_benches::sample_event(i, 256))).await;
        let feed: Feed<SampleEvent> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).open().await.unwrap();
        assert_eq!(feed.latest_seq().get(), EVENTS);
        // The feed's own work after opening allocates and frees on other
        // threads for a while: let it finish before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let streams = per_client(|| feed.stream_from(feed.latest_seq()), async |s| settle_streams(s).await).await;
        let session = feed.session("memory");
        let subscribers = per_client(|| session.subscribe(), async |s| settle_streams(s).await).await;
        let (tx, _) = broadcast::channel::<Arc<SampleEvent>>(CAPACITY);
        let receivers = per_client(|| tx.subscribe(), async |r| settle_receivers(r).await).await;
        // A client waiting for its next event keeps its `recv()` future
        // (and its waiter in it) where it waits: a task's state, here a box.
        let wait = || {
            let mut rx = tx.subscribe();
            Box::pin(async move {
                let _ = rx.recv().await;
            })
        };
        let waiting = per_client(wait, async |w| settle_waiting(w).await).await;
        drop(session);
        feed.close().await.unwrap();
        (streams, subscribers, receivers, waiting)
    });
    let inline = |name: &str, bytes: usize| format!("{name} {bytes} B inline");
    println!(
        "memory/stream_from idle client: mean {streams:.1} B, n={CLIENTS} (feed of {EVENTS} events; {})",
        inline("FeedStream", size_of::<events::FeedStream<SampleEvent>>())
    );
    println!(
        "memory/session subscriber: mean {subscribers:.1} B, n={CLIENTS} (session capacity {CAPACITY}; {})",
        inline("SessionSubscriber", size_of::<events::SessionSubscriber<SampleEvent>>())
    );
    let (tx, mut rx) = broadcast::channel::<Arc<SampleEvent>>(CAPACITY);
    let recv_future = size_of_val(&rx.recv());
    drop(tx);
    println!(
        "memory/tokio broadcast receiver: mean {receivers:.1} B, n={CLIENTS} (capacity {CAPACITY}; {}, a waiting recv() future {recv_future} B)",
        inline("Receiver", size_of::<broadcast::Receiver<Arc<SampleEvent>>>())
    );
    println!(
        "memory/tokio broadcast receiver waiting: mean {waiting:.1} B, n={CLIENTS} (capacity {CAPACITY}; each \
         receiver in a boxed future waiting in its recv())"
    );
}
