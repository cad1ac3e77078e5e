//! What the fuzz targets do with one input, shared by both targets: lay the
//! bytes out as journal segment files in a scratch directory, then drive the
//! reader, `verify` and `Journal::open` over them. Each function panics only
//! when a promise breaks (a seq out of order, an accepted journal that does
//! not work); typed errors are the expected outcome for most inputs.
//!
//! The same checks run on the stable toolchain, as a proptest, in
//! `crates/events-journal/tests/reliability_fuzz_stable.rs`.

use std::path::Path;

use events_journal::format::{self, FrameCheck, HEADER_LEN, SegmentHeader};
use events_journal::{Journal, JournalOptions, Reader, RecoveryMode, Retention, SyncPolicy, verify};

/// Splits an input into up to three segment files: the first byte picks the
/// count, the next bytes the first seqs of the files, the rest is cut evenly.
pub fn files(data: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let Some((&n, rest)) = data.split_first() else { return Vec::new() };
    let n = usize::from(n % 3) + 1;
    let (seqs, body) = rest.split_at(rest.len().min(n));
    let chunk = body.len().div_ceil(n).max(1);
    let mut first = 1u64;
    body.chunks(chunk)
        .enumerate()
        .map(|(i, bytes)| {
            let name = first;
            first += u64::from(seqs.get(i).copied().unwrap_or(1)) + 1;
            (name, bytes.to_vec())
        })
        .collect()
}

/// Writes `files` into `dir` as `<first seq:020>.seg`.
pub fn write(dir: &Path, files: &[(u64, Vec<u8>)]) {
    for (first, bytes) in files {
        std::fs::write(dir.join(format!("{first:020}.seg")), bytes).expect("write scratch segment");
    }
}

/// The in-memory parsers on one buffer: the header decoder and a frame walk.
pub fn parse(buf: &[u8]) {
    let _ = SegmentHeader::decode(buf);
    let mut off = HEADER_LEN.min(buf.len());
    while let FrameCheck::Valid { payload, .. } = format::check_frame(buf, off) {
        assert!(payload.end > off && payload.end <= buf.len(), "frame walk went backwards or out of bounds");
        off = payload.end;
    }
}

/// The reader and `verify` over a directory: seqs run on one by one,
/// except where a `Gap` names exactly the seqs skipped; any other error
/// ends the walk. Returns the last seq read (0 for none).
pub fn read(dir: &Path) -> u64 {
    let _ = verify(dir);
    let Ok(reader) = Reader::open(dir) else { return 0 };
    let Ok(mut records) = reader.read_since(0) else { return 0 };
    let mut next: Option<u64> = None;
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

/// `Journal::open` in `mode`; when it accepts the directory, its next seq
/// must be above `seen` (the last seq a reader got before the open: no seq
/// is handed out twice), and an append must land at `next_seq` and survive
/// a reopen.
pub fn open(dir: &Path, mode: RecoveryMode, seen: u64) {
    let opts = || JournalOptions::new().recovery(mode).sync(SyncPolicy::Never).retention(Retention::unlimited());
    let Ok((mut j, _)) = Journal::open(dir, opts()) else { return };
    let next = j.next_seq();
    assert!(next > seen, "{mode:?}: seq {seen} was read before recovery, and the next seq is {next}");
    assert_eq!(j.append(1, b"fuzz").expect("append after a successful open"), next);
    j.close().expect("close");
    let (j, _) = Journal::open(dir, opts()).expect("reopen after a successful open and append");
    assert_eq!(j.next_seq(), next + 1);
}
