/**
 * Linear probes (Alain and Bengio): how linearly decodable the labels are from each layer of a
 * frozen model. A logistic-regression probe (our `Linear`, softmax cross-entropy, `Adam`, trained
 * with `fit`) is fitted on each layer's captured activations and scored on train and held-out rows.
 */
import { checkBool, checkInt, checkNumber, checkOptions, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { randperm, tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { dispose, keep, tidy } from '../memory.js';
import { sparseCategoricalCrossEntropy } from '../losses.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { Adam } from '../optim/optimizers.js';
import { Tensor } from '../tensor.js';
import { accuracy } from '../train/metrics.js';
import { captureActivations, resolveModules } from './hooks.js';
import { rows } from './common.js';

/** Options of `linearProbe`: probe training and the train/test split. */
export interface LinearProbeOptions {
  /** Training epochs of each probe (default 30). */
  epochs?: number;
  /** Adam's learning rate (default 0.01). */
  lr?: number;
  /** Seed of the split, the probes' initial weights and the batch shuffles (default 0). */
  seed?: number;
  /** Fraction of the rows held out for the test accuracy (default 0.25), drawn by the seeded permutation. */
  testSplit?: number;
  /** Rows per training batch and per capture forward (default 64). */
  batchSize?: number;
  /** Standardize each feature by the training rows' mean and standard deviation (default true). */
  standardize?: boolean;
}

/** One layer's probe. */
export interface ProbeResult {
  /** The module path. */
  layer: string;
  /** Flattened activation size: the probe's inputs. */
  features: number;
  /** Probe accuracy on the training rows. */
  trainAccuracy: number;
  /** Probe accuracy on the held-out rows. */
  testAccuracy: number;
}

/** What `linearProbe` returns: per-layer accuracies, chance level and split sizes. */
export interface LinearProbeReport {
  /** One result per layer, in the order asked. */
  layers: ProbeResult[];
  /** Accuracy of always guessing the training rows' most frequent class, on the held-out rows. */
  chance: number;
  /** Rows the probes were trained on. */
  nTrain: number;
  /** Held-out rows the accuracies are measured on. */
  nTest: number;
}

const KEYS = ['epochs', 'lr', 'seed', 'testSplit', 'batchSize', 'standardize'];

/**
 * Fits a logistic-regression probe on each named layer's activations of `model` (frozen: run in
 * eval mode without gradients, its weights untouched) for inputs `x` and int32 class labels `y`
 * (`[n]`), and reports the probes' train and held-out accuracy per layer. Activations are flattened
 * per example. Seeded: the same seed gives the same report in every runtime.
 *
 * ```ts
 * const report = await explain.linearProbe(model, ['0', '2'], x, y, { epochs: 30, seed: 1 });
 * ```
 */
export async function linearProbe(model: Module, layerNames: readonly string[], x: Tensor, y: Tensor, opts?: LinearProbeOptions): Promise<LinearProbeReport> {
  const what = 'linearProbe()';
  resolveModules(model, layerNames, what);
  if (layerNames.length === 0) throw new ArgumentError(`${what}: name at least one layer`);
  const o = checkOptions(opts, `${what} options`);
  for (const k of Object.keys(o)) if (!KEYS.includes(k)) throw new ArgumentError(`${what}: unknown option '${k.slice(0, 40)}' (options: ${KEYS.join(', ')})`);
  const epochs = checkInt(o.epochs ?? 30, `${what}: epochs`, 1, 1_000_000);
  const lr = checkNumber(o.lr ?? 0.01, `${what}: lr`, { finite: true });
  if (!(lr > 0)) throw new ArgumentError(`${what}: lr must be > 0, got ${lr}`);
  const seed = checkInt(o.seed ?? 0, `${what}: seed`, 0, Number.MAX_SAFE_INTEGER);
  const testSplit = checkNumber(o.testSplit ?? 0.25, `${what}: testSplit`, { finite: true });
  const batchSize = checkInt(o.batchSize ?? 64, `${what}: batchSize`, 1);
  const standardize = checkBool(o.standardize ?? true, `${what}: standardize`);
  if (!(x instanceof Tensor)) throw new ArgumentError(`${what}: x must be a Tensor, got ${describe(x)}`);
  if (!(y instanceof Tensor)) throw new ArgumentError(`${what}: y must be a Tensor of int32 labels, got ${describe(y)}`);
  if (x.isDisposed) x.handle; // throws DisposedError naming it
  if (y.isDisposed) y.handle;
  if (y.dtype !== 'int32') throw new DTypeError(`${what}: y must be int32 class labels, got ${y.dtype}`);
  if (x.rank < 1 || y.rank !== 1 || y.shape[0] !== x.shape[0]) throw new ShapeError(`${what}: x [${x.shape.join(', ')}] and y [${y.shape.join(', ')}] must be [n, ...] and [n]`);
  const n = x.shape[0];
  const nTest = Math.round(n * testSplit);
  if (!(testSplit > 0 && testSplit < 1) || nTest < 1 || nTest >= n) throw new ArgumentError(`${what}: testSplit ${testSplit} leaves no training or no test rows out of ${n}`);
  const labels = Int32Array.from(y.dataSync() as Int32Array);
  if (labels.some((v) => v < 0)) throw new ArgumentError(`${what}: labels must be class indices >= 0`);
  const classes = Math.max(2, labels.reduce((m, v) => Math.max(m, v), 0) + 1);

  // The split: a seeded permutation, its first nTest rows held out.
  const perm = noGrad(() => tidy(() => Int32Array.from(randperm(n, { seed }).dataSync() as Int32Array)));
  const testIdx = perm.slice(0, nTest);
  const trainIdx = perm.slice(nTest);
  const counts = new Map<number, number>();
  for (const i of trainIdx) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1);
  const majority = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
  const chance = Array.from(testIdx).filter((i) => labels[i] === majority).length / nTest;

  const feats = captureFlat(model, layerNames, x, batchSize);
  const owned: Tensor[] = [...feats.values()];
  try {
    const yTrain = keep(tensor(Int32Array.from(trainIdx, (i) => labels[i]), [n - nTest], 'int32'));
    const yTest = keep(tensor(Int32Array.from(testIdx, (i) => labels[i]), [nTest], 'int32'));
    owned.push(yTrain, yTest);
    const results: ProbeResult[] = [];
    for (const name of layerNames) {
      const [xTrain, xTest] = split(feats.get(name)!, trainIdx, testIdx, standardize);
      owned.push(xTrain, xTest);
      const features = xTrain.shape[1];
      const probe = new Linear(features, classes, { seed });
      const optimizer = new Adam(probe.parameters(), { lr });
      try {
        probe.compile({ optimizer, loss: (p, t) => sparseCategoricalCrossEntropy(p, t, { fromLogits: true }) });
        await probe.fit(xTrain, yTrain, { epochs, batchSize, seed, shuffle: true, verbose: 0 });
        const score = (xs: Tensor, ys: Tensor) => noGrad(() => tidy(() => accuracy(probe.forward(xs), ys).item()));
        results.push({ layer: name, features, trainAccuracy: score(xTrain, yTrain), testAccuracy: score(xTest, yTest) });
      } finally {
        optimizer.dispose();
        probe.dispose();
      }
    }
    return { layers: results, chance, nTrain: n - nTest, nTest };
  } finally {
    dispose(owned);
  }
}

/** Each layer's activations for all rows of `x`, flattened to `[n, features]` (caller-owned), captured `batch` rows at a time in eval mode. */
function captureFlat(model: Module, names: readonly string[], x: Tensor, batch: number): Map<string, Tensor> {
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() => {
      const parts = new Map<string, Tensor[]>(names.map((k) => [k, []]));
      try {
        for (let a = 0; a < x.shape[0]; a += batch) {
          const b = Math.min(x.shape[0], a + batch);
          tidy(() => {
            const { activations } = captureActivations(model, names, () => model.forward(rows(x, a, b)));
            for (const [k, t] of activations) {
              parts.get(k)!.push(keep(t.reshape([b - a, -1])));
              t.dispose();
            }
          });
        }
        return new Map([...parts].map(([k, ts]) => [k, keep(tidy(() => (ts.length === 1 ? ts[0].clone() : concat(ts, 0))))]));
      } finally {
        for (const ts of parts.values()) dispose(ts);
      }
    });
  } finally {
    model.train(wasTraining);
  }
}

/** Train and test rows of `f` (caller-owned), standardized by the training rows' statistics. */
function split(f: Tensor, trainIdx: Int32Array, testIdx: Int32Array, standardize: boolean): [Tensor, Tensor] {
  return noGrad(() => {
    const [a, b] = tidy(() => {
      const tr = f.indexSelect(0, tensor(trainIdx, [trainIdx.length], 'int32'));
      const te = f.indexSelect(0, tensor(testIdx, [testIdx.length], 'int32'));
      if (!standardize) return [tr, te];
      const mean = tr.mean(0, true);
      const sd = tr.sub(mean).square().mean(0, true).sqrt();
      const safe = sd.add(sd.equal(0)); // constant features (dead units) stay 0 instead of dividing by 0
      return [tr.sub(mean).div(safe), te.sub(mean).div(safe)];
    });
    return [keep(a), keep(b)];
  });
}
