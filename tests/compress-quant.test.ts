/**
 * Post-training int8 quantization at the model level: BatchNorm folding and ReLU fusion, int8
 * inference tracking the float model (Sequential and nn.Graph with residual add and concat),
 * calibration methods, save/load (int8 tensors, scale/zero-point metadata, bit-identical reload,
 * corrupt files), size on disk, accuracy on digits, typed errors and no leaked tensors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { runFloat } from '../sdk/compress/graph.js';
import { isBrowser, setup } from './helpers.js';

const C = eg.compress;
const { nn } = eg;

beforeAll(async () => {
  await setup();
});

/** A CNN with non-trivial batch-norm statistics. */
function cnn(seed = 1): eg.nn.Sequential {
  const m = new nn.Sequential(
    new nn.Conv2d(3, 8, 3, { padding: 'same', seed }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(8, 16, 3, { padding: 'same', bias: false, seed: seed + 1 }), new nn.BatchNorm2d(16), new nn.ReLU(), new nn.AvgPool2d(2),
    new nn.Flatten(), new nn.Linear(2 * 2 * 16, 12, { seed: seed + 2 }), new nn.ReLU(), new nn.Dropout(0.5, 1), new nn.Linear(12, 5, { seed: seed + 3 }),
  );
  const sd = m.stateDict();
  eg.tidy(() => {
    sd['1.running_mean'].assign(eg.rand([8], -0.3, 0.3, { seed: seed + 10 }));
    sd['1.running_var'].assign(eg.rand([8], 0.3, 2, { seed: seed + 11 }));
    sd['1.weight'].assign(eg.rand([8], 0.5, 1.5, { seed: seed + 12 }));
    sd['5.running_mean'].assign(eg.rand([16], -0.3, 0.3, { seed: seed + 13 }));
    sd['5.running_var'].assign(eg.rand([16], 0.3, 2, { seed: seed + 14 }));
    sd['5.bias'].assign(eg.rand([16], -0.2, 0.2, { seed: seed + 15 }));
  });
  return m.eval();
}

/** max |a - b| relative to the range of b, and the argmax agreement. */
function compare(a: eg.Tensor, b: eg.Tensor): { rel: number; agree: number } {
  const av = a.dataSync();
  const bv = b.dataSync();
  let lo = Infinity;
  let hi = -Infinity;
  let err = 0;
  for (let i = 0; i < bv.length; i++) {
    lo = Math.min(lo, bv[i]);
    hi = Math.max(hi, bv[i]);
    err = Math.max(err, Math.abs(av[i] - bv[i]));
  }
  const agree = eg.tidy(() => a.argMax(-1).cast('float32').equal(b.argMax(-1).cast('float32')).mean().item());
  return { rel: err / (hi - lo), agree };
}

describe('post-training quantization', () => {
  it('folds BatchNorm and fuses ReLU in the traced graph without changing the function', () => {
    const m = cnn();
    eg.tidy(() => {
      const g = C.traceModel(m, [8, 8, 3]);
      expect(g.nodes.map((n) => n.op)).toEqual(['conv', 'maxpool', 'conv', 'avgpool', 'flatten', 'linear', 'linear']);
      expect(g.nodes.filter((n) => 'relu' in n && n.relu).length).toBe(3);
      const x = eg.rand([4, 8, 8, 3], 0, 1, { seed: 3 });
      const { rel } = compare(eg.noGrad(() => m.forward(x)), eg.noGrad(() => runFloat(g, x)));
      expect(rel).toBeLessThan(1e-5);
      C.disposeGraph(g);
    });
    m.dispose();
  });

  it('int8 inference tracks the float model', () => {
    const m = cnn();
    const qm = eg.tidy(() => C.quantize(m, eg.rand([128, 8, 8, 3], 0, 1, { seed: 4 })));
    eg.tidy(() => {
      const x = eg.rand([64, 8, 8, 3], 0, 1, { seed: 5 });
      const yq = qm.predict(x, { batchSize: 20 });
      expect(yq.dtype).toBe('float32');
      expect(yq.shape).toEqual([64, 5]);
      const { rel, agree } = compare(yq, eg.noGrad(() => m.forward(x)));
      expect(rel).toBeLessThan(0.05);
      expect(agree).toBeGreaterThanOrEqual(0.9);
      expect(qm.summary().map((l) => l.output === 'float32')).toEqual([false, false, false, true]);
      expect(qm.summary()[0].relu).toBe(true);
    });
    qm.dispose();
    m.dispose();
  });

  it('quantizes residual adds and channel concatenation (nn.Graph)', () => {
    const g = nn.graph;
    const x = g.input('x');
    const c1 = g.call(new nn.Conv2d(2, 6, 3, { padding: 'same', seed: 7 }), x, 'c1');
    const r1 = g.call(new nn.ReLU(), c1, 'r1');
    const c2 = g.call(new nn.Conv2d(6, 6, 3, { padding: 'same', seed: 8 }), r1, 'c2');
    const res = g.call(new nn.ReLU(), g.add(c2, r1), 'r2');
    const side = g.call(new nn.Conv2d(2, 3, 1, { seed: 9 }), x, 'side');
    const pooled = g.call(new nn.GlobalAvgPool2d(), g.concat([res, side]), 'gap');
    const model = new nn.Graph({ inputs: x, outputs: g.call(new nn.Linear(9, 4, { seed: 10 }), pooled, 'fc') });
    const qm = eg.tidy(() => C.quantize(model, eg.rand([64, 6, 6, 2], -1, 1, { seed: 11 }), { method: 'minmax' }));
    expect(qm.graph.nodes.map((n) => n.op)).toEqual(['conv', 'conv', 'add', 'conv', 'concat', 'gap', 'linear']);
    eg.tidy(() => {
      const xs = eg.rand([32, 6, 6, 2], -1, 1, { seed: 12 });
      const { rel } = compare(qm.forward(xs), eg.noGrad(() => model.forward(xs)));
      expect(rel).toBeLessThan(0.05);
    });
    qm.dispose();
    model.dispose();
  });

  it('dequantizes at the edge when the model does not end with a layer', () => {
    const m = new nn.Sequential(new nn.Conv2d(3, 5, 3, { seed: 21 }), new nn.ReLU(), new nn.GlobalAvgPool2d());
    const qm = eg.tidy(() => C.quantize(m, eg.rand([32, 6, 6, 3], 0, 1, { seed: 22 }), { method: 'minmax' }));
    expect(qm.graph.nodes.map((n) => n.op)).toEqual(['conv', 'gap']);
    eg.tidy(() => {
      const x = eg.rand([8, 6, 6, 3], 0, 1, { seed: 23 });
      const y = qm.forward(x);
      expect(y.shape).toEqual([8, 5]);
      const want = eg.noGrad(() => m.forward(x)).dataSync();
      const q = qm.qOf(qm.graph.output);
      y.dataSync().forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1.01 * q.scale));
    });
    qm.dispose();
    m.dispose();
  });

  it('calibrates with min-max, percentile and MSE ranges', () => {
    const m = cnn(2);
    eg.tidy(() => {
      const data = eg.rand([96, 8, 8, 3], 0, 1, { seed: 13 });
      const g = C.traceModel(m, [8, 8, 3]);
      const mm = C.calibrateRanges(g, data, { method: 'minmax', batchSize: 40 });
      const pc = C.calibrateRanges(g, data, { method: 'percentile', percentile: 99 });
      const ms = C.calibrateRanges(g, data, { method: 'mse' });
      expect([...mm.keys()]).toEqual([0, 1, 3, 6]);
      for (const [v, [lo, hi]] of mm) {
        for (const r of [pc.get(v)!, ms.get(v)!]) {
          expect(r[0]).toBeGreaterThanOrEqual(lo - 1e-6);
          expect(r[1]).toBeLessThanOrEqual(hi + 1e-6);
        }
      }
      expect(mm.get(0)![0]).toBeGreaterThanOrEqual(0);
      expect(() => C.calibrateRanges(g, data, { method: 'entropy' as 'mse' })).toThrow(eg.ArgumentError);
      C.disposeGraph(g);
    });
    m.dispose();
  });

  it('saves int8 tensors with scale/zero-point metadata and reloads bit-identically', async () => {
    const m = cnn(3);
    const qm = eg.tidy(() => C.quantize(m, eg.rand([64, 8, 8, 3], 0, 1, { seed: 14 })));
    const bytes = qm.serialize();
    const { tensors, metadata } = eg.decodeSafetensors(bytes);
    expect(metadata.format).toBe('edgegrad-quantized');
    const graph = JSON.parse(metadata.graph) as eg.compress.QuantizedGraphJson;
    expect(Object.keys(graph.qparams).length).toBe(4); // input, three hidden layers (the last layer writes float32)
    expect(tensors['0.weight'].dtype).toBe('int8');
    expect(tensors['0.weight'].shape).toEqual([3, 3, 3, 8]);
    expect(tensors['0.weight_scale'].dtype).toBe('float32');
    expect(tensors['4.bias'].shape).toEqual([16]); // the folded BatchNorm gave this conv a bias
    Object.values(tensors).forEach((t) => t.dispose());
    const back = await C.loadQuantizedModel(bytes);
    eg.tidy(() => {
      const x = eg.rand([10, 8, 8, 3], 0, 1, { seed: 15 });
      expect(Array.from(back.forward(x).dataSync())).toEqual(Array.from(qm.forward(x).dataSync()));
    });
    back.dispose();
    // Corrupt files.
    const bad = eg.encodeSafetensors({}, { format: 'something-else' });
    await expect(C.loadQuantizedModel(bad)).rejects.toThrow(eg.FormatError);
    const t = qm.tensors();
    const missing = eg.encodeSafetensors({ '0.weight': t['0.weight'] }, { format: 'edgegrad-quantized', graph: JSON.stringify(qm.graph) });
    expect(() => C.QuantizedModel.deserialize(missing)).toThrow(/missing/);
    const notJson = eg.encodeSafetensors({}, { format: 'edgegrad-quantized', graph: '{nope' });
    expect(() => C.QuantizedModel.deserialize(notJson)).toThrow(eg.FormatError);
    qm.dispose();
    m.dispose();
  });

  it.skipIf(isBrowser)('saves to and loads from a directory (Node)', async () => {
    const { mkdtemp, rm, stat } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'eg-q-'));
    const m = cnn(4);
    const qm = eg.tidy(() => C.quantize(m, eg.rand([32, 8, 8, 3], 0, 1, { seed: 16 })));
    await C.saveQuantizedModel(qm, dir);
    expect((await stat(join(dir, 'model.int8.safetensors'))).size).toBe(qm.byteSize());
    const back = await C.loadQuantizedModel(dir);
    eg.tidy(() => {
      const x = eg.rand([3, 8, 8, 3], 0, 1, { seed: 17 });
      expect(Array.from(back.forward(x).dataSync())).toEqual(Array.from(qm.forward(x).dataSync()));
    });
    back.dispose();
    qm.dispose();
    m.dispose();
    await rm(dir, { recursive: true });
  });

  it('trained digits CNN: int8 loses at most 0.5 points and its file is at least 3.5x smaller', async () => {
    eg.manualSeed(1);
    const { images, labels, n } = await eg.loadDigits();
    const [xTrain, yTrain, xTest, yTest] = eg.tidy(() => eg.data.trainTestSplit(
      [eg.tensor(images, [n, 8, 8, 1]).div(16), eg.tensor(labels, [n], 'int32')], { testSize: 0.2, seed: 7 }));
    const model = new nn.Sequential(
      new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: 2 }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
      new nn.Flatten(), new nn.Linear(256, 10, { seed: 4 }));
    const optimizer = new eg.optim.Adam(model.trainableParameters(), { lr: 3e-3 });
    model.compile({ optimizer, loss: (l, y) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true }) });
    await model.fit(xTrain, yTrain, { epochs: 4, batchSize: 32, seed: 1, verbose: 0 });
    const qm = C.quantize(model, xTrain);
    const float = C.compressionReport(model, { data: [xTest, yTest] });
    const int8 = C.compressionReport(qm, { data: [xTest, yTest], baseline: float });
    expect(float.accuracy!).toBeGreaterThan(0.95);
    expect(float.accuracy! - int8.accuracy!).toBeLessThanOrEqual(0.005);
    expect(int8.vsBaseline!.sizeRatio).toBeGreaterThanOrEqual(3.5);
    qm.dispose();
    optimizer.dispose();
    model.dispose();
    eg.dispose([xTrain, yTrain, xTest, yTest]);
  }, 120_000);

  it('refuses unsupported models and bad inputs with typed errors, and leaks nothing', () => {
    const before = eg.memory().numTensors;
    const ln = new nn.Sequential(new nn.Linear(4, 4), new nn.LayerNorm(4));
    expect(() => eg.tidy(() => C.quantize(ln, eg.rand([8, 4])))).toThrow(/LayerNorm/);
    ln.dispose();
    const lone = new nn.Sequential(new nn.ReLU(), new nn.BatchNorm1d(4), new nn.Linear(4, 2));
    expect(() => eg.tidy(() => C.quantize(lone, eg.rand([8, 4])))).toThrow(eg.ArgumentError);
    lone.dispose();
    const m = cnn(5);
    const qm = eg.tidy(() => C.quantize(m, eg.rand([16, 8, 8, 3], 0, 1, { seed: 18 })));
    eg.tidy(() => {
      expect(() => qm.forward(eg.rand([2, 8, 8, 2]))).toThrow(eg.ShapeError);
      expect(() => qm.forward(eg.zeros([2, 8, 8, 3], 'int32'))).toThrow(eg.ArgumentError);
      expect(() => C.quantize(m, eg.rand([4, 9, 9, 3]), { inputShape: [8, 8] })).toThrow(eg.ShapeError);
    });
    qm.dispose();
    expect(() => eg.tidy(() => qm.forward(eg.rand([1, 8, 8, 3])))).toThrow(/disposed/);
    m.dispose();
    expect(eg.memory().numTensors).toBe(before);
  });
});
