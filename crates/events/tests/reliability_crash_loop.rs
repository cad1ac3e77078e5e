//! The crash loop: a child process (this test binary, re-run) drives the
//! façade with `SyncPolicy::Always` and four concurrent appenders, printing
//! `ack <seq> <writer> <n>` for every acknowledged append; the parent
//! SIGKILLs it at a random moment, reopens the feed (which runs recovery),
//! and checks every promise a crash can break: every acknowledged seq is in
//! the journal with its payload; seqs are contiguous from 1; no seq is ever
//! reused (what the journal held before a round is unchanged after it, and
//! the child's first seq is above every seq that ever existed); each
//! appender's events are in its order; `verify` is clean.
//!
//! 50 rounds by default (CI); `EVENTS_CRASH_ROUNDS=N` for a soak
//! (`cargo xtask soak --crash N` runs this test in release mode).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use events::layers::journal::{Reader, verify};
use events::{Bincode, Event, Feed, Retention, SyncPolicy};
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "EVENTS_CRASH_LOOP_CHILD";
const ROUND_ENV: &str = "EVENTS_CRASH_LOOP_ROUND";
const TEST_NAME: &str = "sigkill_loop_loses_no_acknowledged_event_and_reuses_no_seq";
const APPENDERS: u32 = 4;

/// The probe: which appender of which round, and its count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Probe {
    writer: u32,
    n: u64,
}

impl Event for Probe {}

async fn open(dir: &Path) -> Feed<Probe> {
    // Small segments, so kills also land in rolls.
    Feed::builder(dir)
        .sync(SyncPolicy::Always)
        .segment_bytes(4096)
        .retention(Retention::unlimited())
        .open()
        .await
        .expect("open feed")
}

/// The child: append forever from `APPENDERS` tasks, acknowledging on stdout
/// only after `append` returned.
fn child(dir: &Path, round: u32) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let feed = open(dir).await;
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        {
            let mut o = out.lock().unwrap();
            writeln!(o, "READY {}", feed.latest_seq().get()).unwrap();
            o.flush().unwrap();
        }
        let mut tasks = Vec::new();
        for w in 0..APPENDERS {
            let (feed, out) = (feed.clone(), Arc::clone(&out));
            let writer = round * APPENDERS + w;
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let seq = feed.append(None, Probe { writer, n }).await.expect("append");
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ack {} {writer} {n}", seq.get()).unwrap();
                    o.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    unreachable!("the appenders never stop");
}

/// Every record of the journal, decoded, after checking that seqs run 1, 2, 3, ...
fn journal(dir: &Path) -> Vec<Probe> {
    let reader = Reader::open(dir).unwrap();
    let mut out = Vec::new();
    for r in reader.read_since(0).unwrap() {
        let r = r.unwrap();
        assert_eq!(r.seq(), out.len() as u64 + 1, "seqs are not contiguous");
        let env = events::payload::decode::<Probe, _>(&Bincode, r.seq(), r.ts(), r.payload()).unwrap();
        out.push(env.event);
    }
    out
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_loop_loses_no_acknowledged_event_and_reuses_no_seq() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
        child(Path::new(&dir), round);
    }
    let rounds: u32 = std::env::var("EVENTS_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let seed = 0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id());
    let mut rng = seed;
    let mut history: Vec<Probe> = Vec::new();
    let (mut acks_checked, mut unacked_found, mut empty_rounds) = (0u64, 0u64, 0u32);
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let kill_after = xorshift(&mut rng) % 80;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut ready = None;
        let mut due = false;
        let mut acks: Vec<(u64, u32, u64)> = Vec::new();
        let parse = |line: &str| -> Option<(u64, u32, u64)> {
            let mut it = line.strip_prefix("ack ")?.split(' ').map(str::parse::<u64>);
            Some((it.next()?.ok()?, u32::try_from(it.next()?.ok()?).ok()?, it.next()?.ok()?))
        };
        for line in lines.by_ref() {
            let line = line.unwrap();
            // libtest prints "test <name> ... " without a newline before the child's first line.
            if let Some((_, n)) = line.split_once("READY ") {
                ready = Some(n.trim().parse::<u64>().unwrap());
            } else if let Some(ack) = parse(&line) {
                acks.push(ack);
            }
            if ready.is_some() && acks.len() as u64 >= kill_after {
                due = true;
                break;
            }
        }
        // Its output ended before the kill was due: the child ended by
        // itself (an append that failed panics it), which is no SIGKILL
        // round and must not pass as one.
        if !due {
            let status = child.wait().unwrap();
            panic!("round {round}: the child ended by itself ({status}) after {} acks (seed {seed:#x})", acks.len());
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acknowledgements already in the pipe count too.
        acks.extend(lines.map_while(Result::ok).filter_map(|l| parse(&l)));
        let ready = ready.unwrap_or_else(|| panic!("round {round}: the child never became ready (seed {seed:#x})"));
        let ctx = format!("round {round} (seed {seed:#x})");
        assert_eq!(ready, history.len() as u64, "{ctx}: the child resumed at the wrong seq");
        empty_rounds += u32::from(acks.is_empty());

        // Reopen through the façade (recovery runs here), then close cleanly.
        let latest = rt.block_on(async {
            let feed = open(&dir).await;
            let latest = feed.latest_seq().get();
            feed.close().await.unwrap();
            latest
        });
        let now = journal(&dir);
        assert_eq!(latest, now.len() as u64, "{ctx}: the reopened feed disagrees with its journal");
        assert!(now.len() >= history.len(), "{ctx}: the journal shrank from {} to {}", history.len(), now.len());
        assert_eq!(now[..history.len()], history[..], "{ctx}: a durable record changed (seq reuse)");
        for &(seq, writer, n) in &acks {
            assert!(seq > history.len() as u64, "{ctx}: seq {seq} acknowledged again (reuse)");
            let got = now.get(seq as usize - 1);
            assert_eq!(got, Some(&Probe { writer, n }), "{ctx}: acknowledged seq {seq} lost or wrong");
        }
        // Each appender's events are in its own order, with no hole.
        for w in round * APPENDERS..(round + 1) * APPENDERS {
            let ns: Vec<u64> = now[history.len()..].iter().filter(|p| p.writer == w).map(|p| p.n).collect();
            assert!(ns.iter().enumerate().all(|(i, &n)| n == i as u64), "{ctx}: writer {w} out of order: {ns:?}");
        }
        let report = verify(&dir).unwrap();
        assert!(report.is_ok(), "{ctx}: verify: {:?}", report.problems);
        acks_checked += acks.len() as u64;
        unacked_found += (now.len() - history.len()) as u64 - acks.len() as u64;
        history = now;
    }
    assert!(acks_checked > u64::from(rounds), "too few acknowledgements to mean anything: {acks_checked}");
    println!(
        "crash loop: {rounds} SIGKILLs survived in {:.1?}, {acks_checked} acknowledged events checked, \
         {} events in the journal, {unacked_found} written but unacknowledged at the kill, \
         {empty_rounds} kills before the first ack",
        started.elapsed(),
        history.len()
    );
}
