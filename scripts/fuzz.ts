/**
 * `npm run fuzz`: the long fuzz run (Node). Every format's valid files, mutated `--count` times each
 * (default: 10^6 cases in all), through the oracle of tests/fuzz/runner.ts, in worker threads
 * watched for hangs (tests/fuzz/pool.ts).
 *
 *   npm run fuzz -- [--format model,quantized] [--count N] [--seed S] [--jobs J] [--bound MS] [--out DIR]
 *   npm run fuzz -- --format quantized --case 123456   # rerun one case, print its mutation and stack
 *
 * Prints a table of outcomes per format, writes <out>/summary.json (default reports/fuzz), and
 * exits 1 on any failure.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as eg from '../sdk/index.js';
import { makeCorpus } from '../tests/fuzz/corpus.js';
import { FORMATS, FORMAT_NAMES } from '../tests/fuzz/formats.js';
import { runPool } from '../tests/fuzz/pool.js';
import { Rng } from '../tests/fuzz/prng.js';
import { formatFailures, formatTable, runCase } from '../tests/fuzz/runner.js';

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

function int(a: Record<string, string>, k: string, dflt: number): number {
  const v = a[k] === undefined ? dflt : Number(a[k]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${k} must be a non-negative integer, got ${a[k]}`);
  return v;
}

/** Reruns one case in this thread and prints what it did and threw. */
async function oneCase(format: string, seed: number, bound: number): Promise<number> {
  await eg.init({ threads: 1 });
  const corpus = await makeCorpus();
  const fmt = FORMATS.find((f) => f.name === format)!;
  console.log(`${format} case ${seed}: ${fmt.make(new Rng(seed), corpus, seed).mutation}`);
  const r = await runCase(fmt, corpus, seed, bound);
  console.log(`outcome: ${r.cls}`);
  if (r.failure) {
    console.log(`failure [${r.failure.kind}]: ${r.failure.error}`);
    try {
      await fmt.make(new Rng(seed), corpus, seed).run(); // again, for the stack
    } catch (e) {
      console.log((e as Error)?.stack ?? e);
    }
  }
  corpus.dispose();
  return r.failure ? 1 : 0;
}

async function main(): Promise<number> {
  const a = args(process.argv.slice(2));
  const formats = a.format ? a.format.split(',') : FORMAT_NAMES;
  for (const f of formats) if (!FORMAT_NAMES.includes(f)) throw new Error(`unknown format ${f} (${FORMAT_NAMES.join(', ')})`);
  const seed = int(a, 'seed', 1);
  const bound = int(a, 'bound', 2000);
  if (a.case !== undefined) return oneCase(formats[0], int(a, 'case', 0) >>> 0, bound);
  const count = int(a, 'count', Math.ceil(1_000_000 / formats.length));
  const jobs = Math.max(1, int(a, 'jobs', Math.max(1, availableParallelism() - 1)));
  const out = a.out ?? 'reports/fuzz';
  console.log(`fuzz: ${formats.length * count} cases (${formats.join(', ')}; ${count} each), seed ${seed}, ${jobs} worker(s), case bound ${bound} ms`);
  const summary = await runPool({ formats, count, seed, jobs, bound, hangMs: a['hang-ms'] ? int(a, 'hang-ms', 0) : undefined, log: (l) => console.log(l) });
  const failures = Object.values(summary.formats).reduce((n, f) => n + f.failures, 0);
  console.log(`\n${formatTable(summary)}\n`);
  console.log(`${summary.totalCases} cases in ${(summary.ms / 1000).toFixed(0)} s; ${failures} failures, ${summary.distinct.length} distinct`);
  if (summary.distinct.length) console.log(formatFailures(summary));
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'summary.json'), JSON.stringify(summary, null, 2));
  console.log(`wrote ${join(out, 'summary.json')}`);
  return failures ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(e);
  process.exit(2);
});
