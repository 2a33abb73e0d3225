/**
 * The inference server: a Node HTTP server on 127.0.0.1 that holds the plaintext models and only
 * ever receives public material — a client's public bundle (parameters, public, relinearisation and
 * Galois keys) and ciphertexts. It never sees a feature, a logit or a secret key: what it learns is
 * the sizes of what it receives.
 *
 * Routes (JSON answers, binary bodies as application/octet-stream):
 * - `GET  /api/models`                  → `{ models: ModelInfo[] }` (shapes, depth, layout, Galois steps)
 * - `GET  /api/models/<name>/context`   → the CKKS parameters (`HEContext.toBytes()`, no key in it)
 * - `POST /api/models/<name>/sessions`  (body: public bundle) → `{ session }`
 * - `POST /api/sessions/<id>/infer`     (body: ciphertext) → the encrypted logits
 * - `DELETE /api/sessions/<id>`         → frees the session's evaluator
 *
 *   npx tsx examples/he-inference/server.ts [--port 8787] [--models reports/he-inference/models]
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as eg from 'edgegrad';
import { MODEL_NAMES, MODEL_SPECS, type ModelName } from './models.js';
import type { ModelInfo } from './client.js';

/** Largest accepted public bundle (Galois keys dominate; N = 16384 with ~40 steps is ~100 MB uncompressed). */
export const MAX_BUNDLE_BYTES = 512 * 2 ** 20;
/** Largest accepted ciphertext request (a whole test set in many SEAL ciphertexts). */
export const MAX_CIPHERTEXT_BYTES = 256 * 2 ** 20;
/** Sessions a server keeps at once (each holds a client's evaluation keys). */
export const MAX_SESSIONS = 64;

/** One request body as it arrived (what a wire inspector sees). */
export interface WireRecord {
  method: string;
  path: string;
  body: Uint8Array;
}

/** Options of `startServer`. */
export interface ServerOptions {
  /** Folder with one saved model (`saveModel`) per name (default reports/he-inference/models). */
  modelsDir?: string;
  /** Models to serve (default all three). */
  models?: readonly ModelName[];
  /** Port (default 0: any free port). The host is always 127.0.0.1. */
  port?: number;
  /** Called with every request body received (for inspecting what crosses the wire). */
  onRequest?: (r: WireRecord) => void;
}

/** A running server. */
export interface RunningServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** What the models compile to (the same `ModelInfo` clients get). */
  models: ModelInfo[];
  /** Live sessions (evaluators with a client's public keys). */
  sessions(): number;
  /** Whether any session's evaluator holds a secret key (always false: there is none to hold). */
  anySecretKey(): boolean;
  /** Stops listening and frees every evaluator. */
  close(): Promise<void>;
}

interface Served {
  info: ModelInfo;
  compiled: eg.he.CompiledModel;
  context: Uint8Array;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw new HttpError(413, `body of ${declared} bytes is over the ${limit}-byte limit`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `body over the ${limit}-byte limit`);
    parts.push(chunk as Buffer);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Loads, compiles (batch packing) and describes one saved model. */
async function serve(name: ModelName, dir: string): Promise<Served> {
  const { model } = await eg.loadModel(join(dir, name)).catch((e: unknown) => {
    throw new Error(`cannot load the ${name} model from ${dir} (${(e as Error).message}): run examples/he-inference/run.ts first, it trains and saves them`);
  });
  try {
    const spec = MODEL_SPECS[name];
    const compiled = eg.he.compile(model.eval(), { inputShape: spec.inputShape, packing: 'batch' });
    const ctx = await eg.he.contextForModel(compiled);
    try {
      const p = ctx.params;
      const info: ModelInfo = {
        name, title: spec.title, inputShape: spec.inputShape, outputs: compiled.outputSize, depth: compiled.depth,
        encrypt: compiled.encryptOptions, galoisSteps: compiled.galoisSteps, rotations: compiled.rotationCount,
        examplesPerCiphertext: compiled.examplesPerCiphertext(p.slots), params: p,
      };
      return { info, compiled, context: ctx.toBytes() };
    } finally {
      ctx.dispose();
    }
  } finally {
    model.dispose();
  }
}

/** Starts the server on 127.0.0.1 (it loads and compiles the plaintext models itself). */
export async function startServer(o: ServerOptions = {}): Promise<RunningServer> {
  const dir = o.modelsDir ?? fileURLToPath(new URL('../../reports/he-inference/models/', import.meta.url));
  const served = new Map<string, Served>();
  for (const name of o.models ?? MODEL_NAMES) served.set(name, await serve(name, dir));
  const sessions = new Map<string, eg.he.HEEvaluator>();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const binary = (res: ServerResponse, body: Uint8Array) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  };
  const model = (name: string): Served => {
    const s = served.get(name);
    if (!s) throw new HttpError(404, `no model '${name.slice(0, 40)}' (serving: ${[...served.keys()].join(', ')})`);
    return s;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const parts = path.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    const body = method === 'POST' ? await readBody(req, parts[1] === 'models' ? MAX_BUNDLE_BYTES : MAX_CIPHERTEXT_BYTES) : new Uint8Array(0);
    o.onRequest?.({ method, path, body });
    if (parts[0] !== 'api') throw new HttpError(404, 'not found');
    if (method === 'GET' && parts.length === 2 && parts[1] === 'models') return json(res, 200, { models: [...served.values()].map((s) => s.info) });
    if (method === 'GET' && parts.length === 4 && parts[1] === 'models' && parts[3] === 'context') return binary(res, model(parts[2]).context);
    if (method === 'POST' && parts.length === 4 && parts[1] === 'models' && parts[3] === 'sessions') {
      const m = model(parts[2]);
      if (sessions.size >= MAX_SESSIONS) throw new HttpError(503, `too many sessions (${MAX_SESSIONS}): delete one first`);
      // Loads only public keys; refuses a bundle whose parameters are too shallow or lack the rotations.
      const evaluator = await m.compiled.evaluator(body);
      const id = randomUUID();
      sessions.set(id, evaluator);
      return json(res, 201, { session: id });
    }
    if (parts[1] === 'sessions' && parts.length >= 3) {
      const evaluator = sessions.get(parts[2]);
      if (!evaluator) throw new HttpError(404, 'no such session');
      if (method === 'POST' && parts[3] === 'infer') return binary(res, evaluator.forwardBytes(body));
      if (method === 'DELETE' && parts.length === 3) {
        evaluator.dispose();
        sessions.delete(parts[2]);
        res.writeHead(204).end();
        return;
      }
    }
    throw new HttpError(404, `no route ${method} ${path.slice(0, 80)}`);
  }

  const server: Server = createServer((req, res) => {
    // One request per connection: a client busy encrypting for seconds cannot notice an idle
    // keep-alive socket the server closed, and would write its next request into it (EPIPE).
    res.setHeader('connection', 'close');
    handle(req, res).catch((e: unknown) => {
      // Typed library errors (a malformed bundle or ciphertext) are the client's fault: 400.
      const status = e instanceof HttpError ? e.status : e instanceof eg.EdgegradError ? 400 : 500;
      if (!res.headersSent) json(res, status, { error: e instanceof Error ? e.message : String(e) });
      else res.end();
      req.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    models: [...served.values()].map((s) => s.info),
    sessions: () => sessions.size,
    anySecretKey: () => [...sessions.values()].some((e) => e.hasSecretKey),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const e of sessions.values()) e.dispose();
      sessions.clear();
    },
  };
}

// Run as a program: serve until killed, printing the URL (run.ts reads the first line).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(k);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  await eg.init({ threads: 1 });
  const s = await startServer({ port: Number(arg('--port') ?? 8787), modelsDir: arg('--models') });
  console.log(`listening ${s.url}`);
  for (const m of s.models) console.log(`  ${m.name}: depth ${m.depth}, N = ${m.params.polyModulusDegree}, ${m.examplesPerCiphertext} examples per ciphertext`);
  const stop = () => void s.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
