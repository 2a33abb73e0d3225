/**
 * "transformer-infer": inference of one Transformer encoder layer (post-LN, 4 heads, d 128, MLP
 * 512, GELU) at batch 1 — the shape of the text and explainability examples' forward passes — on
 * sequences of 16 and 64 tokens: edgegrad's `nn.TransformerEncoderLayer` against ONNX Runtime Web
 * running the same layer exported by `eg.onnx.exportModel` (the same graph and weights).
 */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadOrt } from '../lib/peers.js';

const [E, NH, FF] = [128, 4, 512];
const LENGTHS = [16, 64];
// multiply-adds per token: qkv (3E²) + out proj (E²) + MLP (2·E·FF), plus QKᵀ and PV (2·T·E)
const flops = (t: number) => 2 * t * (4 * E * E + 2 * E * FF) + 2 * 2 * t * t * E;

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'ort-web', threads: 1 }, { engine: 'ort-web', threads: 2 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const rec = (t: number, ms: number, note?: string) => out.push({ workload: 'transformer-infer', engine: job.engine, size: `batch 1 T${t}`, threads: job.threads, medianMs: ms, gflops: flops(t) / (ms * 1e6), extra: { tokensPerSec: t / (ms / 1000) }, note });
    // Both engines get the same weights: the layer is built (seeded) by edgegrad in every job.
    await eg.init({ threads: job.threads });
    eg.setNumThreads(Math.min(job.threads, eg.backendInfo().maxThreads));
    const layer = new eg.nn.TransformerEncoderLayer(E, NH, { dimFeedforward: FF, activation: 'gelu', seed: 7 }).eval();
    try {
      for (const t of LENGTHS) {
        const xv = randomFloats(t * E, t);
        if (job.engine === 'edgegrad') {
          const x = eg.tensor(xv, [1, t, E]);
          rec(t, await measure(() => eg.noGrad(() => layer.forward(x)).dispose(), 20));
          x.dispose();
        } else {
          const ort = await loadOrt(job.threads);
          const bytes = eg.onnx.exportModel(layer, { inputShapes: [[1, t, E]], names: { input: 'x', output: 'y' }, dynamicBatch: false });
          const s = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
          const feed = { x: new ort.Tensor('float32', xv, [1, t, E]) };
          rec(t, await measure(async () => { await s.run(feed); }, 20), 'graph from eg.onnx.exportModel');
          await s.release();
        }
      }
    } finally {
      layer.dispose();
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
