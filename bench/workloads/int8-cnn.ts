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
 */
import * as eg from 'edgegrad';
import { main, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { interleaved } from './int8-gemm.js';

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
  jobs: () => [{ engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 }],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const info = await eg.init({ threads: job.threads });
    eg.setNumThreads(job.threads);
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
export default workload;
await main(workload, import.meta.url);
