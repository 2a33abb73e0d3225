/**
 * Issue 16 §1: `eg.nn.GroupNorm` (PyTorch's meaning, channels last) — values against a float64
 * reference of PyTorch's formula, gradients against finite differences, per-example independence
 * (what DP needs), save/load, typed errors, memory and bitwise determinism.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { gradcheck, setup, vals, expectEachTestFreesItsTensors } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn } = eg;

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

/**
 * PyTorch's GroupNorm in float64 on channels-last data: for each example and group, mean and biased
 * variance over the group's channels at every position; y = (x - mean) / sqrt(var + eps) · w + b.
 */
function reference(x: Float32Array, shape: number[], groups: number, w: number[] | null, b: number[] | null, eps: number): Float64Array {
  const n = shape[0];
  const c = shape[shape.length - 1];
  const positions = x.length / (n * c);
  const cg = c / groups;
  const y = new Float64Array(x.length);
  for (let i = 0; i < n; i++) {
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < positions; p++) for (let k = 0; k < cg; k++) idx.push((i * positions + p) * c + g * cg + k);
      const mean = idx.reduce((s, j) => s + x[j], 0) / idx.length;
      const variance = idx.reduce((s, j) => s + (x[j] - mean) ** 2, 0) / idx.length;
      for (const j of idx) {
        const ch = j % c;
        y[j] = ((x[j] - mean) / Math.sqrt(variance + eps)) * (w ? w[ch] : 1) + (b ? b[ch] : 0);
      }
    }
  }
  return y;
}

const CASES: { name: string; shape: number[]; groups: number; affine: boolean; eps?: number }[] = [
  { name: '[N, C]', shape: [3, 6], groups: 3, affine: true },
  { name: '[N, L, C]', shape: [2, 5, 6], groups: 2, affine: true },
  { name: 'NHWC', shape: [2, 3, 4, 8], groups: 4, affine: true, eps: 1e-3 },
  { name: 'one group (LayerNorm over C and positions)', shape: [2, 3, 3, 4], groups: 1, affine: true },
  { name: 'groups = C (InstanceNorm)', shape: [2, 4, 4, 3], groups: 3, affine: false },
];

describe('GroupNorm', () => {
  for (const c of CASES) {
    it(`matches PyTorch's formula: ${c.name}, ${c.groups} groups${c.affine ? '' : ', no affine'}`, () => {
      const ch = c.shape[c.shape.length - 1];
      const size = c.shape.reduce((a, b) => a * b, 1);
      const xv = vals(size, 7, -2, 3);
      const m = new nn.GroupNorm(c.groups, ch, { affine: c.affine, eps: c.eps });
      const w = Array.from(vals(ch, 8, 0.5, 1.5));
      const b = Array.from(vals(ch, 9, -0.5, 0.5));
      if (c.affine) {
        const state = { weight: eg.tensor(w), bias: eg.tensor(b) };
        m.loadStateDict(state);
        eg.dispose([state.weight, state.bias]);
      }
      expect(m.numParameters()).toBe(c.affine ? 2 * ch : 0);
      const y = eg.tidy(() => m.forward(eg.tensor(xv, c.shape)).dataSync() as Float32Array);
      const want = reference(xv, c.shape, c.groups, c.affine ? w : null, c.affine ? b : null, c.eps ?? 1e-5);
      let worst = 0;
      for (let i = 0; i < size; i++) worst = Math.max(worst, Math.abs(y[i] - want[i]));
      expect(worst).toBeLessThan(2e-5);
      m.dispose();
    });
  }

  it('gradients of input, weight and bias match finite differences (NHWC and [N, L, C])', () => {
    for (const [shape, groups] of [[[2, 2, 2, 4], 2], [[2, 3, 6], 3]] as [number[], number][]) {
      const ch = shape[shape.length - 1];
      const size = shape.reduce((a, b) => a * b, 1);
      gradcheck(`groupNorm ${shape}`, [
        { shape, values: vals(size, 3, -2, 2) },
        { shape: [ch], values: vals(ch, 4, 0.5, 1.5) },
        { shape: [ch], values: vals(ch, 5, -0.5, 0.5) },
      ], ([x, w, b]) => {
        const m = new nn.GroupNorm(groups, ch, { affine: false });
        return m.forward(x).mul(w).add(b);
      });
    }
    // The module's own parameters receive the same gradients as explicit ones.
    const m = new nn.GroupNorm(2, 4);
    eg.tidy(() => {
      const x = eg.tensor(vals(16, 6, -1, 1), [2, 2, 4]);
      m.forward(x).mul(eg.tensor(vals(16, 7, -1, 1), [2, 2, 4])).sum().backward();
      const gw = m.weight!.grad!.dataSync();
      const xhat = m.normalize(x);
      const want = xhat.mul(eg.tensor(vals(16, 7, -1, 1), [2, 2, 4])).sum([0, 1]).dataSync();
      for (let i = 0; i < 4; i++) expect(gw[i]).toBeCloseTo(want[i], 5);
      expect(Array.from(m.bias!.grad!.dataSync())).toEqual(Array.from(eg.tensor(vals(16, 7, -1, 1), [2, 2, 4]).sum([0, 1]).dataSync()));
    });
    m.dispose();
  });

  it('never mixes examples: an example\'s output does not depend on the rest of the batch, in training or eval', () => {
    const m = new nn.GroupNorm(2, 4, { eps: 1e-5 });
    eg.tidy(() => {
      const x = eg.randn([5, 3, 3, 4], 0, 1, { seed: 3 });
      const full = m.forward(x).slice([1, 0, 0, 0], [2, 3, 3, 4]).dataSync();
      const alone = m.eval().forward(x.slice([1, 0, 0, 0], [2, 3, 3, 4])).dataSync();
      expect(Array.from(alone)).toEqual(Array.from(full));
    });
    m.dispose();
  });

  it('saves and loads with a model (config and weights)', async () => {
    const model = new nn.Sequential(new nn.Conv2d(1, 4, 3, { seed: 1 }), new nn.GroupNorm(2, 4, { eps: 1e-4 }), new nn.ReLU(), new nn.Flatten(), new nn.Linear(16, 2, { seed: 2 }));
    const w = eg.tensor([0.5, 1, 1.5, 2]);
    eg.noGrad(() => (model.getModule('1') as eg.nn.GroupNorm).weight!.assign(w));
    w.dispose();
    const art = await eg.saveModel(model);
    const { model: back } = await eg.loadModel({ json: JSON.stringify(art.json), weights: art.weights });
    const gn = back.getModule('1') as eg.nn.GroupNorm;
    expect([gn.className, gn.numGroups, gn.numChannels, gn.eps, gn.affine]).toEqual(['GroupNorm', 2, 4, 1e-4, true]);
    eg.tidy(() => {
      const x = eg.rand([2, 4, 4, 1], 0, 1, { seed: 5 });
      expect(bits(back.forward(x))).toEqual(bits(model.forward(x)));
    });
    const noAffine = nn.moduleFromConfig(new nn.GroupNorm(1, 3, { affine: false }).toConfig());
    expect(noAffine.numParameters()).toBe(0);
    noAffine.dispose();
    model.dispose();
    back.dispose();
  });

  it('refuses bad arguments and inputs with typed errors', () => {
    expect(() => new nn.GroupNorm(3, 4)).toThrow(eg.ShapeError);
    expect(() => new nn.GroupNorm(3, 4)).toThrow(/numGroups \(3\) must divide numChannels \(4\)/);
    expect(() => new nn.GroupNorm(0, 4)).toThrow(eg.ArgumentError);
    expect(() => new nn.GroupNorm(2, 4, { eps: -1 })).toThrow(/eps must be >= 0/);
    expect(() => new nn.GroupNorm(2, 4, { affine: 'yes' } as never)).toThrow(eg.ArgumentError);
    const m = new nn.GroupNorm(2, 4);
    expect(() => eg.tidy(() => m.forward(eg.ones([2, 3, 3, 5])))).toThrow(/channels-last input \[N, \.\.\., 4\], got \[2, 3, 3, 5\]/);
    expect(() => eg.tidy(() => m.forward(eg.ones([4])))).toThrow(eg.ShapeError);
    expect(() => m.forward(null as never)).toThrow(eg.EdgegradError);
    m.dispose();
  });

  it('100 forward/backward calls leave memory flat', () => {
    const m = new nn.GroupNorm(2, 4);
    const x = eg.randn([2, 3, 3, 4], 0, 1, { seed: 1 });
    expectFlatOver100Calls([
      ['forward', () => m.forward(x)],
      ['backward', () => eg.tidy(() => {
        m.forward(x).square().sum().backward();
        m.weight!.zeroGrad();
        m.bias!.zeroGrad();
      })],
    ]);
    x.dispose();
    m.dispose();
  });

  it('is bitwise identical on 1 and 2 threads and in every runtime (stored digest)', () => {
    const run = () => eg.tidy(() => {
      const m = new nn.GroupNorm(4, 8);
      const x = eg.randn([4, 6, 6, 8], 0, 2, { seed: 42 }).requiresGrad_();
      const y = m.forward(x);
      y.mul(eg.randn(y.shape, 0, 1, { seed: 43 })).sum().backward();
      const out = [...bits(y), ...bits(x.grad!), ...bits(m.weight!.grad!), ...bits(m.bias!.grad!)];
      m.dispose();
      return out;
    });
    expect(fnv1a(sameBitsOnOneAndTwoThreads(run))).toBe('785cfb8e');
  });
});
