//! Opening the journal's own files by name (`WATERMARK`, `LEASE`,
//! `PRUNED`, sidecars), safely against whatever stands there instead: a
//! FIFO would block the open (and so a roll, an open or a reader poll) for
//! ever, a character device such as `/dev/zero` would be read without end.
//!
//! Invariant: what these functions hand back is a regular file, and a read
//! never takes more than the caller's bound; an open never waits for a FIFO
//! (only for a file lease another process holds on a regular file).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Opens `path` for reading if it is a regular file (following a symlink):
/// `InvalidData` naming what it is otherwise.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of
    // waiting for one (on a regular file it changes nothing, except that
    // with a file lease held elsewhere, Samba's or an NFS server's, the
    // open fails instead of waiting: then it looks first, and waits).
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            regular(std::fs::metadata(path)?.file_type())?;
            File::open(path)?
        }
        opened => opened?,
    };
    regular(file.metadata()?.file_type())?;
    Ok(file)
}

fn regular(kind: std::fs::FileType) -> io::Result<()> {
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
    Err(io::Error::new(io::ErrorKind::InvalidData, what))
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
