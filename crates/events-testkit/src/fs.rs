//! Files on disk as the tests look at them: the segment files of a journal
//! directory (and its other files by extension, such as sidecar indexes). The journal's own tests and the NATS replicator's tests both
//! damage or count segments, so the listing lives here once.
//!
//! Neighbours: `lib.rs` (the crate's purpose); the `.seg` naming it relies
//! on is the journal's (`docs/FORMAT.md`).
//! Invariant: the list is sorted by path, which is oldest first because the
//! journal names segments by their zero-padded first seq.

use std::path::{Path, PathBuf};

/// The segment (`.seg`) files of `dir`, oldest first.
///
/// # Panics
///
/// If `dir` cannot be listed.
///
/// # Example
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// for name in ["00000000000000000010.seg", "LOCK", "00000000000000000001.seg"] {
///     std::fs::write(dir.path().join(name), b"").unwrap();
/// }
/// let names: Vec<_> = events_testkit::fs::segments(dir.path())
///     .iter()
///     .map(|p| p.file_name().unwrap().to_owned())
///     .collect();
/// assert_eq!(names, ["00000000000000000001.seg", "00000000000000000010.seg"]);
/// ```
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    with_extension(dir, "seg")
}

/// The files of `dir` whose extension is `ext` (`"idx"`: the sidecar
/// indexes), sorted by path.
///
/// # Panics
///
/// If `dir` cannot be listed.
pub fn with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Copies every file of `from` (not its subdirectories) into `to`, a fresh
/// directory (a file already there would be rewritten in place): a journal
/// directory as it is now, to open without touching the original.
///
/// # Panics
///
/// If a file cannot be listed or copied.
pub fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
