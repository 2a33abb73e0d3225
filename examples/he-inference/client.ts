/**
 * The client, shared by the Node driver (run.ts) and the browser page (main.ts): it fetches a
 * model's CKKS parameters, makes its own keys (the secret key never leaves this object), sends the
 * server only the public bundle and ciphertexts, and decrypts the encrypted logits it gets back.
 * Uses nothing but `fetch` and edgegrad, so the same code runs in Node and in browsers.
 */
import * as eg from 'edgegrad';

/**
 * What the server says about a model it serves: what a client needs to make keys and encrypt, no
 * weights (the plan `compiled.describe()` prints would show polynomial coefficients: not sent).
 */
export interface ModelInfo {
  name: string;
  title: string;
  /** One example's shape (NHWC for images). */
  inputShape: number[];
  /** Logits per example. */
  outputs: number;
  /** Multiplicative depth of the compiled model (levels it consumes). */
  depth: number;
  /** The slot layout to encrypt with (`client.encrypt(x, encrypt)`). */
  encrypt: eg.he.HELayout;
  /** Rotation steps the server needs Galois keys for. */
  galoisSteps: number[];
  /** Rotations per SEAL ciphertext in one forward pass. */
  rotations: number;
  /** Examples one SEAL ciphertext holds (slot batching). */
  examplesPerCiphertext: number;
  /** The CKKS parameters (ring degree, coefficient moduli, scale, security level, slots). */
  params: eg.he.HEParams;
}

/** One encrypted prediction round trip. */
export interface Prediction {
  /** Decrypted logits `[n, outputs]` (the caller disposes them). */
  logits: eg.Tensor;
  /** Wall time of encrypt + request + decrypt (ms). */
  ms: number;
  /** Ciphertext bytes sent. */
  sent: number;
  /** Ciphertext bytes received. */
  received: number;
}

type Fetch = typeof fetch;

async function ok(res: Response, what: string): Promise<Response> {
  if (res.ok) return res;
  let detail = '';
  try {
    detail = ((await res.json()) as { error?: string }).error ?? '';
  } catch {
    // not JSON: the status says enough
  }
  throw new Error(`${what}: HTTP ${res.status}${detail ? ` — ${detail}` : ''}`);
}

/** Every model the server at `baseUrl` serves. */
export async function listModels(baseUrl: string, f: Fetch = fetch): Promise<ModelInfo[]> {
  const res = await ok(await f(`${baseUrl}/api/models`), 'listing models');
  return ((await res.json()) as { models: ModelInfo[] }).models;
}

/** A session with one model: keys made here, the public bundle registered with the server. */
export class HEInferenceClient {
  /** Bytes of the public bundle sent when the session opened. */
  readonly bundleBytes: number;
  /** Time to make the keys and the bundle (ms). */
  readonly keygenMs: number;
  /** Total ciphertext bytes sent and received so far. */
  sent = 0;
  received = 0;
  private constructor(
    readonly baseUrl: string,
    readonly info: ModelInfo,
    /** This client's key pair: the secret key stays in this object, only `keys.publicBundle()` is sent. */
    readonly keys: eg.he.HEClient,
    private readonly session: string,
    private readonly f: Fetch,
    bundleBytes: number,
    keygenMs: number,
  ) {
    this.bundleBytes = bundleBytes;
    this.keygenMs = keygenMs;
  }

  /**
   * Opens a session: fetches the model's parameters, generates a key pair with the Galois keys the
   * model needs, and posts the public bundle (never the secret key).
   */
  static async connect(baseUrl: string, model: string, o: { fetch?: Fetch } = {}): Promise<HEInferenceClient> {
    // Bound: browsers refuse `fetch` called as a method of another object ("Illegal invocation").
    const f = o.fetch ?? globalThis.fetch.bind(globalThis);
    const info = (await listModels(baseUrl, f)).find((m) => m.name === model);
    if (!info) throw new Error(`the server does not serve '${model}'`);
    const ctxBytes = new Uint8Array(await (await ok(await f(`${baseUrl}/api/models/${model}/context`), 'fetching parameters')).arrayBuffer());
    const ctx = await eg.he.loadContext(ctxBytes);
    let keys: eg.he.HEClient | null = null;
    try {
      const t0 = performance.now();
      keys = ctx.generateKeys({ galois: info.galoisSteps });
      const bundle = keys.publicBundle();
      const keygenMs = performance.now() - t0;
      const res = await ok(await f(`${baseUrl}/api/models/${model}/sessions`, { method: 'POST', body: bundle as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/octet-stream' } }), 'opening a session');
      const { session } = (await res.json()) as { session: string };
      return new HEInferenceClient(baseUrl, info, keys, session, f, bundle.length, keygenMs);
    } catch (e) {
      keys?.dispose();
      throw e;
    } finally {
      ctx.dispose();
    }
  }

  /**
   * Encrypts a batch `[n, ...inputShape]` (or `[n, features]`) in the model's slot layout, as wire
   * bytes: secret-key encryption in SEAL's seeded form (half the bytes of a public-key ciphertext;
   * the server evaluates it like any other).
   */
  encrypt(x: eg.Tensor): Uint8Array {
    return this.keys.encryptToBytes(x, this.info.encrypt);
  }

  /** Sends ciphertext bytes to the server's evaluator; returns the encrypted logits' bytes. */
  async send(bytes: Uint8Array): Promise<Uint8Array> {
    const res = await ok(await this.f(`${this.baseUrl}/api/sessions/${this.session}/infer`, { method: 'POST', body: bytes as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'application/octet-stream' } }), 'encrypted inference');
    const out = new Uint8Array(await res.arrayBuffer());
    this.sent += bytes.length;
    this.received += out.length;
    return out;
  }

  /** Decrypts result bytes to logits `[n, outputs]` with this client's secret key. */
  decrypt(bytes: Uint8Array): eg.Tensor {
    const c = eg.he.loadCiphertext(this.keys, bytes);
    try {
      return this.keys.decrypt(c, { outputs: this.info.outputs });
    } finally {
      c.dispose();
    }
  }

  /** Encrypt → send → decrypt, timed, with the bytes each way. */
  async predict(x: eg.Tensor): Promise<Prediction> {
    const t0 = performance.now();
    const req = this.encrypt(x);
    const res = await this.send(req);
    const logits = this.decrypt(res);
    return { logits, ms: performance.now() - t0, sent: req.length, received: res.length };
  }

  /** Ends the session on the server and frees the keys. */
  async close(): Promise<void> {
    try {
      await this.f(`${this.baseUrl}/api/sessions/${this.session}`, { method: 'DELETE' });
    } finally {
      this.keys.dispose();
    }
  }
}
