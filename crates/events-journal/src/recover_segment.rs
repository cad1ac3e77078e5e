//! Recovery of one segment at a time, for the open-time driver in
//! `recovery.rs`: [`check_sealed`] checks a sealed segment against the name
//! of the one after it and [`apply_fix`] rewrites it (torn tail cut, an
//! interrupted salvage finished, damage repaired); [`recover_newest`]
//! recovers the newest segment by the [`RecoveryMode`]. Also the
//! [`RecoveryAction`]s they report. The rewriting is `rebuild.rs`, the frame
//! walk `scan.rs`.
//!
//! Invariants: a check changes nothing on disk (the driver runs every check
//! before the first change); a torn tail of the newest segment is cut
//! exactly at the first byte of the first bad frame and fsynced; a sealed
//! segment is never truncated in place but replaced by a rewritten copy.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::JournalError;
use crate::format::{self, FRAME_HEADER_LEN, HEADER_LEN, SegmentHeader};
use crate::lease::Kept;
use crate::options::RecoveryMode;
use crate::rebuild::{self, Piece};
use crate::scan::{self, Scan, Tail};
use crate::seam::{Io, Step};
use crate::segment::{self, SegmentFile};
use crate::watermark::Watermark;

/// What recovery changed on disk, for the [`RecoveryReport`](crate::RecoveryReport).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// A torn tail was cut off (of the newest segment, or of a sealed one
    /// that lost its unsynced end in a power loss).
    TruncatedTornTail {
        /// The segment.
        path: PathBuf,
        /// Where it was cut (its new length).
        offset: u64,
        /// How many bytes were removed.
        bytes: u64,
    },
    /// The newest segment's header was torn (an interrupted creation); it was
    /// rewritten, and writing continues at the seq in its name.
    RewroteTornHeader {
        /// The segment.
        path: PathBuf,
    },
    /// A salvage mode cut the newest segment at damage in its middle.
    Salvaged {
        /// The damaged segment.
        path: PathBuf,
        /// Offset of the first bad frame (the segment's new length).
        offset: u64,
        /// Why that frame is bad.
        reason: String,
        /// Seqs of valid frames dropped ([`RecoveryMode::TruncateAtCorruption`]).
        dropped: Vec<std::ops::RangeInclusive<u64>>,
        /// Seqs of valid frames kept in new segments ([`RecoveryMode::SkipCorrupt`]).
        kept: Vec<std::ops::RangeInclusive<u64>>,
    },
    /// A damaged segment was rebuilt: by [`RecoveryMode::Repair`], by a
    /// salvage mode applied to the segment before an empty newest one, or
    /// to finish a salvage or repair that a crash interrupted. Every valid
    /// frame it held is kept (in it or in `created`); `missing` are the
    /// seqs readers now get a [`JournalError::Gap`] for.
    Repaired {
        /// The damaged segment (rebuilt under its own name).
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
        /// Seqs that no segment holds any more, as inclusive ranges.
        missing: Vec<std::ops::RangeInclusive<u64>>,
        /// New segments holding the valid frames found after the damage.
        created: Vec<PathBuf>,
    },
}

/// A segment header as the first step of recovery found it.
#[derive(Clone, Debug)]
pub(crate) enum Head {
    Valid(SegmentHeader),
    /// The newest segment's header is torn: an interrupted creation.
    Torn,
    /// Damaged in a way [`RecoveryMode::Repair`] rewrites (CRC, torn, invalid fields).
    Damaged(String),
}

pub(crate) fn file_len(seg: &SegmentFile) -> Result<u64, JournalError> {
    Ok(std::fs::metadata(&seg.path).map_err(|e| JournalError::io("stat segment", &seg.path, e))?.len())
}

/// What open does to one sealed segment.
#[derive(Debug)]
pub(crate) struct Fix {
    pub(crate) seg: SegmentFile,
    pub(crate) image: Vec<u8>,
    pub(crate) scan: Scan,
    /// Its own header, or `None` when it is damaged (a fresh one is written).
    pub(crate) header: Option<SegmentHeader>,
    pub(crate) reason: String,
    pub(crate) pieces: Vec<Piece>,
    /// Only a torn tail: reported as [`RecoveryAction::TruncatedTornTail`].
    pub(crate) torn_tail: bool,
    /// The first seq of the segment after it.
    pub(crate) next_first: u64,
}

impl Fix {
    /// The refusal of this fix when it is a torn tail that `kept` says
    /// cannot be one: it would cut seqs the last writer acknowledged.
    pub(crate) fn refusal(&self, kept: &Kept) -> Option<JournalError> {
        let (header, damage) = (self.header.as_ref()?, self.scan.damage.as_ref()?);
        // Bytes after its last seq (the next segment starts there) lose nothing.
        if !self.torn_tail || self.scan.next_seq >= self.next_first {
            return None;
        }
        let bytes = self.image.len() - self.scan.valid_end;
        let what = format!("the last {bytes} bytes of a sealed segment do not hold a valid frame ({})", damage.reason);
        kept.refusal(&self.seg.path, self.scan.valid_end as u64, header.epoch, self.scan.next_seq, &what)
    }
}

/// Checks one sealed segment against `next`, the segment after it.
///
/// Cheap unless `walk`: reads the last frame from the end of the file (its
/// last 4 KiB, more only when that frame is larger) and stops there when
/// its seq is below `next`'s name, the normal case. Otherwise, or when
/// `walk` is set, the whole segment is read and walked. Returns the file's
/// length and what to do, if anything.
pub(crate) fn check_sealed(
    file: &File,
    seg: &SegmentFile,
    head: &Head,
    next: &SegmentFile,
    walk: bool,
    mode: RecoveryMode,
    max_record: u32,
) -> Result<(u64, Option<Fix>), JournalError> {
    let len = file.metadata().map_err(|e| JournalError::io("stat segment", &seg.path, e))?.len();
    let n = next.first_seq;
    let header = match head {
        Head::Valid(h) => Some(*h),
        _ => None,
    };
    if !walk && header.is_some() {
        if len <= HEADER_LEN as u64 {
            return Ok((len, None));
        }
        let tail = tail_seq(file, len, max_record).map_err(|e| JournalError::io("read segment", &seg.path, e))?;
        if tail.is_some_and(|seq| seq < n) {
            return Ok((len, None));
        }
    }
    // Asked for fallibly: a length the allocator refuses (a sparse file of
    // a terabyte) is this open's error naming the file, not an abort.
    let mut image = Vec::new();
    image.try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX)).map_err(|e| {
        JournalError::io("read segment", &seg.path, std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))
    })?;
    image.resize(len as usize, 0);
    file.read_exact_at(&mut image, 0).map_err(|e| JournalError::io("read segment", &seg.path, e))?;
    let scan = scan::scan(&image, seg.first_seq);
    let last = scan.next_seq - 1;
    if last >= n {
        return Err(JournalError::Overlap {
            path: seg.path.clone(),
            last_seq: last,
            next: next.path.clone(),
            next_first: n,
        });
    }
    let head_reason = match head {
        Head::Damaged(reason) => Some(reason.clone()),
        _ => None,
    };
    let (reason, pieces, torn_tail) = match &scan.damage {
        None => match &head_reason {
            None => return Ok((len, None)),
            Some(reason) => (reason.clone(), rebuild::plan(&scan, seg.first_seq, true), false),
        },
        Some(d) => match d.classify(n) {
            Tail::Torn => {
                let reason = format!("torn tail of {} bytes in a sealed segment: {}", image.len() - d.offset, d.reason);
                (reason, rebuild::plan(&scan, seg.first_seq, false), header.is_some())
            }
            Tail::Superseded => {
                let reason = format!("an interrupted salvage or repair ({} at byte {})", d.reason, d.offset);
                (reason, rebuild::plan(&scan, seg.first_seq, true), false)
            }
            // Corruption in the middle of a sealed segment is left to the
            // reader (an error naming it) and to `verify`, unless an
            // operator asked for a repair or a salvage mode applies here.
            Tail::Corrupt if !walk || mode == RecoveryMode::Strict => return Ok((len, None)),
            // What follows the damage is not known: a salvage could drop
            // valid frames unseen and hand their seqs out again.
            Tail::Corrupt if d.search_stopped => {
                return Err(JournalError::corrupt(&seg.path, d.offset as u64, None, unsalvageable(&d.reason)));
            }
            Tail::Corrupt => {
                let keep_runs = mode != RecoveryMode::TruncateAtCorruption;
                let reason = format!("{} at byte {}", d.reason, d.offset);
                (reason, rebuild::plan(&scan, seg.first_seq, keep_runs), false)
            }
        },
    };
    let reason = match head_reason {
        Some(h) if !reason.starts_with(&h) => format!("{h}; {reason}"),
        _ => reason,
    };
    Ok((len, Some(Fix { seg: seg.clone(), image, scan, header, reason, pieces, torn_tail, next_first: n })))
}

/// The seq of the last frame of a segment of `len` bytes, read from its
/// end: `None` when no valid frame ends the file.
fn tail_seq(file: &File, len: u64, max_record: u32) -> std::io::Result<Option<u64>> {
    let region = len - HEADER_LEN as u64;
    // The last frame is at most this long if this configuration wrote it;
    // beyond that the caller walks the whole segment anyway.
    let limit = region.min(u64::from(max_record) + FRAME_HEADER_LEN as u64);
    let mut window = region.min(4096);
    loop {
        let mut buf = vec![0u8; window as usize];
        file.read_exact_at(&mut buf, len - window)?;
        if let Some(seq) = format::last_frame_seq(&buf) {
            return Ok(Some(seq));
        }
        if window >= limit {
            return Ok(None);
        }
        window = (window * 16).min(limit);
    }
}

pub(crate) fn apply_fix(
    io: &Io,
    dir: &Path,
    fix: Fix,
    template: &SegmentHeader,
) -> Result<RecoveryAction, JournalError> {
    let Fix { seg, image, scan, header, reason, pieces, torn_tail, .. } = fix;
    let header = header.unwrap_or(*template);
    let listed = segment::list(dir, false)?.segments;
    let created = rebuild::execute(io, dir, &seg, &image, &header, &pieces, &listed)?;
    if torn_tail {
        let (offset, bytes) = (scan.valid_end as u64, (image.len() - scan.valid_end) as u64);
        tracing::warn!(path = %seg.path.display(), offset, bytes, "cut the torn tail of a sealed segment");
        return Ok(RecoveryAction::TruncatedTornTail { path: seg.path, offset, bytes });
    }
    let last = pieces.last().map_or(seg.first_seq, |p| p.last_seq);
    let end = listed.iter().map(|s| s.first_seq).filter(|&s| s > last.max(seg.first_seq)).min();
    let missing = rebuild::missing(&pieces, end);
    tracing::warn!(path = %seg.path.display(), %reason, ?missing, "rebuilt a damaged segment");
    Ok(RecoveryAction::Repaired {
        path: seg.path,
        reason,
        missing,
        created: created.into_iter().map(|s| s.path).collect(),
    })
}

/// How [`recover_newest`] recovers: the mode, and under
/// [`RecoveryMode::Strict`] the acknowledged seqs no cut may reach.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mode {
    pub(crate) mode: RecoveryMode,
    pub(crate) kept: Option<Kept>,
    /// The lease of a last writer that crashed before the machine
    /// restarted ([`Vouched::rebooted`](crate::lease::Vouched)).
    pub(crate) rebooted: Option<crate::lease::Lease>,
    /// The previous writer's watermark: how far readers may have mapped
    /// the newest segment.
    pub(crate) previous: Option<Watermark>,
}

/// The newest segment after recovery.
#[derive(Debug)]
pub(crate) struct Newest {
    /// The segment to append to.
    pub(crate) seg: SegmentFile,
    /// Its header.
    pub(crate) header: SegmentHeader,
    /// Its length (where the next frame goes).
    pub(crate) len: u64,
    /// The next seq to assign.
    pub(crate) next_seq: u64,
    /// True when segment files were created or replaced.
    pub(crate) relist: bool,
    /// What was done.
    pub(crate) action: Option<RecoveryAction>,
    /// The highest seq of the valid frames a power-loss cut dropped: the
    /// open skips past it (they may be records whose damage only looked
    /// like a lost page).
    pub(crate) dropped_upto: Option<u64>,
}

/// Recovers the newest segment. `head` is its header, or why it is damaged
/// (only under [`RecoveryMode::Repair`], which rebuilds it with `template`).
pub(crate) fn recover_newest(
    io: &Io,
    dir: &Path,
    seg: &SegmentFile,
    head: Result<SegmentHeader, &String>,
    template: SegmentHeader,
    Mode { mode, kept, rebooted, previous }: Mode,
    listed: &[SegmentFile],
) -> Result<Newest, JournalError> {
    let file = File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
    // SAFETY: the writer holds the directory lock, so no other writer changes
    // this file while it is mapped; it is only read here and unmapped before
    // any truncation below (a rebuild replaces the file by a rename, which
    // leaves the mapped inode intact).
    let map = unsafe { Mmap::map(&file) }.map_err(|e| JournalError::io("mmap segment", &seg.path, e))?;
    // The valid frames are walked as far as they go. The search for valid
    // frames after damage looks only for frames that start before where the
    // data ends (each read whole, holes included: a file system may store a
    // block of zeros it wrote as one): past that are only holes, zeros
    // where no frame starts. A sparse file of any length (damaged or
    // hostile) then costs what it holds, not a search at every offset of
    // its length.
    let data = crate::mapping::search_end(&file, map.len());
    let scan = scan::scan_searching(&map, seg.first_seq, data);
    let file_len = map.len() as u64;
    let header = match head {
        Ok(h) => h,
        Err(reason) => {
            if let Some(damage) = scan.damage.as_ref().filter(|d| d.search_stopped) {
                let offset = damage.offset as u64;
                return Err(JournalError::corrupt(&seg.path, offset, None, unsalvageable(&damage.reason)));
            }
            // Repair of a damaged header: every valid frame is kept under a fresh header.
            let pieces = rebuild::plan(&scan, seg.first_seq, true);
            let created = rebuild::execute(io, dir, seg, &map, &template, &pieces, listed)?;
            let last = pieces.last().expect("the first piece exists");
            let missing = rebuild::missing(&pieces, None);
            tracing::warn!(path = %seg.path.display(), %reason, ?missing, "rebuilt the newest segment");
            let created_paths = created.iter().map(|s| s.path.clone()).collect();
            return Ok(Newest {
                seg: created.last().cloned().unwrap_or_else(|| seg.clone()),
                header: SegmentHeader { first_seq: last.first_seq, ..template },
                len: last.file_len(),
                next_seq: last.last_seq + 1,
                relist: true,
                dropped_upto: None,
                action: Some(RecoveryAction::Repaired {
                    path: seg.path.clone(),
                    reason: reason.clone(),
                    missing,
                    created: created_paths,
                }),
            });
        }
    };
    let clean = |len, next_seq, action| Newest {
        seg: seg.clone(),
        header,
        len,
        next_seq,
        relist: false,
        action,
        dropped_upto: None,
    };
    let cut = scan.valid_end as u64;
    // Its valid records end short of what the last writer acknowledged,
    // and no crash can have taken those: damage (only `Strict` has a `kept`).
    // (Corruption in the middle is refused under `Strict` below.) Not a
    // salvage's reservation of the seqs it drops, the header alone (a
    // salvage interrupted before its skip is finished here, in every mode).
    // A roll's or a skip's new segment is no exception: every seq the last
    // writer acknowledged lies before it. Frames all zeroed behind a kept
    // header are damage, as a zeroed last frame is; so is a segment cut
    // back to its header that the previous writer's watermark names past
    // it (a reservation is made while the watermark names an older one).
    let written_into = previous
        .as_ref()
        .is_some_and(|wm| wm.epoch == header.epoch && wm.segment == seg.first_seq && wm.offset > HEADER_LEN as u64);
    let reservation = scan.next_seq == seg.first_seq && file_len == HEADER_LEN as u64 && !written_into;
    // What a power loss leaves of a writer's unsynced tail: the machine
    // restarted after the writer crashed, so the pages it wrote and never
    // synced reached the disk in any order, a later one without an earlier
    // one, which reads as zeros. Under `Strict`, cut there as a torn tail
    // is when a whole sector of zeros lies between the damage and the next
    // valid frame, the damaged frame's own CRC fails and a whole frame is
    // gone besides it (`left_by_a_power_loss`). Anything else is refused as
    // corruption, below; so is damage in what the writer vouched for (as a
    // torn tail through it is: `short`). The frames after the hole go, and
    // their seqs are never handed out again, whatever they were: the open
    // skips past them (`dropped_upto`), and so does the next one, by a
    // lease held back before the cut, if this one does not finish.
    let power_lost = mode == RecoveryMode::Strict
        && rebooted.is_some_and(|l| l.epoch == header.epoch)
        && scan.damage.as_ref().is_some_and(|d| left_by_a_power_loss(&map, d, scan.next_seq));
    let short = match &scan.damage {
        _ if reservation => None,
        None => Some(format!("the newest segment ends at byte {cut}")),
        Some(d) if d.is_torn_tail() => {
            Some(format!("the newest segment's last {} bytes do not hold a valid frame ({})", file_len - cut, d.reason))
        }
        Some(d) if power_lost => Some(format!(
            "the newest segment's valid frames stop at byte {cut} ({}), before a sector of zeros",
            d.reason
        )),
        Some(_) => None,
    };
    let refused = kept.zip(short).and_then(|(k, what)| k.refusal(&seg.path, cut, header.epoch, scan.next_seq, &what));
    if let Some(e) = refused {
        return Err(e);
    }
    let Some(damage) = &scan.damage else {
        return Ok(clean(file_len, scan.next_seq, None));
    };
    if damage.is_torn_tail() || power_lost {
        if power_lost {
            let dropped: Vec<_> = damage.runs.iter().map(|r| r.first_seq..=r.last_seq).collect();
            tracing::warn!(path = %seg.path.display(), offset = cut, ?dropped, "a power loss left a hole in the last writer's unsynced records: cut there, the frames after it dropped");
        }
        // Past what readers may have mapped the file is cut in place;
        // before it (a salvage mode cutting acknowledged records), it is
        // replaced by a copy of its valid prefix (a rebuild's rename), so
        // a reader in another process still reading the old bytes never
        // touches a page past the new end (SIGBUS).
        let mapped = mapped_end(previous.as_ref(), seg, header.epoch);
        let relist = cut < mapped;
        let dropped_upto = power_lost.then(|| damage.runs.iter().map(|r| r.last_seq).max()).flatten();
        if let Some((lease, upto)) = rebooted.zip(dropped_upto) {
            // Durable before the cut: an open stopped after it (killed, or
            // refused by a later step) leaves a segment that ends cleanly,
            // and the next one skips past these seqs by this lease.
            crate::lease::hold_back(io, dir, lease, upto)?;
        }
        if relist {
            rebuild::execute(io, dir, seg, &map, &header, &rebuild::plan(&scan, seg.first_seq, false), listed)?;
        } else {
            drop(map);
            truncate(io, &seg.path, cut)?;
        }
        let action = RecoveryAction::TruncatedTornTail { path: seg.path.clone(), offset: cut, bytes: file_len - cut };
        tracing::warn!(path = %seg.path.display(), offset = cut, bytes = file_len - cut, "truncated a torn tail");
        return Ok(Newest { relist, dropped_upto, ..clean(cut, scan.next_seq, Some(action)) });
    }
    if damage.search_stopped {
        // As for a sealed segment: no salvage of what was not searched.
        return Err(JournalError::corrupt(&seg.path, cut, Some(scan.next_seq), unsalvageable(&damage.reason)));
    }
    let ranges: Vec<_> = damage.runs.iter().map(|r| r.first_seq..=r.last_seq).collect();
    let reason = damage.reason.clone();
    match mode {
        RecoveryMode::Strict => {
            Err(JournalError::corrupt(&seg.path, cut, Some(scan.next_seq), reason + ", and valid frames follow"))
        }
        RecoveryMode::TruncateAtCorruption => {
            // Every seq a CRC-valid frame carried may have been read: writing
            // goes on after the highest of them, in a segment created (and
            // made durable) *before* the damaged one loses them, so a crash
            // in between can never hand them out again.
            let max_seen = damage.runs.iter().map(|r| r.last_seq).max().unwrap_or(0);
            let reserved = (max_seen >= scan.next_seq)
                .then(|| {
                    let h = SegmentHeader { first_seq: max_seen + 1, created_at: segment::now_nanos(), ..header };
                    segment::create(io, dir, &h)
                        .map(|(_, path)| (SegmentFile { first_seq: h.first_seq, path, ino: 0 }, h))
                })
                .transpose()?;
            let pieces = rebuild::plan(&scan, seg.first_seq, false);
            rebuild::execute(io, dir, seg, &map, &header, &pieces, listed)?;
            tracing::warn!(path = %seg.path.display(), offset = cut, %reason, "salvage: truncated at corruption");
            let action = RecoveryAction::Salvaged {
                path: seg.path.clone(),
                offset: cut,
                reason,
                dropped: ranges,
                kept: Vec::new(),
            };
            Ok(match reserved {
                Some((m, h)) => Newest {
                    next_seq: m.first_seq,
                    seg: m,
                    header: h,
                    len: HEADER_LEN as u64,
                    relist: true,
                    action: Some(action),
                    dropped_upto: None,
                },
                None => Newest { relist: true, ..clean(cut, scan.next_seq, Some(action)) },
            })
        }
        RecoveryMode::SkipCorrupt | RecoveryMode::Repair => {
            let pieces = rebuild::plan(&scan, seg.first_seq, true);
            let created = rebuild::execute(io, dir, seg, &map, &header, &pieces, listed)?;
            tracing::warn!(path = %seg.path.display(), offset = cut, %reason, "salvage: skipped corrupt frames");
            let last = pieces.last().expect("the first piece exists");
            Ok(Newest {
                seg: created.last().cloned().unwrap_or_else(|| seg.clone()),
                header: SegmentHeader { first_seq: last.first_seq, ..header },
                len: last.file_len(),
                next_seq: last.last_seq + 1,
                relist: true,
                dropped_upto: None,
                action: Some(RecoveryAction::Salvaged {
                    path: seg.path.clone(),
                    offset: cut,
                    reason,
                    dropped: Vec::new(),
                    kept: ranges,
                }),
            })
        }
    }
}

/// How far readers may have mapped the newest segment `seg` (of `epoch`):
/// to the previous writer's watermark when it names this segment (readers
/// map no further); not at all when it names an older one; all of it when
/// it names a later one (this one was sealed then, and is the newest only
/// because a later one is gone: readers map sealed segments whole) or
/// when there was none to tell (a journal of a build before the
/// watermark, or a damaged one).
fn mapped_end(previous: Option<&Watermark>, seg: &SegmentFile, epoch: u64) -> u64 {
    match previous {
        Some(wm) if wm.epoch != epoch || wm.segment < seg.first_seq => 0,
        Some(wm) if wm.segment == seg.first_seq => wm.offset,
        _ => u64::MAX,
    }
}

/// Rewrites a torn header in place (truncate to zero, write, fdatasync),
/// then fsyncs the directory.
pub(crate) fn rewrite_header(
    io: &Io,
    dir: &Path,
    seg: &SegmentFile,
    header: &SegmentHeader,
) -> Result<(), JournalError> {
    io.op(Step::HeaderRewrite, || {
        let mut f = OpenOptions::new().write(true).truncate(true).open(&seg.path)?;
        f.write_all(&header.encode())?;
        f.sync_data()
    })
    .map_err(|e| JournalError::io("rewrite segment header", &seg.path, e))?;
    segment::sync_dir(io, dir)
}

fn truncate(io: &Io, path: &Path, len: u64) -> Result<(), JournalError> {
    let f = OpenOptions::new().write(true).open(path).map_err(|e| JournalError::io("open segment", path, e))?;
    io.op(Step::Truncate, || f.set_len(len)).map_err(|e| JournalError::io("truncate segment", path, e))?;
    io.sync_data(Step::TruncateSync, &f).map_err(|e| JournalError::io("fdatasync", path, e))
}

/// The reason a damage whose search for valid frames stopped at its budget
/// is refused in every recovery mode: what follows it was not searched, so
/// neither a salvage nor a repair can say which seqs it would drop (and
/// must never hand out again). Move the segment away to open the journal.
fn unsalvageable(reason: &str) -> String {
    format!("{reason}; not salvaged or repaired in any recovery mode (move the segment away to open the journal)")
}

/// Whether `damage` (where seq `expected` should be) in a segment image
/// `bytes` is what a power loss can leave of writes never synced: the
/// damaged frame fails its CRC (a frame with a valid CRC and a wrong seq
/// was written so), the first valid frame after it carries a seq past
/// `expected + 1`, and a whole aligned sector of zeros lies between them
/// (a page that never reached the disk; the search for frames ran to the
/// end).
fn left_by_a_power_loss(bytes: &[u8], damage: &scan::Damage, expected: u64) -> bool {
    const SECTOR: usize = 512;
    let Some(next) = damage.runs.first() else { return false };
    // At least one whole frame is gone besides the damaged one: a bad
    // frame alone (a flipped bit) leaves the next one readable, and its
    // own payload may hold the sector of zeros.
    if damage.crc_valid || damage.search_stopped || next.first_seq < expected.saturating_add(2) {
        return false;
    }
    let from = damage.offset.next_multiple_of(SECTOR);
    (from..next.start.saturating_sub(SECTOR - 1))
        .step_by(SECTOR)
        .any(|s| bytes.get(s..s + SECTOR).is_some_and(|sector| sector.iter().all(|&b| b == 0)))
}
