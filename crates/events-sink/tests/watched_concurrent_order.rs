//! Order under concurrency: many tasks append through one [`Watched`] store
//! on a multi-threaded runtime while the sink yields inside every emit, and
//! the sink must still see every successful append exactly once, in seq order
//! (which is the store's append order), with each appender's own events in
//! the order it appended them.

mod support;

use std::sync::Arc;

use events_core::{Envelope, Seq};
use events_sink::{DurableStore, MemoryStore, Watched};
use support::Recorder;

const TASKS: u64 = 8;
const PER_TASK: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_sees_appends_in_seq_order_under_concurrent_appenders() {
    let recorder = Recorder::<Envelope<(u64, u64)>>::yielding();
    let store = Arc::new(Watched::new(MemoryStore::new(), Arc::clone(&recorder)));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                store.append(Some(format!("task-{task}").into()), (task, i)).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let seen = recorder.seen();
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq.get()).collect();
    let expected: Vec<u64> = (1..=TASKS * PER_TASK).collect();
    assert_eq!(seqs, expected, "the sink must see contiguous seqs in order");
    assert_eq!(seen, store.store().snapshot(), "the sink must see exactly the stored log");
    for task in 0..TASKS {
        let own: Vec<u64> = seen.iter().filter(|e| e.event.0 == task).map(|e| e.event.1).collect();
        assert_eq!(own, (0..PER_TASK).collect::<Vec<_>>(), "task {task}'s events out of order");
    }
    assert_eq!(store.stats().appended, TASKS * PER_TASK);
    assert_eq!(store.store().latest_seq(), Seq::new(TASKS * PER_TASK));
}
