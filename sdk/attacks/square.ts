/**
 * The Square Attack (Andriushchenko et al. 2020, "Square Attack: a query-efficient black-box
 * adversarial attack via random search"), L∞, as the authors' reference code, AutoAttack's
 * `square.py` and torchattacks' `Square`: a score-based black-box attack that only runs the forward
 * (under `noGrad`), so it also attacks models whose gradients are useless or unavailable — which
 * makes it the gradient-masking check of an evaluation. All arithmetic, including the random
 * squares, runs in engine ops from the seeded engine RNG: a seeded run is the same bits everywhere.
 */
import { checkInt } from '../args.js';
import { noGrad } from '../autograd.js';
import { arange, rand, randint } from '../creation.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { where } from '../ops.js';
import { Tensor } from '../tensor.js';
import { checkKeys, column, type Forward, type Target } from '../explain/common.js';
import { subSeed } from '../explain/gradient.js';
import { mergeRows, pickRows, swap } from './rows.js';
import { Attack, BASE_KEYS, labelTensor, nonNegative, positive, type AttackOptions, type AttackResult, type Batch } from './common.js';

/** Options of `SquareAttack`. */
export interface SquareAttackOptions extends AttackOptions {
  /** The L∞ budget (default 8/255). */
  eps?: number;
  /** Forward passes per example at most, the initial one included (default 5000, as AutoAttack). */
  nQueries?: number;
  /** Initial fraction of pixels a square covers, halved on the reference's schedule (default 0.8). */
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
 * The L∞ Square Attack on NHWC image batches `[n, h, w, c]`: starts from vertical stripes of ±ε,
 * then at each iteration draws, per example, a random square (side √(p·h·w), p on the
 * reference's schedule from `pInit`) and a random ±ε per channel for it, and keeps the change
 * where the margin loss (z_y − max_{j≠y} z_j; targeted: max_{j≠t} z_j − z_t) decreases. An example
 * stops at its first success; examples the model already gets wrong (targeted: already the target)
 * are returned unchanged. Forward passes only, batched over the examples still robust; `queries`
 * counts them per example. `perturb` must be called outside `noGrad` like every attack, but it
 * builds no autograd tape.
 */
export class SquareAttack extends Attack {
  readonly eps: number;
  readonly nQueries: number;
  readonly pInit: number;
  readonly seed: number | undefined;

  constructor(forward: Forward, opts?: SquareAttackOptions) {
    const o = checkKeys(opts, [...BASE_KEYS, 'eps', 'nQueries', 'pInit', 'seed'], 'SquareAttack');
    super(forward, o);
    this.eps = nonNegative(o.eps ?? 8 / 255, 'SquareAttack: eps');
    this.nQueries = checkInt(o.nQueries ?? 5000, 'SquareAttack: nQueries', 1, 10_000_000);
    this.pInit = positive(o.pInit ?? 0.8, 'SquareAttack: pInit');
    if (this.pInit > 1) throw new ArgumentError(`SquareAttack: pInit is a fraction of the pixels, in (0, 1]; got ${this.pInit}`);
    this.seed = o.seed === undefined ? undefined : checkInt(o.seed, 'SquareAttack: seed', 0, Number.MAX_SAFE_INTEGER);
  }

  perturb(x: Tensor, y: Target): SquareAttackResult {
    const b = this.batch(x, y);
    if (b.x.rank !== 4 || b.x.shape[1] < 2 || b.x.shape[2] < 2) throw new ShapeError(`SquareAttack.perturb(): x has shape [${b.x.shape.join(', ')}]; the Square attack draws squares on NHWC image batches [n, h >= 2, w >= 2, c]`);
    const adv = noGrad(() => this.#search(b, new Int32Array(b.n)));
    return { ...this.result(b, adv.x, 'linf'), queries: adv.queries };
  }

  /** The random search; `queries` is filled in. */
  #search(b: Batch, queries: Int32Array): { x: Tensor; queries: Int32Array } {
    const [n, h, w, c] = b.x.shape;
    const eps = this.eps;
    let margin = this.#margin(b.x, b.y);
    queries.fill(1);
    let best = b.x.clone();
    try {
      let rows = Int32Array.from(margin.keys()).filter((i) => margin[i] > 0);
      if (rows.length === 0 || eps === 0 || this.nQueries < 2) return { x: best, queries };
      // Vertical stripes: one ±ε per column and channel.
      const init = tidy(() => {
        const sub = pickRows(b.x, rows);
        const stripes = where(rand([rows.length, 1, w, c], 0, 1, subSeed(this.seed, 0, 0)).less(0.5), -eps, eps);
        return this.clip(sub.add(stripes));
      });
      margin = this.#update(margin, this.#margin(init, rows.map((i) => b.y[i])), rows);
      best = swap(best, mergeRows(best, init, fromRows(n, rows)));
      init.dispose();
      for (const i of rows) queries[i]++;
      const [hs, ws] = tidy(() => [arange(0, h).reshape([1, h, 1, 1]), arange(0, w).reshape([1, 1, w, 1])]);
      try {
        for (let it = 0; it < this.nQueries - 2; it++) {
          rows = rows.filter((i) => margin[i] > 0);
          if (rows.length === 0) break;
          const k = rows.length;
          const p = squareFraction(this.pInit, it, this.nQueries);
          const side = Math.min(Math.max(Math.round(Math.sqrt(p * h * w)), 1), Math.min(h, w) - 1);
          const cand = tidy(() => {
            const xs = pickRows(b.x, rows);
            const cur = pickRows(best, rows);
            const top = randint([k, 1, 1, 1], 0, h - side, subSeed(this.seed, 1, it)).cast('float32');
            const left = randint([k, 1, 1, 1], 0, w - side, subSeed(this.seed, 2, it)).cast('float32');
            const inH = hs.greaterEqual(top).mul(hs.less(top.add(side)));
            const inW = ws.greaterEqual(left).mul(ws.less(left.add(side)));
            const square = inH.mul(inW); // [k, h, w, 1], exact 0/1
            const delta = cur.sub(xs);
            let next = cur;
            // A new ±ε per channel; redrawn for examples where it would change nothing (reference).
            let redraw = new Uint8Array(k).fill(1);
            for (let r = 0; r < MAX_RESAMPLES && redraw.some((v) => v); r++) {
              const colours = where(rand([k, 1, 1, c], 0, 1, subSeed(this.seed, 3 + r, it)).less(0.5), -eps, eps);
              const tried = this.clip(xs.add(where(square, colours, delta)));
              next = r === 0 ? tried : where(column(redraw, 4), tried, next);
              const changed = next.sub(cur).abs().greaterEqual(1e-7).mul(square).sum([1, 2, 3]).dataSync() as Float32Array;
              redraw = Uint8Array.from(changed, (v) => (v > 0 ? 0 : 1));
            }
            return next;
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
      } finally {
        hs.dispose();
        ws.dispose();
      }
      return { x: best, queries };
    } catch (e) {
      best.dispose();
      throw e;
    }
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

