/**
 * Issue 14's checks on the main job's digits CNN, trained here (a few seconds): Integrated Gradients'
 * completeness, and faithfulness — deleting the top 10% IG pixels lowers the class probability more
 * than deleting 10% random pixels, on average over 100 test images.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import * as mainJob from '../examples/lib/digits-cnn.js';
import { setup } from './helpers.js';

const { explain } = eg;

let model: eg.nn.Sequential;
let xTest: eg.Tensor;

// The main job's split and CNN. The example imports the package by name; vitest resolves that to
// this SDK source (vitest.config.ts), so the objects are ours — TypeScript, which sees dist's
// declarations there, is told so.
const digitsSplit = mainJob.digitsSplit as unknown as () => Promise<eg.Tensor[]>;
const digitsCnn = mainJob.digitsCnn as unknown as () => eg.nn.Sequential;

beforeAll(async () => {
  await setup();
  const [xTrain, yTrain, xT, yT] = await digitsSplit();
  model = digitsCnn();
  const optimizer = new eg.optim.Adam(model.trainableParameters(), { lr: 3e-3 });
  model.compile({ optimizer, loss: (l, y) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true }) });
  await model.fit(xTrain, yTrain, { epochs: 3, batchSize: 32, seed: 1, verbose: 0 });
  model.eval();
  xTest = eg.keep(xT.slice([0, 0, 0, 0], [100, 8, 8, 1]).contiguous());
  eg.dispose([xTrain, yTrain, xT, yT]);
});

/** The predicted class of each row. */
const predicted = (x: eg.Tensor): Int32Array => eg.noGrad(() => eg.tidy(() => model.forward(x).argMax(1).dataSync() as Int32Array)).slice();

describe('Integrated Gradients on the trained digits CNN', () => {
  // Relative completeness error |delta| / |F(x) − F(0)| per example. The trapezoid rule at 300 steps
  // keeps every example under 1%. Gauss–Legendre at 64 steps is far more accurate on smooth paths but
  // meets a kink of ReLU/max-pool on some: measured here, its mean is ~0.3% and one digit in 16 lands
  // at 1.2–1.7% — so its bound is on the mean, with 2% per example.
  const rules = [['riemann_trapezoid', 300, 0.01, 0.01], ['gausslegendre', 64, 0.01, 0.02]] as const;
  for (const [method, nSteps, meanBound, worstBound] of rules) {
    it(`${method} at ${nSteps} steps: mean |delta| / |F(x) − F(0)| <= ${meanBound}, each <= ${worstBound}; delta is Σattr − (F(x) − F(0))`, () => {
      const x = xTest.slice([0, 0, 0, 0], [16, 8, 8, 1]);
      const target = predicted(x);
      const { attributions, delta } = new explain.IntegratedGradients(model).attribute(x, { target, baselines: 0, nSteps, method, returnConvergenceDelta: true });
      const logits = (t: eg.Tensor) => eg.noGrad(() => eg.tidy(() => model.forward(t).arraySync() as number[][]));
      const fx = logits(x);
      const f0 = logits(eg.zerosLike(x));
      const sums = eg.tidy(() => attributions.reshape([16, 64]).sum(1).dataSync() as Float32Array);
      const d = delta.dataSync() as Float32Array;
      let total = 0;
      for (let i = 0; i < 16; i++) {
        const gap = fx[i][target[i]] - f0[i][target[i]];
        const rel = Math.abs(d[i]) / Math.abs(gap);
        expect(rel, `example ${i}`).toBeLessThanOrEqual(worstBound);
        expect(d[i]).toBeCloseTo(sums[i] - gap, 3);
        total += rel;
      }
      expect(total / 16).toBeLessThanOrEqual(meanBound);
      eg.dispose([x, attributions, delta]);
    });
  }
});

describe('faithfulness', () => {
  it('deleting the top 10% IG pixels lowers the class probability more than 10% random pixels (mean over 100 test digits)', () => {
    const target = predicted(xTest);
    const ig = new explain.IntegratedGradients(model).attribute(xTest, { target, baselines: 0, nSteps: 32, method: 'gausslegendre' }) as eg.Tensor;
    const random = eg.rand([100, 8, 8, 1], 0, 1, { seed: 3 });
    // 20 steps over 64 pixels: point 2 is 10% of the pixels (6) set to the baseline.
    const opts = { target, steps: 20, baselines: 0 };
    const drop = (c: eg.explain.Curve) => c.scores.reduce((s, sc) => s + sc[0] - sc[c.fractions.indexOf(0.1)], 0) / c.scores.length;
    const igDrop = drop(explain.deletionCurve(model, xTest, ig, opts));
    const randomDrop = drop(explain.deletionCurve(model, xTest, random, opts));
    expect(igDrop).toBeGreaterThan(randomDrop);
    eg.dispose([ig, random]);
  });
});
