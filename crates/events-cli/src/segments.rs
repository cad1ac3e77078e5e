//! Segment files as the CLI sees them without opening a journal: the seq
//! in a segment's file name and its header. Neighbours: `inspect.rs` lists
//! them, `ops.rs` checks a directory holds one, `render.rs` reads the codec
//! tag. A leaf: it imports nothing of the CLI.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::Path;

use events::layers::journal::format::{HEADER_LEN, SegmentHeader};
use events::layers::journal::{EntryKind, entry_kind};

/// The seq in a segment file name (`<first_seq:020>.seg`), or `None` for any other
/// name, by the journal's own rule ([`entry_kind`]); whether the entry is a regular file
/// is the caller's to check.
pub(crate) fn segment_first_seq(name: &OsStr) -> Option<u64> {
    match entry_kind(name, true) {
        EntryKind::Segment { first_seq } => Some(first_seq),
        _ => None,
    }
}

/// The header of the segment at `path` (a message if it cannot be read or decoded).
pub(crate) fn read_header(path: &Path) -> Result<SegmentHeader, String> {
    let mut buf = [0u8; HEADER_LEN];
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    let n = file.read(&mut buf).map_err(|e| e.to_string())?;
    SegmentHeader::decode(&buf[..n]).map_err(|e| format!("{e:?}"))
}
