//! Tensor storage: one typed buffer in linear memory, shared by every view of it.
//!
//! Buffers come from and return to a size-keyed pool, so a training loop that repeats the same
//! shapes stops allocating after its first step and wasm memory stays flat. Pool buffers are
//! handed out with stale contents: every kernel that takes one writes all of it.
//!
//! Every buffer the pool cannot supply is allocated fallibly, under a memory limit: past it, or
//! when the allocator refuses, the call fails with a MemoryError (see `panic::fail`) instead of
//! aborting the engine.

use crate::dtype::DType;
use crate::error::ErrorKind;
pub use crate::panic::{Ref, RefMut};
use crate::panic::RecoverCell;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

pub enum Buffer {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I8(Vec<i8>),
}

impl Buffer {
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::I32(_) => DType::I32,
            Buffer::I8(_) => DType::I8,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::I8(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> usize {
        self.len() * self.dtype().size()
    }
}

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_STORAGES: AtomicUsize = AtomicUsize::new(0);
static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Largest total the pool keeps; beyond it, freed buffers go back to the allocator.
static POOL_LIMIT: AtomicUsize = AtomicUsize::new(512 << 20);
/// Most bytes live tensor storage may hold (`set_memory_limit`). The default leaves 1 GiB of the
/// 4 GiB wasm32 address space for everything else, so small allocations still succeed after a
/// refused large one.
pub const DEFAULT_MEMORY_LIMIT: usize = 3 << 30;
static MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_MEMORY_LIMIT);

/// Free buffers of one (dtype, length), and how many buffers of that size the engine has had to
/// allocate fresh. The pool keeps no more than that many: buffers that did not come from the
/// pool's users (tensors made from JS data, `collect`ed results) would otherwise pile up in it,
/// since nothing ever asks for them again.
#[derive(Default)]
struct Bucket {
    free: Vec<Buffer>,
    demand: usize,
    /// `Pool::takes` when this size was last asked for.
    last_used: u64,
}

/// The buckets, and a clock counting requests. Sizes nobody asked for during a whole sweep period
/// leave the pool (buffers and bucket): a loop that repeats its shapes asks for each of them every
/// step and keeps them, while a stream of ever-new shapes (models of many sizes loaded one after
/// the other, varying sequence lengths) no longer fills the pool up to its byte cap.
#[derive(Default)]
struct Pool {
    buckets: HashMap<(DType, usize), Bucket>,
    takes: u64,
}

/// Requests between two sweeps: far more than one training step of any model we run makes.
const SWEEP_EVERY: u64 = 1 << 16;

thread_local! {
    static POOL: RecoverCell<Pool> = RecoverCell::new(Pool::default());
}

fn pool_take(dtype: DType, len: usize) -> Option<Buffer> {
    let (b, stale) = POOL.with(|p| {
        let mut p = p.borrow_mut();
        p.takes += 1;
        let now = p.takes;
        let bucket = p.buckets.entry((dtype, len)).or_default();
        bucket.last_used = now;
        let b = bucket.free.pop();
        if b.is_none() {
            bucket.demand += 1;
        }
        // Sweep: take out the sizes unused since the previous sweep (freed outside the borrow).
        let stale = if now % SWEEP_EVERY == 0 {
            let mut stale = Vec::new();
            p.buckets.retain(|_, bk| {
                let keep = now - bk.last_used < SWEEP_EVERY;
                if !keep {
                    stale.append(&mut bk.free);
                }
                keep
            });
            stale
        } else {
            Vec::new()
        };
        (b, stale)
    });
    if !stale.is_empty() {
        let freed: usize = stale.iter().map(Buffer::bytes).sum();
        CACHED_BYTES.fetch_sub(freed, Ordering::Relaxed);
        drop(stale);
    }
    let b = b?;
    CACHED_BYTES.fetch_sub(b.bytes(), Ordering::Relaxed);
    Some(b)
}

fn pool_put(b: Buffer) {
    let bytes = b.bytes();
    if bytes == 0 || CACHED_BYTES.load(Ordering::Relaxed) + bytes > POOL_LIMIT.load(Ordering::Relaxed) {
        return;
    }
    let key = (b.dtype(), b.len());
    let kept = POOL.with(|p| match p.borrow_mut().buckets.get_mut(&key) {
        Some(bucket) if bucket.free.len() < bucket.demand => {
            bucket.free.push(b);
            true
        }
        _ => false,
    });
    if kept {
        CACHED_BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Empties the buffer pool (its memory returns to the allocator; wasm memory itself never shrinks).
pub fn release_pool() {
    // Take the map out first: freeing runs outside the borrow.
    let old = POOL.with(|p| std::mem::take(&mut p.borrow_mut().buckets));
    CACHED_BYTES.store(0, Ordering::Relaxed);
    drop(old);
}

pub fn set_pool_limit(bytes: usize) {
    POOL_LIMIT.store(bytes, Ordering::Relaxed);
    if CACHED_BYTES.load(Ordering::Relaxed) > bytes {
        release_pool();
    }
}

/// Caps the bytes live tensor storage may hold; returns the previous cap. Allocations past it
/// fail with a MemoryError (tensors already alive are not affected).
pub fn set_memory_limit(bytes: usize) -> usize {
    MEMORY_LIMIT.swap(bytes, Ordering::SeqCst)
}

pub fn memory_limit() -> usize {
    MEMORY_LIMIT.load(Ordering::SeqCst)
}

/// Per-call flags shared with the SDK, which reads and writes them in place (no boundary call):
/// `[MemoryError pending, the call was lent input tensors]`. See `over_limit`.
pub struct CallFlags(pub [AtomicU32; 2]);
pub static CALL_FLAGS: CallFlags = CallFlags([AtomicU32::new(0), AtomicU32::new(0)]);
const PENDING: usize = 0;
const LENT: usize = 1;

/// Marks the current call as working on existing tensors (set by the handle table).
pub fn note_inputs_lent() {
    CALL_FLAGS.0[LENT].store(1, Ordering::Relaxed);
}

thread_local! {
    static PENDING_MESSAGE: RecoverCell<Option<String>> = const { RecoverCell::new(None) };
}

/// The MemoryError the current call ran into, if any (cleared). The boundary turns it into the
/// call's error after everything the op made was dropped normally.
pub fn take_pending_memory_error() -> Option<String> {
    if CALL_FLAGS.0[PENDING].swap(0, Ordering::Relaxed) == 0 {
        return None;
    }
    Some(PENDING_MESSAGE.with(|m| m.borrow_mut().take())
        .unwrap_or_else(|| "an allocation passed the memory limit (raise it with setMemoryLimit)".into()))
}

/// A request past the memory limit. A call that was lent no tensors (a creation function) fails
/// right here, before anything is allocated: the trap leaks nothing, since nothing was taken.
/// An op on existing tensors must not trap (its views of the inputs would keep them alive
/// forever): the request goes ahead if the allocator can serve it, the op finishes, and the
/// boundary drops its result and reports the MemoryError instead (`take_pending_memory_error`).
fn over_limit(bytes: usize, live: usize, limit: usize, adopted: bool) {
    let msg = format!(
        "cannot allocate {} bytes for a tensor: {} bytes are held by live tensors and the memory limit is {} bytes \
         (dispose tensors you no longer need, or raise the limit with setMemoryLimit)", bytes, live, limit);
    if !adopted && CALL_FLAGS.0[LENT].load(Ordering::Relaxed) == 0 {
        crate::panic::fail(ErrorKind::Memory, msg);
    }
    if CALL_FLAGS.0[PENDING].swap(1, Ordering::Relaxed) == 0 {
        PENDING_MESSAGE.with(|m| *m.borrow_mut() = Some(msg));
    }
}

/// Clears the per-call state (after a trap).
pub(crate) fn reset_call_state() {
    CALL_FLAGS.0[PENDING].store(0, Ordering::Relaxed);
    CALL_FLAGS.0[LENT].store(0, Ordering::Relaxed);
}

/// A fresh buffer of `len` elements (zeroed). Past the memory limit see `over_limit`; when the
/// allocator refuses even after the pool was emptied, the call fails with a MemoryError (a trap
/// that `panic::recover` undoes) instead of aborting the engine.
fn fresh<T: Copy + Default>(len: usize) -> Vec<T> {
    let size = std::mem::size_of::<T>();
    let live = LIVE_BYTES.load(Ordering::Relaxed);
    let limit = MEMORY_LIMIT.load(Ordering::Relaxed);
    let bytes = len.checked_mul(size).unwrap_or(usize::MAX);
    if bytes > limit.saturating_sub(live) {
        over_limit(bytes, live, limit, false);
    }
    let mut v: Vec<T> = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        release_pool();
        if v.try_reserve_exact(len).is_err() {
            crate::panic::fail(ErrorKind::Memory, format!(
                "the allocator could not provide {} bytes for a tensor ({} bytes are held by live tensors, \
                 memory limit {} bytes): the runtime refused to grow wasm memory", bytes, live, limit));
        }
    }
    v.resize(len, T::default());
    v
}

/// A float buffer of `len` elements with unspecified (but initialised) contents.
pub fn alloc_f32(len: usize) -> Vec<f32> {
    match pool_take(DType::F32, len) {
        Some(Buffer::F32(v)) => v,
        _ => fresh(len),
    }
}

pub fn zeros_f32(len: usize) -> Vec<f32> {
    let mut v = alloc_f32(len);
    v.fill(0.0);
    v
}

pub fn alloc_i32(len: usize) -> Vec<i32> {
    match pool_take(DType::I32, len) {
        Some(Buffer::I32(v)) => v,
        _ => fresh(len),
    }
}

pub fn alloc_i8(len: usize) -> Vec<i8> {
    match pool_take(DType::I8, len) {
        Some(Buffer::I8(v)) => v,
        _ => fresh(len),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub storages: usize,
    pub bytes: usize,
    pub cached_bytes: usize,
}

pub fn memory_stats() -> MemoryStats {
    MemoryStats {
        storages: LIVE_STORAGES.load(Ordering::Relaxed),
        bytes: LIVE_BYTES.load(Ordering::Relaxed),
        cached_bytes: CACHED_BYTES.load(Ordering::Relaxed),
    }
}

pub struct Storage {
    /// A `RecoverCell`: a trap while an op reads its inputs must not leave them borrowed.
    buf: RecoverCell<Buffer>,
    /// Bumped by every in-place write, so autograd can refuse stale saved tensors.
    version: Cell<u32>,
}

impl Storage {
    pub fn new(buf: Buffer) -> Storage {
        // Buffers that did not come from `fresh` (tensors from JS data, collected results) are
        // held to the limit here; they exist already, so the call fails after dropping them.
        let (live, limit) = (LIVE_BYTES.load(Ordering::Relaxed), MEMORY_LIMIT.load(Ordering::Relaxed));
        if buf.bytes() > limit.saturating_sub(live) {
            over_limit(buf.bytes(), live, limit, true);
        }
        LIVE_BYTES.fetch_add(buf.bytes(), Ordering::Relaxed);
        LIVE_STORAGES.fetch_add(1, Ordering::Relaxed);
        Storage { buf: RecoverCell::new(buf), version: Cell::new(0) }
    }
    pub fn dtype(&self) -> DType {
        self.buf.borrow().dtype()
    }
    pub fn len(&self) -> usize {
        self.buf.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn version(&self) -> u32 {
        self.version.get()
    }
    pub fn borrow(&self) -> Ref<'_, Buffer> {
        self.buf.borrow()
    }
    /// Mutable access for in-place updates; bumps the version.
    pub fn borrow_mut(&self) -> RefMut<'_, Buffer> {
        self.version.set(self.version.get().wrapping_add(1));
        self.buf.borrow_mut()
    }
    pub fn try_borrow_mut(&self) -> Option<RefMut<'_, Buffer>> {
        let b = self.buf.try_borrow_mut()?;
        self.version.set(self.version.get().wrapping_add(1));
        Some(b)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let buf = std::mem::replace(self.buf.get_mut(), Buffer::F32(Vec::new()));
        LIVE_BYTES.fetch_sub(buf.bytes(), Ordering::Relaxed);
        LIVE_STORAGES.fetch_sub(1, Ordering::Relaxed);
        pool_put(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(dtype: DType, len: usize) -> usize {
        POOL.with(|p| p.borrow().buckets.get(&(dtype, len)).map_or(0, |b| b.free.len()))
    }

    #[test]
    fn the_pool_keeps_only_buffers_the_engine_asked_for() {
        // An odd length no other test uses (the pool is per thread; stats are global).
        let len = 12_345;
        // Buffers made outside the pool (JS data, collected results) go back to the allocator.
        for _ in 0..10 {
            drop(Storage::new(Buffer::F32(vec![1.0; len])));
        }
        assert_eq!(pooled(DType::F32, len), 0);
        // Two buffers asked for at once: at most two kept, whatever else is freed.
        let a = Storage::new(Buffer::F32(alloc_f32(len)));
        let b = Storage::new(Buffer::F32(alloc_f32(len)));
        drop((a, b));
        assert_eq!(pooled(DType::F32, len), 2);
        drop(Storage::new(Buffer::F32(vec![0.0; len])));
        assert_eq!(pooled(DType::F32, len), 2);
        // Steady state: take and give back without growth.
        for _ in 0..10 {
            let s = Storage::new(Buffer::F32(alloc_f32(len)));
            drop(s);
        }
        assert_eq!(pooled(DType::F32, len), 2);
    }

    #[test]
    fn sizes_unused_for_a_sweep_period_leave_the_pool() {
        let (old, hot) = (23_456, 7);
        drop(Storage::new(Buffer::F32(alloc_f32(old))));
        assert_eq!(pooled(DType::F32, old), 1);
        // Two sweep periods of other requests: the old size goes, the size in use stays.
        for _ in 0..2 * SWEEP_EVERY {
            drop(Storage::new(Buffer::F32(alloc_f32(hot))));
        }
        assert_eq!(pooled(DType::F32, old), 0);
        assert!(POOL.with(|p| !p.borrow().buckets.contains_key(&(DType::F32, old))));
        assert_eq!(pooled(DType::F32, hot), 1);
    }
}
