//! A replicator never publishes a batch whose fsync failed. The feed (its
//! journal under `SyncPolicy::Always`, with the journal's fault seam)
//! appends five events, which reach JetStream; then a sixth, a phantom,
//! whose `fdatasync` fails (EIO) and whose cut-back stalls 400 ms, so its
//! bytes sit in the segment while the replicator polls every 2 ms. The feed
//! is then reopened (no faults) and the real event 6 appended, then a 7th.
//! JetStream must hold seqs 1..=7 once each, in order, seq 6 carrying the
//! real event, and never the phantom.
//!
//! Neighbours: `crates/events/tests/reader_other_process.rs` checks the
//! same for the façade's `FeedReader` in another process; here the
//! replicator runs in-process (it reads through the same watermark-bounded
//! `Follower` either way); `tests/support` starts the server.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::{AppendOptions, Bincode, Feed, FeedItem, Seq, SyncPolicy};
use events_nats::headers::{self, Coordinates};
use events_nats::{RemoteFeed, Replicator, StreamSpec};
use futures::StreamExt;
use support::{Ev, Server, segments, stream_messages, within};

/// `libc::EIO` on Linux, macOS and the BSDs; one constant is not worth a
/// dependency.
const EIO: i32 = 5;
/// The event whose append fails: it must never reach JetStream.
const PHANTOM: u64 = 666;

fn ev(n: u64) -> Ev {
    Ev { n, note: format!("event number {n}") }
}

/// Whether the newest segment of `dir` holds a written byte past `offset`
/// (under `Always` the journal reserves space ahead of its writes, which
/// reads as zeros, so the file's length says nothing).
fn written_past(dir: &Path, offset: u64) -> bool {
    let newest = segments(dir).pop().expect("the feed has a segment");
    let bytes = std::fs::read(newest).unwrap();
    bytes.get(usize::try_from(offset).unwrap()..).is_some_and(|rest| rest.iter().any(|&b| b != 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_fsync_failed_never_reaches_jetstream() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");

    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    for n in 1..=5 {
        assert_eq!(feed.append(None, ev(n)).await.unwrap(), Seq::new(n));
    }
    let spec = StreamSpec::new("CUTBACK", "feed.cutback");
    let replicator = Replicator::builder(&dir, js.clone(), spec.clone())
        .poll_interval(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    within("1..=5 replicated", replicator.wait_for(5)).await.unwrap();

    let acked_len = events::layers::journal::Reader::open(&dir).unwrap().watermark().unwrap().unwrap().offset;
    assert!(!written_past(&dir, acked_len));
    plan.inject_next(Step::AppendSync, Fault::Errno(EIO));
    plan.inject_next(Step::Truncate, Fault::Stall(Duration::from_millis(400)));
    // The failing append and, beside it, a watch on the segment: it sees the
    // phantom's bytes land and checks the replicator, polling all the while,
    // has replicated nothing past 5 for as long as they are there.
    let watch = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut observations = 0u32;
        loop {
            if written_past(&dir, acked_len) {
                observations += 1;
                let stats = replicator.stats();
                assert_eq!(stats.replicated, 5, "replicated past the acknowledged seq: {stats:?}");
            } else if observations > 0 {
                return observations; // cut back
            }
            assert!(Instant::now() < deadline, "the phantom's bytes never showed up, or never went away");
            tokio::time::sleep(Duration::from_millis(1)).await; // polling a file
        }
    };
    let (appended, observations) = tokio::join!(feed.append(None, ev(PHANTOM)), watch);
    assert!(appended.is_err(), "the fsync fault did not fire: {appended:?}");
    assert!(observations > 0);
    assert_eq!(plan.count(Step::Truncate), 1, "the failed batch was cut back");
    assert_eq!(stream_messages(&js, "CUTBACK").await.len(), 5, "nothing published while the phantom sat in the file");

    // A new writer on the same directory: recovery, then the real seq 6.
    drop(feed);
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Always).open().await.unwrap();
    assert_eq!(feed.append(None, ev(6)).await.unwrap(), Seq::new(6), "the cut-back seq goes to the real event");
    // The 7th with a caller's event id: it travels as the `Events-Event-Id` header.
    let seventh = feed.append_with(None, ev(7), AppendOptions::new().id("op-7")).await.unwrap();
    assert_eq!(seventh.seq, Seq::new(7));
    within("6 and 7 replicated", replicator.wait_for(7)).await.unwrap();

    // Every seq exactly once, in order, each carrying its real event.
    let epoch = feed.epoch();
    let messages = stream_messages(&js, "CUTBACK").await;
    let mut seqs = Vec::new();
    for msg in &messages {
        let at = Coordinates::parse(Some(&msg.headers), "CUTBACK", msg.stream_seq).unwrap();
        assert_eq!(at.epoch, epoch);
        assert_eq!(msg.header("Nats-Msg-Id"), Some(headers::msg_id(epoch, at.seq).as_str()));
        assert_eq!(msg.header(headers::EVENT_ID), (at.seq == 7).then_some("op-7"));
        let env = events::payload::decode::<Ev, Bincode>(&Bincode, at.seq, at.ts, &msg.payload).unwrap();
        assert_ne!(env.event.n, PHANTOM, "JetStream holds the phantom at seq {}", at.seq);
        assert_eq!(env.event, ev(at.seq), "the message of seq {} carries another event", at.seq);
        seqs.push(at.seq);
    }
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>(), "each seq once, in order");

    // A remote reader sees the same.
    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec);
    let mut items = remote.stream_from(Seq::ZERO).await.unwrap();
    for n in 1..=7 {
        match within("remote item", items.next()).await.expect("the remote stream does not end").unwrap() {
            FeedItem::Event(env) => {
                assert_eq!((env.seq, &env.event), (Seq::new(n), &ev(n)));
                assert_eq!(env.id.as_ref().map(|i| i.as_str()), (n == 7).then_some("op-7"));
            }
            other => panic!("unexpected {other:?} before seq {n}"),
        }
    }

    let stats = replicator.stats();
    assert_eq!((stats.replicated, stats.published, stats.resyncs), (7, 7, 0), "nothing re-sent: {stats:?}");
    assert_eq!((stats.skipped, stats.gaps, stats.stopped), (0, 0, false), "{stats:?}");
    replicator.shutdown().await;
    feed.close().await.unwrap();
}
