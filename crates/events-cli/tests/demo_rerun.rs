//! `events demo` run twice in the same directory, as the README's first
//! command is run again and again: the second run wipes the first run's
//! journal (segments, `LOCK`, `WATERMARK`, `LEASE`, and the crash phase's
//! `consumers/` directory) and succeeds. A journal another process is
//! writing is never wiped, nor one whose run would be refused (`--sync 0ms`,
//! `--sessions` or `--events` out of their ranges).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_demo_runs_again_in_its_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-demo");
    // The first run crashes (and leaves the indexer's checkpoint), the second does not.
    for (run, crash) in [(1, &[][..]), (2, &["--no-crash"][..])] {
        let out = Command::new(env!("CARGO_BIN_EXE_events"))
            .args(["demo", "--events", "2000", "--sessions", "2", "--json", "--dir"])
            .arg(&dir)
            .args(crash)
            .output()
            .unwrap();
        assert!(out.status.success(), "run {run}: {}", String::from_utf8_lossy(&out.stderr));
        if run == 1 {
            assert!(dir.join(events::layers::journal::CONSUMERS_DIR).join("indexer").is_file());
        }
    }
    assert!(!dir.join(events::layers::journal::CONSUMERS_DIR).exists(), "the second run wiped the first's");
    assert!(dir.join(events::layers::journal::WATERMARK_FILE).exists());
    // An option the feed would refuse is refused before anything is wiped.
    let segments = events_testkit::fs::segments(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(["demo", "--events", "200", "--sessions", "1", "--no-crash", "--sync", "0ms", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--sync") && stderr.contains("busy loop"), "{stderr}");
    assert_eq!(events_testkit::fs::segments(&dir), segments, "the last run's journal is still there");
    // So are sizes the demo cannot run: no session, no event, more events
    // than it keeps figures for (a huge `--events` was wiped for, then
    // counted one by one for minutes, silent, then aborted on its
    // allocation), more sessions or subscribers than it runs tasks for, no
    // subscriber (whose "lossless UI subscribers" had been ticked with no
    // delivery checked).
    let sizes = [
        ("--sessions", "0"),
        ("--subscribers", "0"),
        ("--events", "0"),
        ("--events", "100000001"),
        ("--sessions", "4097"),
        ("--subscribers", "1025"),
    ];
    for (option, value) in sizes {
        let out = Command::new(env!("CARGO_BIN_EXE_events"))
            .args(["demo", "--no-crash", option, value, "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option} {value}: {stderr}");
        assert!(stderr.contains(option), "{option} {value}: {stderr}");
        assert_eq!(events_testkit::fs::segments(&dir), segments, "{option} {value}: the journal is still there");
    }
}

#[test]
fn the_demo_never_wipes_a_journal_another_process_is_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-demo");
    let mut writer = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(["__crash-writer", "--sync", "always", "--appenders", "1", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("ready"));
    let first = events_testkit::fs::segments(&dir)[0].clone();
    let inode = |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&first);

    let out = Command::new(env!("CARGO_BIN_EXE_events"))
        .args(["demo", "--events", "200", "--sessions", "1", "--no-crash", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in use") && stderr.contains("LOCK"), "{stderr}");
    assert_eq!(inode(&first), before, "the running writer's journal is untouched");
    writer.kill().unwrap();
    writer.wait().unwrap();
}

/// The demo run from a copy of the binary removed while it runs (as a
/// `cargo build` replaces it): its crash phase still runs its crash child,
/// from the executable the demo runs (`/proc/self/exe`), and the demo
/// succeeds. It looked the path up only then, found "… (deleted)", and
/// ended with "No such file or directory", naming nothing.
#[test]
fn the_demo_whose_binary_is_removed_while_it_runs_still_crashes_its_child() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("events-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_events"), &copy).unwrap();
    let child = Command::new(&copy)
        .args(["demo", "--events", "2000", "--sessions", "2", "--json", "--dir"])
        .arg(tmp.path().join("events-demo"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::remove_file(&copy).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
