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
//! The lock file can be deleted, or replaced, under a running writer (an
//! operator's "stale lock" clean-up): a second writer would then lock a new
//! file and write into the same segments. The holder also takes `flock(2)`
//! on the directory itself, which a second writer must take too, whatever
//! became of the lock file: that second writer is refused too, and the first one goes on
//! (it had stopped at its next roll or retention pass, with
//! `DirectoryReplaced`, though only the lock file was gone). On Linux the holder also places an
//! open-file-description read lock on the directory, which readers test
//! beside the lock file's ([`is_held`]): with the lock file gone or
//! replaced, they still see the writer running, and never take its
//! unacknowledged tail for a dead writer's. A directory replaced by another (renamed
//! away, deleted and made again) is another inode, whose writer is not
//! refused: the first one finds out at its next roll or retention pass
//! ([`DirLock::check_still_ours`], which compares the directory's device
//! and inode with those it locked). Where the directory cannot be locked
//! (a file system without `flock` on directories), the lock file alone
//! guards it, and a lock file gone or replaced stops the writer there.
//!
//! A child forked while the lock is held shares the lock's open file
//! description until it `exec`s or exits (the file is opened close-on-exec),
//! so right after this process released the lock, a `fork` it made meanwhile
//! (any `std::process::Command`, from any thread) can still hold it. The
//! process keeps a registry of the lock files it holds ([`HELD`]): a refused
//! lock that this process does not hold, in a file whose recorded holder is
//! this process, is such a child's, and acquiring waits for it (at most
//! [`FORK_WAIT`]) instead of reporting [`JournalError::Locked`]. A lock this
//! process holds, or one another process recorded, is refused at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::JournalError;
use crate::seam::{Io, Step};

/// File name of the lock inside a journal directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The longest acquiring waits for a child that inherited the lock when
/// this process forked while it held it: the child's `exec` or exit.
const FORK_WAIT: Duration = Duration::from_secs(2);

/// The lock files this process holds, by device and inode.
static HELD: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The directory, `flock`ed: held, not read (`None` where it cannot
    /// be). Declared first, so released first: an acquire between the two
    /// releases then finds the lock file still held, recorded as this
    /// process's, and waits, instead of taking it and finding the
    /// directory's still held.
    #[allow(dead_code, reason = "held for its lock")]
    dir: Option<File>,
    /// Held, not read: closing it releases the lock.
    #[cfg_attr(not(test), allow(dead_code, reason = "held for its lock; tests copy its descriptor"))]
    file: File,
    /// The lock file's device and inode, as registered in [`HELD`].
    key: (u64, u64),
    /// What [`still_ours`] compares with what the path holds now.
    identity: Identity,
}

/// What tells that a journal directory is still the one a writer locked,
/// as `stat` of a path gave it when the lock was taken (on some
/// filesystems, overlayfs before Linux 4.19, `fstat` of an open file
/// differs): the directory's device and inode while the writer holds its
/// `flock`, which no second writer can take whatever becomes of the lock
/// file; the lock file's where the directory cannot be locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The directory's device and inode.
    Dir(u64, u64),
    /// The lock file's device and inode.
    LockFile(u64, u64),
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = held();
        if let Some(at) = held.iter().position(|key| *key == self.key) {
            held.swap_remove(at);
        }
        // The file closes after this, releasing the lock: an acquire in
        // between finds it unregistered and waits for the close.
    }
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
        let meta = file.metadata().map_err(|e| JournalError::io("stat lock file", &path, e))?;
        // A FIFO (which the open above does not block on) or a device can
        // take a lock too, but readers cannot test one without blocking:
        // only a regular file is the journal's lock.
        if !meta.is_file() {
            let kind = io::Error::new(io::ErrorKind::InvalidData, "not a regular file (a FIFO, socket or device)");
            return Err(JournalError::io("open lock file", &path, kind));
        }
        let key = (meta.dev(), meta.ino());
        let deadline = Instant::now() + FORK_WAIT;
        let mut waited_for_a_child = false;
        loop {
            match try_lock(&file) {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline && inherited_by_a_child(&file, key) => {
                    waited_for_a_child = true;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(false) => return Err(JournalError::Locked { dir: PathBuf::from(dir) }),
                Err(e) => return Err(JournalError::io("lock", &path, e)),
            }
        }
        // The child that held the lock file's closes its copy of the
        // directory's at the same `exec`: a moment later, at most.
        let dir_file = lock_dir(dir, if waited_for_a_child { deadline } else { Instant::now() })?;
        // An open-file-description lock shows no pid in /proc/locks: the
        // holder writes its own, for operators (`events inspect`), and for
        // the check above.
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = file.set_len(0).and_then(|()| file.write_all_at(pid.as_bytes(), 0)) {
            tracing::debug!(path = %path.display(), error = %e, "could not record the writer's pid in the lock file");
        }
        held().push(key);
        let identity = match dir_file.as_ref().and_then(|_| std::fs::metadata(dir).ok()) {
            Some(meta) => Identity::Dir(meta.dev(), meta.ino()),
            None => {
                let (dev, ino) = std::fs::metadata(&path).map_or(key, |meta| (meta.dev(), meta.ino()));
                Identity::LockFile(dev, ino)
            }
        };
        Ok(DirLock { dir: dir_file, file, key, identity })
    }
}

/// `flock(2)` of the directory itself, retried until `deadline`: `None`
/// where the directory cannot be opened or locked (the lock file alone
/// guards it then).
///
/// # Errors
///
/// [`JournalError::Locked`] when another writer holds it: one that took
/// the lock file before it was deleted or replaced.
fn lock_dir(dir: &Path, deadline: Instant) -> Result<Option<File>, JournalError> {
    use std::os::fd::AsRawFd;
    let file = match File::open(dir) {
        Ok(file) => file,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "cannot open the journal directory to lock it; the lock file alone guards it");
            return Ok(None);
        }
    };
    loop {
        // SAFETY: a valid open descriptor for the call's duration.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            mark_dir(&file, dir);
            return Ok(Some(file));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Some(libc::EWOULDBLOCK) => return Err(JournalError::Locked { dir: PathBuf::from(dir) }),
            _ => {
                tracing::debug!(dir = %dir.display(), error = %err, "cannot lock the journal directory; the lock file alone guards it");
                return Ok(None);
            }
        }
    }
}

impl DirLock {
    /// Whether `dir` is still the directory this lock is on ([`Identity`]):
    /// not when it was deleted, or replaced by another (a second writer may
    /// then hold the new one's lock).
    ///
    /// # Errors
    ///
    /// [`JournalError::DirectoryReplaced`] naming `dir`. A `stat` that
    /// fails otherwise (permissions) says nothing: `Ok`.
    pub(crate) fn check_still_ours(&self, dir: &Path) -> Result<(), JournalError> {
        if !still_ours(dir, self.identity) {
            return Err(JournalError::DirectoryReplaced { dir: dir.to_path_buf() });
        }
        Ok(())
    }

    /// What tells this writer's directory, for [`still_ours`] on another
    /// thread.
    pub(crate) fn identity(&self) -> Identity {
        self.identity
    }
}

/// Whether `dir` is still the directory of `identity`
/// ([`DirLock::identity`]): not when it (or, where the directory could not
/// be locked, its lock file) is gone or another file. A `stat` that fails
/// otherwise says it is.
pub(crate) fn still_ours(dir: &Path, identity: Identity) -> bool {
    let (path, expected) = match identity {
        Identity::Dir(dev, ino) => (dir.to_path_buf(), (dev, ino)),
        Identity::LockFile(dev, ino) => (dir.join(LOCK_FILE), (dev, ino)),
    };
    match std::fs::metadata(path) {
        Ok(meta) => (meta.dev(), meta.ino()) == expected,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Whether a refused lock is held only by a child this process forked
/// while it held the lock: this process does not hold it now, and the
/// holder the file records is this process.
fn inherited_by_a_child(file: &File, key: (u64, u64)) -> bool {
    if held().contains(&key) {
        return false;
    }
    let mut buf = [0u8; 24];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.trim().parse::<u32>().ok()) == Some(std::process::id())
}

/// Whether a writer holds the lock of `dir` right now: `Some(true)` or
/// `Some(false)` where the platform can test a lock without taking it,
/// `None` where it cannot (a reader must then assume a writer may be running).
/// The lock file tells first; where it says no writer (gone, replaced, or
/// not locked), the directory's own mark ([`mark_dir`]) is asked too.
pub(crate) fn is_held(dir: &Path) -> Option<bool> {
    let by_file = test_lock(&dir.join(LOCK_FILE)).unwrap_or_else(|e| {
        tracing::debug!(dir = %dir.display(), error = %e, "cannot test the journal lock; assuming a writer");
        None
    });
    match by_file {
        Some(false) if dir_marked(dir) => Some(true),
        answer => answer,
    }
}

/// Places the mark that tells readers a writer holds `dir` (opened as
/// `file`) even when its lock file was deleted or replaced: an
/// open-file-description read lock on the directory, which readers can
/// test ([`dir_marked`]) without taking anything, and the kernel drops
/// with the descriptor. A read lock, so it never refuses anyone: the
/// directory's `flock` is what excludes a second writer. Where it cannot
/// be placed, the lock file alone tells.
#[cfg(target_os = "linux")]
fn mark_dir(file: &File, dir: &Path) {
    use std::os::fd::AsRawFd;
    let fl = ofd_lock(libc::F_RDLCK);
    // SAFETY: a valid open descriptor and a valid `flock` for the call's duration.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) } != 0 {
        let err = io::Error::last_os_error();
        tracing::debug!(dir = %dir.display(), error = %err, "cannot mark the journal directory; readers test the lock file alone");
    }
}

#[cfg(not(target_os = "linux"))]
fn mark_dir(_file: &File, _dir: &Path) {}

/// Whether a writer's mark ([`mark_dir`]) is on `dir`: a write lock
/// tested against it would conflict. `false` where that cannot be tested.
#[cfg(target_os = "linux")]
fn dir_marked(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // A directory only, never waiting: a FIFO swapped in under the name
    // would block a plain open for ever.
    let opened = OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK).open(dir);
    let Ok(file) = opened else { return false };
    let mut fl = ofd_lock(libc::F_WRLCK);
    // SAFETY: a valid open descriptor and a valid, writable `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } != 0 {
        return false;
    }
    fl.l_type != libc::F_UNLCK as libc::c_short
}

#[cfg(not(target_os = "linux"))]
fn dir_marked(_dir: &Path) -> bool {
    false
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
    // Not a plain open: a FIFO under the name blocked it for ever, with no
    // writer to open the other end.
    let file = match crate::own_file::open_regular(path) {
        Ok(f) => f,
        // No lock file: no writer ever opened this directory, or it is being recreated.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(false)),
        // Not a regular file: no writer takes such a lock (`acquire` refuses it).
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(Some(false)),
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

    /// A forked child shares the lock's open file description until it
    /// `exec`s; a duplicate of the descriptor does the same here.
    #[test]
    fn a_lock_a_forked_child_still_shares_is_waited_for_and_another_processs_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let io = Io::default();
        let lock = DirLock::acquire(&io, dir.path()).unwrap();
        let child = lock.file.try_clone().unwrap();
        drop(lock);
        assert_eq!(is_held(dir.path()), Some(true), "the child's copy still holds the lock");
        let exec = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(child);
        });
        let started = Instant::now();
        let again = DirLock::acquire(&io, dir.path()).expect("waited for the child instead of refusing");
        assert!(started.elapsed() < FORK_WAIT);
        exec.join().unwrap();

        // The same, but the file records another holder: refused at once.
        let child = again.file.try_clone().unwrap();
        drop(again);
        std::fs::write(dir.path().join(LOCK_FILE), "1\n").unwrap();
        let started = Instant::now();
        assert!(matches!(DirLock::acquire(&io, dir.path()), Err(JournalError::Locked { .. })));
        assert!(started.elapsed() < FORK_WAIT / 2, "another process's lock is refused at once");
        drop(child);
    }
}
