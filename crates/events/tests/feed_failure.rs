//! A journal failure is not published. Writes beyond `RLIMIT_FSIZE` fail
//! with `EFBIG` — a real I/O error from the kernel, injected without root
//! tricks — so the feed's writer sees its journal write fail: `append`
//! returns the error, nothing is broadcast or given to sinks, the feed
//! reports itself unhealthy and refuses later appends, a stream ends with
//! that failure after the acknowledged events (the feed still open), and what was journaled before
//! stays readable, also after reopening.
//!
//! This file holds a single test because the limit is process-wide.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events::{Envelope, Error, EventSink, Feed, FeedItem, Filter, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg, take_events};

#[derive(Default)]
struct CountingSink(AtomicU64);

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for CountingSink {
    async fn emit(&self, _event: &Envelope<Ev>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn limit_file_size(bytes: u64) {
    // SAFETY: plain libc calls with valid arguments; ignoring SIGXFSZ makes
    // an over-limit write return EFBIG instead of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_append_is_not_published() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let sink = Arc::new(CountingSink::default());
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Always).sink(Arc::clone(&sink)).open().await.unwrap();
    let mut live = feed.stream_from(Seq::ZERO);
    // A stream of another stream's events: it skips every one, and reports
    // how far it scanned in one checkpoint, at its end.
    let mut filtered = feed
        .stream_filtered(Seq::ZERO, Filter::stream("other"))
        .unwrap()
        .checkpoint_every(1 << 20)
        .checkpoint_after(Duration::from_secs(3600));
    let mut acked = Vec::new();
    for n in 1..=3 {
        acked.push(feed.append(None, msg(n)).await.unwrap());
    }
    assert_eq!(take_events(&mut live, 3).await.len(), 3);

    limit_file_size(4096);
    let mut failure = None;
    for n in 4..=1000 {
        match feed.append(None, msg(n)).await {
            Ok(seq) => acked.push(seq),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("the journal never failed");
    assert!(matches!(failure, Error::Journal(_)), "{failure:?}");
    let stats = feed.stats();
    assert!(!stats.healthy);
    assert_eq!(stats.latest_seq, acked.len() as u64);

    // Refused from now on, without touching the journal.
    assert!(matches!(feed.append(None, msg(1000)).await, Err(Error::Unhealthy { .. })));
    feed.record(None, &msg(1001));

    // The stream sees exactly the acknowledged events, then ends saying
    // why, while the feed is still open: it had waited, silent, for the
    // feed's close (a stream that starts now ends the same way).
    let got = take_events(&mut live, acked.len() - 3).await;
    assert_eq!(got.last().unwrap().0, *acked.last().unwrap());
    let mut late = feed.stream_from(Seq::ZERO);
    assert_eq!(take_events(&mut late, acked.len()).await.len(), acked.len());
    for stream in [&mut live, &mut late] {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("the stream ends, unclosed") {
            Some(Err(Error::Unhealthy { cause })) => assert!(cause.contains("File too large"), "{cause}"),
            other => panic!("expected the writer's failure, got {other:?}"),
        }
        assert!(stream.next().await.is_none());
    }
    assert!(!feed.is_closed());
    // The filtered stream's checkpoint of what it scanned comes before the
    // failure, which a client stops at: it had come after it, lost.
    let items = tokio::time::timeout(Duration::from_secs(10), (&mut filtered).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(items[0], Ok(FeedItem::Checkpoint { seq }) if seq == *acked.last().unwrap()), "{items:?}");
    assert!(matches!(items[1], Err(Error::Unhealthy { .. })), "{items:?}");
    // Sinks are best-effort: they saw at most the acknowledged events.
    assert!(sink.0.load(Ordering::SeqCst) <= acked.len() as u64);
    let reader = feed.reader();
    let _ = feed.close().await;
    // Once closed, every acknowledged event reached the sink or was
    // counted as dropped for it, and nothing else did.
    let seen = sink.0.load(Ordering::SeqCst);
    assert_eq!(seen + reader.stats().sink_dropped, acked.len() as u64, "the sink saw {seen}");
    // With the writer stopped, a new stream ends saying why too: it had
    // ended with a plain `None`, as after a clean close.
    let mut closed = reader.stream_from(Seq::ZERO);
    assert_eq!(take_events(&mut closed, acked.len()).await.len(), acked.len());
    match tokio::time::timeout(Duration::from_secs(10), closed.next()).await.expect("the stream ends") {
        Some(Err(Error::Unhealthy { cause })) => assert!(cause.contains("File too large"), "{cause}"),
        other => panic!("expected the writer's failure, got {other:?}"),
    }

    // Reopening recovers exactly the acknowledged events; nothing
    // half-written is served.
    limit_file_size(libc::RLIM_INFINITY);
    let feed: Feed<Ev> = Feed::builder(&dir).open().await.unwrap();
    assert_eq!(feed.latest_seq(), *acked.last().unwrap());
    let mut s = feed.stream_from(Seq::ZERO);
    let all = take_events(&mut s, acked.len()).await;
    assert_eq!(all.iter().map(|(s, _)| *s).collect::<Vec<_>>(), acked);
    assert_eq!(feed.append(None, msg(2000)).await.unwrap(), acked.last().unwrap().next());
    feed.close().await.unwrap();
}
