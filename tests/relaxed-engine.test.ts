/**
 * The opt-in relaxed-SIMD engine (`init({ relaxed: true })`, issue 19 §3): its contract.
 *
 * Where the runtime has WebAssembly relaxed SIMD (Node 22/24: Vitest project `conformance`;
 * Chromium) the file runs on the relaxed engine and checks that
 * - it really runs relaxed kernels (a fused multiply-add keeps a product's low bits),
 * - every kernel family equals the deterministic engine within the stated tolerance: f32
 *   matmul (plain, batched, transposed operands in backward), linear and convolution forward and
 *   backward (plain, strided, grouped), and int8 GEMM/convolution bitwise (integer kernels),
 * - it is bitwise identical with 1 and 2 threads.
 * The deterministic engine's results are stored in `fixtures/relaxed-reference.json` (bitwise the
 * same on every CPU and runtime). Where the runtime lacks relaxed SIMD (Node 20: project `node`)
 * the file checks that `relaxed: true` fails with a BackendError naming the runtime, that
 * `relaxed: 'auto'` falls back and says why, and that the deterministic engine still gives the
 * stored results bitwise (regenerate them there with UPDATE_FIXTURES=1).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { relaxedSimdSupported } from '../sdk/runtime.js';
import fixture from './fixtures/relaxed-reference.json';
import { digest, expectEachTestFreesItsTensors, isBrowser, setup } from './helpers.js';

const F = eg.nn.functional;
const supported = relaxedSimdSupported();
/** |relaxed - deterministic| <= TOL * max |deterministic| over each output (README, "Relaxed SIMD"). */
const TOL = 1e-4;

let info: eg.BackendInfo;
let refused: unknown;
let badArgument: unknown;

beforeAll(async () => {
  badArgument = await eg.init({ relaxed: 'yes' as never }).catch((e: unknown) => e);
  if (supported) {
    info = await setup({ relaxed: true });
  } else {
    refused = await eg.init({ relaxed: true }).catch((e: unknown) => e);
    info = await setup({ relaxed: 'auto' });
  }
});
expectEachTestFreesItsTensors();

/** Every kernel family the relaxed build changes, plus int8 inference, from seeded inputs. */
function workload(): Record<string, Float32Array | Int8Array> {
  return eg.tidy(() => {
    const out: Record<string, Float32Array | Int8Array> = {};
    const data = (t: eg.Tensor) => t.dataSync() as Float32Array;
    out.matmul = data(eg.randn([37, 300], 0, 1, { seed: 1 }).matmul(eg.randn([300, 45], 0, 1, { seed: 2 })));
    out.bmm = data(eg.randn([3, 20, 64], 0, 1, { seed: 3 }).matmul(eg.randn([3, 64, 17], 0, 1, { seed: 4 })));
    // Linear forward and backward (Aᵀ·G and G·Bᵀ read in place).
    const x = eg.randn([24, 80], 0, 1, { seed: 5 }).requiresGrad_();
    const w = eg.randn([80, 50], 0, 0.2, { seed: 6 }).requiresGrad_();
    const h = x.matmul(w).tanh();
    h.sum().backward();
    out.linear = data(h);
    out.linearDx = data(x.grad!);
    out.linearDw = data(w.grad!);
    // Convolutions: 'same' padding, and strided + grouped, forward and backward.
    const convCase = (name: string, xs: number[], ws: number[], opts: eg.nn.functional.Conv2dOptions, seed: number) => {
      const cx = eg.randn(xs, 0, 1, { seed }).requiresGrad_();
      const cw = eg.randn(ws, 0, 0.3, { seed: seed + 1 }).requiresGrad_();
      const cb = eg.randn([ws[3]], 0, 0.1, { seed: seed + 2 });
      const y = F.conv2d(cx, cw, cb, opts);
      y.mul(eg.randn(y.shape, 0, 1, { seed: seed + 3 })).sum().backward();
      out[name] = data(y);
      out[`${name}Dx`] = data(cx.grad!);
      out[`${name}Dw`] = data(cw.grad!);
    };
    convCase('conv', [2, 12, 12, 6], [3, 3, 6, 16], { padding: 'same' }, 10);
    convCase('convGrouped', [2, 11, 11, 8], [3, 3, 4, 12], { stride: 2, groups: 2 }, 20);
    // int8 GEMM and convolution (plain and with the fused 2x2 max pool) on fixed quantization
    // parameters, so no float kernel takes part: integer arithmetic, bitwise the same in both.
    const Q = eg.compress.int8;
    const xq = eg.randint([4, 10, 10, 8], -128, 128, { seed: 40 }).cast('int8');
    const [cwq, cws] = Q.quantizePerChannel(eg.randn([3, 3, 8, 16], 0, 0.3, { seed: 41 }), 3);
    const cb = eg.randn([16], 0, 0.1, { seed: 42 });
    const xp = { scale: 0.02, zeroPoint: -5 };
    const oq = { scale: 0.05, zeroPoint: 3 };
    const geo: eg.compress.int8.ConvGeometry = { kernel: [3, 3, 8], stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
    const cpacked = Q.packWeights(cwq, 1);
    const cc = Q.layerConstants(cwq, cws, cb, 1, xp, oq);
    const int8 = (t: eg.Tensor) => t.dataSync() as Int8Array;
    out.int8Conv = int8(Q.qconv2d(xq, xp.zeroPoint, cpacked, geo, { c: cc, out: oq, relu: true }));
    out.int8ConvPool = int8(Q.qconv2d(xq, xp.zeroPoint, cpacked, geo, { c: cc, out: oq, relu: true }, true));
    const aq = eg.randint([30, 200], -128, 128, { seed: 43 }).cast('int8');
    const [lwq, lws] = Q.quantizePerChannel(eg.randn([40, 200], 0, 0.1, { seed: 44 }), 0);
    const lc = Q.layerConstants(lwq, lws, null, 0, xp, oq);
    out.int8Gemm = int8(Q.qlinear(aq, Q.packWeights(lwq, 0), 200, { c: lc, out: oq, relu: false }));
    return out;
  });
}

function toBase64(a: ArrayBufferView): string {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): Float32Array {
  const bin = atob(s);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

const reference = fixture.outputs as Record<string, string>;

describe.runIf(supported)('relaxed engine (runtime with relaxed SIMD)', () => {
  it('runs: backendInfo reports it, and its GEMM fuses multiply and add', () => {
    expect(info.relaxed).toBe(true);
    expect(info.build).toBe('simd-threads');
    expect(info.relaxedReason).toBeUndefined();
    expect(eg.backendInfo().relaxed).toBe(true);
    // Row 0 sums -1·1 then (1+ε)(1-ε) = 1 - ε²: fused, the product keeps -ε²; with a rounded
    // product (the deterministic engine) it is 1 and the sum 0. (Every x64 CPU with AVX2 and
    // every arm64 CPU has FMA, so V8 fuses relaxed_madd there.) Four rows: the packed GEMM path.
    const eps = 2 ** -23;
    const y = eg.tidy(() => eg.tensor([[-1, 1 + eps], [0, 0], [0, 0], [0, 0]]).matmul(eg.tensor([[1], [1 - eps]])).dataSync());
    expect(y[0]).toBe(-(eps * eps));
  });

  it('equals the deterministic engine within tolerance on every kernel family; int8 bitwise', () => {
    const got = workload();
    expect(Object.keys(got).sort()).toEqual(Object.keys(reference).sort());
    let anyDifferent = false;
    for (const [name, values] of Object.entries(got)) {
      const want = fromBase64(reference[name]);
      expect(values.byteLength, name).toBe(want.byteLength);
      if (name.startsWith('int8')) {
        expect(toBase64(values), `${name}: integer kernels are exact`).toBe(reference[name]);
        continue;
      }
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(values[i] - want[i]));
        if (values[i] !== want[i]) anyDifferent = true;
      }
      expect(worst / scale, `${name}: largest difference / largest magnitude`).toBeLessThanOrEqual(TOL);
    }
    // The comparison above is not vacuous: FMA changed some bits somewhere.
    expect(anyDifferent).toBe(true);
  });

  it('is bitwise identical with 1 and 2 threads', async () => {
    const digests: string[] = [];
    for (const threads of [1, 2]) {
      expect(eg.setNumThreads(threads)).toBe(threads);
      digests.push(await digest(Object.values(workload())));
    }
    eg.setNumThreads(info.maxThreads);
    expect(info.maxThreads).toBe(2);
    expect(digests[1]).toBe(digests[0]);
  });
});

describe.runIf(!supported)('runtime without relaxed SIMD (Node 20)', () => {
  it('init({ relaxed: true }) fails with a BackendError naming the runtime', () => {
    expect(refused).toBeInstanceOf(eg.BackendError);
    const where = isBrowser ? 'does not support' : `Node.js ${process.versions.node}`;
    expect((refused as Error).message).toContain(where);
    expect((refused as Error).message).toMatch(/relaxed SIMD/);
  });

  it("relaxed: 'auto' falls back to the deterministic engine and says why", () => {
    expect(info.relaxed).toBe(false);
    expect(info.relaxedReason).toMatch(/does not support WebAssembly relaxed SIMD/);
    expect(eg.backendInfo().relaxedReason).toBe(info.relaxedReason);
  });

  it('the deterministic engine gives the stored reference bitwise', async () => {
    const got = workload();
    const encoded = Object.fromEntries(Object.entries(got).map(([k, v]) => [k, toBase64(v)]));
    const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
    if (!isBrowser && env?.UPDATE_FIXTURES) {
      const fs = await import('node:fs');
      const path = new URL('./fixtures/relaxed-reference.json', import.meta.url);
      fs.writeFileSync(path, `${JSON.stringify({ note: 'deterministic engine outputs of tests/relaxed-engine.test.ts workload() (Float32 bytes, base64)', outputs: encoded }, null, 1)}\n`);
    }
    expect(encoded).toEqual(reference);
  });
});

describe('relaxed option', () => {
  it('rejects values other than true, false and auto with an ArgumentError', () => {
    expect(badArgument).toBeInstanceOf(eg.ArgumentError);
    expect((badArgument as Error).message).toMatch(/relaxed must be true, false or 'auto'/);
  });
});
