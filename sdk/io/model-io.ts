/**
 * Saving and loading models: `model.json` (the architecture as a module config, plus optional
 * optimizer hyper-parameters) and `model.safetensors` (parameters and buffers by state-dict name,
 * plus optimizer moments under `optimizer.<i>.<name>`). In Node a model is a directory; in
 * browsers `saveModel` returns the two artifacts and `loadModel` takes a URL or the artifacts.
 */
import { ArgumentError, EdgegradError, FormatError, MemoryError } from '../errors.js';
import { withAllocationLimit } from '../memory.js';
import { checkOptions, describe } from '../args.js';
import { assertModule, moduleConfigSchema, moduleFromConfig, type Module, type ModuleConfig } from '../nn/module.js';
import type { Optimizer, OptimizerState } from '../optim/optimizers.js';
import type { Tensor } from '../tensor.js';
import { dirOf, readBytes, resolveInside, statPath } from './files.js';
import { DEFAULT_JSON_BYTES, parseJson } from './json.js';
import {
  DEFAULT_MAX_TENSORS, decodeTensor, encodeSafetensors, entryDType, entryEngineBytes, parseSafetensorsHeader, shortName, type ParsedSafetensors, type SafetensorsEntry,
} from './safetensors.js';
import { fail, v, validate, type Schema } from './validate.js';
import { checkDigest, checkSigningKey, digestSchema, sha256Digest, signManifest, signatureSchema, verifyManifest, type ModelSignature } from './integrity.js';

const FORMAT = 'edgegrad-model';
const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';

/** The contents of `model.json`: format, architecture (module config), tensor names and `userData`. */
export interface ModelJson {
  /** Always `'edgegrad-model'`; other values are rejected with FormatError on load. */
  format: typeof FORMAT;
  /** Format version (1). */
  version: 1;
  /** The architecture: the module's `toConfig()`, rebuilt on load. */
  model: ModuleConfig;
  /** File name of the safetensors weights, relative to model.json (`model.safetensors` by default). */
  weightsFile: string;
  /** The optimizer state saved with `SaveOptions.optimizer`: class name, group hyper-parameters, per-parameter step counts and state tensor names. */
  optimizer?: {
    /** The optimizer's class, e.g. `Adam`; loading into another class fails. */
    className: string;
    /** Hyper-parameters of each parameter group. */
    groups: Record<string, number | boolean>[];
    /** Step count of each parameter. */
    steps: number[];
    /** Names of each parameter's state tensors in the weights file. */
    tensorNames: string[][];
  };
  /** Anything the caller wants stored with the model (training summary, label names...). */
  userData?: Record<string, unknown>;
  /** Training state of a checkpoint (epoch, RNG, history, callbacks: see train/checkpoint.ts); its tensors are `training.<name>`. */
  training?: Record<string, unknown>;
  /** SHA-256 of the weights file (`sha256:<hex>`), written by `saveModel`, checked by `loadModel`. */
  weightsDigest?: string;
  /** Ed25519 signature of everything else in model.json (`saveModel(..., { signWith })`). */
  signature?: ModelSignature;
}

/** A saved model in memory: `model.json`'s object and `model.safetensors`' bytes. */
export interface ModelArtifacts {
  /** The parsed `model.json`. */
  json: ModelJson;
  /** The safetensors bytes of the weights (and optimizer/training tensors). */
  weights: Uint8Array;
}

/** Options of `saveModel`. */
export interface SaveOptions {
  /** Also store this optimizer's state, so training resumes exactly. */
  optimizer?: Optimizer;
  /** Anything the caller wants stored in model.json (`ModelJson.userData`). */
  userData?: Record<string, unknown>;
  /** A checkpoint's training state (JSON) and its tensors, stored as `training.<name>`. */
  training?: {
    /** The JSON part of the training state. */
    state: Record<string, unknown>;
    /** The tensor part, stored as `training.<name>`. */
    tensors?: Record<string, Tensor>;
  };
  /**
   * `saveModel` only: an Ed25519 private CryptoKey (`generateSigningKeys()`) that signs model.json
   * and, through its `weightsDigest`, the weights; `loadModel(src, { verifyWith })` checks it.
   */
  signWith?: CryptoKey;
}

/** The two artifacts of a model (and optionally its optimizer). */
export function serializeModel(model: Module, o: SaveOptions = {}): ModelArtifacts {
  assertModule(model, 'serializeModel');
  o = checkOptions(o, 'save options');
  if (o.optimizer !== undefined && typeof (o.optimizer as { stateDict?: unknown } | null)?.stateDict !== 'function') {
    throw new ArgumentError(`save options.optimizer must be an Optimizer, got ${describe(o.optimizer)}`);
  }
  if (o.training !== undefined && (o.training === null || typeof o.training !== 'object')) {
    throw new ArgumentError(`save options.training must be { state, tensors? }, got ${describe(o.training)}`);
  }
  if (o.signWith !== undefined) throw new ArgumentError('serializeModel cannot sign (signing is asynchronous): use await saveModel(model, dir?, { signWith })');
  const tensors: Record<string, Tensor> = { ...model.stateDict() };
  const json: ModelJson = { format: FORMAT, version: 1, model: model.toConfig(), weightsFile: 'model.safetensors', userData: o.userData };
  if (o.optimizer) {
    const st = o.optimizer.stateDict();
    json.optimizer = { className: o.optimizer.constructor.name, groups: st.groups, steps: st.params.map((p) => p.step), tensorNames: st.params.map((p) => Object.keys(p.tensors)) };
    st.params.forEach((p, i) => {
      for (const [n, t] of Object.entries(p.tensors)) tensors[`optimizer.${i}.${n}`] = t;
    });
  }
  if (o.training) {
    json.training = o.training.state;
    for (const [n, t] of Object.entries(o.training.tensors ?? {})) tensors[`training.${n}`] = t;
  }
  return { json, weights: encodeSafetensors(tensors, { format: FORMAT }) };
}

async function nodeFs() {
  const fsName = 'node:fs/promises';
  const pathName = 'node:path';
  return {
    fs: (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs/promises'),
    path: (await import(/* @vite-ignore */ pathName)) as typeof import('node:path'),
  };
}

/**
 * Node: writes `<dir>/model.json` and `<dir>/model.safetensors` and returns the artifacts.
 * Elsewhere (or with no `dir`): only returns the artifacts. model.json carries the weights'
 * SHA-256 (`weightsDigest`), and with `signWith` an Ed25519 signature (see README, Robustness).
 */
export async function saveModel(model: Module, dir?: string, o: SaveOptions = {}): Promise<ModelArtifacts> {
  if (dir !== undefined && typeof dir !== 'string') throw new ArgumentError(`saveModel: dir must be a path string, got ${describe(dir)}`);
  const { signWith, ...rest } = checkOptions(o, 'save options');
  const key = signWith === undefined ? undefined : checkSigningKey(signWith, 'private', 'saveModel: signWith');
  const art = serializeModel(model, rest);
  art.json.weightsDigest = await sha256Digest(art.weights);
  if (key) art.json.signature = await signManifest(art.json, key);
  if (dir !== undefined) {
    if (!isNode) throw new ArgumentError('saveModel(model, dir) writes files in Node only; in browsers call saveModel(model) and store the returned artifacts');
    const { fs, path } = await nodeFs();
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify(art.json, null, 2));
    await fs.writeFile(path.join(dir, art.json.weightsFile), art.weights);
  }
  return art;
}

const isPlain = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x);

/** Optimizer state in model.json (its tensors are in the weights file as `optimizer.<i>.<name>`). */
export const optimizerJsonSchema = v.refine(v.object({
  className: v.string({ minLength: 1, maxLength: 200 }),
  groups: v.array(v.record(v.union<number | boolean>(v.number(), v.boolean()), { maxKeys: 64 }), { max: 4096 }),
  steps: v.array(v.int({ min: 0 }), { max: DEFAULT_MAX_TENSORS }),
  tensorNames: v.array(v.array(v.string({ minLength: 1, maxLength: 256 }), { max: 64 }), { max: DEFAULT_MAX_TENSORS }),
}), (o) => (o.steps.length === o.tensorNames.length ? null : `has ${o.steps.length} steps but ${o.tensorNames.length} tensorNames lists`));

/**
 * model.json. Fields added by later versions (trainer state...) go in `optional` here; unknown
 * fields are refused.
 */
export const modelJsonSchema: Schema<ModelJson> = v.object({
  format: v.literal(FORMAT),
  version: v.literal(1 as const),
  model: moduleConfigSchema,
  weightsFile: v.string({ minLength: 1, maxLength: 1024 }),
}, {
  optional: {
    optimizer: optimizerJsonSchema,
    userData: v.refine(v.json(), (u) => (isPlain(u) ? null : 'must be an object')) as Schema<Record<string, unknown>>,
    // Checked in detail by train/checkpoint.ts; here only bounded and object-shaped.
    training: v.refine(v.json(), (u) => (isPlain(u) ? null : 'must be an object')) as Schema<Record<string, unknown>>,
    weightsDigest: digestSchema,
    signature: signatureSchema,
  },
});

function checkJson(j: unknown): ModelJson {
  const f = isPlain(j) ? (j as { format?: unknown }).format : undefined;
  if (f !== FORMAT) throw new FormatError(`not an edgegrad model file (model.json's format is ${describe(f)}, expected '${FORMAT}')`);
  return validate(modelJsonSchema, j, 'model.json');
}

/** Options of `loadModel`. The defaults are safe for files from anyone (see README, Security). */
export interface LoadModelOptions {
  /** Also restore this optimizer's state (its class must match the file's). */
  optimizer?: Optimizer;
  /**
   * Follow a `weightsFile` outside the model's folder: other folders, absolute paths, symlinks
   * leaving the folder, URLs of any scheme. Only for files you trust. Default false.
   */
  allowOutsideDir?: boolean;
  /** Most bytes read for the weights (default 2 GiB). */
  maxBytes?: number;
  /** Most bytes read for model.json (default 16 MiB). */
  maxJsonBytes?: number;
  /** Most tensors the weights file may hold (default 100,000). */
  maxTensors?: number;
  /**
   * Receives a checkpoint's training state and its `training.<name>` tensors (by name, without
   * the prefix; freed after the call returns: clone what you keep). Not called when the file has none.
   */
  training?: (state: Record<string, unknown>, tensors: Record<string, Tensor>) => void;
  /**
   * An Ed25519 public CryptoKey: refuse the model (IntegrityError) unless model.json is signed by its
   * private key and the weights match the signed digest. Without it (the default), signatures are
   * not checked; a `weightsDigest`, when present, always is.
   */
  verifyWith?: CryptoKey;
}

/** Where a model comes from: a Node directory or model.json path, a URL, or the artifacts. */
export type ModelSource = string | URL | {
  /** model.json, parsed or as text. */
  json: ModelJson | string;
  /** The safetensors bytes. */
  weights: Uint8Array | ArrayBuffer;
};

async function readArtifacts(src: ModelSource, o: LoadModelOptions): Promise<{ json: ModelJson; weights: Uint8Array }> {
  if (src !== null && typeof src === 'object' && !(src instanceof URL)) {
    const raw = typeof src.json === 'string' ? parseJson(src.json, 'model.json', { maxBytes: o.maxJsonBytes }) : src.json;
    const w = src.weights;
    if (!(w instanceof Uint8Array || w instanceof ArrayBuffer)) throw new ArgumentError(`loadModel: weights must be a Uint8Array or ArrayBuffer, got ${describe(w)}`);
    return { json: checkJson(raw), weights: w instanceof Uint8Array ? w : new Uint8Array(w) };
  }
  let url: URL;
  if (src instanceof URL) url = src;
  else if (typeof src !== 'string') throw new ArgumentError(`loadModel: expected a path, a URL or { json, weights }, got ${describe(src)}`);
  else if (isNode && !/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) {
    const { path } = await nodeFs();
    const st = await statPath(src, 'model');
    const { pathToFileURL } = (await import(/* @vite-ignore */ 'node:url' as string)) as typeof import('node:url');
    url = pathToFileURL(st.isDirectory() ? path.join(src, 'model.json') : path.resolve(src));
  } else {
    try {
      url = new URL(src, isNode ? undefined : globalThis.location?.href);
    } catch {
      throw new FormatError(`no model at ${src.slice(0, 200)}: not a valid URL`);
    }
  }
  const json = checkJson(parseJson(await readBytes(url, { maxBytes: o.maxJsonBytes ?? DEFAULT_JSON_BYTES, what: 'model.json' }), 'model.json', { maxBytes: o.maxJsonBytes }));
  const wUrl = resolveInside(url, json.weightsFile, { allowOutsideDir: o.allowOutsideDir, what: 'model.json: weightsFile' });
  const weights = await readBytes(wUrl, { maxBytes: o.maxBytes, what: 'weights file', within: o.allowOutsideDir ? undefined : dirOf(url) });
  return { json, weights };
}

/** "a, b, c and 7 more" for messages. */
function names(list: string[]): string {
  const shown = list.slice(0, 5).map(shortName).join(', ');
  return list.length > 5 ? `${shown} and ${list.length - 5} more` : shown;
}

/**
 * Checks a file's entries against a state dict before anything is decoded: names (unless
 * `strict` is false; `others` may also be present), then dtypes and shapes. FormatError otherwise.
 */
function matchEntries(own: Record<string, Tensor>, entries: Record<string, SafetensorsEntry>, others: Set<string>, strict: boolean): { missing: string[]; unexpected: string[] } {
  const missing = Object.keys(own).filter((k) => !Object.hasOwn(entries, k));
  const unexpected = Object.keys(entries).filter((k) => !Object.hasOwn(own, k) && !others.has(k));
  if (strict && (missing.length || unexpected.length)) {
    throw new FormatError(`weights do not match the model: ${missing.length ? `missing ${names(missing)}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected ${names(unexpected)}` : ''}`);
  }
  for (const [k, t] of Object.entries(own)) {
    if (!Object.hasOwn(entries, k)) continue;
    const e = entries[k];
    if (entryDType(e) !== t.dtype) throw new FormatError(`weights do not match the model: '${shortName(k)}' is ${entryDType(e)} but the model expects ${t.dtype}`);
    if (e.shape.join() !== t.shape.join()) throw new FormatError(`weights do not match the model: '${shortName(k)}' has shape [${e.shape.join(', ')}] but the model expects [${t.shape.join(', ')}]`);
  }
  return { missing, unexpected };
}

/**
 * Builds the model a file describes within a memory budget derived from its weights (three times
 * their loaded size plus 16 MiB, room for initialization temporaries), so a tiny file declaring a
 * huge model fails before the memory is taken.
 */
function buildModel(config: ModuleConfig, parsed: ParsedSafetensors): Module {
  let bytes = 0;
  for (const e of Object.values(parsed.entries)) bytes += entryEngineBytes(e);
  const budget = 3 * bytes + 16 * 1024 * 1024;
  try {
    return withAllocationLimit(budget, () => moduleFromConfig(config));
  } catch (e) {
    if (e instanceof MemoryError) {
      throw new FormatError(`model.json declares a model larger than its weights (${bytes} bytes of tensors): building it needs more than ${budget} bytes`);
    }
    throw new FormatError(`model.json describes a model that cannot be built: ${(e as Error).message}`);
  }
}

const size = v.int({ min: 0 });
/** A value `test` accepts, as it is (optimizers, callbacks). */
const is = (what: string, test: (x: unknown) => boolean): Schema<never> => ({
  expect: what,
  check: (x, path) => (test(x) ? x as never : fail(path, `must be ${what}, got ${describe(x)}`)),
});
const LOAD_OPTIONS = v.object({}, {
  optional: {
    optimizer: is('an optimizer', (x) => typeof (x as { loadStateDict?: unknown } | null)?.loadStateDict === 'function'),
    allowOutsideDir: v.boolean(), maxBytes: size, maxJsonBytes: size, maxTensors: size,
    training: is('a function', (x) => typeof x === 'function'),
    verifyWith: is('an Ed25519 public CryptoKey', (x) => typeof CryptoKey !== 'undefined' && x instanceof CryptoKey),
  },
}) as Schema<LoadModelOptions>;

/**
 * Rebuilds a model from its config and loads its weights, checking that the file holds exactly the
 * model's tensors with the right shapes and dtypes before decoding any. With `optimizer`,
 * restores its state too. The defaults are safe for untrusted files: see `LoadModelOptions`.
 */
export async function loadModel(src: ModelSource, opts: LoadModelOptions = {}): Promise<{
  /** The rebuilt model with its weights. */
  model: Module;
  /** The parsed model.json (`userData` included). */
  json: ModelJson;
}> {
  const o = validate(LOAD_OPTIONS, checkOptions(opts, 'loadModel options'), 'loadModel options', ArgumentError);
  if (o.verifyWith) checkSigningKey(o.verifyWith, 'public', 'loadModel options: verifyWith');
  const { json, weights } = await readArtifacts(src, o);
  // A signed model is authenticated, weights included, before anything it says is acted on.
  if (o.verifyWith) {
    await verifyManifest(json, o.verifyWith);
    await checkDigest(weights, json.weightsDigest!, json.weightsFile);
  }
  const parsed = parseSafetensorsHeader(weights, { maxTensors: o.maxTensors });
  const entries = parsed.entries;
  const model = buildModel(json.model, parsed);
  const decoded: Tensor[] = [];
  const decode = (name: string) => {
    const t = decodeTensor(weights, parsed, name);
    decoded.push(t);
    return t;
  };
  try {
    // Names, dtypes and shapes first: a file that does not fit costs no tensor.
    const own = model.stateDict();
    const otherNames = new Set<string>();
    json.optimizer?.tensorNames.forEach((ns, i) => ns.forEach((n) => otherNames.add(`optimizer.${i}.${n}`)));
    const trainingNames = json.training ? Object.keys(entries).filter((k) => k.startsWith('training.')) : [];
    for (const k of trainingNames) otherNames.add(k);
    matchEntries(own, entries, otherNames, true);
    // Unsigned: the digest after the (bounded) structure checks, whose messages say more, and before any decoding.
    if (json.weightsDigest !== undefined && !o.verifyWith) await checkDigest(weights, json.weightsDigest, json.weightsFile);
    const state = new Map<string, Tensor>();
    for (const k of Object.keys(own)) state.set(k, decode(k));
    model.loadStateDict(state, { strict: true });
    if (o.optimizer) {
      const oj = json.optimizer;
      if (!oj) throw new FormatError('this model file holds no optimizer state');
      if (oj.className !== o.optimizer.constructor.name) throw new FormatError(`model.json holds ${shortName(oj.className)} state, not ${o.optimizer.constructor.name} state`);
      const st: OptimizerState = {
        groups: oj.groups,
        params: oj.steps.map((step, i) => ({
          step,
          tensors: Object.fromEntries(oj.tensorNames[i].map((n) => {
            const k = `optimizer.${i}.${n}`;
            if (!Object.hasOwn(entries, k)) throw new FormatError(`optimizer tensor ${shortName(k)} is missing from the weights`);
            return [n, decode(k)];
          })),
        })),
      };
      try {
        o.optimizer.loadStateDict(st);
      } catch (e) {
        throw e instanceof FormatError ? e : new FormatError(`model.json: the optimizer state does not fit this optimizer: ${(e as Error).message}`);
      }
    }
    if (o.training && json.training) {
      const ts: Record<string, Tensor> = Object.create(null);
      for (const k of trainingNames) ts[k.slice('training.'.length)] = decode(k);
      o.training(json.training, ts);
    }
    return { model, json };
  } catch (e) {
    model.dispose();
    throw e instanceof EdgegradError ? e : new FormatError(`the model file could not be loaded: ${(e as Error)?.message}`);
  } finally {
    for (const t of decoded) t.dispose();
  }
}

/** Saves only a state dict (any named tensors) as safetensors bytes. */
export function saveWeights(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(tensors, metadata);
}

/**
 * Loads safetensors bytes into a module's parameters and buffers (strict by default). Names,
 * dtypes and shapes are checked on the header; only the model's tensors are decoded.
 */
export function loadWeights(model: Module, data: Uint8Array | ArrayBuffer, o: { strict?: boolean; maxTensors?: number } = {}): {
  /** The model's tensors the file does not have (non-strict loads only; strict throws). */
  missing: string[];
  /** The file's tensors the model does not have (non-strict loads only; strict throws). */
  unexpected: string[];
} {
  assertModule(model, 'loadWeights');
  if (!(data instanceof Uint8Array || data instanceof ArrayBuffer)) throw new ArgumentError(`loadWeights needs safetensors bytes (Uint8Array or ArrayBuffer), got ${describe(data)}`);
  o = checkOptions(o, 'loadWeights options');
  const buf = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  const parsed = parseSafetensorsHeader(buf, { maxTensors: o?.maxTensors });
  const own = model.stateDict();
  const result = matchEntries(own, parsed.entries, new Set(), o?.strict ?? true);
  const state = new Map<string, Tensor>();
  try {
    for (const k of Object.keys(own)) if (Object.hasOwn(parsed.entries, k)) state.set(k, decodeTensor(buf, parsed, k));
    model.loadStateDict(state, { strict: false });
    return result;
  } finally {
    for (const t of state.values()) t.dispose();
  }
}
