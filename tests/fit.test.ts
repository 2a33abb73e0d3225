/** Keras-style training on Modules: compile/fit/evaluate/predict, callbacks, Dataset, data utilities. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;

/** Two Gaussian blobs per class in 2-D: an easy 3-class problem. */
function blobs(n: number, seed: number): [eg.Tensor, eg.Tensor] {
  return eg.tidy(() => {
    const y = eg.randint([n], 0, 3, { seed });
    const centers = eg.tensor([[2, 0], [-2, 2], [0, -2]]);
    const x = centers.indexSelect(0, y).add(eg.randn([n, 2], 0, 0.5, { seed: seed + 1 }));
    return [x, y];
  });
}

const model = () => new nn.Sequential(new nn.Linear(2, 16, { seed: 1 }), new nn.ReLU(), new nn.Linear(16, 3, { seed: 2 }));
const ce = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

describe('fit / evaluate / predict', () => {
  it('trains, validates, and reports history; memory does not grow', async () => {
    const [x, y] = blobs(300, 1);
    const m = model();
    m.compile({ optimizer: new eg.optim.Adam(m.parameters(), { lr: 0.05 }), loss: ce, metrics: ['accuracy'] });
    const before = eg.memory().numTensors;
    const h = await m.fit(x, y, { epochs: 8, batchSize: 32, validationSplit: 0.2, verbose: 0 });
    expect(eg.memory().numTensors).toBe(before + 12); // Adam's 2 moments and the .grad of each of the 4 parameters
    expect(h.epoch).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(Object.keys(h.history).sort()).toEqual(['accuracy', 'loss', 'val_accuracy', 'val_loss']);
    expect(h.history.loss[7]).toBeLessThan(h.history.loss[0]);
    expect(h.history.val_accuracy[7]).toBeGreaterThan(0.9);
    const ev = await m.evaluate(x, y, { batchSize: 64 });
    expect(ev.accuracy).toBeGreaterThan(0.9);
    const pred = m.predict(x, { batchSize: 50 });
    expect(pred.shape).toEqual([300, 3]);
    expect(m.training).toBe(true);
  });
  it('is reproducible for a seed', async () => {
    const [x, y] = blobs(120, 2);
    const runOnce = async () => {
      const m = model();
      m.compile({ optimizer: new eg.optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 }), loss: ce });
      const h = await m.fit(x, y, { epochs: 3, batchSize: 16, seed: 5, verbose: 0 });
      return h.history.loss;
    };
    expect(await runOnce()).toEqual(await runOnce());
  });
  it('trainStep replaces the step: standardStep gives the default bits; a custom step sees every batch in order', async () => {
    const [x, y] = blobs(100, 5);
    const run = async (trainStep?: eg.train.TrainStep) => {
      const m = model();
      m.compile({ optimizer: new eg.optim.SGD(m.parameters(), { lr: 0.1 }), loss: ce });
      const h = await m.fit(x, y, { epochs: 2, batchSize: 32, seed: 4, verbose: 0, trainStep });
      const w = Array.from(m.parameters()[0].dataSync());
      m.dispose();
      return { h, w };
    };
    const a = await run();
    const b = await run(eg.train.standardStep);
    expect(b.w).toEqual(a.w);
    expect(b.h.history.loss).toEqual(a.h.history.loss);
    const seen: [number, number, number][] = [];
    const c = await run((s) => {
      seen.push([s.epoch, s.step, s.x.shape[0]]);
      return { loss: eg.scalar(s.step), pred: s.model.forward(s.x) }; // trains nothing
    });
    expect(seen).toEqual([[0, 0, 32], [0, 1, 32], [0, 2, 32], [0, 3, 4], [1, 4, 32], [1, 5, 32], [1, 6, 32], [1, 7, 4]]);
    expect(c.w).toEqual((await run((s) => ({ loss: eg.scalar(0), pred: s.model.forward(s.x) }))).w);
    expect(c.w).not.toEqual(a.w);
    await expect(run(42 as unknown as eg.train.TrainStep)).rejects.toThrow(eg.ArgumentError);
    eg.dispose([x, y]);
  });

  it('callbacks: early stopping restores the best weights, checkpoints and LR schedule run', async () => {
    const [x, y] = blobs(200, 3);
    const m = model();
    const opt = new eg.optim.SGD(m.parameters(), { lr: 0.2 });
    m.compile({ optimizer: opt, loss: ce, metrics: ['accuracy'] });
    const es = new eg.train.EarlyStopping({ monitor: 'loss', patience: 0, minDelta: 10, restoreBestWeights: true });
    const saved: number[] = [];
    const ck = new eg.train.ModelCheckpoint({ onSave: (_a, epoch) => { saved.push(epoch); }, monitor: 'loss', saveBestOnly: true });
    const sched = new eg.train.LearningRateScheduler(new eg.optim.StepLR(opt, 1, 0.5));
    const batches: number[] = [];
    const spy = new eg.train.LambdaCallback({ onBatchEnd: (b) => { batches.push(b); } });
    const h = await m.fit(x, y, { epochs: 10, batchSize: 50, callbacks: [es, ck, sched, spy], verbose: 0 });
    expect(h.epoch).toEqual([0, 1]); // minDelta 10 can never be met: stops after patience 0
    expect(es.bestEpoch).toBe(0);
    expect(h.history.loss[1]).toBeLessThan(h.history.loss[0]);
    expect(saved).toEqual([0, 1]); // saveBestOnly: both epochs improved the loss
    expect(h.history.lr).toEqual([0.1, 0.05]);
    expect(batches).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
  });
  it('trains from a streaming Dataset and clips gradients', async () => {
    const [x, y] = blobs(160, 4);
    const ds = eg.data.Dataset.fromGenerator(async function* (epoch) {
      for (let s = 0; s < 160; s += 40) {
        const idx = Int32Array.from({ length: 40 }, (_, i) => (s + i + epoch * 7) % 160);
        const [bx, by] = eg.data.takeRows([x, y], idx);
        yield { x: bx, y: by };
      }
    }, 4);
    const m = model();
    m.compile({ optimizer: new eg.optim.Adam(m.parameters(), { lr: 0.05 }), loss: ce, metrics: ['accuracy'], clipGradNorm: 1 });
    const h = await m.fit(ds, { epochs: 6, verbose: 0 });
    expect(h.history.accuracy[5]).toBeGreaterThan(0.85);
  });
  it('reports misuse clearly', async () => {
    const m = model();
    await expect(m.fit(eg.zeros([4, 2]), eg.zeros([4], 'int32'))).rejects.toThrow(/compile/);
    m.compile({ optimizer: new eg.optim.SGD(m.parameters()), loss: ce });
    await expect(m.fit(eg.zeros([4, 2]), eg.zeros([5], 'int32'), { verbose: 0 })).rejects.toThrow(eg.ShapeError);
    await expect(m.fit(eg.zeros([4, 2]), eg.zeros([4], 'int32'), { epochs: 0 })).rejects.toThrow(eg.ArgumentError);
    expect(() => m.compile({ optimizer: new eg.optim.SGD(m.parameters()), loss: 'nope' as 'mse' })).toThrow(/unknown loss/);
  });
});

describe('data utilities', () => {
  it('oneHot, trainTestSplit, Standardizer, minMaxScale, Dataset batches', async () => {
    expect(eg.data.oneHot(eg.tensor([2, 0], undefined, 'int32'), 3).arraySync()).toEqual([[0, 0, 1], [1, 0, 0]]);
    const x = eg.arange(20).reshape([10, 2]);
    const y = eg.arange(10, undefined, 1, 'int32');
    const [xtr, ytr, xte, yte] = eg.data.trainTestSplit([x, y], { testSize: 0.3, seed: 1 });
    expect(xtr.shape).toEqual([7, 2]);
    expect(xte.shape).toEqual([3, 2]);
    const all = [...ytr.dataSync(), ...yte.dataSync()].sort((a, b) => a - b);
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(xte.slice([0, 0], [1, 1]).dataSync())[0]).toBe(yte.dataSync()[0] * 2); // rows stay aligned
    const s = new eg.data.Standardizer().fit(x);
    const z = s.transform(x);
    expect(z.mean(0).abs().max().item()).toBeLessThan(1e-5);
    expect(z.square().mean(0).arraySync()).toEqual([expect.closeTo(1, 4), expect.closeTo(1, 4)]);
    expect(eg.data.minMaxScale(x).max().item()).toBe(1);
    const ds = eg.data.Dataset.fromTensors(x, y, { batchSize: 4, shuffle: true, seed: 3 });
    const sizes: number[] = [];
    const seen: number[] = [];
    for await (const b of ds.batches(0)) {
      sizes.push(b.x.shape[0]);
      seen.push(...b.y!.dataSync());
      b.x.dispose();
      b.y!.dispose();
    }
    expect(sizes).toEqual([4, 4, 2]);
    expect(seen.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => eg.data.trainTestSplit([x, eg.zeros([3])])).toThrow(eg.ShapeError);
  });
  it('loads the bundled digits', async () => {
    const d = await eg.loadDigits();
    expect(d.n).toBe(1797);
    expect(d.images.length).toBe(1797 * 64);
    expect(Math.max(...d.images)).toBe(16);
    const counts = new Array(10).fill(0);
    d.labels.forEach((l) => counts[l]++);
    expect(counts).toEqual([178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
  });
});
