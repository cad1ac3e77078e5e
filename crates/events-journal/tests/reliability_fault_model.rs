//! Fault-injection model test: random appends, batches, syncs, rolls,
//! prunes and reopens against a `Vec` model, with random faults injected
//! through the I/O seam (`ENOSPC`, `EIO`, short writes, torn writes, crashes
//! before or after any step). Whenever an operation fails, the journal is
//! dropped as a crashed process would leave it and reopened, sometimes with
//! a second fault armed inside recovery itself; then the journal must hold
//! exactly the model's acknowledged records, followed by at most a prefix of
//! the batch that was in flight (written but never acknowledged), its next
//! seq must follow its last record, and `verify` must be clean.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, Reader, Retention, SyncPolicy, verify};
use proptest::prelude::*;

const SEGMENT_BYTES: u64 = 1024;
const KEEP: usize = 3;
const HEADER: u64 = 64;
const FRAME_HEADER: u64 = 24;

#[derive(Clone, Debug)]
enum Action {
    Append(u16),
    Batch(Vec<u16>),
    Sync,
    Roll,
    Prune,
    Reopen,
}

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
];

const RECOVERY_STEPS: &[Step] =
    &[Step::Truncate, Step::TruncateSync, Step::HeaderRewrite, Step::DirSync, Step::PruneRemove, Step::HeaderWrite];

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

/// Acknowledged records (seq `i + 1` at index `i`) and the predicted segments as `(first seq, bytes)`.
struct Model {
    records: Vec<Vec<u8>>,
    segments: Vec<(u64, u64)>,
}

impl Model {
    fn next_seq(&self) -> u64 {
        self.records.len() as u64 + 1
    }
    fn roll(&mut self) {
        if self.segments.last().unwrap().1 > HEADER {
            self.segments.push((self.next_seq(), HEADER));
            self.prune();
        }
    }
    fn prune(&mut self) {
        while self.segments.len() > KEEP {
            self.segments.remove(0);
        }
    }
    fn write(&mut self, payloads: &[Vec<u8>]) {
        let bytes: u64 = payloads.iter().map(|p| FRAME_HEADER + p.len() as u64).sum();
        let active = self.segments.last().unwrap().1;
        if active > HEADER && active + bytes > SEGMENT_BYTES {
            self.roll();
        }
        self.segments.last_mut().unwrap().1 += bytes;
        self.records.extend(payloads.iter().cloned());
    }
    /// After a crash the segment layout is whatever recovery left: read it back.
    fn resync_segments(&mut self, dir: &Path) {
        let mut segs: Vec<(u64, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name.strip_suffix(".seg")?.parse().ok()?;
                Some((seq, e.metadata().unwrap().len()))
            })
            .collect();
        segs.sort_unstable();
        self.segments = segs;
    }
}

fn options(plan: &FaultPlan) -> JournalOptions {
    JournalOptions::new()
        .segment_bytes(SEGMENT_BYTES)
        .retention(Retention::segments(KEEP))
        .sync(SyncPolicy::Always)
        .faults(plan.clone())
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
    let mut model = Model { records: Vec::new(), segments: vec![(1, HEADER)] };
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
        plan.disarm();
        let fired = plan.fired().len() > fired_before;
        FAULTS.fetch_add(u64::from(fired), Ordering::Relaxed);
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
