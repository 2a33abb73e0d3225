/**
 * The engine recovers after a panic (issue 13, defects 5 and 11): a panic on the calling thread
 * or on a pool worker fails that one call with an InternalError; afterwards multi-threaded
 * kernels give the one-thread bits, live tensors keep their values (and can be written in place:
 * the borrow the trapped call held is void), memory() works. Threads: counts above the pool are
 * refused, `init()` after `shutdownWorkers()` restarts the pool, workers do not inherit `--eval`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { call, workerExecArgv } from '../sdk/runtime.js';
import { isBrowser, setup } from './helpers.js';

let threaded = false;
beforeAll(async () => {
  const info = await setup();
  threaded = info.maxThreads > 1;
});

/** 1,000 small kernels (matmul, reductions, softmax), run with `threads` threads; their bits. */
function workload(threads: number, x: eg.Tensor): Float32Array[] {
  eg.setNumThreads(threads);
  const out: Float32Array[] = [];
  for (let i = 0; i < 250; i++) {
    out.push(eg.tidy(() => {
      const y = x.matmul(x.transpose(0, 1)).mul(1 / 64).add(i * 1e-3);
      return eg.concat([y.softmax(1).sum(0), y.mean(1), y.max(0)], 0).dataSync() as Float32Array;
    }));
  }
  return out;
}

function panicOn(place: 0 | 1, x: eg.Tensor): unknown {
  try {
    call((e) => e.engine_test_panic(place, x.handle));
  } catch (e) {
    return e;
  }
  return null;
}

describe('panic recovery', () => {
  it('a panic on the calling thread fails that call only; the engine works as before', () => {
    const x = eg.randn([48, 64], 0, 1, { seed: 7 });
    const before = x.dataSync();
    const max = eg.backendInfo().maxThreads;
    const reference = workload(1, x);
    const err = panicOn(0, x);
    expect(err).toBeInstanceOf(eg.InternalError);
    expect((err as Error).message).toContain('deliberate test panic on the calling thread');
    // The trapped call held a borrow of x's storage: x can still be read and written in place.
    expect(x.dataSync()).toEqual(before);
    x.assign(x.mul(1));
    expect(x.dataSync()).toEqual(before);
    const after = workload(max, x);
    expect(after).toEqual(reference);
    const m = eg.memory();
    expect(m.numTensors).toBeGreaterThan(0);
    x.dispose();
    eg.setNumThreads(max);
  });

  it('a panic on a pool worker fails that call only; the worker comes back; 1,000 threaded ops give the one-thread bits', (ctx) => {
    if (!threaded) ctx.skip(); // single-threaded build (a page without cross-origin isolation)
    const x = eg.randn([48, 64], 0, 1, { seed: 8 });
    const max = eg.backendInfo().maxThreads;
    const reference = workload(1, x);
    eg.setNumThreads(max);
    const err = panicOn(1, x);
    expect(err).toBeInstanceOf(eg.InternalError);
    expect((err as Error).message).toMatch(/worker thread [^]*deliberate test panic on pool worker/);
    expect(workload(max, x)).toEqual(reference);
    // The worker is back in the pool: it takes part in (and fails) the next such job too.
    expect(panicOn(1, x)).toBeInstanceOf(eg.InternalError);
    expect(workload(max, x)).toEqual(reference);
    expect(eg.backendInfo().threads).toBe(max);
    expect(() => eg.memory()).not.toThrow();
    x.dispose();
  });

  it('autograd still records after a panic inside a no-grad region of the engine', () => {
    const w = eg.tensor([1, 2, 3]).requiresGrad_();
    expect(panicOn(0, w)).toBeInstanceOf(eg.InternalError);
    expect(eg.isGradEnabled()).toBe(true);
    const loss = w.mul(w).sum();
    loss.backward();
    expect(Array.from(w.grad!.dataSync())).toEqual([2, 4, 6]);
    eg.dispose([w, loss]);
  });
});

describe('threads', () => {
  it('setNumThreads refuses counts outside the pool and says the maximum', () => {
    const max = eg.backendInfo().maxThreads;
    expect(() => eg.setNumThreads(1000)).toThrow(eg.ArgumentError);
    expect(() => eg.setNumThreads(1000)).toThrow(new RegExp(`from 1 to ${max}\\b`));
    expect(() => eg.setNumThreads(0)).toThrow(eg.ArgumentError);
    expect(() => eg.setNumThreads(1.5)).toThrow(eg.ArgumentError);
    expect(eg.backendInfo().threads).toBe(max);
    expect(eg.setNumThreads(1)).toBe(1);
    expect(eg.setNumThreads(max)).toBe(max);
  });

  it('workers drop --eval/--print/--input-type from the inherited execArgv', () => {
    expect(workerExecArgv(['--input-type=module', '-e', 'code', '--max-old-space-size=512'])).toEqual(['--max-old-space-size=512']);
    expect(workerExecArgv(['--eval', 'x', '--input-type', 'module', '--import', 'tsx', '-p', 'y'])).toEqual(['--import', 'tsx']);
    expect(workerExecArgv(['--print=1', '--enable-source-maps'])).toEqual(['--enable-source-maps']);
  });

  it('init() after shutdownWorkers() restarts the pool and reports the real thread count', async (ctx) => {
    if (!threaded) ctx.skip();
    const x = eg.randn([32, 32], 0, 1, { seed: 9 });
    const ref = workload(1, x);
    eg.shutdownWorkers();
    expect(eg.backendInfo().threads).toBe(1);
    expect(eg.backendInfo().maxThreads).toBe(1);
    expect(() => eg.setNumThreads(2)).toThrow(eg.ArgumentError);
    const info = await eg.init({ threads: 2 });
    expect(info.threads).toBe(2);
    expect(info.maxThreads).toBe(2);
    expect(eg.backendInfo().threads).toBe(2);
    expect(workload(2, x)).toEqual(ref);
    x.dispose();
  });
});

describe.runIf(!isBrowser)('node --input-type=module --eval', () => {
  it('a program run with --eval gets its worker pool', async () => {
    const { execFileSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const index = fileURLToPath(new URL('../sdk/index.ts', import.meta.url));
    const code = `import * as eg from ${JSON.stringify(index)}; const i = await eg.init({ threads: 2 }); console.log(JSON.stringify(i));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', code], { encoding: 'utf8', timeout: 60_000 });
    const info = JSON.parse(out.trim().split('\n').pop()!);
    expect(info.fallbackReason).toBeUndefined();
    expect(info.maxThreads).toBe(2);
  });
});
