/**
 * "transformer-block": forward + backward of one GPT block (pre-LN causal self-attention, 4
 * heads, GELU MLP 4x) on [16, 64, 128] activations — the block of examples/char-gpt.ts — and the
 * forward alone. edgegrad's `GPTBlock` (batched matmuls reading kᵀ in place, one fused masked
 * softmax) against the same block written in tfjs ops (tf.grads) on the wasm and cpu backends.
 */
import type * as TF from '@tensorflow/tfjs';
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadTfjs } from '../lib/peers.js';

const [B, T, E, NH] = [16, 64, 128, 4];
const D = E / NH;
const SIZE = `B${B} T${T} E${E} heads${NH}`;
// forward multiply-adds: qkv (3E²) + out proj (E²) + MLP (8E²) per token, plus QKᵀ and PV
const FWD = 2 * B * T * 12 * E * E + 2 * 2 * B * T * T * E;
const FLOPS = 3 * FWD;

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'tfjs-wasm', threads: 1 }, { engine: 'tfjs-cpu', threads: 1 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const xv = randomFloats(B * T * E, 1);
    if (job.engine === 'edgegrad') {
      await eg.init({ threads: job.threads });
      eg.setNumThreads(Math.min(job.threads, eg.backendInfo().maxThreads));
      const block = new eg.nn.GPTBlock(E, NH, { seed: 1 });
      const x = eg.tensor(xv, [B, T, E]).requiresGrad_();
      const w = eg.tensor(randomFloats(B * T * E, 2), [B, T, E]);
      const step = () => eg.tidy(() => {
        for (const p of block.parameters()) p.zeroGrad();
        x.zeroGrad();
        block.forward(x).mul(w).sum().backward();
      });
      const ms = await measure(step, 20);
      const fwdMs = await measure(() => eg.tidy(() => eg.noGrad(() => block.forward(x).dispose())), 20);
      return [{
        workload: 'transformer-block', engine: 'edgegrad', size: SIZE, threads: job.threads, medianMs: ms, gflops: FLOPS / (ms * 1e6),
        extra: { forwardMs: fwdMs, forwardGflops: FWD / (fwdMs * 1e6), tokensPerSec: (B * T) / (ms / 1000) },
      }];
    }
    const { tf, note } = await loadTfjs(job.engine === 'tfjs-wasm' ? 'wasm' : 'cpu');
    const r = (shape: number[], seed: number, s = 0.05) => tf.tensor(randomFloats(shape.reduce((a, b) => a * b, 1), seed), shape).mul(s);
    const p = {
      g1: tf.ones([E]), b1: tf.zeros([E]), g2: tf.ones([E]), b2: tf.zeros([E]),
      wqkv: r([E, 3 * E], 3), bqkv: tf.zeros([3 * E]), wo: r([E, E], 4), bo: tf.zeros([E]),
      w1: r([E, 4 * E], 5), bf1: tf.zeros([4 * E]), w2: r([4 * E, E], 6), bf2: tf.zeros([E]),
    };
    const names = Object.keys(p) as (keyof typeof p)[];
    const mask = tf.tensor2d(Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)), [T, T]);
    const x = tf.tensor3d(xv, [B, T, E]);
    const wOut = tf.tensor3d(randomFloats(B * T * E, 2), [B, T, E]);
    const ln = (v: TF.Tensor, g: TF.Tensor, b: TF.Tensor) => {
      const { mean, variance } = tf.moments(v, -1, true);
      return v.sub(mean).div(variance.add(1e-5).sqrt()).mul(g).add(b);
    };
    const gelu = (h: TF.Tensor) => h.mul(0.5).mul(tf.tanh(h.add(h.pow(3).mul(0.044715)).mul(0.7978845608)).add(1));
    const forward = (xx: TF.Tensor, q: Record<string, TF.Tensor>) => {
      const a = ln(xx, q.g1, q.b1).reshape([B * T, E]);
      const qkv = a.matMul(q.wqkv).add(q.bqkv).reshape([B, T, 3, NH, D]).transpose([2, 0, 3, 1, 4]);
      const [qq, kk, vv] = tf.unstack(qkv);
      const att = tf.softmax(tf.matMul(qq, kk, false, true).mul(1 / Math.sqrt(D)).add(mask));
      const o = tf.matMul(att, vv).transpose([0, 2, 1, 3]).reshape([B * T, E]);
      const x1 = xx.add(o.matMul(q.wo).add(q.bo).reshape([B, T, E]));
      const c = ln(x1, q.g2, q.b2).reshape([B * T, E]);
      return x1.add(gelu(c.matMul(q.w1).add(q.bf1)).matMul(q.w2).add(q.bf2).reshape([B, T, E]));
    };
    const vars = [x, ...names.map((n) => p[n])];
    const f = (...ts: TF.Tensor[]) => forward(ts[0], Object.fromEntries(names.map((n, i) => [n, ts[i + 1]]))).mul(wOut).sum();
    const grad = tf.grads(f);
    const reps = job.engine === 'tfjs-cpu' ? 10 : 20;
    const ms = await measure(() => tf.tidy(() => { grad(vars).forEach((g) => g.dataSync()); }), reps);
    const fwdMs = await measure(() => tf.tidy(() => { forward(x, p).dataSync(); }), reps);
    return [{
      workload: 'transformer-block', engine: job.engine, size: SIZE, threads: job.threads, medianMs: ms, gflops: FLOPS / (ms * 1e6),
      extra: { forwardMs: fwdMs, forwardGflops: FWD / (fwdMs * 1e6), tokensPerSec: (B * T) / (ms / 1000) }, note: [note, 'block in tfjs ops, GELU tanh form'].filter(Boolean).join('; '),
    }];
  },
};
export default workload;
await main(workload, import.meta.url);
