//! The worker pool that kernels split their work over.
//!
//! Kernels call `for_each(n_tasks, |task, thread| ...)`. The decomposition into tasks depends only
//! on the problem's shape, never on the number of threads, and each output element is written by
//! exactly one task in a fixed order: so results are bitwise identical for any thread count.
//!
//! On wasm with atomics the pool is the calling thread plus workers started by the host (Node
//! `worker_threads` or Web Workers), each running `worker_loop` on the same shared memory. After a
//! job a worker watches for the next one for a few tens of µs (ops come in bursts), then sleeps
//! in `memory.atomic.wait32`; idle time is spent asleep. The calling thread takes tasks too; when
//! it runs out of tasks it closes the job and spins until the helpers inside it finish the tasks
//! they already claimed; a worker that wakes after that skips the closed job, so a small job
//! never waits for a worker's wake-up.
//! It never executes a blocking wait: a browser's main thread forbids it, and on Node's main
//! thread we measured V8 corrupting the caller's shadow stack after `memory.atomic.wait32`
//! returned (reproduced with every reduction kernel; gone with the spin). The spin is bounded by
//! one task's duration, never idle time.
//!
//! Natively (tests) the pool is emulated with scoped std threads, so the same determinism tests
//! run under `cargo test`.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Upper bound on threads in a pool; sizes per-thread scratch tables.
pub const MAX_THREADS: usize = 16;

static NUM_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Threads used by kernels from now on (calling thread included), clamped to what is available;
/// returns the count now in use. (The wasm boundary refuses counts above the pool instead.)
pub fn set_num_threads(n: usize) -> usize {
    let n = n.clamp(1, available_threads());
    NUM_THREADS.store(n, Ordering::SeqCst);
    n
}

/// After the pool shrank (workers stopped), keeps the thread count within it.
pub fn clamp_num_threads() -> usize {
    set_num_threads(num_threads())
}

pub fn num_threads() -> usize {
    NUM_THREADS.load(Ordering::SeqCst)
}

/// Runs `f(task, thread)` for every task in `0..n_tasks`, spread over the pool. `thread` is in
/// `0..num_threads()` and identifies a per-thread scratch slot; it never changes results.
pub fn for_each(n_tasks: usize, f: &(dyn Fn(usize, usize) + Sync)) {
    let threads = num_threads().min(n_tasks);
    if threads <= 1 || imp::in_parallel_region() {
        let me = current_thread();
        for t in 0..n_tasks {
            f(t, me);
        }
        return;
    }
    imp::run(n_tasks, threads, f);
}

/// Number of tasks to cut `n` items into so that each task gets about `grain` items.
pub fn tasks_for(n: usize, grain: usize) -> usize {
    n.div_ceil(grain.max(1)).max(1)
}

/// A raw pointer that tasks may share. Invariant kept by every user: concurrent tasks write
/// disjoint index ranges through it, and the pointee outlives the `for_each` call.
#[derive(Clone, Copy)]
pub struct SharedMut<T>(pub *mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}
impl<T> SharedMut<T> {
    /// The raw pointer (a method, so closures capture the whole Sync wrapper, not the field).
    #[inline]
    pub fn ptr(self) -> *mut T {
        self.0
    }
    /// # Safety
    /// `[start, start+len)` must be in bounds and written by no other task concurrently.
    #[inline]
    pub unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

/// Whether this code runs inside a pool job (a task, or a worker): nested kernels run inline.
pub fn in_parallel_region() -> bool {
    imp::in_parallel_region()
}

pub fn available_threads() -> usize {
    imp::available()
}

thread_local! {
    static CURRENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The pool index of the thread running this code (0 outside any job and on the caller).
pub fn current_thread() -> usize {
    CURRENT.with(|c| c.get())
}

#[cfg_attr(all(target_arch = "wasm32", not(target_feature = "atomics")), allow(dead_code))]
fn set_current_thread(t: usize) {
    CURRENT.with(|c| c.set(t));
}

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub use imp::{set_workers, worker_loop};
pub use imp::{on_panic, recover};

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
mod imp {
    use super::*;
    use core::arch::wasm32::{memory_atomic_notify, memory_atomic_wait32};
    use std::sync::atomic::{AtomicBool, AtomicU32};

    // The job: a fat pointer to the closure, split in two words, valid while `run` is on stack.
    static JOB_DATA: AtomicUsize = AtomicUsize::new(0);
    static JOB_VTABLE: AtomicUsize = AtomicUsize::new(0);
    static JOB_TASKS: AtomicUsize = AtomicUsize::new(0);
    static JOB_THREADS: AtomicUsize = AtomicUsize::new(0);
    static NEXT_TASK: AtomicUsize = AtomicUsize::new(0);
    /// `OPEN` while helpers may join the posted job, plus the number of helpers inside it. The
    /// caller closes the job once it has drained the tasks and spins only until the helpers
    /// already inside leave: a helper that wakes later finds it closed, so a small job never
    /// waits for a sleeping worker to wake up.
    static STATE: AtomicU32 = AtomicU32::new(0);
    const OPEN: u32 = 1 << 31;
    /// Futex word workers sleep on; bumped once per job.
    static GENERATION: AtomicU32 = AtomicU32::new(0);
    static WORKERS: AtomicUsize = AtomicUsize::new(0);
    /// Workers inside (or about to enter) `memory.atomic.wait32` on GENERATION.
    static SLEEPING: AtomicU32 = AtomicU32::new(0);
    /// Checks of GENERATION a worker makes after a job before it sleeps (a few tens of µs).
    const SPIN_BEFORE_SLEEP: u32 = 1 << 15;
    static SHUTDOWN: AtomicBool = AtomicBool::new(false);

    /// Set by a worker that panicked inside a job (it left the job in `on_panic`): the job's
    /// result is incomplete, so the caller fails instead of returning it.
    static WORKER_FAILED: AtomicBool = AtomicBool::new(false);

    thread_local! {
        static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        static IN_JOB: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// A worker between `enter()` and leaving the job (counted in `STATE`).
        static IN_TASKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Called by the panic hook on the panicking thread, just before it traps. A worker inside a
    /// job leaves it (it will never finish its task), so the caller stops waiting for it; its
    /// host catches the trap and re-enters `worker_loop`.
    pub fn on_panic() {
        if IS_WORKER.with(|w| w.get()) && IN_TASKS.with(|t| t.replace(false)) {
            WORKER_FAILED.store(true, Ordering::SeqCst);
            NEXT_TASK.store(usize::MAX / 2, Ordering::SeqCst);
            STATE.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// After the calling thread trapped: if it was inside a job, no task may start any more and
    /// helpers still running one are waited for (they read the closure on the trapped frames,
    /// which stay intact until the caller's stack is reused). Bounded by one task's duration.
    pub fn recover() {
        if IN_JOB.with(|j| j.replace(false)) || STATE.load(Ordering::SeqCst) != 0 {
            NEXT_TASK.store(usize::MAX / 2, Ordering::SeqCst);
            STATE.fetch_and(!OPEN, Ordering::SeqCst);
            while STATE.load(Ordering::SeqCst) != 0 {
                core::hint::spin_loop();
            }
        }
        WORKER_FAILED.store(false, Ordering::SeqCst);
    }

    pub fn available() -> usize {
        (WORKERS.load(Ordering::SeqCst) + 1).min(MAX_THREADS)
    }

    /// Called by the host once its workers have entered `worker_loop`.
    pub fn set_workers(n: usize) {
        WORKERS.store(n.min(MAX_THREADS - 1), Ordering::SeqCst);
    }

    pub fn in_parallel_region() -> bool {
        IS_WORKER.with(|w| w.get()) || IN_JOB.with(|j| j.get())
    }

    /// The posted job's closure. Only called by a helper inside an open job (see `STATE`).
    fn job() -> &'static (dyn Fn(usize, usize) + Sync) {
        let parts = [JOB_DATA.load(Ordering::SeqCst), JOB_VTABLE.load(Ordering::SeqCst)];
        // SAFETY: `run` stored a valid fat pointer before opening the job and keeps the closure
        // alive until the job is closed and no helper is inside it any more.
        unsafe { std::mem::transmute::<[usize; 2], &'static (dyn Fn(usize, usize) + Sync)>(parts) }
    }

    /// Joins the posted job if it is still open; false when it was closed (or none is posted).
    fn enter() -> bool {
        let mut s = STATE.load(Ordering::SeqCst);
        loop {
            if s & OPEN == 0 {
                return false;
            }
            match STATE.compare_exchange_weak(s, s + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    fn drain(f: &(dyn Fn(usize, usize) + Sync), thread: usize) {
        let n = JOB_TASKS.load(Ordering::SeqCst);
        loop {
            let t = NEXT_TASK.fetch_add(1, Ordering::SeqCst);
            if t >= n {
                break;
            }
            f(t, thread);
        }
    }

    pub fn run(n_tasks: usize, threads: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        // SAFETY: erasing the lifetime is sound because we do not return before every worker has
        // finished with the closure (the job is closed and STATE is 0 below).
        let parts: [usize; 2] = unsafe { std::mem::transmute(f) };
        JOB_DATA.store(parts[0], Ordering::SeqCst);
        JOB_VTABLE.store(parts[1], Ordering::SeqCst);
        JOB_TASKS.store(n_tasks, Ordering::SeqCst);
        JOB_THREADS.store(threads, Ordering::SeqCst);
        NEXT_TASK.store(0, Ordering::SeqCst);
        // No helper is inside: the previous `run` returned only once STATE was 0.
        STATE.store(OPEN, Ordering::SeqCst);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        // Workers still spinning after the last job see the new generation without a notify
        // (which enters the host's futex table); only sleepers need one.
        if SLEEPING.load(Ordering::SeqCst) > 0 {
            unsafe {
                memory_atomic_notify(GENERATION.as_ptr() as *mut i32, (threads - 1) as u32);
            }
        }
        IN_JOB.with(|j| j.set(true));
        drain(f, 0);
        IN_JOB.with(|j| j.set(false));
        STATE.fetch_and(!OPEN, Ordering::SeqCst);
        // A worker that panics leaves the job before it traps (`on_panic`), so this ends.
        while STATE.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
        if WORKER_FAILED.swap(false, Ordering::SeqCst) {
            crate::panic::fail_from_worker();
        }
    }

    /// Body of every pool worker: sleep until a job is posted, help with it, repeat.
    /// `id` starts at 1 (0 is the calling thread).
    pub fn worker_loop(id: usize) {
        IS_WORKER.with(|w| w.set(true));
        set_current_thread(id);
        let mut seen = GENERATION.load(Ordering::SeqCst);
        loop {
            // Ops come in quick succession (a Transformer layer's forward is a dozen of them), and
            // waking a sleeping worker (a futex and, on a VM, an interrupt to a halted vCPU) costs
            // tens of microseconds, more than a small op's whole job. So a worker that just left a
            // job watches for the next one for a bounded while before it sleeps.
            let mut spins = 0;
            while GENERATION.load(Ordering::SeqCst) == seen && spins < SPIN_BEFORE_SLEEP {
                core::hint::spin_loop();
                spins += 1;
            }
            if GENERATION.load(Ordering::SeqCst) == seen {
                // Counted before the wait, so a caller that bumps GENERATION after this either
                // sees the sleeper and notifies it, or bumped it before the wait's comparison.
                SLEEPING.fetch_add(1, Ordering::SeqCst);
                unsafe {
                    memory_atomic_wait32(GENERATION.as_ptr() as *mut i32, seen as i32, -1);
                }
                SLEEPING.fetch_sub(1, Ordering::SeqCst);
            }
            if SHUTDOWN.load(Ordering::SeqCst) {
                return;
            }
            let gen = GENERATION.load(Ordering::SeqCst);
            if gen == seen {
                continue; // spurious wake-up
            }
            seen = gen;
            // A job that is already closed was finished by the others.
            if !enter() {
                continue;
            }
            // Inside, the posted job (possibly a newer one than the wake-up was for) stays valid.
            IN_TASKS.with(|t| t.set(true));
            if id < JOB_THREADS.load(Ordering::SeqCst) {
                drain(job(), id);
            }
            IN_TASKS.with(|t| t.set(false));
            STATE.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;
    use std::cell::Cell;

    thread_local! { static IN_JOB: Cell<bool> = const { Cell::new(false) }; }

    pub fn available() -> usize {
        MAX_THREADS
    }

    pub fn in_parallel_region() -> bool {
        IN_JOB.with(|j| j.get())
    }

    /// Native panics unwind through the scoped threads: nothing to do.
    pub fn on_panic() {}
    pub fn recover() {}

    /// Native emulation: scoped threads claim tasks from a shared counter, as wasm workers do.
    pub fn run(n_tasks: usize, threads: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for thread in 0..threads {
                let next = &next;
                s.spawn(move || {
                    IN_JOB.with(|j| j.set(true));
                    set_current_thread(thread);
                    loop {
                        let t = next.fetch_add(1, Ordering::SeqCst);
                        if t >= n_tasks {
                            break;
                        }
                        f(t, thread);
                    }
                });
            }
        });
    }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod imp {
    pub fn available() -> usize {
        1
    }
    pub fn in_parallel_region() -> bool {
        false
    }
    pub fn on_panic() {}
    pub fn recover() {}
    pub fn run(n_tasks: usize, _threads: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        for t in 0..n_tasks {
            f(t, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn every_task_runs_once() {
        set_num_threads(4);
        let hits: Vec<AtomicUsize> = (0..100).map(|_| AtomicUsize::new(0)).collect();
        for_each(100, &|t, thread| {
            assert!(thread < 4);
            hits[t].fetch_add(1, Ordering::SeqCst);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::SeqCst) == 1));
        set_num_threads(1);
    }
}
