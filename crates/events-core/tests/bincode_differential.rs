//! `Bincode` encodes and decodes with serde code of its own: held here to
//! the bincode crate (2.0, standard configuration). Encoding random values
//! of every serde shape must give the crate's bytes. Decoding those bytes,
//! those bytes damaged (a byte changed, cut short, a byte inserted) and
//! random bytes, both must accept the same inputs, produce the same values
//! (compared by their encoding, so NaNs compare) and use the same number
//! of bytes.

mod support;

use std::collections::BTreeMap;

use events_core::{Bincode, Codec, CodecError};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use support::Bytes;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Zoo {
    b: bool,
    i8_: i8,
    i16_: i16,
    i32_: i32,
    i64_: i64,
    i128_: i128,
    u8_: u8,
    u16_: u16,
    u32_: u32,
    u64_: u64,
    u128_: u128,
    f32_: f32,
    f64_: f64,
    c: char,
    s: String,
    bytes: Bytes,
    opt: Option<Option<u16>>,
    v: Vec<i32>,
    map: BTreeMap<String, u64>,
    tuple: (u8, String, i64),
    unit: (),
    unit_struct: UnitStruct,
    newtype: Newtype,
    tuple_struct: TupleStruct,
    variants: Vec<Variant>,
    boxed: Box<str>,
    nested: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UnitStruct;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Newtype(u32);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TupleStruct(i16, bool);

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Variant {
    Unit,
    Newtype(u64),
    Tuple(i8, String),
    Struct { x: u32, y: Option<char> },
}

fn variant() -> impl Strategy<Value = Variant> {
    prop_oneof![
        Just(Variant::Unit),
        any::<u64>().prop_map(Variant::Newtype),
        (any::<i8>(), ".{0,8}").prop_map(|(a, b)| Variant::Tuple(a, b)),
        (any::<u32>(), any::<Option<char>>()).prop_map(|(x, y)| Variant::Struct { x, y }),
    ]
}

/// Values of an integer type, most of them near where its varint changes
/// width (one byte up to 250, then 2, 4, 8 or 16 bytes; signed values are
/// zigzagged first, so their edges are at half those) or at its ends.
macro_rules! edges {
    ($t:ty) => {{
        let mut values: Vec<$t> = Vec::new();
        for edge in [250u128, 1 << 16, 1 << 32, 1 << 64, u128::MAX] {
            for v in edge.saturating_sub(3)..=edge.saturating_add(3) {
                let value = if <$t>::MIN == 0 {
                    <$t>::try_from(v).ok()
                } else {
                    // The value whose zigzag is `v`.
                    i128::try_from(v / 2)
                        .ok()
                        .and_then(|half| <$t>::try_from(if v % 2 == 0 { half } else { -half - 1 }).ok())
                };
                values.extend(value);
            }
        }
        prop_oneof![prop::sample::select(values), any::<$t>()]
    }};
}

prop_compose! {
    fn zoo()(
        ints in (any::<bool>(), any::<i8>(), edges!(i16), edges!(i32), edges!(i64), edges!(i128)),
        uints in (any::<u8>(), edges!(u16), edges!(u32), edges!(u64), edges!(u128)),
        floats in (any::<u32>().prop_map(f32::from_bits), any::<u64>().prop_map(f64::from_bits)),
        c in any::<char>(),
        s in ".{0,40}",
        bytes in prop::collection::vec(any::<u8>(), 0..40),
        opt in any::<Option<Option<u16>>>(),
        v in prop::collection::vec(any::<i32>(), 0..8),
        map in prop::collection::btree_map(".{0,6}", any::<u64>(), 0..4),
        tuple in (any::<u8>(), ".{0,6}", any::<i64>()),
        structs in (any::<u32>(), any::<i16>(), any::<bool>()),
        variants in prop::collection::vec(variant(), 0..4),
        boxed in ".{0,6}",
        nested in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..4), 0..3),
    ) -> Zoo {
        let (b, i8_, i16_, i32_, i64_, i128_) = ints;
        let (u8_, u16_, u32_, u64_, u128_) = uints;
        Zoo {
            b, i8_, i16_, i32_, i64_, i128_, u8_, u16_, u32_, u64_, u128_,
            f32_: floats.0, f64_: floats.1, c, s, bytes: Bytes(bytes), opt, v, map, tuple,
            unit: (), unit_struct: UnitStruct, newtype: Newtype(structs.0),
            tuple_struct: TupleStruct(structs.1, structs.2), variants,
            boxed: boxed.into_boxed_str(), nested,
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    Bincode.encode(value, &mut out).unwrap();
    out
}

/// The bincode crate's own encoding.
fn reference_encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

/// The bincode crate's own decode, with the configuration `Bincode` encodes with.
fn reference<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard().with_limit::<{ events_core::DEFAULT_DECODE_LIMIT }>();
    bincode::serde::decode_from_slice(bytes, config)
}

/// Both decoders agree on `bytes`: both fail, or both give a value with the
/// same encoding after using the same number of bytes. Returns whether they decoded.
fn agree<T: Serialize + DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let ours = Bincode.decode_prefix::<T>(bytes);
    match (ours, reference::<T>(bytes)) {
        (Ok((a, used_a)), Ok((b, used_b))) => {
            prop_assert_eq!(used_a, used_b, "bytes used");
            prop_assert_eq!(encode(&a), encode(&b), "values differ: {:?} / {:?}", a, b);
            Ok(true)
        }
        (Err(CodecError::Decode { .. }), Err(_)) => Ok(false),
        (ours, theirs) => Err(TestCaseError::fail(format!("ours {ours:?}, bincode {theirs:?}"))),
    }
}

/// A change to encoded bytes: replace the byte at `at` (modulo the length),
/// cut the bytes at `at`, or insert `byte` at `at`.
#[derive(Clone, Debug)]
enum Damage {
    Replace(usize, u8),
    Cut(usize),
    Insert(usize, u8),
}

/// A byte, often one that means something as a tag: an option's or bool's
/// 0, 1 or 2, a varint's 250 to 255.
fn tag_byte() -> impl Strategy<Value = u8> {
    prop_oneof![0u8..3, 250u8..=255, any::<u8>()]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), tag_byte()).prop_map(|(at, b)| Damage::Replace(at, b)),
        any::<usize>().prop_map(Damage::Cut),
        (any::<usize>(), tag_byte()).prop_map(|(at, b)| Damage::Insert(at, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match *damage {
        Damage::Replace(..) | Damage::Cut(_) if bytes.is_empty() => {}
        Damage::Replace(at, b) => {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        Damage::Cut(at) => bytes.truncate(at % bytes.len()),
        Damage::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoded_values_decode_as_bincode_decodes_them(zoo in zoo()) {
        let bytes = encode(&zoo);
        prop_assert_eq!(&bytes, &reference_encode(&zoo), "the bincode crate's bytes");
        prop_assert!(agree::<Zoo>(&bytes)?, "a value's own encoding decodes");
        let decoded: Zoo = Bincode.decode(&bytes).unwrap();
        prop_assert_eq!(encode(&decoded), bytes);
    }

    #[test]
    fn damaged_bytes_are_refused_or_read_as_bincode_reads_them(zoo in zoo(), hits in prop::collection::vec(damage(), 1..4)) {
        let bytes = hits.iter().fold(encode(&zoo), apply);
        agree::<Zoo>(&bytes)?;
    }

    #[test]
    fn damaged_variants_are_refused_or_read_as_bincode_reads_them(variants in prop::collection::vec(variant(), 1..6), hits in prop::collection::vec(damage(), 1..3)) {
        let bytes = hits.iter().fold(encode(&variants), apply);
        agree::<Vec<Variant>>(&bytes)?;
    }

    #[test]
    fn random_bytes_are_refused_or_read_as_bincode_reads_them(bytes in prop::collection::vec(tag_byte(), 0..64)) {
        agree::<Zoo>(&bytes)?;
        agree::<(Option<String>, Vec<Variant>)>(&bytes)?;
        agree::<(char, u16, i32, u128, i128)>(&bytes)?;
        // Each integer width from the first byte, where tag bytes are likeliest.
        agree::<i16>(&bytes)?;
        agree::<u16>(&bytes)?;
        agree::<i32>(&bytes)?;
        agree::<u32>(&bytes)?;
        agree::<i64>(&bytes)?;
        agree::<i128>(&bytes)?;
        agree::<u128>(&bytes)?;
        agree::<BTreeMap<u8, Bytes>>(&bytes)?;
    }
}

/// Every integer type, at every edge of its varint's widths and at its
/// ends, encodes to the bincode crate's bytes.
#[test]
fn every_integer_at_its_edges_encodes_as_bincode_does() {
    let mut edges: Vec<u128> = vec![0, u128::MAX];
    for edge in [250u128, 1 << 16, 1 << 32, 1 << 64] {
        edges.extend(edge - 2..=edge + 2);
    }
    macro_rules! check {
        ($($t:ty),*) => {$(
            for &e in &edges {
                let unsigned = <$t>::try_from(e).ok();
                // The values whose zigzag is near the edge, and their negations.
                let signed = [e / 2, e / 2 + 1].into_iter().filter_map(|h| i128::try_from(h).ok()).flat_map(|h| [h, -h]);
                let values = unsigned.into_iter().chain(signed.filter_map(|v| <$t>::try_from(v).ok()));
                for v in values.chain([<$t>::MIN, <$t>::MAX]) {
                    assert_eq!(encode(&v), reference_encode(&v), "{} {v}", stringify!($t));
                }
            }
        )*};
    }
    check!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
    for c in ['\0', 'a', '\u{7f}', '\u{80}', '\u{7ff}', '\u{800}', '\u{ffff}', '\u{10000}', char::MAX] {
        assert_eq!(encode(&c), reference_encode(&c), "{c:?}");
    }
}

/// Lengths and variant indices past a varint's one-byte form (the random
/// values above keep them small): strings, byte buffers, sequences and maps
/// at 250 to 252 and 65,535 to 65,536 elements, and every kind of variant
/// at indices 251, 65,536 and `u32::MAX`, encode to the bincode crate's
/// bytes.
#[test]
fn long_lengths_and_large_variant_indices_encode_as_bincode_does() {
    for n in [250usize, 251, 252, 65_535, 65_536] {
        let s = "é".repeat(n / 2) + &"x".repeat(n % 2);
        assert_eq!(encode(&s), reference_encode(&s), "string of {n} bytes");
        let bytes = Bytes(vec![7; n]);
        assert_eq!(encode(&bytes), reference_encode(&bytes), "{n} bytes");
        let seq: Vec<u16> = (0..n).map(|i| i as u16).collect();
        assert_eq!(encode(&seq), reference_encode(&seq), "{n} elements");
        let map: BTreeMap<u32, ()> = (0..n as u32).map(|k| (k, ())).collect();
        assert_eq!(encode(&map), reference_encode(&map), "{n} entries");
    }
    /// Serializes as the variant `index` of each kind.
    struct At(u32, u8);
    impl Serialize for At {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{SerializeStructVariant, SerializeTupleVariant};
            let At(index, kind) = *self;
            match kind {
                0 => s.serialize_unit_variant("E", index, "V"),
                1 => s.serialize_newtype_variant("E", index, "V", &300u64),
                2 => {
                    let mut t = s.serialize_tuple_variant("E", index, "V", 2)?;
                    t.serialize_field(&-3i32)?;
                    t.serialize_field("t")?;
                    t.end()
                }
                _ => {
                    let mut t = s.serialize_struct_variant("E", index, "V", 1)?;
                    t.serialize_field("x", &Some('ß'))?;
                    t.end()
                }
            }
        }
    }
    for index in [0, 250, 251, 65_535, 65_536, u32::MAX] {
        for kind in 0..4 {
            assert_eq!(encode(&At(index, kind)), reference_encode(&At(index, kind)), "variant {index}, kind {kind}");
        }
    }
}

/// A sequence that does not say its length up front cannot be encoded
/// (bincode writes the length first): a typed error, and nothing appended.
#[test]
fn a_sequence_without_a_length_is_refused_and_appends_nothing() {
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..10u8).filter(|v| v % 2 == 0))
        }
    }
    assert!(bincode::serde::encode_to_vec(&Unsized, bincode::config::standard()).is_err());
    let mut out = vec![9u8];
    let err = Bincode.encode(&(7u8, Unsized), &mut out).unwrap_err();
    assert!(matches!(err, CodecError::Encode { codec: "bincode", .. }));
    let source = std::error::Error::source(&err).expect("the encoder's error").to_string();
    assert!(source.contains("length"), "{source}");
    assert_eq!(out, [9], "nothing of the failed value is left");
}

/// A value whose `Serialize` fails part-way: its own message comes back
/// in a `CodecError::Encode`, and nothing of the value is left appended.
#[test]
fn a_value_that_fails_to_serialize_keeps_its_message_and_appends_nothing() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused by the value"))
        }
    }
    let mut out = vec![9u8];
    let err = Bincode.encode(&("a string first", 300u64, Refuses), &mut out).unwrap_err();
    assert!(matches!(err, CodecError::Encode { codec: "bincode", .. }));
    let source = std::error::Error::source(&err).expect("the encoder's error").to_string();
    assert_eq!(source, "refused by the value");
    assert_eq!(out, [9], "nothing of the failed value is left");
}

#[test]
fn every_varint_width_at_its_edges() {
    for v in [0u64, 250, 251, 255, 256, 65_535, 65_536, u64::from(u32::MAX), u64::from(u32::MAX) + 1, u64::MAX] {
        agree::<u64>(&encode(&v)).unwrap();
        agree::<u16>(&encode(&v)).unwrap(); // a wider tag than u16 takes is refused by both
        agree::<u32>(&encode(&v)).unwrap();
        agree::<u128>(&encode(&v)).unwrap();
    }
    for v in [0i64, -1, 1, -126, 125, -127, i64::from(i32::MIN), i64::MIN, i64::MAX] {
        agree::<i64>(&encode(&v)).unwrap();
        agree::<i16>(&encode(&v)).unwrap();
        agree::<i32>(&encode(&v)).unwrap();
        agree::<i128>(&encode(&v)).unwrap();
    }
    for v in [u128::from(u64::MAX), u128::from(u64::MAX) + 1, u128::MAX] {
        agree::<u128>(&encode(&v)).unwrap();
        agree::<u64>(&encode(&v)).unwrap();
    }
    for v in [i128::from(i64::MIN) - 1, i128::from(i64::MAX) + 1, i128::MIN, i128::MAX] {
        agree::<i128>(&encode(&v)).unwrap();
        agree::<i64>(&encode(&v)).unwrap();
    }
    // The reserved tag 255, and the u128 tag where narrower integers are read.
    for bytes in [vec![255u8; 17], [254].into_iter().chain([1; 16]).collect()] {
        agree::<u64>(&bytes).unwrap();
        agree::<u128>(&bytes).unwrap();
        agree::<i128>(&bytes).unwrap();
    }
}

#[test]
fn invalid_tags_are_named() {
    let message = |bytes: &[u8]| match Bincode.decode::<(Option<u8>, bool)>(bytes) {
        Err(CodecError::Decode { codec: "bincode", source, .. }) => source.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(message(&[2, 0]).contains("Option tag 2"), "{}", message(&[2, 0]));
    assert!(message(&[0, 7]).contains("bool byte 7"), "{}", message(&[0, 7]));
    assert!(message(&[1]).contains("unexpected end"), "{}", message(&[1]));
}

#[test]
fn a_string_longer_than_the_bytes_left_is_refused() {
    // varint tag 253, then a u64 length of 2^40: over the limit.
    let mut bytes = vec![253u8];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(Bincode.decode::<String>(&bytes), Err(CodecError::Decode { .. })));
    // A length under the limit but past the input: the bytes are not there.
    let mut bytes = vec![252u8];
    bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
    bytes.extend_from_slice(b"short");
    assert!(matches!(Bincode.decode::<Vec<u8>>(&bytes), Err(CodecError::Decode { .. })));
    assert!(matches!(Bincode.decode::<String>(&bytes), Err(CodecError::Decode { .. })));
}

/// bincode's own limit counted 8 bytes for every `u64` decoded, so this
/// 2.2 MB payload (under the 16 MiB limit) was refused after it had been
/// journaled. The limit is now on bytes.
#[test]
fn a_payload_of_many_small_integers_under_the_limit_decodes() {
    let values = vec![7u64; 2_200_000];
    let bytes = encode(&values);
    assert!(bytes.len() < events_core::DEFAULT_DECODE_LIMIT);
    assert!(reference::<Vec<u64>>(&bytes).is_err(), "the bincode crate refuses it");
    assert_eq!(Bincode.decode::<Vec<u64>>(&bytes).unwrap(), values);
}
