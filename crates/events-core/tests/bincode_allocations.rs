//! A length prefix claiming more than the input holds makes `Bincode`
//! allocate nothing for it: counted by a global allocator that tallies the
//! bytes each thread asks for.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use events_core::{Bincode, Codec, CodecError};
use support::Bytes;

struct Counting;

thread_local! {
    static ASKED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; the tally is a
// const-initialised thread-local `Cell`, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ASKED.with(|asked| asked.set(asked.get() + layout.size()));
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ASKED.with(|asked| asked.set(asked.get() + layout.size()));
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ASKED.with(|asked| asked.set(asked.get() + new_size));
        // SAFETY: the caller's pointer and layout, as `GlobalAlloc::realloc` requires.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's pointer and layout, as `GlobalAlloc::dealloc` requires.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes this thread asked for while decoding `bytes` as `T`, which must fail.
fn asked_while_refusing<T: serde::de::DeserializeOwned + std::fmt::Debug>(bytes: &[u8]) -> usize {
    let before = ASKED.with(Cell::get);
    let result = Bincode.decode::<T>(bytes);
    let asked = ASKED.with(Cell::get) - before;
    assert!(matches!(result, Err(CodecError::Decode { .. })), "{result:?}");
    drop(result);
    asked
}

/// The error itself is boxed: a few dozen bytes. Anything near the claimed
/// lengths (1 MiB and up) would be the decoder trusting the prefix.
const ERROR_ONLY: usize = 1024;

#[test]
fn hostile_length_prefixes_allocate_nothing_for_what_they_claim() {
    // Varint tag 253, then a u64 length of 2^40: over the limit.
    let mut huge = vec![253u8];
    huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
    // Tag 252, then 1 MiB: under the limit, but 5 bytes follow.
    let mut short = vec![252u8];
    short.extend_from_slice(&(1u32 << 20).to_le_bytes());
    short.extend_from_slice(b"short");
    for bytes in [&huge, &short] {
        assert!(asked_while_refusing::<String>(bytes) < ERROR_ONLY);
        assert!(asked_while_refusing::<Bytes>(bytes) < ERROR_ONLY);
        // A sequence is pre-sized by what the bytes left could hold, not by its prefix.
        assert!(asked_while_refusing::<Vec<u64>>(bytes) < ERROR_ONLY);
        assert!(asked_while_refusing::<std::collections::HashMap<u32, u32>>(bytes) < ERROR_ONLY);
    }
}
