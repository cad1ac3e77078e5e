//! One writer per directory, across processes: while this process holds
//! the journal, a child process (this test binary, re-run) gets `Locked`
//! naming the directory; once it is closed, the child can open it.

mod support;

use std::path::Path;

use events_journal::{Journal, JournalError, JournalOptions};

const CHILD_ENV: &str = "EVENTS_JOURNAL_LOCK_CHILD";
const TEST_NAME: &str = "a_writer_in_another_process_is_refused";

#[test]
fn a_writer_in_another_process_is_refused() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        // Child: try to open and report through the exit code.
        let code = match Journal::open(Path::new(&dir), JournalOptions::new()) {
            Err(JournalError::Locked { dir: d }) if d == Path::new(&dir) => 0,
            Err(e) => {
                eprintln!("unexpected error {e}");
                2
            }
            Ok(_) => 1,
        };
        std::process::exit(code);
    }
    let dir = tempfile::tempdir().unwrap();
    let run_child =
        || support::child_command(TEST_NAME, (CHILD_ENV, dir.path().to_str().unwrap())).output().unwrap().status.code();
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(run_child(), Some(0), "the child should get Locked while we hold the lock");
    j.close().unwrap();
    assert_eq!(run_child(), Some(1), "the child should open once we released the lock");
}
