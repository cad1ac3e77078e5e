//! How an event is stored in a journal record. The journal frame already
//! carries the seq and the timestamp, so the payload is only the stream id and
//! the event, encoded together with the feed's [`Codec`]. Tools that read a
//! journal directly (the CLI's `dump`, replicators) decode with [`decode`].

use events_core::{Codec, CodecError, Envelope, Event, Seq, StreamId, Timestamp};

/// Appends the payload of one event (its stream id and the event) to `out`.
///
/// # Errors
///
/// [`CodecError::Encode`] when the event cannot be represented by the codec.
pub fn encode<E: Event, C: Codec>(
    codec: &C,
    stream: Option<&str>,
    event: &E,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    codec.encode(&(stream, event), out)
}

/// Rebuilds the envelope of a journal record from its seq, timestamp and
/// payload.
///
/// # Errors
///
/// A [`CodecError`] when the payload is not an encoding of `E` with this
/// codec (another event type, another codec, or corrupted bytes that
/// nonetheless passed the frame CRC).
pub fn decode<E: Event, C: Codec>(codec: &C, seq: u64, ts: u64, payload: &[u8]) -> Result<Envelope<E>, CodecError> {
    let (stream, event): (Option<StreamId>, E) = codec.decode(payload)?;
    Ok(Envelope { seq: Seq::new(seq), ts: Timestamp(ts), stream, event })
}
