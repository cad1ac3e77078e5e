//! A serde `Serializer` for bincode 2's standard wire format (little
//! endian, varint integers), writing straight into the output `Vec`: the
//! encoding half of [`Bincode`](crate::Bincode), beside the decoder in
//! `bincode_de`.
//!
//! The bincode crate's serde path writes through its own writer
//! abstraction, one call per primitive; encoding the bench's 256-byte
//! envelope took ~47 ns there. This writes the same bytes (a differential
//! test holds it to the bincode crate on random values of every serde
//! shape) with a plain `Vec` push or copy per value.
//!
//! The format, as the decoder reads it: `u8`, `i8` and `bool` are one byte;
//! wider integers are varints (a value up to 250 in one byte, else a tag
//! 251, 252, 253 or 254 followed by 2, 4, 8 or 16 little-endian bytes, the
//! narrowest that holds it), signed ones zigzagged first; floats are their
//! little-endian bits; a `char` is its UTF-8 bytes; strings, byte buffers,
//! sequences and maps are a varint length and then their contents; an
//! `Option` is a 0 or 1 byte and then its value; an enum variant is its
//! index as a varint `u32` and then its fields; structs and tuples are
//! their fields in order, with no length.

use std::fmt;

use serde::ser::{self, Serialize};

/// Appends the encoding of `value` to `out`; on an error, `out` may hold
/// part of it.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let mut encoder = Encoder { out, depth: 0, elements: 0, empty: 0, units: 0, shapes: 0, recording: None };
    value.serialize(&mut encoder)?;
    if encoder.empty > crate::bincode_de::EMPTY_ELEMENTS_LIMIT {
        return Err(Error::TooManyEmpty(encoder.empty));
    }
    // The decoder's budget for all length prefixes together: the limit plus
    // one per byte it is given (at least these). Only zero-sized elements
    // (units, empty tuples) take no byte and can go past it.
    let (elements, len) = (encoder.elements, encoder.out.len() - start);
    if elements > crate::DEFAULT_DECODE_LIMIT.saturating_add(len) {
        return Err(Error::TooManyElements { elements, len });
    }
    Ok(())
}

/// Checks that `value`, encoded, reads back as itself where position
/// decides: bincode writes a struct's fields and a variant by position, so
/// a value serde writes and reads differently decodes as another value,
/// with no error. Three checks, on the value read back written again:
/// - its enum variants (each one's position and serialize name): serde
///   reads a variant's position among the variants not skipped, so after
///   a `#[serde(skip)]` (or `skip_deserializing`) variant, a written
///   variant reads back as the next one;
/// - the number of fields of each struct, tuple struct and variant: a
///   tuple field skipped when written (`skip_serializing_if`, of which
///   serde tells the encoder nothing) is read from the next field's bytes;
/// - the length of the whole: a named field written but not read
///   (`skip_deserializing`) or read but not written (`skip_serializing`)
///   takes another field's bytes.
///
/// Variants and field counts are compared as sorted lists, so the order of
/// a hash map's entries does not matter, nor do names serde reads and
/// never writes (aliases). Nothing to say (`Ok`) when the bytes do not
/// decode (that is the caller's other check) or the value read back does
/// not encode.
pub(crate) fn check_variants<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> Result<(), Error> {
    let (bytes, mut written) = recorded(value)?;
    let Ok((read, _)) = crate::bincode_de::decode_prefix::<T>(&bytes) else { return Ok(()) };
    let Ok((again, mut reread)) = recorded(&read) else { return Ok(()) };
    shifted(&mut written.variants, &mut reread.variants)?;
    if written.fields.len() == reread.fields.len() {
        written.fields.sort_unstable();
        reread.fields.sort_unstable();
    }
    if let Some((&(name, count), &(_, paired))) = written.fields.iter().zip(&reread.fields).find(|(a, b)| a != b) {
        // Sorted, the pair may be of two structs: name the count read back
        // for a struct of the same name, where there is one.
        let read = reread.fields.iter().find(|&&(n, c)| n == name && c != count).map_or(paired, |&(_, c)| c);
        return Err(Error::FieldCount { name, written: count, read });
    }
    if bytes.len() != again.len() {
        return Err(Error::Misread { written: bytes.len(), read: again.len() });
    }
    Ok(())
}

/// The first variant `written` that reads back as another (both lists
/// sorted when they are as long).
fn shifted(written: &mut Variants, reread: &mut Variants) -> Result<(), Error> {
    if written.len() == reread.len() {
        written.sort_unstable();
        reread.sort_unstable();
    }
    match written.iter().zip(reread.iter()).find(|(a, b)| a != b) {
        Some((&(index, variant), &(_, read))) => Err(Error::ShiftedVariant { variant, index, read }),
        // One list goes on past the other: the first variant past the
        // shorter one, or, with none written past it, the last written
        // (none written: no variant to be shifted).
        None if written.len() != reread.len() => match written.get(reread.len()).or(written.last()) {
            Some(&(index, variant)) => {
                let read = reread.get(written.len()).map_or("nothing", |&(_, read)| read);
                Err(Error::ShiftedVariant { variant, index, read })
            }
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// Each enum variant written, in order: its position and serialize name.
type Variants = Vec<(u32, &'static str)>;

/// What `check_variants` records of a write.
#[derive(Default)]
struct Recording {
    variants: Variants,
    /// Each struct, tuple struct and variant with fields: its name (the
    /// variant's) and the number of fields serde said it writes.
    fields: Vec<(&'static str, usize)>,
}

/// `value` encoded, and what was recorded of the write.
fn recorded<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, Recording), Error> {
    let mut out = Vec::new();
    let mut encoder = Encoder {
        out: &mut out,
        depth: 0,
        elements: 0,
        empty: 0,
        units: 0,
        shapes: 0,
        recording: Some(Recording::default()),
    };
    value.serialize(&mut encoder)?;
    let recording = encoder.recording.take().unwrap_or_default();
    Ok((out, recording))
}

/// Why a value could not be encoded.
#[derive(Debug)]
pub(crate) enum Error {
    /// A sequence or map whose serializer did not give its length up front
    /// (bincode writes the length first).
    SequenceMustHaveLength,
    /// Nested deeper than [`MAX_DECODE_DEPTH`](crate::MAX_DECODE_DEPTH):
    /// the decoder would refuse it, so it is never written.
    TooDeep,
    /// A sequence or map longer than the decode limit, which every decode
    /// refuses.
    TooLong(usize),
    /// A string or byte buffer longer than the decode limit, which every
    /// decode refuses.
    TooManyBytes(usize),
    /// Sequences and maps holding more elements in all than a decode of
    /// the `len` bytes written would accept (zero-sized elements only).
    TooManyElements { elements: usize, len: usize },
    /// This many elements of sequences and maps that write no byte and
    /// are not a bare unit (values whose fields are all skipped, or are
    /// units): more than a decode accepts (it bounds their memory).
    TooManyEmpty(usize),
    /// A struct field left out (`#[serde(skip_serializing_if = ...)]`):
    /// fields are written by position with no name, so the decoder would
    /// read the next field's bytes in its place, a different value or an
    /// error, never this one.
    SkippedField(&'static str),
    /// A variant written at a position that reads back as another value
    /// (whose variant is `read`): a skipped variant comes before it (see
    /// `check_variants`).
    ShiftedVariant { variant: &'static str, index: u32, read: &'static str },
    /// A struct, tuple struct or variant written with `written` fields that
    /// reads back as one of `read` (see `check_variants`).
    FieldCount { name: &'static str, written: usize, read: usize },
    /// A value written in `written` bytes that reads back as one written in
    /// `read` (see `check_variants`).
    Misread { written: usize, read: usize },
    /// What the value's `Serialize` implementation reported.
    Custom(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::SequenceMustHaveLength => {
                f.write_str("a sequence or map did not give its length up front (bincode writes it first)")
            }
            Error::TooDeep => write!(
                f,
                "values nested deeper than {} levels (MAX_DECODE_DEPTH), which no decode would accept",
                crate::MAX_DECODE_DEPTH
            ),
            Error::TooLong(len) => write!(
                f,
                "a sequence or map of {len} elements, more than the decode limit of {} would accept",
                crate::DEFAULT_DECODE_LIMIT
            ),
            Error::TooManyBytes(len) => write!(
                f,
                "a string or byte buffer of {len} bytes, more than the decode limit of {} would accept",
                crate::DEFAULT_DECODE_LIMIT
            ),
            Error::TooManyElements { elements, len } => write!(
                f,
                "sequences and maps of {elements} elements in all, in {len} bytes: more than a decode would \
                 accept (the decode limit of {} plus one per byte)",
                crate::DEFAULT_DECODE_LIMIT
            ),
            Error::TooManyEmpty(elements) => write!(
                f,
                "{elements} elements of sequences and maps that write no byte (values whose fields are all \
                 skipped): more than the {} written in one value, whose memory a decode bounds",
                crate::bincode_de::EMPTY_ELEMENTS_LIMIT
            ),
            Error::ShiftedVariant { variant, index, read } => write!(
                f,
                "variant `{variant}` is written as number {index} of its enum, and the value reads back with \
                 `{read}` in its place: a variant before it is skipped (serde's skip or skip_deserializing), and \
                 bincode writes variants by position; drop the attribute or use a self-describing codec"
            ),
            Error::FieldCount { name, written, read } => write!(
                f,
                "`{name}` is written with {written} fields and reads back with {read}: a field is skipped when \
                 written (serde's skip_serializing_if on a tuple field), and bincode writes fields by position; \
                 drop the attribute or use a self-describing codec"
            ),
            Error::Misread { written, read } => write!(
                f,
                "the value is written in {written} bytes and reads back as another, written in {read}: a field is \
                 written but not read (serde's skip_deserializing) or read but not written (skip_serializing), and \
                 bincode writes fields by position (drop the attribute or use a self-describing codec); or its \
                 Deserialize changes the value (trims, dedups), so that readers of the journal would get another \
                 value than live subscribers"
            ),
            Error::SkippedField(name) => write!(
                f,
                "field `{name}` was skipped (serde's skip_serializing_if): bincode writes fields by position, so \
                 the record would decode as another value; drop the attribute or use a self-describing codec"
            ),
            Error::Custom(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// How many levels enclose the value being written, counted as the
    /// decoder counts them: each `Some`, sequence, map and enum variant.
    depth: u32,
    /// The length prefixes of every sequence and map so far, summed.
    elements: usize,
    /// The elements of sequences and maps that wrote no byte and are not
    /// a bare unit (see `bincode_de::EMPTY_ELEMENTS_LIMIT`).
    empty: usize,
    /// The units written so far (`()`, a unit struct, `PhantomData`, or
    /// what a `Box<()>` writes): an element that is one unit alone is not
    /// counted in `empty`.
    units: usize,
    /// The structs, tuples and newtypes begun so far: an element that
    /// begins one and writes no byte is counted, units inside or not.
    shapes: usize,
    /// When recording (`check_variants`): each enum variant written, and
    /// each struct's number of fields.
    recording: Option<Recording>,
}

impl Encoder<'_> {
    /// One element of a sequence, or a map's key: what the decoder reads
    /// through a length-prefixed element access, which counts the memory
    /// of those that take no byte.
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let (bytes, units, shapes) = (self.out.len(), self.units, self.shapes);
        value.serialize(&mut *self)?;
        // A struct of units and skipped fields takes memory (the decoder
        // counts it); not counted, 70,000 of them had been written, and no
        // decode accepted the record.
        let bare_unit = self.units == units + 1 && self.shapes == shapes;
        if self.out.len() == bytes && !bare_unit {
            self.empty += 1;
        }
        Ok(())
    }

    /// Records a variant written (only when `check_variants` asks).
    #[inline]
    fn record(&mut self, index: u32, variant: &'static str) {
        if let Some(recording) = &mut self.recording {
            recording.variants.push((index, variant));
        }
    }

    /// Records the number of fields a struct, tuple struct or variant says
    /// it writes (only when `check_variants` asks).
    #[inline]
    fn record_fields(&mut self, name: &'static str, len: usize) {
        if let Some(recording) = &mut self.recording {
            recording.fields.push((name, len));
        }
    }

    /// A variant with content: its position, then one level deeper for
    /// what follows (`leave` at its end).
    #[inline]
    fn variant(&mut self, index: u32, variant: &'static str) -> Result<(), Error> {
        self.record(index, variant);
        self.varint(index.into());
        self.enter()
    }

    /// Enters one more level; `end` (or `leave`) leaves it.
    #[inline]
    fn enter(&mut self) -> Result<(), Error> {
        if self.depth >= crate::MAX_DECODE_DEPTH {
            return Err(Error::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    #[inline]
    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A sequence's or map's length prefix; over the decode limit it is
    /// refused, as every decode would refuse it.
    #[inline]
    fn counted_len(&mut self, len: Option<usize>) -> Result<(), Error> {
        let len = len.ok_or(Error::SequenceMustHaveLength)?;
        if len > crate::DEFAULT_DECODE_LIMIT {
            return Err(Error::TooLong(len));
        }
        self.elements = self.elements.saturating_add(len);
        self.len(len);
        Ok(())
    }

    /// An unsigned varint: up to 250 in one byte, else a width tag and the
    /// value in the narrowest of 2, 4 or 8 bytes.
    #[inline(always)]
    fn varint(&mut self, v: u64) {
        if v <= 250 {
            self.out.push(v as u8);
        } else if let Ok(v) = u16::try_from(v) {
            self.out.push(251);
            self.out.extend_from_slice(&v.to_le_bytes());
        } else if let Ok(v) = u32::try_from(v) {
            self.out.push(252);
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.out.push(253);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A 128-bit varint: as [`varint`](Self::varint) up to `u64::MAX`, else
    /// the tag 254 and 16 bytes.
    #[inline]
    fn varint128(&mut self, v: u128) {
        match u64::try_from(v) {
            Ok(v) => self.varint(v),
            Err(_) => {
                self.out.push(254);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// A signed varint: zigzagged (0, -1, 1, -2, … → 0, 1, 2, 3, …), then
    /// as an unsigned one.
    #[inline]
    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    #[inline]
    fn len(&mut self, len: usize) {
        self.varint(len as u64);
    }

    /// A string's or byte buffer's length and bytes; over the decode limit
    /// it is refused, as every decode would refuse it.
    #[inline]
    fn bytes(&mut self, v: &[u8]) -> Result<(), Error> {
        if v.len() > crate::DEFAULT_DECODE_LIMIT {
            return Err(Error::TooManyBytes(v.len()));
        }
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }
}

impl ser::Serializer for &mut Encoder<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(u8::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.out.push(v as u8);
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.zigzag(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.zigzag(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.zigzag(v);
        Ok(())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.varint128(((v << 1) ^ (v >> 127)) as u128);
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.out.push(v);
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.varint(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.varint(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.varint(v);
        Ok(())
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.varint128(v);
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.out.extend_from_slice(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.bytes(v)
    }
    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(0);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.push(1);
        self.enter()?;
        value.serialize(&mut *self)?;
        self.leave();
        Ok(())
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        self.units += 1;
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.units += 1;
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(self, _: &'static str, index: u32, variant: &'static str) -> Result<(), Error> {
        self.record(index, variant);
        self.enter()?;
        self.leave();
        self.varint(index.into());
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Error> {
        self.shapes += 1;
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(index, variant)?;
        value.serialize(&mut *self)?;
        self.leave();
        Ok(())
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        self.counted_len(len)?;
        self.enter()?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self, Error> {
        self.shapes += 1;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self, Error> {
        self.record_fields(name, len);
        self.shapes += 1;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Error> {
        self.record_fields(variant, len);
        self.variant(index, variant)?;
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        self.counted_len(len)?;
        self.enter()?;
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self, Error> {
        self.record_fields(name, len);
        self.shapes += 1;
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, Error> {
        self.record_fields(variant, len);
        self.variant(index, variant)?;
        Ok(self)
    }
    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The compound serializers: each element, field, key or value is encoded
/// in turn, with nothing between them and nothing at the end.
macro_rules! compound {
    ($($trait:ident :: $method:ident, leaves: $leaves:literal, counted: $counted:literal);*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Error;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                if $counted { self.element(value) } else { value.serialize(&mut **self) }
            }
            #[inline]
            fn end(self) -> Result<(), Error> {
                if $leaves {
                    self.leave();
                }
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element, leaves: true, counted: true;
    SerializeTuple::serialize_element, leaves: false, counted: false;
    SerializeTupleStruct::serialize_field, leaves: false, counted: false;
    SerializeTupleVariant::serialize_field, leaves: true, counted: false
);

macro_rules! fields {
    ($($trait:ident, leaves: $leaves:literal);*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = Error;
            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result<(), Error> {
                value.serialize(&mut **self)
            }
            fn skip_field(&mut self, name: &'static str) -> Result<(), Error> {
                Err(Error::SkippedField(name))
            }
            #[inline]
            fn end(self) -> Result<(), Error> {
                if $leaves {
                    self.leave();
                }
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, leaves: false; SerializeStructVariant, leaves: true);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.element(key)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        self.leave();
        Ok(())
    }
}
