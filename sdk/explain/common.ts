/**
 * The shared machinery of attribution methods (Captum's shape): a forward (a `Module` or any
 * differentiable function of one or more tensors), inputs as one tensor or a tuple, `target`,
 * `baselines`, `additionalForwardArgs`, and one batched gradient pass that every gradient method
 * uses. All arithmetic runs in engine ops, so results are the same bits in every runtime and for
 * any thread count.
 */
import { checkInt, checkOptions, describe } from '../args.js';
import { isGradEnabled, noGrad } from '../autograd.js';
import { full, onesLike, tensor, zerosLike } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { call } from '../runtime.js';
import { Tensor } from '../tensor.js';

/** A differentiable function of the inputs (then the additional forward arguments) to outputs. */
export type ForwardFunction = (...args: any[]) => Tensor; // eslint-disable-line @typescript-eslint/no-explicit-any
/** What attribution methods explain: a model, or any differentiable function. */
export type Forward = Module | ForwardFunction;
/** One input tensor, or a tuple of them (each `[batch, ...]`, the same batch). */
export type Inputs = Tensor | readonly Tensor[];
/** Attributions shaped like the inputs: a tensor for a tensor, an array for a tuple. */
export type AttributionOf<I extends Inputs> = I extends Tensor ? Tensor : Tensor[];
/**
 * Which output to explain: a class index for every example, or one per example (an array, an
 * Int32Array or an int32 tensor of length batch). Leave it out when the forward returns one value
 * per example (`[batch]` or `[batch, 1]`).
 */
export type Target = number | readonly number[] | Int32Array | Tensor;
/**
 * A reference input per input tensor: a number (every element), a tensor shaped like the input
 * (one baseline per example), or like one example (`[...]` or `[1, ...]`, shared by all).
 */
export type Baseline = number | Tensor;
/** Baselines for all inputs: one {@link Baseline} shared by every input, or one per input tensor. */
export type Baselines = Baseline | readonly Baseline[];

/** Options every method takes. */
export interface BaseOptions {
  /** Which output to explain ({@link Target}); leave out for forwards with one output per example. */
  target?: Target;
  /**
   * Extra arguments passed to the forward after the inputs (an array). Tensors whose first
   * dimension is the batch size are per-example and follow the examples when inputs are expanded
   * (integration steps, noise samples).
   */
  additionalForwardArgs?: readonly unknown[];
}

/** Inputs checked and normalised. */
export interface Prepared {
  xs: Tensor[];
  tuple: boolean;
  /** Batch size. */
  n: number;
  /** Per-example target, or null (one output per example). */
  targets: Int32Array | null;
  extra: unknown[];
}

/** Refuses option keys a method does not know (a typo would otherwise be silently ignored). */
export function checkKeys<T extends object>(opts: T | undefined, allowed: readonly string[], what: string): T {
  const o = checkOptions(opts, `${what} options`);
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ArgumentError(`${what}: unknown option '${k.slice(0, 40)}' (options: ${allowed.join(', ')})`);
  }
  return o;
}

/**
 * Checks inputs: Tensors with the same batch size. `anyDtype` (layer methods: gradients are taken
 * at a layer, so inputs may be token ids) lifts the float32 requirement.
 */
export function prepareInputs(inputs: Inputs, what: string, anyDtype = false): { xs: Tensor[]; tuple: boolean; n: number } {
  const tuple = Array.isArray(inputs);
  const xs = (tuple ? [...(inputs as readonly Tensor[])] : [inputs]) as unknown[];
  if (xs.length === 0) throw new ArgumentError(`${what}: inputs must be a Tensor or a non-empty array of Tensors`);
  for (const [j, x] of xs.entries()) {
    if (!(x instanceof Tensor)) throw new ArgumentError(`${what}: input ${j} must be a Tensor, got ${describe(x)}`);
    if (x.isDisposed) x.handle; // throws DisposedError naming it
    if (x.dtype !== 'float32' && !anyDtype) throw new DTypeError(`${what}: input ${j} is ${x.dtype}; gradients need float32 inputs (explain token ids through their embedding)`);
    if (x.rank < 1 || x.shape[0] < 1) throw new ShapeError(`${what}: input ${j} has shape [${x.shape.join(', ')}]; inputs are batches [batch >= 1, ...]`);
  }
  const ts = xs as Tensor[];
  const n = ts[0].shape[0];
  for (const [j, x] of ts.entries()) {
    if (x.shape[0] !== n) throw new ShapeError(`${what}: input ${j} has batch ${x.shape[0]} but input 0 has ${n}`);
  }
  return { xs: ts, tuple, n };
}

export function prepareTargets(target: Target | undefined, n: number, what: string): Int32Array | null {
  if (target === undefined) return null;
  if (typeof target === 'number') {
    checkInt(target, `${what}: target`, 0);
    return new Int32Array(n).fill(target);
  }
  let values: ArrayLike<number>;
  if (target instanceof Tensor) {
    if (target.dtype !== 'int32' || target.rank !== 1) throw new ArgumentError(`${what}: a target tensor must be int32 [batch], got ${target.dtype} [${target.shape.join(', ')}]`);
    values = target.dataSync();
  } else if (Array.isArray(target) || target instanceof Int32Array) {
    values = target as ArrayLike<number>;
  } else {
    throw new ArgumentError(`${what}: target must be a class index, one index per example, or left out; got ${describe(target)}`);
  }
  if (values.length !== n) throw new ArgumentError(`${what}: ${values.length} targets for a batch of ${n} examples`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = checkInt(values[i], `${what}: target[${i}]`, 0);
  return out;
}

export function prepare(inputs: Inputs, o: BaseOptions, what: string, anyDtype = false): Prepared {
  const { xs, tuple, n } = prepareInputs(inputs, what, anyDtype);
  const targets = prepareTargets(o.target, n, what);
  const extra = o.additionalForwardArgs ?? [];
  if (!Array.isArray(extra)) throw new ArgumentError(`${what}: additionalForwardArgs must be an array of arguments, got ${describe(extra)}`);
  return { xs, tuple, n, targets, extra: [...extra] };
}

/** Shapes attributions like the inputs. */
export function shaped<I extends Inputs>(p: Prepared, attrs: Tensor[]): AttributionOf<I> {
  return (p.tuple ? attrs : attrs[0]) as AttributionOf<I>;
}

/**
 * One baseline per input, as a `[batch, ...]` tensor (a broadcast view where the baseline is
 * shared), of the input's dtype (int32 token-id inputs take integer baselines, e.g. a pad id).
 * Created in the current tidy scope.
 */
export function prepareBaselines(b: Baselines | undefined, p: Prepared, what: string): Tensor[] {
  let list: readonly unknown[];
  if (b === undefined) list = p.xs.map(() => 0);
  else if (Array.isArray(b)) list = b;
  else if (typeof b === 'number' || !p.tuple) list = p.xs.map(() => b);
  else throw new ArgumentError(`${what}: with a tuple of inputs, baselines must be a number or an array with one baseline per input`);
  if (list.length !== p.xs.length) throw new ArgumentError(`${what}: ${list.length} baselines for ${p.xs.length} inputs`);
  return p.xs.map((x, j) => {
    const v = list[j];
    const rest = x.shape.slice(1);
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ArgumentError(`${what}: baseline ${j} must be finite, got ${v}`);
      if (x.dtype !== 'float32') checkInt(v, `${what}: baseline ${j} (the input is ${x.dtype})`);
      return full([1, ...rest], v, x.dtype).expand(x.shape);
    }
    if (!(v instanceof Tensor)) throw new ArgumentError(`${what}: baseline ${j} must be a number or a Tensor, got ${describe(v)}`);
    if (v.dtype !== x.dtype) throw new DTypeError(`${what}: baseline ${j} is ${v.dtype}, the input ${x.dtype}`);
    const s = v.shape.join();
    if (s === x.shape.join()) return v;
    if (s === rest.join() && v.rank === rest.length) return v.reshape([1, ...rest]).expand(x.shape);
    if (s === [1, ...rest].join()) return v.expand(x.shape);
    throw new ShapeError(`${what}: baseline ${j} has shape [${v.shape.join(', ')}]; it must be shaped like the input [${x.shape.join(', ')}] or like one example [${rest.join(', ')}]`);
  });
}

/** Rows [a, b) of a batch (a view). */
export function rows(t: Tensor, a: number, b: number): Tensor {
  const sh = t.shape;
  return t.slice([a, ...sh.slice(1).map(() => 0)], [b, ...sh.slice(1)]);
}

/** Per-example additional forward arguments picked for the rows `idx` (example index per row). */
export function expandExtra(extra: unknown[], n: number, idx: Tensor): unknown[] {
  return extra.map((a) => (a instanceof Tensor && a.rank >= 1 && a.shape[0] === n ? a.indexSelect(0, idx) : a));
}

/** Per-row targets for rows whose example indices are `idx`. */
export function expandTargets(targets: Int32Array | null, idx: Int32Array): Int32Array | null {
  return targets === null ? null : idx.map((i) => targets[i]);
}

/** A float32 column `[rows, 1, ..., 1]` of the given per-row values, broadcasting against `[rows, ...shape]`. */
export function column(values: ArrayLike<number>, rank: number): Tensor {
  return tensor(Float32Array.from(values), [values.length, ...new Array<number>(Math.max(0, rank - 1)).fill(1)]);
}

/**
 * How the engine's nonlinearities pass gradients back during one attribution pass (see
 * `autograd::BackwardRule` in the engine): the true gradient, guided backpropagation (ReLU also
 * drops negative gradients), or DeepLift's rescale rule over a batch stacking inputs over baselines.
 */
export const Rule = { Gradient: 0, Guided: 1, Rescale: 2 } as const;
export type Rule = (typeof Rule)[keyof typeof Rule];

/** Runs `fn` (a forward and its backward) under `rule`; the true gradient is restored afterwards, also on errors. */
function withRule<T>(rule: Rule, fn: () => T): T {
  if (rule === Rule.Gradient) return fn();
  call((e) => e.grad_set_rule(rule));
  try {
    return fn();
  } finally {
    call((e) => e.grad_set_rule(Rule.Gradient));
  }
}

/** Base of every attribution method: holds the forward and runs batched forward/backward passes. */
export abstract class Attribution {
  /** The model or function attributed (Captum's `forward_func`): a Module or a differentiable `(x, ...) => Tensor`. */
  readonly forwardFunc: Forward;

  constructor(forward: Forward) {
    if (!(forward instanceof Module) && typeof forward !== 'function') {
      throw new ArgumentError(`${new.target.name} needs a Module or a function of tensors, got ${describe(forward)}`);
    }
    this.forwardFunc = forward;
  }

  /** Whether `baselines` is per example (expanded with the examples by NoiseTunnel). */
  get baselinesPerExample(): boolean {
    return true;
  }

  /** The forward on `xs` and the extra arguments, unchecked (layer methods read a layer, not the output). */
  protected invoke(xs: Tensor[], extra: unknown[]): unknown {
    const f = this.forwardFunc;
    return f instanceof Module ? f.forward(xs[0], ...xs.slice(1), ...extra) : f(...xs, ...extra);
  }

  /** The forward on `xs` (and the extra arguments); checks it returns one output row per example. */
  protected run(xs: Tensor[], extra: unknown[], rowsExpected: number): Tensor {
    const out = this.invoke(xs, extra);
    if (!(out instanceof Tensor)) throw new ArgumentError(`${this.constructor.name}: the forward returned ${describe(out)}, not a Tensor`);
    const sh = out.shape;
    if (out.dtype !== 'float32' || sh.length < 1 || sh.length > 2 || sh[0] !== rowsExpected) {
      throw new ShapeError(`${this.constructor.name}: the forward returned ${out.dtype} [${sh.join(', ')}] for ${rowsExpected} examples; it must return float32 [batch] or [batch, outputs]`);
    }
    return out;
  }

  /** The one-hot (or all-ones) gradient seed selecting each row's target output. */
  #seed(out: Tensor, targets: Int32Array | null): Tensor {
    const [r, c = 1] = out.shape;
    if (targets === null) {
      if (c !== 1) throw new ArgumentError(`${this.constructor.name}: the forward returns ${c} outputs per example; pass target (a class index or one per example)`);
      return onesLike(out);
    }
    const data = new Float32Array(r * c);
    for (let i = 0; i < r; i++) {
      if (targets[i] >= c) throw new ArgumentError(`${this.constructor.name}: target ${targets[i]} is out of range for ${c} outputs`);
      data[i * c + targets[i]] = 1;
    }
    return tensor(data, out.shape);
  }

  /**
   * Runs `fn` with the model's parameters not requiring grad: backward then computes only input
   * gradients (faster) and leaves the parameters' `.grad` untouched. A plain function's own
   * trainable tensors are not known here; they accumulate `.grad` as in any backward.
   */
  protected withFrozenParameters<T>(fn: () => T): T {
    const f = this.forwardFunc;
    const frozen = f instanceof Module ? f.parameters().filter((p) => p.requiresGrad) : [];
    for (const p of frozen) p.requiresGrad = false;
    try {
      return fn();
    } finally {
      for (const p of frozen) if (!p.isDisposed) p.requiresGrad = true;
    }
  }

  /**
   * Gradients of every row's target output with respect to each input, in one forward and one
   * backward pass over all rows (rows are independent: row i's gradient is that of output i).
   * Under `rule`, the engine's nonlinearities pass back that rule's multipliers instead; with
   * `baselines` (DeepLift) the pass runs on the inputs stacked over their baselines, both halves'
   * target outputs seeded (as Captum: the rules give a pair's rows the same multipliers, so both
   * halves carry the same gradient). New tensors in the caller's scope.
   */
  protected gradients(xs: Tensor[], targets: Int32Array | null, extra: unknown[], rule: Rule = Rule.Gradient, baselines?: Tensor[]): Tensor[] {
    const r = xs[0].shape[0];
    return this.gradientPass(rule, () => {
      const leaves = xs.map((x) => x.detach().requiresGrad_());
      if (!baselines) return { out: this.run(leaves, extra, r), targets, leaves };
      const pairs = Int32Array.from({ length: 2 * r }, (_, q) => q % r);
      const out = this.run(leaves.map((l, j) => concat([l, baselines[j].contiguous()], 0)), expandExtra(extra, r, tensor(pairs, [2 * r], 'int32')), 2 * r);
      return { out, targets: expandTargets(targets, pairs), leaves };
    });
  }

  /**
   * The core of every gradient pass: `body` runs the forward and names the `leaves` (tensors that
   * require grad: inputs, or a layer's output); the pass seeds every row's target output, runs one
   * backward under `rule` with the model's parameters frozen, and returns the leaves' gradients
   * followed by `keep` (tensors `body` wants out of the pass). New tensors in the caller's scope.
   */
  protected gradientPass(rule: Rule, body: () => { out: Tensor; targets: Int32Array | null; leaves: Tensor[]; keep?: Tensor[] }): Tensor[] {
    if (!isGradEnabled()) throw new ArgumentError(`${this.constructor.name}.attribute() needs gradients: do not call it inside noGrad()`);
    return this.withFrozenParameters(() => withRule(rule, () =>
      tidy(() => {
        const { out, targets, leaves, keep = [] } = body();
        const seed = this.#seed(out, targets);
        // An output that does not depend on the leaves has zero gradient.
        if (!out.requiresGrad) return [...leaves.map((l) => zerosLike(l)), ...keep];
        out.backward(seed);
        return [...leaves.map((l) => l.grad?.detach() ?? zerosLike(l)), ...keep];
      }),
    ));
  }

  /**
   * The target outputs `[rows]` of one forward (no gradients) on rows already built, row r being a
   * variant of example `idx[r]` (its target and per-example extra arguments follow it).
   */
  protected rowOutputs(rowXs: Tensor[], idx: Int32Array, targets: Int32Array | null, extra: unknown[], n: number): Tensor {
    return noGrad(() =>
      tidy(() => {
        const r = idx.length;
        const out = this.run(rowXs, expandExtra(extra, n, tensor(idx, [r], 'int32')), r);
        const c = out.rank === 2 ? out.shape[1] : 1;
        const t = expandTargets(targets, idx);
        if (t === null && c !== 1) throw new ArgumentError(`${this.constructor.name}: the forward returns ${c} outputs per example; pass target (a class index or one per example)`);
        if (t !== null && t.some((v) => v >= c)) throw new ArgumentError(`${this.constructor.name}: a target is out of range for ${c} outputs`);
        const col = out.reshape([r, c]);
        return t === null ? col.reshape([r]) : col.gather(1, tensor(t, [r, 1], 'int32')).reshape([r]);
      }),
    );
  }

  /** The target outputs `[rows]` at `xs` (no gradients), computed `batch` rows at a time. */
  protected outputs(xs: Tensor[], targets: Int32Array | null, extra: unknown[], n: number, batch: number): Tensor {
    return noGrad(() =>
      tidy(() => {
        const parts: Tensor[] = [];
        for (let a = 0; a < n; a += batch) {
          const b = Math.min(n, a + batch);
          parts.push(tidy(() => {
            const idx = Int32Array.from({ length: b - a }, (_, k) => a + k);
            const idxT = tensor(idx, [b - a], 'int32');
            return this.rowOutputs(xs.map((x) => x.indexSelect(0, idxT)), idx, targets, extra, n);
          }));
        }
        return parts.length === 1 ? parts[0] : concat(parts, 0);
      }),
    );
  }
}
