//! Configuration of a [`Journal`](crate::Journal): [`JournalOptions`] (builder
//! style, every default documented), [`SyncPolicy`] and [`RecoveryMode`].
//! [`Retention`](crate::Retention) lives in `retention.rs` next to the code
//! that applies it.
//!
//! Invariant: durability and recovery are enums, never booleans, so every
//! call site says which behaviour it asked for.

use std::time::Duration;

use crate::retention::Retention;
use crate::seam::Io;

/// When appended bytes are forced to stable storage.
///
/// No policy acknowledges bytes still sitting in a user-space buffer: every
/// append has called `write(2)` before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never `fdatasync` on append: an acknowledged record survives a process
    /// crash (it is in the kernel) but not a power loss. Segment creation and
    /// [`Journal::sync`](crate::Journal::sync) / [`Journal::close`](crate::Journal::close)
    /// still sync.
    Never,
    /// A background thread `fdatasync`s the active segment every interval
    /// when something was appended since the last sync.
    Interval(Duration),
    /// `fdatasync` before every append or batch returns: an acknowledged
    /// record survives a power loss. A batch shares one `fdatasync` (group
    /// commit).
    Always,
}

/// What [`Journal::open`](crate::Journal::open) does when the newest segment
/// is damaged in the middle, i.e. a bad frame is followed by a valid one.
///
/// A bad frame followed by nothing valid is a torn tail (an interrupted
/// write) and is truncated in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Refuse to open with [`JournalError::Corrupt`](crate::JournalError::Corrupt)
    /// naming the file and offset; nothing on disk is changed. Default.
    #[default]
    Strict,
    /// Operator salvage: truncate the newest segment at the first bad frame,
    /// dropping the valid frames after it. Their seqs are never reused: if any
    /// dropped frame carried a seq at or above the next one, writing continues
    /// in a new segment after the highest dropped seq, and readers see one
    /// [`JournalError::Gap`](crate::JournalError::Gap) there.
    TruncateAtCorruption,
    /// Operator salvage that loses as little as possible: the valid frames
    /// after the damage are copied (each contiguous run into its own new
    /// segment, written and fsynced first), then the damaged segment is
    /// truncated at the first bad frame. Only the damaged frames are lost;
    /// readers see a [`JournalError::Gap`](crate::JournalError::Gap) for them.
    SkipCorrupt,
}

/// Options for [`Journal::open`](crate::Journal::open), builder style.
///
/// ```
/// use events_journal::{JournalOptions, RecoveryMode, Retention, SyncPolicy};
/// let opts = JournalOptions::new()
///     .segment_bytes(1 << 20)
///     .retention(Retention::bytes(64 << 20))
///     .sync(SyncPolicy::Never)
///     .recovery(RecoveryMode::Strict)
///     .codec_tag(1);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct JournalOptions {
    pub(crate) segment_bytes: u64,
    pub(crate) retention: Retention,
    pub(crate) sync: SyncPolicy,
    pub(crate) recovery: RecoveryMode,
    pub(crate) max_record_bytes: u32,
    pub(crate) codec_tag: u32,
    pub(crate) io: Io,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes: 8 << 20,
            retention: Retention::segments(64),
            sync: SyncPolicy::Always,
            recovery: RecoveryMode::Strict,
            max_record_bytes: 16 << 20,
            codec_tag: 0,
            io: Io::default(),
        }
    }
}

impl JournalOptions {
    /// The defaults (see each setter).
    pub fn new() -> Self {
        Self::default()
    }

    /// Roll to a new segment before a batch that would make the active
    /// segment larger than this. A single batch is never split, so a batch
    /// larger than this makes one larger segment. Values below 128 are
    /// raised to 128. Default: 8 MiB.
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n.max(128);
        self
    }

    /// Which sealed segments to remove, at open and after every roll.
    /// Default: [`Retention::segments(64)`](Retention::segments).
    pub fn retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }

    /// When appends are forced to stable storage. Default: [`SyncPolicy::Always`].
    pub fn sync(mut self, p: SyncPolicy) -> Self {
        self.sync = p;
        self
    }

    /// What open does with corruption in the middle of the newest segment.
    /// Default: [`RecoveryMode::Strict`].
    pub fn recovery(mut self, m: RecoveryMode) -> Self {
        self.recovery = m;
        self
    }

    /// Largest payload accepted by an append. Default: 16 MiB.
    pub fn max_record_bytes(mut self, n: u32) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Payload codec tag written in every segment header; open fails with
    /// [`JournalError::CodecTagMismatch`](crate::JournalError::CodecTagMismatch)
    /// if existing segments carry another one. Default: 0.
    pub fn codec_tag(mut self, tag: u32) -> Self {
        self.codec_tag = tag;
        self
    }

    /// Injects the faults of `plan` into every I/O step of the journal
    /// opened with these options (its writer, rolls, retention and
    /// recovery). Tests only. Default: no faults.
    #[cfg(feature = "fault-injection")]
    pub fn faults(mut self, plan: crate::fault::FaultPlan) -> Self {
        self.io = Io::with_plan(plan);
        self
    }
}
