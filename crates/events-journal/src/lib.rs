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
//! # Example
//!
//! ```
//! use events_journal::{Journal, JournalOptions, ReadError, Reader, SyncPolicy};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut journal, report) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Always))?;
//! assert!(report.created);
//! assert_eq!(journal.append(1_000, b"hello")?, 1);
//! let seqs = journal.append_batch([(2_000, &b"a"[..]), (2_001, &b"b"[..])])?;
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
//! # Platform
//!
//! Written for Unix (Linux first): durability relies on `fdatasync` and on
//! fsyncing directories, and the lock on `flock(2)`.
//!
//! # Fault injection
//!
//! With the `fault-injection` cargo feature (tests only), `fault::FaultPlan`
//! given to `JournalOptions::faults` makes chosen I/O steps fail (`ENOSPC`,
//! `EIO`, ...), write short, tear at a byte, or crash. Without the feature
//! the seam is a zero-sized type and costs nothing.

mod background;
mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
#[allow(dead_code, unreachable_pub, reason = "only `Step` is used without the fault-injection feature")]
mod fault;
mod follow;
pub mod format;
mod lock;
mod mapping;
mod open;
mod options;
mod reader;
mod rebuild;
mod records;
mod recover_segment;
mod recovery;
mod retention;
mod scan;
mod sealer;
mod seam;
mod segment;
mod verify;
mod watermark;
mod writer;

pub use error::{JournalError, ReadError};
pub use follow::{Followed, Follower, Reset};
pub use open::RecoveryReport;
pub use options::{JournalOptions, RecoveryMode, SyncPolicy};
pub use reader::Reader;
pub use records::{Record, Records};
pub use recover_segment::RecoveryAction;
pub use retention::Retention;
pub use verify::{Problem, VerifyReport, verify};
pub use watermark::{WATERMARK_FILE, WATERMARK_LEN, Watermark, WriterState};
pub use writer::{Journal, JournalStats};

/// The largest payload the format can hold (the length field is a `u32`).
pub const MAX_FORMAT_RECORD_BYTES: u32 = u32::MAX;
