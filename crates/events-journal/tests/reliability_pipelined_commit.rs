//! Pipelined group commit (`Journal::write_batch`, `start_sync`,
//! `poll_synced`, `wait_synced`) under the fault model, with power loss:
//!
//! * a scripted run that writes while the previous batch's `fdatasync` is in
//!   flight, rolls, syncs and appends in between, is repeated with a crash
//!   (before, after, torn) or an `EIO` at every occurrence of every step it
//!   reaches. After each failure the "machine loses power": every segment is
//!   cut back to the length it had when its last completed `fdatasync`
//!   started (`FaultPlan::synced_len`), the most a power loss may take. The
//!   reopened journal must hold every record up to the highest
//!   `acked_seq` the run ever reported, with its payload, then at most a
//!   prefix of what was written after it, and `verify` must be clean;
//! * a sync in flight covers only what was written before it started, and
//!   neither `acked_seq` nor a reader moves before it completed;
//! * a failed pipelined `fdatasync` poisons the writer and leaves nothing
//!   after the last acknowledged record, for this process's readers too.

mod support;

use std::path::Path;
use std::task::{Context, Waker};
use std::time::Duration;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, Reader, Retention, SyncPolicy, verify};
use support::{lose_power, payload, read_all, segments, ts};

fn options(plan: &FaultPlan) -> JournalOptions {
    JournalOptions::new()
        .sync(SyncPolicy::Always)
        .segment_bytes(2048)
        .retention(Retention::unlimited())
        .faults(plan.clone())
}

/// A fresh journal with its plan.
fn fresh() -> (tempfile::TempDir, FaultPlan, Journal) {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (j, _) = Journal::open(tmp.path(), options(&plan)).unwrap();
    (tmp, plan, j)
}

/// Where `dir` is moved while another directory takes its place.
fn away(dir: &Path) -> std::path::PathBuf {
    dir.with_extension("away")
}

/// The last seq of the journal in `dir` once reopened by the next process.
fn last_seq_after_reopen(dir: &Path, j: Journal) -> u64 {
    drop(j);
    Journal::open(dir, options(&FaultPlan::new())).unwrap().0.last_seq()
}

/// Writes `n` records after `next` as one pipelined batch.
fn write(j: &mut Journal, next: &mut u64, n: u64) -> Result<(), JournalError> {
    let seqs = *next..*next + n;
    let range = j.write_batch(seqs.clone().map(|s| (ts(s), payload(s))))?;
    assert_eq!((*range.start(), range.end() + 1), (seqs.start, seqs.end));
    *next += n;
    Ok(())
}

/// The script: pipelined batches (each written while the previous one's
/// fdatasync may still run), collected by polling or by waiting, with an
/// ordinary append, an explicit sync and rolls in between. Reports the
/// highest acknowledged seq it saw through `acked`, even when it fails.
fn script(j: &mut Journal, acked: &mut u64) -> Result<(), JournalError> {
    let mut next = j.next_seq();
    let mut cx = Context::from_waker(Waker::noop());
    for round in 0..16u64 {
        write(j, &mut next, 1 + round % 4)?;
        j.start_sync()?;
        write(j, &mut next, 2)?; // while the sync runs (or just after)
        match round % 4 {
            0 => {
                *acked = (*acked).max(j.wait_synced()?);
            }
            1 => {
                // Polled until done, as the façade's writer does.
                while j.poll_synced(&mut cx).is_pending() {
                    std::thread::yield_now();
                }
                *acked = (*acked).max(j.acked_seq());
                j.start_sync()?;
            }
            2 => {
                let range = j.append_batch([(ts(next), payload(next))])?;
                next += 1;
                assert!(j.acked_seq() >= *range.end(), "an append returned before it was acknowledged");
            }
            _ => j.sync()?,
        }
        *acked = (*acked).max(j.acked_seq());
        assert!(j.acked_seq() <= j.last_seq());
    }
    *acked = (*acked).max(j.wait_synced()?);
    Ok(())
}

/// One run with `fault` at the `nth` occurrence of `step`: true if it fired.
fn run(step: Step, nth: u64, fault: Fault) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = FaultPlan::new();
    plan.inject(step, nth, fault);
    let mut acked = 0;
    let outcome = match Journal::open(dir, options(&plan)) {
        Ok((mut j, _)) => match script(&mut j, &mut acked) {
            Ok(()) => j.close(),
            Err(e) => {
                // As the façade does after a failure: what the sync in
                // flight covers may still be acknowledged.
                let _ = j.wait_synced();
                acked = acked.max(j.acked_seq());
                Err(e)
            }
        },
        Err(e) => Err(e),
    };
    let fired = !plan.fired().is_empty();
    assert!(fired || outcome.is_ok(), "{step:?}#{nth} failed with no fault: {outcome:?}");
    let what = format!("{fault:?} at {step:?}#{nth}");
    if !fault.is_crash() && step != Step::Truncate {
        // The process lived on: it cut back what it refused (unless the
        // cut-back itself was the step that failed), so the files hold
        // exactly the acknowledged records.
        let copy = tempfile::tempdir().unwrap();
        events_testkit::fs::copy_files(dir, copy.path());
        let (j, _) = Journal::open(copy.path(), options(&FaultPlan::new())).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(j.last_seq(), acked, "{what}: refused records came back after a reopen");
    }
    lose_power(dir, &plan);
    let (j, _) = Journal::open(dir, options(&FaultPlan::new())).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    assert!(j.last_seq() >= acked, "{what}: acknowledged up to {acked}, but the journal ends at {}", j.last_seq());
    let records = read_all(&Reader::open(dir).unwrap(), 0);
    assert_eq!(records.len() as u64, j.last_seq(), "{what}: records are not 1..={}", j.last_seq());
    for (i, r) in records.iter().enumerate() {
        assert_eq!((r.seq(), r.payload()), (i as u64 + 1, payload(i as u64 + 1).as_slice()), "{what}");
    }
    let report = verify(dir).unwrap();
    assert!(report.is_ok(), "{what}: verify: {:?}", report.problems);
    fired
}

#[test]
fn nothing_acknowledged_is_lost_to_a_crash_or_power_loss_at_any_step_of_the_pipelined_commit() {
    // How often each step occurs in a run without faults.
    let (tmp, plan, mut j) = fresh();
    let mut acked = 0;
    script(&mut j, &mut acked).unwrap();
    assert_eq!(acked, j.last_seq(), "a clean run acknowledges everything");
    j.close().unwrap();
    assert!(segments(tmp.path()).len() >= 3, "the script should roll");
    assert!(plan.count(Step::AppendSync) >= 16, "the script should pipeline");

    let mut fired = 0;
    let mut runs = 0;
    for step in Step::ALL {
        let faults: &[Fault] = match step {
            Step::AppendWrite | Step::HeaderWrite => {
                &[Fault::CrashBefore, Fault::CrashAfter, Fault::TornWrite(9), Fault::Errno(libc::EIO)]
            }
            _ => &[Fault::CrashBefore, Fault::CrashAfter, Fault::Errno(libc::EIO)],
        };
        for nth in 0..plan.count(step) {
            for &fault in faults {
                runs += 1;
                fired += u64::from(run(step, nth, fault));
            }
        }
    }
    println!("pipelined commit: {runs} runs, {fired} with the fault fired");
    assert!(fired * 10 >= runs * 9, "only {fired} of {runs} faults fired");
}

#[test]
fn a_sync_in_flight_covers_only_what_was_written_before_it_started() {
    let (tmp, plan, mut j) = fresh();
    let reader = Reader::open(tmp.path()).unwrap();
    let mut next = 1;
    write(&mut j, &mut next, 3).unwrap();
    assert!(!j.syncing());
    assert_eq!((j.acked_seq(), j.last_seq()), (0, 3), "written is not acknowledged");
    assert!(read_all(&reader, 0).is_empty(), "a reader saw records no fdatasync covered");

    // Hold the fdatasync until a write has landed while it runs.
    plan.inject_next(Step::AppendSync, Fault::Hold);
    assert!(j.start_sync().unwrap());
    let second = j.start_sync().unwrap();
    let written = write(&mut j, &mut next, 2);
    let mut cx = Context::from_waker(Waker::noop());
    let (pending, acked) = (j.poll_synced(&mut cx).is_pending(), j.acked_seq());
    plan.release(); // before any assertion: the journal's drop joins the held thread
    assert!(!second, "a second sync started while one is in flight");
    written.unwrap();
    assert!(pending, "the held fdatasync cannot be done yet");
    assert_eq!(acked, 0);
    assert_eq!(j.wait_synced().unwrap(), 3, "the sync covers only what was written before it started");
    assert_eq!(read_all(&reader, 0).len(), 3);
    let three = 64 + 3 * 24 + (1..=3).map(|s| payload(s).len() as u64).sum::<u64>();
    assert!(plan.synced_len(&segments(tmp.path())[0]) >= Some(three));

    assert!(j.start_sync().unwrap());
    assert_eq!(j.wait_synced().unwrap(), 5);
    assert!(!j.start_sync().unwrap(), "nothing left to sync");
    support::assert_records(&read_all(&reader, 0), 1, 5);
    j.close().unwrap();
}

#[test]
fn a_failed_write_during_a_sync_keeps_what_the_sync_covers_and_nothing_after() {
    let (tmp, plan, mut j) = fresh();
    let mut next = 1;
    write(&mut j, &mut next, 2).unwrap();
    // In flight until collected, whether or not its fdatasync is done yet.
    j.start_sync().unwrap();
    write(&mut j, &mut next, 1).unwrap(); // not covered by the sync in flight
    plan.inject_next(Step::AppendWrite, Fault::Errno(libc::ENOSPC));
    assert!(write(&mut j, &mut next, 1).is_err());
    assert_eq!(j.wait_synced().unwrap(), 2, "the sync in flight still acknowledges what it covers");
    support::assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 2);
    let last = last_seq_after_reopen(tmp.path(), j);
    assert_eq!(last, 2, "a record written after the sync started, and refused, came back");
}

/// The cut-back after that failed write is fdatasynced (so a power loss
/// cannot undo it), but only once the sync in flight completed: an
/// fdatasync of the same file beside it could be told its write-back error
/// in its place, and the sync then report success over records it did not
/// make durable.
#[test]
fn the_cut_back_beside_a_sync_in_flight_is_synced_after_it() {
    let (_tmp, plan, mut j) = fresh();
    let mut next = 1;
    write(&mut j, &mut next, 2).unwrap();
    // Held until the failed write's cut-back has had its chance to sync.
    plan.inject_next(Step::AppendSync, Fault::Hold);
    j.start_sync().unwrap();
    write(&mut j, &mut next, 1).unwrap();
    plan.inject_next(Step::AppendWrite, Fault::Errno(libc::ENOSPC));
    let cut_syncs = plan.count(Step::TruncateSync);
    let failed = write(&mut j, &mut next, 1).is_err();
    let beside = plan.count(Step::TruncateSync);
    plan.release(); // before any assertion: the journal's drop joins the held thread
    assert!(failed);
    assert_eq!(beside, cut_syncs, "an fdatasync beside the one in flight");
    assert_eq!(j.wait_synced().unwrap(), 2);
    assert_eq!(plan.count(Step::TruncateSync), cut_syncs + 1, "the cut-back synced once the sync completed");
}

#[test]
fn a_failed_pipelined_fdatasync_poisons_the_writer_and_keeps_nothing_unacknowledged() {
    let (tmp, plan, mut j) = fresh();
    let mut next = 1;
    write(&mut j, &mut next, 2).unwrap();
    j.start_sync().unwrap();
    assert_eq!(j.wait_synced().unwrap(), 2);
    write(&mut j, &mut next, 3).unwrap();
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    j.start_sync().unwrap();
    write(&mut j, &mut next, 1).unwrap_or_else(|e| panic!("the write does not wait for the sync: {e}"));
    let err = j.wait_synced().unwrap_err();
    assert!(matches!(&err, JournalError::Io { op: "fdatasync", .. }), "{err:?}");
    assert_eq!(j.acked_seq(), 2);
    assert!(matches!(j.write_batch([(ts(7), payload(7))]), Err(JournalError::Failed { .. })));
    assert!(matches!(j.start_sync(), Err(JournalError::Failed { .. })));
    // Cut back to the acknowledged records, for readers in this run too.
    support::assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 2);
    assert_eq!(last_seq_after_reopen(tmp.path(), j), 2, "records whose fdatasync failed came back");
}

/// A roll that fails before its seal (the reserved space cannot be given
/// back, or the directory is no longer this writer's) poisons the writer:
/// what it wrote after the last fdatasync started is refused, so it must
/// not come back at the next open either.
#[test]
fn a_failed_roll_keeps_nothing_written_after_the_last_sync_started() {
    for fail in ["trim", "replaced"] {
        if fail == "trim" && !support::reserves() {
            continue; // no reserved space to give back
        }
        let (tmp, plan, mut j) = fresh();
        let mut next = 1;
        write(&mut j, &mut next, 2).unwrap();
        j.start_sync().unwrap();
        write(&mut j, &mut next, 1).unwrap(); // not covered by the sync in flight
        match fail {
            "trim" => {
                plan.inject_next(Step::Trim, Fault::Errno(libc::EIO));
            }
            // The directory renamed away and another made in its place.
            _ => {
                std::fs::rename(tmp.path(), away(tmp.path())).unwrap();
                std::fs::create_dir(tmp.path()).unwrap();
            }
        }
        assert!(j.roll().is_err(), "{fail}");
        if fail == "replaced" {
            std::fs::remove_dir(tmp.path()).unwrap();
            std::fs::rename(away(tmp.path()), tmp.path()).unwrap();
        }
        assert_eq!(j.acked_seq(), 2, "{fail}: the roll collected the sync in flight");
        let after = j.append(0, b"after");
        assert!(matches!(after, Err(events_journal::JournalError::Failed { .. })), "{fail}: not poisoned: {after:?}");
        support::assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 2);
        assert_eq!(last_seq_after_reopen(tmp.path(), j), 2, "{fail}: a refused record came back");
    }
}

/// A journal dropped while its owner unwinds from a panic (the feed's
/// writer thread, say) is a crash, not a close: what no fdatasync covered
/// was never acknowledged, and its waiters are told the writer is gone, so
/// it must not come back at the next open.
#[test]
fn a_journal_dropped_by_a_panic_keeps_nothing_written_after_the_last_sync() {
    let (tmp, _plan, mut j) = fresh();
    let mut next = 1;
    write(&mut j, &mut next, 2).unwrap();
    j.start_sync().unwrap();
    assert_eq!(j.wait_synced().unwrap(), 2);
    write(&mut j, &mut next, 3).unwrap(); // never synced
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _owned = j;
        panic!("the owner panicked");
    }));
    assert!(unwound.is_err());
    let (j, _) = Journal::open(tmp.path(), options(&FaultPlan::new())).unwrap();
    assert_eq!(j.last_seq(), 2, "records no fdatasync covered came back after the panic");
}

/// Under `Always`, a batch written and not yet synced when the sealer's
/// retention work panics (here injected into its unlink; a `tracing`
/// layer could panic there too): the writer fails, and the batch, whose
/// appends it refuses, is cut back, so no later open finds it. The
/// failure had been recorded without the cut-back, and the drop that
/// followed skipped its own: the next open kept the refused record.
#[test]
fn a_sealer_failure_found_without_an_append_cuts_back_what_no_sync_covered() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let opts = || {
        JournalOptions::new()
            .sync(SyncPolicy::Always)
            .faults(plan.clone())
            .retention(Retention::age(Duration::from_millis(500)))
    };
    let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
    j.append(ts(1), payload(1)).unwrap();
    j.roll().unwrap(); // the first segment sealed, too young to prune yet
    j.write_batch([(ts(2), payload(2))]).unwrap(); // written, never synced
    std::thread::sleep(Duration::from_millis(600));
    plan.inject_next(Step::TidyUnlink, Fault::Panic);
    j.prune_deferred().unwrap(); // hands the unlink to the sealer, which panics
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while j.health().is_ok() {
        assert!(std::time::Instant::now() < deadline, "the sealer's failure never surfaced");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(j.commit().is_err());
    drop(j);
    let (j, _) = Journal::open(tmp.path(), options(&FaultPlan::new())).unwrap();
    assert_eq!(j.next_seq(), 2, "the refused record 2 was kept");
}

/// Wakes by waiting for a go-ahead, then panicking: a caller's waker that
/// panics while the commit thread is waking it.
struct PanicsWhenWoken(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

impl std::task::Wake for PanicsWhenWoken {
    fn wake(self: std::sync::Arc<Self>) {
        let _ = self.0.lock().unwrap().recv();
        panic!("the caller's waker panicked");
    }
}

/// The commit thread wakes the caller that polled a sync with a waker that
/// panics, after the caller has collected that sync (it waited instead)
/// and started the next: the thread goes on and answers the next sync. It
/// had died there with the next job queued, and `wait_synced` (and the
/// journal's drop) waited for ever.
#[test]
fn a_waker_that_panics_does_not_stop_the_commit_thread() {
    let (_tmp, plan, mut j) = fresh();
    let mut next = 1;
    // Held until the caller has polled with its waker.
    plan.inject_next(Step::AppendSync, Fault::Hold);
    write(&mut j, &mut next, 1).unwrap();
    assert!(j.start_sync().unwrap());
    let (go, wait) = std::sync::mpsc::channel();
    let waker = Waker::from(std::sync::Arc::new(PanicsWhenWoken(std::sync::Mutex::new(wait))));
    let pending = j.poll_synced(&mut Context::from_waker(&waker)).is_pending();
    plan.release(); // before any assertion: the journal's drop joins the held thread
    assert!(pending);
    assert_eq!(j.wait_synced().unwrap(), 1); // the thread is now waking the waker
    write(&mut j, &mut next, 1).unwrap();
    assert!(j.start_sync().unwrap());
    go.send(()).unwrap(); // the waker panics
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(j.wait_synced().map_err(|e| e.to_string()));
        drop(j);
    });
    let synced = outcome.recv_timeout(Duration::from_secs(10)).expect("the second sync was never answered");
    assert_eq!(synced.unwrap(), 2);
}
