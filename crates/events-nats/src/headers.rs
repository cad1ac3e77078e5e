//! The headers every replicated message carries, their parsing, and the
//! gap marker.
//!
//! Neighbours: written by the [`Replicator`](crate::Replicator), read back by it
//! (to resume) and by the [`RemoteFeed`](crate::RemoteFeed). Invariant: a
//! record's `Nats-Msg-Id` is `<epoch>-<seq>` and a gap marker's is
//! `<epoch>-gap-<first_missing>`, so the same journal record or gap always
//! gets the same id and JetStream's duplicate window turns a re-send into a
//! no-op. A record's id is also where its epoch and seq are read from
//! (JetStream stores it with the message): every header costs a publish,
//! and these two said what the id says. Records replicated before carry
//! them as [`EPOCH`] and [`SEQ`] too, and [`Coordinates::parse`] reads
//! those first.
//!
//! # The two kinds of message
//!
//! * **A record**: the journaled payload as the body, headers
//!   `Nats-Msg-Id` (`<epoch>-<seq>`), the guard, [`TIMESTAMP`] and
//!   optionally [`STREAM_ID`] and [`EVENT_ID`].
//! * **A gap marker**: where a salvage recovery of the journal
//!   (`RecoveryMode::SkipCorrupt` or `TruncateAtCorruption`) dropped records,
//!   the replicator publishes one message with an empty body and the headers
//!   [`EPOCH`] and [`GAP`] = `<first_missing>-<last_missing>` (decimal,
//!   inclusive), and no [`SEQ`]: those seqs will never exist. A reader turns
//!   it into `FeedItem::Reset { reason: ResetReason::Gap { .. }, .. }` and
//!   continues after `last_missing`; the replicator, finding it last in the
//!   stream, resumes after `last_missing`. A reader that predates markers
//!   fails on it with [`NatsError::BadMessage`] (no `Events-Seq`) instead of
//!   misreading it.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;

use crate::NatsError;

/// The journal seq of a record (decimal), on records replicated before
/// the seq was read from `Nats-Msg-Id` only; still read first when present.
pub const SEQ: &str = "Events-Seq";
/// The journal epoch (decimal u64): on gap markers, and on records
/// replicated before the epoch was read from `Nats-Msg-Id` only.
pub const EPOCH: &str = "Events-Epoch";
/// The record's timestamp, unix nanoseconds (decimal).
pub const TIMESTAMP: &str = "Events-Ts";
/// The record's stream id, when the replicator was told how to decode it.
pub const STREAM_ID: &str = "Events-Stream";
/// The caller's event id of an idempotent append (`events::AppendOptions::id`),
/// when the record carries one. It is not the `Nats-Msg-Id`: the feed already
/// journaled each id once, so every record is distinct and its
/// `<epoch>-<seq>` id is what makes re-sends no-ops; this header lets
/// consumers of the stream see the caller's id.
pub const EVENT_ID: &str = "Events-Event-Id";
/// On a gap marker only: the journal seqs a salvage recovery dropped,
/// `<first_missing>-<last_missing>` (decimal, inclusive, first ≤ last).
pub const GAP: &str = "Events-Gap";

/// The value of `Nats-Msg-Id` for a record: `<epoch>-<seq>`.
pub fn msg_id(epoch: u64, seq: u64) -> String {
    format!("{epoch}-{seq}")
}

/// The value of `Nats-Msg-Id` for a gap marker: `<epoch>-gap-<first_missing>`.
pub fn gap_msg_id(epoch: u64, first_missing: u64) -> String {
    format!("{epoch}-gap-{first_missing}")
}

/// The value of the [`GAP`] header: `<first_missing>-<last_missing>`.
pub fn gap_value(first_missing: u64, last_missing: u64) -> String {
    format!("{first_missing}-{last_missing}")
}

/// The journal coordinates a replicated record carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coordinates {
    /// The journal epoch.
    pub epoch: u64,
    /// The journal seq.
    pub seq: u64,
    /// The timestamp, unix nanoseconds.
    pub ts: u64,
}

impl Coordinates {
    /// Reads the coordinates from a record's headers.
    ///
    /// # Errors
    ///
    /// [`NatsError::BadMessage`] when a header is missing or not a number
    /// (a gap marker has no [`SEQ`]: read it with [`Entry::parse`]).
    pub fn parse(headers: Option<&HeaderMap>, stream: &str, stream_seq: u64) -> Result<Self, NatsError> {
        let h = Headers::new(headers, stream, stream_seq)?;
        let ts = h.number(TIMESTAMP)?;
        if h.headers.get(SEQ).is_some() {
            // Replicated before the id alone carried them; a seq is at
            // least 1, as in the id.
            let seq = h.number(SEQ)?;
            if seq == 0 {
                return Err(h.bad(format!("header {SEQ} = \"0\": a seq is at least 1")));
            }
            return Ok(Coordinates { epoch: h.number(EPOCH)?, seq, ts });
        }
        let id = h.headers.get(NATS_MESSAGE_ID).ok_or_else(|| h.bad(format!("missing header {NATS_MESSAGE_ID}")))?;
        let (epoch, seq) = parse_msg_id(id.as_str())
            .ok_or_else(|| h.bad(format!("header {NATS_MESSAGE_ID} = {:?} is not <epoch>-<seq>", id.as_str())))?;
        Ok(Coordinates { epoch, seq, ts })
    }
}

/// The epoch and seq of a record's `Nats-Msg-Id` (`<epoch>-<seq>`, both
/// decimal, the seq at least 1); `None` for anything else, a gap marker's
/// id among them.
pub fn parse_msg_id(id: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = id.split_once('-')?;
    Some((decimal(epoch)?, decimal(seq).filter(|&seq| seq > 0)?))
}

/// A number as the replicator writes one: decimal digits only (`u64`'s
/// `FromStr` also takes a leading `+`, which the replicator never writes).
pub(crate) fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Journal seqs `first_missing..=last_missing` a salvage recovery dropped,
/// as a gap marker carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapMarker {
    /// The journal epoch.
    pub epoch: u64,
    /// The first dropped seq.
    pub first_missing: u64,
    /// The last dropped seq (≥ `first_missing`).
    pub last_missing: u64,
}

/// What one replicated message stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// One journal record.
    Record(Coordinates),
    /// A salvage gap in the journal.
    Gap(GapMarker),
}

impl Entry {
    /// Reads a message's headers: a gap marker when it has [`GAP`], else a
    /// record.
    ///
    /// # Errors
    ///
    /// [`NatsError::BadMessage`] when a header is missing or does not parse,
    /// or a gap range is empty or starts at 0.
    pub fn parse(headers: Option<&HeaderMap>, stream: &str, stream_seq: u64) -> Result<Self, NatsError> {
        let h = Headers::new(headers, stream, stream_seq)?;
        let Some(range) = h.headers.get(GAP) else {
            return Coordinates::parse(headers, stream, stream_seq).map(Entry::Record);
        };
        let range = range.as_str();
        let parsed = range.split_once('-').and_then(|(a, b)| Some((decimal(a)?, decimal(b)?)));
        match parsed {
            Some((first_missing, last_missing)) if 0 < first_missing && first_missing <= last_missing => {
                Ok(Entry::Gap(GapMarker { epoch: h.number(EPOCH)?, first_missing, last_missing }))
            }
            _ => Err(h.bad(format!("header {GAP} = {range:?} is not <first>-<last> with 0 < first <= last"))),
        }
    }

    /// The journal epoch.
    pub fn epoch(&self) -> u64 {
        match self {
            Entry::Record(c) => c.epoch,
            Entry::Gap(g) => g.epoch,
        }
    }

    /// The first journal seq the message accounts for.
    pub fn first_seq(&self) -> u64 {
        match self {
            Entry::Record(c) => c.seq,
            Entry::Gap(g) => g.first_missing,
        }
    }

    /// The last journal seq the message accounts for: replication and a
    /// reader resume after it.
    pub fn last_seq(&self) -> u64 {
        match self {
            Entry::Record(c) => c.seq,
            Entry::Gap(g) => g.last_missing,
        }
    }
}

/// A message's headers with what is needed to name it in an error.
struct Headers<'a> {
    headers: &'a HeaderMap,
    stream: &'a str,
    stream_seq: u64,
}

impl<'a> Headers<'a> {
    fn new(headers: Option<&'a HeaderMap>, stream: &'a str, stream_seq: u64) -> Result<Self, NatsError> {
        let bad = || NatsError::BadMessage { stream: stream.to_owned(), stream_seq, reason: "no headers".into() };
        Ok(Headers { headers: headers.ok_or_else(bad)?, stream, stream_seq })
    }

    fn bad(&self, reason: String) -> NatsError {
        NatsError::BadMessage { stream: self.stream.to_owned(), stream_seq: self.stream_seq, reason }
    }

    fn number(&self, name: &str) -> Result<u64, NatsError> {
        let value = self.headers.get(name).ok_or_else(|| self.bad(format!("missing header {name}")))?;
        decimal(value.as_str()).ok_or_else(|| self.bad(format!("header {name} = {:?} is not a number", value.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let mut h = HeaderMap::new();
        h.insert(EPOCH, "7");
        h.insert(SEQ, "42");
        h.insert(TIMESTAMP, "1000");
        assert_eq!(Coordinates::parse(Some(&h), "S", 3).unwrap(), Coordinates { epoch: 7, seq: 42, ts: 1000 });
        assert_eq!(Entry::parse(Some(&h), "S", 3).unwrap(), Entry::Record(Coordinates { epoch: 7, seq: 42, ts: 1000 }));
        assert_eq!(msg_id(7, 42), "7-42");
        // Not a number as the replicator writes one (a leading `+` had been
        // taken), and a legacy seq of 0 (the id's parser refuses it: a
        // resync finding it last had resumed "after 0", sending everything again).
        for (name, bad) in [(SEQ, "x"), (SEQ, "+42"), (SEQ, "0"), (EPOCH, "+7"), (TIMESTAMP, "+5")] {
            let mut h = h.clone();
            h.insert(name, bad);
            let err = Coordinates::parse(Some(&h), "S", 3).unwrap_err();
            assert!(matches!(err, NatsError::BadMessage { stream_seq: 3, .. }), "{name} = {bad}: {err}");
        }
        assert!(matches!(Coordinates::parse(None, "S", 4), Err(NatsError::BadMessage { stream_seq: 4, .. })));
        assert!(matches!(Entry::parse(None, "S", 4), Err(NatsError::BadMessage { stream_seq: 4, .. })));
    }

    #[test]
    fn records_read_their_epoch_and_seq_from_the_message_id() {
        let mut h = HeaderMap::new();
        h.insert(NATS_MESSAGE_ID, msg_id(12_345_678_901_234_567_890, 42));
        h.insert(TIMESTAMP, "1000");
        let want = Coordinates { epoch: 12_345_678_901_234_567_890, seq: 42, ts: 1000 };
        assert_eq!(Coordinates::parse(Some(&h), "S", 3).unwrap(), want);
        assert_eq!(Entry::parse(Some(&h), "S", 3).unwrap(), Entry::Record(want));
        // The older headers win where present (they were written with the same values).
        h.insert(EPOCH, "7");
        h.insert(SEQ, "9");
        assert_eq!(Coordinates::parse(Some(&h), "S", 3).unwrap(), Coordinates { epoch: 7, seq: 9, ts: 1000 });
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP, "1000");
        let err = Coordinates::parse(Some(&h), "S", 5).unwrap_err();
        assert!(err.to_string().contains("Nats-Msg-Id"), "{err}");
        for bad in ["7", "7-", "-4", "7-0", "7-gap-4", "x-4", "7-4x", "+7-4", "7--4", "99999999999999999999999-1"] {
            h.insert(NATS_MESSAGE_ID, bad);
            let err = Coordinates::parse(Some(&h), "S", 5).unwrap_err();
            assert!(matches!(err, NatsError::BadMessage { stream_seq: 5, .. }), "{bad}: {err}");
            assert_eq!(parse_msg_id(bad), None, "{bad}");
        }
        assert_eq!(parse_msg_id("0-1"), Some((0, 1)));
    }

    #[test]
    fn gap_markers_parse_and_bad_ranges_are_rejected() {
        let mut h = HeaderMap::new();
        h.insert(EPOCH, "7");
        h.insert(GAP, gap_value(150, 152));
        let entry = Entry::parse(Some(&h), "S", 9).unwrap();
        assert_eq!(entry, Entry::Gap(GapMarker { epoch: 7, first_missing: 150, last_missing: 152 }));
        assert_eq!((entry.epoch(), entry.first_seq(), entry.last_seq()), (7, 150, 152));
        assert_eq!(gap_msg_id(7, 150), "7-gap-150");
        // A marker is not a record: old readers fail on it instead of misreading it.
        assert!(matches!(Coordinates::parse(Some(&h), "S", 9), Err(NatsError::BadMessage { stream_seq: 9, .. })));
        for bad in ["3-2", "0-4", "5", "a-b", "-4", "4-", "+1-+2", "1-+2"] {
            h.insert(GAP, bad);
            let err = Entry::parse(Some(&h), "S", 9).unwrap_err();
            assert!(matches!(err, NatsError::BadMessage { stream_seq: 9, .. }), "{bad}: {err}");
        }
        h.insert(GAP, "4-4");
        h.insert(EPOCH, "x");
        assert!(matches!(Entry::parse(Some(&h), "S", 9), Err(NatsError::BadMessage { .. })));
    }
}
