/** Tensors: creation, dtypes, copy-out, views, random streams, autograd controls. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { isBrowser, setup } from './helpers.js';

let info: eg.BackendInfo;
beforeAll(async () => {
  info = await setup();
});

describe('backend', () => {
  it('uses the threaded SIMD build with 2 threads (cross-origin isolated in the browser)', () => {
    expect(info.build).toBe('simd-threads');
    expect(info.maxThreads).toBe(2);
    expect(info.runtime).toBe(isBrowser ? 'browser' : 'node');
    expect(eg.setNumThreads(1)).toBe(1);
    expect(eg.backendInfo().threads).toBe(1);
    expect(() => eg.setNumThreads(8)).toThrow(eg.ArgumentError); // more than the pool: refused, not clamped
    expect(eg.backendInfo().threads).toBe(1);
    expect(eg.setNumThreads(2)).toBe(2);
  });
});

describe('creation and copy-out', () => {
  it('infers shapes and dtypes', () => {
    const a = eg.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(a.shape).toEqual([2, 3]);
    expect(a.dtype).toBe('float32');
    expect(a.arraySync()).toEqual([[1, 2, 3], [4, 5, 6]]);
    const i = eg.tensor(new Int32Array([1, -2, 3]));
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([1, -2, 3]);
    const q = eg.tensor([-128, 0, 127], undefined, 'int8');
    expect(q.dataSync()).toBeInstanceOf(Int8Array);
    expect(Array.from(q.dataSync())).toEqual([-128, 0, 127]);
    expect(eg.scalar(3.5).shape).toEqual([]);
    expect(eg.scalar(3.5).item()).toBe(3.5);
  });
  it('fills constants and ranges', () => {
    expect(Array.from(eg.zeros([2, 2]).dataSync())).toEqual([0, 0, 0, 0]);
    expect(Array.from(eg.ones([3], 'int32').dataSync())).toEqual([1, 1, 1]);
    expect(Array.from(eg.full([2], 7.5).dataSync())).toEqual([7.5, 7.5]);
    expect(Array.from(eg.arange(5).dataSync())).toEqual([0, 1, 2, 3, 4]);
    expect(Array.from(eg.arange(1, 2, 0.25).dataSync())).toEqual([1, 1.25, 1.5, 1.75]);
    expect(Array.from(eg.arange(0, 6, 2, 'int32').dataSync())).toEqual([0, 2, 4]);
  });
  it('data() copies, and later writes do not change it', async () => {
    const a = eg.tensor([1, 2, 3]);
    const d = await a.data();
    a.assign(eg.tensor([9, 9, 9]));
    expect(Array.from(d)).toEqual([1, 2, 3]);
    expect(Array.from(a.dataSync())).toEqual([9, 9, 9]);
  });
  it('casts', () => {
    const f = eg.tensor([1.7, -1.7, 300]);
    expect(Array.from(f.cast('int32').dataSync())).toEqual([1, -1, 300]);
    expect(Array.from(f.cast('int8').dataSync())).toEqual([1, -1, 127]);
    expect(Array.from(eg.tensor([3], undefined, 'int32').cast('float32').dataSync())).toEqual([3]);
  });
});

describe('views', () => {
  it('transpose and slice are views; contiguous() materialises', () => {
    const a = eg.tensor([[1, 2, 3], [4, 5, 6]]);
    const t = a.transpose();
    expect(t.isContiguous).toBe(false);
    expect(t.arraySync()).toEqual([[1, 4], [2, 5], [3, 6]]);
    expect(t.contiguous().isContiguous).toBe(true);
    expect(a.slice([0, 1], [2, 3]).arraySync()).toEqual([[2, 3], [5, 6]]);
    expect(a.slice([1, 0]).arraySync()).toEqual([[4, 5, 6]]);
    expect(a.reshape([3, 2]).arraySync()).toEqual([[1, 2], [3, 4], [5, 6]]);
    expect(t.reshape([6]).arraySync()).toEqual([1, 4, 2, 5, 3, 6]);
    expect(a.expand([2, 2, 3]).shape).toEqual([2, 2, 3]);
    expect(a.permute([1, 0]).shape).toEqual([3, 2]);
  });
  it('gathers and selects', () => {
    const a = eg.tensor([[1, 2], [3, 4], [5, 6]]);
    expect(a.indexSelect(0, eg.tensor([2, 0], undefined, 'int32')).arraySync()).toEqual([[5, 6], [1, 2]]);
    expect(a.gather(1, eg.tensor([[1], [0], [1]], undefined, 'int32')).arraySync()).toEqual([[2], [3], [6]]);
    expect(eg.concat([a, a], 1).shape).toEqual([3, 4]);
    expect(eg.stack([a, a]).shape).toEqual([2, 3, 2]);
  });
});

describe('ops', () => {
  it('computes reductions, softmax and comparisons', () => {
    const a = eg.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(Array.from(a.sum(0).dataSync())).toEqual([5, 7, 9]);
    expect(Array.from(a.mean(1).dataSync())).toEqual([2, 5]);
    expect(Array.from(a.max().dataSync())).toEqual([6]);
    expect(Array.from(a.argMax(1).dataSync())).toEqual([2, 2]);
    const s = eg.tensor([1000, 1000, -Infinity]).softmax();
    expect(Array.from(s.dataSync())).toEqual([0.5, 0.5, 0]);
    const ls = eg.tensor([0, -1e4]).logSoftmax().dataSync();
    expect(ls[0]).toBe(0);
    expect(Array.from(a.greater(3).dataSync())).toEqual([0, 0, 0, 1, 1, 1]);
    expect(a.matmul(a.transpose()).arraySync()).toEqual([[14, 32], [32, 77]]);
  });
  it('keeps NaN visible instead of hiding it', () => {
    const n = eg.tensor([NaN, 1]);
    expect(Number.isNaN(n.relu().dataSync()[0])).toBe(true);
    expect(Number.isNaN(n.clamp(0, 1).dataSync()[0])).toBe(true);
    expect(Number.isNaN(n.max().item())).toBe(true);
  });
});

describe('random streams', () => {
  it('are reproducible from a seed and independent of the global stream', () => {
    const a = eg.randn([5], 0, 1, { seed: 42 }).dataSync();
    eg.manualSeed(7);
    eg.rand([3]);
    const b = eg.randn([5], 0, 1, { seed: 42 }).dataSync();
    expect(Array.from(a)).toEqual(Array.from(b));
    eg.manualSeed(7);
    const c = eg.rand([4]).dataSync();
    eg.manualSeed(7);
    const d = eg.rand([4]).dataSync();
    expect(Array.from(c)).toEqual(Array.from(d));
  });
  it('has sensible statistics', () => {
    const u = eg.rand([20000], 2, 4, { seed: 1 });
    expect(u.mean().item()).toBeCloseTo(3, 1);
    expect(u.min().item()).toBeGreaterThanOrEqual(2);
    expect(u.max().item()).toBeLessThan(4);
    const n = eg.randn([20000], 1, 2, { seed: 2 });
    expect(n.mean().item()).toBeCloseTo(1, 1);
    expect(n.sub(1).square().mean().sqrt().item()).toBeCloseTo(2, 1);
    const p = Array.from(eg.randperm(10, { seed: 3 }).dataSync()).sort((x, y) => x - y);
    expect(p).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const b = eg.bernoulli([10000], 0.3, { seed: 4 });
    expect(b.mean().item()).toBeCloseTo(0.3, 1);
    const r = eg.randint([1000], 3, 6, { seed: 5 }).dataSync();
    expect(Math.min(...r)).toBe(3);
    expect(Math.max(...r)).toBe(5);
  });
});

describe('autograd controls', () => {
  it('accumulates, zeroes, detaches and respects noGrad', () => {
    const x = eg.tensor([1, 2]).requiresGrad_();
    x.mul(3).sum().backward();
    x.mul(3).sum().backward();
    expect(Array.from(x.grad!.dataSync())).toEqual([6, 6]);
    x.zeroGrad();
    expect(x.grad).toBeNull();
    const y = eg.noGrad(() => x.exp());
    expect(y.requiresGrad).toBe(false);
    expect(eg.isGradEnabled()).toBe(true);
    expect(x.mul(2).detach().requiresGrad).toBe(false);
    expect(x.isLeaf).toBe(true);
    expect(x.mul(2).gradFn).toBe('mul_scalar');
  });
  it('keeps gradients of intermediate tensors on request', () => {
    const x = eg.tensor([1, 2]).requiresGrad_();
    const h = x.mul(2).retainGrad();
    h.square().sum().backward();
    expect(Array.from(h.grad!.dataSync())).toEqual([4, 8]);
    expect(Array.from(x.grad!.dataSync())).toEqual([8, 16]);
  });
  it('backward with an explicit gradient and retainGraph', () => {
    const x = eg.tensor([1, 2, 3]).requiresGrad_();
    const y = x.square();
    y.backward(eg.tensor([1, 0, 1]), { retainGraph: true });
    y.backward(eg.tensor([1, 0, 1]));
    expect(Array.from(x.grad!.dataSync())).toEqual([4, 0, 12]);
  });
});
