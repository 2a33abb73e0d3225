/**
 * One training step of an MLP 784-256-128-10 (batch 128, Adam, softmax cross-entropy): edgegrad
 * against tfjs-layers `trainOnBatch` on the wasm and cpu backends. Also measures edgegrad's wasm
 * memory over 1,000 steps after warm-up (it must not grow) and its peak.
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadTfjs } from '../lib/peers.js';

const B = 128;
const SIZE = '784-256-128-10 b128';
const FLOPS = 3 * 2 * B * (784 * 256 + 256 * 128 + 128 * 10); // forward + backward (2x) multiply-adds
const labels = Int32Array.from(randomFloats(B, 9), (v) => Math.floor((v + 1) * 5) % 10);

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'tfjs-wasm', threads: 1 }, { engine: 'tfjs-cpu', threads: 1 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const xv = randomFloats(B * 784, 1);
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      const { nn } = eg;
      const model = new nn.Sequential(new nn.Linear(784, 256, { seed: 1 }), new nn.ReLU(), new nn.Linear(256, 128, { seed: 2 }), new nn.ReLU(), new nn.Linear(128, 10, { seed: 3 }));
      const opt = new eg.optim.Adam(model.parameters(), { lr: 1e-3 });
      const x = eg.tensor(xv, [B, 784]);
      const y = eg.tensor(labels, [B], 'int32');
      const step = () => eg.tidy(() => {
        opt.zeroGrad();
        eg.losses.sparseCategoricalCrossEntropy(model.forward(x), y, { fromLogits: true }).backward();
        opt.step();
      });
      const ms = await measure(step, 20);
      for (let i = 0; i < 20; i++) step();
      const m0 = eg.memory();
      for (let i = 0; i < 1000; i++) step();
      const m1 = eg.memory();
      return [{
        workload: 'mlp-train-step', engine: 'edgegrad', size: SIZE, threads: job.threads, medianMs: ms, gflops: FLOPS / (ms * 1e6),
        extra: { samplesPerSec: B / (ms / 1000), wasmGrowthOver1000Steps: m1.wasmBytes - m0.wasmBytes, liveTensorGrowth: m1.numTensors - m0.numTensors, peakWasmMB: m1.wasmBytes / 2 ** 20 },
      }];
    }
    const { tf } = await loadTfjs(job.engine === 'tfjs-wasm' ? 'wasm' : 'cpu');
    const model = tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu' }),
      tf.layers.dense({ units: 128, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ] });
    model.compile({ optimizer: tf.train.adam(1e-3), loss: 'sparseCategoricalCrossentropy' });
    const x = tf.tensor2d(xv, [B, 784]);
    const y = tf.tensor1d(Float32Array.from(labels));
    const ms = await measure(async () => { await model.trainOnBatch(x, y); }, job.engine === 'tfjs-cpu' ? 10 : 20);
    return [{ workload: 'mlp-train-step', engine: job.engine, size: SIZE, threads: job.threads, medianMs: ms, gflops: FLOPS / (ms * 1e6), extra: { samplesPerSec: B / (ms / 1000) } }];
  },
};
export default workload;
await main(workload, import.meta.url);
