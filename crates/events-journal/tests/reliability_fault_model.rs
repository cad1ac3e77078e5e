//! Fault-injection model test: random appends, batches, syncs, rolls,
//! prunes and reopens against a `Vec` model, with random faults injected
//! through the I/O seam (`ENOSPC`, `EIO`, short writes, torn writes, crashes
//! before or after any step). Whenever an operation fails, the journal is
//! dropped as a crashed process would leave it and reopened, sometimes with
//! a second fault armed inside recovery itself; then the journal must hold
//! exactly the model's acknowledged records, followed by at most a prefix of
//! the batch that was in flight (written but never acknowledged), its next
//! seq must follow its last record, and `verify` must be clean.
//!
//! The salvage and repair modes get an exhaustive version of the same
//! promise: a damaged journal is opened with `TruncateAtCorruption`,
//! `SkipCorrupt` or `Repair` and a crash injected before, after or in the
//! middle of every I/O step the salvage takes; whatever state that leaves,
//! a reader never sees a wrong or repeated record, a default (`Strict`)
//! open never reuses a seq, and the next open in the same mode ends in the
//! very state an uninterrupted salvage reaches: every valid record kept
//! (all but the dropped ones for `TruncateAtCorruption`), one explicit gap
//! per damaged range, and the next seq above every seq a valid frame held.
//!
//! The model and its actions are `support/model.rs`, shared with
//! `model_proptest.rs`; the fault and step strategies are this file's own.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::format::{SegmentHeader, encode_frame};
use events_journal::{Journal, JournalError, JournalOptions, Reader, RecoveryMode, Retention, SyncPolicy, verify};
use proptest::prelude::*;
use support::model::{Action, Model};

#[derive(Clone, Debug)]
struct Op {
    action: Action,
    /// Armed for the next occurrence of the step, just before the action.
    fault: Option<(Step, Fault)>,
    /// Armed inside the reopen that follows a failure.
    recovery_fault: Option<(Step, Fault)>,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Errno(libc::ENOSPC)),
        Just(Fault::Errno(libc::EIO)),
        (1usize..64).prop_map(Fault::ShortWrite),
        (0usize..400).prop_map(Fault::TornWrite),
        Just(Fault::CrashBefore),
        Just(Fault::CrashAfter),
    ]
}

fn step(steps: &'static [Step]) -> impl Strategy<Value = Step> {
    (0..steps.len()).prop_map(move |i| steps[i])
}

/// The steps an append, roll, prune or reopen can reach, drawn uniformly.
/// Not `Step::ALL`: the recovery-only steps have their own list below, and
/// `AppendWrite` is listed twice so the commonest write is hit most often.
const WRITE_STEPS: &[Step] = &[
    Step::AppendWrite,
    Step::AppendWrite,
    Step::AppendSync,
    Step::Sync,
    Step::RollSync,
    Step::SegmentCreate,
    Step::HeaderWrite,
    Step::HeaderSync,
    Step::DirSync,
    Step::PruneRemove,
    Step::LockCreate,
    Step::Reserve,
    Step::Trim,
    Step::Watermark,
    Step::Lease,
    Step::TidyUnlink,
];

/// The steps a reopen after a failure can reach.
const RECOVERY_STEPS: &[Step] = &[
    Step::Truncate,
    Step::TruncateSync,
    Step::HeaderRewrite,
    Step::DirSync,
    Step::PruneRemove,
    Step::HeaderWrite,
    Step::LockCreate,
    Step::Watermark,
];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0u16..200).prop_map(Action::Append),
        3 => proptest::collection::vec(0u16..200, 1..10).prop_map(Action::Batch),
        1 => Just(Action::Sync),
        2 => Just(Action::Roll),
        1 => Just(Action::Prune),
        1 => Just(Action::Reopen),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (
        action(),
        proptest::option::weighted(0.3, (step(WRITE_STEPS), fault())),
        proptest::option::weighted(0.5, (step(RECOVERY_STEPS), fault())),
    )
        .prop_map(|(action, fault, recovery_fault)| Op { action, fault, recovery_fault })
}

static FAULTS: AtomicU64 = AtomicU64::new(0);
static FAILURES: AtomicU64 = AtomicU64::new(0);
static RECOVERY_FAULTS: AtomicU64 = AtomicU64::new(0);
static INFLIGHT_KEPT: AtomicU64 = AtomicU64::new(0);

fn options(plan: &FaultPlan) -> JournalOptions {
    support::model::options().sync(SyncPolicy::Always).faults(plan.clone())
}

fn body(n: u16, seq: u64) -> Vec<u8> {
    (0..n).map(|i| (seq as u8).wrapping_mul(7).wrapping_add(i as u8)).collect()
}

/// Checks the reopened journal against the model and the in-flight batch;
/// returns how many in-flight records made it to disk.
fn check(dir: &Path, j: &Journal, model: &Model, inflight: &[Vec<u8>]) -> Result<usize, TestCaseError> {
    let acked = model.records.len() as u64;
    let (first, last) = (j.first_seq(), j.last_seq());
    prop_assert!(last >= acked, "acknowledged up to {} but the journal ends at {}", acked, last);
    prop_assert!(last <= acked + inflight.len() as u64, "journal ends at {} past the in-flight batch", last);
    prop_assert_eq!(j.next_seq(), last + 1);
    // Retention may remove sealed segments, never the records of the active one.
    let active_first = model.segments.last().map_or(1, |s| s.0);
    prop_assert!(first <= active_first, "first seq {} is past the active segment's {}", first, active_first);
    let reader = Reader::open(dir).unwrap();
    let records: Vec<_> = reader.read_since(first - 1).unwrap().collect::<Result<_, _>>().unwrap();
    prop_assert_eq!(records.len() as u64, last + 1 - first);
    for (i, r) in records.iter().enumerate() {
        let seq = first + i as u64;
        prop_assert_eq!(r.seq(), seq);
        let want = if seq <= acked { &model.records[seq as usize - 1] } else { &inflight[(seq - acked - 1) as usize] };
        prop_assert_eq!(r.payload(), want.as_slice(), "payload of seq {}", seq);
    }
    let report = verify(dir).unwrap();
    prop_assert!(report.is_ok(), "verify: {:?}", report.problems);
    Ok((last - acked) as usize)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut plan = FaultPlan::new();
    let mut journal = Some(Journal::open(dir, options(&plan)).unwrap().0);
    let mut model = Model::new();
    for op in ops {
        let fired_before = plan.fired().len();
        if let Some((step, fault)) = op.fault {
            plan.inject_next(step, fault);
        }
        let next = model.next_seq();
        let mut inflight = Vec::new();
        let j = journal.as_mut().unwrap();
        let result: Result<(), JournalError> = match &op.action {
            Action::Append(n) => {
                inflight.push(body(*n, next));
                j.append(next, &inflight[0]).map(|seq| assert_eq!(seq, next))
            }
            Action::Batch(ns) => {
                inflight = ns.iter().enumerate().map(|(i, &n)| body(n, next + i as u64)).collect();
                j.append_batch(inflight.iter().map(|p| (next, p.as_slice())))
                    .map(|r| assert_eq!((*r.start(), r.count()), (next, inflight.len())))
            }
            Action::Sync => j.sync(),
            Action::Roll => j.roll(),
            Action::Prune => j.prune().map(drop),
            Action::Reopen => journal.take().unwrap().close().and_then(|()| {
                journal = Some(Journal::open(dir, options(&plan))?.0);
                Ok(())
            }),
        };
        // A retention's unlinks run on the sealer thread, after the call
        // returned: waited for while the fault is still armed, so that one
        // fires (or not) inside this operation, never in a later one.
        let result = match (op.fault, journal.as_mut()) {
            (Some((Step::TidyUnlink, _)), Some(j)) => result.and_then(|()| j.sync()),
            _ => result,
        };
        plan.disarm();
        let fired = plan.fired().len() > fired_before;
        FAULTS.fetch_add(u64::from(fired), Ordering::Relaxed);
        // A retention failure never fails a roll or an append: a crash inside
        // retention leaves the operation successful but the "process" dead.
        let result = match result {
            Ok(()) if plan.crashed() => {
                prop_assert!(fired, "{:?} crashed with no fault injected", op.action);
                match &op.action {
                    Action::Append(_) | Action::Batch(_) => model.write(&inflight),
                    Action::Roll => model.roll(),
                    _ => {}
                }
                inflight.clear();
                Err(JournalError::Failed { cause: "crashed after the operation returned".into() })
            }
            other => other,
        };
        match result {
            Ok(()) => match &op.action {
                Action::Append(_) | Action::Batch(_) => model.write(&inflight),
                Action::Roll => model.roll(),
                Action::Prune => model.prune(),
                Action::Sync => {}
                Action::Reopen => {
                    check(dir, journal.as_ref().unwrap(), &model, &[])?;
                }
            },
            Err(e) => {
                prop_assert!(fired, "{:?} failed with no fault injected: {}", op.action, e);
                FAILURES.fetch_add(1, Ordering::Relaxed);
                // The "process" is dead: drop what it held, then recover, maybe under a second fault.
                drop(journal.take());
                plan = FaultPlan::new();
                if let Some((step, fault)) = op.recovery_fault {
                    plan.inject_next(step, fault);
                }
                let first_try = Journal::open(dir, options(&plan));
                RECOVERY_FAULTS.fetch_add(plan.fired().len() as u64, Ordering::Relaxed);
                let reopened = match first_try {
                    Ok((j, _)) if !plan.crashed() => j,
                    first_try => {
                        drop(first_try);
                        plan = FaultPlan::new();
                        Journal::open(dir, options(&plan)).map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?.0
                    }
                };
                plan.disarm();
                let kept = check(dir, &reopened, &model, &inflight)?;
                INFLIGHT_KEPT.fetch_add(kept as u64, Ordering::Relaxed);
                model.records.extend(inflight.into_iter().take(kept));
                model.resync_segments(dir);
                journal = Some(reopened);
            }
        }
    }
    Ok(())
}

#[test]
fn journal_matches_the_acknowledged_prefix_after_every_fault() {
    let cases = std::env::var("EVENTS_FAULT_MODEL_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(128);
    // No failure file: a failing case prints its minimal input, which is what a reader needs.
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner.run(&proptest::collection::vec(op(), 1..40), run).unwrap();
    let (faults, recoveries) = (FAULTS.load(Ordering::Relaxed), RECOVERY_FAULTS.load(Ordering::Relaxed));
    let (failures, kept) = (FAILURES.load(Ordering::Relaxed), INFLIGHT_KEPT.load(Ordering::Relaxed));
    println!(
        "fault model: {cases} cases, {faults} faults fired, {failures} failed operations recovered, \
         {recoveries} faults inside recovery, {kept} unacknowledged records found on disk"
    );
    // Proof that the faults really fire, so the checks above were exercised.
    assert!(failures > u64::from(cases) / 4, "only {failures} failures in {cases} cases");
    assert!(recoveries > 0 && kept > 0, "no fault inside recovery ({recoveries}) or no torn batch kept ({kept})");
}

/// Without any fault armed nothing fails: the model test's failures really
/// come from the injected faults.
#[test]
fn no_fault_no_failure() {
    let ops = (0..200)
        .map(|i| Op {
            action: match i % 7 {
                0 => Action::Roll,
                1 => Action::Batch(vec![10, 20, 30]),
                2 => Action::Reopen,
                3 => Action::Prune,
                4 => Action::Sync,
                _ => Action::Append(i as u16),
            },
            fault: None,
            recovery_fault: None,
        })
        .collect();
    run(ops).unwrap();
}

/// One segment of a damaged journal image: records `first..=last`, with the
/// frames of `damaged` seqs flipped, and its header CRC broken if asked.
struct Seg {
    first: u64,
    last: u64,
    damaged: &'static [u64],
    bad_header: bool,
}

fn salvage_payload(seq: u64) -> Vec<u8> {
    (0..(seq * 37 % 90 + 10)).map(|i| (seq as u8).wrapping_mul(13).wrapping_add(i as u8)).collect()
}

fn write_image(dir: &Path, segs: &[Seg]) {
    for (i, seg) in segs.iter().enumerate() {
        let mut buf =
            SegmentHeader { epoch: 77, first_seq: seg.first, created_at: i as u64, codec_tag: 0 }.encode().to_vec();
        if seg.bad_header {
            buf[50] ^= 0x10; // a reserved byte: magic and version intact, CRC broken
        }
        for s in seg.first..=seg.last {
            let at = buf.len();
            encode_frame(&mut buf, s, s, &salvage_payload(s));
            if seg.damaged.contains(&s) {
                buf[at + 30] ^= 0x01;
            }
        }
        std::fs::write(dir.join(format!("{:020}.seg", seg.first)), buf).unwrap();
    }
}

/// What the reader yields: `Ok(seq)` for a record (its payload checked), `Err(first missing)` for a gap.
fn reader_items(dir: &Path) -> Vec<Result<u64, u64>> {
    let mut out = Vec::new();
    let Ok(records) = Reader::open(dir).unwrap().read_since(0) else { return out };
    for item in records {
        match item {
            Ok(r) => {
                assert_eq!(r.payload(), salvage_payload(r.seq()).as_slice(), "payload of seq {}", r.seq());
                out.push(Ok(r.seq()));
            }
            Err(JournalError::Gap { expected, .. }) => out.push(Err(expected)),
            // A damaged segment a crash left half-salvaged: the reader stops there, naming it.
            Err(JournalError::Corrupt { .. }) => break,
            Err(e) => panic!("unexpected reader error {e}"),
        }
    }
    out
}

fn salvage_options(mode: RecoveryMode, plan: &FaultPlan) -> JournalOptions {
    JournalOptions::new().recovery(mode).retention(Retention::unlimited()).faults(plan.clone())
}

/// Runs one salvage scenario with a crash at every step; returns how many crashes fired.
fn salvage_scenario(mode: RecoveryMode, segs: &[Seg], want: &[Result<u64, u64>], next: u64) -> u64 {
    let image = tempfile::tempdir().unwrap();
    write_image(image.path(), segs);
    let valid_seqs: Vec<u64> = want.iter().filter_map(|r| r.ok()).collect();
    // The uninterrupted salvage: the reference, and how many times it reaches each step.
    let counting = FaultPlan::new();
    {
        let tmp = tempfile::tempdir().unwrap();
        events_testkit::fs::copy_files(image.path(), tmp.path());
        let (j, _) = Journal::open(tmp.path(), salvage_options(mode, &counting)).unwrap();
        assert_eq!(j.next_seq(), next, "{mode:?}");
        drop(j);
        assert_eq!(reader_items(tmp.path()), want, "{mode:?}: the uninterrupted salvage");
    }
    let mut crashes = 0;
    for step in Step::ALL {
        for nth in 0..counting.count(step) {
            // A torn write differs from a crash before the step only where the step writes bytes.
            let torn = matches!(step, Step::Salvage | Step::HeaderWrite).then_some(Fault::TornWrite(7));
            for fault in [Fault::CrashBefore, Fault::CrashAfter].into_iter().chain(torn) {
                let ctx = format!("{mode:?}, {fault:?} at {step:?} #{nth}");
                let tmp = tempfile::tempdir().unwrap();
                events_testkit::fs::copy_files(image.path(), tmp.path());
                let plan = FaultPlan::new();
                plan.inject(step, nth, fault);
                drop(Journal::open(tmp.path(), salvage_options(mode, &plan)));
                if !plan.crashed() {
                    continue;
                }
                crashes += 1;
                // Whatever the crash left: no wrong record, no seq twice, every record one the salvage keeps.
                let seen = reader_items(tmp.path());
                let seqs: Vec<u64> = seen.iter().filter_map(|r| r.ok()).collect();
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{ctx}: reader order {seen:?}");
                assert!(seqs.iter().all(|s| valid_seqs.contains(s)), "{ctx}: reader {seen:?}");
                // No gap over a record the salvage keeps: a reader (a
                // follower) moves past a gap for good.
                for (i, item) in seen.iter().enumerate() {
                    let (Err(missing), Some(Ok(after))) = (item, seen.get(i + 1)) else { continue };
                    let kept: Vec<u64> = (*missing..*after).filter(|s| valid_seqs.contains(s)).collect();
                    assert!(kept.is_empty(), "{ctx}: a gap over kept records {kept:?}: reader {seen:?}");
                }
                // A default open either refuses (a damaged newest segment) or never reuses a seq.
                if let Ok((j, _)) = Journal::open(tmp.path(), JournalOptions::new().retention(Retention::unlimited())) {
                    assert!(j.next_seq() >= next, "{ctx}: a Strict open would reuse seq {}", j.next_seq());
                }
                // The same mode again ends where the uninterrupted salvage ended.
                let (mut j, _) = Journal::open(tmp.path(), salvage_options(mode, &FaultPlan::new()))
                    .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                assert_eq!(j.next_seq(), next, "{ctx}");
                assert_eq!(j.append(next, salvage_payload(next)).unwrap(), next, "{ctx}");
                j.close().unwrap();
                let mut all = want.to_vec();
                all.push(Ok(next));
                assert_eq!(reader_items(tmp.path()), all, "{ctx}");
                let problems = verify(tmp.path()).unwrap().problems;
                assert!(problems.iter().all(|p| p.what.contains("are missing")), "{ctx}: verify {problems:?}");
                let leftovers = std::fs::read_dir(tmp.path())
                    .unwrap()
                    .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".salvage"))
                    .count();
                assert!(leftovers <= segs.len() + 2, "{ctx}");
            }
        }
    }
    crashes
}

#[test]
fn salvage_and_repair_survive_a_crash_at_every_step() {
    // The newest segment 11..=20 is damaged at 13 and 17.
    let newest = || {
        [
            Seg { first: 1, last: 5, damaged: &[], bad_header: false },
            Seg { first: 6, last: 10, damaged: &[], bad_header: false },
            Seg { first: 11, last: 20, damaged: &[13, 17], bad_header: false },
        ]
    };
    let kept: Vec<Result<u64, u64>> =
        (1..=12).map(Ok).chain([Err(13)]).chain((14..=16).map(Ok)).chain([Err(17)]).chain((18..=20).map(Ok)).collect();
    let mut crashes = salvage_scenario(RecoveryMode::SkipCorrupt, &newest(), &kept, 21);
    let truncated: Vec<Result<u64, u64>> = (1..=12).map(Ok).chain([Err(13)]).collect();
    crashes += salvage_scenario(RecoveryMode::TruncateAtCorruption, &newest(), &truncated, 21);
    crashes += salvage_scenario(RecoveryMode::Repair, &newest(), &kept, 21);
    // Repair of older segments: a bad header CRC (nothing lost), a damaged
    // frame in the middle segment, and one in the newest.
    let older = [
        Seg { first: 1, last: 5, damaged: &[], bad_header: true },
        Seg { first: 6, last: 10, damaged: &[8], bad_header: false },
        Seg { first: 11, last: 15, damaged: &[13], bad_header: false },
    ];
    let repaired: Vec<Result<u64, u64>> =
        (1..=7).map(Ok).chain([Err(8)]).chain((9..=12).map(Ok)).chain([Err(13)]).chain((14..=15).map(Ok)).collect();
    crashes += salvage_scenario(RecoveryMode::Repair, &older, &repaired, 16);
    // A sealed segment damaged twice: its repair renames two pieces in
    // after the first; a reader between the two renames must not take
    // the second piece's records, still only in the damaged segment, for
    // a gap.
    let twice = [
        Seg { first: 1, last: 5, damaged: &[], bad_header: false },
        Seg { first: 6, last: 15, damaged: &[8, 12], bad_header: false },
        Seg { first: 16, last: 20, damaged: &[], bad_header: false },
    ];
    let repaired: Vec<Result<u64, u64>> =
        (1..=7).map(Ok).chain([Err(8)]).chain((9..=11).map(Ok)).chain([Err(12)]).chain((13..=20).map(Ok)).collect();
    crashes += salvage_scenario(RecoveryMode::Repair, &twice, &repaired, 21);
    println!("salvage fault model: {crashes} crashes injected inside salvage and repair");
    assert!(crashes > 60, "only {crashes} crashes fired");
}
