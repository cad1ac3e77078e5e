//! The single-writer lock: `<dir>/LOCK`, held with an OS advisory lock for as
//! long as the [`DirLock`] lives, and [`is_held`], which tells a reader
//! whether a writer is running without ever taking the lock itself.
//!
//! Invariant: at most one [`Journal`](crate::Journal) per directory, across
//! threads and processes. On Linux the lock is an open-file-description lock
//! (`fcntl(F_OFD_SETLK)`): it belongs to the open file description, so a
//! second open in the same process is refused just like one in another
//! process, the kernel releases it if the process dies, and another process
//! can *test* it (`F_OFD_GETLK`) without holding it even for an instant, so a
//! polling reader can never make a writer's open fail. Elsewhere it is
//! `flock(2)` (through `File::try_lock`) and [`is_held`] cannot tell.
//!
//! The holder writes its pid into the file (an OFD lock shows none in
//! `/proc/locks`); it is information for operators, never used to decide.
//!
//! Caveat: a child forked while the lock is held shares the lock's open file
//! description until it `exec`s (the file is opened close-on-exec), so a
//! reopen racing with a `fork` in the same process can briefly see
//! [`JournalError::Locked`].

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::seam::{Io, Step};

/// File name of the lock inside a journal directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock without waiting. Creating (or opening) the file goes
    /// through the I/O seam; the file needs no fsync, since a lock lives
    /// only as long as the process that holds it.
    pub(crate) fn acquire(io: &Io, dir: &Path) -> Result<DirLock, JournalError> {
        let path = dir.join(LOCK_FILE);
        let file = io
            .op(Step::LockCreate, || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path))
            .map_err(|e| JournalError::io("open lock file", &path, e))?;
        match try_lock(&file) {
            Ok(true) => {
                // An open-file-description lock shows no pid in /proc/locks:
                // the holder writes its own, for operators (`events inspect`).
                use std::os::unix::fs::FileExt;
                let pid = format!("{}\n", std::process::id());
                if let Err(e) = file.set_len(0).and_then(|()| file.write_all_at(pid.as_bytes(), 0)) {
                    tracing::debug!(path = %path.display(), error = %e, "could not record the writer's pid in the lock file");
                }
                Ok(DirLock { _file: file })
            }
            Ok(false) => Err(JournalError::Locked { dir: PathBuf::from(dir) }),
            Err(e) => Err(JournalError::io("lock", &path, e)),
        }
    }
}

/// Whether a writer holds the lock of `dir` right now: `Some(true)` or
/// `Some(false)` where the platform can test a lock without taking it,
/// `None` where it cannot (a reader must then assume a writer may be running).
pub(crate) fn is_held(dir: &Path) -> Option<bool> {
    test_lock(&dir.join(LOCK_FILE)).unwrap_or_else(|e| {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot test the journal lock; assuming a writer");
        None
    })
}

#[cfg(target_os = "linux")]
fn ofd_lock(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

#[cfg(target_os = "linux")]
fn try_lock(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let fl = ofd_lock(libc::F_WRLCK);
    // SAFETY: a valid open descriptor and a valid `flock` for the call's duration.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

#[cfg(target_os = "linux")]
fn test_lock(path: &Path) -> io::Result<Option<bool>> {
    use std::os::fd::AsRawFd;
    let file = match File::open(path) {
        Ok(f) => f,
        // No lock file: no writer ever opened this directory, or it is being recreated.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(false)),
        Err(e) => return Err(e),
    };
    // A read lock conflicts with the writer's write lock; testing it needs
    // only read access and never places a lock.
    let mut fl = ofd_lock(libc::F_RDLCK);
    // SAFETY: a valid open descriptor and a valid, writable `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Some(fl.l_type != libc::F_UNLCK as libc::c_short))
}

#[cfg(not(target_os = "linux"))]
fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn test_lock(_path: &Path) -> io::Result<Option<bool>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_testing_it_never_blocks_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(is_held(dir.path()), Some(false), "no lock file yet");
        let io = Io::default();
        let lock = DirLock::acquire(&io, dir.path()).unwrap();
        assert_eq!(is_held(dir.path()), Some(true));
        assert!(matches!(DirLock::acquire(&io, dir.path()), Err(JournalError::Locked { .. })));
        drop(lock);
        assert_eq!(is_held(dir.path()), Some(false));
        // Testing placed nothing: the lock can be taken right after.
        let _again = DirLock::acquire(&io, dir.path()).unwrap();
    }
}
