/**
 * Client side of `eg.he`: contexts, key pairs, encryption and decryption, and the wire forms of
 * all of them. The secret key lives only in an `HEClient`; `publicBundle()` carries the public,
 * relinearisation and Galois (rotation) keys a server needs, never the secret key.
 */
import type { CipherText } from 'node-seal/implementation/cipher-text';
import type { Decryptor } from 'node-seal/implementation/decryptor';
import type { Encryptor } from 'node-seal/implementation/encryptor';
import type { GaloisKeys } from 'node-seal/implementation/galois-keys';
import type { KeyGenerator } from 'node-seal/implementation/key-generator';
import type { PlainText } from 'node-seal/implementation/plain-text';
import type { PublicKey } from 'node-seal/implementation/public-key';
import type { RelinKeys } from 'node-seal/implementation/relin-keys';
import type { SecretKey } from 'node-seal/implementation/secret-key';
import { checkInt, checkOptions, describe } from '../args.js';
import { tensor } from '../creation.js';
import { ArgumentError, DisposedError, FormatError } from '../errors.js';
import { v, type Infer } from '../io/validate.js';
import { isTensor, type Tensor } from '../tensor.js';
import { Core } from './core.js';
import { checkLayout, pack, perCiphertext, unpack, type HELayout, type Packing } from './layout.js';
import { checkParams, type ContextOptions, type HEParams } from './params.js';
import { free, own, sealCall, withTemp } from './seal.js';
import { checkSealBlob, KIND, readFrame, writeFrame } from './wire.js';

/** Reaches the shared core of any `eg.he` object (module-private). */
const cores = new WeakMap<object, () => Core>();
/** The core behind an `HEContext`, `HEClient`, `HEEvaluator` or `Ciphertext` (for this module's siblings). */
export function coreOf(x: unknown, what: string): Core {
  const get = x !== null && typeof x === 'object' ? cores.get(x) : undefined;
  if (!get) throw new ArgumentError(`${what} must be an eg.he HEContext, HEClient or HEEvaluator, got ${describe(x)}`);
  return get();
}
/** Registers how to reach an object's core. */
export function registerCore(x: object, get: () => Core): void {
  cores.set(x, get);
}

const ParamsSchema = v.object({
  polyModulusDegree: v.int({ min: 1024, max: 32768 }),
  coeffModulusBits: v.array(v.int({ min: 1, max: 61 }), { min: 2, max: 64 }),
  scaleBits: v.int({ min: 1, max: 60 }),
  securityLevel: v.int({ min: 0, max: 256 }),
  slots: v.int({ min: 1, max: 16384 }),
  maxDepth: v.int({ min: 0, max: 62 }),
});
/** Parameters read from bytes: re-checked by the same rules as `createContext` (insecure sets refused). */
function paramsFromWire(p: Infer<typeof ParamsSchema>, source: string): HEParams {
  let checked: HEParams;
  try {
    checked = checkParams({ polyModulusDegree: p.polyModulusDegree as 8192, coeffModulusBits: p.coeffModulusBits, scale: p.scaleBits, securityLevel: p.securityLevel as 128 }, source);
  } catch (e) {
    throw new FormatError((e as Error).message);
  }
  if (checked.slots !== p.slots || checked.maxDepth !== p.maxDepth) throw new FormatError(`${source}: slots/maxDepth do not match the parameters`);
  return checked;
}

/**
 * A CKKS context: the parameters both sides agree on. Create with `eg.he.createContext` (or
 * `eg.he.contextForModel`), then `generateKeys()` on the client.
 */
export class HEContext {
  #core: Core | null;
  /** @internal Made by `eg.he.createContext`, `contextForModel` or `loadContext`. */
  constructor(core: Core) {
    if (!(core instanceof Core)) throw new ArgumentError('HEContext is made by eg.he.createContext(), eg.he.contextForModel() or eg.he.loadContext(), not with new');
    this.#core = core;
    registerCore(this, () => this.#live('HEContext'));
  }
  #live(what: string): Core {
    if (!this.#core) throw new DisposedError(`${what}: this HEContext was disposed`);
    return this.#core;
  }
  /** The parameters (a copy): ring degree, primes, scale, security level, slots, maximum depth. */
  get params(): HEParams {
    const p = this.#live('HEContext.params').params;
    return { ...p, coeffModulusBits: [...p.coeffModulusBits] };
  }
  /**
   * A fresh key pair on this context, held by the returned client. `galois` lists the rotation
   * steps the server will need (`compiled.galoisSteps`); without it SEAL's default set (every
   * power of two, both directions) is made, which supports any rotation at a few key switches each.
   */
  generateKeys(opts: GenerateKeysOptions = {}): HEClient {
    checkOptions(opts, 'HEContext.generateKeys options');
    const core = this.#live('HEContext.generateKeys');
    const slots = core.slots;
    let steps: number[] | null = null;
    if (opts.galois !== undefined) {
      if (!Array.isArray(opts.galois) || opts.galois.length > 4096) throw new ArgumentError(`HEContext.generateKeys: galois must be an array of at most 4096 rotation steps, got ${describe(opts.galois)}`);
      steps = [...new Set(opts.galois.map((s, i) => checkInt(s, `HEContext.generateKeys: galois[${i}]`, -(slots - 1), slots - 1)))].filter((s) => s !== 0);
    }
    return HEClient.generate(core, steps);
  }
  /** The parameters as an eg.he frame (no keys); `eg.he.loadContext` reads it back. */
  toBytes(): Uint8Array {
    return writeFrame(KIND.context, { params: this.#live('HEContext.toBytes').params }, []);
  }
  /** Frees the context's SEAL objects (clients, ciphertexts and evaluators made from it keep theirs). */
  dispose(): void {
    this.#core?.release();
    this.#core = null;
  }
}

/** Options of `HEContext.generateKeys`. */
export interface GenerateKeysOptions {
  /** Rotation steps to make Galois keys for (default: SEAL's power-of-two set). */
  galois?: number[];
}

/** Creates a CKKS context; refuses parameters below the security level (see `ContextOptions`). */
export async function createContext(opts?: ContextOptions): Promise<HEContext> {
  const params = checkParams(opts);
  return new HEContext(await Core.create(params));
}

/** Reads a context written by `HEContext.toBytes()` (FormatError on anything else). */
export async function loadContext(bytes: Uint8Array): Promise<HEContext> {
  const { meta } = readFrame(bytes, KIND.context, v.object({ params: ParamsSchema }), 'eg.he context');
  return new HEContext(await Core.create(paramsFromWire(meta.params, 'eg.he context')));
}

/** Options of `HEClient.encrypt`: the layout the compiled model expects (`compiled.encryptOptions`). */
export interface EncryptOptions {
  /** `'single'` (one example per ciphertext, the default) or `'batch'` (many per ciphertext, see HELayout). */
  packing?: Packing;
  /** The period vectors are padded to (power of two; default: features rounded up to a power of two). */
  period?: number;
}

/** Options of `HEClient.decrypt`. */
export interface DecryptOptions {
  /** Values per example to read (default: the ciphertext's own width, e.g. the model's outputs). */
  outputs?: number;
  /** Examples to read (default: all the ciphertext holds). */
  batch?: number;
}

/** Options of `HEClient.publicBundle` and `Ciphertext.toBytes`. */
export interface SerializeOptions {
  /** SEAL's compression of the key and ciphertext data (default 'zstd'). */
  compression?: 'zstd' | 'none';
}

function comprMode(core: Core, opts: SerializeOptions | undefined, what: string) {
  const o = checkOptions(opts, `${what} options`);
  const c = o.compression ?? 'zstd';
  if (c !== 'zstd' && c !== 'none') throw new ArgumentError(`${what}: compression must be 'zstd' or 'none', got ${describe(c)}`);
  return c === 'zstd' ? core.seal.ComprModeType.zstd : core.seal.ComprModeType.none;
}

/**
 * The client: holds the secret key (never serialised unless `secretKeyBytes()` is called),
 * encrypts inputs and decrypts results.
 */
export class HEClient {
  #core: Core | null;
  #keygen: KeyGenerator;
  #secret: SecretKey;
  #public: PublicKey;
  #encryptor: Encryptor;
  #decryptor: Decryptor;
  readonly #galois: number[] | null;
  private constructor(core: Core, keygen: KeyGenerator, secret: SecretKey, galois: number[] | null) {
    if (!(core instanceof Core)) throw new ArgumentError('HEClient is made by HEContext.generateKeys() or eg.he.loadClient(), not with new');
    this.#core = core;
    this.#keygen = keygen;
    this.#secret = secret;
    this.#galois = galois;
    this.#public = own(keygen.createPublicKey());
    this.#encryptor = own(core.seal.Encryptor(core.context, this.#public, secret));
    this.#decryptor = own(core.seal.Decryptor(core.context, secret));
    registerCore(this, () => this.#live('HEClient'));
  }
  /** @internal */
  static generate(core: Core, galois: number[] | null, secretBlob?: Uint8Array): HEClient {
    core.retain();
    let keygen: KeyGenerator | null = null;
    let secret: SecretKey | null = null;
    try {
      if (secretBlob) {
        secret = own(core.seal.SecretKey());
        const sk = secret;
        sealCall('eg.he secret key', () => sk.loadArray(core.context, secretBlob), FormatError);
        keygen = own(core.seal.KeyGenerator(core.context, sk));
      } else {
        keygen = own(core.seal.KeyGenerator(core.context));
        secret = own(keygen.secretKey());
      }
      return new HEClient(core, keygen, secret, galois);
    } catch (e) {
      free(secret, keygen);
      core.release();
      throw e;
    }
  }
  #live(what: string): Core {
    if (!this.#core) throw new DisposedError(`${what}: this HEClient was disposed`);
    return this.#core.check(what);
  }
  /** The context's parameters. */
  get params(): HEParams {
    return { ...this.#live('HEClient.params').params };
  }
  /** The rotation steps its Galois keys cover (null: SEAL's power-of-two default set). */
  get galoisSteps(): number[] | null {
    return this.#galois ? [...this.#galois] : null;
  }
  /** True: a client holds the secret key (an `HEEvaluator` reports false). */
  get hasSecretKey(): boolean {
    return true;
  }

  /**
   * What a server needs and nothing more: parameters, public key, relinearisation keys and the
   * Galois keys, as one eg.he frame. Keys are made fresh from the secret key in SEAL's seeded form
   * (half the size of expanded keys). The secret key is never part of it.
   */
  publicBundle(opts?: SerializeOptions): Uint8Array {
    const core = this.#live('HEClient.publicBundle');
    const mode = comprMode(core, opts, 'HEClient.publicBundle');
    const save = (s: { saveArray(m: unknown): Uint8Array; delete(): void }) => withTemp(s, (x) => x.saveArray(mode));
    const pk = save(this.#keygen.createPublicKeySerializable());
    const rk = save(this.#keygen.createRelinKeysSerializable());
    const gk = save(sealCall('eg.he: Galois keys', () => this.#keygen.createGaloisKeysSerializable(this.#galois ? Int32Array.from(this.#galois) : undefined), ArgumentError));
    return writeFrame(KIND.publicBundle, { params: core.params, galois: this.#galois }, [pk, rk, gk]);
  }

  /**
   * The secret key with its parameters, for a client that must keep its keys (e.g. in browser
   * storage); `eg.he.loadClient` reads it back. Never send it to a server.
   */
  secretKeyBytes(): Uint8Array {
    const core = this.#live('HEClient.secretKeyBytes');
    return writeFrame(KIND.secretKey, { params: core.params, galois: this.#galois }, [this.#secret.saveArray(core.seal.ComprModeType.none)]);
  }

  /**
   * Encrypts one example (`[features]`: number[], Float32Array or a rank-1 Tensor) or a batch
   * (`[n, ...]`: number[][] or a Tensor whose first dimension is the batch; the rest is flattened
   * in row-major (NHWC) order) in the layout a compiled model expects (`compiled.encryptOptions`).
   * Batches larger than a ciphertext holds are split over several SEAL ciphertexts in one `Ciphertext`.
   */
  encrypt(x: Tensor | Float32Array | number[] | number[][], opts: EncryptOptions = {}): Ciphertext {
    const core = this.#live('HEClient.encrypt');
    const { meta, plains } = this.#encode(core, x, opts, 'HEClient.encrypt');
    const chunks: CipherText[] = [];
    try {
      for (const plain of plains) {
        const ct = own(core.seal.CipherText({ context: core.context }));
        chunks.push(ct);
        sealCall('eg.he: encryption', () => this.#encryptor.encrypt(plain, ct), ArgumentError);
      }
    } catch (e) {
      free(...chunks);
      throw e;
    } finally {
      free(...plains);
    }
    return new Ciphertext(core, chunks, meta);
  }

  /**
   * `encrypt(x, opts).toBytes()` in half the bytes: encrypts with the secret key in SEAL's seeded
   * form, where one of the two polynomials is replaced by the seed that generates it (expanded again
   * by `eg.he.loadCiphertext`). For uploads; equally secure (the client holds the secret key anyway).
   */
  encryptToBytes(x: Tensor | Float32Array | number[] | number[][], opts: EncryptOptions & SerializeOptions = {}): Uint8Array {
    const core = this.#live('HEClient.encryptToBytes');
    const { compression, ...layoutOpts } = checkOptions(opts, 'HEClient.encryptToBytes options');
    const mode = comprMode(core, { compression }, 'HEClient.encryptToBytes');
    const { meta, plains } = this.#encode(core, x, layoutOpts, 'HEClient.encryptToBytes');
    try {
      const sections = plains.map((plain) => withTemp(sealCall('eg.he: encryption', () => this.#encryptor.encryptSymmetricSerializable(plain), ArgumentError), (s) => s.saveArray(mode)));
      return writeFrame(KIND.ciphertext, meta, sections);
    } finally {
      free(...plains);
    }
  }

  /** Checks the input and layout, and encodes one plaintext per chunk (owned by the caller). */
  #encode(core: Core, x: unknown, opts: EncryptOptions, what: string): { meta: CiphertextMeta; plains: PlainText[] } {
    checkOptions(opts, `${what} options`);
    const { data, n, features } = examples(x, what);
    const packing = opts.packing ?? 'single';
    if (packing !== 'single' && packing !== 'batch') throw new ArgumentError(`${what}: packing must be 'single' or 'batch', got ${describe(packing)}`);
    const period = opts.period === undefined ? nextPow2(features) : checkInt(opts.period, `${what}: period`, 1, core.slots);
    if ((period & (period - 1)) !== 0 || period < features) throw new ArgumentError(`${what}: period must be a power of two >= the ${features} features, got ${period}`);
    const layout: HELayout = { packing, period };
    checkLayout(layout, core.slots, what);
    const per = perCiphertext(layout, core.slots);
    const plains: PlainText[] = [];
    try {
      for (let first = 0; first < n; first += per) {
        plains.push(core.encode(pack(data, features, first, Math.min(per, n - first), layout, core.slots), 2 ** core.params.scaleBits, core.topLevel));
      }
    } catch (e) {
      free(...plains);
      throw e;
    }
    return { meta: { ...layout, features, count: n }, plains };
  }

  /** Decrypts to a `[n, outputs]` float32 tensor (the caller disposes it). */
  decrypt(c: Ciphertext, opts: DecryptOptions = {}): Tensor {
    const core = this.#live('HEClient.decrypt');
    checkOptions(opts, 'HEClient.decrypt options');
    if (!(c instanceof Ciphertext)) throw new ArgumentError(`HEClient.decrypt needs a Ciphertext, got ${describe(c)}`);
    const meta = c.meta;
    if (coreOf(c, 'HEClient.decrypt') !== core && JSON.stringify(coreOf(c, 'HEClient.decrypt').params) !== JSON.stringify(core.params)) {
      throw new ArgumentError('HEClient.decrypt: the ciphertext was made under other parameters than this client\'s context');
    }
    const outputs = opts.outputs === undefined ? meta.features : checkInt(opts.outputs, 'HEClient.decrypt: outputs', 1, meta.period);
    const batch = opts.batch === undefined ? meta.count : checkInt(opts.batch, 'HEClient.decrypt: batch', 1, meta.count);
    const per = perCiphertext(meta, core.slots);
    const out = new Float32Array(batch * outputs);
    const chunks = c.chunks;
    for (let k = 0; k * per < batch; k++) {
      const plain = own(core.seal.PlainText());
      try {
        sealCall('eg.he: decryption', () => this.#decryptor.decrypt(chunks[k], plain), ArgumentError);
        const slots = sealCall('eg.he: decoding', () => core.encoder.decode(plain), ArgumentError);
        unpack(slots, outputs, k * per, Math.min(per, batch - k * per), meta, out);
      } finally {
        free(plain);
      }
    }
    return tensor(out, [batch, outputs]);
  }

  /** Frees the keys, encryptor and decryptor. */
  dispose(): void {
    if (!this.#core) return;
    free(this.#encryptor, this.#decryptor, this.#public, this.#secret, this.#keygen);
    this.#core.release();
    this.#core = null;
  }
}

/** Reads a client written by `HEClient.secretKeyBytes()` (its keys, same parameters). */
export async function loadClient(bytes: Uint8Array): Promise<HEClient> {
  const { meta, sections } = readFrame(bytes, KIND.secretKey, v.object({ params: ParamsSchema, galois: v.union(v.literal(null), v.array(v.int({ min: -16383, max: 16383 }), { max: 4096 })) }), 'eg.he secret key');
  if (sections.length !== 1) throw new FormatError(`eg.he secret key: expected 1 section, got ${sections.length}`);
  const core = await Core.create(paramsFromWire(meta.params, 'eg.he secret key'));
  try {
    checkSealBlob(sections[0], core.bounds().secretKey, 'eg.he secret key');
    return HEClient.generate(core, meta.galois as number[] | null, sections[0]);
  } finally {
    core.release(); // the client holds its own reference
  }
}

/** What a ciphertext holds: its layout, the values per example, and how many examples. */
export interface CiphertextMeta extends HELayout {
  /** Values per example (the model's inputs, or outputs after `forward`). */
  features: number;
  /** Examples held (over all chunks). */
  count: number;
}
const MetaSchema = v.object({
  packing: v.oneOf(['single', 'batch'] as const),
  period: v.int({ min: 1, max: 16384 }),
  features: v.int({ min: 1, max: 16384 }),
  count: v.int({ min: 1, max: 1 << 24 }),
});

/**
 * Encrypted data: one or more SEAL ciphertexts (chunks) with their slot layout. Owns its SEAL
 * objects; `dispose()` frees them.
 */
export class Ciphertext {
  #core: Core | null;
  #chunks: CipherText[];
  readonly #meta: CiphertextMeta;
  /** @internal Made by `HEClient.encrypt`, `HEEvaluator.forward` or `eg.he.loadCiphertext`. */
  constructor(core: Core, chunks: CipherText[], meta: CiphertextMeta) {
    if (!(core instanceof Core)) throw new ArgumentError('Ciphertext is made by HEClient.encrypt(), HEEvaluator.forward() or eg.he.loadCiphertext(), not with new');
    this.#core = core.retain();
    this.#chunks = chunks;
    this.#meta = meta;
    registerCore(this, () => this.#live('Ciphertext'));
  }
  #live(what: string): Core {
    if (!this.#core) throw new DisposedError(`${what}: this Ciphertext was disposed`);
    return this.#core.check(what);
  }
  /** @internal The SEAL ciphertexts (owned by this object). */
  get chunks(): CipherText[] {
    this.#live('Ciphertext');
    return this.#chunks;
  }
  /** Layout, width and example count. */
  get meta(): CiphertextMeta {
    return { ...this.#meta };
  }
  /** Examples held. */
  get count(): number {
    return this.#meta.count;
  }
  /** Values per example. */
  get features(): number {
    return this.#meta.features;
  }
  /** SEAL's chain index: 0 means only the decryption prime is left. */
  get level(): number {
    const core = this.#live('Ciphertext.level');
    return core.levelOf(this.#chunks[0]);
  }
  /** Multiplicative levels (rescales) still possible, equal to `level`. */
  get depthLeft(): number {
    return this.level;
  }
  /** Bytes on the wire (an eg.he frame). */
  toBytes(opts?: SerializeOptions): Uint8Array {
    const core = this.#live('Ciphertext.toBytes');
    const mode = comprMode(core, opts, 'Ciphertext.toBytes');
    return writeFrame(KIND.ciphertext, this.#meta, this.#chunks.map((c) => c.saveArray(mode)));
  }
  /** Frees the SEAL ciphertexts. */
  dispose(): void {
    if (!this.#core) return;
    free(...this.#chunks);
    this.#chunks = [];
    this.#core.release();
    this.#core = null;
  }
}

/**
 * Reads ciphertext bytes for a context, client or evaluator (its parameters must match); sizes are
 * checked before SEAL loads anything.
 */
export function loadCiphertext(target: HEContext | HEClient | { readonly hasSecretKey: boolean }, bytes: Uint8Array): Ciphertext {
  const core = coreOf(target, 'eg.he.loadCiphertext target');
  const { meta, sections } = readFrame(bytes, KIND.ciphertext, MetaSchema, 'eg.he ciphertext');
  const per = meta.packing === 'single' ? 1 : Math.floor(core.slots / (2 * meta.period));
  if (per < 1 || meta.features > meta.period || (meta.period & (meta.period - 1)) !== 0) throw new FormatError(`eg.he ciphertext: layout ${meta.packing}/${meta.period} with ${meta.features} features does not fit ${core.slots} slots`);
  if (sections.length !== Math.ceil(meta.count / per)) throw new FormatError(`eg.he ciphertext: ${meta.count} examples need ${Math.ceil(meta.count / per)} chunks, got ${sections.length}`);
  const bound = core.bounds().ciphertext;
  sections.forEach((s, i) => checkSealBlob(s, bound, `eg.he ciphertext chunk ${i}`));
  const chunks: CipherText[] = [];
  try {
    for (const s of sections) {
      const ct = own(core.seal.CipherText());
      chunks.push(ct);
      sealCall('eg.he ciphertext', () => ct.loadArray(core.context, s), FormatError);
      if (ct.size !== 2) throw new FormatError(`eg.he ciphertext: a chunk of size ${ct.size} (expected 2 polynomials)`);
    }
    const level = core.levelOf(chunks[0]);
    if (chunks.some((c) => core.levelOf(c) !== level)) throw new FormatError('eg.he ciphertext: its chunks are at different levels');
  } catch (e) {
    free(...chunks);
    throw e;
  }
  return new Ciphertext(core, chunks, meta);
}

/** The public material of a bundle, loaded on a core (owned by the caller). */
export interface PublicKeys {
  core: Core;
  relin: RelinKeys;
  galois: GaloisKeys;
  steps: number[] | null;
}

/** Parses a public bundle and loads its relinearisation and Galois keys (never a secret key: none is in it). */
export async function openBundle(bytes: Uint8Array): Promise<PublicKeys> {
  const { meta, sections } = readFrame(bytes, KIND.publicBundle, v.object({ params: ParamsSchema, galois: v.union(v.literal(null), v.array(v.int({ min: -16383, max: 16383 }), { max: 4096 })) }), 'eg.he public bundle');
  if (sections.length !== 3) throw new FormatError(`eg.he public bundle: expected 3 sections (public, relinearisation, Galois keys), got ${sections.length}`);
  const params = paramsFromWire(meta.params, 'eg.he public bundle');
  const steps = meta.galois as number[] | null;
  const core = await Core.create(params);
  const b = core.bounds();
  let relin: RelinKeys | null = null;
  let galois: GaloisKeys | null = null;
  try {
    checkSealBlob(sections[0], b.publicKey, 'eg.he public bundle: public key');
    checkSealBlob(sections[1], b.keySwitchKey, 'eg.he public bundle: relinearisation keys');
    const nGalois = steps ? steps.length : 2 * Math.log2(params.slots);
    checkSealBlob(sections[2], b.keySwitchKey * Math.max(1, nGalois), 'eg.he public bundle: Galois keys');
    relin = own(core.seal.RelinKeys());
    galois = own(core.seal.GaloisKeys());
    const [r, g] = [relin, galois];
    sealCall('eg.he public bundle: relinearisation keys', () => r.loadArray(core.context, sections[1]), FormatError);
    sealCall('eg.he public bundle: Galois keys', () => g.loadArray(core.context, sections[2]), FormatError);
    return { core, relin, galois, steps };
  } catch (e) {
    free(relin, galois);
    core.release();
    throw e;
  }
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Flattens the accepted input forms to row-major examples. */
function examples(x: unknown, what: string): { data: ArrayLike<number>; n: number; features: number } {
  const bad = () => new ArgumentError(`${what} needs a Tensor, Float32Array, number[] (one example) or number[][] (a batch), got ${describe(x)}`);
  let data: ArrayLike<number>;
  let n: number;
  let features: number;
  if (isTensor(x)) {
    if (x.rank === 0) throw bad();
    n = x.rank === 1 ? 1 : x.shape[0];
    features = x.rank === 1 ? x.shape[0] : x.shape.slice(1).reduce((a, b) => a * b, 1);
    data = x.dataSync() as ArrayLike<number>;
  } else if (x instanceof Float32Array || x instanceof Float64Array) {
    n = 1;
    features = x.length;
    data = x;
  } else if (Array.isArray(x) && x.length > 0 && Array.isArray(x[0])) {
    n = x.length;
    features = (x[0] as number[]).length;
    const flat = new Float64Array(n * features);
    x.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== features) throw new ArgumentError(`${what}: row ${i} has ${Array.isArray(row) ? row.length : describe(row)} values, expected ${features}`);
      flat.set(row as number[], i * features);
    });
    data = flat;
  } else if (Array.isArray(x)) {
    n = 1;
    features = x.length;
    data = Float64Array.from(x as number[]);
  } else throw bad();
  if (n === 0 || features === 0) throw new ArgumentError(`${what}: nothing to encrypt (empty input)`);
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new ArgumentError(`${what}: input value ${i} is ${data[i]}; only finite numbers can be encrypted`);
  }
  return { data, n, features };
}
