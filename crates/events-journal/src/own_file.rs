//! Opening the journal's own files by name (`WATERMARK`, `LEASE`,
//! `PRUNED`, sidecars), safely against whatever stands there instead: a
//! FIFO would block the open (and so a roll, an open or a reader poll) for
//! ever, a character device such as `/dev/zero` would be read without end.
//!
//! Invariant: what these functions hand back is a regular file, opened
//! without blocking, and a read never takes more than the caller's bound.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading if it is a regular file (following a symlink):
/// `InvalidData` naming what it is otherwise.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    // O_NONBLOCK: opening a FIFO with no writer returns at once (on a
    // regular file it changes nothing).
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
    }
    Ok(file)
}

/// Reads the regular file `path` whole, if it holds at most `max` bytes
/// (the most the format ever writes there): `InvalidData` otherwise.
pub(crate) fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("longer than the {max} bytes this file holds")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_directories_and_long_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for path in [fifo.as_path(), zero.as_path(), dir.path()] {
            let e = read_regular(path, 64).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{}: {e}", path.display());
        }
        let file = dir.path().join("file");
        std::fs::write(&file, [7u8; 65]).unwrap();
        assert!(read_regular(&file, 64).unwrap_err().to_string().contains("longer than the 64 bytes"));
        assert_eq!(read_regular(&file, 65).unwrap(), [7u8; 65]);
    }
}
