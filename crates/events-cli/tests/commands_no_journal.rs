//! `verify`, `dump`, `inspect` and `consumers` pointed at a directory that holds no
//! journal (empty, or only files that are not segments) refuse it: exit 2 and
//! one `error:` line naming the directory, instead of reporting "ok" or an
//! empty journal for what is most likely a wrong path. A journal with a
//! segment but no record is still a journal.

use std::path::Path;
use std::process::{Command, Output};

use events::layers::journal::{Journal, JournalOptions};

fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &str, dir: &Path) -> Output {
    events().arg(command).arg(dir).output().expect("run events")
}

fn assert_refused(command: &str, dir: &Path) {
    let out = run(command, dir);
    let stderr = text(&out.stderr);
    assert!(matches!(out.status.code(), Some(2)), "{command}: exit {:?}, stderr: {stderr}", out.status);
    assert!(stderr.starts_with("error: "), "{command}: {stderr}");
    assert!(stderr.contains(&*dir.to_string_lossy()), "{command}: the message names the directory: {stderr}");
    assert!(stderr.contains("no journal"), "{command}: {stderr}");
    assert!(!text(&out.stdout).contains("ok"), "{command}: nothing claims success: {}", text(&out.stdout));
}

#[test]
fn an_empty_directory_is_refused_by_verify_dump_inspect_and_consumers() {
    let tmp = tempfile::tempdir().unwrap();
    for command in ["verify", "dump", "inspect", "consumers"] {
        assert_refused(command, tmp.path());
    }
}

#[test]
fn a_directory_of_other_files_is_refused_too() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "not a journal").unwrap();
    std::fs::write(tmp.path().join("00000000000000000001.seg.bak"), "a backup, not a segment").unwrap();
    std::fs::create_dir(tmp.path().join("00000000000000000002.seg")).unwrap();
    for command in ["verify", "dump", "inspect", "consumers"] {
        assert_refused(command, tmp.path());
    }
}

#[test]
fn a_journal_without_records_is_still_a_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(tmp.path(), JournalOptions::new()).unwrap();
    journal.close().unwrap();

    let out = run("verify", tmp.path());
    assert!(matches!(out.status.code(), Some(0)), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("ok: 1 segments, 0 records"), "{}", text(&out.stdout));

    let out = run("dump", tmp.path());
    assert!(matches!(out.status.code(), Some(0)), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));

    let out = run("inspect", tmp.path());
    assert!(matches!(out.status.code(), Some(0)), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("records    none"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("consumers  none"), "{}", text(&out.stdout));

    let out = run("consumers", tmp.path());
    assert!(matches!(out.status.code(), Some(0)), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("no durable consumers in "), "{}", text(&out.stdout));
}
