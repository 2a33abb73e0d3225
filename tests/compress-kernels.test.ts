/**
 * int8 kernels through the engine: GEMM and convolution against exact integer references computed
 * in JS, requantization, pooling, residual add, concat, typed errors, and a digest of a fixed int8
 * workload that must be bitwise identical with 1 and 2 threads and in Node and Chromium
 * (`fixtures/compress-determinism.json`; regenerate with UPDATE_FIXTURES=1 in Node).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import fixture from './fixtures/compress-determinism.json';
import * as engine from '../sdk/compress/engine.js';
import { digest, isBrowser, setup, vals } from './helpers.js';

const C = eg.compress;

beforeAll(async () => {
  await setup();
});

/** Integers in [-128, 127] from the test value generator. */
function ints(n: number, seed: number): Int8Array {
  return Int8Array.from(vals(n, seed, -128, 128), (v) => Math.max(-128, Math.min(127, Math.floor(v))));
}

describe('int8 linear layer', () => {
  it('matches an exact integer reference and the float layer', () => {
    eg.tidy(() => {
      const [m, n, k] = [7, 19, 45];
      const w = eg.tensor(vals(n * k, 1, -0.5, 0.5), [n, k]);
      const b = eg.tensor(vals(n, 2, -0.2, 0.2), [n]);
      const xq = eg.tensor(ints(m * k, 3), [m, k], 'int8');
      const xp = { scale: 0.02, zeroPoint: -5 };
      const [wq, ws] = C.quantizePerChannel(w, 0);
      const out = { scale: 0.04, zeroPoint: 2 };
      // Accumulators through the float epilogue: (acc + offset) * (s_x * s_w[c]) in f32.
      const packed = engine.packWeights(wq, 0);
      const cf = engine.layerConstants(wq, ws, b, 0, xp, null);
      const yf = engine.qlinear(xq, packed, k, { c: cf, out: null, relu: false }).dataSync() as Float32Array;
      const wqv = wq.dataSync() as Int8Array;
      const wsv = ws.dataSync() as Float32Array;
      const bv = b.dataSync() as Float32Array;
      const xv = xq.dataSync() as Int8Array;
      const off = cf.offsets.dataSync() as Int32Array;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let p = 0; p < k; p++) acc += xv[i * k + p] * wqv[j * k + p];
          // offsets = round(bias / (s_x s_w)) - zp_x * Σ w
          let colsum = 0;
          for (let p = 0; p < k; p++) colsum += wqv[j * k + p];
          expect(off[j]).toBe(Math.floor(bv[j] / (0.02 * wsv[j]) + 0.5) + 5 * colsum);
          const want = Math.fround((acc + off[j]) * Math.fround(0.02 * wsv[j]));
          expect(Math.abs(yf[i * n + j] - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
        }
      }
      // int8 output: requantized, then dequantized, is within one output step of the float result.
      const c8 = engine.layerConstants(wq, ws, b, 0, xp, out);
      const y8 = engine.qlinear(xq, packed, k, { c: c8, out, relu: true });
      expect(y8.dtype).toBe('int8');
      const back = C.dequantizeTensor(y8, out).dataSync();
      for (let i = 0; i < m * n; i++) {
        const want = Math.max(0, yf[i]);
        expect(Math.abs(back[i] - Math.min(want, (127 - 2) * 0.04))).toBeLessThanOrEqual(0.04 * 0.5 + 1e-6);
      }
    });
  });

  it('reports shape, dtype and argument errors by name', () => {
    eg.tidy(() => {
      const w = eg.tensor(vals(8 * 6, 4), [8, 6]);
      const [wq, ws] = C.quantizePerChannel(w, 0);
      const packed = engine.packWeights(wq, 0);
      const c = engine.layerConstants(wq, ws, null, 0, { scale: 0.1, zeroPoint: 0 }, { scale: 0.1, zeroPoint: 0 });
      const o = { c, out: { scale: 0.1, zeroPoint: 0 }, relu: false };
      expect(() => engine.qlinear(eg.zeros([2, 6]), packed, 6, o)).toThrow(eg.DTypeError);
      expect(() => engine.qlinear(eg.zeros([2, 5], 'int8'), packed, 6, o)).toThrow(/\[2, 5\] has 5 features but the layer expects 6/);
      expect(() => engine.packWeights(w, 0)).toThrow(eg.DTypeError);
      expect(() => C.quantizeTensor(eg.zeros([2]), { scale: 0, zeroPoint: 0 })).toThrow(eg.ArgumentError);
      expect(() => C.quantizeTensor(eg.zeros([2]), { scale: 1, zeroPoint: 300 })).toThrow(/zero point/);
      expect(() => engine.qmaxPool2d(eg.zeros([1, 2, 2, 1], 'int8'), [3, 3], [1, 1], [0, 0, 0, 0])).toThrow(eg.ShapeError);
    });
  });
});

describe('int8 convolution, pooling, add, concat', () => {
  it('conv matches an exact integer reference (padding reads the zero point)', () => {
    eg.tidy(() => {
      const [n, h, w, cin, cout] = [2, 5, 6, 3, 10];
      const wt = eg.tensor(vals(3 * 3 * cin * cout, 5, -0.4, 0.4), [3, 3, cin, cout]);
      const [wq, ws] = C.quantizePerChannel(wt, 3);
      const xq = eg.tensor(ints(n * h * w * cin, 6), [n, h, w, cin], 'int8');
      const xp = { scale: 0.05, zeroPoint: 7 };
      const packed = engine.packWeights(wq, 1);
      const c = engine.layerConstants(wq, ws, null, 1, xp, null);
      const y = engine.qconv2d(xq, 7, packed, { kernel: [3, 3, cin], stride: [2, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 },
        { c, out: null, relu: false });
      const [oh, ow] = [3, 6];
      expect(y.shape).toEqual([n, oh, ow, cout]);
      const yv = y.dataSync();
      const xv = xq.dataSync();
      const wv = wq.dataSync();
      const off = c.offsets.dataSync();
      const sv = ws.dataSync();
      for (let b = 0; b < n; b++) for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) for (let co = 0; co < cout; co++) {
        let acc = off[co];
        for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) for (let ci = 0; ci < cin; ci++) {
          const iy = oy * 2 + ky - 1;
          const ix = ox + kx - 1;
          const xvv = iy < 0 || ix < 0 || iy >= h || ix >= w ? 7 : xv[((b * h + iy) * w + ix) * cin + ci];
          acc += xvv * wv[((ky * 3 + kx) * cin + ci) * cout + co];
        }
        const want = Math.fround(Math.fround(acc) * Math.fround(Math.fround(0.05) * sv[co]));
        expect(yv[((b * oh + oy) * ow + ox) * cout + co]).toBe(want);
      }
    });
  });

  it('conv with the 2x2 max pool fused gives exactly the pooled conv output', () => {
    eg.tidy(() => {
      // Odd output sizes (the last row and column are dropped), groups, padding and a fused ReLU.
      const [n, h, w, cin, cout, groups] = [3, 9, 7, 4, 12, 2];
      const wt = eg.tensor(vals(3 * 3 * (cin / groups) * cout, 7, -0.4, 0.4), [3, 3, cin / groups, cout]);
      const [wq, ws] = C.quantizePerChannel(wt, 3);
      const xq = eg.tensor(ints(n * h * w * cin, 8), [n, h, w, cin], 'int8');
      const xp = { scale: 0.05, zeroPoint: -3 };
      const out = { scale: 0.08, zeroPoint: -10 };
      const packed = engine.packWeights(wq, groups);
      const c = engine.layerConstants(wq, ws, null, groups, xp, out);
      const geo = { kernel: [3, 3, cin / groups] as [number, number, number], stride: [1, 1] as [number, number], padding: [1, 1, 1, 1] as [number, number, number, number], dilation: [1, 1] as [number, number], groups };
      for (const threads of [1, 2]) {
        eg.setNumThreads(threads);
        const plain = engine.qconv2d(xq, -3, packed, geo, { c, out, relu: true });
        const pooled = engine.qmaxPool2d(plain, [2, 2], [2, 2], [0, 0, 0, 0]);
        const fused = engine.qconv2d(xq, -3, packed, geo, { c, out, relu: true }, true);
        expect(fused.shape).toEqual([n, 4, 3, cout]);
        expect(Array.from(fused.dataSync())).toEqual(Array.from(pooled.dataSync()));
      }
      eg.setNumThreads(2);
      const cf = engine.layerConstants(wq, ws, null, groups, xp, null);
      expect(() => engine.qconv2d(xq, -3, packed, geo, { c: cf, out: null, relu: false }, true)).toThrow(eg.ArgumentError);
    });
  });

  it('pools, adds and concatenates int8 tensors', () => {
    eg.tidy(() => {
      const x = eg.tensor(Int8Array.from([1, -5, 3, 7, -128, 2, 9, 0]), [1, 2, 2, 2], 'int8');
      expect(Array.from(engine.qmaxPool2d(x, [2, 2], [2, 2], [0, 0, 0, 0]).dataSync())).toEqual([9, 7]);
      expect(Array.from(engine.qavgPool2d(x, [2, 2], [2, 2], [0, 0, 0, 0], false, 0).dataSync())).toEqual([-29, 1]);
      const qa = { scale: 0.1, zeroPoint: 0 };
      const qb = { scale: 0.2, zeroPoint: 10 };
      const qo = { scale: 0.3, zeroPoint: -3 };
      const a = eg.tensor(Int8Array.from([10, -20, 100, 0]), [4], 'int8');
      const b = eg.tensor(Int8Array.from([10, 20, -100, 127]), [4], 'int8');
      const s = engine.qadd(a, qa, b, qb, qo, false).dataSync();
      const real = [1 + 0, -2 + 2, 10 - 22, 0 + 23.4];
      real.forEach((r, i) => expect(Math.abs(s[i] - (Math.floor(r / 0.3 + 0.5) - 3))).toBeLessThanOrEqual(1));
      const r = engine.qadd(a, qa, b, qb, qo, true).dataSync();
      r.forEach((v, i) => expect(v).toBe(Math.max(s[i], -3)));
      const cat = engine.qconcat([a, b], [qa, qo], -1, qo).dataSync();
      expect(Array.from(cat.subarray(4))).toEqual(Array.from(b.dataSync()));
      expect(Array.from(cat.subarray(0, 4))).toEqual([0, -10, 30, -3]);
      expect(() => engine.qadd(a, qa, eg.zeros([3], 'int8'), qb, qo, false)).toThrow(eg.ShapeError);
    });
  });

  it('quantize/dequantize round trip within half a step; zero is exact', () => {
    eg.tidy(() => {
      const q = C.chooseQParams(-1, 3);
      expect(q.zeroPoint).toBe(-64);
      const x = eg.tensor(vals(500, 7, -1, 3));
      const back = C.dequantizeTensor(C.quantizeTensor(x, q), q).dataSync();
      const xv = x.dataSync();
      for (let i = 0; i < 500; i++) expect(Math.abs(back[i] - xv[i])).toBeLessThanOrEqual(q.scale / 2 + 1e-6);
      expect(C.dequantizeTensor(C.quantizeTensor(eg.zeros([1]), q), q).item()).toBe(0);
    });
  });
});

/** A fixed int8 workload: a residual CNN (nn.Graph) quantized from seeded weights and data. */
function int8Workload(): ArrayBufferView[] {
  return eg.tidy(() => {
    const { nn } = eg;
    const g = nn.graph;
    const x = g.input('x');
    const c1 = g.call(new nn.Conv2d(3, 16, 3, { padding: 'same', seed: 31 }), x, 'c1');
    const b1 = g.call(new nn.BatchNorm2d(16), c1, 'b1');
    const r1 = g.call(new nn.ReLU(), b1, 'r1');
    const c2 = g.call(new nn.Conv2d(16, 16, 3, { padding: 'same', seed: 32 }), r1, 'c2');
    const s = g.call(new nn.ReLU(), g.add(c2, r1), 'r2');
    const side = g.call(new nn.Conv2d(3, 8, 1, { seed: 33 }), x, 'side');
    const cat = g.concat([s, side]);
    const p = g.call(new nn.MaxPool2d(2), cat, 'p');
    const f = g.call(new nn.Flatten(), p, 'f');
    const model = new nn.Graph({ inputs: x, outputs: g.call(new nn.Linear(4 * 4 * 24, 12, { seed: 34 }), f, 'fc') });
    // Non-trivial batch-norm statistics.
    model.stateDict()['b1.running_mean'].assign(eg.rand([16], -0.2, 0.2, { seed: 35 }));
    model.stateDict()['b1.running_var'].assign(eg.rand([16], 0.5, 2, { seed: 36 }));
    const calib = eg.rand([64, 8, 8, 3], 0, 1, { seed: 37 });
    const qm = C.quantize(model, calib, { method: 'mse' });
    const inp = eg.rand([40, 8, 8, 3], 0, 1, { seed: 38 });
    const y = qm.predict(inp);
    const sm = qm.serialize();
    qm.dispose();
    model.dispose();
    return [y.dataSync(), sm];
  });
}

describe('determinism', () => {
  it('int8 inference gives the stored digest with 1 and 2 threads', async () => {
    const digests: string[] = [];
    for (const threads of [1, 2]) {
      expect(eg.setNumThreads(threads)).toBe(threads);
      digests.push(await digest(int8Workload()));
    }
    eg.setNumThreads(2);
    if (!isBrowser && (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.UPDATE_FIXTURES) {
      console.log(`compress determinism digest: ${digests[0]}`);
    }
    expect(digests[1]).toBe(digests[0]);
    expect(digests[0]).toBe(fixture.digest);
  });
});
