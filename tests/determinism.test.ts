/**
 * Determinism: a fixed-seed workload (random init, matmul chain, softmax, backward) gives the
 * same bits in Node and Chromium and with 1 or 2 threads. Both runtimes compare against one
 * stored digest. Also: thousands of small parallel jobs back to back (workers waking late find
 * a job closed or a newer one open) finish, with the same results as on one thread.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import fixture from './fixtures/determinism.json';
import { determinismWorkload as workload, digest, isBrowser, setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

describe('determinism', () => {
  it('matches the stored digest with 1 and 2 threads', async () => {
    const digests: string[] = [];
    for (const threads of [1, 2]) {
      expect(eg.setNumThreads(threads)).toBe(threads);
      digests.push(await digest(workload()));
    }
    eg.setNumThreads(2);
    if (!isBrowser && (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.UPDATE_FIXTURES) {
      console.log(`determinism digest: ${digests[0]}`);
    }
    expect(digests[1]).toBe(digests[0]);
    expect(digests[0]).toBe(fixture.digest);
  });
});

describe('worker pool', () => {
  it('runs thousands of small jobs back to back with the one-thread results', () => {
    // 40,000 elements: a few elementwise tasks per op, so every op posts a short pool job.
    const a = eg.rand([200, 200], -1, 1, { seed: 3 });
    const b = eg.rand([200, 200], -1, 1, { seed: 4 });
    const run = () => eg.tidy(() => {
      let x = a;
      for (let i = 0; i < 1500; i++) x = x.mul(0.999).add(b.mul(0.001));
      return Array.from(x.dataSync() as Float32Array);
    });
    eg.setNumThreads(1);
    const one = run();
    eg.setNumThreads(2);
    const two = run();
    expect(two).toEqual(one);
    a.dispose();
    b.dispose();
  });
});
