/**
 * Node only: runs the fuzz cases in worker threads watched from the calling thread. A case that
 * loops synchronously cannot be interrupted where it runs, so each worker publishes the case it is on
 * in shared memory; when that does not change for `hangMs`, the worker is terminated, the case is
 * reported as a hang with its seed, and a fresh worker takes the rest. Used by `npm run fuzz`
 * (scripts/fuzz.ts) and by tests/fuzz-formats.test.ts in Node.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as eg from '../../sdk/index.js';
import { makeCorpus } from './corpus.js';
import { FORMAT_NAMES } from './formats.js';
import { caseSeed } from './prng.js';
import { emptySummary, mergeSummary, runFuzz, type Failure, type Summary } from './runner.js';

interface Chunk {
  format: string;
  start: number;
  count: number;
}
interface WorkerInit {
  isFuzzWorker: true;
  seed: number;
  bound: number;
  threads: number;
  /** [case index, cases started] of the worker's current case. */
  progress: SharedArrayBuffer;
}

export interface PoolOptions {
  formats: string[];
  /** Cases per format. */
  count: number;
  seed: number;
  /** Worker threads (each with its own engine and corpus). */
  jobs: number;
  /** Per-case time bound (see RunOptions.timeBoundMs). */
  bound?: number;
  /** A case with no progress for this long is a hang (default max(10 s, 5 bounds)). */
  hangMs?: number;
  /** Engine threads per worker. */
  threads?: number;
  /** Cases per message to a worker. */
  chunk?: number;
  /** Wasm memory may grow by at most this much over the run after the first warm-up (default 64 MiB). */
  memorySlackBytes?: number;
  log?: (line: string) => void;
}

// --------------------------------------------------------------------------------- worker side

async function workerMain(init: WorkerInit): Promise<void> {
  await eg.init({ threads: init.threads });
  const corpus = await makeCorpus();
  const progress = new Int32Array(init.progress);
  parentPort!.on('message', async (c: Chunk | null) => {
    if (c === null) {
      corpus.dispose();
      parentPort!.close();
      process.exit(0);
    }
    const s = await runFuzz({
      formats: [c.format], count: c.count, start: c.start, seed: init.seed, timeBoundMs: init.bound, corpus,
      onCase: (_format, index) => {
        Atomics.store(progress, 0, index);
        Atomics.add(progress, 1, 1);
      },
    });
    parentPort!.postMessage({ chunk: c, summary: s });
  });
  parentPort!.postMessage({ ready: true });
}

if (!isMainThread && (workerData as WorkerInit | null)?.isFuzzWorker) void workerMain(workerData as WorkerInit);

// ------------------------------------------------------------------------------- coordinator

/** Runs the cases over `jobs` watched workers and returns the merged summary. */
export async function runPool(o: PoolOptions): Promise<Summary> {
  const bound = o.bound ?? 2000;
  const hangMs = o.hangMs ?? Math.max(10_000, 5 * bound);
  const chunkSize = o.chunk ?? 2500;
  for (const f of o.formats) if (!FORMAT_NAMES.includes(f)) throw new Error(`unknown format ${f} (${FORMAT_NAMES.join(', ')})`);
  const queue: Chunk[] = [];
  for (const format of o.formats) for (let s = 0; s < o.count; s += chunkSize) queue.push({ format, start: s, count: Math.min(chunkSize, o.count - s) });
  const total = o.formats.length * o.count;
  const summary = emptySummary(o.seed);
  const t0 = Date.now();
  let done = 0;
  let lastLog = Date.now();
  // Node does not give a worker the tsx loader for a .ts entry: register it, then import this file.
  // tsx's ESM entry (require.resolve gives its CommonJS twin, which cannot register ESM hooks).
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`;

  const lost = (c: Chunk, index: number, kind: 'hang' | 'crash', error: string): Summary => {
    const failure: Failure = { format: c.format, seed: caseSeed(o.seed, c.format, index), mutation: '(rerun with --case to see it)', kind, error };
    const s = emptySummary(o.seed);
    s.formats[c.format] = { cases: 1, ms: hangMs, outcomes: { [kind]: 1 }, failures: 1, wasmBytes: { warm: 0, end: 0 }, pooledBytes: { warm: 0, end: 0 } };
    s.failures.push(failure);
    s.distinct.push(failure);
    s.totalCases = 1;
    return s;
  };

  const runWorker = (): Promise<void> => new Promise<void>((resolve, reject) => {
    const progress = new SharedArrayBuffer(8);
    const p = new Int32Array(progress);
    const init: WorkerInit = { isFuzzWorker: true, seed: o.seed, bound, threads: o.threads ?? 1, progress };
    const w = new Worker(boot, { eval: true, workerData: init });
    let current: Chunk | null = null;
    let seen = -1;
    let since = Date.now();
    /** The case at p[0] never returned (or killed its worker): report it, requeue the rest of its chunk, go on in a new worker. */
    const abandon = (kind: 'hang' | 'crash', error: string) => {
      clearInterval(watch);
      w.removeAllListeners();
      const c = current;
      current = null;
      if (c) {
        const index = Atomics.load(p, 0);
        mergeSummary(summary, lost(c, index, kind, error));
        done += 1;
        queue.unshift(...[{ format: c.format, start: c.start, count: index - c.start }, { format: c.format, start: index + 1, count: c.start + c.count - index - 1 }].filter((x) => x.count > 0));
      } else if (kind === 'crash') return reject(new Error(`a fuzz worker failed before its first case: ${error}`));
      void w.terminate().then(() => runWorker()).then(resolve, reject);
    };
    const watch = setInterval(() => {
      const n = Atomics.load(p, 1);
      if (n !== seen) {
        seen = n;
        since = Date.now();
        return;
      }
      if (current && Date.now() - since >= hangMs) abandon('hang', `no answer after ${hangMs} ms (the worker was terminated)`);
    }, 200);
    const next = () => {
      current = queue.shift() ?? null;
      since = Date.now();
      w.postMessage(current);
      if (!current) {
        clearInterval(watch);
        resolve();
      }
    };
    w.on('message', (m: { ready?: boolean; chunk?: Chunk; summary?: Summary }) => {
      if (m.ready) return next();
      mergeSummary(summary, m.summary!);
      done += m.chunk!.count;
      if (o.log && Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        o.log(`  ${done}/${total} cases, ${summary.failures.length} failures, ${(done / ((Date.now() - t0) / 1000)).toFixed(0)} cases/s`);
      }
      next();
    });
    w.on('error', (e) => abandon('crash', `the worker died: ${String((e as Error)?.message ?? e).slice(0, 200)}`));
  });

  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs, queue.length)) }, runWorker));
  // Flat over the whole run, not only within a chunk: the largest wasm memory any worker reached
  // against the first warm-up of that format.
  const slack = o.memorySlackBytes ?? 64 * 1024 * 1024;
  for (const [format, f] of Object.entries(summary.formats)) {
    if (f.wasmBytes.warm > 0 && f.wasmBytes.end - f.wasmBytes.warm > slack) {
      const failure: Failure = { format, seed: o.seed, mutation: '(the whole run)', kind: 'memory', error: `wasm memory grew from ${f.wasmBytes.warm} to ${f.wasmBytes.end} bytes over the run (the buffer pool holds ${f.pooledBytes.end} of them; it held ${f.pooledBytes.warm})` };
      f.failures++;
      summary.failures.push(failure);
      summary.distinct.push(failure);
    }
  }
  summary.ms = Date.now() - t0;
  return summary;
}
