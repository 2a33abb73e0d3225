/**
 * eg.he encrypted inference (issue 17 §3): encrypted vs plaintext logits within 1e-3 and the same
 * predicted classes for a Linear layer, a 2-layer MLP with Square, a tiny CNN with Square, AvgPool2d
 * and a folded BatchNorm, PolyActivation (including a negative x² coefficient), both slot packings,
 * and a depth-5 chain on a 16384-degree context where scales and levels must keep lining up.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';

const { nn, he } = eg;

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

/** Encrypts `x`, evaluates `model` compiled with `packing` on it, decrypts; compares with the plaintext model. */
async function roundTrip(model: eg.nn.Module, inputShape: number[], n: number, packing: 'single' | 'batch', seed: number, scale?: number) {
  const compiled = he.compile(model, { inputShape, packing });
  const ctx = await he.contextForModel(compiled, scale === undefined ? {} : { scale });
  const client = ctx.generateKeys({ galois: compiled.galoisSteps });
  const evaluator = await compiled.evaluator(client.publicBundle({ compression: 'none' }));
  const x = eg.randn([n, ...inputShape], 0, 1, { seed });
  const ct = client.encrypt(x, compiled.encryptOptions);
  const out = evaluator.forward(ct);
  const got = client.decrypt(out);
  const want = eg.noGrad(() => model.forward(x));
  const wantFlat = want.reshape([n, -1]);
  const plain = he.plaintextForward(compiled, x);
  const g = got.dataSync() as Float32Array;
  const w = wantFlat.dataSync() as Float32Array;
  const p = plain.dataSync() as Float32Array;
  let err = 0;
  let plainErr = 0;
  for (let i = 0; i < w.length; i++) {
    err = Math.max(err, Math.abs(g[i] - w[i]));
    plainErr = Math.max(plainErr, Math.abs(p[i] - w[i]));
  }
  const argmax = (t: eg.Tensor) => eg.tidy(() => Array.from(t.argMax(1).dataSync()));
  const result = {
    err, plainErr, shape: got.shape, depth: compiled.depth, level: out.level, params: ctx.params,
    sameClasses: JSON.stringify(argmax(got)) === JSON.stringify(argmax(wantFlat)), spread: eg.tidy(() => wantFlat.abs().max().item()),
  };
  eg.dispose([x, got, want, wantFlat, plain]);
  for (const o of [ct, out, evaluator, client, ctx]) o.dispose();
  return result;
}

describe('eg.he encrypted inference matches plaintext', () => {
  it('Linear (logistic regression) in both packings', async () => {
    for (const packing of ['single', 'batch'] as const) {
      const model = new nn.Linear(30, 2, { seed: 1, biasInit: { uniform: [-0.5, 0.5] } });
      const r = await roundTrip(model, [30], 3, packing, 11);
      model.dispose();
      expect(r.shape).toEqual([3, 2]);
      expect(r.depth).toBe(1);
      expect(r.level).toBe(0);
      expect(r.err).toBeLessThan(1e-3);
      expect(r.sameClasses).toBe(true);
    }
  });

  it('30-16-2 MLP with Square, batch packing', async () => {
    const model = new nn.Sequential(new nn.Linear(30, 16, { seed: 2 }), new nn.Square(), new nn.Linear(16, 2, { seed: 3 }));
    const r = await roundTrip(model, [30], 20, 'batch', 12);
    model.dispose();
    expect(r.depth).toBe(3);
    expect(r.spread).toBeGreaterThan(0.1); // the check is not vacuous: logits are far from 0
    expect(r.err).toBeLessThan(1e-3);
    expect(r.plainErr).toBeLessThan(1e-4);
    expect(r.sameClasses).toBe(true);
  });

  it('tiny CNN: Conv2d + BatchNorm2d (folded) + Square + AvgPool2d + Flatten + Linear', async () => {
    const model = new nn.Sequential(
      new nn.Conv2d(1, 2, 3, { seed: 4, padding: 'same', stride: 2 }), new nn.BatchNorm2d(2), new nn.Square(),
      new nn.AvgPool2d(2), new nn.Flatten(), new nn.Linear(8, 3, { seed: 5 }),
    );
    const sd = model.stateDict();
    eg.tidy(() => {
      sd['1.running_mean'].assign(eg.tensor([0.2, -0.1]));
      sd['1.running_var'].assign(eg.tensor([0.5, 2]));
      sd['1.weight'].assign(eg.tensor([1.5, 0.7]));
      sd['1.bias'].assign(eg.tensor([0.1, -0.3]));
    });
    model.eval();
    const r = await roundTrip(model, [8, 8, 1], 4, 'batch', 13);
    model.dispose();
    // conv+BN, square, pool+flatten+linear: 3 levels.
    expect(r.depth).toBe(3);
    expect(r.err).toBeLessThan(1e-3);
    expect(r.sameClasses).toBe(true);
  });

  it('PolyActivation (negative a) and single packing', async () => {
    const model = new nn.Sequential(new nn.Linear(6, 5, { seed: 6 }), new nn.PolyActivation({ a: -0.3, b: 0.8, c: 0.2 }), new nn.Linear(5, 3, { seed: 7 }));
    const r = await roundTrip(model, [6], 2, 'single', 14);
    model.dispose();
    expect(r.depth).toBe(3);
    expect(r.err).toBeLessThan(1e-3);
  });

  it('logits in the thousands still decrypt (20 bits of headroom above the scale at the output)', async () => {
    const model = new nn.Sequential(new nn.Linear(6, 4, { seed: 16 }), new nn.Square(), new nn.Linear(4, 2, { seed: 17, weightInit: { uniform: [200, 400] } }));
    const r = await roundTrip(model, [6], 3, 'batch', 18);
    model.dispose();
    expect(r.params.coeffModulusBits[0] - r.params.scaleBits).toBeGreaterThanOrEqual(20);
    expect(r.spread).toBeGreaterThan(1000);
    expect(r.err / r.spread).toBeLessThan(1e-4); // an overflow of the last prime would give garbage, not 1e-4
  });

  it('a depth-4 chain (Square on the input, linear activation folded, PolyActivation) with a 33-bit scale keeps scales and levels aligned', async () => {
    const model = new nn.Sequential(
      new nn.Square(), new nn.Linear(4, 6, { seed: 8 }), new nn.PolyActivation({ a: 0, b: 2, c: -1 }), new nn.Linear(6, 6, { seed: 9 }),
      new nn.PolyActivation({ a: 0.2, b: 0.5, c: 0.1 }),
    );
    const r = await roundTrip(model, [4], 2, 'batch', 15, 33);
    model.dispose();
    // identity (scaled for the first square), square, affine (Linear ∘ linear poly ∘ Linear), poly.
    expect(r.depth).toBe(4);
    expect(r.params.coeffModulusBits).toEqual([42, 33, 33, 33, 33, 42]);
    expect(r.level).toBe(0);
    expect(r.err).toBeLessThan(1e-3);
  });
});
