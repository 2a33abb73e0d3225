/**
 * The CI fuzz suite: 10^4 mutated inputs per file format (model.json + weights, bare safetensors,
 * int8-quantized and binary models, optimizer and LR-schedule states), in Node and in Chromium.
 * Every case must load and work, or throw an EdgegradError subclass (not InternalError); no case may
 * leak a tensor, exceed its time bound, or leave a rejected load's state changed, and wasm memory
 * stays flat after the warm-up. A failure prints its seed; `npm run fuzz -- --format F --case SEED`
 * reproduces it. The longer run is `npm run fuzz` (scripts/fuzz.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { makeCorpus, type Corpus } from './fuzz/corpus.js';
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
