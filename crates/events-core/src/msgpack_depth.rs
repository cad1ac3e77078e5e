//! [`Bounded`]: rmp-serde's deserializer seen through one that counts the
//! `Some`s enclosing the value being read. MessagePack writes `Some(x)` as
//! `x` alone, so rmp-serde reads a `Some` without taking a byte: a
//! recursive type whose cycle runs through options and newtypes only
//! (`struct Chain(Option<Box<Chain>>)`) recursed on the same marker, one
//! byte long, until the stack overflowed and aborted the process. Neither
//! `value_len` (markers) nor rmp-serde's own depth (arrays and maps) sees
//! such levels. [`MsgPack`](crate::MsgPack) decodes through this, and its
//! encoder (`msgpack_check.rs`) refuses the same depth, so nothing it
//! writes is refused here.
//!
//! Invariant: every call reaches rmp-serde unchanged, in the same order,
//! except three refusals of what the encoder never writes: a `Some` nested
//! inside [`MAX_DECODE_DEPTH`] others, elements a sequence's visitor left
//! unread (a `bin` read as an array), and a negative integer read as a
//! `u128`.
//!
//! Not reached: a value serde first buffers and then replays through its
//! own deserializers (an internally, adjacently or untagged enum, a
//! `#[serde(flatten)]` field). Its `Some`s never pass through here, so a
//! type recursing through options alone *inside* such an enum still
//! overflows the stack on a hostile payload. Bincode has no such case: it
//! is not self-describing, so serde cannot buffer for it.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use crate::MAX_DECODE_DEPTH;
use crate::codec::on_enough_stack;

/// What a `Some` past the limit is refused with.
pub(crate) const TOO_DEEP: &str = "MessagePack options (Some) nested deeper than 256 levels (MAX_DECODE_DEPTH)";
const _: () = assert!(MAX_DECODE_DEPTH == 256, "TOO_DEEP names the limit");

/// A deserializer whose every value, at any depth, is read through
/// [`Bounded`]; `somes` counts the `Some`s around the current one.
pub(crate) struct Bounded<'a, D> {
    pub(crate) de: D,
    pub(crate) somes: &'a Cell<u32>,
}

/// A visitor that hands every nested deserializer on wrapped.
struct Wrap<'a, V> {
    visitor: V,
    somes: &'a Cell<u32>,
}

/// A seed whose deserializer is wrapped.
struct Seed<'a, S> {
    seed: S,
    somes: &'a Cell<u32>,
}

/// A sequence, map, enum or variant access whose elements are wrapped.
struct Access<'a, A> {
    access: A,
    somes: &'a Cell<u32>,
}

impl<'a, V> Wrap<'a, V> {
    #[inline]
    fn new(visitor: V, somes: &'a Cell<u32>) -> Self {
        Wrap { visitor, somes }
    }
}

/// Forwards `deserialize_*` methods with no argument but the visitor.
macro_rules! forward_de {
    ($($method:ident),* $(,)?) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.de.$method(Wrap::new(visitor, self.somes))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Bounded<'_, D> {
    type Error = D::Error;

    forward_de!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    /// rmp-serde reads any integer marker for a `u128` and casts it, so a
    /// negative integer (a field once `i64`) read back as a huge `u128`
    /// (`-1` as `u128::MAX`): read here as the encoder writes a `u128`,
    /// 16 big-endian bytes, or as a non-negative integer, and a negative
    /// one is refused.
    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_any(Unsigned128(visitor))
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_unit_struct(name, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_newtype_struct(name, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_tuple(len, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_tuple_struct(name, len, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_struct(name, fields, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_enum(name, variants, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// Forwards `visit_*` methods of one value.
macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            #[inline]
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let depth = self.somes.get();
        if depth >= MAX_DECODE_DEPTH {
            return Err(de::Error::custom(TOO_DEEP));
        }
        self.somes.set(depth + 1);
        let value = on_enough_stack(|| self.visitor.visit_some(Bounded { de, somes: self.somes }));
        self.somes.set(depth);
        value
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        on_enough_stack(|| self.visitor.visit_newtype_struct(Bounded { de, somes: self.somes }))
    }

    /// rmp-serde also hands a `bin` to a sequence's visitor, one element
    /// per byte, and never checks that the visitor took them all: a
    /// `[u8; 4]` read from 6 bytes kept the first 4. Elements left over
    /// are refused, as rmp-serde refuses them after an array.
    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        let mut access = Access { access, somes: self.somes };
        // The leftovers' drain too: it reads whole values.
        on_enough_stack(|| {
            let value = self.visitor.visit_seq(&mut access)?;
            let mut left = 0usize;
            while access.access.next_element::<de::IgnoredAny>()?.is_some() {
                left += 1;
            }
            if left > 0 {
                return Err(de::Error::custom(format_args!("{left} elements left over after the value was read")));
            }
            Ok(value)
        })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        on_enough_stack(|| self.visitor.visit_map(Access { access, somes: self.somes }))
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        on_enough_stack(|| self.visitor.visit_enum(Access { access, somes: self.somes }))
    }
}

/// The visitor of [`Bounded::deserialize_u128`].
struct Unsigned128<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Unsigned128<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a u128: a non-negative integer, or 16 big-endian bytes")
    }

    #[inline]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
        self.0.visit_u128(v.into())
    }

    #[inline]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }

    #[inline]
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        match <[u8; 16]>::try_from(v) {
            Ok(bytes) => self.0.visit_u128(u128::from_be_bytes(bytes)),
            Err(_) => Err(E::invalid_length(v.len(), &self)),
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Bounded { de, somes: self.somes })
    }
}

impl<'a, S> Seed<'a, S> {
    #[inline]
    fn new(seed: S, somes: &'a Cell<u32>) -> Self {
        Seed { seed, somes }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.access.next_element_seed(Seed::new(seed, self.somes))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.access.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.access.next_key_seed(Seed::new(seed, self.somes))
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.access.next_value_seed(Seed::new(seed, self.somes))
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.access.size_hint()
    }
}

impl<'a, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<'a, A> {
    type Error = A::Error;
    type Variant = Access<'a, A::Variant>;

    #[inline]
    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let somes = self.somes;
        let (value, access) = self.access.variant_seed(Seed::new(seed, somes))?;
        Ok((value, Access { access, somes }))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.access.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.access.newtype_variant_seed(Seed::new(seed, self.somes))
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.access.tuple_variant(len, Wrap::new(visitor, self.somes))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.access.struct_variant(fields, Wrap::new(visitor, self.somes))
    }
}
