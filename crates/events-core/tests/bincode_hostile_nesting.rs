//! Small hostile payloads that cost no allocation but unbounded stack or
//! time: a recursive type nested 200,000 deep (a stack overflow aborts the
//! process, which no `catch_unwind` stops), and prefixes of zero-sized
//! elements nested two deep (each inner one up to the decode limit, so 16
//! million iterations per two bytes). Both are refused with a
//! `CodecError::Decode` naming the cause; values at the depth limit decode
//! (on a 2 MiB stack, in a debug build), and a value past it is refused
//! when encoded, so nothing unreadable is ever journaled: nor are
//! zero-sized elements past the decoder's total budget, and a failed encode
//! leaves nothing behind.

use events_core::{Bincode, Codec, CodecError, DEFAULT_DECODE_LIMIT, MAX_DECODE_DEPTH};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Expr {
    Num(i64),
    Neg(Box<Expr>),
}

/// `Neg` nested `depth` times around `Num(0)`: one byte per level.
fn nested(depth: usize) -> Vec<u8> {
    let mut bytes = vec![1u8; depth];
    bytes.extend([0, 0]);
    bytes
}

/// Runs `f` on a thread with a tokio worker's stack (2 MiB), where an
/// event is decoded in a server.
fn on_a_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(2 << 20).spawn(f).unwrap().join().unwrap()
}

fn decode_error<T: serde::de::DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> String {
    match Bincode.decode::<T>(bytes) {
        Err(CodecError::Decode { source, .. }) => source.to_string(),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn a_recursive_value_nested_past_the_limit_is_refused_without_overflowing_the_stack() {
    let message = on_a_worker_stack(|| decode_error::<Expr>(&nested(200_000)));
    assert!(message.contains("nested deeper than 256"), "{message}");

    // Each `Expr` is one level (an enum variant; the `Box` is not one); the
    // innermost `Num` is the last: what fits decodes, one more level does not.
    let fits = MAX_DECODE_DEPTH as usize - 1;
    let value = on_a_worker_stack(move || Bincode.decode::<Expr>(&nested(fits)).unwrap());
    let mut expr = &value;
    for _ in 0..fits {
        let Expr::Neg(inner) = expr else { panic!("{expr:?}") };
        expr = inner;
    }
    assert_eq!(expr, &Expr::Num(0));
    on_a_worker_stack(move || decode_error::<Expr>(&nested(fits + 1)));
}

#[test]
fn options_sequences_and_maps_count_as_levels_too() {
    // `Some(Some(...))` through a newtype: one tag byte per level.
    type Deep = Option<Box<Deep2>>;
    #[derive(Debug, Serialize, Deserialize)]
    struct Deep2(Deep);
    let mut bytes = vec![1u8; 100_000];
    bytes.push(0);
    let message = on_a_worker_stack(move || decode_error::<Deep>(&bytes));
    assert!(message.contains("nested deeper"), "{message}");

    // `[[[...]]]`: one length byte per level.
    #[derive(Debug, Serialize, Deserialize)]
    struct Tree(Vec<Tree>);
    let mut bytes = vec![1u8; 100_000];
    bytes.push(0);
    let message = on_a_worker_stack(move || decode_error::<Tree>(&bytes));
    assert!(message.contains("nested deeper"), "{message}");

    // `{0: {0: {...}}}`: a length byte and a key byte per level.
    #[derive(Debug, Serialize, Deserialize)]
    struct MapTree(std::collections::BTreeMap<u8, MapTree>);
    let mut bytes = [1u8, 0].repeat(100_000);
    bytes.push(0);
    let message = on_a_worker_stack(move || decode_error::<MapTree>(&bytes));
    assert!(message.contains("nested deeper"), "{message}");
}

#[test]
fn zero_sized_elements_nested_under_a_sequence_are_bounded_in_total() {
    // 64 inner sequences of `()` each claiming 2^24 elements: 4 bytes per
    // inner length, 2^30 iterations for 260 bytes without a total bound.
    let inner = DEFAULT_DECODE_LIMIT as u32;
    let mut bytes = vec![64u8];
    for _ in 0..64 {
        bytes.push(252);
        bytes.extend(inner.to_le_bytes());
    }
    let message = decode_error::<Vec<Vec<()>>>(&bytes);
    assert!(message.contains("more elements in all than the payload could hold"), "{message}");

    // One sequence of the most unit values one payload may hold decodes.
    let mut bytes = vec![252u8];
    bytes.extend(inner.to_le_bytes());
    assert_eq!(Bincode.decode::<Vec<()>>(&bytes).unwrap().len(), DEFAULT_DECODE_LIMIT);
}

/// Elements that take no byte of the payload but memory (a struct whose
/// fields are all skipped): a length prefix of 2^24 of them, six bytes,
/// had made 4 GiB of 256-byte values. A payload holds at most 65,536 of
/// them, and the encoder writes no more: up to that they round-trip.
#[test]
fn elements_that_take_no_byte_but_memory_are_bounded() {
    #[derive(Clone, Debug, PartialEq)]
    struct Pad([u8; 256]);
    impl Default for Pad {
        fn default() -> Self {
            Pad([7; 256])
        }
    }
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Cached {
        #[serde(skip)]
        pad: Pad,
    }
    let mut bytes = vec![252u8];
    bytes.extend((DEFAULT_DECODE_LIMIT as u32).to_le_bytes());
    let message = decode_error::<Vec<Cached>>(&bytes);
    assert!(message.contains("take no byte of the payload"), "{message}");

    let too_many = vec![Cached::default(); (1 << 16) + 1];
    match Bincode.encode(&too_many, &mut Vec::new()) {
        Err(CodecError::Encode { source, .. }) => {
            assert!(source.to_string().contains("write no byte"), "{source}");
        }
        other => panic!("expected an encode error: {other:?}"),
    }
    let fits = vec![Cached::default(); 1 << 16];
    let mut bytes = Vec::new();
    Bincode.encode(&fits, &mut bytes).unwrap();
    assert_eq!(Bincode.decode::<Vec<Cached>>(&bytes).unwrap(), fits);
}

/// What the encoder writes of elements that take no byte (values whose
/// fields are all skipped), a decode accepts: both count them the same
/// way for these (the encoder by the serde calls each value makes, the
/// decoder by size; a bare unit is not counted by the encoder), at most
/// 65,536 per value, whatever their size. The decoder had counted
/// their memory (16 MiB) and the encoder their number, so it wrote 20,000
/// such 1 KiB values, or 70,000 256-byte values with a unit field (not
/// counted at all), and no decode accepted either record. Boxed, they are
/// counted as well.
#[test]
fn what_the_encoder_writes_of_elements_that_take_no_byte_decodes() {
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Big {
        #[serde(skip)]
        pad: Pad1k,
    }
    #[derive(Clone, Debug, PartialEq)]
    struct Pad1k([u8; 1024]);
    impl Default for Pad1k {
        fn default() -> Self {
            Pad1k([1; 1024])
        }
    }
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Marked {
        marker: std::marker::PhantomData<u8>,
        #[serde(skip)]
        pad: [u64; 32],
    }
    let big = vec![Big { pad: Pad1k::default() }; 20_000];
    let mut bytes = Vec::new();
    Bincode.encode(&big, &mut bytes).unwrap();
    assert_eq!(Bincode.decode::<Vec<Big>>(&bytes).unwrap(), big);
    let marked = vec![Marked::default(); 1 << 16];
    let mut bytes = Vec::new();
    Bincode.encode(&marked, &mut bytes).unwrap();
    assert_eq!(Bincode.decode::<Vec<Marked>>(&bytes).unwrap(), marked);

    let too_many = vec![Marked::default(); 70_000];
    match Bincode.encode(&too_many, &mut Vec::new()) {
        Err(CodecError::Encode { source, .. }) => {
            assert!(source.to_string().contains("write no byte"), "{source}");
        }
        other => panic!("expected an encode error: {other:?}"),
    }
    // Boxed, each one's memory is behind a pointer (8 bytes): counted by
    // number, a prefix of 2^18 in five bytes stops at 65,537 (a budget of
    // their size would have let 2 million through, 2 GiB of them).
    let mut bytes = vec![252u8];
    bytes.extend((1u32 << 18).to_le_bytes());
    let message = decode_error::<Vec<Box<Big>>>(&bytes);
    assert!(message.contains("take no byte of the payload"), "{message}");

    // Units (`()`, `PhantomData`) are zero-sized: not counted.
    let units = (vec![(); 70_000], vec![std::marker::PhantomData::<u8>; 70_000]);
    let mut bytes = Vec::new();
    Bincode.encode(&units, &mut bytes).unwrap();
    type Units = (Vec<()>, Vec<std::marker::PhantomData<u8>>);
    assert_eq!(Bincode.decode::<Units>(&bytes).unwrap(), units);
}

/// MessagePack too: rmp-serde counts its depth for untyped arrays and maps
/// only, so an enum nested 100,000 deep overflowed the stack.
#[cfg(feature = "msgpack")]
#[test]
fn msgpack_is_held_to_the_same_depth() {
    use events_core::MsgPack;
    // A map of one entry `{"Neg": ...}` per level (rmp-serde's externally
    // tagged enum), around `{"Num": 0}`.
    let nested = |depth: usize| {
        let mut bytes = [0x81, 0xa3, b'N', b'e', b'g'].repeat(depth);
        bytes.extend([0x81, 0xa3, b'N', b'u', b'm', 0x00]);
        bytes
    };
    let deep = nested(100_000);
    let message = on_a_worker_stack(move || match MsgPack.decode::<Expr>(&deep) {
        Err(CodecError::Decode { source, .. }) => source.to_string(),
        other => panic!("expected a decode error, got {other:?}"),
    });
    assert!(message.contains("nested deeper than 256"), "{message}");

    let fits = nested(MAX_DECODE_DEPTH as usize - 1);
    let value = on_a_worker_stack(move || MsgPack.decode::<Expr>(&fits).unwrap());
    assert!(matches!(value, Expr::Neg(_)));
    let too_deep = nested(MAX_DECODE_DEPTH as usize);
    assert!(matches!(MsgPack.decode::<Expr>(&too_deep), Err(CodecError::Decode { .. })));
}

/// A JSON-like value: an enum of sequences, two levels per level of data.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Value {
    Num(i64),
    Arr(Vec<Value>),
}

fn deep_value(arrays: usize) -> Value {
    (0..arrays).fold(Value::Num(7), |inner, _| Value::Arr(vec![inner]))
}

fn deep_expr(negs: usize) -> Expr {
    (0..negs).fold(Expr::Num(0), |inner, _| Expr::Neg(Box::new(inner)))
}

#[test]
fn values_at_the_limit_round_trip_on_a_worker_stack_and_deeper_ones_are_never_encoded() {
    let limit = MAX_DECODE_DEPTH as usize;
    on_a_worker_stack(move || {
        // (limit / 2 - 1) arrays and the number: limit - 1 levels.
        let value = deep_value(limit / 2 - 1);
        let mut bytes = Vec::new();
        Bincode.encode(&value, &mut bytes).unwrap();
        assert_eq!(Bincode.decode::<Value>(&bytes).unwrap(), value);

        let fits = deep_expr(limit - 1);
        let mut bytes = Vec::new();
        Bincode.encode(&fits, &mut bytes).unwrap();
        assert_eq!(Bincode.decode::<Expr>(&bytes).unwrap(), fits);

        let mut bytes = vec![1, 2, 3];
        let refused = Bincode.encode(&deep_expr(limit), &mut bytes);
        match refused {
            Err(CodecError::Encode { source, .. }) => {
                assert!(source.to_string().contains("nested deeper than 256"), "{source}");
            }
            other => panic!("a value no decode accepts was encoded: {other:?}"),
        }
    });
}

/// MessagePack writes `Some(x)` as `x`, and rmp-serde reads a `Some`
/// without taking a byte: a type whose recursion runs through options and
/// newtypes only recursed on one marker, any one byte but `nil`, until the
/// stack overflowed. Each `Some` is now a level too, for the decoder and
/// the encoder alike: 256 nested decode and round-trip, 257 are refused.
#[cfg(feature = "msgpack")]
#[test]
fn msgpack_counts_options_that_take_no_byte() {
    use events_core::MsgPack;
    type Deep = Option<Box<Deep2>>;
    #[derive(Debug, Serialize, Deserialize)]
    struct Deep2(Deep);
    #[derive(Debug, Serialize, Deserialize)]
    struct Chain(Option<Box<Chain>>);
    for byte in [0x01u8, 0x90, 0xa0] {
        let message = on_a_worker_stack(move || match MsgPack.decode::<Deep>(&[byte]) {
            Err(CodecError::Decode { source, .. }) => source.to_string(),
            other => panic!("expected a decode error, got {other:?}"),
        });
        assert!(message.contains("nested deeper than 256"), "{byte:#x}: {message}");
        let message = on_a_worker_stack(move || match MsgPack.decode::<Chain>(&[byte]) {
            Err(CodecError::Decode { source, .. }) => source.to_string(),
            other => panic!("expected a decode error, got {other:?}"),
        });
        assert!(message.contains("nested deeper than 256"), "{byte:#x}: {message}");
    }

    let limit = MAX_DECODE_DEPTH;
    on_a_worker_stack(move || {
        let mut bytes = Vec::new();
        MsgPack.encode(&Somes(limit), &mut bytes).unwrap();
        assert_eq!(bytes, [7], "a Some is written as its value");
        SOMES.set(limit);
        assert_eq!(MsgPack.decode::<Somes>(&bytes).unwrap(), Somes(limit));
        let mut bytes = vec![9];
        match MsgPack.encode(&Somes(limit + 1), &mut bytes) {
            Err(CodecError::Encode { source, .. }) => {
                assert!(source.to_string().contains("nested deeper than 256"), "{source}");
            }
            other => panic!("a value no decode accepts was encoded: {other:?}"),
        }
        assert_eq!(bytes, [9], "nothing of it is left in the buffer");
    });
}

/// Both MessagePack bounds at once, on a worker's stack in a debug build:
/// 256 arrays, each inside a `Some` (`struct Tree(Option<Vec<Tree>>)`),
/// round-trip; one more level is refused, when decoded and when encoded.
#[cfg(feature = "msgpack")]
#[test]
fn msgpack_options_and_arrays_at_their_limits_together_fit_the_stack() {
    use events_core::MsgPack;
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Tree(Option<Vec<Tree>>);
    let nest = |levels: usize| (0..levels).fold(Tree(None), |inner, _| Tree(Some(vec![inner])));
    let levels = MAX_DECODE_DEPTH as usize;
    on_a_worker_stack(move || {
        let deep = nest(levels);
        let mut bytes = Vec::new();
        MsgPack.encode(&deep, &mut bytes).unwrap();
        assert_eq!(bytes.len(), levels + 1, "one array marker a level, then nil");
        assert_eq!(MsgPack.decode::<Tree>(&bytes).unwrap(), deep);
        let mut deeper = vec![0x91u8; levels + 1];
        deeper.push(0xc0);
        assert!(matches!(MsgPack.decode::<Tree>(&deeper), Err(CodecError::Decode { .. })));
        assert!(matches!(MsgPack.encode(&nest(levels + 1), &mut Vec::new()), Err(CodecError::Encode { .. })));
    });
}

/// `Some` nested `n` times around the number 7 (no Rust type nests a
/// number of options chosen at run time: decoded, it reads as many as
/// [`SOMES`] says).
#[derive(Debug, PartialEq)]
struct Somes(u32);

impl Serialize for Somes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            0 => s.serialize_u8(7),
            n => s.serialize_some(&Somes(n - 1)),
        }
    }
}

thread_local! {
    /// How many `Some`s the next [`Somes`] decoded reads around its 7.
    static SOMES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl<'de> Deserialize<'de> for Somes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Somes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Some(...)")
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Somes, D::Error> {
                Somes::deserialize(d).map(|inner| Somes(inner.0 + 1))
            }
        }
        match SOMES.get() {
            0 => match u8::deserialize(d)? {
                7 => Ok(Somes(0)),
                n => Err(serde::de::Error::custom(format!("{n}, not 7"))),
            },
            n => {
                SOMES.set(n - 1);
                d.deserialize_option(Visit)
            }
        }
    }
}

#[cfg(feature = "msgpack")]
#[test]
fn msgpack_never_encodes_what_it_would_not_decode() {
    use events_core::MsgPack;
    let limit = MAX_DECODE_DEPTH as usize;
    on_a_worker_stack(move || {
        // One map per `Expr`.
        let fits = deep_expr(limit - 1);
        let mut bytes = Vec::new();
        MsgPack.encode(&fits, &mut bytes).unwrap();
        assert_eq!(MsgPack.decode::<Expr>(&bytes).unwrap(), fits);
        let mut bytes = vec![9];
        assert!(matches!(MsgPack.encode(&deep_expr(limit), &mut bytes), Err(CodecError::Encode { .. })));
        assert_eq!(bytes, [9], "nothing of it is left in the buffer");
        // Arrays of arrays, which rmp-serde counts too (it refuses its
        // limit-th level): `limit` of them decode.
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Arrays(Vec<Arrays>);
        let arrays = (1..limit).fold(Arrays(Vec::new()), |inner, _| Arrays(vec![inner]));
        let mut bytes = Vec::new();
        MsgPack.encode(&arrays, &mut bytes).unwrap();
        assert_eq!(MsgPack.decode::<Arrays>(&bytes).unwrap(), arrays);
        // One more level, the innermost array empty: rmp-serde counts an
        // empty array as a level too, so this is refused when encoded. It
        // was encoded, and no decode read it.
        let one_more = Arrays(vec![arrays]);
        let mut bytes = vec![9];
        assert!(matches!(MsgPack.encode(&one_more, &mut bytes), Err(CodecError::Encode { .. })), "encoded");
        assert_eq!(bytes, [9], "nothing of it is left in the buffer");
    });
}

/// A value whose `Serialize` fails part-way leaves nothing in the buffer,
/// in every codec: a caller may encode several values into one buffer, and
/// the half-written fields of the failed one would be read as the next.
#[test]
fn a_failed_encode_leaves_the_buffer_as_it_was() {
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("this field cannot be written"))
        }
    }
    #[derive(Serialize)]
    struct Half {
        a: u32,
        b: Fails,
    }
    fn check<C: Codec>(codec: C) {
        let mut bytes = vec![9];
        assert!(matches!(codec.encode(&Half { a: 1, b: Fails }, &mut bytes), Err(CodecError::Encode { .. })));
        assert_eq!(bytes, [9], "{}: the first field was left behind", C::NAME);
    }
    check(Bincode);
    #[cfg(feature = "msgpack")]
    check(events_core::MsgPack);
    #[cfg(feature = "postcard")]
    check(events_core::Postcard);
}

/// Sequences of zero-sized elements whose lengths add up past what a
/// decode of their bytes accepts in all (the limit plus one per byte),
/// each under the limit alone: refused when encoded. They were encoded, and
/// every decode refused them.
#[test]
fn sequences_past_the_decoders_total_budget_are_never_encoded() {
    let half = DEFAULT_DECODE_LIMIT / 2 + 16;
    let mut bytes = Vec::new();
    match Bincode.encode(&(vec![(); half], vec![(); half]), &mut bytes) {
        Err(CodecError::Encode { source, .. }) => assert!(source.to_string().contains("in all"), "{source}"),
        other => panic!("encoded what no decode accepts: {other:?}"),
    }
    assert!(bytes.is_empty());
    let fits = (vec![(); DEFAULT_DECODE_LIMIT / 2], vec![(); DEFAULT_DECODE_LIMIT / 2]);
    Bincode.encode(&fits, &mut bytes).unwrap();
    assert_eq!(Bincode.decode::<(Vec<()>, Vec<()>)>(&bytes).unwrap(), fits);
}

/// A sequence longer than the decode limit is refused when encoded (every
/// decode refuses its length), so it is never journaled.
#[test]
fn a_sequence_past_the_decode_limit_is_never_encoded() {
    let units = vec![(); DEFAULT_DECODE_LIMIT + 1];
    let mut bytes = Vec::new();
    match Bincode.encode(&units, &mut bytes) {
        Err(CodecError::Encode { source, .. }) => assert!(source.to_string().contains("decode limit"), "{source}"),
        other => panic!("encoded a length no decode accepts: {other:?}"),
    }
    let mut bytes = Vec::new();
    Bincode.encode(&vec![(); DEFAULT_DECODE_LIMIT], &mut bytes).unwrap();
    assert_eq!(Bincode.decode::<Vec<()>>(&bytes).unwrap().len(), DEFAULT_DECODE_LIMIT);
}

/// A string or byte buffer longer than the decode limit is refused when
/// encoded, as a sequence is: `decode_prefix` is the inverse of `encode`,
/// and no decode accepts that length.
#[test]
fn a_string_past_the_decode_limit_is_never_encoded() {
    let long = "x".repeat(DEFAULT_DECODE_LIMIT + 1);
    let mut bytes = Vec::new();
    match Bincode.encode(&long, &mut bytes) {
        Err(CodecError::Encode { source, .. }) => assert!(source.to_string().contains("decode limit"), "{source}"),
        other => panic!("encoded a string no decode accepts: {other:?}"),
    }
    assert!(bytes.is_empty(), "a refused encode leaves the buffer as it was");
    let blob = serde_bytes_like(DEFAULT_DECODE_LIMIT + 1);
    assert!(matches!(Bincode.encode(&blob, &mut bytes), Err(CodecError::Encode { .. })));
    // A string of exactly the limit fits its length prefix's check but not,
    // with that prefix (5 bytes), the whole's: refused as too large.
    let at_limit = "x".repeat(DEFAULT_DECODE_LIMIT);
    let refused = Bincode.encode(&at_limit, &mut bytes);
    assert!(matches!(refused, Err(CodecError::TooLarge { len, .. }) if len == DEFAULT_DECODE_LIMIT + 5), "{refused:?}");
    // A whole of the limit round-trips.
    let fits = "x".repeat(DEFAULT_DECODE_LIMIT - 5);
    let mut bytes = Vec::new();
    Bincode.encode(&fits, &mut bytes).unwrap();
    assert_eq!(bytes.len(), DEFAULT_DECODE_LIMIT);
    assert_eq!(Bincode.decode::<String>(&bytes).unwrap().len(), fits.len());
}

/// A byte buffer serialized with `serialize_bytes` (as `serde_bytes` does).
struct Blob(Vec<u8>);

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

fn serde_bytes_like(len: usize) -> Blob {
    Blob(vec![7; len])
}

/// A recursive type whose leaf is large (2 KiB), nested as deep as the
/// limit allows (127 lists, two levels each, around a leaf), decoded on a
/// 2 MiB stack: the limit keeps it within the stack in a debug build too.
#[test]
fn a_large_recursive_value_at_the_depth_limit_fits_a_worker_stack() {
    #[derive(Debug, Deserialize)]
    #[allow(clippy::large_enum_variant, reason = "the large leaf is what the test is about")]
    enum Node {
        Leaf(#[allow(dead_code)] [[u64; 32]; 8]),
        List(#[allow(dead_code)] Vec<Node>),
    }
    let mut bytes = Vec::new();
    for _ in 0..127 {
        bytes.extend([1, 1]); // `List`, one element
    }
    bytes.push(0); // `Leaf`
    bytes.extend([0u8; 256]);
    let decoded = on_a_worker_stack(move || Bincode.decode::<Node>(&bytes).map(|_| ()));
    assert!(decoded.is_ok(), "{decoded:?}");
}

/// MessagePack's encoder bounds its recursion as it goes, as Bincode's
/// does: a value nested 100,000 levels (a linked list, arrays in arrays,
/// a chain of options, whose check for a `Some` written as `nil` looked
/// down the whole chain) is refused with `CodecError::Encode` on a
/// worker's stack. rmp-serde checks no depth while it writes, and the
/// check of what was written came after: the stack overflowed first,
/// which aborts the process.
#[cfg(feature = "msgpack")]
#[test]
fn msgpack_refuses_a_value_nested_far_past_the_limit_without_overflowing_the_stack() {
    use events_core::MsgPack;
    #[derive(Debug, Serialize, Deserialize)]
    struct Chain(Option<Box<Chain>>);
    const LEVELS: usize = 100_000;
    fn refused_on_a_worker_stack<T: Serialize + Sync>(value: &T) -> String {
        std::thread::scope(|scope| {
            let encode = move || {
                let mut bytes = vec![9];
                let refused = MsgPack.encode(value, &mut bytes);
                assert_eq!(bytes, [9], "nothing of it is left in the buffer");
                match refused {
                    Err(CodecError::Encode { source, .. }) => source.to_string(),
                    other => panic!("a value no decode accepts was encoded: {other:?}"),
                }
            };
            std::thread::Builder::new().stack_size(2 << 20).spawn_scoped(scope, encode).unwrap().join().unwrap()
        })
    }
    // Made and dropped on a large stack: their drops recurse as deep.
    let messages = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let chain = (0..LEVELS).fold(Chain(None), |inner, _| Chain(Some(Box::new(inner))));
            [
                refused_on_a_worker_stack(&deep_expr(LEVELS)),
                refused_on_a_worker_stack(&deep_value(LEVELS)),
                refused_on_a_worker_stack(&chain),
            ]
        })
        .unwrap()
        .join()
        .unwrap();
    for message in messages {
        assert!(message.contains("nested deeper than 256"), "{message}");
    }
}
