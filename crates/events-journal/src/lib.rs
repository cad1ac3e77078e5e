//! A segmented, CRC-framed journal of opaque records: the durable heart of
//! the `events` workspace, usable on its own.
//!
//! A [`Journal`] is the single writer of a directory: it appends records
//! (a payload, a timestamp, and a seq it assigns: contiguous, from 1, never
//! reused even after a crash) with one `write(2)` per batch, forces them to
//! disk as the [`SyncPolicy`] says, rolls 8 MiB segments, and prunes old ones
//! by [`Retention`]. A [`Reader`], in the same or another process, maps the
//! segments with `memmap2` and yields zero-copy [`Record`]s after a cursor,
//! verifying every frame's CRC; it can tail a live writer. [`verify`] scans
//! everything and lists every problem; [`Journal::repair`] turns damage in
//! any segment into explicit gaps and keeps every valid record.
//!
//! The crate knows nothing of serde, events or async runtimes: payloads are
//! bytes, seqs are `u64`. The on-disk format is drawn in `docs/FORMAT.md`
//! and encoded in [`format`](mod@format).
//!
//! # Using it
//!
//! Applications normally depend on the `events` façade, which drives this
//! journal and re-exports it as `events::layers::journal`. To use the journal
//! alone (payloads are your bytes; no async runtime needed):
//!
//! ```toml
//! [dependencies]
//! events-journal = { git = "https://example.invalid/events" }
//! ```
//!
//! # Defaults, and what retention deletes
//!
//! [`JournalOptions::new`] gives:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | [`sync`](JournalOptions::sync) | [`SyncPolicy::Always`] | every batch is `fdatasync`ed before `append` returns |
//! | [`segment_bytes`](JournalOptions::segment_bytes) | 8 MiB | a segment is sealed and a new one started past this size |
//! | [`retention`](JournalOptions::retention) | [`Retention::segments(64)`](Retention::segments) | **at most 64 segments (about 512 MiB) are kept: when a roll makes a 65th, the oldest segment file is deleted, records and all** |
//! | [`consumer_limit`](JournalOptions::consumer_limit) | [`Retention::segments(256)`](Retention::segments) | how far retention waits for a registered consumer that is behind before cutting it loose |
//! | [`pin_for_consumers`](JournalOptions::pin_for_consumers) | `true` | retention waits for registered consumers at all |
//! | [`max_record_bytes`](JournalOptions::max_record_bytes) | 16 MiB | a larger payload is refused with [`JournalError::RecordTooLarge`] |
//! | [`recovery`](JournalOptions::recovery) | [`RecoveryMode::Strict`] | damage anywhere but a torn tail refuses to open; `Repair` turns it into gaps |
//!
//! Retention is the only thing that deletes acknowledged, undamaged records.
//! It runs when a segment is sealed or [`Journal::prune`] (or
//! [`Journal::prune_deferred`], which the façade calls on a timer) is
//! called, removes whole sealed segments, oldest
//! first, never the active one, and moves [`Reader::first_seq`] forward: a
//! reader whose cursor falls below it gets [`ReadError::Expired`] (a
//! [`Follower`] gets [`Reset::Expired`]). Keep everything with
//! [`Retention::unlimited`], or bound by bytes or age with
//! [`Retention::bytes`] / [`Retention::age`].
//!
//! # Durable named consumers
//!
//! A consumer that must not miss records across restarts keeps a
//! checkpoint in the journal directory ([`ConsumerFile`]: `consumers/<name>`,
//! two CRC-checked slots, so a torn commit falls back to the previous
//! checkpoint). Retention then waits for it: segments it still needs are
//! kept past [`retention`](JournalOptions::retention), but only within
//! [`consumer_limit`](JournalOptions::consumer_limit), so a dead consumer
//! cannot make the disk grow without bound; past the limit it is cut loose
//! ([`JournalStats::consumers_cut_loose`]) and its next read is
//! [`ReadError::Expired`].
//!
//! ```
//! use events_journal::{ConsumerFile, Journal, JournalOptions, Reader, list_consumers};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut journal, _) = Journal::open(dir.path(), JournalOptions::new())?;
//! journal.append_now("a")?;
//! let (mut consumer, checkpoint) = ConsumerFile::open(dir.path(), "indexer", journal.epoch())?;
//! let reader = Reader::open(dir.path())?;
//! for record in reader.read_since(checkpoint.seq)? {
//!     let record = record?;
//!     // ... process the record, then make the progress durable:
//!     consumer.commit(record.seq(), journal.epoch())?;
//! }
//! assert_eq!(list_consumers(dir.path())?[0].checkpoint.as_ref().map(|c| c.seq), Ok(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Three ways to walk what [`Reader::read_since`] returns, from the
//! simplest to the fastest: the iterator of owned [`Record`]s (each holds its
//! segment's map alive); [`Records::next_ref`], borrowed [`RecordRef`]s that
//! touch no reference count (the walk costs what checking each frame's CRC
//! costs); [`Records::next_run`], checked [`RecordRun`]s of consecutive
//! records of one segment, owned, to hand a batch to another thread.
//!
//! # Example
//!
//! ```
//! use events_journal::{Journal, JournalOptions, ReadError, Reader, SyncPolicy};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut journal, report) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Always))?;
//! assert!(report.created);
//! assert_eq!(journal.append_now("hello")?, 1); // stamped with the wall clock
//! let seqs = journal.append_batch([(2_000, b"a"), (2_001, b"b")])?; // (timestamp, payload)
//! assert_eq!(seqs, 2..=3);
//!
//! let reader = Reader::open(dir.path())?;
//! let got: Vec<_> = reader.read_since(1)?.collect::<Result<_, _>>()?;
//! assert_eq!(got.iter().map(|r| (r.seq(), r.payload())).collect::<Vec<_>>(), [(2, &b"a"[..]), (3, &b"b"[..])]);
//! assert!(matches!(reader.read_since(9), Err(ReadError::Ahead { latest: 3 })));
//!
//! journal.close()?;
//! let (journal, _) = Journal::open(dir.path(), JournalOptions::new())?;
//! assert_eq!(journal.next_seq(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Pipelined group commit
//!
//! Under [`SyncPolicy::Always`] a writer with more than one batch to write
//! need not wait for each `fdatasync`: [`Journal::write_batch`] writes
//! without waiting, [`Journal::start_sync`] hands one `fdatasync` covering
//! everything written so far to the journal's commit thread, and
//! [`Journal::poll_synced`] (or [`Journal::wait_synced`]) reports the newest
//! seq it made durable ([`Journal::acked_seq`]); readers see a record only
//! then. A sync covers what was written before it started, never more.
//!
//! ```
//! use events_journal::{Journal, JournalOptions, Reader, SyncPolicy};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut journal, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Always))?;
//! journal.write_batch([(1_000, b"a")])?;
//! journal.start_sync()?; // fdatasync of seq 1 on the commit thread
//! journal.write_batch([(1_001, b"b")])?; // written while it runs
//! assert_eq!(journal.wait_synced()?, 1); // seq 2 was not covered
//! assert_eq!(Reader::open(dir.path())?.read_since(0)?.count(), 1);
//! assert_eq!(journal.commit()?, 2); // or: start_sync, then poll_synced
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Platform
//!
//! Written for Unix (Linux first): durability relies on `fdatasync` and on
//! fsyncing directories, and the single-writer lock on an open-file-description
//! lock (`fcntl(F_OFD_SETLK)`).
//!
//! # Fault injection
//!
//! With the `fault-injection` cargo feature (tests only), `fault::FaultPlan`
//! given to `JournalOptions::faults` makes chosen I/O steps fail (`ENOSPC`,
//! `EIO`, ...), write short, tear at a byte, or crash. Without the feature
//! the seam is a zero-sized type and costs nothing.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod background;
mod commit;
mod consumer;
mod crc;
mod error;
#[cfg(feature = "fault-injection")]
#[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
#[allow(dead_code, unreachable_pub, reason = "only `Step` is used without the fault-injection feature")]
mod fault;
mod follow;
pub mod format;
mod lease;
mod linger;
mod lock;
mod mapping;
mod open;
mod options;
mod own_file;
mod pin;
mod prune;
mod pruned;
mod reader;
mod rebuild;
mod records;
mod recover_segment;
mod recovery;
mod reserve;
mod retention;
mod roll;
mod run;
mod scan;
mod sealer;
mod seam;
mod segment;
mod sidecar;
mod stats;
mod verify;
mod watermark;
mod writer;

pub use consumer::{
    CHECKPOINT_FILE_LEN, CHECKPOINT_SLOT_LEN, CONSUMER_OPEN_WAIT, CONSUMERS_DIR, Checkpoint, ConsumerFile,
    ConsumerInfo, MAX_CONSUMER_NAME, consumer_path, delete_consumer, list_consumers, validate_consumer_name,
};
pub use error::{JournalError, ReadError};
pub use follow::{Followed, Follower, Reset};
pub use lease::{LEASE_FILE, LEASE_STEP};
pub use open::RecoveryReport;
pub use options::{JournalOptions, RecoveryMode, SyncPolicy};
pub use pruned::{
    PRUNED_ENTRY_LEN, PRUNED_FILE, PRUNED_HEADER_LEN, PRUNED_MAGIC, PRUNED_MAX_KEYS, PRUNED_MAX_SEGMENTS,
    PRUNED_VERSION, PrunedLog, PrunedSegment, key_hash,
};
pub use reader::{Reader, SegmentSizes};
pub use records::{Record, RecordRef, Records};
pub use recover_segment::RecoveryAction;
pub use retention::Retention;
pub use run::{RecordRun, RunIter};
pub use segment::{EntryKind, REMOVED_SUFFIX, entry_kind, now_nanos};
pub use sidecar::{
    IndexEntry, MAX_SIDECAR_KEY, SIDECAR_EXT, SIDECAR_HEADER_LEN, SIDECAR_MAGIC, SIDECAR_VERSION, SegmentIndex,
    Sidecar, SidecarError, sidecar_path,
};
pub use stats::JournalStats;
pub use verify::{Problem, VerifyReport, verify};
pub use watermark::{WATERMARK_FILE, WATERMARK_LEN, Watermark, WriterState};
pub use writer::Journal;

/// The largest payload the format can hold (the length field is a `u32`).
pub const MAX_FORMAT_RECORD_BYTES: u32 = u32::MAX;

/// The message a caught panic carries (its `&str` or `String` payload).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}
