//! The receiving end: [`Subscriber`], a `futures::Stream` over one cursor of
//! the shared ring, and [`Ref`], an event it lends instead of cloning. Its
//! neighbour `ring.rs` owns the slots; this file only moves the cursor and,
//! after a disconnect, hands out the backlog the release copied out.
//! **Invariant:** the subscriber publishes its head right after every cloned
//! event, and for a lent one when its `Ref` is dropped (or, if the `Ref` was
//! leaked, before the subscriber takes or waits again), so a producer blocked
//! on it is released exactly when room appears and a lent slot is never
//! reused under its `Ref`; its items are a gap-free prefix of the emitted events,
//! and after a disconnect it yields the events it was owed, then exactly one
//! [`Closed`] reason, then nothing.

use std::{
    collections::VecDeque,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        Arc,
        atomic::Ordering::{Relaxed, SeqCst},
    },
    task::{Context, Poll},
};

use futures::{Stream, stream::FusedStream};

use crate::{
    Closed, TryRecvError,
    ring::{Cursor, Padded, Shared},
};

/// One subscriber of a [`Fanout`](crate::Fanout): every event emitted after it subscribed,
/// in emit order, then the end (`None`) once the fan-out is closed and drained.
///
/// Under [`Overflow::Disconnect`](crate::Overflow::Disconnect) a subscriber that stayed full
/// too long, and under [`Overflow::DisconnectLagging`](crate::Overflow::DisconnectLagging) one
/// whose oldest unread event got too old, is disconnected: it still yields every event that had
/// been emitted for it before the disconnect, then one `Err` with the reason
/// ([`Closed::TooSlow`] or [`Closed::Lagging`]), then ends. It never silently skips.
/// Dropping it unregisters its cursor at once, so it stops gating producers.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use events_fanout::Fanout;
/// use futures::StreamExt;
///
/// let fanout = Fanout::new();
/// let mut sub = fanout.subscribe();
/// fanout.emit(1).await?;
/// fanout.emit(2).await?;
/// assert_eq!(sub.lag(), 2);
/// drop(fanout);
/// let got: Vec<_> = sub.map(Result::unwrap).collect().await;
/// assert_eq!(got, [1, 2]);
/// # Ok::<(), events_fanout::EmitError<i32>>(())
/// # }).unwrap();
/// ```
pub struct Subscriber<T> {
    shared: Arc<Shared<T>>,
    cursor: Arc<Padded<Cursor<T>>>,
    /// Next sequence to take. The published head mirrors it, except while a lent event's
    /// `Ref` lives (or was leaked): then it is one behind, holding that event's slot.
    head: u64,
    /// The last `tail` seen; events below it can be taken without touching shared state.
    seen_tail: u64,
    /// Once disconnected: the events it was still owed, yielded before the close reason
    /// (boxed: a subscriber is small while it is not disconnected, which is nearly always).
    #[allow(clippy::box_collection, reason = "8 bytes in every subscriber instead of 32")]
    owed: Option<Box<VecDeque<T>>>,
    ended: bool,
}

impl<T> std::fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("head", &self.head).field("ended", &self.ended).finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync> Subscriber<T> {
    pub(crate) fn new(shared: Arc<Shared<T>>) -> Self {
        let cursor = shared.register();
        let head = cursor.head.load(SeqCst);
        Self { shared, cursor, head, seen_tail: head, owed: None, ended: false }
    }

    /// Waits for the next event. Same items as the `Stream`: `Some(Ok(event))`; if
    /// disconnected by the overflow policy, the events it was owed, then `Some(Err(reason))`
    /// once; then `None` forever.
    ///
    /// Cancel-safe: dropping the future never loses an event.
    pub async fn recv(&mut self) -> Option<Result<T, Closed>> {
        std::future::poll_fn(|cx| self.poll_take(Some(cx))).await
    }

    /// Takes the next event if one is ready.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is ready yet, [`TryRecvError::Closed`] once when
    /// disconnected by the overflow policy (after the events it was owed),
    /// [`TryRecvError::Ended`] when the fan-out is closed and everything emitted before that
    /// was taken, and after the close reason.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.poll_take(None) {
            Poll::Ready(Some(Ok(value))) => Ok(value),
            Poll::Ready(Some(Err(closed))) => Err(TryRecvError::Closed(closed)),
            Poll::Ready(None) => Err(TryRecvError::Ended),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// Events emitted since this subscriber subscribed that it has not taken yet
    /// (at most the fan-out's capacity). Once disconnected, the events still owed to it
    /// (0 until the producer has copied them out). 0 once ended.
    pub fn lag(&self) -> usize {
        if self.ended {
            0
        } else if let Some(owed) = &self.owed {
            owed.len()
        } else if self.cursor.evict.load(SeqCst) {
            self.cursor.backlog_len()
        } else {
            (self.shared.tail() - self.head) as usize
        }
    }

    /// Whether the stream has ended (after the end or after the close reason).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn poll_take(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<Result<T, Closed>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if !self.shared.evictable {
            return self.take_or_park(cx);
        }
        if self.owed.is_none() {
            // Announce the read before looking at `evict`, so the producer cannot release
            // our slots under us (the evict handshake in `ring.rs`).
            self.cursor.reading.store(true, SeqCst);
            if !self.cursor.evict.load(SeqCst) {
                // The read ends even when the event's `clone` panics: a cursor left
                // `reading` could never be released by the producer's eviction.
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| self.take_or_park(cx)));
                self.shared.end_read(&self.cursor);
                return out.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            }
            // Disconnected. `end_read` releases the cursor if the producer could not (we were
            // inside a read); either way the backlog is complete once it returns, since the
            // release runs under the lock `end_read` takes.
            self.shared.end_read(&self.cursor);
            self.owed = Some(Box::new(self.cursor.take_backlog()));
        }
        let next = self.owed.as_mut().and_then(|owed| owed.pop_front());
        Poll::Ready(Some(match next {
            Some(value) => {
                self.head += 1;
                Ok(value)
            }
            None => {
                self.ended = true;
                self.owed = None;
                Err(self.shared.close_reason())
            }
        }))
    }

    fn take_or_park(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<Result<T, Closed>>> {
        self.poll_seq(cx).map(|seq| {
            seq.map(|seq| {
                // SAFETY: `poll_seq` returned `seq` below a tail loaded with SeqCst, and our
                // registered cursor's published head is still at most `seq`.
                let value = unsafe { self.shared.read(seq) };
                // Only now: a clone that panics leaves the event to be taken again.
                self.head += 1;
                self.publish_head();
                Ok(value)
            })
        })
    }

    /// The next sequence to read (the local head; the caller moves it on once the event is
    /// taken, and its slot stays intact until [`publish_head`](Self::publish_head) publishes a
    /// head past it). `None` once ended. Only for a non-evictable fan-out, or inside a read
    /// while not evicted.
    fn poll_seq(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<u64>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.head == self.seen_tail {
            self.seen_tail = self.shared.tail();
            if self.head == self.seen_tail {
                // A borrowed event's guard may have been leaked: publish before waiting, so a
                // producer is never held back by an event this subscriber already took.
                if self.cursor.head.load(Relaxed) != self.head {
                    self.publish_head();
                }
                if let Some(cx) = cx {
                    // Register, then park, then look again: a publish after our look wakes us.
                    self.cursor.waker.register(cx.waker());
                    self.shared.park(&self.cursor);
                    self.seen_tail = self.shared.tail();
                    if self.head == self.seen_tail && !self.shared.is_closed() {
                        return Poll::Pending;
                    }
                    self.shared.unpark(&self.cursor);
                } else if !self.shared.is_closed() {
                    return Poll::Pending;
                }
                // Closed: the final events were published before the flag; drain them.
                self.seen_tail = self.shared.tail();
                if self.head == self.seen_tail {
                    self.ended = true;
                    self.shared.remove(&self.cursor);
                    return Poll::Ready(None);
                }
            }
        }
        Poll::Ready(Some(self.head))
    }

    /// Publishes the local head: the slots below it may be reused. A producer blocked on this
    /// cursor (armed) is released once the head crosses its target.
    fn publish_head(&self) {
        self.cursor.head.store(self.head, SeqCst);
        if self.cursor.armed.load(SeqCst) {
            self.shared.on_armed(&self.cursor, self.head);
        }
    }
}

impl<T: Clone + Send + Sync> Subscriber<T> {
    /// Waits for the next event and lends it instead of cloning it: the [`Ref`] derefs to the
    /// event in the ring, and its slot is handed back to producers when the `Ref` is dropped.
    /// Same items and cancel-safety as [`recv`](Self::recv); what it saves is the clone (with
    /// `T = Arc<..>`, the two reference-count updates every subscriber would make on the
    /// event's shared count).
    ///
    /// Under [`Overflow::Wait`](crate::Overflow::Wait) the slot stays reserved while the `Ref`
    /// lives, exactly as an event not yet taken would, so hold it briefly: a full ring waits
    /// for the `Ref` to drop, and a task that awaits `emit` on the same fan-out while holding
    /// one can wait on itself forever. The event no longer counts in [`lag`](Self::lag) (it was
    /// taken), but it does in the producer's view and in `FanoutStats::max_lag`. A leaked
    /// `Ref` (`mem::forget`) holds its slot until this subscriber takes or waits again. Under
    /// the disconnecting policies the event is cloned into the `Ref`, so a subscriber holding
    /// one can still be disconnected (and released) without waiting for it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use std::sync::Arc;
    /// use events_fanout::Fanout;
    ///
    /// let fanout = Fanout::new();
    /// let mut sub = fanout.subscribe();
    /// fanout.emit(Arc::new(String::from("hello"))).await?;
    /// drop(fanout);
    /// let mut lengths = 0;
    /// while let Some(event) = sub.recv_ref().await {
    ///     lengths += event.unwrap().len(); // no clone of the `Arc`
    /// }
    /// assert_eq!(lengths, 5);
    /// # Ok::<(), events_fanout::EmitError<Arc<String>>>(())
    /// # }).unwrap();
    /// ```
    pub async fn recv_ref(&mut self) -> Option<Result<Ref<'_, T>, Closed>> {
        if self.shared.evictable {
            return self.recv().await.map(|item| item.map(|value| Ref(Lent::Owned(value))));
        }
        let seq = std::future::poll_fn(|cx| self.poll_seq(Some(cx))).await?;
        // No await between the wait and the `Ref`, so a dropped future takes nothing.
        Some(Ok(self.lend(seq)))
    }

    /// Lends the next event if one is ready, like [`try_recv`](Self::try_recv) lends what
    /// [`recv_ref`](Self::recv_ref) would: the `Ref` holds its slot until it is dropped.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Self::try_recv): [`TryRecvError::Empty`] when nothing is ready yet,
    /// [`TryRecvError::Closed`] once when disconnected by the overflow policy (after the events
    /// it was owed), [`TryRecvError::Ended`] when the fan-out is closed and drained.
    pub fn try_recv_ref(&mut self) -> Result<Ref<'_, T>, TryRecvError> {
        if self.shared.evictable {
            return self.try_recv().map(|value| Ref(Lent::Owned(value)));
        }
        match self.poll_seq(None) {
            Poll::Ready(Some(seq)) => Ok(self.lend(seq)),
            Poll::Ready(None) => Err(TryRecvError::Ended),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// Takes `seq`, the sequence `poll_seq` just returned, and lends it.
    fn lend(&mut self, seq: u64) -> Ref<'_, T> {
        self.head += 1;
        let sub: &Self = self;
        // SAFETY: `poll_seq` returned `seq` below a tail loaded with SeqCst and left the
        // published head at most `seq`; the head is published only by `Ref`'s drop or by a
        // later take, which needs `&mut self`, so not while this borrow lives. Under
        // `Overflow::Wait` (the only policy that lends) nothing else releases a registered
        // cursor's slots.
        let value = unsafe { sub.shared.get(seq) };
        Ref(Lent::Slot { value, sub })
    }
}

/// An event lent by [`Subscriber::recv_ref`]; derefs to it. Dropping it hands its slot back.
pub struct Ref<'a, T: Clone + Send + Sync>(Lent<'a, T>);

enum Lent<'a, T: Clone + Send + Sync> {
    /// In the ring, its slot held by the subscriber's unpublished head.
    Slot { value: &'a T, sub: &'a Subscriber<T> },
    /// Cloned out (a disconnecting policy, or an event owed after a disconnect).
    Owned(T),
}

impl<T: Clone + Send + Sync> std::ops::Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.0 {
            Lent::Slot { value, .. } => value,
            Lent::Owned(value) => value,
        }
    }
}

impl<T: Clone + Send + Sync + std::fmt::Debug> std::fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Clone + Send + Sync> Drop for Ref<'_, T> {
    fn drop(&mut self) {
        if let Lent::Slot { sub, .. } = &self.0 {
            sub.publish_head();
        }
    }
}

// Nothing in a subscriber is ever pinned structurally (it holds `Arc`s and a queue of owed
// events, all moved freely), so it is `Unpin` whatever `T` is, as it was before it held `T`s.
impl<T> Unpin for Subscriber<T> {}

impl<T: Clone + Send + Sync> Stream for Subscriber<T> {
    type Item = Result<T, Closed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_take(Some(cx))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.lag(), None)
    }
}

impl<T: Clone + Send + Sync> FusedStream for Subscriber<T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<T> Drop for Subscriber<T> {
    fn drop(&mut self) {
        self.shared.remove(&self.cursor);
        // A disconnected subscriber's owed events may be the last clones
        // left (the ring moved on): each is let go on its own, so that one
        // whose `Drop` panics does not unwind out of this drop, nor abort
        // the process at the next one's panic while unwinding.
        let owed = self.owed.take().map(|owed| *owed).unwrap_or_default();
        owed.into_iter().chain(self.cursor.take_backlog()).for_each(crate::ring::drop_caught);
    }
}
