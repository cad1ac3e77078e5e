//! Small hostile payloads that cost no allocation but unbounded stack or
//! time: a recursive type nested 200,000 deep (a stack overflow aborts the
//! process, which no `catch_unwind` stops), and prefixes of zero-sized
//! elements nested two deep (each inner one up to the decode limit, so 16
//! million iterations per two bytes). Both are refused with a
//! `CodecError::Decode` naming the cause; values at the depth limit decode.

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
    assert!(message.contains("nested deeper than 128"), "{message}");

    // Each `Expr` is one level (an enum); the innermost `Num` is the last:
    // what fits under the limit decodes, one more level does not.
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
fn options_and_sequences_count_as_levels_too() {
    // `Some(Some(...))`: one tag byte per level.
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
    assert!(message.contains("elements that take no bytes"), "{message}");

    // One sequence of the most unit values one payload may hold decodes.
    let mut bytes = vec![252u8];
    bytes.extend(inner.to_le_bytes());
    assert_eq!(Bincode.decode::<Vec<()>>(&bytes).unwrap().len(), DEFAULT_DECODE_LIMIT);
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
    assert!(message.contains("nested deeper than 128"), "{message}");

    let fits = nested(MAX_DECODE_DEPTH as usize - 1);
    let value = on_a_worker_stack(move || MsgPack.decode::<Expr>(&fits).unwrap());
    assert!(matches!(value, Expr::Neg(_)));
    let too_deep = nested(MAX_DECODE_DEPTH as usize);
    assert!(matches!(MsgPack.decode::<Expr>(&too_deep), Err(CodecError::Decode { .. })));
}
