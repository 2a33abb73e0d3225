/**
 * DeepFool (Moosavi-Dezfooli et al. 2016), the L2 version as Foolbox defines it: at each step the
 * model is linearised around the current point and every example moves to the nearest linearised
 * decision boundary among its `nCandidates` classes; the accumulated step is scaled by
 * (1 + overshoot). Every step is one batched forward and backward over batch × nCandidates rows.
 */
import { checkInt } from '../args.js';
import { tensor, zeros } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { tidy } from '../memory.js';
import { noGrad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { checkKeys, column, type Forward, type Target } from '../explain/common.js';
import { Attack, nonNegative, type AttackOptions, type AttackResult } from './common.js';

/** Options of `DeepFool` (untargeted only, as the method). */
export interface DeepFoolOptions extends Omit<AttackOptions, 'targeted'> {
  /** Maximum number of steps (default 50). */
  steps?: number;
  /** The final perturbation is (1 + overshoot) times the accumulated one (default 0.02). */
  overshoot?: number;
  /** Classes considered per example: its label and the next highest-scoring ones (default 10; at least 2). */
  nCandidates?: number;
}

/** DeepFool: the smallest L2 step to the nearest linearised decision boundary, repeated until the label changes. Returns L2 norms. */
export class DeepFool extends Attack {
  /** Maximum number of steps (default 50). */
  readonly steps: number;
  /** Overshoot: the final perturbation is (1 + overshoot) times the accumulated one (default 0.02). */
  readonly overshoot: number;
  /** Classes considered per example (default 10). */
  readonly nCandidates: number;

  constructor(forward: Forward, opts?: DeepFoolOptions) {
    const o = checkKeys(opts, ['clipValues', 'steps', 'overshoot', 'nCandidates'], 'DeepFool');
    super(forward, o);
    this.steps = checkInt(o.steps ?? 50, 'DeepFool: steps', 0, 1_000_000);
    this.overshoot = nonNegative(o.overshoot ?? 0.02, 'DeepFool: overshoot');
    this.nCandidates = checkInt(o.nCandidates ?? 10, 'DeepFool: nCandidates', 2, 1_000_000);
  }

  perturb(x: Tensor, y: Target): AttackResult {
    const b = this.batch(x, y);
    const { n } = b;
    // Candidates per example: its label, then the other classes by decreasing clean score.
    const { classes, scores } = noGrad(() => tidy(() => {
      const out = this.logits(b.x);
      this.checkClasses(out, b.y);
      return { classes: out.shape[1], scores: Float32Array.from(out.dataSync() as Float32Array) };
    }));
    const k = Math.min(this.nCandidates, classes);
    if (k < 2) throw new ArgumentError('DeepFool needs a forward with at least 2 classes');
    const cand = new Int32Array(n * k);
    for (let i = 0; i < n; i++) {
      const others = Array.from({ length: classes }, (_, c) => c).filter((c) => c !== b.y[i]);
      others.sort((p, q) => scores[i * classes + q] - scores[i * classes + p] || p - q);
      cand[i * k] = b.y[i];
      for (let j = 1; j < k; j++) cand[i * k + j] = others[j - 1];
    }
    const d = b.x.size / n;
    const active = new Float32Array(n).fill(1);
    let total = zeros(b.x.shape);
    let adv = b.x.clone();
    try {
      for (let s = 0; s < this.steps; s++) {
        const step = tidy(() => {
          const exIdx = tensor(Int32Array.from({ length: n * k }, (_, r) => Math.floor(r / k)), [n * k], 'int32');
          const candT = tensor(cand, [n * k, 1], 'int32');
          // Row (i, j) = example i at candidate class j: its gradient is that of its own score.
          const { grad, out } = this.lossGradient(adv.indexSelect(0, exIdx), (o) => o.gather(1, candT).sum());
          const pred = out.reshape([n, k, classes]).slice([0, 0, 0], [n, 1, classes]).reshape([n, classes]).argMax(-1).dataSync();
          for (let i = 0; i < n; i++) if (pred[i] !== b.y[i]) active[i] = 0;
          if (!active.some((a) => a === 1)) return null;
          const g = grad.reshape([n, k, d]);
          const w = g.slice([0, 1, 0], [n, k, d]).sub(g.slice([0, 0, 0], [n, 1, d])); // [n, k-1, d]
          const z = out.gather(1, candT).reshape([n, k]);
          const f = z.slice([0, 1], [n, k]).sub(z.slice([0, 0], [n, 1])); // [n, k-1]
          const wn = w.square().sum(-1).sqrt().add(1e-8);
          const dist = f.abs().div(wn);
          const best = dist.neg().argMax(-1, true); // [n, 1] the nearest boundary
          const wBest = w.gather(1, best.reshape([n, 1, 1]).expand([n, 1, d]).contiguous()).reshape([n, d]);
          const scale = dist.gather(1, best).add(1e-4).div(wn.gather(1, best)).mul(column(active, 2));
          return wBest.mul(scale).reshape(b.x.shape);
        });
        if (step === null) break;
        const next = tidy(() => {
          const t = total.add(step);
          return { t, a: this.clip(b.x.add(t.mul(1 + this.overshoot))) };
        });
        step.dispose();
        total.dispose();
        adv.dispose();
        total = next.t;
        adv = next.a;
      }
    } catch (e) {
      adv.dispose();
      throw e;
    } finally {
      total.dispose();
    }
    return this.result(b, adv, 'l2');
  }
}
