//! Turning engine bugs into reports instead of silent traps or hangs.
//!
//! With `panic = "abort"` a Rust panic in wasm is an `unreachable` trap that says nothing. The
//! hook installed by `install_hook` first records the panic message (the first one wins), so the
//! SDK can put it into its InternalError. A panic on a pool worker is worse: the caller would spin
//! forever waiting for the worker's tasks; the caller's wait loop sees the flag and calls the
//! failure handler (set by the wasm boundary to throw a JS error) instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

static PANICKED: AtomicBool = AtomicBool::new(false);
static MESSAGE: OnceLock<String> = OnceLock::new();
static HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Installs the recording panic hook (idempotent).
pub fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let _ = MESSAGE.set(format!("{}", info));
            PANICKED.store(true, Ordering::SeqCst);
        }));
    });
}

pub fn has_panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// The first recorded panic message, if any.
pub fn message() -> Option<&'static str> {
    MESSAGE.get().map(|s| s.as_str())
}

/// What to do when a worker died: the wasm boundary throws a JS error; natively, panic.
pub fn set_failure_handler(f: fn(&str) -> !) {
    HANDLER.store(f as usize, Ordering::SeqCst);
}

pub fn fail_from_worker() -> ! {
    let msg = format!("a worker thread of the edgegrad engine failed ({}); the engine cannot continue, reload it",
        message().unwrap_or("no message"));
    let h = HANDLER.load(Ordering::SeqCst);
    if h != 0 {
        // SAFETY: HANDLER only ever holds a `fn(&str) -> !` stored by `set_failure_handler`.
        let f: fn(&str) -> ! = unsafe { std::mem::transmute::<usize, fn(&str) -> !>(h) };
        f(&msg)
    }
    panic!("{}", msg)
}
