//! Fault injection for tests, compiled only with the `fault-injection` cargo
//! feature: a [`FaultPlan`] given to [`JournalOptions::faults`](crate::JournalOptions::faults)
//! makes chosen I/O [`Step`]s of the writer, the roll, retention and
//! recovery fail, write short, tear, or "crash". The seam that consults it
//! is `seam.rs`; this file only holds the plan.
//!
//! Invariant: after a [`Fault::TornWrite`], [`Fault::CrashBefore`] or
//! [`Fault::CrashAfter`] fired, the plan is *crashed*: every later step of the
//! journal that holds it fails without touching the disk, exactly as if the
//! process had stopped there. What is on disk is then what a `SIGKILL` at
//! that point would have left (the page cache survives a process crash; power
//! loss is not simulated).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

/// One kind of I/O call the journal makes, as the seam names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// One `write(2)` of a batch of frames to the active segment.
    AppendWrite,
    /// The `fdatasync` that acknowledges appends under `SyncPolicy::Always`:
    /// in `append_batch`, in `commit`, or on the commit thread after
    /// `start_sync`.
    AppendSync,
    /// `Journal::sync`, the final `fdatasync` of `close` or drop, and the
    /// `fdatasync` of the newest segment at open under `SyncPolicy::Always`
    /// (records a killed writer never synced are synced before any is read).
    Sync,
    /// The `fdatasync` of the active segment before it is sealed by a roll.
    RollSync,
    /// Creating a new segment file (roll, or a new journal).
    SegmentCreate,
    /// Writing a new segment's header.
    HeaderWrite,
    /// The `fdatasync` of a new segment's header.
    HeaderSync,
    /// An fsync of the journal directory (after creating or removing segments).
    DirSync,
    /// Removing a segment for retention (for a roll's retention and
    /// `Journal::prune_deferred`, its rename to `<name>.removed`; the sealer
    /// thread's unlink that follows is [`Step::TidyUnlink`]).
    PruneRemove,
    /// Cutting a segment short: recovery truncating a torn tail or salvaging,
    /// or the writer cutting back a failed batch.
    Truncate,
    /// The `fdatasync` after a recovery truncate, and after the writer cut
    /// back a failed batch.
    TruncateSync,
    /// Rewriting a torn header at recovery (truncate, write and `fdatasync`).
    HeaderRewrite,
    /// Creating, writing, syncing or renaming a `.seg.salvage` file: the
    /// crash-safe rebuild of a damaged segment (`RecoveryMode::SkipCorrupt`,
    /// `TruncateAtCorruption` and `Repair`, a torn sealed tail, an
    /// interrupted salvage finished at open).
    Salvage,
    /// The background `fdatasync` of `SyncPolicy::Interval`.
    BackgroundSync,
    /// Opening, writing or (at open) `fdatasync`ing the durable watermark
    /// (`<dir>/WATERMARK`).
    Watermark,
    /// Creating the journal directory (and its missing parents) at open.
    DirCreate,
    /// Creating or opening `<dir>/LOCK` at open.
    LockCreate,
    /// Reserving space ahead of the writes under `SyncPolicy::Always`
    /// (zeros written past the data); a failure never fails the append.
    Reserve,
    /// Giving back the reserved space past the last frame (a truncate),
    /// before a roll seals the segment and before a close.
    Trim,
    /// The sealer thread's unlink of a segment retention renamed out of the
    /// journal (`<name>.seg.removed`); a failure is counted in
    /// `JournalStats::prune_errors` and retried by the next retention pass.
    TidyUnlink,
    /// Opening, writing or `fdatasync`ing the seq lease (`<dir>/LEASE`):
    /// at open, when an append under `Never` or `Interval` goes past it,
    /// and at a clean close.
    Lease,
    /// A reader's `fdatasync` of a dead writer's newest segment before it
    /// serves its records ([`Reader::open_with_faults`](crate::Reader::open_with_faults)).
    ReaderSync,
    /// A reader that found no writer running, between its look at the lock
    /// and watermark and its private copy of the dead writer's newest
    /// segment (nothing is done there: a point to hold the reader at).
    ReaderCopy,
    /// The `pwrite` or the `fdatasync` of a consumer checkpoint's commit
    /// ([`ConsumerFile::open_with_faults`](crate::ConsumerFile::open_with_faults)).
    Checkpoint,
    /// At open, after a writer that did not close cleanly: the `fdatasync`
    /// of each of the newest sealed segments, which its sealer may not have
    /// reached (under `SyncPolicy::Never`).
    SealedSync,
}

impl Step {
    /// Every step, for tests that pick one at random.
    pub const ALL: [Step; 25] = [
        Step::AppendWrite,
        Step::AppendSync,
        Step::Sync,
        Step::RollSync,
        Step::SegmentCreate,
        Step::HeaderWrite,
        Step::HeaderSync,
        Step::DirSync,
        Step::PruneRemove,
        Step::Truncate,
        Step::TruncateSync,
        Step::HeaderRewrite,
        Step::Salvage,
        Step::BackgroundSync,
        Step::Watermark,
        Step::DirCreate,
        Step::LockCreate,
        Step::Reserve,
        Step::Trim,
        Step::TidyUnlink,
        Step::Lease,
        Step::ReaderSync,
        Step::ReaderCopy,
        Step::Checkpoint,
        Step::SealedSync,
    ];
}

/// What happens to the chosen occurrence of a [`Step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call fails with this OS error (`libc::ENOSPC`, `libc::EIO`,
    /// `libc::EROFS`, ...) and does nothing.
    Errno(i32),
    /// A write call writes only its first `n` bytes (at least one) and
    /// reports that, as `write(2)` may; the caller must write the rest.
    /// Other steps ignore it.
    ShortWrite(usize),
    /// A write call writes only its first `n` bytes, then the process
    /// crashes. Other steps crash before doing anything.
    TornWrite(usize),
    /// The process crashes just before the step.
    CrashBefore,
    /// The step completes, then the process crashes.
    CrashAfter,
    /// The step waits this long, then runs normally: a slow disk, which
    /// holds the writer where it is (say, between a failed fsync and the
    /// cut-back that follows) long enough for a reader to look.
    Stall(std::time::Duration),
    /// The step waits this long, then fails with this OS error: a slow
    /// disk whose operation fails at the end, in flight all along (an
    /// `fdatasync` that another thread's sync must wait out).
    StallErrno(std::time::Duration, i32),
    /// The step waits until [`FaultPlan::release`] is called (at most
    /// [`HOLD_LIMIT`], then it panics), then runs normally: a slow disk held exactly as long as a test needs, so a
    /// race it provokes cannot be missed by a slow machine (as a
    /// [`Stall`](Self::Stall) that ends first can be).
    Hold,
    /// The step waits until [`FaultPlan::release`], then fails with this
    /// OS error.
    HoldErrno(i32),
    /// The step panics (on whatever thread runs it): code the journal runs
    /// on its own threads, a `tracing` layer's say, that panics there.
    Panic,
}

impl Fault {
    /// True for faults after which the plan is crashed.
    pub fn is_crash(self) -> bool {
        matches!(self, Fault::TornWrite(_) | Fault::CrashBefore | Fault::CrashAfter)
    }
}

/// The longest a step waits for [`FaultPlan::release`].
pub const HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// A shared, cloneable schedule of faults. Clones share state, so a test
/// keeps one clone to inspect what fired while the journal holds another.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    inner: Arc<Mutex<PlanState>>,
    /// Released once ([`FaultPlan::release`]): every held step goes on.
    released: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

#[derive(Debug, Default)]
struct PlanState {
    /// `(step, occurrence) -> fault`, occurrences counted from 0 since the plan was made.
    armed: HashMap<(Step, u64), Fault>,
    seen: HashMap<Step, u64>,
    fired: Vec<(Step, Fault)>,
    crashed: bool,
    /// `(device, inode) -> length` when the file's last completed
    /// `fdatasync` started.
    synced: HashMap<(u64, u64), u64>,
    /// `(device, inode) -> bytes` of a small file at its last completed
    /// `fdatasync` ([`FaultPlan::synced_contents`]).
    contents: HashMap<(u64, u64), Vec<u8>>,
    /// The boot id the journal sees instead of the kernel's
    /// ([`FaultPlan::reboot`]), or none at all ([`FaultPlan::boot_unknown`]).
    boot: Option<Option<[u8; 16]>>,
    /// The lease step instead of `LEASE_STEP` ([`FaultPlan::lease_step`]).
    lease_step: Option<u64>,
    /// `(device, inode) -> entry names` of a directory when its last
    /// completed fsync started ([`FaultPlan::synced_names`]).
    names: HashMap<(u64, u64), Vec<std::ffi::OsString>>,
}

/// The error every step returns once the plan is crashed.
pub(crate) fn crash_error() -> io::Error {
    io::Error::other("injected crash: the process is considered dead")
}

impl FaultPlan {
    /// An empty plan: nothing fails until [`inject`](Self::inject) is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `fault` for the `nth` (0-based) occurrence of `step`, counted
    /// from the creation of the plan.
    pub fn inject(&self, step: Step, nth: u64, fault: Fault) -> &Self {
        self.state().armed.insert((step, nth), fault);
        self
    }

    /// Arms `fault` for the next occurrence of `step`.
    pub fn inject_next(&self, step: Step, fault: Fault) -> &Self {
        let mut st = self.state();
        let nth = st.seen.get(&step).copied().unwrap_or(0);
        st.armed.insert((step, nth), fault);
        drop(st);
        self
    }

    /// Lets every step held by [`Fault::Hold`] or [`Fault::HoldErrno`] go
    /// on, and any reached later pass at once.
    pub fn release(&self) {
        let (released, cv) = &*self.released;
        *released.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        cv.notify_all();
    }

    /// Removes every armed fault that has not fired (a crashed plan stays crashed).
    pub fn disarm(&self) {
        self.state().armed.clear();
    }

    /// True once a crashing fault fired.
    pub fn crashed(&self) -> bool {
        self.state().crashed
    }

    /// The faults that fired, in order.
    pub fn fired(&self) -> Vec<(Step, Fault)> {
        self.state().fired.clone()
    }

    /// How many times `step` was reached (crashed calls excluded).
    pub fn count(&self, step: Step) -> u64 {
        self.state().seen.get(&step).copied().unwrap_or(0)
    }

    /// The length `path` had when its last completed `fdatasync` through
    /// this plan started (for the active segment, no more than the bytes of
    /// frames that sync covered: the space reserved past them may read as
    /// zeros after a power loss): what of it a power loss would certainly
    /// leave (`None`: never synced, so possibly nothing). Renames keep it, since
    /// it follows the file, not the name. A crash model only stops the
    /// process, so a test simulates power loss by cutting every segment back
    /// to this length before it reopens the journal.
    pub fn synced_len(&self, path: &Path) -> Option<u64> {
        let meta = std::fs::metadata(path).ok()?;
        self.state().synced.get(&(meta.dev(), meta.ino())).copied()
    }

    /// The bytes a small file rewritten in place (`WATERMARK`, `LEASE`, a
    /// consumer checkpoint) held when its last completed `fdatasync`
    /// through this plan ran (`None`: never synced through it, or too large
    /// to note). Its later writes may all be lost to a power loss, so a test
    /// simulates one by putting these bytes back.
    pub fn synced_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let meta = std::fs::metadata(path).ok()?;
        self.state().contents.get(&(meta.dev(), meta.ino())).cloned()
    }

    /// The names directory `dir` held when its last completed fsync
    /// through this plan started (`None`: never fsynced through it): a
    /// power loss may take any other, a file created or renamed in since.
    /// A test simulates one by removing those.
    pub fn synced_names(&self, dir: &Path) -> Option<Vec<std::ffi::OsString>> {
        let meta = std::fs::metadata(dir).ok()?;
        self.state().names.get(&(meta.dev(), meta.ino())).cloned()
    }

    /// Called by the seam after a completed fsync of a directory whose
    /// metadata and entry names were read just before it.
    pub(crate) fn dir_synced(&self, before: &std::fs::Metadata, names: Vec<std::ffi::OsString>) {
        self.state().names.insert((before.dev(), before.ino()), names);
    }

    /// Makes the journals opened with this plan see a boot id of their
    /// own, `n` (any `n` differs from the kernel's, and each `n` from the
    /// others): a reopen after a power loss is a reopen after a reboot.
    pub fn reboot(&self, n: u8) -> &Self {
        let mut id = [0xee; 16];
        id[15] = n;
        self.state().boot = Some(Some(id));
        self
    }

    /// Makes the journals opened with this plan see no boot id, as where
    /// the kernel does not say (no `/proc`): a reopen then cannot tell a
    /// reboot from a process crash.
    pub fn boot_unknown(&self) -> &Self {
        self.state().boot = Some(None);
        self
    }

    /// Makes each seq lease (`LEASE`) cover `step` seqs past the next one
    /// instead of [`LEASE_STEP`](crate::LEASE_STEP), so that a test sees
    /// leases extended without a million appends.
    pub fn lease_step(&self, step: u64) -> &Self {
        self.state().lease_step = Some(step.max(1));
        self
    }

    pub(crate) fn booted(&self) -> Option<Option<[u8; 16]>> {
        self.state().boot
    }

    pub(crate) fn leased_step(&self) -> Option<u64> {
        self.state().lease_step
    }

    /// Called by the seam after a completed `fdatasync` of a file whose
    /// metadata was read just before it and whose first `covered` bytes it
    /// was asked to make durable.
    pub(crate) fn synced(&self, before: &std::fs::Metadata, covered: u64, contents: Option<Vec<u8>>) {
        let mut st = self.state();
        let key = (before.dev(), before.ino());
        st.synced.insert(key, before.len().min(covered));
        match contents {
            Some(bytes) => st.contents.insert(key, bytes),
            None => st.contents.remove(&key),
        };
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PlanState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the seam before a step: `Err` when crashed, otherwise the
    /// fault armed for this occurrence, if any (recorded as fired).
    pub(crate) fn reach(&self, step: Step) -> io::Result<Option<Fault>> {
        let mut st = self.state();
        if st.crashed {
            return Err(crash_error());
        }
        let n = st.seen.entry(step).or_insert(0);
        let nth = *n;
        *n += 1;
        let fault = st.armed.remove(&(step, nth));
        if let Some(f) = fault {
            st.fired.push((step, f));
        }
        drop(st);
        match fault {
            Some(Fault::Hold | Fault::HoldErrno(_)) => {
                self.held();
                // A crash while it was held: the step does nothing.
                if self.state().crashed {
                    return Err(crash_error());
                }
                Ok(match fault {
                    Some(Fault::HoldErrno(code)) => Some(Fault::Errno(code)),
                    _ => None,
                })
            }
            fault => Ok(fault),
        }
    }

    /// Waits until the plan is released; past [`HOLD_LIMIT`], panics (a
    /// test that failed before it released its plan fails, instead of
    /// hanging on a step it holds: a journal thread's panic there is its
    /// error, and the joins of the journal's drop end).
    fn held(&self) {
        let (released, cv) = &*self.released;
        let deadline = std::time::Instant::now() + HOLD_LIMIT;
        let mut released = released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*released {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "a step held by Fault::Hold was never released ({HOLD_LIMIT:?})");
            released = cv.wait_timeout(released, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// Marks the plan crashed and returns the crash error.
    pub(crate) fn crash(&self) -> io::Error {
        self.state().crashed = true;
        crash_error()
    }
}
