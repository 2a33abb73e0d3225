/**
 * The Carlini–Wagner L2 attack (Carlini & Wagner 2017), as the paper and torchattacks/ART define
 * it: the adversarial example is x' = min + (max − min)·(tanh(w) + 1)/2, and Adam minimises
 * ‖x' − x‖² + c·f(x') over w, with f(x') = max(Z_y − max_{i≠y} Z_i, −κ) (targeted:
 * max(max_{i≠t} Z_i − Z_t, −κ)) on the logits Z. A binary search per example adjusts c; the
 * result keeps, per example, the successful iterate with the smallest L2 distance (x itself
 * where none succeeded). Every step is one batched forward and backward of the whole batch.
 */
import { checkInt } from '../args.js';
import { tensor } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { keep, tidy } from '../memory.js';
import { Adam } from '../optim/optimizers.js';
import { where } from '../ops.js';
import { Tensor } from '../tensor.js';
import { checkKeys, column, type Forward, type Target } from '../explain/common.js';
import { Attack, BASE_KEYS, flat, nonNegative, positive, type AttackOptions, type AttackResult } from './common.js';

/** Options of `CarliniWagnerL2`. */
export interface CarliniWagnerL2Options extends AttackOptions {
  /** The initial trade-off constant c between distance and the adversarial loss (default 1). */
  c?: number;
  /** The confidence margin κ of the logit loss (default 0). */
  kappa?: number;
  /** Adam steps per binary-search step (default 100). */
  steps?: number;
  /** Adam's learning rate on the tanh-space variables (default 0.01). */
  lr?: number;
  /** Binary-search steps over c (default 5; 1 runs once with c, as torchattacks). */
  binarySearchSteps?: number;
}

const CW_KEYS = [...BASE_KEYS, 'c', 'kappa', 'steps', 'lr', 'binarySearchSteps'];

/** Carlini–Wagner L2: the smallest L2 perturbation the optimiser finds that changes the prediction. Returns L2 norms. */
export class CarliniWagnerL2 extends Attack {
  /** Initial trade-off constant c between distance and adversarial loss (default 1). */
  readonly c: number;
  /** Confidence margin κ of the logit loss (default 0). */
  readonly kappa: number;
  /** Adam steps per binary-search step (default 100). */
  readonly steps: number;
  /** Adam learning rate on the tanh-space variables (default 0.01). */
  readonly lr: number;
  /** Binary-search steps over c (default 5). */
  readonly binarySearchSteps: number;

  constructor(forward: Forward, opts?: CarliniWagnerL2Options) {
    const o = checkKeys(opts, CW_KEYS, 'CarliniWagnerL2');
    super(forward, o);
    if (this.clipValues === null) throw new ArgumentError('CarliniWagnerL2 needs a bounded input range (clipValues { min, max }): it optimises in tanh space');
    this.c = positive(o.c ?? 1, 'CarliniWagnerL2: c');
    this.kappa = nonNegative(o.kappa ?? 0, 'CarliniWagnerL2: kappa');
    this.steps = checkInt(o.steps ?? 100, 'CarliniWagnerL2: steps', 0, 1_000_000);
    this.lr = positive(o.lr ?? 0.01, 'CarliniWagnerL2: lr');
    this.binarySearchSteps = checkInt(o.binarySearchSteps ?? 5, 'CarliniWagnerL2: binarySearchSteps', 1, 1000);
  }

  perturb(x: Tensor, y: Target): AttackResult {
    const b = this.batch(x, y);
    const { n } = b;
    const { min, max } = this.clipValues!;
    const half = (max - min) / 2;
    const c = new Float64Array(n).fill(this.c);
    const lower = new Float64Array(n);
    const upper = new Float64Array(n).fill(1e10);
    const bestL2 = new Float64Array(n).fill(Infinity);
    let best = b.x.clone();
    // w0 = atanh(u) with u = x rescaled to [-1, 1] (kept off ±1 so atanh stays finite).
    const w0 = keep(tidy(() => {
      const u = b.x.sub(min + half).div(half).clamp(-1 + 1e-6, 1 - 1e-6);
      return u.add(1).div(u.neg().add(1)).log().mul(0.5);
    }));
    try {
      this.withFrozenParameters(() => {
        for (let bs = 0; bs < this.binarySearchSteps; bs++) {
          const found = new Uint8Array(n);
          const w = w0.clone().requiresGrad_();
          const opt = new Adam([w], { lr: this.lr });
          try {
            for (let s = 0; s < this.steps; s++) {
              best = this.step(b, w, opt, c, half, min, found, bestL2, best);
            }
          } finally {
            opt.dispose();
            w.dispose();
          }
          // Binary search on c (the paper's rule): smaller after a success, larger (x10 until bounded) after a failure.
          for (let i = 0; i < n; i++) {
            if (found[i]) {
              upper[i] = Math.min(upper[i], c[i]);
              c[i] = (lower[i] + upper[i]) / 2;
            } else {
              lower[i] = Math.max(lower[i], c[i]);
              c[i] = upper[i] < 1e10 ? (lower[i] + upper[i]) / 2 : c[i] * 10;
            }
          }
        }
      });
    } catch (e) {
      best.dispose();
      throw e;
    } finally {
      w0.dispose();
    }
    return this.result(b, best, 'l2');
  }

  /** One Adam step on `w`; records each example's iterate when it succeeds closer than its best so far. Returns the (new) best batch. */
  private step(b: { x: Tensor; n: number; y: Int32Array }, w: Tensor, opt: Adam, c: Float64Array, half: number, min: number,
    found: Uint8Array, bestL2: Float64Array, best: Tensor): Tensor {
    const { n } = b;
    return tidy(() => {
      const adv = w.tanh().mul(half).add(min + half);
      const out = this.logits(adv);
      this.checkClasses(out, b.y);
      const classes = out.shape[1];
      const l2 = flat(adv.sub(b.x)).square().sum(1); // [n]
      const onehot = new Float32Array(n * classes);
      for (let i = 0; i < n; i++) onehot[i * classes + b.y[i]] = 1;
      const oh = tensor(onehot, [n, classes]);
      const real = out.mul(oh).sum(1);
      // The largest other logit: the label's entry pushed far below every other.
      const other = out.sub(oh.mul(1e4)).max(1);
      const f = (this.targeted ? other.sub(real) : real.sub(other)).maximum(-this.kappa);
      const loss = l2.sum().add(f.mul(tensor(Float32Array.from(c), [n])).sum());
      opt.zeroGrad();
      loss.backward();
      const pred = out.detach().argMax(-1).dataSync();
      const d2 = l2.detach().dataSync();
      const better = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const ok = this.targeted ? pred[i] === b.y[i] : pred[i] !== b.y[i];
        if (ok) found[i] = 1;
        if (ok && d2[i] < bestL2[i]) {
          bestL2[i] = d2[i];
          better[i] = 1;
        }
      }
      opt.step();
      if (!better.some((v) => v === 1)) return best;
      const next = where(column(better, adv.rank), adv.detach(), best);
      best.dispose();
      return next;
    });
  }
}
