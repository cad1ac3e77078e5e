//! [`Generic`]: any event of a self-describing journal, as the JSON value it
//! holds, for `serve`, `dump` and `tail` without the application's types.
//!
//! Invariant: every MessagePack value has a JSON form, so no valid event is
//! reported undecodable for want of one: map keys that are not strings
//! (integers, booleans, arrays) become their JSON text, byte strings become
//! arrays of numbers; two keys with the same JSON text make the event
//! undecodable rather than one hiding the other.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Any event of a self-describing journal, as JSON.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct Generic(pub(crate) Value);

/// Any version: `serve` reads every record of a self-describing journal as
/// the JSON it holds, whatever the schema version its application's type
/// wrote it with (`Event::VERSION`). A record of a version below this one
/// goes through [`upcast`](events::Event::upcast), which decodes it the
/// same way; none is newer. (`Generic` is read, never written.)
impl events::Event for Generic {
    const VERSION: u32 = u32::MAX;

    fn upcast<C: events::Codec>(old: events::Old<'_, C>) -> Result<Self, events::CodecError> {
        old.decode()
    }
}

impl<'de> serde::Deserialize<'de> for Generic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue).map(Generic)
    }
}

/// Builds a JSON value from whatever the format holds.
struct AnyValue;

impl<'de> Visitor<'de> for AnyValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any self-describing value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // NaN and infinities have no JSON number: null, as serde_json writes them.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Array(v.iter().map(|&b| b.into()).collect()))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(AnyValue)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(AnyValue)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Generic(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some((Generic(key), Generic(value))) = map.next_entry()? {
            let key = match key {
                Value::String(s) => s,
                other => other.to_string(),
            };
            // An integer key 1 and a string key "1": one would hide the other.
            if out.insert(key, value).is_some() {
                return Err(de::Error::custom("two map keys with the same JSON text"));
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("an enum with no self-describing form"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use events::{Codec, MsgPack};
    use serde_json::json;

    use super::Generic;

    #[derive(serde::Serialize)]
    struct Odd {
        by_id: BTreeMap<u32, String>,
        #[serde(with = "serde_bytes_as_bytes")]
        raw: Vec<u8>,
        ratio: f64,
    }

    /// Serialises a `Vec<u8>` as a MessagePack byte string.
    mod serde_bytes_as_bytes {
        pub(super) fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    #[test]
    fn integer_keys_and_byte_strings_have_a_json_form() {
        let odd = Odd { by_id: [(7, "seven".to_owned())].into(), raw: vec![1, 2], ratio: 0.5 };
        let mut bytes = Vec::new();
        MsgPack.encode(&odd, &mut bytes).unwrap();
        let Generic(value) = MsgPack.decode(&bytes).unwrap();
        assert_eq!(value, json!({ "by_id": { "7": "seven" }, "raw": [1, 2], "ratio": 0.5 }));
    }
}
