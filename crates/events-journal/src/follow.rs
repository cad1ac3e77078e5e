//! [`Follower`]: following a journal as raw records, for the readers that
//! need the bytes rather than decoded events (the CLI's `tail`, tools that
//! forward payloads). It is the journal-level counterpart of the façade's
//! `FeedStream` and keeps the same promises with the same vocabulary: every
//! record after the cursor, in order, none past the writer's watermark, and
//! an explicit [`Reset`] wherever the cursor cannot be served.
//!
//! Invariant: the follower never yields a record of another journal under an
//! old cursor (it checks the epoch of what it reads), never skips silently
//! (retention, a salvage gap, a cursor ahead of the journal and a recreated
//! directory are each one `Reset`), and after a reset goes on where the
//! façade's streams do: right after a gap, else with the earliest retained
//! record.

use crate::error::{JournalError, ReadError};
use crate::reader::Reader;
use crate::records::{Record, Records};

/// Why a [`Follower`] could not go on from its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reset {
    /// The records after the cursor were removed by retention; the follower
    /// goes on with `earliest`.
    Expired {
        /// The earliest retained seq.
        earliest: u64,
    },
    /// The cursor is past the journal's last acknowledged seq (the journal
    /// was recreated or rolled back); the follower goes on with the earliest
    /// retained record.
    Ahead {
        /// The latest acknowledged seq.
        latest: u64,
        /// The earliest retained seq.
        earliest: u64,
    },
    /// A salvage recovery dropped `first_missing..=last_missing`; the
    /// follower goes on right after them.
    Gap {
        /// The first dropped seq.
        first_missing: u64,
        /// The last dropped seq.
        last_missing: u64,
    },
    /// The directory now holds another journal; the follower goes on with
    /// its earliest record.
    Epoch {
        /// The epoch the cursor belonged to.
        old: u64,
        /// The epoch of the journal now in the directory.
        new: u64,
        /// The earliest retained seq of the new journal.
        earliest: u64,
    },
}

/// One step of a [`Follower`].
#[derive(Debug)]
pub enum Followed {
    /// The next record.
    Record(Record),
    /// The cursor could not be served; the follower already moved on.
    Reset(Reset),
}

/// Follows a journal directory from a cursor: call [`next`](Self::next)
/// until it returns `Ok(None)` (caught up), wait, call again.
///
/// # Example
///
/// ```
/// use events_journal::{Followed, Follower, Journal, JournalOptions, Reader};
///
/// let dir = tempfile::tempdir()?;
/// let (mut journal, _) = Journal::open(dir.path(), JournalOptions::new())?;
/// journal.append(1, b"a")?;
/// let mut follower = Follower::new(Reader::open(dir.path())?, 0)?;
/// assert!(matches!(follower.next()?, Some(Followed::Record(r)) if r.payload() == b"a"));
/// assert!(follower.next()?.is_none()); // caught up
/// journal.append(2, b"b")?;
/// assert!(matches!(follower.next()?, Some(Followed::Record(r)) if r.seq() == 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Follower {
    reader: Reader,
    /// The last seq yielded (or skipped by a reset).
    cursor: u64,
    /// The journal the cursor belongs to.
    epoch: u64,
    /// The current iterator and the cursor it started from.
    records: Option<(Records, u64)>,
}

/// What looking at the directory again found.
enum Opened {
    Records(Records),
    Reset(Reset),
}

impl Follower {
    /// A follower of the journal `reader` reads, yielding records after
    /// `cursor` of the journal now in the directory.
    ///
    /// # Errors
    ///
    /// [`JournalError::NoSegments`] if the directory holds no journal yet;
    /// other errors as [`Reader::epoch`].
    pub fn new(reader: Reader, cursor: u64) -> Result<Follower, JournalError> {
        let epoch = reader.epoch()?;
        Ok(Follower { reader, cursor, epoch, records: None })
    }

    /// A follower resuming after `cursor` of the journal of `epoch` (a
    /// position an earlier follower handed out, kept across a restart):
    /// if the directory now holds another journal, its first step is a
    /// [`Reset::Epoch`] and it goes on with the new journal's earliest
    /// record, instead of reading that cursor's seqs in a journal they do
    /// not belong to.
    pub fn resume(reader: Reader, epoch: u64, cursor: u64) -> Follower {
        Follower { reader, cursor, epoch, records: None }
    }

    /// The last seq yielded (or skipped past by a reset).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The epoch of the journal the cursor belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The reader the follower reads through (e.g. to ask, at `Ok(None)`,
    /// whether a writer is opening the journal: [`Reader::writer_opening`]).
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The next record or reset available now; `Ok(None)` when caught up
    /// with what the writer has acknowledged.
    ///
    /// # Errors
    ///
    /// A damaged sealed segment ([`JournalError::Corrupt`], naming file and
    /// offset), a directory holding no segment right now, its cursor past 0
    /// ([`JournalError::NoSegments`]: emptied to be restored or recreated),
    /// or a failed system call. The follower stays where it was, so the
    /// caller may report the error and try again later.
    #[allow(clippy::should_implement_trait, reason = "fallible and resumable after `None`: not an Iterator")]
    pub fn next(&mut self) -> Result<Option<Followed>, JournalError> {
        loop {
            let Some((records, opened_at)) = &mut self.records else {
                match self.open()? {
                    Opened::Records(records) => self.records = Some((records, self.cursor)),
                    Opened::Reset(reset) => return Ok(Some(self.announce(reset))),
                }
                continue;
            };
            match records.next() {
                Some(Ok(record)) => {
                    self.cursor = record.seq();
                    return Ok(Some(Followed::Record(record)));
                }
                Some(Err(JournalError::Gap { expected, found, .. })) => {
                    self.cursor = found - 1;
                    return Ok(Some(self.announce(Reset::Gap { first_missing: expected, last_missing: found - 1 })));
                }
                Some(Err(e)) => {
                    self.records = None;
                    return Err(e);
                }
                None => {
                    let caught_up = *opened_at == self.cursor;
                    self.records = None;
                    if caught_up {
                        // Nothing new: unless the directory now holds another journal.
                        return match self.reader.epoch() {
                            Ok(now) if now != self.epoch => {
                                let reset = self.new_epoch(now);
                                Ok(Some(self.announce(reset)))
                            }
                            _ => Ok(None),
                        };
                    }
                    // The iterator ended where its maps ended: look again.
                }
            }
        }
    }

    /// Reads after the cursor, turning what cannot be served into a reset.
    fn open(&mut self) -> Result<Opened, JournalError> {
        let reset = match self.reader.read_since(self.cursor) {
            Ok(records) => match records.epoch() {
                Some(found) if found != self.epoch => self.new_epoch(found),
                _ => return Ok(Opened::Records(records)),
            },
            Err(ReadError::Expired { earliest }) => match self.reader.epoch() {
                Ok(now) if now != self.epoch => self.new_epoch(now),
                _ => {
                    self.cursor = earliest - 1;
                    Reset::Expired { earliest }
                }
            },
            Err(ReadError::Ahead { latest }) => match self.reader.epoch() {
                Ok(now) if now != self.epoch => self.new_epoch(now),
                // No segment at all (a dead writer's journal whose files
                // are being replaced, say): what a follower started then
                // is told (`events tail` waits, saying so; a replicator
                // retries, recording a stall), not a cursor ahead of a
                // journal to go back to the start of.
                Err(e @ JournalError::NoSegments { .. }) => return Err(e),
                _ => {
                    let earliest = self.reader.first_seq()?;
                    self.cursor = earliest - 1;
                    Reset::Ahead { latest, earliest }
                }
            },
            Err(ReadError::Journal(e)) => return Err(e),
        };
        Ok(Opened::Reset(reset))
    }

    /// Logs a reset with what an operator filters on, and hands it out.
    fn announce(&self, reset: Reset) -> Followed {
        tracing::info!(dir = %self.reader.dir().display(), epoch = self.epoch, cursor = self.cursor, ?reset, "follower reset");
        Followed::Reset(reset)
    }

    /// Moves to the journal of epoch `new`, before its earliest record.
    fn new_epoch(&mut self, new: u64) -> Reset {
        let old = std::mem::replace(&mut self.epoch, new);
        let earliest = self.reader.first_seq().unwrap_or(1);
        self.cursor = earliest - 1;
        self.records = None;
        Reset::Epoch { old, new, earliest }
    }
}
