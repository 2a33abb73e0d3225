//! Failing without poisoning the engine.
//!
//! With `panic = "abort"` a Rust panic in wasm is an `unreachable` trap: no destructor runs, so
//! whatever the trapped call held stays held. Instead of unwinding we make that state resettable
//! and reset it in one place, `recover`, which the SDK calls after every trap (see `engine_recover`
//! at the wasm boundary):
//! - every failure first records its kind and message (`fail` for typed ones such as
//!   out-of-memory, the hook for real panics), so the SDK can throw the right typed error;
//! - borrow flags live in `RecoverCell`s, whose borrows all become void when `recover` bumps the
//!   epoch (a borrow left by a trapped frame can never be released otherwise);
//! - the worker pool gives up the job the trapped caller had posted (`parallel::recover`), and a
//!   worker that panics inside a job leaves it first (`parallel::on_panic`), so the caller never
//!   waits for it.
//!
//! Why a cell instead of keeping borrows short: kernels read their inputs through borrows while
//! they allocate their outputs, and an allocation is exactly what fails under memory pressure.

use crate::error::ErrorKind;
use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

static PANICKED: AtomicBool = AtomicBool::new(false);
/// Spin lock over `FAILURE` (panics may come from several threads at once; no blocking waits on
/// a browser's main thread).
static LOCK: AtomicBool = AtomicBool::new(false);
struct FailureSlot(UnsafeCell<Option<(ErrorKind, String)>>);
// SAFETY: only accessed under `LOCK`.
unsafe impl Sync for FailureSlot {}
static FAILURE: FailureSlot = FailureSlot(UnsafeCell::new(None));

fn with_failure<R>(f: impl FnOnce(&mut Option<(ErrorKind, String)>) -> R) -> R {
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    // SAFETY: LOCK is held, so this is the only reference.
    let r = f(unsafe { &mut *FAILURE.0.get() });
    LOCK.store(false, Ordering::Release);
    r
}

/// Records a failure unless one is already recorded (the first one is the cause).
fn record(kind: ErrorKind, message: String) {
    with_failure(|f| {
        if f.is_none() {
            *f = Some((kind, message));
        }
    });
}

/// Installs the recording panic hook (idempotent).
pub fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            record(ErrorKind::Internal, format!("{}", info));
            PANICKED.store(true, Ordering::SeqCst);
            crate::parallel::on_panic();
        }));
    });
}

pub fn has_panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// The recorded failure message, if any (kept until `recover`).
pub fn message() -> Option<String> {
    with_failure(|f| f.as_ref().map(|(_, m)| m.clone()))
}

/// Fails the current engine call with a typed error. In wasm this traps after recording the
/// error; the SDK then calls `recover` and throws the matching error class. Natively it panics
/// (tests catch it).
pub fn fail(kind: ErrorKind, message: String) -> ! {
    #[cfg(target_arch = "wasm32")]
    {
        record(kind, message);
        core::arch::wasm32::unreachable()
    }
    #[cfg(not(target_arch = "wasm32"))]
    panic!("{}: {}", kind.name(), message)
}

/// Records an allocation the allocator refused (called from the alloc-error hook, just before
/// the abort traps). The abort runs no panic hook, so a pool worker leaves its job here.
pub fn record_alloc_failure(bytes: usize) {
    record(ErrorKind::Memory, format!(
        "the allocator could not provide {} bytes (wasm memory is exhausted or the runtime refused to grow it; \
         {} bytes are held by live tensors)", bytes, crate::storage::memory_stats().bytes));
    crate::parallel::on_panic();
}

/// A worker died inside a job: its tasks never finished, so the job's result is incomplete. Out
/// of memory on the worker stays a MemoryError; anything else is a bug.
pub fn fail_from_worker() -> ! {
    match with_failure(|f| f.take()) {
        Some((ErrorKind::Memory, msg)) => fail(ErrorKind::Memory, msg),
        other => fail(ErrorKind::Internal, format!("a worker thread of the edgegrad engine failed ({})",
            other.map_or_else(|| "no message".into(), |(_, m)| m))),
    }
}

/// Bumped by `recover`: every `RecoverCell` borrow taken before it is void.
static EPOCH: AtomicU32 = AtomicU32::new(0);

/// Puts the engine back in a usable state after a trap on the calling thread and returns what
/// failed (`None` when nothing was recorded: a trap that was not a panic). Must be called on the
/// thread that trapped, with no engine frame of its own on the stack other than this one.
pub fn recover() -> Option<(ErrorKind, String)> {
    crate::parallel::recover();
    EPOCH.fetch_add(1, Ordering::SeqCst);
    crate::storage::reset_call_state();
    crate::autograd::reset_no_grad_after_trap();
    PANICKED.store(false, Ordering::SeqCst);
    with_failure(|f| f.take())
}

/// A `RefCell` whose outstanding borrows `recover` can void. Same rules as `RefCell` otherwise:
/// many shared borrows or one exclusive borrow, violations panic.
pub struct RecoverCell<T: ?Sized> {
    /// >0: shared borrows, -1: exclusive borrow; valid only while `epoch` is current.
    flag: Cell<isize>,
    epoch: Cell<u32>,
    value: UnsafeCell<T>,
}

impl<T> RecoverCell<T> {
    pub const fn new(value: T) -> Self {
        RecoverCell { flag: Cell::new(0), epoch: Cell::new(0), value: UnsafeCell::new(value) }
    }
}

impl<T: ?Sized> RecoverCell<T> {
    /// The borrow flag, reset first when a recovery happened since it was last set.
    #[inline]
    fn current(&self) -> isize {
        let e = EPOCH.load(Ordering::Relaxed);
        if self.epoch.get() != e {
            self.epoch.set(e);
            self.flag.set(0);
        }
        self.flag.get()
    }
    #[inline]
    pub fn try_borrow(&self) -> Option<Ref<'_, T>> {
        let f = self.current();
        if f < 0 {
            return None;
        }
        self.flag.set(f + 1);
        // SAFETY: the flag now records a shared borrow; no exclusive one is live.
        Some(Ref { value: NonNull::from(unsafe { &*self.value.get() }), flag: &self.flag, _p: PhantomData })
    }
    #[inline]
    pub fn borrow(&self) -> Ref<'_, T> {
        self.try_borrow().expect("edgegrad: value already mutably borrowed")
    }
    #[inline]
    pub fn try_borrow_mut(&self) -> Option<RefMut<'_, T>> {
        if self.current() != 0 {
            return None;
        }
        self.flag.set(-1);
        // SAFETY: the flag was 0 (no borrow) and now records the exclusive one.
        Some(RefMut { value: NonNull::from(unsafe { &mut *self.value.get() }), flag: &self.flag, _p: PhantomData })
    }
    #[inline]
    pub fn borrow_mut(&self) -> RefMut<'_, T> {
        self.try_borrow_mut().expect("edgegrad: value already borrowed")
    }
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

/// A shared borrow of a `RecoverCell` (or a part of it, after `map`).
pub struct Ref<'a, T: ?Sized> {
    value: NonNull<T>,
    flag: &'a Cell<isize>,
    _p: PhantomData<&'a T>,
}
impl<'a, T: ?Sized> Ref<'a, T> {
    pub fn map<U: ?Sized>(r: Ref<'a, T>, f: impl FnOnce(&T) -> &U) -> Ref<'a, U> {
        // SAFETY: `r` keeps the shared borrow recorded; it moves into the new guard.
        let value = NonNull::from(f(unsafe { r.value.as_ref() }));
        let flag = r.flag;
        std::mem::forget(r);
        Ref { value, flag, _p: PhantomData }
    }
}
impl<T: ?Sized> Deref for Ref<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a shared borrow is recorded for the guard's lifetime.
        unsafe { self.value.as_ref() }
    }
}
impl<T: ?Sized> Drop for Ref<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // After a recovery the flag was reset and may be 0 already: never go below.
        let f = self.flag.get();
        if f > 0 {
            self.flag.set(f - 1);
        }
    }
}

/// An exclusive borrow of a `RecoverCell` (or a part of it, after `map`).
pub struct RefMut<'a, T: ?Sized> {
    value: NonNull<T>,
    flag: &'a Cell<isize>,
    _p: PhantomData<&'a mut T>,
}
impl<'a, T: ?Sized> RefMut<'a, T> {
    pub fn map<U: ?Sized>(mut r: RefMut<'a, T>, f: impl FnOnce(&mut T) -> &mut U) -> RefMut<'a, U> {
        // SAFETY: `r` holds the exclusive borrow; it moves into the new guard.
        let value = NonNull::from(f(unsafe { r.value.as_mut() }));
        let flag = r.flag;
        std::mem::forget(r);
        RefMut { value, flag, _p: PhantomData }
    }
}
impl<T: ?Sized> Deref for RefMut<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the exclusive borrow is recorded for the guard's lifetime.
        unsafe { self.value.as_ref() }
    }
}
impl<T: ?Sized> DerefMut for RefMut<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes this the only access.
        unsafe { self.value.as_mut() }
    }
}
impl<T: ?Sized> Drop for RefMut<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.flag.get() < 0 {
            self.flag.set(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_voids_borrows_left_behind() {
        let c = RecoverCell::new(5);
        std::mem::forget(c.borrow_mut()); // what a trapped frame leaves
        assert!(c.try_borrow().is_none());
        EPOCH.fetch_add(1, Ordering::SeqCst); // what `recover` does
        assert_eq!(*c.borrow(), 5);
        *c.borrow_mut() = 6;
        let r = Ref::map(c.borrow(), |v| v);
        assert!(c.try_borrow_mut().is_none());
        drop(r);
        assert_eq!(*c.borrow_mut(), 6);
    }
}
