/**
 * Quality metrics of explanations: `infidelity` and `sensitivityMax` (Captum's definitions), and
 * deletion / insertion curves with their area under the curve (Petsiuk et al., RISE).
 */
import { checkBool, checkFunction, checkInt, checkNumber, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { rand, randn } from '../creation.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { concat, stack } from '../ops.js';
import { Tensor } from '../tensor.js';
import { Attribution, checkKeys, prepare, prepareBaselines, type BaseOptions, type Baselines, type Forward, type Inputs, type Prepared } from './common.js';
import { subSeed } from './gradient.js';
import { PerturbationAttribution, prepareFeatureMask, type FeatureMask } from './perturbation.js';

/** Evaluates target outputs of prepared rows (the base class's batched forward, opened for the metrics). */
class Probe extends Attribution {
  outputsOf(rowXs: Tensor[], idx: Int32Array, p: Prepared): Tensor {
    return this.rowOutputs(rowXs, idx, p.targets, p.extra, p.n);
  }
}

/** The attributions as a list matching the inputs. */
function attributionList(attributions: unknown, p: Prepared, what: string): Tensor[] {
  const list = attributions instanceof Tensor ? [attributions] : Array.isArray(attributions) ? attributions : null;
  if (list === null || list.length !== p.xs.length) throw new ArgumentError(`${what}: attributions must be shaped like the inputs (a Tensor, or one per input), got ${describe(attributions)}`);
  return list.map((a: unknown, j: number) => {
    if (!(a instanceof Tensor)) throw new ArgumentError(`${what}: attribution ${j} must be a Tensor, got ${describe(a)}`);
    if (a.shape.join() !== p.xs[j].shape.join()) throw new ShapeError(`${what}: attribution ${j} has shape [${a.shape.join(', ')}], input ${j} [${p.xs[j].shape.join(', ')}]`);
    return a.dtype === 'float32' ? a : a.cast('float32');
  });
}

/** Per example, Σ over every input's elements of `t_j` (`[n]`). */
function perExampleSum(ts: Tensor[], n: number): Tensor {
  return ts.map((t) => t.reshape([n, -1]).sum(1)).reduce((s, t) => s.add(t));
}

function seedOpt(v: unknown, what: string): number | undefined {
  return v === undefined ? undefined : checkInt(v, `${what}: seed`, 0, Number.MAX_SAFE_INTEGER);
}

// ---------------------------------------------------------------------------------- infidelity

/** Draws perturbations I (one tensor per input, shaped like it) for sample `index`. */
export type PerturbFunction = (inputs: Tensor[], index: number) => Tensor[];

export interface InfidelityOptions extends BaseOptions {
  /** The perturbations I (default: Gaussian noise N(0, noiseStd²) per element, seeded). */
  perturbFunc?: PerturbFunction;
  /** Standard deviation of the default perturbations (default 0.003, Captum's tutorials'). */
  noiseStd?: number;
  /** Perturbations per example (default 10). */
  nPerturbSamples?: number;
  /** Rows per forward (default: all samples at once). Does not change the result. */
  maxExamplesPerBatch?: number;
  /** Scale the attributions by the β minimising the infidelity (Captum's `normalize`). */
  normalize?: boolean;
  /** Seed of the perturbation draws (default: the engine's global stream). */
  seed?: number;
}

/**
 * Infidelity (Yeh et al.; Captum's `infidelity`): per example, E_I[(Iᵀ·attributions −
 * (F(x) − F(x − I)))²] over `nPerturbSamples` perturbations I. With `normalize`, the attributions
 * are first scaled by β = E[Iᵀa·Δ] / E[(Iᵀa)²]. Returns `[batch]`.
 */
export function infidelity(forward: Forward, inputs: Inputs, attributions: Tensor | readonly Tensor[], opts?: InfidelityOptions): Tensor {
  const what = 'infidelity()';
  const probe = new Probe(forward);
  const o = checkKeys(opts, ['target', 'additionalForwardArgs', 'perturbFunc', 'noiseStd', 'nPerturbSamples', 'maxExamplesPerBatch', 'normalize', 'seed'], what);
  const p = prepare(inputs, o, what);
  const attrs = attributionList(attributions, p, what);
  const S = o.nPerturbSamples === undefined ? 10 : checkInt(o.nPerturbSamples, `${what}: nPerturbSamples`, 1, 1_000_000);
  const std = o.noiseStd === undefined ? 0.003 : checkNumber(o.noiseStd, `${what}: noiseStd`, { finite: true });
  if (!(std > 0)) throw new ArgumentError(`${what}: noiseStd must be > 0, got ${std}`);
  const normalize = checkBool(o.normalize ?? false, `${what}: normalize`);
  const seed = seedOpt(o.seed, what);
  const batch = o.maxExamplesPerBatch === undefined ? p.n * S : checkInt(o.maxExamplesPerBatch, `${what}: maxExamplesPerBatch`, 1);
  const perPass = Math.max(1, Math.floor(batch / p.n));
  const perturb: PerturbFunction = o.perturbFunc === undefined
    ? (xs, s) => xs.map((x, j) => randn(x.shape, 0, std, subSeed(seed, j, s)))
    : checkFunction<PerturbFunction>(o.perturbFunc, `${what}: perturbFunc`);
  return noGrad(() => tidy(() => {
    const all = Int32Array.from({ length: p.n }, (_, i) => i);
    const fx = probe.outputsOf(p.xs, all, p);
    const dots: Tensor[] = [];
    const diffs: Tensor[] = [];
    for (let s0 = 0; s0 < S; s0 += perPass) {
      const s1 = Math.min(S, s0 + perPass);
      const pert: Tensor[][] = p.xs.map(() => []);
      for (let s = s0; s < s1; s++) {
        const I = perturb(p.xs, s);
        if (!Array.isArray(I) || I.length !== p.xs.length || I.some((t, j) => !(t instanceof Tensor) || t.shape.join() !== p.xs[j].shape.join())) {
          throw new ArgumentError(`${what}: perturbFunc must return one tensor per input, shaped like it`);
        }
        dots.push(perExampleSum(I.map((t, j) => t.mul(attrs[j])), p.n));
        I.forEach((t, j) => pert[j].push(p.xs[j].sub(t)));
      }
      const idx = Int32Array.from({ length: (s1 - s0) * p.n }, (_, q) => q % p.n);
      const out = probe.outputsOf(pert.map((ts) => concat(ts, 0)), idx, p);
      for (let s = s0; s < s1; s++) diffs.push(fx.sub(out.slice([(s - s0) * p.n], [(s - s0 + 1) * p.n])));
    }
    const dot = stack(dots, 0); // [S, n]
    const diff = stack(diffs, 0);
    let scaled = dot;
    if (normalize) {
      const num = dot.mul(diff).mean(0);
      const den = dot.square().mean(0);
      // β = num / den, 0 where den is 0 (no attribution signal).
      const zero = den.equal(0);
      scaled = dot.mul(num.div(den.add(zero)).mul(zero.neg().add(1)));
    }
    return scaled.sub(diff).square().mean(0);
  }));
}

// ------------------------------------------------------------------------------ sensitivityMax

/** An explanation of the inputs (e.g. `(x) => new Saliency(model).attribute(x, { target })`). */
export type ExplanationFunction = (inputs: Inputs) => Tensor | Tensor[];

/** Options of `sensitivityMax`. */
export interface SensitivityMaxOptions {
  /** Half-width of the uniform perturbations (default 0.02). */
  perturbRadius?: number;
  /** Perturbed inputs per example (default 10). */
  nPerturbSamples?: number;
  /** Seed of the perturbation draws (default: the engine's global stream). */
  seed?: number;
}

/**
 * Max-sensitivity (Yeh et al.; Captum's `sensitivity_max`): per example, the largest relative
 * change ‖e(x + u) − e(x)‖ / ‖e(x)‖ (Frobenius over all inputs; ‖e(x)‖ = 0 counts as 1) of the
 * explanation over `nPerturbSamples` uniform perturbations u ∈ [−r, r]. The explanation runs once
 * per sample on the whole batch. Returns `[batch]`.
 */
export function sensitivityMax(explanationFunc: ExplanationFunction, inputs: Inputs, opts?: SensitivityMaxOptions): Tensor {
  const what = 'sensitivityMax()';
  checkFunction(explanationFunc, `${what}: explanationFunc`);
  const o = checkKeys(opts, ['perturbRadius', 'nPerturbSamples', 'seed'], what);
  const p = prepare(inputs, {}, what);
  const r = o.perturbRadius === undefined ? 0.02 : checkNumber(o.perturbRadius, `${what}: perturbRadius`, { finite: true });
  if (!(r > 0)) throw new ArgumentError(`${what}: perturbRadius must be > 0, got ${r}`);
  const S = o.nPerturbSamples === undefined ? 10 : checkInt(o.nPerturbSamples, `${what}: nPerturbSamples`, 1, 1_000_000);
  const seed = seedOpt(o.seed, what);
  const explain = (xs: Tensor[]): Tensor[] => {
    const e = explanationFunc(p.tuple ? xs : xs[0]);
    const list = e instanceof Tensor ? [e] : Array.isArray(e) ? e : null;
    if (list === null || list.some((t) => !(t instanceof Tensor) || t.shape[0] !== p.n)) throw new ArgumentError(`${what}: explanationFunc must return a Tensor (or tensors) with one row per example, got ${describe(e)}`);
    return list;
  };
  return tidy(() => {
    const e0 = explain(p.xs);
    const n0 = perExampleSum(e0.map((t) => t.square()), p.n).sqrt();
    const norm = n0.add(n0.equal(0));
    let best: Tensor | null = null;
    for (let s = 0; s < S; s++) {
      const sens = tidy(() => {
        const xs = p.xs.map((x, j) => x.add(rand(x.shape, -r, r, subSeed(seed, j, s))));
        const e = explain(xs);
        if (e.length !== e0.length) throw new ArgumentError(`${what}: explanationFunc returned ${e.length} tensors, then ${e0.length}`);
        return perExampleSum(e.map((t, j) => t.sub(e0[j]).square()), p.n).sqrt().div(norm);
      });
      best = best === null ? sens : best.maximum(sens);
    }
    return best!;
  });
}

// ------------------------------------------------------------------- deletion / insertion curves

export interface CurveOptions extends BaseOptions {
  /** Points of the curve after the start (default 20): fraction k / steps of the features changed at point k. */
  steps?: number;
  /** What removed features become (default 0). */
  baselines?: Baselines;
  /** Groups ranked and removed together, e.g. the channels of a pixel (default: every element). */
  featureMask?: FeatureMask;
  /** Score the softmax probability of the target (default true for several outputs; false: the raw output). */
  softmax?: boolean;
  /** Rows per forward (default: as many as hold about 4M input elements). Does not change the result. */
  perturbationsPerEval?: number;
}

/** A deletion or insertion curve per example. */
export interface Curve {
  /** Fraction of features removed (deletion) or inserted (insertion) at each point, from 0 to 1. */
  fractions: number[];
  /** `[example][point]`: the target's probability (or output) at each point. */
  scores: number[][];
  /** Area under each example's curve (trapezoid rule over the fractions). */
  auc: number[];
}

class CurveRunner extends PerturbationAttribution {
  curve(mode: 'deletion' | 'insertion', inputs: Inputs, attributions: Tensor | readonly Tensor[], opts: CurveOptions | undefined): Curve {
    const what = `${mode}Curve()`;
    const o = checkKeys(opts, ['target', 'additionalForwardArgs', 'steps', 'baselines', 'featureMask', 'softmax', 'perturbationsPerEval'], what);
    const p = prepare(inputs, o, what);
    const attrs = attributionList(attributions, p, what);
    const steps = o.steps === undefined ? 20 : checkInt(o.steps, `${what}: steps`, 1, 100_000);
    const feats = prepareFeatureMask(o.featureMask, p, what);
    const F = feats.count;
    return tidy(() => {
      const pool = prepareBaselines(o.baselines, p, what);
      // Per example, the features ranked by their summed attribution, highest first (ties: lower id first).
      const score = new Float64Array(p.n * F);
      attrs.forEach((a, j) => {
        const v = a.dataSync() as Float32Array;
        const ids = feats.ids[j];
        for (let q = 0; q < v.length; q++) score[Math.floor(q / (v.length / p.n)) * F + ids[q]] += v[q];
      });
      const rank: Int32Array[] = [];
      for (let i = 0; i < p.n; i++) {
        const order = Array.from(feats.present[i]).sort((a, b) => score[i * F + b] - score[i * F + a] || a - b);
        const rk = new Int32Array(F).fill(F);
        order.forEach((f, k) => (rk[f] = k));
        rank.push(rk);
      }
      const counts = Array.from({ length: steps + 1 }, (_, k) => feats.present.map((pr) => Math.round((k * pr.length) / steps)));
      const perEx = steps + 1;
      const total = p.n * perEx;
      const { out } = this.evaluate(p, pool, total, (r) => {
        const i = Math.floor(r / perEx);
        const c = counts[r % perEx][i];
        // Deletion keeps all but the top c; insertion keeps only the top c.
        return { ex: i, src: i, keep: this.keepFeatures(p, feats, i, (f) => (mode === 'deletion' ? rank[i][f] >= c : rank[i][f] < c)) };
      }, this.perEval(o, total, p, what));
      const fractions = Array.from({ length: perEx }, (_, k) => k / steps);
      const scores: number[][] = [];
      const auc: number[] = [];
      for (let i = 0; i < p.n; i++) {
        const ys = Array.from(out.subarray(i * perEx, (i + 1) * perEx));
        const present = feats.present[i].length;
        const xs = counts.map((c) => (present === 0 ? 0 : c[i] / present));
        let area = 0;
        for (let k = 1; k < perEx; k++) area += ((xs[k] - xs[k - 1]) * (ys[k] + ys[k - 1])) / 2;
        scores.push(ys);
        auc.push(area);
      }
      return { fractions, scores, auc };
    });
  }
}

function curveRunner(forward: Forward, softmax: unknown, what: string): CurveRunner {
  if (!(forward instanceof Module) && typeof forward !== 'function') throw new ArgumentError(`${what} needs a Module or a function of tensors, got ${describe(forward)}`);
  const useSoftmax = softmax === undefined ? undefined : checkBool(softmax, `${what}: softmax`);
  const f = (...args: unknown[]): Tensor => {
    const out = forward instanceof Module ? forward.forward(...(args as [Tensor])) : forward(...args);
    if (!(out instanceof Tensor) || out.rank !== 2 || out.shape[1] < 2) return out as Tensor;
    return useSoftmax === false ? out : out.softmax(1);
  };
  return new CurveRunner(f);
}

/**
 * Deletion curve: the features (elements, or groups of `featureMask`) removed — replaced by the
 * baseline — in order of decreasing attribution, in `steps` equal fractions; at each point the
 * target class probability. A faithful attribution makes it fall fast (a low AUC).
 */
export function deletionCurve(forward: Forward, inputs: Inputs, attributions: Tensor | readonly Tensor[], opts?: CurveOptions): Curve {
  return curveRunner(forward, opts?.softmax, 'deletionCurve()').curve('deletion', inputs, attributions, opts);
}

/**
 * Insertion curve: starting from the baseline, the features inserted in order of decreasing
 * attribution; at each point the target class probability. A faithful attribution makes it rise
 * fast (a high AUC).
 */
export function insertionCurve(forward: Forward, inputs: Inputs, attributions: Tensor | readonly Tensor[], opts?: CurveOptions): Curve {
  return curveRunner(forward, opts?.softmax, 'insertionCurve()').curve('insertion', inputs, attributions, opts);
}

