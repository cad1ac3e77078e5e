//! One writer per directory, within one process: a second `Journal::open` on
//! a locked directory gets `Locked` naming the directory; `close` and drop
//! release the lock; readers need no lock. (The cross-process case is in
//! `lock_other_process.rs`: a separate binary, because a child forked while
//! this test drops its journal would briefly share the lock.)

use events_journal::{Journal, JournalError, JournalOptions, Reader};

#[test]
fn a_second_writer_in_the_same_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    j.append(1, b"x").unwrap();
    let err = Journal::open(dir.path(), JournalOptions::new()).unwrap_err();
    assert!(matches!(&err, JournalError::Locked { dir: d } if d == dir.path()), "{err}");
    // The refused open touched nothing; the reader works beside the writer.
    assert_eq!(Reader::open(dir.path()).unwrap().last_seq().unwrap(), 1);
    assert_eq!(j.append(2, b"y").unwrap(), 2);
    j.close().unwrap();
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).expect("close released the lock");
    drop(j);
    Journal::open(dir.path(), JournalOptions::new()).expect("drop released the lock");
}
