//! How an event is stored in a journal record. The journal frame already
//! carries the seq and the timestamp, so the payload is the event's schema
//! version (when it is not 1), then the stream id and the event, encoded
//! together with the feed's [`Codec`]. Tools that read a journal directly
//! (the CLI's `dump`, replicators) decode with [`decode`].
//!
//! The bytes (`docs/FORMAT.md`): a version-1 event is the codec's encoding of
//! `(stream, event)`, exactly what journals written before versions existed
//! hold; a later version is prefixed with [`VERSION_MARK`] and the version
//! as a `u32` little endian. No codec's encoding of `(Option<&str>, _)` can
//! start with that byte (bincode and postcard start an option with 0 or 1,
//! MessagePack with an array marker), so the two forms cannot be confused.
//!
//! Invariant: a record decodes as the current type only when its version is
//! the type's; any other version goes through [`Event::upcast`], and a
//! version newer than the type's is an error, never a guess.

use events_core::{Codec, CodecError, Envelope, Event, Old, Seq, StreamId, Timestamp};
use serde::de::IgnoredAny;

/// The first byte of a payload that carries an explicit schema version.
pub const VERSION_MARK: u8 = 0xFF;

/// Appends the payload of one event (its version if not 1, its stream id
/// and the event) to `out`.
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
    if E::VERSION != 1 {
        out.push(VERSION_MARK);
        out.extend_from_slice(&E::VERSION.to_le_bytes());
    }
    codec.encode(&(stream, event), out)
}

/// The schema version of a payload and the bytes after the version header.
pub fn split_version(payload: &[u8]) -> (u32, &[u8]) {
    match payload {
        [VERSION_MARK, a, b, c, d, body @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), body),
        _ => (1, payload),
    }
}

/// Rebuilds the envelope of a journal record from its seq, timestamp and
/// payload, upcasting a record of an older schema version with
/// [`Event::upcast`].
///
/// # Errors
///
/// A [`CodecError`] when the payload is not an encoding of `E` with this
/// codec (another event type, another codec, or corrupted bytes that
/// nonetheless passed the frame CRC); [`CodecError::Version`] for a version
/// newer than `E::VERSION` or an older one `E` cannot upcast.
pub fn decode<E: Event, C: Codec>(codec: &C, seq: u64, ts: u64, payload: &[u8]) -> Result<Envelope<E>, CodecError> {
    let (version, body) = split_version(payload);
    let (stream, event) = if version == E::VERSION {
        codec.decode::<(Option<StreamId>, E)>(body)?
    } else if version < E::VERSION {
        (stream_in(codec, body)?, E::upcast(Old::new(version, body, codec))?)
    } else {
        return Err(CodecError::Version { codec: C::NAME, version, current: E::VERSION });
    };
    Ok(Envelope { seq: Seq::new(seq), ts: Timestamp(ts), stream, event })
}

/// The stream id of a payload, without decoding its event (for indexes and
/// filters).
///
/// # Errors
///
/// The codec's error when the payload does not start with a stream id.
pub fn stream_id<C: Codec>(codec: &C, payload: &[u8]) -> Result<Option<StreamId>, CodecError> {
    stream_in(codec, split_version(payload).1)
}

fn stream_in<C: Codec>(codec: &C, body: &[u8]) -> Result<Option<StreamId>, CodecError> {
    if C::SELF_DESCRIBING {
        // A self-describing tuple has a header of its own: skip the event generically.
        let (stream, _): (Option<StreamId>, IgnoredAny) = codec.decode(body)?;
        Ok(stream)
    } else {
        // Position-based codecs encode a tuple as its fields one after the other.
        Ok(codec.decode_prefix::<Option<StreamId>>(body)?.0)
    }
}
