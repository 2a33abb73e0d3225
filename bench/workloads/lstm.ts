/**
 * "lstm-step": one training step of an LSTM sequence model — LSTM(64 → 128) over 32 time steps,
 * batch 32, final state → Dense(10), softmax cross-entropy, Adam — and the LSTM forward alone.
 * edgegrad (one engine call per layer-direction for the whole sequence, backward through time in
 * the engine) against tfjs-layers `trainOnBatch` on the wasm and cpu backends.
 */
import type * as TF from '@tensorflow/tfjs';
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadTfjs } from '../lib/peers.js';

const [B, T, I, H, C] = [32, 32, 64, 128, 10];
const SIZE = `B${B} T${T} I${I} H${H}`;
// multiply-adds of the LSTM: input projection + recurrent product, 4 gates; backward ~2x forward
const FWD = 2 * B * T * 4 * H * (I + H);
const FLOPS = 3 * FWD + 3 * 2 * B * H * C;
const labels = Int32Array.from(randomFloats(B, 9), (v) => Math.floor((v + 1) * 5) % C);

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'tfjs-wasm', threads: 1 }, { engine: 'tfjs-cpu', threads: 1 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const xv = randomFloats(B * T * I, 1);
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      const { nn } = eg;
      const lstm = new nn.LSTM(I, H, { returnSequences: false, seed: 1 });
      const head = new nn.Linear(H, C, { seed: 2 });
      const opt = new eg.optim.Adam([...lstm.parameters(), ...head.parameters()], { lr: 1e-3 });
      const x = eg.tensor(xv, [B, T, I]);
      const y = eg.tensor(labels, [B], 'int32');
      const step = () => eg.tidy(() => {
        opt.zeroGrad();
        eg.losses.sparseCategoricalCrossEntropy(head.forward(lstm.forward(x)), y, { fromLogits: true }).backward();
        opt.step();
      });
      const ms = await measure(step, 20);
      const fwdMs = await measure(() => eg.tidy(() => eg.noGrad(() => lstm.forward(x).dispose())), 20);
      for (let i = 0; i < 10; i++) step();
      const m0 = eg.memory();
      for (let i = 0; i < 50; i++) step();
      const m1 = eg.memory();
      return [{
        workload: 'lstm-step', engine: 'edgegrad', size: SIZE, threads: job.threads, medianMs: ms, gflops: FLOPS / (ms * 1e6),
        extra: { forwardMs: fwdMs, forwardGflops: FWD / (fwdMs * 1e6), usPerTimeStep: (ms * 1000) / T, wasmGrowthOver50Steps: m1.wasmBytes - m0.wasmBytes },
      }];
    }
    const { tf, note } = await loadTfjs(job.engine === 'tfjs-wasm' ? 'wasm' : 'cpu');
    const lstm = tf.layers.lstm({ units: H, inputShape: [T, I], recurrentActivation: 'sigmoid' });
    const model = tf.sequential({ layers: [lstm, tf.layers.dense({ units: C, activation: 'softmax' })] });
    model.compile({ optimizer: tf.train.adam(1e-3), loss: 'sparseCategoricalCrossentropy' });
    const x = tf.tensor3d(xv, [B, T, I]);
    const y = tf.tensor1d(Float32Array.from(labels));
    const reps = job.engine === 'tfjs-cpu' ? 10 : 20;
    const ms = await measure(async () => { await model.trainOnBatch(x, y); }, reps);
    const fwdMs = await measure(() => tf.tidy(() => { (lstm.apply(x) as TF.Tensor).dataSync(); }), reps);
    return [{
      workload: 'lstm-step', engine: job.engine, size: SIZE, threads: job.threads, medianMs: ms, gflops: FLOPS / (ms * 1e6),
      extra: { forwardMs: fwdMs, forwardGflops: FWD / (fwdMs * 1e6), usPerTimeStep: (ms * 1000) / T }, note,
    }];
  },
};
export default workload;
await main(workload, import.meta.url);
