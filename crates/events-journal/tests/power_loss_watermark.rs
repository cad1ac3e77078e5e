//! A power loss never brings back an earlier writer's `Closed` watermark.
//!
//! Readers trust a `Closed` record with no lock held: it is the end of the
//! journal. A writer that opens after a clean close rewrites the record in
//! place (`Recovering`, then `Open`), and a power loss may take every write
//! no `fdatasync` covered. Had the open not synced its `Recovering` record,
//! the disk could hold the old `Closed` one again: readers would stop at
//! the old end (hiding acknowledged, synced records) or fail on its pruned
//! segment, until a writer opened again.
//!
//! A power loss is simulated as in `power_loss_lease.rs`: the process
//! "crashes", every segment is cut back to what its last `fdatasync`
//! covered, and the watermark holds what its last `fdatasync` covered.

mod support;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalOptions, Reader, Retention, SyncPolicy, WATERMARK_FILE};
use support::{lose_power, payload, rebooted, ts};

fn options(plan: &FaultPlan, retention: Retention) -> JournalOptions {
    JournalOptions::new().sync(SyncPolicy::Always).segment_bytes(4096).retention(retention).faults(plan.clone())
}

/// The seqs a reader in another process would hand out after `cursor`.
fn read_after(dir: &std::path::Path, cursor: u64) -> Vec<u64> {
    let records = Reader::open(dir).unwrap().read_since(cursor).unwrap();
    records
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.payload(), payload(r.seq()).as_slice());
            r.seq()
        })
        .collect()
}

#[test]
fn after_a_power_loss_readers_see_every_synced_record_past_an_earlier_clean_close() {
    for retention in [Retention::unlimited(), Retention::segments(2)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (mut j, _) = Journal::open(dir, options(&FaultPlan::new(), retention.clone())).unwrap();
        for seq in 1..=50 {
            j.append(ts(seq), payload(seq)).unwrap();
        }
        j.close().unwrap();
        // Time passes: the kernel writes the `Closed` record back.
        let closed = std::fs::read(dir.join(WATERMARK_FILE)).unwrap();

        let plan = rebooted();
        let (mut j, _) = Journal::open(dir, options(&plan, retention.clone())).unwrap();
        for seq in 51..=300 {
            // Acknowledged under `Always`: synced before it returns.
            j.append(ts(seq), payload(seq)).unwrap();
        }
        plan.inject_next(Step::Sync, Fault::CrashBefore);
        drop(j);
        assert!(plan.crashed());
        lose_power(dir, &plan);
        if plan.synced_contents(&dir.join(WATERMARK_FILE)).is_none() {
            // No write of this writer to the watermark was synced: the
            // power loss may leave the earlier one.
            std::fs::write(dir.join(WATERMARK_FILE), &closed).unwrap();
        }

        let first = Reader::open(dir).unwrap().segments().unwrap()[0].0;
        let seqs = read_after(dir, first.max(51) - 1);
        assert!(!seqs.is_empty() && seqs[0] <= 51.max(first), "{retention:?}: from the oldest kept");
        assert_eq!(seqs.last(), Some(&300), "{retention:?}: every acknowledged record, as no writer runs");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{retention:?}: in order, no gap");
    }
}
