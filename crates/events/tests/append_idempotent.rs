//! Idempotent appends: an append carrying an event id is journaled once
//! within the dedupe window, however often it is retried: after a lost
//! acknowledgement, a cancelled call, concurrently, after a clean reopen,
//! and after the writer's process was SIGKILLed mid-append. The id is
//! stored with the record and readers see it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use events::layers::journal::Reader;
use events::{AppendOptions, Bincode, Dedupe, Event, Feed, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    n: u64,
}

impl Event for Job {}

fn with_id(id: impl Into<String>) -> AppendOptions {
    AppendOptions::new().id(id.into())
}

/// Every journaled record's event id, in seq order.
fn journaled_ids(dir: &Path) -> Vec<Option<String>> {
    let reader = Reader::open(dir).unwrap();
    let mut ids = Vec::new();
    for record in reader.read_since(0).unwrap() {
        let record = record.unwrap();
        let env = events::payload::decode::<Job, _>(&Bincode, record.seq(), record.ts(), record.payload()).unwrap();
        assert_eq!(env.id.as_ref().map(|i| i.as_str()), events::payload::event_id(record.payload()));
        ids.push(env.id.map(|i| i.as_str().to_owned()));
    }
    ids
}

fn count(ids: &[Option<String>], id: &str) -> usize {
    ids.iter().filter(|i| i.as_deref() == Some(id)).count()
}

#[tokio::test]
async fn a_retried_id_is_journaled_once_and_readers_see_it() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job> = Feed::builder(tmp.path()).open().await.unwrap();
    let first = feed.append_with(Some("jobs"), Job { n: 1 }, with_id("req-1")).await.unwrap();
    feed.append(Some("jobs"), Job { n: 2 }).await.unwrap();
    let retry = feed.append_with(Some("jobs"), Job { n: 1 }, with_id("req-1")).await.unwrap();
    assert_eq!((retry.seq, retry.duplicate, first.duplicate), (first.seq, true, false));
    let other = feed.append_with(Some("jobs"), Job { n: 3 }, with_id("req-2")).await.unwrap();
    assert!(!other.duplicate && other.seq > first.seq);
    assert_eq!(feed.stats().duplicates, 1);
    // The id reaches every reader: stream_from, read_stream.
    let mut stream = feed.stream_from(Seq::ZERO);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let env = stream.next().await.unwrap().unwrap().event().cloned().unwrap();
        ids.push(env.id.clone().map(|i| i.as_str().to_owned()));
    }
    assert_eq!(ids, vec![Some("req-1".into()), None, Some("req-2".into())]);
    let by_stream = feed.read_stream("jobs", Seq::ZERO).unwrap().next().await.unwrap().unwrap();
    assert_eq!(by_stream.id.as_ref().map(|i| i.as_str()), Some("req-1"));
    feed.close().await.unwrap();
    assert_eq!(journaled_ids(tmp.path()), vec![Some("req-1".into()), None, Some("req-2".into())]);
}

/// Sixteen concurrent appends of one id: one is journaled, fifteen are
/// told they are duplicates of it (some staged in the same batch, some
/// after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_of_one_id_journal_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job> = Feed::builder(tmp.path()).sync(SyncPolicy::Always).open().await.unwrap();
    for round in 0..20u64 {
        let id = format!("req-{round}");
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (feed, id) = (feed.clone(), id.clone());
            tasks.push(tokio::spawn(async move { feed.append_with(None, Job { n: round }, with_id(id)).await }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().unwrap());
        }
        let seq = outcomes[0].seq;
        assert!(outcomes.iter().all(|o| o.seq == seq), "round {round}: {outcomes:?}");
        assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 1, "round {round}: {outcomes:?}");
    }
    feed.close().await.unwrap();
    let ids = journaled_ids(tmp.path());
    assert_eq!(ids.len(), 20);
    assert!((0..20).all(|r| count(&ids, &format!("req-{r}")) == 1));
}

/// A caller cancelled after its append reached the inbox (a timeout, a
/// dropped `select!` branch) retries: the event is journaled once, whether
/// the retry lands in the same batch as the first try or after it.
#[tokio::test]
async fn an_append_retried_after_its_caller_was_cancelled_is_journaled_once() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job> = Feed::builder(tmp.path()).sync(SyncPolicy::Always).open().await.unwrap();
    let mut gave_up = 0;
    for n in 0..30u64 {
        let id = format!("call-{n}");
        {
            let first = feed.append_with(None, Job { n }, with_id(id.clone()));
            futures::pin_mut!(first);
            // Polled until it is queued, then dropped: the caller gave up.
            // Rarely the reply is already there at that first poll (this
            // thread was descheduled between the send and the poll for
            // longer than the fdatasync); the retry is then a duplicate
            // of a completed append, which must hold too.
            if futures::poll!(first.as_mut()).is_pending() {
                gave_up += 1;
            }
        }
        if n % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let retry = feed.append_with(None, Job { n }, with_id(id)).await.unwrap();
        assert_eq!(retry.seq.get(), n + 1, "call-{n}");
    }
    assert!(gave_up > 0, "no caller gave up on an append in flight");
    feed.close().await.unwrap();
    let ids = journaled_ids(tmp.path());
    assert_eq!(ids.len(), 30);
    assert!((0..30).all(|n| count(&ids, &format!("call-{n}")) == 1));
}

#[tokio::test]
async fn the_window_survives_a_reopen_and_forgets_by_count_and_age() {
    let tmp = tempfile::tempdir().unwrap();
    let open = |window| Feed::<Job>::builder(tmp.path()).dedupe(window).open();
    let feed = open(Dedupe::default()).await.unwrap();
    let first = feed.append_with(None, Job { n: 1 }, with_id("a")).await.unwrap();
    feed.close().await.unwrap();
    let feed = open(Dedupe::default()).await.unwrap();
    let retry = feed.append_with(None, Job { n: 1 }, with_id("a")).await.unwrap();
    assert_eq!((retry.seq, retry.duplicate), (first.seq, true), "the window was lost at reopen");
    feed.close().await.unwrap();

    // By count: the window holds the newest two ids.
    let feed = open(Dedupe::new(Duration::from_secs(3600), 2)).await.unwrap();
    for id in ["b", "c", "d"] {
        feed.append_with(None, Job { n: 2 }, with_id(id)).await.unwrap();
    }
    assert!(feed.append_with(None, Job { n: 2 }, with_id("d")).await.unwrap().duplicate);
    assert!(!feed.append_with(None, Job { n: 2 }, with_id("b")).await.unwrap().duplicate);
    feed.close().await.unwrap();
    // A reopen with the same count keeps the newest two: "d" and "b".
    let feed = open(Dedupe::new(Duration::from_secs(3600), 2)).await.unwrap();
    assert!(feed.append_with(None, Job { n: 2 }, with_id("b")).await.unwrap().duplicate);
    assert!(!feed.append_with(None, Job { n: 2 }, with_id("c")).await.unwrap().duplicate);
    feed.close().await.unwrap();

    // By age: a window longer than an fsync on a loaded machine (the
    // first append's must not age its id out before the second looks).
    let feed = open(Dedupe::new(Duration::from_secs(1), 1000)).await.unwrap();
    feed.append_with(None, Job { n: 3 }, with_id("e")).await.unwrap();
    assert!(feed.append_with(None, Job { n: 3 }, with_id("e")).await.unwrap().duplicate);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!feed.append_with(None, Job { n: 3 }, with_id("e")).await.unwrap().duplicate);
    feed.close().await.unwrap();
    // By age across a reopen: inside the window after it, out of it once
    // its age passed (the row had said so; the test never reopened here).
    let window = Dedupe::new(Duration::from_secs(3), 1000);
    let feed = open(window).await.unwrap();
    feed.append_with(None, Job { n: 4 }, with_id("f")).await.unwrap();
    feed.close().await.unwrap();
    let feed = open(window).await.unwrap();
    assert!(feed.append_with(None, Job { n: 4 }, with_id("f")).await.unwrap().duplicate, "within its age");
    feed.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let feed = open(window).await.unwrap();
    assert!(!feed.append_with(None, Job { n: 4 }, with_id("f")).await.unwrap().duplicate, "past its age");
    feed.close().await.unwrap();
    let ids = journaled_ids(tmp.path());
    let counts = (count(&ids, "a"), count(&ids, "b"), count(&ids, "c"), count(&ids, "e"), count(&ids, "f"));
    assert_eq!(counts, (1, 2, 2, 2, 2));
}

const CHILD_ENV: &str = "EVENTS_IDEMPOTENT_CHILD";
const BASE_ENV: &str = "EVENTS_IDEMPOTENT_BASE";
const TEST_NAME: &str = "appends_retried_after_a_sigkill_are_journaled_once";

/// The child: appends `job-<base>`, `job-<base + 1>`, ... with their ids, from four
/// tasks, printing `try <n>` before each append and `ack <n> <seq>` after.
fn child(dir: &Path, base: u64) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let feed: Feed<Job> = Feed::builder(dir).sync(SyncPolicy::Always).segment_bytes(4096).open().await.unwrap();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(base));
        let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (feed, next, out) = (feed.clone(), next.clone(), out.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    {
                        let mut o = out.lock().unwrap();
                        writeln!(o, "try {n}").unwrap();
                        o.flush().unwrap();
                    }
                    let done = feed.append_with(None, Job { n }, with_id(format!("job-{n}"))).await.unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ack {n} {}", done.seq.get()).unwrap();
                    o.flush().unwrap();
                }
            }));
        }
        // The appenders never stop: the parent kills this process.
        futures::future::join_all(tasks).await;
    });
    unreachable!("the appenders never stop");
}

enum Line {
    Try(u64),
    Ack(u64, u64),
}

/// A line of the child (libtest prints "test <name> ... " without a newline
/// before the child's first line).
fn parse(line: &str) -> Option<Line> {
    let mut words = line.split(' ').skip_while(|w| *w != "try" && *w != "ack");
    let number = |words: &mut dyn Iterator<Item = &str>| words.next()?.trim().parse::<u64>().ok();
    match words.next()? {
        "try" => Some(Line::Try(number(&mut words)?)),
        _ => Some(Line::Ack(number(&mut words)?, number(&mut words)?)),
    }
}

/// The writer's process is SIGKILLed with appends in flight (some
/// journaled and acknowledged, some journaled but not acknowledged, some
/// never journaled). The caller retries every append it tried, against the
/// reopened feed: each id ends up in the journal exactly once, and an
/// acknowledged one keeps its seq.
#[test]
fn appends_retried_after_a_sigkill_are_journaled_once() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir), std::env::var(BASE_ENV).unwrap().parse().unwrap());
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut unacknowledged_but_journaled = 0;
    for round in 0..6u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env(BASE_ENV, (round * 1_000_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut tried, mut acked) = (Vec::new(), Vec::new());
        let mut note = |line: &str| match parse(line) {
            Some(Line::Try(n)) => tried.push(n),
            Some(Line::Ack(n, seq)) => acked.push((n, seq)),
            None => {}
        };
        let kill_after = 20 + round * 15;
        let mut acks = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            acks += u64::from(matches!(parse(&line), Some(Line::Ack(..))));
            note(&line);
            if acks >= kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // What was already in the pipe counts too.
        lines.map_while(Result::ok).for_each(|line| note(&line));
        let before = journaled_ids(&dir);
        rt.block_on(async {
            let feed: Feed<Job> =
                Feed::builder(&dir).sync(SyncPolicy::Always).segment_bytes(4096).open().await.unwrap();
            for &n in &tried {
                let retry = feed.append_with(None, Job { n }, with_id(format!("job-{n}"))).await.unwrap();
                if let Some(&(_, seq)) = acked.iter().find(|&&(a, _)| a == n) {
                    assert_eq!((retry.seq.get(), retry.duplicate), (seq, true), "round {round}: job-{n}");
                }
            }
            feed.close().await.unwrap();
        });
        let ids = journaled_ids(&dir);
        for &n in &tried {
            assert_eq!(
                count(&ids, &format!("job-{n}")),
                1,
                "round {round}: job-{n} journaled {} times",
                count(&ids, &format!("job-{n}"))
            );
        }
        unacknowledged_but_journaled += tried
            .iter()
            .filter(|&&n| !acked.iter().any(|&(a, _)| a == n) && count(&before, &format!("job-{n}")) == 1)
            .count();
        assert!(ids.iter().all(Option::is_some), "round {round}: a record without an id");
    }
    println!(
        "idempotent crash loop: {unacknowledged_but_journaled} appends were journaled but unacknowledged at a kill; each retried once"
    );
}

/// With the window off (`ids == 0`), every append is journaled, even two of
/// one id in the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_window_off_every_append_is_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Job> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Always)
        .dedupe(Dedupe::new(Duration::from_secs(60), 0))
        .open()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let feed = feed.clone();
        tasks.push(tokio::spawn(async move {
            feed.append_with(None, Job { n: i }, with_id(format!("id-{}", i / 2))).await
        }));
    }
    for t in tasks {
        assert!(!t.await.unwrap().unwrap().duplicate);
    }
    assert_eq!(feed.latest_seq(), Seq::new(200));
    feed.close().await.unwrap();
}

/// The oldest segment's first record damaged and repaired at reopen (the
/// repair leaves a gap at seq 1 and moves the segment's other records to a
/// segment of their own): their ids are still in the window, so a retry is
/// answered, not journaled twice.
#[tokio::test]
async fn ids_after_a_gap_at_the_start_of_the_oldest_segment_stay_in_the_window() {
    use events::layers::journal::format::{FRAME_HEADER_LEN, HEADER_LEN};
    let tmp = tempfile::tempdir().unwrap();
    let open = |mode| Feed::<Job>::builder(tmp.path()).segment_bytes(512).recovery(mode).open();
    let feed = open(events::RecoveryMode::Strict).await.unwrap();
    for n in 1..=30 {
        feed.append_with(Some("jobs"), Job { n }, with_id(format!("req-{n}"))).await.unwrap();
    }
    feed.close().await.unwrap();
    let mut segments: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    // One byte of the first record's payload, in the oldest segment.
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    bytes[HEADER_LEN + FRAME_HEADER_LEN + 2] ^= 0xff;
    std::fs::write(&segments[0], bytes).unwrap();

    let feed = open(events::RecoveryMode::Repair).await.unwrap();
    let retry = feed.append_with(Some("jobs"), Job { n: 2 }, with_id("req-2")).await.unwrap();
    assert_eq!((retry.seq, retry.duplicate), (Seq::new(2), true));
    feed.close().await.unwrap();
    let reader = Reader::open(tmp.path()).unwrap();
    let req2 = reader.read_since(0).unwrap().filter_map(Result::ok);
    assert_eq!(req2.filter(|r| events::payload::event_id(r.payload()) == Some("req-2")).count(), 1);
}

/// An id appended again to another stream (or to none) names another
/// event, not a retry: refused with `EventIdTaken` naming the seq the id
/// names, nothing journaled; the same after a reopen (the window rebuilt
/// from the journal knows each id's stream) and while the first append is
/// still in flight. A retry to its own stream is still a duplicate. It had
/// been answered `duplicate: true` with the other stream's seq: the event
/// for the second stream was lost, reported journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_appended_again_to_another_stream_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let open = || Feed::<Job>::builder(tmp.path()).open();
    let taken = |result: events::Result<events::Appended>, seq: Seq| match result {
        Err(events::Error::EventIdTaken { id, seq: named }) => assert_eq!((id.as_str(), named), ("x", seq)),
        other => panic!("expected EventIdTaken, got {other:?}"),
    };
    let feed = open().await.unwrap();
    let first = feed.append_with(Some("a"), Job { n: 1 }, with_id("x")).await.unwrap();
    taken(feed.append_with(Some("b"), Job { n: 2 }, with_id("x")).await, first.seq);
    taken(feed.append_with(None, Job { n: 2 }, with_id("x")).await, first.seq);
    assert!(feed.append_with(Some("a"), Job { n: 1 }, with_id("x")).await.unwrap().duplicate);
    feed.close().await.unwrap();
    let feed = open().await.unwrap();
    taken(feed.append_with(Some("b"), Job { n: 2 }, with_id("x")).await, first.seq);
    assert!(feed.append_with(Some("a"), Job { n: 1 }, with_id("x")).await.unwrap().duplicate);
    // In flight: sixteen appends of a new id at once, half of them to
    // another stream; one is journaled, those of its stream are its
    // duplicates, the others are refused.
    let appends = (0..16u64).map(|i| {
        let feed = feed.clone();
        let stream = if i % 2 == 0 { "c" } else { "d" };
        async move { (stream, feed.append_with(Some(stream), Job { n: 3 }, with_id("y")).await) }
    });
    let results = futures::future::join_all(appends).await;
    let journaled: Vec<_> = results.iter().filter(|(_, r)| r.as_ref().is_ok_and(|a| !a.duplicate)).collect();
    assert_eq!(journaled.len(), 1);
    let winner = journaled[0].0;
    for (stream, result) in &results {
        match result {
            Ok(_) => assert_eq!(*stream, winner),
            Err(events::Error::EventIdTaken { .. }) => assert_ne!(*stream, winner),
            Err(e) => panic!("{e}"),
        }
    }
    feed.close().await.unwrap();
    let ids = journaled_ids(tmp.path());
    assert_eq!((count(&ids, "x"), count(&ids, "y"), ids.len()), (1, 1, 2));
}
