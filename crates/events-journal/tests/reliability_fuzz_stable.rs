//! The stable-toolchain stand-in for the `cargo fuzz` targets in `fuzz/`:
//! random and mutated segment files are fed to the reader, to `verify` and to
//! `Journal::open` in every recovery mode. Nothing may panic or hang (each
//! case runs on a worker thread under a deadline); every outcome must be a
//! typed error or a valid read; and when `open` accepts a directory, the
//! journal must work: an append lands at `next_seq`, survives a reopen and
//! reads back.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use events_journal::format::{SegmentHeader, encode_frame};
use events_journal::{Journal, JournalOptions, ReadError, Reader, RecoveryMode, Retention, SyncPolicy, verify};
use proptest::prelude::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// One file of the journal directory: `(first seq in its name, bytes)`.
type Files = Vec<(u64, Vec<u8>)>;

fn write_files(dir: &Path, files: &Files) {
    for (first, bytes) in files {
        std::fs::write(dir.join(format!("{first:020}.seg")), bytes).unwrap();
    }
}

/// A clean journal image: `segments` segments of `per` records each.
fn clean(segments: u64, per: u64) -> Files {
    (0..segments)
        .map(|i| {
            let first = 1 + i * per;
            let mut buf = SegmentHeader { epoch: 7, first_seq: first, created_at: i, codec_tag: 0 }.encode().to_vec();
            for s in first..first + per {
                encode_frame(&mut buf, s, s, &vec![s as u8; (s as usize * 13) % 90]);
            }
            (first, buf)
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Overwrite(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    /// Sets a 4-byte little-endian field (a frame length, most likely) to a value.
    Field(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Mutation::Flip(at, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..40)).prop_map(|(a, b)| Mutation::Overwrite(a, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..40)).prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), prop_oneof![Just(u32::MAX), Just(0), Just(1 << 31), any::<u32>()])
            .prop_map(|(a, v)| Mutation::Field(a, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |x: usize| x % bytes.len();
    match m {
        Mutation::Flip(x, v) => {
            let i = at(*x);
            bytes[i] ^= v;
        }
        Mutation::Truncate(x) => bytes.truncate(at(*x)),
        Mutation::Overwrite(x, b) => {
            let i = at(*x);
            for (k, v) in b.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *v;
                }
            }
        }
        Mutation::Insert(x, b) => {
            let i = at(*x);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Field(x, v) => {
            let i = at(*x);
            for (k, byte) in v.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = byte;
                }
            }
        }
    }
}

/// Reads everything the reader offers after `cursor`, checking that what
/// it yields is sane; returns the last seq read (0 for none).
fn read_checked(dir: &Path, cursor: u64) -> u64 {
    let Ok(reader) = Reader::open(dir) else { return 0 };
    match reader.read_since(cursor) {
        Ok(records) => check_walk(records, cursor),
        Err(ReadError::Expired { .. } | ReadError::Ahead { .. } | ReadError::Journal(_)) => 0,
        Err(e) => panic!("unexpected read error {e}"),
    }
}

/// The last seq a read after `cursor` yields (0 for none), checking that
/// it yields records whose seqs run on one by one from `cursor + 1`, except where a `Gap` names exactly the seqs skipped;
/// any other error ends the walk. (A walk that skipped seqs silently, or
/// went on past a terminal error, had passed: only rising seqs were
/// checked, and every error was dropped.)
fn check_walk(mut records: events_journal::Records, cursor: u64) -> u64 {
    let mut next = Some(cursor + 1);
    let mut last = 0;
    for _ in 0..100_000 {
        match records.next() {
            None => return last,
            Some(Ok(r)) => {
                last = r.seq();
                if let Some(due) = next {
                    assert_eq!(r.seq(), due, "seq {} where {due} was due, and no gap said so", r.seq());
                }
                next = Some(r.seq() + 1);
            }
            Some(Err(events_journal::JournalError::Gap { expected, found, .. })) => {
                assert!(found > expected, "a gap from {expected} to {found}");
                if let Some(due) = next {
                    assert_eq!(expected, due, "a gap from {expected} where {due} was due");
                }
                next = Some(found);
            }
            Some(Err(_)) => {
                assert!(records.next().is_none(), "records after a terminal error");
                return last;
            }
        }
    }
    last
}

/// The whole exercise for one directory image; panics on any broken
/// promise. No recovery may hand out again a seq that a reader got from the
/// same bytes before it (§3.2).
fn exercise(files: Files, cursor: u64) -> usize {
    let mut opened = 0;
    let tmp = tempfile::tempdir().unwrap();
    write_files(tmp.path(), &files);
    let seen = read_checked(tmp.path(), 0).max(read_checked(tmp.path(), cursor));
    let _ = verify(tmp.path());
    for mode in
        [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt, RecoveryMode::Repair]
    {
        let tmp = tempfile::tempdir().unwrap();
        write_files(tmp.path(), &files);
        let opts = || JournalOptions::new().recovery(mode).sync(SyncPolicy::Never).retention(Retention::unlimited());
        let Ok((mut j, _)) = Journal::open(tmp.path(), opts()) else { continue };
        opened += 1;
        let next = j.next_seq();
        assert!(next > seen, "{mode:?}: seq {seen} was read before recovery, and the next seq is {next}");
        assert_eq!(j.append(1, b"after").unwrap(), next, "{mode:?}");
        j.close().unwrap();
        let (j, report) = Journal::open(tmp.path(), opts()).unwrap_or_else(|e| panic!("{mode:?}: second open: {e}"));
        assert_eq!(j.next_seq(), next + 1, "{mode:?}: {report:?}");
        drop(j);
        let reader = Reader::open(tmp.path()).unwrap();
        let got: Vec<_> = reader.read_since(next - 1).unwrap().collect();
        assert!(
            got.last().is_some_and(|r| r.as_ref().is_ok_and(|r| r.seq() == next && r.payload() == b"after")),
            "{mode:?}: the append after recovery does not read back: {got:?}"
        );
    }
    opened
}

/// Runs `exercise` on a worker thread: a panic or a hang fails the case.
fn guarded(files: Files, cursor: u64) -> Result<(), TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        exercise(files, cursor);
        let _ = tx.send(());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(()) => {
            worker.join().unwrap();
            Ok(())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Err(TestCaseError::fail(format!("panicked: {msg}")))
            }
            Ok(()) => Err(TestCaseError::fail("worker ended without reporting")),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TestCaseError::fail("hang: no answer within the deadline")),
    }
}

/// The exercise's checks after an open run: every mode opens a clean
/// journal (a build whose opens all refused would pass the fuzz cases
/// above with those checks skipped).
#[test]
fn every_mode_opens_a_clean_journal_and_appends_after_it() {
    for (segments, per) in [(1, 1), (3, 11)] {
        assert_eq!(exercise(clean(segments, per), 0), 4, "{segments} segments of {per}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn mutated_segments_never_panic_or_hang(
        segments in 1u64..4,
        per in 1u64..12,
        target in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        cursor in 0u64..60,
    ) {
        let mut files = clean(segments, per);
        let i = target % files.len();
        for m in &mutations {
            apply(&mut files[i].1, m);
        }
        guarded(files, cursor)?;
    }

    #[test]
    fn random_bytes_never_panic_or_hang(
        header in any::<bool>(),
        first in 1u64..5,
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        cursor in 0u64..10,
    ) {
        // With a valid header the random bytes reach the frame parser; without, the header checks.
        let mut bytes = if header {
            SegmentHeader { epoch: 7, first_seq: first, created_at: 0, codec_tag: 0 }.encode().to_vec()
        } else {
            Vec::new()
        };
        bytes.extend_from_slice(&tail);
        guarded(vec![(first, bytes)], cursor)?;
    }
}
