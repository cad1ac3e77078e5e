//! The ring of recent ephemeral events: what a live-output stream
//! (`stream.rs`) replays to a client that reconnects mid-response. The
//! writer thread inserts each batch's ephemeral events, positioned, before it
//! publishes the batch's durable events (`writer.rs`), so a reader that sees
//! durable seq `s + 1` finds every ephemeral event positioned after `s`
//! already here.
//!
//! Invariant: entries are kept in position order; an entry leaves only by
//! the limits ([`LiveOutput`]), and every removal is noted against its run
//! (the durable seq it followed) and raises the ring's `floor` to at least
//! the removed position, so a reader can always tell whether a run it
//! still needed lost something (then it says so with one
//! `Reset { LiveOutputExpired }`), never silently; and a run that lost
//! nothing is never reported. Removals are numbered, each run's latest
//! kept with it: a reader that asked for what is there when it began
//! takes the removals made before as no news, whatever their positions.

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

/// The run of the latest durable seq a writer that reopened a journal
/// opened at: an earlier writer may have emitted ephemeral events there,
/// whose positions (gone with that writer) must not be taken for this
/// one's. This writer's are indexed from `base + 1` to `limit`, a range of
/// 2^24 chosen by its lease generation (`Journal::open_generation`), so a
/// client of this writer resumes among them, and a cursor of an earlier
/// writer's output there is told of its loss.
#[derive(Clone, Copy, Debug)]
struct OwnRun {
    run: u64,
    base: u32,
    limit: u32,
}

impl OwnRun {
    /// Index bits of one writer's range in its first run.
    const BITS: u32 = 24;
    /// Ranges 1..=254: range 0 is the first writer's (indices from 1), and
    /// no range reaches `u32::MAX`, which marks a run's end.
    const RANGES: u64 = 254;
    /// The highest index of a run that is not a reopened writer's first:
    /// range 0's last.
    const RUN_LIMIT: u32 = (1 << Self::BITS) - 1;

    fn new(run: u64, generation: u64) -> Self {
        let range = 1 + u32::try_from(generation % Self::RANGES).unwrap_or(0);
        let base = range << Self::BITS;
        OwnRun { run, base, limit: base + ((1 << Self::BITS) - 1) }
    }
}

/// What a run of [`State::lost`] lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Lost {
    /// The highest position removed from it.
    max: Position,
    /// The number of its latest removal ([`State::removals`]).
    at: u64,
}

/// What a live-output stream takes as no news: losses at or before
/// `position`, and (a bare stream: what is there) every removal numbered
/// up to `removals`, whatever its position, made before it began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) position: Position,
    pub(crate) removals: u64,
}

struct State<E> {
    entries: BTreeMap<Position, Entry<E>>,
    /// Each stream's positions in the ring, oldest first (for the per-stream limit).
    by_stream: HashMap<Option<StreamId>, VecDeque<Position>>,
    /// Every ephemeral event of any stream at or before this position may be
    /// gone: a stream's floor folded in below.
    base_floor: Position,
    /// The runs that lost an entry of any stream (by the durable seq they
    /// follow), each with the highest position removed from it and the
    /// number of its latest removal. At most `LiveOutput::max_events` runs:
    /// the oldest are folded into `folded`.
    lost: BTreeMap<u64, Lost>,
    /// How many entries were ever removed: a reader built at `n` was owed
    /// none of the removals numbered up to `n` ([`Accepted`]).
    removals: u64,
    /// Runs at or before this position may have lost entries, which ones
    /// is forgotten (folded out of `lost`); a reader is still reset only
    /// when its own stream lost something after its position.
    folded: Position,
    /// The number of the latest removal folded into `folded`.
    folded_at: u64,
    /// Every ephemeral event at or before this position is gone, of every
    /// stream: an earlier writer's (for a writer that reopened a journal,
    /// the base of its own positions in the latest seq's run).
    earlier_writer: Position,
    /// For a writer that reopened a journal: its own positions in the run
    /// of the latest seq it opened at, apart from an earlier writer's there.
    own_run: Option<OwnRun>,
    /// The highest position removed of each stream, so that one stream's
    /// removals never reset a reader of another. At most
    /// `LiveOutput::max_events` streams: past that they are folded into
    /// `base_floor` (a reader may then reset needlessly, never miss a loss).
    floors: HashMap<Option<StreamId>, Position>,
}

impl<E> State<E> {
    /// Notes that `stream`'s events up to `pos` may be gone. Past `cap`
    /// streams, the lower half of the floors is folded into `base_floor`
    /// (amortised O(1) per removal; readers of those streams may reset
    /// needlessly, never miss a loss).
    fn raise(&mut self, stream: Option<StreamId>, pos: Position, cap: usize) {
        self.removals += 1;
        let run = self.lost.entry(pos.seq.get()).or_default();
        *run = Lost { max: run.max.max(pos), at: self.removals };
        if self.lost.len() > cap
            && let Some((_, oldest)) = self.lost.pop_first()
        {
            self.folded = self.folded.max(oldest.max);
            self.folded_at = self.folded_at.max(oldest.at);
        }
        let floor = self.floors.entry(stream).or_default();
        *floor = (*floor).max(pos);
        if self.floors.len() > cap {
            let mut floors: Vec<Position> = self.floors.values().copied().collect();
            let middle = floors.len() / 2;
            let (_, median, _) = floors.select_nth_unstable(middle);
            let median = *median;
            self.floors.retain(|_, f| *f > median);
            self.base_floor = self.base_floor.max(median);
        }
    }

    /// What a stream that asks for what is there (a bare cursor) takes as
    /// no news, built now. A reader of every stream: every removal so far,
    /// by number (a run's, or the runs folded out of `lost`), and an
    /// earlier writer's output. By position (the highest removed of any
    /// stream) it had taken as no news the later loss of another stream's
    /// event below that, still there when it began: one stream's limit
    /// removes its own oldest, not the ring's. A reader of one stream: the
    /// same, and by position its own floor (its own removals go oldest
    /// first), not `base_floor`, the other streams' floors folded in,
    /// which may lie above its events still there.
    fn bare_accepted(&self, stream: Option<&StreamId>) -> Accepted {
        let own = match stream {
            None => Position::default(),
            Some(id) => self.floors.get(&Some(id.clone())).copied().unwrap_or_default(),
        };
        Accepted { position: self.earlier_writer.max(own), removals: self.removals }
    }

    /// Every ephemeral event at or before the result may be gone, for a
    /// reader of `stream` (`None`: of every stream).
    fn floor(&self, stream: Option<&StreamId>) -> Position {
        let own = match stream {
            // The highest position removed of any stream: the newest run's
            // (`lost` is never emptied by its folding).
            None => self.lost.last_key_value().map_or(self.folded, |(_, newest)| newest.max),
            Some(id) => self.floors.get(&Some(id.clone())).copied().unwrap_or_default(),
        };
        self.base_floor.max(self.earlier_writer).max(own)
    }

    /// Whether an ephemeral event a reader of `stream` needs after `after`
    /// up to `through` (the end of a run) may be gone; if so, up to where
    /// the reset that says so reports the losses: the end of the last run
    /// that lost something, or where runs are not told apart, the end of
    /// the stretch (an earlier writer's output; the runs folded out of
    /// `lost`, up to what this reader's stream lost, all of which is
    /// gone), which may be before `through` or past it. A run whose latest
    /// removal is numbered `since` or lower lost nothing the reader was
    /// owed ([`Accepted::removals`]).
    fn loss(&self, after: Position, through: Position, stream: Option<&StreamId>, since: u64) -> Option<Position> {
        // Past this writer's range in its first run: an earlier writer's
        // position there, whose output after it is gone. The loss ends where
        // this writer's range begins, below the cursor: its own tokens in
        // the run follow the reset. It had ended at the run's end, so a
        // client resuming with the reset's id never got them. If this
        // writer lost some of its own there too, one reset reports both.
        if let Some(own) = self.own_run
            && after.seq.get() == own.run
            && after.index > own.limit
            && after.index != u32::MAX
        {
            let start = Position { seq: Seq::new(own.run), index: own.base };
            return Some(self.loss(start, through, stream, since).unwrap_or(start));
        }
        let floor = self.floor(stream);
        if floor <= after {
            return None;
        }
        // Where runs are not told apart, one reset reports the whole
        // stretch; what follows it up to `through` (this writer's own
        // events, runs after the folded ones) is drained after the reset.
        if after < self.earlier_writer {
            // The loss ends where this writer's own range begins, in its
            // first run: its tokens there follow the reset (a cursor at the
            // run's durable event, which either writer may have handed out).
            return Some(self.earlier_writer);
        }
        if after < self.folded && self.folded_at > since {
            return Some(self.folded.min(floor));
        }
        // A run at or below the reader's floor that lost something after
        // `after` (for a reader of one stream, maybe another stream's loss
        // in a run where its own stream lost something too, or later). The
        // reset reports up to the end of the last such run: a reader of one
        // stream drains several runs at once (up to its stream's next
        // durable event), and the later runs' kept events follow the reset.
        let last = through.min(floor).seq.get();
        let (&run, _) =
            self.lost.range(after.seq.get()..=last).rev().find(|(_, lost)| lost.max > after && lost.at > since)?;
        Some(Position::end_of(run).min(through))
    }
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

impl<E> Drop for Ring<E> {
    /// The ring goes with the feed's last holder of it (the writer thread
    /// as it ends, or the caller's last handle): each entry is let go under
    /// a catch, as the ring's own removals are.
    fn drop(&mut self) {
        for (_, entry) in std::mem::take(&mut self.state.get_mut().entries) {
            crate::error::let_go(entry);
        }
    }
}

impl<E> std::fmt::Debug for Ring<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("limits", &self.limits).field("len", &self.len).finish_non_exhaustive()
    }
}

impl<E> Ring<E> {
    /// An empty ring for a writer that opened at durable seq `latest`, its
    /// lease's `generation`: the ephemeral events of an earlier process are
    /// gone, so every position up to `latest`'s run counts as removed, and
    /// this writer's own in that run take a range of their own ([`OwnRun`]),
    /// unless this open `created` the journal (then no earlier process
    /// emitted any; a journal with no durable event may still have had one
    /// that emitted only ephemeral events).
    pub(crate) fn new(limits: LiveOutput, latest: u64, created: bool, generation: u64) -> Self {
        let own_run = (!created).then(|| OwnRun::new(latest, generation));
        Ring {
            limits,
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                by_stream: HashMap::new(),
                base_floor: Position::default(),
                lost: BTreeMap::new(),
                removals: 0,
                folded: Position::default(),
                folded_at: 0,
                earlier_writer: own_run
                    .map_or(Position::default(), |own| Position { seq: Seq::new(own.run), index: own.base }),
                own_run,
                floors: HashMap::new(),
            }),
            inserted: watch::channel(0).0,
            evicted: AtomicU64::new(0),
            len: AtomicU64::new(0),
        }
    }

    /// Adds one batch's ephemeral events (in position order), then applies
    /// the limits and wakes the waiting streams; `true` when a waker
    /// panicked there, so some were maybe left unwoken (see the end).
    pub(crate) fn insert(&self, batch: impl IntoIterator<Item = (Position, Arc<Envelope<E>>)>) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock();
        let per_stream = self.limits.per_stream;
        for (pos, env) in batch {
            let key = env.stream.clone();
            state.by_stream.entry(key.clone()).or_default().push_back(pos);
            state.entries.insert(pos, Entry { env, at: now });
            while let Some(oldest) =
                state.by_stream.get(&key).filter(|q| q.len() > per_stream).and_then(|q| q.front().copied())
            {
                self.remove(&mut state, oldest);
            }
        }
        while state.entries.len() > self.limits.max_events {
            let Some((&oldest, _)) = state.entries.first_key_value() else { break };
            self.remove(&mut state, oldest);
        }
        self.expire_locked(&mut state, now);
        self.len.store(state.entries.len() as u64, Ordering::Relaxed);
        drop(state);
        // Wakes the waiting live-output streams' tasks, on the writer's
        // thread: a waker is an executor's own code, and one that panics
        // had unwound out of the writer and failed the feed. Caught (the
        // count is bumped before the wakes), tokio drops the wakers it had
        // not woken yet: the caller rings the writer's bell, which every
        // live-output stream waits on too (its durable stream's), and
        // which wakes each waker under a catch of its own.
        crate::error::wake_caught("waking a live-output stream panicked", || self.inserted.send_modify(|n| *n += 1))
            .is_none()
    }

    /// Positions and inserts the ephemeral events of one writer batch: each
    /// comes with the number of durable events staged before it, the
    /// batch's durable events start at `first`, and `last` is the position
    /// of the previous ephemeral event (the index goes on after the same
    /// durable seq, and starts at 1 after a new one; a reopened writer's
    /// `last` starts at its own range's base, [`start`](Self::start)).
    /// `true` when a waker panicked ([`insert`](Self::insert)).
    pub(crate) fn insert_staged(
        &self,
        first: u64,
        staged: impl Iterator<Item = (usize, Option<StreamId>, E)>,
        last: &mut Position,
    ) -> bool {
        let now = Timestamp::now();
        let own = self.state.lock().own_run;
        let mut overflow = Vec::new();
        let batch: Positioned<E> = staged
            .filter_map(|(before, stream, event)| {
                let after = Seq::new(first + before as u64 - 1);
                // A run holds at most `RUN_LIMIT` ephemeral events (a
                // reopened writer's first run, its own range): one that long
                // without a durable event loses what follows, as a loss of
                // that run (the batch may go on to later runs). Past 2^24, a
                // run's indices would reach the range a later writer that
                // reopens the journal at that seq takes (`OwnRun`), whose
                // tokens a client's cursor would then be taken to have seen.
                let index = if last.seq == after { last.index.saturating_add(1) } else { 1 };
                let limit = own.filter(|own| own.run == after.get()).map_or(OwnRun::RUN_LIMIT, |own| own.limit);
                if index > limit {
                    overflow.push((stream, after.get()));
                    // On the writer's thread: its `Drop` may panic.
                    crate::error::let_go(event);
                    return None;
                }
                *last = Position { seq: after, index };
                Some((*last, Arc::new(Envelope { seq: after, ts: now, stream, event, id: None })))
            })
            .collect();
        let panicked = self.insert(batch);
        if !overflow.is_empty() {
            let mut state = self.state.lock();
            for (stream, run) in overflow {
                state.raise(stream, Position::end_of(run), self.limits.max_events);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        panicked
    }

    /// The position before this writer's first ephemeral event: its
    /// `last` for [`insert_staged`](Self::insert_staged) (in a reopened
    /// journal, the base of its own range in the latest seq's run: where
    /// an earlier writer's positions end).
    pub(crate) fn start(&self) -> Position {
        self.state.lock().earlier_writer
    }

    /// Removes `pos`, the oldest entry of its stream (every removal is: the
    /// per-stream limit takes a stream's oldest, the other limits the ring's
    /// oldest, which is its stream's oldest too), raising the floors.
    fn remove(&self, state: &mut State<E>, pos: Position) {
        let Some(entry) = state.entries.remove(&pos) else { return };
        let key = entry.env.stream.clone();
        if let Some(queue) = state.by_stream.get_mut(&key) {
            debug_assert_eq!(queue.front(), Some(&pos), "removals take a stream's oldest entry");
            queue.pop_front();
            if queue.is_empty() {
                state.by_stream.remove(&key);
            }
        }
        state.raise(key, pos, self.limits.max_events);
        self.evicted.fetch_add(1, Ordering::Relaxed);
        // The ring may hold the event's last reference: a `Drop` of the
        // event type that panics must not end the writer (an insert) or a
        // reader (a look that expires entries), as the fan-out catches it.
        // Last, with the ring's books already right: a log that panics (a
        // `tracing` layer's) had left the entry's position at the front of
        // its stream's queue, where the writer's per-stream limit then
        // removed it again for ever, and the loss unrecorded.
        crate::error::let_go(entry);
    }

    /// Drops the entries older than the age limit.
    fn expire_locked(&self, state: &mut State<E>, now: Instant) {
        while let Some((&oldest, entry)) = state.entries.first_key_value() {
            if now.duration_since(entry.at) <= self.limits.max_age {
                break;
            }
            self.remove(state, oldest);
        }
    }

    /// The entries after `after` up to `through` (the end of a run,
    /// inclusive) whose stream passes `filter`; or, when something in
    /// between that this reader needs may be gone, nothing and the position
    /// up to which the reset that says so reports losses (`through`, or
    /// before it when the losses end there: the stream drains the rest of
    /// the run after the reset, or after it when runs are not told apart).
    pub(crate) fn range(
        &self,
        after: Position,
        accepted: Accepted,
        through: Position,
        filter: Option<&StreamId>,
    ) -> Result<Positioned<E>, Position> {
        let mut state = self.state.lock();
        self.expire_locked(&mut state, Instant::now());
        self.len.store(state.entries.len() as u64, Ordering::Relaxed);
        if after >= through {
            return Ok(Vec::new());
        }
        // Losses at or before `accepted.position` are no news to this reader
        // (reported already, or an earlier writer's output before a bare
        // start), nor removals numbered up to `accepted.removals` (made
        // before a bare start): none to look for when that position is at
        // or past `through`. Looked for from it, a mark in a later run than
        // `through` had ranged the losses backwards, and panicked.
        let from = after.max(accepted.position);
        if let Some(reported) = (from < through).then(|| state.loss(from, through, filter, accepted.removals)).flatten()
        {
            return Err(reported);
        }
        let found = match filter {
            // Through the stream's own queue: a reader of a quiet stream does
            // not walk the other streams' events at every wake-up.
            Some(id) => {
                let Some(queue) = state.by_stream.get(&Some(id.clone())) else { return Ok(Vec::new()) };
                let start = queue.partition_point(|p| *p <= after);
                queue
                    .range(start..)
                    .take_while(|p| **p <= through)
                    .filter_map(|p| state.entries.get(p).map(|e| (*p, Arc::clone(&e.env))))
                    .collect()
            }
            None => state
                .entries
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Included(through)))
                .map(|(pos, e)| (*pos, Arc::clone(&e.env)))
                .collect(),
        };
        Ok(found)
    }

    /// What a stream that asks for what is there takes as no news, built
    /// now ([`State::bare_accepted`]).
    pub(crate) fn bare_accepted(&self, stream: Option<&StreamId>) -> Accepted {
        self.state.lock().bare_accepted(stream)
    }

    /// The newest position at or before `through` a reader of `stream`
    /// (`None`: of every stream) could have seen: the ring's last entry
    /// there (of that stream), or its floor when it holds none after it.
    /// Bounded: the writer puts a batch's ephemeral events into the ring
    /// before it publishes the batch's durable events, so the ring may
    /// already hold positions after the latest seq a reader sees.
    pub(crate) fn newest(&self, stream: Option<&StreamId>, through: Position) -> Position {
        let state = self.state.lock();
        let last = match stream {
            None => state.entries.range(..=through).next_back().map(|(position, _)| *position),
            Some(id) => state
                .by_stream
                .get(&Some(id.clone()))
                .and_then(|queue| queue.iter().rev().find(|position| **position <= through).copied()),
        };
        last.unwrap_or_default().max(state.floor(stream).min(through))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64, index: u32) -> Position {
        Position { seq: Seq::new(seq), index }
    }

    fn token(seq: u64, stream: &str) -> Arc<Envelope<u32>> {
        Arc::new(Envelope { seq: Seq::new(seq), ts: Timestamp::now(), stream: Some(stream.into()), event: 0, id: None })
    }

    /// The writer puts a batch's tokens into the ring before it publishes
    /// the batch's durable events: a reader that sees latest seq 4 while
    /// the ring already holds run 5 starts after run 4's newest token, not
    /// at 4 itself (owed all of run 4, which the limits may have trimmed:
    /// a reset for output it never asked for).
    #[test]
    fn the_newest_position_is_bounded_by_the_latest_seq_a_reader_sees() {
        let ring = Ring::new(LiveOutput::new(), 3, true, 0);
        ring.insert((1..=3).map(|i| (at(4, i), token(4, "a"))).chain([(at(5, 1), token(5, "a"))]));
        let a = StreamId::from("a");
        assert_eq!(ring.newest(None, Position::end_of(4)), at(4, 3));
        assert_eq!(ring.newest(Some(&a), Position::end_of(4)), at(4, 3));
        assert_eq!(ring.newest(None, Position::end_of(5)), at(5, 1));
        assert_eq!(ring.newest(Some(&StreamId::from("b")), Position::end_of(4)), Position::default());
    }

    /// A writer that reopened a journal at seq 4 positions its tokens in
    /// run 4 in a range of its own, above the earlier writer's: a cursor it
    /// handed out resumes there with no reset, while a cursor of the earlier
    /// writer's output in that run (below the range, or in another writer's
    /// range above it), or at 4 itself, is told of its loss.
    #[test]
    fn a_reopened_writer_has_a_range_of_its_own_in_its_first_run() {
        let ring: Ring<u32> = Ring::new(LiveOutput::new(), 4, false, 0);
        let base = 1 << OwnRun::BITS;
        let mut last = ring.start();
        assert_eq!(last, at(4, base));
        let a = || Some(StreamId::from("a"));
        ring.insert_staged(5, [(0, a(), 1), (0, a(), 2), (1, a(), 3)].into_iter(), &mut last);
        assert_eq!(last, at(5, 1), "after the next durable seq, indices start at 1 again");
        let found = ring.range(at(4, base + 1), Accepted::default(), Position::end_of(4), None).unwrap();
        assert_eq!(found.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [at(4, base + 2)]);
        let state = ring.state.lock();
        for earlier in [at(4, 0), at(4, 3), at(4, base - 1), at(4, 2 * base + 5)] {
            assert!(state.loss(earlier, Position::end_of(4), None, 0).is_some(), "{earlier:?}");
        }
        // Above the range (an earlier writer's own range, a generation that
        // wrapped or a lost `LEASE`): the loss ends where this writer's range
        // begins, so its tokens in the run follow the reset; it had ended
        // at the run's end, past them.
        assert_eq!(state.loss(at(4, 2 * base + 5), Position::end_of(4), None, 0), Some(at(4, base)));
        // The range's base is where `live_latest` starts a client of this
        // writer that has seen none of its tokens yet.
        for own in [at(4, base), at(4, base + 1)] {
            assert!(state.loss(own, Position::end_of(4), None, 0).is_none(), "{own:?}");
        }
        drop(state);

        // A range is 2^24 long: past it, the run's output is lost.
        let mut last = at(4, base + (1 << OwnRun::BITS) - 1);
        ring.insert_staged(5, [(0, a(), 4)].into_iter(), &mut last);
        assert!(ring.state.lock().loss(at(4, base + 2), Position::end_of(4), None, 0).is_some());
        // A cursor above the range, in a run where this writer lost some of
        // its own tokens too: one loss reported for both (it had been two
        // resets in a row, the first up to the range's base).
        let above = ring.state.lock().loss(at(4, 2 * base + 5), Position::end_of(4), None, 0);
        assert_eq!(above, Some(Position::end_of(4)));
    }

    /// An event whose `Drop` panics while armed.
    struct Bomb(bool);

    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 && !std::thread::panicking() {
                panic!("Bomb");
            }
        }
    }

    /// The ring's entries are let go under a catch when the ring goes (the
    /// feed's last holder of it: the writer thread, or the caller's last
    /// handle): an event whose `Drop` panics had come out of that drop.
    #[test]
    fn an_entry_whose_drop_panics_stays_inside_when_the_ring_goes() {
        let ring: Ring<Bomb> = Ring::new(LiveOutput::new(), 4, true, 0);
        let mut last = at(4, 0);
        let staged = [(0, Some(StreamId::from("a")), Bomb(true)), (0, Some(StreamId::from("b")), Bomb(true))];
        ring.insert_staged(5, staged.into_iter(), &mut last);
        assert_eq!(ring.len.load(Ordering::Relaxed), 2, "both kept");
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ring)));
        assert!(dropped.is_ok(), "the panic came out of the ring's drop");
    }

    /// The event a full run loses is let go under a catch: this runs on
    /// the writer's thread, which a `Drop` that panics had ended (found by
    /// review).
    #[test]
    fn an_event_a_full_run_loses_whose_drop_panics_stays_inside() {
        let ring: Ring<Bomb> = Ring::new(LiveOutput::new(), 4, true, 0);
        let mut last = at(5, OwnRun::RUN_LIMIT);
        let staged = [(0, Some(StreamId::from("a")), Bomb(true)), (1, Some(StreamId::from("a")), Bomb(false))];
        let inserted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ring.insert_staged(6, staged.into_iter(), &mut last);
        }));
        assert!(inserted.is_ok(), "the panic came out of insert_staged");
        assert_eq!(last, at(6, 1));
        assert_eq!(ring.state.lock().lost.get(&5).map(|lost| lost.max), Some(Position::end_of(5)));
    }

    /// A run whose index passes `RUN_LIMIT` (2^24 - 1) loses what follows,
    /// as a loss of that run, though the same writer batch goes on to the
    /// next run: it was noted against the batch's last run, so a reader
    /// inside the full run missed tokens with no reset, and every reader of
    /// the next run got one for nothing. The limit keeps a run's indices
    /// below the range a later writer reopening the journal at that seq
    /// takes (range 1 starts at 2^24): they had gone on to `u32::MAX - 1`,
    /// and a cursor of this run in that range was taken to have seen the
    /// later writer's tokens, which it then skipped with no reset.
    #[test]
    fn an_index_overflow_is_a_loss_of_its_own_run() {
        let ring: Ring<u32> = Ring::new(LiveOutput::new(), 4, true, 0);
        let mut last = at(5, OwnRun::RUN_LIMIT);
        let staged = [(0, Some(StreamId::from("a")), 1), (1, Some(StreamId::from("a")), 2)];
        ring.insert_staged(6, staged.into_iter(), &mut last);
        assert_eq!(last, at(6, 1));
        let state = ring.state.lock();
        assert_eq!(state.lost.get(&5).map(|lost| lost.max), Some(Position::end_of(5)));
        assert_eq!(state.lost.get(&6), None, "run 6 lost nothing");
        assert!(
            state.loss(at(5, OwnRun::RUN_LIMIT), Position::end_of(5), None, 0).is_some(),
            "a reader inside run 5 is told"
        );
        assert!(state.loss(at(6, 0), Position::end_of(6), None, 0).is_none(), "a reader of run 6 is not");
    }
}
