/**
 * The fuzz runner and its oracle. Each case either loads (and its result works) or throws an
 * `EdgegradError` subclass other than `InternalError`. Everything else is a failure reported with
 * its format, case seed and mutation: a raw TypeError/RangeError/SyntaxError, a wasm trap, an
 * InternalError, a `Violation` (corruption accepted, a rejected load that changed state), a case
 * over its time bound, a leaked tensor, or wasm memory that keeps growing over the run.
 */
import * as eg from '../../sdk/index.js';
import { makeCorpus, type Corpus } from './corpus.js';
import { FORMATS, Violation, type Format, type FuzzCase } from './formats.js';
import { Rng, caseSeed } from './prng.js';

export type FailureKind = 'harness' | 'untyped' | 'internal' | 'violation' | 'hang' | 'crash' | 'slow' | 'leak' | 'memory';

export interface Failure {
  format: string;
  /** The case seed: `npm run fuzz -- --format <format> --case <seed>` reruns exactly this input. */
  seed: number;
  mutation: string;
  kind: FailureKind;
  /** Error class and the first line of its message. */
  error: string;
}

export interface FormatSummary {
  cases: number;
  ms: number;
  /** Outcome class -> count: 'loaded', an EdgegradError subclass name, or a failure kind. */
  outcomes: Record<string, number>;
  failures: number;
  wasmBytes: { warm: number; end: number };
  pooledBytes: { warm: number; end: number };
}

export interface Summary {
  seed: number;
  formats: Record<string, FormatSummary>;
  failures: Failure[];
  /** One failure per (format, kind, error) — what to fix. */
  distinct: Failure[];
  totalCases: number;
  ms: number;
}

export interface RunOptions {
  formats?: string[];
  /** Cases per format. */
  count: number;
  /** Index of the first case (a run can be split into chunks: cases `start .. start + count - 1`). */
  start?: number;
  seed?: number;
  /** A case taking longer than this fails as 'slow' (async loads are cut off as 'hang'). */
  timeBoundMs?: number;
  /** Wasm memory may grow by at most this much after the warm-up (the first 10% of cases). */
  memorySlackBytes?: number;
  /** Called before each case (the Node watchdog records it, to name a case that never returns). */
  onCase?: (format: string, index: number, seed: number) => void;
  onProgress?: (format: string, done: number) => void;
  corpus?: Corpus;
  /** Keep at most this many failures in full (counts stay exact). */
  maxFailures?: number;
}

const firstLine = (e: unknown): string => {
  const err = e as { name?: string; message?: unknown };
  const msg = String(err?.message ?? e).split('\n')[0].slice(0, 200);
  return `${err?.name ?? typeof e}: ${msg}`;
};

function classify(e: unknown): { cls: string; kind?: FailureKind } {
  if (e instanceof Violation) return { cls: 'Violation', kind: 'violation' };
  if (e instanceof eg.InternalError) return { cls: 'InternalError', kind: 'internal' };
  if (e instanceof eg.EdgegradError) return { cls: e.constructor.name };
  const name = e instanceof Error ? e.constructor.name : typeof e;
  return { cls: `raw ${name}`, kind: 'untyped' };
}

class Timeout extends Error {}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Timeout(`no answer after ${ms} ms`)), ms)))])
    .finally(() => clearTimeout(timer));
}

/** Runs one case; returns its outcome class and, when it failed, the failure. */
export async function runCase(fmt: Format, corpus: Corpus, seed: number, timeBoundMs = 2000): Promise<{ cls: string; failure?: Failure; mutation: string }> {
  const rng = new Rng(seed);
  let c: FuzzCase;
  try {
    c = fmt.make(rng, corpus, seed);
  } catch (e) {
    // A bug of the fuzzer itself: reported like any failure, so it cannot hide.
    return { cls: 'harness', mutation: '(generation failed)', failure: { format: fmt.name, seed, mutation: '(generation failed)', kind: 'harness', error: firstLine(e) } };
  }
  const before = eg.memory().numTensors;
  const t0 = performance.now();
  let cls = 'loaded';
  let failure: Failure | undefined;
  const fail = (kind: FailureKind, error: string) => (failure ??= { format: fmt.name, seed, mutation: c.mutation, kind, error });
  try {
    const r = c.run();
    if (r instanceof Promise) await within(r, timeBoundMs);
  } catch (e) {
    if (e instanceof Timeout) {
      cls = 'hang';
      fail('hang', e.message);
    } else {
      const k = classify(e);
      cls = k.cls;
      if (k.kind) fail(k.kind, firstLine(e));
    }
  }
  const ms = performance.now() - t0;
  if (!failure && ms > timeBoundMs) {
    cls = 'slow';
    fail('slow', `took ${ms.toFixed(0)} ms (bound ${timeBoundMs} ms)`);
  }
  const after = eg.memory().numTensors;
  if (after !== before && cls !== 'hang') {
    // A case that failed in another way is reported as that; a leak on top is named in its text.
    if (failure) failure.error += ` (and leaked ${after - before} tensors)`;
    else {
      fail('leak', `${after - before} tensors left alive after a '${cls}' case`);
      cls = 'leak';
    }
  }
  return { cls, failure, mutation: c.mutation };
}

/** Runs `count` cases of every chosen format and returns the summary (it never throws for a failure). */
export async function runFuzz(o: RunOptions): Promise<Summary> {
  const seed = o.seed ?? 1;
  const bound = o.timeBoundMs ?? 2000;
  const slack = o.memorySlackBytes ?? 32 * 1024 * 1024;
  const maxFailures = o.maxFailures ?? 200;
  const formats = FORMATS.filter((f) => !o.formats || o.formats.includes(f.name));
  const corpus = o.corpus ?? await makeCorpus();
  const t0 = performance.now();
  const summary: Summary = { seed, formats: {}, failures: [], distinct: [], totalCases: 0, ms: 0 };
  const distinct = new Map<string, Failure>();
  try {
    for (const fmt of formats) {
      const fs: FormatSummary = { cases: 0, ms: 0, outcomes: {}, failures: 0, wasmBytes: { warm: 0, end: 0 }, pooledBytes: { warm: 0, end: 0 } };
      summary.formats[fmt.name] = fs;
      const f0 = performance.now();
      const warmAt = Math.floor(o.count / 10);
      for (let i = 0; i < o.count; i++) {
        if (i === warmAt) {
          const m = eg.memory();
          fs.wasmBytes.warm = m.wasmBytes;
          fs.pooledBytes.warm = m.pooledBytes;
        }
        const s = caseSeed(seed, fmt.name, (o.start ?? 0) + i);
        o.onCase?.(fmt.name, (o.start ?? 0) + i, s);
        let r = await runCase(fmt, corpus, s, bound);
        // A slow case reruns once: a machine busy with other work must not fail the suite.
        if (r.failure?.kind === 'slow') r = await runCase(fmt, corpus, s, bound);
        fs.cases++;
        fs.outcomes[r.cls] = (fs.outcomes[r.cls] ?? 0) + 1;
        if (r.failure) {
          fs.failures++;
          if (summary.failures.length < maxFailures) summary.failures.push(r.failure);
          const key = distinctKey(r.failure);
          if (!distinct.has(key)) distinct.set(key, r.failure);
        }
        if ((i + 1) % 500 === 0) o.onProgress?.(fmt.name, i + 1);
      }
      const m = eg.memory();
      fs.wasmBytes.end = m.wasmBytes;
      fs.pooledBytes.end = m.pooledBytes;
      fs.ms = performance.now() - f0;
      if (fs.wasmBytes.end - fs.wasmBytes.warm > slack) {
        const f: Failure = { format: fmt.name, seed, mutation: '(the whole run)', kind: 'memory', error: `wasm memory grew from ${fs.wasmBytes.warm} to ${fs.wasmBytes.end} bytes after the warm-up (the buffer pool holds ${fs.pooledBytes.end} of them; it held ${fs.pooledBytes.warm})` };
        fs.failures++;
        summary.failures.push(f);
        distinct.set(`${fmt.name}|memory`, f);
      }
      summary.totalCases += fs.cases;
    }
  } finally {
    if (!o.corpus) corpus.dispose();
  }
  summary.distinct = [...distinct.values()];
  summary.ms = performance.now() - t0;
  return summary;
}

const distinctKey = (f: Failure) => `${f.format}|${f.kind}|${f.error.replace(/\d+/g, 'N').slice(0, 120)}`;

/** Adds `b`'s counts and failures to `a` (chunks of one run, or runs of several workers). */
export function mergeSummary(a: Summary, b: Summary, maxFailures = 200): Summary {
  for (const [name, f] of Object.entries(b.formats)) {
    const t = (a.formats[name] ??= { cases: 0, ms: 0, outcomes: {}, failures: 0, wasmBytes: { warm: f.wasmBytes.warm, end: 0 }, pooledBytes: { warm: f.pooledBytes.warm, end: 0 } });
    t.cases += f.cases;
    t.ms += f.ms;
    t.failures += f.failures;
    for (const [c, n] of Object.entries(f.outcomes)) t.outcomes[c] = (t.outcomes[c] ?? 0) + n;
    t.wasmBytes.end = Math.max(t.wasmBytes.end, f.wasmBytes.end);
    t.pooledBytes.end = Math.max(t.pooledBytes.end, f.pooledBytes.end);
  }
  a.failures.push(...b.failures.slice(0, Math.max(0, maxFailures - a.failures.length)));
  const seen = new Set(a.distinct.map(distinctKey));
  for (const f of b.distinct) if (!seen.has(distinctKey(f))) {
    seen.add(distinctKey(f));
    a.distinct.push(f);
  }
  a.totalCases += b.totalCases;
  return a;
}

export function emptySummary(seed: number): Summary {
  return { seed, formats: {}, failures: [], distinct: [], totalCases: 0, ms: 0 };
}

/** A table of outcome counts per format (Markdown). */
export function formatTable(s: Summary): string {
  const classes = [...new Set(Object.values(s.formats).flatMap((f) => Object.keys(f.outcomes)))].sort((a, b) => (a === 'loaded' ? -1 : b === 'loaded' ? 1 : a.localeCompare(b)));
  const head = `| format | cases | ${classes.join(' | ')} | failures | s |`;
  const sep = `|${'---|'.repeat(classes.length + 4)}`;
  const rows = Object.entries(s.formats).map(([n, f]) => `| ${n} | ${f.cases} | ${classes.map((c) => f.outcomes[c] ?? 0).join(' | ')} | ${f.failures} | ${(f.ms / 1000).toFixed(1)} |`);
  return [head, sep, ...rows].join('\n');
}

/** One line per distinct failure, with the command that reproduces it. */
export function formatFailures(s: Summary): string {
  const rerun = (f: Failure) => (f.kind === 'memory' ? `npm run fuzz -- --format ${f.format} --seed ${f.seed}` : `npm run fuzz -- --format ${f.format} --case ${f.seed}`);
  return s.distinct.map((f) => `${f.format} seed ${f.seed} [${f.kind}] ${f.error}\n    mutation: ${f.mutation.slice(0, 300)}\n    rerun: ${rerun(f)}`).join('\n');
}
