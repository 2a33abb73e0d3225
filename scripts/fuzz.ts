/**
 * `npm run fuzz`: the long fuzz run (Node). Every format's valid files, mutated `--count` times each
 * (default: 10^6 cases in all), through the oracle of tests/fuzz/runner.ts. Cases run in worker
 * threads watched from here: a worker whose current case makes no progress for `--hang-ms` is
 * terminated, its case is reported as a hang (with the seed that reproduces it), and the run goes on.
 *
 *   npm run fuzz -- [--format model,quantized] [--count N] [--seed S] [--jobs J] [--bound MS]
 *   npm run fuzz -- --format quantized --case 123456   # rerun one case and print its full error
 *
 * Prints a table of outcomes per format, writes reports/fuzz/summary.json, exits 1 on any failure.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as eg from '../sdk/index.js';
import { makeCorpus } from '../tests/fuzz/corpus.js';
import { FORMATS, FORMAT_NAMES } from '../tests/fuzz/formats.js';
import { Rng, caseSeed } from '../tests/fuzz/prng.js';
import { emptySummary, formatFailures, formatTable, mergeSummary, runCase, runFuzz, type Summary } from '../tests/fuzz/runner.js';

interface Chunk {
  format: string;
  start: number;
  count: number;
}
interface WorkerInit {
  seed: number;
  bound: number;
  threads: number;
  /** [format index, case index, cases finished] of the case running now. */
  progress: SharedArrayBuffer;
}

const CHUNK = 5000;
const tsxApi = import.meta.resolve('tsx/esm/api');

// --------------------------------------------------------------------------------- worker side

async function workerMain(init: WorkerInit): Promise<void> {
  await eg.init({ threads: init.threads });
  const corpus = await makeCorpus();
  const progress = new Int32Array(init.progress);
  parentPort!.on('message', async (c: Chunk | null) => {
    if (c === null) {
      corpus.dispose();
      process.exit(0);
    }
    const s = await runFuzz({
      formats: [c.format], count: c.count, start: c.start, seed: init.seed, timeBoundMs: init.bound, corpus,
      onCase: (format, index) => {
        Atomics.store(progress, 0, FORMAT_NAMES.indexOf(format));
        Atomics.store(progress, 1, index);
        Atomics.add(progress, 2, 1);
      },
    });
    parentPort!.postMessage({ chunk: c, summary: s });
  });
  parentPort!.postMessage({ ready: true });
}

// ------------------------------------------------------------------------------- coordinator

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.slice(2).split('=', 2);
    out[k] = v ?? argv[++i];
  }
  return out;
}

async function oneCase(format: string, seed: number, bound: number, threads: number): Promise<number> {
  await eg.init({ threads });
  const corpus = await makeCorpus();
  const fmt = FORMATS.find((f) => f.name === format);
  if (!fmt) throw new Error(`unknown format ${format} (${FORMAT_NAMES.join(', ')})`);
  console.log(`${format} case ${seed}: ${fmt.make(new Rng(seed), corpus, seed).mutation}`);
  // Run it once more unguarded to show the raw stack of whatever it throws.
  const r = await runCase(fmt, corpus, seed, bound);
  console.log(`outcome: ${r.cls}`);
  if (r.failure) {
    console.log(`failure [${r.failure.kind}]: ${r.failure.error}`);
    try {
      await fmt.make(new Rng(seed), corpus, seed).run();
    } catch (e) {
      console.log((e as Error).stack ?? e);
    }
  }
  corpus.dispose();
  return r.failure ? 1 : 0;
}

async function main(): Promise<number> {
  const a = args(process.argv.slice(2));
  const formats = a.format ? a.format.split(',') : FORMAT_NAMES;
  for (const f of formats) if (!FORMAT_NAMES.includes(f)) throw new Error(`unknown format ${f} (${FORMAT_NAMES.join(', ')})`);
  const seed = Number(a.seed ?? 1);
  const bound = Number(a.bound ?? 2000);
  const threads = Number(a.threads ?? 1);
  if (a.case !== undefined) return oneCase(formats[0], Number(a.case) >>> 0, bound, threads);
  const count = Number(a.count ?? Math.ceil(1_000_000 / formats.length));
  const jobs = Math.max(1, Number(a.jobs ?? Math.max(1, availableParallelism() - 1)));
  const hangMs = Number(a['hang-ms'] ?? Math.max(10_000, 5 * bound));
  const out = a.out ?? 'reports/fuzz';

  const queue: Chunk[] = [];
  for (const format of formats) for (let s = 0; s < count; s += CHUNK) queue.push({ format, start: s, count: Math.min(CHUNK, count - s) });
  const total = formats.length * count;
  const summary: Summary = emptySummary(seed);
  const t0 = Date.now();
  let done = 0;
  let lastPrint = 0;
  console.log(`fuzz: ${total} cases (${formats.join(', ')}; ${count} each), seed ${seed}, ${jobs} worker(s), case bound ${bound} ms, hang after ${hangMs} ms`);

  const runWorker = () => new Promise<void>((resolve, reject) => {
    const progress = new SharedArrayBuffer(12);
    const p = new Int32Array(progress);
    // Node 20 workers do not inherit the tsx loader for a .ts entry: register it first, then import this file.
    const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); });`;
    const w = new Worker(boot, { eval: true, workerData: { seed, bound, threads, progress } satisfies WorkerInit });
    let current: Chunk | null = null;
    let lastCount = -1;
    let lastChange = Date.now();
    const next = () => {
      current = queue.shift() ?? null;
      lastChange = Date.now();
      w.postMessage(current);
      if (!current) {
        clearInterval(watch);
        resolve();
      }
    };
    const watch = setInterval(() => {
      const n = Atomics.load(p, 2);
      if (n !== lastCount) {
        lastCount = n;
        lastChange = Date.now();
        return;
      }
      if (!current || Date.now() - lastChange < hangMs) return;
      // The case at p[1] has not returned: report it, skip it, requeue the rest of the chunk.
      const c: Chunk = current;
      const index = Atomics.load(p, 1);
      const s = caseSeed(seed, c.format, index);
      const failure = { format: c.format, seed: s, mutation: '(see --case)', kind: 'hang' as const, error: `no answer after ${hangMs} ms (the worker was terminated)` };
      const hs = emptySummary(seed);
      hs.formats[c.format] = { cases: 1, ms: hangMs, outcomes: { hang: 1 }, failures: 1, wasmBytes: { warm: 0, end: 0 }, pooledBytes: { warm: 0, end: 0 } };
      hs.failures.push(failure);
      hs.distinct.push(failure);
      hs.totalCases = 1;
      mergeSummary(summary, hs);
      done += 1;
      queue.unshift(...[{ format: c.format, start: c.start, count: index - c.start }, { format: c.format, start: index + 1, count: c.start + c.count - index - 1 }].filter((x) => x.count > 0));
      clearInterval(watch);
      current = null;
      void w.terminate().then(() => runWorker().then(resolve, reject));
    }, 250);
    w.on('message', (m: { ready?: boolean; chunk?: Chunk; summary?: Summary }) => {
      if (m.ready) return next();
      mergeSummary(summary, m.summary!);
      done += m.chunk!.count;
      if (Date.now() - lastPrint > 10_000) {
        lastPrint = Date.now();
        const rate = done / ((Date.now() - t0) / 1000);
        console.log(`  ${done}/${total} cases, ${summary.failures.length} failures, ${rate.toFixed(0)} cases/s`);
      }
      next();
    });
    w.on('error', (e) => {
      clearInterval(watch);
      reject(e);
    });
  });

  await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, runWorker));
  summary.ms = Date.now() - t0;
  console.log(`\n${formatTable(summary)}\n`);
  console.log(`${summary.totalCases} cases in ${(summary.ms / 1000).toFixed(0)} s; ${Object.values(summary.formats).reduce((n, f) => n + f.failures, 0)} failures, ${summary.distinct.length} distinct`);
  if (summary.distinct.length) console.log(formatFailures(summary));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
  console.log(`wrote ${join(out, 'summary.json')}`);
  return summary.distinct.length ? 1 : 0;
}

if (isMainThread) {
  main().then((code) => process.exit(code), (e) => {
    console.error(e);
    process.exit(2);
  });
} else {
  void workerMain(workerData as WorkerInit);
}
