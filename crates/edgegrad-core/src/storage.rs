//! Tensor storage: one typed buffer in linear memory, shared by every view of it.
//!
//! Buffers come from and return to a size-keyed pool, so a training loop that repeats the same
//! shapes stops allocating after its first step and wasm memory stays flat. Pool buffers are
//! handed out with stale contents: every kernel that takes one writes all of it.

use crate::dtype::DType;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

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

thread_local! {
    static POOL: RefCell<HashMap<(DType, usize), Vec<Buffer>>> = RefCell::new(HashMap::new());
}

fn pool_take(dtype: DType, len: usize) -> Option<Buffer> {
    let b = POOL.with(|p| p.borrow_mut().get_mut(&(dtype, len)).and_then(|v| v.pop()))?;
    CACHED_BYTES.fetch_sub(b.bytes(), Ordering::Relaxed);
    Some(b)
}

fn pool_put(b: Buffer) {
    let bytes = b.bytes();
    if bytes == 0 || CACHED_BYTES.load(Ordering::Relaxed) + bytes > POOL_LIMIT.load(Ordering::Relaxed) {
        return;
    }
    CACHED_BYTES.fetch_add(bytes, Ordering::Relaxed);
    let key = (b.dtype(), b.len());
    POOL.with(|p| p.borrow_mut().entry(key).or_default().push(b));
}

/// Empties the buffer pool (its memory returns to the allocator; wasm memory itself never shrinks).
pub fn release_pool() {
    POOL.with(|p| p.borrow_mut().clear());
    CACHED_BYTES.store(0, Ordering::Relaxed);
}

pub fn set_pool_limit(bytes: usize) {
    POOL_LIMIT.store(bytes, Ordering::Relaxed);
    if CACHED_BYTES.load(Ordering::Relaxed) > bytes {
        release_pool();
    }
}

/// A float buffer of `len` elements with unspecified (but initialised) contents.
pub fn alloc_f32(len: usize) -> Vec<f32> {
    match pool_take(DType::F32, len) {
        Some(Buffer::F32(v)) => v,
        _ => vec![0.0; len],
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
        _ => vec![0; len],
    }
}

pub fn alloc_i8(len: usize) -> Vec<i8> {
    match pool_take(DType::I8, len) {
        Some(Buffer::I8(v)) => v,
        _ => vec![0; len],
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
    buf: RefCell<Buffer>,
    /// Bumped by every in-place write, so autograd can refuse stale saved tensors.
    version: Cell<u32>,
}

impl Storage {
    pub fn new(buf: Buffer) -> Storage {
        LIVE_BYTES.fetch_add(buf.bytes(), Ordering::Relaxed);
        LIVE_STORAGES.fetch_add(1, Ordering::Relaxed);
        Storage { buf: RefCell::new(buf), version: Cell::new(0) }
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
    pub fn borrow(&self) -> std::cell::Ref<'_, Buffer> {
        self.buf.borrow()
    }
    /// Mutable access for in-place updates; bumps the version.
    pub fn borrow_mut(&self) -> std::cell::RefMut<'_, Buffer> {
        self.version.set(self.version.get().wrapping_add(1));
        self.buf.borrow_mut()
    }
    pub fn try_borrow_mut(&self) -> Option<std::cell::RefMut<'_, Buffer>> {
        let b = self.buf.try_borrow_mut().ok()?;
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
