/** Sensitivity analysis, partial dependence and ICE curves (issue 14 §4). */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

const { nn, explain } = eg;

beforeAll(async () => {
  await setup();
});

const W = [0.5, -2, 0, 1.25];
const B = 0.75;
const X = [[1, 2, 3, 4], [-1, 0.5, 7, -2], [0.3, -0.7, 1.1, 2.2], [2, 1, -1, 0.5], [0, 3, 2, -1], [1.5, -2, 0.25, 1]];

/** F(x) = w·x + b ([N, 1]). */
function linearModel(): eg.nn.Sequential {
  const m = new nn.Sequential(new nn.Linear(4, 1));
  m.loadStateDict({ '0.weight': eg.tensor([W]), '0.bias': eg.tensor([B]) });
  return m.eval();
}

const mlp = () => new nn.Sequential(new nn.Linear(4, 8, { seed: 21 }), new nn.Tanh(), new nn.Linear(8, 3, { seed: 22 })).eval();

describe('partialDependence', () => {
  it('on a linear model: the average has slope w_k, ICE curves are parallel lines', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    for (let k = 0; k < 4; k++) {
      const r = explain.partialDependence(m, x, k, { gridResolution: 5, kind: 'both' });
      const g = r.grid[0];
      expect(g.length).toBe(5);
      const avg = r.average!.arraySync() as number[];
      const ice = r.individual!.arraySync() as number[][];
      expect(r.individual!.shape).toEqual([6, 5]);
      const mean = X.reduce((a, row) => a + row.reduce((s, v, j) => s + (j === k ? 0 : W[j] * v), B), 0) / X.length;
      for (let t = 0; t < 5; t++) expect(avg[t]).toBeCloseTo(mean + W[k] * g[t], 4);
      for (let t = 1; t < 5; t++) expect((avg[t] - avg[0]) / (g[t] - g[0])).toBeCloseTo(W[k], 4);
      // Parallel: every row's curve is the average shifted by a constant (its other features' part).
      ice.forEach((row, i) => {
        const shift = X[i].reduce((s, v, j) => s + (j === k ? 0 : W[j] * v), B) - mean;
        row.forEach((v, t) => expect(v - avg[t]).toBeCloseTo(shift, 4));
      });
      eg.dispose([r.average!, r.individual!]);
    }
    x.dispose();
    m.dispose();
  });

  it('two features: on F = x0 · x1 the 2-D grid is the product of the grids', () => {
    const f = (t: eg.Tensor) => t.slice([0, 0], [t.shape[0], 1]).mul(t.slice([0, 1], [t.shape[0], 2]));
    const x = eg.tensor(X);
    const grid = [[-1, 0, 0.5, 2], [3, -1.5, 1]];
    const r = explain.partialDependence(f, x, [0, 1], { grid, kind: 'both' });
    expect(r.grid).toEqual(grid);
    expect(r.average!.shape).toEqual([4, 3]);
    expect(r.individual!.shape).toEqual([6, 4, 3]);
    expect(r.average!.arraySync()).toEqual(grid[0].map((a) => grid[1].map((b) => Math.fround(a * b) + 0)));
    const ice = r.individual!.arraySync() as number[][][];
    for (const row of ice) expect(row).toEqual(grid[0].map((a) => grid[1].map((b) => Math.fround(a * b))));
    eg.dispose([r.average!, r.individual!, x]);
  });

  it("grids from percentiles as scikit-learn: scipy's mquantiles (alphap = betap = 0.4), linspace; unique values when fewer", () => {
    // scipy.stats.mstats.mquantiles' documented example: [19.2, 40, 42.8] at [0.25, 0.5, 0.75].
    const data = [6, 47, 49, 15, 42, 41, 7, 39, 43, 40, 36];
    const sorted = [...data].sort((a, b) => a - b);
    const q = explain.mquantiles(data, [0.25, 0.5, 0.75]);
    [19.2, 40, 42.8].forEach((v, i) => expect(q[i]).toBeCloseTo(v, 12));
    // Defaults [0.05, 0.95] on 11 values: aleph clips to the ends → min and max.
    expect(explain.mquantiles(sorted, [0.05, 0.95])).toEqual([6, 49]);
    const x = eg.tensor(data.map((v, i) => [v, i % 3]));
    const id = (t: eg.Tensor) => t.sum(1);
    const r = explain.partialDependence(id, x, 0, { gridResolution: 5, percentiles: [0.25, 0.75] });
    // linspace(19.2, 42.8, 5), as float32 (the values the model is given).
    expect(r.grid[0]).toEqual([19.2, 25.1, 31, 36.9, 42.8].map(Math.fround));
    // Column 1 has 3 unique values (< gridResolution): they are the grid.
    const u = explain.partialDependence(id, x, 1, { gridResolution: 5, kind: 'individual' });
    expect(u.grid[0]).toEqual([0, 1, 2]);
    expect(u.average).toBeUndefined();
    expect(u.individual!.shape).toEqual([11, 3]);
    eg.dispose([r.average!, u.individual!, x]);
  });

  it('batching is bit-neutral (perturbationsPerEval), with a target on a multi-output model', () => {
    const m = mlp();
    const x = eg.randn([7, 4], 0, 1, { seed: 5 });
    const run = (pe?: number) => explain.partialDependence(m, x, [2, 0], { gridResolution: 4, kind: 'both', target: 2, perturbationsPerEval: pe });
    const ref = run();
    const refBits = [bits(ref.average!), bits(ref.individual!)];
    for (const pe of [1, 5, 16, 1000]) {
      const r = run(pe);
      expect([bits(r.average!), bits(r.individual!)]).toEqual(refBits);
      eg.dispose([r.average!, r.individual!]);
    }
    // The ICE point equals a direct forward of the row with the columns set.
    const row = [...(x.arraySync() as number[][])[3]];
    row[2] = ref.grid[0][1];
    row[0] = ref.grid[1][2];
    const direct = eg.noGrad(() => m.forward(eg.tensor([row])));
    expect((ref.individual!.arraySync() as number[][][])[3][1][2]).toBe((direct.arraySync() as number[][])[0][2]);
    eg.dispose([ref.average!, ref.individual!, direct, x]);
    m.dispose();
  });
});

describe('sensitivityAnalysis', () => {
  it('on a linear model: F(x + δ e_i) − F(x) = w_i δ; central difference; elasticity', () => {
    const m = linearModel();
    const x = eg.tensor(X);
    const deltas = [0.5, 0.25, 2, -1];
    const s = explain.sensitivityAnalysis(m, x, { deltas });
    expect(s.shape).toEqual([6, 4]);
    (s.arraySync() as number[][]).forEach((r) => r.forEach((v, k) => expect(v).toBeCloseTo(W[k] * deltas[k], 4)));
    const c = explain.sensitivityAnalysis(m, x, { delta: 0.5, kind: 'central' });
    (c.arraySync() as number[][]).forEach((r) => r.forEach((v, k) => expect(v).toBeCloseTo(W[k] * 0.5, 4)));
    const e = explain.sensitivityAnalysis(m, x, { delta: 0.125, kind: 'elasticity' });
    (e.arraySync() as number[][]).forEach((r, i) => {
      const fx = X[i].reduce((a, v, k) => a + W[k] * v, B);
      r.forEach((v, k) => expect(v).toBeCloseTo((W[k] * X[i][k]) / fx, 3));
    });
    // Feature groups move together: columns {0, 3} as one feature, {1, 2} as another.
    const g = explain.sensitivityAnalysis(m, x, { featureMask: eg.tensor([0, 1, 1, 0], [4], 'int32'), deltas: [1, 0.5] });
    (g.arraySync() as number[][]).forEach((r) => expect(r).toEqual([W[0] + W[3], (W[1] + W[2]) * 0.5, (W[1] + W[2]) * 0.5, W[0] + W[3]].map(Math.fround)));
    eg.dispose([s, c, e, g, x]);
    m.dispose();
  });

  it('batching is bit-neutral; tuples of inputs; a feature the model ignores gets 0', () => {
    const m = mlp();
    const x = eg.randn([5, 4], 0, 1, { seed: 6 });
    for (const kind of ['difference', 'central'] as const) {
      const ref = explain.sensitivityAnalysis(m, x, { target: 1, delta: 0.1, kind });
      for (const pe of [1, 3, 100]) {
        const r = explain.sensitivityAnalysis(m, x, { target: 1, delta: 0.1, kind, perturbationsPerEval: pe });
        expect(bits(r)).toEqual(bits(ref));
        r.dispose();
      }
      ref.dispose();
    }
    const f = (a: eg.Tensor, b: eg.Tensor) => a.sum(1).mul(2).add(b.slice([0, 0], [b.shape[0], 1]).reshape([b.shape[0]]));
    const b = eg.randn([5, 3], 0, 1, { seed: 7 });
    const [sa, sb] = explain.sensitivityAnalysis(f, [x, b], { delta: 0.5 });
    expect(sa.shape).toEqual([5, 4]);
    (sa.arraySync() as number[][]).forEach((r) => r.forEach((v) => expect(v).toBeCloseTo(1, 5)));
    (sb.arraySync() as number[][]).forEach((r) => expect(r.map((v) => +v.toFixed(5))).toEqual([0.5, 0, 0]));
    eg.dispose([sa, sb, b, x]);
    m.dispose();
  });
});

/** FNV-1a over the float32 bits of the results below; a change means the results changed (update only knowingly). */
const DIGEST = '6e33250d';

describe('probing: determinism', () => {
  it('the same bits for 1 and 2 threads, and the stored digest (the same in Node and Chromium)', () => {
    const m = mlp();
    const x = eg.randn([5, 4], 0, 1, { seed: 11 });
    const run = () => eg.tidy(() => {
      const pd = explain.partialDependence(m, x, [0, 2], { target: 1, gridResolution: 3, kind: 'both', perturbationsPerEval: 8 });
      const out = [
        explain.sensitivityAnalysis(m, x, { target: 0, deltas: [0.1, -0.2, 0.3, 0.05], kind: 'central' }),
        explain.sensitivityAnalysis(m, x, { target: 2, delta: 0.25, kind: 'elasticity', perturbationsPerEval: 3 }),
        pd.average!, pd.individual!,
      ];
      return [...out.flatMap(bits), ...new Uint32Array(Float32Array.from(pd.grid.flat()).buffer)];
    });
    expect(fnv1a(sameBitsOnOneAndTwoThreads(run))).toBe(DIGEST);
    x.dispose();
    m.dispose();
  });
});

describe('probing: memory and errors', () => {
  it('100 calls leave tensors and wasm memory flat', () => {
    const m = mlp();
    const x = eg.randn([4, 4], 0, 1, { seed: 8 });
    const calls: [string, () => eg.Tensor[]][] = [
      ['sensitivityAnalysis', () => [explain.sensitivityAnalysis(m, x, { target: 0, delta: 0.1, kind: 'central' })]],
      ['partialDependence', () => {
        const r = explain.partialDependence(m, x, [1, 3], { target: 0, gridResolution: 3, kind: 'both', perturbationsPerEval: 7 });
        return [r.average!, r.individual!];
      }],
    ];
    expectFlatOver100Calls(calls);
    x.dispose();
    m.dispose();
  });

  it('bad arguments throw typed errors naming the problem and leak nothing', () => {
    const m = mlp();
    const x = eg.randn([3, 4], 0, 1, { seed: 9 });
    const lin = linearModel();
    const zero = eg.zeros([2, 4]);
    const flat = eg.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 2].map((v) => [v, v, v, v]));
    const vec = eg.zeros([3]);
    const ints = eg.tensor([[1, 2, 3, 4]], [1, 4], 'int32');
    const sum = (t: eg.Tensor) => t.sum(1);
    const before = eg.memory().numTensors;
    const cases: [() => unknown, new (msg: string) => Error, RegExp][] = [
      [() => explain.sensitivityAnalysis('m' as never, x), eg.ArgumentError, /model must be a Module or a function/],
      [() => explain.sensitivityAnalysis(m, x), eg.ArgumentError, /sensitivityAnalysis\(\): the forward returns 3 outputs per example; pass target/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, delta: 0 }), eg.ArgumentError, /delta of feature 0 is 0/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, delta: NaN }), eg.ArgumentError, /delta must not be NaN/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, delta: 1, deltas: [1, 1, 1, 1] }), eg.ArgumentError, /delta or deltas, not both/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, deltas: [1, 2] }), eg.ArgumentError, /2 deltas for 4 features/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, kind: 'relative' as never }), eg.ArgumentError, /kind must be one of/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, perturbationsPerEval: 0 }), eg.ArgumentError, /perturbationsPerEval/],
      [() => explain.sensitivityAnalysis(m, x, { target: 0, detla: 1 } as never), eg.ArgumentError, /unknown option 'detla'/],
      [() => explain.sensitivityAnalysis(sum, zero, { kind: 'elasticity', delta: 1 }), eg.ArgumentError, /F\(x\) is 0 for example 0/],
      [() => explain.sensitivityAnalysis(lin, ints as never), eg.DTypeError, /input 0 is int32/],
      [() => explain.partialDependence(m, x, 4, { target: 0 }), eg.ArgumentError, /features\[0\] must be between 0 and 3/],
      [() => explain.partialDependence(m, x, [1, 1], { target: 0 }), eg.ArgumentError, /same column 1/],
      [() => explain.partialDependence(m, x, [0, 1, 2], { target: 0 }), eg.ArgumentError, /one or two/],
      [() => explain.partialDependence(m, x, 0), eg.ArgumentError, /pass target/],
      [() => explain.partialDependence(m, x, 0, { target: 0, percentiles: [0.9, 0.1] }), eg.ArgumentError, /must be below/],
      [() => explain.partialDependence(m, x, 0, { target: 0, percentiles: [0, 2] }), eg.ArgumentError, /in \[0, 1\]/],
      [() => explain.partialDependence(m, x, 0, { target: 0, gridResolution: 1 }), eg.ArgumentError, /gridResolution/],
      [() => explain.partialDependence(m, x, 0, { target: 0, grid: [[]] }), eg.ArgumentError, /grid\[0\] must be a non-empty array/],
      [() => explain.partialDependence(m, x, 0, { target: 0, grid: [[1]], gridResolution: 3 }), eg.ArgumentError, /grid replaces/],
      [() => explain.partialDependence(m, x, 0, { target: 0, kind: 'mean' as never }), eg.ArgumentError, /kind must be/],
      [() => explain.partialDependence(m, vec, 0, { target: 0 }), eg.ShapeError, /rows >= 1, features >= 1/],
      [() => explain.partialDependence(m, flat, 0, { target: 0, gridResolution: 3, percentiles: [0.1, 0.5] }), eg.ArgumentError, /percentiles of column 0 are too close/],
      [() => explain.mquantiles([], [0.5]), eg.ArgumentError, /data is empty/],
      [() => explain.mquantiles([1, NaN], [0.5]), eg.ArgumentError, /data\[1\] must not be NaN/],
      [() => explain.mquantiles([1, 2], [1.5]), eg.ArgumentError, /probs\[0\] is 1.5; probabilities are in \[0, 1\]/],
      [() => explain.partialDependence(m, x, 0, { target: 7 }), eg.ArgumentError, /target is out of range for 3 outputs/],
    ];
    for (const [f, cls, re] of cases) {
      expect(f, String(re)).toThrow(cls);
      expect(f, String(re)).toThrow(re);
    }
    expect(eg.memory().numTensors).toBe(before);
    eg.dispose([x, zero, flat, vec, ints]);
    m.dispose();
    lin.dispose();
  });
});
