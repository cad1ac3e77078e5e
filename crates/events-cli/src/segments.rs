//! Segment files as the CLI sees them without opening a journal: the seq
//! in a segment's file name and its header. Neighbours: `inspect.rs` lists
//! them, `ops.rs` checks a directory holds one, `render.rs` reads the codec
//! tag. A leaf: it imports nothing of the CLI.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::Path;

use events::layers::journal::format::{HEADER_LEN, SegmentHeader};

/// The seq in a segment file name (`<first_seq:020>.seg`, as the journal names them), or
/// `None` for any other name. The same rule as the journal's own (crate-private)
/// `segment::parse_name`: exactly 20 digits and a seq above 0. The journal exports no
/// name parser, and `verify` scans every frame, which `inspect` must not.
pub(crate) fn segment_first_seq(name: &OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&seq| seq > 0)
}

/// The header of the segment at `path` (a message if it cannot be read or decoded).
pub(crate) fn read_header(path: &Path) -> Result<SegmentHeader, String> {
    let mut buf = [0u8; HEADER_LEN];
    let mut file = fs::File::open(path).map_err(|e| e.to_string())?;
    let n = file.read(&mut buf).map_err(|e| e.to_string())?;
    SegmentHeader::decode(&buf[..n]).map_err(|e| format!("{e:?}"))
}
