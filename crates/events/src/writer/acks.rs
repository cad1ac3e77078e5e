//! Acknowledgements of a batch, delivered from a task on the feed's runtime
//! instead of from the writer thread.
//!
//! Why: every `oneshot::Sender::send` from the writer, a thread outside the
//! runtime, schedules the woken appender remotely: a worker parked in the
//! runtime is woken (a system call), and on two cores it then preempts the
//! writer, runs the one appender it was given and parks again before the
//! writer sends the next acknowledgement. A batch of hundreds of appends
//! cost as many wake-ups and context switches. Handed over as one batch,
//! the writer wakes one task once, and that task's sends wake the
//! appenders on the runtime's own queues.
//!
//! Invariants: a delivery is queued only after the batch it acknowledges
//! was published (the writer calls [`Acks::deliver`] last); every queued
//! delivery is sent exactly once, and never waits on a runtime that does
//! not run: the writer sends what is queued itself before it parks on an
//! empty inbox, once it has been queued for [`STALE`] (checked once per
//! pass of its loop, whatever the pass took, and whenever it parks while a
//! sync is in flight), and at close, where it also waits for the task's
//! sends in progress, so `Feed::close` returns after every append it
//! journaled was answered; once the task is gone with its runtime, its
//! guard sends what is queued and the writer sends directly. A lone
//! acknowledgement with nothing queued before it is sent directly, which
//! spares a single appender the extra hop. Sends are not in seq order
//! across appenders (the task may still be sending one batch while the
//! writer sends the next); nothing promises that order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::Notify;

use super::{Ack, Acked};

/// How long a delivery may wait for the task before the writer sends it
/// itself.
pub(super) const STALE: Duration = Duration::from_millis(1);

/// One acknowledgement and the outcome it carries.
type Delivery<E> = (Ack<E>, Acked<E>);

/// The writer's end.
pub(super) struct Acks<E> {
    shared: Arc<Shared<E>>,
    /// Deliveries of the batch being published, handed over in one step.
    batch: Vec<Delivery<E>>,
}

struct Shared<E> {
    queue: Mutex<Queue<E>>,
    /// Wakes the task: deliveries were queued, or the writer is gone.
    notify: Notify,
    /// Signalled when the task finished sending what it took.
    sent: Condvar,
}

struct Queue<E> {
    deliveries: Vec<Delivery<E>>,
    /// When the oldest queued delivery was queued.
    since: Option<Instant>,
    /// Whether the task still runs; once not, deliveries are sent directly.
    task: bool,
    /// Whether the task is sending deliveries it took.
    sending: bool,
    /// Whether the writer is gone: the task ends.
    writer_gone: bool,
}

impl<E> Queue<E> {
    fn take(&mut self) -> Vec<Delivery<E>> {
        self.since = None;
        std::mem::take(&mut self.deliveries)
    }
}

impl<E> Shared<E> {
    fn lock(&self) -> MutexGuard<'_, Queue<E>> {
        self.queue.lock()
    }
}

fn send_all<E>(deliveries: impl Iterator<Item = Delivery<E>>) {
    for (ack, acked) in deliveries {
        let _ = ack.send(Ok(acked));
    }
}

impl<E: Send + Sync + 'static> Acks<E> {
    /// Spawns the delivering task on the current runtime, when there is one;
    /// without one, every acknowledgement is sent by the writer.
    pub(super) fn spawn() -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                deliveries: Vec::new(),
                since: None,
                task: false,
                sending: false,
                writer_gone: false,
            }),
            notify: Notify::new(),
            sent: Condvar::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            shared.lock().task = true;
            runtime.spawn(deliver_forever(TaskGuard(Arc::clone(&shared))));
        }
        Acks { shared, batch: Vec::new() }
    }
}

impl<E> Acks<E> {
    /// Adds one acknowledgement to the batch being published.
    pub(super) fn push(&mut self, ack: Ack<E>, acked: Acked<E>) {
        self.batch.push((ack, acked));
    }

    /// Delivers the batch: a lone acknowledgement directly (when nothing
    /// is queued before it), more through the task; directly once the
    /// task is gone, or when what is queued has waited [`STALE`] for it
    /// (then with what is queued, first).
    pub(super) fn deliver(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut queue = self.shared.lock();
        let stale = queue.since.is_some_and(|since| since.elapsed() >= STALE);
        if queue.task && !stale && (self.batch.len() > 1 || !queue.deliveries.is_empty()) {
            let wake = queue.deliveries.is_empty();
            if wake {
                queue.since = Some(Instant::now());
            }
            queue.deliveries.append(&mut self.batch);
            drop(queue);
            if wake {
                self.shared.notify.notify_one();
            }
            return;
        }
        let queued = queue.take();
        drop(queue);
        send_all(queued.into_iter().chain(self.batch.drain(..)));
    }

    /// Sends what the task has not taken yet. The writer calls it before
    /// it parks on an empty inbox: on a runtime whose threads are all
    /// blocked (an append awaited with a blocking `block_on` on a
    /// current-thread runtime, say) the task never runs.
    pub(super) fn deliver_stale(&self) {
        let stale = self.shared.lock().take();
        send_all(stale.into_iter());
    }

    /// Sends what has waited for the task for `age` or more, for a writer
    /// about to park while a sync is in flight; `Some(left)` when
    /// deliveries are queued that are younger: the writer parks at most
    /// `left`, then calls again.
    pub(super) fn deliver_older_than(&self, age: Duration) -> Option<Duration> {
        let mut queue = self.shared.lock();
        let waited = queue.since?.elapsed();
        if waited < age {
            return Some(age - waited);
        }
        let stale = queue.take();
        drop(queue);
        send_all(stale.into_iter());
        None
    }

    /// At close: from here on the writer sends every acknowledgement; sends
    /// what is queued, and waits until the task has sent what it took, so
    /// that every append journaled so far was answered.
    pub(super) fn finish(&mut self) {
        send_all(self.batch.drain(..));
        let mut queue = self.shared.lock();
        queue.task = false;
        queue.writer_gone = true;
        let left = queue.take();
        while queue.sending {
            self.shared.sent.wait(&mut queue);
        }
        drop(queue);
        send_all(left.into_iter());
        self.shared.notify.notify_one();
    }
}

impl<E> Drop for Acks<E> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The task's hold on the queue: when the task ends or is dropped with its
/// runtime, it marks itself gone and sends what is still queued, under the
/// lock the writer queues under, so nothing queued after it is stranded.
struct TaskGuard<E>(Arc<Shared<E>>);

impl<E> Drop for TaskGuard<E> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.task = false;
        // Dropped in a send that panicked (a waker's), `finish` must not
        // wait for it.
        queue.sending = false;
        let left = queue.take();
        drop(queue);
        self.0.sent.notify_all();
        send_all(left.into_iter());
    }
}

async fn deliver_forever<E>(guard: TaskGuard<E>) {
    let shared = &guard.0;
    let mut batch = Vec::new();
    loop {
        shared.notify.notified().await;
        {
            let mut queue = shared.lock();
            if queue.writer_gone {
                return; // the writer sends what is left
            }
            std::mem::swap(&mut queue.deliveries, &mut batch);
            queue.since = None;
            queue.sending = true;
        }
        send_all(batch.drain(..));
        shared.lock().sending = false;
        shared.sent.notify_all();
    }
}
