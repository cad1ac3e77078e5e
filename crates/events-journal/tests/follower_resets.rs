//! [`Follower`] from the outside: it yields records then `None` when caught
//! up, picks up new ones, and turns every cursor it cannot serve into one
//! explicit [`Reset`]: retention (goes on with the earliest record), a cursor
//! ahead of the journal (goes on with the earliest), a salvage gap (goes on
//! right after it) and a directory recreated under it (goes on with the new
//! journal's first record, never its middle).

mod support;

use events_journal::{Followed, Follower, Journal, JournalOptions, Reader, RecoveryMode, Reset, Retention, SyncPolicy};
use support::{payload, segments, ts};

fn append_n(j: &mut Journal, n: u64) {
    for _ in 0..n {
        let seq = j.next_seq();
        j.append(ts(seq), payload(seq)).unwrap();
    }
}

/// Everything available now, as seqs and resets.
fn drain(f: &mut Follower) -> Vec<Result<u64, Reset>> {
    let mut out = Vec::new();
    while let Some(step) = f.next().unwrap() {
        out.push(match step {
            Followed::Record(r) => Ok(r.seq()),
            Followed::Reset(reset) => Err(reset),
        });
    }
    out
}

#[test]
fn follows_new_records_and_resets_on_retention_and_a_cursor_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(1024).retention(Retention::segments(2));
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    append_n(&mut j, 3);
    let mut f = Follower::new(Reader::open(dir.path()).unwrap(), 1).unwrap();
    assert_eq!(drain(&mut f), [Ok(2), Ok(3)]);
    append_n(&mut j, 1);
    assert_eq!(drain(&mut f), [Ok(4)]);

    append_n(&mut j, 60); // rolls and prunes past the cursor
    let earliest = Reader::open(dir.path()).unwrap().first_seq().unwrap();
    assert!(earliest > 5);
    let got = drain(&mut f);
    assert_eq!(got[0], Err(Reset::Expired { earliest }));
    assert_eq!(got[1..], (earliest..=64).map(Ok).collect::<Vec<_>>()[..]);

    let mut ahead = Follower::new(Reader::open(dir.path()).unwrap(), 500).unwrap();
    let got = drain(&mut ahead);
    assert_eq!(got[0], Err(Reset::Ahead { latest: 64, earliest }));
    assert_eq!(got.len() as u64, 1 + 65 - earliest);
    j.close().unwrap();
}

#[test]
fn a_salvage_gap_is_one_reset_and_the_follower_goes_on_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    let mut offsets = vec![64u64];
    for seq in 1..=6 {
        j.append(ts(seq), payload(seq)).unwrap();
        offsets.push(offsets.last().unwrap() + 24 + payload(seq).len() as u64);
    }
    j.close().unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[offsets[2] as usize + 5] ^= 1; // damage seq 3
    std::fs::write(&seg, bytes).unwrap();
    let opts = JournalOptions::new().recovery(RecoveryMode::SkipCorrupt).retention(Retention::unlimited());
    Journal::open(dir.path(), opts).unwrap().0.close().unwrap();

    let mut f = Follower::new(Reader::open(dir.path()).unwrap(), 0).unwrap();
    assert_eq!(
        drain(&mut f),
        [Ok(1), Ok(2), Err(Reset::Gap { first_missing: 3, last_missing: 3 }), Ok(4), Ok(5), Ok(6)]
    );
}

#[test]
fn a_recreated_directory_is_an_epoch_reset_then_the_new_journal_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut j, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    append_n(&mut j, 10);
    let old = j.epoch();
    j.close().unwrap();
    let mut f = Follower::new(Reader::open(&dir).unwrap(), 0).unwrap();
    assert_eq!(drain(&mut f).len(), 10);

    // Recreated and grown past the cursor: a follower that only compared
    // seqs would go on at 11 of the new journal.
    std::fs::remove_dir_all(&dir).unwrap();
    let (mut j, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    append_n(&mut j, 15);
    let new = j.epoch();
    let got = drain(&mut f);
    assert_eq!(got[0], Err(Reset::Epoch { old, new, earliest: 1 }));
    assert_eq!(got[1..], (1..=15).map(Ok).collect::<Vec<_>>()[..]);
    assert_eq!(f.epoch(), new);

    // Recreated but not yet past the cursor: the same reset.
    j.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let (mut j, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    append_n(&mut j, 2);
    let got = drain(&mut f);
    assert!(matches!(got[0], Err(Reset::Epoch { old, earliest: 1, .. }) if old == new), "{got:?}");
    assert_eq!(got[1..], [Ok(1), Ok(2)]);
    j.close().unwrap();
}

/// A follower at 3 of a journal with no writer and no clean close (its
/// watermark gone) whose segments are moved out for a moment and back (a
/// restore, or a recreation under way): `NoSegments` while they are out
/// (as for a follower started then: `events tail` waits, a replicator
/// retries), then the next record, with no reset. It reset `Ahead` (to go
/// on with the earliest: the records it had again), where the façade's
/// streams wait.
#[test]
fn a_journal_with_no_segment_for_a_moment_is_no_reason_to_reset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    append_n(&mut j, 4);
    j.close().unwrap();
    std::fs::remove_file(dir.path().join(events_journal::WATERMARK_FILE)).unwrap();
    let mut f = Follower::new(Reader::open(dir.path()).unwrap(), 3).unwrap();
    let aside = tempfile::tempdir().unwrap();
    let moved: Vec<_> = segments(dir.path())
        .into_iter()
        .map(|seg| {
            let to = aside.path().join(seg.file_name().unwrap());
            std::fs::rename(&seg, &to).unwrap();
            (to, seg)
        })
        .collect();
    let out = f.next();
    assert!(matches!(out, Err(events_journal::JournalError::NoSegments { .. })), "{out:?}");
    for (from, to) in moved {
        std::fs::rename(from, to).unwrap();
    }
    assert_eq!(drain(&mut f), [Ok(4)]);
}

/// A segment file of another journal copied into the directory of a
/// running writer, named past its active segment (a restore or an rsync
/// gone wrong): reads stop at what the writer's watermark names, so the
/// journal is still the writer's. A caught-up follower had taken the stray
/// file's header for the journal's epoch: an `Epoch` reset, then the
/// writer's records again from the first with another reset, and so on
/// at every poll. It now stays caught up, and goes on with the writer's
/// next record; the epoch `Reader::epoch` and its header say are the
/// writer's. Closed cleanly, the same.
#[test]
fn a_stray_segment_of_another_journal_past_the_writers_is_not_a_new_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    append_n(&mut j, 5);
    let reader = Reader::open(dir.path()).unwrap();
    let epoch = reader.epoch().unwrap();
    let mut f = Follower::new(reader, 0).unwrap();
    assert_eq!(drain(&mut f), (1..=5).map(Ok).collect::<Vec<_>>());

    let stray =
        events_journal::format::SegmentHeader { epoch: epoch ^ 1, first_seq: 1000, created_at: 1, codec_tag: 77 };
    std::fs::write(dir.path().join(format!("{:020}.seg", 1000)), stray.encode()).unwrap();
    for _ in 0..5 {
        let step = f.next().unwrap();
        assert!(step.is_none(), "a caught-up follower yielded {step:?} for a stray file");
    }
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.epoch().unwrap(), epoch);
    assert_eq!(reader.newest_header().unwrap().1.codec_tag, 0);
    append_n(&mut j, 1);
    assert_eq!(drain(&mut f), [Ok(6)]);
    j.close().unwrap();
    assert_eq!(drain(&mut f), []);
    assert_eq!(Reader::open(dir.path()).unwrap().epoch().unwrap(), epoch);

    // A writer opening the journal again (its watermark `Recovering`, held
    // at that record's fdatasync, the open's third watermark step), as one
    // restarted in a loop beside the stray file does: still the journal's
    // epoch, no reset.
    use events_journal::fault::{Fault, FaultPlan, Step};
    let plan = FaultPlan::new();
    plan.inject(Step::Watermark, 2, Fault::Hold);
    let opening = std::thread::spawn({
        let (dir, plan) = (dir.path().to_path_buf(), plan.clone());
        move || Journal::open(&dir, JournalOptions::new().faults(plan)).map(drop)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while plan.count(Step::Watermark) < 3 {
        assert!(std::time::Instant::now() < deadline && !opening.is_finished(), "the open never wrote `Recovering`");
        std::thread::yield_now();
    }
    let reader = Reader::open(dir.path()).unwrap();
    let recovering = reader.watermark().unwrap().map(|wm| wm.state);
    let (seen, step) = (reader.epoch(), f.next());
    plan.release();
    let _ = opening.join().unwrap();
    assert_eq!(recovering, Some(events_journal::WriterState::Recovering));
    assert_eq!(seen.unwrap(), epoch, "an opening writer's journal read as the stray's");
    assert!(step.unwrap().is_none(), "a caught-up follower reset while a writer opened");
}

/// A FIFO standing where the segment a cleanly closed journal's watermark
/// names should be (a bad restore): the journal's epoch is read from the
/// listing (which keeps regular files alone), and the call returns. The
/// header of the segment the watermark names is opened by name, and a
/// plain open of a FIFO with no writer waits for ever.
#[test]
fn a_fifo_where_the_watermarks_segment_should_be_holds_no_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    append_n(&mut j, 3);
    j.close().unwrap();
    let segment = dir.path().join(format!("{:020}.seg", 1));
    std::fs::remove_file(&segment).unwrap();
    let c = std::ffi::CString::new(segment.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || tx.send(Reader::open(&path).unwrap().epoch().map_err(|e| e.to_string())));
    // A bound on a hang, not a timing: the call takes microseconds.
    let epoch = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the reader waits on the FIFO");
    assert!(epoch.as_ref().is_err_and(|e| e.contains("no journal segments")), "no regular segment is left: {epoch:?}");
}
