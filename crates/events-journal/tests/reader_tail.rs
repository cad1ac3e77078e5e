//! Readers beside a live writer: a reader thread tailing with `read_since`
//! while a writer thread appends (through rolls and retention) sees every
//! record exactly once, in order; cursors before retention are `Expired`,
//! cursors past the end are `Ahead`; records held across a prune stay
//! readable.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};

use events_journal::{Journal, JournalError, JournalOptions, ReadError, Reader, Retention, SyncPolicy};
use support::{assert_records, payload, read_all, ts};

#[test]
fn a_tailing_reader_sees_every_record_once_in_order() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(64 << 10).retention(Retention::unlimited());
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let tail = s.spawn(|| {
            let mut cursor = 0;
            let mut calls = 0u64;
            while cursor < N {
                let finished = done.load(Ordering::Acquire);
                calls += 1;
                for r in reader.read_since(cursor).expect("read_since") {
                    let r = r.expect("record");
                    assert_eq!(r.seq(), cursor + 1, "gap or duplicate");
                    assert_eq!(r.payload(), payload(r.seq()).as_slice());
                    cursor = r.seq();
                }
                if finished {
                    // Every append returned before `done` was set, so one call
                    // after seeing it must have delivered everything.
                    assert_eq!(cursor, N, "a call after the last append missed records");
                }
                if cursor < N {
                    std::thread::yield_now();
                }
            }
            calls
        });
        let mut seq = 1;
        while seq <= N {
            let n = (seq % 7 + 1).min(N - seq + 1);
            let payloads: Vec<Vec<u8>> = (seq..seq + n).map(payload).collect();
            let range =
                j.append_batch(payloads.iter().enumerate().map(|(i, p)| (ts(seq + i as u64), p.as_slice()))).unwrap();
            assert_eq!(*range.start(), seq);
            seq += n;
        }
        done.store(true, Ordering::Release);
        let calls = tail.join().unwrap();
        assert!(calls > 1, "the reader never had to tail");
    });
    assert!(j.stats().rolls > 10, "the test should cross many rolls");
}

#[test]
fn expired_and_ahead_are_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().segment_bytes(1024).retention(Retention::segments(2)).sync(SyncPolicy::Never);
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert!(read_all(&reader, 0).is_empty());
    assert!(matches!(reader.read_since(1), Err(ReadError::Ahead { latest: 0 })));
    for seq in 1..=100 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    let earliest = j.first_seq();
    assert!(earliest > 1, "retention should have pruned");
    assert_eq!(reader.first_seq().unwrap(), earliest);
    assert_eq!(reader.last_seq().unwrap(), 100);
    assert!(matches!(reader.read_since(0), Err(ReadError::Expired { earliest: e }) if e == earliest));
    assert!(matches!(reader.read_since(earliest - 2), Err(ReadError::Expired { .. })));
    assert_records(&read_all(&reader, earliest - 1), earliest, 100);
    assert!(read_all(&reader, 100).is_empty());
    assert!(matches!(reader.read_since(101), Err(ReadError::Ahead { latest: 100 })));
    assert!(matches!(reader.read_since(u64::MAX), Err(ReadError::Ahead { latest: 100 })));
}

#[test]
fn records_outlive_the_pruning_of_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().segment_bytes(1024).retention(Retention::segments(1)).sync(SyncPolicy::Never);
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    for seq in 1..=3 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    let reader = Reader::open(dir.path()).unwrap();
    let mut pending = reader.read_since(0).unwrap();
    let first = pending.next().unwrap().unwrap();
    j.roll().unwrap(); // removes the segment both `first` and `pending` map
    assert_eq!(support::segments(dir.path()).len(), 1);
    assert_eq!(first.payload(), payload(1).as_slice());
    let rest: Vec<_> = pending.collect::<Result<_, _>>().unwrap();
    assert_records(&rest, 2, 3);
    assert!(matches!(reader.read_since(0), Err(ReadError::Expired { earliest: 4 })));
}

#[test]
fn a_clone_shared_across_threads_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    for seq in 1..=50 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    let reader = Reader::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for k in 0..2u64 {
            let r = reader.clone();
            s.spawn(move || assert_records(&read_all(&r, k * 10), k * 10 + 1, 50));
        }
    });
}

/// Maps of segments that retention removed are let go of at the reader's
/// next listing, whichever call lists: a reader that only serves
/// `records_at` (per-stream reads, expected-version checks) had kept the
/// map of every segment it touched, and with it the removed file's blocks
/// on the disk, for as long as the reader lived.
#[test]
fn a_reader_lets_go_of_the_maps_of_removed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(1024).retention(Retention::segments(2));
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let deleted_maps = || {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let dir = dir.path().to_str().unwrap();
        maps.lines().filter(|l| l.contains(dir) && l.ends_with("(deleted)")).count()
    };
    for n in 0..2_000u64 {
        j.append(ts(n), payload(n)).unwrap();
        if n % 10 == 9 {
            let (oldest, _) = reader.segments().unwrap()[0];
            let _ = reader.records_at(oldest, &[]);
        }
    }
    assert!(reader.segments().unwrap().len() <= 3, "retention ran");
    let _ = reader.records_at(reader.segments().unwrap()[0].0, &[]);
    assert!(deleted_maps() <= 1, "{} maps of removed segments are still held", deleted_maps());
    j.close().unwrap();
}

/// A reader keeps a segment mapped only while a read uses it, and a couple
/// of seconds after: once the records it handed out are dropped,
/// retention's removal frees the files' blocks on the disk with no further
/// call on the reader. Its cache had kept the map of every segment a read
/// went through until the next listing, so a server whose clients had
/// caught up once and then followed the live tail (which reads no file)
/// held every removed segment of that catch-up for as long as no client
/// caught up again.
#[test]
fn a_reader_with_no_read_under_way_holds_no_removed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(1024);
    let (mut j, _) = Journal::open(dir.path(), opts.clone().retention(Retention::unlimited())).unwrap();
    for n in 1..=200u64 {
        j.append(ts(n), payload(n)).unwrap();
    }
    j.close().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let read = read_all(&reader, 0);
    assert_records(&read, 1, 200);
    drop(read);
    let held = || {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let dir = dir.path().to_str().unwrap();
        maps.lines().filter(|l| l.contains(dir)).map(str::to_owned).collect::<Vec<_>>()
    };
    // Retention removes every segment the read went through.
    let (mut j, _) = Journal::open(dir.path(), opts.retention(Retention::segments(2))).unwrap();
    for n in 201..=400u64 {
        j.append(ts(n), payload(n)).unwrap();
    }
    assert!(reader.segments().unwrap()[0].0 > 200, "retention ran");
    let deleted = || held().into_iter().filter(|l| l.ends_with("(deleted)")).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !deleted().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(deleted().is_empty(), "maps of removed segments are still held: {:#?}", deleted());
    // Nothing else either, once the linger is over.
    while !held().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(held().is_empty(), "no read is under way, yet these are mapped: {:#?}", held());
    j.close().unwrap();
}

/// A damaged frame inside what a live writer acknowledged (a flipped byte in
/// the newest segment, below the watermark) is `Corrupt` naming file,
/// offset and seq: for a cursor past it, and for one before it after the
/// records in front of it. It was `Ahead` for the first (a follower then
/// reset and read everything again) and a clean end for the second (every
/// later poll stopped there, silently, while the writer went on).
#[test]
fn damage_below_a_live_writers_watermark_is_corrupt_not_the_end() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).retention(Retention::unlimited());
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    for n in 1..=20u64 {
        j.append(ts(n), vec![n as u8; 40]).unwrap();
    }
    // Record 10's first payload byte: the 64-byte header, then frames of a
    // 24-byte frame header and 40 payload bytes.
    let segment = support::segments(dir.path()).pop().unwrap();
    let at = 64 + 9 * (24 + 40) + 24;
    let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.write_all_at(&[0xff], at).unwrap();

    let reader = Reader::open(dir.path()).unwrap();
    match reader.read_since(15) {
        Err(ReadError::Journal(JournalError::Corrupt { path, offset, seq, .. })) => {
            assert_eq!((path, offset, seq), (segment, at - 24, Some(10)));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let mut seqs = Vec::new();
    let mut failed = None;
    for item in reader.read_since(0).unwrap() {
        match item {
            Ok(r) => seqs.push(r.seq()),
            Err(e) => failed = Some(e),
        }
    }
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    assert!(matches!(failed, Some(JournalError::Corrupt { seq: Some(10), .. })), "{failed:?}");
    j.close().unwrap();
}

/// A dead writer's newest segment whose header never reached the disk (64
/// zero bytes: an interrupted creation, which the next open rewrites) holds
/// nothing to read: the sealed segments before it are served. Every read
/// whose range reached it had failed with "torn header". With data after
/// the zeroed header it is damage, and still fails so.
#[test]
fn a_dead_writers_torn_newest_header_hides_nothing_before_it() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().faults(plan.clone())).unwrap();
    for n in 1..=3u64 {
        j.append(ts(n), payload(n)).unwrap();
    }
    j.roll().unwrap();
    // The process dies: nothing it would still write reaches the disk.
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    assert!(plan.crashed());
    let newest = support::segments(dir.path()).pop().unwrap();
    std::fs::write(&newest, [0u8; 64]).unwrap();

    let reader = Reader::open(dir.path()).unwrap();
    assert_records(&read_all(&reader, 0), 1, 3);
    assert_eq!(reader.last_seq().unwrap(), 3);
    assert_eq!(reader.read_since(3).unwrap().count(), 0);

    // With a frame after the zeroed header it is damage, as open says.
    let mut damaged = vec![0u8; 64];
    events_journal::format::encode_frame(&mut damaged, 4, ts(4), &payload(4));
    std::fs::write(&newest, &damaged).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let read = reader.read_since(0).map(|_| ());
    assert!(
        matches!(&read, Err(ReadError::Journal(JournalError::Corrupt { reason, .. })) if reason == "torn header"),
        "{read:?}"
    );
    let last = reader.last_seq();
    assert!(
        matches!(&last, Err(JournalError::Corrupt { reason, .. }) if reason == "torn header"),
        "no latest seq past a header no reader can read: {last:?}"
    );
}
