//! [`Offload`]: moves a sink's work onto a background tokio task behind a
//! bounded queue, so `emit` is a `try_send` that returns at once. This is the
//! tool that keeps a slow sink off a writer's path; [`Offload::on_thread`]
//! runs that task on a thread and runtime of its own, for a sink that
//! blocks the thread it runs on. Neighbours: built by
//! [`SinkExt::offload`](crate::SinkExt::offload); the background task drives
//! the wrapped sink. Invariants: `emit` never awaits anything; the wrapped sink
//! sees the accepted events in emit order; every event not delivered (queue
//! full, task gone, offload shut down) is counted as `dropped`, exactly once;
//! a wrapped sink that panics on an event is counted in `panicked` and gets
//! the next one (the task catches it); `flush` and `shutdown` work through a
//! shared reference, so an `Offload` deep inside a `Tee` or an `Arc` can be
//! drained where it stands, and a `shutdown` cancelled at any await is
//! finished by the next call.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::sink::let_go;
use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// Room the queue keeps for flush and stop markers beyond its `capacity`
/// events: a marker never takes an event's place (a flush had made the next
/// event a drop). Each marker holds one of this many permits until the task
/// takes it, so a flush past them waits for a permit instead of taking an
/// event's place: more flushes at once, or flushes given up (their markers
/// stay queued) while the sink is stuck, had made later events drops.
const MARKERS: usize = 64;

/// What crosses the queue: events, and markers that order a flush or a stop
/// after every event queued before them, each holding its permit.
enum Msg<E> {
    Event(E),
    Flush(oneshot::Sender<()>, OwnedSemaphorePermit),
    Stop(OwnedSemaphorePermit),
}

/// A sink that hands each event (cloned) to a background task driving the
/// wrapped sink, dropping and counting events when the queue is full.
///
/// The queue holds `capacity` events; a flush or stop waiting in it takes
/// no event's place. [`flush`](EventSink::flush) waits until the task has
/// emitted every event queued before it (and flushed the wrapped sink) and
/// leaves the offload running; [`shutdown`](Offload::shutdown) does the same and then stops it,
/// so later events are dropped and counted. Both take `&self`. Dropping the
/// `Offload` lets the task finish the queued events and exit. A panic of the
/// wrapped sink's `emit` is caught on the task, logged and counted in
/// [`SinkStats::panicked`] (a panicking `flush` is logged); the sink gets
/// the next event.
///
/// # Example
///
/// ```
/// use events_sink::{ChannelSink, EventSink, Offload};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (chan, mut rx) = ChannelSink::new(8);
/// let offload = Offload::new(chan, 4);
/// offload.emit(&"hello".to_string()).await; // returns at once
/// offload.flush().await; // waits until the inner sink saw it
/// assert_eq!(rx.recv().await.as_deref(), Some("hello"));
/// offload.emit(&"still open".to_string()).await;
/// let stats = offload.close().await; // drains, stops, reports
/// assert_eq!((stats.emitted, stats.dropped), (2, 0));
/// # });
/// ```
pub struct Offload<E: Sync> {
    tx: mpsc::Sender<Msg<E>>,
    /// How many events the queue takes (its channel has [`MARKERS`] more
    /// slots, for markers).
    capacity: usize,
    /// The [`MARKERS`] permits a marker holds while it is queued.
    markers: Arc<Semaphore>,
    /// Events in the queue, not taken by the task yet.
    queued: Arc<AtomicUsize>,
    inner: Arc<dyn EventSink<E>>,
    /// `true` once the task has drained its queue and ended (closed if it
    /// ended any other way).
    done: watch::Receiver<bool>,
    /// Set first by `shutdown`: later events are dropped.
    stopped: AtomicBool,
    /// Set once a `Stop` is queued: a `shutdown` cancelled before that
    /// queues one at its next call.
    stop_queued: AtomicBool,
    counters: Arc<Counters>,
}

impl<E: Clone + Send + Sync + 'static> Offload<E> {
    /// Spawns the background task driving `inner`, behind a queue of
    /// `capacity` events.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or if `capacity` is 0 or
    /// above [`Offload::MAX_CAPACITY`].
    pub fn new<S: EventSink<E> + 'static>(inner: S, capacity: usize) -> Self {
        Self::new_shared(Arc::new(inner), capacity)
    }

    /// [`Offload::new`] for a sink that is already shared.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or if `capacity` is 0 or
    /// above [`Offload::MAX_CAPACITY`].
    pub fn new_shared(inner: Arc<dyn EventSink<E>>, capacity: usize) -> Self {
        let (offload, task) = Self::parts(inner, capacity);
        tokio::spawn(task);
        offload
    }

    /// [`Offload::new`], with the background task on a thread of its own
    /// (named `events-sink-offload`) that runs a tokio runtime of its own:
    /// for a sink that blocks the thread it runs on (synchronous I/O, a
    /// `std::sync::Mutex` held elsewhere, a sleep). Nothing async can cut
    /// such a call short, not even a [`Timeout`](crate::Timeout): on the
    /// application's runtime it would hold one of its threads (on a
    /// current-thread runtime, the only one), and everything else on that
    /// runtime, appends and the other sinks included, would wait with it.
    /// Here a call that never returns holds only this thread: later events
    /// fill the queue and are dropped, counted. Needs no runtime to be
    /// called from; the thread ends once the `Offload` is dropped (or shut
    /// down) and its queue is drained, and tasks the sink spawned on its
    /// runtime end with it. That runtime is a current-thread one: a sink
    /// that calls `tokio::task::block_in_place` panics there (each panic
    /// is caught and counted in [`SinkStats::panicked`]); it has no need
    /// to, on a thread of its own. At process exit the thread is stopped
    /// where it stands: [`close`](Self::close) or
    /// [`shutdown`](Self::shutdown) first to deliver what is queued.
    ///
    /// ```
    /// use events_sink::{EventSink, FnSink, Offload};
    ///
    /// let log = FnSink::new(|line: &String| {
    ///     std::thread::sleep(std::time::Duration::from_millis(1)); // blocking work
    ///     assert!(!line.is_empty());
    /// });
    /// let offload = Offload::on_thread(log, 64)?;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// offload.emit(&"hello".to_string()).await; // returns at once
    /// assert_eq!(offload.close().await.emitted, 1);
    /// # });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The thread or its runtime could not be started.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0 or above [`Offload::MAX_CAPACITY`].
    pub fn on_thread<S: EventSink<E> + 'static>(inner: S, capacity: usize) -> std::io::Result<Self> {
        Self::on_thread_shared(Arc::new(inner), capacity)
    }

    /// [`Offload::on_thread`] for a sink that is already shared.
    ///
    /// # Errors
    ///
    /// As [`Offload::on_thread`].
    ///
    /// # Panics
    ///
    /// As [`Offload::on_thread`].
    pub fn on_thread_shared(inner: Arc<dyn EventSink<E>>, capacity: usize) -> std::io::Result<Self> {
        let (offload, task) = Self::parts(inner, capacity);
        // The runtime is built, run and dropped on its thread: dropped on
        // the caller's, inside async code, it would panic.
        let (started, start) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new().name("events-sink-offload".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let _ = started.send(Ok(()));
                    runtime.block_on(task);
                }
                Err(e) => {
                    drop(task); // counts nothing: no event was taken yet
                    let _ = started.send(Err(e));
                }
            }
        })?;
        start.recv().map_err(|_| std::io::Error::other("the offload thread ended before it started"))??;
        Ok(offload)
    }

    /// The largest queue an offload takes: tokio's channel limit
    /// (`usize::MAX >> 3`) less the room its markers take.
    pub const MAX_CAPACITY: usize = (usize::MAX >> 3) - MARKERS;

    /// The offload and the task that drives its sink, not started yet.
    fn parts(inner: Arc<dyn EventSink<E>>, capacity: usize) -> (Self, impl Future<Output = ()> + Send + 'static) {
        assert!(capacity > 0, "an offload's queue needs room for one event");
        // Named here rather than by tokio's channel, whose limit was said to
        // be the offload's though its markers take 64 more.
        assert!(capacity <= Self::MAX_CAPACITY, "an offload's queue takes at most {} events", Self::MAX_CAPACITY);
        let (tx, rx) = mpsc::channel::<Msg<E>>(capacity.saturating_add(MARKERS));
        let counters = Arc::new(Counters::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let (ended, done) = watch::channel(false);
        // The queue's guard exists before the task is first polled: a task
        // dropped unpolled (its runtime shut down first) counts what it held.
        let queue = Queue { rx, counters: Arc::clone(&counters), queued: Arc::clone(&queued), in_flight: false };
        let task = drive(Arc::clone(&inner), queue, ended);
        let offload = Offload {
            tx,
            capacity,
            markers: Arc::new(Semaphore::new(MARKERS)),
            queued,
            inner,
            done,
            stopped: AtomicBool::new(false),
            stop_queued: AtomicBool::new(false),
            counters,
        };
        (offload, task)
    }
}

/// The task's end of the queue. Dropped with the task's future, as when
/// its runtime shuts down mid-run or before the task ever ran: the event
/// being emitted and every event still queued are counted as dropped (a
/// queue closed normally is empty by then).
struct Queue<E> {
    rx: mpsc::Receiver<Msg<E>>,
    counters: Arc<Counters>,
    /// The offload's count of queued events, which each event taken leaves.
    queued: Arc<AtomicUsize>,
    /// An event was taken and its emit has not returned.
    in_flight: bool,
}

impl<E> Drop for Queue<E> {
    fn drop(&mut self) {
        if self.in_flight {
            self.counters.dropped();
        }
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            discard(msg, &self.counters, &self.queued, "an event dropped with the offload's queue");
        }
    }
}

/// A message that will not be delivered: an event is counted as dropped
/// and leaves the queued count first, then it is let go (an event whose
/// `Drop` panics must not leave the rest of a drain uncounted, nor, a
/// second one, abort the process).
fn discard<E>(msg: Msg<E>, counters: &Counters, queued: &AtomicUsize, what: &str) {
    if let Msg::Event(_) = msg {
        counters.dropped();
        queued.fetch_sub(1, Ordering::AcqRel);
    }
    let_go(msg, what);
}

/// The background task: emits queued events in order, answers flushes, and
/// after a stop counts whatever was queued behind it as dropped. A panic of
/// the wrapped sink is caught, counted and logged; the task goes on.
async fn drive<E: Sync>(sink: Arc<dyn EventSink<E>>, mut queue: Queue<E>, ended: watch::Sender<bool>) {
    let (rx, counters, queued) = (&mut queue.rx, &queue.counters, &queue.queued);
    // A panicking flush loses no event: logged, not counted.
    let flush = || async {
        if AssertUnwindSafe(async { sink.flush().await }).catch_unwind().await.is_err() {
            tracing::error!("offloaded event sink panicked in flush");
        }
    };
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Event(event) => {
                queued.fetch_sub(1, Ordering::AcqRel);
                queue.in_flight = true;
                if AssertUnwindSafe(async { sink.emit(&event).await }).catch_unwind().await.is_err() {
                    counters.panicked();
                    tracing::error!("offloaded event sink panicked; it gets the next event");
                }
                queue.in_flight = false;
                // The offload's copy is let go here: an event whose `Drop`
                // panics must not end the task, which gets the next one.
                // Not counted: the sink got the event, so nothing was lost.
                let_go(event, "an offloaded event (the sink got it and gets the next one)");
            }
            Msg::Flush(done, permit) => {
                flush().await;
                // Both wake a task (the flusher; a flush or stop waiting
                // for a marker), whose waker is its executor's code: one
                // that panics had ended this task, and the sink got
                // nothing more, every later event dropped. Caught, only
                // that caller goes unwoken.
                let answered = std::panic::catch_unwind(AssertUnwindSafe(move || {
                    let _ = done.send(()); // the flusher may have given up waiting
                    drop(permit);
                }));
                if let Err(panic) = answered {
                    let_go(panic, "the panic of a flusher's waker");
                    let _ = std::panic::catch_unwind(|| tracing::error!("waking a flusher of an offload panicked"));
                }
            }
            Msg::Stop(_permit) => break,
        }
    }
    flush().await;
    rx.close();
    while let Some(msg) = rx.recv().await {
        // Accepted by an emit that raced the stop.
        discard(msg, counters, queued, "an event queued behind the offload's stop");
    }
    let _ = ended.send(true);
}

impl<E: Sync> Offload<E> {
    /// Events accepted but not yet taken by the background task.
    pub fn pending(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The queue's capacity, in events.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stops accepting events (later ones are dropped and counted), waits
    /// until the background task has emitted every queued one and flushed the
    /// wrapped sink, and lets the task end. Idempotent; takes `&self`. It
    /// waits for the wrapped sink however long it takes (a sink that hangs
    /// holds it for ever: bound the call with `tokio::time::timeout`, as
    /// the `events` façade does with its `sink_close_wait`).
    /// Cancel-safe: a call dropped at any await is finished by the next one
    /// (which queues the stop if it was not queued, and waits for the drain).
    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        if !self.stop_queued.load(Ordering::Acquire)
            && let Some(permit) = self.marker().await
            && self.tx.send(Msg::Stop(permit)).await.is_ok()
        {
            // A second `Stop` from a concurrent call is drained and ignored.
            self.stop_queued.store(true, Ordering::Release);
        }
        // `Err`: the task ended some other way (its runtime shut down).
        let _ = self.done.clone().wait_for(|done| *done).await;
    }

    /// A marker's permit: waits while [`MARKERS`] markers are queued.
    /// `None` never happens (the semaphore is never closed).
    async fn marker(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.markers).acquire_owned().await.ok()
    }

    /// [`shutdown`](Self::shutdown), then the final counters.
    pub async fn close(self) -> SinkStats {
        self.shutdown().await;
        self.figures()
    }

    /// Its counters with the wrapped sink's (a panic in those caught).
    fn figures(&self) -> SinkStats {
        self.counters.snapshot().with_inner(crate::sink::caught_stats(|| self.inner.stats(), "an offloaded sink"))
    }
}

impl<E: Sync> fmt::Debug for Offload<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offload")
            .field("capacity", &self.capacity)
            .field("pending", &self.pending())
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<E: Clone + Send + Sync + 'static> EventSink<E> for Offload<E> {
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        if self.stopped.load(Ordering::Acquire) {
            self.counters.dropped();
            return;
        }
        // The queue holds `capacity` events, whatever markers it holds too.
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.counters.dropped();
            return;
        }
        // A `Clone` that panics gives its place in the queue back (it had
        // kept it for the offload's life: `capacity` such events and every
        // later one was refused with an empty queue). The panic stays here,
        // counted once, as `panicked`: a caller counting it too (a `Tee`,
        // a feed) had counted one event lost twice.
        let Ok(copy) = std::panic::catch_unwind(AssertUnwindSafe(|| event.clone())) else {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.counters.panicked();
            tracing::error!("an event's Clone panicked in an offload's emit; the event is lost, counted as panicked");
            return;
        };
        // Closed: the task is gone (its runtime shut down). (Full would be
        // markers past their room, which their permits rule out.) The refused
        // copy's `Drop` stays here, as every other of this sink's.
        if let Err(TrySendError::Full(refused) | TrySendError::Closed(refused)) = self.tx.try_send(Msg::Event(copy)) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.counters.dropped();
            let_go(refused, "an event the offload's full queue refused");
        }
    }

    fn stats(&self) -> SinkStats {
        self.figures()
    }

    /// Waits for the background task to emit everything queued before this
    /// call and to flush the wrapped sink. Returns at once after a shutdown
    /// or if the task is gone (its runtime shut down).
    async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        let Some(permit) = self.marker().await else { return };
        if self.tx.send(Msg::Flush(done, permit)).await.is_ok() {
            let _ = wait.await; // Err: the task ended (shutdown or a panic)
        }
    }
}
