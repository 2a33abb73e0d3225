/**
 * The opt-in relaxed-SIMD engine (`init({ relaxed: true })`) against the deterministic default, one
 * engine per process (the SDK loads one build per process): f32 GEMM 1024 and 512, a 3x3
 * convolution forward (the GEMM micro-kernel through implicit im2col) in f32 and int8, and int8 GEMM 512 and 1024
 * (the int8-gemm problem; the relaxed engine runs it on the relaxed dot with 7-bit activations).
 * Each process times f32 and int8 interleaved (wall time: `interleaved` of int8-gemm.ts); compare the `edgegrad-relaxed` rows with the `edgegrad` rows of the same
 * run (issue 19 targets at 1 thread: relaxed f32 GEMM >= 1.3x deterministic, int8 GEMM >= 3x
 * deterministic f32). Runtimes without relaxed SIMD (Node 20) record why the relaxed job could
 * not run.
 *
 * Both targets compare two engines, so the deterministic 1-thread job (in Node) also times the
 * relaxed engine's f32 and int8 GEMMs in a worker thread with its own engine
 * (bench/lib/relaxed-int8-worker.ts), alternately with its own f32 GEMM, one run each in turn while
 * the other thread waits: rows `gemm n vs f32` and `int8-gemm n vs f32` (engine
 * `edgegrad-relaxed`), `extra.speedupVsDeterministicF32`.
 */
import * as eg from 'edgegrad';
import { main, now, randomFloats, WARMUP_MS, type BenchRecord, type Job, type Workload } from '../harness.js';
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
    if (!relaxed && job.threads === 1 && typeof process !== 'undefined' && process.versions?.node) {
      out.push(...(await relaxedVsDeterministicF32([512, 1024])));
    }
    // A 3x3 convolution, 'same' padding: x [8, 32, 32, 32], w [3, 3, 32, 64].
    const x = eg.tensor(randomFloats(8 * 32 * 32 * 32, 3), [8, 32, 32, 32]);
    const w = eg.tensor(randomFloats(3 * 3 * 32 * 64, 4), [3, 3, 32, 64]);
    const conv = () => eg.nn.functional.conv2d(x, w, null, { padding: 'same' }).dispose();
    // The same convolution in int8 (input per tensor, weights per output channel, int8 output + ReLU).
    const Q = eg.compress.int8;
    const xq = { scale: 1 / 127, zeroPoint: 0 };
    const oq = { scale: 0.05, zeroPoint: -128 };
    const xi = Q.quantizeTensor(x, xq);
    const [wq, ws] = Q.quantizePerChannel(w, 3);
    const packed = Q.packWeights(wq, 1);
    const c = Q.layerConstants(wq, ws, null, 1, xq, oq);
    const geo: eg.compress.int8.ConvGeometry = { kernel: [3, 3, 32], stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
    const qconv = () => Q.qconv2d(xi, xq.zeroPoint, packed, geo, { c, out: oq, relu: true }).dispose();
    const [convMs, qconvMs] = interleaved(conv, qconv);
    const convFlops = 2 * 8 * 32 * 32 * 64 * 9 * 32;
    rec('conv3x3 8x32x32x32→64', convMs, convFlops, { dtype: 'float32', relaxed: String(info.relaxed) }, note);
    rec('int8-conv3x3 8x32x32x32→64', qconvMs, convFlops, { dtype: 'int8', relaxed: String(info.relaxed), speedupVsF32SameEngine: convMs / qconvMs }, note);
    eg.dispose([x, w, xi, wq, ws, packed, c.offsets, c.mult, c.scales].filter((t): t is eg.Tensor => !!t));
    return out;
  },
};
/** Message from the relaxed int8 worker. */
interface WorkerReply {
  ready?: boolean;
  ms?: number;
  error?: string;
}

/**
 * The relaxed engine's f32 and int8 GEMMs (worker thread) against this thread's deterministic f32
 * GEMM of the same size, timed alternately after warm-up (medians; the clock is the harness's, CPU time with
 * `--cpu-time`, which counts only the running thread because the other one waits).
 */
async function relaxedVsDeterministicF32(sizes: number[]): Promise<BenchRecord[]> {
  const problems = sizes.flatMap((n) => (['float32', 'int8'] as const).map((dtype) => ({ n, dtype })));
  const skipped = (why: string): BenchRecord[] => problems.map(({ n, dtype }) =>
    ({ workload: 'relaxed', engine: 'edgegrad-relaxed', size: `${dtype === 'int8' ? 'int8-gemm' : 'gemm'} ${n} vs f32`, threads: 1, medianMs: NaN, gflops: null, note: why }));
  // The SDK's own probe (sdk/runtime.ts): where it fails there is no relaxed engine to time.
  const { relaxedSimdSupported } = await import('../../sdk/runtime.js');
  if (!relaxedSimdSupported()) return skipped(`Node.js ${process.versions.node} has no WebAssembly relaxed SIMD`);
  // Imported here: the Chromium bench page loads this module too (and never calls this).
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(new URL('../lib/relaxed-int8-worker.ts', import.meta.url), { workerData: { cpu: process.env.EDGEGRAD_BENCH_CPU_TIME === '1' } });
  const replies: WorkerReply[] = [];
  let wake: (() => void) | null = null;
  worker.on('message', (m: WorkerReply) => { replies.push(m); wake?.(); });
  worker.on('error', (e) => { replies.push({ error: e.message }); wake?.(); });
  const ask = async (m: object): Promise<WorkerReply> => {
    worker.postMessage(m);
    while (replies.length === 0) await new Promise<void>((r) => { wake = r; });
    const r = replies.shift()!;
    if (r.error) throw new Error(r.error);
    return r;
  };
  const out: BenchRecord[] = [];
  const rec = (dtype: 'float32' | 'int8', n: number, ms: number, extra: BenchRecord['extra'], note?: string) =>
    out.push({ workload: 'relaxed', engine: 'edgegrad-relaxed', size: `${dtype === 'int8' ? 'int8-gemm' : 'gemm'} ${n} vs f32`, threads: 1, medianMs: ms, gflops: Number.isFinite(ms) ? gflops(2 * n ** 3, ms) : null, extra, note });
  try {
    for (const { n, dtype } of problems) {
      await ask({ n, dtype });
      const a = eg.tensor(randomFloats(n * n, 1), [n, n]);
      const b = eg.tensor(randomFloats(n * n, 2), [n, n]);
      const f32 = () => a.matmul(b).dispose();
      const w0 = performance.now();
      for (let i = 0; i < 3 || performance.now() - w0 < WARMUP_MS; i++) f32();
      const tf: number[] = [];
      const ti: number[] = [];
      for (let i = 0; i < (n >= 1024 ? 15 : 40); i++) {
        const t = now();
        f32();
        tf.push(now() - t);
        ti.push((await ask({ run: true })).ms!);
      }
      eg.dispose([a, b]);
      const [f, q] = [median(tf), median(ti)];
      rec(dtype, n, q, { dtype, relaxed: 'true', deterministicF32Ms: f, speedupVsDeterministicF32: f / q }, `relaxed ${dtype === 'int8' ? 'int8' : 'f32'} in a worker thread, deterministic f32 in the main thread, alternately`);
    }
  } catch (e) {
    return skipped((e as Error).message);
  } finally {
    await worker.terminate();
  }
  return out;
}

function median(x: number[]): number {
  const s = x.slice().sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export default workload;
await main(workload, import.meta.url);
