/**
 * Perturbation attributions (Captum's names and definitions): `Occlusion`, `FeatureAblation`,
 * `FeaturePermutation`, `ShapleyValueSampling`, `KernelShap` and `Lime`. They need only forward
 * passes: every perturbed input is a row `x ⊙ m + r ⊙ (1 − m)` (m a 0/1 mask, r the baseline or
 * another example), built for many perturbations at once and evaluated in forwards of up to
 * `perturbationsPerEval` rows. Each row's output is independent of how rows are batched, and the
 * bookkeeping on the outputs (differences, averages, the surrogate fits of KernelShap and Lime)
 * runs in float64 with + - * / only, so results are the same bits in every runtime and for any
 * thread count and batch option. Randomness comes from the engine's seeded generator.
 */
import { checkInt, checkNumber, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { rand, randperm, tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import {
  Attribution, checkKeys, prepare, prepareBaselines,
  type AttributionOf, type BaseOptions, type Baselines, type Inputs, type Prepared,
} from './common.js';
import { subSeed } from './gradient.js';

const BASE_KEYS = ['target', 'additionalForwardArgs', 'perturbationsPerEval'] as const;
/** Input elements per forward when `perturbationsPerEval` is not given (16 MiB of float32 per built tensor). */
const DEFAULT_ELEMENTS = 1 << 22;

/**
 * Feature ids per input element: an int32 tensor shaped like the input (one mask per example) or
 * like one example (`[...]` or `[1, ...]`, shared); one per input for tuples. Elements with the
 * same id form one feature (also across inputs), perturbed together. Ids are integers >= 0.
 */
export type FeatureMask = Tensor | readonly Tensor[];

/** Options of every perturbation method. */
export interface PerturbationOptions extends BaseOptions {
  /**
   * Rows (perturbed inputs) per forward (default: as many as hold about 4M input elements, all of
   * them for small inputs). Bounds memory; does not change a bit of the result.
   */
  perturbationsPerEval?: number;
}

/** Feature ids of every element, per input, `[n * elements]` (shared masks repeated per example). */
interface Features {
  ids: Int32Array[];
  /** Number of feature ids (max id + 1). */
  count: number;
  /** Per example, the ids that occur, ascending. */
  present: Int32Array[];
}

function elementsOf(x: Tensor): number {
  return x.shape.slice(1).reduce((a, b) => a * b, 1);
}

/** Checks a feature mask and spreads it over the batch; without one, every element is its own feature. */
export function prepareFeatureMask(mask: FeatureMask | undefined, p: Prepared, what: string): Features {
  const ids: Int32Array[] = [];
  let count = 0;
  if (mask === undefined) {
    for (const x of p.xs) {
      const e = elementsOf(x);
      const a = new Int32Array(p.n * e);
      for (let i = 0; i < p.n; i++) for (let k = 0; k < e; k++) a[i * e + k] = count + k;
      ids.push(a);
      count += e;
    }
  } else {
    const list = mask instanceof Tensor ? [mask] : Array.isArray(mask) ? (mask as unknown[]) : null;
    if (list === null) throw new ArgumentError(`${what}: featureMask must be an int32 Tensor (one per input for tuples), got ${describe(mask)}`);
    if (list.length !== p.xs.length) throw new ArgumentError(`${what}: ${list.length} feature masks for ${p.xs.length} inputs`);
    p.xs.forEach((x, j) => {
      const m = list[j];
      if (!(m instanceof Tensor)) throw new ArgumentError(`${what}: featureMask ${j} must be a Tensor, got ${describe(m)}`);
      if (m.dtype !== 'int32') throw new DTypeError(`${what}: featureMask ${j} is ${m.dtype}; feature ids are int32`);
      const rest = x.shape.slice(1);
      const s = m.shape.join();
      const perExample = s === x.shape.join();
      if (!perExample && s !== rest.join() && s !== [1, ...rest].join()) {
        throw new ShapeError(`${what}: featureMask ${j} has shape [${m.shape.join(', ')}]; it must be shaped like the input [${x.shape.join(', ')}] or like one example [${rest.join(', ')}]`);
      }
      const v = m.dataSync() as Int32Array;
      const e = elementsOf(x);
      const a = new Int32Array(p.n * e);
      for (let i = 0; i < p.n; i++) {
        for (let k = 0; k < e; k++) {
          const id = v[perExample ? i * e + k : k];
          if (id < 0) throw new ArgumentError(`${what}: featureMask ${j} has the negative feature id ${id}`);
          if (id >= 1 << 24) throw new ArgumentError(`${what}: featureMask ${j} has the feature id ${id}; ids must be below ${1 << 24}`);
          a[i * e + k] = id;
          if (id + 1 > count) count = id + 1;
        }
      }
      ids.push(a);
    });
  }
  const present: Int32Array[] = [];
  const seen = new Uint8Array(count);
  for (let i = 0; i < p.n; i++) {
    seen.fill(0);
    p.xs.forEach((x, j) => {
      const e = elementsOf(x);
      for (let k = 0; k < e; k++) seen[ids[j][i * e + k]] = 1;
    });
    const list: number[] = [];
    for (let f = 0; f < count; f++) if (seen[f]) list.push(f);
    present.push(Int32Array.from(list));
  }
  return { ids, count, present };
}

/**
 * One perturbed row: a variant of example `ex` whose input j keeps the elements where `keep[j]` is 1
 * (null: keeps all) and takes the others from row `src` of the replacement pool.
 */
export interface Perturbation {
  ex: number;
  src: number;
  keep: (Uint8Array | null)[];
}

/** The per-row values a method reads besides the outputs (Lime's similarity). */
type RowHook = (rowXs: Tensor[], orig: Tensor[]) => Tensor;

/**
 * For rows laid out example by example (example i owns rows `offs[i]` to `offs[i + 1] - 1`): the
 * example of a row. Rows are visited in order, so the index only moves forward (and starts over
 * when a new pass begins at row 0).
 */
export function exampleOfRow(offs: Int32Array): (r: number) => number {
  let i0 = 0;
  return (r) => {
    if (r < offs[i0]) i0 = 0;
    while (offs[i0 + 1] <= r) i0++;
    return i0;
  };
}

/** Base of perturbation methods: builds perturbed rows in batches and evaluates them in one forward each. */
export abstract class PerturbationAttribution extends Attribution {
  override get baselinesPerExample(): boolean {
    return true;
  }

  /** Rows per forward: the option, or as many rows as hold about 2^22 input elements (memory stays bounded). */
  protected perEval(o: PerturbationOptions, total: number, p: Prepared, what: string): number {
    if (o.perturbationsPerEval !== undefined) return checkInt(o.perturbationsPerEval, `${what}: perturbationsPerEval`, 1);
    const perRow = p.xs.reduce((a, x) => a + elementsOf(x), 0);
    return Math.max(1, Math.min(total, Math.floor(DEFAULT_ELEMENTS / Math.max(1, perRow))));
  }

  /**
   * The target outputs of `count` perturbations (`at(r)` describes row r), `perEval` rows per
   * forward; with `hook`, also its per-row value. Outputs are float32 values held as numbers.
   */
  protected evaluate(p: Prepared, pool: Tensor[], count: number, at: (r: number) => Perturbation, perEval: number, hook?: RowHook): {
    /** Target output of each perturbation row. */
    out: Float64Array;
    /** The hook's value per row (empty without `hook`). */
    extra: Float64Array;
  } {
    const out = new Float64Array(count);
    const extra = new Float64Array(hook ? count : 0);
    const sizes = p.xs.map(elementsOf);
    noGrad(() => {
      for (let r0 = 0; r0 < count; r0 += perEval) {
        const r1 = Math.min(count, r0 + perEval);
        const rowsN = r1 - r0;
        tidy(() => {
          const ex = new Int32Array(rowsN);
          const src = new Int32Array(rowsN);
          const keep = sizes.map((e) => new Float32Array(rowsN * e));
          const drop = sizes.map((e) => new Float32Array(rowsN * e));
          for (let q = 0; q < rowsN; q++) {
            const pt = at(r0 + q);
            ex[q] = pt.ex;
            src[q] = pt.src;
            sizes.forEach((e, j) => {
              const m = pt.keep[j];
              const k = keep[j];
              const d = drop[j];
              for (let t = 0; t < e; t++) {
                const v = m === null ? 1 : m[t];
                k[q * e + t] = v;
                d[q * e + t] = 1 - v;
              }
            });
          }
          const exT = tensor(ex, [rowsN], 'int32');
          const srcT = tensor(src, [rowsN], 'int32');
          const orig = p.xs.map((x) => x.indexSelect(0, exT));
          // x ⊙ m + r ⊙ (1 − m) with m in {0, 1}: kept elements are x exactly, dropped ones r exactly.
          const rowXs = p.xs.map((x, j) => {
            const shape = [rowsN, ...x.shape.slice(1)];
            return orig[j].mul(tensor(keep[j], shape)).add(pool[j].indexSelect(0, srcT).mul(tensor(drop[j], shape)));
          });
          const y = this.rowOutputs(rowXs, ex, p.targets, p.extra, p.n).dataSync();
          for (let q = 0; q < rowsN; q++) out[r0 + q] = y[q];
          if (hook) {
            const h = hook(rowXs, orig).dataSync();
            for (let q = 0; q < rowsN; q++) extra[r0 + q] = h[q];
          }
        });
      }
    });
    return { out, extra };
  }

  /** Attributions shaped like the inputs from one value per (example, feature) id: `value(i, f)`. */
  protected spread<I extends Inputs>(p: Prepared, feats: Features, value: (i: number, f: number) => number): AttributionOf<I> {
    const attrs = p.xs.map((x, j) => {
      const e = elementsOf(x);
      const ids = feats.ids[j];
      const a = new Float32Array(p.n * e);
      for (let i = 0; i < p.n; i++) for (let k = 0; k < e; k++) a[i * e + k] = value(i, ids[i * e + k]);
      return tensor(a, x.shape);
    });
    return (p.tuple ? attrs : attrs[0]) as AttributionOf<I>;
  }

  /** The keep-masks of example i keeping exactly the features with `on[f]` set. */
  protected keepFeatures(p: Prepared, feats: Features, i: number, on: (f: number) => boolean): Uint8Array[] {
    return p.xs.map((x, j) => {
      const e = elementsOf(x);
      const ids = feats.ids[j];
      const m = new Uint8Array(e);
      for (let k = 0; k < e; k++) m[k] = on(ids[i * e + k]) ? 1 : 0;
      return m;
    });
  }

  /** Validates and prepares `inputs` and the options for an attribution run (subclasses may add checks). */
  protected start(inputs: Inputs, o: BaseOptions, what: string): Prepared {
    return prepare(inputs, o, what);
  }
}

// ----------------------------------------------------------------------------- FeatureAblation

export interface FeatureAblationOptions extends PerturbationOptions {
  /** Values that replace ablated features (default 0): a number, a tensor per example or per input shape; one per input for tuples. */
  baselines?: Baselines;
  /** Groups of elements ablated together (default: every element alone). */
  featureMask?: FeatureMask;
}

/**
 * Feature ablation: each feature (group of `featureMask`) replaced by its baseline in turn;
 * its attribution is F(x) − F(x with the feature ablated), given to every element of the feature.
 */
export class FeatureAblation extends PerturbationAttribution {
  /** Feature-ablation attributions, shaped like the inputs: the target's change when each feature (or `featureMask` group) is replaced by its baseline. */
  attribute<I extends Inputs>(inputs: I, opts?: FeatureAblationOptions): AttributionOf<I> {
    const what = 'FeatureAblation.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'featureMask'], what);
    const p = this.start(inputs, o, what);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    return tidy(() => {
      const pool = prepareBaselines(o.baselines, p, what);
      // Rows: per example, the unperturbed input, then one row per present feature.
      const offs = new Int32Array(p.n + 1);
      for (let i = 0; i < p.n; i++) offs[i + 1] = offs[i] + 1 + feats.present[i].length;
      const total = offs[p.n];
      const exOf = exampleOfRow(offs);
      const { out } = this.evaluate(p, pool, total, (r) => {
        const i = exOf(r);
        const t = r - offs[i];
        if (t === 0) return { ex: i, src: i, keep: p.xs.map(() => null) };
        const f = feats.present[i][t - 1];
        return { ex: i, src: i, keep: this.keepFeatures(p, feats, i, (g) => g !== f) };
      }, this.perEval(o, total, p, what));
      // Row of (example i, feature f): feats.present[i] is ascending, so its rank there.
      const rank = new Int32Array(feats.count);
      let cur = -1;
      return this.spread<I>(p, feats, (i, f) => {
        if (cur !== i) {
          cur = i;
          feats.present[i].forEach((g, t) => (rank[g] = t));
        }
        return out[offs[i]] - out[offs[i] + 1 + rank[f]];
      });
    });
  }
}

// ----------------------------------------------------------------------------------- Occlusion

export interface OcclusionOptions extends PerturbationOptions {
  /** Window shape per input (the example's shape without the batch; one per input for tuples). Required. */
  slidingWindowShapes: readonly number[] | readonly (readonly number[])[];
  /** Step of the window per dimension (a number for all, or one per dimension; default 1; one per input for tuples). */
  strides?: number | readonly number[] | readonly (number | readonly number[])[];
  /** Values that replace the window (default 0). */
  baselines?: Baselines;
}

/**
 * Occlusion (Zeiler and Fergus): a window slid over each input with `strides` is replaced by the
 * baseline; every element gets the mean of F(x) − F(x occluded) over the windows covering it.
 * Window positions start at multiples of the stride (ceil((d − w) / s) + 1 per dimension), the
 * last clipped at the edge, as Captum.
 */
export class Occlusion extends PerturbationAttribution {
  /** Occlusion attributions, shaped like the inputs: the mean target change over the sliding windows covering each element. */
  attribute<I extends Inputs>(inputs: I, opts: OcclusionOptions): AttributionOf<I> {
    const what = 'Occlusion.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'slidingWindowShapes', 'strides'], what);
    const p = this.start(inputs, o, what);
    const { windows, strides } = this.#geometry(o, p, what);
    return tidy(() => {
      const pool = prepareBaselines(o.baselines, p, what);
      // Per input, the window starts (flat lists of per-dimension starts).
      const starts = p.xs.map((x, j) => {
        const dims = x.shape.slice(1);
        const counts = dims.map((d, a) => Math.ceil((d - windows[j][a]) / strides[j][a]) + 1);
        const list: number[][] = [];
        const idx = dims.map(() => 0);
        const total = counts.reduce((a, b) => a * b, 1);
        for (let c = 0; c < total; c++) {
          list.push(idx.map((k, a) => k * strides[j][a]));
          for (let a = dims.length - 1; a >= 0; a--) {
            if (++idx[a] < counts[a]) break;
            idx[a] = 0;
          }
        }
        return list;
      });
      const masks = p.xs.map((x, j) => starts[j].map((s) => this.#window(x.shape.slice(1), s, windows[j])));
      const perEx = 1 + masks.reduce((a, m) => a + m.length, 0);
      const total = p.n * perEx;
      const which = (t: number): [number, number] => {
        let j = 0;
        let u = t - 1;
        while (u >= masks[j].length) u -= masks[j++].length;
        return [j, u];
      };
      const { out } = this.evaluate(p, pool, total, (r) => {
        const i = Math.floor(r / perEx);
        const t = r % perEx;
        if (t === 0) return { ex: i, src: i, keep: p.xs.map(() => null) };
        const [j, u] = which(t);
        return { ex: i, src: i, keep: p.xs.map((_, jj) => (jj === j ? masks[j][u] : null)) };
      }, this.perEval(o, total, p, what));
      const attrs = p.xs.map((x, j) => {
        const e = elementsOf(x);
        const sum = new Float64Array(p.n * e);
        const cnt = new Float64Array(e);
        let t0 = 1;
        for (let jj = 0; jj < j; jj++) t0 += masks[jj].length;
        masks[j].forEach((m, u) => {
          for (let k = 0; k < e; k++) {
            if (m[k]) continue;
            cnt[k] += 1;
            for (let i = 0; i < p.n; i++) sum[i * e + k] += out[i * perEx] - out[i * perEx + t0 + u];
          }
        });
        const a = new Float32Array(p.n * e);
        for (let i = 0; i < p.n; i++) for (let k = 0; k < e; k++) a[i * e + k] = cnt[k] > 0 ? sum[i * e + k] / cnt[k] : 0;
        return tensor(a, x.shape);
      });
      return (p.tuple ? attrs : attrs[0]) as AttributionOf<I>;
    });
  }

  /** Keep-mask of one window: 0 inside [start, start + window) (clipped), 1 elsewhere. */
  #window(dims: number[], start: number[], win: number[]): Uint8Array {
    const e = dims.reduce((a, b) => a * b, 1);
    const m = new Uint8Array(e).fill(1);
    const idx = dims.map(() => 0);
    for (let k = 0; k < e; k++) {
      let inside = true;
      for (let a = 0; a < dims.length; a++) if (idx[a] < start[a] || idx[a] >= start[a] + win[a]) inside = false;
      if (inside) m[k] = 0;
      for (let a = dims.length - 1; a >= 0; a--) {
        if (++idx[a] < dims[a]) break;
        idx[a] = 0;
      }
    }
    return m;
  }

  #geometry(o: OcclusionOptions, p: Prepared, what: string): { windows: number[][]; strides: number[][] } {
    const perInput = <T>(v: unknown, name: string): T[] => {
      if (!p.tuple) return [v as T];
      if (!Array.isArray(v) || v.length !== p.xs.length) throw new ArgumentError(`${what}: with a tuple of inputs, ${name} needs one entry per input (${p.xs.length})`);
      return v as T[];
    };
    if (o.slidingWindowShapes === undefined) throw new ArgumentError(`${what}: slidingWindowShapes (the window shape per input) is required`);
    const windows = perInput<unknown>(o.slidingWindowShapes, 'slidingWindowShapes').map((w, j) => {
      const dims = p.xs[j].shape.slice(1);
      if (!Array.isArray(w) || w.length !== dims.length) throw new ShapeError(`${what}: slidingWindowShapes for input ${j} must list ${dims.length} sizes (the example shape [${dims.join(', ')}]), got ${describe(w)}`);
      return w.map((s: unknown, a: number) => checkInt(s, `${what}: slidingWindowShapes[${a}] of input ${j}`, 1, dims[a]));
    });
    const rawStrides = o.strides === undefined ? p.xs.map(() => 1) : perInput<unknown>(o.strides, 'strides');
    const strides = rawStrides.map((s, j) => {
      const dims = p.xs[j].shape.slice(1);
      const list = typeof s === 'number' ? dims.map(() => s) : s;
      if (!Array.isArray(list) || list.length !== dims.length) throw new ShapeError(`${what}: strides for input ${j} must be a number or ${dims.length} sizes, got ${describe(s)}`);
      return list.map((v: unknown, a: number) => checkInt(v, `${what}: strides[${a}] of input ${j}`, 1));
    });
    return { windows, strides };
  }
}

// -------------------------------------------------------------------------- FeaturePermutation

export interface FeaturePermutationOptions extends PerturbationOptions {
  /** Groups of elements permuted together (default: every element alone). */
  featureMask?: FeatureMask;
  /** Seed of the permutations (default: the global stream). */
  seed?: number;
}

/**
 * Feature permutation: each feature's values are shuffled across the batch (one seeded
 * permutation per feature); attribution = F(x) − F(x with the feature permuted), per example.
 * Needs a batch of at least 2 examples.
 */
export class FeaturePermutation extends PerturbationAttribution {
  /** Permutation-importance attributions, shaped like the inputs: the target's change when a feature is shuffled across the batch. */
  attribute<I extends Inputs>(inputs: I, opts?: FeaturePermutationOptions): AttributionOf<I> {
    const what = 'FeaturePermutation.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'featureMask', 'seed'], what);
    const p = this.start(inputs, o, what);
    if (p.n < 2) throw new ArgumentError(`${what}: permuting features across the batch needs at least 2 examples, got ${p.n}`);
    const seed = seedOption(o.seed, what);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    const F = feats.count;
    return tidy(() => {
      const perms: Int32Array[] = [];
      for (let f = 0; f < F; f++) perms.push(tidy(() => Int32Array.from(randperm(p.n, subSeed(seed, 0, f)).dataSync() as Int32Array)));
      const total = p.n * (1 + F);
      const { out } = this.evaluate(p, p.xs, total, (r) => {
        const i = r % p.n;
        const f = Math.floor(r / p.n) - 1;
        if (f < 0) return { ex: i, src: i, keep: p.xs.map(() => null) };
        return { ex: i, src: perms[f][i], keep: this.keepFeatures(p, feats, i, (g) => g !== f) };
      }, this.perEval(o, total, p, what));
      return this.spread<I>(p, feats, (i, f) => out[i] - out[(1 + f) * p.n + i]);
    });
  }
}

function seedOption(v: unknown, what: string): number | undefined {
  return v === undefined ? undefined : checkInt(v, `${what}: seed`, 0, Number.MAX_SAFE_INTEGER);
}

function samplesOption(v: unknown, dflt: number, what: string): number {
  return v === undefined ? dflt : checkInt(v, `${what}: nSamples`, 1, 1_000_000);
}

// ------------------------------------------------------------------------ ShapleyValueSampling

export interface ShapleyValueSamplingOptions extends PerturbationOptions {
  /** The reference that absent features take (default 0). */
  baselines?: Baselines;
  /** Groups of input elements treated as one feature ({@link FeatureMask}); default: every element is its own feature. */
  featureMask?: FeatureMask;
  /** Feature permutations sampled (default 25). */
  nSamples?: number;
  /** Seed of the sampled permutations (default: the global stream). */
  seed?: number;
}

/**
 * Shapley value sampling (Castro et al.): for `nSamples` seeded permutations of the features, the
 * features are added to the baseline one by one in that order; a feature's attribution is its mean
 * marginal contribution F(with it) − F(without it). Exact for additive models.
 */
export class ShapleyValueSampling extends PerturbationAttribution {
  /** Shapley-value estimates, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: ShapleyValueSamplingOptions): AttributionOf<I> {
    const what = 'ShapleyValueSampling.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'featureMask', 'nSamples', 'seed'], what);
    const p = this.start(inputs, o, what);
    const nSamples = samplesOption(o.nSamples, 25, what);
    const seed = seedOption(o.seed, what);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    const F = feats.count;
    return tidy(() => {
      const pool = prepareBaselines(o.baselines, p, what);
      const perms: Int32Array[] = [];
      for (let s = 0; s < nSamples; s++) perms.push(tidy(() => Int32Array.from(randperm(F, subSeed(seed, 0, s)).dataSync() as Int32Array)));
      // Position of every feature in every permutation.
      const pos = perms.map((pm) => {
        const q = new Int32Array(F);
        pm.forEach((f, k) => (q[f] = k));
        return q;
      });
      // Rows per example: the baseline, then (sample s, step t = 1..F): the first t features of perm s present.
      const perEx = 1 + nSamples * F;
      const total = p.n * perEx;
      const { out } = this.evaluate(p, pool, total, (r) => {
        const i = Math.floor(r / perEx);
        const u = r % perEx;
        if (u === 0) return { ex: i, src: i, keep: p.xs.map((x) => new Uint8Array(elementsOf(x))) };
        const s = Math.floor((u - 1) / F);
        const t = ((u - 1) % F) + 1;
        return { ex: i, src: i, keep: this.keepFeatures(p, feats, i, (g) => pos[s][g] < t) };
      }, this.perEval(o, total, p, what));
      const phi = new Float64Array(p.n * F);
      for (let i = 0; i < p.n; i++) {
        for (let s = 0; s < nSamples; s++) {
          for (let t = 1; t <= F; t++) {
            const cur = out[i * perEx + 1 + s * F + t - 1];
            const prev = t === 1 ? out[i * perEx] : out[i * perEx + 1 + s * F + t - 2];
            phi[i * F + perms[s][t - 1]] += cur - prev;
          }
        }
      }
      return this.spread<I>(p, feats, (i, f) => phi[i * F + f] / nSamples);
    });
  }
}

// ------------------------------------------------------------------------ surrogate models

/**
 * Weighted least squares with an intercept, `argmin Σ w_s (y_s − c − z_s·β)² + alpha |β|²`, by
 * the normal equations and Gaussian elimination with partial pivoting in float64 (+ − * / only:
 * the same bits in every engine). A direction the samples do not determine (a pivot below
 * 1e-10 of the largest diagonal) gets the coefficient 0. Returns [c, β...].
 */
export function weightedRidge(z: Uint8Array[], y: Float64Array, w: Float64Array, F: number, alpha: number): Float64Array {
  const d = F + 1;
  const A = new Float64Array(d * d);
  const b = new Float64Array(d);
  const row = new Float64Array(d);
  for (let s = 0; s < z.length; s++) {
    row[0] = 1;
    for (let f = 0; f < F; f++) row[f + 1] = z[s][f];
    const ws = w[s];
    for (let a = 0; a < d; a++) {
      if (row[a] === 0) continue;
      const wa = ws * row[a];
      b[a] += wa * y[s];
      for (let c = 0; c < d; c++) A[a * d + c] += wa * row[c];
    }
  }
  for (let a = 1; a < d; a++) A[a * d + a] += alpha;
  let scale = 0;
  for (let a = 0; a < d; a++) if (Math.abs(A[a * d + a]) > scale) scale = Math.abs(A[a * d + a]);
  const tol = scale * 1e-10;
  const perm = Int32Array.from({ length: d }, (_, k) => k);
  const dead = new Uint8Array(d);
  // Elimination with row pivoting; a column without a usable pivot is fixed at 0.
  for (let c = 0; c < d; c++) {
    let best = -1;
    let bv = tol;
    for (let r = c; r < d; r++) {
      const v = Math.abs(A[perm[r] * d + c]);
      if (v > bv) {
        bv = v;
        best = r;
      }
    }
    if (best < 0) {
      dead[c] = 1;
      continue;
    }
    [perm[c], perm[best]] = [perm[best], perm[c]];
    const pr = perm[c];
    for (let r = c + 1; r < d; r++) {
      const rr = perm[r];
      const factor = A[rr * d + c] / A[pr * d + c];
      if (factor === 0) continue;
      for (let k = c; k < d; k++) A[rr * d + k] -= factor * A[pr * d + k];
      b[rr] -= factor * b[pr];
    }
  }
  const x = new Float64Array(d);
  for (let c = d - 1; c >= 0; c--) {
    if (dead[c]) continue;
    const pr = perm[c];
    let s = b[pr];
    for (let k = c + 1; k < d; k++) s -= A[pr * d + k] * x[k];
    x[c] = s / A[pr * d + c];
  }
  return x;
}

// ---------------------------------------------------------------------------------- KernelShap

export interface KernelShapOptions extends PerturbationOptions {
  /** The reference that absent features take (default 0). For SHAP's background set, pass its mean. */
  baselines?: Baselines;
  /** Groups of input elements treated as one feature ({@link FeatureMask}); default: every element is its own feature. */
  featureMask?: FeatureMask;
  /**
   * Coalitions evaluated per example (default 25), the full and the empty one included. When it
   * is at least 2^M (M features), all 2^M coalitions are enumerated instead, with the exact kernel
   * weights: the result is then the exact Shapley values.
   */
  nSamples?: number;
  /** Seed of the sampled coalitions (default: the global stream). */
  seed?: number;
}

/**
 * Kernel SHAP (Lundberg and Lee; Captum's): coalitions of the features (present: the input, absent:
 * the baseline) sampled with the Shapley kernel's distribution of sizes, p(k) ∝ (M − 1) / (k (M − k)),
 * plus the full and the empty coalition weighted 10⁶ (enforcing F(x) − F(baseline) = Σ φ); the
 * attributions are the coefficients of the weighted linear regression of the outputs on the
 * coalitions. Exact for a linear model once the coalitions span the features, and exact for any
 * model when `nSamples` >= 2^M (all coalitions enumerated).
 */
export class KernelShap extends PerturbationAttribution {
  /** Kernel SHAP attributions, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: KernelShapOptions): AttributionOf<I> {
    const what = 'KernelShap.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'featureMask', 'nSamples', 'seed'], what);
    const p = this.start(inputs, o, what);
    const nSamples = samplesOption(o.nSamples, 25, what);
    if (nSamples < 2) throw new ArgumentError(`${what}: nSamples must be at least 2 (the full and the empty coalition), got ${nSamples}`);
    const seed = seedOption(o.seed, what);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    const M = feats.count;
    return tidy(() => {
      const pool = prepareBaselines(o.baselines, p, what);
      let z: Uint8Array[] = [new Uint8Array(M).fill(1), new Uint8Array(M)];
      let w = new Float64Array(nSamples).fill(1);
      w[0] = w[1] = 1e6;
      if (M < 31 && 1 << M <= nSamples) {
        // The budget covers every coalition: enumerate them with the exact Shapley kernel weights
        // (M − 1) / (C(M, k) k (M − k)), so the regression gives the exact Shapley values.
        const choose = new Float64Array(M + 1);
        choose[0] = 1;
        for (let k = 1; k <= M; k++) choose[k] = (choose[k - 1] * (M - k + 1)) / k;
        z = [];
        w = new Float64Array(1 << M);
        for (let c = 0; c < 1 << M; c++) {
          const zs = new Uint8Array(M);
          let k = 0;
          for (let f = 0; f < M; f++) {
            zs[f] = (c >> f) & 1;
            k += zs[f];
          }
          z.push(zs);
          w[c] = k === 0 || k === M ? 1e6 : (M - 1) / (choose[k] * k * (M - k));
        }
      } else if (M > 1 && nSamples > 2) {
        // Cumulative distribution of coalition sizes 1..M−1 (float64 + - * /: exact everywhere).
        const cdf = new Float64Array(M);
        for (let k = 1; k < M; k++) cdf[k] = cdf[k - 1] + (M - 1) / (k * (M - k));
        const u = tidy(() => Float32Array.from(rand([nSamples - 2, M + 1], 0, 1, subSeed(seed, 0, 0)).dataSync() as Float32Array));
        const order = Int32Array.from({ length: M }, (_, k) => k);
        for (let s = 0; s < nSamples - 2; s++) {
          const pick = u[s * (M + 1)] * cdf[M - 1];
          let k = 1;
          while (k < M - 1 && cdf[k] <= pick) k++;
          // The k features with the smallest keys (ties by index): a uniform k-subset.
          const keys = u.subarray(s * (M + 1) + 1, (s + 1) * (M + 1));
          order.sort((a, b) => keys[a] - keys[b] || a - b);
          const zs = new Uint8Array(M);
          for (let t = 0; t < k; t++) zs[order[t]] = 1;
          z.push(zs);
        }
      } else {
        for (let s = 2; s < nSamples; s++) z.push(new Uint8Array(M).fill(s % 2 ? 0 : 1));
      }
      const S = z.length;
      const total = p.n * S;
      const { out } = this.evaluate(p, pool, total, (r) => {
        const i = Math.floor(r / S);
        const zs = z[r % S];
        return { ex: i, src: i, keep: this.keepFeatures(p, feats, i, (f) => zs[f] === 1) };
      }, this.perEval(o, total, p, what));
      const coef = fitPerExample(p.n, z, out, () => w, M, 0);
      return this.spread<I>(p, feats, (i, f) => coef[i][f + 1]);
    });
  }
}

function fitPerExample(n: number, z: Uint8Array[], out: Float64Array, weights: (i: number) => Float64Array, F: number, alpha: number): Float64Array[] {
  const S = z.length;
  const res: Float64Array[] = [];
  for (let i = 0; i < n; i++) res.push(weightedRidge(z, out.subarray(i * S, (i + 1) * S), weights(i), F, alpha));
  return res;
}

// ---------------------------------------------------------------------------------------- Lime

export interface LimeOptions extends PerturbationOptions {
  /** Values of absent interpretable features (default 0). */
  baselines?: Baselines;
  /** The interpretable features (default: every element). */
  featureMask?: FeatureMask;
  /** Perturbed samples per example (default 50): each feature present with probability 1/2. */
  nSamples?: number;
  /** Seed of the sampled perturbations (default: the global stream). */
  seed?: number;
  /** Width of the exponential kernel exp(−d² / (2 width²)) (default 1, Captum's). */
  kernelWidth?: number;
  /** Distance between the input and a perturbed input: 'cosine' (1 − cosine similarity, default) or 'euclidean'. */
  distanceMode?: 'cosine' | 'euclidean';
  /** Ridge penalty of the surrogate (default 1, the lime package's Ridge; 0: weighted least squares). */
  alpha?: number;
}

/**
 * LIME (Ribeiro et al.): binary interpretable features (groups of `featureMask`) switched off at
 * random (replaced by the baseline); each sample is weighted by an exponential kernel of its
 * distance to the input (computed in the engine); the attributions are the coefficients of a
 * weighted ridge regression of the outputs on the binary samples (with intercept).
 */
export class Lime extends PerturbationAttribution {
  /** LIME attributions (the weights of the fitted interpretable linear model per feature), shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: LimeOptions): AttributionOf<I> {
    const what = 'Lime.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'featureMask', 'nSamples', 'seed', 'kernelWidth', 'distanceMode', 'alpha'], what);
    const p = this.start(inputs, o, what);
    const nSamples = samplesOption(o.nSamples, 50, what);
    const seed = seedOption(o.seed, what);
    const width = o.kernelWidth === undefined ? 1 : checkNumber(o.kernelWidth, `${what}: kernelWidth`, { finite: true });
    if (!(width > 0)) throw new ArgumentError(`${what}: kernelWidth must be > 0, got ${width}`);
    const mode = o.distanceMode ?? 'cosine';
    if (mode !== 'cosine' && mode !== 'euclidean') throw new ArgumentError(`${what}: distanceMode must be 'cosine' or 'euclidean', got ${describe(mode)}`);
    const alpha = o.alpha === undefined ? 1 : checkNumber(o.alpha, `${what}: alpha`, { finite: true });
    if (alpha < 0) throw new ArgumentError(`${what}: alpha must be >= 0, got ${alpha}`);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    const M = feats.count;
    return tidy(() => {
      const pool = prepareBaselines(o.baselines, p, what);
      const u = tidy(() => Float32Array.from(rand([nSamples, M], 0, 1, subSeed(seed, 0, 0)).dataSync() as Float32Array));
      const z: Uint8Array[] = [];
      for (let s = 0; s < nSamples; s++) z.push(Uint8Array.from(u.subarray(s * M, (s + 1) * M), (v) => (v < 0.5 ? 1 : 0)));
      const total = p.n * nSamples;
      const hook: RowHook = (rowXs, orig) => {
        const r = rowXs[0].shape[0];
        const a = concat(orig.map((t) => t.reshape([r, -1])), 1);
        const b = concat(rowXs.map((t) => t.reshape([r, -1])), 1);
        let d: Tensor;
        if (mode === 'cosine') {
          const norms = a.square().sum(1).sqrt().mul(b.square().sum(1).sqrt()).maximum(tensor([1e-8]));
          d = a.mul(b).sum(1).div(norms).neg().add(tensor([1]));
        } else {
          d = a.sub(b).square().sum(1).sqrt();
        }
        return d.square().mul(tensor([-1 / (2 * width * width)])).exp();
      };
      const { out, extra } = this.evaluate(p, pool, total, (r) => {
        const i = Math.floor(r / nSamples);
        const zs = z[r % nSamples];
        return { ex: i, src: i, keep: this.keepFeatures(p, feats, i, (f) => zs[f] === 1) };
      }, this.perEval(o, total, p, what), hook);
      const coef = fitPerExample(p.n, z, out, (i) => extra.subarray(i * nSamples, (i + 1) * nSamples), M, alpha);
      return this.spread<I>(p, feats, (i, f) => coef[i][f + 1]);
    });
  }
}
