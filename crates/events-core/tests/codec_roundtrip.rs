//! Property tests for the codec seam: every `Envelope<E>` round-trips through
//! each codec for arbitrary field values, and arbitrary bytes decode to an
//! error or a value, never a panic or an allocation past the decode limit.

use events_core::{Bincode, Codec, CodecError, Envelope, Event, Seq, StreamId, Timestamp};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A test event with every common variant shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum TestEvent {
    Unit,
    Newtype(u64),
    Tuple(i32, String, bool),
    Struct { name: String, bytes: Vec<u8>, score: Option<f64>, tags: BTreeMap<String, i64> },
    Nested(Box<Option<TestEvent>>),
}

impl Event for TestEvent {}

fn leaf() -> impl Strategy<Value = TestEvent> {
    prop_oneof![
        Just(TestEvent::Unit),
        any::<u64>().prop_map(TestEvent::Newtype),
        (any::<i32>(), ".*", any::<bool>()).prop_map(|(a, b, c)| TestEvent::Tuple(a, b, c)),
        (
            ".*",
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of(any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan())),
            proptest::collection::btree_map(".{0,8}", any::<i64>(), 0..4),
        )
            .prop_map(|(name, bytes, score, tags)| TestEvent::Struct { name, bytes, score, tags }),
    ]
}

fn event() -> impl Strategy<Value = TestEvent> {
    leaf().prop_recursive(3, 8, 1, |inner| proptest::option::of(inner).prop_map(|o| TestEvent::Nested(Box::new(o))))
}

fn envelope() -> impl Strategy<Value = Envelope<TestEvent>> {
    (any::<u64>(), any::<u64>(), proptest::option::of(".{0,16}"), event()).prop_map(|(seq, ts, stream, event)| {
        Envelope { seq: Seq(seq), ts: Timestamp(ts), stream: stream.map(StreamId::from), event, id: None }
    })
}

fn round_trip<C: Codec>(codec: &C, env: &Envelope<TestEvent>) {
    let mut buf = Vec::new();
    codec.encode(env, &mut buf).expect("encode");
    let back: Envelope<TestEvent> = codec.decode(&buf).expect("decode");
    assert_eq!(&back, env);
}

fn decode_garbage<C: Codec>(codec: &C, bytes: &[u8]) {
    // Either outcome is fine; what matters is no panic and no huge allocation
    // (a multi-GiB allocation would abort the test process).
    let _ = codec.decode::<Envelope<TestEvent>>(bytes);
    let _ = codec.decode::<Vec<String>>(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn envelope_round_trips_bincode(env in envelope()) {
        round_trip(&Bincode, &env);
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn envelope_round_trips_postcard(env in envelope()) {
        round_trip(&events_core::Postcard, &env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_garbage(&Bincode, &bytes);
        #[cfg(feature = "postcard")]
        decode_garbage(&events_core::Postcard, &bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(env in envelope(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut buf = Vec::new();
        Bincode.encode(&env, &mut buf).unwrap();
        let i = pos.index(buf.len());
        buf[i] = byte;
        decode_garbage(&Bincode, &buf);
    }
}

#[test]
fn codec_ids_are_stable() {
    assert_eq!(Bincode::ID, 1);
    #[cfg(feature = "postcard")]
    assert_eq!(events_core::Postcard::ID, 2);
}

/// A field serde leaves out when it is `None`: bincode has no field names,
/// so the bytes of `value` and `tags` would shift into `unit`'s place.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<u8>,
    value: u32,
    tags: Vec<u8>,
}

/// The same in a struct variant.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Measured {
    Reading {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
        value: u32,
    },
}

#[test]
fn a_skipped_field_is_refused_by_bincode_rather_than_read_back_as_another_value() {
    // Written without the refusal, this was [0, 2, 1, 9]: it decoded,
    // every byte used, as `Reading { unit: None, value: 2, tags: [9] }`.
    let skipped = Reading { unit: None, value: 0, tags: vec![1, 9] };
    let mut buf = vec![7];
    let err = Bincode.encode(&skipped, &mut buf).unwrap_err();
    assert!(err.to_string().contains("bincode"), "{err}");
    let source = std::error::Error::source(&err).expect("the encoder's reason").to_string();
    assert!(source.contains("`unit`") && source.contains("skip_serializing_if"), "{source}");
    assert_eq!(buf, [7], "a refused value leaves nothing behind");
    let err = Bincode.encode(&Measured::Reading { notes: Vec::new(), value: 3 }, &mut buf).unwrap_err();
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("`notes`"), "{err}");

    // The field present: written and read back as itself.
    let kept = Reading { unit: Some(4), value: 0, tags: vec![1, 9] };
    buf.clear();
    Bincode.encode(&kept, &mut buf).unwrap();
    assert_eq!(Bincode.decode::<Reading>(&buf).unwrap(), kept);
}

/// Fields serde writes and reads differently, of which it tells the encoder
/// nothing: a tuple field skipped when written (`skip_serializing_if`), a
/// named field only written (`skip_deserializing`) or only read
/// (`skip_serializing`). Each decoded as another value with every byte
/// used, and passed the variant check; bincode's `check_variants` (which
/// the façade runs with its read-back check) now names each. The same
/// types with the field in place on both sides pass.
#[test]
fn fields_written_and_read_differently_are_named_by_bincodes_check() {
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Tuple(#[serde(skip_serializing_if = "Option::is_none")] Option<u8>, u8, String);
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct OnlyRead {
        #[serde(skip_serializing)]
        a: u8,
        s: String,
    }
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct OnlyWritten {
        #[serde(skip_deserializing)]
        a: u8,
        s: String,
    }
    let reason = |err: CodecError| std::error::Error::source(&err).expect("the reason").to_string();
    let tuple = Tuple(None, 1, "a\u{1}b".into());
    let mut buf = Vec::new();
    Bincode.encode(&tuple, &mut buf).unwrap();
    assert_eq!(Bincode.decode::<Tuple>(&buf).unwrap(), Tuple(Some(3), 97, "b".into()), "what the check is for");
    let source = reason(Bincode.check_variants(&tuple).unwrap_err());
    assert!(source.contains("`Tuple` is written with 2 fields and reads back with 3"), "{source}");
    Bincode.check_variants(&Tuple(Some(1), 1, "a\u{1}b".into())).unwrap();

    let only_read = OnlyRead { a: 0, s: "\u{1}x".into() };
    buf.clear();
    Bincode.encode(&only_read, &mut buf).unwrap();
    assert_eq!(Bincode.decode::<OnlyRead>(&buf).unwrap(), OnlyRead { a: 2, s: "x".into() });
    let source = reason(Bincode.check_variants(&only_read).unwrap_err());
    assert!(source.contains("written in 3 bytes") && source.contains("written in 2"), "{source}");

    let only_written = OnlyWritten { a: 3, s: "ab".into() };
    buf.clear();
    Bincode.encode(&only_written, &mut buf).unwrap();
    assert_eq!(Bincode.decode::<OnlyWritten>(&buf).unwrap(), OnlyWritten { a: 0, s: "\u{2}ab".into() });
    let source = reason(Bincode.check_variants(&only_written).unwrap_err());
    assert!(source.contains("written in 4 bytes") && source.contains("written in 5"), "{source}");

    // A `Deserialize` that changes the value (here, trims it): readers of
    // the journal would get another value than live subscribers.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    struct Trimmed(String);
    impl<'de> Deserialize<'de> for Trimmed {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Trimmed(String::deserialize(d)?.trim().to_owned()))
        }
    }
    let source = reason(Bincode.check_variants(&Trimmed(" a ".into())).unwrap_err());
    assert!(source.contains("written in 4 bytes") && source.contains("Deserialize changes the value"), "{source}");
    Bincode.check_variants(&Trimmed("a".into())).unwrap();
}

/// A variant after a skipped one: bincode writes it by its position among
/// all of the enum's variants, serde reads that position among those not
/// skipped, so `C(5)` read back as `D(5)`, with no error. Bincode's
/// `check_variants` (which the façade runs with its read-back check) names
/// it; variants before the skipped one, and enums with no skipped variant,
/// pass.
#[test]
fn a_variant_after_a_skipped_one_is_named_by_bincodes_variant_check() {
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Shifted {
        A(u32),
        #[serde(skip)]
        Local(u32),
        C(u32),
        D(u32),
    }
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Half {
        A,
        #[serde(skip_deserializing)]
        Written(u8),
        C,
    }
    let mut buf = Vec::new();
    Bincode.encode(&Shifted::C(5), &mut buf).unwrap();
    assert_eq!(Bincode.decode::<Shifted>(&buf).unwrap(), Shifted::D(5), "what the check is for");
    let err = Bincode.check_variants(&Shifted::C(5)).unwrap_err();
    let source = std::error::Error::source(&err).expect("the reason").to_string();
    assert!(source.contains("variant `C`") && source.contains("with `D` in its place"), "{source}");
    // Nested in another value too (here, in a `Vec` of an `Option`).
    let err = Bincode.check_variants(&vec![Some(Shifted::A(1)), Some(Shifted::C(2))]).unwrap_err();
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("variant `C`"), "{err}");
    let source =
        std::error::Error::source(&Bincode.check_variants(&Half::Written(3)).unwrap_err()).unwrap().to_string();
    assert!(source.contains("variant `Written`") && source.contains("with `C` in its place"), "{source}");
    Bincode.check_variants(&Shifted::A(5)).unwrap();
    assert!(Bincode.encode(&Shifted::Local(5), &mut Vec::new()).is_err(), "serde refuses a skipped variant");
    Bincode.check_variants(&Half::A).unwrap();
    Bincode.check_variants(&TestEvent::Nested(Box::new(Some(TestEvent::Tuple(1, "x".into(), true))))).unwrap();

    // A shifted variant that reads back as one of another shape (here, one
    // holding an enum: two variants read back for the one written).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        K0,
        K1,
        K2,
        K3,
    }
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Reshaped {
        Started,
        #[serde(skip)]
        Local(u8),
        Done {
            code: u32,
        },
        Failed {
            kind: Kind,
        },
    }
    let err = Bincode.check_variants(&Reshaped::Done { code: 3 }).unwrap_err();
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("variant `Done`"), "{err}");
    assert!(Bincode.encode(&Reshaped::Local(1), &mut Vec::new()).is_err());
    // The last variant's position reads as no variant at all: a decode
    // error, which the façade's read-back check reports (this one has
    // nothing to add).
    let mut bytes = Vec::new();
    Bincode.encode(&Reshaped::Failed { kind: Kind::K2 }, &mut bytes).unwrap();
    assert!(Bincode.decode::<Reshaped>(&bytes).is_err());
    Bincode.check_variants(&Reshaped::Failed { kind: Kind::K2 }).unwrap();
    Bincode.check_variants(&Reshaped::Started).unwrap();
    let _ = (Kind::K0, Kind::K1, Kind::K3);

    // Names serde reads and never writes, or writes and never reads, are no
    // shift: an alias, a rename for serializing only, `rename_all`, `other`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all(serialize = "snake_case"))]
    enum Renamed {
        #[serde(alias = "Begun")]
        Started,
        #[serde(rename(serialize = "finished"))]
        Done(u32),
        #[serde(other)]
        Unknown,
    }
    for value in [Renamed::Started, Renamed::Done(4), Renamed::Unknown] {
        Bincode.check_variants(&value).unwrap();
        let mut bytes = Vec::new();
        Bincode.encode(&value, &mut bytes).unwrap();
        assert_eq!(Bincode.decode::<Renamed>(&bytes).unwrap(), value);
    }
    // Hash map order differs between a value and the one read back.
    let map: std::collections::HashMap<u32, TestEvent> = (0..64).map(|n| (n, TestEvent::Newtype(n.into()))).collect();
    Bincode.check_variants(&map).unwrap();
}
