//! A replicator whose `start_after` is past the journal's end waits for
//! the journal to get there, saying so once: it had made a follower at
//! `start_after` at every poll, whose `Ahead` reset logged a "follower
//! reset" line each time (20 a second at the default interval, more with
//! a feed's sink waking it). This file holds a single test: what it
//! captures is the process's log.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events_nats::{Replicator, StreamSpec};
use support::{Server, fill, journal, within};

/// Every line logged in this process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().filter(|line| line.contains(text)).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_start_after_is_said_once() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).init();
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut j = journal(dir.path());
    fill(&mut j, 1, 10);
    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("WAITING", "feed.waiting"))
        .start_after(1000)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("the replicator waits", async {
        while !replicator.stats().waiting_for_start_after {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Then a hundred polls: what is logged while nothing changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(replicator.stats().waiting_for_start_after);
    assert_eq!(captured.lines_with("has not reached start_after"), 1);
    let resets = captured.lines_with("follower reset");
    assert!(resets <= 1, "{resets} follower resets logged while waiting");
    // Once the journal gets there, what follows `start_after` goes out.
    fill(&mut j, 11, 1005);
    within("1005", replicator.wait_for(1005)).await.unwrap();
    assert!(!replicator.stats().waiting_for_start_after);
    let stats = replicator.shutdown().await;
    assert_eq!(stats.published, 5, "{stats:?}");
}
