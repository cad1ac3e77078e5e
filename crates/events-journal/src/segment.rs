//! Segment files as the directory sees them: names (`<first_seq:020>.seg`),
//! listing a journal directory, reading and checking one header, creating a
//! segment durably, creating the journal directory durably, and the
//! directory fsync. The writer (`writer.rs`), recovery (`recovery.rs`,
//! `rebuild.rs`), the reader and `verify` all find segments through here.
//!
//! Invariant: a segment is created by writing its header, `fdatasync`ing it
//! and then fsyncing the directory, so once any record in it is acknowledged
//! its name (which carries its first seq) survives a crash; a journal
//! directory created here is made durable in its parent the same way.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::format::{self, HEADER_LEN, SegmentHeader};
use crate::lease::LEASE_FILE;
use crate::lock::LOCK_FILE;
use crate::seam::{Io, Step};
use crate::watermark::WATERMARK_FILE;

/// Name of the directory, inside a journal directory, that holds one
/// checkpoint file per durable consumer: `<journal dir>/consumers/<name>`
/// (see `consumer.rs`). Listed here, with the journal's other non-segment
/// entries, because the segment listing must skip it.
pub const CONSUMERS_DIR: &str = "consumers";

/// Name of the pruned-segments summary in a journal directory (see
/// `pruned.rs`); it is written through `PRUNED.tmp`. Listed here because
/// the segment listing must skip both.
pub const PRUNED_FILE: &str = "PRUNED";

/// Whether `name` is the pruned-segments summary or its temporary file.
fn is_pruned_file(name: &OsStr) -> bool {
    name == PRUNED_FILE || name.to_str().is_some_and(|n| n.strip_suffix(".tmp") == Some(PRUNED_FILE))
}

/// What the writer knows of each segment it keeps.
#[derive(Debug)]
pub(crate) struct SegInfo {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    pub(crate) created_at: u64,
}

/// A segment file found in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    /// The seq in the file name.
    pub(crate) first_seq: u64,
    /// The full path.
    pub(crate) path: PathBuf,
    /// The inode number (0 where unknown), so a reader can tell a replaced
    /// file from the one it mapped.
    pub(crate) ino: u64,
}

/// The journal files of a directory, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) segments: Vec<SegmentFile>,
    /// Sidecar index files (`<first_seq:020>.idx`, and their `.idx.tmp`
    /// while being written), by the seq in their name: not strangers, not
    /// segments (`sidecar.rs`).
    pub(crate) sidecars: Vec<(u64, PathBuf)>,
    /// Segments retention took out of the journal but did not unlink yet
    /// (`<first_seq:020>.seg.removed`, see [`removed_path`]).
    pub(crate) removed: Vec<PathBuf>,
    pub(crate) ignored: Vec<PathBuf>,
}

/// `<first_seq:020>.seg`.
pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The seq of a segment file name, or `None` if the name is not one.
pub(crate) fn parse_name(name: &OsStr) -> Option<u64> {
    let name = name.to_str()?;
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&s| s > 0 && s <= crate::format::MAX_SEQ)
}

/// What a roll's retention renames a pruned segment to before the sealer
/// thread unlinks it (`prune.rs`): `<name>.removed`. No
/// longer a segment to any reader or to recovery; the next open unlinks
/// any such file a crash left.
pub(crate) fn removed_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(REMOVED_SUFFIX);
    PathBuf::from(name)
}

/// The suffix a roll's retention (and `Journal::prune_deferred`) appends to
/// a pruned segment's name until the sealer thread unlinks it
/// (`<first_seq:020>.seg.removed`): such a file is no longer part of the
/// journal, and the next open unlinks any a crash left.
pub const REMOVED_SUFFIX: &str = ".removed";

/// What an entry of a journal directory is to the journal, as its own
/// listing (open, readers, `verify`) sorts it: see `docs/FORMAT.md`,
/// "Files". For tools that show a directory without opening the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A segment (`<first_seq:020>.seg`).
    Segment {
        /// The first seq its name holds.
        first_seq: u64,
    },
    /// A sidecar index of the segment its name holds, or one being written
    /// (`<first_seq:020>.idx`, `.idx.tmp`): a cache, rebuilt when missing.
    Sidecar {
        /// The first seq of the segment it indexes.
        first_seq: u64,
    },
    /// A segment retention took out of the journal and has not unlinked
    /// yet (`<first_seq:020>.seg.removed`): never read again.
    Removed {
        /// The first seq of the segment it was.
        first_seq: u64,
    },
    /// One of the journal's own files: `LOCK`, `WATERMARK`, `LEASE`,
    /// `PRUNED` (and `PRUNED.tmp`), the `consumers` directory.
    Own,
    /// Anything else: ignored (`RecoveryReport::ignored`, `VerifyReport::ignored`).
    Stranger,
}

/// Sorts the entry `name` of a journal directory; `is_file`: whether it is
/// a regular file (a directory named like a segment is a stranger).
pub fn entry_kind(name: &OsStr, is_file: bool) -> EntryKind {
    if name == LOCK_FILE
        || name == WATERMARK_FILE
        || name == LEASE_FILE
        || name == CONSUMERS_DIR
        || is_pruned_file(name)
    {
        return EntryKind::Own;
    }
    if !is_file {
        return EntryKind::Stranger;
    }
    if let Some(first_seq) = parse_sidecar_name(name) {
        return EntryKind::Sidecar { first_seq };
    }
    if let Some(first_seq) =
        name.to_str().and_then(|n| n.strip_suffix(REMOVED_SUFFIX)).and_then(|n| parse_name(OsStr::new(n)))
    {
        return EntryKind::Removed { first_seq };
    }
    match parse_name(name) {
        Some(first_seq) => EntryKind::Segment { first_seq },
        None => EntryKind::Stranger,
    }
}

/// The seq of a sidecar file name (`<first_seq:020>.idx` or `.idx.tmp`), or `None`.
pub(crate) fn parse_sidecar_name(name: &OsStr) -> Option<u64> {
    let name = name.to_str()?;
    let digits = name.strip_suffix(".idx").or_else(|| name.strip_suffix(".idx.tmp"))?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()
}

/// Lists the segments of `dir`. Sidecars and segments retention renamed are
/// listed apart, silently. Other entries (except `LOCK`, `WATERMARK`,
/// `LEASE`, `PRUNED` and `consumers`) are collected
/// in `ignored` and, when `warn` is set, logged with a `tracing` warning.
pub(crate) fn list(dir: &Path, warn: bool) -> Result<Listing, JournalError> {
    let mut listing = Listing::default();
    let entries = fs::read_dir(dir).map_err(|e| JournalError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("read directory", dir, e))?;
        let path = entry.path();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        match entry_kind(&entry.file_name(), is_file) {
            // The journal's own non-segment entries are not strangers: no warning, not listed.
            EntryKind::Own => {}
            EntryKind::Sidecar { first_seq } => listing.sidecars.push((first_seq, path)),
            EntryKind::Removed { .. } => listing.removed.push(path),
            EntryKind::Segment { first_seq } => {
                listing.segments.push(SegmentFile { first_seq, path, ino: ino(&entry) });
            }
            EntryKind::Stranger => {
                if warn {
                    tracing::warn!(path = %path.display(), "ignoring a file that is not a journal segment");
                }
                listing.ignored.push(path);
            }
        }
    }
    listing.segments.sort_by_key(|s| s.first_seq);
    listing.sidecars.sort();
    Ok(listing)
}

#[cfg(unix)]
fn ino(entry: &fs::DirEntry) -> u64 {
    std::os::unix::fs::DirEntryExt::ino(entry)
}

#[cfg(not(unix))]
fn ino(_entry: &fs::DirEntry) -> u64 {
    0
}

/// The state of a segment's header.
#[derive(Debug)]
pub(crate) enum HeaderState {
    /// A valid header.
    Valid(SegmentHeader),
    /// Shorter than a header and consistent with an interrupted header write.
    Torn,
}

/// Reads and checks the header of `seg`. A torn header is reported as
/// [`HeaderState::Torn`] (only meaningful for the newest segment); any other
/// problem is a typed error naming the file.
pub(crate) fn read_header(seg: &SegmentFile) -> Result<HeaderState, JournalError> {
    let file = File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
    read_header_from(&file, seg)
}

/// [`read_header`] from `seg`'s file, already open and positioned at its start.
pub(crate) fn read_header_from(mut file: &File, seg: &SegmentFile) -> Result<HeaderState, JournalError> {
    let mut buf = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io("read segment header", &seg.path, e)),
        }
    }
    check_header(seg, &buf[..got]).map(|h| h.map_or(HeaderState::Torn, HeaderState::Valid))
}

/// Checks header bytes (a prefix of the file, possibly shorter than a
/// header): `Ok(None)` for a torn header, `Ok(Some)` for a valid one whose
/// first seq matches the file name.
pub(crate) fn check_header(seg: &SegmentFile, bytes: &[u8]) -> Result<Option<SegmentHeader>, JournalError> {
    let path = &seg.path;
    match SegmentHeader::decode(bytes) {
        Ok(h) if h.first_seq != seg.first_seq => Err(JournalError::corrupt(
            path,
            24,
            Some(h.first_seq),
            format!("header first seq {} does not match the file name", h.first_seq),
        )),
        Ok(h) => Ok(Some(h)),
        Err(_) if format::is_torn_header(&bytes[..bytes.len().min(HEADER_LEN)]) => Ok(None),
        Err(e) => Err(JournalError::from_header(path, e)),
    }
}

/// Creates a new segment holding only its header, durably (header
/// `fdatasync`, then directory fsync). Fails if the file exists.
pub(crate) fn create(io: &Io, dir: &Path, header: &SegmentHeader) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(file_name(header.first_seq));
    let file = io
        .op(Step::SegmentCreate, || OpenOptions::new().read(true).write(true).create_new(true).open(&path))
        .map_err(|e| JournalError::io("create segment", &path, e))?;
    io.write_all(Step::HeaderWrite, &file, &header.encode())
        .map_err(|e| JournalError::io("write segment header", &path, e))?;
    io.sync_data(Step::HeaderSync, &file).map_err(|e| JournalError::io("fdatasync", &path, e))?;
    sync_dir(io, dir)?;
    Ok((file, path))
}

/// Creates the journal directory if it is missing, with any missing
/// parents, through the seam ([`Step::DirCreate`]), then fsyncs the parent
/// of every directory it created, so the journal's directory entry is as
/// durable as the segments inside it.
pub(crate) fn create_dir(io: &Io, dir: &Path) -> Result<(), JournalError> {
    if dir.is_dir() {
        return Ok(());
    }
    // The directories this call creates, outermost last.
    let mut created = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d);
        p = d.parent();
    }
    io.op(Step::DirCreate, || fs::create_dir_all(dir)).map_err(|e| JournalError::io("create directory", dir, e))?;
    for d in created.iter().rev() {
        sync_dir(io, parent_of(d))?;
    }
    Ok(())
}

/// The directory `dir` is an entry of (`.` for a bare name).
pub(crate) fn parent_of(dir: &Path) -> &Path {
    dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Unlinks the segments retention renamed but did not unlink
/// ([`Listing::removed`]: a crash came first, or an unlink failed); returns
/// how many there were and how many could not be unlinked (each logged).
/// Best effort: whatever stays is retried by the next tidy, `prune` or open,
/// and never read meanwhile. No directory fsync: one an unlink lost to a
/// power loss comes back as a `.removed` file, which the next pass unlinks.
pub(crate) fn unlink_removed(dir: &Path) -> (usize, u64) {
    unlink_removed_with(dir, |path| fs::remove_file(path))
}

/// [`unlink_removed`] with `unlink` in place of `remove_file` (tests make it fail).
pub(crate) fn unlink_removed_with(dir: &Path, unlink: impl Fn(&Path) -> std::io::Result<()>) -> (usize, u64) {
    let removed = match list(dir, false) {
        Ok(listing) => listing.removed,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not list the directory for pruned segments");
            return (0, 1);
        }
    };
    let mut failed = 0;
    for path in &removed {
        match unlink(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not unlink a pruned segment; retried by the next roll or open");
                failed += 1;
            }
        }
    }
    (removed.len(), failed)
}

/// Fsyncs a directory so that file creations and removals in it are durable.
pub(crate) fn sync_dir(io: &Io, dir: &Path) -> Result<(), JournalError> {
    io.sync_dir(dir).map_err(|e| JournalError::io("fsync directory", dir, e))
}

/// The wall clock as Unix nanoseconds: the timestamp [`Journal::append_now`]
/// stamps (0 if the clock is before 1970, `u64::MAX` after the year 2554).
///
/// [`Journal::append_now`]: crate::Journal::append_now
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_rejected() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_name(OsStr::new(&file_name(42))), Some(42));
        let highest = crate::format::MAX_SEQ;
        assert_eq!(parse_name(OsStr::new(&file_name(highest))), Some(highest));
        assert_eq!(parse_name(OsStr::new(&file_name(highest + 1))), None, "past the highest seq");
        assert_eq!(parse_name(OsStr::new(&file_name(u64::MAX))), None);
        for bad in [
            "00000000000000000000.seg",
            "0000000000000000042.seg",
            "00000000000000000042.seg.bak",
            "x.seg",
            "99999999999999999999.seg",
            "0000000000000000004a.seg",
        ] {
            assert_eq!(parse_name(OsStr::new(bad)), None, "{bad}");
        }
    }

    #[test]
    fn entries_are_sorted_as_the_listing_sorts_them() {
        let kind = |name: &str, is_file: bool| entry_kind(OsStr::new(name), is_file);
        assert_eq!(kind(&file_name(42), true), EntryKind::Segment { first_seq: 42 });
        assert_eq!(kind(&file_name(42), false), EntryKind::Stranger, "a directory named like a segment");
        for sidecar in ["00000000000000000042.idx", "00000000000000000042.idx.tmp"] {
            assert_eq!(kind(sidecar, true), EntryKind::Sidecar { first_seq: 42 }, "{sidecar}");
        }
        assert_eq!(kind("00000000000000000042.seg.removed", true), EntryKind::Removed { first_seq: 42 });
        for own in ["LOCK", "WATERMARK", "LEASE", "PRUNED", "PRUNED.tmp", "consumers"] {
            assert_eq!(kind(own, own != "consumers"), EntryKind::Own, "{own}");
        }
        for stranger in
            ["0000000000000000042.seg.removed", "x.seg.removed", "00000000000000000042.seg.salvage", "notes.txt"]
        {
            assert_eq!(kind(stranger, true), EntryKind::Stranger, "{stranger}");
        }
    }
}
