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
//! Invariant: everything else passes through to the wrapped serializer
//! unchanged, in the same calls (`is_human_readable` too), so what is
//! written is byte for byte what rmp-serde writes for the value.

use serde::ser::{self, Impossible, Serialize, Serializer};

/// A value serialized through [`CheckedSer`], inside this many `Some`s.
pub(crate) struct Checked<'a, T: ?Sized>(pub(crate) &'a T, pub(crate) u32);

impl<T: Serialize + ?Sized> Serialize for Checked<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(CheckedSer(serializer, self.1))
    }
}

/// Forwards every call to `S`, refusing `Some` of a value written as `nil`
/// and a `Some` inside [`MAX_DECODE_DEPTH`](crate::MAX_DECODE_DEPTH) others
/// (the decoder's bound, `msgpack_depth.rs`); the `Some`s around it.
struct CheckedSer<S>(S, u32);

/// A compound serializer whose elements are [`Checked`] too, inside this
/// many `Some`s.
struct Compound<C>(C, u32);

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
        if written_as_nil(value) {
            return Err(ser::Error::custom(SOME_NIL));
        }
        if self.1 >= crate::MAX_DECODE_DEPTH {
            return Err(ser::Error::custom(crate::msgpack_depth::TOO_DEEP));
        }
        self.0.serialize_some(&Checked(value, self.1 + 1))
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
        self.0.serialize_newtype_variant(name, index, variant, &Checked(value, self.1))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(|c| Compound(c, self.1))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(|c| Compound(c, self.1))
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(|c| Compound(c, self.1))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0.serialize_tuple_variant(name, index, variant, len).map(|c| Compound(c, self.1))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(|c| Compound(c, self.1))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(|c| Compound(c, self.1))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0.serialize_struct_variant(name, index, variant, len).map(|c| Compound(c, self.1))
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
/// [`IsNil`] answers at the first call that tells.
fn written_as_nil<T: Serialize + ?Sized>(value: &T) -> bool {
    value.serialize(IsNil).unwrap_or(false)
}

/// A serializer that only says whether a value is written as `nil`; a
/// value that is not gives `Ok(false)`, or `Err(NotNil)` where the
/// serializer's types need a compound.
struct IsNil;

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
        value.serialize(IsNil)
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
        value.serialize(IsNil)
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
