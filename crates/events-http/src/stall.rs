//! A `/stream` response body that ends when its client stopped reading:
//! [`watched`] wraps the frames of `sse.rs` and starts a small task that
//! drops them once they have waited
//! [`FeedRouter::stall_timeout`](crate::FeedRouter::stall_timeout) for the
//! server to take them.
//!
//! Why a task: hyper asks the body for its next frame only when the
//! connection can take more, so the body of a client that stopped reading
//! is never polled, and nothing inside it can notice the time passing. Its
//! `FeedStream` meanwhile holds up to two chunks of decoded events and the
//! journal iterator that read them, which maps every segment from the
//! client's cursor to the newest: retention's removals of those segments
//! free no disk space while it lives.
//!
//! Invariant: the body is judged stalled only while it has something for
//! the server that the server has not come for: a frame it handed out with
//! no poll since (hyper holds it, unsent), or a wake-up of the feed's
//! stream (an event is ready) with no poll since (hyper's buffers are full,
//! of frames or of keep-alive comments). Never while the feed is quiet and
//! the server waits on the body. Once dropped, the body ends the response
//! at its next poll: the client gets what was already sent, then the end,
//! and reconnects with its last id, missing nothing.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use futures::task::{ArcWake, AtomicWaker};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What the body, its watching task and the feed's wake-ups share. The
/// times are milliseconds since `base`, plus one (0: none); atomics, since
/// a wake-up may come from inside the body's own poll.
struct Watch<T> {
    /// The frames; `None` once they ended or were dropped as stalled.
    body: Mutex<Option<BoxStream<'static, T>>>,
    base: Instant,
    /// When the body last handed out a frame the server has not come back
    /// for since.
    handed: AtomicU64,
    /// When the feed's stream first woke the body since the server last
    /// polled it.
    woken: AtomicU64,
    /// The server's waker, which the feed's wake-ups pass on to.
    server: AtomicWaker,
}

impl<T> Watch<T> {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Since when the body has waited for the server, if it has.
    fn waiting_since(&self) -> Option<Instant> {
        let at = [self.handed.load(Ordering::Acquire), self.woken.load(Ordering::Acquire)]
            .into_iter()
            .filter(|&at| at != 0)
            .min()?;
        Some(self.base + Duration::from_millis(at - 1))
    }
}

/// The feed's stream wakes this: noted, then passed on to the server.
struct Wakes<T>(Weak<Watch<T>>);

impl<T: Send + 'static> ArcWake for Wakes<T> {
    fn wake_by_ref(wakes: &Arc<Self>) {
        if let Some(watch) = wakes.0.upgrade() {
            let _ = watch.woken.compare_exchange(0, watch.now(), Ordering::AcqRel, Ordering::Acquire);
            watch.server.wake();
        }
    }
}

/// The frames of one `/stream` response, watched for a stalled client.
pub(crate) struct Watched<T> {
    watch: Arc<Watch<T>>,
    /// The waker the feed's stream is polled with ([`Wakes`]).
    waker: Waker,
    watcher: AbortHandle,
}

/// Wraps `body`; frames left untaken for `timeout` drop it (inside a tokio
/// runtime: the watching task is spawned on it).
pub(crate) fn watched<T: Send + 'static>(body: BoxStream<'static, T>, timeout: Duration) -> Watched<T> {
    let watch = Arc::new(Watch {
        body: Mutex::new(Some(body)),
        base: Instant::now(),
        handed: AtomicU64::new(0),
        woken: AtomicU64::new(0),
        server: AtomicWaker::new(),
    });
    let waker = futures::task::waker(Arc::new(Wakes(Arc::downgrade(&watch))));
    let watcher = tokio::spawn(watch_for_stalls(Arc::downgrade(&watch), timeout)).abort_handle();
    Watched { watch, waker, watcher }
}

/// Drops the body of `watch` once it has waited `timeout` for the server:
/// between one and two `timeout`s after the client stopped reading.
async fn watch_for_stalls<T>(watch: Weak<Watch<T>>, timeout: Duration) {
    let mut wake = Instant::now() + timeout;
    loop {
        tokio::time::sleep_until(wake).await;
        let Some(watch) = watch.upgrade() else { return };
        let dropped = {
            // Under the body's lock: a poll (which clears the times) is not
            // under way, and none can start before the body is gone.
            let mut body = watch.body.lock().unwrap_or_else(PoisonError::into_inner);
            if body.is_none() {
                return; // the response ended
            }
            match watch.waiting_since() {
                Some(since) if since.elapsed() >= timeout => body.take(),
                Some(since) => {
                    wake = since + timeout;
                    None
                }
                None => {
                    wake = Instant::now() + timeout;
                    None
                }
            }
        };
        if let Some(body) = dropped {
            // Outside the lock: dropping the feed's stream may take a moment.
            drop(body);
            tracing::debug!(?timeout, "an SSE client took nothing for the stall timeout; its stream was ended");
            return;
        }
    }
}

impl<T> Stream for Watched<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let watch = &self.watch;
        let mut body = watch.body.lock().unwrap_or_else(PoisonError::into_inner);
        watch.server.register(cx.waker());
        watch.handed.store(0, Ordering::Release);
        watch.woken.store(0, Ordering::Release);
        let Some(frames) = body.as_mut() else { return Poll::Ready(None) };
        let next = frames.poll_next_unpin(&mut Context::from_waker(&self.waker));
        match next {
            Poll::Ready(Some(_)) => watch.handed.store(watch.now(), Ordering::Release),
            Poll::Ready(None) => *body = None,
            Poll::Pending => {}
        }
        next
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use futures::channel::mpsc;

    use super::watched;

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// The server polls the body once (the feed is quiet), then stops, as
    /// hyper does once its buffers are full of keep-alive comments; an
    /// event then becomes ready. The body is dropped a stall timeout later:
    /// it had been judged by its handed-out frames alone, and none was.
    #[tokio::test(start_paused = true)]
    async fn a_body_woken_and_never_polled_again_is_dropped() {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let mut body = watched(rx.boxed(), TIMEOUT);
        assert!(futures::poll!(body.next()).is_pending());
        tx.unbounded_send(1).unwrap();
        tokio::time::sleep(TIMEOUT / 2).await;
        assert!(!tx.is_closed(), "dropped before the timeout");
        tokio::time::sleep(TIMEOUT * 2).await;
        assert!(tx.is_closed(), "the stalled body was not dropped");
        // What the server reads next: the end of the response.
        assert_eq!(body.next().await, None);
    }

    /// A frame handed out and never followed by another poll (hyper holds
    /// it, unsent): dropped a stall timeout later.
    #[tokio::test(start_paused = true)]
    async fn a_frame_never_taken_drops_the_body() {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let mut body = watched(rx.boxed(), TIMEOUT);
        tx.unbounded_send(1).unwrap();
        assert_eq!(body.next().await, Some(1));
        tokio::time::sleep(TIMEOUT * 3).await;
        assert!(tx.is_closed(), "the stalled body was not dropped");
    }

    /// A quiet feed: the server waits on the body, which is never judged
    /// stalled however long nothing comes; nor is a body polled as it wakes.
    #[tokio::test(start_paused = true)]
    async fn a_quiet_or_read_body_is_kept() {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let mut body = watched(rx.boxed(), TIMEOUT);
        assert!(futures::poll!(body.next()).is_pending());
        tokio::time::sleep(TIMEOUT * 10).await;
        assert!(!tx.is_closed(), "a quiet body was dropped");
        for n in 0..20 {
            tx.unbounded_send(n).unwrap();
            assert_eq!(body.next().await, Some(n));
            tokio::time::sleep(TIMEOUT / 2).await;
            assert!(futures::poll!(body.next()).is_pending());
        }
        assert!(!tx.is_closed(), "a body read as it woke was dropped");
    }
}
