//! The I/O seam: every call by which the writer, the roll, retention and
//! recovery change the disk (write, `fdatasync`, create, truncate, remove,
//! rename, directory fsync, creating the journal directory and its `LOCK`)
//! goes through [`Io`], so that tests can inject
//! faults with a [`FaultPlan`](crate::fault::FaultPlan) (cargo feature
//! `fault-injection`). Reads (headers, mmaps) do not: faults are about what
//! reaches the disk.
//!
//! Invariant: without the feature, [`Io`] is a zero-sized type and every
//! method is an `#[inline]` forward to the plain `std` call, so the
//! production path compiles to exactly what it was before the seam existed.
//! With the feature but no plan, each call costs one `Option` check.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

pub(crate) use crate::fault::Step;
#[cfg(feature = "fault-injection")]
use crate::fault::{Fault, FaultPlan};

/// The seam. Cheap to clone; carried in [`JournalOptions`](crate::JournalOptions).
#[derive(Clone, Debug, Default)]
pub(crate) struct Io {
    #[cfg(feature = "fault-injection")]
    plan: Option<FaultPlan>,
}

impl Io {
    /// A seam that consults `plan` before every step.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn with_plan(plan: FaultPlan) -> Self {
        Io { plan: Some(plan) }
    }

    /// Writes all of `buf` with as many `write(2)` calls as it takes (each
    /// one a `step` occurrence), retrying `EINTR` like `Write::write_all`.
    #[inline]
    pub(crate) fn write_all(&self, step: Step, file: &File, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(step, file, buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[cfg(not(feature = "fault-injection"))]
    #[inline(always)]
    fn write(&self, _step: Step, mut file: &File, buf: &[u8]) -> io::Result<usize> {
        file.write(buf)
    }

    #[cfg(feature = "fault-injection")]
    fn write(&self, step: Step, mut file: &File, buf: &[u8]) -> io::Result<usize> {
        match self.reach(step)? {
            // A hold is waited out in `reach`.
            None | Some(Fault::Hold | Fault::HoldErrno(_)) => file.write(buf),
            Some(Fault::Errno(code)) => Err(io::Error::from_raw_os_error(code)),
            Some(Fault::ShortWrite(n)) => file.write(&buf[..n.clamp(1, buf.len())]),
            Some(Fault::Stall(d)) => {
                std::thread::sleep(d);
                file.write(buf)
            }
            Some(Fault::StallErrno(d, code)) => {
                std::thread::sleep(d);
                Err(io::Error::from_raw_os_error(code))
            }
            Some(Fault::Panic) => panic!("injected panic at {step:?}"),
            Some(Fault::TornWrite(n)) => {
                file.write_all(&buf[..n.min(buf.len())])?;
                Err(self.crash())
            }
            Some(Fault::CrashBefore) => Err(self.crash()),
            Some(Fault::CrashAfter) => {
                file.write_all(buf)?;
                Err(self.crash())
            }
        }
    }

    /// Runs any other step `op` (fsync, create, truncate, remove, rename).
    #[cfg(not(feature = "fault-injection"))]
    #[inline(always)]
    pub(crate) fn op<T>(&self, _step: Step, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        op()
    }

    /// Runs any other step `op` (fsync, create, truncate, remove, rename),
    /// applying the fault armed for it: a short write does nothing special
    /// here, a torn write crashes before the step like
    /// [`Fault::CrashBefore`].
    #[cfg(feature = "fault-injection")]
    pub(crate) fn op<T>(&self, step: Step, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        match self.reach(step)? {
            None | Some(Fault::ShortWrite(_) | Fault::Hold | Fault::HoldErrno(_)) => op(),
            Some(Fault::Stall(d)) => {
                std::thread::sleep(d);
                op()
            }
            Some(Fault::StallErrno(d, code)) => {
                std::thread::sleep(d);
                Err(io::Error::from_raw_os_error(code))
            }
            Some(Fault::Panic) => panic!("injected panic at {step:?}"),
            Some(Fault::Errno(code)) => Err(io::Error::from_raw_os_error(code)),
            Some(Fault::TornWrite(_) | Fault::CrashBefore) => Err(self.crash()),
            Some(Fault::CrashAfter) => {
                op()?;
                Err(self.crash())
            }
        }
    }

    /// `fdatasync` as `step`.
    #[cfg(not(feature = "fault-injection"))]
    #[inline]
    pub(crate) fn sync_data(&self, step: Step, file: &File) -> io::Result<()> {
        self.op(step, || file.sync_data())
    }

    /// `fdatasync` as `step`; the plan notes the file's length when it
    /// started, which is what a power loss would leave of it
    /// ([`FaultPlan::synced_len`]).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn sync_data(&self, step: Step, file: &File) -> io::Result<()> {
        self.sync_covering(step, file, u64::MAX)
    }

    /// `fdatasync` of the active segment as `step`, which covers its first
    /// `covered` bytes: the plan notes no more than those as synced, since
    /// the file may be longer by space reserved ahead of the writes
    /// (`reserve.rs`), which a power loss may leave as zeros.
    #[cfg(not(feature = "fault-injection"))]
    #[inline]
    pub(crate) fn sync_covering(&self, step: Step, file: &File, _covered: u64) -> io::Result<()> {
        self.sync_data(step, file)
    }

    /// `fdatasync` of the active segment as `step`, which covers its first
    /// `covered` bytes: the plan notes no more than those as synced, since
    /// the file may be longer by space reserved ahead of the writes
    /// (`reserve.rs`), which a power loss may leave as zeros.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn sync_covering(&self, step: Step, file: &File, covered: u64) -> io::Result<()> {
        self.op(step, || {
            let meta = file.metadata()?;
            file.sync_data()?;
            if let Some(plan) = &self.plan {
                plan.synced(&meta, covered, small_contents(file, &meta));
            }
            Ok(())
        })
    }

    /// Fsyncs a directory so that creations and removals in it are durable.
    #[cfg(not(feature = "fault-injection"))]
    #[inline]
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.op(Step::DirSync, || fsync_dir(dir))
    }

    /// Fsyncs a directory so that creations and removals in it are
    /// durable; the plan notes the names it held when the fsync started,
    /// which are what a power loss would leave ([`FaultPlan::synced_names`]).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.op(Step::DirSync, || {
            let Some(plan) = &self.plan else { return fsync_dir(dir) };
            let meta = std::fs::metadata(dir)?;
            let names = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<Vec<_>>>()?;
            fsync_dir(dir)?;
            plan.dir_synced(&meta, names);
            Ok(())
        })
    }

    /// The kernel's id of the current boot (`lease.rs`); a plan may
    /// pretend the machine rebooted ([`FaultPlan::reboot`]).
    pub(crate) fn boot_id(&self) -> Option<[u8; 16]> {
        #[cfg(feature = "fault-injection")]
        if let Some(id) = self.plan.as_ref().and_then(FaultPlan::booted) {
            return id;
        }
        crate::lease::boot_id()
    }

    /// How many seqs one lease covers past the next seq (`lease.rs`); a
    /// plan may make it smaller ([`FaultPlan::lease_step`]).
    pub(crate) fn lease_step(&self) -> u64 {
        #[cfg(feature = "fault-injection")]
        if let Some(step) = self.plan.as_ref().and_then(FaultPlan::leased_step) {
            return step;
        }
        crate::lease::LEASE_STEP
    }

    #[cfg(feature = "fault-injection")]
    fn reach(&self, step: Step) -> io::Result<Option<Fault>> {
        match &self.plan {
            Some(plan) => plan.reach(step),
            None => Ok(None),
        }
    }

    #[cfg(feature = "fault-injection")]
    fn crash(&self) -> io::Error {
        self.plan.as_ref().map_or_else(crate::fault::crash_error, FaultPlan::crash)
    }
}

/// `fsync(2)` of directory `dir` (nothing where directories cannot be
/// opened for it).
fn fsync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The bytes of a small file (the watermark, the lease, a checkpoint) as an
/// `fdatasync` made them durable: a power loss leaves those, not its length.
#[cfg(feature = "fault-injection")]
fn small_contents(file: &File, meta: &std::fs::Metadata) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    const SMALL: u64 = 4096;
    if meta.len() > SMALL {
        return None;
    }
    let mut bytes = vec![0; meta.len() as usize];
    file.read_exact_at(&mut bytes, 0).ok()?;
    Some(bytes)
}

/// Runs `op` on one of the journal's own threads, a panic in it (a
/// `tracing` layer's, an injected [`Fault::Panic`](crate::fault::Fault::Panic))
/// turned into an error, so the thread records it as the failure it is and
/// goes on answering the writer.
pub(crate) fn unwound<T>(op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(op))
        .unwrap_or_else(|panic| Err(io::Error::other(format!("panicked: {}", crate::panic_text(panic.as_ref())))))
}
