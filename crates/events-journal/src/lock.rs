//! The single-writer lock: `<dir>/LOCK`, held with an OS advisory lock
//! (`File::try_lock`, `flock(2)` on Unix) for as long as the [`DirLock`] lives.
//!
//! Invariant: at most one [`Journal`](crate::Journal) per directory, across
//! threads and processes. The lock belongs to the open file description, so a
//! second open in the same process is refused just like one in another
//! process, and the kernel releases it if the process dies.
//!
//! Caveat of `flock(2)`: a child forked while the lock is held shares the
//! lock's open file description until it `exec`s (the file is opened
//! close-on-exec), so a reopen racing with a `fork` in the same process can
//! briefly see [`JournalError::Locked`].

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::JournalError;

/// File name of the lock inside a journal directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock without waiting.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| JournalError::io("open lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(JournalError::Locked { dir: PathBuf::from(dir) }),
            Err(TryLockError::Error(e)) => Err(JournalError::io("lock", &path, e)),
        }
    }
}
