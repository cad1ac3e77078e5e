//! An event's shape: the serde calls its `Serialize` makes, values aside,
//! hashed into a `u64`. The writer reads an event back (decodes its payload,
//! [`crate::payload::ReadBack`]) only when its shape is one it has not read
//! back before: a type the codec writes but cannot read (a
//! `serde_json::Value` under bincode, an untagged enum, a field skipped
//! without a default) fails on the first event of each new shape, not only
//! on the first events of a run.
//!
//! What makes a shape: the kind of each value (a bool, an integer of each
//! width, a string, a `None` or a `Some`, a unit, a struct, a tuple...), a
//! variant's index, a struct's or tuple's length and each field written or
//! skipped, and for a sequence or a map the set of its elements' shapes
//! (so that two lists of the same kind of elements are one shape whatever
//! their lengths; an empty one is a shape of its own). Never a number's or
//! a string's value, but the keys of a map whose length is not given up
//! front: serde writes a flattened struct that way, and there the keys are
//! its field names, which decide whether it reads back.
//!
//! Invariant: values of one shape make the same calls into a codec's
//! serializer up to the values of numbers and strings and the number and
//! order of elements; for a codec whose decoding depends on nothing else
//! ([`Codec::READ_BACK_BY_SHAPE`](events_core::Codec::READ_BACK_BY_SHAPE)),
//! whether their bytes decode is the same. Beyond it (each read back only
//! at the first event of its shape):
//! - a `Deserialize` that checks a string's or a number's value itself,
//!   or changes it (trims, dedups: bincode's check refuses such a value
//!   only at the first event of its shape);
//! - an internally tagged enum (`#[serde(tag = ...)]`) under MessagePack:
//!   serde writes its variant as a string, so two variants whose fields
//!   make the same calls are one shape (one of them with a field skipped
//!   when empty and no `#[serde(default)]`, say, reads back and the other
//!   does not);
//! - a `Serialize` that says a list's length and writes another number of
//!   elements (MessagePack refuses it when it encodes, bincode does not);
//! - a value whose `Serialize` writes something else the second time
//!   (interior mutability): the shape comes from a pass of its own.

use std::fmt;

use serde::ser::{self, Serialize};

/// The shape of `value`; `None` when its `Serialize` fails, which the
/// encode that came first reported.
pub(crate) fn of<T: Serialize + ?Sized>(value: &T) -> Option<u64> {
    let mut shape = Shape::new(false);
    value.serialize(&mut shape).ok()?;
    // Never 0, which marks an empty slot of the read-back's memory.
    Some(shape.hash | 1)
}

/// Distinct element shapes a sequence or map keeps as a set; past them,
/// each new one is mixed in as it comes (more shapes, never fewer).
const SET: usize = 8;

#[derive(Clone, Copy)]
#[repr(u64)]
enum Tag {
    Bool = 1,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    None,
    Some,
    Unit,
    UnitStruct,
    UnitVariant,
    NewtypeStruct,
    NewtypeVariant,
    Seq,
    Tuple,
    TupleStruct,
    TupleVariant,
    Map,
    SizedMap,
    Struct,
    StructVariant,
    Field,
    Skipped,
    End,
}

struct Shape {
    hash: u64,
    /// Hash the values of strings, bytes and integers too (a key of a map
    /// whose length is not given).
    values: bool,
}

#[derive(Debug)]
struct Failed;

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the value's Serialize failed")
    }
}

impl std::error::Error for Failed {}

impl ser::Error for Failed {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Failed
    }
}

impl Shape {
    fn new(values: bool) -> Self {
        Shape { hash: 0x243f_6a88_85a3_08d3, values }
    }

    #[inline]
    fn mix(&mut self, x: u64) {
        self.hash = (self.hash.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn tag(&mut self, tag: Tag) {
        self.mix(tag as u64);
    }

    /// A scalar: its kind, and its value when values count.
    #[inline]
    fn scalar(&mut self, tag: Tag, value: impl FnOnce() -> u64) -> Result<(), Failed> {
        self.tag(tag);
        if self.values {
            self.mix(value());
        }
        Ok(())
    }

    fn bytes(&mut self, tag: Tag, bytes: &[u8]) -> Result<(), Failed> {
        self.tag(tag);
        if self.values {
            self.mix(bytes.len() as u64);
            for chunk in bytes.chunks(8) {
                let mut word = [0; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                self.mix(u64::from_le_bytes(word));
            }
        }
        Ok(())
    }

    fn elements(&mut self, tag: Tag, values: bool) -> Elements<'_> {
        self.tag(tag);
        Elements { shape: self, values, set: [0; SET], len: 0, key: None, entries: Vec::new() }
    }

    fn fields(&mut self, tag: Tag, variant: Option<(u32, &'static str)>, len: usize) -> &mut Self {
        self.tag(tag);
        if let Some((index, name)) = variant {
            self.variant(index, name);
        }
        self.mix(len as u64);
        self
    }

    /// A variant: its index, and its name (by address: a hand-written
    /// `Serialize` may give one index several names; one name at two
    /// addresses is only one more shape).
    #[inline]
    fn variant(&mut self, index: u32, name: &'static str) {
        self.mix(index.into());
        self.mix(name.as_ptr() as u64 ^ ((name.len() as u64) << 48));
    }
}

/// The shape of one element, key or value, on its own.
fn element<T: Serialize + ?Sized>(value: &T, values: bool) -> Result<u64, Failed> {
    let mut shape = Shape::new(values);
    value.serialize(&mut shape)?;
    Ok(shape.hash)
}

/// A sequence's or a map's elements: the set of their shapes.
struct Elements<'a> {
    shape: &'a mut Shape,
    /// Hash the keys' values (a map of unknown length).
    values: bool,
    set: [u64; SET],
    len: usize,
    /// A map's key, until its value comes.
    key: Option<u64>,
    /// The entries of a map of unknown length, every one.
    entries: Vec<u64>,
}

impl Elements<'_> {
    fn add(&mut self, element: u64) {
        if self.values {
            // A flattened struct's fields: each one, so that a field
            // written twice (serde refuses a duplicate) is another shape;
            // sorted at the end, so that a flattened hash map's entries,
            // in another order for each map, are not.
            self.entries.push(element);
            return;
        }
        if self.set[..self.len].contains(&element) {
            return;
        }
        if self.len < SET {
            self.set[self.len] = element;
            self.len += 1;
        } else {
            self.shape.mix(element);
        }
    }

    fn end(mut self) -> Result<(), Failed> {
        self.entries.sort_unstable();
        for &entry in &self.entries {
            self.shape.mix(entry);
        }
        let set = &mut self.set[..self.len];
        set.sort_unstable();
        for &element in set.iter() {
            self.shape.mix(element);
        }
        self.shape.tag(Tag::End);
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut Shape {
    type Ok = ();
    type Error = Failed;
    type SerializeSeq = Elements<'a>;
    type SerializeTuple = &'a mut Shape;
    type SerializeTupleStruct = &'a mut Shape;
    type SerializeTupleVariant = &'a mut Shape;
    type SerializeMap = Elements<'a>;
    type SerializeStruct = &'a mut Shape;
    type SerializeStructVariant = &'a mut Shape;

    fn serialize_bool(self, v: bool) -> Result<(), Failed> {
        self.scalar(Tag::Bool, || v.into())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Failed> {
        self.scalar(Tag::I8, || v as u64)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Failed> {
        self.scalar(Tag::I16, || v as u64)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Failed> {
        self.scalar(Tag::I32, || v as u64)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Failed> {
        self.scalar(Tag::I64, || v as u64)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Failed> {
        self.scalar(Tag::I128, || (v as u64) ^ ((v >> 64) as u64).rotate_left(17))
    }
    fn serialize_u8(self, v: u8) -> Result<(), Failed> {
        self.scalar(Tag::U8, || v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Failed> {
        self.scalar(Tag::U16, || v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Failed> {
        self.scalar(Tag::U32, || v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Failed> {
        self.scalar(Tag::U64, || v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Failed> {
        self.scalar(Tag::U128, || (v as u64) ^ ((v >> 64) as u64).rotate_left(17))
    }
    fn serialize_f32(self, v: f32) -> Result<(), Failed> {
        self.scalar(Tag::F32, || v.to_bits().into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Failed> {
        self.scalar(Tag::F64, || v.to_bits())
    }
    fn serialize_char(self, v: char) -> Result<(), Failed> {
        self.scalar(Tag::Char, || v.into())
    }
    fn serialize_str(self, v: &str) -> Result<(), Failed> {
        self.bytes(Tag::Str, v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Failed> {
        self.bytes(Tag::Bytes, v)
    }
    fn serialize_none(self) -> Result<(), Failed> {
        self.tag(Tag::None);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Failed> {
        self.tag(Tag::Some);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Failed> {
        self.tag(Tag::Unit);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Failed> {
        self.tag(Tag::UnitStruct);
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, index: u32, variant: &'static str) -> Result<(), Failed> {
        self.tag(Tag::UnitVariant);
        self.variant(index, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Failed> {
        self.tag(Tag::NewtypeStruct);
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        self.tag(Tag::NewtypeVariant);
        self.variant(index, variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a>, Failed> {
        Ok(self.elements(Tag::Seq, false))
    }
    fn serialize_tuple(self, len: usize) -> Result<&'a mut Shape, Failed> {
        Ok(self.fields(Tag::Tuple, None, len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<&'a mut Shape, Failed> {
        Ok(self.fields(Tag::TupleStruct, None, len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<&'a mut Shape, Failed> {
        Ok(self.fields(Tag::TupleVariant, Some((index, variant)), len))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Elements<'a>, Failed> {
        // A map that does not say its length up front is how serde writes a
        // flattened struct: its keys are field names, and they count.
        Ok(match len {
            Some(_) => self.elements(Tag::SizedMap, false),
            None => self.elements(Tag::Map, true),
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<&'a mut Shape, Failed> {
        Ok(self.fields(Tag::Struct, None, len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<&'a mut Shape, Failed> {
        Ok(self.fields(Tag::StructVariant, Some((index, variant)), len))
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Failed> {
        if self.values {
            return self.serialize_str(&value.to_string());
        }
        self.tag(Tag::Str);
        Ok(())
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeSeq for Elements<'_> {
    type Ok = ();
    type Error = Failed;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        let element = element(value, false)?;
        self.add(element);
        Ok(())
    }
    fn end(self) -> Result<(), Failed> {
        Elements::end(self)
    }
}

impl ser::SerializeMap for Elements<'_> {
    type Ok = ();
    type Error = Failed;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Failed> {
        self.key = Some(element(key, self.values)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        let mut entry = Shape { hash: self.key.take().ok_or(Failed)?, values: false };
        entry.mix(element(value, false)?);
        self.add(entry.hash);
        Ok(())
    }
    fn end(self) -> Result<(), Failed> {
        Elements::end(self)
    }
}

/// Tuples and structs: each field in order, and (named fields) each field
/// skipped.
macro_rules! fields {
    ($($trait:ident :: $method:ident ($($name:ty)?));*) => {$(
        impl ser::$trait for &mut Shape {
            type Ok = ();
            type Error = Failed;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $name,)? value: &T) -> Result<(), Failed> {
                self.tag(Tag::Field);
                value.serialize(&mut **self)
            }
            $(
            fn skip_field(&mut self, _: $name) -> Result<(), Failed> {
                self.tag(Tag::Skipped);
                Ok(())
            }
            )?
            fn end(self) -> Result<(), Failed> {
                self.tag(Tag::End);
                Ok(())
            }
        }
    )*};
}

fields!(
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(&'static str);
    SerializeStructVariant::serialize_field(&'static str)
);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::of;

    #[derive(Serialize)]
    enum Ev {
        Msg { text: String, n: u64 },
        Tags(Vec<String>),
        Meta(Option<Vec<u8>>),
    }

    #[test]
    fn values_and_lengths_are_not_a_shape_kinds_and_variants_are() {
        let msg = |text: &str, n| of(&Ev::Msg { text: text.into(), n }).unwrap();
        assert_eq!(msg("a", 1), msg("a much longer text", u64::MAX));
        let tags = |tags: &[&str]| of(&Ev::Tags(tags.iter().map(|t| t.to_string()).collect())).unwrap();
        assert_eq!(tags(&["a"]), tags(&["b", "c", "d"]), "a list's length is not its shape");
        assert_ne!(tags(&[]), tags(&["a"]), "an empty list is a shape of its own");
        assert_ne!(msg("a", 1), tags(&["a"]), "another variant");
        assert_ne!(of(&Ev::Meta(None)), of(&Ev::Meta(Some(vec![]))));
        assert_ne!(of(&1_u32), of(&1_u64), "another width");
    }

    #[test]
    fn a_list_is_the_set_of_its_elements_shapes() {
        let list = |items: &[Option<u8>]| of(items).unwrap();
        assert_eq!(list(&[Some(1), None]), list(&[None, None, Some(3), None]));
        assert_ne!(list(&[Some(1)]), list(&[Some(1), None]));
    }

    /// A flattened struct is a map of unknown length: its keys are field
    /// names, and one left out must be another shape.
    #[test]
    fn the_keys_of_a_map_of_unknown_length_count() {
        #[derive(Serialize)]
        struct Inner {
            a: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            b: Option<u8>,
        }
        #[derive(Serialize)]
        struct Outer {
            #[serde(flatten)]
            inner: Inner,
        }
        let with_b = of(&Outer { inner: Inner { a: 1, b: Some(2) } }).unwrap();
        assert_ne!(with_b, of(&Outer { inner: Inner { a: 1, b: None } }).unwrap());
        assert_eq!(with_b, of(&Outer { inner: Inner { a: 7, b: Some(9) } }).unwrap());
        // A field written twice (serde refuses a duplicate) is another shape.
        #[derive(Serialize)]
        struct Again {
            id: Option<u8>,
            #[serde(flatten)]
            again: Named,
        }
        #[derive(Serialize)]
        struct Named {
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<u8>,
        }
        let once = of(&Again { id: Some(1), again: Named { id: None } }).unwrap();
        assert_ne!(once, of(&Again { id: Some(1), again: Named { id: Some(2) } }).unwrap());
        // A flattened hash map: its entries in any order are one shape.
        #[derive(Serialize)]
        struct Open {
            #[serde(flatten)]
            rest: std::collections::HashMap<String, u8>,
        }
        let keys = || (0..8).map(|k| (format!("k{k}"), 1)).collect();
        let first = of(&Open { rest: keys() }).unwrap();
        assert!((0..20).all(|_| of(&Open { rest: keys() }) == Some(first)), "the order of a hash map's entries");
        // A map that says its length: keys are data, not a shape.
        let map = |k: &str| of(&BTreeMap::from([(k.to_string(), 1_u8)])).unwrap();
        assert_eq!(map("x"), map("y"));
    }

    #[test]
    fn a_skipped_field_is_another_shape() {
        #[derive(Serialize)]
        struct T(#[serde(skip_serializing_if = "Option::is_none")] Option<u8>, u8);
        assert_ne!(of(&T(None, 1)), of(&T(Some(1), 1)));
    }
}
