//! The journal's errors: [`JournalError`] for opening, writing, recovering and
//! verifying, and [`ReadError`] for [`Reader::read_since`](crate::Reader::read_since),
//! which adds the two cursor outcomes a reader must handle explicitly.
//!
//! Invariant: every variant that concerns a place on disk names it (path,
//! byte offset, seq when known), so an operator can go and look.

use std::io;
use std::path::PathBuf;

/// Something went wrong opening, writing, recovering or reading a journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the journal was doing (`"open"`, `"write"`, `"fdatasync"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: io::Error,
    },
    /// Another writer (in this process or another one) holds `<dir>/LOCK`.
    #[error("journal directory {dir} is locked by another writer")]
    Locked {
        /// The journal directory.
        dir: PathBuf,
    },
    /// A `.seg` file does not start with the segment magic.
    #[error("{path}: not a journal segment (bad magic)")]
    BadMagic {
        /// The segment file.
        path: PathBuf,
    },
    /// A segment was written by a format version this build does not read.
    #[error("{path}: unsupported segment format version {version} (this build reads version 1)")]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version found in the header.
        version: u16,
    },
    /// A segment header fails its CRC.
    #[error("{path}: segment header checksum mismatch")]
    HeaderCrc {
        /// The segment file.
        path: PathBuf,
    },
    /// The segments carry another payload codec tag than the one asked for.
    #[error("{path}: payload codec tag {found} where {expected} was expected")]
    CodecTagMismatch {
        /// The segment file.
        path: PathBuf,
        /// The tag given in [`JournalOptions::codec_tag`](crate::JournalOptions::codec_tag).
        expected: u32,
        /// The tag found in the header.
        found: u32,
    },
    /// A segment belongs to another journal (another epoch) than its neighbours.
    #[error("{path}: epoch {found:#018x} where {expected:#018x} was expected (segment of another journal?)")]
    EpochMismatch {
        /// The segment file.
        path: PathBuf,
        /// The epoch of the journal (its oldest segment).
        expected: u64,
        /// The epoch found in this segment.
        found: u64,
    },
    /// A frame or header field is damaged or inconsistent.
    #[error("{path} at byte {offset}: {reason}{}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged frame or field in the file.
        offset: u64,
        /// The seq expected at that place, when known.
        seq: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// Records are missing between two segments: an operator salvaged or
    /// repaired a damaged journal ([`RecoveryMode`](crate::RecoveryMode)), or
    /// a power loss took the unsynced tail of a sealed segment. Seqs
    /// `expected..found` (that is, `expected..=found - 1`) will never exist;
    /// the [`Records`](crate::Records) iterator yields this once and then
    /// continues at `found`.
    #[error("{path}: records {expected}..={} are missing (lost to damage: dropped by a salvage, a repair or a power loss)", found.saturating_sub(1))]
    Gap {
        /// The segment that starts after the gap.
        path: PathBuf,
        /// The first missing seq.
        expected: u64,
        /// The first seq present after the gap.
        found: u64,
    },
    /// Two segments hold the same seqs: `path` holds records up to
    /// `last_seq`, but the segment after it, `next`, starts at `next_first`
    /// (at or below `last_seq`). A writer refuses to open (it would hand
    /// out seqs twice) and a reader refuses to serve either copy; an
    /// operator must remove the wrong file.
    #[error(
        "{path} holds records up to seq {last_seq}, but the next segment {next} starts at seq {next_first}: overlapping segments"
    )]
    Overlap {
        /// The earlier segment.
        path: PathBuf,
        /// The last seq of its contiguous valid records.
        last_seq: u64,
        /// The later segment, whose name says it starts inside `path`.
        next: PathBuf,
        /// The first seq of `next` (its file name).
        next_first: u64,
    },
    /// An option given to [`Journal::open`](crate::Journal::open) cannot work;
    /// nothing was created or changed.
    #[error("invalid journal option {option}: {reason}")]
    InvalidOption {
        /// The option (`"sync"`, ...).
        option: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A payload is larger than [`JournalOptions::max_record_bytes`](crate::JournalOptions::max_record_bytes).
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The configured limit.
        max: u32,
    },
    /// An append would take a seq past [`MAX_SEQ`](crate::format::MAX_SEQ),
    /// the highest a journal hands out. No appending gets there (2^63 - 1
    /// records); a newest segment named near it by hand does. Nothing is
    /// written; the journal stays readable.
    #[error("{dir}: no record can follow seq {max}, the highest a journal hands out", max = crate::format::MAX_SEQ)]
    SeqsExhausted {
        /// The journal directory.
        dir: PathBuf,
    },
    /// The writer is poisoned: an earlier write or fsync failed, so it can no
    /// longer tell what is on disk. Every append fails until the journal is
    /// reopened (which runs recovery).
    #[error("journal writer failed earlier and refuses further writes until reopened: {cause}")]
    Failed {
        /// The failure that poisoned the writer.
        cause: String,
    },
    /// A consumer name is not 1..=64 bytes of `[A-Za-z0-9._-]` not starting
    /// with `.` ([`validate_consumer_name`](crate::validate_consumer_name)).
    #[error("invalid consumer name {name:?}: {reason}")]
    InvalidConsumerName {
        /// The name refused.
        name: String,
        /// Why (`"empty"`, `"longer than 64 bytes"`, ...).
        reason: &'static str,
    },
    /// [`delete_consumer`](crate::delete_consumer) of a consumer whose
    /// checkpoint is open ([`ConsumerFile`](crate::ConsumerFile), in this
    /// process or another): its later commits would go to the deleted file
    /// while retention stopped keeping what it still needs. Stop it first.
    /// Also a second [`ConsumerFile::open`](crate::ConsumerFile::open) of a
    /// name whose checkpoint is open: one instance of a consumer at a time.
    #[error("consumer {name:?} is in use (its checkpoint {} is open); stop it first", path.display())]
    ConsumerInUse {
        /// The consumer's name.
        name: String,
        /// Its checkpoint file.
        path: PathBuf,
    },
    /// Neither slot of a consumer checkpoint file holds a valid checkpoint
    /// (bad magic, version or CRC in both): the file is not a checkpoint,
    /// or was damaged outside a commit. Nothing is changed.
    #[error("{path}: consumer checkpoint unreadable: {reason}")]
    CheckpointCorrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with each slot.
        reason: String,
    },
    /// A consumer checkpoint commit of a seq past [`MAX_SEQ`](crate::format::MAX_SEQ),
    /// which no journal hands out and no checkpoint file holds (its read
    /// would refuse the slot and fall back to the one before). Nothing is
    /// written.
    #[error("{path}: checkpoint seq {seq} is past any journal's (the highest is {max})", max = crate::format::MAX_SEQ)]
    CheckpointSeq {
        /// The checkpoint file.
        path: PathBuf,
        /// The seq refused.
        seq: u64,
    },
    /// The directory holds no segment, so it is not (yet) a journal.
    #[error("{dir}: no journal segments")]
    NoSegments {
        /// The directory.
        dir: PathBuf,
    },
    /// The journal directory was deleted, or replaced by another one (it is
    /// another inode now; where the directory could not be locked, its
    /// lock file is another file), while this writer had it open. The
    /// writer stops: a roll or a retention pass would create or remove
    /// files in a directory that is no longer its own, maybe another
    /// writer's journal.
    #[error(
        "{dir}: the journal directory was deleted or replaced while this writer had it open; \
         the writer stops instead of touching what is there now"
    )]
    DirectoryReplaced {
        /// The directory.
        dir: PathBuf,
    },
}

impl JournalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io { op, path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, seq: Option<u64>, reason: impl Into<String>) -> Self {
        JournalError::Corrupt { path: path.into(), offset, seq, reason: reason.into() }
    }

    /// The error for the segment at `path` whose header does not decode
    /// (`error`), as the journal's own reads report it: `BadMagic`,
    /// `UnsupportedVersion`, `HeaderCrc`, or `Corrupt` at offset 0 naming
    /// the field. For code that reads a segment's header itself.
    pub fn from_header(path: impl Into<PathBuf>, error: crate::format::HeaderError) -> Self {
        use crate::format::HeaderError;
        let path = path.into();
        match error {
            HeaderError::Short | HeaderError::BadMagic => JournalError::BadMagic { path },
            HeaderError::UnsupportedVersion(version) => JournalError::UnsupportedVersion { path, version },
            HeaderError::Crc => JournalError::HeaderCrc { path },
            HeaderError::Invalid(reason) => JournalError::corrupt(path, 0, None, reason),
        }
    }

    /// The message without the path of the file it concerns, for reports
    /// that name the file in a field of their own (`verify`'s [`Problem`](crate::Problem)).
    pub(crate) fn detail(&self) -> String {
        match self {
            JournalError::Io { op, source, .. } => format!("{op}: {source}"),
            JournalError::BadMagic { .. } => "not a journal segment (bad magic)".to_owned(),
            JournalError::UnsupportedVersion { version, .. } => {
                format!("unsupported segment format version {version} (this build reads version 1)")
            }
            JournalError::HeaderCrc { .. } => "segment header checksum mismatch".to_owned(),
            JournalError::CodecTagMismatch { expected, found, .. } => {
                format!("payload codec tag {found} where {expected} was expected")
            }
            JournalError::EpochMismatch { expected, found, .. } => {
                format!("epoch {found:#018x} where {expected:#018x} was expected (segment of another journal?)")
            }
            JournalError::Corrupt { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}

/// Why [`Reader::read_since`](crate::Reader::read_since) cannot serve a cursor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Records after the cursor were removed by retention; the oldest retained
    /// seq is `earliest`. The caller must reset, not silently skip.
    #[error("cursor predates retention: the earliest retained seq is {earliest}")]
    Expired {
        /// The oldest retained seq.
        earliest: u64,
    },
    /// The cursor is beyond the last record (the journal was wiped or belongs
    /// to another epoch).
    #[error("cursor is ahead of the journal: the latest seq is {latest}")]
    Ahead {
        /// The last seq in the journal (0 when empty).
        latest: u64,
    },
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
}
