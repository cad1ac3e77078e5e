//! Opening: [`Journal::open`] validates options, creates the directory
//! durably, takes the lock, runs recovery (`recovery.rs`), applies
//! retention and starts the `Interval` sync thread (`background.rs`), and
//! reports what it found and did in a [`RecoveryReport`];
//! [`Journal::repair`] is an open in `Repair` mode followed by a close.
//! Appending, syncing, rolling and pruning are `writer.rs`.
//!
//! Invariant: a refused open changes nothing on disk that a reader relies
//! on: what recovery changed is as a crash would leave it, and the last
//! writer's watermark is put back only where it still holds; the watermark tells
//! readers not to map the newest segment before recovery may cut it, and
//! the writer publishes itself open only once recovery and retention are
//! done.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::background::Background;
use crate::commit::Pipeline;
use crate::error::JournalError;
use crate::format::HEADER_LEN;
use crate::lease::{self, Lease, Leaser, Vouched};
use crate::lock::DirLock;
use crate::options::{JournalOptions, SyncPolicy};
use crate::prune::Removal;
use crate::recover_segment::RecoveryAction;
use crate::recovery;
use crate::reserve::Reserving;
use crate::seam::{Io, Step};
use crate::segment;
use crate::stats::JournalStats;
use crate::watermark::{Publisher, WriterState};
use crate::writer::Journal;

/// What [`Journal::open`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// True if the journal was created by this open (no segment existed).
    pub created: bool,
    /// The journal's epoch.
    pub epoch: u64,
    /// Segments after recovery and retention.
    pub segments: usize,
    /// Earliest retained seq.
    pub first_seq: u64,
    /// The seq the next append gets.
    pub next_seq: u64,
    /// Records found in the newest segment.
    pub newest_records: u64,
    /// What recovery changed in the newest segment, if anything.
    pub action: Option<RecoveryAction>,
    /// What recovery changed in the other segments: torn tails cut (a
    /// power loss after an unsynced roll), interrupted salvages finished,
    /// segments rebuilt by [`RecoveryMode::Repair`](crate::RecoveryMode::Repair).
    pub sealed: Vec<RecoveryAction>,
    /// Segments removed by retention.
    pub pruned: Vec<PathBuf>,
    /// Entries of the directory that are not segments (left untouched).
    pub ignored: Vec<PathBuf>,
    /// Seqs the next append skips (none after a clean close, a process
    /// crash or under `SyncPolicy::Always`, unless damage or a power-loss
    /// cut took records):
    /// the previous writer acknowledged records before syncing them
    /// (`Never`, `Interval`) and did not close, and the machine rebooted
    /// since, so a power loss may have taken records it handed out up to
    /// its durable seq lease (`<dir>/LEASE`); or recovery kept fewer
    /// records than the previous writer's watermark says it acknowledged
    /// (a salvage mode cut damaged ones); or a `Strict` open after a power
    /// loss cut a hole in the newest segment and dropped the frames after
    /// it (under every policy: see `docs/FORMAT.md`). Those seqs are never
    /// handed out again; readers see them as one [`JournalError::Gap`].
    pub skipped: Option<std::ops::RangeInclusive<u64>>,
}

impl Journal {
    /// Creates directory `dir` if it is missing, with any missing parents,
    /// and fsyncs the parent of each directory it created: what
    /// [`open`](Self::open) does first, for a caller that needs the
    /// directory before the open (an open finding it there fsyncs only its
    /// immediate parent, best effort, and only where no lease says an open
    /// finished there). Through `options`' fault seam.
    ///
    /// # Errors
    ///
    /// [`JournalError::InvalidOption`] as [`open`](Self::open) refuses it
    /// (before anything is created); [`JournalError::Io`] naming the
    /// directory whose creation or fsync failed.
    pub fn create_dir(dir: impl AsRef<Path>, options: &JournalOptions) -> Result<(), JournalError> {
        // As `open` does first: options that cannot work are refused before
        // anything is created.
        options.validate()?;
        segment::create_dir(&options.io, dir.as_ref())
    }

    /// Opens (or creates) the journal in `dir` and becomes its only writer.
    ///
    /// In order: refuses impossible options; creates `dir` if missing (and
    /// fsyncs its parent: [`create_dir`](Self::create_dir)); takes
    /// `<dir>/LOCK`; lists the segments (other files are ignored with a
    /// warning); checks every segment header (magic, version, CRC, epoch,
    /// codec tag), which reads 64 bytes per segment; compares each sealed
    /// segment's last frame with the next segment's name (a few KiB from
    /// its end); recovers the newest segment; fsyncs `dir` (names a killed
    /// writer created may not be durable yet) and, where no lease says an
    /// open finished there, `dir`'s parent (best effort); applies
    /// retention; starts the `Interval` sync thread if asked.
    ///
    /// - **Empty directory**: creates segment `00000000000000000001.seg` with
    ///   a fresh random epoch; the first append gets seq 1.
    /// - **Clean journal**: continues after the last record of the newest segment.
    /// - **Torn tail** (the newest segment ends in an incomplete or
    ///   checksum-failing frame with nothing valid after it): truncates it
    ///   there and fsyncs, in every [`RecoveryMode`](crate::RecoveryMode). An empty or
    ///   header-torn newest segment continues at the seq in its file name.
    /// - **Acknowledged records cut** (a torn tail, or a newest segment
    ///   ending early, that would lose seqs the last writer acknowledged
    ///   and no crash since can have taken: it closed cleanly, or it ran in
    ///   this boot, or it synced before acknowledging): damage, not a torn
    ///   write. (Every open first makes the sealed segments durable, so that
    ///   its own clean close vouches for them: after a writer that did not
    ///   close cleanly, those its sealer may not have reached; after an
    ///   older build, all.) Refused with
    ///   [`JournalError::Corrupt`] naming the file and the first seq lost
    ///   under [`RecoveryMode::Strict`](crate::RecoveryMode::Strict)
    ///   (nothing is changed); cut by the salvage modes, which then skip
    ///   the lost seqs (`skipped`).
    /// - **Corruption in the middle** of the newest segment (a bad frame with
    ///   a valid one after it): refused with [`JournalError::Corrupt`] naming
    ///   the file and offset under [`RecoveryMode::Strict`](crate::RecoveryMode::Strict)
    ///   (nothing is changed), salvaged as documented under the other modes.
    ///   Except what a power loss leaves after the machine restarted (a
    ///   hole of zeros in the last writer's unsynced tail): `Strict` cuts
    ///   it as a torn tail and skips past the dropped seqs
    ///   (`docs/FORMAT.md`).
    /// - **A sealed segment with a torn tail** (it lost its unsynced end in a
    ///   power loss): the tail is cut, in every mode unless it cuts
    ///   acknowledged records as above; readers see a
    ///   [`JournalError::Gap`] for the seqs it held.
    /// - **An interrupted salvage or repair**: a rebuild whose pieces are
    ///   in place is finished, in every mode, and so is the skip past an
    ///   interrupted `TruncateAtCorruption`'s reservation. The damaged
    ///   segment such a salvage had not rebuilt yet is sealed now: the next
    ///   open in a salvage mode rebuilds it while the newest segment is
    ///   still empty, and [`Journal::repair`] does at any time; under
    ///   `Strict` it stays as corruption in the middle of a sealed segment
    ///   does (readers stop there with an error naming it).
    /// - **Overlapping segments** (a sealed segment's records reach the seq
    ///   in the next segment's name): refused with [`JournalError::Overlap`]
    ///   naming both files.
    ///
    /// `docs/FORMAT.md` ("Recovery at open") gives the exact rules.
    ///
    /// # Errors
    ///
    /// [`JournalError::Locked`] if another writer holds the directory;
    /// [`JournalError::BadMagic`], [`JournalError::UnsupportedVersion`],
    /// [`JournalError::HeaderCrc`], [`JournalError::EpochMismatch`],
    /// [`JournalError::CodecTagMismatch`], [`JournalError::Corrupt`] or
    /// [`JournalError::Overlap`] naming the offending segment (the directory
    /// is left as it was); [`JournalError::InvalidOption`] for
    /// `SyncPolicy::Interval(Duration::ZERO)` (before anything is created);
    /// [`JournalError::Io`] when a system call fails.
    pub fn open(dir: impl AsRef<Path>, options: JournalOptions) -> Result<(Journal, RecoveryReport), JournalError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let span = tracing::info_span!("journal_open", dir = %dir.display(), epoch = tracing::field::Empty, next_seq = tracing::field::Empty);
        let _entered = span.enter();
        segment::create_dir(&options.io, &dir)?;
        let lock = DirLock::acquire(&options.io, &dir)?;
        // Before recovery may cut anything, tell readers not to map the newest segment.
        let watermark = Publisher::open(&options.io, &dir)?;
        let previous_lease = lease::read(&dir)?;
        let boot = options.io.boot_id();
        // What the last writer acknowledged and no crash since can have
        // taken: a torn tail through it is damage (refused under `Strict`);
        // and whether a power loss may have left holes in what it never synced.
        let vouched = Vouched::by(previous_lease, watermark.previous().map(|wm| (wm.epoch, wm.seq)), boot);
        let listing = segment::list(&dir, true)?;
        let rec = tracing::info_span!("journal_recover", segments = listing.segments.len(), mode = ?options.recovery)
            .in_scope(|| {
            recovery::recover(&options.io, &dir, &listing.segments, &options, vouched, watermark.previous())
        })?;
        let mut report = RecoveryReport {
            created: rec.created,
            newest_records: rec.newest_records,
            action: rec.action,
            sealed: rec.sealed,
            ignored: listing.ignored,
            ..RecoveryReport::default()
        };
        let active_path = rec.segments.last().expect("recovery leaves at least one segment").path.clone();
        let dropped_upto = rec.dropped_upto;
        let mut active = OpenOptions::new()
            .write(true)
            .open(&active_path)
            .map_err(|e| JournalError::io("open segment", &active_path, e))?;
        active.seek(SeekFrom::Start(rec.active_len)).map_err(|e| JournalError::io("seek", &active_path, e))?;

        let reserving = Reserving::at_open(options.sync);
        // Under `Never` and `Interval`, nothing this writer synced yet:
        // records a killed writer left unsynced may be there (recovery keeps
        // them), and a seal syncs them. Under `Always` the open syncs them
        // below, and a failure of that sync must not cut back what the last
        // writer acknowledged (the cut-back starts at `synced_len`).
        let synced_len = if options.sync == SyncPolicy::Always { rec.active_len } else { HEADER_LEN as u64 };
        let lease = Leaser::open(&options.io, &dir, previous_lease)?;
        let mut journal = Journal {
            dir,
            opts: options,
            epoch: rec.epoch,
            segments: rec.segments.into(),
            active: Arc::new(active),
            active_len: rec.active_len,
            reserved: rec.active_len,
            reserving,
            synced_len,
            next_seq: rec.next_seq,
            acked: rec.next_seq - 1,
            pipeline: Pipeline::default(),
            buf: Vec::new(),
            failed: None,
            stats: JournalStats::default(),
            background: None,
            sealer: None,
            closed: false,
            watermark,
            lease,
            lock,
        };
        // A step below that fails refuses the open: the writer is marked
        // failed, so its drop neither publishes `Closed` nor records the
        // lease closed for a writer that never opened (the watermark is
        // put back as it was found, unless the segment it names changed:
        // `Publisher`'s drop).
        let mut finish = || -> Result<(), JournalError> {
            if journal.opts.sync == SyncPolicy::Always && journal.active_len > HEADER_LEN as u64 {
                // Records a killed writer wrote but never synced survive in the
                // page cache, and recovery keeps them: under `Always` this
                // writer hands out none of them unsynced (its lease says so).
                journal.sync_active(Step::Sync)?;
            }
            // Before this writer's lease vouches for them (`Kept`): every sealed
            // segment after a writer that did not say it had done so (an older
            // build, or none), what the last writer's sealer may not have
            // reached after one that did not close.
            match previous_lease {
                Some(l) if l.sealed_synced && !l.open => {}
                Some(l) if l.sealed_synced => {
                    // Counted in the listing taken before recovery: the
                    // segments a salvage just made (already durable) must
                    // not push the dead writer's own out of the window:
                    // the queue's, the one in progress, and the one a
                    // roll waiting for room in the queue was handing over
                    // (it made the next segment first: `roll.rs`).
                    let queued = listing.segments.iter().rev().nth(crate::sealer::QUEUE + 2);
                    journal.sync_sealed(queued.map_or(0, |s| s.first_seq))?;
                }
                _ => journal.sync_sealed(0)?,
            }
            // The names too: a segment a killed writer created, or a
            // rebuild renamed, before it fsynced the directory is there
            // only in the page cache, and a power loss would take it, with
            // every record this writer appends and syncs into it.
            segment::sync_dir(&journal.opts.io, &journal.dir)?;
            // And the journal's own name, where no writer finished an open
            // (none left a lease): the one that made the directory may have
            // been killed before it fsynced the parent. Best effort
            // (`sync_parent`): an open never needed to. (One level: the
            // parents a killed first open made above it are left.)
            if previous_lease.is_none() {
                sync_parent(&journal.opts.io, &journal.dir)?;
            }
            let lost = previous_lease.and_then(|l| l.lost_upto(journal.epoch, boot, journal.next_seq));
            // The last writer's watermark names the seqs it acknowledged, which
            // readers may have been handed (and a follower reports as latest
            // while this writer opens). Recovery keeping fewer (damage that
            // reads as a torn tail, a salvage) must not hand them out again.
            let acked = journal
                .watermark
                .previous()
                .filter(|wm| wm.epoch == journal.epoch && wm.seq >= journal.next_seq)
                .map(|wm| wm.seq);
            // Nor the seqs of frames a power-loss cut dropped (FORMAT.md).
            let dropped = dropped_upto.filter(|&seq| seq >= journal.next_seq);
            if let Some(upto) = lost.max(acked).max(dropped) {
                report.skipped = Some(journal.next_seq..=upto);
                let named_by = if acked == Some(upto) {
                    journal.dir.join(crate::watermark::WATERMARK_FILE)
                } else if lost == Some(upto) {
                    journal.dir.join(crate::lease::LEASE_FILE)
                } else {
                    journal.segments.back().map_or_else(|| journal.dir.clone(), |s| s.path.clone())
                };
                journal.skip_past(upto, &named_by)?;
            }
            // Durable before any seq is handed out, and after the skip (the
            // previous lease is the only record of how far it must go).
            let synced_acks = journal.opts.sync == SyncPolicy::Always;
            // Never past `MAX_SEQ` (a lease naming a seq past it reads as none).
            let upto = journal.next_seq.saturating_add(journal.opts.io.lease_step() - 1).min(crate::format::MAX_SEQ);
            let first =
                Lease { open: true, synced_acks, sealed_synced: true, generation: 0, epoch: journal.epoch, upto, boot };
            journal.lease.begin(first)?;
            // A retention failure is logged and counted, never a reason to
            // refuse the journal; a directory found replaced under the open
            // (the pass failed the writer) is.
            let (pruned, failure) = journal.apply_retention(Removal::Inline);
            report.pruned = pruned;
            if let Some(e @ JournalError::DirectoryReplaced { .. }) = failure {
                return Err(e);
            }
            journal.health()?;
            journal.sweep_sidecars();
            if let SyncPolicy::Interval(d) = journal.opts.sync {
                journal.background =
                    Some(Background::start(&journal.active, journal.active_path(), d, journal.opts.io.clone())?);
            }
            journal.publish(WriterState::Open)?;
            Ok(())
        };
        if let Err(e) = finish() {
            journal.failed.get_or_insert_with(|| format!("the open was refused: {e}"));
            if report.action.is_some() {
                // Recovery changed the files: the last writer's record (a
                // `Closed` one, which readers trust with no lock held) may
                // name records recovery cut. This open's synced
                // `Recovering` record stays: readers take the files as a
                // crash left them, and the next open's rules are the same.
                journal.watermark.keep_recovering();
            }
            return Err(e);
        }
        report.epoch = journal.epoch;
        report.segments = journal.segments.len();
        report.first_seq = journal.first_seq();
        report.next_seq = journal.next_seq;
        span.record("epoch", report.epoch).record("next_seq", report.next_seq);
        tracing::info!(
            created = report.created,
            segments = report.segments,
            first_seq = report.first_seq,
            repaired = report.action.is_some() || !report.sealed.is_empty(),
            pruned = report.pruned.len(),
            "journal opened"
        );
        Ok((journal, report))
    }

    /// `fdatasync`s the sealed segments whose first seq is `since` or
    /// later: after a writer that did not close cleanly, those in its
    /// sealer's queue, the one being sealed and the one a roll was handing
    /// over (under `Never` the sealer syncs a roll's segment after it;
    /// every earlier one it synced, in roll order); all of them after a
    /// writer whose lease does not say its open did this (an older build).
    /// So once this writer's lease is written, every sealed segment is
    /// durable: its clean close, or its syncing every record under
    /// `Always`, vouches for all of them. Cheap: a clean file's
    /// `fdatasync` writes nothing.
    fn sync_sealed(&self, since: u64) -> Result<(), JournalError> {
        let sealed = self.segments.len().saturating_sub(1);
        for seg in self.segments.iter().take(sealed).filter(|s| s.first_seq >= since) {
            let file = std::fs::File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
            self.opts.io.sync_data(Step::SealedSync, &file).map_err(|e| JournalError::io("fdatasync", &seg.path, e))?;
        }
        Ok(())
    }

    /// Repairs the journal in `dir` and closes it: [`Journal::open`] with
    /// [`RecoveryMode::Repair`](crate::RecoveryMode::Repair) and no
    /// retention (whatever `options` says), then [`Journal::close`]. Every
    /// damaged range, in any segment, becomes an explicit gap
    /// ([`JournalError::Gap`] for readers); every valid record stays
    /// readable (the next open applies its own retention); no seq is
    /// reused. Reads every segment in full. Safe to run again after a crash.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use events_journal::{Journal, JournalOptions};
    /// let (mut journal, _) = Journal::open(dir.path(), JournalOptions::new())?;
    /// journal.append(0, b"one")?;
    /// journal.close()?;
    /// let report = Journal::repair(dir.path(), JournalOptions::new())?;
    /// assert!(report.sealed.is_empty() && report.action.is_none()); // nothing to repair
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Journal::open`], except that header damage (CRC, torn, invalid
    /// fields) and frame damage are repaired instead of refused;
    /// [`JournalError::Overlap`] if two segments hold the same seqs.
    pub fn repair(dir: impl AsRef<Path>, options: JournalOptions) -> Result<RecoveryReport, JournalError> {
        // Without retention: the open's pass would remove what `options`
        // does not keep (the default keeps 64 segments), and a repair that
        // splits a damaged segment adds segments to count.
        let options = options.recovery(crate::RecoveryMode::Repair).retention(crate::Retention::unlimited());
        let (journal, report) = Journal::open(dir, options)?;
        journal.close()?;
        Ok(report)
    }
}

/// Fsyncs the parent of journal directory `dir`, so that `dir`'s own entry
/// is durable. A parent this process may not open (`EACCES`, `EPERM`), or
/// one on a file system that cannot fsync a directory (`EINVAL`,
/// `ENOTSUP`: a read-only image the journal is mounted under; `EROFS`), is
/// logged and passed over: no open ever needed it.
fn sync_parent(io: &Io, dir: &Path) -> Result<(), JournalError> {
    let parent = segment::parent_of(dir);
    let passed_over = [libc::EACCES, libc::EPERM, libc::EINVAL, libc::ENOTSUP, libc::EROFS];
    match io.sync_dir(parent) {
        Err(e) if e.raw_os_error().is_some_and(|code| passed_over.contains(&code)) => {
            tracing::warn!(dir = %parent.display(), error = %e, "cannot fsync the journal directory's parent");
            Ok(())
        }
        Err(e) => Err(JournalError::io("fsync directory", parent, e)),
        Ok(()) => Ok(()),
    }
}
