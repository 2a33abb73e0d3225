//! Reusable scratch buffers for kernels (GEMM packing, im2col panels...), so hot loops never
//! allocate: a buffer grows to the largest size asked for and is then reused.
//!
//! Per-thread slots are indexed by the pool thread index that `parallel::for_each` hands to each
//! task, so two threads never share a slot. Shared slots are grown by the calling thread before a
//! parallel region and written by tasks at disjoint offsets.

use crate::parallel::{in_parallel_region, num_threads, MAX_THREADS};
use std::cell::UnsafeCell;

#[derive(Clone, Copy)]
#[repr(usize)]
pub enum Slot {
    GemmA = 0,
    GemmB = 1,
    ConvPatch = 2,
    Misc = 3,
}
const SLOTS: usize = 4;

/// Where the buffers live. On wasm one table indexed by pool thread (instances share memory);
/// natively each OS thread gets its own set, because the test harness runs tests on many threads
/// at once and each of them is "thread 0" of its own pool calls.
#[cfg(target_arch = "wasm32")]
mod store {
    use super::*;
    pub struct Table(pub [[UnsafeCell<Vec<f32>>; MAX_THREADS + 1]; SLOTS]);
    // SAFETY: slot (s, t) is only touched by the thread whose pool index is t (see `per_thread`),
    // or, for the shared column, grown by the caller before tasks run and then written at
    // disjoint offsets.
    unsafe impl Sync for Table {}
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: UnsafeCell<Vec<f32>> = UnsafeCell::new(Vec::new());
    #[allow(clippy::declare_interior_mutable_const)]
    const ROW: [UnsafeCell<Vec<f32>>; MAX_THREADS + 1] = [EMPTY; MAX_THREADS + 1];
    static TABLE: Table = Table([ROW; SLOTS]);
    pub fn cell(slot: usize, column: usize) -> *mut Vec<f32> {
        TABLE.0[slot][column].get()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod store {
    use super::*;
    thread_local! {
        static LOCAL: [[UnsafeCell<Vec<f32>>; 2]; SLOTS] = Default::default();
    }
    pub fn cell(slot: usize, column: usize) -> *mut Vec<f32> {
        let c = if column == MAX_THREADS { 1 } else { 0 };
        LOCAL.with(|t| t[slot][c].get())
    }
}

/// A scratch buffer of at least `len` floats owned by pool thread `thread`.
///
/// # Safety
/// `thread` must be the pool index of the calling thread (as given by `for_each`), and the
/// caller must not hold two live borrows of the same (slot, thread).
#[allow(clippy::mut_from_ref)]
pub unsafe fn per_thread(slot: Slot, thread: usize, len: usize) -> &'static mut [f32] {
    let v = &mut *store::cell(slot as usize, thread);
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Grows `slot` to at least `len` floats for every pool thread, before a job whose tasks take it:
/// tasks go to whichever thread claims them first, so otherwise a thread could meet a size for
/// the first time many steps into a loop and grow wasm memory there. With it, memory stops growing
/// once each shape has run once, whatever the scheduling. Inside a task (nested kernels run
/// inline on one thread) it does nothing: `per_thread` grows the one slot used.
///
/// # Safety
/// No borrow of these slots may be live. Workers touch their slots only inside jobs, so outside a
/// parallel region the caller may grow theirs.
pub unsafe fn reserve(slot: Slot, len: usize) {
    if in_parallel_region() {
        return;
    }
    for thread in 0..num_threads().min(MAX_THREADS) {
        let v = &mut *store::cell(slot as usize, thread);
        if v.len() < len {
            v.resize(len, 0.0);
        }
    }
}

/// A shared buffer of at least `len` floats, returned as a raw pointer that tasks can write at
/// disjoint offsets. Only the caller of a parallel region may call this, before the region.
///
/// # Safety
/// Must not be called while another borrow of the same slot's shared buffer is live.
pub unsafe fn shared(slot: Slot, len: usize) -> *mut f32 {
    let v = &mut *store::cell(slot as usize, MAX_THREADS);
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v.as_mut_ptr()
}
