/**
 * Dataset-level feature importance: `permutationImportance` as scikit-learn's
 * `sklearn.inspection.permutation_importance` defines it.
 */
import { checkFunction, checkInt, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { randperm, tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import { checkKeys, rows, type Forward } from './common.js';
import { subSeed } from './gradient.js';

/** A score where greater is better, of predictions against targets (scikit-learn's scorer convention). */
export type ScoreFunction = (predictions: Tensor, y: Tensor) => number;
/**
 * Built-in scores (greater is better): 'accuracy' (argmax of [n, C] outputs, or [n]/[n, 1] outputs
 * thresholded at 0.5, against labels), 'neg_mean_squared_error' (alias 'mse'),
 * 'neg_mean_absolute_error' (alias 'mae'), 'r2'.
 */
export type ScoreName = 'accuracy' | 'neg_mean_squared_error' | 'mse' | 'neg_mean_absolute_error' | 'mae' | 'r2';
/** Every built-in {@link ScoreName}. */
export const SCORES: readonly ScoreName[] = ['accuracy', 'neg_mean_squared_error', 'mse', 'neg_mean_absolute_error', 'mae', 'r2'];

/** Options of {@link permutationImportance}. */
export interface PermutationImportanceOptions {
  /** Times each feature is permuted (default 5). */
  nRepeats?: number;
  /** Seed of the permutations (default: the global stream). */
  seed?: number;
  /** Rows per forward (default: all nRepeats copies of the data for one feature at once). Does not change the result. */
  batchSize?: number;
}

/** Per feature: mean and (population) standard deviation over the repeats, and every repeat's value. */
export interface PermutationImportanceResult {
  /** Baseline score minus permuted score, averaged over the repeats, per feature. */
  importancesMean: number[];
  /** Population standard deviation of the importance over the repeats, per feature. */
  importancesStd: number[];
  /** `[feature][repeat]`. */
  importances: number[][];
  /** The score on the unpermuted data. */
  baselineScore: number;
}

/** The values of a one-element (or [n] score) tensor as a JS number. */
function scalar(t: Tensor): number {
  return (t.dataSync() as Float32Array)[0];
}

function builtinScore(name: ScoreName): ScoreFunction {
  return (pred, y) => tidy(() => {
    const n = pred.shape[0];
    if (name === 'accuracy') {
      const labels = y.reshape([n]).cast('float32');
      const cls = pred.rank === 2 && pred.shape[1] > 1 ? pred.argMax(1).cast('float32') : pred.reshape([n]).greater(0.5);
      return scalar(cls.equal(labels).mean());
    }
    const yf = (y.dtype === 'float32' ? y : y.cast('float32')).reshape([n, -1]);
    const pf = pred.reshape([n, -1]);
    if (pf.shape[1] !== yf.shape[1]) throw new ShapeError(`permutationImportance: predictions [${pred.shape.join(', ')}] do not match targets [${y.shape.join(', ')}]`);
    const err = pf.sub(yf);
    if (name === 'neg_mean_squared_error' || name === 'mse') return -scalar(err.square().mean());
    if (name === 'neg_mean_absolute_error' || name === 'mae') return -scalar(err.abs().mean());
    // r2 = 1 − SS_res / SS_tot (over all outputs together).
    const ssRes = scalar(err.square().sum());
    const ssTot = scalar(yf.sub(yf.mean(0, true)).square().sum());
    return ssTot === 0 ? (ssRes === 0 ? 1 : 0) : 1 - ssRes / ssTot;
  });
}

/**
 * Permutation feature importance (Breiman; scikit-learn's `permutation_importance`): for each
 * feature (column `j` along dimension 1 of `x`), the decrease of the score when that column is
 * shuffled across the rows, repeated `nRepeats` times with seeded permutations. Importance =
 * baseline score − permuted score (scores are greater-is-better). Each feature's repeats run in
 * forwards of `batchSize` rows.
 */
export function permutationImportance(model: Forward, x: Tensor, y: Tensor, metric: ScoreName | ScoreFunction, opts?: PermutationImportanceOptions): PermutationImportanceResult {
  const what = 'permutationImportance()';
  if (!(model instanceof Module) && typeof model !== 'function') throw new ArgumentError(`${what}: model must be a Module or a function of tensors, got ${describe(model)}`);
  if (!(x instanceof Tensor)) throw new ArgumentError(`${what}: x must be a Tensor, got ${describe(x)}`);
  if (!(y instanceof Tensor)) throw new ArgumentError(`${what}: y must be a Tensor, got ${describe(y)}`);
  if (x.isDisposed) x.handle;
  if (y.isDisposed) y.handle;
  if (x.dtype !== 'float32') throw new DTypeError(`${what}: x is ${x.dtype}; features must be float32`);
  if (x.rank < 2 || x.shape[0] < 2) throw new ShapeError(`${what}: x has shape [${x.shape.join(', ')}]; it must be [rows >= 2, features, ...]`);
  const n = x.shape[0];
  if (y.rank < 1 || y.shape[0] !== n) throw new ShapeError(`${what}: y has shape [${y.shape.join(', ')}] for ${n} rows of x`);
  let score: ScoreFunction;
  if (typeof metric === 'string') {
    if (!SCORES.includes(metric)) throw new ArgumentError(`${what}: unknown metric ${describe(metric)}; use a function (predictions, y) => number or one of ${SCORES.join(', ')}`);
    score = builtinScore(metric);
  } else {
    score = checkFunction<ScoreFunction>(metric, `${what}: metric`);
  }
  const o = checkKeys(opts, ['nRepeats', 'seed', 'batchSize'], what);
  const nRepeats = o.nRepeats === undefined ? 5 : checkInt(o.nRepeats, `${what}: nRepeats`, 1, 100_000);
  const seed = o.seed === undefined ? undefined : checkInt(o.seed, `${what}: seed`, 0, Number.MAX_SAFE_INTEGER);
  const batch = o.batchSize === undefined ? n * nRepeats : checkInt(o.batchSize, `${what}: batchSize`, 1);
  const F = x.shape[1];
  const rest = x.shape.slice(1);

  const predict = (t: Tensor): Tensor => {
    const out = model instanceof Module ? model.forward(t) : model(t);
    if (!(out instanceof Tensor)) throw new ArgumentError(`${what}: the model returned ${describe(out)}, not a Tensor`);
    if (out.rank < 1 || out.shape[0] !== t.shape[0]) throw new ShapeError(`${what}: the model returned [${out.shape.join(', ')}] for ${t.shape[0]} rows`);
    return out;
  };
  const checkScore = (v: unknown): number => {
    if (typeof v !== 'number' || Number.isNaN(v)) throw new ArgumentError(`${what}: the metric returned ${describe(v)}, not a number`);
    return v;
  };

  return noGrad(() => tidy(() => {
    const baselineScore = checkScore(tidy(() => score(predict(x), y)));
    const importances: number[][] = [];
    for (let j = 0; j < F; j++) {
      importances.push(tidy(() => {
        // Column j of repeat r comes from the rows permuted by perm_r: x ⊙ m + x[perm] ⊙ (1 − m), m ∈ {0, 1}.
        const keep = new Float32Array(rest.reduce((a, b) => a * b, 1)).fill(1);
        const inner = rest.slice(1).reduce((a, b) => a * b, 1);
        keep.fill(0, j * inner, (j + 1) * inner);
        const drop = keep.map((v) => 1 - v);
        const keepT = tensor(keep, [1, ...rest]);
        const dropT = tensor(drop, [1, ...rest]);
        const copies: Tensor[] = [];
        for (let r = 0; r < nRepeats; r++) {
          const perm = randperm(n, subSeed(seed, j, r));
          copies.push(x.mul(keepT).add(x.indexSelect(0, perm).mul(dropT)));
        }
        const all = concat(copies, 0);
        const parts: Tensor[] = [];
        for (let a = 0; a < n * nRepeats; a += batch) parts.push(predict(rows(all, a, Math.min(n * nRepeats, a + batch))));
        const pred = parts.length === 1 ? parts[0] : concat(parts, 0);
        return copies.map((_, r) => baselineScore - checkScore(tidy(() => score(rows(pred, r * n, (r + 1) * n), y))));
      }));
    }
    const importancesMean = importances.map((v) => v.reduce((a, b) => a + b, 0) / nRepeats);
    const importancesStd = importances.map((v, j) => Math.sqrt(v.reduce((a, b) => a + (b - importancesMean[j]) * (b - importancesMean[j]), 0) / nRepeats));
    return { importancesMean, importancesStd, importances, baselineScore };
  }));
}
