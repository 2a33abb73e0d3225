/** Perturbation attributions, permutation importance and explanation metrics (issue 14 §2, §6). */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';
import { B, bits, expectFlatOver100Calls, fnv1a, linearModel, mlp, sameBitsOnOneAndTwoThreads, W, X } from './explain-fixtures.js';

const { nn, explain } = eg;

beforeAll(async () => {
  await setup();
});

const BASE = [1, -1, 2, 0.5, 0];

const rowsOf = (t: eg.Tensor) => t.arraySync() as number[][];
const expected = (f: (i: number, k: number) => number) => X.map((r, i) => r.map((_, k) => f(i, k)));

function close(got: number[][], want: number[][], digits: number, what: string): void {
  got.forEach((r, i) => r.forEach((v, k) => expect(v, `${what} [${i}][${k}]`).toBeCloseTo(want[i][k], digits)));
}

describe('known answers on a linear model F(x) = w·x + b', () => {
  it('Occlusion with window 1 and FeatureAblation = w ⊙ (x − baseline); wider windows average the windows covering an element', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const base = eg.tensor(BASE);
    const want = expected((i, k) => W[k] * (X[i][k] - BASE[k]));
    close(rowsOf(new explain.Occlusion(m).attribute(x, { slidingWindowShapes: [1], baselines: base })), want, 4, 'Occlusion');
    close(rowsOf(new explain.FeatureAblation(m).attribute(x, { baselines: base })), want, 4, 'FeatureAblation');
    // Windows of 2 with stride 2 start at 0, 2, 4 (the last clipped to one element): each element gets its window's sum.
    const occ2 = rowsOf(new explain.Occlusion(m).attribute(x, { slidingWindowShapes: [2], strides: 2, baselines: base }));
    const win = (i: number, k: number) => [0, 1, 2, 3, 4].filter((q) => Math.floor(q / 2) === Math.floor(k / 2)).reduce((s, q) => s + W[q] * (X[i][q] - BASE[q]), 0);
    close(occ2, expected(win), 4, 'Occlusion 2/2');
    // Windows of 2 with stride 1: element k is in the windows starting at k − 1 and k (one at the ends): their mean.
    const occ21 = rowsOf(new explain.Occlusion(m).attribute(x, { slidingWindowShapes: [2], baselines: base }));
    const c = (i: number, q: number) => W[q] * (X[i][q] - BASE[q]);
    const mean21 = (i: number, k: number) => {
      const starts = [k - 1, k].filter((s) => s >= 0 && s <= 3);
      return starts.reduce((s, a) => s + c(i, a) + c(i, a + 1), 0) / starts.length;
    };
    close(occ21, expected(mean21), 4, 'Occlusion 2/1');
    // Feature groups: features {0, 1} and {3, 4} ablated together; each element gets its group's effect.
    const mask = eg.tensor([0, 0, 1, 2, 2], [5], 'int32');
    const grouped = rowsOf(new explain.FeatureAblation(m).attribute(x, { baselines: base, featureMask: mask }));
    close(grouped, expected((i, k) => (k < 2 ? c(i, 0) + c(i, 1) : k === 2 ? 0 : c(i, 3) + c(i, 4))), 4, 'groups');
    eg.dispose([x, base, mask]);
    m.dispose();
  });

  it('KernelShap, ShapleyValueSampling and Lime (alpha 0) = w ⊙ (x − E[x]) with the background set\'s mean as baseline', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const background = eg.randn([32, 5], 0, 2, { seed: 3 });
    const mean = background.mean(0);
    const mu = Array.from(mean.dataSync() as Float32Array);
    const want = expected((i, k) => W[k] * (X[i][k] - mu[k]));
    // Exact for an additive model: every sampled permutation gives each feature the same marginal contribution,
    // and the regression of exactly linear outputs on spanning coalitions recovers the coefficients.
    close(rowsOf(new explain.ShapleyValueSampling(m).attribute(x, { baselines: mean, nSamples: 3, seed: 1 })), want, 4, 'ShapleyValueSampling');
    close(rowsOf(new explain.KernelShap(m).attribute(x, { baselines: mean, nSamples: 40, seed: 2 })), want, 3, 'KernelShap');
    close(rowsOf(new explain.Lime(m).attribute(x, { baselines: mean, nSamples: 60, seed: 3, alpha: 0 })), want, 3, 'Lime');
    // The default ridge penalty shrinks Lime's coefficients, but keeps their order.
    const ridge = rowsOf(new explain.Lime(m).attribute(x, { baselines: mean, nSamples: 60, seed: 3 }));
    expect(Math.abs(ridge[0][4])).toBeLessThan(Math.abs(want[0][4]));
    expect(Math.abs(ridge[0][4])).toBeGreaterThan(Math.abs(ridge[0][0]));
    eg.dispose([x, background, mean]);
    m.dispose();
  });

  it('FeaturePermutation = w ⊙ (x − x[π]) per feature: sums to 0 over the batch, 0 for the ignored feature', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const fp = rowsOf(new explain.FeaturePermutation(m).attribute(x, { seed: 4 }));
    for (let k = 0; k < 5; k++) {
      // Each column is w_k (x_ik − x_π(i)k) for one permutation π: its values are w_k times differences of the column.
      expect(fp.reduce((s, r) => s + r[k], 0), `column ${k}`).toBeCloseTo(0, 4);
      fp.forEach((r, i) => {
        const ok = X.some((o) => Math.abs(W[k] * (X[i][k] - o[k]) - r[k]) < 1e-4);
        expect(ok, `[${i}][${k}]`).toBe(true);
      });
    }
    expect(fp.map((r) => r[2])).toEqual([0, 0, 0]);
    x.dispose();
    m.dispose();
  });

  it('a tuple of inputs: feature ids are shared across inputs (one group spans both)', () => {
    const w1 = eg.tensor([[2], [-1]]);
    const w2 = eg.tensor([[0.5], [4], [1]]);
    const f = (a: eg.Tensor, b: eg.Tensor) => a.matmul(w1).add(b.matmul(w2));
    const a = eg.tensor([[1, 2], [3, -1]]);
    const b = eg.tensor([[1, 0, 2], [-2, 1, 1]]);
    // a[0] and b[1] form feature 0; the others are features 1..3.
    const ma = eg.tensor([0, 1], [2], 'int32');
    const mb = eg.tensor([2, 0, 3], [3], 'int32');
    const [ga, gb] = new explain.FeatureAblation(f).attribute([a, b], { featureMask: [ma, mb] });
    expect(rowsOf(ga)).toEqual([[2 + 0, -2], [6 + 4, 1]]);
    expect(rowsOf(gb)).toEqual([[0.5, 2, 2], [-1, 10, 1]]);
    const [oa, ob] = new explain.Occlusion(f).attribute([a, b], { slidingWindowShapes: [[1], [3]] });
    expect(rowsOf(oa)).toEqual([[2, -2], [6, 1]]);
    expect(rowsOf(ob)).toEqual([[2.5, 2.5, 2.5], [4, 4, 4]]);
    eg.dispose([w1, w2, a, b, ma, mb, ga, gb, oa, ob]);
  });
});

describe('images', () => {
  it('Occlusion with non-overlapping 2x2 windows = FeatureAblation with 2x2 blocks as features; per-example masks', () => {
    const m = new nn.Sequential(
      new nn.Conv2d(1, 3, 3, { padding: 'same', seed: 31 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(3 * 3 * 3, 4, { seed: 32 }),
    ).eval();
    const x = eg.rand([2, 6, 6, 1], 0, 1, { seed: 33 });
    const blocks = eg.tensor(Int32Array.from({ length: 36 }, (_, k) => Math.floor(Math.floor(k / 6) / 2) * 3 + Math.floor((k % 6) / 2)), [6, 6, 1], 'int32');
    const occ = new explain.Occlusion(m).attribute(x, { target: [1, 3], slidingWindowShapes: [2, 2, 1], strides: [2, 2, 1], baselines: 0.5 });
    const fa = new explain.FeatureAblation(m).attribute(x, { target: [1, 3], featureMask: blocks, baselines: 0.5, perturbationsPerEval: 4 });
    expect(occ.shape).toEqual([2, 6, 6, 1]);
    expect(bits(occ)).toEqual(bits(fa));
    expect((occ.dataSync() as Float32Array).some((v) => v !== 0)).toBe(true);
    // A mask per example: example 1 ablates the whole image as one feature.
    const perEx = eg.concat([blocks.reshape([1, 6, 6, 1]), eg.zeros([1, 6, 6, 1], 'int32')], 0);
    const fa2 = new explain.FeatureAblation(m).attribute(x, { target: [1, 3], featureMask: perEx, baselines: 0.5 });
    const [first, second] = [eg.tidy(() => bits(fa2.slice([0, 0, 0, 0], [1, 6, 6, 1]))), eg.tidy(() => rowsOf(fa2.reshape([2, 36])))[1]];
    expect(first).toEqual(eg.tidy(() => bits(fa.slice([0, 0, 0, 0], [1, 6, 6, 1]))));
    const whole = eg.tidy(() => {
      const out = m.forward(x.slice([1, 0, 0, 0], [2, 6, 6, 1])).dataSync() as Float32Array;
      const base = m.forward(eg.full([1, 6, 6, 1], 0.5)).dataSync() as Float32Array;
      return Math.fround(out[3] - base[3]);
    });
    expect(second).toEqual(new Array(36).fill(whole));
    eg.dispose([x, blocks, occ, fa, perEx, fa2]);
    m.dispose();
  });
});

describe('axioms and planted features', () => {
  it('dummy: a feature the model ignores gets exactly 0 from every method', () => {
    const m = mlp();
    const x = eg.randn([4, 4], 0, 1, { seed: 5 });
    const methods: [string, eg.Tensor][] = [
      ['Occlusion', new explain.Occlusion(m).attribute(x, { target: 1, slidingWindowShapes: [1], baselines: 0.3 })],
      ['FeatureAblation', new explain.FeatureAblation(m).attribute(x, { target: 2, baselines: -1 })],
      ['FeaturePermutation', new explain.FeaturePermutation(m).attribute(x, { target: 0, seed: 1 })],
      ['ShapleyValueSampling', new explain.ShapleyValueSampling(m).attribute(x, { target: [0, 1, 2, 0], nSamples: 4, seed: 2 })],
      // 16 >= 2^4 coalitions: all enumerated, the exact Shapley values (the regression leaves float64 rounding only).
      ['KernelShap', new explain.KernelShap(m).attribute(x, { target: 1, nSamples: 16, seed: 3 })],
    ];
    for (const [name, a] of methods) {
      const r = rowsOf(a);
      if (name === 'KernelShap') r.forEach((row) => expect(Math.abs(row[1]), name).toBeLessThan(1e-6));
      else expect(r.map((row) => Math.abs(row[1])), name).toEqual([0, 0, 0, 0]);
      expect(r.some((row) => row[0] !== 0), name).toBe(true);
    }
    // LIME's surrogate is a regression on random samples: an ignored feature only gets a small weight (not an axiom of LIME).
    const lime = rowsOf(new explain.Lime(m).attribute(x, { target: 1, nSamples: 200, seed: 4 }));
    lime.forEach((row) => expect(Math.abs(row[1])).toBeLessThan(0.2 * Math.max(...row.map(Math.abs))));
    // KernelShap's exact values add up to F(x) − F(0) (efficiency).
    const ks = rowsOf(methods[4][1]);
    const fx = eg.tidy(() => rowsOf(m.forward(x)).map((r) => r[1]));
    const f0 = eg.tidy(() => rowsOf(m.forward(eg.zeros([1, 4])))[0][1]);
    ks.forEach((row, i) => expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(fx[i] - f0, 5));
    eg.dispose([x, ...methods.map(([, a]) => a)]);
    m.dispose();
  });

  it('planted feature: only feature 3 matters → permutationImportance, KernelShap and IntegratedGradients rank it first', () => {
    const k = 3;
    const v = eg.tensor([[0.05], [-0.08], [0.03], [2], [0.06], [-0.04]]);
    const reg = (t: eg.Tensor) => t.matmul(v).tanh();
    const x = eg.randn([64, 6], 0, 1, { seed: 6 });
    const y = eg.noGrad(() => x.slice([0, k], [64, k + 1]).mul(2).tanh());
    const pi = explain.permutationImportance(reg, x, y, 'neg_mean_squared_error', { nRepeats: 4, seed: 7 });
    expect(pi.importances).toHaveLength(6);
    expect(pi.importances[0]).toHaveLength(4);
    const top = (a: number[]) => a.indexOf(Math.max(...a));
    expect(top(pi.importancesMean)).toBe(k);
    expect(pi.importancesStd.every((s) => s >= 0)).toBe(true);
    // The mean and std are those of the repeats (population std, as NumPy's default).
    const r3 = pi.importances[k];
    const mu = r3.reduce((s, q) => s + q, 0) / 4;
    expect(pi.importancesMean[k]).toBeCloseTo(mu, 12);
    expect(pi.importancesStd[k]).toBeCloseTo(Math.sqrt(r3.reduce((s, q) => s + (q - mu) ** 2, 0) / 4), 12);
    // Classification with 'accuracy': labels are the sign of feature 3.
    const labels = eg.noGrad(() => x.slice([0, k], [64, k + 1]).greater(0).cast('int32').reshape([64]));
    const clf = (t: eg.Tensor) => eg.concat([eg.zerosLike(t.matmul(v)), t.matmul(v)], 1);
    const acc = explain.permutationImportance(clf, x, labels, 'accuracy', { nRepeats: 3, seed: 8 });
    expect(acc.baselineScore).toBeGreaterThan(0.9);
    expect(top(acc.importancesMean)).toBe(k);
    // KernelShap on the regression model: feature 3 has the largest mean |attribution|.
    const ks = rowsOf(new explain.KernelShap(reg).attribute(x.slice([0, 0], [16, 6]), { nSamples: 64, seed: 9 }));
    const meanAbs = [0, 1, 2, 3, 4, 5].map((q) => ks.reduce((s, r) => s + Math.abs(r[q]), 0));
    expect(top(meanAbs)).toBe(k);
    // Integrated Gradients (zero baseline) on the same model and rows: feature 3 first as well.
    const ig = rowsOf(new explain.IntegratedGradients(reg).attribute(x.slice([0, 0], [16, 6]), { nSteps: 32 }) as eg.Tensor);
    expect(top([0, 1, 2, 3, 4, 5].map((q) => ig.reduce((s, r) => s + Math.abs(r[q]), 0)))).toBe(k);
    // A metric function: negative mean absolute error, computed by the caller.
    const custom = explain.permutationImportance(reg, x, y, (p, t) => -(p.sub(t).abs().mean().dataSync() as Float32Array)[0], { nRepeats: 2, seed: 7 });
    const mae = explain.permutationImportance(reg, x, y, 'mae', { nRepeats: 2, seed: 7, batchSize: 13 });
    expect(custom.importances).toEqual(mae.importances);
    eg.dispose([v, x, y, labels]);
  });
});

describe('batching, seeds and memory', () => {
  /** One call of each method (seeded where random), `ppe` rows per forward. */
  const calls = (m: eg.nn.Module, x: eg.Tensor, ppe?: number): (() => eg.Tensor)[] => [
    () => new explain.Occlusion(m).attribute(x, { target: 1, slidingWindowShapes: [2], strides: 1, baselines: 0.1, perturbationsPerEval: ppe }),
    () => new explain.FeatureAblation(m).attribute(x, { target: [0, 1, 2].slice(0, x.shape[0]), perturbationsPerEval: ppe }),
    () => new explain.FeaturePermutation(m).attribute(x, { target: 2, seed: 5, perturbationsPerEval: ppe }),
    () => new explain.ShapleyValueSampling(m).attribute(x, { target: 0, nSamples: 3, seed: 6, perturbationsPerEval: ppe }),
    () => new explain.KernelShap(m).attribute(x, { target: 1, nSamples: 12, seed: 7, perturbationsPerEval: ppe }),
    () => new explain.Lime(m).attribute(x, { target: 2, nSamples: 12, seed: 8, perturbationsPerEval: ppe }),
  ];
  const methods = (m: eg.nn.Module, x: eg.Tensor) => (ppe?: number): eg.Tensor[] => calls(m, x, ppe).map((f) => f());

  it('perturbationsPerEval does not change a bit of any result', () => {
    const m = mlp();
    const x = eg.randn([3, 4], 0, 1, { seed: 9 });
    const run = methods(m, x);
    const ref = eg.tidy(() => run().map(bits));
    for (const ppe of [1, 5, 17]) expect(eg.tidy(() => run(ppe).map(bits)), `perturbationsPerEval ${ppe}`).toEqual(ref);
    x.dispose();
    m.dispose();
  });

  it('seeded attributions are the same bits for 1 and 2 threads, and match the stored digest (same in Node and Chromium)', () => {
    const m = mlp();
    const x = eg.randn([3, 4], 0, 1, { seed: 10 });
    const run = () => eg.tidy(() => methods(m, x)(4).flatMap(bits));
    expect(fnv1a(sameBitsOnOneAndTwoThreads(run))).toBe(DIGEST);
    x.dispose();
    m.dispose();
  });

  it('100 calls of each method (and of the metrics) leave live tensors and bytes flat', () => {
    const m = mlp();
    const x = eg.randn([2, 4], 0, 1, { seed: 11 });
    const y = eg.tensor([0, 2], [2], 'int32');
    const sal = new explain.Saliency(m);
    const attr = sal.attribute(x, { target: 1, abs: false });
    const list: [string, () => unknown][] = [
      ...calls(m, x, 3).map((f, q): [string, () => unknown] => [['Occlusion', 'FeatureAblation', 'FeaturePermutation', 'ShapleyValueSampling', 'KernelShap', 'Lime'][q], f]),
      ['permutationImportance', () => explain.permutationImportance(m, x, y, 'accuracy', { nRepeats: 2, seed: 1 })],
      ['infidelity', () => explain.infidelity(m, x, attr, { target: 1, nPerturbSamples: 3, seed: 2 })],
      ['sensitivityMax', () => explain.sensitivityMax((t) => sal.attribute(t, { target: 1 }), x, { nPerturbSamples: 2, seed: 3 })],
      ['deletionCurve', () => explain.deletionCurve(m, x, attr, { target: 1, steps: 4 })],
    ];
    expectFlatOver100Calls(list);
    eg.dispose([x, y, attr]);
    m.dispose();
  });
});
/** FNV-1a over the float32 bits above; a change means seeded attributions changed (update only knowingly). */
const DIGEST = 'addccf86';

describe('explanation metrics', () => {
  it('infidelity: 0 for the exact attribution of a linear model (Saliency), positive for a wrong one; normalize rescales', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const grad = new explain.Saliency(m).attribute(x, { abs: false });
    const exact = Array.from(explain.infidelity(m, x, grad, { nPerturbSamples: 8, noiseStd: 0.1, seed: 1 }).dataSync() as Float32Array);
    exact.forEach((v) => expect(v).toBeLessThan(1e-9));
    const wrong = eg.onesLike(x);
    const bad = Array.from(explain.infidelity(m, x, wrong, { nPerturbSamples: 8, noiseStd: 0.1, seed: 1 }).dataSync() as Float32Array);
    bad.forEach((v) => expect(v).toBeGreaterThan(1e-3));
    // Twice the exact attribution: β = 1/2 makes it exact again.
    const twice = grad.mul(2);
    const raw = Array.from(explain.infidelity(m, x, twice, { nPerturbSamples: 8, noiseStd: 0.1, seed: 1 }).dataSync() as Float32Array);
    const norm = Array.from(explain.infidelity(m, x, twice, { nPerturbSamples: 8, noiseStd: 0.1, seed: 1, normalize: true }).dataSync() as Float32Array);
    raw.forEach((v, i) => expect(v).toBeGreaterThan(1e-3 + norm[i]));
    norm.forEach((v) => expect(v).toBeLessThan(1e-8));
    // Batched in any way, the same bits.
    const split = explain.infidelity(m, x, wrong, { nPerturbSamples: 8, noiseStd: 0.1, seed: 1, maxExamplesPerBatch: 5 });
    expect(Array.from(split.dataSync() as Float32Array)).toEqual(bad);
    eg.dispose([x, grad, wrong, twice, split]);
    m.dispose();
  });

  it('sensitivityMax: 0 for a constant explanation (Saliency of a linear model), positive and seeded for an MLP', () => {
    const lin = linearModel();
    const x = eg.tensor(X);
    const s0 = explain.sensitivityMax((t) => new explain.Saliency(lin).attribute(t), x, { nPerturbSamples: 3, seed: 1 });
    expect(Array.from(s0.dataSync() as Float32Array)).toEqual([0, 0, 0]);
    const m = mlp();
    const xm = eg.randn([3, 4], 0, 1, { seed: 12 });
    const f = (t: eg.explain.Inputs) => new explain.Saliency(m).attribute(t as eg.Tensor, { target: 0 });
    const a = explain.sensitivityMax(f, xm, { perturbRadius: 0.5, nPerturbSamples: 4, seed: 2 });
    const b = explain.sensitivityMax(f, xm, { perturbRadius: 0.5, nPerturbSamples: 4, seed: 2 });
    expect(bits(a)).toEqual(bits(b));
    (a.dataSync() as Float32Array).forEach((v) => expect(v).toBeGreaterThan(0));
    eg.dispose([x, s0, xm, a, b]);
    lin.dispose();
    m.dispose();
  });

  it('deletion/insertion curves: endpoints F(x) and F(baseline); the true ranking deletes faster and inserts faster than its reverse', () => {
    const m = linearModel();
    const x = eg.tensor([[1, 2, 3, 4, 5]]);
    const attr = new explain.InputXGradient(m).attribute(x);
    const rev = attr.neg();
    const del = explain.deletionCurve(m, x, attr, { steps: 5 });
    expect(del.fractions).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(del.scores[0][0]).toBeCloseTo(0.5 - 4 + 5 + 15 + 0.75, 4);
    expect(del.scores[0][5]).toBeCloseTo(0.75, 5);
    // w ⊙ x = [0.5, −4, 0, 5, 15]: deleting in order 4, 3, 0, 2, 1.
    close([del.scores[0]], [[17.25, 2.25, -2.75, -3.25, -3.25, 0.75]], 4, 'deletion');
    const delRev = explain.deletionCurve(m, x, rev, { steps: 5 });
    expect(del.auc[0]).toBeLessThan(delRev.auc[0]);
    const ins = explain.insertionCurve(m, x, attr, { steps: 5 });
    close([ins.scores[0]], [[0.75, 15.75, 20.75, 21.25, 21.25, 17.25]], 4, 'insertion');
    expect(ins.auc[0]).toBeGreaterThan(explain.insertionCurve(m, x, rev, { steps: 5 }).auc[0]);
    // The trapezoid rule over the fractions.
    const y = del.scores[0];
    expect(del.auc[0]).toBeCloseTo(y.slice(1).reduce((s, v, k) => s + (0.2 * (v + y[k])) / 2, 0), 10);
    eg.dispose([x, attr, rev]);
    m.dispose();
  });

  it('deletion curve of a classifier scores the softmax probability of the target', () => {
    const m = mlp();
    const x = eg.randn([2, 4], 0, 1, { seed: 13 });
    const attr = new explain.IntegratedGradients(m).attribute(x, { target: 2, nSteps: 8 });
    const c = explain.deletionCurve(m, x, attr, { target: 2, steps: 4 });
    const p = eg.tidy(() => rowsOf(m.forward(x).softmax(1)));
    expect(c.scores[0][0]).toBeCloseTo(p[0][2], 6);
    expect(c.scores[1][0]).toBeCloseTo(p[1][2], 6);
    c.scores.flat().forEach((v) => expect(v >= 0 && v <= 1).toBe(true));
    const raw = explain.deletionCurve(m, x, attr, { target: 2, steps: 4, softmax: false });
    expect(raw.scores[0][0]).not.toBeCloseTo(c.scores[0][0], 3);
    eg.dispose([x, attr]);
    m.dispose();
  });
});

describe('errors', () => {
  it('every misuse is a typed error naming the problem, and nothing leaks', () => {
    const m = mlp();
    const x = eg.randn([2, 4], 0, 1, { seed: 14 });
    const one = eg.randn([1, 4], 0, 1, { seed: 15 });
    const y = eg.tensor([0, 1], [2], 'int32');
    const fmask = eg.tensor([0, 1, 1, 0]);
    const badShape = eg.tensor([0, 1, 1], [3], 'int32');
    const neg = eg.tensor([0, -1, 1, 0], [4], 'int32');
    const before = eg.memory().numTensors;
    const fa = new explain.FeatureAblation(m);
    const cases: [() => unknown, new (msg: string) => Error, RegExp][] = [
      [() => fa.attribute(x), eg.ArgumentError, /returns 3 outputs per example; pass target/],
      [() => fa.attribute(x, { target: 3 }), eg.ArgumentError, /target is out of range for 3 outputs/],
      [() => fa.attribute(x, { target: 0, featureMask: fmask }), eg.DTypeError, /featureMask 0 is float32/],
      [() => fa.attribute(x, { target: 0, featureMask: badShape }), eg.ShapeError, /featureMask 0 has shape \[3\]/],
      [() => fa.attribute(x, { target: 0, featureMask: neg }), eg.ArgumentError, /negative feature id -1/],
      [() => fa.attribute(x, { target: 0, perturbationsPerEval: 0 }), eg.ArgumentError, /perturbationsPerEval/],
      [() => fa.attribute(x, { target: 0, featuremask: fmask } as never), eg.ArgumentError, /unknown option 'featuremask'/],
      [() => new explain.Occlusion(m).attribute(x, { target: 0 } as never), eg.ArgumentError, /slidingWindowShapes .* is required/],
      [() => new explain.Occlusion(m).attribute(x, { target: 0, slidingWindowShapes: [5] }), eg.ArgumentError, /slidingWindowShapes\[0\]/],
      [() => new explain.Occlusion(m).attribute(x, { target: 0, slidingWindowShapes: [1, 1] }), eg.ShapeError, /must list 1 sizes/],
      [() => new explain.Occlusion(m).attribute(x, { target: 0, slidingWindowShapes: [2], strides: 0 }), eg.ArgumentError, /strides/],
      [() => new explain.FeaturePermutation(m).attribute(one, { target: 0 }), eg.ArgumentError, /at least 2 examples/],
      [() => new explain.ShapleyValueSampling(m).attribute(x, { target: 0, nSamples: 0 }), eg.ArgumentError, /nSamples/],
      [() => new explain.KernelShap(m).attribute(x, { target: 0, nSamples: 1 }), eg.ArgumentError, /at least 2/],
      [() => new explain.KernelShap(m).attribute(x, { target: 0, seed: -1 }), eg.ArgumentError, /seed/],
      [() => new explain.Lime(m).attribute(x, { target: 0, kernelWidth: 0 }), eg.ArgumentError, /kernelWidth/],
      [() => new explain.Lime(m).attribute(x, { target: 0, distanceMode: 'manhattan' as never }), eg.ArgumentError, /distanceMode/],
      [() => new explain.Lime(m).attribute(x, { target: 0, alpha: -1 }), eg.ArgumentError, /alpha/],
      [() => new explain.Lime('m' as never), eg.ArgumentError, /needs a Module or a function/],
      [() => explain.permutationImportance(m, x, y, 'f1' as never), eg.ArgumentError, /unknown metric/],
      [() => explain.permutationImportance(m, x, y, 'accuracy', { nRepeats: 0 }), eg.ArgumentError, /nRepeats/],
      [() => explain.permutationImportance(m, one, y, 'accuracy'), eg.ShapeError, /rows >= 2/],
      [() => explain.permutationImportance(m, x, one, 'accuracy'), eg.ShapeError, /y has shape/],
      [() => explain.permutationImportance(m, x, y, () => 'good' as never), eg.ArgumentError, /metric returned/],
      [() => explain.infidelity(m, x, one, { target: 0 }), eg.ShapeError, /attribution 0 has shape/],
      [() => explain.infidelity(m, x, x, { target: 0, perturbFunc: () => [] }), eg.ArgumentError, /perturbFunc must return/],
      [() => explain.infidelity(m, x, x, { target: 0, noiseStd: -1 }), eg.ArgumentError, /noiseStd/],
      [() => explain.sensitivityMax(() => 1 as never, x), eg.ArgumentError, /explanationFunc must return/],
      [() => explain.sensitivityMax((t) => t as eg.Tensor, x, { perturbRadius: 0 }), eg.ArgumentError, /perturbRadius/],
      [() => explain.deletionCurve(m, x, x, { target: 0, steps: 0 }), eg.ArgumentError, /steps/],
    ];
    for (const [f, cls, re] of cases) {
      expect(f, String(re)).toThrow(cls);
      expect(f, String(re)).toThrow(re);
    }
    expect(eg.memory().numTensors).toBe(before);
    const ok = fa.attribute(x, { target: 0 });
    expect(ok.shape).toEqual([2, 4]);
    eg.dispose([x, one, y, fmask, badShape, neg, ok]);
    m.dispose();
  });
});
