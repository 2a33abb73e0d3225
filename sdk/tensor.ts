/**
 * The Tensor: a handle to engine memory plus its cached shape and dtype. Every op is one engine
 * call with integer handles; no element is touched in JS. Ops return new tensors (which join the
 * enclosing `tidy` scope); `dispose()` frees one.
 */
import { checkAxes, checkAxis, checkBool, checkIndexList, checkNumber, checkOptions, checkReshape, checkShape, describe } from './args.js';
import { ArgumentError, DisposedError, DTypeError, ShapeError } from './errors.js';
import { call, E, lastTensorMeta } from './runtime.js';
import { keep, track, untrack, type HandleCell } from './memory.js';

/** Element types: `float32`, `int32` and `int8`. */
export type DType = 'float32' | 'int32' | 'int8';
export type TypedArrayFor<D extends DType> = D extends 'int32' ? Int32Array : D extends 'int8' ? Int8Array : Float32Array;
/** The typed array `dataSync()`/`data()` return: one per dtype. */
export type DataArray = Float32Array | Int32Array | Int8Array;
/** Nested arrays of numbers (any depth), a typed array, or a single number. */
export type TensorLike = number | DataArray | number[] | NestedArray;
/** Nested arrays of numbers, as `arraySync()` returns and `tensor()` takes. */
export interface NestedArray extends Array<number | NestedArray> {}

const DTYPE_CODE: Record<DType, number> = { float32: 0, int32: 1, int8: 2 };
const CODE_DTYPE: DType[] = ['float32', 'int32', 'int8'];

export function dtypeCode(d: DType): number {
  // Own keys only: 'toString' or 'constructor' must not pass as a dtype.
  const c = typeof d === 'string' && Object.hasOwn(DTYPE_CODE, d) ? DTYPE_CODE[d] : undefined;
  if (c === undefined) throw new DTypeError(`unknown dtype '${String(d)}' (expected float32, int32 or int8)`);
  return c;
}

const enum Bin { Add = 0, Sub = 1, Mul = 2, Div = 3, Pow = 4, Maximum = 5, Minimum = 6 }
const enum Un { Neg = 0, Exp = 1, Log = 2, Sqrt = 3, Abs = 4, Relu = 5, Sigmoid = 6, Tanh = 7 }
const enum Red { Sum = 0, Mean = 1, Max = 2, Min = 3 }
const enum Cmp { Eq = 0, Ne = 1, Lt = 2, Le = 3, Gt = 4, Ge = 5 }

/** Counter bumped by every backward/zeroGrad, so cached `.grad` wrappers know when to refresh. */
let gradEpoch = 0;
export function bumpGradEpoch(): void {
  gradEpoch++;
}


/** Proof that a handle comes from the engine, not from user code (see the Tensor constructor). */
const OWN_HANDLE = Symbol('edgegrad engine handle');

/** Wraps a handle the engine just returned (internal to the SDK). */
export function fromHandle(handle: number): Tensor {
  return new Tensor(handle, OWN_HANDLE);
}

/**
 * An n-dimensional array in the engine's wasm memory, with autograd. Made by the creation
 * functions (`tensor`, `zeros`, `randn`, …) and by ops; freed by `dispose()`, `tidy` or `dispose`.
 */
export class Tensor {
  /** Marker for `tidy` result scanning. */
  readonly __tensor = true as const;
  readonly #cell: HandleCell;
  #shape: number[];
  #dtype: DType;
  #grad: Tensor | null = null;
  #gradEpoch = -1;

  /**
   * Internal: wraps an engine handle (make tensors with `tensor`, `zeros`, ... or ops). Refused
   * from outside, where a raw handle could alias — and on dispose free — another tensor.
   */
  constructor(handle: number, token?: symbol) {
    if (token !== OWN_HANDLE) {
      throw new ArgumentError('fromHandle() is internal: make tensors with eg.tensor, eg.zeros, ... or ops (a raw engine handle could alias another tensor)');
    }
    const m = lastTensorMeta();
    this.#cell = { handle };
    if (m[0] === handle && m[2] !== 0xffffffff) {
      this.#dtype = CODE_DTYPE[m[1]];
      const rank = m[2];
      const shape = new Array<number>(rank);
      for (let i = 0; i < rank; i++) shape[i] = m[3 + i];
      this.#shape = shape;
    } else {
      const meta = call((e) => e.tensor_meta(handle));
      this.#dtype = CODE_DTYPE[meta[0]];
      this.#shape = Array.from(meta.subarray(1));
    }
    track(this, this.#cell);
  }

  /** The engine handle; throws DisposedError after `dispose()`. */
  get handle(): number {
    const h = this.#cell.handle;
    if (h === 0) {
      throw new DisposedError(`this tensor (${this.#dtype} [${this.#shape.join(', ')}]) was disposed and cannot be used`);
    }
    return h;
  }
  /** Dimensions of the tensor (a copy; a scalar has `[]`). */
  get shape(): number[] {
    return this.#shape.slice();
  }
  /** Element type: `'float32'`, `'int32'` or `'int8'` ({@link DType}). */
  get dtype(): DType {
    return this.#dtype;
  }
  /** Number of dimensions (`shape.length`). */
  get rank(): number {
    return this.#shape.length;
  }
  /** Number of elements (product of `shape`; 1 for a scalar). */
  get size(): number {
    return this.#shape.reduce((a, b) => a * b, 1);
  }
  /** True once {@link Tensor.dispose} has freed the engine storage; any further use throws. */
  get isDisposed(): boolean {
    return this.#cell.handle === 0;
  }

  /** Frees the tensor's engine memory (its storage is freed once no view or graph uses it). */
  dispose(): void {
    const h = this.#cell.handle;
    if (h === 0) return;
    this.#cell.handle = 0;
    untrack(this);
    this.#grad?.dispose();
    this.#grad = null;
    call((e) => e.tensor_dispose(h));
  }

  // ---------------------------------------------------------------- copy-out

  /** A copy of the elements in row-major order. */
  dataSync(): DataArray {
    const h = this.handle;
    switch (this.#dtype) {
      case 'int32':
        return call((e) => e.tensor_to_i32(h));
      case 'int8':
        return call((e) => e.tensor_to_i8(h));
      default:
        return call((e) => e.tensor_to_f32(h));
    }
  }
  /** Async form of `dataSync()` (same copy; async for API symmetry with I/O-bound backends). */
  async data(): Promise<DataArray> {
    return this.dataSync();
  }
  /** The elements as nested arrays. */
  arraySync(): number | NestedArray {
    const flat = this.dataSync();
    if (this.rank === 0) return flat[0];
    const build = (dim: number, offset: number): NestedArray => {
      const n = this.#shape[dim];
      const stride = this.#shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const out: NestedArray = [];
      for (let i = 0; i < n; i++) {
        out.push(dim === this.rank - 1 ? flat[offset + i] : build(dim + 1, offset + i * stride));
      }
      return out;
    };
    return build(0, 0);
  }
  /** Async form of {@link Tensor.arraySync}: the values as nested arrays (a number for a scalar). */
  async array(): Promise<number | NestedArray> {
    return this.arraySync();
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item() needs a tensor with one element, got shape [${this.#shape.join(', ')}]`);
    return this.dataSync()[0];
  }
  /** Short human-readable form: shape, dtype and up to the first 8 values. */
  toString(): string {
    if (this.#cell.handle === 0) return `Tensor(disposed)`;
    const n = this.size;
    const vals = Array.from(this.dataSync().subarray(0, Math.min(n, 8))).map((v) => +v.toPrecision(5));
    return `Tensor(${this.#dtype} [${this.#shape.join(', ')}]: ${vals.join(', ')}${n > 8 ? ', ...' : ''})`;
  }

  // ---------------------------------------------------------------- autograd

  /** Whether autograd records ops on this tensor and accumulates its `.grad` (PyTorch `requires_grad`). Setting it takes a boolean. */
  get requiresGrad(): boolean {
    return call((e) => e.grad_requires(this.handle));
  }
  /** Turns gradient recording on or off for this tensor (PyTorch `requires_grad_`); ArgumentError for a non-boolean. */
  set requiresGrad(on: boolean) {
    checkBool(on, 'requiresGrad');
    call((e) => e.grad_set_requires(this.handle, on));
  }
  /** Marks this leaf as trainable and returns it (chainable). */
  requiresGrad_(on = true): this {
    this.requiresGrad = on;
    return this;
  }
  /** True if the tensor was not produced by a recorded op (a user-created tensor or parameter), like PyTorch `is_leaf`. */
  get isLeaf(): boolean {
    return call((e) => e.grad_is_leaf(this.handle));
  }
  /** Name of the op that produced this tensor in the autograd graph, if any. */
  get gradFn(): string | null {
    return call((e) => e.grad_fn_name(this.handle)) ?? null;
  }
  /** Keep this non-leaf tensor's gradient after backward (saliency, Grad-CAM...). */
  retainGrad(): this {
    call((e) => e.grad_retain(this.handle));
    return this;
  }
  /**
   * The accumulated gradient, or null. The returned tensor belongs to this tensor: do not dispose
   * it; it is refreshed after each backward and freed with this tensor.
   */
  get grad(): Tensor | null {
    const h = this.handle;
    if (this.#gradEpoch === gradEpoch && this.#grad && !this.#grad.isDisposed) return this.#grad;
    this.#grad?.dispose();
    const gh = call((e) => e.grad_get(h));
    this.#grad = gh === 0 ? null : keep(fromHandle(gh));
    this.#gradEpoch = gradEpoch;
    return this.#grad;
  }
  /** Replaces (or with `null` clears) the stored gradient. */
  set grad(g: Tensor | null) {
    if (g !== null) assertTensor(g);
    call((e) => e.grad_set(this.handle, g === null ? 0 : g.handle));
    gradEpoch++;
  }
  /** Zeroes the accumulated gradient in place (like PyTorch `grad.zero_()`). */
  zeroGrad(): void {
    call((e) => e.grad_zero(this.handle));
    gradEpoch++;
  }
  /**
   * Backpropagates from this tensor (a scalar, unless `grad` is given) and accumulates gradients
   * into every leaf that requires them. The graph is freed unless `retainGraph`.
   */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    if (grad !== undefined) assertTensor(grad);
    const retain = checkBool(checkOptions(opts, 'backward() options').retainGraph ?? false, 'retainGraph');
    const g = grad === undefined ? 0 : grad.handle;
    call((e) => e.grad_backward(this.handle, g, retain));
    gradEpoch++;
  }
  /** Same storage, no autograd history. */
  detach(): Tensor {
    return this.#wrap((e) => e.tensor_detach(this.handle));
  }

  // ---------------------------------------------------------------- helpers

  #wrap(f: (e: ReturnType<typeof E>) => number): Tensor {
    return fromHandle(call(f));
  }
  #binary(code: Bin, other: Tensor | number): Tensor {
    if (typeof other === 'number') {
      const s = scalarTensor(other);
      try {
        return this.#wrap((e) => e.op_binary(code, this.handle, s.handle));
      } finally {
        s.dispose();
      }
    }
    assertTensor(other);
    return this.#wrap((e) => e.op_binary(code, this.handle, other.handle));
  }
  #unary(code: Un): Tensor {
    return this.#wrap((e) => e.op_unary(code, this.handle));
  }
  #reduce(code: Red, axis?: number | number[], keepDims = false): Tensor {
    const ax = checkAxes(axis);
    checkBool(keepDims, 'keepDims');
    return this.#wrap((e) => e.op_reduce(code, this.handle, ax, keepDims));
  }
  #compare(code: Cmp, other: Tensor | number): Tensor {
    if (typeof other === 'number') {
      const s = scalarTensor(other);
      try {
        return this.#wrap((e) => e.op_compare(code, this.handle, s.handle));
      } finally {
        s.dispose();
      }
    }
    assertTensor(other);
    return this.#wrap((e) => e.op_compare(code, this.handle, other.handle));
  }

  // ---------------------------------------------------------------- arithmetic (broadcasting)

  /** Elementwise `this + other` with NumPy broadcasting; a number adds a scalar. */
  add(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.#wrap((e) => e.op_add_scalar(this.handle, other)) : this.#binary(Bin.Add, other);
  }
  /** Elementwise `this - other` with broadcasting; throws ShapeError on incompatible shapes. */
  sub(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.#wrap((e) => e.op_add_scalar(this.handle, -other)) : this.#binary(Bin.Sub, other);
  }
  /** Elementwise `this * other` with broadcasting; a number scales. */
  mul(other: Tensor | number): Tensor {
    return typeof other === 'number' ? this.#wrap((e) => e.op_mul_scalar(this.handle, other)) : this.#binary(Bin.Mul, other);
  }
  /** Elementwise `this / other` with broadcasting (IEEE semantics: x/0 is ±Infinity or NaN). */
  div(other: Tensor | number): Tensor {
    return this.#binary(Bin.Div, other);
  }
  /** Elementwise power; a number exponent takes a fast path. */
  pow(exponent: Tensor | number): Tensor {
    return typeof exponent === 'number' ? this.#wrap((e) => e.op_pow_scalar(this.handle, exponent)) : this.#binary(Bin.Pow, exponent);
  }
  /** Elementwise maximum of `this` and `other` (broadcasting). */
  maximum(other: Tensor | number): Tensor {
    return this.#binary(Bin.Maximum, other);
  }
  /** Elementwise minimum of `this` and `other` (broadcasting). */
  minimum(other: Tensor | number): Tensor {
    return this.#binary(Bin.Minimum, other);
  }

  // ---------------------------------------------------------------- unary math and activations

  /** Elementwise negation `-x`. */
  neg(): Tensor {
    return this.#unary(Un.Neg);
  }
  /** Elementwise natural exponential `e^x`. */
  exp(): Tensor {
    return this.#unary(Un.Exp);
  }
  /** Elementwise natural logarithm (`-Infinity` at 0, NaN below). */
  log(): Tensor {
    return this.#unary(Un.Log);
  }
  /** Elementwise square root (NaN for negative inputs). */
  sqrt(): Tensor {
    return this.#unary(Un.Sqrt);
  }
  /** Elementwise absolute value. */
  abs(): Tensor {
    return this.#unary(Un.Abs);
  }
  /** Elementwise `max(x, 0)`. */
  relu(): Tensor {
    return this.#unary(Un.Relu);
  }
  /** Elementwise logistic sigmoid `1 / (1 + e^-x)`. */
  sigmoid(): Tensor {
    return this.#unary(Un.Sigmoid);
  }
  /** Elementwise hyperbolic tangent. */
  tanh(): Tensor {
    return this.#unary(Un.Tanh);
  }
  /** max(x, alpha·x). */
  leakyRelu(alpha = 0.01): Tensor {
    return this.#act(0, alpha);
  }
  /** x for x > 0, alpha·(exp(x) - 1) otherwise. */
  elu(alpha = 1): Tensor {
    return this.#act(1, alpha);
  }
  /** 0.5·x·(1 + erf(x/√2)); `approximate` uses the tanh form. */
  gelu(approximate = false): Tensor {
    return this.#act(approximate ? 3 : 2, 0);
  }
  /** x·sigmoid(x) (Swish). */
  silu(): Tensor {
    return this.#act(4, 0);
  }
  /** log(1 + exp(x)), computed stably. */
  softplus(): Tensor {
    return this.#act(5, 0);
  }
  /** log(1 + x), accurate for tiny x. */
  log1p(): Tensor {
    return this.#act(6, 0);
  }
  #act(code: number, alpha: number): Tensor {
    checkNumber(alpha, 'alpha', { finite: true });
    return this.#wrap((e) => e.op_activation(code, this.handle, alpha));
  }
  /** Elementwise `x²` (same as `pow(2)`). */
  square(): Tensor {
    return this.pow(2);
  }
  /** Clamps into [min, max]; either bound may be omitted. */
  clamp(min = -Infinity, max = Infinity): Tensor {
    checkNumber(min, 'clamp(): min');
    checkNumber(max, 'clamp(): max');
    return this.#wrap((e) => e.op_clamp(this.handle, min, max));
  }
  /** `this * scale + shift` in one pass. */
  affine(scale: number, shift: number): Tensor {
    checkNumber(scale, 'affine(): scale', { allowNaN: true });
    checkNumber(shift, 'affine(): shift', { allowNaN: true });
    return this.#wrap((e) => e.op_affine(this.handle, scale, shift));
  }

  // ---------------------------------------------------------------- comparisons (1.0 / 0.0 masks)

  /** Elementwise `this == o` as a 1.0/0.0 mask (broadcasting). */
  equal(o: Tensor | number): Tensor {
    return this.#compare(Cmp.Eq, o);
  }
  /** Elementwise `this != o` as a 1.0/0.0 mask (broadcasting). */
  notEqual(o: Tensor | number): Tensor {
    return this.#compare(Cmp.Ne, o);
  }
  /** Elementwise `this < o` as a 1.0/0.0 mask (broadcasting). */
  less(o: Tensor | number): Tensor {
    return this.#compare(Cmp.Lt, o);
  }
  /** Elementwise `this <= o` as a 1.0/0.0 mask (broadcasting). */
  lessEqual(o: Tensor | number): Tensor {
    return this.#compare(Cmp.Le, o);
  }
  /** Elementwise `this > o` as a 1.0/0.0 mask (broadcasting). */
  greater(o: Tensor | number): Tensor {
    return this.#compare(Cmp.Gt, o);
  }
  /** Elementwise `this >= o` as a 1.0/0.0 mask (broadcasting). */
  greaterEqual(o: Tensor | number): Tensor {
    return this.#compare(Cmp.Ge, o);
  }

  // ---------------------------------------------------------------- reductions

  /** Sum over `axis` (one axis, a list, or all when omitted); `keepDims` keeps reduced axes as size 1. */
  sum(axis?: number | number[], keepDims = false): Tensor {
    return this.#reduce(Red.Sum, axis, keepDims);
  }
  /** Mean over `axis` (one axis, a list, or all when omitted); `keepDims` keeps reduced axes as size 1. */
  mean(axis?: number | number[], keepDims = false): Tensor {
    return this.#reduce(Red.Mean, axis, keepDims);
  }
  /** Maximum over `axis` (one axis, a list, or all when omitted); `keepDims` keeps reduced axes as size 1. */
  max(axis?: number | number[], keepDims = false): Tensor {
    return this.#reduce(Red.Max, axis, keepDims);
  }
  /** Minimum over `axis` (one axis, a list, or all when omitted); `keepDims` keeps reduced axes as size 1. */
  min(axis?: number | number[], keepDims = false): Tensor {
    return this.#reduce(Red.Min, axis, keepDims);
  }
  /** Index of the largest value along `axis` (first on ties), int32. */
  argMax(axis = -1, keepDims = false): Tensor {
    checkAxis(axis);
    checkBool(keepDims, 'keepDims');
    return this.#wrap((e) => e.op_argmax(this.handle, axis, keepDims));
  }
  /** Numerically stable softmax along `axis`. */
  softmax(axis = -1): Tensor {
    checkAxis(axis);
    return this.#wrap((e) => e.op_softmax(this.handle, axis, false));
  }
  /** Numerically stable log-softmax along `axis`. */
  logSoftmax(axis = -1): Tensor {
    checkAxis(axis);
    return this.#wrap((e) => e.op_softmax(this.handle, axis, true));
  }

  // ---------------------------------------------------------------- linear algebra

  /** NumPy matmul: batched over leading dims (broadcast); 1-D operands act as vectors. */
  matmul(other: Tensor): Tensor {
    assertTensor(other);
    return this.#wrap((e) => e.op_matmul(this.handle, other.handle));
  }
  /** Batched product with either operand's last two dims read transposed (no copy). */
  matmulT(other: Tensor, transposeA: boolean, transposeB: boolean): Tensor {
    assertTensor(other);
    checkBool(transposeA, 'matmulT(): transposeA');
    checkBool(transposeB, 'matmulT(): transposeB');
    return this.#wrap((e) => e.op_bmm(this.handle, other.handle, transposeA, transposeB));
  }

  // ---------------------------------------------------------------- layout

  /** A view with a new shape (one size may be -1). Copies only if this tensor is not contiguous. */
  reshape(shape: number[]): Tensor {
    const spec = checkReshape(shape);
    return this.#wrap((e) => e.op_reshape(this.handle, spec));
  }
  /** Reshapes to 1-D (`reshape([-1])`). */
  flatten(): Tensor {
    return this.reshape([-1]);
  }
  /** Inserts a size-1 dimension at `axis`. */
  expandDims(axis = 0): Tensor {
    checkAxis(axis, 'expandDims(): axis');
    const r = this.rank;
    const a = axis < 0 ? axis + r + 1 : axis;
    if (!Number.isInteger(a) || a < 0 || a > r) throw new ShapeError(`expandDims: axis ${axis} out of range for rank ${r}`);
    const s = this.shape;
    s.splice(a, 0, 1);
    return this.reshape(s);
  }
  /** Removes size-1 dimensions (all, or the given axes). */
  squeeze(axis?: number | number[]): Tensor {
    const r = this.rank;
    const axes = axis === undefined ? this.#shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0)
      : Array.from(checkAxes(axis, 'squeeze(): axis'), (a) => (a < 0 ? a + r : a));
    for (const a of axes) {
      if (a < 0 || a >= r || this.#shape[a] !== 1) throw new ShapeError(`squeeze: axis ${a} of shape [${this.#shape.join(', ')}] is not of size 1`);
    }
    return this.reshape(this.#shape.filter((_, i) => !axes.includes(i)));
  }
  /** Reorders dimensions (a view): axis i of the result is axis `perm[i]` of this tensor. */
  permute(perm: number[]): Tensor {
    if (!Array.isArray(perm)) throw new ShapeError(`permute needs an array of axes, got ${describe(perm)}`);
    const p = checkAxes(perm, 'permute(): axis');
    return this.#wrap((e) => e.op_permute(this.handle, p));
  }
  /** Swaps two axes (default: the last two). A view. */
  transpose(a = -2, b = -1): Tensor {
    checkAxis(a, 'transpose(): axis');
    checkAxis(b, 'transpose(): axis');
    return this.#wrap((e) => e.op_transpose(this.handle, a, b));
  }
  /** Broadcasts to `shape` (a view). */
  expand(shape: number[]): Tensor {
    const sh = checkShape(shape, 'expand(): shape');
    return this.#wrap((e) => e.op_expand(this.handle, sh));
  }
  /**
   * A strided window (a view). `begin`/`end` per axis (negative counts from the end; `end`
   * omitted means "to the end"), optional `step` >= 1.
   */
  slice(begin: number[], end?: number[], step?: number[]): Tensor {
    const r = this.rank;
    const b = checkIndexList(begin, 'slice(): begin');
    if (b.length !== r) throw new ShapeError(`slice: begin has ${b.length} entries for a tensor of rank ${r}`);
    const en = checkIndexList(end ?? this.#shape, 'slice(): end');
    const st = checkIndexList(step ?? [], 'slice(): step');
    return this.#wrap((e) => e.op_slice(this.handle, b, en, st));
  }
  /** Picks entries along `axis` by int32 indices of any shape (like `tf.gather`). */
  indexSelect(axis: number, indices: Tensor): Tensor {
    checkAxis(axis, 'indexSelect(): axis');
    assertTensor(indices);
    return this.#wrap((e) => e.op_index_select(this.handle, axis, indices.handle));
  }
  /** `out[..i..] = this[..indices[..i..]..]` along `axis` (like `torch.gather`). */
  gather(axis: number, indices: Tensor): Tensor {
    checkAxis(axis, 'gather(): axis');
    assertTensor(indices);
    return this.#wrap((e) => e.op_gather(this.handle, axis, indices.handle));
  }
  /** A contiguous tensor with the same values (this one if already contiguous). */
  contiguous(): Tensor {
    return this.#wrap((e) => e.op_contiguous(this.handle));
  }
  /** True if the elements are laid out densely in row-major order (views from transpose/slice may not be). */
  get isContiguous(): boolean {
    return call((e) => e.tensor_is_contiguous(this.handle));
  }
  /** A copy with its own storage (gradients pass through). */
  clone(): Tensor {
    return this.#wrap((e) => e.op_copy(this.handle));
  }
  /**
   * Overwrites this tensor's values in place with `value`'s (same shape and dtype). Not recorded
   * by autograd; graphs that saved this tensor will refuse to run backward afterwards.
   */
  assign(value: Tensor): this {
    assertTensor(value);
    call((e) => e.op_assign(this.handle, value.handle));
    return this;
  }
  /** Converts the dtype (float -> int truncates toward zero; int8 saturates). */
  cast(dtype: DType): Tensor {
    const c = dtypeCode(dtype);
    return this.#wrap((e) => e.op_cast(this.handle, c));
  }
}

export function assertTensor(t: unknown, what = 'expected a Tensor'): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw new ArgumentError(`${what}, got ${describe(t)}`);
}

/** `t` itself once checked to be a Tensor (for one-line forwards: `tensorArg(x, 'ReLU').relu()`). */
export function tensorArg(t: unknown, who: string): Tensor {
  assertTensor(t, `${who} needs a Tensor`);
  return t;
}

export function scalarTensor(v: number, dtype: DType = 'float32'): Tensor {
  const c = dtypeCode(dtype);
  return fromHandle(call((e) => e.tensor_full(new Uint32Array(0), v, c)));
}

/** Whether `x` is a Tensor (live or disposed). */
export function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}
