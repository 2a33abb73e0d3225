/**
 * Input hardening at prediction time: `guard(model, { inputRange, shape, finite, dtype })` refuses
 * malformed inputs with typed errors before the model sees them: NaN or ±Infinity
 * (`NonFiniteInputError`), values outside the valid range (`ArgumentError`), a wrong rank or shape
 * (`ShapeError`) or dtype (`DTypeError`). Values are checked in the engine: per example, a count of
 * non-finite values and the minimum and maximum, read back as three numbers per example (never
 * every value in JS; integer inputs are compared as float32, exact below 2^24). A guard refuses malformed inputs, not adversarial ones: an adversarial
 * example is a well-formed input in range (see README, Robustness).
 */
import { checkBool, checkNumber, checkOptions, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { v, validate, type Schema } from '../io/validate.js';
import { tidy } from '../memory.js';
import { Module, moduleConfigSchema, moduleFromConfig, registerModule, type ModuleConfig } from '../nn/module.js';
import { stack, where } from '../ops.js';
import { Tensor, type DType } from '../tensor.js';

/** An input holding NaN or ±Infinity where the guard requires finite values. */
export class NonFiniteInputError extends ArgumentError {}

/** What a guard accepts. */
export interface GuardOptions {
  /** The valid value range, inclusive: `[min, max]` or `{ min, max }` (default: any value). */
  inputRange?: readonly [number, number] | {
    /** Smallest valid value. */
    min: number;
    /** Largest valid value. */
    max: number;
  };
  /**
   * The shape of an input batch, `null` for a size that may vary: `[null, 28, 28, 1]` accepts any
   * number of 28×28×1 images (and fixes the rank). Default: any shape.
   */
  shape?: readonly (number | null)[];
  /** Refuse NaN and ±Infinity (default true). */
  finite?: boolean;
  /** The input dtype (default 'float32'). */
  dtype?: DType;
}

/** The checked form of `GuardOptions` (also what a saved `GuardedModel` stores). */
interface Spec {
  inputRange: [number, number] | null;
  shape: (number | null)[] | null;
  finite: boolean;
  dtype: DType;
}

const DTYPES: readonly DType[] = ['float32', 'int32', 'int8'];

function specOf(opts: GuardOptions | undefined, what: string): Spec {
  const o = checkOptions(opts, `${what} options`);
  for (const k of Object.keys(o)) {
    if (!['inputRange', 'shape', 'finite', 'dtype'].includes(k)) throw new ArgumentError(`${what}: unknown option '${k.slice(0, 40)}' (options: inputRange, shape, finite, dtype)`);
  }
  let inputRange: [number, number] | null = null;
  if (o.inputRange !== undefined) {
    const r = o.inputRange as unknown;
    const pair = Array.isArray(r) ? r : r !== null && typeof r === 'object' ? [(r as { min?: unknown }).min, (r as { max?: unknown }).max] : null;
    if (pair === null || pair.length !== 2) throw new ArgumentError(`${what}: inputRange must be [min, max] or { min, max }, got ${describe(r)}`);
    const lo = checkNumber(pair[0], `${what}: inputRange min`, { finite: true });
    const hi = checkNumber(pair[1], `${what}: inputRange max`, { finite: true });
    if (!(lo <= hi)) throw new ArgumentError(`${what}: inputRange needs min <= max, got [${lo}, ${hi}]`);
    inputRange = [lo, hi];
  }
  let shape: (number | null)[] | null = null;
  if (o.shape !== undefined) {
    if (!Array.isArray(o.shape) || o.shape.length > 32) throw new ArgumentError(`${what}: shape must be an array of sizes (null for any size), got ${describe(o.shape)}`);
    shape = o.shape.map((d: unknown, i: number) => {
      if (d === null) return null;
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw new ArgumentError(`${what}: shape[${i}] must be a size >= 0 or null, got ${describe(d)}`);
      return d;
    });
  }
  const finite = checkBool(o.finite ?? true, `${what}: finite`);
  const dtype = o.dtype ?? 'float32';
  if (!DTYPES.includes(dtype)) throw new ArgumentError(`${what}: dtype must be one of ${DTYPES.join(', ')}, got ${describe(dtype)}`);
  return { inputRange, shape, finite, dtype };
}

const fmtShape = (s: readonly (number | null)[]) => `[${s.map((d) => (d === null ? 'any' : d)).join(', ')}]`;

/**
 * The checks of a guard, usable on their own (`new InputGuard(opts).check(x)`) in front of any
 * function. `check` returns `x` when it passes and throws the typed error naming the first problem.
 */
export class InputGuard {
  /** Inclusive `[min, max]` of accepted values, or null for any value. */
  readonly inputRange: readonly [number, number] | null;
  /** Accepted batch shape (`null` entries match any size), or null for any shape. */
  readonly shape: readonly (number | null)[] | null;
  /** Whether NaN and ±Infinity are rejected (NonFiniteInputError). */
  readonly finite: boolean;
  /** Required dtype of the input (default float32). */
  readonly dtype: DType;

  constructor(opts?: GuardOptions) {
    const s = specOf(opts, 'guard');
    this.inputRange = s.inputRange;
    this.shape = s.shape;
    this.finite = s.finite;
    this.dtype = s.dtype;
  }

  /** The options that rebuild this guard (JSON). */
  toJSON(): GuardOptions {
    return { ...(this.inputRange && { inputRange: [...this.inputRange] as [number, number] }), ...(this.shape && { shape: [...this.shape] }), finite: this.finite, dtype: this.dtype };
  }

  /** `x` if it is a well-formed input; otherwise a typed error naming the problem (and the example). */
  check(x: unknown): Tensor {
    if (!(x instanceof Tensor)) throw new ArgumentError(`guard: the input must be a Tensor, got ${describe(x)}`);
    if (x.isDisposed) x.handle; // throws DisposedError naming it
    if (x.dtype !== this.dtype) throw new DTypeError(`guard: the input is ${x.dtype}, expected ${this.dtype}`);
    const sh = this.shape;
    if (sh) {
      if (x.rank !== sh.length) throw new ShapeError(`guard: the input has rank ${x.rank} (shape [${x.shape.join(', ')}]), expected rank ${sh.length} ${fmtShape(sh)}`);
      const bad = sh.findIndex((d, i) => d !== null && d !== x.shape[i]);
      if (bad >= 0) throw new ShapeError(`guard: the input has shape [${x.shape.join(', ')}], expected ${fmtShape(sh)} (dimension ${bad} is ${x.shape[bad]}, not ${sh[bad]})`);
    }
    const checkFinite = this.finite && x.dtype === 'float32';
    if ((checkFinite || this.inputRange) && x.size > 0) this.checkValues(x, checkFinite);
    return x;
  }

  /** Per example (the first dimension): non-finite count, min and max, computed in the engine. */
  private checkValues(x: Tensor, checkFinite: boolean): void {
    const n = x.rank === 0 ? 1 : x.shape[0];
    const range = this.inputRange;
    const stats = tidy(() => noGrad(() => {
      // The engine compares float32 only: integer inputs are checked as float32 (exact below 2^24).
      const flat = x.contiguous().reshape([n, -1]);
      const f = flat.dtype === 'float32' ? flat : flat.cast('float32');
      // x − x is 0 for finite values and NaN for NaN and ±Infinity.
      const nonFinite = f.sub(f).notEqual(0);
      // Without `finite`, NaN is allowed: it must not hide the range of the other values.
      const ranged = checkFinite ? f : where(f.notEqual(f), range ? range[0] : 0, f);
      return stack([nonFinite.sum(1), ranged.min(1), ranged.max(1)], 1).dataSync();
    }));
    const k = 3;
    if (checkFinite) {
      let examples = 0;
      let first = -1;
      for (let i = 0; i < n; i++) {
        if (stats[i * k] > 0) {
          examples++;
          if (first < 0) first = i;
        }
      }
      if (first >= 0) {
        throw new NonFiniteInputError(`guard: input example ${first} holds ${stats[first * k]} non-finite values (NaN or ±Infinity)${examples > 1 ? `, as do ${examples - 1} other examples` : ''}; inputs must be finite`);
      }
    }
    if (range) {
      for (let i = 0; i < n; i++) {
        const lo = stats[i * k + 1];
        const hi = stats[i * k + 2];
        if (lo < range[0] || hi > range[1]) {
          throw new ArgumentError(`guard: input example ${i} has values in [${lo}, ${hi}], outside the valid input range [${range[0]}, ${range[1]}]`);
        }
      }
    }
  }
}

/**
 * A model behind an input guard: `forward`, `predict`, `evaluate` and `fit` refuse malformed
 * inputs (see `guard`) and otherwise are the model's. The model is its submodule `model`, so its
 * parameters, modes and state dict are the guarded model's (state-dict names gain the prefix
 * `model.`); `saveModel`/`loadModel` keep the guard with the model.
 */
export class GuardedModel extends Module {
  /** The wrapped model (a submodule; state-dict names are prefixed `model.`). */
  readonly model: Module;
  /** The checks applied to each input. */
  readonly guard: InputGuard;

  constructor(model: Module, opts?: GuardOptions) {
    if (!(model instanceof Module)) throw new ArgumentError(`GuardedModel needs a Module, got ${describe(model)}`);
    const g = new InputGuard(opts);
    super();
    this.guard = g;
    this.model = this.registerModule('model', model);
  }

  forward(x: Tensor, ...rest: unknown[]): Tensor {
    return this.model.forward(this.guard.check(x), ...rest);
  }

  /** The model's `predict`, after checking the whole input once. */
  override predict(x: Tensor, o?: { batchSize?: number }): Tensor {
    return this.model.predict(this.guard.check(x), o);
  }

  override getConfig(): Record<string, unknown> {
    return { model: this.model.toConfig(), guard: this.guard.toJSON() };
  }
}

const guardJsonSchema = v.object({}, {
  optional: {
    inputRange: v.tuple<[number, number]>([v.number(), v.number()]),
    shape: v.array(v.union<number | null>(v.int({ min: 0 }), v.literal(null)), { max: 32 }),
    finite: v.boolean(),
    dtype: v.oneOf(DTYPES),
  },
}) as Schema<GuardOptions>;
const guardedConfigSchema = v.object({ model: moduleConfigSchema, guard: guardJsonSchema });

registerModule('GuardedModel', (c) => {
  const cfg = validate(guardedConfigSchema, c, 'GuardedModel config', ArgumentError);
  const guardOpts = new InputGuard(cfg.guard).toJSON(); // checked before the model is built
  return new GuardedModel(moduleFromConfig(cfg.model as ModuleConfig), guardOpts);
});

/**
 * A function behind an input guard (its first argument is checked).
 * @typeParam F - The guarded function's type.
 */
export type GuardedFunction<F extends (x: Tensor, ...rest: never[]) => Tensor> = F & {
  /** The checks applied to the first argument. */
  readonly guard: InputGuard;
};

/**
 * Puts `model` behind an input guard: a Module becomes a `GuardedModel` (forward, predict, evaluate
 * and fit check their inputs), a function `(x, ...rest) => Tensor` a function checking `x`. A bad
 * input throws `NonFiniteInputError` (NaN or ±Infinity, unless `finite: false`), `ArgumentError`
 * (values outside `inputRange`; not a Tensor), `ShapeError` (rank or a fixed size of `shape`) or
 * `DTypeError` (not `dtype`, default float32), naming the first offending example.
 *
 * ```ts
 * const safe = eg.robust.guard(model, { inputRange: [0, 1], shape: [null, 28, 28, 1] });
 * safe.predict(x);   // throws on NaN, values outside [0, 1] or a wrong shape
 * ```
 */
export function guard(model: Module, opts?: GuardOptions): GuardedModel;
/**
 * A function of tensors behind the guard: it checks the first argument, then calls `model`; the guard is its `guard` property.
 * @typeParam F - The function's type, kept by the result.
 */
export function guard<F extends (x: Tensor, ...rest: never[]) => Tensor>(model: F, opts?: GuardOptions): GuardedFunction<F>;
export function guard(model: Module | ((x: Tensor, ...rest: never[]) => Tensor), opts?: GuardOptions): GuardedModel | GuardedFunction<(x: Tensor) => Tensor> {
  if (model instanceof Module) return new GuardedModel(model, opts);
  if (typeof model !== 'function') throw new ArgumentError(`guard needs a Module or a function of a Tensor, got ${describe(model)}`);
  const g = new InputGuard(opts);
  const f = (x: Tensor, ...rest: never[]) => model(g.check(x), ...rest);
  return Object.assign(f, { guard: g });
}
