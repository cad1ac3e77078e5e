//! `verify` beside a live writer that rolls and prunes all the time: it
//! checks what the writer acknowledged and reports a healthy journal as
//! healthy, never a segment retention took out after the listing, a frame
//! the writer is in the middle of writing, or a segment created since.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events_journal::{Journal, JournalOptions, Retention, SyncPolicy, verify};
use support::{payload, ts};

#[test]
fn verify_beside_a_writer_that_rolls_and_prunes_finds_no_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(4096).retention(Retention::segments(2));
    let (mut j, _) = Journal::open(&dir, opts).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rolls = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, rolls) = (Arc::clone(&stop), Arc::clone(&rolls));
        std::thread::spawn(move || {
            let mut seq = 1;
            while !stop.load(Ordering::Relaxed) {
                j.append_batch((seq..seq + 3).map(|s| (ts(s), payload(s)))).unwrap();
                seq += 3;
                rolls.store(j.stats().rolls, Ordering::Relaxed);
            }
        })
    };
    // Until the writer rolled (and pruned) 300 times while verify ran.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while rolls.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "the writer rolled only {} times", rolls.load(Ordering::Relaxed));
        // Once the writer has rolled, the journal holds records whenever verify looks.
        let rolled = rolls.load(Ordering::Relaxed) > 0;
        let report = verify(&dir).unwrap();
        assert!(report.is_ok(), "round {round}: {:#?}", report.problems);
        assert!(report.segments > 0 && (report.records > 0 || !rolled), "round {round}: checked nothing: {report:?}");
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

/// Acknowledged records zeroed at the end of the newest segment, beside a
/// live writer and after a clean close: damage, never the space a writer
/// reserves ahead (a live writer's segment is read only up to its
/// watermark, and a clean close trims the reserved space). And the newest
/// segment cut at a frame boundary after a clean close: the records the
/// watermark names are missing. Each had passed as a healthy journal
/// (`reserved > 0`, a lower `last_seq`) while readers failed on it.
#[test]
fn acknowledged_records_zeroed_or_cut_are_problems() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut j, _) = Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Always)).unwrap();
    let reader = events_journal::Reader::open(dir).unwrap();
    let mut ends = vec![0];
    for seq in 1..=10 {
        j.append(ts(seq), payload(seq)).unwrap();
        ends.push(reader.watermark().unwrap().unwrap().offset);
    }
    let segment = dir.join("00000000000000000001.seg");
    let zero_9_and_10 = || {
        let file = std::fs::OpenOptions::new().write(true).open(&segment).unwrap();
        file.write_all_at(&vec![0u8; usize::try_from(ends[10] - ends[8]).unwrap()], ends[8]).unwrap();
    };
    let original = std::fs::read(&segment).unwrap();
    let damaged = |report: events_journal::VerifyReport, what: &str| {
        assert!(!report.is_ok() && report.reserved == 0, "{what}: {report:#?}");
        assert!(report.problems.iter().all(|p| p.path == segment), "{what}: {report:#?}");
    };

    zero_9_and_10();
    let report = verify(dir).unwrap();
    assert!(report.problems[0].what.contains("in acknowledged records"), "{report:#?}");
    damaged(report, "beside the live writer");
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().write_all_at(&original, 0).unwrap();
    j.close().unwrap();
    assert!(verify(dir).unwrap().is_ok());

    zero_9_and_10();
    damaged(verify(dir).unwrap(), "after a clean close");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .write_all_at(&original[..usize::try_from(ends[10]).unwrap()], 0)
        .unwrap();
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(ends[9]).unwrap();
    let report = verify(dir).unwrap();
    assert_eq!(report.last_seq, Some(9));
    assert!(report.problems[0].what.starts_with("records 10..=10 are missing"), "{report:#?}");
    damaged(report, "cut at a frame boundary after a clean close");
}
