/**
 * Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
 * diverse parameter-free attacks"): `APGDCE` (cross-entropy) and `APGDT` (the targeted DLR loss over
 * the top-k classes), as the reference implementation in AutoAttack (`autopgd_base.py`) and
 * torchattacks' `APGD`/`APGDT`: momentum 0.75, step size 2ε halved at checkpoints where the loss
 * oscillates or stalls, the best point kept, restarts run only on the examples still robust. Every
 * step is one batched forward and backward; the step-size decisions compare float32 losses read
 * back from the engine, so a seeded run is the same bits in every runtime.
 */
import { checkInt } from '../args.js';
import { arange, rand, randn, tensor } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { tidy } from '../memory.js';
import { where } from '../ops.js';
import { sparseCategoricalCrossEntropy } from '../losses.js';
import { noGrad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { checkKeys, column, type Forward, type Target } from '../explain/common.js';
import { subSeed } from '../explain/gradient.js';
import {
  Attack, BASE_KEYS, nonNegative, perExample, perExampleNorm, positive, sign,
  type AttackOptions, type AttackResult, type Batch, type NormKind,
} from './common.js';
import { mergeRows, pickRows, swap } from './rows.js';

/** Options of `APGDCE` and `APGDT`. */
export interface APGDOptions extends AttackOptions {
  /** 'linf' (default) or 'l2'. */
  norm?: NormKind;
  /** The budget: the radius of the ball around x (default 8/255 for linf, 0.5 for l2, as AutoAttack). */
  eps?: number;
  /** Iterations per run (AutoAttack's `n_iter`, default 100). */
  nIter?: number;
  /** Random restarts, each on the examples no earlier restart fooled (default 1). */
  restarts?: number;
  /** Fraction of improving steps below which the step size is halved at a checkpoint (default 0.75). */
  rho?: number;
  /** Seed of the random starts (default: the engine's global stream). */
  seed?: number;
}

/** Options of `APGDT`. */
export interface APGDTOptions extends Omit<APGDOptions, 'targeted'> {
  /** How many of the highest-scoring other classes are tried as targets (default 9, capped at classes − 1). */
  nTargetClasses?: number;
}

const APGD_KEYS = [...BASE_KEYS, 'norm', 'eps', 'nIter', 'restarts', 'rho', 'seed'];

/** Per-example loss `[n]` of logits `[n, classes]` (ascended). */
type RowLoss = (out: Tensor) => Tensor;

/** What one APGD run needs from its attack. */
interface Run {
  norm: NormKind;
  eps: number;
  nIter: number;
  rho: number;
  clip(t: Tensor): Tensor;
  /** Gradient of the summed per-example loss at `xa`, and the detached logits. */
  gradient(xa: Tensor): { grad: Tensor; out: Tensor };
  /** Per-example loss of detached logits. */
  loss: RowLoss;
  /** Per example: whether these logits count as a success. */
  fooled(out: Tensor): Uint8Array;
}

/** Per-example unit-norm direction (L∞: divided by max |d|; L2: by ‖d‖₂), 1e-12 guarding zero as AutoAttack. */
function normalize(d: Tensor, norm: NormKind): Tensor {
  return d.div(perExample(perExampleNorm(d, norm).add(1e-12), d));
}

/** The float32 values of a `[n]` tensor. */
function values(t: Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

/** A `[n, 1, ..., 1]` 0/1 condition for `where` from per-example flags. */
function rowMask(flags: ArrayLike<number>, like: Tensor): Tensor {
  return column(Array.from(flags, (f) => (f ? 1 : 0)), like.rank);
}

/**
 * One APGD run from `start` (owned) on the batch `x`: returns the highest-loss point, the last
 * successful point (meaningful where `fooled`), the per-example flags and best losses.
 */
function apgdRun(r: Run, x: Tensor, start: Tensor): { best: Tensor; bestAdv: Tensor; fooled: Uint8Array; lossBest: Float32Array } {
  const n = x.shape[0];
  const nIter2 = Math.max(Math.floor(0.22 * r.nIter), 1);
  const nIterMin = Math.max(Math.floor(0.06 * r.nIter), 1);
  const sizeDecr = Math.max(Math.floor(0.03 * r.nIter), 1);
  // Every tensor the run holds, replaced in place; all but best and bestAdv are freed at the end.
  const s: Record<'xAdv' | 'xOld' | 'grad' | 'gradBest' | 'best' | 'bestAdv' | 'lo' | 'hi', Tensor | null> = {
    xAdv: start, xOld: null, grad: null, gradBest: null, best: null, bestAdv: null, lo: null, hi: null,
  };
  const set = (k: keyof typeof s, t: Tensor): Tensor => {
    const old = s[k];
    s[k] = t;
    if (old && old !== t) old.dispose();
    return t;
  };
  let ok = false;
  try {
    const [lo, hi] = tidy(() => [x.sub(r.eps), x.add(r.eps)]);
    s.lo = lo;
    s.hi = hi;
    const g0 = tidy(() => r.gradient(start));
    s.grad = g0.grad;
    let lossBest = tidy(() => values(r.loss(g0.out)));
    const fooled = r.fooled(g0.out);
    g0.out.dispose();
    s.xOld = start.clone();
    s.gradBest = g0.grad.clone();
    s.best = start.clone();
    s.bestAdv = start.clone();
    const stepSize = new Float32Array(n).fill(2 * r.eps);
    // lossSteps[i + 1] is the loss after step i; lossSteps[0] the start's (the reference's index -1).
    const lossSteps: Float32Array[] = [lossBest.slice()];
    let lossBestLastCheck = lossBest.slice();
    let reducedLastCheck = new Uint8Array(n).fill(1);
    let k = nIter2;
    let counter = 0;
    for (let i = 0; i < r.nIter; i++) {
      const a = i > 0 ? 0.75 : 1;
      const xAdv = s.xAdv!;
      const grad = s.grad!;
      const next = tidy(() => {
        const momentum = xAdv.sub(s.xOld!).mul(1 - a);
        const ss = column(stepSize, x.rank);
        if (r.norm === 'linf') {
          const box = (t: Tensor) => r.clip(t.maximum(lo).minimum(hi));
          const z = box(xAdv.add(sign(grad).mul(ss)));
          return box(xAdv.add(z.sub(xAdv).mul(a)).add(momentum));
        }
        const ball = (t: Tensor) => {
          const d = t.sub(x);
          return r.clip(x.add(normalize(d, 'l2').mul(perExample(perExampleNorm(d, 'l2').minimum(r.eps), d))));
        };
        const z = ball(xAdv.add(normalize(grad, 'l2').mul(ss)));
        return ball(xAdv.add(z.sub(xAdv).mul(a)).add(momentum));
      });
      s.xOld!.dispose();
      s.xOld = xAdv;
      s.xAdv = next;
      const g = tidy(() => r.gradient(next));
      set('grad', g.grad);
      const loss = tidy(() => values(r.loss(g.out)));
      const now = r.fooled(g.out);
      g.out.dispose();
      if (now.some((f) => f)) set('bestAdv', tidy(() => where(rowMask(now, x), next, s.bestAdv!)));
      for (let j = 0; j < n; j++) fooled[j] |= now[j];
      lossSteps.push(loss);
      const improved = Uint8Array.from(loss, (v, j) => (v > lossBest[j] ? 1 : 0));
      if (improved.some((f) => f)) {
        set('best', tidy(() => where(rowMask(improved, x), next, s.best!)));
        set('gradBest', tidy(() => where(rowMask(improved, x), s.grad!, s.gradBest!)));
        const prev = lossBest;
        lossBest = Float32Array.from(loss, (v, j) => (improved[j] ? v : prev[j]));
      }
      if (++counter === k) {
        // Condition 1: at most rho·k of the last k steps raised the loss; condition 2: the step
        // size was not reduced at the last checkpoint and the best loss has not improved since.
        const reduce = new Uint8Array(n);
        for (let j = 0; j < n; j++) {
          let ups = 0;
          for (let c = 0; c < k; c++) if (lossSteps[i + 1 - c][j] > lossSteps[i - c][j]) ups++;
          const stalled = !reducedLastCheck[j] && lossBestLastCheck[j] >= lossBest[j];
          reduce[j] = ups <= k * r.rho || stalled ? 1 : 0;
        }
        reducedLastCheck = reduce;
        lossBestLastCheck = lossBest.slice();
        if (reduce.some((f) => f)) {
          for (let j = 0; j < n; j++) if (reduce[j]) stepSize[j] /= 2;
          const restored = tidy(() => where(rowMask(reduce, x), s.best!, next));
          next.dispose();
          s.xAdv = restored;
          set('grad', tidy(() => where(rowMask(reduce, x), s.gradBest!, s.grad!)));
        }
        k = Math.max(k - sizeDecr, nIterMin);
        counter = 0;
      }
    }
    ok = true;
    return { best: s.best!, bestAdv: s.bestAdv!, fooled, lossBest };
  } finally {
    for (const key of Object.keys(s) as (keyof typeof s)[]) {
      const t = s[key];
      if (t && !t.isDisposed && !(ok && (key === 'best' || key === 'bestAdv'))) t.dispose();
    }
  }
}

/** Shared options, restarts and the merge of runs into one adversarial batch. */
function apgdOptions(o: APGDOptions, what: string): { norm: NormKind; eps: number; nIter: number; restarts: number; rho: number; seed: number | undefined } {
  const norm = o.norm ?? 'linf';
  if (norm !== 'linf' && norm !== 'l2') throw new ArgumentError(`${what}: norm must be 'linf' or 'l2', got ${String(norm).slice(0, 40)}`);
  const rho = positive(o.rho ?? 0.75, `${what}: rho`);
  if (rho > 1) throw new ArgumentError(`${what}: rho must be in (0, 1], got ${rho}`);
  return {
    norm,
    eps: nonNegative(o.eps ?? (norm === 'linf' ? 8 / 255 : 0.5), `${what}: eps`),
    nIter: checkInt(o.nIter ?? 100, `${what}: nIter`, 1, 1_000_000),
    restarts: checkInt(o.restarts ?? 1, `${what}: restarts`, 1, 100_000),
    rho,
    seed: o.seed === undefined ? undefined : checkInt(o.seed, `${what}: seed`, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** Per-example cross-entropy of logits (reduction none). */
export function crossEntropyRows(out: Tensor, labels: Tensor): Tensor {
  return sparseCategoricalCrossEntropy(out, labels, { fromLogits: true, reduction: 'none' });
}

/**
 * The targeted DLR loss (Croce & Hein 2020, eq. 7): −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12),
 * z_πi the i-th largest logit, per example. The top values are gathered from `z` (gradients flow
 * to the chosen logits, as through a sort).
 */
export function dlrTargetedLoss(z: Tensor, y: Tensor, t: Tensor): Tensor {
  const [n, c] = z.shape;
  const classes = arange(0, c).reshape([1, c]);
  const top: Tensor[] = [];
  let masked = z.detach();
  for (let i = 0; i < 4; i++) {
    const idx = masked.argMax(1, true);
    top.push(z.gather(1, idx).reshape([n]));
    if (i < 3) masked = where(classes.equal(idx.cast('float32')), -Infinity, masked);
  }
  const zy = z.gather(1, y.reshape([n, 1])).reshape([n]);
  const zt = z.gather(1, t.reshape([n, 1])).reshape([n]);
  return zy.sub(zt).neg().div(top[0].sub(top[2].add(top[3]).mul(0.5)).add(1e-12));
}

/** What an APGD attack runs: `runs` runs, run `q` ascending `loss(q, rows)` on the rows still robust. */
interface Plan {
  runs: number;
  loss(q: number, rows: Int32Array): (out: Tensor, labels: Tensor) => Tensor;
}
/** Makes the plan from the checked batch and its clean logits (`[n · classes]`, row-major). */
type Planner = (b: Batch, clean: Float32Array, classes: number) => Plan;

/**
 * Base of the two APGD attacks: options, random starts and the restarts. Examples the model
 * already gets wrong (or, targeted, already assigns the target) are returned unchanged, as
 * AutoAttack; every other example ends at its last successful point, or, where no run succeeded,
 * at the highest-loss point of all runs.
 */
abstract class APGDAttack extends Attack {
  /** Norm of the ball: `'linf'` (default) or `'l2'`. */
  readonly norm: NormKind;
  /** Radius of the ball (default 8/255 for linf, 0.5 for l2, as AutoAttack). */
  readonly eps: number;
  /** Iterations per run (AutoAttack's `n_iter`, default 100). */
  readonly nIter: number;
  /** Random restarts, each on the examples no earlier restart fooled (default 1). */
  readonly restarts: number;
  /** Fraction of improving steps below which the step size is halved at a checkpoint (default 0.75). */
  readonly rho: number;
  /** Seed of the random starts (undefined: the engine's global stream). */
  readonly seed: number | undefined;
  readonly #plan: Planner;

  constructor(forward: Forward, o: APGDOptions, what: string, plan: Planner) {
    super(forward, o);
    const p = apgdOptions(o, what);
    this.norm = p.norm;
    this.eps = p.eps;
    this.nIter = p.nIter;
    this.restarts = p.restarts;
    this.rho = p.rho;
    this.seed = p.seed;
    this.#plan = plan;
  }

  perturb(x: Tensor, y: Target): AttackResult {
    const b = this.batch(x, y);
    const { z, c } = tidy(() => noGrad(() => {
      const out = this.logits(b.x);
      this.checkClasses(out, b.y);
      return { z: Float32Array.from(out.dataSync() as Float32Array), c: out.shape[1] };
    }));
    const plan = this.#plan(b, z, c);
    const done = Uint8Array.from(this.succeeded(argMaxRows(z, c), b.y), (v) => (v ? 1 : 0));
    const bestLoss = new Float32Array(b.n).fill(-Infinity);
    let adv = b.x.clone();
    try {
      for (let q = 0; q < plan.runs; q++) {
        const rows = Int32Array.from(done.keys()).filter((i) => !done[i]);
        if (rows.length === 0) break;
        const res = this.#run(b, rows, plan.loss(q, rows), q);
        const from = new Int32Array(b.n).fill(-1);
        rows.forEach((i, k) => {
          if (res.fooled[k]) {
            done[i] = 1;
            from[i] = k;
          } else if (res.lossBest[k] > bestLoss[i]) {
            bestLoss[i] = res.lossBest[k];
            from[i] = k;
          }
        });
        const chosen = tidy(() => where(rowMask(res.fooled, res.best), res.bestAdv, res.best));
        res.best.dispose();
        res.bestAdv.dispose();
        adv = swap(adv, mergeRows(adv, chosen, from));
        chosen.dispose();
      }
    } catch (e) {
      adv.dispose();
      throw e;
    }
    return this.result(b, adv, this.norm);
  }

  /** Run `q` on the examples `rows` with the per-example loss `lossFn`. */
  #run(b: Batch, rows: Int32Array, lossFn: (out: Tensor, labels: Tensor) => Tensor, q: number): ReturnType<typeof apgdRun> {
    const y = rows.map((i) => b.y[i]);
    const sub = pickRows(b.x, rows);
    const labels = tensor(y, [y.length], 'int32');
    try {
      const run: Run = {
        norm: this.norm, eps: this.eps, nIter: this.nIter, rho: this.rho,
        clip: (t) => this.clip(t),
        gradient: (xa) => this.lossGradient(xa, (out) => lossFn(out, labels)),
        loss: (out) => noGrad(() => lossFn(out, labels)),
        fooled: (out) => Uint8Array.from(this.succeeded(tidy(() => out.argMax(-1).dataSync() as Int32Array), y), (v) => (v ? 1 : 0)),
      };
      return apgdRun(run, sub, tidy(() => this.#start(sub, q)));
    } finally {
      sub.dispose();
      labels.dispose();
    }
  }

  /** Run `q`'s start: x plus ε times a random direction of unit L∞ (uniform, scaled) or L2 (normal) norm, clipped (AutoAttack). */
  #start(x: Tensor, q: number): Tensor {
    const t = this.norm === 'linf' ? rand(x.shape, -1, 1, subSeed(this.seed, 0, q)) : randn(x.shape, 0, 1, subSeed(this.seed, 1, q));
    return this.clip(x.add(normalize(t, this.norm).mul(this.eps)));
  }
}

/** Per-row argmax of row-major `[n, c]` values (first on ties, as the engine's argMax). */
function argMaxRows(z: Float32Array, c: number): Int32Array {
  const n = z.length / c;
  return Int32Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let j = 1; j < c; j++) if (z[i * c + j] > z[i * c + best]) best = j;
    return best;
  });
}

/**
 * APGD with the cross-entropy loss (AutoAttack's `APGD-CE`, torchattacks' `APGD(loss='ce')`): `nIter`
 * iterations of momentum (0.75) steps of a per-example size starting at 2ε, projected onto the
 * ε-ball and the valid range, halved at the checkpoints w_j (0, 0.22, 0.41, … of `nIter`) where at
 * most `rho` of the steps since the last checkpoint raised the loss, or where the step was not
 * halved last time and the best loss has not improved; after a halving the run resumes from its best
 * point. `restarts` runs from random starts, each on the examples still robust. Targeted (`y` the
 * targets): descends the cross-entropy towards them. Returns norms in `norm`.
 */
export class APGDCE extends APGDAttack {
  constructor(forward: Forward, opts?: APGDOptions) {
    const o = checkKeys(opts, APGD_KEYS, 'APGDCE');
    super(forward, o, 'APGDCE', () => ({
      runs: this.restarts,
      loss: () => (this.targeted ? (out, labels) => crossEntropyRows(out, labels).neg() : crossEntropyRows),
    }));
  }
}

/**
 * APGD with the targeted DLR loss (AutoAttack's `APGD-T`, torchattacks' `APGDT`): `y` are the true
 * labels and success is any misclassification; for each of the `nTargetClasses` highest-scoring
 * other classes at the clean input (2nd, 3rd, … largest logit) in turn, `restarts` APGD runs ascend
 * −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) on the examples still robust. Needs at least 4 classes.
 */
export class APGDT extends APGDAttack {
  /** Number of target classes tried, the highest-scoring non-true classes first (default 9). */
  readonly nTargetClasses: number;

  constructor(forward: Forward, opts?: APGDTOptions) {
    const o = checkKeys(opts, [...APGD_KEYS.filter((k) => k !== 'targeted'), 'nTargetClasses'], 'APGDT') as APGDTOptions;
    super(forward, o, 'APGDT', (b, z, c) => {
      if (c < 4) throw new ArgumentError(`APGDT: the DLR loss needs at least 4 classes, the forward returns ${c}`);
      // Classes ranked by the clean logits (highest first, ties by index): target run t aims at rank t + 1.
      const ranked = Array.from({ length: b.n }, (_, i) => Int32Array.from({ length: c }, (_, j) => j).sort((p, q) => z[i * c + q] - z[i * c + p] || p - q));
      const targets = Math.min(this.nTargetClasses, c - 1);
      return {
        runs: targets * this.restarts,
        loss: (q, rows) => {
          const t = rows.map((i) => ranked[i][1 + Math.floor(q / this.restarts)]);
          return (out, labels) => dlrTargetedLoss(out, labels, tensor(t, [t.length], 'int32'));
        },
      };
    });
    this.nTargetClasses = checkInt(o.nTargetClasses ?? 9, 'APGDT: nTargetClasses', 1, 100_000);
  }
}
