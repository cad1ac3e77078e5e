//! The ring of recent ephemeral events: what a live-output stream
//! (`stream.rs`) replays to a client that reconnects mid-response. The
//! writer thread inserts each batch's ephemeral events, positioned, before it
//! publishes the batch's durable events (`writer.rs`), so a reader that sees
//! durable seq `s + 1` finds every ephemeral event positioned after `s`
//! already here.
//!
//! Invariant: entries are kept in position order; an entry leaves only by
//! the limits ([`LiveOutput`]), and every removal raises the ring's `floor`
//! to at least the removed position, so a reader can always tell whether
//! something it still needed is gone (then it says so with one
//! `Reset { LiveOutputExpired }`), never silently.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use events_core::{Envelope, Seq, StreamId, Timestamp};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::LiveOutput;
use crate::position::Position;

/// Ephemeral events with their positions, in position order.
pub(crate) type Positioned<E> = Vec<(Position, Arc<Envelope<E>>)>;

/// One ephemeral event in the ring.
struct Entry<E> {
    env: Arc<Envelope<E>>,
    at: Instant,
}

struct State<E> {
    entries: BTreeMap<Position, Entry<E>>,
    /// Each stream's positions in the ring, oldest first (for the per-stream limit).
    by_stream: HashMap<Option<StreamId>, VecDeque<Position>>,
    /// Every ephemeral event at or before this position may be gone.
    floor: Position,
}

/// The ring; shared by the writer (inserts) and live-output streams (reads).
pub(crate) struct Ring<E> {
    limits: LiveOutput,
    state: Mutex<State<E>>,
    /// Bumped after each insert: live-output streams wait on it.
    inserted: watch::Sender<u64>,
    evicted: AtomicU64,
    len: AtomicU64,
}

impl<E> std::fmt::Debug for Ring<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("limits", &self.limits).field("len", &self.len).finish_non_exhaustive()
    }
}

impl<E> Ring<E> {
    /// An empty ring for a writer that opened at durable seq `latest`: the
    /// ephemeral events of an earlier process are gone, so every position up
    /// to the end of `latest`'s run counts as removed.
    pub(crate) fn new(limits: LiveOutput, latest: u64) -> Self {
        Ring {
            limits,
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                by_stream: HashMap::new(),
                // A new journal has nothing an earlier process could have emitted after.
                floor: if latest == 0 { Position::default() } else { Position::end_of(latest) },
            }),
            inserted: watch::channel(0).0,
            evicted: AtomicU64::new(0),
            len: AtomicU64::new(0),
        }
    }

    /// Adds one batch's ephemeral events (in position order), then applies
    /// the limits and wakes the waiting streams.
    pub(crate) fn insert(&self, batch: impl IntoIterator<Item = (Position, Arc<Envelope<E>>)>) {
        let now = Instant::now();
        let mut state = self.state.lock();
        for (pos, env) in batch {
            state.by_stream.entry(env.stream.clone()).or_default().push_back(pos);
            state.entries.insert(pos, Entry { env, at: now });
            let per_stream = self.limits.per_stream;
            let key = state.entries[&pos].env.stream.clone();
            while state.by_stream.get(&key).is_some_and(|q| q.len() > per_stream) {
                let oldest = state.by_stream.get_mut(&key).and_then(VecDeque::pop_front);
                if let Some(oldest) = oldest {
                    self.remove(&mut state, oldest, false);
                }
            }
        }
        while state.entries.len() > self.limits.max_events {
            let Some((&oldest, _)) = state.entries.first_key_value() else { break };
            self.remove(&mut state, oldest, true);
        }
        self.expire_locked(&mut state, now);
        self.len.store(state.entries.len() as u64, Ordering::Relaxed);
        drop(state);
        self.inserted.send_modify(|n| *n += 1);
    }

    /// Positions and inserts the ephemeral events of one writer batch: each
    /// comes with the number of durable events staged before it, the
    /// batch's durable events start at `first`, and `last` is the position
    /// of the previous ephemeral event (the index goes on after the same
    /// durable seq, and starts at 1 after a new one).
    pub(crate) fn insert_staged(
        &self,
        first: u64,
        staged: impl Iterator<Item = (usize, Option<StreamId>, E)>,
        last: &mut Position,
    ) {
        let now = Timestamp::now();
        let batch: Positioned<E> = staged
            .map(|(before, stream, event)| {
                let after = Seq::new(first + before as u64 - 1);
                let index = if last.seq == after { last.index + 1 } else { 1 };
                *last = Position { seq: after, index };
                (*last, Arc::new(Envelope { seq: after, ts: now, stream, event, id: None }))
            })
            .collect();
        self.insert(batch);
    }

    /// Removes `pos`, raising the floor; `unlink` also drops it from its
    /// stream's queue (the per-stream limit already popped it).
    fn remove(&self, state: &mut State<E>, pos: Position, unlink: bool) {
        let Some(entry) = state.entries.remove(&pos) else { return };
        if unlink {
            let key = entry.env.stream.clone();
            if let Some(queue) = state.by_stream.get_mut(&key) {
                queue.retain(|p| *p != pos);
                if queue.is_empty() {
                    state.by_stream.remove(&key);
                }
            }
        } else if state.by_stream.get(&entry.env.stream).is_some_and(VecDeque::is_empty) {
            state.by_stream.remove(&entry.env.stream);
        }
        state.floor = state.floor.max(pos);
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops the entries older than the age limit.
    fn expire_locked(&self, state: &mut State<E>, now: Instant) {
        while let Some((&oldest, entry)) = state.entries.first_key_value() {
            if now.duration_since(entry.at) <= self.limits.max_age {
                break;
            }
            self.remove(state, oldest, true);
        }
    }

    /// The entries after `after` up to `through` (inclusive) whose stream
    /// passes `filter`, and the floor: whether something after `after` may
    /// be gone is `floor > after`.
    pub(crate) fn range(
        &self,
        after: Position,
        through: Position,
        filter: Option<&StreamId>,
    ) -> (Positioned<E>, Position) {
        let mut state = self.state.lock();
        self.expire_locked(&mut state, Instant::now());
        self.len.store(state.entries.len() as u64, Ordering::Relaxed);
        if after >= through {
            return (Vec::new(), state.floor);
        }
        let found = state
            .entries
            .range((std::ops::Bound::Excluded(after), std::ops::Bound::Included(through)))
            .filter(|(_, e)| filter.is_none_or(|want| e.env.stream.as_ref() == Some(want)))
            .map(|(pos, e)| (*pos, Arc::clone(&e.env)))
            .collect();
        (found, state.floor)
    }

    /// A receiver that changes after every insert.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.inserted.subscribe()
    }

    /// Ephemeral events in the ring now, and removed by its limits since open.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.len.load(Ordering::Relaxed), self.evicted.load(Ordering::Relaxed))
    }
}
