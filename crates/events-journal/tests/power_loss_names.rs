//! A power loss takes every directory entry no fsync of the directory
//! covered: a segment a killed writer created (or a rebuild renamed in)
//! before its directory fsync is there after the crash only in the page
//! cache. The next writer appends into it, so its open must make the name
//! durable before it acknowledges anything there.
//!
//! A power loss is simulated as in `power_loss_lease.rs` (every segment cut
//! back to what its last `fdatasync` covered, the watermark and the lease
//! put back as their last `fdatasync` left them), and every segment whose
//! name none of the plans' fsyncs of the directory saw is removed
//! (`FaultPlan::synced_names`).

mod support;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalOptions, Retention, SyncPolicy};
use support::{lose_power_after, lose_unsynced_names, payload, seqs_and_gaps, ts};

fn options(plan: &FaultPlan) -> JournalOptions {
    JournalOptions::new().sync(SyncPolicy::Always).retention(Retention::unlimited()).faults(plan.clone())
}

/// A writer killed in a roll after it wrote the new segment's header and
/// before it synced it and the directory; the next writer (same boot: the
/// page cache kept the file) appends 2..=5 into that segment, each
/// acknowledged under `Always`; then the power fails. All five come back.
/// The open had fsynced no directory: the new segment's name was lost,
/// and with it four acknowledged records.
#[test]
fn a_writer_makes_the_segment_a_killed_roll_created_durable_before_appending_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&first)).unwrap();
    j.append(ts(1), payload(1)).unwrap();
    first.inject_next(Step::HeaderSync, Fault::CrashBefore);
    assert!(j.roll().is_err());
    assert!(first.crashed());
    drop(j);

    let second = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&second)).unwrap();
    assert_eq!(j.segments().last().map(|s| s.0), Some(2), "the killed roll's segment is the active one");
    for seq in 2..=5 {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    second.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    assert!(second.crashed());

    lose_power_after(dir, &[&first, &second]);
    lose_unsynced_names(dir, &[&first, &second]);
    assert_eq!(seqs_and_gaps(dir, 0), ((1..=5).collect(), Vec::new()));
    let third = FaultPlan::new();
    third.reboot(1);
    let (j, report) = Journal::open(dir, options(&third)).unwrap();
    assert_eq!((j.next_seq(), &report.skipped), (6, &None), "{report:?}");
    j.close().unwrap();
}

/// A first open killed after it made the journal's directory, before it
/// fsynced the parent: the next open finds the directory there, and makes
/// its name durable in the parent before it acknowledges anything (no
/// lease says an open ever finished there). It had fsynced nothing above
/// the directory: a power loss could take the journal whole.
#[test]
fn an_open_makes_the_directory_a_killed_first_open_made_durable_in_its_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let first = FaultPlan::new();
    first.inject_next(Step::DirSync, Fault::CrashBefore);
    assert!(Journal::open(&dir, options(&first)).is_err());
    assert!(first.crashed() && dir.is_dir(), "killed after it made the directory");
    let second = FaultPlan::new();
    let (mut j, _) = Journal::open(&dir, options(&second)).unwrap();
    assert_eq!(j.append(ts(1), payload(1)).unwrap(), 1);
    let names = second.synced_names(tmp.path()).unwrap_or_default();
    assert!(names.iter().any(|n| n == "journal"), "the directory is durable in its parent: {names:?}");
    j.close().unwrap();
}
