//! How an event is stored in a journal record. The journal frame already
//! carries the seq and the timestamp, so the payload is the caller's event
//! id (only for an idempotent append), the event's schema version (when it
//! is not 1), then the stream id and the event, encoded together with the
//! feed's [`Codec`]. Tools that read a journal directly (the CLI's `dump`,
//! replicators) decode with [`decode`].
//!
//! The bytes (`docs/FORMAT.md`): a version-1 event without an id is the
//! codec's encoding of `(stream, event)`, exactly what journals written
//! before versions and ids existed hold. An event id comes first as
//! [`ID_MARK`], its length (one byte, 1 to
//! [`MAX_EVENT_ID_BYTES`](crate::MAX_EVENT_ID_BYTES)) and its UTF-8 bytes; a
//! later version is prefixed with [`VERSION_MARK`] and the version as a
//! `u32` little endian. No codec of this crate's encoding of
//! `(Option<&str>, _)` can start with either byte (bincode and postcard
//! start an option with 0 or 1, MessagePack with an array marker); a body
//! of another codec that does is written after an explicit version
//! header (version 1), so the forms cannot be confused.
//!
//! Invariant: a record decodes as the current type only when its version is
//! the type's; any other version goes through [`Event::upcast`], and a
//! version newer than the type's is an error, never a guess.

use events_core::{Codec, CodecError, Envelope, Event, EventId, Old, Seq, StreamId, Timestamp};
use serde::de::IgnoredAny;

/// The first byte of a payload (or of its part after the event id) that
/// carries an explicit schema version.
pub const VERSION_MARK: u8 = 0xFF;

/// The first byte of a payload that carries the caller's event id.
pub const ID_MARK: u8 = 0xFE;

/// The headers of a payload, split from its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The caller's event id of an idempotent append.
    pub id: Option<&'a str>,
    /// The event's schema version (1 when the payload does not say).
    pub version: u32,
    /// The codec's encoding of `(stream, event)`.
    pub body: &'a [u8],
}

/// Appends the payload of one event (its version if not 1, its stream id
/// and the event) to `out`.
///
/// # Errors
///
/// [`CodecError::Encode`] when the event cannot be represented by the codec;
/// [`CodecError::TooLarge`] past the codec's decode limit.
pub fn encode<E: Event, C: Codec>(
    codec: &C,
    stream: Option<&str>,
    event: &E,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    encode_with_id(codec, stream, None, event, out)
}

/// [`encode`] with the caller's event id of an idempotent append.
///
/// # Errors
///
/// [`CodecError::Encode`] when the event cannot be represented by the
/// codec, or the id is empty or longer than
/// [`MAX_EVENT_ID_BYTES`](crate::MAX_EVENT_ID_BYTES) (the façade refuses
/// those before they get here); [`CodecError::TooLarge`] past the codec's
/// decode limit.
pub fn encode_with_id<E: Event, C: Codec>(
    codec: &C,
    stream: Option<&str>,
    id: Option<&str>,
    event: &E,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    if let Some(id) = id {
        let len = u8::try_from(id.len())
            .ok()
            .filter(|&n| n > 0 && usize::from(n) <= crate::MAX_EVENT_ID_BYTES)
            .ok_or_else(|| CodecError::Encode { codec: "payload header", source: bad_id(id.len()).into() })?;
        out.push(ID_MARK);
        out.push(len);
        out.extend_from_slice(id.as_bytes());
    }
    let versioned = E::VERSION != 1;
    if versioned {
        out.push(VERSION_MARK);
        out.extend_from_slice(&E::VERSION.to_le_bytes());
    }
    let body = out.len();
    // A failed encode leaves nothing behind, its headers included. Too
    // large, the length is the payload's: its headers too.
    codec
        .encode(&(stream, event), out)
        .map_err(|e| match e {
            CodecError::TooLarge { codec, len, limit } => {
                CodecError::TooLarge { codec, len: len + (body - start), limit }
            }
            e => e,
        })
        .inspect_err(|_| out.truncate(start))?;
    // A codec of the caller's own may start its encoding with a mark byte
    // (no codec of this crate does): a version-1 body there would be read
    // as a header. The version is then written out, 1, so the body follows
    // a header whatever its first byte.
    if !versioned && matches!(out.get(body), Some(&(ID_MARK | VERSION_MARK))) {
        let mut header = [VERSION_MARK; 5];
        header[1..].copy_from_slice(&1u32.to_le_bytes());
        out.splice(body..body, header);
    }
    Ok(())
}

fn bad_id(len: usize) -> String {
    format!("an event id is 1 to {} bytes, not {len}", crate::MAX_EVENT_ID_BYTES)
}

/// Splits a payload into its headers and its body.
///
/// # Errors
///
/// [`CodecError::Decode`] when an event id header is cut short or is not
/// UTF-8 (bytes that passed the frame CRC but are not a façade payload).
pub fn split(payload: &[u8]) -> Result<Header<'_>, CodecError> {
    let (id, rest) = match payload {
        [ID_MARK, len, rest @ ..] => {
            let len = usize::from(*len);
            let malformed = |why: &str| CodecError::Decode {
                codec: "payload header",
                len: payload.len(),
                source: format!("event id header: {why}").into(),
            };
            if len == 0 || rest.len() < len {
                return Err(malformed("cut short"));
            }
            let id = std::str::from_utf8(&rest[..len]).map_err(|_| malformed("not UTF-8"))?;
            (Some(id), &rest[len..])
        }
        _ => (None, payload),
    };
    let (version, body) = match rest {
        [VERSION_MARK, a, b, c, d, body @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), body),
        _ => (1, rest),
    };
    Ok(Header { id, version, body })
}

/// The caller's event id a payload carries, if any (without decoding it).
pub fn event_id(payload: &[u8]) -> Option<&str> {
    split(payload).ok().and_then(|h| h.id)
}

/// The schema version of a payload and the bytes after its headers (the
/// whole payload, as version 1, when its headers are malformed: decoding it
/// then fails).
pub fn split_version(payload: &[u8]) -> (u32, &[u8]) {
    split(payload).map_or((1, payload), |h| (h.version, h.body))
}

/// [`decode`], with a panic of the event type's `Deserialize` or
/// `upcast` caught: that record is then undecodable (a
/// [`CodecError::Decode`] naming the panic), for the reader's
/// `OnUndecodable` policy, like any other record that does not decode. It
/// had panicked the read that met it, which ended every stream reaching
/// that seq with a `Task` error naming no record, under every policy.
///
/// # Errors
///
/// As [`decode`], and [`CodecError::Decode`] for a panic.
pub fn decode_caught<E: Event, C: Codec>(
    codec: &C,
    seq: u64,
    ts: u64,
    payload: &[u8],
) -> Result<Envelope<E>, CodecError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode::<E, C>(codec, seq, ts, payload)))
        .unwrap_or_else(|panic| Err(panicked::<C>(payload.len(), &*panic)))
}

/// The error of a record of `len` bytes whose decode panicked with `panic`.
pub(crate) fn panicked<C: Codec>(len: usize, panic: &(dyn std::any::Any + Send)) -> CodecError {
    let message = crate::panic_message(panic);
    let source = format!("the event type's Deserialize or upcast panicked: {message}");
    CodecError::Decode { codec: C::NAME, len, source: source.into() }
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
    let Header { id, version, body } = split(payload)?;
    let (stream, event) = if version == E::VERSION {
        codec.decode::<(Option<StreamId>, E)>(body)?
    } else if version < E::VERSION {
        (stream_in(codec, body)?, E::upcast(Old::new(version, body, codec))?)
    } else {
        return Err(CodecError::Version { codec: C::NAME, version, current: E::VERSION });
    };
    Ok(Envelope { seq: Seq::new(seq), ts: Timestamp(ts), stream, event, id: id.map(EventId::from) })
}

/// The stream id of a payload, without decoding its event (for indexes and
/// filters).
///
/// # Errors
///
/// The codec's error when the payload does not start with a stream id.
pub fn stream_id<C: Codec>(codec: &C, payload: &[u8]) -> Result<Option<StreamId>, CodecError> {
    stream_in(codec, split(payload)?.body)
}

fn stream_in<C: Codec>(codec: &C, body: &[u8]) -> Result<Option<StreamId>, CodecError> {
    // A codec of one's own is the user's code, and this runs on threads
    // others share (the writer's retention and dedupe rebuild, version
    // checks, the index builder, a replicator): a panic there is this
    // payload's decode error. It had ended the writer thread, at every
    // reopen again (a retention pass meets the same segment).
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if C::SELF_DESCRIBING {
            // A self-describing tuple has a header of its own: skip the event generically.
            let (stream, _): (Option<StreamId>, IgnoredAny) = codec.decode(body)?;
            Ok(stream)
        } else {
            // Position-based codecs encode a tuple as its fields one after the other.
            Ok(codec.decode_prefix::<Option<StreamId>>(body)?.0)
        }
    }));
    decoded.unwrap_or_else(|panic| {
        let source = format!("the codec panicked: {}", crate::panic_message(&*panic));
        crate::error::let_go(panic);
        Err(CodecError::Decode { codec: C::NAME, len: body.len(), source: source.into() })
    })
}

/// Encodes `event` (its stream id and event id with it) at the end of `out`
/// as the journal gets it, and refuses what the journal would refuse or no
/// reader could read: [`Error::Codec`](crate::Error::Codec) or
/// [`Error::EventPanicked`](crate::Error::EventPanicked) when it does not
/// encode, [`Error::TooLarge`](crate::Error::TooLarge) over `limit` bytes,
/// [`Error::Unreadable`](crate::Error::Unreadable) when it does not decode
/// back (when `read_back` checks). On an error `out` is as it was.
pub(crate) fn encode_checked<E: Event, C: Codec>(
    codec: &C,
    stream: Option<&str>,
    id: Option<&str>,
    event: &E,
    out: &mut Vec<u8>,
    limit: u32,
    read_back: &ReadBack,
) -> crate::Result<()> {
    let start = out.len();
    let checked = crate::error::isolated("Serialize", || encode_with_id(codec, stream, id, event, out))
        .and_then(|encoded| {
            encoded.map_err(|e| match e {
                // Past the codec's decode limit, so past `limit` too (which
                // is at most that): the same refusal as one under it.
                CodecError::TooLarge { len, .. } => crate::Error::TooLarge { bytes: len, limit },
                e => crate::Error::Codec(e),
            })
        })
        .and_then(|()| {
            let bytes = out.len() - start;
            if bytes > limit as usize {
                return Err(crate::Error::TooLarge { bytes, limit });
            }
            read_back.check::<E, C>(codec, event, &out[start..])
        });
    if checked.is_err() {
        out.truncate(start);
    }
    checked
}

/// The check that an encoded event decodes back, so that an event type the
/// codec can write but not read (under bincode, one holding a
/// `serde_json::Value`, or an internally tagged or untagged enum: their
/// `Deserialize` asks for a self-describing format) is refused when it is
/// appended, with [`Error::Unreadable`](crate::Error::Unreadable), instead
/// of journaled for no reader. Each event whose shape (the serde calls its
/// `Serialize` makes, values aside: [`crate::shape`]) this checker has not
/// read back before is read back, in every build: so a type where only
/// some values fail is refused at the first event of each failing shape,
/// not only when it comes early in a run (release builds had read back the
/// first 16 events and trusted the rest). Only for a codec that says its
/// decoding depends on shapes alone ([`Codec::READ_BACK_BY_SHAPE`]: this
/// crate's bincode and MessagePack); with any other, every event is read
/// back. One checker for the writer run, one for all of the feed's
/// sessions; each remembers [`READ_BACK_SLOTS`] shapes (one more may push
/// another out, which is then read back again).
#[derive(Debug)]
pub(crate) struct ReadBack {
    /// Shapes read back, each in the slot its hash picks (0: none).
    read: [std::sync::atomic::AtomicU64; READ_BACK_SLOTS],
}

/// How many shapes each [`ReadBack`] remembers.
pub(crate) const READ_BACK_SLOTS: usize = 1024;

impl Default for ReadBack {
    fn default() -> Self {
        ReadBack { read: [const { std::sync::atomic::AtomicU64::new(0) }; READ_BACK_SLOTS] }
    }
}

impl ReadBack {
    /// Checks that `payload` decodes back as an `E`, and that `event`'s
    /// enum variants read back as themselves where the codec can tell
    /// ([`Codec::check_variants`]), unless an event of its shape did.
    pub(crate) fn check<E: Event, C: Codec>(&self, codec: &C, event: &E, payload: &[u8]) -> crate::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let shape =
            if C::READ_BACK_BY_SHAPE { crate::error::isolated("Serialize", || crate::shape::of(event))? } else { None };
        let slot = shape.map(|shape| (shape, &self.read[(shape >> 40) as usize % READ_BACK_SLOTS]));
        if slot.is_some_and(|(shape, slot)| slot.load(Relaxed) == shape) {
            return Ok(());
        }
        let decoded = crate::error::isolated("Deserialize", || decode::<E, C>(codec, 0, 0, payload))?;
        // The copy read back is let go here, under its own catch: its
        // `Drop` is the event type's code too (a panic refuses the event).
        if let Err(source) = crate::error::isolated("Drop", move || decoded.map(drop))? {
            return Err(crate::Error::Unreadable { codec: C::NAME, source });
        }
        crate::error::isolated("Deserialize", || codec.check_variants(event))?
            .map_err(|source| crate::Error::Unreadable { codec: C::NAME, source })?;
        if let Some((shape, slot)) = slot {
            slot.store(shape, Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event whose `Serialize` fails once its first field is written.
    #[derive(Clone, Debug, serde::Deserialize)]
    struct Half {
        a: u32,
    }

    impl serde::Serialize for Half {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let mut fields = s.serialize_struct("Half", 2)?;
            fields.serialize_field("a", &self.a)?;
            Err(serde::ser::Error::custom("the second field cannot be written"))
        }
    }

    impl Event for Half {
        const VERSION: u32 = 2;
    }

    #[test]
    fn a_failed_encode_leaves_no_header_behind() {
        let mut out = vec![9];
        let failed = encode_with_id(&events_core::Bincode, Some("s"), Some("id-1"), &Half { a: 1 }, &mut out);
        assert!(matches!(failed, Err(CodecError::Encode { .. })), "{failed:?}");
        assert_eq!(out, [9], "the id and version headers were left in the buffer");
    }

    /// A codec of a caller's own whose encoding starts with byte `B`:
    /// bincode behind it.
    #[derive(Clone, Copy, Debug, Default)]
    struct Marked<const B: u8>;

    impl<const B: u8> Codec for Marked<B> {
        const ID: u32 = 900;
        const NAME: &'static str = "marked";
        fn encode<T: serde::Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
            out.push(B);
            events_core::Bincode.encode(value, out)
        }
        fn decode_prefix<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
            let rest = bytes.strip_prefix(&[B]).ok_or_else(|| CodecError::Decode {
                codec: "marked",
                len: bytes.len(),
                source: "no mark".into(),
            })?;
            let (value, used) = events_core::Bincode.decode_prefix(rest)?;
            Ok((value, used + 1))
        }
    }

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Note(String);
    impl Event for Note {}

    fn round_trips<C: Codec>(codec: &C) {
        for id in [None, Some("id-1")] {
            let mut out = Vec::new();
            encode_with_id(codec, Some("s"), id, &Note("hi".into()), &mut out).unwrap();
            let env: Envelope<Note> = decode(codec, 7, 9, &out).unwrap_or_else(|e| panic!("{id:?}: {e}"));
            assert_eq!(
                (&env.event, env.stream_str(), env.id.as_ref().map(|i| i.as_str())),
                (&Note("hi".into()), Some("s"), id)
            );
            assert_eq!(stream_id(codec, &out).unwrap().as_ref().map(|s| s.as_str()), Some("s"));
            assert_eq!(event_id(&out), id);
            assert_eq!(split(&out).unwrap().version, 1);
        }
    }

    #[test]
    fn a_codec_whose_encoding_starts_with_a_mark_byte_reads_back() {
        // Its body had been read as a version header (0xFF: version
        // 0x???????? of the next four bytes) or an event id (0xFE).
        round_trips(&Marked::<VERSION_MARK>);
        round_trips(&Marked::<ID_MARK>);
        round_trips(&Marked::<0x42>);
        // Only a body that needs it gets the explicit version.
        let mut out = Vec::new();
        encode(&Marked::<0x42>, None, &Note("x".into()), &mut out).unwrap();
        assert_eq!(out[0], 0x42);
    }
}
