/**
 * Binary weights (BinaryConnect with per-channel scaling): binarize and its straight-through
 * gradient, trainable binary layers, binarizeModel, bit-packed BinaryModel inference (matching the
 * training graph, 32x smaller weights, save/load), and compressionReport / its table.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

const C = eg.compress;
const { nn } = eg;
const F = nn.functional;

beforeAll(async () => {
  await setup();
});

describe('binarization', () => {
  it('computes α_c · sign(w) with the BinaryConnect gradient', () => {
    eg.tidy(() => {
      const w = eg.tensor([[0.5, -1.5, 0], [-0.25, 2, 1]]).requiresGrad_();
      const b = C.binarize(w, 0);
      const a0 = (0.5 + 1.5) / 3;
      const a1 = 3.25 / 3;
      const got = Array.from(b.dataSync());
      [a0, -a0, a0, -a1, a1, a1].forEach((v, i) => expect(got[i]).toBeCloseTo(v, 6));
      b.sum().backward();
      expect(Array.from(w.grad!.dataSync())).toEqual([1, 0, 1, 1, 0, 1]);
    });
  });

  it('binary layers train their latent weights and compute with binarized ones', () => {
    eg.tidy(() => {
      const lin = new C.BinaryLinear(5, 3, { seed: 1 });
      const x = eg.rand([4, 5], -1, 1, { seed: 2 });
      const want = F.linear(x, C.binarize(lin.weight, 0), lin.bias);
      const y = lin.forward(x);
      expect(Array.from(y.dataSync())).toEqual(Array.from(want.dataSync()));
      y.sum().backward();
      expect(lin.weight.grad).not.toBeNull();
      const conv = new C.BinaryConv2d(2, 4, 3, { padding: 'same', seed: 3 });
      const xc = eg.rand([2, 5, 5, 2], -1, 1, { seed: 4 });
      expect(Array.from(conv.forward(xc).dataSync())).toEqual(Array.from(F.conv2d(xc, C.binarize(conv.weight, 3), conv.bias, { padding: 'same' }).dataSync()));
      expect(() => conv.forward(eg.rand([1, 5, 5, 3]))).toThrow(eg.ShapeError);
      lin.dispose();
      conv.dispose();
    });
  });
});

describe('BinaryModel', () => {
  const make = () => new nn.Sequential(
    new nn.Conv2d(1, 4, 3, { padding: 'same', seed: 1 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(4, 16, 3, { padding: 'same', seed: 2 }), new nn.BatchNorm2d(16), new nn.ReLU(),
    new nn.Flatten(), new nn.Linear(4 * 4 * 16, 8, { seed: 3 }), new nn.ReLU(), new nn.Linear(8, 3, { seed: 4 }));

  it('packs binary layers to bits (32x smaller) and computes what the training graph computes', async () => {
    const m = make();
    eg.tidy(() => {
      m.stateDict()['4.running_var'].assign(eg.rand([16], 0.5, 2, { seed: 5 }));
      m.stateDict()['4.weight'].assign(eg.rand([16], -1, 1, { seed: 6 })); // negative scales flip signs
    });
    const bm = C.binarizeModel(m);
    expect(bm.layers.map((l) => l.className)).toEqual(['Conv2d', 'ReLU', 'MaxPool2d', 'BinaryConv2d', 'BatchNorm2d', 'ReLU', 'Flatten', 'BinaryLinear', 'ReLU', 'Linear']);
    bm.eval();
    const packed = C.BinaryModel.fromModule(bm, { inputShape: [8, 8, 1] });
    eg.tidy(() => {
      const x = eg.rand([6, 8, 8, 1], 0, 1, { seed: 7 });
      const want = eg.noGrad(() => bm.forward(x)).dataSync();
      const got = packed.predict(x, { batchSize: 4 }).dataSync();
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 4);
    });
    const wb = packed.weightBytes();
    expect(wb.binary).toBe(3 * 3 * 4 * 16 / 8 + 256 * 8 / 8);
    expect(wb.binaryAsFloat32 / wb.binary).toBe(32);
    expect(wb.float).toBe(4 * (9 * 4 + 8 * 3));
    expect(packed.numParameters()).toBe(m.numParameters() - 32); // the folded BatchNorm's scale and shift are gone
    const back = C.BinaryModel.deserialize(packed.serialize());
    eg.tidy(() => {
      const x = eg.rand([3, 8, 8, 1], 0, 1, { seed: 8 });
      expect(Array.from(back.forward(x).dataSync())).toEqual(Array.from(packed.forward(x).dataSync()));
    });
    expect(() => C.BinaryModel.deserialize(eg.encodeSafetensors({}, { format: 'nope' }))).toThrow(eg.FormatError);
    back.dispose();
    packed.dispose();
    bm.dispose();
    m.dispose();
  });

  it('BinaryWeightClip keeps latent weights in [-1, 1] during fit', async () => {
    const m = new nn.Sequential(new C.BinaryLinear(4, 6, { seed: 9 }), new nn.ReLU(), new nn.Linear(6, 2, { seed: 10 }));
    const x = eg.rand([32, 4], -1, 1, { seed: 11 });
    const y = eg.tidy(() => x.sum(1).greater(0).cast('int32'));
    const opt = new eg.optim.SGD(m.parameters(), { lr: 5 });
    m.compile({ optimizer: opt, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
    await m.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, callbacks: [new C.BinaryWeightClip()] });
    const w = (m.layers[0] as eg.compress.BinaryLinear).weight.dataSync();
    expect(Math.max(...Array.from(w).map(Math.abs))).toBeLessThanOrEqual(1);
    m.dispose();
    eg.dispose([x, y]);
  }, 60_000);
});

describe('compressionReport', () => {
  it('reports parameters, sparsity, size, accuracy, latency and ratios', () => {
    const m = new nn.Sequential(new nn.Linear(8, 16, { seed: 1 }), new nn.ReLU(), new nn.Linear(16, 3, { seed: 2 }));
    const x = eg.rand([50, 8], -1, 1, { seed: 3 });
    const y = eg.tidy(() => m.predict(x).argMax(-1));
    const base = C.compressionReport(m, { name: 'base', data: [x, y], latency: { x, reps: 3 } });
    expect(base).toMatchObject({ name: 'base', kind: 'float32', parameters: 8 * 16 + 16 + 16 * 3 + 3, accuracy: 1 });
    expect(base.sparsity).toBeCloseTo(19 / 195, 6); // the zero-initialised biases
    expect(base.bytesOnDisk).toBeGreaterThan(4 * base.parameters);
    expect(base.latencyMs).toBeGreaterThan(0);
    const p = C.magnitudePrune(m, 0.5);
    const pr = C.compressionReport(m, { baseline: base });
    expect(pr.sparsity).toBeCloseTo((88 + 19) / 195, 6);
    expect(pr.sparseBytes!).toBeLessThan(pr.bytesOnDisk);
    const qm = C.quantize(m, x);
    const qr = C.compressionReport(qm, { data: [x, y], baseline: base });
    expect(qr.kind).toBe('int8');
    expect(qr.vsBaseline!.sizeRatio).toBeGreaterThan(1.2); // a tiny model: headers dominate
    expect(qr.vsBaseline!.accuracyDelta).toBeDefined();
    expect(qr.vsBaseline!.speedup).toBeUndefined(); // not timed
    // Timed alternately with the baseline model: the speed-up comes from those two medians.
    const qt = C.compressionReport(qm, { latency: { x, reps: 3, against: m }, baseline: base });
    expect(qt.latencyMs).toBeGreaterThan(0);
    expect(qt.vsBaseline!.speedup).toBeGreaterThan(0);
    const table = C.formatCompressionTable([base, pr, qr]);
    expect(table.split('\n').length).toBe(5);
    expect(table).toContain('| base | float32 |');
    expect(() => C.compressionReport({} as eg.nn.Module)).toThrow(eg.ArgumentError);
    qm.dispose();
    p.dispose();
    m.dispose();
    eg.dispose([x, y]);
  });
});
