/** Shared benchmark plumbing: timing, records, and the edgegrad engine setup. */

export interface BenchRecord {
  workload: string;
  engine: string;
  size: string | number;
  threads: number;
  medianMs: number;
  gflops: number | null;
  /** Other figures a workload reports (samples/s, peak memory...). */
  extra?: Record<string, number | string>;
  /** Why a configuration could not run, when it could not. */
  note?: string;
  /** When the run that produced it happened (UTC, minutes), set by bench/run.ts. */
  measuredAt?: string;
  /** The runtime that ran it (`Node 22`), stamped by `emit`; records without it ran on Node 20. */
  runtime?: string;
  /** That runtime's exact version (`v22.23.3`). */
  runtimeVersion?: string;
}

/**
 * The clock jobs are timed with: wall time, or — `npm run bench -- --cpu-time`, for 1-thread jobs
 * in Node — this process's CPU time, which leaves out the time other processes hold the core (on a
 * shared machine under load, wall times of long runs are mostly time slices of other processes).
 * V8's background threads (GC, compilation) count too: a slight overestimate, for every engine.
 */
let cpuClock = false;
export function now(): number {
  if (!cpuClock) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Warm-up, wall time (ms): V8 runs new wasm in its baseline tier and new JS in its interpreter until
 * the optimizing tiers, compiled in the background, take over — ~0.3 s on Node 20/22/24 for a
 * batch-1 forward called back to back (README, Performance). Without it a 0.1 ms op is timed mostly cold.
 */
export const WARMUP_MS = 500;

/** Median time (`now()`) of `fn` over `reps` runs after at least `warmup` runs and `WARMUP_MS` (ms). */
export async function timeIt(fn: () => unknown | Promise<unknown>, reps = 10, warmup = 3): Promise<number> {
  const w0 = performance.now();
  for (let i = 0; i < warmup || performance.now() - w0 < WARMUP_MS; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = now();
    await fn();
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  return times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
}

/** Repetitions: at least `min`, more for fast workloads, so each measurement spans ~`targetMs`. */
export async function adaptiveReps(fn: () => unknown | Promise<unknown>, min = 10, targetMs = 1500): Promise<number> {
  const t0 = now();
  await fn();
  const once = Math.max(now() - t0, 0.01);
  return Math.max(min, Math.min(200, Math.ceil(targetMs / once)));
}

/** Deterministic pseudo-random floats in [-1, 1) (identical inputs for every engine). */
export function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2147483648 - 1;
  }
  return out;
}

export function emit(records: BenchRecord[]): void {
  const runtime = `Node ${process.versions.node.split('.')[0]}`;
  for (const r of records) Object.assign(r, { runtime, runtimeVersion: process.version });
  // The orchestrator reads this line from the child's stdout.
  console.log(`@@records ${JSON.stringify(records)}`);
}

/** One configuration of a workload, run in its own process. */
export interface Job {
  engine: string;
  threads: number;
  [k: string]: unknown;
}

export interface Workload {
  jobs(): Job[];
  run(job: Job): Promise<BenchRecord[]>;
}

/**
 * Entry point shared by every workload file: `node --import tsx bench/workloads/x.ts --list` prints
 * its jobs; `--job '<json>'` runs one and prints its records.
 */
export async function main(w: Workload, metaUrl: string): Promise<void> {
  // In the Chromium bench page (bench/browser.ts) workloads are modules driven by the page.
  if (typeof process === 'undefined' || metaUrl !== `file://${process.argv[1]}`) return;
  const i = process.argv.indexOf('--job');
  if (process.argv.includes('--list')) {
    console.log(`@@jobs ${JSON.stringify(w.jobs())}`);
  } else if (i >= 0) {
    const job = JSON.parse(process.argv[i + 1]) as Job;
    cpuClock = process.env.EDGEGRAD_BENCH_CPU_TIME === '1' && job.threads === 1;
    const records = await w.run(job);
    if (cpuClock) for (const r of records) r.note = [r.note, 'CPU time'].filter(Boolean).join('; ');
    emit(records);
  } else {
    const all: BenchRecord[] = [];
    for (const j of w.jobs()) all.push(...(await w.run(j)));
    emit(all);
  }
  // Peers may keep worker threads alive; the records are out, so end the process.
  process.exit(0);
}

/** Median time of an async function, with adaptive repetitions (>= 10). */
export async function measure(fn: () => unknown | Promise<unknown>, minReps = 10): Promise<number> {
  return timeIt(fn, await adaptiveReps(fn, minReps), 3);
}
