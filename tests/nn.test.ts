/** The Module API, layers (gradients, modes, shapes), initializers and regularization. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { awayFromZero, gradcheck, setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;
const F = nn.functional;

describe('Module API', () => {
  const make = () => new nn.Sequential(
    new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 1 }),
    new nn.BatchNorm2d(4),
    new nn.ReLU(),
    new nn.Flatten(),
    new nn.Linear(4 * 5 * 5, 3, { seed: 2 }),
  );
  it('names parameters and buffers like PyTorch, and counts them', () => {
    const m = make();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '4.weight', '4.bias']);
    expect(m.namedBuffers().map(([n]) => n)).toEqual(['1.running_mean', '1.running_var']);
    expect(m.numParameters()).toBe(3 * 3 * 2 * 4 + 4 + 4 + 4 + 100 * 3 + 3);
    expect(Object.keys(m.stateDict())).toHaveLength(8);
    expect([...m.namedModules()].map(([n]) => n)).toEqual(['', '0', '1', '2', '3', '4']);
    m.dispose();
  });
  it('parameters survive tidy; dispose frees them', () => {
    const before = eg.memory().numTensors;
    const m = eg.tidy(() => make());
    expect(m.parameters().every((p) => !p.isDisposed)).toBe(true);
    m.dispose();
    expect(eg.memory().numTensors).toBe(before);
  });
  it('freezes and unfreezes by path', () => {
    const m = make();
    m.freeze('0');
    expect(m.trainableParameters()).toHaveLength(4);
    expect(() => m.freeze('nope')).toThrow(eg.ArgumentError);
    m.unfreeze();
    expect(m.trainableParameters()).toHaveLength(6);
    m.dispose();
  });
  it('loadStateDict copies values in place and checks names, shapes and dtypes', () => {
    const a = make();
    const b = make();
    const w = b.stateDict()['4.weight'];
    b.loadStateDict(a.stateDict());
    expect(b.stateDict()['4.weight']).toBe(w); // same tensor object, new values
    expect(Array.from(w.dataSync())).toEqual(Array.from(a.stateDict()['4.weight'].dataSync()));
    const sd = { ...a.stateDict() };
    delete sd['4.bias'];
    expect(() => b.loadStateDict(sd)).toThrow(/missing 4.bias/);
    expect(b.loadStateDict(sd, { strict: false }).missing).toEqual(['4.bias']);
    expect(() => b.loadStateDict({ ...a.stateDict(), '4.bias': eg.zeros([4]) })).toThrow(eg.ShapeError);
    a.dispose();
    b.dispose();
  });
  it('train/eval switch the mode of every submodule', () => {
    const m = make();
    m.eval();
    expect([...m.namedModules()].every(([, x]) => !x.training)).toBe(true);
    m.train();
    expect(m.getModule('1').training).toBe(true);
    m.dispose();
  });
  it('a Sequential rebuilds from its config', () => {
    const m = make();
    const c = nn.moduleFromConfig(JSON.parse(JSON.stringify(m.toConfig())));
    expect(c.namedParameters().map(([n, p]) => `${n}:${p.shape}`)).toEqual(m.namedParameters().map(([n, p]) => `${n}:${p.shape}`));
    m.dispose();
    c.dispose();
  });
  it('a custom module composes layers and is trainable', () => {
    class Residual extends nn.Module {
      readonly a = this.registerModule('a', new nn.Linear(4, 4, { seed: 3 }));
      forward(x: eg.Tensor) {
        return x.add(this.a.forward(x).relu());
      }
    }
    const r = new Residual();
    expect(r.namedParameters().map(([n]) => n)).toEqual(['a.weight', 'a.bias']);
    eg.tidy(() => {
      r.forward(eg.ones([2, 4])).sum().backward();
      expect(r.parameters().every((p) => p.grad !== null)).toBe(true);
    });
    expect(() => r.toConfig()).toThrow(/registerModule/);
    r.dispose();
  });
});

describe('initializers', () => {
  it('are seeded and have the right scale', () => {
    eg.tidy(() => {
      const a = nn.initialize('glorotUniform', [200, 300], 300, 200, 5);
      const b = nn.initialize('glorotUniform', [200, 300], 300, 200, 5);
      expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
      const lim = Math.sqrt(6 / 500);
      expect(a.max().item()).toBeLessThanOrEqual(lim);
      expect(a.abs().max().item()).toBeGreaterThan(lim * 0.95);
      const h = nn.initialize('heNormal', [400, 400], 400, 400, 6);
      expect(h.square().mean().sqrt().item()).toBeCloseTo(Math.sqrt(2 / 400), 2);
      expect(nn.initialize({ constant: 3 }, [2], 1, 1).arraySync()).toEqual([3, 3]);
      expect(() => nn.initialize('bogus' as eg.nn.InitializerName, [1], 1, 1)).toThrow(eg.ArgumentError);
    });
  });
});

describe('layer gradients', () => {
  const v = vals;
  it('conv2d: stride, asymmetric padding, dilation, groups', () => {
    gradcheck('conv2d', [{ shape: [2, 5, 6, 4], values: v(240, 1) }, { shape: [3, 2, 2, 6], values: v(72, 2) }, { shape: [6], values: v(6, 3) }],
      ([x, w, b]) => F.conv2d(x, w, b, { stride: [2, 1], padding: [1, 0, 2, 1], dilation: [1, 2], groups: 2 }), 3e-2);
  });
  it('maxPool2d and avgPool2d with padding', () => {
    gradcheck('maxPool2d', [{ shape: [1, 5, 5, 2], values: v(50, 4) }], ([x]) => F.maxPool2d(x, 2, { stride: 2, padding: 'same' }));
    gradcheck('avgPool2d', [{ shape: [1, 5, 5, 2], values: v(50, 5) }], ([x]) => F.avgPool2d(x, 3, { stride: 2, padding: 'same' }));
  });
  it('batchNorm (training) and layerNorm', () => {
    gradcheck('batchNorm', [{ shape: [4, 3], values: v(12, 6, -2, 2) }, { shape: [3], values: v(3, 7, 0.5, 1.5) }, { shape: [3], values: v(3, 8) }],
      ([x, g, b]) => F.batchNorm(x, { weight: g, bias: b, training: true }), 3e-2);
    gradcheck('layerNorm', [{ shape: [2, 3, 4], values: v(24, 9, -2, 2) }, { shape: [3, 4], values: v(12, 10, 0.5, 1.5) }, { shape: [3, 4], values: v(12, 11) }],
      ([x, g, b]) => F.layerNorm(x, 2, { weight: g, bias: b }), 3e-2);
  });
  it('activations without a tfjs counterpart: GELU (both forms), SiLU, log1p', () => {
    gradcheck('gelu', [{ shape: [8], values: v(8, 12, -3, 3) }], ([x]) => x.gelu());
    gradcheck('gelu tanh', [{ shape: [8], values: v(8, 13, -3, 3) }], ([x]) => x.gelu(true));
    gradcheck('silu', [{ shape: [8], values: v(8, 14, -4, 4) }], ([x]) => x.silu());
    gradcheck('log1p', [{ shape: [8], values: v(8, 15, 0, 3) }], ([x]) => x.log1p());
    gradcheck('leakyRelu', [{ shape: [8], values: awayFromZero(8, 16) }], ([x]) => x.leakyRelu(0.1));
    eg.tidy(() => {
      // hand-computed values: GELU(1) = 0.5·(1 + erf(1/√2)) = 0.8413447; SiLU(1) = 1/(1+e⁻¹)
      expect(eg.tensor([1]).gelu().item()).toBeCloseTo(0.8413447, 6);
      expect(eg.tensor([1]).gelu(true).item()).toBeCloseTo(0.8411920, 6);
      expect(eg.tensor([1]).silu().item()).toBeCloseTo(0.7310586, 6);
      expect(eg.tensor([1e-10]).log1p().item()).toBeCloseTo(1e-10, 15);
      const sp = eg.tensor([100, -100, 0]).softplus().dataSync();
      expect(sp[0]).toBe(100);
      expect(sp[1]).toBeGreaterThan(0); // exp(-100) ≈ 3.7e-44: tiny but not flushed to 0
      expect(sp[1]).toBeLessThan(1e-43);
      expect(sp[2]).toBeCloseTo(Math.LN2, 6);
    });
  });
  it('fused ReLU epilogues (linear, conv2d) match the unfused ops and differentiate', () => {
    gradcheck('linear relu', [{ shape: [3, 4], values: v(12, 30) }, { shape: [5, 4], values: v(20, 31) }, { shape: [5], values: awayFromZero(5, 32, 0.3, 1) }],
      ([x, w, b]) => F.linear(x, w, b, { activation: 'relu' }));
    gradcheck('conv2d relu', [{ shape: [1, 4, 4, 2], values: v(32, 33) }, { shape: [3, 3, 2, 3], values: v(54, 34) }, { shape: [3], values: awayFromZero(3, 35, 0.3, 1) }],
      ([x, w, b]) => F.conv2d(x, w, b, { padding: 'same', activation: 'relu' }));
    eg.tidy(() => {
      const x = eg.rand([2, 6, 6, 3], -1, 1, { seed: 36 });
      const w = eg.rand([3, 3, 3, 8], -1, 1, { seed: 37 });
      const a = F.conv2d(x, w, null, { padding: 'same', activation: 'relu' }).dataSync();
      const b = F.conv2d(x, w, null, { padding: 'same' }).relu().dataSync();
      a.forEach((val, i) => expect(val).toBeCloseTo(b[i], 5));
      expect(() => F.linear(x, w, null, { activation: 'tanh' as 'relu' })).toThrow(eg.ArgumentError);
    });
  });
  it('linear, embedding and dropout', () => {
    gradcheck('linear', [{ shape: [3, 4], values: v(12, 17) }, { shape: [5, 4], values: v(20, 18) }, { shape: [5], values: v(5, 19) }],
      ([x, w, b]) => F.linear(x, w, b));
    const emb = new nn.Embedding(6, 3, { seed: 1 });
    eg.tidy(() => {
      const out = emb.forward(eg.tensor([[1, 5], [1, 0]], undefined, 'int32'));
      expect(out.shape).toEqual([2, 2, 3]);
      out.sum().backward();
      expect(Array.from(emb.weight.grad!.sum(1).dataSync())).toEqual([3, 6, 0, 0, 0, 3]);
    });
    emb.dispose();
    const d = new nn.Dropout(0.5, 7);
    eg.tidy(() => {
      const x = eg.ones([1000]);
      const y = d.forward(x);
      const kept = y.greater(0).mean().item();
      expect(kept).toBeGreaterThan(0.42);
      expect(kept).toBeLessThan(0.58);
      expect(y.max().item()).toBe(2); // scaled by 1/(1-p)
      d.eval();
      expect(d.forward(x).min().item()).toBe(1);
    });
  });
});

describe('batch norm modes', () => {
  it('uses batch statistics in training, running statistics in eval, and updates them with momentum', () => {
    const bn = new nn.BatchNorm1d(2, { momentum: 0.5 });
    eg.tidy(() => {
      const x = eg.tensor([[1, 10], [3, 30]]);
      const y = bn.forward(x);
      expect(y.mean(0).abs().max().item()).toBeLessThan(1e-6);
      const sd = bn.stateDict();
      expect(Array.from(sd.running_mean.dataSync())).toEqual([1, 10]); // 0.5·0 + 0.5·mean
      expect(sd.running_var.dataSync()[0]).toBeCloseTo(0.5 * 1 + 0.5 * 2, 5); // unbiased batch var of [1,3] is 2
      bn.eval();
      const z = bn.forward(eg.tensor([[1, 10]]));
      expect(z.dataSync()[0]).toBeCloseTo(0, 2);
    });
    bn.dispose();
  });
});

describe('regularization', () => {
  it('adds L1/L2 weight penalties and activity penalties to the loss, with gradients', () => {
    const lin = new nn.Linear(3, 2, { bias: false, seed: 1, weightRegularizer: nn.l1l2(0.1, 0.2), activityRegularizer: nn.l2(0.5) });
    eg.tidy(() => {
      const w = lin.weight.dataSync() as Float32Array;
      const x = eg.tensor([[1, 2, 3]]);
      const y = lin.forward(x);
      const reg = lin.regularizationLoss()!;
      const ya = y.dataSync() as Float32Array;
      const expected = w.reduce((s, v) => s + 0.1 * Math.abs(v) + 0.2 * v * v, 0) + ya.reduce((s, v) => s + 0.5 * v * v, 0);
      expect(reg.item()).toBeCloseTo(expected, 4);
      reg.backward();
      const g = lin.weight.grad!.dataSync();
      // d/dw: 0.1·sign(w) + 0.4·w + activity term 2·0.5·y_o·x_i
      const want = Array.from(w, (v, k) => 0.1 * Math.sign(v) + 0.4 * v + ya[Math.floor(k / 3)] * [1, 2, 3][k % 3]);
      Array.from(g).forEach((gv, k) => expect(gv).toBeCloseTo(want[k], 4));
      expect(lin.regularizationLoss()!.item()).toBeCloseTo(w.reduce((s, v) => s + 0.1 * Math.abs(v) + 0.2 * v * v, 0), 4); // activity term consumed
    });
    lin.dispose();
  });
});

describe('layer errors', () => {
  it('are typed and name the problem', () => {
    const conv = new nn.Conv2d(3, 4, 3);
    expect(() => conv.forward(eg.zeros([1, 5, 5, 2]))).toThrow(/3 channels/);
    expect(() => new nn.Conv2d(3, 4, 3, { groups: 2 })).toThrow(eg.ShapeError);
    expect(() => F.conv2d(eg.zeros([1, 2, 2, 3]), eg.zeros([3, 3, 3, 4]))).toThrow(eg.ShapeError);
    expect(() => F.maxPool2d(eg.zeros([2, 2]), 2)).toThrow(/rank 4/);
    expect(() => new nn.Linear(3, 2).forward(eg.zeros([2, 4]))).toThrow(eg.ShapeError);
    expect(() => new nn.Dropout(1)).toThrow(eg.ArgumentError);
    expect(() => new nn.BatchNorm2d(3).forward(eg.zeros([2, 3]))).toThrow(eg.ShapeError);
    expect(() => F.batchNorm(eg.zeros([2, 3]), { training: false })).toThrow(eg.ArgumentError);
    expect(() => F.conv2d(eg.zeros([1, 4, 4, 1]), eg.zeros([2, 2, 1, 1]), null, { padding: 'bogus' as 'same' })).toThrow(eg.ArgumentError);
    conv.dispose();
  });
});
