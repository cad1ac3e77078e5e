//! Retention stays out of the write path: a segment that cannot be removed
//! (`EIO` through the seam) never fails an append or a roll and never
//! poisons the writer; it is counted in `JournalStats::prune_errors`, kept,
//! and removed by the next roll or `prune`, while an explicit `prune` does
//! report it. Under every sync policy a roll takes pruned segments out of
//! the journal at once (renamed `.removed`, so no reader finds them) and the
//! sealer thread unlinks them; a crash in between leaves files the next
//! open unlinks, which no reader ever reads. And `Retention::age` works on
//! an idle journal: `prune()` removes the sealed segments that aged out
//! without any roll, and never the active segment.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, ReadError, Reader, Retention, SyncPolicy};
use support::{assert_records, payload, read_all, segments, ts};

fn append_until_roll(j: &mut Journal) {
    let rolls = j.stats().rolls;
    while j.stats().rolls == rolls {
        let seq = j.next_seq();
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

fn options(plan: &FaultPlan, retention: Retention, sync: SyncPolicy) -> JournalOptions {
    JournalOptions::new().segment_bytes(1024).retention(retention).sync(sync).faults(plan.clone())
}

fn names(dir: &Path) -> Vec<String> {
    segments(dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn a_failed_removal_never_fails_an_append_or_a_roll_and_is_retried() {
    a_failed_removal_is_counted_kept_and_retried(SyncPolicy::Always);
    a_failed_removal_is_counted_kept_and_retried(SyncPolicy::Never);
}

fn a_failed_removal_is_counted_kept_and_retried(sync: SyncPolicy) {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, Retention::segments(2), sync)).unwrap();
    append_until_roll(&mut j);
    assert_eq!(segments(tmp.path()).len(), 2);
    let oldest = segments(tmp.path())[0].clone();

    // The roll an append triggers wants to remove the oldest segment: EIO.
    plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
    append_until_roll(&mut j);
    assert_eq!(plan.fired(), [(Step::PruneRemove, Fault::Errno(libc::EIO))]);
    let stats = j.stats();
    assert_eq!((stats.prune_errors, stats.pruned), (1, 0), "{stats:?}");
    assert!(oldest.exists(), "the segment that could not be removed is kept");
    assert_eq!(segments(tmp.path()).len(), 3);
    // Not poisoned: appends go on, and every record is still readable.
    let seq = j.next_seq();
    assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, seq);

    // An explicit roll meets the same failure: it still succeeds.
    plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
    j.roll().unwrap();
    assert_eq!(j.stats().prune_errors, 2);
    assert!(oldest.exists());

    // An explicit prune reports it, naming the segment, and still does not
    // poison; so does the deferred prune of the façade's timer (its rename).
    for (errors, deferred) in [(3, false), (4, true)] {
        plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
        let err = if deferred { j.prune_deferred() } else { j.prune() }.unwrap_err();
        assert!(
            matches!(&err, JournalError::Io { op: "remove segment", path, source }
                if *path == oldest && source.raw_os_error() == Some(libc::EIO)),
            "{err}"
        );
        assert_eq!(j.stats().prune_errors, errors);
        assert!(oldest.exists());
    }

    // Retried: the next prune (or roll) removes everything retention wants gone.
    assert_eq!(j.prune().unwrap(), 2);
    assert!(!oldest.exists());
    assert_eq!(segments(tmp.path()).len(), 2);
    append_until_roll(&mut j);
    assert_eq!(segments(tmp.path()).len(), 2);
    let last = j.last_seq();
    j.close().unwrap();
    let reader = Reader::open(tmp.path()).unwrap();
    let first = reader.first_seq().unwrap();
    assert_records(&read_all(&reader, first - 1), first, last);
}

#[test]
fn a_failed_directory_fsync_after_removal_is_counted_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) =
        Journal::open(tmp.path(), options(&FaultPlan::new(), Retention::unlimited(), SyncPolicy::Always)).unwrap();
    for _ in 0..2 {
        let seq = j.next_seq();
        j.append(ts(seq), payload(seq)).unwrap();
        j.roll().unwrap();
    }
    j.close().unwrap();
    // Reopened keeping one segment: the open's retention removes the two
    // sealed ones in the call, and the directory fsync after them fails
    // (an open of a clean journal fsyncs the directory once before, for
    // the names a killed writer may have left unsynced).
    let plan = FaultPlan::new();
    plan.inject(Step::DirSync, 1, Fault::Errno(libc::EIO));
    let (mut j, report) =
        Journal::open(tmp.path(), options(&plan, Retention::segments(1), SyncPolicy::Always)).unwrap();
    assert_eq!(plan.fired(), [(Step::DirSync, Fault::Errno(libc::EIO))]);
    assert_eq!(report.pruned.len(), 2);
    assert_eq!((j.stats().prune_errors, j.stats().pruned), (1, 2));
    let seq = j.next_seq();
    assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    j.close().unwrap();
}

/// Sealed segments age out of an idle journal by `prune()` (or
/// `prune_deferred()`, with `deferred`) alone; the active segment never
/// does, however old.
fn age_prunes_an_idle_journal(sync: SyncPolicy, deferred: bool) {
    let prune = |j: &mut Journal| if deferred { j.prune_deferred() } else { j.prune() };
    // Long enough for the fills' fsyncs (about 8 under `Always`) on a
    // loaded machine: the segments must still be young at the first look.
    const AGE: Duration = Duration::from_secs(1);
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let opts = JournalOptions::new().retention(Retention::age(AGE)).sync(sync).faults(plan.clone());
    let (mut j, _) = Journal::open(tmp.path(), opts).unwrap();
    for _ in 0..2 {
        let seq = j.next_seq();
        j.append(ts(seq), payload(seq)).unwrap();
        j.roll().unwrap();
    }
    let seq = j.next_seq();
    j.append(ts(seq), payload(seq)).unwrap();
    let sealed_at = Instant::now();
    assert_eq!(names(tmp.path()).len(), 3, "young sealed segments are kept by the rolls");
    assert_eq!(prune(&mut j).unwrap(), 0, "nothing aged out yet");

    // Idle from here: no append, no roll. Time passes (the policy is about
    // wall-clock age, so this waits for the clock, not for another thread).
    std::thread::sleep(AGE.saturating_sub(sealed_at.elapsed()) + Duration::from_millis(50));
    let dir_syncs = plan.count(Step::DirSync);
    assert_eq!(prune(&mut j).unwrap(), 2, "both sealed segments aged out");
    // Deferred, the directory fsync is the sealer thread's (outside the seam).
    assert_eq!(plan.count(Step::DirSync), dir_syncs + u64::from(!deferred), "{sync:?}");
    // Out of the journal when the call returns (deferred: renamed, unlinked by the sealer thread).
    assert_eq!(names(tmp.path()), [format!("{:020}.seg", 3)]);
    assert_eq!(j.stats().pruned, 2);
    j.sync().unwrap();
    assert_eq!(removed(tmp.path()), Vec::<String>::new(), "{sync:?}: unlinked once `sync` returns");

    // The active segment is older than the policy too, and stays.
    std::thread::sleep(AGE);
    assert_eq!(prune(&mut j).unwrap(), 0);
    assert_eq!(names(tmp.path()), [format!("{:020}.seg", 3)]);
    let reader = Reader::open(tmp.path()).unwrap();
    assert!(matches!(reader.read_since(0), Err(ReadError::Expired { earliest: 3 })));
    assert_records(&read_all(&reader, 2), 3, 3);
    assert_eq!(j.append(ts(4), payload(4)).unwrap(), 4);
    j.close().unwrap();
}

#[test]
fn age_retention_prunes_an_idle_journal_and_never_the_active_segment() {
    age_prunes_an_idle_journal(SyncPolicy::Always, false);
    // The Interval thread only syncs; it neither prunes nor stops an explicit prune.
    age_prunes_an_idle_journal(SyncPolicy::Interval(Duration::from_millis(5)), false);
    // As the façade's retention timer prunes: the unlinks on the sealer thread.
    age_prunes_an_idle_journal(SyncPolicy::Always, true);
}

/// The `.removed` files of a directory.
fn removed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(events_journal::REMOVED_SUFFIX))
        .collect();
    names.sort();
    names
}

#[test]
fn a_roll_takes_pruned_segments_out_at_once_and_the_sealer_unlinks_them() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_secs(3600)), SyncPolicy::Always] {
        a_roll_takes_pruned_segments_out(sync);
    }
}

/// Under `sync`, a roll's retention renames in the call and leaves the
/// unlinks and fsyncs to the sealer thread.
fn a_roll_takes_pruned_segments_out(sync: SyncPolicy) {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, Retention::segments(2), sync)).unwrap();
    for rolls in 1..=4 {
        let dir_syncs = plan.count(Step::DirSync);
        append_until_roll(&mut j);
        // The writer's thread fsynced the directory for the new segment
        // only: retention's fsyncs are the sealer's.
        assert_eq!(plan.count(Step::DirSync), dir_syncs + 1, "{sync:?}: after roll {rolls}");
        // No waiting for the sealer: the journal, its files and every new
        // reader agree at once on what retention kept.
        let first = j.first_seq();
        assert_eq!(names(tmp.path()).len(), 2, "{sync:?}: after roll {rolls}");
        assert_eq!(names(tmp.path())[0], format!("{first:020}.seg"));
        let reader = Reader::open(tmp.path()).unwrap();
        assert_eq!(reader.first_seq().unwrap(), first);
        if first > 1 {
            assert!(matches!(reader.read_since(0), Err(ReadError::Expired { earliest }) if earliest == first));
        }
        assert_records(&read_all(&reader, first - 1), first, j.last_seq());
    }
    // `sync` waits for the sealer, which has unlinked what the rolls took out.
    j.sync().unwrap();
    assert_eq!(removed(tmp.path()), Vec::<String>::new());
    let stats = j.stats();
    assert_eq!((stats.pruned, stats.prune_errors), (3, 0), "{sync:?}: {stats:?}");
    j.close().unwrap();
}

#[test]
fn an_unlink_the_sealer_could_not_do_is_counted_and_retried_by_the_next_pass() {
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(tmp.path(), options(&plan, Retention::segments(2), sync)).unwrap();
        plan.inject(Step::TidyUnlink, 0, Fault::Errno(libc::EIO));
        append_until_roll(&mut j);
        // This roll's retention renames the oldest segment out; the sealer's unlink of it fails.
        append_until_roll(&mut j);
        j.sync().unwrap(); // waits for the sealer's jobs
        assert_eq!(plan.fired(), [(Step::TidyUnlink, Fault::Errno(libc::EIO))], "{sync:?}");
        assert_eq!(removed(tmp.path()).len(), 1, "{sync:?}");
        assert_eq!((j.stats().pruned, j.stats().prune_errors), (1, 1), "{sync:?}");
        // Out of the journal all the same: no reader finds it.
        let first = j.first_seq();
        assert_eq!(Reader::open(tmp.path()).unwrap().first_seq().unwrap(), first, "{sync:?}");
        // The next pass (the façade's timer), which removes nothing, retries it.
        assert_eq!(j.prune_deferred().unwrap(), 0);
        j.sync().unwrap();
        assert_eq!(removed(tmp.path()), Vec::<String>::new(), "{sync:?}");
        assert_eq!((j.stats().pruned, j.stats().prune_errors), (1, 1), "{sync:?}");
        assert_eq!(plan.count(Step::TidyUnlink), 2, "{sync:?}");
        j.close().unwrap();
    }
}

#[test]
fn a_pruned_segment_a_crash_left_behind_is_never_read_and_the_next_open_unlinks_it() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, Retention::unlimited(), SyncPolicy::Never)).unwrap();
    append_until_roll(&mut j);
    append_until_roll(&mut j);
    let last = j.last_seq();
    j.close().unwrap();
    // What a process killed between a roll's rename and the sealer's unlink leaves.
    let oldest = segments(tmp.path())[0].clone();
    let second = names(tmp.path())[1].trim_end_matches(".seg").parse::<u64>().unwrap();
    let mut renamed = oldest.clone().into_os_string();
    renamed.push(events_journal::REMOVED_SUFFIX);
    std::fs::rename(&oldest, &renamed).unwrap();

    let reader = Reader::open(tmp.path()).unwrap();
    assert!(matches!(reader.read_since(0), Err(ReadError::Expired { earliest }) if earliest == second));
    assert_records(&read_all(&reader, second - 1), second, last);

    let (mut j, report) = Journal::open(tmp.path(), options(&plan, Retention::unlimited(), SyncPolicy::Never)).unwrap();
    assert_eq!(report.ignored, Vec::<std::path::PathBuf>::new(), "not a stranger: no warning, not listed");
    assert_eq!(removed(tmp.path()), Vec::<String>::new(), "unlinked at open");
    assert_eq!((j.first_seq(), j.last_seq()), (second, last));
    // One left while the journal is open (an earlier `prune_deferred` whose
    // unlink failed, say): every `prune` unlinks it too.
    std::fs::write(&renamed, b"a segment taken out").unwrap();
    assert_eq!(j.prune().unwrap(), 0);
    assert_eq!(removed(tmp.path()), Vec::<String>::new(), "unlinked by prune");
    j.close().unwrap();
    assert!(events_journal::verify(tmp.path()).unwrap().is_ok());
}

/// A roll whose watermark write fails (`EIO`), under `Retention::segments(1)`:
/// no retention pass (the roll's own, nor an explicit `prune`, as a feed's
/// timer runs on an idle feed, whose own retry of the watermark fails too)
/// removes the segment the readers' watermark still names, so readers keep
/// reading; the next pass, whose retry succeeds, removes it. The passes had
/// removed it: every reader failed ("the watermark names a missing
/// segment") until the next publish.
#[test]
fn a_roll_whose_watermark_write_failed_removes_nothing_readers_need() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan, Retention::segments(1), SyncPolicy::Never)).unwrap();
    append_until_roll(&mut j);
    let last = j.next_seq() - 1;
    // The roll's watermark write, and its retention pass's retry of it.
    let writes = plan.count(Step::Watermark);
    plan.inject(Step::Watermark, writes, Fault::Errno(libc::EIO));
    plan.inject(Step::Watermark, writes + 1, Fault::Errno(libc::EIO));
    j.roll().unwrap();
    assert_eq!(j.stats().watermark_errors, 2);
    let reader = Reader::open(dir.path()).unwrap();
    let records = reader.read_since(reader.first_seq().unwrap() - 1).unwrap();
    let seqs: Vec<u64> = records.map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs.last(), Some(&last), "readers read on from the segment the watermark names");
    plan.inject_next(Step::Watermark, Fault::Errno(libc::EIO));
    assert_eq!(j.prune().unwrap(), 0, "an explicit pass keeps it too, its retry failing");
    assert_eq!(segments(dir.path()).len(), 2, "kept: {:?}", names(dir.path()));
    assert!(reader.read_since(reader.first_seq().unwrap() - 1).is_ok());
    assert_eq!(j.prune().unwrap(), 1, "once the retry writes the watermark, the pass removes it");
    assert_eq!(segments(dir.path()).len(), 1, "{:?}", names(dir.path()));
    assert!(reader.read_since(reader.first_seq().unwrap() - 1).is_ok(), "readers follow the new watermark");
    j.close().unwrap();
}
