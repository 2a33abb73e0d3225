/**
 * Probing a model by sweeping its inputs: one-at-a-time `sensitivityAnalysis` and
 * `partialDependence` with ICE curves (scikit-learn's `partial_dependence`, brute method). Both
 * build their perturbed rows with the perturbation methods' machinery (rows `x ⊙ m + r ⊙ (1 − m)`
 * evaluated `perturbationsPerEval` at a time), so results are the same bits for any batch option,
 * thread count and runtime.
 */
import { checkFloat32, checkInt, checkNumber, describe } from '../args.js';
import { tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import { checkKeys, type AttributionOf, type Forward, type Inputs, type Prepared } from './common.js';
import { exampleOfRow, PerturbationAttribution, prepareFeatureMask, type FeatureMask, type PerturbationOptions } from './perturbation.js';

const BASE_KEYS = ['target', 'additionalForwardArgs', 'perturbationsPerEval'] as const;

/** How `sensitivityAnalysis` turns outputs into a sensitivity. */
export type SensitivityKind = 'difference' | 'central' | 'elasticity';
/** Every {@link SensitivityKind}. */
export const SENSITIVITY_KINDS: readonly SensitivityKind[] = ['difference', 'central', 'elasticity'];

export interface SensitivityOptions extends PerturbationOptions {
  /** The perturbation added to every feature (default 1). */
  delta?: number;
  /** One perturbation per feature id (instead of `delta`). */
  deltas?: readonly number[] | Float32Array | Float64Array;
  /** Groups of elements perturbed together (default: every element alone), as `FeatureAblation`'s. */
  featureMask?: FeatureMask;
  /**
   * 'difference' (default): F(x + δ e_f) − F(x). 'central': (F(x + δ e_f) − F(x − δ e_f)) / 2
   * (the same scale, second-order accurate). 'elasticity': the normalized change
   * ((F(x + δ e_f) − F(x)) / F(x)) · (x / δ) per element (F(x) must not be 0).
   */
  kind?: SensitivityKind;
}

/** What partial dependence returns. */
export type PartialDependenceKind = 'average' | 'individual' | 'both';

export interface PartialDependenceOptions extends PerturbationOptions {
  /** Points per feature's grid (default 100; fewer when the feature has fewer unique values). */
  gridResolution?: number;
  /** The quantiles (in [0, 1]) that bound each feature's grid (default [0.05, 0.95]). */
  percentiles?: readonly [number, number];
  /** Grid values per feature (instead of the percentile grid): one array per feature. */
  grid?: readonly (readonly number[])[];
  /** Which curves to return (default 'average'). */
  kind?: PartialDependenceKind;
}

/** What {@link partialDependence} returns: per feature, the grid and the averaged (and/or individual) model output along it. */
export interface PartialDependenceResult {
  /** Per feature, the grid values (as float32, the values the model was given). */
  grid: number[][];
  /** Mean prediction per grid point: `[G]` for one feature, `[G1, G2]` for two (when kind is 'average' or 'both'). */
  average?: Tensor;
  /** ICE curves, one per row of x: `[n, G]` or `[n, G1, G2]` (when kind is 'individual' or 'both'). */
  individual?: Tensor;
}

/** Exposes the perturbation machinery (protected on the base) to the functions of this module. */
class Prober extends PerturbationAttribution {
  constructor(forward: Forward, readonly what: string) {
    super(forward);
  }

  sensitivity<I extends Inputs>(inputs: I, o: SensitivityOptions): AttributionOf<I> {
    const what = this.what;
    const kind = o.kind ?? 'difference';
    if (!SENSITIVITY_KINDS.includes(kind)) throw new ArgumentError(`${what}: kind must be one of ${SENSITIVITY_KINDS.join(', ')}, got ${describe(kind)}`);
    if (o.delta !== undefined && o.deltas !== undefined) throw new ArgumentError(`${what}: pass delta or deltas, not both`);
    const p = this.start(inputs, o, what);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    const deltas = new Float64Array(feats.count);
    if (o.deltas !== undefined) {
      const d = o.deltas as ArrayLike<unknown>;
      if (!Array.isArray(d) && !(d instanceof Float32Array) && !(d instanceof Float64Array)) throw new ArgumentError(`${what}: deltas must be an array of numbers (one per feature), got ${describe(d)}`);
      if (d.length !== feats.count) throw new ArgumentError(`${what}: ${d.length} deltas for ${feats.count} features`);
      for (let f = 0; f < feats.count; f++) deltas[f] = checkFloat32(d[f], `${what}: deltas[${f}]`);
    } else {
      deltas.fill(o.delta === undefined ? 1 : checkFloat32(o.delta, `${what}: delta`));
    }
    for (let f = 0; f < feats.count; f++) if (deltas[f] === 0) throw new ArgumentError(`${what}: the delta of feature ${f} is 0; a perturbation must move the input`);
    const central = kind === 'central';
    return tidy(() => {
      // Features are disjoint, so one shifted copy x ± D (D: each element's feature's delta) holds
      // every perturbed value; a row keeps x except feature f, which it takes from that copy.
      const shifted = p.xs.map((x, j) => {
        const e = x.shape.slice(1).reduce((a, b) => a * b, 1);
        const d = new Float32Array(p.n * e);
        for (let t = 0; t < d.length; t++) d[t] = deltas[feats.ids[j][t]];
        const dt = tensor(d, x.shape);
        return central ? concat([x.add(dt), x.sub(dt)], 0) : x.add(dt);
      });
      // Rows per example: the unperturbed input, then per present feature one row (two if central).
      const per = central ? 2 : 1;
      const offs = new Int32Array(p.n + 1);
      for (let i = 0; i < p.n; i++) offs[i + 1] = offs[i] + 1 + per * feats.present[i].length;
      const total = offs[p.n];
      const exOf = exampleOfRow(offs);
      const { out } = this.evaluate(p, shifted, total, (r) => {
        const i = exOf(r);
        const t = r - offs[i];
        if (t === 0) return { ex: i, src: i, keep: p.xs.map(() => null) };
        const f = feats.present[i][Math.floor((t - 1) / per)];
        const minus = central && (t - 1) % 2 === 1;
        return { ex: i, src: minus ? p.n + i : i, keep: this.keepFeatures(p, feats, i, (g) => g !== f) };
      }, this.perEval(o, total, p, what));
      if (kind === 'elasticity') {
        for (let i = 0; i < p.n; i++) if (out[offs[i]] === 0) throw new ArgumentError(`${what}: F(x) is 0 for example ${i}; the elasticity (relative change) is undefined there`);
      }
      const rank = new Int32Array(feats.count);
      let cur = -1;
      const spread = this.spread<Inputs>(p, feats, (i, f) => {
        if (cur !== i) {
          cur = i;
          feats.present[i].forEach((g, t) => (rank[g] = t));
        }
        const row = offs[i] + 1 + per * rank[f];
        if (central) return (out[row] - out[row + 1]) / 2;
        const change = out[row] - out[offs[i]];
        return kind === 'elasticity' ? change / (out[offs[i]] * deltas[f]) : change;
      });
      const values = Array.isArray(spread) ? spread : [spread as Tensor];
      // Elasticity: ΔF / (F · δ) per feature, times each element's own value.
      const attrs = kind === 'elasticity' ? values.map((v, j) => v.mul(p.xs[j])) : values;
      return (p.tuple ? attrs : attrs[0]) as AttributionOf<I>;
    });
  }

  partial(x: Tensor, features: number[], grids: number[][], o: PartialDependenceOptions, kind: PartialDependenceKind): PartialDependenceResult {
    const p: Prepared = this.start(x, o, this.what);
    const [n, F] = x.shape;
    const sizes = grids.map((g) => g.length);
    const points = sizes.reduce((a, b) => a * b, 1);
    return tidy(() => {
      // Pool row q: the grid point q (row-major over the features' grids) in the swept columns.
      const pool = new Float32Array(points * F);
      for (let q = 0; q < points; q++) {
        let rest = q;
        for (let k = features.length - 1; k >= 0; k--) {
          pool[q * F + features[k]] = grids[k][rest % sizes[k]];
          rest = Math.floor(rest / sizes[k]);
        }
      }
      const keep = new Uint8Array(F).fill(1);
      for (const f of features) keep[f] = 0;
      // Row r = i · points + q: example i with the swept columns set to grid point q.
      const total = n * points;
      const { out } = this.evaluate(p, [tensor(pool, [points, F])], total, (r) => ({ ex: Math.floor(r / points), src: r % points, keep: [keep] }), this.perEval(o, total, p, this.what));
      const res: PartialDependenceResult = { grid: grids };
      if (kind !== 'individual') {
        const avg = new Float64Array(points);
        for (let i = 0; i < n; i++) for (let q = 0; q < points; q++) avg[q] += out[i * points + q];
        for (let q = 0; q < points; q++) avg[q] /= n;
        res.average = tensor(Float32Array.from(avg), sizes);
      }
      if (kind !== 'average') res.individual = tensor(Float32Array.from(out), [n, ...sizes]);
      return res;
    });
  }
}

// Messages of the shared machinery name the class (`this.constructor.name`): name it after the function.
class SensitivityProber extends Prober {}
class PartialDependenceProber extends Prober {}
Object.defineProperty(SensitivityProber, 'name', { value: 'sensitivityAnalysis()' });
Object.defineProperty(PartialDependenceProber, 'name', { value: 'partialDependence()' });

function checkForward(model: unknown, what: string): Forward {
  if (typeof model !== 'function' && !(model instanceof Module)) throw new ArgumentError(`${what}: model must be a Module or a function of tensors, got ${describe(model)}`);
  return model as Forward;
}

/**
 * One-at-a-time sensitivity analysis: for every feature f (an element, or a group of
 * `featureMask`) and every example, the change of the target output when the feature alone is
 * moved by its delta — F(x + δ_f e_f) − F(x) by default, the central difference or the elasticity
 * with `kind`. Returns tensors shaped like the inputs, every element holding its feature's value
 * (as the attribution methods). All perturbed rows run in batched forwards of
 * `perturbationsPerEval` rows.
 */
export function sensitivityAnalysis<I extends Inputs>(model: Forward, inputs: I, opts?: SensitivityOptions): AttributionOf<I> {
  const what = 'sensitivityAnalysis()';
  const o = checkKeys(opts, [...BASE_KEYS, 'delta', 'deltas', 'featureMask', 'kind'], what);
  return new SensitivityProber(checkForward(model, what), what).sensitivity(inputs, o);
}

/** An array or float typed array of numbers, each checked by `check`, as a Float64Array. */
function numbers(v: unknown, what: string, check: (x: unknown, w: string) => number): Float64Array {
  if (!Array.isArray(v) && !(v instanceof Float32Array) && !(v instanceof Float64Array)) throw new ArgumentError(`${what} must be an array of numbers, got ${describe(v)}`);
  return Float64Array.from(v as ArrayLike<unknown>, (x, i) => check(x, `${what}[${i}]`));
}

/**
 * Empirical quantiles as scipy's `mstats.mquantiles` with its defaults (alphap = betap = 0.4),
 * which scikit-learn's partial dependence uses to bound its grids: the quantile p of n sorted
 * values interpolates at position n·p + 0.4 + 0.2·p (1-based, clipped to [1, n]).
 */
export function mquantiles(data: readonly number[] | Float32Array | Float64Array, probs: readonly number[]): number[] {
  const what = 'mquantiles()';
  const sorted = numbers(data, `${what}: data`, (x, w) => checkNumber(x, w, { finite: true })).sort();
  if (sorted.length === 0) throw new ArgumentError(`${what}: data is empty`);
  const ps = numbers(probs, `${what}: probs`, (x, w) => {
    const p = checkNumber(x, w, { finite: true });
    if (p < 0 || p > 1) throw new ArgumentError(`${w} is ${p}; probabilities are in [0, 1]`);
    return p;
  });
  const n = sorted.length;
  return Array.from(ps, (prob) => {
    if (n === 1) return sorted[0];
    const aleph = n * prob + 0.4 + prob * (1 - 0.4 - 0.4);
    const k = Math.floor(Math.min(Math.max(aleph, 1), n - 1));
    const gamma = Math.min(Math.max(aleph - k, 0), 1);
    return (1 - gamma) * sorted[k - 1] + gamma * sorted[k];
  });
}

/** numpy's `linspace(a, b, num)` (endpoint included, exactly b). */
function linspace(a: number, b: number, num: number): number[] {
  if (num === 1) return [a];
  const step = (b - a) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + a);
  out[num - 1] = b;
  return out;
}

/**
 * Partial dependence and ICE curves (scikit-learn's `partial_dependence`, brute method): each
 * swept feature (a column of `x [n, features]`, or two for an interaction grid) is set to every
 * grid value in every row; `individual` holds each row's predictions (ICE curves), `average` their
 * mean. The grid of a feature is its unique values when it has fewer than `gridResolution`, else
 * `gridResolution` evenly spaced points between its `percentiles` (scipy's mquantiles, as
 * scikit-learn). All n × grid rows run in batched forwards of `perturbationsPerEval` rows.
 */
export function partialDependence(model: Forward, x: Tensor, features: number | readonly number[], opts?: PartialDependenceOptions): PartialDependenceResult {
  const what = 'partialDependence()';
  const o = checkKeys(opts, [...BASE_KEYS, 'gridResolution', 'percentiles', 'grid', 'kind'], what);
  const fwd = checkForward(model, what);
  if (!(x instanceof Tensor)) throw new ArgumentError(`${what}: x must be a Tensor, got ${describe(x)}`);
  if (x.isDisposed) x.handle; // throws DisposedError naming it
  if (x.dtype !== 'float32') throw new DTypeError(`${what}: x is ${x.dtype}; features must be float32`);
  if (x.rank !== 2 || x.shape[0] < 1 || x.shape[1] < 1) throw new ShapeError(`${what}: x has shape [${x.shape.join(', ')}]; it must be [rows >= 1, features >= 1]`);
  const F = x.shape[1];
  const list = typeof features === 'number' ? [features] : Array.isArray(features) ? [...features] : null;
  if (list === null || list.length < 1 || list.length > 2) throw new ArgumentError(`${what}: features must be a column index or an array of one or two, got ${describe(features)}`);
  list.forEach((f, k) => checkInt(f, `${what}: features[${k}]`, 0, F - 1));
  if (list.length === 2 && list[0] === list[1]) throw new ArgumentError(`${what}: the two features are the same column ${list[0]}`);
  const kind = o.kind ?? 'average';
  if (!['average', 'individual', 'both'].includes(kind)) throw new ArgumentError(`${what}: kind must be 'average', 'individual' or 'both', got ${describe(kind)}`);
  let grids: number[][];
  if (o.grid !== undefined) {
    if (o.gridResolution !== undefined || o.percentiles !== undefined) throw new ArgumentError(`${what}: grid replaces gridResolution and percentiles; pass one or the other`);
    if (!Array.isArray(o.grid) || o.grid.length !== list.length) throw new ArgumentError(`${what}: grid must hold one array of values per feature (${list.length}), got ${describe(o.grid)}`);
    grids = o.grid.map((g: unknown, k) => {
      if (!Array.isArray(g) || g.length < 1) throw new ArgumentError(`${what}: grid[${k}] must be a non-empty array of numbers, got ${describe(g)}`);
      return g.map((v: unknown, t) => Math.fround(checkFloat32(v, `${what}: grid[${k}][${t}]`)));
    });
  } else {
    const res = o.gridResolution === undefined ? 100 : checkInt(o.gridResolution, `${what}: gridResolution`, 2, 1 << 20);
    const pct = o.percentiles ?? [0.05, 0.95];
    if (!Array.isArray(pct) || pct.length !== 2) throw new ArgumentError(`${what}: percentiles must be two numbers in [0, 1], got ${describe(pct)}`);
    pct.forEach((v, k) => {
      checkFloat32(v, `${what}: percentiles[${k}]`);
      if (v < 0 || v > 1) throw new ArgumentError(`${what}: percentiles[${k}] is ${v}; percentiles are in [0, 1]`);
    });
    if (pct[0] >= pct[1]) throw new ArgumentError(`${what}: percentiles[0] (${pct[0]}) must be below percentiles[1] (${pct[1]})`);
    const data = x.dataSync() as Float32Array;
    grids = list.map((f) => {
      const col = Float64Array.from({ length: x.shape[0] }, (_, i) => data[i * F + f]).sort();
      if (col.some((v) => !Number.isFinite(v))) throw new ArgumentError(`${what}: column ${f} of x holds a non-finite value`);
      const uniques = col.filter((v, i) => i === 0 || v !== col[i - 1]);
      if (uniques.length < res) return Array.from(uniques);
      const [lo, hi] = mquantiles(col, pct);
      // scikit-learn's check (np.allclose: |a − b| <= 1e-8 + 1e-5 |b|).
      if (Math.abs(lo - hi) <= 1e-8 + 1e-5 * Math.abs(hi)) throw new ArgumentError(`${what}: the percentiles of column ${f} are too close to each other to build a grid; choose percentiles further apart`);
      return linspace(lo, hi, res).map(Math.fround);
    });
  }
  return new PartialDependenceProber(fwd, what).partial(x, list, grids, o, kind);
}

