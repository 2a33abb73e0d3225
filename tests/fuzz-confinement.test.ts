/**
 * File confinement, fuzzed (Node): a model.json whose `weightsFile` tries to leave the model's folder
 * (`..`, absolute paths, encoded separators, a symlink out, `file:`/`data:`/`http:` URLs), or names a
 * device, a FIFO, a directory or a huge file. Each case must load only a regular file inside the
 * folder, or throw an EdgegradError subclass within its time bound — never read outside (the file
 * outside is a valid weights file of the same model, so following it would load and be caught), never
 * make a request (a loopback server counts them), never echo file contents in a message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { Rng } from './fuzz/prng.js';
import { isBrowser, setup } from './helpers.js';

const { nn } = eg;
const SECRET = 'TOPSECRET-7f3a9c';
const BOUND_MS = 2000;

describe.skipIf(isBrowser)('fuzz: file confinement of model.json weightsFile (Node)', () => {
  let root = '';
  let modelDir = '';
  let secretWeights = '';
  let fifo: string | null = null;
  let hits = 0;
  let server: import('node:http').Server | null = null;
  let port = 0;
  let want: ArrayLike<number>;
  let outside: ArrayLike<number>;
  let fs: typeof import('node:fs/promises');
  let path: typeof import('node:path');
  const make = (seed: number) => new nn.Sequential(new nn.Linear(4, 3, { seed }), new nn.ReLU(), new nn.Linear(3, 2, { seed: seed + 1 }));
  const x = () => eg.tensor([[0.5, -1, 2, 0.25]]);

  beforeAll(async () => {
    await setup();
    fs = await import('node:fs/promises');
    path = await import('node:path');
    const os = await import('node:os');
    const http = await import('node:http');
    const { execFileSync } = await import('node:child_process');
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'edgegrad-confine-'));
    modelDir = path.join(root, 'model');
    const inside = make(1);
    const other = make(10);
    await eg.saveModel(inside, modelDir);
    want = eg.tidy(() => inside.forward(x()).dataSync());
    outside = eg.tidy(() => other.forward(x()).dataSync());
    await fs.mkdir(path.join(root, 'outside'));
    secretWeights = path.join(root, 'outside', 'secret.safetensors');
    await fs.writeFile(secretWeights, eg.saveWeights(other.stateDict()));
    await fs.writeFile(path.join(root, 'outside', 'secret.txt'), `${SECRET}\n`.repeat(100));
    await fs.symlink(secretWeights, path.join(modelDir, 'link.safetensors'));
    await fs.symlink(path.join(root, 'outside'), path.join(modelDir, 'linkdir'));
    await fs.mkdir(path.join(modelDir, 'sub'));
    await fs.copyFile(path.join(modelDir, 'model.safetensors'), path.join(modelDir, 'sub', 'copy.safetensors'));
    // A sparse 3 GiB file: a size check must refuse it before reading.
    const big = await fs.open(path.join(modelDir, 'huge.safetensors'), 'w');
    await big.truncate(3 * 1024 ** 3);
    await big.close();
    try {
      execFileSync('mkfifo', [path.join(modelDir, 'fifo')]);
      fifo = path.join(modelDir, 'fifo');
    } catch {
      fifo = null; // no mkfifo here: the FIFO case is skipped
    }
    server = http.createServer((_req, res) => {
      hits++;
      res.end('');
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as import('node:net').AddressInfo).port;
    inside.dispose();
    other.dispose();
  }, 120_000);

  /** A loader that opened the FIFO would block a libuv thread for ever: give it a writer that closes at once. */
  async function unblockFifo(): Promise<void> {
    if (!fifo) return;
    const { constants } = await import('node:fs');
    try {
      await (await fs.open(fifo, constants.O_WRONLY | constants.O_NONBLOCK)).close();
    } catch {
      // ENXIO: nobody is reading it, which is what we want
    }
  }

  afterAll(async () => {
    await unblockFifo();
    server?.close();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  /** Writes model.json with `weightsFile` and loads it; returns the outcome class. */
  async function attempt(weightsFile: string, o: Parameters<typeof eg.loadModel>[1] = {}): Promise<{ cls: string; message: string; out?: ArrayLike<number> }> {
    // Without the weights' digest: the cases point this model.json at other weights files on purpose (the
    // outside file is another model's), and it is confinement that must decide, not the digest.
    const { weightsDigest: _digest, ...json } = JSON.parse(await fs.readFile(path.join(modelDir, 'model.json'), 'utf8')) as eg.ModelJson;
    const jsonPath = path.join(modelDir, 'case.json');
    await fs.writeFile(jsonPath, JSON.stringify({ ...json, weightsFile }));
    const before = eg.memory().numTensors;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const t0 = performance.now();
    try {
      const { model } = await Promise.race([
        eg.loadModel(jsonPath, o),
        new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`hang: no answer after ${BOUND_MS} ms`)), BOUND_MS))),
      ]);
      const out = eg.tidy(() => model.forward(x()).dataSync());
      model.dispose();
      return { cls: 'loaded', message: '', out };
    } catch (e) {
      const err = e as Error;
      const cls = e instanceof eg.InternalError ? 'raw InternalError' : e instanceof eg.EdgegradError ? err.constructor.name : `raw ${err?.constructor?.name}: ${err?.message}`;
      return { cls, message: String(err?.message) };
    } finally {
      clearTimeout(timer);
      await unblockFifo();
      const ms = performance.now() - t0;
      expect(ms, `${JSON.stringify(weightsFile).slice(0, 80)} took ${ms.toFixed(0)} ms`).toBeLessThan(BOUND_MS * 2);
      expect(eg.memory().numTensors, `${JSON.stringify(weightsFile).slice(0, 80)} leaked tensors`).toBe(before);
    }
  }

  /** The oracle of one case (default options: confined). */
  async function check(weightsFile: string): Promise<string> {
    const r = await attempt(weightsFile);
    const what = JSON.stringify(weightsFile).slice(0, 100);
    expect(r.cls.startsWith('raw'), `${what}: ${r.cls}`).toBe(false);
    expect(r.message, `${what}: the message echoes file contents`).not.toContain(SECRET);
    if (r.cls === 'loaded') expect(Array.from(r.out!), `${what} loaded weights from outside the folder`).toEqual(Array.from(want));
    return r.cls;
  }

  it('refuses escapes, absolute paths, symlinks out, URLs, devices, FIFOs, directories and huge files', async () => {
    const dataUrl = `data:application/octet-stream;base64,${Buffer.from(await fs.readFile(secretWeights)).toString('base64')}`;
    const hostile = [
      '../outside/secret.safetensors', secretWeights, `file://${secretWeights}`, 'link.safetensors', 'linkdir/secret.safetensors',
      'sub/../../outside/secret.safetensors', './../outside/secret.safetensors', '%2e%2e/outside/secret.safetensors', '..%2foutside%2fsecret.safetensors',
      '..\\outside\\secret.safetensors', `${root}/outside/secret.txt`, '../outside/secret.txt', '/dev/zero', '/dev/urandom', '/dev/stdin', '/proc/self/environ',
      '/etc/passwd', '../../../../../../etc/passwd', `http://127.0.0.1:${port}/w.safetensors`, `http://localhost:${port}/w`, `//127.0.0.1:${port}/w`,
      dataUrl, 'data:,hello', 'blob:nodedata:123', 'javascript:alert(1)', 'huge.safetensors', 'sub', '.', '', ' ', 'model.json\u0000.txt', 'a'.repeat(5000),
      ...(fifo ? ['fifo'] : []),
    ];
    const outcomes: Record<string, string> = {};
    for (const w of hostile) outcomes[w.slice(0, 60)] = await check(w);
    // None of these may load: each names something outside the folder or not a regular file there.
    const loaded = Object.entries(outcomes).filter(([, c]) => c === 'loaded').map(([w]) => w);
    expect(loaded, 'these hostile weightsFile values loaded').toEqual([]);
    expect(hits, 'a request reached the loopback server').toBe(0);
    // Inside the folder is fine.
    expect(await check('model.safetensors')).toBe('loaded');
    expect(await check('sub/copy.safetensors')).toBe('loaded');
  }, 120_000);

  it('survives 300 random path compositions (seeded): typed errors or an inside file, nothing else', async () => {
    const parts = ['..', '.', '', 'outside', 'secret.safetensors', 'secret.txt', 'sub', 'copy.safetensors', 'model.safetensors', 'link.safetensors', 'linkdir',
      '%2e%2e', '%2f', '\\', '/', '~', 'huge.safetensors', root.slice(1), 'dev', 'zero', 'file:', 'http:', `127.0.0.1:${port}`, '\u0000', '?', '#', ...(fifo ? ['fifo'] : [])];
    const rng = new Rng(13);
    const classes: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const n = rng.range(1, 5);
      const segs = Array.from({ length: n }, () => rng.pick(parts));
      const w = (rng.chance(0.2) ? '/' : '') + segs.join(rng.chance(0.8) ? '/' : rng.pick(['\\', '//', '/./']));
      const c = await check(w);
      classes[c] = (classes[c] ?? 0) + 1;
    }
    console.log('confinement outcomes:', classes);
    expect(hits).toBe(0);
  }, 300_000);

  it('follows a path outside only when the caller allows it, and bounds sizes either way', async () => {
    // The positive control: the same escape loads the outside file with { allowOutsideDir: true }.
    const r = await attempt('../outside/secret.safetensors', { allowOutsideDir: true });
    expect(r.cls).toBe('loaded');
    expect(Array.from(r.out!)).toEqual(Array.from(outside));
    // Devices and huge files stay refused even then, and contents are never echoed.
    for (const w of ['/dev/zero', 'huge.safetensors', '../outside/secret.txt', ...(fifo ? ['fifo'] : [])]) {
      const q = await attempt(w, { allowOutsideDir: true });
      expect(q.cls.startsWith('raw') || q.cls === 'loaded', `${w}: ${q.cls}`).toBe(false);
      expect(q.message).not.toContain(SECRET);
    }
    const small = await attempt('model.safetensors', { maxBytes: 64 });
    expect(small.cls).toBe('FormatError');
    expect(hits).toBe(0);
  }, 120_000);

  it('loadQuantizedModel refuses devices, FIFOs, directories and missing files with typed errors', async () => {
    for (const p of ['/dev/zero', path.join(root, 'nope'), path.join(root, 'outside'), ...(fifo ? [fifo] : [])]) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const e = await Promise.race([
        eg.compress.loadQuantizedModel(p).then(() => null, (err: unknown) => err),
        new Promise((r) => (timer = setTimeout(() => r(new Error('hang')), BOUND_MS))),
      ]);
      clearTimeout(timer);
      await unblockFifo();
      expect(e, p).toBeInstanceOf(eg.EdgegradError);
    }
  }, 60_000);
});

/**
 * The same for URL sources (browsers, and `http(s):` sources in Node): `fetch` is replaced for the
 * test, so nothing leaves the machine; it serves the case's model.json and the weights inside the
 * model's directory (404 for other names there), and answers ANY URL outside with valid weights of
 * the same model. Every URL
 * fetched must be under the model's directory on its origin, and a loaded model must hold the
 * inside weights.
 */
describe('fuzz: confinement of weightsFile for URL sources (fetch)', () => {
  const base = 'http://127.0.0.1:9/models/m/';
  let insideBytes: Uint8Array;
  let otherBytes: Uint8Array;
  let json: eg.ModelJson;
  let want: number[];
  const x = () => eg.tensor([[0.5, -1, 2, 0.25]]);

  beforeAll(async () => {
    await setup();
    const inside = new nn.Sequential(new nn.Linear(4, 3, { seed: 1 }), new nn.ReLU(), new nn.Linear(3, 2, { seed: 2 }));
    const other = new nn.Sequential(new nn.Linear(4, 3, { seed: 10 }), new nn.ReLU(), new nn.Linear(3, 2, { seed: 11 }));
    const art = await eg.saveModel(inside);
    json = art.json;
    insideBytes = art.weights;
    otherBytes = eg.saveWeights(other.stateDict());
    want = Array.from(eg.tidy(() => inside.forward(x()).dataSync()));
    inside.dispose();
    other.dispose();
  }, 60_000);

  /** Loads `base/case.json` whose weightsFile is `w`, with fetch faked; returns the outcome and the URLs fetched. */
  async function attemptUrl(w: string): Promise<{ cls: string; fetched: string[]; out?: number[] }> {
    const fetched: string[] = [];
    const real = globalThis.fetch;
    const caseJson = JSON.stringify({ ...json, weightsFile: w });
    globalThis.fetch = (async (input: RequestInfo | URL) => {
      const u = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      fetched.push(u);
      // Inside the directory only the two real files exist; outside, everything "exists" (and would load).
      const body = u === `${base}case.json` ? new TextEncoder().encode(caseJson) : u === `${base}model.safetensors` ? insideBytes : u.startsWith(base) ? null : otherBytes;
      if (!body) return new Response('not found', { status: 404 });
      return new Response(body as BlobPart, { status: 200, headers: { 'Content-Length': String(body.length) } });
    }) as typeof fetch;
    const before = eg.memory().numTensors;
    try {
      const { model } = await eg.loadModel(`${base}case.json`);
      const out = Array.from(eg.tidy(() => model.forward(x()).dataSync()));
      model.dispose();
      return { cls: 'loaded', fetched, out };
    } catch (e) {
      const cls = e instanceof eg.InternalError || !(e instanceof eg.EdgegradError) ? `raw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}` : e.constructor.name;
      return { cls, fetched };
    } finally {
      globalThis.fetch = real;
      expect(eg.memory().numTensors, `${JSON.stringify(w).slice(0, 80)} leaked tensors`).toBe(before);
    }
  }

  async function checkUrl(w: string): Promise<string> {
    const r = await attemptUrl(w);
    const what = JSON.stringify(w).slice(0, 100);
    expect(r.cls.startsWith('raw'), `${what}: ${r.cls}`).toBe(false);
    const outside = r.fetched.filter((u) => !u.startsWith(base));
    expect(outside, `${what} fetched outside the model's directory`).toEqual([]);
    if (r.cls === 'loaded') expect(r.out, `${what} loaded other weights`).toEqual(want);
    return r.cls;
  }

  it('fetches only under the model directory: escapes, other origins, data:/blob:/javascript: URLs are refused', async () => {
    const hostile = ['../x.safetensors', '../../models/m/model.safetensors', '/models/m/model.safetensors', 'http://127.0.0.1:9/other/w', 'https://example.com/w',
      '//example.com/w', 'http://127.0.0.1:10/models/m/model.safetensors', 'data:application/octet-stream;base64,AAAA', 'blob:http://127.0.0.1:9/abc', 'javascript:1',
      '%2e%2e/x', '..%2fx', '..\\x', 'sub/../../x', 'model.safetensors?x=../../', 'model.safetensors#../..', '', 'file:///etc/passwd', '\u0000'];
    const outcomes: Record<string, string> = {};
    for (const w of hostile) outcomes[w] = await checkUrl(w);
    expect(Object.entries(outcomes).filter(([, c]) => c === 'loaded').map(([w]) => w)).toEqual([]);
    expect(await checkUrl('model.safetensors')).toBe('loaded');
    expect(await checkUrl('./model.safetensors')).toBe('loaded');
  }, 60_000);

  it('survives 300 random URL path compositions (seeded)', async () => {
    const parts = ['..', '.', '', 'models', 'm', 'model.safetensors', 'x', '%2e%2e', '%2f', '\\', '/', '//', 'http:', 'https:', 'data:', 'blob:',
      'example.com', '127.0.0.1:9', '127.0.0.1:10', '?', '#', '@', ':'];
    const rng = new Rng(17);
    const classes: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const segs = Array.from({ length: rng.range(1, 5) }, () => rng.pick(parts));
      const c = await checkUrl(segs.join(rng.chance(0.8) ? '/' : rng.pick(['', '\\', '/./'])));
      classes[c] = (classes[c] ?? 0) + 1;
    }
    console.log('URL confinement outcomes:', classes);
  }, 120_000);
});
