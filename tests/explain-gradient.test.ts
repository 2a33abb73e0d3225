/** Gradient attributions (issue 14 §2, §6): known answers, axioms, completeness, batching, seeds, memory, errors. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';
import { B, bits, cnn, data, expectFlatOver100Calls, fnv1a, linearModel, mlp, sameBitsOnOneAndTwoThreads, W, X } from './explain-fixtures.js';

const { nn, explain } = eg;

beforeAll(async () => {
  await setup();
});


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
      new explain.GuidedBackprop(m).attribute(x, { target: 1 }),
      new explain.DeepLift(m).attribute(x, { target: 1, baselines: dist.slice([0, 0], [1, 4]) }),
      new explain.NoiseTunnel(new explain.DeepLift(m)).attribute(x, { target: 1, ntSamples: 2, stdevs: 0.1, seed: 3, baselines: 0.2 }),
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
    expect(fnv1a(sameBitsOnOneAndTwoThreads(run))).toBe(DIGEST);
    eg.dispose([x, dist]);
    m.dispose();
  });
});
/** FNV-1a over the float32 bits above; a change means seeded attributions changed (update only knowingly). */
const DIGEST = '86be82bc';

describe('GradientShap', () => {
  it('on a linear model with stdevs 0 is w ⊙ (x − the drawn baselines\' mean), exactly w ⊙ (x − b) for a one-point distribution', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const b = eg.tensor([[1, -1, 2, 0.5, 0]]);
    const gs = new explain.GradientShap(m).attribute(x, { baselines: b, nSamples: 7, seed: 4 });
    (gs.arraySync() as number[][]).forEach((r, i) => r.forEach((v, k) => expect(v).toBeCloseTo(W[k] * (X[i][k] - [1, -1, 2, 0.5, 0][k]), 4)));
    eg.dispose([x, b, gs]);
    m.dispose();
  });
});

describe('GuidedBackprop and DeepLift (engine backward rules)', () => {
  it('GuidedBackprop: the gradient with ReLUs passing back only positive gradients', () => {
    const m = new nn.Sequential(new nn.Linear(4, 6, { seed: 31 }), new nn.ReLU(), new nn.Linear(6, 1, { seed: 32 })).eval();
    const sd = m.stateDict();
    const W1 = sd['0.weight'].arraySync() as number[][];
    const b1 = Array.from(sd['0.bias'].dataSync());
    const w2 = (sd['2.weight'].arraySync() as number[][])[0];
    const x = eg.randn([3, 4], 0, 1, { seed: 33 });
    const xs = x.arraySync() as number[][];
    const got = new explain.GuidedBackprop(m).attribute(x).arraySync() as number[][];
    xs.forEach((row, i) => {
      const open = W1.map((wk, k) => wk.reduce((s, v, j) => s + v * row[j], b1[k]) > 0);
      for (let j = 0; j < 4; j++) {
        const want = W1.reduce((s, wk, k) => s + (open[k] ? wk[j] * Math.max(w2[k], 0) : 0), 0);
        expect(got[i][j]).toBeCloseTo(want, 5);
      }
    });
    // Not the plain gradient (some w2 are negative), and the plain gradient is unchanged afterwards.
    expect(w2.some((v) => v < 0)).toBe(true);
    x.dispose();
    m.dispose();
  });

  it('DeepLift = w ⊙ (x − baseline) on a linear model; attributions sum to F(x) − F(baseline) through ReLU, max-pool and tanh', () => {
    const lin = linearModel();
    const x = eg.tensor(X);
    const base = eg.tensor([1, -1, 2, 0.5, 0]);
    const dl = new explain.DeepLift(lin).attribute(x, { baselines: base });
    (dl.arraySync() as number[][]).forEach((r, i) => r.forEach((v, k) => expect(v).toBeCloseTo(W[k] * (X[i][k] - [1, -1, 2, 0.5, 0][k]), 5)));
    eg.dispose([x, base, dl]);
    lin.dispose();

    for (const [name, model, input, target] of [
      ['cnn', cnn(), eg.rand([3, 8, 8, 1], 0, 1, { seed: 34 }), [0, 2, 4]],
      ['mlp', mlp(), eg.randn([3, 4], 0, 2, { seed: 35 }), [1, 0, 2]],
    ] as const) {
      const baseline = eg.randn(input.shape.slice(1), 0, 0.1, { seed: 36 });
      const { attributions, delta } = new explain.DeepLift(model).attribute(input, { target: [...target], baselines: baseline, returnConvergenceDelta: true });
      const out = eg.noGrad(() => model.forward(input)).arraySync() as number[][];
      const b = baseline.reshape([1, ...baseline.shape]);
      const out0 = eg.noGrad(() => model.forward(b)).arraySync() as number[][];
      const a = attributions.arraySync() as number[][];
      const d = data(delta);
      const per = attributions.size / 3;
      const flat = data(attributions);
      for (let i = 0; i < 3; i++) {
        const gap = out[i][target[i]] - out0[0][target[i]];
        let sum = 0;
        for (let k = 0; k < per; k++) sum += flat[i * per + k];
        expect(Math.abs(sum - gap), `${name} example ${i}: Σ ${sum} vs ${gap}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(gap)));
        expect(d[i]).toBeCloseTo(sum - gap, 5);
      }
      expect(a.length).toBe(3);
      eg.dispose([input, baseline, b, attributions, delta]);
      model.dispose();
    }
  });

  it('the rules end with the pass: ordinary gradients are unchanged afterwards, also after an error inside the pass', () => {
    const m = cnn();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 37 });
    const sal = new explain.Saliency(m);
    const before = bits(sal.attribute(x, { target: 1, abs: false }));
    new explain.DeepLift(m).attribute(x, { target: 1 }).dispose();
    new explain.GuidedBackprop(m).attribute(x, { target: 1 }).dispose();
    expect(() => new explain.DeepLift(m).attribute(x, { target: 7 })).toThrow(eg.ArgumentError);
    expect(() => new explain.GuidedBackprop(m).attribute(x, { target: 7 })).toThrow(eg.ArgumentError);
    expect(bits(sal.attribute(x, { target: 1, abs: false }))).toEqual(before);
    // DeepLift's multipliers differ from the gradient on this ReLU network (the rule was on).
    const g = data(new explain.InputXGradient(m).attribute(x, { target: 1 }));
    const dl = data(new explain.DeepLift(m).attribute(x, { target: 1 }));
    expect(dl).not.toEqual(g);
    x.dispose();
    m.dispose();
  });
});

describe('memory and side effects', () => {
  it('100 attribute() calls of each method leave live tensors and bytes flat', () => {
    const m = cnn();
    const x = eg.rand([2, 8, 8, 1], 0, 1, { seed: 10 });
    const dist = eg.rand([3, 8, 8, 1], 0, 1, { seed: 11 });
    const methods: [string, () => unknown][] = [
      ['Saliency', () => new explain.Saliency(m).attribute(x, { target: 1 })],
      ['InputXGradient', () => new explain.InputXGradient(m).attribute(x, { target: [0, 3] })],
      ['IntegratedGradients', () => new explain.IntegratedGradients(m).attribute(x, { target: 1, nSteps: 4, internalBatchSize: 3, returnConvergenceDelta: true })],
      ['GradientShap', () => new explain.GradientShap(m).attribute(x, { target: 1, baselines: dist, nSamples: 2, stdevs: 0.1, seed: 1 })],
      ['GuidedBackprop', () => new explain.GuidedBackprop(m).attribute(x, { target: 1 })],
      ['DeepLift', () => new explain.DeepLift(m).attribute(x, { target: 1, baselines: 0.5, returnConvergenceDelta: true })],
      ['NoiseTunnel', () => new explain.NoiseTunnel(new explain.IntegratedGradients(m)).attribute(x, { target: 1, nSteps: 2, ntSamples: 2, ntSamplesBatchSize: 1, ntType: 'vargrad', seed: 2 })],
    ];
    expectFlatOver100Calls(methods);
    eg.dispose([x, dist]);
    m.dispose();
  });

  it('leaves the model\'s parameters as they were: no .grad, requiresGrad restored (also after an error)', () => {
    const m = mlp();
    m.freeze('2.bias');
    const x = eg.randn([2, 4], 0, 1, { seed: 12 });
    new explain.IntegratedGradients(m).attribute(x, { target: 0, nSteps: 3 }).dispose();
    expect(() => new explain.Saliency(m).attribute(x, { target: 9 })).toThrow(eg.ArgumentError);
    for (const [name, p] of m.namedParameters()) {
      expect(p.grad, name).toBeNull();
      expect(p.requiresGrad, name).toBe(name !== '2.bias');
    }
    x.dispose();
    m.dispose();
  });
});

describe('errors', () => {
  it('every misuse is a typed error naming the problem, and nothing leaks', () => {
    const m = mlp();
    const x = eg.randn([2, 4], 0, 1, { seed: 13 });
    const ids = eg.tensor([[1, 2, 3, 4]], [1, 4], 'int32');
    const [z3, z32, z25] = [eg.zeros([3]), eg.zeros([3, 2]), eg.zeros([2, 5])];
    const before = eg.memory().numTensors;
    const ig = new explain.IntegratedGradients(m);
    const cases: [() => unknown, new (msg: string) => Error, RegExp][] = [
      [() => ig.attribute(x), eg.ArgumentError, /returns 3 outputs per example; pass target/],
      [() => ig.attribute(x, { target: 3 }), eg.ArgumentError, /target 3 is out of range for 3 outputs/],
      [() => ig.attribute(x, { target: [0, 1, 2] }), eg.ArgumentError, /3 targets for a batch of 2/],
      [() => ig.attribute(x, { target: -1 }), eg.ArgumentError, /target/],
      [() => ig.attribute(x, { target: 0, nsteps: 5 } as never), eg.ArgumentError, /unknown option 'nsteps'/],
      [() => ig.attribute(x, { target: 0, method: 'simpson' as never }), eg.ArgumentError, /unknown integration method "simpson"/],
      [() => ig.attribute(x, { target: 0, nSteps: 0 }), eg.ArgumentError, /nSteps/],
      [() => ig.attribute(x, { target: 0, method: 'riemann_trapezoid', nSteps: 1 }), eg.ArgumentError, /nSteps >= 2/],
      [() => ig.attribute(x, { target: 0, internalBatchSize: 0 }), eg.ArgumentError, /internalBatchSize/],
      [() => ig.attribute(x, { target: 0, baselines: z3 }), eg.ShapeError, /baseline 0 has shape \[3\]/],
      [() => ig.attribute(ids, { target: 0 }), eg.DTypeError, /int32/],
      [() => ig.attribute('x' as never), eg.ArgumentError, /must be a Tensor/],
      [() => ig.attribute([x, z32], { target: 0 }), eg.ShapeError, /batch 3/],
      [() => eg.noGrad(() => new explain.Saliency(m).attribute(x, { target: 0 })), eg.ArgumentError, /inside noGrad/],
      [() => new explain.Saliency((t: eg.Tensor) => t.reshape([2, 2, 2])).attribute(x), eg.ShapeError, /float32 \[batch\] or \[batch, outputs\]/],
      [() => new explain.Saliency(() => 3 as never).attribute(x), eg.ArgumentError, /returned 3, not a Tensor/],
      [() => new explain.Saliency(42 as never), eg.ArgumentError, /needs a Module or a function/],
      [() => new explain.GradientShap(m).attribute(x, { target: 0 } as never), eg.ArgumentError, /baselines .* is required/],
      [() => new explain.GradientShap(m).attribute(x, { target: 0, baselines: z25 }), eg.ShapeError, /distribution/],
      [() => new explain.NoiseTunnel({} as never), eg.ArgumentError, /attribution method/],
      [() => new explain.NoiseTunnel(ig).attribute(x, { target: 0, ntType: 'smooth' as never }), eg.ArgumentError, /ntType/],
      [() => new explain.NoiseTunnel(ig).attribute(x, { target: 0, stdevs: -1 }), eg.ArgumentError, /stdevs/],
      [() => new explain.NoiseTunnel(ig).attribute(x, { target: 0, returnConvergenceDelta: true }), eg.ArgumentError, /not supported/],
      [() => new explain.NoiseTunnel(ig).attribute(x, { target: 0, nstep: 3 }), eg.ArgumentError, /unknown option 'nstep'/],
    ];
    for (const [f, cls, re] of cases) {
      expect(f, String(re)).toThrow(cls);
      expect(f, String(re)).toThrow(re);
    }
    expect(eg.memory().numTensors).toBe(before);
    // The engine and the model still work.
    const ok = ig.attribute(x, { target: 0, nSteps: 2 });
    expect(ok.shape).toEqual([2, 4]);
    eg.dispose([x, ids, ok, z3, z32, z25]);
    m.dispose();
  });
});

describe('integration rules', () => {
  it('Gauss–Legendre nodes and weights are right and the same bits everywhere', () => {
    const g3 = explain.quadrature('gausslegendre', 3);
    const r = Math.sqrt(3 / 5);
    [0.5 * (1 - r), 0.5, 0.5 * (1 + r)].forEach((a, i) => expect(g3.alphas[i]).toBeCloseTo(a, 15));
    [5 / 18, 8 / 18, 5 / 18].forEach((w, i) => expect(g3.weights[i]).toBeCloseTo(w, 15));
    for (const n of [1, 2, 7, 64, 200]) {
      const { alphas, weights } = explain.quadrature('gausslegendre', n);
      // Exact for polynomials of degree <= 2n − 1: ∫₀¹ t^k dt = 1/(k + 1).
      for (const k of [0, 1, Math.min(2 * n - 1, 9), 2 * n - 1]) {
        let s = 0;
        for (let i = 0; i < n; i++) s += weights[i] * alphas[i] ** k;
        expect(Math.abs(s - 1 / (k + 1)), `n ${n}, degree ${k}`).toBeLessThan(1e-12);
      }
      for (let i = 1; i < n; i++) expect(alphas[i]).toBeGreaterThan(alphas[i - 1]);
    }
    const t = explain.quadrature('riemann_trapezoid', 5);
    expect(Array.from(t.alphas)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(Array.from(t.weights)).toEqual([0.125, 0.25, 0.25, 0.25, 0.125]);
    expect(Array.from(explain.quadrature('riemann_middle', 4).alphas)).toEqual([0.125, 0.375, 0.625, 0.875]);
    expect(Array.from(explain.quadrature('riemann_left', 2).alphas)).toEqual([0, 0.5]);
    expect(Array.from(explain.quadrature('riemann_right', 2).alphas)).toEqual([0.5, 1]);
    // The float64 bits of the 64-point rule, hashed: equal in Node and Chromium.
    const g64 = explain.quadrature('gausslegendre', 64);
    expect(fnv1a(new Uint32Array(Float64Array.from([...g64.alphas, ...g64.weights]).buffer))).toBe(GL64_DIGEST);
  });
});
const GL64_DIGEST = '5ec07c8e';
