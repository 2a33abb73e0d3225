/**
 * The opt-in relaxed-SIMD engine (`init({ relaxed: true })`) against the deterministic default, one
 * engine per process (the SDK loads one build per process): f32 GEMM 1024 and 512, a 3x3
 * convolution forward (the GEMM micro-kernel through implicit im2col), and int8 GEMM 1024 (the
 * int8-gemm problem; its kernels are integer and the same in both builds). Each process times f32
 * and int8 interleaved; compare the `edgegrad-relaxed` rows with the `edgegrad` rows of the same
 * run (issue 19 targets at 1 thread: relaxed f32 GEMM >= 1.3x deterministic, int8 GEMM >= 3x
 * deterministic f32). Runtimes without relaxed SIMD (Node 20) record why the relaxed job could
 * not run.
 */
import * as eg from 'edgegrad';
import { main, randomFloats, type BenchRecord, type Job, type Workload } from '../harness.js';
import { f32AndInt8Gemm, interleaved } from './int8-gemm.js';

const gflops = (flops: number, ms: number) => flops / (ms * 1e6);

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad-relaxed', threads: 1 },
    { engine: 'edgegrad', threads: 2 }, { engine: 'edgegrad-relaxed', threads: 2 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    const relaxed = job.engine === 'edgegrad-relaxed';
    const rec = (size: string, ms: number, flops: number, extra?: BenchRecord['extra'], note?: string) =>
      out.push({ workload: 'relaxed', engine: job.engine, size, threads: job.threads, medianMs: ms, gflops: gflops(flops, ms), extra, note });
    let info: eg.BackendInfo;
    try {
      info = await eg.init({ threads: job.threads, relaxed });
    } catch (e) {
      for (const size of ['gemm 1024', 'int8-gemm 1024']) {
        out.push({ workload: 'relaxed', engine: job.engine, size, threads: job.threads, medianMs: NaN, gflops: null, note: (e as Error).message });
      }
      return out;
    }
    eg.setNumThreads(job.threads);
    const note = info.threads < job.threads ? `only ${info.threads} thread(s) available` : undefined;
    for (const n of [512, 1024]) {
      const [f32, i8] = f32AndInt8Gemm(n);
      rec(`gemm ${n}`, f32, 2 * n ** 3, { dtype: 'float32', relaxed: String(info.relaxed) }, note);
      rec(`int8-gemm ${n}`, i8, 2 * n ** 3, { dtype: 'int8', relaxed: String(info.relaxed), speedupVsF32SameEngine: f32 / i8 }, note);
    }
    // A 3x3 convolution, 'same' padding: x [8, 32, 32, 32], w [3, 3, 32, 64].
    const x = eg.tensor(randomFloats(8 * 32 * 32 * 32, 3), [8, 32, 32, 32]);
    const w = eg.tensor(randomFloats(3 * 3 * 32 * 64, 4), [3, 3, 32, 64]);
    const conv = () => eg.nn.functional.conv2d(x, w, null, { padding: 'same' }).dispose();
    const [convMs] = interleaved(conv, () => {});
    rec('conv3x3 8x32x32x32→64', convMs, 2 * 8 * 32 * 32 * 64 * 9 * 32, { dtype: 'float32', relaxed: String(info.relaxed) }, note);
    eg.dispose([x, w]);
    return out;
  },
};
export default workload;
await main(workload, import.meta.url);
