//! `verify(dir)`: a read-only full scan of every segment that lists every
//! problem (segment, offset, seq, what) instead of stopping at the first.
//! It shares the frame walk of `recovery.rs` and takes no lock, so it can run
//! beside a live writer (where its lock can be tested without taking it:
//! Linux; elsewhere it reads everything, as if the writer had died): then
//! it checks what the writer's watermark says is
//! acknowledged (read before the listing, as readers do), not a frame the
//! writer is in the middle of writing nor a segment it created since, and a
//! segment retention took out after the listing is no problem. The zeros of
//! the space a writer reserves ahead of its appends (`reserve.rs`) are
//! counted in [`VerifyReport::reserved`], not as a problem, but only past
//! what the watermark says was acknowledged (by a live writer, or by one
//! that closed cleanly): before that, zeros are damage, and a record the
//! watermark names that is not there is missing.
//!
//! Invariants: `verify` never writes to the directory; it reads the newest
//! segment as a private copy, never a map, because a live writer trims that
//! file when it rolls.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::JournalError;
use crate::format::SegmentHeader;
use crate::mapping::Bytes;
use crate::recovery;
use crate::scan;
use crate::segment;
use crate::watermark::WriterState;

/// "records a..=b are missing": an inclusive range, so one missing record
/// reads `40001..=40001` and is never mistaken for two.
fn missing(first: u64, last: u64) -> String {
    format!("records {first}..={last} are missing")
}

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
    /// What is wrong (the path is in [`path`](Self::path), never repeated here;
    /// seq ranges are inclusive: `records 7..=9 are missing`).
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
    /// Zero bytes after the newest segment's last frame: the space a writer
    /// under `SyncPolicy::Always` reserves ahead of its appends, or what a
    /// crash left of it (the next open cuts it). Not a problem: no frame
    /// was ever written there. 0 beside a live writer, whose newest
    /// segment is read only up to its watermark, and after a clean close,
    /// which trims it: zeros where the watermark says records were
    /// acknowledged are a problem.
    pub reserved: u64,
    /// The journal's epoch (from the oldest readable header).
    pub epoch: Option<u64>,
    /// The first seq held by a segment.
    pub first_seq: Option<u64>,
    /// The last valid seq found.
    pub last_seq: Option<u64>,
    /// Every problem, in directory order.
    pub problems: Vec<Problem>,
    /// Entries of the directory that are not segments (sidecar indexes
    /// are not listed: each is checked against its segment, and a problem
    /// with one is reported under the segment's path).
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
/// [`Journal::open`](crate::Journal::open) repairs it; a zeroed header with
/// data after it is damage that open refuses and
/// [`Journal::repair`](crate::Journal::repair) rebuilds).
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
    // A live writer that rolls fast may take out every segment the
    // watermark covered before they are read: when a check beside a live
    // writer found no record, look again.
    for attempt in 0..8 {
        let (acked, listing) = live_listing(dir)?;
        let report = check(dir, acked, listing)?;
        if report.records > 0 || acked.is_none_or(|a| !a.live) {
            return Ok(report);
        }
        // 1 ms, 2 ms, ... 128 ms: a writer busy rolling gets the time to pause.
        std::thread::sleep(std::time::Duration::from_millis(1 << attempt));
    }
    let (acked, listing) = live_listing(dir)?;
    check(dir, acked, listing)
}

/// What the watermark says was acknowledged: by a live writer (whose
/// newest segment is read only up to it), or by one that closed cleanly
/// (whose close trimmed the reserved space: its last segment ends with its
/// last frame). Up to there, zeros are damage, never reserved space, and
/// the records up to `seq` must all be there.
#[derive(Clone, Copy, Debug)]
struct Acked {
    live: bool,
    epoch: u64,
    seq: u64,
    segment: u64,
    offset: u64,
}

/// [`verify`] of one listing, bounded by a live writer's acknowledged end.
fn check(dir: &Path, acked: Option<Acked>, listing: segment::Listing) -> Result<VerifyReport, JournalError> {
    let live = acked.filter(|a| a.live).map(|a| (a.segment, a.offset));
    let mut report = VerifyReport { ignored: listing.ignored, ..VerifyReport::default() };
    let count = listing.segments.len();
    let mut next_expected: Option<u64> = None;
    let mut problems = Vec::new();
    // Segments the live writer's retention took out after the listing.
    let mut vanished = Vec::new();
    for (i, seg) in listing.segments.iter().enumerate() {
        if live.is_some_and(|(active, _)| seg.first_seq > active) {
            break; // created by the live writer after its watermark: nothing acknowledged yet
        }
        let bound = live.filter(|&(active, _)| active == seg.first_seq).map(|(_, offset)| offset);
        let newest = i + 1 == count || bound.is_some();
        let mut problem = |offset: u64, seq: Option<u64>, what: String| {
            problems.push(Problem { path: seg.path.clone(), offset, seq, what });
        };
        let (map, search_end) = match image(&seg.path, newest, bound) {
            Ok(m) => m,
            // The live writer's retention took it out after the listing, or
            // that of a writer that opened since (its retention at open,
            // oldest first: only with every segment listed before it gone
            // too, else one in the middle gone is damage, reported).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && (live.is_some() || (i == vanished.len() && crate::lock::is_held(dir) == Some(true))) =>
            {
                next_expected = None;
                vanished.push(seg.first_seq);
                continue;
            }
            Err(e) => {
                report.segments += 1;
                problem(0, None, format!("cannot read: {e}"));
                continue;
            }
        };
        report.segments += 1;
        report.bytes += map.len() as u64;
        let (header, read) = match segment::check_header(seg, &map) {
            Ok(Some(h)) => (h, true),
            Ok(None) if newest && crate::format::only_zeros_after_header(&map) => {
                problem(0, Some(seg.first_seq), "torn header (the next open rewrites it)".into());
                continue;
            }
            Ok(None) if !newest => {
                problem(0, Some(seg.first_seq), "torn header in a sealed segment".into());
                continue;
            }
            Ok(None) => {
                // Damage, not a crash: a header is durable before any byte
                // follows it. Open refuses it and `Journal::repair` rebuilds
                // it: the frames after it are checked, as for other damage
                // repair rewrites.
                let what = "zeroed or torn header with data after it (open refuses it; `Journal::repair` rebuilds it)";
                problem(0, Some(seg.first_seq), what.into());
                (SegmentHeader { epoch: 0, first_seq: seg.first_seq, created_at: 0, codec_tag: 0 }, false)
            }
            // Damage `Journal::repair` rewrites: the frames after it are still
            // checked, from the seq in the file name.
            Err(e) if recovery::repairable(&e) => {
                // The problem names the file in its own field: the message does not repeat it.
                problem(0, None, e.detail());
                (SegmentHeader { epoch: 0, first_seq: seg.first_seq, created_at: 0, codec_tag: 0 }, false)
            }
            Err(e) => {
                problem(0, None, e.detail());
                // Not a segment of this journal and format: what follows it cannot be judged from it.
                next_expected = None;
                continue;
            }
        };
        match report.epoch {
            _ if !read => {}
            None => report.epoch = Some(header.epoch),
            Some(e) if e != header.epoch => {
                problem(16, None, format!("epoch {:#018x} where {e:#018x} was expected", header.epoch));
            }
            Some(_) => {}
        }
        report.first_seq.get_or_insert(header.first_seq);
        if let Some(exp) = next_expected {
            if header.first_seq > exp {
                problem(24, Some(exp), format!("{} before this segment", missing(exp, header.first_seq - 1)));
            } else if header.first_seq < exp {
                problem(
                    24,
                    Some(header.first_seq),
                    format!("segment overlaps the previous one (which holds records up to {})", exp - 1),
                );
            }
        }
        let scan = scan::scan_searching(&map, header.first_seq, search_end);
        report.records += scan.records;
        let mut last = scan.next_seq - 1;
        let damaged = scan.damage.is_some();
        // Where the watermark says this segment's acknowledged records end.
        let acked_end = acked.filter(|a| a.segment == seg.first_seq && a.epoch == header.epoch).map(|a| a.offset);
        let acked_damage = |offset: usize| acked_end.is_some_and(|end| (offset as u64) < end);
        if let Some(damage) = scan
            .damage
            .as_ref()
            .filter(|d| newest && d.is_torn_tail() && zeros(&map[d.offset..]) && !acked_damage(d.offset))
        {
            report.reserved = (map.len() - damage.offset) as u64;
        } else if let Some(damage) = scan.damage {
            let next_first = listing.segments.get(i + 1).map(|s| s.first_seq);
            let tail = next_first.map(|n| damage.classify(n));
            let torn_bytes = map.len() - damage.offset;
            let what = match tail {
                None if acked_damage(damage.offset) => format!(
                    "{} in acknowledged records (the watermark says they run to offset {})",
                    damage.reason,
                    acked_end.unwrap_or(0)
                ),
                None if damage.is_torn_tail() => {
                    format!("torn tail of {torn_bytes} bytes: {} (the next open truncates it)", damage.reason)
                }
                Some(scan::Tail::Torn) => format!(
                    "torn tail of {torn_bytes} bytes in a sealed segment: {} (the next open cuts it)",
                    damage.reason
                ),
                Some(scan::Tail::Superseded) => format!(
                    "{}; the valid records after it are also in the later segments (an interrupted salvage or \
                     repair, which the next open finishes)",
                    damage.reason
                ),
                _ => damage.reason.clone(),
            };
            problem(damage.offset as u64, Some(scan.next_seq), what);
            let mut expected = scan.next_seq;
            // Records the later segments hold are counted there.
            let runs = damage.runs.iter().filter(|r| next_first.is_none_or(|n| r.first_seq < n));
            for run in runs {
                if run.first_seq != expected {
                    problem(run.start as u64, Some(expected), missing(expected, run.first_seq - 1));
                }
                report.records += run.last_seq - run.first_seq + 1;
                expected = run.last_seq + 1;
                last = run.last_seq;
                if run.end != map.len() {
                    problem(run.end as u64, Some(expected), "damaged frame after salvageable records".into());
                }
            }
        }
        if !newest
            && !damaged
            && let Some(what) = crate::sidecar::check(&seg.path, &map, scan.next_seq)
        {
            problem(0, None, what);
        }
        if last >= header.first_seq {
            report.last_seq = Some(last);
        }
        next_expected = Some(last + 1);
    }
    // Acknowledged records past the last one found (the segment cut at a
    // frame boundary, or its end zeroed): lost, whatever the next open does.
    // Only what the watermark's own segment should hold: after a skip its
    // segment may be empty and the ones before it pruned. Not when that
    // segment is gone: the live writer rolled past it twice and pruned it
    // after the listing (its records were there, and are no more).
    let last = report.last_seq.unwrap_or(0);
    let checkable = |a: &Acked| !vanished.contains(&a.segment);
    if let Some(a) =
        acked.filter(|a| report.epoch == Some(a.epoch) && a.seq >= a.segment && last < a.seq && checkable(a))
    {
        let path = dir.join(segment::file_name(a.segment));
        if !problems.iter().any(|p| p.path == path) {
            let first = (last + 1).max(a.segment);
            let what = format!("{} (the watermark says they were acknowledged)", missing(first, a.seq));
            problems.push(Problem { path, offset: a.offset, seq: Some(first), what });
        }
    }
    if let Some(problem) = check_pruned(dir, report.epoch) {
        problems.push(problem);
    }
    report.problems = problems;
    Ok(report)
}

/// A live writer's acknowledged end (segment, offset), read before the
/// listing so that the listing holds the segment it names, and the
/// listing. Looked at again while retention removed that segment in
/// between; a writer that keeps doing so gets its listing checked whole.
fn live_listing(dir: &Path) -> Result<(Option<Acked>, segment::Listing), JournalError> {
    for _ in 0..8 {
        let acked = crate::watermark::read(dir)?.and_then(|wm| {
            let live = match wm.state {
                WriterState::Open if crate::lock::is_held(dir) == Some(true) => true,
                WriterState::Closed => false,
                _ => return None,
            };
            Some(Acked { live, epoch: wm.epoch, seq: wm.seq, segment: wm.segment, offset: wm.offset })
        });
        let listing = segment::list(dir, false)?;
        let live = acked.filter(|a| a.live);
        if live.is_none_or(|a| listing.segments.iter().any(|s| s.first_seq == a.segment)) {
            return Ok((acked, listing));
        }
    }
    Ok((None, segment::list(dir, false)?))
}

/// A segment's bytes: a map of a sealed segment, which never changes; a
/// private copy of the newest, which a live writer may trim (a map of it
/// would fault past the new end), no longer than `bound` (a live writer's
/// acknowledged end in it). With where its data ends: past it are only
/// holes of a sparse file, where no frame starts (the search for frames
/// after damage stops there, so a sparse terabyte costs what it holds).
fn image(path: &Path, newest: bool, bound: Option<u64>) -> std::io::Result<(Bytes, usize)> {
    let file = File::open(path)?;
    if newest {
        let len = file.metadata()?.len().min(bound.unwrap_or(u64::MAX));
        let copy = crate::mapping::read_copy(&file, len)?;
        let end = copy.len();
        return Ok((Bytes::Copy(copy), end));
    }
    // SAFETY: read-only map of a sealed segment, which no writer changes.
    let map = unsafe { Mmap::map(&file) }?;
    let end = crate::mapping::search_end(&file, map.len());
    Ok((Bytes::Map(map), end))
}

/// Whether `bytes` are all zero.
fn zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// The retention summary (`PRUNED`), if there is one: damaged, or of another
/// epoch, it is a problem (filtered readers then reset instead of using it,
/// and the next prune rewrites it).
fn check_pruned(dir: &Path, epoch: Option<u64>) -> Option<Problem> {
    let path = dir.join(crate::pruned::PRUNED_FILE);
    let what = match crate::own_file::read_regular(&path, crate::pruned::PRUNED_MAX_BYTES) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => format!("retention summary unreadable: {e}"),
        Ok(bytes) => match crate::pruned::PrunedLog::decode(&bytes) {
            Err(reason) => format!("retention summary damaged: {reason}"),
            Ok(log) if epoch.is_some_and(|e| e != log.epoch) => {
                format!("retention summary of another journal (epoch {}, not {})", log.epoch, epoch.unwrap_or(0))
            }
            Ok(_) => return None,
        },
    };
    Some(Problem { path, offset: 0, seq: None, what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Journal, JournalOptions};

    /// A live writer rolled twice after `verify` took its listing and
    /// watermark, and retention removed the segment that watermark names:
    /// its records are not missing, they are gone with their segment.
    /// `verify` had reported "records … are missing (the watermark says
    /// they were acknowledged)" beside a healthy writer (a flake of
    /// `verify_live_writer.rs` under load).
    #[test]
    fn the_watermarks_segment_pruned_after_the_listing_is_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        j.append(1, b"one").unwrap();
        j.roll().unwrap();
        j.append(2, b"two").unwrap();
        let listing = segment::list(dir.path(), false).unwrap();
        let newest = listing.segments.last().unwrap().clone();
        let acked = Acked { live: true, epoch: j.epoch(), seq: 2, segment: newest.first_seq, offset: 64 + 24 + 3 };
        std::fs::remove_file(&newest.path).unwrap();
        let report = check(dir.path(), Some(acked), listing).unwrap();
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!(report.records, 1);
    }

    /// Listed while no writer ran (the watermark says closed), the oldest
    /// segment is removed by the retention of a writer that opened since
    /// and holds the journal: no problem. It was reported as "cannot read",
    /// on a healthy journal, since only a writer live at the listing was
    /// looked for.
    #[test]
    fn a_segment_pruned_by_a_writer_that_opened_after_the_listing_is_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        j.append(1, b"one").unwrap();
        j.roll().unwrap();
        j.append(2, b"two").unwrap();
        j.close().unwrap();
        let (acked, listing) = live_listing(dir.path()).unwrap();
        assert!(acked.is_some_and(|a| !a.live));
        let (_writer, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        std::fs::remove_file(&listing.segments[0].path).unwrap();
        let report = check(dir.path(), acked, listing).unwrap();
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!(report.records, 1);
    }
}
