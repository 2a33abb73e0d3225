/**
 * Pruning: exact layer-wise and global magnitude sparsity, masks that survive optimizer steps,
 * the Zhu & Gupta schedule and its fit callback, the sparsity report, and structured pruning that
 * physically shrinks layers (and their BatchNorm and successors) into a smaller dense model.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

const C = eg.compress;
const { nn } = eg;

beforeAll(async () => {
  await setup();
});

const mlp = () => new nn.Sequential(new nn.Linear(10, 20, { seed: 1 }), new nn.ReLU(), new nn.Linear(20, 7, { seed: 2 }));
const zeros = (t: eg.Tensor) => Array.from(t.dataSync()).filter((v) => v === 0).length;

describe('magnitude pruning', () => {
  it('prunes exactly the smallest weights, layer by layer or globally', () => {
    const m = mlp();
    const p = C.magnitudePrune(m, 0.6, { scope: 'layer' });
    expect(p.targets.map(([n]) => n)).toEqual(['0.weight', '2.weight']);
    expect(zeros(m.stateDict()['0.weight'])).toBe(120);
    expect(zeros(m.stateDict()['2.weight'])).toBe(84);
    p.dispose();
    const g = mlp();
    const w0 = Array.from(g.stateDict()['0.weight'].dataSync()).map(Math.abs);
    const w2 = Array.from(g.stateDict()['2.weight'].dataSync()).map(Math.abs);
    const all = [...w0, ...w2].sort((a, b) => a - b);
    const threshold = all[Math.floor(0.75 * all.length) - 1];
    const pg = C.magnitudePrune(g, 0.75);
    const r = C.sparsityReport(g, { include: (_, t) => t.rank >= 2 });
    expect(r.total.zeros).toBe(Math.floor(0.75 * 340));
    expect(r.layers.map((l) => l.name)).toEqual(['0.weight', '2.weight']);
    const kept = [...g.stateDict()['0.weight'].dataSync(), ...g.stateDict()['2.weight'].dataSync()].filter((v) => v !== 0);
    expect(Math.min(...kept.map(Math.abs))).toBeGreaterThanOrEqual(threshold);
    pg.dispose();
    g.dispose();
    m.dispose();
  });

  it('keeps pruned weights at zero through optimizer steps once attached', () => {
    const m = mlp();
    const p = C.magnitudePrune(m, 0.5);
    const opt = new eg.optim.Adam(m.parameters(), { lr: 0.05 });
    const step = () => eg.tidy(() => {
      opt.zeroGrad();
      m.forward(eg.rand([8, 10], -1, 1, { seed: 4 })).square().mean().backward();
      opt.step();
    });
    p.attach(opt);
    for (let i = 0; i < 3; i++) step();
    expect(C.sparsityReport(m, { include: (_, t) => t.rank >= 2 }).total.zeros).toBe(170);
    p.detach();
    step();
    expect(C.sparsityReport(m, { include: (_, t) => t.rank >= 2 }).total.zeros).toBeLessThan(170); // momentum revives them without the masks
    expect(() => p.prune(1.5)).toThrow(eg.ArgumentError);
    p.dispose();
    opt.dispose();
    m.dispose();
  });

  it('follows the polynomial schedule, also inside fit', async () => {
    const s = new C.PolynomialDecay({ initialSparsity: 0.1, finalSparsity: 0.9, beginStep: 10, endStep: 50, frequency: 5 });
    expect(s.sparsityAt(0)).toBe(0);
    expect(s.sparsityAt(10)).toBeCloseTo(0.1, 10);
    expect(s.sparsityAt(30)).toBeCloseTo(0.9 + (0.1 - 0.9) * 0.5 ** 3, 10);
    expect(s.sparsityAt(80)).toBeCloseTo(0.9, 10);
    expect([10, 12, 15, 50, 55].map((t) => s.updatesAt(t))).toEqual([true, false, true, true, false]);
    expect(() => new C.PolynomialDecay({ finalSparsity: 0.5, endStep: 0 })).toThrow(eg.ArgumentError);

    const m = mlp();
    const x = eg.rand([64, 10], -1, 1, { seed: 5 });
    const y = eg.tidy(() => x.sum(1).greater(0).cast('int32'));
    const opt = new eg.optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
    m.compile({ optimizer: opt, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
    const pruner = new C.Pruner(m);
    const cb = new C.PruningCallback(pruner, new C.PolynomialDecay({ finalSparsity: 0.8, endStep: 6, frequency: 2 }));
    const h = await m.fit(x, y, { epochs: 2, batchSize: 16, verbose: 0, callbacks: [cb] });
    expect(cb.step).toBe(8);
    expect(h.history.sparsity).toEqual([expect.closeTo(0.8 - 0.8 * (1 - 2 / 6) ** 3, 6), 0.8]);
    expect(C.sparsityReport(m, { include: (_, t) => t.rank >= 2 }).total.zeros).toBe(Math.floor(0.8 * 340));
    pruner.dispose();
    m.dispose();
    eg.dispose([x, y]);
  });
});

describe('structured pruning', () => {
  const cnn = () => new nn.Sequential(
    new nn.Conv2d(2, 8, 3, { padding: 'same', seed: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(8, 6, 3, { padding: 'same', seed: 2 }), new nn.ReLU(), new nn.Flatten(),
    new nn.Linear(2 * 2 * 6, 5, { seed: 3 }), new nn.ReLU(), new nn.Linear(5, 3, { seed: 4 }));

  it('physically removes channels and neurons from layers, BatchNorms and successors', () => {
    const m = cnn();
    const { model: s, kept } = C.structuredPrune(m, { ratio: 0.5, inputShape: [4, 4, 2] });
    expect(Object.keys(kept)).toEqual(['0', '4', '7']);
    expect(kept['0'].length).toBe(4);
    const shapes = s.namedParameters().map(([n, p]) => `${n}:${p.shape.join('x')}`);
    expect(shapes).toEqual(['0.weight:3x3x2x4', '0.bias:4', '1.weight:4', '1.bias:4', '4.weight:3x3x4x3', '4.bias:3',
      '7.weight:3x12', '7.bias:3', '9.weight:3x3', '9.bias:3']);
    expect(s.namedBuffers().map(([, b]) => b.shape[0])).toEqual([4, 4]);
    eg.tidy(() => {
      expect(s.forward(eg.rand([2, 4, 4, 2])).shape).toEqual([2, 3]);
    });
    expect(s.numParameters()).toBeLessThan(m.numParameters() / 2);
    s.dispose();
    m.dispose();
  });

  it('is exact when the removed channels carry nothing', () => {
    const m = new nn.Sequential(
      new nn.Conv2d(2, 6, 3, { padding: 'same', seed: 5 }), new nn.ReLU(), new nn.Flatten(), new nn.Linear(3 * 3 * 6, 4, { seed: 6 }), new nn.ReLU(),
      new nn.Linear(4, 2, { seed: 7 }));
    // Channels 1, 3, 4 of the conv and neuron 2 of the first dense have zero weights and biases.
    eg.tidy(() => {
      const sd = m.stateDict();
      const cmask = eg.tensor([1, 0, 1, 0, 0, 1]);
      sd['0.weight'].assign(sd['0.weight'].mul(cmask));
      sd['0.bias'].assign(sd['0.bias'].mul(cmask));
      const nmask = eg.tensor([1, 1, 0, 1]);
      sd['3.weight'].assign(sd['3.weight'].mul(nmask.reshape([4, 1])));
      sd['3.bias'].assign(sd['3.bias'].mul(nmask));
    });
    const { model: s, kept } = C.structuredPrune(m, { ratio: 0.5, inputShape: [3, 3, 2], layers: [0] });
    expect(kept['0']).toEqual([0, 2, 5]);
    const { model: s2, kept: k2 } = C.structuredPrune(m, { ratio: 0.25, inputShape: [3, 3, 2], layers: [3], norm: 'l2' });
    expect(k2['3']).toEqual([0, 1, 3]);
    eg.tidy(() => {
      const x = eg.rand([5, 3, 3, 2], -1, 1, { seed: 8 });
      const want = m.forward(x).dataSync();
      for (const got of [s.forward(x).dataSync(), s2.forward(x).dataSync()]) {
        for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
      }
    });
    expect(() => C.structuredPrune(m, { inputShape: [3, 3, 2], layers: [5] })).toThrow(eg.ArgumentError);
    expect(() => C.structuredPrune(new nn.ReLU(), { inputShape: [3] })).toThrow(/Sequential/);
    s.dispose();
    s2.dispose();
    m.dispose();
  });
});
