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
//! delivery is sent exactly once: by the task; by the task's guard when the
//! task is dropped with its runtime (the writer then sends directly); or
//! by the writer before it parks on an empty inbox, so nothing is left
//! queued with nobody to send it, even on a runtime whose threads are all
//! blocked. Deliveries leave the queue in the order they entered it. A
//! lone acknowledgement with nothing queued before it is sent directly,
//! which spares a single appender the extra hop.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

use super::{Ack, Acked};

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
    notify: Notify,
}

struct Queue<E> {
    deliveries: Vec<Delivery<E>>,
    /// Whether the task still runs; once not, deliveries are sent directly.
    task: bool,
    /// Whether the writer is gone: the task ends once the queue is empty.
    writer_gone: bool,
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
            queue: Mutex::new(Queue { deliveries: Vec::new(), task: false, writer_gone: false }),
            notify: Notify::new(),
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
    /// is queued before it), more through the task (directly once it is
    /// gone).
    pub(super) fn deliver(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut queue = self.shared.lock();
        if queue.task && (self.batch.len() > 1 || !queue.deliveries.is_empty()) {
            let wake = queue.deliveries.is_empty();
            queue.deliveries.append(&mut self.batch);
            drop(queue);
            if wake {
                self.shared.notify.notify_one();
            }
            return;
        }
        drop(queue);
        send_all(self.batch.drain(..));
    }

    /// Sends what the task has not taken yet. The writer calls it before
    /// it parks on an empty inbox: on a runtime whose threads are all
    /// blocked (an append awaited with a blocking `block_on` on a
    /// current-thread runtime, say) the task never runs, and the appenders
    /// would wait for it forever.
    pub(super) fn deliver_stale(&self) {
        let stale = std::mem::take(&mut self.shared.lock().deliveries);
        send_all(stale.into_iter());
    }
}

impl<E> Drop for Acks<E> {
    fn drop(&mut self) {
        send_all(self.batch.drain(..));
        self.shared.lock().writer_gone = true;
        self.shared.notify.notify_one();
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
        let left = std::mem::take(&mut queue.deliveries);
        drop(queue);
        send_all(left.into_iter());
    }
}

async fn deliver_forever<E>(guard: TaskGuard<E>) {
    let mut batch = Vec::new();
    loop {
        guard.0.notify.notified().await;
        let writer_gone = {
            let mut queue = guard.0.lock();
            std::mem::swap(&mut queue.deliveries, &mut batch);
            queue.writer_gone
        };
        send_all(batch.drain(..));
        if writer_gone {
            return; // the guard sends anything queued since
        }
    }
}
