//! A follower in another process gets the writer's guarantees. A child
//! process (this test binary, re-run) is the writer; the parent follows with
//! a [`FeedReader`].
//!
//! * A failed fsync: the child appends five events, then a sixth whose
//!   `fdatasync` fails (EIO, through the journal's fault seam) and whose
//!   cut-back is slow (a stall of the truncate), so its bytes sit in the file
//!   while the writer runs. The follower must never yield that phantom seq 6;
//!   after the child reopens and appends the real event 6, it yields that.
//! * A recreated directory: the child writes a journal, the parent follows
//!   it, the child deletes the directory and writes a new journal past the
//!   follower's cursor; the follower yields one `EpochMismatch` reset and
//!   then the new journal from its beginning, never its middle.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::{Feed, FeedItem, FeedReader, FeedStream, ResetReason, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

const CHILD_ENV: &str = "EVENTS_READER_OTHER_PROCESS_CHILD";

/// Runs `test` of this binary as the child, with its stdin and stdout piped.
fn spawn_child(test: &str, dir: &Path) -> (Child, ChildStdin, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, stdin, lines)
}

/// Reads the child's lines until one contains `what`.
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, what: &str) {
    for line in lines.by_ref() {
        if line.unwrap().contains(what) {
            return;
        }
    }
    panic!("the child ended before saying {what:?}");
}

/// The child's side: waits for a line on stdin (the parent's go-ahead).
fn wait_for_parent() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

fn say(what: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{what}").unwrap();
    out.flush().unwrap();
}

async fn next_item(s: &mut FeedStream<Ev>) -> FeedItem<Ev> {
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("the follower waited 20 s for an item")
        .expect("stream ended")
        .expect("stream error")
}

async fn next_event(s: &mut FeedStream<Ev>) -> (Seq, Ev) {
    match next_item(s).await {
        FeedItem::Event(env) => (env.seq, env.event.clone()),
        other => panic!("expected an event, got {other:?}"),
    }
}

const PHANTOM: u64 = 666;

async fn cut_back_child(dir: &Path) {
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    for n in 1..=5 {
        feed.append(None, msg(n)).await.unwrap();
    }
    say("ACKED 5");
    wait_for_parent();
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    plan.inject_next(Step::Truncate, Fault::Stall(Duration::from_millis(400)));
    assert!(feed.append(None, msg(PHANTOM)).await.is_err(), "the fsync fault did not fire");
    drop(feed);
    let feed: Feed<Ev> = Feed::builder(dir).sync(SyncPolicy::Always).open().await.unwrap();
    assert_eq!(feed.append(None, msg(6)).await.unwrap(), Seq::new(6), "the cut-back seq is given to the real event");
    say("REAL 6");
    wait_for_parent();
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_in_another_process_never_sees_a_batch_whose_fsync_failed() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        cut_back_child(Path::new(&dir)).await;
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, mut stdin, mut lines) =
        spawn_child("a_follower_in_another_process_never_sees_a_batch_whose_fsync_failed", tmp.path());
    wait_for(&mut lines, "ACKED 5");
    let reader: FeedReader<Ev> = FeedReader::open(tmp.path()).unwrap().poll_interval(Duration::from_millis(2));
    let mut follower = reader.stream_from(Seq::ZERO);
    for n in 1..=5 {
        assert_eq!(next_event(&mut follower).await, (Seq::new(n), msg(n)));
    }
    writeln!(stdin, "go").unwrap();
    // The follower polls every 2 ms through the 400 ms the phantom sits in
    // the file; whatever it yields next must be the real event 6.
    assert_eq!(next_event(&mut follower).await, (Seq::new(6), msg(6)), "the follower saw a phantom");
    wait_for(&mut lines, "REAL 6");
    writeln!(stdin, "go").unwrap();
    assert!(child.wait().unwrap().success());
}

async fn recreate_child(dir: &Path) {
    let feed: Feed<Ev> = Feed::builder(dir).open().await.unwrap();
    for n in 1..=10 {
        feed.append(None, msg(n)).await.unwrap();
    }
    feed.close().await.unwrap();
    say("OLD 10");
    wait_for_parent();
    std::fs::remove_dir_all(dir).unwrap();
    let feed: Feed<Ev> = Feed::builder(dir).open().await.unwrap();
    for n in 1..=30 {
        feed.append(None, msg(1000 + n)).await.unwrap();
    }
    say("NEW 30");
    wait_for_parent();
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resets_when_the_directory_is_recreated_under_it() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        recreate_child(Path::new(&dir)).await;
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let (mut child, mut stdin, mut lines) =
        spawn_child("a_follower_resets_when_the_directory_is_recreated_under_it", &dir);
    wait_for(&mut lines, "OLD 10");
    let reader: FeedReader<Ev> = FeedReader::open(&dir).unwrap().poll_interval(Duration::from_millis(2));
    let old_epoch = reader.epoch();
    let mut follower = reader.stream_from(Seq::ZERO);
    for n in 1..=10 {
        assert_eq!(next_event(&mut follower).await, (Seq::new(n), msg(n)));
    }
    writeln!(stdin, "go").unwrap();
    wait_for(&mut lines, "NEW 30");
    let FeedItem::Reset { reason, earliest, .. } = next_item(&mut follower).await else {
        panic!("expected the epoch reset")
    };
    let ResetReason::EpochMismatch { cursor_epoch, journal_epoch } = reason else {
        panic!("expected EpochMismatch, got {reason:?}")
    };
    assert_eq!(cursor_epoch, old_epoch);
    assert_ne!(journal_epoch, old_epoch);
    assert_eq!(reader.epoch(), journal_epoch, "the reader reports the new epoch");
    assert_eq!(earliest, Seq::new(1));
    // The new journal from its beginning: never seq 11 onwards as if nothing happened.
    for n in 1..=30 {
        assert_eq!(next_event(&mut follower).await, (Seq::new(n), msg(1000 + n)));
    }
    writeln!(stdin, "go").unwrap();
    assert!(child.wait().unwrap().success());
}
