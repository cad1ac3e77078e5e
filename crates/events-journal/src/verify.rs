//! `verify(dir)`: a read-only full scan of every segment that lists every
//! problem (segment, offset, seq, what) instead of stopping at the first.
//! It shares the frame walk of `recovery.rs` and takes no lock, so it can run
//! beside a live writer (the active segment's unfinished tail then shows up
//! as a torn tail).
//!
//! Invariant: `verify` never writes to the directory.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::JournalError;
use crate::recovery;
use crate::segment;

/// One problem found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The segment.
    pub path: PathBuf,
    /// Byte offset in the segment.
    pub offset: u64,
    /// The seq expected there, when known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub what: String,
}

/// The result of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files examined.
    pub segments: usize,
    /// Valid records found (including valid records after damage).
    pub records: u64,
    /// Bytes of segment files examined.
    pub bytes: u64,
    /// The journal's epoch (from the oldest readable header).
    pub epoch: Option<u64>,
    /// The first seq held by a segment.
    pub first_seq: Option<u64>,
    /// The last valid seq found.
    pub last_seq: Option<u64>,
    /// Every problem, in directory order.
    pub problems: Vec<Problem>,
    /// Entries of the directory that are not segments.
    pub ignored: Vec<PathBuf>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Scans every segment of the journal in `dir` in full: headers, every
/// frame's CRC, seq contiguity inside and across segments. A torn tail or a
/// torn header of the newest segment is listed too (the next
/// [`Journal::open`](crate::Journal::open) repairs it).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use events_journal::{Journal, JournalOptions, verify};
/// let (mut journal, _) = Journal::open(dir.path(), JournalOptions::new())?;
/// journal.append(0, b"one")?;
/// journal.close()?;
/// let report = verify(dir.path())?;
/// assert!(report.is_ok());
/// assert_eq!(report.records, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`JournalError::Io`] if the directory cannot be listed. Problems with
/// segments are reported, not returned as errors.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, JournalError> {
    let dir = dir.as_ref();
    let listing = segment::list(dir, false)?;
    let mut report = VerifyReport { ignored: listing.ignored, ..VerifyReport::default() };
    let count = listing.segments.len();
    let mut next_expected: Option<u64> = None;
    let mut problems = Vec::new();
    for (i, seg) in listing.segments.iter().enumerate() {
        let newest = i + 1 == count;
        report.segments += 1;
        let mut problem = |offset: u64, seq: Option<u64>, what: String| {
            problems.push(Problem { path: seg.path.clone(), offset, seq, what });
        };
        let map = match File::open(&seg.path).and_then(|f| {
            // SAFETY: read-only map; verify only reads, and a concurrent
            // writer only appends beyond the mapped length.
            unsafe { Mmap::map(&f) }
        }) {
            Ok(m) => m,
            Err(e) => {
                problem(0, None, format!("cannot read: {e}"));
                continue;
            }
        };
        report.bytes += map.len() as u64;
        let header = match segment::check_header(seg, &map) {
            Ok(Some(h)) => h,
            Ok(None) => {
                let what =
                    if newest { "torn header (the next open rewrites it)" } else { "torn header in a sealed segment" };
                problem(0, Some(seg.first_seq), what.into());
                continue;
            }
            Err(e) => {
                problem(0, None, e.to_string());
                continue;
            }
        };
        match report.epoch {
            None => report.epoch = Some(header.epoch),
            Some(e) if e != header.epoch => {
                problem(16, None, format!("epoch {:#018x} where {e:#018x} was expected", header.epoch));
            }
            Some(_) => {}
        }
        report.first_seq.get_or_insert(header.first_seq);
        if let Some(exp) = next_expected {
            if header.first_seq > exp {
                problem(24, Some(exp), format!("records {exp}..{} are missing before this segment", header.first_seq));
            } else if header.first_seq < exp {
                problem(
                    24,
                    Some(header.first_seq),
                    format!("segment overlaps the previous one (which ends at {})", exp - 1),
                );
            }
        }
        let scan = recovery::scan(&map, header.first_seq);
        report.records += scan.records;
        let mut last = scan.next_seq - 1;
        if let Some(damage) = scan.damage {
            let torn = damage.is_torn_tail();
            let what = if torn && newest {
                format!(
                    "torn tail of {} bytes: {} (the next open truncates it)",
                    map.len() - damage.offset,
                    damage.reason
                )
            } else {
                damage.reason.clone()
            };
            problem(damage.offset as u64, Some(scan.next_seq), what);
            let mut expected = scan.next_seq;
            for run in &damage.runs {
                if run.first_seq != expected {
                    problem(
                        run.start as u64,
                        Some(expected),
                        format!("records {expected}..{} are missing", run.first_seq),
                    );
                }
                report.records += run.last_seq - run.first_seq + 1;
                expected = run.last_seq + 1;
                last = run.last_seq;
                if run.end != map.len() {
                    problem(run.end as u64, Some(expected), "damaged frame after salvageable records".into());
                }
            }
        }
        if last >= header.first_seq {
            report.last_seq = Some(last);
        }
        next_expected = Some(last + 1);
    }
    report.problems = problems;
    Ok(report)
}
