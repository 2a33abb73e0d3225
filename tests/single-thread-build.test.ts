/** The single-threaded SIMD build (used where SharedArrayBuffer is unavailable) gives the same bits. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import fixture from './fixtures/determinism.json';
import { determinismWorkload, digest, setup } from './helpers.js';

let info: eg.BackendInfo;
beforeAll(async () => {
  info = await setup({ backend: 'simd' });
});

describe('single-threaded build', () => {
  it('loads, reports itself, and matches the threaded build bit for bit', async () => {
    expect(info.build).toBe('simd');
    expect(info.maxThreads).toBe(1);
    expect(info.fallbackReason).toMatch(/requested/);
    expect(() => eg.setNumThreads(4)).toThrow(/from 1 to 1\b/); // refused, not clamped
    expect(eg.setNumThreads(1)).toBe(1);
    expect(await digest(determinismWorkload())).toBe(fixture.digest);
  });
});
