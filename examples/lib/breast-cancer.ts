/**
 * The Wisconsin breast-cancer data shipped in examples/data/breast_cancer (scikit-learn's copy:
 * 569 tumours × 30 features, malignant = 0 / benign = 1), split by `eg.data.trainTestSplit` (seeded)
 * and standardized by the mean and std of the training rows (default) or of the held-out rows (for
 * differential privacy: statistics of the private training rows would leak outside DP-SGD).
 */
import { readFile } from 'node:fs/promises';
import * as eg from 'edgegrad';

export interface BreastCancer {
  xTrain: eg.Tensor;
  yTrain: eg.Tensor;
  xTest: eg.Tensor;
  yTest: eg.Tensor;
  featureNames: string[];
  classNames: string[];
}

/** Loads, splits (`testSize` of the rows held out, default 0.2) and standardizes the data. */
export async function loadBreastCancer(o: { testSize?: number; seed?: number; standardizeBy?: 'train' | 'test' } = {}): Promise<BreastCancer> {
  const dir = new URL('../data/breast_cancer/', import.meta.url);
  // A header `569,30,malignant,benign`, then 30 floats and the label per line.
  const lines = (await readFile(new URL('breast_cancer.csv', dir), 'utf8')).trim().split('\n');
  const [nRows, nFeat, ...classNames] = lines[0].split(',');
  const n = Number(nRows);
  const f = Number(nFeat);
  const featureNames = (await readFile(new URL('feature_names.txt', dir), 'utf8')).trim().split('\n');
  if (featureNames.length !== f || lines.length !== n + 1) throw new Error(`unexpected breast_cancer.csv layout (${lines.length - 1} rows, ${featureNames.length} names)`);
  const xs = new Float32Array(n * f);
  const ys = new Int32Array(n);
  lines.slice(1).forEach((line, i) => {
    const v = line.split(',').map(Number);
    xs.set(v.slice(0, f), i * f);
    ys[i] = v[f];
  });
  const [xTrain, yTrain, xTest, yTest] = eg.tidy(() => {
    const [xtr, ytr, xte, yte] = eg.data.trainTestSplit([eg.tensor(xs, [n, f]), eg.tensor(ys, [n], 'int32')], { testSize: o.testSize ?? 0.2, seed: o.seed ?? 7 });
    const ref = o.standardizeBy === 'test' ? xte : xtr;
    const mean = ref.mean(0, true);
    const std = ref.sub(mean).square().mean(0, true).sqrt();
    return [xtr.sub(mean).div(std), ytr, xte.sub(mean).div(std), yte];
  });
  return { xTrain, yTrain, xTest, yTest, featureNames, classNames };
}
