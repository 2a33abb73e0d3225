/**
 * Out of memory (issue 13, defects 6 and 7): allocations past the memory limit throw a typed
 * MemoryError naming the request, the live bytes and the limit; the failed op leaks neither its
 * inputs nor partial outputs; afterwards dispose, allocate and compute all work.
 * `withAllocationLimit` caps an untrusted piece of work. The buffer pool stays flat when tensors
 * come from JS data, `randint` or int32 `indexSelect`.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

let defaultLimit = 0;
beforeAll(async () => {
  await setup();
  defaultLimit = eg.memory().limit;
});
afterEach(() => {
  eg.setMemoryLimit(defaultLimit);
});

describe('memory limit', () => {
  it('has a default below the 4 GiB wasm32 maximum', () => {
    expect(defaultLimit).toBeGreaterThan(1 << 30);
    expect(defaultLimit).toBeLessThan(2 ** 32);
  });

  it('an allocation past the limit throws MemoryError naming request, live bytes and limit; the engine keeps working', () => {
    const live = eg.memory().numBytes;
    const limit = live + (1 << 20);
    expect(eg.setMemoryLimit(limit)).toBe(defaultLimit);
    expect(eg.memory().limit).toBe(limit);
    let err: unknown = null;
    try {
      eg.zeros([1024, 1024]); // 4 MiB
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(eg.MemoryError);
    const msg = (err as Error).message;
    expect(msg).toContain('4194304 bytes');
    expect(msg).toContain(`${live} bytes are held by live tensors`);
    expect(msg).toContain(`limit is ${limit} bytes`);
    // Small allocations and compute still work under the limit; memory() answers.
    const a = eg.ones([1000]);
    expect(a.mul(2).sum().item()).toBe(2000);
    expect(eg.memory().numBytes).toBeGreaterThan(live);
    eg.dispose(a);
    eg.setMemoryLimit(defaultLimit);
    const big = eg.zeros([1024, 1024]);
    expect(big.sum().item()).toBe(0);
    big.dispose();
  });

  it('an op that runs out of memory leaks neither its inputs nor a handle, and its inputs stay writable', () => {
    const base = eg.memory();
    const a = eg.randn([256, 256], 0, 1, { seed: 3 }); // 256 KiB
    const b = eg.randn([256, 256], 0, 1, { seed: 4 });
    const values = a.dataSync();
    for (const op of [() => a.matmul(b), () => a.add(b), () => eg.concat([a, b], 0), () => a.requiresGrad_().mul(b).sum()]) {
      eg.setMemoryLimit(eg.memory().numBytes + 1000);
      expect(op).toThrow(eg.MemoryError);
      eg.setMemoryLimit(defaultLimit);
    }
    expect(eg.memory().numTensors).toBe(base.numTensors + 2);
    expect(a.dataSync()).toEqual(values);
    a.assign(b); // in place: the failed op's borrow of a's storage is gone
    expect(a.dataSync()).toEqual(b.dataSync());
    eg.dispose([a, b]);
    const after = eg.memory();
    expect(after.numTensors).toBe(base.numTensors);
    expect(after.numBytes).toBe(base.numBytes);
    expect(after.numBuffers).toBe(base.numBuffers);
  });

  it('a training step that runs out of memory in backward leaves autograd and the weights usable', () => {
    const w = eg.randn([64, 64], 0, 0.1, { seed: 5 }).requiresGrad_();
    const x = eg.randn([32, 64], 0, 1, { seed: 6 });
    const loss = x.matmul(w).relu().sum();
    eg.setMemoryLimit(eg.memory().numBytes + 64);
    expect(() => loss.backward()).toThrow(eg.MemoryError);
    eg.setMemoryLimit(defaultLimit);
    expect(eg.isGradEnabled()).toBe(true);
    w.zeroGrad();
    const loss2 = x.matmul(w).relu().sum();
    loss2.backward();
    expect(w.grad!.shape).toEqual([64, 64]);
    eg.dispose([w, x, loss, loss2]);
  });

  it('10,000 refused allocations in a row leave the engine working (the shadow stack of each trap is reclaimed)', () => {
    const x = eg.randn([16, 16], 0, 1, { seed: 2 });
    const expected = x.matmul(x).sum();
    const want = expected.item();
    const wasm = eg.memory().wasmBytes;
    eg.setMemoryLimit(eg.memory().numBytes + 100);
    let refused = 0;
    for (let i = 0; i < 10_000; i++) {
      try {
        eg.zeros([1000]);
      } catch (e) {
        if (e instanceof eg.MemoryError) refused++;
      }
    }
    eg.setMemoryLimit(defaultLimit);
    expect(refused).toBe(10_000);
    const again = x.matmul(x).sum();
    expect(again.item()).toBe(want);
    expect(eg.memory().wasmBytes).toBe(wasm);
    eg.dispose([x, expected, again]);
  });

  it('setMemoryLimit and init refuse bad values', async () => {
    expect(() => eg.setMemoryLimit(-1)).toThrow(eg.ArgumentError);
    expect(() => eg.setMemoryLimit(1.5)).toThrow(eg.ArgumentError);
    expect(() => eg.setMemoryLimit(Number.NaN)).toThrow(eg.ArgumentError);
    await expect(eg.init({ memoryLimit: -5 })).rejects.toThrow(eg.ArgumentError);
    await eg.init({ memoryLimit: 123456789 });
    expect(eg.memory().limit).toBe(123456789);
  });
});

describe('withAllocationLimit', () => {
  it('caps live bytes at current + extra, throws MemoryError past it, restores the limit (also on throw)', () => {
    const ok = eg.withAllocationLimit(4000, () => eg.zeros([1000]));
    expect(ok.shape).toEqual([1000]);
    expect(eg.memory().limit).toBe(defaultLimit);
    // A tiny model file declaring Linear(20000, 20000): refused before 1.6 GB are allocated.
    const wasm = eg.memory().wasmBytes;
    expect(() => eg.withAllocationLimit(1 << 20, () => eg.zeros([20000, 20000]))).toThrow(eg.MemoryError);
    expect(eg.memory().wasmBytes).toBe(wasm);
    expect(eg.memory().limit).toBe(defaultLimit);
    expect(() => eg.withAllocationLimit(100, () => {
      throw new eg.FormatError('inner');
    })).toThrow(eg.FormatError);
    expect(eg.memory().limit).toBe(defaultLimit);
    ok.dispose();
  });

  it('nested calls take the tighter cap', () => {
    const outer = eg.withAllocationLimit(1 << 20, () => {
      const outerLimit = eg.memory().limit;
      eg.withAllocationLimit(1 << 30, () => {
        expect(eg.memory().limit).toBe(outerLimit);
      });
      expect(() => eg.withAllocationLimit(100, () => eg.zeros([100]))).toThrow(eg.MemoryError);
      expect(eg.memory().limit).toBe(outerLimit);
      return eg.zeros([100]);
    });
    expect(eg.memory().limit).toBe(defaultLimit);
    outer.dispose();
  });

  it('refuses bad arguments with ArgumentError', () => {
    expect(() => eg.withAllocationLimit(-1, () => 0)).toThrow(eg.ArgumentError);
    expect(() => eg.withAllocationLimit(10, 5 as unknown as () => number)).toThrow(eg.ArgumentError);
    expect(() => eg.withAllocationLimit(10, async () => 0)).toThrow(eg.ArgumentError);
  });
});

describe('buffer pool', () => {
  it('stays flat over 2,000 steps of tensors from JS data, randint and int32 indexSelect', () => {
    const data = new Float32Array(4096).map((_, i) => i);
    const table = eg.randn([512, 16], 0, 1, { seed: 1 });
    const step = (i: number) => eg.tidy(() => {
      const x = eg.tensor(data, [64, 64]);
      const idx = eg.randint([256], 0, 512, { seed: i });
      const rows = table.indexSelect(0, idx);
      const ints = eg.tensor(new Int32Array(1024).fill(i), [1024], 'int32');
      return x.sum().add(rows.sum()).add(ints.cast('float32').sum()).item();
    });
    for (let i = 0; i < 50; i++) step(i);
    const warm = eg.memory();
    for (let i = 50; i < 2000; i++) step(i);
    const end = eg.memory();
    expect(end.pooledBytes).toBeLessThanOrEqual(warm.pooledBytes);
    expect(end.wasmBytes).toBe(warm.wasmBytes);
    expect(end.numTensors).toBe(warm.numTensors);
    table.dispose();
  });
});
