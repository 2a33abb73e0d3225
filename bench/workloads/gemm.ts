/** f32 GEMM C = A·B for square sizes, 1 and 2 threads. */
import * as eg from 'edgegrad';
import { adaptiveReps, emit, randomFloats, timeIt, type BenchRecord } from '../harness.js';

export async function run(sizes = [256, 512, 1024], threadCounts = [1, 2]): Promise<BenchRecord[]> {
  const info = await eg.init({ threads: Math.max(...threadCounts) });
  const records: BenchRecord[] = [];
  for (const n of sizes) {
    const a = eg.tensor(randomFloats(n * n, 1), [n, n]);
    const b = eg.tensor(randomFloats(n * n, 2), [n, n]);
    for (const threads of threadCounts) {
      if (threads > info.maxThreads) continue;
      eg.setNumThreads(threads);
      const step = () => a.matmul(b).dispose();
      const ms = await timeIt(step, await adaptiveReps(step));
      records.push({ workload: 'gemm', engine: 'edgegrad', size: n, threads, medianMs: ms, gflops: (2 * n ** 3) / (ms * 1e6) });
    }
    a.dispose();
    b.dispose();
  }
  return records;
}

if (import.meta.url === `file://${process.argv[1]}`) emit(await run());
