//! The single writer: [`Journal`] opens (lock, recovery, retention), appends
//! frames with one `write(2)` per batch, applies the [`SyncPolicy`] (with a
//! background thread for `Interval`), rolls segments and prunes them.
//! Recovery logic lives in `recovery.rs`, file naming in `segment.rs`.
//!
//! Invariants: seqs handed out are contiguous and never reused; `append`
//! returns only after `write(2)` (and `fdatasync` under
//! [`SyncPolicy::Always`]); after any failed write or fsync the writer is
//! poisoned and refuses every later append, because it can no longer tell
//! what is on disk; the active segment is never pruned.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::JournalError;
use crate::format::{self, HEADER_LEN, SegmentHeader};
use crate::lock::DirLock;
use crate::options::{JournalOptions, SyncPolicy};
use crate::recovery::{self, RecoveryAction};
use crate::seam::{Io, Step};
use crate::segment::{self, HeaderState, SegmentFile};

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
    /// What recovery changed, if anything.
    pub action: Option<RecoveryAction>,
    /// Segments removed by retention.
    pub pruned: Vec<PathBuf>,
    /// Entries of the directory that are not segments (left untouched).
    pub ignored: Vec<PathBuf>,
}

/// Counters of a [`Journal`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalStats {
    /// Records appended.
    pub appended: u64,
    /// `append` / `append_batch` calls that wrote something.
    pub batches: u64,
    /// Frame bytes written (headers of new segments excluded).
    pub bytes_written: u64,
    /// `fdatasync` calls on segments, background ones included.
    pub fsyncs: u64,
    /// Segments currently in the directory.
    pub segments: usize,
    /// Segment rolls.
    pub rolls: u64,
    /// Segments removed by retention.
    pub pruned: u64,
}

#[derive(Debug)]
struct SegInfo {
    first_seq: u64,
    path: PathBuf,
    bytes: u64,
    created_at: u64,
}

/// The single writer of a journal directory.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    opts: JournalOptions,
    epoch: u64,
    /// Oldest first; the last one is the active segment.
    segments: VecDeque<SegInfo>,
    active: File,
    active_len: u64,
    synced_len: u64,
    next_seq: u64,
    buf: Vec<u8>,
    failed: Option<String>,
    stats: JournalStats,
    background: Option<Background>,
    closed: bool,
    _lock: DirLock,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and becomes its only writer.
    ///
    /// In order: creates `dir` if missing; takes `<dir>/LOCK`; lists the
    /// segments (other files are ignored with a warning); checks every
    /// segment header (magic, version, CRC, epoch, codec tag), which reads
    /// 64 bytes per segment; recovers the newest segment only; applies
    /// retention; starts the `Interval` sync thread if asked.
    ///
    /// - **Empty directory**: creates segment `00000000000000000001.seg` with
    ///   a fresh random epoch; the first append gets seq 1.
    /// - **Clean journal**: continues after the last record of the newest segment.
    /// - **Torn tail** (the newest segment ends in an incomplete or
    ///   checksum-failing frame with nothing valid after it): truncates it
    ///   there and fsyncs, in every [`RecoveryMode`](crate::RecoveryMode). An empty or
    ///   header-torn newest segment continues at the seq in its file name.
    /// - **Corruption in the middle** of the newest segment (a bad frame with
    ///   a valid one after it): refused with [`JournalError::Corrupt`] naming
    ///   the file and offset under [`RecoveryMode::Strict`](crate::RecoveryMode::Strict)
    ///   (nothing is changed), salvaged as documented under the other modes.
    ///
    /// # Errors
    ///
    /// [`JournalError::Locked`] if another writer holds the directory;
    /// [`JournalError::BadMagic`], [`JournalError::UnsupportedVersion`],
    /// [`JournalError::HeaderCrc`], [`JournalError::EpochMismatch`],
    /// [`JournalError::CodecTagMismatch`] or [`JournalError::Corrupt`] naming
    /// the offending segment (the directory is left as it was);
    /// [`JournalError::Io`] when a system call fails.
    pub fn open(dir: impl AsRef<Path>, options: JournalOptions) -> Result<(Journal, RecoveryReport), JournalError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| JournalError::io("create directory", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let listing = segment::list(&dir, true)?;
        let mut report = RecoveryReport { ignored: listing.ignored, ..RecoveryReport::default() };
        let codec_tag = options.codec_tag;

        let mut segments = VecDeque::new();
        let (active_seg, len, next_seq, must_roll, epoch) =
            if let Some((newest, sealed)) = listing.segments.split_last() {
                let mut epoch = None;
                for seg in sealed {
                    let h = match segment::read_header(seg)? {
                        HeaderState::Valid(h) => h,
                        HeaderState::Torn => {
                            return Err(JournalError::corrupt(
                                &seg.path,
                                0,
                                Some(seg.first_seq),
                                "sealed segment has a torn header",
                            ));
                        }
                    };
                    check_identity(seg, &h, &mut epoch, codec_tag)?;
                    let bytes =
                        std::fs::metadata(&seg.path).map_err(|e| JournalError::io("stat segment", &seg.path, e))?.len();
                    segments.push_back(SegInfo {
                        first_seq: seg.first_seq,
                        path: seg.path.clone(),
                        bytes,
                        created_at: h.created_at,
                    });
                }
                match segment::read_header(newest)? {
                    HeaderState::Valid(h) => {
                        check_identity(newest, &h, &mut epoch, codec_tag)?;
                        let rec = recovery::recover_newest(&options.io, &dir, newest.clone(), h, options.recovery)?;
                        report.newest_records = rec.next_seq.saturating_sub(rec.header.first_seq);
                        report.action = rec.action;
                        if rec.created.is_empty() {
                            segments.push_back(SegInfo {
                                first_seq: h.first_seq,
                                path: newest.path.clone(),
                                bytes: rec.len,
                                created_at: h.created_at,
                            });
                        } else {
                            // SkipCorrupt: the damaged segment is now sealed and cut; the salvaged runs follow it.
                            let cut = match &report.action {
                                Some(RecoveryAction::Salvaged { offset, .. }) => *offset,
                                _ => HEADER_LEN as u64,
                            };
                            segments.push_back(SegInfo {
                                first_seq: h.first_seq,
                                path: newest.path.clone(),
                                bytes: cut,
                                created_at: h.created_at,
                            });
                            for seg in &rec.created {
                                let bytes = std::fs::metadata(&seg.path)
                                    .map_err(|e| JournalError::io("stat segment", &seg.path, e))?
                                    .len();
                                segments.push_back(SegInfo {
                                    first_seq: seg.first_seq,
                                    path: seg.path.clone(),
                                    bytes,
                                    created_at: rec.header.created_at,
                                });
                            }
                        }
                        (rec.seg, rec.len, rec.next_seq, rec.must_roll, h.epoch)
                    }
                    HeaderState::Torn => {
                        let epoch = epoch.unwrap_or_else(new_epoch);
                        let header = SegmentHeader {
                            epoch,
                            first_seq: newest.first_seq,
                            created_at: segment::now_nanos(),
                            codec_tag,
                        };
                        recovery::rewrite_header(&options.io, newest, &header)?;
                        tracing::warn!(path = %newest.path.display(), "rewrote the torn header of the newest segment");
                        report.action = Some(RecoveryAction::RewroteTornHeader { path: newest.path.clone() });
                        segments.push_back(SegInfo {
                            first_seq: newest.first_seq,
                            path: newest.path.clone(),
                            bytes: HEADER_LEN as u64,
                            created_at: header.created_at,
                        });
                        (newest.clone(), HEADER_LEN as u64, newest.first_seq, false, epoch)
                    }
                }
            } else {
                let epoch = new_epoch();
                let header = SegmentHeader { epoch, first_seq: 1, created_at: segment::now_nanos(), codec_tag };
                let (file, path) = segment::create(&options.io, &dir, &header)?;
                drop(file);
                report.created = true;
                segments.push_back(SegInfo {
                    first_seq: 1,
                    path: path.clone(),
                    bytes: HEADER_LEN as u64,
                    created_at: header.created_at,
                });
                (SegmentFile { first_seq: 1, path, ino: 0 }, HEADER_LEN as u64, 1, false, epoch)
            };

        let mut active = OpenOptions::new()
            .write(true)
            .open(&active_seg.path)
            .map_err(|e| JournalError::io("open segment", &active_seg.path, e))?;
        active.seek(SeekFrom::Start(len)).map_err(|e| JournalError::io("seek", &active_seg.path, e))?;

        let mut journal = Journal {
            dir,
            opts: options,
            epoch,
            segments,
            active,
            active_len: len,
            synced_len: len,
            next_seq,
            buf: Vec::new(),
            failed: None,
            stats: JournalStats::default(),
            background: None,
            closed: false,
            _lock: lock,
        };
        if must_roll {
            // A salvage dropped frames whose seqs must never be reused: start after them.
            journal.start_segment()?;
        }
        report.pruned = journal.prune_paths()?;
        if let SyncPolicy::Interval(d) = journal.opts.sync {
            journal.background =
                Some(Background::start(&journal.active, journal.active_path(), d, journal.opts.io.clone())?);
        }
        report.epoch = journal.epoch;
        report.segments = journal.segments.len();
        report.first_seq = journal.first_seq();
        report.next_seq = journal.next_seq;
        Ok((journal, report))
    }

    /// Appends one record and returns its seq.
    ///
    /// # Errors
    ///
    /// See [`Journal::append_batch`].
    pub fn append(&mut self, ts_nanos: u64, payload: &[u8]) -> Result<u64, JournalError> {
        self.append_batch([(ts_nanos, payload)]).map(|r| *r.start())
    }

    /// Appends records with consecutive seqs using one `write(2)` (and, under
    /// [`SyncPolicy::Always`], one `fdatasync`) for the whole batch, and returns
    /// their seqs. An empty batch writes nothing and returns an empty range
    /// (`next_seq..=next_seq - 1`). A batch never straddles two segments: the
    /// roll, if due, happens before it.
    ///
    /// # Errors
    ///
    /// [`JournalError::RecordTooLarge`] if a payload exceeds the limit (nothing
    /// of the batch is written); [`JournalError::Io`] if the write, the
    /// `fdatasync` or a roll fails, after which the writer is poisoned and
    /// every later call returns [`JournalError::Failed`]. On such a failure
    /// the segment is cut back to its length before the batch when possible.
    pub fn append_batch<'a, I>(&mut self, records: I) -> Result<RangeInclusive<u64>, JournalError>
    where
        I: IntoIterator<Item = (u64, &'a [u8])>,
    {
        self.check_healthy()?;
        let first = self.next_seq;
        let max = self.opts.max_record_bytes;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut seq = first;
        for (ts, payload) in records {
            if payload.len() > max as usize {
                self.buf = buf;
                return Err(JournalError::RecordTooLarge { len: payload.len(), max });
            }
            format::encode_frame(&mut buf, seq, ts, payload);
            seq += 1;
        }
        let result = if seq == first { Ok(()) } else { self.write_frames(&buf, seq - first) };
        if buf.capacity() > (64 << 20) {
            buf = Vec::new(); // do not hold on to the memory of one huge batch
        }
        self.buf = buf;
        result.map(|()| first..=seq - 1)
    }

    fn write_frames(&mut self, frames: &[u8], count: u64) -> Result<(), JournalError> {
        let len = frames.len() as u64;
        if self.active_len > HEADER_LEN as u64 && self.active_len + len > self.opts.segment_bytes {
            self.roll()?;
        }
        let before = self.active_len;
        if let Err(e) = self.opts.io.write_all(Step::AppendWrite, &self.active, frames) {
            let err = JournalError::io("write", self.active_path(), e);
            self.cut_back(before);
            return Err(self.poison(err));
        }
        self.active_len += len;
        self.next_seq += count;
        self.stats.appended += count;
        self.stats.batches += 1;
        self.stats.bytes_written += len;
        match self.opts.sync {
            SyncPolicy::Always => {
                if let Err(e) = self.opts.io.sync_data(Step::AppendSync, &self.active) {
                    let err = JournalError::io("fdatasync", self.active_path(), e);
                    self.cut_back(before);
                    return Err(self.poison(err));
                }
                self.stats.fsyncs += 1;
                self.synced_len = self.active_len;
            }
            SyncPolicy::Interval(_) => {
                if let Some(bg) = &self.background {
                    bg.shared.dirty.store(true, Ordering::Release);
                }
            }
            SyncPolicy::Never => {}
        }
        Ok(())
    }

    /// Best effort after a failed write or fsync: remove the partial batch so a
    /// reader in this run never sees records whose append failed.
    fn cut_back(&mut self, len: u64) {
        if self.opts.io.op(Step::Truncate, || self.active.set_len(len)).is_ok() {
            let _ = self.active.seek(SeekFrom::Start(len));
        }
    }

    fn poison(&mut self, err: JournalError) -> JournalError {
        tracing::error!(error = %err, "journal writer poisoned");
        self.failed = Some(err.to_string());
        err
    }

    fn check_healthy(&mut self) -> Result<(), JournalError> {
        if self.failed.is_none()
            && let Some(cause) = self.background.as_ref().and_then(|bg| bg.failure())
        {
            self.failed = Some(cause);
        }
        match &self.failed {
            Some(cause) => Err(JournalError::Failed { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    /// Forces everything appended so far to stable storage (`fdatasync`).
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if the writer is poisoned; [`JournalError::Io`]
    /// if the `fdatasync` fails, which poisons the writer.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.check_healthy()?;
        if let Err(e) = self.opts.io.sync_data(Step::Sync, &self.active) {
            let err = JournalError::io("fdatasync", self.active_path(), e);
            return Err(self.poison(err));
        }
        self.stats.fsyncs += 1;
        self.synced_len = self.active_len;
        Ok(())
    }

    /// Seals the active segment and starts a new one at [`next_seq`](Self::next_seq),
    /// then applies retention. Does nothing if the active segment holds no record.
    /// Appends roll on their own when a segment reaches
    /// [`segment_bytes`](JournalOptions::segment_bytes).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if syncing, creating or pruning fails; a failure
    /// before the new segment is in place poisons the writer.
    pub fn roll(&mut self) -> Result<(), JournalError> {
        self.check_healthy()?;
        if self.active_len <= HEADER_LEN as u64 {
            return Ok(());
        }
        if self.opts.sync != SyncPolicy::Never && self.synced_len < self.active_len {
            if let Err(e) = self.opts.io.sync_data(Step::RollSync, &self.active) {
                let err = JournalError::io("fdatasync", self.active_path(), e);
                return Err(self.poison(err));
            }
            self.stats.fsyncs += 1;
        }
        self.start_segment()?;
        self.stats.rolls += 1;
        self.prune()?;
        Ok(())
    }

    fn start_segment(&mut self) -> Result<(), JournalError> {
        let header = SegmentHeader {
            epoch: self.epoch,
            first_seq: self.next_seq,
            created_at: segment::now_nanos(),
            codec_tag: self.opts.codec_tag,
        };
        let (file, path) = match segment::create(&self.opts.io, &self.dir, &header) {
            Ok(x) => x,
            Err(e) => return Err(self.poison(e)),
        };
        self.stats.fsyncs += 1;
        if let Some(last) = self.segments.back_mut() {
            last.bytes = self.active_len;
        }
        if let Some(bg) = &self.background
            && let Err(e) = bg.switch(&file, &path)
        {
            return Err(self.poison(e));
        }
        self.segments.push_back(SegInfo {
            first_seq: header.first_seq,
            path,
            bytes: HEADER_LEN as u64,
            created_at: header.created_at,
        });
        self.active = file;
        self.active_len = HEADER_LEN as u64;
        self.synced_len = HEADER_LEN as u64;
        Ok(())
    }

    /// Applies the retention policy now and returns how many segments were
    /// removed. Runs on its own at open and after every roll; never removes
    /// the active segment.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if a removal or the directory fsync fails.
    pub fn prune(&mut self) -> Result<usize, JournalError> {
        self.prune_paths().map(|p| p.len())
    }

    fn prune_paths(&mut self) -> Result<Vec<PathBuf>, JournalError> {
        if let Some(last) = self.segments.back_mut() {
            last.bytes = self.active_len;
        }
        let plan: Vec<(u64, u64)> = self.segments.iter().map(|s| (s.bytes, s.created_at)).collect();
        let n = self.opts.retention.plan(&plan, segment::now_nanos());
        let mut removed = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(seg) = self.segments.pop_front() else { break };
            match self.opts.io.op(Step::PruneRemove, || std::fs::remove_file(&seg.path)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let err = JournalError::io("remove segment", &seg.path, e);
                    self.segments.push_front(seg);
                    return Err(err);
                }
            }
            removed.push(seg.path);
        }
        if !removed.is_empty() {
            segment::sync_dir(&self.opts.io, &self.dir)?;
            self.stats.pruned += removed.len() as u64;
        }
        Ok(removed)
    }

    /// The journal's epoch: a random id fixed when the directory was created.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The earliest retained seq (equal to [`next_seq`](Self::next_seq) when
    /// the journal holds no record).
    pub fn first_seq(&self) -> u64 {
        self.segments.front().map_or(self.next_seq, |s| s.first_seq)
    }

    /// The last seq handed out (0 when nothing was ever written).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The seq the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters since open.
    pub fn stats(&self) -> JournalStats {
        let bg = self.background.as_ref().map_or(0, |b| b.shared.fsyncs.load(Ordering::Relaxed));
        JournalStats { fsyncs: self.stats.fsyncs + bg, segments: self.segments.len(), ..self.stats }
    }

    fn active_path(&self) -> &Path {
        self.segments.back().map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    /// Stops the sync thread, syncs the active segment and releases the lock.
    /// Dropping a `Journal` does the same on a best-effort basis.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if the writer was poisoned;
    /// [`JournalError::Io`] if the final `fdatasync` fails.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.closed = true;
        if let Some(mut bg) = self.background.take() {
            bg.stop();
        }
        self.check_healthy()?;
        self.opts
            .io
            .sync_data(Step::Sync, &self.active)
            .map_err(|e| JournalError::io("fdatasync", self.active_path(), e))
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        if let Some(mut bg) = self.background.take() {
            bg.stop();
        }
        if self.failed.is_none() {
            let _ = self.opts.io.sync_data(Step::Sync, &self.active);
        }
    }
}

fn check_identity(
    seg: &SegmentFile,
    h: &SegmentHeader,
    epoch: &mut Option<u64>,
    codec_tag: u32,
) -> Result<(), JournalError> {
    let expected = *epoch.get_or_insert(h.epoch);
    if h.epoch != expected {
        return Err(JournalError::EpochMismatch { path: seg.path.clone(), expected, found: h.epoch });
    }
    if h.codec_tag != codec_tag {
        return Err(JournalError::CodecTagMismatch { path: seg.path.clone(), expected: codec_tag, found: h.codec_tag });
    }
    Ok(())
}

/// A fresh random epoch (never 0), from the process's randomly keyed hasher.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(segment::now_nanos());
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// The `SyncPolicy::Interval` thread: `fdatasync`s a clone of the active
/// segment's handle every interval when something was written.
#[derive(Debug)]
struct Background {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<BgShared>,
}

#[derive(Debug)]
struct BgShared {
    file: Mutex<(File, PathBuf)>,
    dirty: AtomicBool,
    failed: Mutex<Option<String>>,
    fsyncs: AtomicU64,
}

impl Background {
    fn start(active: &File, path: &Path, every: Duration, io: Io) -> Result<Background, JournalError> {
        let file = active.try_clone().map_err(|e| JournalError::io("clone handle", path, e))?;
        let shared = Arc::new(BgShared {
            file: Mutex::new((file, path.to_path_buf())),
            dirty: AtomicBool::new(false),
            failed: Mutex::new(None),
            fsyncs: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<()>();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("events-journal-sync".into())
            .spawn(move || {
                // The channel is the timer and the stop signal at once: a message
                // or a disconnect ends the loop without waiting for the interval.
                while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    if !s.dirty.swap(false, Ordering::AcqRel) {
                        continue;
                    }
                    let guard = s.file.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Err(e) = io.sync_data(Step::BackgroundSync, &guard.0) {
                        let err = JournalError::io("fdatasync", &guard.1, e);
                        tracing::error!(error = %err, "background sync failed");
                        *s.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
                        return;
                    }
                    s.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| JournalError::io("spawn sync thread", path, e))?;
        Ok(Background { stop: Some(tx), thread: Some(thread), shared })
    }

    fn switch(&self, file: &File, path: &Path) -> Result<(), JournalError> {
        let clone = file.try_clone().map_err(|e| JournalError::io("clone handle", path, e))?;
        *self.shared.file.lock().unwrap_or_else(PoisonError::into_inner) = (clone, path.to_path_buf());
        Ok(())
    }

    fn failure(&self) -> Option<String> {
        self.shared.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
