//! A `/stream` response body that ends when its client stopped reading:
//! [`watched`] wraps the frames of `sse.rs` and starts a small task that
//! drops them once a frame has waited
//! [`FeedRouter::stall_timeout`](crate::FeedRouter::stall_timeout) for the
//! server to take it.
//!
//! Why a task: hyper asks the body for its next frame only when the
//! connection can take more, so the body of a client that stopped reading
//! is never polled, and nothing inside it can notice the time passing. Its
//! `FeedStream` meanwhile holds up to two chunks of decoded events and the
//! journal iterator that read them, which maps every segment from the
//! client's cursor to the newest: retention's removals of those segments
//! free no disk space while it lives.
//!
//! Invariant: the body is judged stalled only while a frame it handed out
//! has not been followed by another poll (hyper holds it, unsent), never
//! while hyper waits on the body (a quiet feed). Once dropped, the body
//! ends the response at its next poll: the client gets what was already
//! sent, then the end, and reconnects with its last id, missing nothing.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What the body and its watching task share.
struct Slot<T> {
    /// The frames; `None` once they ended or were dropped as stalled.
    body: Option<BoxStream<'static, T>>,
    /// When the body last handed out a frame the server has not come back
    /// for since; `None` while the server waits on the body.
    handed: Option<Instant>,
}

/// The frames of one `/stream` response, watched for a stalled client.
pub(crate) struct Watched<T> {
    slot: Arc<Mutex<Slot<T>>>,
    watcher: AbortHandle,
}

/// Wraps `body`; a frame left untaken for `timeout` drops it (inside a
/// tokio runtime: the watching task is spawned on it).
pub(crate) fn watched<T: Send + 'static>(body: BoxStream<'static, T>, timeout: Duration) -> Watched<T> {
    let slot = Arc::new(Mutex::new(Slot { body: Some(body), handed: None }));
    let watcher = tokio::spawn(watch(Arc::downgrade(&slot), timeout)).abort_handle();
    Watched { slot, watcher }
}

/// Drops the body of `slot` once a frame has waited `timeout` for the
/// server to take it: between one and two `timeout`s after the client
/// stopped reading.
async fn watch<T>(slot: Weak<Mutex<Slot<T>>>, timeout: Duration) {
    let mut wake = Instant::now() + timeout;
    loop {
        tokio::time::sleep_until(wake).await;
        let Some(slot) = slot.upgrade() else { return };
        let dropped = {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.handed {
                Some(at) if at.elapsed() >= timeout => slot.body.take(),
                Some(at) => {
                    wake = at + timeout;
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
            tracing::debug!(?timeout, "an SSE client took no frame for the stall timeout; its stream was ended");
            return;
        }
    }
}

impl<T> Stream for Watched<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.handed = None;
        let Some(body) = slot.body.as_mut() else { return Poll::Ready(None) };
        let next = body.poll_next_unpin(cx);
        match next {
            Poll::Ready(Some(_)) => slot.handed = Some(Instant::now()),
            Poll::Ready(None) => slot.body = None,
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
