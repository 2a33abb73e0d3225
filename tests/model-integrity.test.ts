/**
 * Model integrity (issue 15 §2): saved models carry the SHA-256 of their weights, which loading
 * checks; Ed25519 signatures (Web Crypto) refuse tampered, swapped, unsigned or other-key files
 * when a public key is given. Digests and signatures of a seeded model are the same bytes in Node
 * and Chromium (stored below; Ed25519 signing is deterministic).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { isBrowser, setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

// A fixed test key (RFC 8037 JWK; it signs nothing but these tests), so signatures can be stored.
const TEST_KEY = { kty: 'OKP', crv: 'Ed25519', d: 'sB5NQCbJNoHNQE8vebrCgzPyd0zWcCRLbjxv1RkGw8I', x: 'wUkQmrhPm-7szELQjBKQDJPSGlGTDqVxo7qW5HmnlPg' };
// Of model(1) below, saved with userData { note: 'integrity' } and signed with TEST_KEY.
const EXPECTED_DIGEST = 'sha256:3661cbc2e886738b7f0d4540af2c4b8dd033c24ae02527c699090d2db4fc10d9';
const EXPECTED_SIGNATURE = 'l/CjdsELqY8zZkknecqxt7DOhCa7MA8uAxgS4Xf+P++Uz0tpRLlUPzcyya1iICsj+t//eyEs2yXbpM8VVQdZBQ==';

async function testKeys(): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey }> {
  const privateKey = await crypto.subtle.importKey('jwk', TEST_KEY, { name: 'Ed25519' }, false, ['sign']);
  const { d: _, ...pub } = TEST_KEY;
  const publicKey = await crypto.subtle.importKey('jwk', pub, { name: 'Ed25519' }, true, ['verify']);
  return { privateKey, publicKey };
}

/** A small seeded MLP: the same weights (and so the same file) in every runtime. */
function model(seed: number): eg.nn.Module {
  return new eg.nn.Sequential(new eg.nn.Linear(4, 8, { seed }), new eg.nn.ReLU(), new eg.nn.Linear(8, 3, { seed: seed + 10 }));
}

const input = () => eg.tensor([[0.5, -1, 2, 0.25], [1, 0, -0.5, 3]]);

/** Loads and returns the model's outputs on `input()` (the model freed). */
async function outputs(src: eg.ModelSource, o: eg.LoadModelOptions = {}): Promise<number[]> {
  const { model: m } = await eg.loadModel(src, o);
  try {
    return eg.tidy(() => Array.from(m.forward(input()).dataSync()));
  } finally {
    m.dispose();
  }
}

/** A copy of the artifacts (JSON deep-copied) with `edit` applied to the copy. */
function copyOf(art: eg.ModelArtifacts, edit: (json: eg.ModelJson, weights: Uint8Array) => void = () => {}): eg.ModelArtifacts {
  const json = JSON.parse(JSON.stringify(art.json)) as eg.ModelJson;
  const weights = Uint8Array.from(art.weights);
  edit(json, weights);
  return { json, weights };
}

/** Flips one byte (xor 1) at `at`. */
const flip = (w: Uint8Array, at: number) => {
  w[at] ^= 1;
};

describe('weights digest', () => {
  it('saveModel stores the SHA-256 of the weights; loadModel checks it and refuses a one-byte change', async () => {
    const m = model(1);
    const art = await eg.saveModel(m);
    const want = eg.tidy(() => Array.from(m.forward(input()).dataSync()));
    m.dispose();
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.from(art.weights)));
    expect(art.json.weightsDigest).toBe(`sha256:${Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('')}`);
    expect(await outputs(art)).toEqual(want);
    const headerLen = Number(new DataView(art.weights.buffer, art.weights.byteOffset).getUint32(0, true));
    // A byte of the header is caught by the structure checks (a FormatError saying what is wrong)
    // or by the digest; every byte of the data only by the digest.
    for (let at = 0; at < art.weights.length; at++) {
      const bad = copyOf(art, (_, w) => flip(w, at));
      const err = await eg.loadModel(bad).then(() => null, (e: unknown) => e);
      expect(err, `byte ${at}`).toBeInstanceOf(eg.FormatError);
      if (at >= 8 + headerLen) {
        expect(err, `byte ${at}`).toBeInstanceOf(eg.IntegrityError);
        expect((err as Error).message).toMatch(/weights file 'model\.safetensors' does not match model\.json's weightsDigest/);
      }
    }
  });

  it('refuses the weights of another model of the same architecture (a swapped file)', async () => {
    const [a, b] = [model(1), model(2)];
    const [artA, artB] = [await eg.saveModel(a), await eg.saveModel(b)];
    a.dispose();
    b.dispose();
    // Without the digest the swap loads: the file is well formed, only not the one saved.
    const unchecked = copyOf(artA, (j) => delete j.weightsDigest);
    await expect(outputs({ json: unchecked.json, weights: artB.weights })).resolves.toHaveLength(6);
    await expect(eg.loadModel({ json: artA.json, weights: artB.weights })).rejects.toThrow(eg.IntegrityError);
  });

  it('loads old files without a digest or signature, and refuses malformed integrity fields', async () => {
    const m = model(3);
    const art = await eg.saveModel(m);
    m.dispose();
    const old = copyOf(art, (j) => delete j.weightsDigest);
    expect(Object.keys(old.json)).not.toContain('weightsDigest');
    await expect(outputs(old)).resolves.toHaveLength(6);
    const bad: [string, (j: Record<string, unknown>) => void, RegExp][] = [
      ['uppercase hex', (j) => (j.weightsDigest = (j.weightsDigest as string).toUpperCase()), /weightsDigest must be 'sha256:' followed by 64 lowercase hex digits/],
      ['another algorithm', (j) => (j.weightsDigest = `md5:${'0'.repeat(32)}`), /weightsDigest must be/],
      ['a number', (j) => (j.weightsDigest = 7), /weightsDigest must be/],
      ['a short signature', (j) => (j.signature = { algorithm: 'Ed25519', value: 'AAAA' }), /signature\.value must be the base64 of a 64-byte signature/],
      ['another scheme', (j) => (j.signature = { algorithm: 'RSA', value: `${'A'.repeat(86)}==` }), /signature\.algorithm must be "Ed25519"/],
      ['an extra field', (j) => (j.signature = { algorithm: 'Ed25519', value: `${'A'.repeat(86)}==`, key: 'x' }), /signature\.key is not a known field/],
    ];
    for (const [what, edit, msg] of bad) {
      const c = copyOf(art, (j) => edit(j as unknown as Record<string, unknown>));
      await expect(eg.loadModel(c), what).rejects.toThrow(eg.FormatError);
      await expect(eg.loadModel(c), what).rejects.toThrow(msg);
    }
  });
});

describe('Ed25519 signatures', () => {
  it('a signed model loads with its public key; digest and signature are the stored bytes in every runtime', async () => {
    const { privateKey, publicKey } = await testKeys();
    const m = model(1);
    const art = await eg.saveModel(m, undefined, { signWith: privateKey, userData: { note: 'integrity' } });
    const want = eg.tidy(() => Array.from(m.forward(input()).dataSync()));
    m.dispose();
    expect(art.json.signature?.algorithm).toBe('Ed25519');
    expect(art.json.weightsDigest).toBe(EXPECTED_DIGEST);
    expect(art.json.signature?.value).toBe(EXPECTED_SIGNATURE);
    expect(await outputs(art, { verifyWith: publicKey })).toEqual(want);
    // The key order and formatting of model.json do not matter: the manifest is canonical JSON.
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(art.json).reverse()), null, 3);
    expect(await outputs({ json: reordered, weights: art.weights }, { verifyWith: publicKey })).toEqual(want);
    // Unsigned loading stays the default: a signed file loads without a key too.
    expect(await outputs(art)).toEqual(want);
  });

  it('refuses a one-byte change to the weights, any change to model.json, another key and an unsigned file', async () => {
    const { privateKey, publicKey } = await testKeys();
    const other = await eg.generateSigningKeys();
    const m = model(4);
    const art = await eg.saveModel(m, undefined, { signWith: privateKey, userData: { labels: ['a', 'b', 'c'] } });
    const unsigned = await eg.saveModel(m);
    const byOther = await eg.saveModel(m, undefined, { signWith: other.privateKey, userData: { labels: ['a', 'b', 'c'] } });
    m.dispose();
    const refused = async (what: string, a: eg.ModelArtifacts, msg: RegExp) => {
      const err = await eg.loadModel(a, { verifyWith: publicKey }).then(() => null, (e: unknown) => e);
      expect(err, what).toBeInstanceOf(eg.IntegrityError);
      expect((err as Error).message, what).toMatch(msg);
    };
    const noVerify = /does not verify with the given public key/;
    await refused('a weights byte', copyOf(art, (_, w) => flip(w, w.length - 5)), /does not match model\.json's weightsDigest/);
    await refused('the digest rewritten to match changed weights', copyOf(art, (j) => (j.weightsDigest = j.weightsDigest!.slice(0, -1) + (j.weightsDigest!.endsWith('0') ? '1' : '0'))), noVerify);
    await refused('userData', copyOf(art, (j) => ((j.userData as { labels: string[] }).labels[0] = 'z')), noVerify);
    await refused('the architecture', copyOf(art, (j) => ((j.model.config as { layers: { config: { seed: number } }[] }).layers[0].config.seed = 99)), noVerify);
    await refused('a field added', copyOf(art, (j) => (j.userData = { ...j.userData, extra: 1 })), noVerify);
    await refused('a flipped signature bit', copyOf(art, (j) => (j.signature!.value = (j.signature!.value[0] === 'A' ? 'B' : 'A') + j.signature!.value.slice(1))), noVerify);
    await refused('another key\'s valid signature', byOther, noVerify);
    await refused('an unsigned file', unsigned, /not signed, but loadModel was given verifyWith/);
    await refused('a signature without a digest', copyOf(art, (j) => delete j.weightsDigest), /holds no weightsDigest/);
    // With a key, every weights byte, header included, is refused as an integrity failure first.
    const artLen = art.weights.length;
    for (let at = 0; at < artLen; at += 7) await refused(`weights byte ${at}`, copyOf(art, (_, w) => flip(w, at)), /does not match model\.json's weightsDigest/);
    const small = new eg.nn.Sequential(new eg.nn.Linear(2, 2, { seed: 1 }));
    const smallWeights = (await eg.saveModel(small)).weights;
    small.dispose();
    await refused('another architecture\'s weights', { json: art.json, weights: smallWeights }, /does not match model\.json's weightsDigest/);
    // The other key's own public key accepts its file.
    await expect(outputs(byOther, { verifyWith: other.publicKey })).resolves.toHaveLength(6);
  });

  it('checks keys and options with typed errors', async () => {
    const { privateKey, publicKey } = await testKeys();
    const m = model(5);
    const art = await eg.saveModel(m, undefined, { signWith: privateKey });
    try {
      await expect(eg.saveModel(m, undefined, { signWith: publicKey })).rejects.toThrow(/signWith must be an Ed25519 private CryptoKey.*got the public key/);
      await expect(eg.saveModel(m, undefined, { signWith: 'secret' as unknown as CryptoKey })).rejects.toThrow(eg.ArgumentError);
      await expect(eg.loadModel(art, { verifyWith: privateKey })).rejects.toThrow(/verifyWith must be an Ed25519 public CryptoKey.*got the private key/);
      await expect(eg.loadModel(art, { verifyWith: {} as CryptoKey })).rejects.toThrow(eg.ArgumentError);
      const hmac = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      await expect(eg.saveModel(m, undefined, { signWith: hmac })).rejects.toThrow(/got a HMAC key/);
      expect(() => eg.serializeModel(m, { signWith: privateKey })).toThrow(/serializeModel cannot sign/);
      await expect(eg.generateSigningKeys({ extractable: 1 as unknown as boolean })).rejects.toThrow(eg.ArgumentError);
      const pair = await eg.generateSigningKeys({ extractable: true });
      expect(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)).length).toBe(32);
      expect((await crypto.subtle.exportKey('jwk', pair.privateKey)).d).toBeTypeOf('string');
      await expect(crypto.subtle.exportKey('jwk', (await eg.generateSigningKeys()).privateKey)).rejects.toThrow();
    } finally {
      m.dispose();
    }
  });

  it('keeps tensor memory flat over 100 verified and refused loads', async () => {
    const { privateKey, publicKey } = await testKeys();
    const m = model(6);
    const art = await eg.saveModel(m, undefined, { signWith: privateKey });
    m.dispose();
    const tampered = copyOf(art, (_, w) => flip(w, w.length - 1));
    const edited = copyOf(art, (j) => (j.userData = { x: 1 }));
    await outputs(art, { verifyWith: publicKey });
    const before = eg.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      const src = [art, tampered, edited][i % 3];
      await outputs(src, { verifyWith: publicKey }).catch((e: unknown) => {
        if (!(e instanceof eg.IntegrityError)) throw e;
      });
    }
    expect(eg.memory().numTensors).toBe(before);
  });
});

describe.skipIf(isBrowser)('model directories (Node)', () => {
  it('a digested or signed directory refuses a one-byte change on disk and a swapped weights file', async () => {
    const fs = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const root = await fs.mkdtemp(join(tmpdir(), 'edgegrad-integrity-'));
    try {
      const { privateKey, publicKey } = await testKeys();
      const [a, b] = [model(7), model(8)];
      await eg.saveModel(a, join(root, 'a'), { signWith: privateKey });
      await eg.saveModel(b, join(root, 'b'));
      a.dispose();
      b.dispose();
      const good = await outputs(join(root, 'a'), { verifyWith: publicKey });
      expect(good).toHaveLength(6);
      const wPath = join(root, 'a', 'model.safetensors');
      const bytes = new Uint8Array(await fs.readFile(wPath));
      flip(bytes, bytes.length - 3);
      await fs.writeFile(wPath, bytes);
      await expect(eg.loadModel(join(root, 'a'))).rejects.toThrow(eg.IntegrityError);
      await expect(eg.loadModel(join(root, 'a'), { verifyWith: publicKey })).rejects.toThrow(/model\.safetensors' does not match/);
      flip(bytes, bytes.length - 3);
      await fs.writeFile(wPath, bytes);
      expect(await outputs(join(root, 'a'), { verifyWith: publicKey })).toEqual(good);
      await fs.copyFile(join(root, 'b', 'model.safetensors'), wPath);
      await expect(eg.loadModel(join(root, 'a'))).rejects.toThrow(eg.IntegrityError);
      // model.json edited on disk (pretty-printed as saved): only a signature catches it.
      const jPath = join(root, 'b', 'model.json');
      const json = JSON.parse(await fs.readFile(jPath, 'utf8')) as eg.ModelJson;
      await fs.writeFile(jPath, JSON.stringify({ ...json, userData: { owner: 'someone else' } }));
      await expect(outputs(join(root, 'b'))).resolves.toHaveLength(6);
      await expect(eg.loadModel(join(root, 'b'), { verifyWith: publicKey })).rejects.toThrow(/not signed/);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
