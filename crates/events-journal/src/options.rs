//! Configuration of a [`Journal`](crate::Journal): [`JournalOptions`] (builder
//! style, every default documented), [`SyncPolicy`] and [`RecoveryMode`].
//! [`Retention`](crate::Retention) lives in `retention.rs` next to the code
//! that applies it.
//!
//! Invariant: durability and recovery are enums, never booleans, so every
//! call site says which behaviour it asked for.

use std::time::Duration;

use crate::pruned::KeyFn;
use crate::retention::Retention;
use crate::seam::Io;

/// When appended bytes are forced to stable storage.
///
/// No policy acknowledges bytes still sitting in a user-space buffer: every
/// append has called `write(2)` before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never `fdatasync` on append: an acknowledged record survives a process
    /// crash (it is in the kernel) but not a power loss. Segment creation,
    /// every roll and [`Journal::sync`](crate::Journal::sync) /
    /// [`Journal::close`](crate::Journal::close) still sync. A segment a
    /// roll seals is fdatasync'ed by a background thread right after the
    /// roll, so the append path never waits for the disk; `sync` and
    /// `close` wait for it, and a power loss inside that short window can
    /// lose the sealed segment's unsynced tail, which recovery then reports
    /// as a gap (never a reused seq). A power loss can also take records
    /// that were acknowledged and read: the open after the reboot starts
    /// above the writer's durable seq lease (`<dir>/LEASE`, synced once
    /// per 2^20 appends), so their seqs are never handed out again
    /// ([`RecoveryReport::skipped`](crate::RecoveryReport::skipped)).
    Never,
    /// A background thread `fdatasync`s the active segment every interval
    /// when something was appended since the last sync. A zero interval is
    /// refused by [`Journal::open`](crate::Journal::open) with
    /// [`JournalError::InvalidOption`](crate::JournalError::InvalidOption)
    /// (it would spin a core); use [`Always`](Self::Always). A power loss
    /// is handled as under [`Never`](Self::Never): no seq that was handed
    /// out is reused.
    Interval(Duration),
    /// `fdatasync` before every append or batch returns: an acknowledged
    /// record survives a power loss. A batch shares one `fdatasync` (group
    /// commit). On Linux the active segment's file is reserved ahead of the
    /// writes (zeros written up to 1 MiB at a time), so that each
    /// `fdatasync` flushes data without committing a new file size or a
    /// block allocation; the zeros past the last frame are never read as
    /// records, and a roll or a clean close gives them back.
    Always,
}

/// What [`Journal::open`](crate::Journal::open) does when the newest segment
/// is damaged in the middle, i.e. a bad frame is followed by a valid one,
/// and whether it repairs damage in older segments.
///
/// Whatever the mode, a bad frame followed by nothing valid is a torn tail
/// (an interrupted write, or a power loss before an fsync) and is cut off,
/// in the newest segment and in a sealed one, unless it holds records the
/// last writer acknowledged that no crash can have taken (it closed
/// cleanly, ran in this boot, or synced before acknowledging): that is
/// damage, refused under `Strict`; and a salvage or repair that a
/// crash interrupted is finished. The salvage modes also apply to the
/// segment before the newest while the newest holds no record (a salvage
/// that had reserved its seqs when it was interrupted). `docs/FORMAT.md`
/// lists exactly what open repairs and what it refuses.
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
    /// segment, written, fsynced and renamed into place first), then the
    /// damaged segment is replaced by its valid prefix. Only the damaged
    /// frames are lost; readers see a
    /// [`JournalError::Gap`](crate::JournalError::Gap) for them.
    SkipCorrupt,
    /// Operator repair of the whole journal: every segment is read in full
    /// (open costs a full scan), and each damaged range, in any segment,
    /// becomes an explicit gap while every valid frame stays readable:
    /// a bad frame as in [`SkipCorrupt`](Self::SkipCorrupt); a segment
    /// header that fails its CRC, is torn or holds invalid fields is
    /// rewritten from the file name and the journal's epoch, and the
    /// frames after it are kept. No seq is ever reused. Refused all the
    /// same: a header of another format version, another journal (epoch or
    /// codec tag), a bad magic (not a segment of this format), a header
    /// whose seq contradicts its name, and overlapping segments. Crash-safe:
    /// an interrupted repair leaves a directory that the next open (in any
    /// mode) finishes or that repairing again finishes. The open's
    /// retention still applies in this mode, as in any other (it removes
    /// the oldest segments past the options' limits, valid or not);
    /// [`Journal::repair`](crate::Journal::repair) opens without it.
    Repair,
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
    pub(crate) consumer_limit: Retention,
    pub(crate) pin_for_consumers: bool,
    pub(crate) sync: SyncPolicy,
    pub(crate) recovery: RecoveryMode,
    pub(crate) max_record_bytes: u32,
    pub(crate) codec_tag: u32,
    pub(crate) index_key: Option<KeyFn>,
    pub(crate) io: Io,
}

/// The default of [`JournalOptions::max_record_bytes`]: 16 MiB.
pub(crate) const DEFAULT_MAX_RECORD_BYTES: u32 = 16 << 20;

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes: 8 << 20,
            retention: Retention::segments(64),
            consumer_limit: Retention::segments(256),
            pin_for_consumers: true,
            sync: SyncPolicy::Always,
            recovery: RecoveryMode::Strict,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            codec_tag: 0,
            index_key: None,
            io: Io::default(),
        }
    }
}

impl JournalOptions {
    /// The defaults (see each setter).
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses options that cannot work, before anything is created.
    pub(crate) fn validate(&self) -> Result<(), crate::JournalError> {
        if self.sync == SyncPolicy::Interval(Duration::ZERO) {
            return Err(crate::JournalError::InvalidOption {
                option: "sync",
                reason: "SyncPolicy::Interval(Duration::ZERO) would fdatasync in a busy loop; use SyncPolicy::Always",
            });
        }
        Ok(())
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

    /// How far retention waits for a registered consumer
    /// ([`ConsumerFile`](crate::ConsumerFile)) whose checkpoint is behind:
    /// while keeping every segment from the first one the consumer still
    /// needs to the active one stays within this limit, retention keeps
    /// them even past [`retention`](Self::retention) (the consumer *pins*
    /// them); beyond it the consumer is cut loose: its segments go as
    /// `retention` says, a warning is logged, it is counted in
    /// [`JournalStats::consumers_cut_loose`](crate::JournalStats::consumers_cut_loose),
    /// and its next read gets [`ReadError::Expired`](crate::ReadError::Expired).
    /// So a dead consumer can never make the journal grow past this limit.
    /// [`Retention::unlimited`] lets consumers pin forever.
    /// Default: [`Retention::segments(256)`](Retention::segments) (about 2 GiB
    /// of 8 MiB segments).
    pub fn consumer_limit(mut self, limit: Retention) -> Self {
        self.consumer_limit = limit;
        self
    }

    /// Whether retention waits for registered consumers at all (see
    /// [`consumer_limit`](Self::consumer_limit)); `false` applies
    /// [`retention`](Self::retention) alone and never reads the
    /// `consumers` directory. Default: `true`.
    pub fn pin_for_consumers(mut self, pin: bool) -> Self {
        self.pin_for_consumers = pin;
        self
    }

    /// When appends are forced to stable storage. Default: [`SyncPolicy::Always`].
    pub fn sync(mut self, p: SyncPolicy) -> Self {
        self.sync = p;
        self
    }

    /// What open does with corruption in the middle of the newest segment,
    /// and whether it repairs older ones ([`RecoveryMode::Repair`]).
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

    /// How to read a record's key (the key sidecar indexes are built on)
    /// out of its payload, for retention's pruned-segments summary
    /// (`<dir>/PRUNED`, see [`PrunedLog`](crate::PrunedLog)): a segment about
    /// to be removed is summarised from its sidecar, and when it has no
    /// valid one, from an index built with this function, which reads the
    /// segment once on the writer's thread. Without it such a segment is
    /// summarised as unknown, and readers that consult the summary treat
    /// it as possibly holding any key. Default: none.
    pub fn index_key(mut self, key: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        self.index_key = Some(KeyFn(std::sync::Arc::new(key)));
        self
    }

    /// Injects the faults of `plan` into every I/O step of the journal
    /// opened with these options (its writer, rolls, retention and
    /// recovery). Tests only. Default: no faults.
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    pub fn faults(mut self, plan: crate::fault::FaultPlan) -> Self {
        self.io = Io::with_plan(plan);
        self
    }
}
