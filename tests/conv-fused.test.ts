/**
 * Conv2d + ReLU + 2x2 max pooling in one op (`nn.functional.conv2dReluMaxPool2d`, and
 * `Sequential` fusing Conv2d(relu) → MaxPool2d(2) at inference): bitwise the unfused layers, the
 * same digest in Node and Chromium and on 1 or 2 threads, hooks still honoured, no leaks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup, vals } from './helpers.js';
import { bits, expectFlatOver100Calls, fnv1a, sameBitsOnOneAndTwoThreads } from './explain-fixtures.js';

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

const { nn } = eg;
const F = nn.functional;

/** The benchmark's small CNN (bench/workloads/cnn-infer.ts) with seeded weights. */
function cnn(): eg.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 16, 3, { padding: 'same', activation: 'relu', seed: 1, biasInit: 'glorotUniform' }), new nn.MaxPool2d(2),
    new nn.Conv2d(16, 32, 3, { padding: 'same', activation: 'relu', seed: 3, biasInit: 'glorotUniform' }), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(7 * 7 * 32, 10, { seed: 5 }),
  ).eval();
}

/** The layers one by one (no fusion), freeing intermediates. */
function layerByLayer(m: eg.nn.Sequential, x: eg.Tensor): eg.Tensor {
  let h = x;
  for (const l of m.layers) {
    const next = l.forward(h);
    if (h !== x) h.dispose();
    h = next;
  }
  return h;
}

describe('conv2dReluMaxPool2d', () => {
  it('is bitwise maxPool2d(conv2d(relu)) on fused and unfused geometries, with or without bias', () => {
    // [x shape, kernel shape, options]: the benchmark's layers (direct and implicit-GEMM kernels),
    // odd sizes, a batch, stride 2, dilation, groups, K past 256.
    const cases: [number[], number[], eg.nn.functional.Conv2dOptions][] = [
      [[1, 14, 14, 16], [3, 3, 16, 32], { padding: 'same' }],
      [[1, 28, 28, 1], [3, 3, 1, 16], { padding: 'same' }],
      [[2, 9, 11, 5], [3, 3, 5, 13], { padding: 'same' }],
      [[3, 7, 8, 8], [2, 3, 4, 10], { stride: [2, 1], padding: [0, 1, 1, 0], dilation: [1, 2], groups: 2 }],
      [[1, 6, 6, 40], [3, 3, 40, 9], { padding: 1 }],
    ];
    cases.forEach(([xs, ws, o], i) => {
      const x = eg.tensor(vals(xs.reduce((a, b) => a * b), 10 + i), xs);
      const w = eg.tensor(vals(ws.reduce((a, b) => a * b), 20 + i), ws);
      const b = eg.tensor(vals(ws[3], 30 + i), [ws[3]]);
      for (const bias of [b, null]) {
        const want = eg.tidy(() => F.maxPool2d(F.conv2d(x, w, bias, { ...o, activation: 'relu' }), 2));
        const got = eg.noGrad(() => F.conv2dReluMaxPool2d(x, w, bias, o));
        expect(got.shape).toEqual(want.shape);
        expect(bits(got), `case ${i}`).toEqual(bits(want));
        eg.dispose([want, got]);
      }
      eg.dispose([x, w, b]);
    });
  });

  it('records the gradient of the two ops when one is needed', () => {
    const x = eg.tensor(vals(2 * 6 * 6 * 3, 1), [2, 6, 6, 3]);
    const w = eg.tensor(vals(3 * 3 * 3 * 4, 2), [3, 3, 3, 4]).requiresGrad_();
    const w2 = eg.tensor(vals(3 * 3 * 3 * 4, 2), [3, 3, 3, 4]).requiresGrad_();
    const l1 = eg.tidy(() => F.conv2dReluMaxPool2d(x, w, null, { padding: 'same' }).square().sum());
    const l2 = eg.tidy(() => F.maxPool2d(F.conv2d(x, w2, null, { padding: 'same', activation: 'relu' }), 2).square().sum());
    l1.backward();
    l2.backward();
    expect(bits(l1)).toEqual(bits(l2));
    expect(bits(w.grad!)).toEqual(bits(w2.grad!));
    eg.dispose([x, w, w2, w.grad!, w2.grad!, l1, l2]);
  });

  it('refuses bad arguments with typed errors', () => {
    const x = eg.zeros([1, 4, 4, 2]);
    const w = eg.zeros([3, 3, 2, 2]);
    expect(() => F.conv2dReluMaxPool2d(null as unknown as eg.Tensor, w)).toThrow(eg.EdgegradError);
    expect(() => F.conv2dReluMaxPool2d(x, w, null, { activation: 'gelu' as 'relu' })).toThrow(eg.ArgumentError);
    expect(() => F.conv2dReluMaxPool2d(x, {} as unknown as eg.Tensor)).toThrow(eg.EdgegradError);
    const r3 = eg.zeros([4, 4, 2]);
    expect(() => F.conv2dReluMaxPool2d(r3, w)).toThrow(eg.ShapeError);
    const w3 = eg.zeros([3, 3, 3, 2]);
    expect(() => F.conv2dReluMaxPool2d(x, w3)).toThrow(eg.ShapeError);
    // A 1x1 output has no 2x2 window: the pooling's error.
    const small = eg.zeros([1, 3, 3, 2]);
    expect(() => F.conv2dReluMaxPool2d(small, w)).toThrow(eg.ShapeError);
    eg.dispose([x, w, r3, w3, small]);
  });
});

describe('Sequential fuses Conv2d(relu) → MaxPool2d(2) at inference', () => {
  it('gives the layer-by-layer bits, the same digest in every runtime and on 1 or 2 threads', () => {
    const m = cnn();
    const x = eg.tensor(vals(3 * 28 * 28, 7), [3, 28, 28, 1]);
    const out = sameBitsOnOneAndTwoThreads(() => {
      const fused = eg.noGrad(() => m.forward(x));
      const plain = eg.noGrad(() => layerByLayer(m, x));
      const b = bits(fused);
      expect(b).toEqual(bits(plain));
      eg.dispose([fused, plain]);
      return b;
    });
    eg.setNumThreads(2);
    expect(fnv1a(out)).toBe('b476eb6c');
    eg.dispose(x);
    m.dispose();
  });

  it('leaves hooked layers and training-mode graphs alone', () => {
    const m = cnn();
    const x = eg.tensor(vals(28 * 28, 8), [1, 28, 28, 1]);
    let seen = 0;
    const handle = m.layers[1].registerForwardHook(() => { seen++; });
    eg.noGrad(() => m.forward(x)).dispose();
    expect(seen).toBe(1);
    handle.remove();
    // With a tape the layers run one by one and gradients reach the first conv.
    const loss = eg.tidy(() => m.forward(x).sum());
    loss.backward();
    const g = m.layers[0].namedParameters()[0][1].grad!;
    expect(g.shape).toEqual([3, 3, 1, 16]);
    eg.dispose([x, loss]);
    m.dispose();
  });

  it('leaks nothing over 100 calls', () => {
    const m = cnn();
    const x = eg.tensor(vals(28 * 28, 9), [1, 28, 28, 1]);
    expectFlatOver100Calls([['Sequential.forward (fused)', () => eg.noGrad(() => m.forward(x))]]);
    eg.dispose(x);
    m.dispose();
  });
});
