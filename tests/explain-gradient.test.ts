/** Gradient attributions (issue 14 §2, §6): known answers, axioms, completeness, batching, seeds, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

const { nn, explain } = eg;

beforeAll(async () => {
  await setup();
});

const W = [0.5, -2, 0, 1.25, 3];
const B = 0.75;
const X = [[1, 2, 3, 4, 5], [-1, 0.5, 7, -2, 0.25], [0.3, -0.7, 1.1, 2.2, -3.3]];

/** F(x) = w·x + b as a model with one output per example ([N, 1]); feature 2 is ignored (w = 0). */
function linearModel(): eg.nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(5, 1));
  m.loadStateDict({ '0.weight': eg.tensor([W]), '0.bias': eg.tensor([B]) });
  return m.eval();
}

/** A small MLP whose first layer ignores feature 1 (its weight column is 0). */
function mlp(): eg.nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(4, 8, { seed: 11 }), new nn.Tanh(), new nn.Linear(8, 3, { seed: 12 })).eval();
  eg.noGrad(() => {
    const w = m.getModule('0').stateDict().weight;
    const mask = eg.tensor([[1, 0, 1, 1]]);
    w.assign(w.mul(mask));
  });
  return m;
}

/** A small CNN (ReLU, max-pool) on 8x8x1 images, random weights. */
function cnn(): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { padding: 'same', seed: 21 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(4, 6, 3, { padding: 'same', seed: 22 }), new nn.ReLU(), new nn.Flatten(), new nn.Linear(4 * 4 * 6, 5, { seed: 23 }),
  ).eval();
}

const data = (t: eg.Tensor) => Array.from(t.dataSync() as Float32Array);
const bits = (t: eg.Tensor) => Array.from(new Uint32Array((t.dataSync() as Float32Array).slice().buffer));

describe('known answers on a linear model F(x) = w·x + b', () => {
  it('Integrated Gradients with a zero baseline = Input x Gradient = w ⊙ x; Saliency = |w|', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const wx = X.map((r) => r.map((v, k) => Math.fround(v * W[k])));
    const ixg = new explain.InputXGradient(m).attribute(x);
    expect(ixg.arraySync()).toEqual(wx);
    const sal = new explain.Saliency(m).attribute(x);
    expect(sal.arraySync()).toEqual(X.map(() => W.map(Math.abs)));
    const signed = new explain.Saliency(m).attribute(x, { abs: false });
    expect(signed.arraySync()).toEqual(X.map(() => W));
    for (const method of explain.INTEGRATION_METHODS) {
      const ig = new explain.IntegratedGradients(m).attribute(x, { method, nSteps: 16 });
      const got = ig.arraySync() as number[][];
      got.forEach((r, i) => r.forEach((v, k) => expect(v, `${method} [${i}][${k}]`).toBeCloseTo(wx[i][k], 5)));
      ig.dispose();
    }
    // A non-zero baseline: IG = w ⊙ (x − baseline).
    const base = eg.tensor([1, 1, 1, 1, 1]);
    const igb = new explain.IntegratedGradients(m).attribute(x, { baselines: base, method: 'riemann_middle', nSteps: 4 });
    (igb.arraySync() as number[][]).forEach((r, i) => r.forEach((v, k) => expect(v).toBeCloseTo(W[k] * (X[i][k] - 1), 5)));
    eg.dispose([x, ixg, sal, signed, base, igb]);
    m.dispose();
  });

  it('a tuple of inputs and per-example additional forward arguments', () => {
    // F(a, b, s) = s · (a·w1 + b·w2): attributions s_i · w ⊙ x_i.
    const w1 = eg.tensor([[2], [-1]]);
    const w2 = eg.tensor([[0.5], [4], [1]]);
    const f = (a: eg.Tensor, b: eg.Tensor, s: eg.Tensor) => a.matmul(w1).add(b.matmul(w2)).mul(s);
    const a = eg.tensor([[1, 2], [3, -1]]);
    const b = eg.tensor([[1, 0, 2], [-2, 1, 1]]);
    const s = eg.tensor([[2], [-3]]);
    const [ga, gb] = new explain.IntegratedGradients(f).attribute([a, b], { additionalForwardArgs: [s], nSteps: 8, internalBatchSize: 3 });
    (ga.arraySync() as number[][]).forEach((r, i) => r.forEach((v, k) => expect(v).toBeCloseTo([[4, -4], [-18, -3]][i][k], 5)));
    (gb.arraySync() as number[][]).forEach((r, i) => r.forEach((v, k) => expect(v).toBeCloseTo([[1, 0, 4], [3, -12, -3]][i][k], 5)));
    const [xa, xb] = new explain.InputXGradient(f).attribute([a, b], { additionalForwardArgs: [s] });
    expect(xa.arraySync()).toEqual([[4, -4], [-18, -3]]);
    expect(xb.arraySync()).toEqual([[1, 0, 4], [3, -12, -3]]);
    eg.dispose([w1, w2, a, b, s, ga, gb, xa, xb]);
  });

  it('targets: one class for all, one per example', () => {
    const m = mlp();
    const x = eg.randn([3, 4], 0, 1, { seed: 1 });
    const all = new explain.Saliency(m).attribute(x, { target: 2, abs: false });
    const per = new explain.Saliency(m).attribute(x, { target: [0, 2, 1], abs: false });
    // Row by row, each equals the single-example gradient of its class.
    for (const [i, t] of [0, 2, 1].entries()) {
      const xi = x.slice([i, 0], [i + 1, 4]);
      const gi = new explain.Saliency(m).attribute(xi, { target: t, abs: false });
      expect(data(per.slice([i, 0], [i + 1, 4]))).toEqual(data(gi));
      eg.dispose([xi, gi]);
    }
    const viaTensor = new explain.Saliency(m).attribute(x, { target: eg.tensor([2, 2, 2], [3], 'int32'), abs: false });
    expect(data(viaTensor)).toEqual(data(all));
    eg.dispose([x, all, per, viaTensor]);
    m.dispose();
  });
});

describe('axioms', () => {
  it('dummy: a feature the model ignores gets exactly 0 from every method', () => {
    const m = mlp();
    const x = eg.randn([4, 4], 0, 1, { seed: 2 });
    const dist = eg.randn([6, 4], 0, 1, { seed: 3 });
    const results = [
      new explain.Saliency(m).attribute(x, { target: 1 }),
      new explain.InputXGradient(m).attribute(x, { target: 1 }),
      new explain.IntegratedGradients(m).attribute(x, { target: 1, nSteps: 20 }),
      new explain.GradientShap(m).attribute(x, { target: 1, baselines: dist, nSamples: 4, stdevs: 0.1, seed: 1 }),
      new explain.NoiseTunnel(new explain.IntegratedGradients(m)).attribute(x, { target: 1, ntSamples: 3, stdevs: 0.2, seed: 1, nSteps: 8 }),
      new explain.NoiseTunnel(new explain.Saliency(m)).attribute(x, { target: 1, ntType: 'vargrad', ntSamples: 3, seed: 2 }),
    ];
    for (const r of results) {
      const col = (r.arraySync() as number[][]).map((row) => row[1]);
      expect(col.every((v) => v === 0)).toBe(true);
      expect((r.arraySync() as number[][]).some((row) => row[0] !== 0)).toBe(true);
    }
    eg.dispose([x, dist, results]);
    m.dispose();
  });

  it('NoiseTunnel with stdevs 0 equals the wrapped method (smoothgrad), its square (smoothgrad_sq), 0 variance (vargrad)', () => {
    const m = mlp();
    const x = eg.randn([3, 4], 0, 1, { seed: 4 });
    const ig = new explain.IntegratedGradients(m);
    const plain = data(ig.attribute(x, { target: 0, nSteps: 10 }));
    const nt = new explain.NoiseTunnel(ig);
    const sg = data(nt.attribute(x, { target: 0, nSteps: 10, stdevs: 0, ntSamples: 4 }));
    const sq = data(nt.attribute(x, { target: 0, nSteps: 10, stdevs: 0, ntSamples: 3, ntType: 'smoothgrad_sq' }));
    const vg = data(nt.attribute(x, { target: 0, nSteps: 10, stdevs: 0, ntSamples: 3, ntType: 'vargrad' }));
    plain.forEach((v, i) => {
      expect(sg[i]).toBeCloseTo(v, 6);
      expect(sq[i]).toBeCloseTo(v * v, 6);
      expect(Math.abs(vg[i])).toBeLessThan(1e-6);
    });
    m.dispose();
    x.dispose();
  });
});

describe('Integrated Gradients completeness on a CNN', () => {
  for (const [method, nSteps] of [['gausslegendre', 64], ['riemann_trapezoid', 300]] as const) {
    it(`${method} at ${nSteps} steps: |delta| <= 1% of |F(x) − F(baseline)|, and the returned delta is the recomputed one`, () => {
      const m = cnn();
      const x = eg.rand([4, 8, 8, 1], 0, 1, { seed: 5 });
      const target = [0, 1, 2, 3];
      const { attributions, delta } = new explain.IntegratedGradients(m).attribute(x, { target, method, nSteps, internalBatchSize: 128, returnConvergenceDelta: true });
      expect(attributions.shape).toEqual(x.shape);
      const out = eg.noGrad(() => m.forward(x)).arraySync() as number[][];
      const zero = eg.zeros([4, 8, 8, 1]);
      const out0 = eg.noGrad(() => m.forward(zero)).arraySync() as number[][];
      const a = data(attributions);
      const d = data(delta);
      for (let i = 0; i < 4; i++) {
        let sum = 0;
        for (let k = 0; k < 64; k++) sum += a[i * 64 + k];
        const gap = out[i][target[i]] - out0[i][target[i]];
        expect(Math.abs(gap)).toBeGreaterThan(1e-3);
        const recomputed = sum - gap;
        expect(Math.abs(recomputed), `example ${i}: delta ${recomputed} for F(x) − F(0) = ${gap}`).toBeLessThanOrEqual(0.01 * Math.abs(gap));
        expect(d[i]).toBeCloseTo(recomputed, 5);
      }
      eg.dispose([x, zero, attributions, delta]);
      m.dispose();
    });
  }
});

describe('batching and determinism', () => {
  it('internalBatchSize / ntSamplesBatchSize do not change a bit of the result', () => {
    const m = cnn();
    const x = eg.rand([3, 8, 8, 1], 0, 1, { seed: 6 });
    const ig = new explain.IntegratedGradients(m);
    const ref = bits(ig.attribute(x, { target: 1, nSteps: 12 }));
    for (const internalBatchSize of [1, 5, 12, 36]) {
      expect(bits(ig.attribute(x, { target: 1, nSteps: 12, internalBatchSize })), `internalBatchSize ${internalBatchSize}`).toEqual(ref);
    }
    const dist = eg.rand([5, 8, 8, 1], 0, 1, { seed: 7 });
    const gs = new explain.GradientShap(m);
    const gsRef = bits(gs.attribute(x, { target: 2, baselines: dist, nSamples: 6, stdevs: 0.1, seed: 3 }));
    expect(bits(gs.attribute(x, { target: 2, baselines: dist, nSamples: 6, stdevs: 0.1, seed: 3, internalBatchSize: 4 }))).toEqual(gsRef);
    const nt = new explain.NoiseTunnel(ig);
    const ntRef = bits(nt.attribute(x, { target: 1, nSteps: 6, ntSamples: 5, stdevs: 0.2, seed: 9, ntType: 'smoothgrad_sq' }));
    expect(bits(nt.attribute(x, { target: 1, nSteps: 6, ntSamples: 5, stdevs: 0.2, seed: 9, ntType: 'smoothgrad_sq', ntSamplesBatchSize: 2, internalBatchSize: 7 }))).toEqual(ntRef);
    eg.dispose([x, dist]);
    m.dispose();
  });

  it('seeded attributions are the same bits for 1 and 2 threads, and match the stored digest (same in Node and Chromium)', () => {
    const m = mlp();
    const x = eg.randn([4, 4], 0, 1, { seed: 8 });
    const dist = eg.randn([5, 4], 0, 1, { seed: 9 });
    const run = () => eg.tidy(() => [
      ...bits(new explain.NoiseTunnel(new explain.IntegratedGradients(m)).attribute(x, { target: [0, 1, 2, 0], ntSamples: 4, stdevs: 0.3, seed: 5, nSteps: 7, method: 'gausslegendre' })),
      ...bits(new explain.GradientShap(m).attribute(x, { target: 2, baselines: dist, nSamples: 5, stdevs: 0.2, seed: 6 })),
      ...bits(new explain.NoiseTunnel(new explain.Saliency(m)).attribute(x, { target: 1, ntType: 'vargrad', ntSamples: 3, seed: 7 })),
    ]);
    eg.setNumThreads(1);
    const one = run();
    eg.setNumThreads(2);
    const two = run();
    expect(two).toEqual(one);
    let h = 0x811c9dc5;
    for (const w of one) {
      h = Math.imul(h ^ w, 0x01000193) >>> 0;
    }
    expect(h.toString(16)).toBe(DIGEST);
    eg.dispose([x, dist]);
    m.dispose();
  });
});
/** FNV-1a over the float32 bits above; a change means seeded attributions changed (update only knowingly). */
const DIGEST = '86be82bc';
