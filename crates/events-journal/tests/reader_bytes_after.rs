//! `Reader::bytes_after`: the bytes of the segment files holding records
//! after a seq, exact at segment boundaries (what a consumer's `lag_bytes`
//! reports).

mod support;

use events_journal::{Journal, JournalOptions, Reader, Retention, SyncPolicy};
use support::segments;

#[test]
fn bytes_after_counts_the_segments_past_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(512).retention(Retention::unlimited());
    let (mut journal, _) = Journal::open(dir.path(), options).unwrap();
    for n in 0..40u64 {
        journal.append(n, [n as u8; 50]).unwrap();
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let size = |i: usize| std::fs::metadata(&segs[i]).unwrap().len();
    let first_seq = |i: usize| -> u64 { segs[i].file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let total: u64 = (0..segs.len()).map(size).sum();
    let reader = Reader::open(dir.path()).unwrap();

    assert_eq!(reader.bytes_after(0).unwrap(), total, "nothing read: every segment");
    // The last seq of segment 0: segment 0 has nothing more to read.
    assert_eq!(reader.bytes_after(first_seq(1) - 1).unwrap(), total - size(0));
    // One record into segment 1: it still counts whole.
    assert_eq!(reader.bytes_after(first_seq(1)).unwrap(), total - size(0));
    // Caught up: the newest segment always counts (its end is not read).
    assert_eq!(reader.bytes_after(40).unwrap(), size(segs.len() - 1));
    // One listing answers the same for every seq.
    let sizes = reader.segment_sizes().unwrap();
    for seq in [0, first_seq(1) - 1, first_seq(1), 40] {
        assert_eq!(sizes.bytes_after(seq), reader.bytes_after(seq).unwrap(), "seq {seq}");
    }
    journal.close().unwrap();
}
