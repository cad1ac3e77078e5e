//! Retention waits for registered consumers, within a bound: a consumer
//! behind keeps every segment it needs while that stays within
//! `JournalOptions::consumer_limit`; past the limit it is cut loose
//! (counted, segments removed, its next read is `ReadError::Expired`). A
//! consumer that commits progress releases segments at the next pass; one
//! of another epoch, one with an unreadable checkpoint, and any consumer
//! under `pin_for_consumers(false)` pin nothing; `Retention::unlimited()`
//! pins forever; retention at open honours the pin too.

mod support;

use std::path::Path;

use events_journal::{
    ConsumerFile, Journal, JournalOptions, ReadError, Reader, Retention, SyncPolicy, consumer_path, delete_consumer,
};
use support::{assert_records, payload, read_all, segments, ts};

/// `Retention::segments(2)`, consumers pinned up to 6 segments.
fn options() -> JournalOptions {
    JournalOptions::new()
        .sync(SyncPolicy::Never)
        .retention(Retention::segments(2))
        .consumer_limit(Retention::segments(6))
}

/// Appends one record and seals its segment: every record gets a segment.
fn append_and_roll(j: &mut Journal) -> u64 {
    let seq = j.next_seq();
    assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    j.roll().unwrap();
    seq
}

/// [`append_and_roll`] `n` times.
fn append_and_roll_times(j: &mut Journal, n: usize) {
    for _ in 0..n {
        append_and_roll(j);
    }
}

/// `(segments, pinned_segments, consumers_cut_loose)`.
fn pin_stats(j: &Journal) -> (usize, usize, u64) {
    let stats = j.stats();
    (stats.segments, stats.pinned_segments, stats.consumers_cut_loose)
}

fn open_consumer(dir: &Path, name: &str, epoch: u64) -> ConsumerFile {
    ConsumerFile::open(dir, name, epoch).unwrap().0
}

#[test]
fn a_consumer_within_the_limit_keeps_every_segment_then_is_cut_loose() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options()).unwrap();
    let c = open_consumer(dir.path(), "slow", j.epoch());
    assert_eq!(c.checkpoint().seq, 0);
    // Records 1..=5, one per segment, plus the empty active segment: 6
    // segments, the limit. Retention alone would keep 2.
    for k in 1..=5u64 {
        append_and_roll(&mut j);
        let stats = j.stats();
        assert_eq!((stats.segments, stats.pruned), (k as usize + 1, 0), "after record {k}: {stats:?}");
        assert_eq!(stats.pinned_segments, k as usize - 1, "after record {k}");
        assert_eq!(stats.consumers_cut_loose, 0);
    }
    assert_eq!(j.first_seq(), 1);
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), c.checkpoint().seq), 1, 5);

    // A 7th segment: keeping what the consumer needs would exceed the
    // limit, so retention applies alone and the consumer is cut loose.
    append_and_roll(&mut j);
    let stats = j.stats();
    assert_eq!((stats.segments, stats.pruned, stats.pinned_segments), (2, 5, 0), "{stats:?}");
    assert_eq!(stats.consumers_cut_loose, 1);
    assert_eq!(segments(dir.path()).len(), 2);
    assert_eq!(j.first_seq(), 6);
    let err = Reader::open(dir.path()).unwrap().read_since(c.checkpoint().seq).err().unwrap();
    assert!(matches!(err, ReadError::Expired { earliest: 6 }), "{err}");

    // Already expired, it pins nothing and is not counted again.
    append_and_roll_times(&mut j, 3);
    assert_eq!(pin_stats(&j), (2, 0, 1));
}

#[test]
fn committed_progress_releases_segments_at_the_next_prune() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options()).unwrap();
    let epoch = j.epoch();
    let mut c = open_consumer(dir.path(), "worker", epoch);
    append_and_roll_times(&mut j, 4);
    assert_eq!(pin_stats(&j), (5, 3, 0));

    // Done with record 1: its segment goes, the ones holding 2.. stay.
    c.commit(1, epoch).unwrap();
    assert_eq!(j.prune().unwrap(), 1);
    assert_eq!((j.first_seq(), j.stats().pinned_segments), (2, 2));
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 1), 2, 4);

    // Caught up: retention applies alone.
    c.commit(4, epoch).unwrap();
    assert_eq!(j.prune().unwrap(), 2);
    assert_eq!(pin_stats(&j), (2, 0, 0));
    assert_eq!(Reader::open(dir.path()).unwrap().read_since(4).unwrap().count(), 0);

    // Deleting the consumer releases everything it held.
    c.commit(4, epoch).unwrap();
    append_and_roll_times(&mut j, 3);
    assert_eq!(j.stats().segments, 4, "the consumer at 4 pins the segments of 5, 6 and 7");
    drop(c); // the consumer stopped: it is no longer in use
    assert!(delete_consumer(dir.path(), "worker").unwrap());
    assert_eq!(j.prune().unwrap(), 2);
    assert_eq!(j.stats().consumers_cut_loose, 0, "a deleted consumer is not cut loose");
}

#[test]
fn consumers_of_another_epoch_unreadable_ones_and_disabled_pins_hold_nothing() {
    // Another epoch, and an unreadable checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options()).unwrap();
    let mut other = open_consumer(dir.path(), "other-epoch", j.epoch() ^ 1);
    other.commit(0, j.epoch() ^ 1).unwrap();
    open_consumer(dir.path(), "broken", j.epoch());
    std::fs::write(consumer_path(dir.path(), "broken").unwrap(), [0u8; 80]).unwrap();
    append_and_roll_times(&mut j, 5);
    assert_eq!(pin_stats(&j), (2, 0, 0));

    // pin_for_consumers(false): a consumer of this epoch at 0 holds nothing.
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options().pin_for_consumers(false)).unwrap();
    open_consumer(dir.path(), "ignored", j.epoch());
    append_and_roll_times(&mut j, 5);
    assert_eq!(pin_stats(&j), (2, 0, 0));
}

#[test]
fn an_unlimited_consumer_limit_pins_forever_and_open_honours_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let unlimited = || options().consumer_limit(Retention::unlimited());
    let (mut j, _) = Journal::open(dir.path(), unlimited()).unwrap();
    let epoch = j.epoch();
    let mut c = open_consumer(dir.path(), "forever", epoch);
    append_and_roll_times(&mut j, 20);
    assert_eq!(pin_stats(&j), (21, 19, 0));
    j.close().unwrap();

    // Retention at open honours the pin: everything is still there.
    let (j, report) = Journal::open(dir.path(), unlimited()).unwrap();
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    assert_eq!(j.stats().segments, 21);
    drop(j);
    // With a tighter limit, the open itself cuts the consumer loose.
    c.commit(10, epoch).unwrap();
    let (j, report) = Journal::open(dir.path(), options()).unwrap();
    assert_eq!(report.pruned.len(), 19);
    assert_eq!((j.stats().consumers_cut_loose, j.first_seq()), (1, 20));
    let err = Reader::open(dir.path()).unwrap().read_since(10).err().unwrap();
    assert!(matches!(err, ReadError::Expired { earliest: 20 }), "{err}");
}

/// The pin fails safe: while the consumers cannot be listed (here a file
/// stands where the `consumers` directory was; an `EMFILE` in a busy
/// process does the same), a pass keeps what the consumer limit allows,
/// as for a consumer at the start, and logs why. It had pinned nothing:
/// the segments the consumer still needed were removed, and it was not
/// even counted as cut loose.
#[test]
fn consumers_that_cannot_be_read_keep_what_the_limit_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options()).unwrap();
    let c = open_consumer(dir.path(), "slow", j.epoch());
    append_and_roll_times(&mut j, 3);
    assert_eq!(pin_stats(&j), (4, 2, 0));
    let consumers = dir.path().join(events_journal::CONSUMERS_DIR);
    let away = dir.path().join("consumers.away");
    std::fs::rename(&consumers, &away).unwrap();
    std::fs::write(&consumers, b"").unwrap();
    append_and_roll(&mut j);
    assert_eq!(pin_stats(&j), (5, 3, 0), "every segment kept, within the limit");
    append_and_roll_times(&mut j, 2);
    assert_eq!(pin_stats(&j), (6, 4, 0), "past the limit: what the limit demands is removed");
    // Readable again: the consumer (at seq 0, so already expired) pins nothing.
    std::fs::remove_file(&consumers).unwrap();
    std::fs::rename(&away, &consumers).unwrap();
    append_and_roll(&mut j);
    assert_eq!(pin_stats(&j), (2, 0, 0));
    assert_eq!(c.checkpoint().seq, 0);
}

/// A consumer at 1 (records 1..=4 one per segment, `Retention::segments(2)`)
/// commits 3; its `fdatasync` is held, and a retention pass runs meanwhile,
/// when the new slot is in the page cache, read by everyone. The pass pins
/// from 1, the checkpoint synced: the file goes back to it when the commit
/// fails or the power is lost. `fails`: the `fdatasync` then fails (EIO);
/// else the power is lost before it returns (the file's synced contents
/// are put back, the journal opened again). Either way the consumer reads
/// on from 2. Pinned on 3, the pass removed 2 and 3, and the next pass,
/// finding 1 expired, would have pinned nothing.
fn a_pass_during_a_commits_fdatasync_pins_the_synced_checkpoint(fails: bool) {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options()).unwrap();
    let plan = FaultPlan::new();
    let (mut c, _) = ConsumerFile::open_with_faults(dir.path(), "c", j.epoch(), plan.clone()).unwrap();
    c.commit(1, j.epoch()).unwrap();
    append_and_roll_times(&mut j, 4);
    assert_eq!((j.first_seq(), j.stats().segments), (2, 4), "pinned from 1's next segment");
    let path = consumer_path(dir.path(), "c").unwrap();
    let synced = plan.synced_contents(&path).expect("the first commit's fdatasync");
    // Each commit is a write and a sync (steps 0 and 1 for the first),
    // held until the pass is done.
    plan.inject(Step::Checkpoint, 3, if fails { Fault::HoldErrno(libc::EIO) } else { Fault::Hold });
    let epoch = j.epoch();
    let commit = std::thread::spawn(move || c.commit(3, epoch).map(|_| c));
    in_its_fdatasync(&plan);
    assert_eq!(list_consumers_seq(dir.path()), 3, "the slot in flight is read");
    j.prune().unwrap();
    assert_eq!(j.first_seq(), 2, "the pass pins from the synced checkpoint");
    assert!(!commit.is_finished(), "the pass ran during the fdatasync");
    plan.release();
    let committed = commit.join().unwrap();
    assert_eq!(committed.is_err(), fails);
    drop(committed);
    if !fails {
        // The power is lost: the file holds what its last fdatasync covered.
        drop(j);
        std::fs::write(&path, &synced).unwrap();
        j = Journal::open(dir.path(), options()).unwrap().0;
    }
    j.prune().unwrap();
    let (_, checkpoint) = ConsumerFile::open(dir.path(), "c", j.epoch()).unwrap();
    assert_eq!(checkpoint.seq, 1);
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), checkpoint.seq), 2, 4);
}

/// Waits until the second commit of a consumer opened with `plan` is in
/// its `fdatasync` (step 3 of `Step::Checkpoint`, counted as it is reached,
/// before it is held): its slot is written.
fn in_its_fdatasync(plan: &events_journal::fault::FaultPlan) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while plan.count(events_journal::fault::Step::Checkpoint) < 4 {
        assert!(std::time::Instant::now() < deadline, "the commit never reached its fdatasync");
        std::thread::yield_now();
    }
}

/// The seq `list_consumers` reads for the one consumer.
fn list_consumers_seq(dir: &Path) -> u64 {
    events_journal::list_consumers(dir).unwrap()[0].checkpoint.as_ref().unwrap().seq
}

#[test]
fn a_pass_during_a_commits_failing_fdatasync_pins_the_synced_checkpoint() {
    a_pass_during_a_commits_fdatasync_pins_the_synced_checkpoint(true);
}

#[test]
fn a_pass_during_a_commits_fdatasync_cut_by_a_power_loss_pins_the_synced_checkpoint() {
    a_pass_during_a_commits_fdatasync_pins_the_synced_checkpoint(false);
}

/// A consumer at 3 commits a rewind to 1, below the earliest retained seq
/// (4), and its `fdatasync` fails (EIO) after a retention pass ran during
/// it: the pass still pins from 3, which the file goes back to, and the
/// consumer reads on from 4. Judged by the slot in flight alone, 1 had
/// expired, the consumer pinned nothing, and the pass removed 4 and 5.
#[test]
fn a_pass_during_a_failing_rewind_below_the_earliest_pins_the_synced_checkpoint() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), options()).unwrap();
    let plan = FaultPlan::new();
    let (mut c, _) = ConsumerFile::open_with_faults(dir.path(), "c", j.epoch(), plan.clone()).unwrap();
    c.commit(3, j.epoch()).unwrap();
    append_and_roll_times(&mut j, 6);
    assert_eq!(j.first_seq(), 4, "pinned from 3's next segment");
    // Each commit is a write and a sync (steps 0 and 1 for the first),
    // held until the pass is done.
    plan.inject(Step::Checkpoint, 3, Fault::HoldErrno(libc::EIO));
    let epoch = j.epoch();
    let commit = std::thread::spawn(move || c.commit(1, epoch).map(drop));
    in_its_fdatasync(&plan);
    assert_eq!(list_consumers_seq(dir.path()), 1, "the slot in flight is read");
    j.prune().unwrap();
    assert_eq!(j.first_seq(), 4, "the pass pins from the synced checkpoint");
    assert!(!commit.is_finished(), "the pass ran during the fdatasync");
    plan.release();
    assert!(commit.join().unwrap().is_err());
    let (_, checkpoint) = ConsumerFile::open(dir.path(), "c", j.epoch()).unwrap();
    assert_eq!(checkpoint.seq, 3);
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), checkpoint.seq), 4, 6);
}
