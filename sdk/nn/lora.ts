/**
 * `eg.nn.lora`: low-rank adapters (LoRA, Hu et al. 2021) with PEFT's meaning and file layout.
 *
 * `apply(model, { rank, alpha, targets })` gives each targeted `Linear` two small matrices,
 * `lora_A.weight` `[rank, in]` and `lora_B.weight` `[out, rank]`, registered as submodules of that
 * Linear (so they are in the model's parameters, state dict and train/eval mode), and a forward hook
 * that adds `(alpha / rank) · dropout(x) · Aᵀ · Bᵀ` to its output. A starts Kaiming-uniform
 * (PEFT's `kaiming_uniform_(a=√5)`, bound `1/√in`) and B at zero, so the adapted model starts
 * identical to the base one; every other parameter is frozen. `merge()` folds `scale · B·A` into
 * the base weights and takes the adapters out of the model; adapters save and load on their own as
 * PEFT's `adapter_model.safetensors` + `adapter_config.json`.
 */
import { ArgumentError, EdgegradError, FormatError } from '../errors.js';
import { checkInt, checkNumber, checkObject, checkOptions, describe } from '../args.js';
import { isGradEnabled, noGrad } from '../autograd.js';
import { rand, zeros } from '../creation.js';
import { keep, tidy } from '../memory.js';
import type { Tensor } from '../tensor.js';
import { readBytes } from '../io/files.js';
import { parseJson } from '../io/json.js';
import { decodeTensor, encodeSafetensors, entryDType, parseSafetensorsHeader, shortName } from '../io/safetensors.js';
import { v, validate, type Schema } from '../io/validate.js';
import { linear } from './functional.js';
import { Dropout, Linear } from './layers.js';
import { assertModule, Module, type HookHandle } from './module.js';

const isNode = typeof process !== 'undefined' && process.versions?.node != null && typeof window === 'undefined';
/** PEFT's prefix of every key in adapter_model.safetensors. */
const PREFIX = 'base_model.model.';
/** The weights file of a saved adapter (PEFT's name). */
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** The config file of a saved adapter (PEFT's name). */
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';

/** Options of `apply` (PEFT's `LoraConfig`). */
export interface LoraOptions {
  /**
   * Which Linear layers get adapters, by module path (PEFT's `target_modules`): a name matches a
   * path equal to it or ending in `.<name>` (`'attn.q'` matches `encoder.layers.0.attn.q`); a name
   * with `*` (any characters but `.`), `**` (any characters) or `?` is a glob matched the same way.
   */
  targets: string[];
  /** Rank r of the update (PEFT's `r`, default 8). */
  rank?: number;
  /** Scaling numerator: the update is multiplied by `alpha / rank` (PEFT's `lora_alpha`, default 8). */
  alpha?: number;
  /** Dropout on the adapter's input in training mode (PEFT's `lora_dropout`, default 0). */
  dropout?: number;
  /**
   * Modules trained and saved in full next to the adapters, by path as in `targets` (PEFT's
   * `modules_to_save`, e.g. a new classification head).
   */
  modulesToSave?: string[];
  /** Seed of A's initialization and of the dropout masks (the global stream without it). */
  seed?: number;
}

/** The resolved configuration of a handle. */
export interface LoraConfig {
  /** PEFT's `r`. */
  rank: number;
  /** PEFT's `lora_alpha`. */
  alpha: number;
  /** PEFT's `lora_dropout`. */
  dropout: number;
  /** The target names as given. */
  targets: string[];
  /** The modules-to-save names as given. */
  modulesToSave: string[];
}

/** PEFT's adapter_config.json (the fields edgegrad writes; other PEFT fields are ignored on load). */
export interface AdapterConfigJson {
  /** Always `'LORA'`. */
  peft_type: 'LORA';
  /** The rank. */
  r: number;
  /** The scaling numerator (update × `lora_alpha / r`). */
  lora_alpha: number;
  /** Dropout on the adapters' input. */
  lora_dropout: number;
  /** The target names (matched as in `LoraOptions.targets`). */
  target_modules: string[];
  /** Modules saved in full, or null. */
  modules_to_save: string[] | null;
  /** Biases are not trained by adapters (`'none'`, the only value supported). */
  bias: 'none';
  /** Weights are `[out, in]` as in PyTorch (false, the only value supported). */
  fan_in_fan_out: false;
  /** Scaling `alpha / √r` (rsLoRA): not supported, false. */
  use_rslora: false;
  /** Weight-decomposed LoRA (DoRA): not supported, false. */
  use_dora: false;
  /** A Kaiming-uniform, B zero (PEFT's default, true). */
  init_lora_weights: true;
  /** True when the adapters were saved frozen (loaded for inference). */
  inference_mode: boolean;
  /** PEFT's task type (not recorded: null). */
  task_type: null;
  /** PEFT's base model name (not recorded: null). */
  base_model_name_or_path: null;
}

/** What `serializeAdapters`/`saveAdapters` produce and `loadAdapters` accepts. */
export interface AdapterArtifacts {
  /** adapter_config.json as an object. */
  config: AdapterConfigJson;
  /** adapter_model.safetensors. */
  weights: Uint8Array;
}

/** Trainable, total and trainable share of a model's parameters (PEFT's `print_trainable_parameters`). */
export interface ParameterCounts {
  /** Elements of the parameters that train (adapters and modules to save). */
  trainable: number;
  /** Elements of every parameter of the model, adapters included. */
  total: number;
  /** 100 · trainable / total. */
  percent: number;
}

/** Options of `loadAdapters`. */
export interface LoadAdaptersOptions {
  /** Adapters (and modules to save) train after loading (PEFT's `is_trainable`; default false: frozen, for inference). */
  isTrainable?: boolean;
  /** Most bytes read for adapter_model.safetensors (default 2 GiB). */
  maxBytes?: number;
  /** Most bytes read for adapter_config.json (default 1 MiB). */
  maxJsonBytes?: number;
}

/** Where adapters come from: a Node directory, a URL of the directory, or the two artifacts. */
export type AdapterSource = string | URL | { config: AdapterConfigJson | string | Uint8Array; weights: Uint8Array | ArrayBuffer };

// ------------------------------------------------------------------------------------ layers

/** One adapter matrix as a module, so its key reads `<linear>.lora_A.weight` (PEFT's name). */
class LoraWeight extends Module {
  constructor(weight: Tensor) {
    super();
    this.registerParameter('weight', weight);
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight);
  }
}

/** One adapted Linear: where it is, its adapter modules and hook, and its matrices while merged. */
interface Adapted {
  path: string;
  base: Linear;
  a: LoraWeight | null;
  b: LoraWeight | null;
  drop: Dropout | null;
  hook: HookHandle | null;
  /** A and B, held by the handle while merged (for `unmerge`). */
  kept: [Tensor, Tensor] | null;
}

/** Linears that carry adapters (a layer takes one adapter). */
const adaptedLinears = new WeakSet<Linear>();
/** The live handle of each adapted model. */
const handles = new WeakMap<Module, LoraHandle>();
/** Only this file makes handles (`apply`, `loadAdapters`). */
const MAKE = Symbol('LoraHandle');

// ------------------------------------------------------------------------------------ targets

/** `glob` (a `*`, `**` or `?` pattern) as an anchored RegExp over dotted paths. */
function globRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^.]*';
    else if (c === '?') re += '[^.]';
    else re += c.replace(/[\\^$.+()[\]{}|/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A target name's test on module paths: equal, a `.`-suffix, or a glob over the path or a suffix. */
function matcher(name: string): (path: string) => boolean {
  if (!/[*?]/.test(name)) return (p) => p === name || p.endsWith(`.${name}`);
  const re = globRegExp(name);
  return (p) => {
    if (re.test(p)) return true;
    for (let i = p.indexOf('.'); i >= 0; i = p.indexOf('.', i + 1)) if (re.test(p.slice(i + 1))) return true;
    return false;
  };
}

/** "a, b, c and 7 more" for messages. */
function list(xs: string[], n = 12): string {
  const shown = xs.slice(0, n).map((x) => `'${shortName(x)}'`).join(', ');
  return xs.length > n ? `${shown} and ${xs.length - n} more` : shown || 'none';
}

/** A non-empty array of non-empty strings. */
function names(x: unknown, what: string, allowEmpty = false): string[] {
  if (!Array.isArray(x) || (!allowEmpty && x.length === 0) || x.length > 4096) throw new ArgumentError(`${what} must be ${allowEmpty ? 'an' : 'a non-empty'} array of module names, got ${describe(x)}`);
  for (const s of x) if (typeof s !== 'string' || s.length === 0 || s.length > 1024) throw new ArgumentError(`${what} must hold module names (non-empty strings), got ${describe(s)}`);
  return [...x] as string[];
}

/** The Linear layers of a model (not its root, not adapter matrices) by path. */
function linearsOf(model: Module): [string, Linear][] {
  return [...model.namedModules()].filter((e): e is [string, Linear] => e[0] !== '' && e[1] instanceof Linear);
}

/**
 * The paths of `model`'s Linear layers that `targets` select (what `apply` would wrap), in model
 * order. ArgumentError naming every target that selects no Linear, with the Linear paths there are.
 */
export function targetPaths(model: Module, targets: string[]): string[] {
  assertModule(model, 'lora.targetPaths');
  return resolveTargets(model, names(targets, 'lora.targetPaths targets'), 'lora.targetPaths').map(([p]) => p);
}

function resolveTargets(model: Module, targets: string[], who: string): [string, Linear][] {
  const linears = linearsOf(model);
  const tests = targets.map(matcher);
  const chosen = linears.filter(([p]) => tests.some((t) => t(p)));
  const unmatched = targets.filter((_, i) => !linears.some(([p]) => tests[i](p)));
  if (unmatched.length) {
    const others = [...model.namedModules()].filter(([p, m]) => p !== '' && !(m instanceof Linear) && unmatched.some((t) => matcher(t)(p)));
    const notLinear = others.length ? `; ${list(others.map(([p, m]) => `${p} (${m.className})`), 4)} match but LoRA wraps Linear layers only` : '';
    throw new ArgumentError(`${who}: ${unmatched.length === 1 ? 'target' : 'targets'} ${list(unmatched)} match no Linear layer${notLinear} (Linear layers: ${list(linears.map(([p]) => p), 40)})`);
  }
  return chosen;
}

function resolveModules(model: Module, targets: string[], who: string): [string, Module][] {
  const mods = [...model.namedModules()].filter(([p]) => p !== '');
  const tests = targets.map(matcher);
  const unmatched = targets.filter((_, i) => !mods.some(([p]) => tests[i](p)));
  if (unmatched.length) throw new ArgumentError(`${who}: modulesToSave ${list(unmatched)} match no module (modules: ${list(mods.map(([p]) => p), 40)})`);
  return mods.filter(([p]) => tests.some((t) => t(p)));
}

// ------------------------------------------------------------------------------------ apply

function checkConfig(o: unknown, who: string): LoraConfig & { seed?: number } {
  const opts = checkObject<LoraOptions>(o, `${who} options`, 'an object { targets, rank?, alpha?, dropout?, modulesToSave?, seed? }');
  const known = new Set(['targets', 'rank', 'alpha', 'dropout', 'modulesToSave', 'seed']);
  for (const k of Object.keys(opts)) if (!known.has(k)) throw new ArgumentError(`${who}: unknown option '${shortName(k)}' (options: ${[...known].join(', ')})`);
  const rank = opts.rank === undefined ? 8 : checkInt(opts.rank, `${who}: rank`, 1, 65536);
  const alpha = opts.alpha === undefined ? 8 : checkNumber(opts.alpha, `${who}: alpha`, { finite: true });
  if (!(alpha > 0)) throw new ArgumentError(`${who}: alpha must be > 0, got ${alpha}`);
  const dropout = opts.dropout === undefined ? 0 : checkNumber(opts.dropout, `${who}: dropout`, { finite: true });
  if (!(dropout >= 0 && dropout < 1)) throw new ArgumentError(`${who}: dropout must be in [0, 1), got ${dropout}`);
  const seed = opts.seed === undefined ? undefined : checkInt(opts.seed, `${who}: seed`, 0, 2 ** 31 - 1);
  return {
    rank, alpha, dropout, seed,
    targets: names(opts.targets, `${who}: targets`),
    modulesToSave: opts.modulesToSave === undefined ? [] : names(opts.modulesToSave, `${who}: modulesToSave`, true),
  };
}

/**
 * Adds LoRA adapters to the Linear layers of `model` that `targets` select and freezes every other
 * parameter (modules in `modulesToSave` stay trainable). The model computes exactly what it did
 * until the adapters train (B starts at zero). Returns the handle that trains, merges, saves and
 * removes them. ArgumentError for a target that selects no Linear (naming the Linear paths there
 * are), a Linear with a fused ReLU (the update must be added before it), or a model that already
 * has adapters.
 */
export function apply(model: Module, options: LoraOptions): LoraHandle {
  assertModule(model, 'lora.apply');
  const cfg = checkConfig(options, 'lora.apply');
  return new LoraHandle(MAKE, model, cfg, cfg.seed, true);
}

/** The adapters of one model: train them, count, merge, save and remove them. */
export class LoraHandle {
  /** The adapted model. */
  readonly model: Module;
  /** The configuration the adapters were made with. */
  readonly config: LoraConfig;
  readonly #layers: Adapted[];
  readonly #saved: [string, Module][];
  /** requiresGrad of every model parameter before `apply`, restored by `dispose` when unmerged. */
  readonly #wasTrainable = new Map<Tensor, boolean>();
  #trainable: boolean;
  #state: 'active' | 'merged' | 'disposed' = 'active';

  /** Made by `eg.nn.lora.apply` and `eg.nn.lora.loadAdapters` only (ArgumentError otherwise). */
  constructor(token: symbol, model: Module, cfg: LoraConfig, seed: number | undefined, trainable: boolean) {
    if (token !== MAKE) throw new ArgumentError('LoraHandle is made by eg.nn.lora.apply(model, options) or eg.nn.lora.loadAdapters(model, source)');
    if (handles.has(model)) throw new ArgumentError('lora.apply: this model already has LoRA adapters (merge them, or dispose() their handle, first)');
    const chosen = resolveTargets(model, cfg.targets, 'lora.apply');
    for (const [p, l] of chosen) {
      if (adaptedLinears.has(l)) throw new ArgumentError(`lora.apply: the Linear at '${shortName(p)}' already has LoRA adapters (from another handle)`);
      if ((l.getConfig() as { activation?: unknown }).activation === 'relu') {
        throw new ArgumentError(`lora.apply: the Linear at '${shortName(p)}' fuses a ReLU (activation: 'relu'); LoRA adds its update before the activation: use a Linear and a separate ReLU layer`);
      }
    }
    this.#saved = resolveModules(model, cfg.modulesToSave, 'lora.apply');
    const savedLinears = new Set(this.#saved.flatMap(([, m]) => [...m.namedModules()].map(([, x]) => x)));
    const clash = chosen.filter(([, l]) => savedLinears.has(l));
    if (clash.length) throw new ArgumentError(`lora.apply: ${list(clash.map(([p]) => p))} are both targets and modules to save; pick one`);
    this.model = model;
    this.config = { rank: cfg.rank, alpha: cfg.alpha, dropout: cfg.dropout, targets: cfg.targets, modulesToSave: cfg.modulesToSave };
    this.#trainable = trainable;
    for (const p of model.parameters()) this.#wasTrainable.set(p, p.requiresGrad);
    this.#layers = [];
    try {
      chosen.forEach(([path, base], i) => {
        const s = seed === undefined ? undefined : seed * 7919 + 2 * i;
        // PEFT: kaiming_uniform_(A, a=√5), whose bound is 1/√fan_in; B = 0.
        const bound = 1 / Math.sqrt(base.inFeatures);
        const a = new LoraWeight(rand([cfg.rank, base.inFeatures], -bound, bound, s === undefined ? undefined : { seed: s }));
        const b = new LoraWeight(zeros([base.outFeatures, cfg.rank]));
        const drop = cfg.dropout > 0 ? new Dropout(cfg.dropout, s === undefined ? undefined : s + 1) : null;
        this.#layers.push({ path, base, a, b, drop, hook: null, kept: null });
        this.#attach(this.#layers[this.#layers.length - 1]);
      });
    } catch (e) {
      this.#detachAll();
      throw e;
    }
    this.#setTrainable();
    handles.set(model, this);
  }

  /** `alpha / rank`, the factor of the update. */
  get scaling(): number {
    return this.config.alpha / this.config.rank;
  }
  /** Paths of the adapted Linear layers, in model order. */
  get targets(): string[] {
    return this.#layers.map((l) => l.path);
  }
  /** True between `merge()` and `unmerge()`. */
  get merged(): boolean {
    return this.#state === 'merged';
  }

  #alive(who: string): void {
    if (this.#state === 'disposed') throw new ArgumentError(`LoraHandle.${who}: the handle was disposed`);
  }
  #active(who: string): void {
    this.#alive(who);
    if (this.#state === 'merged') throw new ArgumentError(`LoraHandle.${who}: the adapters are merged into the model; call unmerge() first`);
  }

  /** Registers a layer's adapter modules and hook on its Linear. */
  #attach(l: Adapted): void {
    l.base.registerModule('lora_A', l.a!);
    l.base.registerModule('lora_B', l.b!);
    if (l.drop) l.base.registerModule('lora_dropout', l.drop);
    // The adapters follow the model's mode (train()/eval() reach them through the Linear).
    l.a!.training = l.b!.training = l.base.training;
    if (l.drop) l.drop.training = l.base.training;
    adaptedLinears.add(l.base);
    const scale = this.scaling;
    const { a, b, drop } = l;
    l.hook = l.base.registerForwardHook((m, inputs, out) => {
      const x = inputs[0] as Tensor;
      const y = tidy(() => {
        const u = b!.forward(a!.forward(drop && m.training ? drop.forward(x) : x));
        return out.add(scale === 1 ? u : u.mul(scale));
      });
      // The base output is replaced; without a tape nothing else needs it (as in Sequential).
      if (!isGradEnabled()) out.dispose();
      return y;
    });
  }

  /** Removes hooks and frees the adapter modules' tensors (the empty modules stay registered). */
  #detachAll(): void {
    for (const l of this.#layers) {
      l.hook?.remove();
      l.hook = null;
      l.a?.dispose();
      l.b?.dispose();
      l.a = l.b = null;
      adaptedLinears.delete(l.base);
    }
  }

  /** Adapters (and modules to save) train when the handle is trainable; everything else is frozen. */
  #setTrainable(): void {
    for (const p of this.model.parameters()) p.requiresGrad = false;
    for (const p of this.#own()) p.requiresGrad = this.#trainable;
  }

  /** The adapter and modules-to-save parameters in the model, in model order. */
  #own(): Tensor[] {
    const out: Tensor[] = [];
    for (const l of this.#layers) if (l.a && l.b) out.push(l.a.weight, l.b.weight);
    for (const [, m] of this.#saved) out.push(...m.parameters().filter((p) => !p.isDisposed));
    return out;
  }

  /**
   * The parameters to train: every adapter's A and B and the modules to save (pass them to the
   * optimizer). Empty while the handle was loaded for inference (`isTrainable` false).
   */
  trainableParameters(): Tensor[] {
    this.#active('trainableParameters');
    return this.#trainable ? this.#own() : [];
  }

  /** Trainable and total parameter elements of the model and the trainable percentage. */
  parameterCounts(): ParameterCounts {
    this.#alive('parameterCounts');
    const total = this.model.numParameters();
    const trainable = this.model.numParameters(true);
    return { trainable, total, percent: total === 0 ? 0 : (100 * trainable) / total };
  }

  /**
   * The adapters under PEFT's names (`base_model.model.<path>.lora_A.weight` `[rank, in]`,
   * `...lora_B.weight` `[out, rank]`, and `base_model.model.<param>` for modules to save): the
   * tensors themselves, not copies. Also while merged (the matrices the handle holds).
   */
  adapterStateDict(): Record<string, Tensor> {
    this.#alive('adapterStateDict');
    const out: Record<string, Tensor> = {};
    for (const l of this.#layers) {
      const [a, b] = l.kept ?? [l.a!.weight, l.b!.weight];
      out[`${PREFIX}${l.path}.lora_A.weight`] = a;
      out[`${PREFIX}${l.path}.lora_B.weight`] = b;
    }
    for (const [path, m] of this.#saved) for (const [n, p] of m.namedParameters()) out[`${PREFIX}${path}.${n}`] = p;
    return out;
  }

  /**
   * Folds every adapter into its Linear (`W += (alpha/rank) · B·A`) and takes the adapters out of
   * the model (PEFT's `merge_and_unload()`): its parameters, state dict and `saveModel`/ONNX
   * exports are the base model's again, and its outputs those of the adapted model (evaluation
   * mode) up to rounding. Merge before exporting: exporters see the Linear weights, not the
   * adapters' hooks. The handle keeps A and B for `unmerge()` until `dispose()`. Returns the model.
   */
  merge(): Module {
    this.#active('merge');
    for (const l of this.#layers) {
      const a = keep(noGrad(() => l.a!.weight.clone()));
      const b = keep(noGrad(() => l.b!.weight.clone()));
      l.kept = [a, b];
      this.#fold(l, 1);
      l.hook!.remove();
      l.hook = null;
      l.a!.dispose();
      l.b!.dispose();
      l.a = l.b = null;
    }
    this.#state = 'merged';
    return this.model;
  }

  /** Subtracts the merged update from the base weights and puts the adapters back (PEFT's `unmerge`). */
  unmerge(): void {
    this.#alive('unmerge');
    if (this.#state !== 'merged') throw new ArgumentError('LoraHandle.unmerge: the adapters are not merged');
    for (const l of this.#layers) {
      this.#fold(l, -1);
      const [a, b] = l.kept!;
      l.kept = null;
      l.a = new LoraWeight(a);
      l.b = new LoraWeight(b);
      this.#attach(l);
    }
    this.#state = 'active';
    this.#setTrainable();
  }

  /** `W += sign · scale · B·A` for one layer, in place. */
  #fold(l: Adapted, sign: 1 | -1): void {
    const [a, b] = l.kept ?? [l.a!.weight, l.b!.weight];
    const w = l.base.weight;
    tidy(() => noGrad(() => {
      w.assign(w.add(b.matmul(a).mul(sign * this.scaling)));
    }));
  }

  /**
   * Serializes the adapters as PEFT's two files: adapter_model.safetensors (PEFT's names and
   * `[rank, in]`/`[out, rank]` layouts) and adapter_config.json (r, lora_alpha, lora_dropout,
   * target_modules, modules_to_save).
   */
  serializeAdapters(): AdapterArtifacts {
    this.#alive('serializeAdapters');
    const c = this.config;
    const config: AdapterConfigJson = {
      peft_type: 'LORA', r: c.rank, lora_alpha: c.alpha, lora_dropout: c.dropout, target_modules: [...c.targets],
      modules_to_save: c.modulesToSave.length ? [...c.modulesToSave] : null, bias: 'none', fan_in_fan_out: false,
      use_rslora: false, use_dora: false, init_lora_weights: true, inference_mode: !this.#trainable, task_type: null, base_model_name_or_path: null,
    };
    return { config, weights: encodeSafetensors(this.adapterStateDict(), { format: 'pt' }) };
  }

  /**
   * `serializeAdapters()`, and in Node with `dir`, writes `<dir>/adapter_model.safetensors` and
   * `<dir>/adapter_config.json` (what PEFT's `PeftModel.from_pretrained(base, dir)` reads).
   */
  async saveAdapters(dir?: string): Promise<AdapterArtifacts> {
    this.#alive('saveAdapters');
    if (dir !== undefined && typeof dir !== 'string') throw new ArgumentError(`LoraHandle.saveAdapters: dir must be a path string, got ${describe(dir)}`);
    const art = this.serializeAdapters();
    if (dir !== undefined) {
      if (!isNode) throw new ArgumentError('LoraHandle.saveAdapters(dir) writes files in Node only; in browsers call saveAdapters() and store the returned artifacts');
      const fs = (await import(/* @vite-ignore */ 'node:fs/promises' as string)) as typeof import('node:fs/promises');
      const path = (await import(/* @vite-ignore */ 'node:path' as string)) as typeof import('node:path');
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(art.config, null, 2));
      await fs.writeFile(path.join(dir, ADAPTER_WEIGHTS_FILE), art.weights);
    }
    return art;
  }

  /**
   * Releases the adapters. Unmerged: removes them from the model without merging (PEFT's
   * `unload()`), restoring which parameters trained before `apply`. Merged: frees the A and B the
   * handle kept (the merged model stays as it is). Idempotent.
   */
  dispose(): void {
    if (this.#state === 'disposed') return;
    if (this.#state === 'active') {
      this.#detachAll();
      for (const [p, on] of this.#wasTrainable) if (!p.isDisposed) p.requiresGrad = on;
    }
    for (const l of this.#layers) {
      l.kept?.forEach((t) => t.dispose());
      l.kept = null;
      adaptedLinears.delete(l.base);
    }
    this.#state = 'disposed';
    if (handles.get(this.model) === this) handles.delete(this.model);
  }

  /** Fills the adapters from a parsed adapter file (names, dtypes and shapes checked before any copy). */
  loadWeights(weights: Uint8Array): void {
    this.#active('loadWeights');
    if (!(weights instanceof Uint8Array)) throw new ArgumentError(`LoraHandle.loadWeights needs safetensors bytes (a Uint8Array), got ${describe(weights)}`);
    const own = this.adapterStateDict();
    const parsed = parseSafetensorsHeader(weights, { maxTensors: Object.keys(own).length + 16 });
    const missing = Object.keys(own).filter((k) => !Object.hasOwn(parsed.entries, k));
    const unexpected = Object.keys(parsed.entries).filter((k) => !Object.hasOwn(own, k));
    if (missing.length || unexpected.length) {
      throw new FormatError(`adapter weights do not match the model's adapters: ${missing.length ? `missing ${list(missing, 5)}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected ${list(unexpected, 5)} (not a LoRA matrix of a targeted Linear or a module to save)` : ''}`);
    }
    for (const [k, t] of Object.entries(own)) {
      const e = parsed.entries[k];
      if (entryDType(e) !== 'float32') throw new FormatError(`adapter weights: '${shortName(k)}' is ${e.dtype}, not a floating-point tensor`);
      if (e.shape.join() !== t.shape.join()) {
        throw new FormatError(`adapter weights: '${shortName(k)}' has shape [${e.shape.join(', ')}] but the model needs [${t.shape.join(', ')}] (rank ${this.config.rank}; lora_A is [r, in], lora_B is [out, r])`);
      }
    }
    const decoded: Tensor[] = [];
    try {
      for (const k of Object.keys(own)) decoded.push(decodeTensor(weights, parsed, k));
      noGrad(() => Object.values(own).forEach((t, i) => t.assign(decoded[i])));
    } finally {
      for (const t of decoded) t.dispose();
    }
  }
}

// ------------------------------------------------------------------------------------ loading

const names1024 = v.array(v.string({ minLength: 1, maxLength: 1024 }), { min: 1, max: 4096 });
/** PEFT's adapter_config.json: the LoRA fields edgegrad reads; settings it does not implement are refused by name. */
const CONFIG_SCHEMA: Schema<{ r: number; lora_alpha: number; lora_dropout?: number; target_modules: string[]; modules_to_save?: string[] | null }> = v.object({
  peft_type: v.literal('LORA'),
  r: v.int({ min: 1, max: 65536 }),
  lora_alpha: v.number({ gt: 0 }),
  target_modules: names1024,
}, {
  optional: {
    lora_dropout: v.refine(v.number({ min: 0 }), (x) => (x < 1 ? null : 'must be below 1')),
    modules_to_save: v.union<string[] | null>(v.literal(null), v.array(v.string({ minLength: 1, maxLength: 1024 }), { max: 4096 })),
    bias: v.literal('none'),
    fan_in_fan_out: v.literal(false),
    use_rslora: v.literal(false),
    use_dora: v.literal(false),
    layers_to_transform: v.literal(null),
    exclude_modules: v.literal(null),
    lora_bias: v.literal(false),
    rank_pattern: v.refine(v.json(), (x) => (x === null || (typeof x === 'object' && Object.keys(x as object).length === 0) ? null : 'must be empty (per-layer ranks are not supported)')),
    alpha_pattern: v.refine(v.json(), (x) => (x === null || (typeof x === 'object' && Object.keys(x as object).length === 0) ? null : 'must be empty (per-layer alphas are not supported)')),
  },
  unknown: 'strip',
});

const LOAD_OPTIONS = v.object({}, { optional: { isTrainable: v.boolean(), maxBytes: v.int({ min: 0 }), maxJsonBytes: v.int({ min: 0 }) } }) as Schema<LoadAdaptersOptions>;

async function readSource(src: AdapterSource, o: LoadAdaptersOptions): Promise<{ config: unknown; weights: Uint8Array }> {
  const maxJson = o.maxJsonBytes ?? 1024 * 1024;
  if (src !== null && typeof src === 'object' && !(src instanceof URL)) {
    const { config, weights } = src as { config?: unknown; weights?: unknown };
    if (!(weights instanceof Uint8Array || weights instanceof ArrayBuffer)) throw new ArgumentError(`lora.loadAdapters: weights must be a Uint8Array or ArrayBuffer, got ${describe(weights)}`);
    const raw = typeof config === 'string' || config instanceof Uint8Array ? parseJson(config, ADAPTER_CONFIG_FILE, { maxBytes: maxJson }) : config;
    return { config: raw, weights: weights instanceof Uint8Array ? weights : new Uint8Array(weights) };
  }
  let dir: URL;
  if (src instanceof URL) dir = src;
  else if (typeof src !== 'string') throw new ArgumentError(`lora.loadAdapters: expected a directory path, a URL or { config, weights }, got ${describe(src)}`);
  else if (isNode && !/^[a-z][a-z0-9+.-]*:\/\//i.test(src)) {
    const { pathToFileURL } = (await import(/* @vite-ignore */ 'node:url' as string)) as typeof import('node:url');
    dir = pathToFileURL(src);
  } else {
    try {
      dir = new URL(src, isNode ? undefined : globalThis.location?.href);
    } catch {
      throw new FormatError(`no adapters at ${src.slice(0, 200)}: not a valid URL`);
    }
  }
  // The directory itself: its two files are read from inside it only.
  if (!dir.pathname.endsWith('/')) dir = new URL(`${dir.pathname}/`, dir);
  const config = parseJson(await readBytes(new URL(ADAPTER_CONFIG_FILE, dir), { maxBytes: maxJson, what: ADAPTER_CONFIG_FILE, within: dir }), ADAPTER_CONFIG_FILE, { maxBytes: maxJson });
  const weights = await readBytes(new URL(ADAPTER_WEIGHTS_FILE, dir), { maxBytes: o.maxBytes, what: ADAPTER_WEIGHTS_FILE, within: dir });
  return { config, weights };
}

/**
 * Reads adapters saved by `saveAdapters` (or PEFT's `save_pretrained` for the same architecture),
 * adds them to `model` as its config says and loads their weights (PEFT's
 * `PeftModel.from_pretrained`). The config is validated (FormatError naming the field), then the
 * file's names, dtypes and shapes against the model's targeted Linear layers (FormatError naming
 * the mismatch) before any value is copied; on failure the model is left as it was.
 */
export async function loadAdapters(model: Module, source: AdapterSource, options: LoadAdaptersOptions = {}): Promise<LoraHandle> {
  assertModule(model, 'lora.loadAdapters');
  const o = validate(LOAD_OPTIONS, checkOptions(options, 'lora.loadAdapters options'), 'lora.loadAdapters options', ArgumentError);
  if (handles.has(model)) throw new ArgumentError('lora.loadAdapters: this model already has LoRA adapters (dispose() their handle first)');
  const { config, weights } = await readSource(source, o);
  const c = validate(CONFIG_SCHEMA, config, ADAPTER_CONFIG_FILE);
  let handle: LoraHandle;
  try {
    handle = new LoraHandle(MAKE, model, {
      rank: c.r, alpha: c.lora_alpha, dropout: c.lora_dropout ?? 0, targets: c.target_modules, modulesToSave: c.modules_to_save ?? [],
    }, undefined, o.isTrainable ?? false);
  } catch (e) {
    // The file names modules this model does not have: the file does not fit.
    if (e instanceof ArgumentError) throw new FormatError(`${ADAPTER_CONFIG_FILE} does not fit this model: ${e.message.replace(/^lora\.apply: /, '')}`);
    throw e;
  }
  try {
    handle.loadWeights(weights);
  } catch (e) {
    handle.dispose();
    throw e instanceof EdgegradError ? e : new FormatError(`the adapter file could not be loaded: ${(e as Error)?.message}`);
  }
  return handle;
}
