//! The headers every replicated message carries, and their parsing.
//!
//! Neighbours: written by the [`Replicator`](crate::Replicator), read back by it
//! (to resume) and by the [`RemoteFeed`](crate::RemoteFeed). Invariant: `Nats-Msg-Id` is
//! `<epoch>-<seq>`, so the same journal record always gets the same id and
//! JetStream's duplicate window turns a re-send into a no-op; the seq,
//! epoch and timestamp are also separate headers so no reader parses the id.

use async_nats::HeaderMap;

use crate::NatsError;

/// The journal seq of the record (decimal).
pub const SEQ: &str = "Events-Seq";
/// The journal epoch (decimal u64).
pub const EPOCH: &str = "Events-Epoch";
/// The record's timestamp, unix nanoseconds (decimal).
pub const TIMESTAMP: &str = "Events-Ts";
/// The record's stream id, when the replicator was told how to decode it.
pub const STREAM_ID: &str = "Events-Stream";

/// The value of `Nats-Msg-Id` for a record: `<epoch>-<seq>`.
pub fn msg_id(epoch: u64, seq: u64) -> String {
    format!("{epoch}-{seq}")
}

/// The journal coordinates a replicated message carries.
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
    /// Reads the coordinates from a message's headers.
    ///
    /// # Errors
    ///
    /// [`NatsError::BadMessage`] when a header is missing or not a number.
    pub fn parse(headers: Option<&HeaderMap>, stream: &str, stream_seq: u64) -> Result<Self, NatsError> {
        let bad = |reason: String| NatsError::BadMessage { stream: stream.to_owned(), stream_seq, reason };
        let Some(headers) = headers else { return Err(bad("no headers".into())) };
        let get = |name: &str| -> Result<u64, NatsError> {
            let value = headers.get(name).ok_or_else(|| bad(format!("missing header {name}")))?;
            value.as_str().parse().map_err(|_| bad(format!("header {name} = {:?} is not a number", value.as_str())))
        };
        Ok(Coordinates { epoch: get(EPOCH)?, seq: get(SEQ)?, ts: get(TIMESTAMP)? })
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
        assert_eq!(msg_id(7, 42), "7-42");
        h.insert(SEQ, "x");
        let err = Coordinates::parse(Some(&h), "S", 3).unwrap_err();
        assert!(matches!(err, NatsError::BadMessage { stream_seq: 3, .. }), "{err}");
        assert!(matches!(Coordinates::parse(None, "S", 4), Err(NatsError::BadMessage { stream_seq: 4, .. })));
    }
}
