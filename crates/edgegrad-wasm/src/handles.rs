//! Handle table: u32 handles to `Tensor`s, with generations to catch stale handles.
//!
//! Exports read their tensor arguments as `Lent`s (`exports::t`, `tl` for lists): bitwise copies
//! that take no reference count, so a call that traps (a panic, the allocator refusing memory)
//! leaves no count behind that would keep its inputs alive after they are disposed. Take an
//! owned `Tensor` (`exports::tc`) only to store it (a gradient, an optional argument kept).

use edgegrad_core::panic::RecoverCell;
use edgegrad_core::{Error, ErrorKind, Result, Tensor};
use std::mem::ManuallyDrop;

const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u32 = (1 << (32 - INDEX_BITS)) - 1;

struct Slot {
    gen: u32,
    tensor: Option<Tensor>,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

thread_local! {
    /// A `RecoverCell`: growing the table can fail for lack of memory while it is borrowed.
    static TABLE: RecoverCell<Table> = RecoverCell::new(Table { slots: Vec::new(), free: Vec::new(), live: 0 });
}

/// Metadata of the tensor most recently registered: `[handle, dtype, rank, dims...]`, read by
/// the SDK straight from linear memory, so creating a tensor costs one boundary crossing, not
/// two. Ranks above `META_DIMS` are marked with rank `u32::MAX` (the SDK then calls `tensor_meta`).
pub const META_DIMS: usize = 29;
pub struct Meta(pub std::cell::UnsafeCell<[u32; META_DIMS + 3]>);
// SAFETY: only the thread that drives the engine (the JS caller) writes or reads it.
unsafe impl Sync for Meta {}
pub static META: Meta = Meta(std::cell::UnsafeCell::new([0; META_DIMS + 3]));

/// Registers a tensor; the handle is never 0. Also publishes its metadata in `META`.
pub fn insert(t: Tensor) -> Result<u32> {
    {
        // SAFETY: single writer (the driving thread); the SDK reads it right after this returns.
        let m = unsafe { &mut *META.0.get() };
        m[1] = t.dtype() as u32;
        if t.rank() <= META_DIMS {
            m[2] = t.rank() as u32;
            for (i, &d) in t.shape().iter().enumerate() {
                m[3 + i] = d as u32;
            }
        } else {
            m[2] = u32::MAX;
        }
    }
    let h = insert_slot(t)?;
    // SAFETY: as above.
    unsafe { (*META.0.get())[0] = h };
    Ok(h)
}

fn insert_slot(t: Tensor) -> Result<u32> {
    TABLE.with(|tb| {
        let mut tb = tb.borrow_mut();
        if let Some(i) = tb.free.pop() {
            tb.live += 1;
            let slot = &mut tb.slots[i as usize];
            slot.gen = (slot.gen + 1) & GEN_MASK;
            if slot.gen == 0 {
                slot.gen = 1;
            }
            slot.tensor = Some(t);
            return Ok((slot.gen << INDEX_BITS) | i);
        }
        let i = tb.slots.len() as u32;
        if i > INDEX_MASK {
            return Err(Error::new(ErrorKind::Argument,
                format!("more than {} live tensors: dispose tensors you no longer need", INDEX_MASK)));
        }
        tb.slots.push(Slot { gen: 1, tensor: Some(t) });
        tb.live += 1;
        Ok((1 << INDEX_BITS) | i)
    })
}

fn stale(h: u32) -> Error {
    Error::new(ErrorKind::Argument, format!("tensor handle {} is not live (the tensor was disposed)", h))
}

/// A tensor lent by the table for the duration of one engine call, without taking a reference:
/// if the call traps (a panic, out of memory), nothing is left holding a count that would keep
/// the tensor alive after the user disposes it. `(*lent).clone()` takes a real reference.
pub struct Lent(ManuallyDrop<Tensor>);

impl std::ops::Deref for Lent {
    type Target = Tensor;
    #[inline]
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// Several lent tensors as a slice (for ops over a list, such as concat). Its elements are bitwise
/// copies, forgotten on drop like `Lent`'s; a trap leaks only the list's own small buffer.
pub struct LentList(Vec<Tensor>);

impl std::ops::Deref for LentList {
    type Target = [Tensor];
    #[inline]
    fn deref(&self) -> &[Tensor] {
        &self.0
    }
}

impl Drop for LentList {
    fn drop(&mut self) {
        // SAFETY: the elements were never counted (see `get_list`); forget them, free the buffer.
        unsafe { self.0.set_len(0) };
    }
}

/// The tensors behind `hs`, lent for the call (same invariant as `get`).
pub fn get_list(hs: &[u32]) -> Result<LentList> {
    let mut list = LentList(Vec::with_capacity(hs.len()));
    for &h in hs {
        let lent = get(h)?;
        // SAFETY: moves the uncounted copy out of the `Lent` without dropping either.
        list.0.push(unsafe { std::ptr::read(&*lent.0) });
    }
    Ok(list)
}

/// The tensor behind handle `h`, lent (see `Lent`). Invariant that makes this sound: no engine
/// call removes a handle it has been lent, so the table's reference outlives the `Lent`.
pub fn get(h: u32) -> Result<Lent> {
    edgegrad_core::storage::note_inputs_lent();
    TABLE.with(|tb| {
        let tb = tb.borrow();
        let (i, g) = ((h & INDEX_MASK) as usize, h >> INDEX_BITS);
        match tb.slots.get(i) {
            // SAFETY: a bitwise copy of the table's `Rc` that is never dropped (ManuallyDrop):
            // the count is unchanged, and the table keeps the tensor alive (invariant above).
            Some(Slot { gen, tensor: Some(t) }) if *gen == g => Ok(Lent(ManuallyDrop::new(unsafe { std::ptr::read(t) }))),
            _ => Err(stale(h)),
        }
    })
}

pub fn remove(h: u32) -> Result<()> {
    // Take the tensor out first and drop it after releasing the table borrow (dropping can free a
    // graph, which never touches the table, but keep the borrow short anyway).
    let t = TABLE.with(|tb| {
        let mut tb = tb.borrow_mut();
        let (i, g) = ((h & INDEX_MASK) as usize, h >> INDEX_BITS);
        match tb.slots.get_mut(i) {
            Some(slot) if slot.gen == g && slot.tensor.is_some() => {
                let t = slot.tensor.take();
                tb.free.push(i as u32);
                tb.live -= 1;
                Ok(t)
            }
            _ => Err(stale(h)),
        }
    })?;
    drop(t);
    Ok(())
}

pub fn live() -> usize {
    TABLE.with(|tb| tb.borrow().live)
}
