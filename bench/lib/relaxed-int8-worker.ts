/**
 * A worker thread that holds its own engine (the relaxed one, `init({ relaxed: true })`, 1 thread) and
 * runs, on request, the f32 GEMM `randomFloats(n*n, 1) · randomFloats(n*n, 2)` or the int8 GEMM
 * problem of bench/workloads/int8-gemm.ts on the same floats, so that bench/workloads/relaxed.ts can
 * time it alternately with the deterministic engine's f32 GEMM in the main thread of the same
 * process. Messages: `{ n, dtype }` prepares that problem and warms it up, answers `{ ready }` or
 * `{ error }`; `{ run: true }` runs it once and answers `{ ms }` (the main thread waits meanwhile,
 * so process CPU time measures this thread).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as eg from 'edgegrad';
import { randomFloats, WARMUP_MS } from '../harness.js';
import { int8GemmProblem } from './int8-problem.js';

/** The f32 product of the same floats as the int8 problem, as a prepared closure. */
function f32GemmProblem(n: number): { run: () => void; free: () => void } {
  const a = eg.tensor(randomFloats(n * n, 1), [n, n]);
  const b = eg.tensor(randomFloats(n * n, 2), [n, n]);
  return { run: () => a.matmul(b).dispose(), free: () => eg.dispose([a, b]) };
}

const clock = (): number => {
  if (!(workerData as { cpu: boolean }).cpu) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const port = parentPort!;
let run: (() => void) | null = null;
let free: (() => void) | null = null;
port.on('message', async (m: { n?: number; dtype?: 'float32' | 'int8'; run?: boolean; close?: boolean }) => {
  try {
    if (m.n !== undefined) {
      if (!run) {
        const info = await eg.init({ relaxed: true, threads: 1 });
        if (!info.relaxed) throw new Error('the relaxed engine did not load');
      }
      free?.();
      ({ run, free } = (m.dtype === 'float32' ? f32GemmProblem : int8GemmProblem)(m.n));
      const w0 = performance.now();
      for (let i = 0; i < 3 || performance.now() - w0 < WARMUP_MS; i++) run();
      port.postMessage({ ready: true });
    } else if (m.run) {
      const t = clock();
      run!();
      port.postMessage({ ms: clock() - t });
    } else if (m.close) {
      free?.();
      port.close();
    }
  } catch (e) {
    port.postMessage({ error: (e as Error).message });
  }
});
