//! The journal read path: one blocking read of up to [`REPLAY_CHUNK`]
//! records after a cursor, decoded into envelopes, run on tokio's blocking
//! pool by the [`FeedStream`](crate::FeedStream) state machine and by the
//! `EventLog` pages of `store.rs`, which own the decisions; this file only
//! reads and reports what it found as a [`Chunk`].
//!
//! Invariant: a chunk never holds a record past the acknowledged `limit`
//! (in the writer's process) nor a record of another journal than the
//! stream's epoch; a salvage gap, an expired or ahead cursor and another
//! epoch are reported as such, never skipped.

use std::sync::Arc;

use events_core::{Codec, Envelope, Event};
use events_journal::{JournalError, ReadError, Records};
use tokio::task::JoinError;

use crate::shared::Shared;
use crate::{Error, Result, payload};

/// Records read from the journal per blocking read.
pub(crate) const REPLAY_CHUNK: usize = 1024;

/// What one read found.
pub(crate) enum Chunk<E> {
    /// Consecutive events (none: caught up).
    Records(Vec<Arc<Envelope<E>>>),
    /// Records `expected..found` are missing (salvaged journal); `before`
    /// holds the records read before the gap.
    Gap {
        before: Vec<Arc<Envelope<E>>>,
        expected: u64,
        found: u64,
        /// The segment that starts after the gap.
        path: std::path::PathBuf,
    },
    /// The record `seq` (schema `version`) does not decode; `before` holds
    /// the records read before it.
    Undecodable {
        before: Vec<Arc<Envelope<E>>>,
        seq: u64,
        version: u32,
        error: events_core::CodecError,
    },
    /// Records after the cursor were pruned; the earliest the reader saw.
    Expired(u64),
    Ahead,
    /// The files belong to another journal (the directory was recreated).
    Epoch(u64),
}

/// What one blocking read returns: the chunk, and the iterator when it may hold more.
pub(crate) type ReadOut<E> = (Chunk<E>, Option<Records>);

/// The result of a blocking read, with a failed join (a panic) as an error.
pub(crate) fn joined<T>(joined: std::result::Result<Result<T>, JoinError>) -> Result<T> {
    joined.map_err(Error::Task)?
}

/// Reads and decodes up to `max` records (at most [`REPLAY_CHUNK`]) after
/// `cursor`, none past `limit`; returns the iterator too when it may hold
/// more.
pub(crate) fn read_chunk<E: Event, C: Codec>(
    shared: &Shared,
    codec: &C,
    cursor: u64,
    records: Option<Records>,
    max: usize,
    limit: Option<u64>,
    epoch: u64,
) -> Result<ReadOut<E>> {
    let max = max.min(REPLAY_CHUNK);
    if limit.is_some_and(|limit| cursor >= limit) {
        // Nothing acknowledged after the cursor: a cursor past the latest
        // acknowledged seq is `Ahead` only if the files agree.
        return match shared.reader.last_seq() {
            Ok(last) if cursor > last => Ok((Chunk::Ahead, None)),
            Ok(_) => Ok((Chunk::Records(Vec::new()), None)),
            Err(e) => Err(Error::Journal(e)),
        };
    }
    let mut records = match records {
        Some(records) => records,
        None => match shared.reader.read_since(cursor) {
            Ok(records) => records,
            Err(ReadError::Expired { earliest }) => return Ok((Chunk::Expired(earliest), None)),
            Err(ReadError::Ahead { .. }) => return Ok((Chunk::Ahead, None)),
            Err(ReadError::Journal(e)) => return Err(Error::Journal(e)),
            Err(other) => return Err(Error::Read(other)),
        },
    };
    if let Some(found) = records.epoch().filter(|found| *found != epoch) {
        // Another journal's seq n is another event: never hand it out.
        return Ok((Chunk::Epoch(found), None));
    }
    let mut out = Vec::with_capacity(max);
    while out.len() < max {
        let Some(record) = records.next_ref() else { break };
        let record = match record {
            Ok(record) => record,
            Err(JournalError::Gap { expected, found, path }) => {
                return Ok((Chunk::Gap { before: out, expected, found, path }, None));
            }
            Err(e) => return Err(e.into()),
        };
        if limit.is_some_and(|limit| record.seq() > limit) {
            // Written but not yet acknowledged: stop here and re-read later.
            return Ok((Chunk::Records(out), None));
        }
        let env = match payload::decode(codec, record.seq(), record.ts(), record.payload()) {
            Ok(env) => env,
            Err(error) => {
                let (seq, version) = (record.seq(), payload::split_version(record.payload()).0);
                return Ok((Chunk::Undecodable { before: out, seq, version, error }, None));
            }
        };
        out.push(Arc::new(env));
    }
    // A short chunk means the iterator reached the end of what it mapped:
    // the next read must look at the files again.
    let more = out.len() == max;
    Ok((Chunk::Records(out), more.then_some(records)))
}
