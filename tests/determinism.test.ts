/**
 * Determinism: a fixed-seed workload (random init, matmul chain, softmax, backward) gives the
 * same bits in Node and Chromium and with 1 or 2 threads. Both runtimes compare against one
 * stored digest.
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
