//! Durable named consumers: the checkpoint file of each one in
//! `<journal dir>/consumers/<name>` ([`ConsumerFile`]), listing and deleting
//! them, and the name rules. The bytes are drawn in `docs/FORMAT.md`
//! ("Consumer checkpoints"). The writer's retention reads these files
//! through [`list_consumers`] to pin segments (`pin.rs`); the segment
//! listing (`segment.rs`) skips the `consumers` directory, so readers,
//! recovery and `verify` never see it.
//!
//! Invariant: a checkpoint is only ever replaced by a newer one, never by a
//! torn or later-but-unacknowledged one. The file holds two fixed slots; a
//! commit `pwrite`s the slot that does *not* hold the current checkpoint and
//! `fdatasync`s it, so whatever a crash tears, the other slot still holds
//! the previous checkpoint, and reading picks the valid slot (magic,
//! version, CRC) with the highest generation. A file appears in the
//! directory only complete (staged under a dot-name, fsynced, then
//! hard-linked into place without clobbering), so a crash while creating
//! leaves no half-written checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::seam::{Io, Step};
use crate::segment::{self, now_nanos};

pub use crate::segment::CONSUMERS_DIR;

/// The longest consumer name, in bytes.
pub const MAX_CONSUMER_NAME: usize = 64;

/// Length of one checkpoint slot; the file holds slot A at 0 and slot B at 40.
pub const CHECKPOINT_SLOT_LEN: usize = 40;

/// Length of a checkpoint file: two slots.
pub const CHECKPOINT_FILE_LEN: usize = 2 * CHECKPOINT_SLOT_LEN;

const MAGIC: [u8; 4] = *b"EVCK";
const VERSION: u8 = 1;
/// The generation is stored in 7 bytes (see `docs/FORMAT.md`).
const MAX_GENERATION: u64 = (1 << 56) - 1;
/// Where a commit marks its generation synced once its `fdatasync`
/// returned: 8 bytes after the slots, the generation (7 bytes LE) and
/// [`SYNCED_TAG`]. A hint for retention's pin, read by this boot only.
const SYNCED_MARK_AT: usize = CHECKPOINT_FILE_LEN;
const SYNCED_MARK_LEN: usize = 8;
const SYNCED_TAG: u8 = b'S';

/// A consumer's durable position: it has processed every record up to and
/// including `seq` of the journal with epoch `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last seq the consumer has processed (0: none).
    pub seq: u64,
    /// The epoch of the journal `seq` belongs to.
    pub epoch: u64,
    /// Incremented by every commit, starting at 1 when the file is created;
    /// odd generations live in slot A, even ones in slot B.
    pub generation: u64,
    /// When the checkpoint was written, unix nanoseconds.
    pub written_nanos: u64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; CHECKPOINT_SLOT_LEN] {
        let mut b = [0u8; CHECKPOINT_SLOT_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5..12].copy_from_slice(&self.generation.to_le_bytes()[..7]);
        b[12..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..28].copy_from_slice(&self.epoch.to_le_bytes());
        b[28..36].copy_from_slice(&self.written_nanos.to_le_bytes());
        let crc = crc32fast::hash(&b[..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The checkpoint in one slot, or why the slot is not valid.
    fn decode(b: &[u8; CHECKPOINT_SLOT_LEN]) -> Result<Checkpoint, &'static str> {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if b[0..4] != MAGIC {
            return Err("bad magic");
        }
        if u32::from_le_bytes(b[36..40].try_into().expect("4 bytes")) != crc32fast::hash(&b[..36]) {
            return Err("checksum mismatch");
        }
        if b[4] != VERSION {
            return Err("unsupported checkpoint format version");
        }
        let mut generation = [0u8; 8];
        generation[..7].copy_from_slice(&b[5..12]);
        let generation = u64::from_le_bytes(generation);
        if generation == 0 {
            return Err("generation 0");
        }
        if u64_at(12) > crate::format::MAX_SEQ {
            return Err("a seq past any journal's");
        }
        Ok(Checkpoint { generation, seq: u64_at(12), epoch: u64_at(20), written_nanos: u64_at(28) })
    }

    /// Byte offset of the slot that holds this checkpoint's generation.
    fn slot_offset(generation: u64) -> u64 {
        if generation % 2 == 1 { 0 } else { CHECKPOINT_SLOT_LEN as u64 }
    }
}

/// What a checkpoint file holds: its checkpoint, and the checkpoint it
/// may still go back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// The checkpoint: the valid slot with the highest generation.
    pub(crate) newest: Checkpoint,
    /// The other slot's checkpoint while the file does not mark the newest
    /// synced; `None` once it does, or when the other slot is not valid.
    /// Until its `fdatasync` returns, a commit's slot is in the page cache,
    /// where every reader sees it, but a power loss takes the file back to
    /// the other slot (the last commit synced: commits are one at a time,
    /// under the file's lock), and so does a failed `fdatasync`, which
    /// zeroes it. Retention's pin goes by both (`Held::seqs_in`): pinned on
    /// the newest alone, it had removed segments that the checkpoint the
    /// file went back to still needed.
    pub(crate) fallback: Option<Checkpoint>,
}

impl Held {
    /// The lowest and the highest seq of the journal of `epoch` the file
    /// may hold after a power loss; `None` when neither checkpoint is of
    /// that journal.
    pub(crate) fn seqs_in(&self, epoch: u64) -> Option<(u64, u64)> {
        let of_epoch = |c: &Checkpoint| (c.epoch == epoch).then_some(c.seq);
        match (of_epoch(&self.newest), self.fallback.as_ref().and_then(of_epoch)) {
            (Some(a), Some(b)) => Some((a.min(b), a.max(b))),
            (Some(one), None) | (None, Some(one)) => Some((one, one)),
            (None, None) => None,
        }
    }
}

/// What the bytes of a checkpoint file hold ([`Held`]), or why neither
/// slot is valid. Missing bytes (a short file) read as zeros, i.e. an
/// invalid slot (or no synced mark).
fn decode_file(bytes: &[u8]) -> Result<Held, String> {
    let mut slots = [[0u8; CHECKPOINT_SLOT_LEN]; 2];
    for (i, slot) in slots.iter_mut().enumerate() {
        let from = (i * CHECKPOINT_SLOT_LEN).min(bytes.len());
        let to = ((i + 1) * CHECKPOINT_SLOT_LEN).min(bytes.len());
        slot[..to - from].copy_from_slice(&bytes[from..to]);
    }
    match (Checkpoint::decode(&slots[0]), Checkpoint::decode(&slots[1])) {
        (Ok(a), Ok(b)) => {
            let (newest, other) = if b.generation > a.generation { (b, a) } else { (a, b) };
            let marked =
                bytes.get(SYNCED_MARK_AT..SYNCED_MARK_AT + SYNCED_MARK_LEN) == Some(&synced_mark(newest.generation));
            Ok(Held { newest, fallback: (!marked).then_some(other) })
        }
        (Ok(one), Err(_)) | (Err(_), Ok(one)) => Ok(Held { newest: one, fallback: None }),
        (Err(a), Err(b)) => Err(format!("no valid checkpoint slot (slot A: {a}; slot B: {b})")),
    }
}

/// The mark a commit of `generation` writes once it is synced.
fn synced_mark(generation: u64) -> [u8; SYNCED_MARK_LEN] {
    let mut mark = generation.to_le_bytes();
    mark[7] = SYNCED_TAG;
    mark
}

fn read_checkpoint(file: &File, path: &Path) -> Result<Held, JournalError> {
    let mut bytes = [0u8; CHECKPOINT_FILE_LEN + SYNCED_MARK_LEN];
    let mut got = 0;
    while got < bytes.len() {
        match file.read_at(&mut bytes[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io("read checkpoint", path, e)),
        }
    }
    decode_file(&bytes[..got]).map_err(|reason| JournalError::CheckpointCorrupt { path: path.to_path_buf(), reason })
}

/// Refuses a consumer name that is not 1..=[`MAX_CONSUMER_NAME`] bytes of
/// `[A-Za-z0-9._-]` or that starts with `.` (the names of hidden and
/// staging files).
///
/// # Errors
///
/// [`JournalError::InvalidConsumerName`] naming the reason.
pub fn validate_consumer_name(name: &str) -> Result<(), JournalError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_CONSUMER_NAME {
        "longer than 64 bytes"
    } else if name.starts_with('.') {
        "starts with '.'"
    } else if name.contains(['/', '\\', '\0']) {
        "contains a path separator or NUL"
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        "contains a character outside [A-Za-z0-9._-]"
    } else {
        return Ok(());
    };
    Err(JournalError::InvalidConsumerName { name: name.to_owned(), reason })
}

/// The path of consumer `name`'s checkpoint in journal dir `dir`.
///
/// # Errors
///
/// [`JournalError::InvalidConsumerName`] if `name` is not a valid name.
pub fn consumer_path(dir: &Path, name: &str) -> Result<PathBuf, JournalError> {
    validate_consumer_name(name)?;
    Ok(dir.join(CONSUMERS_DIR).join(name))
}

/// The open checkpoint file of one named consumer.
#[derive(Debug)]
pub struct ConsumerFile {
    file: File,
    io: Io,
    path: PathBuf,
    name: String,
    current: Checkpoint,
    /// The consumer is new: its file was not there when this open looked,
    /// and the checkpoint it holds was never committed.
    created: bool,
}

impl ConsumerFile {
    /// Opens the checkpoint of consumer `name` in journal dir `dir`,
    /// creating it (seq 0, the given epoch, generation 1) if missing, and
    /// returns the handle and the current checkpoint. An existing file keeps
    /// its own epoch: compare it with the journal's before trusting its seq.
    ///
    /// Creating is durable before this returns: the file is written and
    /// fsynced under a staging name of its own (`.<name>.<pid>-<n>.tmp`), linked into place
    /// (never replacing a file another process created meanwhile), and the
    /// `consumers` directory is fsynced, as is the journal directory when
    /// the `consumers` directory was created.
    ///
    /// The handle holds an exclusive lock (`flock`) on the checkpoint while
    /// it lives: one instance of a consumer at a time, in any process (two
    /// would each write their own progress over the other's, moving the
    /// checkpoint and the retention pin back), and [`delete_consumer`]
    /// refuses to delete it. An open waits up to [`CONSUMER_OPEN_WAIT`] for
    /// the lock (a delete in progress, a handle just dropped whose commit
    /// is finishing), then opens (or creates) the file now at the path.
    ///
    /// # Errors
    ///
    /// [`JournalError::InvalidConsumerName`];
    /// [`JournalError::ConsumerInUse`] while another handle of the name is
    /// open, in this process or another; [`JournalError::CheckpointCorrupt`]
    /// naming the file if neither slot holds a valid checkpoint;
    /// [`JournalError::Io`] when a system call fails (`lock checkpoint` where
    /// the file system has no locks).
    pub fn open(dir: &Path, name: &str, epoch: u64) -> Result<(ConsumerFile, Checkpoint), JournalError> {
        Self::open_io(dir, name, epoch, Io::default())
    }

    /// [`open`](Self::open), with every [`commit`](Self::commit)'s write and
    /// `fdatasync` going through `plan` ([`Step::Checkpoint`](crate::fault::Step::Checkpoint)).
    /// Tests only.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    pub fn open_with_faults(
        dir: &Path,
        name: &str,
        epoch: u64,
        plan: crate::fault::FaultPlan,
    ) -> Result<(ConsumerFile, Checkpoint), JournalError> {
        Self::open_io(dir, name, epoch, Io::with_plan(plan))
    }

    fn open_io(dir: &Path, name: &str, epoch: u64, io: Io) -> Result<(ConsumerFile, Checkpoint), JournalError> {
        let path = consumer_path(dir, name)?;
        let mut missing;
        let file = loop {
            missing = false;
            let file = match open_checkpoint(&path)? {
                Some(file) => file,
                None => {
                    missing = true;
                    // `None`: a delete unlinked it again before it was
                    // opened: look again.
                    let Some(file) = create(dir, name, &path, epoch)? else { continue };
                    file
                }
            };
            // Held while the handle lives: a second instance and
            // `delete_consumer` are refused. A delete that won the race
            // unlinked this file: open (or create) the one now at the path.
            lock_exclusive(&file, name, &path)?;
            if same_file(&file, &path) {
                break file;
            }
        };
        let current = read_checkpoint(&file, &path)?.newest;
        // New: missing when looked for, and what is locked now was never
        // committed (made by this open, or by another that raced it and
        // let go first; not one another instance committed in meanwhile).
        let created = missing && current.generation == 1 && current.seq == 0;
        // Its name durable before a commit is acknowledged in it: just
        // created, or by a creation killed between linking it and this
        // fsync (once per open; cheap when there is nothing to write).
        segment::sync_dir(&Io::default(), &dir.join(CONSUMERS_DIR))?;
        Ok((ConsumerFile { file, io, path, name: name.to_owned(), current, created }, current))
    }

    /// Durably stores `seq`/`epoch` as the consumer's checkpoint: one
    /// `pwrite` of the slot that does not hold the current checkpoint, then
    /// `fdatasync`. Any seq up to `MAX_SEQ` is accepted, lower ones included (a consumer may
    /// rewind, or restart at 0 in a new epoch).
    ///
    /// If it fails, the current checkpoint is unchanged, on disk and in
    /// [`checkpoint`](Self::checkpoint), and calling `commit` again is safe:
    /// it rewrites the same (non-current) slot in full. After a failed
    /// `fdatasync` the slot written is zeroed again (best effort), so the
    /// file's other readers ([`list_consumers`], the next open) do not take
    /// the failed commit from the page cache either.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] naming the file if the write or the `fdatasync`
    /// fails (or, after 2^56 - 1 commits, because the generation is spent);
    /// [`JournalError::CheckpointSeq`] for a seq past
    /// [`MAX_SEQ`](crate::format::MAX_SEQ), before anything is written;
    /// as [`open`](Self::open) when the file must be opened again (below).
    ///
    /// A commit in another epoch than the current checkpoint's, whose file
    /// is no longer at its path (the journal directory replaced, its
    /// checkpoints with it, or the file removed by hand: the path names no
    /// file, or another one), goes to the file now at the path, opened (or
    /// created) as [`open`](Self::open) does, whose checkpoint becomes this
    /// handle's: a consumer that follows the journal into the one now at
    /// the path commits there. Written to the old file, it was lost with
    /// it, and the consumer started again as new. A commit in the current
    /// checkpoint's epoch (a handle that stays with its journal) is written
    /// to this handle's file, wherever it is now.
    pub fn commit(&mut self, seq: u64, epoch: u64) -> Result<Checkpoint, JournalError> {
        if seq > crate::format::MAX_SEQ {
            return Err(JournalError::CheckpointSeq { path: self.path.clone(), seq });
        }
        if epoch != self.current.epoch && moved_away(&self.file, &self.path) {
            let dir = self.path.parent().and_then(Path::parent).unwrap_or(Path::new("."));
            let (reopened, _) = Self::open_io(dir, &self.name, epoch, self.io.clone())?;
            tracing::info!(path = %self.path.display(), "the checkpoint file was replaced; committing to the one now at its path");
            *self = reopened;
        }
        let generation = self.current.generation + 1;
        if generation > MAX_GENERATION {
            return Err(JournalError::io("commit checkpoint", &self.path, io::Error::other("generation exhausted")));
        }
        let next = Checkpoint { seq, epoch, generation, written_nanos: now_nanos() };
        self.io
            .op(Step::Checkpoint, || self.file.write_all_at(&next.encode(), Checkpoint::slot_offset(generation)))
            .map_err(|e| JournalError::io("write checkpoint", &self.path, e))?;
        if let Err(e) = self.io.sync_data(Step::Checkpoint, &self.file) {
            // The slot is in the page cache, where `list_consumers`,
            // retention's pin and the next open would read it as the
            // checkpoint: taken back (best effort; the other slot holds the
            // current one), so every reader reads what this handle does.
            let _ = self.file.write_all_at(&[0; CHECKPOINT_SLOT_LEN], Checkpoint::slot_offset(generation));
            return Err(JournalError::io("fdatasync", &self.path, e));
        }
        // Retention's pin may go by it alone now (`Held::fallback`); best
        // effort: without it, the pin goes by the other slot too.
        let _ = self.file.write_all_at(&synced_mark(generation), SYNCED_MARK_AT as u64);
        self.current = next;
        Ok(next)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the consumer is new: its checkpoint file was not there when
    /// this open looked for it, and the checkpoint it holds was never
    /// committed (this open made it, or another that raced it did and let
    /// go first with nothing committed).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The checkpoint last read or committed.
    pub fn checkpoint(&self) -> Checkpoint {
        self.current
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How long [`ConsumerFile::open`] waits for a checkpoint another handle
/// holds before it answers [`JournalError::ConsumerInUse`].
pub const CONSUMER_OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Takes `file`'s exclusive lock, waiting up to [`CONSUMER_OPEN_WAIT`].
fn lock_exclusive(file: &File, name: &str, path: &Path) -> Result<(), JournalError> {
    let deadline = std::time::Instant::now() + CONSUMER_OPEN_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(JournalError::ConsumerInUse { name: name.to_owned(), path: path.to_path_buf() });
            }
            Err(fs::TryLockError::Error(e)) => return Err(JournalError::io("lock checkpoint", path, e)),
        }
    }
}

/// Creates the checkpoint file of `name` at `path` (see [`ConsumerFile::open`])
/// and returns it open for reading and writing (another process's, if it
/// made one first); `None` if a delete unlinked it before it was opened.
fn create(dir: &Path, name: &str, path: &Path, epoch: u64) -> Result<Option<File>, JournalError> {
    let consumers = dir.join(CONSUMERS_DIR);
    let io = Io::default();
    match fs::create_dir(&consumers) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(JournalError::io("create directory", &consumers, e)),
    }
    // Also when it existed: a creation killed before this fsync left the
    // directory's entry unsynced, and a power loss would take it (and every
    // checkpoint in it) with it. A creation is rare; the fsync is cheap.
    segment::sync_dir(&io, dir)?;
    // A staging name of this creation alone: two creating the same
    // consumer at once (two processes) must not truncate each other's file,
    // which may already be linked into place. One a crashed creation left
    // behind (a restarted container has the same pid) is passed over.
    static CREATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let first = Checkpoint { seq: 0, epoch, generation: 1, written_nanos: now_nanos() };
    let mut bytes = [0u8; CHECKPOINT_FILE_LEN];
    bytes[..CHECKPOINT_SLOT_LEN].copy_from_slice(&first.encode());
    let mut tries = 0;
    let (tmp, staging) = loop {
        let n = CREATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = consumers.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        tries += 1;
        match OpenOptions::new().write(true).create_new(true).open(&staging) {
            Ok(tmp) => break (tmp, staging),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 4096 => {}
            Err(e) => return Err(JournalError::io("create checkpoint", &staging, e)),
        }
    };
    tmp.write_all_at(&bytes, 0).map_err(|e| JournalError::io("write checkpoint", &staging, e))?;
    tmp.sync_all().map_err(|e| JournalError::io("fsync", &staging, e))?;
    drop(tmp);
    // A hard link never replaces an existing file: if another process
    // created the consumer meanwhile, its checkpoint wins.
    let linked = fs::hard_link(&staging, path);
    let _ = fs::remove_file(&staging);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(JournalError::io("link checkpoint", path, e)),
    }
    // The link (and the staging file's removal) are made durable by the
    // caller's fsync of `consumers/`, which every open does.
    open_checkpoint(path)
}

/// Opens the checkpoint at `path` for reading and writing, `None` if there
/// is none. Not through a symbolic link, and only a regular file: retention
/// lists the regular files of `consumers/` alone, so a checkpoint reached
/// through a link would pin nothing while its consumer read on.
fn open_checkpoint(path: &Path) -> Result<Option<File>, JournalError> {
    let file = match OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // Also a loop of links in the directories above it: said as such.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) => {
            return Err(not_a_checkpoint(path, "a symbolic link"));
        }
        Err(e) => return Err(JournalError::io("open checkpoint", path, e)),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(Some(file)),
        Ok(_) => Err(not_a_checkpoint(path, "not a regular file")),
        Err(e) => Err(JournalError::io("stat checkpoint", path, e)),
    }
}

/// One consumer found by [`list_consumers`].
#[derive(Clone, Debug)]
pub struct ConsumerInfo {
    /// The consumer's name (its file name).
    pub name: String,
    /// Its checkpoint, or why it cannot be read (the error's message).
    pub checkpoint: Result<Checkpoint, String>,
}

/// The consumers of the journal in `dir`, sorted by name; empty if the
/// journal has no `consumers` directory. Entries that are not valid
/// consumer names (staging files of an interrupted creation, strangers) and
/// entries that are not files are skipped.
///
/// # Errors
///
/// [`JournalError::Io`] if the `consumers` directory cannot be read.
pub fn list_consumers(dir: &Path) -> Result<Vec<ConsumerInfo>, JournalError> {
    let found = read_consumers(dir)?;
    let info =
        |(name, held): Listed| ConsumerInfo { name, checkpoint: held.map(|h| h.newest).map_err(|e| e.to_string()) };
    Ok(found.into_iter().map(info).collect())
}

/// The error for a checkpoint path that holds `what` instead of a regular
/// file.
fn not_a_checkpoint(path: &Path, what: &str) -> JournalError {
    let why = format!(
        "{what}: a checkpoint must be a regular file in {CONSUMERS_DIR}/ (retention reads only those, and would not \
         keep segments for it)"
    );
    JournalError::io("open checkpoint", path, io::Error::new(io::ErrorKind::InvalidData, why))
}

/// A consumer's name and what its checkpoint file holds, or why it cannot be read.
pub(crate) type Listed = (String, Result<Held, JournalError>);

/// [`list_consumers`] with each checkpoint's own error, so that retention
/// can tell a damaged checkpoint (which pins nothing) from one it could
/// not read this time (an I/O error).
pub(crate) fn read_consumers(dir: &Path) -> Result<Vec<Listed>, JournalError> {
    let consumers = dir.join(CONSUMERS_DIR);
    let entries = match fs::read_dir(&consumers) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(JournalError::io("read directory", &consumers, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("read directory", &consumers, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if validate_consumer_name(&name).is_err() || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let checkpoint = File::open(&path)
            .map_err(|e| JournalError::io("open checkpoint", &path, e))
            .and_then(|file| read_checkpoint(&file, &path));
        found.push((name, checkpoint));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Deletes consumer `name`'s checkpoint and fsyncs the `consumers`
/// directory; returns whether it existed. Retention stops waiting for it at
/// its next pass.
///
/// # Errors
///
/// [`JournalError::InvalidConsumerName`];
/// [`JournalError::ConsumerInUse`] while a [`ConsumerFile`] of that name is
/// open, in this process or another (each holds an exclusive lock on its
/// checkpoint until it and any commit in flight are gone; the delete takes
/// it too); [`JournalError::Io`] if the removal or the directory
/// fsync fails.
pub fn delete_consumer(dir: &Path, name: &str) -> Result<bool, JournalError> {
    let path = consumer_path(dir, name)?;
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        // Not a checkpoint (a FIFO would block the open below): no handle
        // can hold it, so it goes as it is.
        Ok(_) => return remove_checkpoint(dir, &path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(JournalError::io("open checkpoint", &path, e)),
    }
    // Writable: an exclusive lock needs it where flock is emulated (NFS).
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(JournalError::io("open checkpoint", &path, e)),
    };
    delete_opened(dir, name, path, file)
}

/// The rest of [`delete_consumer`], `file` being the checkpoint it opened
/// at `path`.
fn delete_opened(dir: &Path, name: &str, path: PathBuf, file: File) -> Result<bool, JournalError> {
    // Exclusive while it unlinks: no handle has the checkpoint open, and
    // one opening now waits, then finds the file gone and makes a new one.
    match file.try_lock() {
        // Locked, but no longer the file at the path: another delete
        // unlinked it between the open and the lock (what is there now is
        // a new consumer's checkpoint, not this one's): gone.
        Ok(()) if !same_file(&file, &path) => return Ok(false),
        Ok(()) => {}
        // Another delete holds it and has unlinked it meanwhile: gone.
        Err(fs::TryLockError::WouldBlock) if !same_file(&file, &path) => return Ok(false),
        Err(fs::TryLockError::WouldBlock) => {
            return Err(JournalError::ConsumerInUse { name: name.to_owned(), path });
        }
        Err(fs::TryLockError::Error(e)) => return Err(JournalError::io("lock checkpoint", &path, e)),
    }
    let removed = remove_checkpoint(dir, &path);
    drop(file);
    removed
}

/// Unlinks a checkpoint and fsyncs the `consumers` directory; `false` if
/// it was gone already.
fn remove_checkpoint(dir: &Path, path: &Path) -> Result<bool, JournalError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(JournalError::io("remove checkpoint", path, e)),
    }
    segment::sync_dir(&Io::default(), &dir.join(CONSUMERS_DIR))?;
    Ok(true)
}

/// Whether `file` is no longer the file at `path`: the path names no file,
/// or another one. A `stat` that fails otherwise (permissions, I/O) says
/// neither.
fn moved_away(file: &File, path: &Path) -> bool {
    file_at(file, path) == Some(false)
}

/// Whether `file` is still the file at `path` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    file_at(file, path) == Some(true)
}

/// Whether `path` names `file` (same device and inode): `Some(false)` when
/// it names no file or another one, `None` when a `stat` failed otherwise.
fn file_at(file: &File, path: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    // Not following a link at `path`: a link is never the file.
    match (file.metadata(), fs::symlink_metadata(path)) {
        (_, Err(e)) => (e.kind() == io::ErrorKind::NotFound).then_some(false),
        (Ok(open), Ok(named)) => Some(open.dev() == named.dev() && open.ino() == named.ino()),
        (Err(_), Ok(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_round_trips_and_any_flipped_bit_invalidates_it() {
        let c = Checkpoint { seq: 7, epoch: 0xdead_beef, generation: (1 << 56) - 1, written_nanos: 42 };
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes), Ok(c));
        for bit in 0..CHECKPOINT_SLOT_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Checkpoint::decode(&b).is_err(), "bit {bit}");
        }
        assert!(Checkpoint::decode(&[0; CHECKPOINT_SLOT_LEN]).is_err());
        // A seq no journal hands out (a crafted file): the consumer's
        // arithmetic on it (its successor) would overflow.
        let past = Checkpoint { seq: crate::format::MAX_SEQ + 1, ..c };
        assert_eq!(Checkpoint::decode(&past.encode()), Err("a seq past any journal's"));
    }

    #[test]
    fn the_highest_valid_generation_wins_whichever_slot_holds_it() {
        let at = |generation, seq| Checkpoint { seq, epoch: 1, generation, written_nanos: 0 }.encode();
        let file = |a: [u8; 40], b: [u8; 40]| [a, b].concat();
        assert_eq!(decode_file(&file(at(3, 30), at(2, 20))).unwrap().newest.seq, 30);
        assert_eq!(decode_file(&file(at(1, 10), at(2, 20))).unwrap().newest.seq, 20);
        assert_eq!(decode_file(&file(at(1, 10), [0; 40])).unwrap().newest.seq, 10);
        assert_eq!(decode_file(&at(1, 10)).unwrap().newest.seq, 10, "a short file reads its missing slot as zeros");
        assert!(decode_file(&[]).is_err());
    }

    #[test]
    fn the_file_may_go_back_to_the_other_slot_until_the_newest_is_marked_synced() {
        let at = |generation, seq, epoch| Checkpoint { seq, epoch, generation, written_nanos: 0 }.encode();
        let file = |a: [u8; 40], b: [u8; 40]| [a, b].concat();
        let seqs = |bytes: &[u8]| decode_file(bytes).unwrap().seqs_in(1);
        assert_eq!(seqs(&file(at(3, 30, 1), at(2, 20, 1))), Some((20, 30)));
        assert_eq!(seqs(&file(at(3, 10, 1), at(2, 20, 1))), Some((10, 20)), "a rewind");
        assert_eq!(seqs(&file(at(3, 30, 2), at(2, 20, 1))), Some((20, 20)), "a commit in another journal's epoch");
        assert_eq!(seqs(&file(at(3, 30, 1), at(2, 20, 2))), Some((30, 30)), "over another journal's");
        assert_eq!(seqs(&file(at(3, 30, 2), at(2, 20, 2))), None, "another journal's alone");
        assert_eq!(seqs(&file(at(3, 30, 1), [0; 40])), Some((30, 30)), "a failed commit zeroed its slot");
        let marked = |mark: [u8; SYNCED_MARK_LEN]| seqs(&[file(at(3, 30, 1), at(2, 20, 1)), mark.to_vec()].concat());
        assert_eq!(marked(synced_mark(3)), Some((30, 30)), "synced");
        assert_eq!(marked(synced_mark(2)), Some((20, 30)), "the commit of 3 is in flight");
        assert_eq!(marked([3, 0, 0, 0, 0, 0, 0, 0]), Some((20, 30)), "no tag");
    }

    /// A delete that opened a checkpoint, then lost the race to another
    /// delete (which unlinked it) and to a consumer that started meanwhile
    /// (which made a new checkpoint and holds it): its lock on the old,
    /// unlinked file succeeds, and it leaves the new one alone. It had
    /// unlinked the running consumer's new checkpoint.
    #[test]
    fn a_delete_whose_checkpoint_was_replaced_before_its_lock_leaves_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = ConsumerFile::open(dir.path(), "indexer", 1).unwrap();
        drop(first);
        let path = consumer_path(dir.path(), "indexer").unwrap();
        // Delete A opens the checkpoint...
        let opened = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        // ...delete B removes it, and the consumer starts again.
        assert!(delete_consumer(dir.path(), "indexer").unwrap());
        let (running, _) = ConsumerFile::open(dir.path(), "indexer", 1).unwrap();
        assert!(!delete_opened(dir.path(), "indexer", path.clone(), opened).unwrap(), "already gone");
        assert!(path.exists(), "the running consumer's checkpoint was unlinked");
        drop(running);
    }
}
