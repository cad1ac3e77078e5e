//! [`MsgPack`], the self-describing codec (feature `msgpack`): MessagePack
//! through rmp-serde, structs as maps keyed by field name, variants by name.
//! Neighbours: `codec.rs` holds the [`Codec`] seam and the other codecs.
//!
//! Invariant: as for every codec, decoding never trusts the bytes. The
//! value's extent is measured first by walking its markers ([`value_len`]:
//! no allocation, every length checked against the bytes present), then the
//! value is decoded from exactly that slice, borrowing strings from it
//! instead of copying them through a reader buffer, and through
//! `msgpack_depth.rs`, which bounds the `Some`s that take no byte.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CodecError;
use crate::codec::{Codec, check_limit, check_trailing};
use crate::msgpack_check::{Checked, Depth};
use crate::msgpack_depth::Bounded;

/// The self-describing codec: MessagePack (rmp-serde 1.x) with structs as
/// maps keyed by field name and enum variants by name, enabled by the
/// `msgpack` cargo feature.
///
/// Choose it when event types evolve: a journal written with it stays
/// readable after adding a field marked `#[serde(default)]`, adding a
/// variant, or removing a variant no old record uses, with no upcaster —
/// bincode and postcard encode fields by position and variants by index,
/// so after any of those changes old records fail to decode, or worse,
/// decode as another value: with a variant removed, an old record of a
/// later variant reads as the one that took its index (an upcaster over
/// the schema version is the way there). The price is size
/// and speed: every record carries its field names (the codec bench has the
/// figures beside bincode's, and beside CBOR and JSON, the other
/// self-describing formats measured before choosing this one). Tools that
/// do not know the event types can render its records generically.
///
/// Decoding reads only the bytes present: a length prefix claiming more
/// than the payload fails at its end instead of allocating. Nesting is
/// bounded as for [`Bincode`](crate::Bincode)
/// ([`MAX_DECODE_DEPTH`](crate::MAX_DECODE_DEPTH) arrays and maps, and as
/// many `Some`s, which MessagePack writes without a byte of their own),
/// except inside an internally, adjacently or untagged enum or a flattened
/// field, which serde buffers and replays itself: there a type recursing
/// through options alone (`struct Chain(Option<Box<Chain>>)`) can still
/// overflow the stack on a hostile payload. Keep such types out of those
/// shapes, or decode only trusted bytes with them.
///
/// MessagePack writes `Some(x)` as `x`, so `None` and `Some` of a value
/// written as `nil` (`None`, `()`, a newtype around one) would read back alike:
/// encoding `Some(None)` (an `Option<Option<T>>`'s "set to null") or
/// `Some(())` is an error ([`CodecError::Encode`]), never a record that
/// reads back as something else. Bincode and postcard tell them apart.
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgPack;

impl Codec for MsgPack {
    const ID: u32 = 3;
    const NAME: &'static str = "msgpack";
    const SELF_DESCRIBING: bool = true;
    const READ_BACK_BY_SHAPE: bool = true;

    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        // A failed encode leaves nothing of the value behind (the caller's
        // buffer may hold other values before it).
        // Through `Checked`: a `Some` whose value is written as `nil` would
        // read back as `None`, so it is refused.
        rmp_serde::encode::write_named(out, &Checked(value, Depth::default())).map_err(|e| {
            out.truncate(start);
            CodecError::Encode { codec: Self::NAME, source: Box::new(e) }
        })?;
        // What could never be decoded is never written: nested too deep,
        // or one value whose bytes are not all of what was written (a
        // `Serialize` that declared a length and wrote another: rmp-serde
        // writes the declared one, and every decode had refused the rest as
        // trailing bytes).
        let written = out.len() - start;
        let why = match value_len(&out[start..]) {
            Ok(len) if len == written => return crate::codec::check_encoded(Self::NAME, out, start),
            Ok(_) => {
                "the value written is not one MessagePack value (a sequence or map given one length \
                      and another number of elements)"
            }
            Err(why) => why,
        };
        out.truncate(start);
        Err(CodecError::Encode { codec: Self::NAME, source: why.into() })
    }

    fn decode_prefix<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<(T, usize), CodecError> {
        let decode_error = |source: Box<dyn std::error::Error + Send + Sync>| CodecError::Decode {
            codec: Self::NAME,
            len: bytes.len(),
            source,
        };
        let len = value_len(bytes).map_err(|e| decode_error(e.into()))?;
        let mut de = rmp_serde::Deserializer::from_read_ref(&bytes[..len]);
        // rmp-serde's own limit (1,024) overflows a 2 MiB stack in a debug
        // build; it refuses its n-th level, `value_len` refuses past it.
        de.set_max_depth(crate::MAX_DECODE_DEPTH as usize + 1);
        // Reads a `Some` without taking a byte: counted here.
        let somes = std::cell::Cell::new(0);
        let value = T::deserialize(Bounded { de: &mut de, somes: &somes }).map_err(|e| decode_error(Box::new(e)))?;
        Ok((value, len))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        check_limit(Self::NAME, bytes.len())?;
        let (value, consumed) = self.decode_prefix(bytes)?;
        check_trailing(Self::NAME, consumed, bytes.len())?;
        Ok(value)
    }
}

/// What a value nested past [`MAX_DECODE_DEPTH`](crate::MAX_DECODE_DEPTH)
/// containers is refused with.
pub(crate) const CONTAINERS_TOO_DEEP: &str = "MessagePack containers nested deeper than 256 levels (MAX_DECODE_DEPTH)";
const _: () = assert!(crate::MAX_DECODE_DEPTH == 256, "CONTAINERS_TOO_DEEP names the limit");

/// The length of the first MessagePack value in `bytes`, or what is wrong:
/// malformed, running past the end, or containers nested deeper than
/// [`MAX_DECODE_DEPTH`](crate::MAX_DECODE_DEPTH) (rmp-serde counts its
/// depth for arrays and maps read untyped only, not for enums, which
/// recurse through one map each). Walks markers only: containers add their
/// element counts to a pending count, which can never exceed the bytes left
/// (every element takes at least one), so a hostile count fails at once.
pub(crate) fn value_len(bytes: &[u8]) -> Result<usize, &'static str> {
    const MALFORMED: &str = "truncated or malformed MessagePack value";
    walk(bytes).ok_or(MALFORMED)?.ok_or(CONTAINERS_TOO_DEEP)
}

/// [`value_len`]: `None` if malformed, `Some(None)` if nested too deep.
fn walk(bytes: &[u8]) -> Option<Option<usize>> {
    let mut at = 0usize;
    let mut pending: u64 = 1;
    // The elements left in each open container, innermost last (`depth` of them).
    let mut open = [0u64; crate::MAX_DECODE_DEPTH as usize];
    let mut depth = 0usize;
    let take = |at: &mut usize, n: usize| -> Option<()> {
        *at = at.checked_add(n).filter(|&end| end <= bytes.len())?;
        Some(())
    };
    let be = |at: usize, n: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(n)?)?;
        Some(field.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    while pending > 0 {
        pending -= 1;
        while depth > 0 && open[depth - 1] == 0 {
            depth -= 1;
        }
        if depth > 0 {
            open[depth - 1] -= 1;
        }
        let marker = *bytes.get(at)?;
        at += 1;
        // (bytes to skip, elements to add)
        let (skip, elements): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + be(at, 1)?, 0),
            0xc5 | 0xda => (2 + be(at, 2)?, 0),
            0xc6 | 0xdb => (4 + be(at, 4)?, 0),
            0xc7 => (1 + 1 + be(at, 1)?, 0),
            0xc8 => (2 + 1 + be(at, 2)?, 0),
            0xc9 => (4 + 1 + be(at, 4)?, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(at, 2)?),
            0xdd => (4, be(at, 4)?),
            0xde => (2, 2 * be(at, 2)?),
            0xdf => (4, 2 * be(at, 4)?),
            0xc1 => return None, // never used
        };
        take(&mut at, usize::try_from(skip).ok()?)?;
        pending = pending.checked_add(elements)?;
        if pending > (bytes.len() - at) as u64 {
            return None; // more elements than bytes left
        }
        // rmp-serde counts a level for every array, map and ext value it
        // reads, empty ones included: one below the deepest open container
        // is one too many.
        let counted = matches!(marker, 0x80..=0x9f | 0xc7..=0xc9 | 0xd4..=0xd8 | 0xdc..=0xdf);
        if counted && depth == open.len() {
            return Some(None);
        }
        if elements > 0 {
            open[depth] = elements;
            depth += 1;
        }
    }
    Some(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_len_matches_what_the_encoder_wrote() {
        /// Serialized as MessagePack `bin`, not as an array of numbers.
        struct Bin(Vec<u8>);
        impl serde::Serialize for Bin {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            Tuple(i64, f64, Option<u8>),
            Named { s: String, v: Vec<u64>, b: Bin },
        }
        let values = [
            E::Unit,
            E::Tuple(-5_000_000_000, 1.5, None),
            E::Named { s: "x".repeat(70_000), v: (0..300).map(|n| n * 1_000_003).collect(), b: Bin(vec![7; 300]) },
        ];
        for value in &values {
            let mut buf = Vec::new();
            MsgPack.encode(value, &mut buf).unwrap();
            assert_eq!(value_len(&buf), Ok(buf.len()));
            buf.extend_from_slice(&[0xc0, 0x01]);
            assert_eq!(value_len(&buf), Ok(buf.len() - 2), "trailing values are not part of the first");
            for cut in [1, buf.len() / 2, buf.len() - 3] {
                assert!(value_len(&buf[..cut]).is_err(), "cut at {cut}");
            }
        }
    }

    /// A `Serialize` that declares one element and writes two: refused,
    /// nothing left in the buffer. rmp-serde wrote the declared length, so
    /// the record was journaled and every decode refused its second
    /// element as trailing bytes.
    #[test]
    fn a_length_declared_and_not_kept_is_refused() {
        struct Liar;
        impl serde::Serialize for Liar {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(&1u8)?;
                seq.serialize_element(&2u8)?;
                seq.end()
            }
        }
        let mut buf = vec![0x90];
        let err = MsgPack.encode(&Liar, &mut buf).unwrap_err();
        assert!(err.to_string().contains("msgpack"), "{err}");
        assert!(std::error::Error::source(&err).unwrap().to_string().contains("not one MessagePack value"), "{err:?}");
        assert_eq!(buf, [0x90], "nothing of it is left");
    }

    #[test]
    fn hostile_counts_fail_at_once() {
        assert!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(value_len(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(value_len(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).is_err());
        assert!(value_len(&[0xc1]).is_err());
        assert!(value_len(&[]).is_err());
    }

    #[test]
    fn a_bin_read_as_a_sequence_must_be_read_whole() {
        // bin8 of 6 bytes read as a `[u8; 4]`, and as a two-field struct
        // from 3 bytes: rmp-serde had kept the first elements and dropped
        // the rest with no error.
        let err = MsgPack.decode::<[u8; 4]>(&[0xc4, 6, 1, 2, 3, 4, 5, 6]).unwrap_err();
        let why = std::error::Error::source(&err).unwrap().to_string();
        assert!(why.contains("2 elements left over"), "{why}");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only decoded")]
        struct Point {
            x: u8,
            y: u8,
        }
        assert!(MsgPack.decode::<Point>(&[0xc4, 3, 1, 2, 3]).is_err());
        // Read whole, a bin still fills an array of its length.
        assert_eq!(MsgPack.decode::<[u8; 4]>(&[0xc4, 4, 1, 2, 3, 4]).unwrap(), [1, 2, 3, 4]);
        // What the encoder writes for arrays reads back.
        let mut buf = Vec::new();
        MsgPack.encode(&([7u8; 4], vec![1u16, 2, 3]), &mut buf).unwrap();
        assert_eq!(MsgPack.decode::<([u8; 4], Vec<u16>)>(&buf).unwrap(), ([7; 4], vec![1, 2, 3]));
    }

    #[test]
    fn a_negative_integer_is_not_read_as_a_huge_u128() {
        // -1 (negative fixint) and i64::MIN: rmp-serde cast them, giving
        // u128::MAX and 2^128 - 2^63 (a field that was `i64` read as `u128`).
        for bytes in [&[0xff][..], &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]] {
            let err = MsgPack.decode::<u128>(bytes).unwrap_err();
            let why = std::error::Error::source(&err).unwrap().to_string();
            assert!(why.contains("a u128"), "{bytes:?}: {why}");
        }
        // Every u128 the encoder writes reads back, as do plain integers.
        for value in [0, 1, u128::from(u64::MAX), i128::MAX as u128, (i128::MAX as u128) + 1, u128::MAX] {
            let mut buf = Vec::new();
            MsgPack.encode(&value, &mut buf).unwrap();
            assert_eq!(MsgPack.decode::<u128>(&buf).unwrap(), value);
        }
        assert_eq!(MsgPack.decode::<u128>(&[0x05]).unwrap(), 5);
        assert_eq!(
            MsgPack.decode::<u128>(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            u128::from(u64::MAX)
        );
        assert_eq!(MsgPack.decode::<u128>(&[0xd0, 0x05]).unwrap(), 5, "a non-negative int8");
        assert!(MsgPack.decode::<u128>(&[0xc4, 3, 1, 2, 3]).is_err(), "bytes of another length");
        // i128 as before.
        assert_eq!(MsgPack.decode::<i128>(&[0xff]).unwrap(), -1);
    }
}
