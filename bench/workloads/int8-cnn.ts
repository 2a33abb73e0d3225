/**
 * int8 CNN inference against edgegrad's own f32 inference of the same model, 1 and 2 threads,
 * timed interleaved in one process.
 *
 * Models (NHWC; the same shapes can be built for peers, e.g. ONNX Runtime's QLinearConv):
 * - `mnist-cnn`: exactly `cnn-infer`'s model and weights — 28x28x1 → conv3x3·16 (same) → ReLU →
 *   maxpool 2 → conv3x3·32 (same) → ReLU → maxpool 2 → dense 10 — at batch 1 and 32.
 * - `digits-cnn`: the main job's architecture — 8x8x1 → conv3x3·32 → BatchNorm → ReLU → maxpool 2
 *   → conv3x3·64 → BatchNorm → ReLU → maxpool 2 → dense 10 (seeded He-normal weights) — at batch 1
 *   and 256. The f32 model runs as trained (BatchNorm in evaluation mode); the int8 model has it
 *   folded into the convolutions, as post-training quantization does.
 * int8: per-channel symmetric weights, per-tensor activations calibrated (percentile) on 256
 * `randomFloats` inputs; the last layer writes float32. Records: size `"<model> b<batch>"` (int8,
 * `extra.speedupVsF32`) and `"<model> b<batch> f32"`.
 *
 * ONNX Runtime Web runs `mnist-cnn` as an operator-level int8 graph (NCHW), 1 and 2 threads:
 * QuantizeLinear → QLinearConv (per-channel int8 weights, uint8 activations with zero point 0, so
 * ReLU is the saturation at 0) → MaxPool (uint8) → QLinearConv → MaxPool → Flatten → QLinearMatMul →
 * DequantizeLinear → Add bias: the same work as edgegrad's int8 model, dequantized at the edges.
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { interleaved } from './int8-gemm.js';
import { loadOrt } from '../lib/peers.js';
import { buildModel, DT } from '../lib/onnx.js';

const { nn } = eg;

function mnistCnn(): eg.nn.Sequential {
  const m = new nn.Sequential(
    new nn.Conv2d(1, 16, 3, { padding: 'same' }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(16, 32, 3, { padding: 'same' }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(7 * 7 * 32, 10),
  ).eval();
  // cnn-infer.ts's weights.
  const w = (n: number, seed: number, s: number) => randomFloats(n, seed).map((v) => v * s);
  const sd = {
    '0.weight': eg.tensor(w(9 * 16, 11, 0.3), [3, 3, 1, 16]), '0.bias': eg.tensor(randomFloats(16, 14)),
    '3.weight': eg.tensor(w(9 * 16 * 32, 12, 0.1), [3, 3, 16, 32]), '3.bias': eg.tensor(randomFloats(32, 15)),
    '7.weight': eg.tensor(w(7 * 7 * 32 * 10, 13, 0.05), [10, 7 * 7 * 32]), '7.bias': eg.tensor(randomFloats(10, 16)),
  };
  m.loadStateDict(sd);
  eg.dispose(sd);
  return m;
}

function digitsCnn(): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false, weightInit: 'heNormal', seed: 2 }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(2 * 2 * 64, 10, { seed: 4 }),
  ).eval();
}

const MODELS: { name: string; make: () => eg.nn.Sequential; input: number[]; batches: number[]; flops: number }[] = [
  { name: 'mnist-cnn', make: mnistCnn, input: [28, 28, 1], batches: [1, 32], flops: 2 * (28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9 + 7 * 7 * 32 * 10) },
  { name: 'digits-cnn', make: digitsCnn, input: [8, 8, 1], batches: [1, 256], flops: 2 * (8 * 8 * 32 * 9 + 4 * 4 * 64 * 32 * 9 + 256 * 10) },
];

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'ort-web', threads: 1 }, { engine: 'ort-web', threads: 2 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    if (job.engine === 'ort-web') return ortInt8Cnn(job.threads);
    const info = await eg.init({ threads: job.threads });
    eg.setNumThreads(Math.min(job.threads, eg.backendInfo().maxThreads));
    const note = info.threads < job.threads ? `only ${info.threads} thread(s) available` : undefined;
    for (const spec of MODELS) {
      const model = spec.make();
      const per = spec.input.reduce((a, b) => a * b, 1);
      const calib = eg.tensor(randomFloats(256 * per, 99).map((v) => (v + 1) / 2), [256, ...spec.input]);
      const qm = eg.compress.quantize(model, calib);
      for (const bs of spec.batches) {
        const x = eg.tensor(randomFloats(bs * per, bs).map((v) => (v + 1) / 2), [bs, ...spec.input]);
        const [f32, i8] = interleaved(
          () => eg.noGrad(() => model.forward(x)).dispose(),
          () => qm.forward(x).dispose(),
          20, 2000);
        const rec = (size: string, ms: number, extra: Record<string, number | string>) => out.push({
          workload: 'int8-cnn', engine: 'edgegrad', size, threads: job.threads, medianMs: ms, gflops: (bs * spec.flops) / (ms * 1e6),
          extra: { samplesPerSec: bs / (ms / 1000), ...extra }, note,
        });
        rec(`${spec.name} b${bs} f32`, f32, { dtype: 'float32' });
        rec(`${spec.name} b${bs}`, i8, { dtype: 'int8', speedupVsF32: f32 / i8 });
        x.dispose();
      }
      qm.dispose();
      calib.dispose();
      model.dispose();
    }
    return out;
  },
};
/** Symmetric per-output-channel int8 weights of an OIHW (or [out, in]) float tensor. */
function perChannel(w: Float32Array, out: number): { q: Int8Array; scale: Float32Array } {
  const per = w.length / out;
  const scale = new Float32Array(out);
  const q = new Int8Array(w.length);
  for (let o = 0; o < out; o++) {
    let m = 0;
    for (let i = 0; i < per; i++) m = Math.max(m, Math.abs(w[o * per + i]));
    scale[o] = (m || 1) / 127;
    for (let i = 0; i < per; i++) q[o * per + i] = Math.round(w[o * per + i] / scale[o]);
  }
  return { q, scale };
}

/** HWIO -> OIHW */
function oihw(w: Float32Array, ci: number, co: number): Float32Array {
  const o = new Float32Array(w.length);
  for (let k = 0; k < 9; k++) for (let i = 0; i < ci; i++) for (let j = 0; j < co; j++) o[(j * ci + i) * 9 + k] = w[(k * ci + i) * co + j];
  return o;
}

async function ortInt8Cnn(threads: number): Promise<BenchRecord[]> {
  const ort = await loadOrt(threads);
  const spec = MODELS[0];
  const f = (n: number, seed: number, s: number) => randomFloats(n, seed).map((v) => v * s);
  const c1 = perChannel(oihw(f(9 * 16, 11, 0.3), 1, 16), 16);
  const c2 = perChannel(oihw(f(9 * 16 * 32, 12, 0.1), 16, 32), 32);
  // QLinearMatMul's B is [in, out]: transpose the [out, in] dense weights.
  const w3 = f(7 * 7 * 32 * 10, 13, 0.05);
  const w3t = new Float32Array(w3.length);
  for (let o = 0; o < 10; o++) for (let i = 0; i < 1568; i++) w3t[i * 10 + o] = w3[o * 1568 + i];
  const d3 = perChannel(w3, 10);
  const q3 = new Int8Array(w3.length);
  for (let o = 0; o < 10; o++) for (let i = 0; i < 1568; i++) q3[i * 10 + o] = d3.q[o * 1568 + i];
  const [xs, s1, s2, s3] = [1 / 127, 0.02, 0.05, 0.1];
  const bias = (b: Float32Array, inScale: number, ws: Float32Array) => Int32Array.from(b, (v, i) => Math.round(v / (inScale * ws[i])));
  const scalar = (name: string, v: number) => ({ name, dims: [], dataType: DT.FLOAT, data: Float32Array.of(v) });
  const u8 = (name: string, v: number) => ({ name, dims: [], dataType: DT.UINT8, data: Uint8Array.of(v) });
  const model = buildModel({
    nodes: [
      { op: 'QuantizeLinear', inputs: ['X', 'xs', 'xz'], outputs: ['xq'] },
      { op: 'QLinearConv', inputs: ['xq', 'xs', 'xz', 'W1', 'W1s', 'W1z', 's1', 'z0', 'B1'], outputs: ['c1'], attrs: [{ name: 'pads', ints: [1, 1, 1, 1] }] },
      { op: 'MaxPool', inputs: ['c1'], outputs: ['p1'], attrs: [{ name: 'kernel_shape', ints: [2, 2] }, { name: 'strides', ints: [2, 2] }] },
      { op: 'QLinearConv', inputs: ['p1', 's1', 'z0', 'W2', 'W2s', 'W2z', 's2', 'z0', 'B2'], outputs: ['c2'], attrs: [{ name: 'pads', ints: [1, 1, 1, 1] }] },
      { op: 'MaxPool', inputs: ['c2'], outputs: ['p2'], attrs: [{ name: 'kernel_shape', ints: [2, 2] }, { name: 'strides', ints: [2, 2] }] },
      { op: 'Flatten', inputs: ['p2'], outputs: ['fl'] },
      { op: 'QLinearMatMul', inputs: ['fl', 's2', 'z0', 'W3', 'W3s', 'W3z', 's3', 'xz'], outputs: ['yq'] },
      { op: 'DequantizeLinear', inputs: ['yq', 's3', 'xz'], outputs: ['yd'] },
      { op: 'Add', inputs: ['yd', 'B3'], outputs: ['Y'] },
    ],
    inputs: [{ name: 'X', elemType: DT.FLOAT, shape: ['N', 1, 28, 28] }],
    outputs: [{ name: 'Y', elemType: DT.FLOAT, shape: ['N', 10] }],
    initializers: [
      scalar('xs', xs), u8('xz', 128), scalar('s1', s1), scalar('s2', s2), scalar('s3', s3), u8('z0', 0),
      { name: 'W1', dims: [16, 1, 3, 3], dataType: DT.INT8, data: c1.q }, { name: 'W1s', dims: [16], dataType: DT.FLOAT, data: c1.scale },
      { name: 'W1z', dims: [16], dataType: DT.INT8, data: new Int8Array(16) }, { name: 'B1', dims: [16], dataType: DT.INT32, data: bias(randomFloats(16, 14), xs, c1.scale) },
      { name: 'W2', dims: [32, 16, 3, 3], dataType: DT.INT8, data: c2.q }, { name: 'W2s', dims: [32], dataType: DT.FLOAT, data: c2.scale },
      { name: 'W2z', dims: [32], dataType: DT.INT8, data: new Int8Array(32) }, { name: 'B2', dims: [32], dataType: DT.INT32, data: bias(randomFloats(32, 15), s1, c2.scale) },
      { name: 'W3', dims: [1568, 10], dataType: DT.INT8, data: q3 }, { name: 'W3s', dims: [10], dataType: DT.FLOAT, data: d3.scale },
      { name: 'W3z', dims: [10], dataType: DT.INT8, data: new Int8Array(10) }, { name: 'B3', dims: [10], dataType: DT.FLOAT, data: randomFloats(10, 16) },
    ],
  });
  const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const out: BenchRecord[] = [];
  for (const bs of spec.batches) {
    const feed = { X: new ort.Tensor('float32', randomFloats(bs * 784, bs).map((v) => (v + 1) / 2), [bs, 1, 28, 28]) };
    const ms = await measure(async () => { await s.run(feed); }, 20);
    out.push({
      workload: 'int8-cnn', engine: 'ort-web', size: `${spec.name} b${bs}`, threads, medianMs: ms, gflops: (bs * spec.flops) / (ms * 1e6),
      extra: { samplesPerSec: bs / (ms / 1000), dtype: 'int8' }, note: 'QLinearConv/QLinearMatMul graph, NCHW',
    });
  }
  await s.release();
  return out;
}

export default workload;
await main(workload, import.meta.url);
