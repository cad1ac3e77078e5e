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

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use events_core::{Codec, Envelope, Event, StreamId};
use events_journal::{JournalError, ReadError, RecordRun, Records};
use tokio::task::JoinError;

use crate::error::LetGo;
use crate::shared::Shared;
use crate::{Error, Result, payload};

/// Records read from the journal per blocking read.
///
/// Each chunk costs a few thread wake-ups (the read ahead, the second
/// decoding half, the hand-over), so the size sets how often a catch-up
/// pays them: 1M events caught up in ~370 ms at 1,024, ~170 ms at 4,096,
/// ~180 ms at 8,192 (`feed/catch_up`). A catching-up stream holds up to two
/// chunks of decoded envelopes.
pub(crate) const REPLAY_CHUNK: usize = 4096;

/// Frame bytes read from the journal per blocking read, at most (the
/// record that reaches it is the chunk's last): with large events, a
/// stream that stopped taking them (an SSE client that stopped reading)
/// holds two chunks of a few MiB decoded, not 8,192 events of any size.
/// 4,096 events of the bench's 256 bytes take ~1.2 MiB.
pub(crate) const REPLAY_CHUNK_BYTES: usize = 4 << 20;

/// What one read found.
pub(crate) enum Chunk<E> {
    /// Consecutive events (none: caught up).
    Records(Decoded<E>),
    /// Records `expected..found` are missing (salvaged journal); `before`
    /// holds the records read before the gap.
    Gap {
        before: Decoded<E>,
        expected: u64,
        found: u64,
        /// The segment that starts after the gap.
        path: std::path::PathBuf,
    },
    /// The record `seq` (schema `version`) does not decode; `before` holds
    /// the records read before it.
    Undecodable {
        before: Decoded<E>,
        seq: u64,
        version: u32,
        error: events_core::CodecError,
        /// The record's stream id, when that part of it decodes (`None`
        /// when it does not either).
        stream: Option<Option<StreamId>>,
    },
    /// The journal failed after `before` (a damaged sealed segment, an I/O
    /// error): the records read before the failure are still good. Never
    /// empty: a failure with nothing before it is the read's error.
    Failed {
        before: Decoded<E>,
        error: JournalError,
    },
    /// Records after the cursor were pruned; the earliest the reader saw.
    Expired(u64),
    Ahead,
    /// The files belong to another journal (the directory was recreated).
    Epoch(u64),
}

/// Decoded envelopes, let go one by one if dropped unconsumed: a read
/// ahead whose stream went elsewhere, a read whose stream was dropped.
pub(crate) type Decoded<E> = LetGo<Arc<Envelope<E>>>;

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
    if let Some(limit) = limit.filter(|&limit| cursor >= limit) {
        // Nothing acknowledged after the cursor: a cursor past the latest
        // acknowledged seq is `Ahead` only if the files agree (they may be
        // ahead of it for a moment). One at it never is, whatever the
        // files say: a failed watermark write leaves them behind it until
        // the next batch.
        return match shared.reader.last_seq() {
            Ok(last) if cursor > last.max(limit) => Ok((Chunk::Ahead, None)),
            Ok(_) => Ok((Chunk::Records(Decoded::from(Vec::new())), None)),
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
    // A follower checked the codec when it opened; a directory recreated
    // since may hold a journal of another codec.
    records.check_codec_tag(C::ID)?;
    let walk = walk(&mut records, max, limit);
    let (out, bad) = decode_runs(codec, walk.runs);
    let out = Decoded::from(out);
    // What the walk found first is reported first: an undecodable record
    // precedes the gap or failure that stopped the walk after it.
    Ok(match (bad, walk.stop) {
        (Some(Bad { seq, version, error, stream }), _) => {
            (Chunk::Undecodable { before: out, seq, version, error, stream }, None)
        }
        (None, Some(JournalError::Gap { expected, found, path })) => {
            (Chunk::Gap { before: out, expected, found, path }, None)
        }
        (None, Some(error)) if out.is_empty() => return Err(Error::Journal(error)),
        (None, Some(error)) => (Chunk::Failed { before: out, error }, None),
        // A short chunk means the iterator reached the end of what it mapped
        // (or the acknowledged limit): the next read must look at the files again.
        (None, None) => (Chunk::Records(out), walk.more.then_some(records)),
    })
}

/// What one walk over the journal found: checked records in runs, and
/// why it stopped short, if it did.
struct Walk {
    runs: Vec<RecordRun>,
    /// What the journal reported after the runs: a salvage gap, damage or
    /// an I/O error. The runs before it are good and are delivered first.
    stop: Option<JournalError>,
    /// Whether the walk took all it was asked for (the iterator may hold more).
    more: bool,
}

/// Takes up to `max` records (and up to [`REPLAY_CHUNK_BYTES`]) as runs,
/// none past `limit`; stops at a gap or a journal error, keeping the runs
/// before it.
fn walk(records: &mut Records, max: usize, limit: Option<u64>) -> Walk {
    let mut walk = Walk { runs: Vec::new(), stop: None, more: false };
    let (mut taken, mut bytes) = (0, 0);
    while taken < max && bytes < REPLAY_CHUNK_BYTES {
        let mut run = match records.next_run_within(max - taken, REPLAY_CHUNK_BYTES - bytes) {
            None => return walk,
            Some(Ok(run)) => run,
            Some(Err(e)) => {
                walk.stop = Some(e);
                return walk;
            }
        };
        if let Some(limit) = limit.filter(|&limit| run.last_seq() > limit) {
            // Written but not yet acknowledged: stop here and re-read later.
            if run.first_seq() <= limit {
                run.split_off(usize::try_from(limit + 1 - run.first_seq()).unwrap_or(usize::MAX));
                walk.runs.push(run);
            }
            return walk;
        }
        taken += run.len();
        bytes += run.frame_bytes();
        walk.runs.push(run);
    }
    walk.more = true;
    walk
}

/// A record that did not decode: its seq, schema version, the error and
/// its stream id when that part decodes.
struct Bad {
    seq: u64,
    version: u32,
    error: events_core::CodecError,
    stream: Option<Option<StreamId>>,
}

impl Bad {
    /// `record`, which does not decode (`error`).
    fn of<C: Codec>(codec: &C, record: &events_journal::RecordRef<'_>, error: events_core::CodecError) -> Bad {
        let (seq, version) = (record.seq(), payload::split_version(record.payload()).0);
        let stream = payload::stream_id(codec, record.payload()).ok();
        Bad { seq, version, error, stream }
    }
}

/// Chunks of at least this many records are decoded on two threads.
const PARALLEL_DECODE_MIN: usize = 256;

/// Decodes the runs' records in order, up to the first that does not
/// decode. A large chunk is cut in two halves: the second is offered to
/// another blocking thread while this one decodes the first, then taken
/// back and decoded here if no thread has claimed it yet. Decoding is most
/// of what a catch-up costs (the walk above is cheap), and this thread
/// never waits for a thread that has not started: with the blocking pool
/// full of catching-up readers, each decodes its own second half.
fn decode_runs<E: Event, C: Codec>(codec: &C, mut runs: Vec<RecordRun>) -> (Vec<Arc<Envelope<E>>>, Option<Bad>) {
    let total: usize = runs.iter().map(RecordRun::len).sum();
    let runtime = tokio::runtime::Handle::try_current().ok();
    let (Some(runtime), true) = (runtime, total >= PARALLEL_DECODE_MIN && parallel()) else {
        return decode_list(codec, &runs, total);
    };
    let n2 = total - total / 2;
    let offered = Arc::new(Mutex::new(Some(split_runs(&mut runs, total / 2))));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    {
        let (offered, codec) = (Arc::clone(&offered), codec.clone());
        runtime.spawn_blocking(move || {
            let Some(second) = take(&offered) else { return };
            // A panic here would be a bug of this crate's (the event
            // type's are caught): handed over, to panic the read as it
            // would unsplit.
            let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| decode_list::<E, C>(&codec, &second, n2)));
            // Let go of one by one wherever it is dropped: here when the
            // first half ended early and its thread is gone, or with the
            // channel.
            let _ = tx.send(decoded.map(|(out, bad)| (Decoded::from(out), bad)));
        });
    }
    let (mut out, bad) = decode_list(codec, &runs, total);
    let second = take(&offered);
    if bad.is_some() {
        return (out, bad); // what follows the bad record is not delivered
    }
    let (rest, bad) = match second {
        Some(second) => decode_list(codec, &second, n2),
        None => match rx.recv() {
            Ok(Ok((decoded, bad))) => (decoded.into_vec(), bad),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => unreachable!("the thread that claimed the second half sends its result or its panic"),
        },
    };
    out.extend(rest);
    (out, bad)
}

/// Claims the offered half (once).
fn take(offered: &Mutex<Option<Vec<RecordRun>>>) -> Option<Vec<RecordRun>> {
    offered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

/// Moves everything after the first `n` records of `runs` into the returned runs.
fn split_runs(runs: &mut Vec<RecordRun>, n: usize) -> Vec<RecordRun> {
    let mut seen = 0;
    let Some(i) = runs.iter().position(|run| {
        seen += run.len();
        seen > n
    }) else {
        return Vec::new();
    };
    // Records of run `i` that stay: those before record `n`.
    let stay = n - (seen - runs[i].len());
    let mut rest = Vec::new();
    let from = if stay == 0 {
        i
    } else {
        rest.extend(runs[i].split_off(stay));
        i + 1
    };
    rest.extend(runs.drain(from..));
    rest
}

/// Decodes the records of `runs`, in order, up to the first that does not
/// decode. A panic of the event type's `Deserialize` or `upcast` makes its
/// record undecodable, as `payload::decode_caught` does, with one
/// `catch_unwind` for the whole list: the records decoded before it are
/// kept, and it is the one after them (decoded once: a panic hook reports
/// it once).
fn decode_list<E: Event, C: Codec>(
    codec: &C,
    runs: &[RecordRun],
    capacity: usize,
) -> (Vec<Arc<Envelope<E>>>, Option<Bad>) {
    let mut out = Vec::with_capacity(capacity);
    match std::panic::catch_unwind(AssertUnwindSafe(|| decode_each(codec, runs, &mut out))) {
        Ok(bad) => (out, bad),
        Err(panic) => {
            let record = runs.iter().flat_map(RecordRun::iter).nth(out.len()).expect("the record that panicked");
            let error = payload::panicked::<C>(record.payload().len(), &*panic);
            (out, Some(Bad::of(codec, &record, error)))
        }
    }
}

/// [`decode_list`]'s loop: pushes each record's envelope to `out`, up to
/// the first that does not decode, which it returns.
fn decode_each<E: Event, C: Codec>(codec: &C, runs: &[RecordRun], out: &mut Vec<Arc<Envelope<E>>>) -> Option<Bad> {
    for record in runs.iter().flat_map(RecordRun::iter) {
        match payload::decode(codec, record.seq(), record.ts(), record.payload()) {
            Ok(env) => out.push(Arc::new(env)),
            Err(error) => return Some(Bad::of(codec, &record, error)),
        }
    }
    None
}

/// Whether this machine runs more than one thread at a time.
fn parallel() -> bool {
    static PARALLEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PARALLEL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}
