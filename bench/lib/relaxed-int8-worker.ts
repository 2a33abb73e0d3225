/**
 * A worker thread that holds its own engine (the relaxed one, `init({ relaxed: true })`, 1 thread) and
 * runs the int8 GEMM problem of bench/workloads/int8-gemm.ts on request, so that bench/workloads/
 * relaxed.ts can time it alternately with the deterministic engine's f32 GEMM in the main thread of
 * the same process. Messages: `{ n }` prepares size n and warms it up, answers `{ ready }` or
 * `{ error }`; `{ run: true }` runs it once and answers `{ ms }` (the main thread waits meanwhile,
 * so process CPU time measures this thread).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as eg from 'edgegrad';
import { int8GemmProblem } from './int8-problem.js';

const clock = (): number => {
  if (!(workerData as { cpu: boolean }).cpu) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const port = parentPort!;
let run: (() => void) | null = null;
let free: (() => void) | null = null;
port.on('message', async (m: { n?: number; run?: boolean; close?: boolean }) => {
  try {
    if (m.n !== undefined) {
      if (!run) {
        const info = await eg.init({ relaxed: true, threads: 1 });
        if (!info.relaxed) throw new Error('the relaxed engine did not load');
      }
      free?.();
      ({ run, free } = int8GemmProblem(m.n));
      const w0 = performance.now();
      for (let i = 0; i < 3 || performance.now() - w0 < 300; i++) run();
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
