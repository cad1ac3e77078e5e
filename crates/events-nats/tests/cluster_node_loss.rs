//! Replication into an R3 stream on a 3-node JetStream cluster (the durable
//! configuration) survives losing a node: 50,000 records are replicated
//! while the journal grows, one follower node is SIGKILLed mid-way and
//! restarted, then the stream's leader is SIGKILLed and restarted. A remote
//! consumer reads throughout (resuming from its cursor when the cluster
//! breaks its consumer). Afterwards the stream holds every seq exactly once,
//! in order, and the consumer saw every seq once, in order, with no reset.
//!
//! Neighbours: `support/cluster.rs` (the three servers), `support/mod.rs`
//! (journal filler, stream check).

mod support;

use std::time::Duration;

use events::{Cursor, FeedItem, Seq};
use events_nats::{RemoteFeed, Replicator, StreamSpec};
use futures::StreamExt;
use support::cluster::{Cluster, healthy_leader};
use support::{Ev, fill, journal, verify_stream, within};

const N: u64 = 50_000;

/// What the remote consumer saw.
#[derive(Debug, Default)]
struct ReadLog {
    events: u64,
    /// Times its stream failed or ended and it resumed from its cursor.
    reopened: u64,
}

/// Reads the stream from the start until seq `n`, checking each event is
/// the next seq; resumes from its cursor when the stream fails.
async fn read_all(remote: RemoteFeed<Ev>, epoch: u64, n: u64) -> ReadLog {
    let mut log = ReadLog::default();
    let mut cursor = 0;
    loop {
        let mut items = match remote.stream_from(Cursor::new(Seq::new(cursor), epoch)).await {
            Ok(items) => items,
            Err(e) => {
                log.reopened += 1;
                tracing::info!(error = %e, cursor, "remote consumer: cannot open, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await; // retry pause while the cluster elects
                continue;
            }
        };
        while let Some(item) = items.next().await {
            match item {
                Ok(FeedItem::Event(env)) => {
                    assert_eq!(env.seq.get(), cursor + 1, "the consumer sees every seq once, in order");
                    assert_eq!(env.event.n, env.seq.get(), "payload of seq {}", env.seq);
                    cursor = env.seq.get();
                    log.events += 1;
                    if cursor == n {
                        return log;
                    }
                }
                Ok(other) => panic!("unexpected {other:?} after seq {cursor}"),
                Err(e) => {
                    tracing::info!(error = %e, cursor, "remote consumer: stream failed, resuming from the cursor");
                    break;
                }
            }
        }
        log.reopened += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_stream_survives_losing_a_follower_then_the_leader() {
    let mut cluster = Cluster::start();
    let js = cluster.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = journal(dir.path());
    fill(&mut journal, 1, 10_000);
    let spec = StreamSpec::new("R3", "feed.r3").replicas(3);
    let replicator = Replicator::builder(dir.path(), js.clone(), spec.clone())
        .window(256)
        .ack_timeout(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    let leader = within("an R3 leader", healthy_leader(&js, "R3", 3)).await;
    let reader = tokio::spawn(read_all(RemoteFeed::new(js.clone(), spec), journal.epoch(), N));
    within("5k replicated", replicator.wait_for(5_000)).await.unwrap();

    // A follower dies: two of three replicas keep the quorum.
    let follower = cluster.names().into_iter().find(|n| *n != leader).unwrap();
    cluster.kill(&follower);
    fill(&mut journal, 10_001, 25_000);
    within("20k replicated with a node down", replicator.wait_for(20_000)).await.unwrap();
    cluster.restart(&follower);
    let leader = within("the follower caught up", healthy_leader(&js, "R3", 3)).await;

    // The stream leader dies: the others elect a new one, the replicator
    // resyncs from it.
    cluster.kill(&leader);
    fill(&mut journal, 25_001, 40_000);
    within("35k replicated without the old leader", replicator.wait_for(35_000)).await.unwrap();
    let new_leader = within("a new leader", healthy_leader(&js, "R3", 2)).await;
    assert_ne!(new_leader, leader);
    cluster.restart(&leader);
    fill(&mut journal, 40_001, N);
    within("all replicated", replicator.wait_for(N)).await.unwrap();
    within("three current replicas", healthy_leader(&js, "R3", 3)).await;

    let log = within("the consumer read everything", reader).await.unwrap();
    assert_eq!(log.events, N);
    let stats = replicator.shutdown().await;
    eprintln!("replicator: {stats:?}\nconsumer: {log:?}");
    assert_eq!((stats.replicated, stats.lag_seqs, stats.skipped, stats.gaps), (N, 0, 0, 0), "{stats:?}");
    verify_stream(&js, "R3", N).await;
}
