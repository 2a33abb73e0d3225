/**
 * The CI fuzz suite: 10^4 mutated inputs per file format (model.json + weights, bare safetensors,
 * int8-quantized and binary models, optimizer, LR-schedule and training-checkpoint states), in Node
 * and in Chromium, plus fast-check properties and the unmutated files as a baseline.
 * Every case must load and work, or throw an EdgegradError subclass (not InternalError); no case may
 * leak a tensor, exceed its time bound, or leave a rejected load's state changed, and wasm memory
 * stays flat after the warm-up. A failure prints its seed; `npm run fuzz -- --format F --case SEED`
 * reproduces it. The longer run is `npm run fuzz` (scripts/fuzz.ts).
 */
import * as fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { disposeOptimizer, makeCorpus, type Corpus } from './fuzz/corpus.js';
import { FORMAT_NAMES, FORMATS, Violation, type Format } from './fuzz/formats.js';
import { Rng, caseSeed } from './fuzz/prng.js';
import { formatFailures, formatTable, runCase, runFuzz, type Summary } from './fuzz/runner.js';
import { isBrowser, setup } from './helpers.js';

/** Cases per format and runtime (the floor for CI). */
const CASES = 10_000;
const SEED = 2026;

let corpus: Corpus;
beforeAll(async () => {
  await setup();
  corpus = await makeCorpus();
}, 120_000);
afterAll(() => corpus?.dispose());

/**
 * Node runs the cases in a watched worker thread (tests/fuzz/pool.ts), so a case that loops for ever
 * fails with its seed instead of stalling the suite; Chromium runs them here.
 */
async function fuzz(name: string): Promise<Summary> {
  if (isBrowser) return runFuzz({ formats: [name], count: CASES, seed: SEED, corpus });
  const poolModule = './fuzz/pool.js';
  const { runPool } = (await import(/* @vite-ignore */ poolModule)) as typeof import('./fuzz/pool.js');
  return runPool({ formats: [name], count: CASES, seed: SEED, jobs: 1, threads: 2, chunk: CASES });
}

describe('fuzz: the valid files', () => {
  // The baseline of every format: unmutated, each file loads and works (a typed error here is a regression, not a catch).
  it('every corpus file loads and runs', async () => {
    const before = eg.memory().numTensors;
    const run = (f: (x: eg.Tensor) => eg.Tensor, shape: number[], dtype: 'float32' | 'int32' = 'float32') => eg.tidy(() => {
      const x = dtype === 'int32' ? eg.randint([2, ...shape], 0, 5, { seed: 1 }) : eg.rand([2, ...shape], -1, 1, { seed: 1 });
      return f(x).dataSync().length;
    });
    for (const b of corpus.models) {
      const { model } = await eg.loadModel({ json: JSON.stringify(b.json), weights: b.weights });
      expect(run((x) => model.eval().forward(x), b.inputShape, b.inputDtype), b.name).toBeGreaterThan(0);
      model.dispose();
    }
    for (const b of corpus.quantized) {
      const q = eg.compress.QuantizedModel.deserialize(b.bytes);
      expect(run((x) => q.forward(x), b.inputShape), b.name).toBeGreaterThan(0);
      q.dispose();
    }
    for (const b of corpus.binary) {
      const m = eg.compress.BinaryModel.deserialize(b.bytes);
      expect(run((x) => m.forward(x), b.inputShape), b.name).toBeGreaterThan(0);
      m.dispose();
    }
    for (const b of corpus.optimizers) b.optimizer.loadStateDict(b.state);
    for (const b of corpus.schedules) b.schedule.loadStateDict(b.state);
    for (const b of corpus.checkpoints) {
      const { model, optimizer, schedule } = b.make();
      await eg.train.loadCheckpoint({ json: JSON.stringify(b.json), weights: b.weights }, { model, optimizer, schedulers: [schedule] });
      expect(run((x) => model.eval().forward(x), b.inputShape), b.name).toBeGreaterThan(0);
      disposeOptimizer(optimizer);
      model.dispose();
    }
    expect(eg.memory().numTensors).toBe(before);
  });
});

describe('fuzz: every format, mutated', () => {
  for (const name of FORMAT_NAMES) {
    it(`${name}: ${CASES} cases, only typed errors, no leak, no hang, flat memory`, async () => {
      const s = await fuzz(name);
      console.log(`${formatTable(s)}\n`);
      const f = s.formats[name];
      expect(f.cases).toBe(CASES);
      // Most mutations are caught; some must load, or the mutators only produce garbage.
      expect(f.outcomes.loaded ?? 0).toBeGreaterThan(0);
      expect(s.distinct.length, `fuzz failures (${f.failures} in all; one per kind):\n${formatFailures(s)}`).toBe(0);
    }, 600_000);
  }
});

describe('fuzz: property-based (fast-check, shrinking to a minimal input)', () => {
  /** A safetensors file from any header object and any data length. */
  const file = (header: Record<string, unknown>, dataLen: number) => {
    const h = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length + dataLen);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  const SIZE: Record<string, number> = { F32: 4, I32: 4, I8: 1, U8: 1, F16: 2, BF16: 2, F64: 8, I64: 8 };
  const name = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'));
  // Mostly small shapes; sometimes a dimension at or past 2^32 times a 0 (no bytes, but a wrap risk).
  const shape = fc.oneof(
    fc.array(fc.nat(4), { maxLength: 3 }),
    fc.tuple(fc.constantFrom(2 ** 32 + 1, 2 ** 32, 2 ** 31, 2 ** 53 + 2, 1e300), fc.constant(0)).map((t) => [...t]),
    fc.array(fc.constantFrom(-1, 1.5, 0, 3), { maxLength: 3 }),
  );
  /** A consistent header (offsets laid end to end), then perhaps one offset or the data length nudged. */
  const header = fc.record({
    entries: fc.array(fc.tuple(name, fc.constantFrom('F32', 'I32', 'I8', 'U8', 'F16', 'BF16', 'F64', 'I64', 'BOOL'), shape), { maxLength: 4 }),
    nudge: fc.option(fc.tuple(fc.nat(7), fc.integer({ min: -8, max: 8 }))),
    extra: fc.option(fc.integer({ min: -4, max: 4 })),
  }).map(({ entries, nudge, extra }) => {
    const h: Record<string, unknown> = {};
    let off = 0;
    entries.forEach(([n, dtype, sh], i) => {
      const count = sh.reduce((a, d) => a * d, 1);
      const bytes = Number.isSafeInteger(count) && count >= 0 && count < 1024 ? count * (SIZE[dtype] ?? 1) : 0;
      const offsets = [off, off + bytes];
      if (nudge && nudge[0] % Math.max(1, entries.length) === i) offsets[nudge[1] & 1] += nudge[1];
      off += bytes;
      Object.defineProperty(h, n, { value: { dtype, shape: sh, data_offsets: offsets }, enumerable: true, configurable: true, writable: true });
    });
    return { header: h, dataLen: Math.max(0, off + (extra ?? 0)) };
  });

  it('decodeSafetensors: any header decodes exactly as declared or throws FormatError', () => {
    let loaded = 0;
    fc.assert(fc.property(header, ({ header: h, dataLen }) => {
      const before = eg.memory().numTensors;
      try {
        const { tensors } = eg.decodeSafetensors(file(h, dataLen));
        loaded++;
        const want = Object.keys(h).filter((k) => k !== '__metadata__').sort();
        try {
          expect(Object.keys(tensors).sort()).toEqual(want);
          for (const k of want) expect(tensors[k].shape).toEqual((h[k] as { shape: number[] }).shape);
        } finally {
          for (const t of Object.values(tensors)) t.dispose();
        }
      } catch (e) {
        if (!(e instanceof eg.FormatError)) throw e;
      }
      expect(eg.memory().numTensors).toBe(before);
    }), { numRuns: 3000, seed: SEED });
    expect(loaded).toBeGreaterThan(300); // the generator makes valid files too, not only garbage
  });

  it('loadModel: any JSON as model.json, or as its model config, loads or throws a typed error', async () => {
    const base = corpus.models[0];
    await fc.assert(fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), fc.boolean(), async (v, whole) => {
      const before = eg.memory().numTensors;
      const json = whole ? JSON.stringify(v) : JSON.stringify({ ...base.json, model: v });
      try {
        (await eg.loadModel({ json, weights: base.weights })).model.dispose();
      } catch (e) {
        if (!(e instanceof eg.EdgegradError) || e instanceof eg.InternalError) throw e;
      }
      expect(eg.memory().numTensors).toBe(before);
    }), { numRuns: 2000, seed: SEED });
  });
});

describe('fuzz harness', () => {
  const fake = (name: string, run: () => void): Format => ({ name, make: () => ({ mutation: 'fake', run }) });

  it('reproduces a case from its seed: the same mutation every time', () => {
    for (const fmt of FORMATS) {
      const s = caseSeed(7, fmt.name, 3);
      expect(fmt.make(new Rng(s), corpus, s).mutation).toBe(fmt.make(new Rng(s), corpus, s).mutation);
    }
  });

  it('classifies raw errors, InternalError, violations, leaks and slow cases as failures; typed errors as outcomes', async () => {
    const r1 = await runCase(fake('a', () => { throw new TypeError('x'); }), corpus, 1);
    expect(r1.failure?.kind).toBe('untyped');
    const r2 = await runCase(fake('b', () => { throw new eg.InternalError('x'); }), corpus, 1);
    expect(r2.failure?.kind).toBe('internal');
    const r3 = await runCase(fake('c', () => { throw new Violation('x'); }), corpus, 1);
    expect(r3.failure?.kind).toBe('violation');
    const r4 = await runCase(fake('d', () => { throw new eg.FormatError('x'); }), corpus, 1);
    expect(r4).toMatchObject({ cls: 'FormatError', failure: undefined });
    let leaked: eg.Tensor | undefined;
    const r5 = await runCase(fake('e', () => { leaked = eg.zeros([2]); }), corpus, 1);
    expect(r5.failure?.kind).toBe('leak');
    leaked!.dispose();
    const r6 = await runCase(fake('f', () => { const t = performance.now(); while (performance.now() - t < 30); }), corpus, 1, 10);
    expect(r6.failure?.kind).toBe('slow');
    const hang: Format = { name: 'g', make: () => ({ mutation: 'never settles', run: () => new Promise<void>(() => {}) }) };
    expect((await runCase(hang, corpus, 1, 50)).failure?.kind).toBe('hang');
  });
});
