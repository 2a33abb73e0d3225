/**
 * Quantization-aware training: fake quantization values and straight-through gradients, the
 * QATModel (folded, trainable, observed ranges), and its export to the same int8 QuantizedModel.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

const C = eg.compress;
const { nn } = eg;

beforeAll(async () => {
  await setup();
});

describe('fake quantization', () => {
  it('rounds to the int8 grid with a straight-through gradient (zero where clipped)', () => {
    eg.tidy(() => {
      const x = eg.tensor([0.04, 0.06, -0.3, 20, -20]).requiresGrad_();
      const y = C.fakeQuant(x, { scale: 0.1, zeroPoint: 0 });
      const v = y.dataSync();
      expect(v[0]).toBe(0);
      expect(v[1]).toBeCloseTo(0.1, 6);
      expect(v[2]).toBeCloseTo(-0.3, 6);
      expect(v[3]).toBeCloseTo(12.7, 5);
      expect(v[4]).toBeCloseTo(-12.8, 5);
      y.sum().backward();
      expect(Array.from(x.grad!.dataSync())).toEqual([1, 1, 1, 0, 0]);
    });
  });

  it('per-channel weight fake quantization equals quantize-then-dequantize, gradient passes through', () => {
    eg.tidy(() => {
      const w = eg.randn([3, 3, 2, 4], 0, 0.3, { seed: 1 }).requiresGrad_();
      const f = C.fakeQuantPerChannel(w, 3);
      const [q, s] = C.quantizePerChannel(w, 3);
      const want = q.cast('float32').mul(s);
      expect(Array.from(f.dataSync())).toEqual(Array.from(want.dataSync()));
      f.mul(2).sum().backward();
      expect(Array.from(w.grad!.dataSync()).every((g) => g === 2)).toBe(true);
    });
  });
});

describe('QATModel', () => {
  const make = () => new nn.Sequential(
    new nn.Conv2d(1, 6, 3, { padding: 'same', seed: 1 }), new nn.BatchNorm2d(6), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(4 * 4 * 6, 3, { seed: 2 }));

  it('trains with fake quantization and converts to an int8 model computing the same', async () => {
    const model = make();
    const x = eg.rand([96, 8, 8, 1], 0, 1, { seed: 3 });
    const y = eg.tidy(() => x.mean([1, 2, 3]).sub(0.45).mul(30).clamp(0, 2.5).cast('int32'));
    const qat = C.prepareQAT(model, { calibrationData: x });
    expect(qat.parameters().length).toBe(4); // folded conv weight + bias, linear weight + bias
    const before = qat.ranges();
    expect(before.size).toBe(2); // the input and the conv output (the last layer writes float32)
    // Close to the float model before training.
    eg.tidy(() => {
      const a = eg.noGrad(() => qat.eval().forward(x)).dataSync();
      const b = eg.noGrad(() => model.eval().forward(x)).dataSync();
      let err = 0;
      for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
      expect(err).toBeLessThan(0.1);
    });
    qat.train();
    const optimizer = new eg.optim.Adam(qat.parameters(), { lr: 3e-3 });
    qat.compile({ optimizer, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
    const h = await qat.fit(x, y, { epochs: 6, batchSize: 16, seed: 1, verbose: 0 });
    expect(h.history.loss[5]).toBeLessThan(h.history.loss[0]);
    const after = qat.ranges();
    expect(after.get(1)).not.toEqual(before.get(1)); // observers moved
    qat.observersEnabled = false;
    const frozen = qat.ranges();
    eg.tidy(() => qat.forward(x));
    expect(qat.ranges()).toEqual(frozen);
    qat.eval();
    const qm = C.convertQAT(qat);
    eg.tidy(() => {
      const a = qm.forward(x).dataSync();
      const b = eg.noGrad(() => qat.forward(x)).dataSync();
      let err = 0;
      let scale = 0;
      for (let i = 0; i < a.length; i++) {
        err = Math.max(err, Math.abs(a[i] - b[i]));
        scale = Math.max(scale, Math.abs(b[i]));
      }
      expect(err).toBeLessThan(0.02 * scale + 1e-3);
    });
    qm.dispose();
    optimizer.dispose();
    qat.dispose();
    model.dispose();
    eg.dispose([x, y]);
  }, 60_000);

  it('needs an input shape and refuses non-QAT models', () => {
    const model = make();
    expect(() => C.prepareQAT(model)).toThrow(eg.ArgumentError);
    expect(() => C.convertQAT(model as unknown as eg.compress.QATModel)).toThrow(/QATModel/);
    const qat = C.prepareQAT(model, { inputShape: [8, 8, 1] });
    expect(() => qat.toQuantized()).toThrow(/never observed/);
    qat.dispose();
    model.dispose();
  });
});
