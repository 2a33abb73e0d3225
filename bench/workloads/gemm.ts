/** f32 GEMM C = A·B, square sizes 256/512/1024: edgegrad against tfjs (wasm, cpu) and ONNX Runtime Web. */
import * as eg from 'edgegrad';
import { main, measure, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { loadOrt, loadTfjs } from '../lib/peers.js';
import { buildModel, DT } from '../lib/onnx.js';

const SIZES = [256, 512, 1024];
const gflops = (n: number, ms: number) => (2 * n ** 3) / (ms * 1e6);

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'tfjs-wasm', threads: 1 }, { engine: 'tfjs-wasm', threads: 2 },
    { engine: 'tfjs-cpu', threads: 1 },
    { engine: 'ort-web', threads: 1 }, { engine: 'ort-web', threads: 2 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const rec = (n: number, ms: number, note?: string) => out.push({ workload: 'gemm', engine: job.engine, size: n, threads: job.threads, medianMs: ms, gflops: gflops(n, ms), note });
    if (job.engine === 'edgegrad') {
      const info = await eg.init({ threads: job.threads });
      eg.setNumThreads(job.threads);
      for (const n of SIZES) {
        const a = eg.tensor(randomFloats(n * n, 1), [n, n]);
        const b = eg.tensor(randomFloats(n * n, 2), [n, n]);
        rec(n, await measure(() => a.matmul(b).dispose()), info.threads < job.threads ? `only ${info.threads} thread(s) available` : undefined);
      }
    } else if (job.engine.startsWith('tfjs')) {
      const { tf, note } = await loadTfjs(job.engine === 'tfjs-wasm' ? 'wasm' : 'cpu', job.threads);
      if (job.engine === 'tfjs-wasm' && job.threads > 1 && note) {
        for (const n of SIZES) out.push({ workload: 'gemm', engine: job.engine, size: n, threads: job.threads, medianMs: NaN, gflops: null, note });
        return out;
      }
      for (const n of job.engine === 'tfjs-cpu' ? SIZES.slice(0, 2) : SIZES) {
        const a = tf.tensor2d(randomFloats(n * n, 1), [n, n]);
        const b = tf.tensor2d(randomFloats(n * n, 2), [n, n]);
        rec(n, await measure(() => tf.matMul(a, b).dispose()), job.engine === 'tfjs-wasm' ? note : undefined);
      }
    } else {
      const ort = await loadOrt(job.threads);
      for (const n of SIZES) {
        const model = buildModel({
          nodes: [{ op: 'MatMul', inputs: ['A', 'B'], outputs: ['C'] }],
          inputs: [{ name: 'A', elemType: DT.FLOAT, shape: [n, n] }],
          outputs: [{ name: 'C', elemType: DT.FLOAT, shape: [n, n] }],
          initializers: [{ name: 'B', dims: [n, n], dataType: DT.FLOAT, data: randomFloats(n * n, 2) }],
        });
        const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
        const feed = { A: new ort.Tensor('float32', randomFloats(n * n, 1), [n, n]) };
        rec(n, await measure(async () => { await s.run(feed); }));
        await s.release();
      }
    }
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
