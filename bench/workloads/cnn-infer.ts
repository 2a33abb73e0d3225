/**
 * Inference of a small CNN (28x28x1 → conv3x3·16 → ReLU → maxpool → conv3x3·32 → ReLU → maxpool →
 * dense 10) at batch 1 and 32: edgegrad against ONNX Runtime Web (NCHW) and tfjs-wasm.
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadOrt, loadTfjs } from '../lib/peers.js';
import { buildModel, DT } from '../lib/onnx.js';

const BATCHES = [1, 32];
const perSampleFlops = 2 * (28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9 + 7 * 7 * 32 * 10);
const w1 = randomFloats(9 * 16, 11).map((v) => v * 0.3);
const w2 = randomFloats(9 * 16 * 32, 12).map((v) => v * 0.1);
const w3 = randomFloats(7 * 7 * 32 * 10, 13).map((v) => v * 0.05);
const b1 = randomFloats(16, 14);
const b2 = randomFloats(32, 15);
const b3 = randomFloats(10, 16);

/** HWIO -> OIHW */
function oihw(w: Float32Array, ci: number, co: number): Float32Array {
  const o = new Float32Array(w.length);
  for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) for (let i = 0; i < ci; i++) for (let j = 0; j < co; j++) o[((j * ci + i) * 3 + ky) * 3 + kx] = w[((ky * 3 + kx) * ci + i) * co + j];
  return o;
}

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'ort-web', threads: 1 }, { engine: 'ort-web', threads: 2 },
    { engine: 'tfjs-wasm', threads: 1 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const rec = (bs: number, ms: number, note?: string, layers: Record<string, number> = {}) => out.push({ workload: 'cnn-infer', engine: job.engine, size: `batch ${bs}`, threads: job.threads, medianMs: ms, gflops: (bs * perSampleFlops) / (ms * 1e6), extra: { samplesPerSec: bs / (ms / 1000), ...layers }, note });
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      const { nn } = eg;
      const model = new nn.Sequential(
        new nn.Conv2d(1, 16, 3, { padding: 'same', activation: 'relu' }), new nn.MaxPool2d(2),
        new nn.Conv2d(16, 32, 3, { padding: 'same', activation: 'relu' }), new nn.MaxPool2d(2),
        new nn.Flatten(), new nn.Linear(7 * 7 * 32, 10),
      ).eval();
      model.loadStateDict({ '0.weight': eg.tensor(w1, [3, 3, 1, 16]), '0.bias': eg.tensor(b1), '2.weight': eg.tensor(w2, [3, 3, 16, 32]), '2.bias': eg.tensor(b2),
        '5.weight': eg.tensor(w3, [10, 7 * 7 * 32]), '5.bias': eg.tensor(b3) });
      for (const bs of BATCHES) {
        const x = eg.tensor(randomFloats(bs * 784, bs), [bs, 28, 28, 1]);
        const ms = await measure(() => eg.noGrad(() => model.forward(x)).dispose(), 20);
        // Per-layer µs (Sequential runs each Conv2d(relu) + MaxPool2d(2) pair as one fused op).
        const [c1, , c2, , , fc] = model.layers as [eg.nn.Conv2d, unknown, eg.nn.Conv2d, unknown, unknown, eg.nn.Linear];
        const F = nn.functional;
        const h1 = eg.noGrad(() => F.conv2dReluMaxPool2d(x, c1.weight, c1.bias, { padding: 'same' }));
        const h2 = eg.noGrad(() => F.conv2dReluMaxPool2d(h1, c2.weight, c2.bias, { padding: 'same' }));
        const flat = h2.reshape([bs, 1568]);
        const us = async (f: () => eg.Tensor) => +(1000 * await measure(() => eg.noGrad(f).dispose(), 20)).toFixed(1);
        const layers = {
          conv1PoolUs: await us(() => F.conv2dReluMaxPool2d(x, c1.weight, c1.bias, { padding: 'same' })),
          conv2PoolUs: await us(() => F.conv2dReluMaxPool2d(h1, c2.weight, c2.bias, { padding: 'same' })),
          linearUs: await us(() => fc.forward(flat)),
        };
        eg.dispose([h1, h2, flat, x]);
        rec(bs, ms, undefined, layers);
      }
    } else if (job.engine === 'ort-web') {
      const ort = await loadOrt(job.threads);
      const model = buildModel({
        nodes: [
          { op: 'Conv', inputs: ['X', 'W1', 'B1'], outputs: ['c1'], attrs: [{ name: 'pads', ints: [1, 1, 1, 1] }] },
          { op: 'Relu', inputs: ['c1'], outputs: ['r1'] },
          { op: 'MaxPool', inputs: ['r1'], outputs: ['p1'], attrs: [{ name: 'kernel_shape', ints: [2, 2] }, { name: 'strides', ints: [2, 2] }] },
          { op: 'Conv', inputs: ['p1', 'W2', 'B2'], outputs: ['c2'], attrs: [{ name: 'pads', ints: [1, 1, 1, 1] }] },
          { op: 'Relu', inputs: ['c2'], outputs: ['r2'] },
          { op: 'MaxPool', inputs: ['r2'], outputs: ['p2'], attrs: [{ name: 'kernel_shape', ints: [2, 2] }, { name: 'strides', ints: [2, 2] }] },
          { op: 'Flatten', inputs: ['p2'], outputs: ['f'] },
          { op: 'Gemm', inputs: ['f', 'W3', 'B3'], outputs: ['Y'], attrs: [{ name: 'transB', i: 1 }] },
        ],
        inputs: [{ name: 'X', elemType: DT.FLOAT, shape: ['N', 1, 28, 28] }],
        outputs: [{ name: 'Y', elemType: DT.FLOAT, shape: ['N', 10] }],
        initializers: [
          { name: 'W1', dims: [16, 1, 3, 3], dataType: DT.FLOAT, data: oihw(w1, 1, 16) }, { name: 'B1', dims: [16], dataType: DT.FLOAT, data: b1 },
          { name: 'W2', dims: [32, 16, 3, 3], dataType: DT.FLOAT, data: oihw(w2, 16, 32) }, { name: 'B2', dims: [32], dataType: DT.FLOAT, data: b2 },
          { name: 'W3', dims: [10, 1568], dataType: DT.FLOAT, data: w3 }, { name: 'B3', dims: [10], dataType: DT.FLOAT, data: b3 },
        ],
      });
      const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      for (const bs of BATCHES) {
        const feed = { X: new ort.Tensor('float32', randomFloats(bs * 784, bs), [bs, 1, 28, 28]) };
        rec(bs, await measure(async () => { await s.run(feed); }, 20), 'NCHW');
      }
    } else {
      const { tf } = await loadTfjs('wasm');
      const [k1, k2, k3] = [tf.tensor4d(w1, [3, 3, 1, 16]), tf.tensor4d(w2, [3, 3, 16, 32]), tf.tensor2d(w3, [10, 1568]).transpose()];
      const [c1, c2, c3] = [tf.tensor1d(b1), tf.tensor1d(b2), tf.tensor1d(b3)];
      for (const bs of BATCHES) {
        const x = tf.tensor4d(randomFloats(bs * 784, bs), [bs, 28, 28, 1]);
        rec(bs, await measure(() => tf.tidy(() => {
          let h = tf.maxPool(tf.relu(tf.conv2d(x, k1, 1, 'same').add(c1)) as import('@tensorflow/tfjs').Tensor4D, 2, 2, 'valid');
          h = tf.maxPool(tf.relu(tf.conv2d(h, k2, 1, 'same').add(c2)) as import('@tensorflow/tfjs').Tensor4D, 2, 2, 'valid');
          return tf.matMul(h.reshape([bs, 1568]), k3).add(c3);
        }).dispose(), 20));
      }
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
