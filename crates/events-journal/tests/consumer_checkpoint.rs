//! Consumer checkpoint files (`<journal dir>/consumers/<name>`): a commit
//! survives reopening, commits alternate slots, list and delete work, bad
//! names are typed errors; a commit torn at any byte falls back to the
//! previous checkpoint and never to a later or garbage seq; a garbage slot
//! loses to the valid one and two bad slots are a typed error. And the
//! `consumers` directory is invisible to the journal: open, recovery,
//! repair, `Reader` and `verify` neither report nor touch it.

mod support;

use std::os::unix::fs::FileExt;
use std::path::Path;

use events_journal::{
    CHECKPOINT_FILE_LEN, CHECKPOINT_SLOT_LEN, CONSUMERS_DIR, ConsumerFile, Journal, JournalError, JournalOptions,
    MAX_CONSUMER_NAME, Reader, consumer_path, delete_consumer, list_consumers, validate_consumer_name, verify,
};
use support::{assert_records, payload, read_all, ts, xorshift};

/// The seq the checkpoint file of `name` reads as now.
fn seq_on_disk(dir: &Path, name: &str) -> u64 {
    // Listed, not opened: an open handle of the name may be alive.
    let listed = list_consumers(dir).unwrap();
    listed.iter().find(|c| c.name == name).expect("the consumer is listed").checkpoint.as_ref().unwrap().seq
}

#[test]
fn a_commit_survives_reopen_and_commits_alternate_slots() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, first) = ConsumerFile::open(dir.path(), "indexer", 7).unwrap();
    assert_eq!((first.seq, first.epoch, first.generation), (0, 7, 1));
    assert_eq!(c.name(), "indexer");
    let path = consumer_path(dir.path(), "indexer").unwrap();
    assert_eq!(path, dir.path().join(CONSUMERS_DIR).join("indexer"));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), CHECKPOINT_FILE_LEN);
    assert_eq!(&bytes[..4], b"EVCK");
    assert!(bytes[CHECKPOINT_SLOT_LEN..].iter().all(|&b| b == 0), "a new file holds only slot A");

    let mut before = bytes;
    for (i, seq) in [10u64, 20, 30, 40].into_iter().enumerate() {
        let cp = c.commit(seq, 7).unwrap();
        assert_eq!((cp.seq, cp.generation), (seq, i as u64 + 2));
        assert_eq!(c.checkpoint(), cp);
        let after = std::fs::read(&path).unwrap();
        // Even generations go to slot B, odd ones to slot A; the other slot is untouched.
        let (written, kept) = if cp.generation % 2 == 0 { (40..80, 0..40) } else { (0..40, 40..80) };
        assert_eq!(after[kept.clone()], before[kept], "commit {seq} touched the current slot");
        assert_ne!(after[written.clone()], before[written], "commit {seq} wrote nothing");
        before = after;
    }
    drop(c);
    let (c, cp) = ConsumerFile::open(dir.path(), "indexer", 123).unwrap();
    assert_eq!((cp.seq, cp.epoch, cp.generation), (40, 7, 5), "an existing file keeps its own epoch");
    assert_eq!(c.checkpoint(), cp);
    assert!(cp.written_nanos > 0);
}

#[test]
fn list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    assert!(list_consumers(dir.path()).unwrap().is_empty(), "no consumers directory: empty");
    let (mut b, _) = ConsumerFile::open(dir.path(), "b-consumer", 1).unwrap();
    b.commit(5, 1).unwrap();
    ConsumerFile::open(dir.path(), "a.consumer_1", 1).unwrap();
    // A staging leftover and a stranger are not consumers.
    std::fs::write(dir.path().join(CONSUMERS_DIR).join(".c.tmp"), b"half").unwrap();
    std::fs::create_dir(dir.path().join(CONSUMERS_DIR).join("subdir")).unwrap();
    std::fs::write(dir.path().join(CONSUMERS_DIR).join("broken"), [0xAB; 80]).unwrap();

    let listed = list_consumers(dir.path()).unwrap();
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a.consumer_1", "b-consumer", "broken"]);
    assert_eq!(listed[0].checkpoint.as_ref().unwrap().seq, 0);
    assert_eq!(listed[1].checkpoint.as_ref().unwrap().seq, 5);
    let why = listed[2].checkpoint.as_ref().unwrap_err();
    assert!(why.contains("broken") && why.contains("no valid checkpoint slot"), "{why}");

    // Open, it is in use: deleting it would leave its commits going to a
    // file retention no longer reads.
    match delete_consumer(dir.path(), "b-consumer") {
        Err(JournalError::ConsumerInUse { name, path }) => {
            assert_eq!((name.as_str(), path), ("b-consumer", consumer_path(dir.path(), "b-consumer").unwrap()));
        }
        other => panic!("deleted an open consumer: {other:?}"),
    }
    assert_eq!(list_consumers(dir.path()).unwrap().len(), 3, "nothing removed");
    drop(b);
    assert!(delete_consumer(dir.path(), "b-consumer").unwrap());
    assert!(!delete_consumer(dir.path(), "b-consumer").unwrap(), "already gone");
    assert!(!delete_consumer(dir.path(), "never-existed").unwrap());
    let names: Vec<String> = list_consumers(dir.path()).unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["a.consumer_1", "broken"]);
    // Re-creating a deleted consumer starts over.
    assert_eq!(ConsumerFile::open(dir.path(), "b-consumer", 2).unwrap().1.seq, 0);
}

#[test]
fn bad_names_are_typed_errors_naming_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(MAX_CONSUMER_NAME + 1);
    let cases: [(&str, &str); 9] = [
        ("", "empty"),
        (&long, "longer than 64 bytes"),
        (".hidden", "starts with '.'"),
        ("..", "starts with '.'"),
        ("a/b", "contains a path separator or NUL"),
        ("a\\b", "contains a path separator or NUL"),
        ("a\0b", "contains a path separator or NUL"),
        ("sp ace", "contains a character outside [A-Za-z0-9._-]"),
        ("caf\u{e9}", "contains a character outside [A-Za-z0-9._-]"),
    ];
    for (name, why) in cases {
        let check = |err: JournalError| {
            assert!(
                matches!(&err, JournalError::InvalidConsumerName { name: n, reason } if n == name && *reason == why),
                "{name:?}: {err}"
            );
        };
        check(validate_consumer_name(name).unwrap_err());
        check(ConsumerFile::open(dir.path(), name, 1).unwrap_err());
        check(delete_consumer(dir.path(), name).unwrap_err());
    }
    assert!(!dir.path().join(CONSUMERS_DIR).exists(), "a refused name creates nothing");
    for good in ["a", "A-z_0.9", &"y".repeat(MAX_CONSUMER_NAME), "x."] {
        validate_consumer_name(good).unwrap();
    }
}

#[test]
fn a_commit_torn_at_any_byte_falls_back_to_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = consumer_path(dir.path(), "c").unwrap();
    let (mut c, _) = ConsumerFile::open(dir.path(), "c", 1).unwrap();
    let mut checked = 0;
    let mut torn_slots = std::collections::BTreeSet::new();
    // Both slot parities: an extra commit in every other round makes the
    // torn slot A in one round, B in the next.
    for (round, (old, new)) in [(10u64, 20u64), (20, 30), (30, 40)].into_iter().enumerate() {
        if round % 2 == 1 {
            c.commit(old, 1).unwrap();
        }
        c.commit(old, 1).unwrap();
        let good = std::fs::read(&path).unwrap();
        c.commit(new, 1).unwrap();
        let complete = std::fs::read(&path).unwrap();
        let slot = (0..2).find(|&i| good[i * 40..(i + 1) * 40] != complete[i * 40..(i + 1) * 40]).unwrap();
        torn_slots.insert(slot);
        let new_slot = &complete[slot * 40..(slot + 1) * 40];
        for over_zeros in [false, true] {
            for k in 0..=CHECKPOINT_SLOT_LEN {
                let mut torn = good.clone();
                if over_zeros {
                    torn[slot * 40..(slot + 1) * 40].fill(0);
                }
                torn[slot * 40..slot * 40 + k].copy_from_slice(&new_slot[..k]);
                std::fs::write(&path, &torn).unwrap();
                let seq = seq_on_disk(dir.path(), "c");
                // A torn write whose missing bytes already held the new
                // values (the old slot's last byte can equal the new one's)
                // is a complete write.
                let complete_slot = torn[slot * 40..(slot + 1) * 40] == *new_slot;
                let want = if complete_slot { new } else { old };
                assert_eq!(seq, want, "slot {slot} torn after {k} bytes (over zeros: {over_zeros})");
                checked += 1;
            }
        }
        std::fs::write(&path, &complete).unwrap();
        // The handle still holds `new`; reopen so the next round starts from the disk.
        drop(c);
        c = ConsumerFile::open(dir.path(), "c", 1).unwrap().0;
        assert_eq!(c.checkpoint().seq, new);
    }
    assert_eq!(checked, 3 * 2 * 41);
    assert_eq!(torn_slots.into_iter().collect::<Vec<_>>(), [0, 1], "each slot torn in some round");
}

#[test]
fn garbage_in_one_slot_loses_to_the_other_and_two_bad_slots_are_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = consumer_path(dir.path(), "c").unwrap();
    let (mut c, _) = ConsumerFile::open(dir.path(), "c", 1).unwrap();
    c.commit(10, 1).unwrap(); // slot B, generation 2
    c.commit(20, 1).unwrap(); // slot A, generation 3
    drop(c);
    let good = std::fs::read(&path).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut garbage = || (0..CHECKPOINT_SLOT_LEN).map(|_| xorshift(&mut rng) as u8).collect::<Vec<u8>>();
    // Garbage in the newer slot A: slot B (seq 10) wins; in slot B: slot A (seq 20) wins.
    for (offset, want) in [(0u64, 10u64), (40, 20)] {
        for _ in 0..50 {
            std::fs::write(&path, &good).unwrap();
            file.write_all_at(&garbage(), offset).unwrap();
            assert_eq!(seq_on_disk(dir.path(), "c"), want, "garbage at {offset}");
        }
    }
    // A bit flip in the magic, the version or the CRC is garbage too.
    for byte in [0usize, 4, 39] {
        let mut bytes = good.clone();
        bytes[byte] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(seq_on_disk(dir.path(), "c"), 10, "byte {byte} flipped");
    }

    // Both bad: a typed error naming the file from open, an Err from list; nothing changed.
    for bytes in [garbage().repeat(2), vec![0; 80], Vec::new(), b"EVCK".to_vec()] {
        std::fs::write(&path, &bytes).unwrap();
        let err = ConsumerFile::open(dir.path(), "c", 1).unwrap_err();
        assert!(matches!(&err, JournalError::CheckpointCorrupt { path: p, .. } if *p == path), "{err}");
        let listed = list_consumers(dir.path()).unwrap();
        assert!(listed[0].checkpoint.is_err(), "{listed:?}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "a refused open changed the file");
    }
}

#[test]
fn the_consumers_directory_is_invisible_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    for seq in 1..=3 {
        j.append(ts(seq), payload(seq)).unwrap();
        j.roll().unwrap();
    }
    let epoch = j.epoch();
    let (mut c, _) = ConsumerFile::open(dir.path(), "indexer", epoch).unwrap();
    c.commit(2, epoch).unwrap();
    j.close().unwrap();
    let checkpoint = std::fs::read(c.path()).unwrap();

    // Open (recovery), in the default and in the repair mode: nothing reported as ignored.
    let (j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert!(report.ignored.is_empty(), "{:?}", report.ignored);
    assert_eq!(j.next_seq(), 4);
    drop(j);
    let report = Journal::repair(dir.path(), JournalOptions::new()).unwrap();
    assert!(report.ignored.is_empty() && report.sealed.is_empty() && report.action.is_none(), "{report:?}");
    // Readers and verify.
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 3);
    let v = verify(dir.path()).unwrap();
    assert!(v.ignored.is_empty() && v.problems.is_empty(), "{v:?}");
    // And the journal never touched the checkpoint.
    assert_eq!(std::fs::read(c.path()).unwrap(), checkpoint);
    assert_eq!(seq_on_disk(dir.path(), "indexer"), 2);
}

/// An open that races a delete: it waits while the delete holds the
/// checkpoint's lock (polling it, up to `CONSUMER_OPEN_WAIT`), then finds
/// the file unlinked and makes a new one (it would otherwise have committed
/// to the deleted file for ever).
#[test]
fn an_open_racing_a_delete_makes_a_new_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _) = ConsumerFile::open(dir.path(), "racer", 1).unwrap();
    c.commit(7, 1).unwrap();
    drop(c);
    let path = consumer_path(dir.path(), "racer").unwrap();
    // What `delete_consumer` does, held open across the open below.
    let deleting = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    deleting.try_lock().unwrap();
    let opener = {
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || ConsumerFile::open(&dir, "racer", 1).unwrap())
    };
    // Until the open has the file open beside the delete's handle (two
    // descriptors of this process name it in `/proc/self/fd`): it then
    // waits for the lock (up to `CONSUMER_OPEN_WAIT` from then on). At
    // most 10 s for the opener's thread to get there.
    let open_handles = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target == &path)
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while open_handles() < 2 {
        assert!(std::time::Instant::now() < deadline, "the open never opened the checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(1)); // polling /proc/self/fd
    }
    assert!(!opener.is_finished(), "the open did not wait for the delete's lock");
    std::fs::remove_file(&path).unwrap();
    drop(deleting);
    let (_file, checkpoint) = opener.join().unwrap();
    assert_eq!(checkpoint.seq, 0, "a new checkpoint, not the deleted one");
    let listed = list_consumers(dir.path()).unwrap();
    assert_eq!(listed.len(), 1, "the new checkpoint is in the directory");
    assert_eq!(listed[0].checkpoint.as_ref().unwrap().seq, 0);
}

/// One instance of a consumer at a time: a second open of a name whose
/// checkpoint is open, in this process (another process takes the same
/// `flock`), waits `CONSUMER_OPEN_WAIT` and is refused with `ConsumerInUse`
/// naming it; once the first handle is gone the name opens again, and the
/// first handle's progress is what it finds. Both had opened: each wrote
/// its own progress over the other's, and the checkpoint (with the
/// retention pin) moved back.
#[test]
fn a_second_open_of_a_consumer_in_use_is_refused() {
    use events_journal::{ConsumerFile, JournalError};
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = ConsumerFile::open(dir.path(), "c", 7).unwrap();
    first.commit(300, 7).unwrap();
    match ConsumerFile::open(dir.path(), "c", 7) {
        Err(JournalError::ConsumerInUse { name, path }) => {
            assert_eq!((name.as_str(), path), ("c", first.path().to_path_buf()));
        }
        other => panic!("a second instance opened: {:?}", other.map(|(_, c)| c)),
    }
    drop(first);
    let (_, checkpoint) = ConsumerFile::open(dir.path(), "c", 7).unwrap();
    assert_eq!(checkpoint.seq, 300);
}

/// Staging files a crashed creation left behind, with the names this
/// process would pick next (a restarted container has the same pid):
/// creating the consumer passes over them. It had failed with "create
/// checkpoint: file exists" for as long as they were there.
#[test]
fn a_staging_file_a_crash_left_behind_does_not_block_a_new_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let consumers = dir.path().join(CONSUMERS_DIR);
    std::fs::create_dir(&consumers).unwrap();
    for n in 0..256 {
        std::fs::write(consumers.join(format!(".late.{}-{n}.tmp", std::process::id())), b"torn").unwrap();
    }
    let (_, checkpoint) = ConsumerFile::open(dir.path(), "late", 1).expect("the consumer is created");
    assert_eq!(checkpoint.seq, 0);
}

/// A commit past `MAX_SEQ` (say `u64::MAX`, a "commit everything" guess)
/// is refused before anything is written: the file's read refuses such a
/// slot, so it had been acknowledged, then lost at the next open (the
/// older slot won), and two of them left no readable slot at all.
#[test]
fn a_commit_past_max_seq_is_refused_and_writes_nothing() {
    use events_journal::format::MAX_SEQ;
    use events_journal::{ConsumerFile, JournalError};
    let dir = tempfile::tempdir().unwrap();
    let (mut file, _) = ConsumerFile::open(dir.path(), "c", 7).unwrap();
    file.commit(300, 7).unwrap();
    for seq in [MAX_SEQ + 1, u64::MAX, u64::MAX] {
        match file.commit(seq, 7) {
            Err(JournalError::CheckpointSeq { path, seq: refused }) => {
                assert_eq!((path.as_path(), refused), (file.path(), seq));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(file.checkpoint().seq, 300);
    drop(file);
    let (mut file, checkpoint) = ConsumerFile::open(dir.path(), "c", 7).unwrap();
    assert_eq!(checkpoint.seq, 300);
    file.commit(MAX_SEQ, 7).unwrap();
    drop(file);
    assert_eq!(ConsumerFile::open(dir.path(), "c", 7).unwrap().1.seq, MAX_SEQ);
}

const HOLDER: &str = "EVENTS_JOURNAL_CONSUMER_HOLDER";

/// A consumer whose checkpoint another process holds open (a child that
/// commits 300 and holds it until its stdin closes): an open here waits
/// `CONSUMER_OPEN_WAIT` and is refused with `ConsumerInUse`; an open made
/// while the holder goes away half a second later waits for it and finds
/// its progress.
#[test]
fn a_consumer_held_by_another_process_is_refused_then_opens_once_it_is_gone() {
    use events_journal::{ConsumerFile, JournalError};
    use std::io::{BufRead, Read};
    if let Ok(dir) = std::env::var(HOLDER) {
        let (mut held, _) = ConsumerFile::open(Path::new(&dir), "c", 7).unwrap();
        held.commit(300, 7).unwrap();
        println!("HOLDING");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = support::child_command(
        "a_consumer_held_by_another_process_is_refused_then_opens_once_it_is_gone",
        (HOLDER, dir.path().to_str().unwrap()),
    )
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("HOLDING"))), "the child never held the consumer");

    match ConsumerFile::open(dir.path(), "c", 7) {
        Err(JournalError::ConsumerInUse { name, .. }) => assert_eq!(name, "c"),
        other => panic!("opened beside another process's instance: {:?}", other.map(|(_, c)| c)),
    }
    let stdin = child.stdin.take().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(stdin);
    });
    let (_, checkpoint) = ConsumerFile::open(dir.path(), "c", 7).expect("opens once the holder is gone");
    assert_eq!(checkpoint.seq, 300, "the other process's progress");
    release.join().unwrap();
    assert!(child.wait().unwrap().success());
}

/// A commit whose `fdatasync` fails leaves the checkpoint as it was for
/// every reader of the file, not only for the handle: `list_consumers`
/// (what retention's pin and `events consumers` read) and the next open
/// read the last checkpoint that was made durable. The written slot had
/// stayed in the page cache, read as the newer checkpoint while `commit`
/// said it failed. A retry then commits it.
#[test]
fn a_commit_whose_fdatasync_failed_is_not_read_by_anyone() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut c, _) = ConsumerFile::open_with_faults(dir.path(), "c", 1, plan.clone()).unwrap();
    c.commit(5, 1).unwrap();
    // Each commit is a write and then a sync: the second commit's sync fails.
    plan.inject(Step::Checkpoint, 3, Fault::Errno(libc::EIO));
    let err = c.commit(10, 1).unwrap_err();
    assert!(err.to_string().contains("fdatasync"), "{err}");
    assert_eq!(c.checkpoint().seq, 5);
    assert_eq!(seq_on_disk(dir.path(), "c"), 5, "the failed commit is not read");
    // Nor by the next open.
    drop(c);
    let (mut c, reopened) = ConsumerFile::open_with_faults(dir.path(), "c", 1, plan).unwrap();
    assert_eq!(reopened.seq, 5, "the next open read the failed commit");
    c.commit(10, 1).unwrap();
    assert_eq!(seq_on_disk(dir.path(), "c"), 10);
    drop(c);
    assert_eq!(ConsumerFile::open(dir.path(), "c", 1).unwrap().1.seq, 10);
}

/// `created` says whether this open made the checkpoint: the first open of
/// a name, and the first after a delete; not a reopen. (The façade starts
/// a new consumer at the earliest retained record by it: it had looked at
/// the path before the open, so a file a delete unlinked in between made a
/// new consumer start with an `Expired` reset.)
#[test]
fn an_open_says_whether_it_made_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = ConsumerFile::open(dir.path(), "c", 1).unwrap();
    assert!(first.created());
    drop(first);
    let (again, _) = ConsumerFile::open(dir.path(), "c", 1).unwrap();
    assert!(!again.created());
    drop(again);
    assert!(delete_consumer(dir.path(), "c").unwrap());
    let (made_again, checkpoint) = ConsumerFile::open(dir.path(), "c", 1).unwrap();
    assert!(made_again.created());
    assert_eq!(checkpoint.seq, 0);
}

/// A checkpoint reached through a symbolic link in `consumers/` (to one
/// made in another directory): its open is refused, naming the path and
/// saying why, and the link is left as it is. It had been opened and
/// committed to, while retention, which lists the regular files of
/// `consumers/` alone, kept no segment for it and `list_consumers` did not
/// show it.
#[test]
fn a_checkpoint_behind_a_symbolic_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let (mut real, _) = ConsumerFile::open(elsewhere.path(), "c", 1).unwrap();
    real.commit(1, 1).unwrap();
    drop(real);
    std::fs::create_dir(dir.path().join("consumers")).unwrap();
    let link = dir.path().join("consumers/c");
    std::os::unix::fs::symlink(elsewhere.path().join("consumers/c"), &link).unwrap();
    let err = ConsumerFile::open(dir.path(), "c", 1).map(drop).unwrap_err();
    assert!(matches!(err, JournalError::Io { .. }), "{err:?}");
    let text = err.to_string() + &std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(text.contains("consumers/c") && text.contains("symbolic link"), "{text}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is left as it is");

    // A FIFO there: refused too, at once (opened for reading and writing,
    // a FIFO does not wait for a peer).
    std::fs::remove_file(&link).unwrap();
    let c = std::ffi::CString::new(link.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || tx.send(ConsumerFile::open(&path, "c", 1).map(drop)));
    // A bound on a hang, not a timing.
    let err = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the open waits on the FIFO").unwrap_err();
    let text = err.to_string() + &std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, JournalError::Io { .. }) && text.contains("not a regular file"), "{text}");
}
