//! The receiving end: [`Subscriber`], a `futures::Stream` over one cursor of
//! the shared ring. Its neighbour `ring.rs` owns the slots; this file only
//! moves the cursor and, after a disconnect, hands out the backlog the
//! release copied out. **Invariant:** the subscriber publishes its head right
//! after every taken event (so a producer blocked on it is released exactly
//! when room appears); its items are a gap-free prefix of the emitted events,
//! and after a disconnect it yields the events it was owed, then exactly one
//! [`Closed`] reason, then nothing.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use crossbeam_utils::CachePadded;
use futures::{Stream, stream::FusedStream};

use crate::{
    Closed, TryRecvError,
    ring::{Cursor, Shared},
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
    cursor: Arc<CachePadded<Cursor<T>>>,
    /// Next sequence to take (the published head mirrors it).
    head: u64,
    /// The last `tail` seen; events below it can be taken without touching shared state.
    seen_tail: u64,
    /// Once disconnected: the events it was still owed, yielded before the close reason.
    owed: Option<VecDeque<T>>,
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
        let head = cursor.head.load(std::sync::atomic::Ordering::SeqCst);
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
        } else if self.cursor.evict.load(std::sync::atomic::Ordering::SeqCst) {
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
            self.cursor.reading.store(true, std::sync::atomic::Ordering::SeqCst);
            if !self.cursor.evict.load(std::sync::atomic::Ordering::SeqCst) {
                let out = self.take_or_park(cx);
                self.shared.end_read(&self.cursor);
                return out;
            }
            // Disconnected. `end_read` releases the cursor if the producer could not (we were
            // inside a read); either way the backlog is complete once it returns, since the
            // release runs under the lock `end_read` takes.
            self.shared.end_read(&self.cursor);
            self.owed = Some(self.cursor.take_backlog());
        }
        let next = self.owed.as_mut().and_then(VecDeque::pop_front);
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
        if self.head == self.seen_tail {
            self.seen_tail = self.shared.tail();
            if self.head == self.seen_tail {
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
        // SAFETY: `head < seen_tail`, a tail loaded with SeqCst, and our cursor is registered
        // (or evicted while `reading` is set) with published head == `self.head`.
        let value = unsafe { self.shared.read(self.head) };
        self.head += 1;
        self.cursor.head.store(self.head, std::sync::atomic::Ordering::SeqCst);
        if self.cursor.armed.load(std::sync::atomic::Ordering::SeqCst) {
            self.shared.on_armed(&self.cursor, self.head);
        }
        Poll::Ready(Some(Ok(value)))
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
    }
}
