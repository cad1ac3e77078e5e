//! `events … | head -1`: every command whose reader goes away ends quietly.
//! The binary runs as a real process with its stdout a pipe; the test reads
//! one line and closes its end while the command still has far more than a
//! pipe's buffer to write (so its next write fails with `EPIPE`), or hands it
//! a pipe whose reader is already gone. Each command must stop writing, exit
//! 0 (`verify` keeps its verdict: 1 when it found a problem) and print
//! nothing on stderr: no "failed printing to stdout", no panic, no exit 101.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;

use events::layers::journal::{Journal, JournalOptions, Retention, SyncPolicy};

fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Far more output than a pipe holds (64 KiB on Linux): every command below prints at least
/// one line of ~90 bytes per record or segment.
const RECORDS: u64 = 1500;

/// A journal of `RECORDS` records, one segment each (a segment of 128 bytes holds one frame of
/// 40 bytes of payload after its 64-byte header), all kept. Written once per test binary (every
/// segment costs a directory fsync) and copied into `tmp` for each test.
fn journal_with_many_segments(tmp: &Path) -> PathBuf {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let template = tempfile::tempdir().unwrap();
        let options =
            JournalOptions::new().segment_bytes(128).retention(Retention::unlimited()).sync(SyncPolicy::Never);
        let (mut journal, _) = Journal::open(template.path(), options).unwrap();
        for n in 0..RECORDS {
            journal.append(n, [n as u8; 40]).unwrap();
        }
        journal.close().unwrap();
        template
    });
    let dir = tmp.join("journal");
    std::fs::create_dir(&dir).unwrap();
    events_testkit::fs::copy_files(template.path(), &dir);
    dir
}

/// What a command did after its reader left.
struct Ended {
    first_line: String,
    status: ExitStatus,
    stderr: String,
}

/// Runs `events ARGS DIR`, reads the first line of its stdout, closes the pipe and waits.
fn read_one_line_then_close(args: &[&str], dir: &Path) -> Ended {
    let mut child =
        events().args(args).arg(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run events");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    drop(stdout); // the reader goes, like `head -1` after its line
    let out = child.wait_with_output().unwrap();
    Ended { first_line, status: out.status, stderr: text(&out.stderr) }
}

/// Runs `events ARGS` with stdout a pipe whose reader is already closed.
fn run_into_a_closed_pipe(args: &[&str]) -> (ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = events().args(args).stdout(writer).stderr(Stdio::piped()).output().expect("run events");
    (out.status, text(&out.stderr))
}

fn assert_quiet(what: &str, status: ExitStatus, stderr: &str, code: i32) {
    assert!(matches!(status.code(), Some(c) if c == code), "{what}: exit {status:?}, stderr: {stderr}");
    assert!(stderr.is_empty(), "{what}: nothing on stderr, got: {stderr}");
}

#[test]
fn inspect_dump_and_tail_end_quietly_when_the_reader_closes_after_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_many_segments(tmp.path());
    let cases: [(&[&str], &str); 4] =
        [(&["inspect"], "journal "), (&["dump"], "1  "), (&["dump", "--json"], "{"), (&["tail", "--from", "0"], "1  ")];
    for (args, starts) in cases {
        let ended = read_one_line_then_close(args, &dir);
        assert!(ended.first_line.trim_start().starts_with(starts.trim_start()), "{args:?}: {:?}", ended.first_line);
        assert_quiet(&format!("{args:?}"), ended.status, &ended.stderr, 0);
    }
}

#[test]
fn verify_stops_listing_quietly_and_keeps_its_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_many_segments(tmp.path());

    // Clean: one line, and the reader is already gone when it is written.
    let (status, stderr) = run_into_a_closed_pipe(&["verify", dir.to_str().unwrap()]);
    assert_quiet("verify (clean)", status, &stderr, 0);

    // A damaged frame in every segment: thousands of problem lines; the reader takes one.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "seg") {
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(&path, &bytes).unwrap();
        }
    }
    let ended = read_one_line_then_close(&["verify"], &dir);
    assert!(ended.first_line.contains("offset"), "{:?}", ended.first_line);
    assert_quiet("verify (damaged)", ended.status, &ended.stderr, 1);
}

#[test]
fn the_demo_table_ends_quietly_when_nobody_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    for json in [false, true] {
        let dir = tmp.path().join(if json { "json" } else { "table" });
        let mut args = vec![
            "demo",
            "--events",
            "2000",
            "--sessions",
            "2",
            "--sync",
            "never",
            "--no-crash",
            "--dir",
            dir.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        let (status, stderr) = run_into_a_closed_pipe(&args);
        assert_quiet(&format!("{args:?}"), status, &stderr, 0);
    }
}

#[test]
fn inspect_ends_quietly_when_the_reader_is_gone_before_the_first_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = journal_with_many_segments(tmp.path());
    for args in [["inspect"], ["dump"]] {
        let (status, stderr) = run_into_a_closed_pipe(&[args[0], dir.to_str().unwrap()]);
        assert_quiet(args[0], status, &stderr, 0);
    }
}

/// An error while stderr's reader is gone (a supervisor that stopped
/// reading it) still exits 2, the code of an error: its line is dropped.
/// The error line was printed with `eprintln!`, which panicked (exit 101).
#[test]
fn an_error_exits_2_when_stderr_is_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = events().arg("inspect").arg(&missing).stdout(Stdio::null()).stderr(writer).status().unwrap();
    assert_eq!(status.code(), Some(2), "{status:?}");
}

/// A log line while stderr's reader is gone (`EVENTS_LOG=info`: the
/// journal's open logs one) is dropped and the command goes on: exit 0.
/// tracing-subscriber reported the failed write with `eprintln!`, which
/// panicked (exit 101), and in `replicate` ended the replication task.
#[test]
fn a_log_line_into_a_closed_stderr_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = events()
        .args(["demo", "--events", "100", "--sessions", "1", "--sync", "never", "--no-crash", "--dir"])
        .arg(&dir)
        .env("EVENTS_LOG", "info")
        .stdout(Stdio::null())
        .stderr(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A stdout that fails otherwise than by a closed pipe (a full disk) ends
/// the demo with that error: exit 2, one line naming it. Its `println!`
/// had panicked (exit 101, a panic message).
#[test]
fn the_demo_on_a_full_stdout_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = events()
        .args(["demo", "--events", "100", "--sessions", "1", "--sync", "never", "--no-crash", "--dir"])
        .arg(&dir)
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: failed printing to stdout") && stderr.contains("No space left"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, no panic message: {stderr}");

    // The reading commands say the same: it had read "error: No space left
    // on device (os error 28)", not naming stdout.
    let journal = tmp.path().join("written");
    let status = events()
        .args(["demo", "--events", "100", "--sessions", "1", "--sync", "never", "--no-crash", "--dir"])
        .arg(&journal)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = events().arg("dump").arg(&journal).stdout(full).stderr(Stdio::piped()).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: failed printing to stdout") && stderr.contains("No space left"), "{stderr}");
}

/// `events tail --follow DIR | grep -m1 …`: the reader takes the three
/// records there are and goes while the journal is quiet. `tail` ends
/// quietly within moments (exit 0, nothing on stderr), with nothing more
/// to write: it looks at its stdout while it waits. It had waited for the
/// next record, which a quiet journal may never get, and the pipeline with
/// it.
#[test]
fn tail_follow_ends_quietly_when_its_reader_goes_while_the_journal_is_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    for n in 0..3 {
        journal.append(n, [n as u8; 40]).unwrap();
    }
    journal.close().unwrap();
    let mut child = events()
        .args(["tail", "--from", "0", "--follow"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run events");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
    }
    drop(stdout);
    let (ended, out) = ended_within_10_s(child);
    assert!(ended, "tail still follows a quiet journal for a reader that is gone");
    assert_quiet("tail --follow", out.status, &text(&out.stderr), 0);

    // The same while it waits for a journal to appear: it ends, having
    // said only that it waits.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = events()
        .args(["tail", "--follow"])
        .arg(tmp.path().join("none yet"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run events");
    let (ended, out) = ended_within_10_s(child);
    assert!(ended, "tail still waits for a journal for a reader that is gone");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).starts_with("waiting:"), "{}", text(&out.stderr));
}

/// Whether `child` ended within 10 s (a bound on a hang, not a timing: a
/// command that looks at its stdout every 50 ms ends at its next look),
/// and its output, killed if it had not.
fn ended_within_10_s(mut child: std::process::Child) -> (bool, std::process::Output) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ended = child.try_wait().unwrap().is_some();
    if !ended {
        child.kill().unwrap();
    }
    (ended, child.wait_with_output().unwrap())
}
