/**
 * Saving and loading models: `model.json` (the architecture as a module config, plus optional
 * optimizer hyper-parameters) and `model.safetensors` (parameters and buffers by state-dict name,
 * plus optimizer moments under `optimizer.<i>.<name>`). In Node a model is a directory; in
 * browsers `saveModel` returns the two artifacts and `loadModel` takes a URL or the artifacts.
 */
import { ArgumentError, EdgegradError, FormatError } from '../errors.js';
import { readAsset } from '../datasets.js';
import { moduleFromConfig, type Module, type ModuleConfig } from '../nn/module.js';
import type { Optimizer, OptimizerState } from '../optim/optimizers.js';
import type { Tensor } from '../tensor.js';
import { decodeSafetensors, encodeSafetensors } from './safetensors.js';

const FORMAT = 'edgegrad-model';
const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';

export interface ModelJson {
  format: typeof FORMAT;
  version: 1;
  model: ModuleConfig;
  weightsFile: string;
  optimizer?: { className: string; groups: Record<string, number | boolean>[]; steps: number[]; tensorNames: string[][] };
  /** Anything the caller wants stored with the model (training summary, label names...). */
  userData?: Record<string, unknown>;
}

export interface ModelArtifacts {
  json: ModelJson;
  weights: Uint8Array;
}

export interface SaveOptions {
  /** Also store this optimizer's state, so training resumes exactly. */
  optimizer?: Optimizer<{ lr: number }>;
  userData?: Record<string, unknown>;
}

/** The two artifacts of a model (and optionally its optimizer). */
export function serializeModel(model: Module, o: SaveOptions = {}): ModelArtifacts {
  const tensors: Record<string, Tensor> = { ...model.stateDict() };
  const json: ModelJson = { format: FORMAT, version: 1, model: model.toConfig(), weightsFile: 'model.safetensors', userData: o.userData };
  if (o.optimizer) {
    const st = o.optimizer.stateDict();
    json.optimizer = { className: o.optimizer.constructor.name, groups: st.groups, steps: st.params.map((p) => p.step), tensorNames: st.params.map((p) => Object.keys(p.tensors)) };
    st.params.forEach((p, i) => {
      for (const [n, t] of Object.entries(p.tensors)) tensors[`optimizer.${i}.${n}`] = t;
    });
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
 * Elsewhere (or with no `dir`): only returns the artifacts.
 */
export async function saveModel(model: Module, dir?: string, o: SaveOptions = {}): Promise<ModelArtifacts> {
  const art = serializeModel(model, o);
  if (dir !== undefined) {
    if (!isNode) throw new ArgumentError('saveModel(model, dir) writes files in Node only; in browsers call saveModel(model) and store the returned artifacts');
    const { fs, path } = await nodeFs();
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify(art.json, null, 2));
    await fs.writeFile(path.join(dir, art.json.weightsFile), art.weights);
  }
  return art;
}

function checkJson(j: unknown): ModelJson {
  const m = j as ModelJson;
  if (!m || m.format !== FORMAT) throw new FormatError(`not an edgegrad model file (format is ${JSON.stringify(m?.format)}, expected '${FORMAT}')`);
  if (m.version !== 1) throw new FormatError(`unsupported edgegrad model version ${m.version}`);
  if (!m.model || typeof m.model.className !== 'string') throw new FormatError('model.json has no model configuration');
  return m;
}

async function readJson(url: URL): Promise<unknown> {
  const text = new TextDecoder().decode(await readAsset(url));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${url} is not valid JSON (${(e as Error).message})`);
  }
}

/** Where a model comes from: a Node directory or model.json path, a URL, or the artifacts. */
export type ModelSource = string | URL | { json: ModelJson | string; weights: Uint8Array | ArrayBuffer };

async function readArtifacts(src: ModelSource): Promise<{ json: ModelJson; weights: Uint8Array }> {
  if (typeof src === 'object' && !(src instanceof URL)) {
    const json = checkJson(typeof src.json === 'string' ? JSON.parse(src.json) : src.json);
    return { json, weights: src.weights instanceof Uint8Array ? src.weights : new Uint8Array(src.weights) };
  }
  let url: URL;
  if (src instanceof URL) url = src;
  else if (isNode && !/^[a-z]+:\/\//i.test(src)) {
    const { fs, path } = await nodeFs();
    const st = await fs.stat(src).catch(() => null);
    if (!st) throw new FormatError(`no model at ${src}`);
    const { pathToFileURL } = (await import(/* @vite-ignore */ 'node:url' as string)) as typeof import('node:url');
    url = pathToFileURL(st.isDirectory() ? path.join(src, 'model.json') : src);
  } else url = new URL(src, isNode ? undefined : globalThis.location?.href);
  const json = checkJson(await readJson(url));
  const weights = await readAsset(new URL(json.weightsFile, url));
  return { json, weights };
}

/**
 * Rebuilds a model from its config and loads its weights, checking that the file holds exactly the
 * model's tensors with the right shapes and dtypes. With `optimizer`, restores its state too.
 */
export async function loadModel(src: ModelSource, o: { optimizer?: Optimizer<{ lr: number }> } = {}): Promise<{ model: Module; json: ModelJson }> {
  const { json, weights } = await readArtifacts(src);
  const { tensors } = decodeSafetensors(weights);
  let model: Module | null = null;
  try {
    try {
      model = moduleFromConfig(json.model);
    } catch (e) {
      throw new FormatError(`model.json describes a model that cannot be built: ${(e as Error).message}`);
    }
    const own: Record<string, Tensor> = {};
    const opt: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) (k.startsWith('optimizer.') ? opt : own)[k] = t;
    try {
      model.loadStateDict(own, { strict: true });
    } catch (e) {
      throw new FormatError(`weights do not match the model: ${(e as EdgegradError).message}`);
    }
    if (o.optimizer) {
      if (!json.optimizer) throw new FormatError('this model file holds no optimizer state');
      const st: OptimizerState = {
        groups: json.optimizer.groups,
        params: json.optimizer.steps.map((step, i) => ({
          step,
          tensors: Object.fromEntries(json.optimizer!.tensorNames[i].map((n) => {
            const t = opt[`optimizer.${i}.${n}`];
            if (!t) throw new FormatError(`optimizer tensor optimizer.${i}.${n} is missing from the weights`);
            return [n, t];
          })),
        })),
      };
      o.optimizer.loadStateDict(st);
    }
    return { model, json };
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** Saves only a state dict (any named tensors) as safetensors bytes. */
export function saveWeights(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  return encodeSafetensors(tensors, metadata);
}

/** Loads safetensors bytes into a module's parameters and buffers (strict by default). */
export function loadWeights(model: Module, data: Uint8Array | ArrayBuffer, o: { strict?: boolean } = {}): { missing: string[]; unexpected: string[] } {
  const { tensors } = decodeSafetensors(data);
  try {
    return model.loadStateDict(tensors, o);
  } catch (e) {
    throw new FormatError(`weights do not match the model: ${(e as Error).message}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
