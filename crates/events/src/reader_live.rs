//! [`FeedReader::stream_live`]: a reader's live-output streams (`live/`),
//! apart from `reader.rs` so that file stays about the durable reads.
//!
//! Invariant: only a reader with the writer's ring (the writer's own
//! process, the feed opened with live output) serves live output; any other
//! is refused with a typed error, never an empty stream.

use std::sync::Arc;
use std::time::Duration;

use events_core::{Codec, Event, StreamId};
use futures::StreamExt;

use crate::live::{LiveStream, Ring};
use crate::position::{Cursor, LiveCursor, Position};
use crate::reader::FeedReader;
use crate::stream::filter::Filter;
use crate::{Error, Result};

impl<E: Event, C: Codec> FeedReader<E, C> {
    /// Durable events after `from.cursor`, exactly as
    /// [`stream_from`](Self::stream_from) yields them, with the ephemeral
    /// events (streamed tokens, progress) merged in where they were emitted,
    /// as [`FeedItem::Ephemeral`](crate::FeedItem::Ephemeral): from the
    /// writer's ring of recent ephemeral events
    /// ([`FeedBuilder::live_output`](crate::FeedBuilder::live_output)). A
    /// client that stores the [`Position`](crate::Position) of the last item
    /// it saw resumes there, mid-run, with no duplicate; when the ring no
    /// longer holds what it needs, one `Reset { LiveOutputExpired }` and
    /// the stream goes on with the next durable event. With `stream`, only
    /// that stream id's events (durable and ephemeral) are yielded, with
    /// the [`FeedItem::Checkpoint`](crate::FeedItem::Checkpoint)s of
    /// [`stream_filtered`](Self::stream_filtered) (a position at a
    /// checkpoint's seq resumes after the other streams' events it covers).
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) when the feed was opened
    /// without live output, or this is a reader of another process's journal
    /// (the ring lives in the writer's memory).
    pub fn stream_live(&self, from: impl Into<LiveCursor>, stream: Option<&str>) -> Result<LiveStream<E>> {
        let ring = self.ring()?;
        let from = from.into();
        // One stream's durable events come with checkpoints (`stream_filtered`),
        // so the position moves past the other streams' events too.
        let inner = match stream {
            None => self.stream_from(from.cursor).boxed(),
            // A checkpoint as soon as it has skipped something and waits:
            // tokens after another stream's durable event go out at once.
            Some(id) => self.stream_filtered(from.cursor, Filter::stream(id))?.checkpoint_after(Duration::ZERO).boxed(),
        };
        let stream = stream.map(StreamId::from);
        Ok(LiveStream::new(inner, Arc::clone(ring), Arc::clone(&self.shared), from, stream, self.on_expired))
    }

    /// [`stream_live`](Self::stream_live) from now on, for a client that
    /// has seen nothing: after the latest durable event of this journal
    /// (pinned to its epoch) and the newest ephemeral event the ring holds
    /// after it (of `stream`). It starts with what comes next, and never
    /// with a `Reset { LiveOutputExpired }` for output the client did not
    /// ask for (an earlier process's, or the start of a long response the
    /// ring no longer holds), as a cursor at the latest seq did. What
    /// `GET /stream?since=latest&live_output=1` serves.
    ///
    /// # Errors
    ///
    /// As [`stream_live`](Self::stream_live).
    pub fn stream_live_latest(&self, stream: Option<&str>) -> Result<LiveStream<E>> {
        self.stream_live(self.live_latest(stream)?, stream)
    }

    /// Where [`stream_live_latest`](Self::stream_live_latest) starts: the
    /// latest durable event of this journal (with its epoch) and the newest
    /// ephemeral event the ring holds after it (of `stream`). For a server
    /// that tells its client that position before anything arrives, so a
    /// client that reconnects before its first event resumes there instead
    /// of at a later "now".
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when live output is off.
    pub fn live_latest(&self, stream: Option<&str>) -> Result<LiveCursor> {
        let ring = self.ring()?;
        let epoch = self.epoch();
        let latest = self.latest_seq();
        // Output after `latest`'s durable event only, and no later: a
        // durable event published since is not skipped (and the ring may
        // hold a batch's output before its durable events are published).
        let newest = ring.newest(stream.map(StreamId::from).as_ref(), Position::end_of(latest.get()));
        let index = if newest.seq == latest { newest.index } else { 0 };
        Ok(LiveCursor::new(Cursor::new(latest, epoch), index))
    }

    fn ring(&self) -> Result<&Arc<Ring<E>>> {
        self.ring.as_ref().ok_or_else(|| {
            Error::Config(
                "live output is off: open the feed with FeedBuilder::live_output, and read it in the writer's process"
                    .into(),
            )
        })
    }

    pub(crate) fn with_ring(mut self, ring: Option<Arc<Ring<E>>>) -> Self {
        self.ring = ring;
        self
    }
}
