//! The wasm build's allocator: the standard one, plus a record of the size of the last request
//! it could not serve. Rust aborts (a wasm trap) when an allocation fails; the package's JS then
//! calls `allocFailure()` to tell "out of memory, and how much was asked" from a real bug
//! (`OUT_OF_MEMORY` with the sizes instead of `INTERNAL`; pkg-template/wasm.js).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use wasm_bindgen::prelude::*;

/// Bytes of the last request that failed; 0 when none since the last read.
static FAILED: AtomicUsize = AtomicUsize::new(0);

struct Recording;

// Safety: every call is forwarded to `System` unchanged; only a failure is recorded.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            FAILED.store(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            FAILED.store(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            FAILED.store(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// The size in bytes of the last allocation that failed, then 0 until another fails.
#[wasm_bindgen(js_name = allocFailure)]
pub fn alloc_failure() -> f64 {
    FAILED.swap(0, Ordering::Relaxed) as f64
}
