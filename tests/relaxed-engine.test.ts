/**
 * The opt-in relaxed-SIMD engine (`init({ relaxed: true })`, issue 19 §3): its contract.
 *
 * Where the runtime has WebAssembly relaxed SIMD (Node 22/24: Vitest project `conformance`;
 * Chromium) the file runs on the relaxed engine and checks that
 * - it really runs relaxed kernels (a fused multiply-add keeps a product's low bits),
 * - every kernel family equals the deterministic engine within the stated tolerance: f32
 *   matmul (plain, batched, transposed operands in backward), linear and convolution forward and
 *   backward (plain, strided, grouped); int8 GEMM/convolution run 7-bit activations on the relaxed
 *   dot product: bitwise the deterministic engine's int8 on activations rounded the same way, and
 *   within the stated bound of the deterministic int8, and a quantized CNN's logits within 5%,
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
/** |relaxed - deterministic| <= MODEL_TOL * max |deterministic| over a quantized model's float logits. */
const MODEL_TOL = 0.05;

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
  modelBytes = updating ? quantizedCnnBytes() : new Uint8Array(fromBase64Bytes(fixture.model));
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
    Object.assign(out, int8Outputs(false), int8Outputs(true));
    // A quantized model end to end (int8 convolutions with fused pooling, int8 linear, float logits).
    const qm = eg.compress.QuantizedModel.deserialize(modelBytes);
    try {
      out.int8Model = data(qm.predict(eg.randn([8, 8, 8, 1], 0, 1, { seed: 51 })));
    } finally {
      qm.dispose();
    }
    return out;
  });
}

/** What the relaxed engine's int8 GEMM multiplies in place of an int8 activation q (README "Relaxed
 * SIMD"): `2·round_half_even((q + 128) / 2) - 128`, at most 126. Exact integer arithmetic. */
function q7(q: number): number {
  const x = q + 128;
  return 2 * Math.min((x + ((x >> 1) & 1)) >> 1, 127) - 128;
}

/** A small CNN with seeded weights, quantized (post-training) on seeded calibration data. */
function quantizedCnnBytes(): Uint8Array {
  const { nn } = eg;
  const model = new nn.Sequential(
    new nn.Conv2d(1, 8, 3, { padding: 'same', seed: 52 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(8, 16, 3, { padding: 'same', seed: 53 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(16 * 2 * 2, 10, { seed: 54 }),
  );
  const calib = eg.randn([32, 8, 8, 1], 0, 1, { seed: 50 });
  const qm = eg.compress.quantize(model, calib);
  try {
    return qm.serialize();
  } finally {
    eg.dispose([calib]);
    qm.dispose();
    model.dispose();
  }
}

/** int8 layers on fixed quantization parameters (no float kernel takes part): a 3x3 'same'
 * convolution and a linear layer, seeded. */
function int8Layers() {
  const Q = eg.compress.int8;
  const [cwq, cws] = Q.quantizePerChannel(eg.randn([3, 3, 8, 16], 0, 0.3, { seed: 41 }), 3);
  const [lwq, lws] = Q.quantizePerChannel(eg.randn([40, 200], 0, 0.1, { seed: 44 }), 0);
  return { cwq, cws, lwq, lws, xp: { scale: 0.02, zeroPoint: -5 }, oq: { scale: 0.05, zeroPoint: 3 } };
}

/**
 * int8 GEMM and convolution (plain, with the fused 2x2 max pool, and dequantized to float32) on
 * seeded int8 activations, or (`sevenBit`, keys suffixed `7`) on those activations rounded as the
 * relaxed engine rounds them, the input zero point (the convolution's padding) included.
 */
function int8Outputs(sevenBit: boolean): Record<string, Int8Array | Float32Array> {
  return eg.tidy(() => {
    const Q = eg.compress.int8;
    const { cwq, cws, lwq, lws, xp, oq } = int8Layers();
    const act = (shape: number[], seed: number) => {
      const q = eg.randint(shape, -128, 128, { seed }).cast('int8');
      return sevenBit ? eg.tensor(Int8Array.from(q.dataSync() as Int8Array, q7), shape, 'int8') : q;
    };
    const pad = sevenBit ? q7(xp.zeroPoint) : xp.zeroPoint;
    const geo: eg.compress.int8.ConvGeometry = { kernel: [3, 3, 8], stride: [1, 1], padding: [1, 1, 1, 1], dilation: [1, 1], groups: 1 };
    const xq = act([4, 10, 10, 8], 40);
    const cpacked = Q.packWeights(cwq, 1);
    const cc = Q.layerConstants(cwq, cws, eg.randn([16], 0, 0.1, { seed: 42 }), 1, xp, oq);
    const aq = act([30, 200], 43);
    const lpacked = Q.packWeights(lwq, 0);
    const lc = Q.layerConstants(lwq, lws, null, 0, xp, oq);
    const lf = Q.layerConstants(lwq, lws, null, 0, xp, null);
    const i8 = (t: eg.Tensor) => t.dataSync() as Int8Array;
    const sfx = sevenBit ? '7' : '';
    return {
      [`int8Conv${sfx}`]: i8(Q.qconv2d(xq, pad, cpacked, geo, { c: cc, out: oq, relu: true })),
      [`int8ConvPool${sfx}`]: i8(Q.qconv2d(xq, pad, cpacked, geo, { c: cc, out: oq, relu: true }, true)),
      [`int8Gemm${sfx}`]: i8(Q.qlinear(aq, lpacked, 200, { c: lc, out: oq, relu: false })),
      [`int8GemmF32${sfx}`]: Q.qlinear(aq, lpacked, 200, { c: lf, out: null, relu: false }).dataSync() as Float32Array,
    };
  });
}

/**
 * The stated bound on |relaxed - deterministic| per output channel of each int8 output: the
 * accumulators differ by at most `Σ_k |w[k][j]|` (one activation step per term), so a float32
 * output by `xScale·wScale[j]·Σ|w|` and an int8 output by `ceil(xScale·wScale[j]/outScale·Σ|w|) + 1`
 * steps (max pooling does not widen it).
 */
function int8Bounds(): Record<string, Float32Array> {
  return eg.tidy(() => {
    const { cwq, cws, lwq, lws, xp, oq } = int8Layers();
    const colAbsSum = (w: eg.Tensor, axes: number[]) => w.cast('float32').abs().sum(axes).dataSync() as Float32Array;
    const conv = colAbsSum(cwq, [0, 1, 2]);
    const lin = colAbsSum(lwq, [1]);
    const steps = (s: Float32Array, ws: Float32Array) => s.map((v, j) => Math.ceil((xp.scale * ws[j] / oq.scale) * v) + 1);
    const cs = cws.dataSync() as Float32Array;
    const ls = lws.dataSync() as Float32Array;
    return {
      int8Conv: steps(conv, cs), int8ConvPool: steps(conv, cs), int8Gemm: steps(lin, ls),
      int8GemmF32: lin.map((v, j) => xp.scale * ls[j] * v * (1 + 1e-5)),
    };
  });
}

function toBase64(a: ArrayBufferView): string {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64Bytes(s: string): ArrayBuffer {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)).buffer;
}

function fromBase64(s: string): Float32Array {
  return new Float32Array(fromBase64Bytes(s));
}

const reference = fixture.outputs as Record<string, string>;
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
const updating = !isBrowser && !supported && !!env?.UPDATE_FIXTURES;
/** The serialized int8 CNN: quantized on the deterministic engine (stored, so that both engines
 * run the same quantization parameters: calibration runs float kernels). */
let modelBytes: Uint8Array;

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

  it('equals the deterministic engine within tolerance on every kernel family', () => {
    const got = workload();
    expect(Object.keys(got).sort()).toEqual(Object.keys(reference).sort());
    let anyDifferent = false;
    for (const [name, values] of Object.entries(got)) {
      const want = fromBase64(reference[name]);
      expect(values.byteLength, name).toBe(want.byteLength);
      if (name.startsWith('int8')) continue;
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

  it('int8: exactly the deterministic int8 of 7-bit activations, within the stated bound of int8', () => {
    const got = workload();
    const bounds = int8Bounds();
    for (const [name, bound] of Object.entries(bounds)) {
      // 7-bit activations are the relaxed dot's deterministic range: the same bits on both engines,
      // and the relaxed engine's int8 on the original activations is exactly that.
      expect(toBase64(got[`${name}7`]), `${name}7`).toBe(reference[`${name}7`]);
      expect(toBase64(got[name]), `${name}: the 7-bit scheme`).toBe(reference[`${name}7`]);
      const [rx, det] = [got[name], name.endsWith('F32') ? fromBase64(reference[name]) : new Int8Array(fromBase64Bytes(reference[name]))];
      const cols = bound.length;
      let differs = 0;
      for (let i = 0; i < det.length; i++) {
        const d = Math.abs(rx[i] - det[i]);
        if (d > 0) differs++;
        expect(d, `${name}[${i}]`).toBeLessThanOrEqual(bound[i % cols]);
      }
      // Not vacuous: dropping the activations' last bit changed some outputs.
      expect(differs, name).toBeGreaterThan(0);
    }
    // A quantized model: the per-layer bounds compound through requantization, so the logits are
    // held to the README's stated tolerance, MODEL_TOL of the largest |logit| (3.3% here: small
    // random weights; the same bits on every CPU and engine, the int8 path being exact).
    const [rx, det] = [got.int8Model, fromBase64(reference.int8Model)];
    const scale = det.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = det.reduce((m, v, i) => Math.max(m, Math.abs(rx[i] - v)), 0);
    expect(worst / scale, 'int8Model: largest |logit| difference / largest |logit|').toBeLessThanOrEqual(MODEL_TOL);
    expect(worst).toBeGreaterThan(0);
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
    if (updating) {
      const fs = await import('node:fs');
      const path = new URL('./fixtures/relaxed-reference.json', import.meta.url);
      const note = 'deterministic engine outputs of tests/relaxed-engine.test.ts workload() (Float32 bytes, base64); model: the serialized int8 CNN it runs';
      fs.writeFileSync(path, `${JSON.stringify({ note, model: toBase64(modelBytes), outputs: encoded }, null, 1)}\n`);
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
