//! [`Checked`]: a value seen through a serializer that refuses a `Some`
//! MessagePack would read back as `None`. rmp-serde writes
//! `Some(x)` as `x` alone, so an `x` written as `nil` (`None`, `()`, or a
//! newtype or `Some` around one) reads back as `None`: an
//! `Option<Option<T>>` holding `Some(None)`, the usual "set to null" of a
//! patch, would come back as "not set". [`MsgPack`](crate::MsgPack)
//! encodes through it, so such a value is an encode error, never journaled
//! to be read back as something else. Other shapes serde itself cannot
//! tell apart in a self-describing format (an untagged enum whose variants
//! read alike, a flattened `Option` of a struct whose fields are all
//! optional) are not caught here.
//!
//! It also bounds the recursion: a `Some` inside
//! [`MAX_DECODE_DEPTH`](crate::MAX_DECODE_DEPTH) others, and a container
//! (sequence, tuple, map, struct, variant with data) inside as many
//! containers, are refused as they are reached. rmp-serde never checks a
//! depth while it writes, and the check of what was written
//! (`msgpack::value_len`) came after: a value nested a few thousand levels
//! deep (a long linked list) overflowed the stack first, which aborts the
//! process.
//!
//! Invariant: everything else passes through to the wrapped serializer
//! unchanged, in the same calls (`is_human_readable` too), so what is
//! written is byte for byte what rmp-serde writes for the value. Every
//! container rmp-serde writes is at least one level of `value_len`'s, so
//! nothing refused here would have been accepted there.

use serde::ser::{self, Impossible, Serialize, Serializer};

/// A value serialized through [`CheckedSer`], at this depth.
pub(crate) struct Checked<'a, T: ?Sized>(pub(crate) &'a T, pub(crate) Depth);

/// How deep a value is: inside how many `Some`s, and how many containers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Depth {
    somes: u32,
    containers: u32,
}

impl Depth {
    /// The depth inside one more `Some`, or the refusal past the limit.
    fn some<E: ser::Error>(self) -> Result<Depth, E> {
        if self.somes >= crate::MAX_DECODE_DEPTH {
            return Err(E::custom(crate::msgpack_depth::TOO_DEEP));
        }
        Ok(Depth { somes: self.somes + 1, ..self })
    }

    /// The depth inside one more container, or the refusal past the limit.
    fn container<E: ser::Error>(self) -> Result<Depth, E> {
        if self.containers >= crate::MAX_DECODE_DEPTH {
            return Err(E::custom(crate::msgpack::CONTAINERS_TOO_DEEP));
        }
        Ok(Depth { containers: self.containers + 1, ..self })
    }
}

impl<T: Serialize + ?Sized> Serialize for Checked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(CheckedSer(serializer, self.1))
    }
}

/// Forwards every call to `S`, refusing `Some` of a value written as `nil`,
/// and a `Some` or a container past [`Depth`]'s limits (the decoder's
/// bounds, `msgpack_depth.rs` and `msgpack::value_len`).
struct CheckedSer<S>(S, Depth);

/// A compound serializer whose elements are [`Checked`] too, at this depth
/// (its own level counted).
struct Compound<C>(C, Depth);

const SOME_NIL: &str = "MessagePack writes Some(x) as x, so Some(None) or Some(()) would read back as None: use another shape for this value (an enum, or a field that is absent \
                        when unset), or a codec that tells them apart (Bincode, Postcard)";

/// Calls `$m!` with every serializer method of one primitive value.
macro_rules! primitives {
    ($m:ident) => {
        $m!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_i128(i128),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_u128(u128),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_bytes(&[u8]),
        );
    };
}

macro_rules! forward {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            #[inline]
            fn $method(self, v: $ty) -> Result<S::Ok, S::Error> {
                self.0.$method(v)
            }
        )*
    };
}

impl<S: Serializer> Serializer for CheckedSer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    primitives!(forward);

    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_struct(name)
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let depth = self.1.some()?;
        // The `Some`s the value may still hold: the probe looks no deeper.
        if written_as_nil(value, crate::MAX_DECODE_DEPTH - depth.somes) {
            return Err(ser::Error::custom(SOME_NIL));
        }
        self.0.serialize_some(&Checked(value, depth))
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_variant(self, name: &'static str, index: u32, variant: &'static str) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Checked(value, self.1))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // Written as a map of one entry: a container.
        self.0.serialize_newtype_variant(name, index, variant, &Checked(value, self.1.container()?))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_seq(len).map(|c| Compound(c, depth))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_tuple(len).map(|c| Compound(c, depth))
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_tuple_struct(name, len).map(|c| Compound(c, depth))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_tuple_variant(name, index, variant, len).map(|c| Compound(c, depth))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_map(len).map(|c| Compound(c, depth))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_struct(name, len).map(|c| Compound(c, depth))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let depth = self.1.container()?;
        self.0.serialize_struct_variant(name, index, variant, len).map(|c| Compound(c, depth))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The compound traits whose elements are one value each.
macro_rules! compound {
    ($($trait:ident::$method:ident),* $(,)?) => {
        $(
            impl<C: ser::$trait> ser::$trait for Compound<C> {
                type Ok = C::Ok;
                type Error = C::Error;

                fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
                    self.0.$method(&Checked(value, self.1))
                }

                fn end(self) -> Result<C::Ok, C::Error> {
                    self.0.end()
                }
            }
        )*
    };
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.0.serialize_key(&Checked(key, self.1))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_value(&Checked(value, self.1))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

/// The compound traits whose elements are named fields.
macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(
            impl<C: ser::$trait> ser::$trait for Compound<C> {
                type Ok = C::Ok;
                type Error = C::Error;

                fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), C::Error> {
                    self.0.serialize_field(key, &Checked(value, self.1))
                }

                fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                    self.0.skip_field(key)
                }

                fn end(self) -> Result<C::Ok, C::Error> {
                    self.0.end()
                }
            }
        )*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

/// Whether rmp-serde writes `value` as a lone `nil`: `None`, `()`, or a
/// newtype struct or `Some` around one. Nothing is written:
/// [`IsNil`] answers at the first call that tells. Through at most
/// `somes` `Some`s: a value with more is refused as too deep anyway, so
/// the probe answers `false` there rather than recurse on.
fn written_as_nil<T: Serialize + ?Sized>(value: &T, somes: u32) -> bool {
    value.serialize(IsNil(somes)).unwrap_or(false)
}

/// A serializer that only says whether a value is written as `nil`; a
/// value that is not gives `Ok(false)`, or `Err(NotNil)` where the
/// serializer's types need a compound. It looks through as many `Some`s
/// as it holds.
struct IsNil(u32);

#[derive(Debug)]
struct NotNil;

impl std::fmt::Display for NotNil {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not nil")
    }
}

impl std::error::Error for NotNil {}

impl ser::Error for NotNil {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        NotNil
    }
}

macro_rules! not_nil {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method(self, _: $ty) -> Result<bool, NotNil> {
                Ok(false)
            }
        )*
    };
}

impl Serializer for IsNil {
    type Ok = bool;
    type Error = NotNil;
    type SerializeSeq = Impossible<bool, NotNil>;
    type SerializeTuple = Impossible<bool, NotNil>;
    type SerializeTupleStruct = Impossible<bool, NotNil>;
    type SerializeTupleVariant = Impossible<bool, NotNil>;
    type SerializeMap = Impossible<bool, NotNil>;
    type SerializeStruct = Impossible<bool, NotNil>;
    type SerializeStructVariant = Impossible<bool, NotNil>;

    primitives!(not_nil);

    // A string is not nil: no need to format it (the default would).
    fn collect_str<T: std::fmt::Display + ?Sized>(self, _: &T) -> Result<bool, NotNil> {
        Ok(false)
    }

    fn serialize_none(self) -> Result<bool, NotNil> {
        Ok(true)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, NotNil> {
        match self.0.checked_sub(1) {
            Some(left) => value.serialize(IsNil(left)),
            None => Ok(false),
        }
    }

    fn serialize_unit(self) -> Result<bool, NotNil> {
        Ok(true)
    }

    // rmp-serde writes a unit struct as an empty array.
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, NotNil> {
        Ok(false)
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<bool, NotNil> {
        Ok(false)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<bool, NotNil> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, NotNil> {
        Ok(false)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotNil> {
        Err(NotNil)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotNil> {
        Err(NotNil)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotNil> {
        Err(NotNil)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotNil> {
        Err(NotNil)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotNil> {
        Err(NotNil)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotNil> {
        Err(NotNil)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotNil> {
        Err(NotNil)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
