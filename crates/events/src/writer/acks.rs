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
//! delivery is sent exactly once (each under a catch, [`answer`]: a
//! waker that panics loses no other answer), and never waits on a runtime that does not run
//! longer than the writer's own waits: the writer sends what is queued itself before it parks on an
//! empty inbox, once it has been queued for [`STALE`] (checked once per
//! pass of its loop, whatever the pass took, and whenever it parks while a
//! sync is in flight), and at close, where it also waits for the task's
//! sends in progress, so `Feed::close` returns after every append it
//! journaled was answered; once the task is gone with its runtime, its
//! guard sends what is queued and the writer sends directly. A lone
//! acknowledgement with nothing queued before it is sent directly, which
//! spares a single appender the extra hop. Sends are not in seq order
//! across appenders (the task may still be sending one batch while the
//! writer sends the next); nothing promises that order. On a runtime that
//! does not run, a queued acknowledgement also waits through whatever the
//! writer waits for in between (a sync in flight when too much is
//! written, a `Feed::sync`): at most about one fdatasync.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};
use tokio::sync::Notify;

use super::{Ack, Acked};

/// How long a delivery may wait for the task before the writer sends it
/// itself.
const STALE: Duration = Duration::from_millis(1);

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
    /// Wakes the task: deliveries were queued, or the writer is closing.
    notify: Notify,
    /// Signalled when the task finished sending what it took.
    sent: Condvar,
}

struct Queue<E> {
    deliveries: Vec<Delivery<E>>,
    /// When the oldest queued delivery was queued.
    since: Option<Instant>,
    /// Whether deliveries are handed to the task; once not (the task is
    /// gone, or the writer is closing, which ends the task), they are sent
    /// directly.
    task: bool,
    /// Whether the task is sending deliveries it took.
    sending: bool,
}

impl<E> Queue<E> {
    /// Whether what is queued has waited [`STALE`] for the task.
    fn stale(&self) -> bool {
        self.since.is_some_and(|since| since.elapsed() >= STALE)
    }

    /// What is queued, for the writer to send (a fallback, so rare): an
    /// empty queue keeps its buffer, which the writer checks before every
    /// park.
    fn take(&mut self) -> Vec<Delivery<E>> {
        self.since = None;
        if self.deliveries.is_empty() {
            return Vec::new();
        }
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
        answer(ack, Ok(acked));
    }
}

/// Answers one caller, under a catch. The answer is stored in the oneshot
/// before its caller's task is woken, and the waker is that task's
/// executor's code: one that panics had unwound out of the writer thread
/// and failed the feed for every caller, and (from a batch's deliveries)
/// left the rest of the batch unanswered. Now only that caller goes
/// unwoken. An answer whose caller is gone may hold its event's last
/// reference, whose `Drop` (the event type's code) may panic: it is let
/// go under a catch of its own.
pub(super) fn answer<T>(ack: tokio::sync::oneshot::Sender<T>, value: T) {
    let sent = crate::error::wake_caught("waking an appender panicked; its answer was stored", || ack.send(value));
    if let Some(Err(unsent)) = sent {
        crate::error::let_go(unsent);
    }
}

impl<E: Send + Sync + 'static> Acks<E> {
    /// Spawns the delivering task on the current runtime, when there is one;
    /// without one, every acknowledgement is sent by the writer.
    pub(super) fn spawn() -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { deliveries: Vec::new(), since: None, task: false, sending: false }),
            notify: Notify::new(),
            sent: Condvar::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            shared.lock().task = true;
            runtime.spawn(deliver_forever(TaskGuard { shared: Arc::clone(&shared), taken: VecDeque::new() }));
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
        if queue.task && !queue.stale() && (self.batch.len() > 1 || !queue.deliveries.is_empty()) {
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

    /// Sends everything queued, whatever its age. The writer calls it
    /// before it parks on an empty inbox: on a runtime whose threads are
    /// all blocked (an append awaited with a blocking `block_on` on a
    /// current-thread runtime, say) the task never runs.
    pub(super) fn deliver_queued(&self) {
        let queued = self.shared.lock().take();
        send_all(queued.into_iter());
    }

    /// Sends what is queued if it has waited [`STALE`] for the task.
    /// `Some(left)` when what is queued is younger: a writer about to park
    /// parks at most `left`, then calls again.
    pub(super) fn deliver_if_stale(&self) -> Option<Duration> {
        let mut queue = self.shared.lock();
        if !queue.stale() {
            return queue.since.map(|since| STALE.saturating_sub(since.elapsed()));
        }
        let stale = queue.take();
        drop(queue);
        send_all(stale.into_iter());
        None
    }

    /// At close: from here on the writer sends every acknowledgement; sends
    /// what is queued, then the batch, and waits until the task has sent
    /// what it took, so that every append journaled so far was answered.
    /// Idempotent: `run` calls it before it answers `close`, and the drop
    /// at the end of `run` again.
    pub(super) fn finish(&mut self) {
        let mut queue = self.shared.lock();
        queue.task = false;
        let left = queue.take();
        while queue.sending {
            self.shared.sent.wait(&mut queue);
        }
        drop(queue);
        send_all(left.into_iter().chain(self.batch.drain(..)));
        self.shared.notify.notify_one();
    }
}

impl<E> Drop for Acks<E> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The task's hold on the queue, and the deliveries it took and has not
/// sent yet. When the task ends or is dropped (with its runtime, or by a
/// panic no send catches: a `tracing` layer's), it sends what it still holds and what is queued,
/// stops taking deliveries (the writer then sends directly), and only then
/// clears `sending`, so `finish` returns after all of it was sent.
struct TaskGuard<E> {
    shared: Arc<Shared<E>>,
    taken: VecDeque<Delivery<E>>,
}

impl<E> Drop for TaskGuard<E> {
    fn drop(&mut self) {
        send_all(self.taken.drain(..));
        let left = {
            let mut queue = self.shared.lock();
            queue.task = false;
            queue.take()
        };
        send_all(left.into_iter());
        self.shared.lock().sending = false;
        self.shared.sent.notify_all();
    }
}

async fn deliver_forever<E>(mut guard: TaskGuard<E>) {
    loop {
        guard.shared.notify.notified().await;
        {
            let mut queue = guard.shared.lock();
            if !queue.task {
                return; // the writer is closing and sends what is left
            }
            // Moved, not swapped: both buffers keep their capacity, so a
            // batch allocates nothing here.
            guard.taken.extend(queue.deliveries.drain(..));
            queue.since = None;
            queue.sending = true;
        }
        send_all(std::iter::from_fn(|| guard.taken.pop_front()));
        guard.shared.lock().sending = false;
        guard.shared.sent.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use events_core::{Envelope, Seq, Timestamp};
    use tokio::sync::oneshot;

    use super::*;

    /// A batch of `n` acknowledgements and the receivers of their outcome.
    fn batch(acks: &mut Acks<u64>, n: u64) -> Vec<oneshot::Receiver<crate::Result<Acked<u64>>>> {
        (1..=n)
            .map(|seq| {
                let (tx, rx) = oneshot::channel();
                let env =
                    Arc::new(Envelope { seq: Seq::new(seq), ts: Timestamp(0), stream: None, event: seq, id: None });
                acks.push(tx, Acked { env, duplicate: false });
                rx
            })
            .collect()
    }

    fn answered(rxs: &mut [oneshot::Receiver<crate::Result<Acked<u64>>>]) -> usize {
        rxs.iter_mut().map(|rx| rx.try_recv()).filter(|r| matches!(r, Ok(Ok(_)))).count()
    }

    #[test]
    fn once_the_task_is_gone_with_its_runtime_a_batch_is_sent_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut acks = rt.block_on(async { Acks::<u64>::spawn() });
        // The task is dropped, never having run: its guard hands sending back.
        drop(rt);
        let mut rxs = batch(&mut acks, 3);
        acks.deliver();
        assert_eq!(answered(&mut rxs), 3, "a batch waited for a task that is gone");
    }

    #[test]
    fn a_batch_waits_for_a_live_task_until_it_is_stale_or_the_writer_parks() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut acks = rt.block_on(async { Acks::<u64>::spawn() });
        // The runtime is never driven: the task never takes the batch.
        let mut rxs = batch(&mut acks, 3);
        acks.deliver();
        assert_eq!(answered(&mut rxs), 0, "a batch went around the task");
        // Younger than STALE: left to the task, with the time to wait.
        if let Some(left) = acks.deliver_if_stale() {
            assert!(left <= STALE);
            assert_eq!(answered(&mut rxs), 0);
        }
        acks.deliver_queued();
        assert_eq!(answered(&mut rxs), 3);
        // A lone acknowledgement with nothing queued goes directly.
        let mut lone = batch(&mut acks, 1);
        acks.deliver();
        assert_eq!(answered(&mut lone), 1);
        drop(rt);
    }
}
