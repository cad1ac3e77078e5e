//! A serde `Deserializer` for bincode 2's standard wire format (little
//! endian, varint integers), reading straight from the payload slice.
//!
//! [`Bincode`](crate::Bincode) decodes here (and encodes in `bincode_ser`).
//! bincode 2.0's own serde path builds each owned string or byte buffer in
//! a zero-filled allocation and counts every decoded value against its
//! limit, which made decoding most of what a catch-up costs. This reads
//! the same bytes into the same values (a differential test holds it to the
//! bincode crate on random values and damaged bytes) and copies a string
//! once.
//!
//! Invariant: nothing is allocated for a length prefix that the remaining
//! input cannot back (a string or byte buffer is allocated once its bytes
//! are there; a collection is pre-sized for at most as many elements as
//! bytes are left); a length over [`DEFAULT_DECODE_LIMIT`] is refused, and
//! the sequences and maps of one decode declare at most its bytes plus
//! that many elements in all, so no prefixes, however nested, make
//! zero-sized values loop for ever; elements of a sequence or map that take
//! no byte but memory (values whose fields are all skipped) are at most
//! [`EMPTY_ELEMENTS_LIMIT`] (see there); values nest at most
//! [`MAX_DECODE_DEPTH`] deep, so a small payload of a recursive type cannot
//! overflow the stack (which aborts the process); every error names what
//! was wrong and no input panics.
//!
//! Three deliberate differences from the bincode crate, which otherwise
//! accepts exactly the same bytes (the third: values nested deeper than
//! [`MAX_DECODE_DEPTH`], or sequences and maps declaring more elements in
//! all than the payload's bytes plus [`DEFAULT_DECODE_LIMIT`], are
//! refused):
//! * bincode's limit counted the in-memory size of every decoded value (8
//!   bytes per `u64`, however short its varint), so a payload under the
//!   limit could be refused (2.2 million small `u64`s in a 2.2 MB payload).
//!   Here the limit is on bytes: [`Codec::decode`](crate::Codec::decode)
//!   refuses a payload over it, and every length prefix is held to it. A
//!   payload may expand in memory beyond its bytes by its type's ratio (a
//!   `Vec<u64>` of one-byte varints takes 8 bytes per byte).
//! * a sequence of more than [`DEFAULT_DECODE_LIMIT`] elements is refused;
//!   bincode reads one of zero-sized elements (each element takes at least
//!   one byte otherwise, so the input could not hold it).
//!
//! Lengths are read as 64-bit values: on a 32-bit target a length past
//! `usize` is refused where bincode truncates it.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::{DEFAULT_DECODE_LIMIT, MAX_DECODE_DEPTH};

/// How many elements of one payload's sequences and maps may take no byte
/// of it but memory (values whose fields are all `#[serde(skip)]`ped, or a
/// `Box` of one): 65,536, whatever their size, so a length prefix of a few
/// bytes cannot make more (2^24 such 256-byte values, in six bytes, had
/// made 4 GiB; a budget of 16 MiB of their size counted a `Box` as 8
/// bytes). Every other element takes at least one byte, so the payload's
/// length bounds it; a zero-sized one takes no memory.
///
/// The encoder cannot see sizes: it counts, by the serde calls each value
/// makes, every such element but a bare unit (one unit and nothing else:
/// `()`, `PhantomData`, but also a `Box<()>` or an `Arc<()>`), and writes
/// at most this many. So what it writes decodes, but for more than 65,536
/// sized bare units in one value; and it refuses more than 65,536
/// zero-sized values that are not bare units (`struct Tag(PhantomData<T>)`),
/// which would decode. (Counted by their size, 16 MiB, a decode had
/// refused 20,000 1 KiB values the encoder wrote.)
pub(crate) const EMPTY_ELEMENTS_LIMIT: usize = 1 << 16;

/// Decodes one `T` from the front of `bytes`; returns it and the bytes used.
pub(crate) fn decode_prefix<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<(T, usize)> {
    let mut de = Decoder {
        input: bytes,
        depth: 0,
        elements_left: DEFAULT_DECODE_LIMIT.saturating_add(bytes.len()),
        empty_left: EMPTY_ELEMENTS_LIMIT,
    };
    let value = T::deserialize(&mut de)?;
    Ok((value, bytes.len() - de.input.len()))
}

/// What was wrong with the bytes (boxed: results stay two words wide on
/// the hot path).
#[derive(Debug)]
pub(crate) struct Error(Box<Kind>);

#[derive(Debug)]
enum Kind {
    /// The input ended `needed` bytes short of what was being read.
    UnexpectedEnd {
        needed: usize,
        left: usize,
    },
    /// A varint's first byte announced more bytes than the integer holds.
    VarintTag {
        ty: &'static str,
        tag: u8,
    },
    /// A length prefix over the decode limit.
    Length(u64),
    /// Values nested deeper than [`MAX_DECODE_DEPTH`].
    Depth,
    /// Sequences and maps declaring more elements in all than the payload
    /// could hold.
    Elements,
    /// More than [`EMPTY_ELEMENTS_LIMIT`] elements that took no byte of
    /// input but memory (a struct whose fields are all `#[serde(skip)]`ped).
    EmptyValues,
    InvalidBool(u8),
    InvalidOptionTag(u8),
    InvalidChar([u8; 4]),
    Utf8(std::str::Utf8Error),
    /// The format is not self-describing: the reader must name each type.
    NotSelfDescribing(&'static str),
    /// From the type being decoded (an unknown variant index, say).
    Custom(String),
}

impl From<Kind> for Error {
    #[cold]
    fn from(kind: Kind) -> Self {
        Self(Box::new(kind))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Kind::UnexpectedEnd { needed, left } => {
                write!(f, "unexpected end of input: {needed} more bytes needed, {left} left")
            }
            Kind::VarintTag { ty, tag } => write!(f, "varint tag {tag} is not valid for {ty}"),
            Kind::Length(len) => {
                write!(f, "length prefix {len} exceeds the decode limit of {DEFAULT_DECODE_LIMIT} (bytes or elements)")
            }
            Kind::Depth => write!(f, "values nested deeper than {MAX_DECODE_DEPTH} levels"),
            Kind::Elements => write!(
                f,
                "sequences and maps declaring more elements in all than the payload could hold \
                 (its bytes, plus {DEFAULT_DECODE_LIMIT} zero-sized ones)"
            ),
            Kind::EmptyValues => write!(
                f,
                "more than {EMPTY_ELEMENTS_LIMIT} elements that take no byte of the payload but memory (values \
                 whose fields are all skipped, or a `Box` of one or of `()`)"
            ),
            Kind::InvalidBool(b) => write!(f, "invalid bool byte {b} (expected 0 or 1)"),
            Kind::InvalidOptionTag(t) => write!(f, "invalid Option tag {t} (expected 0 or 1)"),
            Kind::InvalidChar(bytes) => write!(f, "invalid UTF-8 char encoding {bytes:02x?}"),
            Kind::Utf8(e) => write!(f, "string is not UTF-8: {e}"),
            Kind::NotSelfDescribing(what) => write!(f, "bincode is not self-describing: cannot decode {what}"),
            Kind::Custom(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Kind::Custom(msg.to_string()).into()
    }
}

type Result<T> = std::result::Result<T, Error>;

/// The input not yet read.
struct Decoder<'de> {
    input: &'de [u8],
    /// How many values enclose the one being read.
    depth: u32,
    /// How many more elements the sequences and maps still to be read may
    /// declare in all: each element takes a byte, except zero-sized values,
    /// of which one payload holds at most [`DEFAULT_DECODE_LIMIT`].
    elements_left: usize,
    /// How many more elements may take no byte of input but memory (see
    /// [`EMPTY_ELEMENTS_LIMIT`]).
    empty_left: usize,
}

impl<'de> Decoder<'de> {
    /// Reads a value one level deeper than the current one.
    #[inline]
    fn nested<R>(&mut self, read: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        if self.depth >= MAX_DECODE_DEPTH {
            return Err(Error::from(Kind::Depth));
        }
        self.depth += 1;
        let value = crate::codec::on_enough_stack(|| read(self));
        self.depth -= 1;
        value
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if n > self.input.len() {
            return Err(Error::from(Kind::UnexpectedEnd { needed: n - self.input.len(), left: self.input.len() }));
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// An unsigned varint of at most `width` bytes (`ty` names it in errors):
    /// up to 250 in its one byte, else a tag (251, 252, 253, 254 for 2, 4,
    /// 8, 16 little-endian bytes) that must fit the integer.
    #[inline(always)]
    fn varint(&mut self, width: usize, ty: &'static str) -> Result<u128> {
        // The one-byte form, the commonest, inline at every call site.
        if let [tag @ 0..=250, rest @ ..] = self.input {
            self.input = rest;
            return Ok(u128::from(*tag));
        }
        self.wide_varint(width, ty)
    }

    /// [`varint`](Self::varint) past its one-byte form: a tag and its bytes.
    fn wide_varint(&mut self, width: usize, ty: &'static str) -> Result<u128> {
        let tag = self.byte()?;
        let n = match tag {
            // Taken by `varint` already; kept so the match is total.
            0..=250 => return Ok(u128::from(tag)),
            251 => 2,
            252 => 4,
            253 => 8,
            254 => 16,
            255 => return Err(Error::from(Kind::VarintTag { ty, tag })),
        };
        if n > width {
            return Err(Error::from(Kind::VarintTag { ty, tag }));
        }
        let mut bytes = [0; 16];
        bytes[..n].copy_from_slice(self.take(n)?);
        Ok(u128::from_le_bytes(bytes))
    }

    #[inline]
    fn u64(&mut self, ty: &'static str) -> Result<u64> {
        // Lossless: `varint(8, ..)` reads at most 8 bytes.
        self.varint(8, ty).map(|v| v as u64)
    }

    /// A length prefix (of a string, bytes, a sequence or a map): a `u64`
    /// varint, at most the decode limit.
    #[inline]
    fn len(&mut self) -> Result<usize> {
        let len = self.u64("a length")?;
        usize::try_from(len).ok().filter(|&n| n <= DEFAULT_DECODE_LIMIT).ok_or_else(|| Kind::Length(len).into())
    }

    /// A sequence's or map's length prefix, counted against what the
    /// payload could hold in all: nested prefixes of unit values (which
    /// take no bytes) cannot make a decode loop for ever.
    #[inline]
    fn counted_len(&mut self) -> Result<usize> {
        let len = self.len()?;
        self.elements_left = self.elements_left.checked_sub(len).ok_or_else(|| Error::from(Kind::Elements))?;
        Ok(len)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'de [u8]> {
        let len = self.len()?;
        self.take(len)
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str> {
        std::str::from_utf8(self.bytes()?).map_err(|e| Kind::Utf8(e).into())
    }

    fn char(&mut self) -> Result<char> {
        let first = self.byte()?;
        let width = match first {
            0x00..=0x7F => return Ok(char::from(first)),
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return Err(Error::from(Kind::InvalidChar([first, 0, 0, 0]))),
        };
        let mut bytes = [first, 0, 0, 0];
        bytes[1..width].copy_from_slice(self.take(width - 1)?);
        std::str::from_utf8(&bytes[..width])
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or_else(|| Kind::InvalidChar(bytes).into())
    }
}

/// Zigzag: even `n` is `n / 2`, odd is `-(n / 2) - 1`.
macro_rules! zigzag {
    ($n:expr, $t:ty) => {{
        let n = $n;
        if n % 2 == 0 { (n / 2) as $t } else { !(n / 2) as $t }
    }};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Error::from(Kind::NotSelfDescribing("a value of unnamed type (deserialize_any)")))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(Error::from(Kind::InvalidBool(b))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i8(i8::from_le_bytes(self.array()?))
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i16(zigzag!(self.varint(2, "i16")? as u16, i16))
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i32(zigzag!(self.varint(4, "i32")? as u32, i32))
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i64(zigzag!(self.u64("i64")?, i64))
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i128(zigzag!(self.varint(16, "i128")?, i128))
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.byte()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u16(self.varint(2, "u16")? as u16)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(self.varint(4, "u32")? as u32)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(self.u64("u64")?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u128(self.varint(16, "u128")?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_char(self.char()?)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // One allocation, one copy: no zero-filled buffer first.
        visitor.visit_string(self.str()?.to_owned())
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_byte_buf(self.bytes()?.to_vec())
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nested(|de| visitor.visit_some(de)),
            t => Err(Error::from(Kind::InvalidOptionTag(t))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.counted_len()?;
        self.nested(|de| visitor.visit_seq(Elements::<true> { de, left: len }))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        // Not counted: a struct's or array's length is its type's, so the
        // work is the budget times the type's own fan-out of zero-sized
        // values (`[(); 4096]`), which no event type worth decoding has;
        // counting every tuple cost the decode bench 3%.
        visitor.visit_seq(Elements::<false> { de: self, left: len })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_tuple(len, visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.counted_len()?;
        self.nested(|de| visitor.visit_map(Elements::<true> { de, left: len }))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.nested(|de| visitor.visit_enum(de))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Error::from(Kind::NotSelfDescribing("an identifier")))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Error::from(Kind::NotSelfDescribing("an ignored value (deserialize_ignored_any)")))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map:
/// `left` more to read. `COUNTED`: a sequence's or map's, whose length
/// prefix says how many (a tuple's or struct's is its type's): there the
/// memory of elements that take no byte is counted.
struct Elements<'a, 'de, const COUNTED: bool> {
    de: &'a mut Decoder<'de>,
    left: usize,
}

impl<const COUNTED: bool> Elements<'_, '_, COUNTED> {
    /// What the bytes left could hold: serde pre-sizes collections by it,
    /// so a length prefix alone never sizes an allocation.
    fn hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.input.len()))
    }
}

impl<'de, const COUNTED: bool> de::SeqAccess<'de> for Elements<'_, 'de, COUNTED> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let before = self.de.input.len();
        let value = seed.deserialize(&mut *self.de)?;
        if COUNTED && self.de.input.len() == before && std::mem::size_of::<T::Value>() != 0 {
            // It took no byte: only this bounds how many such values a
            // length prefix of a few bytes makes (zero-sized ones take no
            // memory; `elements_left` bounds those).
            self.de.empty_left = self.de.empty_left.checked_sub(1).ok_or_else(|| Error::from(Kind::EmptyValues))?;
        }
        Ok(Some(value))
    }

    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de, const COUNTED: bool> de::MapAccess<'de> for Elements<'_, 'de, COUNTED> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        de::SeqAccess::next_element_seed(self, seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let index = self.varint(4, "a variant index")? as u32;
        let value = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}
