/**
 * Issue 17: the polynomial activations `eg.he` evaluates under encryption — `nn.Square` and the
 * trainable `nn.PolyActivation` (a·x² + b·x + c, defaults = ReLU's least-squares fit on [-4, 4]):
 * values against float64, gradients (input and coefficients) against finite differences, training
 * of the coefficients, freezing, save/load, typed errors, memory flatness.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { gradcheck, setup, vals, expectEachTestFreesItsTensors } from './helpers.js';
import { bits, expectFlatOver100Calls } from './explain-fixtures.js';

const { nn } = eg;

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

const f32 = (t: eg.Tensor): number[] => Array.from(t.dataSync() as Float32Array);

describe('nn.Square', () => {
  it('is x² with gradient 2x', () => {
    const m = new nn.Square();
    const xv = vals(24, 1, -3, 3);
    eg.tidy(() => {
      const y = f32(m.forward(eg.tensor(xv, [2, 3, 4])));
      y.forEach((v, i) => expect(v).toBeCloseTo(xv[i] * xv[i], 5));
    });
    gradcheck('Square', [{ values: Array.from(vals(6, 2, -2, 2)), shape: [2, 3] }], ([x]) => m.forward(x));
    expect(m.numParameters()).toBe(0);
    m.dispose();
  });
});

describe('nn.PolyActivation', () => {
  it("defaults to ReLU's least-squares fit on [-4, 4]", () => {
    // Normal equations of min ∫_{-4}^{4} (relu(x) - a x² - b x - c)² dx on a fine midpoint grid, float64.
    const n = 200_000;
    const m = Array.from({ length: 3 }, () => new Float64Array(3));
    const r = new Float64Array(3);
    for (let i = 0; i < n; i++) {
      const x = -4 + (8 * (i + 0.5)) / n;
      const phi = [x * x, x, 1];
      for (let j = 0; j < 3; j++) {
        r[j] += phi[j] * Math.max(x, 0);
        for (let k = 0; k < 3; k++) m[j][k] += phi[j] * phi[k];
      }
    }
    // Solve the 3x3 system by Cramer's rule.
    const det = (q: Float64Array[]): number =>
      q[0][0] * (q[1][1] * q[2][2] - q[1][2] * q[2][1]) - q[0][1] * (q[1][0] * q[2][2] - q[1][2] * q[2][0]) + q[0][2] * (q[1][0] * q[2][1] - q[1][1] * q[2][0]);
    const d = det(m);
    const sol = [0, 1, 2].map((j) => det(m.map((row, i) => Float64Array.from(row, (v, k) => (k === j ? r[i] : v)))) / d);
    expect(sol[0]).toBeCloseTo(nn.RELU_FIT.a, 6);
    expect(sol[1]).toBeCloseTo(nn.RELU_FIT.b, 6);
    expect(sol[2]).toBeCloseTo(nn.RELU_FIT.c, 6);
    const p = new nn.PolyActivation();
    expect(p.coefficients()).toEqual({ a: 0.1171875, b: 0.5, c: 0.375 });
    expect(p.namedParameters().map(([k, t]) => [k, t.shape.length, t.requiresGrad])).toEqual([['a', 0, true], ['b', 0, true], ['c', 0, true]]);
    // It tracks ReLU on the interval: worst error 0.375 at 0 and ±4 (the fit's equioscillation-like ends).
    eg.tidy(() => {
      const xs = eg.tensor(Float32Array.from({ length: 81 }, (_, i) => -4 + i / 10));
      const err = f32(p.forward(xs).sub(xs.relu()).abs());
      expect(Math.max(...err)).toBeLessThanOrEqual(0.375 + 1e-6);
    });
    p.dispose();
  });

  it('computes a·x² + b·x + c (float64 reference) with gradients for x, a, b and c', () => {
    const p = new nn.PolyActivation({ a: -0.75, b: 1.25, c: 0.5 });
    const xv = vals(30, 3, -3, 3);
    eg.tidy(() => {
      const y = f32(p.forward(eg.tensor(xv, [5, 6])));
      y.forEach((v, i) => expect(v).toBeCloseTo(-0.75 * xv[i] * xv[i] + 1.25 * xv[i] + 0.5, 5));
    });
    gradcheck('PolyActivation x', [{ values: Array.from(vals(8, 4, -2, 2)), shape: [2, 4] }], ([x]) => p.forward(x));
    for (const t of p.parameters()) t.zeroGrad();
    // Coefficient gradients: dL/da = Σ w·x², dL/db = Σ w·x, dL/dc = Σ w (w = upstream gradient).
    gradcheck(
      'PolyActivation coefficients',
      [{ values: [0.3], shape: [] }, { values: [-0.4], shape: [] }, { values: [0.9], shape: [] }],
      ([a, b, c]) => {
        const x = eg.tensor(vals(6, 5, -2, 2), [2, 3]);
        return x.square().mul(a).add(x.mul(b)).add(c);
      },
    );
    eg.tidy(() => {
      const x = eg.tensor(vals(6, 6, -2, 2), [2, 3]);
      p.forward(x).sum().backward();
      const xs = Array.from(x.dataSync() as Float32Array);
      expect(p.a.grad!.item()).toBeCloseTo(xs.reduce((s, v) => s + v * v, 0), 4);
      expect(p.b.grad!.item()).toBeCloseTo(xs.reduce((s, v) => s + v, 0), 4);
      expect(p.c.grad!.item()).toBeCloseTo(6, 5);
    });
    for (const t of p.parameters()) t.zeroGrad();
    p.dispose();
  });

  it('learns its coefficients with an optimizer; trainable: false freezes them', () => {
    // Target 2x² - x + 0.5 from the ReLU-fit start: plain gradient descent on the mean squared error.
    const p = new nn.PolyActivation();
    const opt = new eg.optim.SGD(p.parameters(), { lr: 0.05 });
    const x = eg.rand([256, 1], -2, 2, { seed: 7 });
    const y = eg.tidy(() => x.square().mul(2).sub(x).add(0.5));
    for (let i = 0; i < 600; i++) {
      eg.tidy(() => {
        opt.zeroGrad();
        p.forward(x).sub(y).square().mean().backward();
        opt.step();
      });
    }
    const k = p.coefficients();
    expect(k.a).toBeCloseTo(2, 2);
    expect(k.b).toBeCloseTo(-1, 2);
    expect(k.c).toBeCloseTo(0.5, 2);
    for (const t of p.parameters()) t.zeroGrad();

    // Frozen after a trainable layer: the Linear learns, the polynomial keeps its coefficients.
    const frozen = new nn.PolyActivation({ trainable: false });
    expect(frozen.trainableParameters()).toHaveLength(0);
    expect(frozen.numParameters()).toBe(3);
    const model = new nn.Sequential(new nn.Linear(1, 1, { seed: 3 }), frozen);
    const w0 = (model.getModule('0') as eg.nn.Linear).weight.item();
    const opt2 = new eg.optim.SGD(model.parameters(), { lr: 0.05 });
    for (let i = 0; i < 5; i++) {
      eg.tidy(() => {
        opt2.zeroGrad();
        model.forward(x).sub(y).square().mean().backward();
        opt2.step();
      });
    }
    expect((model.getModule('0') as eg.nn.Linear).weight.item()).not.toBe(w0);
    expect(frozen.coefficients()).toEqual(nn.RELU_FIT);
    expect(frozen.unfreeze().trainableParameters()).toHaveLength(3);
    for (const t of model.parameters()) t.zeroGrad();
    eg.dispose([x, y]);
    p.dispose();
    model.dispose();
  });

  it('saves and loads with a model (config and coefficients, bit for bit)', async () => {
    const model = new nn.Sequential(new nn.Linear(4, 3, { seed: 1 }), new nn.PolyActivation({ a: 0.25, b: -0.5, c: 1, trainable: false }), new nn.Linear(3, 2, { seed: 2 }), new nn.Square());
    const art = await eg.saveModel(model);
    const { model: back } = await eg.loadModel({ json: JSON.stringify(art.json), weights: art.weights });
    const poly = back.getModule('1') as eg.nn.PolyActivation;
    expect([poly.className, poly.trainable, poly.coefficients()]).toEqual(['PolyActivation', false, { a: 0.25, b: -0.5, c: 1 }]);
    expect(back.getModule('3').className).toBe('Square');
    expect(Object.keys(back.stateDict())).toContain('1.a');
    eg.tidy(() => {
      const x = eg.rand([5, 4], -1, 1, { seed: 5 });
      expect(bits(back.forward(x))).toEqual(bits(model.forward(x)));
    });
    const src = new nn.PolyActivation({ a: 3 });
    const cfg = nn.moduleFromConfig(src.toConfig()) as eg.nn.PolyActivation;
    expect(cfg.coefficients()).toEqual({ a: 3, b: 0.5, c: 0.375 });
    cfg.dispose();
    src.dispose();
    model.dispose();
    back.dispose();
  });

  it('refuses bad options and inputs with typed errors naming the problem', () => {
    expect(() => new nn.PolyActivation({ a: Number.NaN })).toThrow(/PolyActivation a must not be NaN/);
    expect(() => new nn.PolyActivation({ b: 1e39 })).toThrow(/PolyActivation b is 1e\+39, beyond the float32 range/);
    expect(() => new nn.PolyActivation({ c: '2' } as never)).toThrow(eg.ArgumentError);
    expect(() => new nn.PolyActivation({ trainable: 1 } as never)).toThrow(/trainable must be true or false/);
    expect(() => new nn.PolyActivation(null as never)).toThrow(eg.ArgumentError);
    const p = new nn.PolyActivation();
    const s = new nn.Square();
    expect(() => p.forward(null as never)).toThrow(/PolyActivation needs a Tensor/);
    expect(() => s.forward([1, 2] as never)).toThrow(/Square needs a Tensor/);
    p.dispose();
    s.dispose();
  });

  it('leaves memory flat over 100 forward and backward calls', () => {
    const p = new nn.PolyActivation();
    const s = new nn.Square();
    const x = eg.rand([8, 5], -2, 2, { seed: 9 });
    expectFlatOver100Calls([
      ['PolyActivation forward', () => p.forward(x)],
      ['Square forward', () => s.forward(x)],
      [
        'PolyActivation backward',
        () =>
          eg.tidy(() => {
            p.forward(x).sum().backward();
            for (const t of p.parameters()) t.zeroGrad();
          }),
      ],
    ]);
    x.dispose();
    p.dispose();
    s.dispose();
  });
});
