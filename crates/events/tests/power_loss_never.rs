//! `SyncPolicy::Never` acknowledges an append once the kernel has it, and
//! `stream_from` hands it out at once. A power loss may then take it; the
//! reopened feed never gives its seq to another event: it starts above the
//! journal's durable seq lease, and a reader resuming from a seq it was
//! handed gets one explicit `Reset { Gap }`, then the new events.
//!
//! The power loss is simulated as in `append_pipelined_commit.rs` (a
//! crashing fault, then every segment cut back to what its last
//! `fdatasync` covered); the reboot is `FaultPlan::reboot`.

mod support;

use std::path::Path;
use std::time::Duration;

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::{Feed, FeedItem, ResetReason, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, lose_power, msg, take_events};

async fn open(dir: &Path, plan: &FaultPlan) -> Feed<Ev> {
    plan.lease_step(64);
    Feed::builder(dir)
        .sync(SyncPolicy::Never)
        .retention_check(Duration::from_secs(3600))
        .faults(plan.clone())
        .open()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_never_gives_a_handed_out_seq_to_another_event() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed = open(tmp.path(), &plan).await;
    for n in 1..=100 {
        assert_eq!(feed.append(Some("s"), msg(n)).await.unwrap(), Seq::new(n));
    }
    let seen = take_events(&mut feed.stream_from(Seq::ZERO), 100).await;
    assert_eq!(seen.last().map(|(seq, _)| *seq), Some(Seq::new(100)), "handed out");
    // The process dies (its final fdatasync never runs), then the power goes.
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(feed);
    lose_power(tmp.path(), &plan);

    let plan = FaultPlan::new();
    plan.reboot(1);
    let feed = open(tmp.path(), &plan).await;
    // The lease was extended once, at seq 65, to 129.
    assert_eq!(feed.append(Some("s"), msg(1_000)).await.unwrap(), Seq::new(130));
    let mut resumed = feed.stream_from(Seq::new(100));
    match resumed.next().await.unwrap().unwrap() {
        FeedItem::Reset { reason, .. } => {
            assert_eq!(reason, ResetReason::Gap { first_missing: Seq::new(101), last_missing: Seq::new(129) });
        }
        other => panic!("expected one explicit reset, got {other:?}"),
    }
    match resumed.next().await.unwrap().unwrap() {
        FeedItem::Event(env) => assert_eq!((env.seq, &env.event), (Seq::new(130), &msg(1_000))),
        other => panic!("expected the new event, got {other:?}"),
    }
    feed.close().await.unwrap();
}
