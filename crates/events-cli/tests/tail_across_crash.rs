//! `events tail --follow` as an operator runs it, against a writer in
//! another process that is SIGKILLed mid-tail and restarted (its recovery
//! runs while the tail polls): the tail prints every record exactly once, in
//! order, with no reset, and each line is the record the journal holds for
//! that seq after the last recovery. And a cursor older than retention is
//! printed as an explicit reset line, then the output goes on with the
//! earliest retained record; a cursor kept across a recreated directory
//! (`<epoch>-<seq>`) is one too. Started before the journal exists, it
//! prints the journal that appears from its first record, `--from` or not.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

/// Starts a crash writer and waits until it has opened the journal; its
/// acknowledgements (`ack <seq> …` lines) are read on a thread, which
/// keeps the highest seq acknowledged. (Unread, they filled the pipe, and
/// the writer blocked there: a SIGKILL then met an idle writer.)
fn start_writer(dir: &Path) -> (Child, Arc<AtomicU64>) {
    let mut writer = events()
        .args(["__crash-writer", "--sync", "always", "--appenders", "2", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert!(out.next().unwrap().unwrap().starts_with("ready"));
    let acked = Arc::new(AtomicU64::new(0));
    std::thread::spawn({
        let acked = Arc::clone(&acked);
        move || {
            for line in out.map_while(Result::ok) {
                if let Some(seq) = line.strip_prefix("ack ").and_then(|rest| rest.split(' ').next()?.parse().ok()) {
                    acked.fetch_max(seq, Ordering::SeqCst);
                }
            }
        }
    });
    (writer, acked)
}

/// Waits (at most 30 s) until `acked` moves past `past`: the writer is
/// appending right now.
fn appending_past(acked: &AtomicU64, past: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) <= past {
        assert!(Instant::now() < deadline, "the writer acknowledged nothing past {past}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `events tail --from 0 --follow --json DIR`, stdout and stderr piped.
fn follow_from_0(dir: &Path) -> Child {
    events()
        .args(["tail", "--from", "0", "--follow", "--json"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes records 1..=`n` with the journal API into `dir` (created if missing).
fn write_records(dir: &Path, n: u64) {
    use events::layers::journal::{Journal, JournalOptions};
    let (mut journal, _) = Journal::open(dir, JournalOptions::new()).unwrap();
    for seq in 1..=n {
        journal.append(seq, seq.to_le_bytes()).unwrap();
    }
    journal.close().unwrap();
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn tail_follows_a_writer_that_crashes_and_recovers_without_gap_duplicate_or_phantom() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let (mut writer, mut acked) = start_writer(&dir);
    let mut tail =
        events().args(["tail", "--from", "0", "--follow", "--json"]).arg(&dir).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    // The last seq the killed writer acknowledged: the tail prints past it
    // (records of the writer that recovered) before the next kill.
    let mut killed_at = 0u64;
    for round in 0..3 {
        // Let the tail see a few hundred records, then kill the writer mid-append.
        let target = (printed.len() + 300).max(usize::try_from(killed_at).unwrap() + 50);
        while printed.len() < target {
            let line = lines.next().expect("tail ended").unwrap();
            let v = json(&line);
            assert!(v.get("reset").is_none(), "round {round}: unexpected reset {line}");
            assert_eq!(v["seq"].as_u64(), Some(printed.len() as u64 + 1), "round {round}: {line}");
            printed.push(v);
        }
        // Killed while it appends (its acknowledgements still coming).
        appending_past(&acked, printed.len() as u64);
        writer.kill().unwrap(); // SIGKILL
        writer.wait().unwrap();
        killed_at = acked.load(Ordering::SeqCst);
        (writer, acked) = start_writer(&dir);
    }
    // A few more after the last recovery, past what the killed writer wrote.
    let target = (printed.len() + 100).max(usize::try_from(killed_at).unwrap() + 50);
    while printed.len() < target {
        let line = lines.next().expect("tail ended").unwrap();
        let v = json(&line);
        assert_eq!(v["seq"].as_u64(), Some(printed.len() as u64 + 1), "{line}");
        printed.push(v);
    }
    assert!(printed.len() as u64 > killed_at, "the tail printed nothing of the last writer");
    tail.kill().unwrap();
    tail.wait().unwrap();
    writer.kill().unwrap();
    writer.wait().unwrap();

    // Every printed line is what the journal holds for that seq.
    let out = events().args(["dump", "--json", "--limit"]).arg(printed.len().to_string()).arg(&dir).output().unwrap();
    assert!(out.status.success());
    let dumped: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(json).collect();
    assert_eq!(dumped.len(), printed.len());
    for (p, d) in printed.iter().zip(&dumped) {
        assert_eq!(p["seq"], d["seq"]);
        assert_eq!(p["event"], d["event"], "seq {}: the tail printed another record than the journal holds", p["seq"]);
    }
}

#[test]
fn tail_prints_an_expired_cursor_as_a_reset_and_goes_on_with_the_earliest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pruned");
    let opts = events::layers::journal::JournalOptions::new()
        .segment_bytes(1024)
        .retention(events::layers::journal::Retention::segments(3));
    let (mut journal, _) = events::layers::journal::Journal::open(&dir, opts).unwrap();
    for n in 0..200u64 {
        journal.append(n, n.to_le_bytes()).unwrap();
    }
    journal.close().unwrap();
    let tail = |from: &str| -> Vec<serde_json::Value> {
        let out = events().args(["tail", "--from", from, "--json"]).arg(&dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(json).collect()
    };
    let lines = tail("1");
    let earliest = lines[0]["earliest"].as_u64().expect("a reset line first");
    assert_eq!(lines[0]["reset"], "expired");
    assert!(earliest > 2);
    assert_eq!(lines[1]["seq"].as_u64(), Some(earliest), "the output goes on with the earliest retained record");
    // A bare 0 asks for everything retained, as `stream_from(Seq::ZERO)` does: no reset.
    let all = tail("0");
    assert_eq!(all[0]["seq"].as_u64(), Some(earliest), "{:?}", all[0]);
    assert_eq!(all.len(), lines.len() - 1);
    // `dump` too: it failed with "records after 0 were removed by retention".
    let out = events().args(["dump", "--json"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dumped: Vec<serde_json::Value> = String::from_utf8(out.stdout).unwrap().lines().map(json).collect();
    assert_eq!(dumped, all, "dump prints what `tail --from 0` does");
    // `<epoch>-0` of the journal there is a position, as every cursor
    // naming its journal (`GET /stream?since=` gives it as a reset's id):
    // an `expired` reset first for `tail`, a refusal for `dump`. Taken as a
    // bare 0, the records retention removed after it had been passed over
    // in silence.
    let epoch = events::layers::journal::Reader::open(&dir).unwrap().epoch().unwrap();
    let from = format!("{epoch}-0");
    let from_position = tail(&from);
    assert_eq!(from_position[0]["reset"], "expired", "tail --from {from}");
    assert_eq!(from_position[1..], all[..], "tail --from {from}");
    let out = events().args(["dump", "--json", "--from", &from]).arg(&dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "dump --from {from}: {stderr}");
    assert!(stderr.contains("removed by retention"), "dump --from {from}: {stderr}");
}

/// `tail --follow` waits while the directory is gone and goes on with the
/// journal recreated there, after one `epoch_mismatch` reset line. It had
/// ended with an error (exit 2) at its first poll of the missing directory.
#[test]
fn tail_follow_waits_through_a_recreated_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recreated");
    let write = |n: u64| write_records(&dir, n);
    write(5);
    let mut tail = follow_from_0(&dir);
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut next = || json(&lines.next().expect("tail ended").unwrap());
    let seqs: Vec<_> = (0..5).map(|_| next()["seq"].as_u64()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5].map(Some));

    std::fs::remove_dir_all(&dir).unwrap();
    let mut stderr = BufReader::new(tail.stderr.take().unwrap()).lines();
    let said = stderr.next().expect("tail ended").unwrap();
    assert!(said.starts_with("waiting:"), "{said}");
    // The new journal is of another codec, the self-describing one: its
    // events are rendered (the codec is picked again at the epoch reset).
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Job {
        n: u64,
    }
    impl events::Event for Job {}
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let feed: events::Feed<Job, events::MsgPack> =
            events::Feed::builder(&dir).codec(events::MsgPack).open().await.unwrap();
        for n in 1..=3 {
            feed.append(None, Job { n }).await.unwrap();
        }
        feed.close().await.unwrap();
    });
    let reset = next();
    assert_eq!(reset["reset"], "epoch_mismatch", "{reset}");
    // Epochs as strings, as the HTTP side sends them: a JSON number loses
    // a 64-bit epoch's low digits in JavaScript and older jq.
    let epoch = events::layers::journal::Reader::open(&dir).unwrap().epoch().unwrap();
    assert_eq!(reset["journal_epoch"], epoch.to_string(), "{reset}");
    for n in 1..=3 {
        let line = next();
        assert_eq!(line["seq"].as_u64(), Some(n), "{line}");
        assert_eq!(line["event"], serde_json::json!({ "n": n }), "rendered with the new journal's codec: {line}");
    }
    assert!(tail.try_wait().unwrap().is_none(), "tail exited");
    tail.kill().unwrap();
    tail.wait().unwrap();
}

/// A cursor kept across a restart of the command, as a script keeps the
/// `cursor` of the last `--json` line (`<epoch>-<seq>`), after the
/// directory was recreated with a longer journal: `tail --from` it prints
/// one `epoch_mismatch` reset, then the new journal from its first record;
/// `dump --from` it is an error naming both epochs; a cursor of the new
/// journal goes on after its seq with no reset. `--from` took a bare seq
/// only, and a kept seq 2 printed the new journal from 3 on, silently
/// skipping records 1 and 2.
#[test]
fn a_kept_cursor_names_its_journal_across_a_recreated_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recreated");
    let write = |n: u64| write_records(&dir, n);
    let run = |args: &[&str]| events().args(args).arg(&dir).output().unwrap();
    let lines = |out: std::process::Output| -> Vec<serde_json::Value> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(json).collect()
    };
    write(5);
    let old = events::layers::journal::Reader::open(&dir).unwrap().epoch().unwrap();
    let first_run = lines(run(&["dump", "--json"]));
    let kept = first_run[1]["cursor"].as_str().unwrap().to_owned();
    assert_eq!(kept, format!("{old}-2"), "{}", first_run[1]);

    std::fs::remove_dir_all(&dir).unwrap();
    write(8);
    let new = events::layers::journal::Reader::open(&dir).unwrap().epoch().unwrap();
    let tailed = lines(run(&["tail", "--json", "--from", &kept]));
    assert_eq!(tailed[0]["reset"], "epoch_mismatch", "{}", tailed[0]);
    assert_eq!(
        (&tailed[0]["cursor_epoch"], &tailed[0]["journal_epoch"]),
        (&old.to_string().into(), &new.to_string().into())
    );
    let seqs: Vec<_> = tailed[1..].iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "the new journal from its first record");
    assert_eq!(tailed[8]["cursor"], format!("{new}-8"));

    let dumped = run(&["dump", "--json", "--from", &kept]);
    let stderr = String::from_utf8_lossy(&dumped.stderr);
    assert_eq!(dumped.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&old.to_string()) && stderr.contains(&new.to_string()), "{stderr}");

    let resumed = lines(run(&["tail", "--json", "--from", &format!("{new}-6")]));
    let seqs: Vec<_> = resumed.iter().map(|l| l["seq"].as_u64()).collect();
    assert_eq!(seqs, [Some(7), Some(8)], "no reset in the journal the cursor names");
    // `<epoch>-0` of the journal there, nothing pruned from it: every record.
    for command in ["tail", "dump"] {
        let all = lines(run(&[command, "--json", "--from", &format!("{new}-0")]));
        assert_eq!(all.len(), 8, "{command}: {all:?}");
        assert_eq!(all[0]["seq"], 1, "{command}: {all:?}");
    }
}

/// `tail --follow` on a path that is a file, not a directory: an error
/// naming it, exit 2 (it printed `waiting:` and waited for ever).
#[test]
fn tail_follow_on_a_file_is_an_error_not_a_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "not a journal").unwrap();
    let stderr = refused_within_20_s(follow_from_0(&file), "a file");
    assert!(stderr.contains("notes.txt"), "{stderr}");
}

/// Waits (at most 20 s) for `tail` to exit 2; its stderr.
fn refused_within_20_s(mut tail: Child, on: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = tail.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            tail.kill().unwrap();
            panic!("tail --follow still waiting on {on} after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20)); // polling a child's exit
    };
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut tail.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// `tail --follow` on a journal whose newest segment was deleted by hand
/// (its watermark names it, other segments are there): after a moment's
/// wait (a deletion under way removes segments one by one), exit 2 naming
/// the missing segment. It had taken any file not found for a journal yet
/// to come: "waiting: … holds no journal right now", for ever.
#[test]
fn tail_follow_on_a_journal_missing_its_newest_segment_is_an_error_not_a_wait() {
    use events::layers::journal::{Journal, JournalOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("damaged");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    journal.append(1, b"one").unwrap();
    journal.roll().unwrap();
    journal.append(2, b"two").unwrap();
    journal.close().unwrap();
    let newest = dir.join("00000000000000000002.seg");
    std::fs::remove_file(&newest).unwrap();
    let stderr = refused_within_20_s(follow_from_0(&dir), "a journal missing a segment");
    assert!(stderr.contains("00000000000000000002.seg"), "{stderr}");
}

/// `tail --follow` started before the writer: it waits for the journal (one
/// `waiting:` line) and prints it from its first record, with no reset. It
/// had exited 2 at once.
#[test]
fn tail_follow_waits_for_a_journal_not_there_yet() {
    use events::layers::journal::{Journal, JournalOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later");
    let mut tail = follow_from_0(&dir);
    let said = BufReader::new(tail.stderr.take().unwrap()).lines().next().expect("tail ended").unwrap();
    assert!(said.starts_with("waiting:"), "{said}");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    for seq in 1..=3u64 {
        journal.append(seq, seq.to_le_bytes()).unwrap();
    }
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let seqs: Vec<_> = (0..3).map(|_| json(&lines.next().expect("tail ended").unwrap())["seq"].as_u64()).collect();
    assert_eq!(seqs, [1, 2, 3].map(Some), "no reset before the first record");
    tail.kill().unwrap();
    tail.wait().unwrap();
    journal.close().unwrap();
}

/// `tail --follow` without `--from`, started before the journal exists:
/// every record of the journal that appears is newer than the command, so
/// it prints them from the first. It started at the journal's end at its
/// first look, silently skipping what was written before that look.
#[test]
fn tail_follow_without_from_prints_a_journal_that_appears_from_its_first_record() {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    use std::time::{Duration, Instant};

    use events::layers::journal::{Journal, JournalOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("later");
    let mut tail = events()
        .args(["tail", "--follow", "--json"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = BufReader::new(tail.stderr.take().unwrap()).lines().next().expect("tail ended").unwrap();
    assert!(said.starts_with("waiting:"), "{said}");
    // The journal appears with records 1..=3 at once (written aside, then
    // renamed into place), so the tail's first look cannot come before them.
    let aside = tmp.path().join("aside");
    write_records(&aside, 3);
    std::fs::rename(&aside, &dir).unwrap();
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    let (tx, lines) = channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // More records until the tail prints one: one started at the end prints
    // only those.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = 3;
    let mut printed = Vec::new();
    while printed.len() < 3 {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => printed.push(json(&line)["seq"].as_u64()),
            Err(RecvTimeoutError::Timeout) => {
                assert!(Instant::now() < deadline, "tail printed nothing within 60 s");
                written += 1;
                journal.append(written, written.to_le_bytes()).unwrap();
            }
            Err(RecvTimeoutError::Disconnected) => panic!("tail ended: {:?}", tail.try_wait()),
        }
    }
    assert_eq!(printed, [1, 2, 3].map(Some), "the journal from its first record");
    tail.kill().unwrap();
    tail.wait().unwrap();
    journal.close().unwrap();
}
