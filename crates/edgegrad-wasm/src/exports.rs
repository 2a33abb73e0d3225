//! Exported functions. Each validates through the core (typed errors), never panics on user input.

use crate::handles;
use edgegrad_core::autograd;
use edgegrad_core::ops::{self, BinaryOp, CompareOp, UnaryOp};
use edgegrad_core::rng::Generator;
use edgegrad_core::{parallel, storage, DType, Error, ErrorKind, Tensor};
use edgegrad_core::panic::RecoverCell;
use wasm_bindgen::prelude::*;

pub(crate) type R<T> = Result<T, JsValue>;

pub(crate) fn js_err(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name(e.kind.name());
    err.into()
}

pub(crate) fn arg_err(msg: String) -> JsValue {
    js_err(Error::new(ErrorKind::Argument, msg))
}

/// The tensor behind a handle, lent for this call (see `handles::Lent`); `tc` for an owned one.
pub(crate) fn t(h: u32) -> R<handles::Lent> {
    handles::get(h).map_err(js_err)
}

pub(crate) fn tc(h: u32) -> R<Tensor> {
    Ok((*t(h)?).clone())
}

/// Several tensors lent for this call, as a `&[Tensor]`.
pub(crate) fn tl(hs: &[u32]) -> R<handles::LentList> {
    handles::get_list(hs).map_err(js_err)
}

pub(crate) fn out(r: edgegrad_core::Result<Tensor>) -> R<u32> {
    let t = r.map_err(js_err)?;
    // An op that went past the memory limit fails now that it is done: dropping its result
    // frees everything it allocated (see `storage::over_limit`).
    if let Some(msg) = storage::take_pending_memory_error() {
        drop(t);
        return Err(js_err(Error::new(ErrorKind::Memory, msg)));
    }
    handles::insert(t).map_err(js_err)
}

pub(crate) fn shape_of(s: &[u32]) -> Vec<usize> {
    s.iter().map(|&d| d as usize).collect()
}

pub(crate) fn axes_of(a: &[i32]) -> Vec<isize> {
    a.iter().map(|&d| d as isize).collect()
}

pub(crate) fn dtype_of(code: u8) -> R<DType> {
    DType::from_code(code).ok_or_else(|| arg_err(format!("unknown dtype code {}", code)))
}

// ------------------------------------------------------------------ engine and threads

/// Runs when each instance starts (main thread and every worker): installs the panic recorder
/// and makes an allocation failure outside the tensor allocator a MemoryError too.
#[wasm_bindgen(start)]
pub fn engine_start() {
    edgegrad_core::panic::install_hook();
    #[cfg(target_arch = "wasm32")]
    std::alloc::set_alloc_error_hook(|layout| edgegrad_core::panic::record_alloc_failure(layout.size()));
}

/// After a call trapped (a panic, or a failure recorded by `panic::fail`): puts the engine back
/// in working order and returns `"<ErrorName>\n<message>"`, or an empty string when nothing was
/// recorded. The SDK calls it on the thread that trapped and then restores its stack pointer.
#[wasm_bindgen]
pub fn engine_recover() -> String {
    match edgegrad_core::panic::recover() {
        Some((kind, msg)) => format!("{}\n{}", kind.name(), msg),
        None => String::new(),
    }
}

/// The recorded failure message, if any (kept until `engine_recover`).
#[wasm_bindgen]
pub fn engine_panic_message() -> Option<String> {
    edgegrad_core::panic::message()
}

/// Test hook: panics on purpose. `place` 0: on the calling thread while it holds a borrow of
/// tensor `h`'s storage and the handle table; 1: on pool workers inside a parallel job (the
/// calling thread's own tasks wait until a worker has failed, so one does). Returns normally only
/// when no worker took part (one thread).
#[wasm_bindgen]
pub fn engine_test_panic(place: u32, h: u32) -> R<()> {
    let x = t(h)?;
    let _held = x.storage().borrow();
    if place == 0 {
        panic!("deliberate test panic on the calling thread");
    }
    let threads = parallel::num_threads();
    parallel::for_each(threads * 8, &|_, thread| {
        if thread != 0 {
            panic!("deliberate test panic on pool worker {}", thread);
        }
        // Give the workers time to join; bounded, so a one-thread pool returns.
        let mut spins = 0u64;
        while !edgegrad_core::panic::has_panicked() && spins < 200_000_000 {
            core::hint::spin_loop();
            spins += 1;
        }
    });
    Ok(())
}

/// Address of `storage::CALL_FLAGS` (`[MemoryError pending, inputs lent]`), which the SDK reads
/// and resets in place around each call.
#[wasm_bindgen]
pub fn engine_call_flags_ptr() -> u32 {
    storage::CALL_FLAGS.0.as_ptr() as u32
}

/// The MemoryError of a call that went past the limit without producing a tensor (in-place ops,
/// backward, copy-out), for the SDK to throw; empty when none is pending.
#[wasm_bindgen]
pub fn engine_take_memory_error() -> String {
    storage::take_pending_memory_error().unwrap_or_default()
}

/// True in the threaded build (shared memory + atomics).
#[wasm_bindgen]
pub fn engine_threaded() -> bool {
    cfg!(target_feature = "atomics")
}

/// Called by the host after `n` workers entered `worker_entry`.
#[wasm_bindgen]
pub fn engine_set_workers(n: u32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    parallel::set_workers(n as usize);
    let _ = n;
    parallel::clamp_num_threads();
}

/// Body of a pool worker: never returns while the pool lives (it sleeps in `memory.atomic.wait`).
#[wasm_bindgen]
pub fn worker_entry(id: u32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    parallel::worker_loop(id as usize);
    let _ = id;
}

/// Threads for the kernels that follow; refuses counts outside 1..=pool size.
#[wasm_bindgen]
pub fn engine_set_num_threads(n: u32) -> R<u32> {
    let max = parallel::available_threads();
    if n == 0 || n as usize > max {
        return Err(arg_err(format!("the thread count must be between 1 and {} (the threads in the pool), got {}", max, n)));
    }
    Ok(parallel::set_num_threads(n as usize) as u32)
}

#[wasm_bindgen]
pub fn engine_num_threads() -> u32 {
    parallel::num_threads() as u32
}

/// Caps the bytes live tensors may hold; returns the previous cap. `bytes` is a whole number.
#[wasm_bindgen]
pub fn engine_set_memory_limit(bytes: f64) -> R<f64> {
    if !(bytes >= 0.0 && bytes.fract() == 0.0) {
        return Err(arg_err(format!("the memory limit must be a non-negative whole number of bytes, got {}", bytes)));
    }
    let b = if bytes >= usize::MAX as f64 { usize::MAX } else { bytes as usize };
    Ok(storage::set_memory_limit(b) as f64)
}

/// `[live tensors, live bytes, live storages, pooled bytes, memory limit]`.
#[wasm_bindgen]
pub fn engine_memory() -> Vec<f64> {
    let m = storage::memory_stats();
    vec![handles::live() as f64, m.bytes as f64, m.storages as f64, m.cached_bytes as f64,
        storage::memory_limit() as f64]
}

#[wasm_bindgen]
pub fn engine_release_pool() {
    storage::release_pool();
}

// ------------------------------------------------------------------ RNG

thread_local! {
    // A RecoverCell: generators allocate their output while it is borrowed (see panic.rs).
    static RNG: RecoverCell<Generator> = RecoverCell::new(Generator::new(0));
}

#[wasm_bindgen]
pub fn rng_seed(seed: f64) -> R<()> {
    if !(seed >= 0.0 && seed.fract() == 0.0 && seed <= 9007199254740991.0) {
        return Err(arg_err(format!("seed must be a non-negative integer, got {}", seed)));
    }
    RNG.with(|r| *r.borrow_mut() = Generator::new(seed as u64));
    Ok(())
}

/// The global stream's position: [key low, key high, counter low, counter high].
#[wasm_bindgen]
pub fn rng_get_state() -> Vec<u32> {
    RNG.with(|r| r.borrow().state().to_vec())
}

/// Restores a position from `rng_get_state` (any four words are a valid Philox position).
#[wasm_bindgen]
pub fn rng_set_state(words: &[u32]) -> R<()> {
    let w: [u32; 4] = words
        .try_into()
        .map_err(|_| arg_err(format!("an RNG state is 4 words, got {}", words.len())))?;
    RNG.with(|r| *r.borrow_mut() = Generator::from_state(w));
    Ok(())
}

/// Runs `f` on a fresh generator for an explicit seed, else on the global stream.
fn with_rng<T>(seed: Option<f64>, f: impl FnOnce(&mut Generator) -> T) -> R<T> {
    match seed {
        Some(s) => {
            if !(s >= 0.0 && s.fract() == 0.0 && s <= 9007199254740991.0) {
                return Err(arg_err(format!("seed must be a non-negative integer, got {}", s)));
            }
            Ok(f(&mut Generator::new(s as u64)))
        }
        None => Ok(RNG.with(|r| f(&mut r.borrow_mut()))),
    }
}

fn checked_numel(shape: &[usize]) -> R<usize> {
    edgegrad_core::shape::check_shape_valid(shape).map_err(js_err)?;
    Ok(shape.iter().product())
}

/// kind: 0 uniform(a, b), 1 normal(mean a, std b), 2 truncated normal, 3 bernoulli(p = a),
/// 4 normal(mean a, std b) by the vectorised sampler (`Generator::gaussian`: DP-SGD's noise)
#[wasm_bindgen]
pub fn rng_tensor(kind: u8, shape: &[u32], a: f32, b: f32, seed: Option<f64>) -> R<u32> {
    let s = shape_of(shape);
    let n = checked_numel(&s)?;
    let data = with_rng(seed, |g| match kind {
        0 => Ok(g.uniform(n, a, b)),
        1 => Ok(g.normal(n, a, b)),
        2 => Ok(g.truncated_normal(n, a, b)),
        3 => Ok(g.bernoulli(n, a)),
        4 => Ok(g.gaussian(n, a, b)),
        _ => Err(arg_err(format!("unknown random distribution {}", kind))),
    })??;
    out(Tensor::from_f32(data, &s))
}

/// DP-SGD's noisy gradient `(sum + N(0, std²)) / divisor` in one pass on the global stream:
/// bitwise `sum.add(rng_tensor(4, shape, 0, std)).div(divisor)` without the noise tensor.
#[wasm_bindgen]
pub fn rng_add_gaussian_div(h: u32, std: f32, divisor: f32) -> R<u32> {
    let x = t(h)?;
    if x.dtype() != DType::F32 {
        return Err(arg_err(format!("noisy gradient needs a float32 tensor, got {}", x.dtype())));
    }
    if !(std >= 0.0 && std.is_finite() && divisor > 0.0 && divisor.is_finite()) {
        return Err(arg_err(format!("noise std must be finite >= 0 and divisor finite > 0, got {} and {}", std, divisor)));
    }
    let xc = if x.is_contiguous() { (*x).clone() } else { ops::contiguous(&*x).map_err(js_err)? };
    let data = RNG.with(|r| -> R<Vec<f32>> { Ok(r.borrow_mut().add_gaussian_div(&xc.f32s().map_err(js_err)?, std, divisor)) })?;
    out(Tensor::from_f32(data, x.shape()))
}

#[wasm_bindgen]
pub fn rng_permutation(n: u32, seed: Option<f64>) -> R<u32> {
    checked_numel(&[n as usize])?; // before the permutation is allocated
    let p = with_rng(seed, |g| g.permutation(n as usize))?;
    out(Tensor::from_i32(p, &[n as usize]))
}

#[wasm_bindgen]
pub fn rng_randint(shape: &[u32], lo: i32, hi: i32, seed: Option<f64>) -> R<u32> {
    if hi <= lo {
        return Err(arg_err(format!("randint needs low < high, got [{}, {})", lo, hi)));
    }
    let s = shape_of(shape);
    let n = checked_numel(&s)?;
    let v = with_rng(seed, |g| g.randint(n, lo, hi))?;
    out(Tensor::from_i32(v, &s))
}

// ------------------------------------------------------------------ creation and copy-out

#[wasm_bindgen]
pub fn tensor_from_f32(data: Vec<f32>, shape: &[u32]) -> R<u32> {
    out(Tensor::from_f32(data, &shape_of(shape)))
}
#[wasm_bindgen]
pub fn tensor_from_i32(data: Vec<i32>, shape: &[u32]) -> R<u32> {
    out(Tensor::from_i32(data, &shape_of(shape)))
}
#[wasm_bindgen]
pub fn tensor_from_i8(data: Vec<i8>, shape: &[u32]) -> R<u32> {
    out(Tensor::from_i8(data, &shape_of(shape)))
}
#[wasm_bindgen]
pub fn tensor_full(shape: &[u32], value: f64, dtype: u8) -> R<u32> {
    out(Tensor::full(&shape_of(shape), value, dtype_of(dtype)?))
}
#[wasm_bindgen]
pub fn tensor_arange(start: f64, end: f64, step: f64, dtype: u8) -> R<u32> {
    out(Tensor::arange(start, end, step, dtype_of(dtype)?))
}
#[wasm_bindgen]
pub fn tensor_to_f32(h: u32) -> R<Vec<f32>> {
    t(h)?.to_vec_f32().map_err(js_err)
}
#[wasm_bindgen]
pub fn tensor_to_i32(h: u32) -> R<Vec<i32>> {
    t(h)?.to_vec_i32().map_err(js_err)
}
#[wasm_bindgen]
pub fn tensor_to_i8(h: u32) -> R<Vec<i8>> {
    t(h)?.to_vec_i8().map_err(js_err)
}
#[wasm_bindgen]
pub fn tensor_shape(h: u32) -> R<Vec<u32>> {
    Ok(t(h)?.shape().iter().map(|&d| d as u32).collect())
}
#[wasm_bindgen]
pub fn tensor_dtype(h: u32) -> R<u8> {
    Ok(t(h)?.dtype() as u8)
}
#[wasm_bindgen]
pub fn tensor_is_contiguous(h: u32) -> R<bool> {
    Ok(t(h)?.is_contiguous())
}
/// A second handle to the same tensor (shares storage and autograd state).
#[wasm_bindgen]
pub fn tensor_clone_handle(h: u32) -> R<u32> {
    out(Ok(tc(h)?))
}
#[wasm_bindgen]
pub fn tensor_dispose(h: u32) -> R<()> {
    handles::remove(h).map_err(js_err)
}

// ------------------------------------------------------------------ autograd

#[wasm_bindgen]
pub fn grad_requires(h: u32) -> R<bool> {
    Ok(t(h)?.requires_grad())
}
#[wasm_bindgen]
pub fn grad_set_requires(h: u32, on: bool) -> R<()> {
    t(h)?.set_requires_grad(on).map_err(js_err)
}
#[wasm_bindgen]
pub fn grad_retain(h: u32) -> R<()> {
    t(h)?.retain_grad().map_err(js_err)
}
/// A new handle to the gradient, or 0 when there is none.
#[wasm_bindgen]
pub fn grad_get(h: u32) -> R<u32> {
    match t(h)?.grad() {
        Some(g) => out(Ok(g)),
        None => Ok(0),
    }
}
#[wasm_bindgen]
pub fn grad_set(h: u32, g: u32) -> R<()> {
    let grad = if g == 0 { None } else { Some(tc(g)?) };
    t(h)?.set_grad(grad).map_err(js_err)
}
#[wasm_bindgen]
pub fn grad_zero(h: u32) -> R<()> {
    t(h)?.zero_grad();
    Ok(())
}
#[wasm_bindgen]
pub fn grad_is_leaf(h: u32) -> R<bool> {
    Ok(t(h)?.is_leaf())
}
#[wasm_bindgen]
pub fn grad_fn_name(h: u32) -> R<Option<String>> {
    Ok(t(h)?.grad_fn_name().map(|s| s.to_string()))
}
/// `grad` 0 means "ones" (the tensor must then be a scalar).
#[wasm_bindgen]
pub fn grad_backward(h: u32, grad: u32, retain_graph: bool) -> R<()> {
    let g = if grad == 0 { None } else { Some(tc(grad)?) };
    autograd::backward(&*t(h)?, g, retain_graph).map_err(js_err)
}
#[wasm_bindgen]
pub fn grad_push_no_grad() {
    autograd::push_no_grad();
}
#[wasm_bindgen]
pub fn grad_pop_no_grad() {
    autograd::pop_no_grad();
}
#[wasm_bindgen]
pub fn grad_enabled() -> bool {
    autograd::is_grad_enabled()
}
/// The backward rule of attribution methods: 0 the gradient, 1 guided backpropagation, 2
/// DeepLift's rescale rule (see `autograd::BackwardRule`). The host sets it around one forward and
/// backward and always resets it to 0.
#[wasm_bindgen]
pub fn grad_set_rule(rule: u8) -> R<()> {
    let r = match rule {
        0 => autograd::BackwardRule::Gradient,
        1 => autograd::BackwardRule::Guided,
        2 => autograd::BackwardRule::Rescale,
        _ => return Err(arg_err(format!("unknown backward rule {}", rule))),
    };
    autograd::set_backward_rule(r);
    Ok(())
}
#[wasm_bindgen]
pub fn tensor_detach(h: u32) -> R<u32> {
    out(Ok(t(h)?.detach()))
}

// ------------------------------------------------------------------ ops

fn binary_op(code: u8) -> R<BinaryOp> {
    Ok(match code {
        0 => BinaryOp::Add,
        1 => BinaryOp::Sub,
        2 => BinaryOp::Mul,
        3 => BinaryOp::Div,
        4 => BinaryOp::Pow,
        5 => BinaryOp::Maximum,
        6 => BinaryOp::Minimum,
        _ => return Err(arg_err(format!("unknown binary op {}", code))),
    })
}

fn unary_op(code: u8) -> R<UnaryOp> {
    Ok(match code {
        0 => UnaryOp::Neg,
        1 => UnaryOp::Exp,
        2 => UnaryOp::Log,
        3 => UnaryOp::Sqrt,
        4 => UnaryOp::Abs,
        5 => UnaryOp::Relu,
        6 => UnaryOp::Sigmoid,
        7 => UnaryOp::Tanh,
        _ => return Err(arg_err(format!("unknown unary op {}", code))),
    })
}

#[wasm_bindgen]
pub fn op_binary(code: u8, a: u32, b: u32) -> R<u32> {
    out(ops::binary(binary_op(code)?, &*t(a)?, &*t(b)?))
}
#[wasm_bindgen]
pub fn op_unary(code: u8, a: u32) -> R<u32> {
    out(ops::unary(unary_op(code)?, &*t(a)?))
}
#[wasm_bindgen]
pub fn op_affine(a: u32, scale: f32, shift: f32) -> R<u32> {
    out(ops::affine_scalar(&*t(a)?, scale, shift))
}
#[wasm_bindgen]
pub fn op_pow_scalar(a: u32, p: f32) -> R<u32> {
    out(ops::pow_scalar(&*t(a)?, p))
}
#[wasm_bindgen]
pub fn op_clamp(a: u32, lo: f32, hi: f32) -> R<u32> {
    out(ops::clamp(&*t(a)?, lo, hi))
}
#[wasm_bindgen]
pub fn op_compare(code: u8, a: u32, b: u32) -> R<u32> {
    let op = match code {
        0 => CompareOp::Eq,
        1 => CompareOp::Ne,
        2 => CompareOp::Lt,
        3 => CompareOp::Le,
        4 => CompareOp::Gt,
        5 => CompareOp::Ge,
        _ => return Err(arg_err(format!("unknown comparison {}", code))),
    };
    out(ops::compare(op, &*t(a)?, &*t(b)?))
}
#[wasm_bindgen]
pub fn op_where(c: u32, a: u32, b: u32) -> R<u32> {
    out(ops::where_(&*t(c)?, &*t(a)?, &*t(b)?))
}
#[wasm_bindgen]
pub fn op_cast(a: u32, dtype: u8) -> R<u32> {
    out(ops::cast(&*t(a)?, dtype_of(dtype)?))
}
/// code: 0 sum, 1 mean, 2 max, 3 min
#[wasm_bindgen]
pub fn op_reduce(code: u8, a: u32, axes: &[i32], keepdims: bool) -> R<u32> {
    let x = t(a)?;
    let ax = axes_of(axes);
    out(match code {
        0 => ops::sum(&x, &ax, keepdims),
        1 => ops::mean(&x, &ax, keepdims),
        2 => ops::max(&x, &ax, keepdims),
        3 => ops::min(&x, &ax, keepdims),
        _ => return Err(arg_err(format!("unknown reduction {}", code))),
    })
}
#[wasm_bindgen]
pub fn op_argmax(a: u32, axis: i32, keepdims: bool) -> R<u32> {
    out(ops::argmax(&*t(a)?, axis as isize, keepdims))
}
#[wasm_bindgen]
pub fn op_softmax(a: u32, axis: i32, log: bool) -> R<u32> {
    let x = t(a)?;
    out(if log { ops::log_softmax(&x, axis as isize) } else { ops::softmax(&x, axis as isize) })
}
#[wasm_bindgen]
pub fn op_matmul(a: u32, b: u32) -> R<u32> {
    out(ops::matmul(&*t(a)?, &*t(b)?))
}
#[wasm_bindgen]
pub fn op_bmm(a: u32, b: u32, ta: bool, tb: bool) -> R<u32> {
    out(ops::bmm(&*t(a)?, &*t(b)?, ta, tb))
}
#[wasm_bindgen]
pub fn op_reshape(a: u32, shape: &[i32]) -> R<u32> {
    let x = t(a)?;
    let spec: Vec<isize> = shape.iter().map(|&d| d as isize).collect();
    let s = ops::infer_shape(&spec, x.numel(), x.shape()).map_err(js_err)?;
    out(ops::reshape(&x, &s))
}
#[wasm_bindgen]
pub fn op_permute(a: u32, perm: &[i32]) -> R<u32> {
    out(ops::permute(&*t(a)?, &axes_of(perm)))
}
#[wasm_bindgen]
pub fn op_transpose(a: u32, d0: i32, d1: i32) -> R<u32> {
    out(ops::transpose(&*t(a)?, d0 as isize, d1 as isize))
}
#[wasm_bindgen]
pub fn op_expand(a: u32, shape: &[u32]) -> R<u32> {
    out(ops::expand(&*t(a)?, &shape_of(shape)))
}
#[wasm_bindgen]
pub fn op_slice(a: u32, starts: &[i32], ends: &[i32], steps: &[i32]) -> R<u32> {
    out(ops::slice(&*t(a)?, &axes_of(starts), &axes_of(ends), &axes_of(steps)))
}
#[wasm_bindgen]
pub fn op_concat(hs: &[u32], axis: i32) -> R<u32> {
    out(ops::concat(&tl(hs)?, axis as isize))
}
#[wasm_bindgen]
pub fn op_index_select(a: u32, axis: i32, idx: u32) -> R<u32> {
    out(ops::index_select(&*t(a)?, axis as isize, &*t(idx)?))
}
#[wasm_bindgen]
pub fn op_gather(a: u32, axis: i32, idx: u32) -> R<u32> {
    out(ops::gather(&*t(a)?, axis as isize, &*t(idx)?))
}
#[wasm_bindgen]
pub fn op_contiguous(a: u32) -> R<u32> {
    out(ops::contiguous(&*t(a)?))
}
#[wasm_bindgen]
pub fn op_copy(a: u32) -> R<u32> {
    out(ops::copy(&*t(a)?))
}

/// `[dtype code, ...shape]` in one call (what the SDK caches on each tensor).
#[wasm_bindgen]
pub fn tensor_meta(h: u32) -> R<Vec<u32>> {
    let x = t(h)?;
    let mut v = Vec::with_capacity(x.rank() + 1);
    v.push(x.dtype() as u32);
    v.extend(x.shape().iter().map(|&d| d as u32));
    Ok(v)
}
#[wasm_bindgen]
pub fn op_add_scalar(a: u32, s: f32) -> R<u32> {
    out(ops::add_scalar(&*t(a)?, s))
}
#[wasm_bindgen]
pub fn op_mul_scalar(a: u32, s: f32) -> R<u32> {
    out(ops::mul_scalar(&*t(a)?, s))
}
#[wasm_bindgen]
pub fn op_assign(dst: u32, src: u32) -> R<()> {
    ops::assign(&*t(dst)?, &*t(src)?).map_err(js_err)
}
/// Dense layer `x · wᵀ + bias` (weight `[out, in]`), optionally with a fused ReLU. `bias` 0 = none.
#[wasm_bindgen]
pub fn op_linear(x: u32, w: u32, bias: u32, relu: bool) -> R<u32> {
    let b = if bias == 0 { None } else { Some(t(bias)?) };
    out(ops::linear(&*t(x)?, &*t(w)?, b.as_deref(), relu))
}

/// Address of the metadata block `[handle, dtype, rank, dims...]` of the last tensor created.
#[wasm_bindgen]
pub fn engine_meta_ptr() -> u32 {
    crate::handles::META.0.get() as u32
}
