//! `events dump` and `events tail` (without `--follow`) on a journal whose
//! writer is opening it, in this test process: reads then stop at the
//! sealed segments, so on a one-segment journal they saw nothing. Both
//! printed that (no record, exit 0) as the whole journal; they now wait
//! until the writer is open and print every acknowledged record.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::layers::journal::{Journal, JournalOptions};

/// A writer opening `dir` on a thread, held in its open (at the seq lease,
/// after its watermark says `Recovering`) until the plan is released.
fn a_writer_held_opening(dir: &Path) -> (FaultPlan, std::thread::JoinHandle<Journal>) {
    let plan = FaultPlan::new();
    plan.inject(Step::Lease, 0, Fault::Hold);
    let opts = JournalOptions::new().faults(plan.clone());
    let dir = dir.to_owned();
    let opening = std::thread::spawn(move || Journal::open(&dir, opts).expect("the writer opens").0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while plan.count(Step::Lease) == 0 {
        assert!(Instant::now() < deadline, "the writer never reached its lease");
        std::thread::yield_now();
    }
    (plan, opening)
}

/// The seqs of the `--json` lines `events <args>` prints (it must
/// succeed), run while `plan` holds a writer's open: it must still be
/// running 2 s later (it waits for the writer), when the writer is
/// released. (A stall had let a slow machine start it after the open,
/// checking nothing; found by audit.)
fn printed_seqs(args: &[&str], dir: &Path, plan: &FaultPlan) -> Vec<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(&args[..1])
        .arg(dir)
        .args(&args[1..])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let waited = child.try_wait().unwrap().is_none();
    plan.release();
    let out = child.wait_with_output().unwrap();
    assert!(waited, "events {args:?} ended while the writer was opening: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "events {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let lines = String::from_utf8(out.stdout).unwrap();
    lines.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap()).collect()
}

#[test]
fn dump_and_tail_print_every_record_while_a_writer_opens_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new()).unwrap();
    journal.append_batch([(1, b"a".as_slice()), (2, b"b"), (3, b"c")]).unwrap();
    journal.close().unwrap();
    for args in [&["dump", "--json"][..], &["tail", "--from", "0", "--json"]] {
        let (plan, opening) = a_writer_held_opening(tmp.path());
        assert_eq!(printed_seqs(args, tmp.path(), &plan), [1, 2, 3], "events {args:?}");
        let journal = opening.join().unwrap();
        journal.close().unwrap();
    }
}

/// A dump that started while the writer was opening, and was still
/// printing the sealed segments (its reader slow: a pipe nobody reads yet)
/// when the writer finished: it reads again, and prints the newest
/// segment's records too. It had asked only whether a writer was opening
/// when its pass ended, found none, and exited 0 without them.
#[test]
fn a_dump_still_printing_when_the_writer_finishes_opening_prints_the_newest_segment() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new().segment_bytes(4096)).unwrap();
    const RECORDS: u64 = 1500;
    for n in 1..=RECORDS {
        journal.append(n, [7u8; 16]).unwrap();
    }
    journal.close().unwrap();
    let (plan, opening) = a_writer_held_opening(tmp.path());
    let mut dump = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(["dump"])
        .arg(tmp.path())
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its first lines fill the pipe (more than 64 KiB), and it waits there
    // while the writer finishes opening: released once the pipe is seen
    // full (over half its size, and no line more for half a second), so
    // the dump is known to have been printing while the writer opened (a
    // fixed wait let a slow machine start it after the release, checking
    // nothing; found by audit).
    let mut stdout = dump.stdout.take().unwrap();
    support::until_the_pipe_is_full(&stdout, &mut dump, "the dump, while the writer was opening,");
    plan.release();
    let journal = opening.join().unwrap();
    let mut printed = String::new();
    stdout.read_to_string(&mut printed).unwrap();
    assert!(dump.wait().unwrap().success());
    let seqs: Vec<u64> = printed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=RECORDS).collect::<Vec<_>>(), "the newest segment's records");
    journal.close().unwrap();
}
