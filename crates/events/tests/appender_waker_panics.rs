//! An appender whose task's waker panics when the writer answers it (the
//! executor's own code): the answer is stored and the feed goes on. The
//! writer thread sends a lone append's answer itself, and the panic had
//! unwound out of it: the feed failed, and every later call of every handle
//! got `Unhealthy`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use events::{Event, Feed, Seq, SyncPolicy};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Step(u64);

impl Event for Step {}

/// A waker whose every wake panics, once it noted that it was woken.
#[derive(Default)]
struct Exploding {
    woken: AtomicBool,
}

impl Wake for Exploding {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        panic!("the waker exploded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appender_whose_waker_panics_leaves_the_feed_healthy() {
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let feed: Feed<Step> = Feed::builder(dir.path()).sync(sync).open().await.unwrap();
        let exploding = Arc::new(Exploding::default());
        let waker = Waker::from(Arc::clone(&exploding));
        // Queued to the writer, waiting for its answer with that waker (an
        // append the writer answered before its first poll looked is done:
        // the next one is tried).
        let mut n = 0;
        let waiting = loop {
            n += 1;
            let mut append = Box::pin(feed.append(None, Step(n)));
            if append.as_mut().poll(&mut Context::from_waker(&waker)).is_pending() {
                break append;
            }
        };
        // Answered alone, by the writer thread itself.
        while !exploding.woken.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(feed.append(None, Step(n + 1)).await.unwrap(), Seq::new(n + 1), "{sync:?}");
        assert!(feed.stats().healthy, "{sync:?}: {:?}", feed.stats());
        // Its answer was stored before the wake: polled again, it is there.
        assert_eq!(waiting.await.unwrap(), Seq::new(n), "{sync:?}");
        feed.sync().await.unwrap();
        feed.close().await.unwrap();
    }
}
