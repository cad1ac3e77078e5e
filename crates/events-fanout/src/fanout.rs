//! The sending end: [`Fanout`], a cloneable producer handle over the shared
//! ring in `ring.rs`, with `emit` (async, backpressure), `try_emit`, and the
//! timers of the disconnecting policies ([`Overflow::Disconnect`]'s stall
//! timer, [`Overflow::DisconnectLagging`]'s age deadline). **Invariant:** an
//! event is published by a single store under the producer lock, so a
//! cancelled `emit` either reached every live subscriber or none of them.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
};

use tokio::time::Sleep;

use crate::{
    EmitError, FanoutBuilder, FanoutStats, Overflow, Subscriber, TryEmitError,
    config::{DEFAULT_CAPACITY, MAX_CAPACITY},
    ring::{Refused, Shared, Waiter},
};

/// A lossless fan-out: every [`Subscriber`] receives every event emitted after it subscribed,
/// in emit order, or is told explicitly that it was closed.
///
/// `Fanout` is a cheap handle (`Clone` bumps a reference count); clones emit into the same
/// ring, and concurrent emits are totally ordered. The fan-out closes when [`close`] is called
/// or the last handle is dropped; subscribers then drain what was emitted and end.
///
/// Each subscriber gets a `clone()` of the event: with `T = Arc<..>` that is a reference-count
/// bump, so one event costs one allocation however many subscribers there are
/// ([`Subscriber::recv_ref`] lends it without the bump). The ring keeps
/// the last `capacity` events (rounded up to a power of two) until their slot is reused or the
/// fan-out and all its subscribers are gone, so payloads are released with that delay.
///
/// [`close`]: Fanout::close
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use events_fanout::{Fanout, Overflow};
///
/// let fanout = Fanout::builder().capacity(64).overflow(Overflow::Wait).build();
/// let mut a = fanout.subscribe();
/// let mut b = fanout.subscribe();
/// fanout.emit(Arc::new("hello")).await?;
/// assert_eq!(*a.recv().await.unwrap().unwrap(), "hello");
/// assert_eq!(*b.recv().await.unwrap().unwrap(), "hello");
/// assert_eq!(fanout.stats().emitted, 1);
/// # Ok::<(), events_fanout::EmitError<Arc<&str>>>(())
/// # }).unwrap();
/// ```
pub struct Fanout<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Fanout<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").field("shared", &self.shared).finish()
    }
}

impl<T> Clone for Fanout<T> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<T> Drop for Fanout<T> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Default for Fanout<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + Sync + 'static> Fanout<T> {
    /// A fan-out with capacity 256 and [`Overflow::Wait`].
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A fan-out whose subscribers may each hold `capacity` events not yet taken.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or above [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::builder().capacity(capacity).build()
    }

    /// A builder for capacity and [`Overflow`] policy.
    pub fn builder() -> FanoutBuilder<T> {
        FanoutBuilder::default()
    }

    pub(crate) fn from_builder(builder: FanoutBuilder<T>) -> Self {
        assert!(
            (1..=MAX_CAPACITY).contains(&builder.capacity),
            "fan-out capacity must be in 1..={MAX_CAPACITY}, got {}",
            builder.capacity
        );
        Self { shared: Arc::new(Shared::new(builder.capacity, builder.overflow)) }
    }

    /// A new subscriber that receives every event emitted from now on. Safe to call while
    /// other tasks emit: the subscriber starts exactly between two events.
    /// On a closed fan-out the subscriber ends at once.
    pub fn subscribe(&self) -> Subscriber<T> {
        Subscriber::new(Arc::clone(&self.shared))
    }

    /// Emits `value` to every current subscriber, waiting while any of them is full
    /// (or, under [`Overflow::Disconnect`] and [`Overflow::DisconnectLagging`], until the slow
    /// ones are disconnected). With no subscriber the event is counted and dropped.
    ///
    /// **Cancel-safety:** the event is published by one atomic step, so if this future is
    /// dropped before it completes, either every live subscriber got the event or none did
    /// (and the value is dropped).
    ///
    /// # Errors
    ///
    /// [`EmitError::Closed`] with the value if the fan-out was closed.
    ///
    /// # Panics
    ///
    /// Under [`Overflow::Disconnect`] or [`Overflow::DisconnectLagging`], if it has to wait
    /// outside a tokio runtime with the time driver enabled.
    pub async fn emit(&self, value: T) -> Result<(), EmitError<T>> {
        // `emit_if`'s body with a condition that always holds, not a call to
        // it: one future less on the path every event takes.
        let value = match self.shared.publish(value, None) {
            Ok(()) => return Ok(()),
            Err(Refused::Closed(value)) => return Err(EmitError::Closed(value)),
            // `publish` declines nothing.
            Err(Refused::Full(value) | Refused::Declined(value)) => value,
        };
        let mut value = Some(value);
        let mut timer = None;
        let mut go = || true;
        let mut waiting = Waiting { shared: &self.shared, key: None };
        let emitted = std::future::poll_fn(|cx| self.poll_emit(cx, &mut value, &mut timer, &mut waiting.key, &mut go));
        let emitted = emitted.await;
        waiting.done();
        emitted.map(|_| ())
    }

    /// [`emit`](Self::emit), asking `go` each time the value could go out
    /// (every subscriber has room for it, or there is none), right before
    /// it does: when it answers `false`, nothing is published and the value
    /// comes back (`Ok(Some(value))`); `Ok(None)` once every subscriber got
    /// it. `go` is not asked while the fan-out is full, so what it takes
    /// (the façade's sessions take a slot of the feed's inbox, and check
    /// the feed's health) is never held while the emit waits for room.
    /// It runs under the fan-out's lock: it must be short, must not block,
    /// and must not use this fan-out.
    ///
    /// # Errors
    ///
    /// As [`emit`](Self::emit).
    pub async fn emit_if(&self, value: T, mut go: impl FnMut() -> bool) -> Result<Option<T>, EmitError<T>> {
        // Fast path: most emits find room, so try one publish before building any wait state.
        // A refusal for fullness has no side effect on delivery (nobody got the value), so
        // the waiting path below starts exactly as if this attempt had not happened; it runs
        // within the same first poll, so cancel-safety is unchanged.
        let value = match self.shared.publish_if(value, None, &mut go) {
            Ok(()) => return Ok(None),
            Err(Refused::Closed(value)) => return Err(EmitError::Closed(value)),
            Err(Refused::Declined(value)) => return Ok(Some(value)),
            Err(Refused::Full(value)) => value,
        };
        let mut value = Some(value);
        let mut timer = None;
        let mut waiting = Waiting { shared: &self.shared, key: None };
        let emitted = std::future::poll_fn(|cx| self.poll_emit(cx, &mut value, &mut timer, &mut waiting.key, &mut go));
        let emitted = emitted.await;
        waiting.done();
        emitted
    }

    fn poll_emit(
        &self,
        cx: &mut Context<'_>,
        value: &mut Option<T>,
        timer: &mut Option<Pin<Box<Sleep>>>,
        key: &mut Option<u64>,
        go: &mut impl FnMut() -> bool,
    ) -> Poll<Result<Option<T>, EmitError<T>>> {
        loop {
            // `poll_fn` inside an `async fn` is never polled again after `Ready`.
            let Some(pending) = value.take() else { return Poll::Pending };
            match self.shared.publish_if(pending, Some(Waiter { key: &mut *key, waker: cx.waker() }), go) {
                Ok(()) => return Poll::Ready(Ok(None)),
                Err(Refused::Closed(v)) => return Poll::Ready(Err(EmitError::Closed(v))),
                Err(Refused::Declined(v)) => return Poll::Ready(Ok(Some(v))),
                Err(Refused::Full(v)) => {
                    // `publish` registered our waker: a reader making room, a removal or a close
                    // wakes us. The disconnecting policies add a timer on top.
                    *value = Some(v);
                    match self.shared.overflow {
                        Overflow::Disconnect { after } => {
                            // The grace period runs from the first refusal since the last
                            // event went out: one did only once every subscriber had room, so
                            // the full ones took some since. Another producer may have had that
                            // room (several emit at once): that is no reason to close a
                            // subscriber that keeps taking. The fan-out keeps its start, so a
                            // cancelled emit tried again does not start it over.
                            let (deadline, stall) = self.shared.stall_deadline(after);
                            if sleep_until(timer, deadline, cx).is_pending() {
                                return Poll::Pending;
                            }
                            self.shared.evict_full(stall);
                        }
                        Overflow::DisconnectLagging { .. } => {
                            // `None`: every subscriber we wait on is already evicted and its
                            // release (at the end of its read) wakes us.
                            let Some(deadline) = self.shared.lag_deadline() else { return Poll::Pending };
                            // Ready: the oldest unread event reached `max_age`, and the next
                            // `publish` evicts whoever holds it.
                            if sleep_until(timer, deadline, cx).is_pending() {
                                return Poll::Pending;
                            }
                        }
                        Overflow::Wait => return Poll::Pending,
                    }
                }
            }
        }
    }

    /// Emits `value` if every subscriber has room, without waiting. Under
    /// [`Overflow::DisconnectLagging`] it first disconnects the subscribers whose oldest unread
    /// event is too old, like `emit`.
    ///
    /// # Errors
    ///
    /// [`TryEmitError::Full`] with the value if a subscriber is full (nobody got it),
    /// [`TryEmitError::Closed`] with the value if the fan-out was closed.
    pub fn try_emit(&self, value: T) -> Result<(), TryEmitError<T>> {
        self.shared.publish(value, None).map_err(Into::into)
    }
}

/// Polls the emit's `timer`, set to `deadline` (made, or moved there), and
/// clears it once it fired.
fn sleep_until(timer: &mut Option<Pin<Box<Sleep>>>, deadline: tokio::time::Instant, cx: &mut Context<'_>) -> Poll<()> {
    let sleep = match timer {
        Some(sleep) => {
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            sleep
        }
        None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
    };
    if sleep.as_mut().poll(cx).is_pending() {
        return Poll::Pending;
    }
    *timer = None;
    Poll::Ready(())
}

/// An emit on its waiting path: dropped before it ended, its waker leaves the fan-out's
/// list of blocked producers. Cancelled emits (a `timeout` around each, under a UI that
/// stopped reading) had left one waker each, and the list, with every task those wakers
/// keep alive, grew until the round ended. An emit that ended took its entry out itself,
/// under the lock it published (or was declined) under.
struct Waiting<'a, T> {
    shared: &'a Shared<T>,
    key: Option<u64>,
}

impl<T> Waiting<'_, T> {
    fn done(&mut self) {
        self.key = None;
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.shared.forget_waiter(key);
        }
    }
}

impl<T> Fanout<T> {
    /// Subscribers currently registered (dropped and disconnected ones are gone at once).
    pub fn subscriber_count(&self) -> usize {
        self.shared.subscriber_count()
    }

    /// The per-subscriber capacity.
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Counters: events emitted, subscribers disconnected by the overflow policy, the largest
    /// lag seen.
    pub fn stats(&self) -> FanoutStats {
        self.shared.stats()
    }

    /// Closes the fan-out for every handle: later emits fail with the value handed back,
    /// waiting emits fail too, and subscribers end after draining what was emitted.
    /// Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether the fan-out was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}
