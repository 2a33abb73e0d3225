/**
 * int8 GEMM against edgegrad's own f32 GEMM, square sizes 256/512/1024, 1 and 2 threads, timed
 * interleaved in one process (so the ratio holds while the f32 kernels change).
 *
 * The int8 problem (for peers, e.g. ONNX Runtime's QLinearMatMul or MatMulInteger): A `[n, n]`
 * int8 activations (per tensor: scale 1/127, zero point 0), B `[n, n]` int8 weights (symmetric
 * per output column, packed once as inference engines do), int32 accumulation, int8 output
 * requantized per column (scale 0.05, zero point 0). A and B are `randomFloats(n*n, 1)` and
 * `randomFloats(n*n, 2)` quantized. ONNX Runtime Web runs the same problem as one `QLinearMatMul`
 * (A uint8 with zero point 128 — its fast path, B an int8 initializer with per-column scales, uint8 output), 1 and 2 threads. Records: size `n` (int8: `extra.dtype = 'int8'`,
 * `extra.speedupVsF32`) and size `"n f32"` (the f32 matmul of the same floats). The GFLOP/s
 * column of int8 rows counts 2·n³ integer operations.
 */
import * as eg from 'edgegrad';
import { main, measure, now, randomFloats, WARMUP_MS, type BenchRecord, type Job, type Workload } from '../harness.js';
import { int8GemmProblem } from '../lib/int8-problem.js';
import { loadOrt } from '../lib/peers.js';
import { buildModel, DT } from '../lib/onnx.js';

const SIZES = [256, 512, 1024];
const gops = (n: number, ms: number) => (2 * n ** 3) / (ms * 1e6);

function median(x: number[]): number {
  const s = x.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Medians of two functions timed alternately (same conditions for both) with the harness clock
 * (`now()`: CPU time for 1-thread jobs under `--cpu-time`), after warm-up. The
 * warm-up lasts at least 300 ms: V8 first runs wasm on its baseline compiler and swaps in the
 * optimized code from a background thread, which on a busy 2-core machine can take that long.
 */
export function interleaved(fa: () => void, fb: () => void, minReps = 10, targetMs = 3000): [number, number] {
  const w0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - w0 < WARMUP_MS; i++) {
    fa();
    fb();
  }
  const t0 = performance.now();
  fa();
  fb();
  const once = Math.max(performance.now() - t0, 0.01);
  const reps = Math.max(minReps, Math.min(300, Math.ceil(targetMs / once)));
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < reps; i++) {
    let t = now();
    fa();
    ta.push(now() - t);
    t = now();
    fb();
    tb.push(now() - t);
  }
  return [median(ta), median(tb)];
}

const workload: Workload = {
  jobs: () => [
    { engine: 'edgegrad', threads: 1 }, { engine: 'edgegrad', threads: 2 },
    { engine: 'ort-web', threads: 1 }, { engine: 'ort-web', threads: 2 },
  ],
  async run(job: Job): Promise<BenchRecord[]> {
    const out: BenchRecord[] = [];
    if (job.engine === 'ort-web') return ortInt8(job.threads);
    const info = await eg.init({ threads: job.threads });
    eg.setNumThreads(job.threads);
    const note = info.threads < job.threads ? `only ${info.threads} thread(s) available` : undefined;
    for (const n of SIZES) {
      const [f32, i8] = f32AndInt8Gemm(n);
      out.push({ workload: 'int8-gemm', engine: 'edgegrad', size: `${n} f32`, threads: job.threads, medianMs: f32, gflops: gops(n, f32), extra: { dtype: 'float32' }, note });
      out.push({ workload: 'int8-gemm', engine: 'edgegrad', size: n, threads: job.threads, medianMs: i8, gflops: gops(n, i8), extra: { dtype: 'int8', speedupVsF32: f32 / i8 }, note });
    }
    return out;
  },
};

/** The int8 problem above and the f32 matmul of the same floats, timed interleaved: [f32 ms, int8 ms]. */
export function f32AndInt8Gemm(n: number): [number, number] {
  const a = eg.tensor(randomFloats(n * n, 1), [n, n]);
  const b = eg.tensor(randomFloats(n * n, 2), [n, n]);
  const int8 = int8GemmProblem(n);
  const times = interleaved(() => a.matmul(b).dispose(), int8.run);
  int8.free();
  eg.dispose([a, b]);
  return times;
}
/** The same int8 problem as one QLinearMatMul in ONNX Runtime Web (its int8 GEMM, MLAS). */
async function ortInt8(threads: number): Promise<BenchRecord[]> {
  const ort = await loadOrt(threads);
  const out: BenchRecord[] = [];
  // uint8 activations with zero point 128: ORT's fast (u8·s8) path; the s8·s8 path is far slower.
  const q = (v: Float32Array, s: number) => Uint8Array.from(v, (x) => 128 + Math.max(-127, Math.min(127, Math.round(x / s))));
  for (const n of SIZES) {
    const b = randomFloats(n * n, 2); // [k, n] row-major: column j holds output channel j
    const colScale = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let m = 0;
      for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(b[i * n + j]));
      colScale[j] = (m || 1) / 127;
    }
    const bq = new Int8Array(n * n);
    for (let i = 0; i < n * n; i++) bq[i] = Math.max(-127, Math.min(127, Math.round(b[i] / colScale[i % n])));
    const model = buildModel({
      nodes: [{ op: 'QLinearMatMul', inputs: ['A', 'a_scale', 'a_zp', 'B', 'b_scale', 'b_zp', 'y_scale', 'y_zp'], outputs: ['Y'] }],
      inputs: [{ name: 'A', elemType: DT.UINT8, shape: [n, n] }],
      outputs: [{ name: 'Y', elemType: DT.UINT8, shape: [n, n] }],
      initializers: [
        { name: 'a_scale', dims: [], dataType: DT.FLOAT, data: Float32Array.of(1 / 127) },
        { name: 'a_zp', dims: [], dataType: DT.UINT8, data: Uint8Array.of(128) },
        { name: 'B', dims: [n, n], dataType: DT.INT8, data: bq },
        { name: 'b_scale', dims: [n], dataType: DT.FLOAT, data: colScale },
        { name: 'b_zp', dims: [n], dataType: DT.INT8, data: new Int8Array(n) },
        { name: 'y_scale', dims: [], dataType: DT.FLOAT, data: Float32Array.of(0.05) },
        { name: 'y_zp', dims: [], dataType: DT.UINT8, data: Uint8Array.of(128) },
      ],
    });
    const s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    const feed = { A: new ort.Tensor('uint8', q(randomFloats(n * n, 1), 1 / 127), [n, n]) };
    const ms = await measure(async () => { await s.run(feed); });
    out.push({ workload: 'int8-gemm', engine: 'ort-web', size: n, threads, medianMs: ms, gflops: gops(n, ms), extra: { dtype: 'int8' }, note: 'QLinearMatMul (u8·s8→u8)' });
    await s.release();
  }
  return out;
}

export default workload;
await main(workload, import.meta.url);
