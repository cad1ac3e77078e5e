//! The load test: 16 producers emit through 4 sessions; 16 lossless session
//! subscribers (4 per session, one of each 4 slow) must each receive every
//! event of their session, in the same order as their siblings and in each
//! producer's order; 4 resuming `stream_from` clients disconnect and
//! reconnect at random while retention prunes small segments under them
//! (`Retention::segments(4)`), and must see contiguous seqs with every
//! skipped range announced by an explicit `Reset`; a fifth client stays away
//! until retention pruned past its cursor and must be reset. At the end the journal
//! holds every event. Prints events/s and the memory high-water mark.
//!
//! CI size by default; `EVENTS_LOAD_PER_PRODUCER=N` for a soak
//! (`cargo xtask soak --load` runs this test in release mode).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use events::{Event, Feed, FeedItem, ResetReason, Retention, Seq, SyncPolicy};
use events_testkit::rng::xorshift;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

const PRODUCERS: u32 = 16;
const SESSIONS: u32 = 4;
const SUBSCRIBERS_PER_SESSION: usize = 4;
const CLIENTS: u64 = 4;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Load {
    producer: u32,
    n: u64,
}

impl Event for Load {}

/// `VmHWM` of this process in KiB (0 where `/proc` is missing).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()))
        })
        .unwrap_or(0)
}

/// What a resuming client saw.
#[derive(Debug, Default)]
struct ClientReport {
    events: u64,
    resets: u64,
    reconnects: u64,
}

/// A client that reads a random number of items, disconnects, pauses, and resumes from its cursor until it has
/// reached `total`. Panics on a gap without a reset, a duplicate, or a producer's events out of order.
async fn resuming_client(feed: Feed<Load>, total: u64, mut rng: u64) -> ClientReport {
    let mut cursor = 0u64;
    let mut last_n: HashMap<u32, u64> = HashMap::new();
    let mut report = ClientReport::default();
    while cursor < total {
        let mut stream = feed.stream_from(Seq::new(cursor));
        let budget = 1 + xorshift(&mut rng) % 3000;
        for _ in 0..budget {
            match stream.next().await {
                Some(Ok(FeedItem::Event(env))) => {
                    assert_eq!(env.seq.get(), cursor + 1, "gap or duplicate without a reset");
                    cursor = env.seq.get();
                    let Load { producer, n } = env.event;
                    if let Some(prev) = last_n.insert(producer, n) {
                        assert_eq!(n, prev + 1, "producer {producer} out of order or missing at seq {cursor}");
                    }
                    report.events += 1;
                }
                Some(Ok(FeedItem::Reset { reason, earliest, latest })) => {
                    assert_eq!(reason, ResetReason::Expired, "only pruning may reset this client");
                    assert!(earliest.get() > cursor + 1, "reset at {cursor} although {earliest} was retained");
                    assert!(latest >= earliest.prev().unwrap_or(Seq::ZERO));
                    // The stream goes on with the earliest retained event.
                    cursor = earliest.get() - 1;
                    // What was skipped is announced; order checks restart after it.
                    last_n.clear();
                    report.resets += 1;
                }
                Some(Ok(item @ FeedItem::Undecodable { .. })) => panic!("every event decodes here: {item:?}"),
                Some(Ok(item @ (FeedItem::Checkpoint { .. } | FeedItem::Ephemeral { .. }))) => {
                    panic!("an unfiltered durable stream has none: {item:?}")
                }
                Some(Err(e)) => panic!("stream error: {e}"),
                None => break,
            }
            if cursor >= total {
                break;
            }
        }
        drop(stream);
        report.reconnects += 1;
        // A random pause before reconnecting, during which producers run ahead and retention prunes.
        // Now and then a long one, so that retention prunes past the cursor and a reset must be announced.
        match xorshift(&mut rng) % 16 {
            0 => tokio::time::sleep(Duration::from_millis(20 + xorshift(&mut rng) % 30)).await,
            1..=4 => tokio::time::sleep(Duration::from_millis(xorshift(&mut rng) % 5)).await,
            _ => tokio::task::yield_now().await,
        }
    }
    report
}

/// A client that reads the first events, then stays away until retention
/// pruned past its cursor: its next connection must begin with an
/// `Expired` reset to the earliest retained event. The random pauses of
/// the resuming clients may or may not outlast pruning at CI size; this one
/// waits for it, so the run always proves a reset.
async fn lagging_client(feed: Feed<Load>) -> Seq {
    let mut cursor = 0u64;
    let mut stream = feed.stream_from(Seq::ZERO);
    for _ in 0..100 {
        match stream.next().await {
            Some(Ok(FeedItem::Event(env))) => {
                assert_eq!(env.seq.get(), cursor + 1, "gap or duplicate without a reset");
                cursor = env.seq.get();
            }
            // This task started late, after pruning began.
            Some(Ok(FeedItem::Reset { reason: ResetReason::Expired, earliest, .. })) => cursor = earliest.get() - 1,
            other => panic!("the lagging client's first events: {other:?}"),
        }
    }
    drop(stream);
    // Polled, not timed: the producers run far past the retained window.
    while feed.stats().earliest_seq <= cursor + 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    match feed.stream_from(Seq::new(cursor)).next().await {
        Some(Ok(FeedItem::Reset { reason, earliest, .. })) => {
            assert_eq!(reason, ResetReason::Expired);
            assert!(earliest.get() > cursor + 1, "reset at {cursor} although {earliest} was retained");
            earliest
        }
        other => panic!("a cursor pruned away resumed without a reset: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_sixteen_producers_lossless_subscribers_resuming_clients_under_pruning() {
    let per_producer: u64 = std::env::var("EVENTS_LOAD_PER_PRODUCER").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    let total = per_producer * u64::from(PRODUCERS);
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Load> = Feed::builder(tmp.path().join("feed"))
        .sync(SyncPolicy::Never)
        .segment_bytes(16 << 10)
        .retention(Retention::segments(4))
        .open()
        .await
        .unwrap();

    let sessions: Vec<_> = (0..SESSIONS).map(|s| feed.session(&format!("s{s}"))).collect();
    let mut subscribers = Vec::new();
    for (s, session) in sessions.iter().enumerate() {
        for k in 0..SUBSCRIBERS_PER_SESSION {
            let mut sub = session.subscribe();
            let slow = k == 0;
            let expected = per_producer * u64::from(PRODUCERS / SESSIONS);
            subscribers.push(tokio::spawn(async move {
                // Checked as it arrives (no copy kept, so VmHWM measures the feed, not the test): each
                // producer's events in order with no hole, and a fingerprint of the whole order to
                // compare with the sibling subscribers.
                let mut next: HashMap<u32, u64> = HashMap::new();
                let mut fingerprint = 0xcbf2_9ce4_8422_2325u64;
                for received in 1..=expected {
                    let ev = match sub.recv().await {
                        Some(Ok(ev)) => ev,
                        other => panic!("session {s} subscriber {k} ended early: {other:?}"),
                    };
                    let want = next.entry(ev.producer).or_insert(0);
                    assert_eq!(ev.n, *want, "session {s} subscriber {k}: producer {} lost or reordered", ev.producer);
                    *want += 1;
                    fingerprint = (fingerprint ^ (u64::from(ev.producer) << 40 | ev.n)).wrapping_mul(0x100_0000_01b3);
                    if slow && received.is_multiple_of(32) {
                        tokio::time::sleep(Duration::from_micros(300)).await;
                    }
                }
                assert!(next.values().all(|&n| n == per_producer), "session {s} subscriber {k}: {next:?}");
                (s, fingerprint)
            }));
        }
    }

    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(resuming_client(feed.clone(), total, 0x9e37_79b9_7f4a_7c15 ^ ((c + 1) * 0x1234_5678))))
        .collect();

    let lagging = tokio::spawn(lagging_client(feed.clone()));

    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let session = sessions[(p % SESSIONS) as usize].clone();
            tokio::spawn(async move {
                for n in 0..per_producer {
                    session.emit(Load { producer: p, n }).await.unwrap();
                }
            })
        })
        .collect();
    let work = async {
        for p in producers {
            p.await.unwrap();
        }
        feed.sync().await.unwrap();
        let produced = started.elapsed();
        let mut per_session: HashMap<usize, Vec<u64>> = HashMap::new();
        for s in subscribers {
            let (session, seen) = s.await.unwrap();
            per_session.entry(session).or_default().push(seen);
        }
        let mut client_reports = Vec::new();
        for c in clients {
            client_reports.push(c.await.unwrap());
        }
        let lagging_reset_to = lagging.await.unwrap();
        (produced, per_session, client_reports, lagging_reset_to)
    };
    let (produced, per_session, clients, lagging_reset_to) =
        tokio::time::timeout(Duration::from_secs(600), work).await.expect("load test hung");

    // Zero loss and zero reorder were checked by each subscriber; siblings saw the same order.
    for (session, prints) in &per_session {
        assert_eq!(prints.len(), SUBSCRIBERS_PER_SESSION);
        assert!(prints.iter().all(|p| p == &prints[0]), "session {session}: subscribers disagree on the order");
    }
    // The journal holds every event.
    let stats = feed.stats();
    assert_eq!(stats.appended, total, "{stats:?}");
    assert_eq!(feed.latest_seq().get(), total);
    assert!(stats.healthy);
    assert!(stats.earliest_seq > 1, "retention never pruned, so the test proved nothing about it: {stats:?}");
    let resets: u64 = clients.iter().map(|c| c.resets).sum();
    let client_events: u64 = clients.iter().map(|c| c.events).sum();
    let reconnects: u64 = clients.iter().map(|c| c.reconnects).sum();
    feed.close().await.unwrap();
    println!(
        "load: {total} events from {PRODUCERS} producers in {produced:.2?} = {:.0} events/s; \
         {} lossless subscriber deliveries; {CLIENTS} resuming clients read {client_events} events over \
         {reconnects} connections with {resets} explicit resets; a lagging client reset to \
         {lagging_reset_to}; VmHWM {} MiB",
        total as f64 / produced.as_secs_f64(),
        total * SUBSCRIBERS_PER_SESSION as u64,
        vm_hwm_kib() / 1024
    );
}
