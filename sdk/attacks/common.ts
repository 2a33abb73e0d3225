/**
 * What every adversarial attack shares: the forward (a `Module` or a differentiable function, held
 * by the explain `Attribution` base, whose parameter freezing the attacks reuse), the valid input
 * range, labels or targets, one batched loss forward/backward, and the result
 * `{ adversarial, success, norm }`. All arithmetic runs in engine ops, so a seeded attack gives
 * the same bits in every runtime and for any thread count.
 */
import { checkBool, checkFunction, checkNumber, checkObject, checkOptions, describe } from '../args.js';
import { isGradEnabled, noGrad } from '../autograd.js';
import { tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { sparseCategoricalCrossEntropy } from '../losses.js';
import { Tensor } from '../tensor.js';
import { Attribution, Rule, prepareInputs, prepareTargets, type Forward, type Target } from '../explain/common.js';

/**
 * A loss of the forward's outputs `[batch, classes]` and the labels (int32 `[batch]`): a scalar, or
 * one value per example (summed). Untargeted attacks ascend it, targeted attacks descend it
 * towards the targets.
 */
export type AttackLoss = (output: Tensor, labels: Tensor) => Tensor;

/** The valid input range every adversarial example is clipped to (ART's `clip_values`). */
export interface ClipValues {
  /** Smallest valid input value. */
  min: number;
  /** Largest valid input value. */
  max: number;
}

/** Options every attack takes. */
export interface AttackOptions {
  /**
   * `perturb(x, y)` reads `y` as targets and pushes the model towards them (default false: `y` are
   * the true labels and the attack pushes away from them).
   */
  targeted?: boolean;
  /** The valid input range (default `{ min: 0, max: 1 }`); `null` for unbounded inputs. */
  clipValues?: ClipValues | null;
}

/** What an attack returns. */
export interface AttackResult {
  /** The adversarial batch, shaped like `x` (the caller owns it). */
  adversarial: Tensor;
  /** Per example: whether the model's prediction on it is wrong (untargeted) or the target (targeted). */
  success: boolean[];
  /** Per example: the perturbation's norm in the attack's norm (L∞ for FGSM and PGD-linf, L2 otherwise). */
  norm: Float32Array;
}

/** Norm a perturbation budget is measured in: L∞ (`'linf'`, largest change of any element) or L2 (`'l2'`, Euclidean length per example). */
export type NormKind = 'linf' | 'l2';

export const BASE_KEYS = ['targeted', 'clipValues'] as const;

/** A number >= `min` (finite). */
export function nonNegative(v: unknown, what: string, min = 0): number {
  checkNumber(v, what, { finite: true });
  if ((v as number) < min) throw new ArgumentError(`${what} must be >= ${min}, got ${v}`);
  return v as number;
}

/** A number > 0 (finite). */
export function positive(v: unknown, what: string): number {
  checkNumber(v, what, { finite: true });
  if (!((v as number) > 0)) throw new ArgumentError(`${what} must be > 0, got ${v}`);
  return v as number;
}

function clipOption(v: unknown, what: string): ClipValues | null {
  if (v === undefined) return { min: 0, max: 1 };
  if (v === null) return null;
  const c = checkObject<Record<string, unknown>>(v, `${what}: clipValues`, 'an object { min, max } or null');
  const min = checkNumber(c.min, `${what}: clipValues.min`, { finite: true });
  const max = checkNumber(c.max, `${what}: clipValues.max`, { finite: true });
  if (!(max > min)) throw new ArgumentError(`${what}: clipValues needs min < max, got [${min}, ${max}]`);
  return { min, max };
}

/** A checked batch and its labels (or targets). */
export interface Batch {
  x: Tensor;
  n: number;
  /** Per-example labels (untargeted) or targets (targeted). */
  y: Int32Array;
}

/**
 * Base of every attack: the forward, the options every attack shares, and the batched helpers.
 * `perturb(x, y)` is the core a training loop calls: it makes no train/eval assumption, leaves
 * the model's parameters' `.grad` untouched, keeps no tape across steps and frees every tensor
 * it makes except the adversarial batch it returns. (Pass the Module itself: the trainable tensors
 * of a plain function, or of a model it closes over, are not known here and accumulate `.grad`.)
 */
export abstract class Attack extends Attribution {
  /** Whether `y` names target classes to reach rather than true classes to leave. */
  readonly targeted: boolean;
  /** The valid input range `{ min, max }` adversarial inputs are clipped to, or null for none. */
  readonly clipValues: ClipValues | null;

  constructor(forward: Forward, opts?: AttackOptions) {
    super(forward);
    const o = checkOptions(opts, `${new.target.name} options`);
    this.targeted = checkBool(o.targeted ?? false, `${this.constructor.name}: targeted`);
    this.clipValues = clipOption(o.clipValues, this.constructor.name);
  }

  /** Adversarial examples for the batch `x` with labels (or, targeted, targets) `y`. */
  abstract perturb(x: Tensor, y: Target): AttackResult;

  /** Checks `x` (a float32 batch inside the valid range) and `y` (one class per example). */
  protected batch(x: Tensor, y: Target): Batch {
    const what = `${this.constructor.name}.perturb()`;
    if (!isGradEnabled()) throw new ArgumentError(`${what} needs gradients: do not call it inside noGrad()`);
    if (Array.isArray(x)) throw new ArgumentError(`${what}: x must be one Tensor (a batch), got an array`);
    const { n } = prepareInputs(x, what);
    if (y === undefined) throw new ArgumentError(`${what}: y is required: ${this.targeted ? 'the target class' : 'the true label'} of each example`);
    const labels = prepareTargets(y, n, what) as Int32Array;
    const c = this.clipValues;
    if (c) {
      const [lo, hi] = tidy(() => [x.min().item(), x.max().item()]);
      if (!(lo >= c.min && hi <= c.max)) {
        throw new ArgumentError(`${what}: x has values in [${lo}, ${hi}], outside clipValues [${c.min}, ${c.max}]; pass the valid input range as clipValues (or null)`);
      }
    }
    return { x, n, y: labels };
  }

  /** `t` clipped to the valid input range. */
  protected clip(t: Tensor): Tensor {
    return this.clipValues ? t.clamp(this.clipValues.min, this.clipValues.max) : t;
  }

  /** The forward on `x` as `[rows, classes]` logits (checked). */
  protected logits(x: Tensor): Tensor {
    const out = this.run([x], [], x.shape[0]);
    if (out.rank !== 2) throw new ShapeError(`${this.constructor.name}: the forward returned [${out.shape.join(', ')}]; attacks need class scores [batch, classes]`);
    return out;
  }

  /** Checks every label is a class of `out` (`[rows, classes]`). */
  protected checkClasses(out: Tensor, y: Int32Array): void {
    const c = out.shape[1];
    const bad = y.findIndex((v) => v >= c);
    if (bad >= 0) throw new ArgumentError(`${this.constructor.name}.perturb(): y[${bad}] = ${y[bad]} is out of range for ${c} classes`);
  }

  /** The objective of one step: `loss` at the labels, after checking they are classes of the forward. */
  protected objective(b: Batch, loss: AttackLoss): (out: Tensor) => Tensor {
    return (out) => {
      this.checkClasses(out, b.y);
      return loss(out, labelTensor(b.y));
    };
  }

  /**
   * The gradient of `objective(forward(x))` (summed when it is not a scalar) with respect to `x`,
   * and the forward's detached outputs: one batched forward and backward through the explain
   * base's gradient pass (model parameters frozen). New tensors in the caller's scope.
   */
  protected lossGradient(x: Tensor, objective: (out: Tensor) => Tensor): {
    /** ∂objective/∂x, shaped like `x`. */
    grad: Tensor;
    /** The forward's outputs, detached. */
    out: Tensor;
  } {
    const [grad, out] = this.gradientPass(Rule.Gradient, () => {
      const leaf = x.detach().requiresGrad_();
      const logits = this.logits(leaf);
      const loss = objective(logits);
      if (!(loss instanceof Tensor)) throw new ArgumentError(`${this.constructor.name}: the loss returned ${describe(loss)}, not a Tensor`);
      if (loss.dtype !== 'float32') throw new DTypeError(`${this.constructor.name}: the loss returned ${loss.dtype}, not float32`);
      // One value per row, seeded with ones: the gradient of the sum.
      return { out: loss.reshape([loss.size]), targets: null, leaves: [leaf], keep: [logits.detach()] };
    });
    return { grad, out };
  }

  /** Predicted classes at `x` (no gradients); checks the labels `y` are classes of the forward. */
  protected predict(x: Tensor, y: Int32Array): Int32Array {
    return noGrad(() => tidy(() => {
      const out = this.logits(x);
      this.checkClasses(out, y);
      return Int32Array.from(out.argMax(-1).dataSync());
    }));
  }

  /** Whether each prediction counts as a success for labels (or targets) `y`. */
  protected succeeded(pred: Int32Array, y: Int32Array): boolean[] {
    return Array.from(pred, (p, i) => (this.targeted ? p === y[i] : p !== y[i]));
  }

  /** The result: `adv`, its success per example (one forward) and the per-example norm of `adv − x`. */
  protected result(b: Batch, adv: Tensor, norm: NormKind): AttackResult {
    const pred = this.predict(adv, b.y);
    const norms = tidy(() => perExampleNorm(adv.sub(b.x), norm).dataSync() as Float32Array);
    return { adversarial: adv, success: this.succeeded(pred, b.y), norm: Float32Array.from(norms) };
  }
}

/** Flattens a batch to `[batch, features]`. */
export function flat(t: Tensor): Tensor {
  return t.reshape([t.shape[0], -1]);
}

/** Per-example L∞ or L2 norm `[batch]`. */
export function perExampleNorm(d: Tensor, norm: NormKind): Tensor {
  const f = flat(d.contiguous());
  return norm === 'linf' ? f.abs().max(1) : f.square().sum(1).sqrt();
}

/** A `[batch, 1, ..., 1]` column broadcasting a per-example value against `like`. */
export function perExample(v: Tensor, like: Tensor): Tensor {
  return v.reshape([like.shape[0], ...like.shape.slice(1).map(() => 1)]);
}

/** The elementwise sign (-1, 0, 1). */
export function sign(g: Tensor): Tensor {
  return g.greater(0).sub(g.less(0));
}

/** The default attack loss: cross-entropy of logits (summed, so each example's gradient is its own). */
export function crossEntropy(out: Tensor, labels: Tensor): Tensor {
  return sparseCategoricalCrossEntropy(out, labels, { fromLogits: true, reduction: 'sum' });
}

export function lossOption(v: unknown, what: string): AttackLoss {
  return v === undefined ? crossEntropy : checkFunction<AttackLoss>(v, `${what}: loss`);
}

/** The labels as an int32 tensor `[n]`. */
export function labelTensor(y: Int32Array): Tensor {
  return tensor(y, [y.length], 'int32');
}
