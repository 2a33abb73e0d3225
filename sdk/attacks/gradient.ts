/**
 * Gradient-sign and projected-gradient attacks: `FGSM` (Goodfellow et al. 2015) and `PGD` (Madry
 * et al. 2018) under the L∞ or L2 norm, with torchattacks' and ART's definitions. Every step is
 * one batched forward and backward of the whole batch; nothing is kept between steps but the
 * current adversarial batch.
 */
import { checkBool, checkInt } from '../args.js';
import { noGrad } from '../autograd.js';
import { rand, randn } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { tidy } from '../memory.js';
import { Tensor } from '../tensor.js';
import { checkKeys, type Forward, type Target } from '../explain/common.js';
import { subSeed } from '../explain/gradient.js';
import {
  Attack, BASE_KEYS, labelTensor, lossOption, nonNegative, perExample, perExampleNorm, positive, sign,
  type AttackLoss, type AttackOptions, type AttackResult, type Batch, type NormKind,
} from './common.js';
import { crossEntropyRows } from './apgd.js';
import { mergeRows, pickRows } from './rows.js';

/** Options of `FGSM`. */
export interface FGSMOptions extends AttackOptions {
  /** The L∞ budget: every element moves by at most eps (default 8/255). */
  eps?: number;
  /** The loss ascended (default: cross-entropy of the forward's logits). */
  loss?: AttackLoss;
}

/**
 * The fast gradient sign method: x' = clip(x + eps·sign(∇ₓ loss(f(x), y))) in one step (targeted:
 * x − eps·sign(∇ₓ loss(f(x), target))). Returns L∞ norms.
 */
export class FGSM extends Attack {
  /** L∞ budget (default 8/255). */
  readonly eps: number;
  /** The loss ascended (default: cross-entropy of the logits). */
  readonly loss: AttackLoss;

  constructor(forward: Forward, opts?: FGSMOptions) {
    const o = checkKeys(opts, [...BASE_KEYS, 'eps', 'loss'], 'FGSM');
    super(forward, o);
    this.eps = nonNegative(o.eps ?? 8 / 255, 'FGSM: eps');
    this.loss = lossOption(o.loss, 'FGSM');
  }

  perturb(x: Tensor, y: Target): AttackResult {
    const b = this.batch(x, y);
    const adv = tidy(() => {
      const { grad } = this.lossGradient(b.x, this.objective(b, this.loss));
      return this.clip(b.x.add(sign(grad).mul(this.targeted ? -this.eps : this.eps)));
    });
    return this.result(b, adv, 'linf');
  }
}

/** Options of `PGD`. */
export interface PGDOptions extends AttackOptions {
  /** 'linf' (default) or 'l2'. */
  norm?: NormKind;
  /** The budget: the radius of the ball around x (default 8/255 for linf, 1 for l2). */
  eps?: number;
  /** The step size alpha (default 2/255 for linf, 0.2 for l2). */
  stepSize?: number;
  /** Number of steps (default 10). */
  steps?: number;
  /** Start at a uniformly random point of the ball (default true). */
  randomStart?: boolean;
  /** Seed of the random start (default: the engine's global stream). */
  seed?: number;
  /** The loss ascended (default: cross-entropy of the forward's logits). */
  loss?: AttackLoss;
  /**
   * Random restarts (ART's `num_random_init`; default 1). Restart 0 runs on every example, each
   * later one only on the examples no earlier restart fooled; an example keeps its first successful
   * restart, else its highest-loss one. Needs `randomStart`.
   */
  restarts?: number;
}

const PGD_KEYS = [...BASE_KEYS, 'norm', 'eps', 'stepSize', 'steps', 'randomStart', 'seed', 'loss', 'restarts'];

/**
 * Projected gradient descent: from x (or a random point of the ε-ball), `steps` steps of size
 * `stepSize` along the loss gradient's sign (linf) or its L2-normalised direction (l2), each
 * followed by the projection onto the ε-ball around x and the valid range (torchattacks' `PGD`
 * and `PGDL2`). Targeted attacks descend the loss towards the targets. Returns norms in `norm`.
 */
export class PGD extends Attack {
  /** Norm of the ball: `'linf'` (default) or `'l2'`. */
  readonly norm: NormKind;
  /** Radius of the ball (default 8/255 for linf, 1 for l2). */
  readonly eps: number;
  /** Step size α (default 2/255 for linf, 0.2 for l2). */
  readonly stepSize: number;
  /** Number of steps (default 10). */
  readonly steps: number;
  /** Start at a uniformly random point of the ball (default true). */
  readonly randomStart: boolean;
  /** Seed of the random start (undefined: the engine's global stream). */
  readonly seed: number | undefined;
  /** The loss ascended (default: cross-entropy of the logits). */
  readonly loss: AttackLoss;
  /** Random restarts (default 1). */
  readonly restarts: number;

  constructor(forward: Forward, opts?: PGDOptions) {
    const o = checkKeys(opts, PGD_KEYS, 'PGD');
    super(forward, o);
    const norm = o.norm ?? 'linf';
    if (norm !== 'linf' && norm !== 'l2') throw new ArgumentError(`PGD: norm must be 'linf' or 'l2', got ${String(norm).slice(0, 40)}`);
    this.norm = norm;
    this.eps = nonNegative(o.eps ?? (norm === 'linf' ? 8 / 255 : 1), 'PGD: eps');
    this.stepSize = positive(o.stepSize ?? (norm === 'linf' ? 2 / 255 : 0.2), 'PGD: stepSize');
    this.steps = checkInt(o.steps ?? 10, 'PGD: steps', 0, 1_000_000);
    this.randomStart = checkBool(o.randomStart ?? true, 'PGD: randomStart');
    this.seed = o.seed === undefined ? undefined : checkInt(o.seed, 'PGD: seed', 0, Number.MAX_SAFE_INTEGER);
    this.loss = lossOption(o.loss, 'PGD');
    this.restarts = checkInt(o.restarts ?? 1, 'PGD: restarts', 1, 100_000);
    if (this.restarts > 1 && !this.randomStart) throw new ArgumentError(`PGD: restarts = ${this.restarts} needs randomStart (every restart would repeat the first)`);
  }

  perturb(x: Tensor, y: Target): AttackResult {
    const b = this.batch(x, y);
    if (this.restarts === 1) return this.result(b, this.#descend(b, 0), this.norm);
    const done = new Uint8Array(b.n);
    const bestLoss = new Float32Array(b.n).fill(-Infinity);
    let adv = b.x.clone();
    try {
      for (let q = 0; q < this.restarts; q++) {
        const rows = Int32Array.from(done.keys()).filter((i) => !done[i]);
        if (rows.length === 0) break;
        const sub = { x: pickRows(b.x, rows), n: rows.length, y: rows.map((i) => b.y[i]) };
        let a: Tensor;
        try {
          a = this.#descend(sub, q);
        } finally {
          sub.x.dispose();
        }
        const { pred, loss } = this.#score(a, sub.y);
        const from = new Int32Array(b.n).fill(-1);
        rows.forEach((i, k) => {
          if (this.targeted ? pred[k] === sub.y[k] : pred[k] !== sub.y[k]) {
            done[i] = 1;
            from[i] = k;
          } else if (loss[k] > bestLoss[i]) {
            bestLoss[i] = loss[k];
            from[i] = k;
          }
        });
        const merged = mergeRows(adv, a, from);
        adv.dispose();
        a.dispose();
        adv = merged;
      }
    } catch (e) {
      adv.dispose();
      throw e;
    }
    return this.result(b, adv, this.norm);
  }

  /**
   * Predictions at `adv` and each example's loss there (negated when targeted: higher is better
   * for the attack); a loss that returns one value for the batch ranks restarts by cross-entropy.
   */
  #score(adv: Tensor, y: Int32Array): { pred: Int32Array; loss: Float32Array } {
    return noGrad(() => tidy(() => {
      const out = this.logits(adv);
      const labels = labelTensor(y);
      let l = this.loss(out, labels);
      if (!(l instanceof Tensor) || l.size !== y.length) l = crossEntropyRows(out, labels);
      const loss = Float32Array.from(l.reshape([y.length]).dataSync() as Float32Array, (v) => (this.targeted ? -v : v));
      return { pred: Int32Array.from(out.argMax(-1).dataSync()), loss };
    }));
  }

  /** One PGD run from restart `q`'s start; a new tensor. */
  #descend(b: Batch, q: number): Tensor {
    const objective = this.objective(b, this.loss);
    const dir = this.targeted ? -1 : 1;
    let adv = tidy(() => this.clip(this.randomStart && this.eps > 0 ? b.x.add(this.start(b.x, q)) : b.x.clone()));
    try {
      for (let s = 0; s < this.steps; s++) {
        const next = tidy(() => {
          const { grad } = this.lossGradient(adv, objective);
          const step = this.norm === 'linf'
            ? sign(grad).mul(dir * this.stepSize)
            // Each example's gradient scaled to L2 norm stepSize (1e-10 guards a zero gradient, as torchattacks).
            : grad.div(perExample(perExampleNorm(grad, 'l2').add(1e-10), grad)).mul(dir * this.stepSize);
          return this.clip(b.x.add(this.project(adv.add(step).sub(b.x))));
        });
        adv.dispose();
        adv = next;
      }
    } catch (e) {
      adv.dispose();
      throw e;
    }
    return adv;
  }

  /** `delta` projected onto the ε-ball. */
  private project(delta: Tensor): Tensor {
    if (this.norm === 'linf') return delta.clamp(-this.eps, this.eps);
    // Scale by min(1, eps / ‖δ‖) per example (an all-zero δ has scale 1).
    const n = perExampleNorm(delta, 'l2');
    return delta.mul(perExample(n.maximum(1e-30).pow(-1).mul(this.eps).minimum(1), delta));
  }

  /** A random start in the ε-ball: uniform per element (linf), or a uniform radius along a normal direction (l2). */
  private start(x: Tensor, q: number): Tensor {
    if (this.norm === 'linf') return rand(x.shape, -this.eps, this.eps, subSeed(this.seed, 0, q));
    const d = randn(x.shape, 0, 1, subSeed(this.seed, 1, q));
    const r = rand([x.shape[0]], 0, 1, subSeed(this.seed, 2, q));
    return d.mul(perExample(r.mul(this.eps).div(perExampleNorm(d, 'l2').maximum(1e-30)), d));
  }
}
