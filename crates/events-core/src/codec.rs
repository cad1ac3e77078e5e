//! The [`Codec`] seam between typed events and journal payload bytes, with
//! [`Bincode`] (the default) and, behind the `postcard` feature, `Postcard`.
//!
//! Invariant: decoding never trusts the bytes. A payload over
//! [`DEFAULT_DECODE_LIMIT`] is refused before decoding starts, length
//! prefixes are checked against the limit before anything is allocated,
//! trailing bytes are an error, and no input makes a decoder panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CodecError;

/// The largest payload a codec decodes: 16 MiB, the journal's default
/// maximum record size.
pub const DEFAULT_DECODE_LIMIT: usize = 16 << 20;

/// How deep [`Bincode`] and `MsgPack` let values nest, encoding and
/// decoding alike: for `Bincode`, each `Some`, sequence, map and enum
/// variant is one level (structs, tuples and newtypes are not: a recursive
/// type goes through one of the others at every turn); for `MsgPack`, each
/// array and map (so each struct and each enum variant with data). A JSON
/// value as an enum of arrays and maps takes two levels per level of data.
/// Deep enough for any event, shallow enough that a small payload of a
/// recursive type cannot overflow a 2 MiB thread stack, even in a debug
/// build (a stack overflow aborts the process). Deeper is
/// [`CodecError::Decode`], and [`CodecError::Encode`] before it is ever
/// journaled. `Postcard` has no such limit: decode only trusted bytes with
/// it.
pub const MAX_DECODE_DEPTH: u32 = 256;

/// Turns values into payload bytes and back.
///
/// Implementations are cheap to clone and share. [`Codec::ID`] is stored in
/// every journal segment header, so a journal written with one codec is not
/// silently read with another; never change an implementation's id.
pub trait Codec: Clone + Default + Send + Sync + std::fmt::Debug + 'static {
    /// A stable numeric id, stored in journal segment headers.
    const ID: u32;
    /// A short human-readable name, used in errors.
    const NAME: &'static str;
    /// Whether an encoding carries its own structure (field names, types),
    /// so it can be decoded without the writer's types (as JSON, say).
    /// Default: `false`.
    const SELF_DESCRIBING: bool = false;
    /// Whether whether a value this codec writes decodes back depends only
    /// on its shape: the serde calls its `Serialize` makes, the values of
    /// numbers and strings and the number of a list's elements aside. The
    /// façade reads back appended events, to refuse one no reader could
    /// read; with `true` it reads back one event of each shape, not each
    /// event. [`Bincode`] and `MsgPack` say `true` (but for the limits
    /// their docs name). The default, `false`, has every event read back:
    /// a codec whose decoding depends on values (a JSON codec writing a
    /// NaN as `null`, which does not read back as a float), or that writes
    /// a skipped field's neighbours in its place (`Postcard`), needs it.
    const READ_BACK_BY_SHAPE: bool = false;

    /// Appends the encoding of `value` to `out` (which is not cleared, so a
    /// caller can encode several values into one buffer).
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] when the value cannot be represented (for
    /// example a map with non-string keys in a format that needs them);
    /// this crate's codecs refuse with [`CodecError::TooLarge`] a value
    /// longer than the decode limit, which no decode would read.
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes one value from the front of `bytes` and returns it with the
    /// number of bytes it used: the inverse of [`encode`](Codec::encode)
    /// appending several values to one buffer. A length prefix claiming
    /// more than the input holds fails without allocating for it (beyond
    /// serde's cautious pre-sizing of collections, at most 1 MiB; under
    /// [`Bincode`], a payload holds at most 65,536 elements of sequences
    /// or maps that take no byte of the input but memory, values whose
    /// fields are all skipped, a `Box` of one, or a `Box<()>`, so they take
    /// at most 65,536 times their size; the encoder writes no more of them,
    /// but for bare units such as a `Box<()>`, which it cannot tell from
    /// `()`); a valid
    /// payload may still take more memory than its bytes (a `Vec<u64>` of
    /// one-byte varints takes 8 bytes per byte).
    ///
    /// # Errors
    ///
    /// [`CodecError::Decode`] for malformed or truncated bytes.
    fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError>;

    /// Decodes one value that must occupy all of `bytes` (a journal payload).
    ///
    /// # Errors
    ///
    /// [`CodecError::TooLarge`] over the decode limit,
    /// [`CodecError::Decode`] for malformed bytes, and
    /// [`CodecError::TrailingBytes`] when the value does not use every byte.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        check_limit(Self::NAME, bytes.len())?;
        let (value, consumed) = self.decode_prefix(bytes)?;
        check_trailing(Self::NAME, consumed, bytes.len())?;
        Ok(value)
    }

    /// Checks, where this codec can tell, that `value` reads back as the
    /// same enum variants and fields it is written with. [`Bincode`] writes
    /// a variant by its position among all of its enum's variants, and
    /// serde reads it by its position among those not skipped: after a
    /// variant marked `#[serde(skip)]` (or `skip_deserializing`), a written
    /// variant reads back as the next one, another value with no error.
    /// Fields are positional too: a tuple field skipped when written
    /// (`skip_serializing_if`), or a named field only written
    /// (`skip_deserializing`) or only read (`skip_serializing`), makes the
    /// next fields read another field's bytes. The façade runs this with
    /// its read-back check of appended events. The default checks nothing.
    ///
    /// # Errors
    ///
    /// [`CodecError::Encode`] naming the variant and the one it reads back
    /// as, or the struct and its field counts, or the lengths written and
    /// read back.
    fn check_variants<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<(), CodecError> {
        let _ = value;
        Ok(())
    }
}

/// Runs one nested level of a decode where the stack has room for it: with
/// less than 128 KiB left, on a new 1 MiB segment. The depth limit alone
/// bounds the levels, not their frames, which hold the values being read:
/// a recursive type with a 2 KiB leaf, 254 levels deep, had overflowed a
/// 2 MiB stack in a debug build (which aborts the process).
#[inline]
pub(crate) fn on_enough_stack<R>(level: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(128 << 10, 1 << 20, level)
}

pub(crate) fn check_limit(codec: &'static str, len: usize) -> Result<(), CodecError> {
    if len > DEFAULT_DECODE_LIMIT {
        return Err(CodecError::TooLarge { codec, len, limit: DEFAULT_DECODE_LIMIT });
    }
    Ok(())
}

/// Refuses (and takes out of `out`) a value written from `start` on that is
/// longer than the decode limit: no decode would read it. Each string's and
/// each sequence's length was checked as it was written, not the whole.
pub(crate) fn check_encoded(codec: &'static str, out: &mut Vec<u8>, start: usize) -> Result<(), CodecError> {
    let len = out.len() - start;
    if len > DEFAULT_DECODE_LIMIT {
        out.truncate(start);
        return Err(CodecError::TooLarge { codec, len, limit: DEFAULT_DECODE_LIMIT });
    }
    Ok(())
}

pub(crate) fn check_trailing(codec: &'static str, consumed: usize, len: usize) -> Result<(), CodecError> {
    if consumed != len {
        // A codec claiming more than it was given (only a third-party one
        // could) is a decode failure, not a panic or a huge count.
        let Some(trailing) = len.checked_sub(consumed) else {
            return Err(CodecError::Decode {
                codec,
                len,
                source: format!("the codec reported using {consumed} bytes of a {len}-byte payload").into(),
            });
        };
        return Err(CodecError::TrailingBytes { codec, consumed, trailing });
    }
    Ok(())
}

/// The default codec: bincode 2.0.x's standard format (varint integers,
/// little endian), with a decode limit of [`DEFAULT_DECODE_LIMIT`].
///
/// Both directions are our own serde code for that format: the encoder
/// writes straight into the output `Vec`, the decoder copies each string
/// once (bincode 2.0's serde path zero-fills a buffer first). A
/// differential test holds both to the bincode crate: the same bytes for
/// every value, the same values (or the same refusal) for every input. The
/// limit is enforced twice: a payload longer than the limit is refused
/// outright, and every string or byte length prefix is checked against the
/// limit and the bytes left before anything is allocated, so a hostile
/// prefix claiming gigabytes fails fast.
///
/// Fields are written by position, without names, so a struct field serde
/// leaves out (`#[serde(skip_serializing_if = ...)]`) would shift the next
/// fields into its place on decode: such a value is refused
/// ([`CodecError::Encode`] naming the field) rather than journaled. Use
/// `MsgPack` for types that skip fields. Variants are written by position
/// too: after a skipped variant, the next ones read back as their
/// successors, which [`Codec::check_variants`] finds, as it finds the
/// field skips serde does not tell the encoder of (the façade runs it with
/// its read-back check, on each event of a shape not read back before).
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

impl Codec for Bincode {
    const ID: u32 = 1;
    const NAME: &'static str = "bincode";
    const READ_BACK_BY_SHAPE: bool = true;

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        crate::bincode_ser::encode_into(value, out).map_err(|e| {
            out.truncate(start);
            CodecError::Encode { codec: Self::NAME, source: Box::new(e) }
        })?;
        check_encoded(Self::NAME, out, start)
    }

    fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
        crate::bincode_de::decode_prefix(bytes).map_err(|e| CodecError::Decode {
            codec: Self::NAME,
            len: bytes.len(),
            source: Box::new(e),
        })
    }

    fn check_variants<T: Serialize + DeserializeOwned>(&self, value: &T) -> Result<(), CodecError> {
        crate::bincode_ser::check_variants(value)
            .map_err(|e| CodecError::Encode { codec: Self::NAME, source: Box::new(e) })
    }
}

/// A second codec, postcard 1.x (varint, compact), enabled by the
/// `postcard` cargo feature. It exists to prove the seam and for users who
/// share payloads with embedded peers.
///
/// Decode only trusted bytes with it: it has no depth limit (a deeply
/// nested payload of a recursive type overflows the stack, which aborts),
/// and a sequence of zero-sized elements (`Vec<()>`) is read element by
/// element for as many as its length prefix says, up to 2^64, with no byte
/// consumed per element (ten bytes can keep a decode busy for good).
/// [`Bincode`] and `MsgPack` bound both. Nor does it refuse a struct field
/// serde skips (`skip_serializing_if`), which it writes by position like
/// bincode, so the record decodes as another value or not at all, nor a
/// variant after a skipped one, which reads back as the next variant: keep
/// such types to `Bincode` (which refuses them) or `MsgPack`.
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    const ID: u32 = 2;
    const NAME: &'static str = "postcard";

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        postcard::to_io(value, &mut *out).map(drop).map_err(|e| {
            out.truncate(start);
            CodecError::Encode { codec: Self::NAME, source: Box::new(e) }
        })?;
        check_encoded(Self::NAME, out, start)
    }

    fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
        // postcard reads lengths as prefixes of borrowed slices, so a hostile
        // prefix fails at end of input instead of allocating; serde caps
        // collection pre-allocation.
        let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| CodecError::Decode {
            codec: Self::NAME,
            len: bytes.len(),
            source: Box::new(e),
        })?;
        Ok((value, bytes.len() - rest.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_payload_is_refused_before_decoding() {
        let big = vec![0u8; DEFAULT_DECODE_LIMIT + 1];
        let err = Bincode.decode::<Vec<u8>>(&big).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { len, .. } if len == DEFAULT_DECODE_LIMIT + 1));
    }

    /// A value whose strings each fit the decode limit but whose whole
    /// encoding does not is refused when it is encoded (`TooLarge`, the
    /// buffer as it was): it had been written, and every decode refused
    /// it. One just under the limit is written and reads back.
    #[test]
    fn a_value_longer_than_the_decode_limit_is_refused_when_encoded() {
        fn refused<C: Codec>(codec: C) {
            let half = "x".repeat(DEFAULT_DECODE_LIMIT / 2 + 1);
            let mut buf = vec![7];
            for value in [(half.clone(), half), ("x".repeat(DEFAULT_DECODE_LIMIT), String::new())] {
                let err = codec.encode(&value, &mut buf).unwrap_err();
                assert!(matches!(err, CodecError::TooLarge { len, .. } if len > DEFAULT_DECODE_LIMIT), "{err}");
                assert_eq!(buf, [7], "{}: a refused value leaves nothing behind", C::NAME);
            }
            let fits = ("x".repeat(DEFAULT_DECODE_LIMIT / 2), "y".repeat(DEFAULT_DECODE_LIMIT / 2 - 16));
            buf.clear();
            codec.encode(&fits, &mut buf).unwrap();
            assert_eq!(codec.decode::<(String, String)>(&buf).unwrap(), fits, "{}", C::NAME);
        }
        refused(Bincode);
        #[cfg(feature = "msgpack")]
        refused(crate::MsgPack);
        #[cfg(feature = "postcard")]
        refused(Postcard);
    }

    #[test]
    fn hostile_length_prefix_fails_without_allocating() {
        // varint tag 253 = u64 length follows: claim 2^62 elements.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        let err = Bincode.decode::<Vec<u64>>(&bytes).unwrap_err();
        assert!(matches!(err, CodecError::Decode { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut buf = Vec::new();
        Bincode.encode(&7u32, &mut buf).unwrap();
        buf.push(0);
        let err = Bincode.decode::<u32>(&buf).unwrap_err();
        assert!(matches!(err, CodecError::TrailingBytes { consumed: 1, trailing: 1, .. }), "{err}");
    }

    #[test]
    fn encode_appends_without_clearing() {
        let mut buf = vec![0xAA];
        Bincode.encode(&1u8, &mut buf).unwrap();
        assert_eq!(buf, [0xAA, 1]);
    }

    fn values_encoded_back_to_back_decode_one_prefix_at_a_time<C: Codec>(codec: C) {
        let values = [String::from("first"), String::new(), "x".repeat(300)];
        let mut buf = Vec::new();
        for v in &values {
            codec.encode(v, &mut buf).unwrap();
        }
        let mut at = 0;
        let mut starts = Vec::new();
        for v in &values {
            starts.push(at);
            let (got, used): (String, usize) = codec.decode_prefix(&buf[at..]).unwrap();
            assert_eq!(&got, v);
            at += used;
        }
        assert_eq!(at, buf.len(), "every byte used, none twice");
        let truncated = &buf[starts[2]..buf.len() - 1];
        assert!(matches!(codec.decode_prefix::<String>(truncated), Err(CodecError::Decode { .. })));
    }

    #[test]
    fn bincode_decode_prefix_reads_back_to_back_values() {
        values_encoded_back_to_back_decode_one_prefix_at_a_time(Bincode);
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_decode_prefix_reads_back_to_back_values() {
        values_encoded_back_to_back_decode_one_prefix_at_a_time(Postcard);
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_decode_prefix_reads_back_to_back_values() {
        values_encoded_back_to_back_decode_one_prefix_at_a_time(crate::MsgPack);
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_hostile_length_prefix_fails_without_allocating() {
        // str32 claiming 4 GiB, then 3 bytes.
        let bytes = [0xdb, 0xff, 0xff, 0xff, 0xff, b'a', b'b', b'c'];
        assert!(matches!(crate::MsgPack.decode::<String>(&bytes), Err(CodecError::Decode { .. })));
        // array32 claiming 2^32-1 elements.
        let bytes = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(crate::MsgPack.decode::<Vec<u64>>(&bytes), Err(CodecError::Decode { .. })));
    }

    /// A third-party codec that claims to have used one byte more than it
    /// was given.
    #[derive(Clone, Copy, Debug, Default)]
    struct Overreporting;

    impl Codec for Overreporting {
        const ID: u32 = 999;
        const NAME: &'static str = "overreporting";
        fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
            Bincode.encode(value, out)
        }
        fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
            let (value, used) = Bincode.decode_prefix(bytes)?;
            Ok((value, used + 1))
        }
    }

    #[test]
    fn a_codec_reporting_more_bytes_than_it_was_given_fails_to_decode_instead_of_panicking() {
        let mut buf = Vec::new();
        Overreporting.encode(&7u32, &mut buf).unwrap();
        let err = Overreporting.decode::<u32>(&buf).unwrap_err();
        assert!(matches!(err, CodecError::Decode { codec: "overreporting", len: 1, .. }), "{err}");
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("2 bytes of a 1-byte payload"), "{why}");
    }
}
