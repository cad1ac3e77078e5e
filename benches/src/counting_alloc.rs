//! [`CountingAlloc`]: the system allocator with a count of the bytes live on
//! the heap, for the memory rows (`benches/memory.rs` installs it as its
//! `#[global_allocator]`; no library crate uses it).
//!
//! It counts the sizes asked for (`Layout::size`), not what the system
//! allocator really reserves (size classes, headers), and every thread's
//! allocations together: a figure is the difference of two readings taken
//! while nothing else in the process allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// [`System`] plus a running count of live heap bytes.
#[derive(Debug, Default)]
pub struct CountingAlloc {
    live: AtomicIsize,
}

impl CountingAlloc {
    /// A counter at zero.
    pub const fn new() -> Self {
        CountingAlloc { live: AtomicIsize::new(0) }
    }

    /// Bytes allocated and not yet freed, by every thread, since the process started.
    pub fn live(&self) -> isize {
        self.live.load(Ordering::SeqCst)
    }

    fn add(&self, bytes: usize) {
        self.live.fetch_add(bytes as isize, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.live.fetch_sub(bytes as isize, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged and only updates a counter besides, so `System`'s guarantees hold.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.add(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.add(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator (that is, `System`) handed out, with its layout.
        unsafe { System.dealloc(ptr, layout) };
        self.sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract for a block of `System`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // On failure the old block stays allocated and the count unchanged.
            self.sub(layout.size());
            self.add(new_size);
        }
        new
    }
}
