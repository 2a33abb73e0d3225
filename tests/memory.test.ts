/** Memory: scopes free intermediates, dispose frees, and a long training loop stays flat. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

describe('scopes', () => {
  it('tidy frees intermediates and keeps what it returns', () => {
    const before = eg.memory().numTensors;
    const kept = eg.tidy(() => {
      const a = eg.ones([100]);
      const b = a.mul(2).add(1);
      return { out: b.sum(), list: [b.mean()] };
    });
    expect(eg.memory().numTensors).toBe(before + 2);
    expect(kept.out.item()).toBe(300);
    eg.dispose(kept);
    expect(eg.memory().numTensors).toBe(before);
  });
  it('Sequential inference without a tape frees its intermediates (no tidy needed)', () => {
    const { nn } = eg;
    const m = new nn.Sequential(new nn.Linear(4, 8, { seed: 1 }), new nn.ReLU(), new nn.Dropout(0.5), new nn.Flatten(), new nn.Linear(8, 2, { seed: 2 })).eval();
    const x = eg.ones([3, 4]);
    const before = eg.memory().numTensors;
    const y = eg.noGrad(() => m.forward(x));
    expect(eg.memory().numTensors).toBe(before + 1);
    expect(x.isDisposed).toBe(false);
    // With a tape the intermediates stay (backward needs them) and the scope frees them.
    const z = eg.tidy(() => m.forward(x).sum());
    expect(Number.isFinite(z.item())).toBe(true);
    expect(eg.tidy(() => eg.noGrad(() => m.forward(x))).dataSync()).toEqual(y.dataSync());
    eg.dispose([x, y, z]);
    m.dispose();
  });
  it('nested tidy moves kept tensors to the outer scope', () => {
    const before = eg.memory().numTensors;
    eg.tidy(() => {
      const inner = eg.tidy(() => eg.ones([3]).mul(2));
      expect(inner.isDisposed).toBe(false);
      return undefined;
    });
    expect(eg.memory().numTensors).toBe(before);
  });
  it('keep() survives the scope; an exception still frees the scope', () => {
    const before = eg.memory().numTensors;
    let k: eg.Tensor | undefined;
    eg.tidy(() => {
      k = eg.keep(eg.ones([2]));
      eg.zeros([4]);
    });
    expect(k!.isDisposed).toBe(false);
    expect(eg.memory().numTensors).toBe(before + 1);
    k!.dispose();
    expect(() => eg.tidy(() => {
      eg.ones([5]);
      throw new Error('boom');
    })).toThrow('boom');
    expect(eg.memory().numTensors).toBe(before);
  });
  it('views share storage; bytes are freed when the last view goes', () => {
    const m0 = eg.memory();
    const a = eg.zeros([1000]);
    const v = a.reshape([10, 100]);
    const m1 = eg.memory();
    expect(m1.numTensors).toBe(m0.numTensors + 2);
    expect(m1.numBytes).toBe(m0.numBytes + 4000);
    a.dispose();
    expect(eg.memory().numBytes).toBe(m0.numBytes + 4000);
    v.dispose();
    expect(eg.memory().numBytes).toBe(m0.numBytes);
  });
});

describe('long loops', () => {
  it('1,000 training steps leave memory() and wasm memory flat', () => {
    eg.setNumThreads(2);
    const w1 = eg.keep(eg.randn([16, 32], 0, 0.3, { seed: 1 }).requiresGrad_());
    const w2 = eg.keep(eg.randn([32, 4], 0, 0.3, { seed: 2 }).requiresGrad_());
    const x = eg.keep(eg.randn([64, 16], 0, 1, { seed: 3 }));
    const y = eg.keep(eg.randint([64, 1], 0, 4, { seed: 4 }));
    const step = () => eg.tidy(() => {
      const logp = x.matmul(w1).relu().matmul(w2).logSoftmax();
      const loss = logp.gather(1, y).mean().neg();
      loss.backward();
      eg.noGrad(() => {
        for (const w of [w1, w2]) {
          w.assign(w.sub(w.grad!.mul(0.1)));
          w.zeroGrad();
        }
      });
      return loss.item();
    });
    const first = step();
    for (let i = 0; i < 10; i++) step();
    const m0 = eg.memory();
    let last = first;
    for (let i = 0; i < 1000; i++) last = step();
    const m1 = eg.memory();
    expect(m1.numTensors).toBe(m0.numTensors);
    expect(m1.numBytes).toBe(m0.numBytes);
    expect(m1.wasmBytes).toBe(m0.wasmBytes);
    expect(last).toBeLessThan(first);
    eg.dispose([w1, w2, x, y]);
  });
});
