/** Shared test helpers: engine setup, gradient checking, runtime detection. */
import { afterEach, beforeEach, expect } from 'vitest';
import * as eg from '../sdk/index.js';

export const isBrowser = typeof window !== 'undefined';

/**
 * Checks after each test of the calling file that it left no tensor behind. A leak then shows in the
 * test that leaks, not later, when the garbage collector frees it in the middle of another test's
 * memory check (which then sees fewer tensors than its baseline).
 */
export function expectEachTestFreesItsTensors(): void {
  let liveAtStart = 0;
  beforeEach(() => {
    liveAtStart = eg.memory().numTensors;
  });
  afterEach(() => {
    expect(eg.memory().numTensors, 'tensors left by this test').toBe(liveAtStart);
  });
}

/** Initialises the engine once per test file (threaded, 2 threads where available). */
export async function setup(opts: eg.InitOptions = {}): Promise<eg.BackendInfo> {
  return eg.init({ threads: 2, ...opts });
}

export interface GradInput {
  shape: number[];
  values: number[] | Float32Array;
}

/** Deterministic test values in [lo, hi) from a small JS generator (usable before `init`). */
export function vals(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = (seed * 2654435761 + 12345) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = lo + ((hi - lo) * s) / 4294967296;
  }
  return out;
}

/** Values in ±[lo, hi] (away from 0, so kinks like relu's stay out of finite differences). */
export function awayFromZero(n: number, seed: number, lo = 0.1, hi = 1): Float32Array {
  const m = vals(n, seed, lo, hi);
  const s = vals(n, seed + 1000, 0, 1);
  return m.map((v, i) => (s[i] < 0.5 ? -v : v));
}

/**
 * Compares autograd's gradient of sum(f(xs) * w) (w random) with central finite differences, for
 * every element of every input.
 */
export function gradcheck(name: string, inputs: GradInput[], f: (xs: eg.Tensor[]) => eg.Tensor, tol = 2e-2): void {
  const eps = 1e-3;
  eg.tidy(() => {
    const xs = inputs.map((i) => eg.tensor(Float32Array.from(i.values), i.shape).requiresGrad_());
    const out = f(xs);
    const w = eg.rand(out.shape, -1, 1, { seed: 99 });
    out.mul(w).sum().backward();
    const wv = w.dataSync();
    const objective = (ins: GradInput[]): number =>
      eg.tidy(() => eg.noGrad(() => {
        const o = f(ins.map((i) => eg.tensor(Float32Array.from(i.values), i.shape))).dataSync();
        let s = 0;
        for (let k = 0; k < o.length; k++) s += o[k] * wv[k];
        return s;
      }));
    xs.forEach((x, ii) => {
      const g = x.grad;
      expect(g, `${name}: input ${ii} got no gradient`).not.toBeNull();
      const analytic = g!.dataSync();
      for (let j = 0; j < inputs[ii].values.length; j++) {
        const plus = inputs.map((i) => ({ shape: i.shape, values: Float32Array.from(i.values) }));
        const minus = inputs.map((i) => ({ shape: i.shape, values: Float32Array.from(i.values) }));
        plus[ii].values[j] += eps;
        minus[ii].values[j] -= eps;
        const numeric = (objective(plus) - objective(minus)) / (2 * eps);
        const a = analytic[j];
        const bound = tol * Math.max(Math.abs(numeric), Math.abs(a)) + 2e-3;
        if (!(Math.abs(a - numeric) <= bound)) {
          throw new Error(`${name}: input ${ii} element ${j}: analytic ${a}, numeric ${numeric}`);
        }
      }
    });
  });
}

/** Hex SHA-256 of the bytes of some typed arrays (WebCrypto): the determinism program's own, shared by every runner. */
export { sha256 as digest } from './engines/program.js';

/** The fixed-seed workload whose digest `fixtures/determinism.json` stores. */
export function determinismWorkload(): ArrayBufferView[] {
  return eg.tidy(() => {
    const x = eg.randn([128, 200], 0, 1, { seed: 11 });
    const w1 = eg.randn([200, 300], 0, 0.07, { seed: 12 }).requiresGrad_();
    const w2 = eg.randn([300, 160], 0, 0.06, { seed: 13 }).requiresGrad_();
    const b1 = eg.rand([300], -0.1, 0.1, { seed: 14 }).requiresGrad_();
    const h = x.matmul(w1).add(b1).tanh();
    const logits = h.matmul(w2);
    const p = logits.softmax(-1);
    const target = eg.rand(p.shape, 0, 1, { seed: 15 });
    const loss = p.mul(target).sum().add(logits.logSoftmax().mean().neg());
    loss.backward();
    return [p.dataSync(), loss.dataSync(), w1.grad!.dataSync(), w2.grad!.dataSync(), b1.grad!.dataSync()];
  });
}

/** A tensor that has been disposed (for "a disposed tensor" argument cases). */
export function disposedTensor(): eg.Tensor {
  const t = eg.ones([2]);
  t.dispose();
  return t;
}

/** Properties the runtime itself looks up (promises, conversions), not option fields. */
const NOT_FIELDS = new Set(['then', 'constructor', 'toJSON', 'valueOf', 'toString', '__tensor']);

/** The values a caller gets wrong, each to be tried in each argument position (argument walks). */
export const BAD_ARGUMENTS: [string, () => unknown][] = [
  ['undefined', () => undefined],
  ['null', () => null],
  ['5', () => 5],
  ['"2"', () => '2'],
  ['2n', () => 2n],
  ['{}', () => ({})],
  ['a disposed tensor', disposedTensor],
  // An options object whose every field is a string: wrongly typed fields, whatever their names.
  ['{ every field: "2" }', () => new Proxy({}, { get: (t, k) => (typeof k === 'string' && !NOT_FIELDS.has(k) ? '2' : Reflect.get(t, k)) })],
];
