/**
 * The Square Attack (Andriushchenko et al. 2020, "Square Attack: a query-efficient black-box
 * adversarial attack via random search"), L∞ and L2, as the authors' reference code, AutoAttack's
 * `square.py` and torchattacks' `Square`: a score-based black-box attack that only runs the forward
 * (under `noGrad`), so it also attacks models whose gradients are useless or unavailable — which
 * makes it the gradient-masking check of an evaluation. All arithmetic, including the random
 * squares, runs in engine ops from the seeded engine RNG: a seeded run is the same bits everywhere.
 */
import { checkInt } from '../args.js';
import { noGrad } from '../autograd.js';
import { arange, rand, randint, tensor } from '../creation.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { where } from '../ops.js';
import { Tensor } from '../tensor.js';
import { checkKeys, column, type Forward, type Target } from '../explain/common.js';
import { subSeed } from '../explain/gradient.js';
import { mergeRows, pickRows, swap } from './rows.js';
import {
  Attack, BASE_KEYS, labelTensor, nonNegative, perExample, perExampleNorm, positive,
  type AttackOptions, type AttackResult, type Batch, type NormKind,
} from './common.js';

/** Options of `SquareAttack`. */
export interface SquareAttackOptions extends AttackOptions {
  /** 'linf' (default) or 'l2'. */
  norm?: NormKind;
  /** The budget (default 8/255 for linf, 0.5 for l2). */
  eps?: number;
  /** Forward passes per example at most, the initial one included (default 5000, as AutoAttack). */
  nQueries?: number;
  /** Initial fraction of pixels a square covers, halved on the reference's schedule (default 0.8 for linf, 0.3 for l2: AutoAttack's and the reference's). */
  pInit?: number;
  /** Seed of the random squares (default: the engine's global stream). */
  seed?: number;
}

/** What `SquareAttack.perturb` returns: the attack result and the forward passes each example took. */
export interface SquareAttackResult extends AttackResult {
  /** Per example: forward passes spent on it (the clean check and the stripes' included). */
  queries: Int32Array;
}

/** The reference's schedule of the square's area fraction at iteration `it` of `nQueries`. */
export function squareFraction(pInit: number, it: number, nQueries: number): number {
  const i = Math.floor((it / nQueries) * 10000);
  const bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000, 10000];
  for (let j = 0; j + 1 < bounds.length; j++) if (i > bounds[j] && i <= bounds[j + 1]) return pInit / 2 ** (j + 1);
  return pInit;
}

/** Resampling rounds for a square whose new colours would change nothing (then the query is spent anyway). */
const MAX_RESAMPLES = 16;

/**
 * The Square Attack on NHWC image batches `[n, h, w, c]`, L∞ (default) or L2. L∞: starts from
 * vertical stripes of ±ε, then at each iteration draws, per example, a random square (side
 * √(p·h·w), p on the reference's schedule from `pInit`) and a random ±ε per channel for it. L2
 * (the reference's `square_attack_l2`): starts from a grid of ±"pseudo-Gaussian" squares scaled to
 * ‖δ‖₂ = ε, then at each iteration moves the perturbation's mass from a second random window into a
 * first one (odd side ≥ 3, one pair of windows per iteration for the batch, as the reference),
 * rescaled to ε. Either way the change is kept where the margin loss (z_y − max_{j≠y} z_j; targeted:
 * max_{j≠t} z_j − z_t) decreases. An example stops at its first success; examples the model already
 * gets wrong (targeted: already the target) are returned unchanged. Forward passes only, batched over
 * the examples still robust; `queries` counts them per example. `perturb` must be called outside
 * `noGrad` like every attack, but it builds no autograd tape.
 */
export class SquareAttack extends Attack {
  /** Norm of the ball: `'linf'` (default) or `'l2'`. */
  readonly norm: NormKind;
  /** Radius of the ball (default 8/255 for linf, 0.5 for l2). */
  readonly eps: number;
  /** Forward passes per example at most (default 5000). */
  readonly nQueries: number;
  /** Initial fraction of pixels a square covers (default 0.8 for linf, 0.3 for l2). */
  readonly pInit: number;
  /** Seed of the random squares (undefined: the engine's global stream). */
  readonly seed: number | undefined;

  constructor(forward: Forward, opts?: SquareAttackOptions) {
    const o = checkKeys(opts, [...BASE_KEYS, 'norm', 'eps', 'nQueries', 'pInit', 'seed'], 'SquareAttack');
    super(forward, o);
    const norm = o.norm ?? 'linf';
    if (norm !== 'linf' && norm !== 'l2') throw new ArgumentError(`SquareAttack: norm must be 'linf' or 'l2', got ${String(norm).slice(0, 40)}`);
    this.norm = norm;
    this.eps = nonNegative(o.eps ?? (norm === 'linf' ? 8 / 255 : 0.5), 'SquareAttack: eps');
    this.nQueries = checkInt(o.nQueries ?? 5000, 'SquareAttack: nQueries', 1, 10_000_000);
    this.pInit = positive(o.pInit ?? (norm === 'linf' ? 0.8 : 0.3), 'SquareAttack: pInit');
    if (this.pInit > 1) throw new ArgumentError(`SquareAttack: pInit is a fraction of the pixels, in (0, 1]; got ${this.pInit}`);
    this.seed = o.seed === undefined ? undefined : checkInt(o.seed, 'SquareAttack: seed', 0, Number.MAX_SAFE_INTEGER);
  }

  perturb(x: Tensor, y: Target): SquareAttackResult {
    const b = this.batch(x, y);
    const minSide = this.norm === 'linf' ? 2 : 5;
    if (b.x.rank !== 4 || b.x.shape[1] < minSide || b.x.shape[2] < minSide) throw new ShapeError(`SquareAttack.perturb(): x has shape [${b.x.shape.join(', ')}]; the ${this.norm} Square attack draws squares on NHWC image batches [n, h >= ${minSide}, w >= ${minSide}, c]`);
    const adv = noGrad(() => this.#search(b, new Int32Array(b.n)));
    return { ...this.result(b, adv.x, this.norm), queries: adv.queries };
  }

  /** The random search; `queries` is filled in. */
  #search(b: Batch, queries: Int32Array): { x: Tensor; queries: Int32Array } {
    const n = b.x.shape[0];
    let margin = this.#margin(b.x, b.y);
    queries.fill(1);
    let best = b.x.clone();
    try {
      let rows = Int32Array.from(margin.keys()).filter((i) => margin[i] > 0);
      if (rows.length === 0 || this.eps === 0 || this.nQueries < 2) return { x: best, queries };
      const init = tidy(() => this.clip(this.norm === 'linf' ? this.#stripes(pickRows(b.x, rows)) : this.#grid(pickRows(b.x, rows))));
      margin = this.#update(margin, this.#margin(init, rows.map((i) => b.y[i])), rows);
      best = swap(best, mergeRows(best, init, fromRows(n, rows)));
      init.dispose();
      for (const i of rows) queries[i]++;
      for (let it = 0; it < this.nQueries - 2; it++) {
        rows = rows.filter((i) => margin[i] > 0);
        if (rows.length === 0) break;
        const p = squareFraction(this.pInit, it, this.nQueries);
        const cand = tidy(() => {
          const xs = pickRows(b.x, rows);
          const cur = pickRows(best, rows);
          return this.norm === 'linf' ? this.#stepLinf(xs, cur, p, it) : this.#stepL2(xs, cur, p, it);
        });
        const m = this.#margin(cand, rows.map((i) => b.y[i]));
        for (const i of rows) queries[i]++;
        const from = new Int32Array(n).fill(-1);
        rows.forEach((i, j) => {
          if (m[j] < margin[i]) {
            margin[i] = m[j];
            from[i] = j;
          }
        });
        best = swap(best, mergeRows(best, cand, from));
        cand.dispose();
      }
      return { x: best, queries };
    } catch (e) {
      best.dispose();
      throw e;
    }
  }

  /** L∞ start: x plus one ±ε per column and channel (vertical stripes). */
  #stripes(xs: Tensor): Tensor {
    const [k, , w, c] = xs.shape;
    return xs.add(where(rand([k, 1, w, c], 0, 1, subSeed(this.seed, 0, 0)).less(0.5), -this.eps, this.eps));
  }

  /** L∞ candidates: in one random square per example, a new ±ε per channel (redrawn where it would change nothing, as the reference). */
  #stepLinf(xs: Tensor, cur: Tensor, p: number, it: number): Tensor {
    const [k, h, w, c] = xs.shape;
    const eps = this.eps;
    const side = Math.min(Math.max(Math.round(Math.sqrt(p * h * w)), 1), Math.min(h, w) - 1);
    const hs = arange(0, h).reshape([1, h, 1, 1]);
    const ws = arange(0, w).reshape([1, 1, w, 1]);
    const top = randint([k, 1, 1, 1], 0, h - side, subSeed(this.seed, 1, it)).cast('float32');
    const left = randint([k, 1, 1, 1], 0, w - side, subSeed(this.seed, 2, it)).cast('float32');
    const square = hs.greaterEqual(top).mul(hs.less(top.add(side))).mul(ws.greaterEqual(left).mul(ws.less(left.add(side)))); // [k, h, w, 1], exact 0/1
    const delta = cur.sub(xs);
    let next = cur;
    let redraw = new Uint8Array(k).fill(1);
    for (let r = 0; r < MAX_RESAMPLES && redraw.some((v) => v); r++) {
      const colours = where(rand([k, 1, 1, c], 0, 1, subSeed(this.seed, 3 + r, it)).less(0.5), -eps, eps);
      const tried = this.clip(xs.add(where(square, colours, delta)));
      next = r === 0 ? tried : where(column(redraw, 4), tried, next);
      const changed = next.sub(cur).abs().greaterEqual(1e-7).mul(square).sum([1, 2, 3]).dataSync() as Float32Array;
      redraw = Uint8Array.from(changed, (v) => (v > 0 ? 0 : 1));
    }
    return next;
  }

  /** L2 start: squares of side h/5 on a centred grid, each a ±pseudo-Gaussian bump per channel, scaled to ‖δ‖₂ = ε. */
  #grid(xs: Tensor): Tensor {
    const [k, h, w, c] = xs.shape;
    const s = Math.floor(h / 5);
    const start = Math.floor((h - s * 5) / 2);
    const nh = Math.floor(h / s);
    const nw = Math.floor(w / s);
    // Which block each pixel row/column falls in (blocks clipped to the image, as numpy slices).
    const blockOf = (len: number, count: number) => Int32Array.from({ length: len }, (_, i) => Math.min(Math.max(Math.floor((i - start) / s), 0), count - 1));
    const flips = rand([nh * nw], 0, 1, subSeed(this.seed, 10, 0)).dataSync() as Float32Array;
    const pattern = new Float32Array(h * w);
    for (let bi = 0; bi < nh; bi++) {
      for (let bj = 0; bj < nw; bj++) {
        const bump = metaPseudoGaussian(s, flips[bi * nw + bj] > 0.5);
        for (let u = 0; u < s; u++) {
          for (let v = 0; v < s; v++) {
            const r = start + bi * s + u;
            const q = start + bj * s + v;
            if (r < h && q < w) pattern[r * w + q] += bump[u * s + v];
          }
        }
      }
    }
    const signs = where(rand([k, nh, nw, c], 0, 1, subSeed(this.seed, 0, 0)).less(0.5), -1, 1)
      .indexSelect(1, tensor(blockOf(h, nh), [h], 'int32')).indexSelect(2, tensor(blockOf(w, nw), [w], 'int32'));
    const delta = tensor(pattern, [1, h, w, 1]).mul(signs);
    return xs.add(delta.mul(perExample(perExampleNorm(delta, 'l2').pow(-1).mul(this.eps), delta)));
  }

  /** L2 candidates (the reference's update): window 2 emptied, window 1 a new ±bump plus its old content, rescaled to ε. */
  #stepL2(xs: Tensor, cur: Tensor, p: number, it: number): Tensor {
    const [k, h, w, c] = xs.shape;
    let s = Math.max(Math.round(Math.sqrt((p * h * w * c) / c)), 3);
    if (s % 2 === 0) s++;
    s = Math.min(s, Math.min(h, w) - 1);
    const pos = randint([5], 0, 1 << 30, subSeed(this.seed, 11, it)).dataSync() as Int32Array;
    const [t1, l1, t2, l2] = [pos[0] % (h - s), pos[1] % (w - s), pos[2] % (h - s), pos[3] % (w - s)];
    const window = (top: number, left: number, values?: Float32Array): Tensor => {
      const m = new Float32Array(h * w);
      for (let u = 0; u < s; u++) for (let v = 0; v < s; v++) m[(top + u) * w + left + v] = values ? values[u * s + v] : 1;
      return tensor(m, [1, h, w, 1]);
    };
    const m1 = window(t1, l1);
    const m2 = window(t2, l2);
    const spatial = (t: Tensor) => t.square().sum([1, 2], true).sqrt(); // per example and channel [k, 1, 1, c]
    const delta = cur.sub(xs);
    const normWindow1 = spatial(delta.mul(m1));
    const normImage = perExample(perExampleNorm(delta, 'l2'), delta);
    const normWindows = spatial(delta.mul(m1.maximum(m2)));
    const bump = window(t1, l1, metaPseudoGaussian(s, (pos[4] & 1) === 1));
    const sign = where(rand([k, 1, 1, c], 0, 1, subSeed(this.seed, 12, it)).less(0.5), -1, 1);
    let fresh = bump.mul(sign).add(delta.mul(m1).div(normWindow1.add(1e-10)));
    const budget = normImage.square().neg().add(this.eps ** 2).maximum(0).div(c).add(normWindows.square()).sqrt();
    fresh = fresh.div(spatial(fresh)).mul(budget);
    const moved = delta.mul(m2.neg().add(1)).mul(m1.neg().add(1)).add(fresh);
    return this.clip(xs.add(moved.mul(perExample(perExampleNorm(moved, 'l2').pow(-1).mul(this.eps), moved))));
  }

  /** The margin loss per example of the examples `xs` with labels (targeted: targets) `ys`: one forward. */
  #margin(xs: Tensor, ys: Int32Array): Float32Array {
    return tidy(() => {
      const out = this.logits(xs);
      this.checkClasses(out, ys);
      const n = ys.length;
      const cls = out.shape[1];
      const lab = labelTensor(ys).reshape([n, 1]);
      const zy = out.gather(1, lab).reshape([n]);
      const others = where(arange(0, cls).reshape([1, cls]).equal(lab.cast('float32')), -Infinity, out).max(1);
      const m = this.targeted ? others.sub(zy) : zy.sub(others);
      return Float32Array.from(m.dataSync() as Float32Array);
    });
  }

  /** The margins with rows `rows` replaced by `m` (their new values). */
  #update(margin: Float32Array, m: Float32Array, rows: Int32Array): Float32Array {
    const out = margin.slice();
    rows.forEach((i, j) => { out[i] = m[j]; });
    return out;
  }
}

/** `mergeRows`' map taking row i from sub-row k where rows[k] = i. */
function fromRows(n: number, rows: Int32Array): Int32Array {
  const from = new Int32Array(n).fill(-1);
  rows.forEach((i, k) => { from[i] = k; });
  return from;
}


/**
 * The reference's `pseudo_gaussian_pert_rectangles(x, y)`: nested rectangles around the centre, each
 * ring adding 1/(r+1)², normalised to unit L2 norm (row-major `[x, y]`, in double precision).
 */
function pseudoGaussian(x: number, y: number): Float64Array {
  const d = new Float64Array(x * y);
  const xc = Math.floor(x / 2) + 1;
  const yc = Math.floor(y / 2) + 1;
  let c0 = xc - 1;
  let c1 = yc - 1;
  for (let r = 0; r < Math.max(xc, yc); r++) {
    for (let i = Math.max(c0, 0); i < Math.min(c0 + 2 * r + 1, x); i++) {
      for (let j = Math.max(c1, 0); j < Math.min(c1 + 2 * r + 1, y); j++) d[i * y + j] += 1 / (r + 1) ** 2;
    }
    c0--;
    c1--;
  }
  return unit(d);
}

/** The reference's `meta_pseudo_gaussian_pert(s)`: a + bump over the top half, a − bump over the bottom, optionally transposed; unit L2 norm. */
export function metaPseudoGaussian(s: number, transpose: boolean): Float32Array {
  const half = Math.floor(s / 2);
  const top = pseudoGaussian(half, s);
  const bottom = pseudoGaussian(s - half, s);
  const d = new Float64Array(s * s);
  d.set(top, 0);
  for (let i = 0; i < bottom.length; i++) d[half * s + i] = -bottom[i];
  const u = unit(d);
  return Float32Array.from({ length: s * s }, (_, q) => (transpose ? u[(q % s) * s + Math.floor(q / s)] : u[q]));
}

function unit(d: Float64Array): Float64Array {
  let ss = 0;
  for (const v of d) ss += v * v;
  const norm = Math.sqrt(ss);
  return d.map((v) => v / norm);
}
