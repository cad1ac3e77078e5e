//! `Records::next_run` and `next_ref` yield exactly what the iterator
//! yields: the same records in the same order, a salvage gap or damage in
//! a sealed segment at the same place, and runs that never cross a segment
//! or exceed their maximum. Every walk tells the seq it expects next after
//! each item, and stays ended once it ended.

use std::path::Path;

use events_journal::format::{FrameCheck, HEADER_LEN, check_frame, encode_frame};
use events_journal::{Journal, JournalError, JournalOptions, Reader, Records, Retention, SyncPolicy};

/// What a walk saw: each record as (seq, ts, payload), a gap as its range,
/// damage as the seq expected where it lies and what is wrong.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Record(u64, u64, Vec<u8>),
    Gap(u64, u64),
    Corrupt(Option<u64>, String),
}

fn seen_error(e: JournalError) -> Seen {
    match e {
        JournalError::Gap { expected, found, .. } => Seen::Gap(expected, found),
        JournalError::Corrupt { seq, reason, .. } => Seen::Corrupt(seq, reason),
        other => panic!("unexpected error: {other}"),
    }
}

/// The seq a walk must expect after `seen`, when it tells.
fn next_after(seen: &Seen) -> Option<u64> {
    match seen {
        Seen::Record(seq, ..) => Some(seq + 1),
        Seen::Gap(_, found) => Some(*found),
        Seen::Corrupt(..) => None,
    }
}

fn by_iterator(mut records: Records) -> Vec<Seen> {
    let mut out = Vec::new();
    // Not `for`: the loop asks the iterator for its next seq as it goes.
    loop {
        let Some(r) = records.next() else { break };
        out.push(match r {
            Ok(r) => Seen::Record(r.seq(), r.ts(), r.payload().to_vec()),
            Err(e) => seen_error(e),
        });
        if let Some(next) = next_after(out.last().unwrap()) {
            assert_eq!(records.next_seq(), next, "after {:?}", out.last());
        }
    }
    assert!(records.next().is_none() && records.next().is_none(), "the iterator is fused");
    out
}

fn by_ref(mut records: Records) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Some(r) = records.next_ref() {
        out.push(match r {
            Ok(r) => Seen::Record(r.seq(), r.ts(), r.payload().to_vec()),
            Err(e) => seen_error(e),
        });
        if let Some(next) = next_after(out.last().unwrap()) {
            assert_eq!(records.next_seq(), next, "after {:?}", out.last());
        }
    }
    let end = records.next_seq();
    assert!(records.next_ref().is_none() && records.next_run(8).is_none(), "ended for good");
    assert_eq!(records.next_seq(), end);
    out
}

/// Walks by runs of at most `max`, checking each run's own figures.
fn by_runs(mut records: Records, max: usize, segments: &[(u64, u64)]) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Some(run) = records.next_run(max) {
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                out.push(seen_error(e));
                continue;
            }
        };
        assert!(!run.is_empty() && run.len() <= max.max(1), "{run:?} with max {max}");
        assert_eq!(run.iter().len(), run.len());
        let seqs: Vec<u64> = run.iter().map(|r| r.seq()).collect();
        assert_eq!(seqs, (run.first_seq()..=run.last_seq()).collect::<Vec<_>>());
        assert!(
            segments.iter().any(|&(first, last)| first <= run.first_seq() && run.last_seq() <= last),
            "{run:?} crosses a segment boundary ({segments:?})"
        );
        out.extend(run.iter().map(|r| Seen::Record(r.seq(), r.ts(), r.payload().to_vec())));
        assert_eq!(records.next_seq(), run.last_seq() + 1);
    }
    assert!(records.next_run(max).is_none() && records.next_ref().is_none(), "ended for good");
    out
}

fn fill(dir: &Path, n: u64) {
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(4096).retention(Retention::unlimited());
    let (mut journal, _) = Journal::open(dir, opts).unwrap();
    for i in 0..n {
        let len = 20 + (i * 37 % 300) as usize;
        let payload: Vec<u8> = (0..len).map(|j| (i as usize * 7 + j) as u8).collect();
        journal.append(1_000 + i, &payload).unwrap();
    }
    journal.close().unwrap();
}

/// The segments' (first, last) seqs, from their names.
fn segment_ranges(dir: &Path, last: u64) -> Vec<(u64, u64)> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".seg").map(|n| n.parse().unwrap())
        })
        .collect();
    firsts.sort_unstable();
    let mut ranges: Vec<(u64, u64)> = firsts.windows(2).map(|w| (w[0], w[1] - 1)).collect();
    ranges.push((*firsts.last().unwrap(), last));
    ranges
}

fn check_all_walks_agree(dir: &Path, last: u64, cursor: u64) -> Vec<Seen> {
    let reader = Reader::open(dir).unwrap();
    let want = by_iterator(reader.read_since(cursor).unwrap());
    assert_eq!(by_ref(reader.read_since(cursor).unwrap()), want, "next_ref after {cursor}");
    let segments = segment_ranges(dir, last);
    for max in [0, 1, 2, 7, 64, 10_000] {
        assert_eq!(by_runs(reader.read_since(cursor).unwrap(), max, &segments), want, "runs of {max} after {cursor}");
    }
    want
}

#[test]
fn runs_and_borrowed_records_match_the_iterator_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 500);
    assert!(segment_ranges(dir.path(), 500).len() > 10, "the test needs many segments");
    for cursor in [0, 1, 99, 250, 499, 500] {
        let seen = check_all_walks_agree(dir.path(), 500, cursor);
        assert_eq!(seen.len() as u64, 500 - cursor);
    }
}

#[test]
fn a_missing_segment_is_the_same_gap_in_every_walk() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 500);
    let segments = segment_ranges(dir.path(), 500);
    let (first, last) = segments[segments.len() / 2];
    std::fs::remove_file(dir.path().join(format!("{first:020}.seg"))).unwrap();
    let seen = check_all_walks_agree(dir.path(), 500, 0);
    let gaps: Vec<&Seen> = seen.iter().filter(|s| matches!(s, Seen::Gap(..))).collect();
    assert_eq!(gaps, [&Seen::Gap(first, last + 1)]);
    assert_eq!(seen.len() as u64, 500 - (last + 1 - first) + 1);
}

#[test]
fn damage_in_a_sealed_segment_ends_every_walk_after_the_same_record() {
    // A flipped payload bit (the CRC fails), then a frame whose CRC holds
    // but whose seq is not the one expected.
    for wrong_seq in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path(), 500);
        let segments = segment_ranges(dir.path(), 500);
        let (first, _) = segments[segments.len() / 2];
        let path = dir.path().join(format!("{first:020}.seg"));
        let mut bytes = std::fs::read(&path).unwrap();
        // The segment's third frame, seq `first + 2`.
        let frame_at = |bytes: &[u8], off| match check_frame(bytes, off) {
            FrameCheck::Valid { seq, ts, payload } => (seq, ts, payload),
            other => panic!("no valid frame at {off}: {other:?}"),
        };
        let mut off = HEADER_LEN;
        for _ in 0..2 {
            off = frame_at(&bytes, off).2.end;
        }
        let (seq, ts, payload) = frame_at(&bytes, off);
        assert_eq!(seq, first + 2);
        if wrong_seq {
            let mut frame = Vec::new();
            encode_frame(&mut frame, first + 1_000, ts, &bytes[payload.clone()]);
            bytes[off..payload.end].copy_from_slice(&frame);
        } else {
            bytes[(payload.start + payload.end) / 2] ^= 0x10;
        }
        std::fs::write(&path, &bytes).unwrap();
        let seen = check_all_walks_agree(dir.path(), 500, 0);
        let reason = if wrong_seq {
            format!("seq {} where {} was expected", first + 1_000, first + 2)
        } else {
            "frame checksum mismatch in a sealed segment".to_string()
        };
        assert_eq!(seen.last(), Some(&Seen::Corrupt(Some(first + 2), reason)));
        assert_eq!(seen.len() as u64, first + 2, "records 1..={}, then the damage", first + 1);
    }
}

#[test]
fn a_run_split_anywhere_holds_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let reader = Reader::open(dir.path()).unwrap();
    let whole = reader.read_since(0).unwrap().next_run(usize::MAX).unwrap().unwrap();
    let all: Vec<(u64, Vec<u8>)> = whole.iter().map(|r| (r.seq(), r.payload().to_vec())).collect();
    for n in 0..=whole.len() + 1 {
        let mut head = whole.clone();
        let tail = head.split_off(n);
        let mut joined: Vec<(u64, Vec<u8>)> = head.iter().map(|r| (r.seq(), r.payload().to_vec())).collect();
        if let Some(tail) = &tail {
            assert_eq!(tail.first_seq(), head.last_seq() + 1);
            joined.extend(tail.iter().map(|r| (r.seq(), r.payload().to_vec())));
        } else {
            assert_eq!(head.len(), whole.len(), "no rest when splitting at {n}");
        }
        assert_eq!(joined, all, "split at {n}");
        assert_eq!(head.iter().next().map(|r| r.to_record().seq()), Some(whole.first_seq()));
    }
}

/// `next_run_within` ends a run at the record whose frame reaches the byte
/// budget (at least one record, however large), and the walk goes on from
/// the next record: the runs together hold every record once, in order.
#[test]
fn runs_within_a_byte_budget_end_at_the_record_that_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 120);
    let reader = Reader::open(dir.path()).unwrap();
    let mut all = Vec::new();
    let mut records = reader.read_since(0).unwrap();
    while let Some(record) = records.next_ref() {
        all.push(record.unwrap().seq());
    }
    for budget in [1, 100, 700, 5_000] {
        let mut records = reader.read_since(0).unwrap();
        let mut walked = Vec::new();
        while let Some(run) = records.next_run_within(usize::MAX, budget) {
            let run = run.unwrap();
            // The records before the last left the run under the budget.
            let mut head = run.clone();
            if head.split_off(run.len() - 1).is_some() {
                assert!(head.frame_bytes() < budget, "budget {budget}: a run went on past it");
            }
            if budget == 1 {
                assert_eq!(run.len(), 1, "one record per run");
            }
            walked.extend(run.iter().map(|r| r.seq()));
        }
        assert_eq!(walked, all, "budget {budget}");
    }
}
