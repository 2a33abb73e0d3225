/**
 * eg.he checks that are about trust and failure (issue 17 §3): no secret key in what a server
 * receives, a different key pair cannot decrypt, insecure parameters and models the context cannot
 * hold are refused before any encryption, unsupported layers are named with their replacement,
 * every wire form round-trips and hostile bytes give a FormatError (never a trap), and 200
 * encrypt/forward/decrypt cycles leave SEAL objects and tensors flat.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';

const { nn, he } = eg;

let model: eg.nn.Sequential;
let compiled: eg.he.CompiledModel;
let ctx: eg.he.HEContext;
let client: eg.he.HEClient;
let bundle: Uint8Array;
let evaluator: eg.he.HEEvaluator;

beforeAll(async () => {
  await setup();
  // 4 features, 3 hidden, 2 outputs: period 4, a handful of rotations; depth 3 at N = 8192.
  model = new nn.Sequential(new nn.Linear(4, 3, { seed: 21 }), new nn.Square(), new nn.Linear(3, 2, { seed: 22 }));
  compiled = he.compile(model, { inputShape: [4], packing: 'batch' });
  ctx = await he.contextForModel(compiled);
  client = ctx.generateKeys({ galois: compiled.galoisSteps });
  bundle = client.publicBundle({ compression: 'none' });
  evaluator = await compiled.evaluator(bundle);
});
afterAll(() => {
  for (const o of [evaluator, client, ctx, model]) o?.dispose();
});
expectEachTestFreesItsTensors();

const X = [[0.5, -1, 2, 0.25], [1, 1, -0.5, -2], [-1.5, 0.3, 0.7, 1.1]];

/** Decrypted logits of X through the shared evaluator, with `decryptor`. */
function logits(decryptor: eg.he.HEClient): number[] {
  const ct = client.encrypt(X, compiled.encryptOptions);
  const out = evaluator.forward(ct);
  const y = decryptor.decrypt(out);
  const v = Array.from(y.dataSync());
  y.dispose();
  ct.dispose();
  out.dispose();
  return v;
}
function reference(): number[] {
  return eg.tidy(() => Array.from(eg.noGrad(() => model.forward(eg.tensor(X))).dataSync()));
}

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = hay.indexOf(needle[0]); i >= 0 && i <= hay.length - needle.length; i = hay.indexOf(needle[0], i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe('keys', () => {
  it('the public bundle holds no secret key and the server side has none', async () => {
    const secret = client.secretKeyBytes();
    // Needles: 16-byte runs from the middle of the secret key's SEAL data (random-looking words).
    const body = secret.subarray(secret.length - 40_000);
    const needles = Array.from({ length: 8 }, (_, i) => body.subarray(i * 4000, i * 4000 + 16));
    for (const nd of needles) expect(contains(secret, nd)).toBe(true); // the search finds what is there
    for (const nd of needles) expect(contains(bundle, nd)).toBe(false);
    expect(evaluator.hasSecretKey).toBe(false);
    expect(client.hasSecretKey).toBe(true);
    // And the bundle is what the server got: params, public/relin/Galois keys only (3 sections).
    expect(new TextDecoder().decode(bundle.subarray(12, 12 + new DataView(bundle.buffer, bundle.byteOffset).getUint32(8, true)))).not.toMatch(/secret/i);
  });

  it('encrypted logits match the model; a different key pair does not decrypt them', async () => {
    const want = reference();
    const got = logits(client);
    got.forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-3));
    const other = ctx.generateKeys();
    try {
      const wrong = logits(other);
      const err = Math.max(...wrong.map((w, i) => Math.abs(w - want[i])));
      expect(err).toBeGreaterThan(1);
    } finally {
      other.dispose();
    }
  });

  it('a client restored from secretKeyBytes decrypts; the context round-trips its parameters', async () => {
    const restored = await he.loadClient(client.secretKeyBytes());
    const ctx2 = await he.loadContext(ctx.toBytes());
    try {
      const want = reference();
      logits(restored).forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-3));
      expect(ctx2.params).toEqual(ctx.params);
    } finally {
      restored.dispose();
      ctx2.dispose();
    }
  });
});

describe('refused before any encryption', () => {
  it('insecure parameters, naming SEAL’s limit', async () => {
    await expect(he.createContext({ polyModulusDegree: 8192, coeffModulusBits: [60, 60, 60, 60] })).rejects.toThrow(eg.ArgumentError);
    await expect(he.createContext({ polyModulusDegree: 8192, coeffModulusBits: [60, 60, 60, 60] })).rejects.toThrow(/insecure.*240 bits.*at most 218 bits/);
    await expect(he.createContext({ polyModulusDegree: 16384, coeffModulusBits: [60, 40, 40, 60], securityLevel: 256 })).resolves.toBeDefined().then(() => undefined);
    await expect(he.createContext({ polyModulusDegree: 4096 as 8192 })).rejects.toThrow(/polyModulusDegree must be one of/);
  });

  it('a model deeper than the context allows', async () => {
    const shallow = await he.createContext({ coeffModulusBits: [60, 40, 60] });
    const shallowClient = shallow.generateKeys({ galois: compiled.galoisSteps });
    try {
      expect(() => he.checkContext(compiled, shallow)).toThrow(/needs multiplicative depth 3.*allows 1/);
      await expect(compiled.evaluator(shallowClient.publicBundle({ compression: 'none' }))).rejects.toThrow(eg.ArgumentError);
    } finally {
      shallowClient.dispose();
      shallow.dispose();
    }
  });

  it('a bundle without the rotation keys the model needs', async () => {
    const noKeys = ctx.generateKeys({ galois: [1] });
    try {
      await expect(compiled.evaluator(noKeys.publicBundle({ compression: 'none' }))).rejects.toThrow(/lacks Galois keys for rotation steps/);
    } finally {
      noKeys.dispose();
    }
  });

  it('unsupported layers, named with a polynomial replacement', () => {
    const cases: [eg.nn.Module, RegExp][] = [
      [new nn.Sequential(new nn.Linear(4, 3), new nn.ReLU(), new nn.Linear(3, 2)), /layer '1' \(ReLU\).*nn\.PolyActivation.*nn\.Square/],
      [new nn.Sequential(new nn.Sequential(new nn.Linear(4, 4), new nn.Tanh())), /layer '0\.1' \(Tanh\).*PolyActivation/],
      [new nn.Sequential(new nn.Linear(4, 2), new nn.Softmax()), /\(Softmax\).*drop softmax: argmax of logits is unchanged/],
      [new nn.Sequential(new nn.Linear(4, 2, { activation: 'relu' })), /fused activation/],
    ];
    for (const [m, re] of cases) {
      expect(() => he.compile(m, { inputShape: [4] })).toThrow(eg.ArgumentError);
      expect(() => he.compile(m, { inputShape: [4] })).toThrow(re);
      m.dispose();
    }
    const pool = new nn.Sequential(new nn.Conv2d(1, 1, 3), new nn.MaxPool2d(2));
    expect(() => he.compile(pool, { inputShape: [6, 6, 1] })).toThrow(/\(MaxPool2d\).*nn\.AvgPool2d/);
    pool.dispose();
    expect(() => he.compile(model, { inputShape: [] })).toThrow(/inputShape must be/);
    expect(() => he.compile(model, { inputShape: [4], packing: 'rows' as 'batch' })).toThrow(/packing must be/);
  });
});

describe('wire format', () => {
  it('ciphertexts round-trip through bytes (zstd and none); forwardBytes is forward on bytes', () => {
    const want = reference();
    const ct = client.encrypt(X, compiled.encryptOptions);
    for (const compression of ['zstd', 'none'] as const) {
      const back = he.loadCiphertext(evaluator, ct.toBytes({ compression }));
      const resultBytes = evaluator.forwardBytes(back.toBytes());
      const result = he.loadCiphertext(client, resultBytes);
      const y = client.decrypt(result);
      Array.from(y.dataSync()).forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-3));
      expect(result.count).toBe(3);
      expect(result.level).toBe(0);
      y.dispose();
      back.dispose();
      result.dispose();
    }
    // Seeded symmetric encryption for uploads: about half the bytes, same result.
    const full = ct.toBytes({ compression: 'none' }).length;
    const seeded = client.encryptToBytes(X, { ...compiled.encryptOptions, compression: 'none' });
    expect(seeded.length).toBeLessThan(0.6 * full);
    const result = he.loadCiphertext(client, evaluator.forwardBytes(seeded));
    const y = client.decrypt(result);
    Array.from(y.dataSync()).forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-3));
    y.dispose();
    result.dispose();
    ct.dispose();
  });

  it('hostile bytes: FormatError, never a trap, and SEAL still works after', async () => {
    const ct = client.encrypt(X, compiled.encryptOptions);
    const good = ct.toBytes({ compression: 'none' });
    ct.dispose();
    const metaLen = new DataView(good.buffer).getUint32(8, true);
    const sec = 12 + metaLen; // first section's length field
    const mutate = (f: (b: Uint8Array, dv: DataView) => void) => {
      const b = good.slice();
      f(b, new DataView(b.buffer));
      return b;
    };
    const bad: [string, unknown][] = [
      ['empty', new Uint8Array(0)],
      ['garbage', Uint8Array.from({ length: 100 }, (_, i) => (i * 37) & 255)],
      ['not bytes', 'EGHE'],
      ['truncated', good.subarray(0, good.length - 1000)],
      ['trailing', Uint8Array.from([...good.subarray(0, 64)])],
      ['wrong kind', mutate((b) => { b[5] = 2; })],
      ['future version', mutate((b) => { b[4] = 9; })],
      ['huge section length', mutate((b, dv) => dv.setUint32(sec, 0xfffffff0, true))],
      ['huge metadata length', mutate((b, dv) => dv.setUint32(8, 0x7ffffff0, true))],
      ['section count mismatch', mutate((b, dv) => dv.setUint16(6, 7, true))],
      ['SEAL header size lie', mutate((b, dv) => dv.setBigUint64(sec + 4 + 8, 1n << 40n, true))],
      ['SEAL magic', mutate((b) => { b[sec + 4] ^= 0xff; })],
      ['SEAL data flipped', mutate((b) => { for (let i = sec + 4 + 16; i < sec + 4 + 64; i++) b[i] ^= 0x5a; })],
      ['bad metadata JSON', mutate((b) => { b[12] = 0x7b; b[13] = 0x7b; })],
    ];
    // zstd "bombs": a few bytes that claim (or would inflate to) a gigabyte are refused before SEAL inflates them.
    const zstdSection = (frame: number[]) => {
      const blob = new Uint8Array(16 + frame.length);
      blob.set(good.subarray(sec + 4, sec + 4 + 16));
      blob[5] = 2; // SEAL compression mode: zstd
      blob.set(frame, 16);
      new DataView(blob.buffer).setBigUint64(8, BigInt(blob.length), true);
      const out = new Uint8Array(sec + 4 + blob.length);
      out.set(good.subarray(0, sec));
      new DataView(out.buffer).setUint16(6, 1, true);
      new DataView(out.buffer).setUint32(sec, blob.length, true);
      out.set(blob, sec + 4);
      return out;
    };
    const rleBlock = [1 | (1 << 1) | ((1 << 17) << 3) & 0xff, ((1 << 17) << 3 >> 8) & 0xff, ((1 << 17) << 3 >> 16) & 0xff, 0];
    const bomb = zstdSection([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x40, ...rleBlock]);
    const unsized = zstdSection([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x50, ...rleBlock]);
    expect(() => he.loadCiphertext(evaluator, bomb)).toThrow(/decompresses to 1073741824 bytes, more than/);
    expect(() => he.loadCiphertext(evaluator, unsized)).toThrow(/does not declare its content size/);
    bad.push(['zstd frame declaring 1 GiB', bomb], ['zstd frame without a declared size', unsized]);
    bad.push(['SEAL zlib mode', mutate((b) => { b[sec + 4 + 5] = 1; })]);
    for (const [name, bytes] of bad) {
      let error: unknown = null;
      try {
        he.loadCiphertext(evaluator, bytes as Uint8Array).dispose();
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(eg.FormatError);
    }
    await expect(he.loadContext(Uint8Array.from([1, 2, 3]))).rejects.toThrow(eg.FormatError);
    await expect(he.loadClient(bundle)).rejects.toThrow(/expected an eg\.he secret key, got a public bundle/);
    await expect(compiled.evaluator(bundle.subarray(0, bundle.length - 5))).rejects.toThrow(eg.FormatError);
    // Parameters in a frame are re-checked: an insecure set is refused on load too.
    const ctxBytes = ctx.toBytes();
    const text = new TextDecoder().decode(ctxBytes.subarray(12));
    const insecure = new TextEncoder().encode(text.replace(/"coeffModulusBits":\[[^\]]*\]/, '"coeffModulusBits":[60,60,60,60,60]').replace(/"maxDepth":\d+/, '"maxDepth":3'));
    const frame = new Uint8Array(12 + insecure.length);
    frame.set(ctxBytes.subarray(0, 12));
    new DataView(frame.buffer).setUint32(8, insecure.length, true);
    frame.set(insecure, 12);
    await expect(he.loadContext(frame)).rejects.toThrow(/insecure/);
    // Still computes.
    const want = reference();
    logits(client).forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-3));
  });
});

describe('memory', () => {
  it('200 encrypt/forward/decrypt cycles leave SEAL objects and tensors flat', () => {
    const one = () => {
      const ct = client.encrypt(X, compiled.encryptOptions);
      const out = evaluator.forward(ct);
      const y = client.decrypt(out);
      y.dispose();
      ct.dispose();
      out.dispose();
    };
    one();
    const seal0 = he.liveObjects();
    const tensors0 = eg.memory().numTensors;
    for (let i = 0; i < 200; i++) one();
    expect(he.liveObjects()).toBe(seal0);
    expect(eg.memory().numTensors).toBe(tensors0);
  });

  it('disposing everything returns SEAL objects to zero for a fresh context, and disposed objects refuse use', async () => {
    const before = he.liveObjects();
    const c2 = await he.createContext({ coeffModulusBits: [60, 40, 60] });
    const k2 = c2.generateKeys({ galois: [1] });
    const ct = k2.encrypt([1, 2, 3]);
    expect(he.liveObjects()).toBeGreaterThan(before);
    ct.dispose();
    k2.dispose();
    c2.dispose();
    expect(he.liveObjects()).toBe(before);
    expect(() => k2.encrypt([1])).toThrow(eg.DisposedError);
    expect(() => ct.toBytes()).toThrow(eg.DisposedError);
    // The idle context kept for reuse is not counted, and freeing it leaves later contexts working.
    he.releasePool();
    expect(he.liveObjects()).toBe(before);
    const c3 = await he.createContext({ coeffModulusBits: [60, 40, 60] });
    const k3 = c3.generateKeys({ galois: [1] });
    const ct3 = k3.encrypt([[1, 2, 3]]);
    const y = k3.decrypt(ct3);
    expect(Array.from(y.dataSync()).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([1, 2, 3]);
    y.dispose();
    ct3.dispose();
    k3.dispose();
    c3.dispose();
    expect(he.liveObjects()).toBe(before);
  });
});
