/**
 * Properties of the built engines: SIMD instructions present, and the threaded build imports a
 * shared memory. Reads the .wasm files, so it runs in Node (the browser suite proves they run).
 */
import { describe, expect, it } from 'vitest';
import { isBrowser } from './helpers.js';

describe.skipIf(isBrowser)('built wasm', () => {
  it('uses v128 SIMD and the threaded build imports a shared memory', async () => {
    const { execFileSync } = await import('node:child_process');
    const wat = (variant: string) => execFileSync('wasm2wat', ['--enable-all', `sdk/wasm/${variant}/edgegrad_bg.wasm`], { maxBuffer: 1 << 28 }).toString();
    for (const variant of ['mt', 'st']) {
      const text = wat(variant);
      const f32x4 = (text.match(/f32x4\.(mul|add)/g) ?? []).length;
      expect(f32x4, `${variant}: f32x4 mul/add instructions`).toBeGreaterThan(200);
      const memImport = text.split('\n').find((l) => /\(import "[^"]+" "memory" \(memory/.test(l));
      if (variant === 'mt') {
        expect(memImport).toMatch(/shared/);
        expect(text).toMatch(/memory\.atomic\.wait32/);
      } else {
        expect(text).not.toMatch(/memory\.atomic\.wait32/);
      }
    }
  });
});
