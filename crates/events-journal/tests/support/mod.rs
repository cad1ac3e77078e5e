//! Helpers shared by the integration tests: deterministic payloads, segment
//! listing (`events-testkit`'s, re-exported), reading everything after a
//! cursor, and re-running the current test binary as a child process (for
//! crash and lock tests). The `Vec` model of the model-based tests lives in
//! `model.rs`.
//!
//! Invariant: payloads are a pure function of the seq, so any test can check
//! a record it did not write itself.

#![allow(dead_code, unused_imports, reason = "each test binary uses a different subset of the helpers")]

pub(crate) mod model;

use std::path::{Path, PathBuf};

use events_journal::fault::FaultPlan;
use events_journal::{Reader, Record};
pub(crate) use events_testkit::fs::segments;

/// The payload written for `seq`: 0..300 bytes derived from the seq.
pub(crate) fn payload(seq: u64) -> Vec<u8> {
    let len = (seq.wrapping_mul(2_654_435_761) % 300) as usize;
    (0..len).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8).collect()
}

/// The timestamp written for `seq`.
pub(crate) fn ts(seq: u64) -> u64 {
    seq * 1_000 + 7
}

/// Every record after `cursor`, panicking on any error.
pub(crate) fn read_all(reader: &Reader, cursor: u64) -> Vec<Record> {
    reader.read_since(cursor).expect("read_since").collect::<Result<Vec<_>, _>>().expect("record")
}

/// What a reader from `cursor` yields in `dir`: records' seqs (each
/// payload checked), and each gap as `(expected, found)`.
pub(crate) fn seqs_and_gaps(dir: &Path, cursor: u64) -> (Vec<u64>, Vec<(u64, u64)>) {
    let (mut seqs, mut gaps) = (Vec::new(), Vec::new());
    for item in Reader::open(dir).unwrap().read_since(cursor).unwrap() {
        match item {
            Ok(r) => {
                assert_eq!(r.payload(), payload(r.seq()).as_slice(), "payload of seq {}", r.seq());
                seqs.push(r.seq());
            }
            Err(events_journal::JournalError::Gap { expected, found, .. }) => gaps.push((expected, found)),
            Err(e) => panic!("{e}"),
        }
    }
    (seqs, gaps)
}

/// Asserts that `records` are exactly seqs `from..=to` with the helper payloads.
pub(crate) fn assert_records(records: &[Record], from: u64, to: u64) {
    let seqs: Vec<u64> = records.iter().map(Record::seq).collect();
    assert_eq!(seqs, (from..=to).collect::<Vec<_>>());
    for r in records {
        assert_eq!(r.payload(), payload(r.seq()).as_slice(), "payload of seq {}", r.seq());
        assert_eq!(r.ts(), ts(r.seq()), "ts of seq {}", r.seq());
    }
}

/// A snapshot of every file's bytes in `dir` except the (empty) `LOCK` file
/// that any open creates, to prove a failed open changed nothing.
pub(crate) fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.ends_with("LOCK"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// What a child killed by [`kill_after_acks`] printed before it died.
pub(crate) struct Killed {
    /// The seq of its `READY <seq>` line, if it printed one.
    pub(crate) ready: Option<u64>,
    /// The seqs of its `ACK <seq>` lines, those still in the pipe included.
    pub(crate) acked: Vec<u64>,
}

/// Runs `cmd` (a [`child_command`]) with its stdout piped, reads its lines
/// until it printed `acks` `ACK <seq>` lines, SIGKILLs it and collects what
/// it printed before it died. The pipe stays open until the child is dead:
/// a closed pipe would fail its next write and let it unwind and close its
/// journal cleanly, which is no crash.
pub(crate) fn kill_after_acks(mut cmd: std::process::Command, acks: usize) -> Killed {
    use std::io::BufRead;
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut killed = Killed { ready: None, acked: Vec::new() };
    // libtest prints "test <name> ... " without a newline before the child's
    // first line. Whether the line was the child's own.
    let take = |killed: &mut Killed, line: &str| {
        if let Some((_, n)) = line.split_once("READY ") {
            killed.ready = Some(n.trim().parse().unwrap());
        } else if let Some((_, n)) = line.split_once("ACK ") {
            killed.acked.push(n.trim().parse().unwrap());
        } else {
            return false;
        }
        true
    };
    for line in lines.by_ref() {
        if take(&mut killed, &line.unwrap()) && killed.acked.len() >= acks {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        take(&mut killed, &line);
    }
    // The child appends for ever: one that ended by itself (an append that
    // failed and panicked, say) is no crash round, and says why.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the child ended by itself ({status}) after {} acknowledgements",
        killed.acked.len()
    );
    killed
}

// The kill moments of the crash tests are random, but a run is
// reproducible from its seed.
pub(crate) use events_testkit::rng::xorshift;

/// A command that re-runs this test binary, running only `test_name`, with
/// `env` set so that the test knows it is the child.
pub(crate) fn child_command(test_name: &str, env: (&str, &str)) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"]).env(env.0, env.1);
    cmd
}

/// Whether the journal reserves space ahead of its writes under
/// `SyncPolicy::Always`: on Linux, where it writes zeros ahead (any file
/// system that can be written to can hold them).
pub(crate) fn reserves() -> bool {
    cfg!(target_os = "linux")
}

/// A plan whose journal sees another boot than the one a plan without a
/// reboot sees: the machine restarted since (`FaultPlan::reboot`).
pub(crate) fn rebooted() -> FaultPlan {
    let plan = FaultPlan::new();
    plan.reboot(1);
    plan
}

/// Cuts every segment of `dir` back to what a power loss would certainly
/// leave: what its last `fdatasync` through `plan` covered.
pub(crate) fn lose_power(dir: &Path, plan: &FaultPlan) {
    lose_power_after(dir, &[plan]);
}

/// [`lose_power`] after several processes, each with its plan: a segment
/// keeps what any of their `fdatasync`s covered, and the watermark and the
/// seq lease hold what the last plan that synced them synced (if none did,
/// what they hold).
pub(crate) fn lose_power_after(dir: &Path, plans: &[&FaultPlan]) {
    for seg in segments(dir) {
        let keep = plans.iter().filter_map(|p| p.synced_len(&seg)).max().unwrap_or(0);
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        if file.metadata().unwrap().len() > keep {
            file.set_len(keep).unwrap();
        }
    }
    for name in [events_journal::WATERMARK_FILE, events_journal::LEASE_FILE] {
        let path = dir.join(name);
        if let Some(bytes) = plans.iter().rev().find_map(|p| p.synced_contents(&path)) {
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

/// A power loss's effect on `dir`'s names after several processes, each
/// with its plan: a segment whose name none of their fsyncs of the
/// directory saw is gone (created, or renamed in, since). Nothing is
/// removed if none of them fsynced it.
pub(crate) fn lose_unsynced_names(dir: &Path, plans: &[&FaultPlan]) {
    let synced: Vec<std::ffi::OsString> = plans.iter().filter_map(|p| p.synced_names(dir)).flatten().collect();
    if plans.iter().all(|p| p.synced_names(dir).is_none()) {
        return;
    }
    for seg in segments(dir) {
        if !synced.iter().any(|name| Some(name.as_os_str()) == seg.file_name()) {
            std::fs::remove_file(&seg).unwrap();
        }
    }
}

/// Opens a journal in `dir` under `sync` through `plan`, appends one
/// record and makes the journal's own thread run `step` on it: a roll
/// under `Never` (the seal thread fdatasyncs the sealed segment), a wait
/// for the `Interval` thread's next sync otherwise (at most 60 s).
pub(crate) fn journal_thread_reaches(
    dir: &Path,
    plan: &FaultPlan,
    sync: events_journal::SyncPolicy,
    step: events_journal::fault::Step,
) -> events_journal::Journal {
    use events_journal::{Journal, JournalOptions, SyncPolicy};
    let (mut journal, _) = Journal::open(dir, JournalOptions::new().sync(sync).faults(plan.clone())).unwrap();
    journal.append(1, b"x").unwrap();
    if sync == SyncPolicy::Never {
        journal.roll().unwrap();
    } else {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while plan.count(step) == 0 {
            assert!(std::time::Instant::now() < deadline, "the background sync never ran");
            std::thread::yield_now();
        }
    }
    journal
}
