/**
 * Issue 17 §2/§3: the encrypted-inference example's server and client (examples/he-inference).
 * The server runs in-process on an ephemeral 127.0.0.1 port with a small trained breast-cancer
 * logistic regression; every request body is recorded and inspected: only eg.he public bundles and
 * ciphertexts cross the wire, never a secret key (no frame of that kind, no piece of its bytes), and
 * the server's evaluators hold none. Encrypted logits match plaintext; a different key pair does not
 * decrypt the answer; malformed requests get typed HTTP errors; sessions free what they hold.
 * Node only: the server is a Node HTTP server (the browser side is the same client.ts, run by
 * examples/he-inference/index.html).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, isBrowser, setup } from './helpers.js';
import type { RunningServer, WireRecord } from '../examples/he-inference/server.js';

// The example imports the package by name; vitest resolves that to this SDK source
// (vitest.config.ts), so its objects are ours — TypeScript, which sees dist's declarations there,
// is told so through these shapes.
interface Client {
  keys: eg.he.HEClient;
  encrypt(x: eg.Tensor): Uint8Array;
  send(bytes: Uint8Array): Promise<Uint8Array>;
  decrypt(bytes: Uint8Array): eg.Tensor;
  predict(x: eg.Tensor): Promise<{ logits: eg.Tensor; ms: number; sent: number; received: number }>;
  close(): Promise<void>;
}
interface Split {
  xTrain: eg.Tensor;
  yTrain: eg.Tensor;
  xTest: eg.Tensor;
  yTest: eg.Tensor;
}
interface Models {
  loadSplit(name: 'logreg'): Promise<Split>;
  trainModel(name: 'logreg', split: Split, o: { epochs: number }): Promise<eg.nn.Sequential>;
  plainLogits(model: eg.nn.Module, x: eg.Tensor): eg.Tensor;
}

beforeAll(async () => {
  await setup();
});

expectEachTestFreesItsTensors();

const MAGIC = [0x45, 0x47, 0x48, 0x45]; // "EGHE"
const KIND = { context: 1, publicBundle: 2, ciphertext: 3, secretKey: 4 };

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    if (hay[i] !== needle[0]) continue;
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe.skipIf(isBrowser)('examples/he-inference: server and client over HTTP (Node: the server is node:http)', () => {
  let server: RunningServer;
  let HEInferenceClient: { connect(url: string, model: string): Promise<Client> };
  const wire: WireRecord[] = [];
  let xTest: eg.Tensor;
  let plain: eg.Tensor;
  let dir: string;

  beforeAll(async () => {
    const [{ mkdtemp, rm }, os, path, ex, srv, cli] = await Promise.all([
      import('node:fs/promises'), import('node:os'), import('node:path'),
      import('../examples/he-inference/models.js'), import('../examples/he-inference/server.js'), import('../examples/he-inference/client.js'),
    ]);
    HEInferenceClient = cli.HEInferenceClient as unknown as typeof HEInferenceClient;
    const models = ex as unknown as Models;
    const split = await models.loadSplit('logreg');
    const model = await models.trainModel('logreg', split, { epochs: 5 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'he-example-'));
    await eg.saveModel(model, path.join(dir, 'logreg'));
    xTest = eg.tidy(() => split.xTest.slice([0, 0], [12, 30]).clone());
    plain = models.plainLogits(model, xTest);
    eg.dispose([split.xTrain, split.yTrain, split.xTest, split.yTest]);
    model.dispose();
    server = await srv.startServer({ modelsDir: dir, models: ['logreg'], onRequest: (r) => wire.push(r) });
    afterAll(async () => {
      await server.close();
      eg.dispose([xTest, plain]);
      await rm(dir, { recursive: true, force: true });
    });
  });

  it('sends only the public bundle and ciphertexts; the encrypted logits match plaintext', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const liveBefore = eg.he.liveObjects();
    wire.length = 0;
    const client = await HEInferenceClient.connect(server.url, 'logreg');
    const p = await client.predict(xTest);
    const err = eg.tidy(() => p.logits.sub(plain).abs().max().item());
    expect(err).toBeLessThanOrEqual(1e-3);
    expect(eg.tidy(() => Array.from(p.logits.argMax(1).dataSync()))).toEqual(eg.tidy(() => Array.from(plain.argMax(1).dataSync())));
    p.logits.dispose();
    expect(server.sessions()).toBe(1);
    expect(server.anySecretKey()).toBe(false);

    // What crossed the wire: two GETs with empty bodies, then one bundle and one ciphertext.
    expect(wire.map((r) => `${r.method} ${r.path.replace(/sessions\/[^/]+/, 'sessions/<id>')}`)).toEqual([
      'GET /api/models', 'GET /api/models/logreg/context', 'POST /api/models/logreg/sessions', 'POST /api/sessions/<id>/infer',
    ]);
    const posts = wire.filter((r) => r.method === 'POST');
    expect(wire.filter((r) => r.method === 'GET').every((r) => r.body.length === 0)).toBe(true);
    for (const r of posts) expect(Array.from(r.body.subarray(0, 5))).toEqual([...MAGIC, 1]);
    expect(posts.map((r) => r.body[5])).toEqual([KIND.publicBundle, KIND.ciphertext]);
    expect(posts[1].body.length).toBe(p.sent);
    // No piece of the secret key's bytes is in any body (16 windows of 48 bytes across its SEAL data).
    const secret = client.keys.secretKeyBytes();
    const data = secret.subarray(secret.length - Math.floor((secret.length - 64) * 0.9));
    for (let k = 0; k < 16; k++) {
      const at = Math.floor((k * (data.length - 48)) / 15);
      const window = data.subarray(at, at + 48);
      for (const r of posts) expect(contains(r.body, window), `secret-key window ${k} in ${r.path}`).toBe(false);
    }
    // Each body loads as what it claims and as nothing secret.
    for (const r of posts) await expect(eg.he.loadClient(r.body)).rejects.toThrow(eg.FormatError);
    const ct = eg.he.loadCiphertext(client.keys, posts[1].body);
    expect(ct.count).toBe(12);
    ct.dispose();

    await client.close();
    expect(server.sessions()).toBe(0);
    expect(eg.he.liveObjects()).toBe(liveBefore);
  });

  it('a different key pair does not decrypt the answer', async () => {
    const alice = await HEInferenceClient.connect(server.url, 'logreg');
    const mallory = await HEInferenceClient.connect(server.url, 'logreg');
    const answer = await alice.send(alice.encrypt(xTest));
    const right = alice.decrypt(answer);
    const wrong = mallory.decrypt(answer);
    const [okErr, badErr] = eg.tidy(() => [right.sub(plain).abs().max().item(), wrong.sub(plain).abs().max().item()]);
    expect(okErr).toBeLessThanOrEqual(1e-3);
    // Decrypting under another secret key leaves the mask in: values of order q / scale, not logits.
    expect(badErr).toBeGreaterThan(1e3);
    // And Mallory's own request, on Alice's session, is evaluated but decrypts to nothing useful for him.
    const crossed = mallory.decrypt(await alice.send(mallory.encrypt(xTest)));
    expect(eg.tidy(() => crossed.sub(plain).abs().max().item())).toBeGreaterThan(1e3);
    eg.dispose([right, wrong, crossed]);
    await alice.close();
    await mallory.close();
  });

  it('answers malformed requests with HTTP errors naming the problem', async () => {
    const post = (path: string, body: Uint8Array) => fetch(`${server.url}${path}`, { method: 'POST', body: body as Uint8Array<ArrayBuffer> });
    const client = await HEInferenceClient.connect(server.url, 'logreg');
    const ciphertext = client.encrypt(xTest);
    // A ciphertext where the bundle belongs, garbage where a ciphertext belongs, unknown names.
    const asBundle = await post('/api/models/logreg/sessions', ciphertext);
    expect(asBundle.status).toBe(400);
    expect(((await asBundle.json()) as { error: string }).error).toMatch(/public bundle/);
    await client.send(ciphertext);
    const sessionPath = wire.filter((r) => r.path.endsWith('/infer')).pop()!.path;
    const garbage = await post(sessionPath, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { error: string }).error).toMatch(/eg\.he/);
    const truncated = await post(sessionPath, ciphertext.subarray(0, ciphertext.length >> 1));
    expect(truncated.status).toBe(400);
    expect((await post('/api/models/nope/sessions', new Uint8Array(4))).status).toBe(404);
    expect((await post('/api/sessions/not-a-session/infer', ciphertext)).status).toBe(404);
    expect((await fetch(`${server.url}/elsewhere`)).status).toBe(404);
    await client.close();
  });
});
