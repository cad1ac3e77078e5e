//! MessagePack writes `Some(x)` as `x`: a `Some` whose value is written as
//! `nil` would read back as `None`. Such values are refused when encoded;
//! every other option round-trips, byte for byte as rmp-serde writes it.

#![cfg(feature = "msgpack")]

use events_core::{Codec, CodecError, MsgPack};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Marker;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Wrapper(Option<u8>);

/// A patch: `None` leaves the field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Patch {
    name: Option<Option<String>>,
    kind: Option<Kind>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Tagged(Option<Option<u8>>),
}

fn refused<T: Serialize + std::fmt::Debug>(value: T) {
    let mut out = vec![0xAA];
    match MsgPack.encode(&value, &mut out) {
        Err(CodecError::Encode { source, .. }) => {
            assert!(source.to_string().contains("read back as None"), "{value:?}: {source}");
        }
        other => panic!("{value:?} was encoded: {other:?}"),
    }
    assert_eq!(out, [0xAA], "a refused encode leaves the buffer as it was");
}

fn raw_round_trip<T: Serialize + DeserializeOwned>(value: T) -> T {
    rmp_serde::from_slice(&rmp_serde::to_vec_named(&value).unwrap()).unwrap()
}

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T) {
    let mut out = Vec::new();
    MsgPack.encode(&value, &mut out).unwrap();
    assert_eq!(out, rmp_serde::to_vec_named(&value).unwrap(), "{value:?} written as rmp-serde writes it");
    assert_eq!(MsgPack.decode::<T>(&out).unwrap(), value);
}

#[test]
fn some_of_a_value_written_as_nil_is_refused() {
    // What each would have read back as, written by rmp-serde alone: `None`.
    assert_eq!(raw_round_trip(Some(None::<u8>)), None);
    assert_eq!(raw_round_trip(Some(())), None);
    assert_eq!(raw_round_trip(Some(Wrapper(None))), None);

    refused(Some(None::<u8>));
    refused(Some(()));
    refused(Some(Wrapper(None)));
    refused(Some(Some(None::<String>)));
    refused(Patch { name: Some(None), kind: None });
    refused(vec![Patch { name: None, kind: Some(Kind::Tagged(Some(None))) }]);
    refused(std::collections::BTreeMap::from([(1u8, Some(None::<u8>))]));
}

#[test]
fn every_other_option_round_trips() {
    round_trips(None::<Option<u8>>);
    round_trips(Some(Some(7u8)));
    round_trips(Some(Wrapper(Some(3))));
    round_trips(Some(Kind::Plain));
    round_trips(Some(Marker)); // a unit struct is an empty array, not nil
    round_trips(Some(Vec::<u8>::new()));
    round_trips(Some(String::new()));
    round_trips(Patch { name: Some(Some("x".into())), kind: Some(Kind::Tagged(Some(Some(1)))) });
    round_trips(Patch { name: None, kind: Some(Kind::Tagged(None)) });
    round_trips(vec![Some(1u64), None, Some(u64::MAX)]);
}
