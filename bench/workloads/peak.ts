/**
 * "peak": this core's simd128 ceiling in the runtime under test (bench/lib/peak.ts): an f32x4
 * mul+add loop (GFLOP/s), an i32x4.dot_i16x8_s + add loop and, with relaxed SIMD, two relaxed-dot
 * loops (G int ops/s). bench/run.ts reports
 * every other GFLOP/s figure of the same runtime as a share of these. `medianMs` is the time per
 * 10⁹ operations, so the fastest-round rule of bench/run.ts keeps the best measurement.
 */
import { main, type BenchRecord, type Job, type Workload } from '../harness.js';
import { measurePeak } from '../lib/peak.js';

const workload: Workload = {
  jobs: () => [{ engine: 'simd128', threads: 1 }],
  async run(job: Job): Promise<BenchRecord[]> {
    const p = await measurePeak();
    const rec = (size: string, g: number, note: string): BenchRecord => ({ workload: 'peak', engine: job.engine, size, threads: 1, medianMs: 1000 / g, gflops: g, note });
    return [
      rec('f32x4 mul+add', p.f32, '12 register-resident chains; median ms = ms per 10⁹ flops'),
      rec('i32x4.dot_i16x8_s+add', p.dot, '8 register-resident chains; 16 int ops per dot'),
      ...(p.relaxedDot ? [rec('i32x4.relaxed_dot_i8x16_i7x16_add_s', p.relaxedDot, '12 register-resident chains; 32 int ops per dot (relaxed SIMD)')] : []),
      ...(p.relaxedDotSplit ? [rec('i16x8.relaxed_dot_i8x16_i7x16_s+i32x4.dot_i16x8_s+add', p.relaxedDotSplit, '10 register-resident chains; 32 int ops per step (relaxed SIMD, the kernel\'s spelling without AVX-VNNI)')] : []),
    ];
  },
};
export default workload;
await main(workload, import.meta.url);
