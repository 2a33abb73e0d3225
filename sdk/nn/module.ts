/**
 * `Module`: the building block of models (PyTorch's `nn.Module`). A module owns named parameters
 * (trainable tensors), buffers (state such as batch-norm running statistics) and submodules, has
 * train/eval modes, a state dict, freezing, and the Keras-style `compile`/`fit`/`evaluate`/
 * `predict` (see `train/trainer.ts`), so one model definition works in both styles.
 *
 * Parameters and buffers are exempt from `tidy` (they live until `dispose()`). State-dict keys use
 * PyTorch's names (`weight`, `bias`, `running_mean`, ...), joined with dots.
 */
import { ArgumentError, DTypeError, EdgegradError, ShapeError } from '../errors.js';
import { v, validate, type Schema } from '../io/validate.js';
import { keep } from '../memory.js';
import { noGrad } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { checkFunction, checkOptions, describe } from '../args.js';
import { penalty, type Regularizer } from './regularizers.js';
import type { CompileOptions, FitOptions, History } from '../train/trainer.js';
import type { Dataset } from '../data.js';
import type { Logs } from '../train/callbacks.js';

/** The Keras-style training methods, provided by `train/trainer.ts` (kept apart to keep this file small). */
export interface TrainingImpl {
  compile(m: Module, o: CompileOptions): void;
  fit(m: Module, x: Tensor | Dataset, y?: Tensor | FitOptions, o?: FitOptions): Promise<History>;
  evaluate(m: Module, x: Tensor | Dataset, y?: Tensor, o?: { batchSize?: number }): Promise<Logs>;
  predict(m: Module, x: Tensor, o?: { batchSize?: number }): Tensor;
}
let training: TrainingImpl | null = null;
export function setTrainingImpl(t: TrainingImpl): void {
  training = t;
}
function impl(): TrainingImpl {
  if (!training) throw new ArgumentError('training support is not loaded (import edgegrad, not a deep file)');
  return training;
}

/** A serialisable description of a module: its registered class name and constructor options. */
export interface ModuleConfig {
  /** The name the class registered under (`registerModule`). */
  className: string;
  /** Its constructor options (`getConfig()`). */
  config: Record<string, unknown>;
}

type Factory = (config: Record<string, unknown>) => Module;
const registry = new Map<string, Factory>();

/** Makes a module class loadable by `moduleFromConfig`/`loadModel` under `className`. */
export function registerModule(className: string, factory: Factory): void {
  registry.set(className, factory);
}

/** A module config as data: a class name and a JSON object of options (depth-bounded, no cycles). */
export const moduleConfigSchema: Schema<ModuleConfig> = v.object({ className: v.string({ minLength: 1, maxLength: 200 }) }, {
  optional: { config: v.refine(v.json(), (c) => (c !== null && typeof c === 'object' && !Array.isArray(c) ? null : 'must be an object')) as Schema<Record<string, unknown>> },
}) as Schema<ModuleConfig>;

/** Modules constructed during the innermost `moduleFromConfig` call (freed if it fails). */
let building: Module[] | null = null;

/**
 * Builds a registered module from its config; ArgumentError for a malformed or unknown one. When
 * building fails, every module constructed on the way (the layers before the bad one) is freed.
 */
export function moduleFromConfig(c: ModuleConfig): Module {
  const cfg = validate(moduleConfigSchema, c, 'module config', ArgumentError);
  const f = registry.get(cfg.className);
  if (!f) throw new ArgumentError(`unknown module class '${cfg.className.slice(0, 60)}': register it with registerModule()`);
  const outer = building;
  const mine: Module[] = [];
  building = mine;
  try {
    return f(cfg.config ?? {});
  } catch (e) {
    for (const m of mine) m.dispose();
    // Configs are data: whatever a factory trips on is a bad argument, not a crash.
    if (e instanceof EdgegradError) throw e;
    throw new ArgumentError(`cannot build ${cfg.className} from its config: ${(e as Error)?.message ?? String(e)}`);
  } finally {
    building = outer;
    outer?.push(...mine);
  }
}

/**
 * A forward hook (PyTorch's `register_forward_hook`): called after `module.forward(...inputs)` with
 * the module, its arguments and its output. Returning a Tensor replaces the output (later hooks and
 * the caller see it); returning nothing keeps it.
 */
export type ForwardHook = (module: Module, inputs: unknown[], output: Tensor) => Tensor | void;

/** Removes the hook it was returned for (idempotent). */
export interface HookHandle {
  /** Unregisters the hook; calling it again does nothing. */
  remove(): void;
}

/**
 * Base class of every layer and model (PyTorch's `nn.Module`): owns parameters, buffers and
 * submodules, gives them dotted state-dict names, and trains Keras-style through `compile`/`fit`.
 */
export abstract class Module {
  /** True in training mode (dropout active, batch statistics); set by `train()`/`eval()`. */
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();
  readonly #regularizers = new Map<string, Regularizer>();
  #activityLosses: Tensor[] = [];
  /** Registered forward hooks; one entry object per registration (the same function may appear twice). */
  #forwardHooks: { fn: ForwardHook }[] = [];

  constructor() {
    building?.push(this);
  }

  /** Computes the module's output. */
  abstract forward(x: Tensor, ...rest: unknown[]): Tensor;

  /** The class name this module registers under, for configs. */
  get className(): string {
    return this.constructor.name;
  }

  /** Constructor options that rebuild this module (see `registerModule`). */
  getConfig(): Record<string, unknown> {
    throw new ArgumentError(`${this.className} does not describe its configuration: implement getConfig() and registerModule() to save it`);
  }

  /** `{ className, config }`: what `moduleFromConfig` rebuilds this module from. */
  toConfig(): ModuleConfig {
    return { className: this.className, config: this.getConfig() };
  }

  // ------------------------------------------------------------------ hooks

  /**
   * Calls `hook(module, inputs, output)` after every `forward` of this module, in registration
   * order; returns a handle whose `remove()` unregisters it. Every caller (Sequential, Graph, custom
   * modules, user code) reaches `forward` through the instance, so while a hook is registered the
   * instance gets its own `forward` wrapping the class's; without hooks it has none (no cost).
   * The output belongs to the forward (Sequential frees intermediates under `noGrad`): to hold it
   * past the call, keep a handle of your own, `eg.keep(output.detach())`, as `captureActivations` does.
   */
  registerForwardHook(hook: ForwardHook): HookHandle {
    checkFunction(hook, 'registerForwardHook() hook');
    if (this.#forwardHooks.length === 0) this.#installHookedForward();
    // A fresh array on every change: a forward in progress keeps iterating its own snapshot.
    const entry = { fn: hook };
    this.#forwardHooks = [...this.#forwardHooks, entry];
    return {
      remove: () => {
        if (!this.#forwardHooks.includes(entry)) return;
        this.#forwardHooks = this.#forwardHooks.filter((h) => h !== entry);
        if (this.#forwardHooks.length === 0) this.#uninstallHookedForward();
      },
    };
  }
  /** Number of forward hooks registered on this module (not its submodules). */
  get numForwardHooks(): number {
    return this.#forwardHooks.length;
  }
  #hooked: ((...args: unknown[]) => Tensor) | null = null;
  #installHookedForward(): void {
    const own = Object.getOwnPropertyDescriptor(this, 'forward');
    const inner = this.forward as (...args: unknown[]) => Tensor;
    const self = this;
    const hooked = function (this: Module, ...args: unknown[]): Tensor {
      let out = inner.apply(this, args);
      for (const h of self.#forwardHooks) {
        const r = h.fn(self, args, out);
        if (r === undefined) continue;
        if (!(r instanceof Tensor)) throw new ArgumentError(`a forward hook of ${self.className} returned ${describe(r)}; return a Tensor to replace the output, or nothing`);
        out = r;
      }
      return out;
    };
    this.#hooked = hooked;
    (hooked as { inner?: PropertyDescriptor }).inner = own;
    Object.defineProperty(this, 'forward', { value: hooked, writable: true, configurable: true, enumerable: false });
  }
  #uninstallHookedForward(): void {
    const hooked = this.#hooked;
    this.#hooked = null;
    // Only undo our own wrapper (someone may have replaced `forward` on the instance since).
    if (hooked === null || Object.getOwnPropertyDescriptor(this, 'forward')?.value !== hooked) return;
    const own = (hooked as { inner?: PropertyDescriptor }).inner;
    if (own) Object.defineProperty(this, 'forward', own);
    else delete (this as { forward?: unknown }).forward;
  }

  // ------------------------------------------------------------------ registration

  /** Registers a trainable tensor (marks it requiresGrad and exempts it from tidy). */
  protected registerParameter(name: string, t: Tensor, regularizer?: Regularizer | null): Tensor {
    const old = this.#params.get(name);
    if (old && old !== t) old.dispose();
    keep(t);
    if (t.dtype !== 'float32') throw new DTypeError(`parameter '${name}' must be float32, got ${t.dtype}`);
    t.requiresGrad_(true);
    this.#params.set(name, t);
    if (regularizer && (regularizer.l1 > 0 || regularizer.l2 > 0)) this.#regularizers.set(name, regularizer);
    return t;
  }
  /** Registers non-trainable state that belongs in the state dict (exempt from tidy). */
  protected registerBuffer(name: string, t: Tensor): Tensor {
    const old = this.#buffers.get(name);
    if (old && old !== t) old.dispose();
    keep(t);
    this.#buffers.set(name, t);
    return t;
  }
  /**
   * Runs a constructor's building steps; when one throws (a bad option found after some layers
   * exist), frees everything built so far (registered parts, and `pending` ones the steps made but
   * had not registered yet) and rethrows, so a failed constructor leaks no tensor.
   */
  protected buildOrFree(build: (pending: Module[]) => void): void {
    const pending: Module[] = [];
    try {
      build(pending);
    } catch (e) {
      for (const m of pending) m.dispose();
      this.dispose();
      throw e;
    }
  }
  /** Registers (or replaces, disposing the old one) a submodule. */
  registerModule<M extends Module>(name: string, m: M): M {
    if (!(m instanceof Module)) throw new ArgumentError(`registerModule('${name}') needs a Module`);
    const old = this.#children.get(name);
    if (old && old !== m) old.dispose();
    this.#children.set(name, m);
    return m;
  }
  /** A direct submodule by name. */
  getModule(name: string): Module {
    const m = this.#children.get(name);
    if (!m) throw new ArgumentError(`${this.className} has no submodule '${name}' (has: ${[...this.#children.keys()].join(', ') || 'none'})`);
    return m;
  }
  /** This module's own parameter `name` (an ArgumentError if there is none). */
  protected param(name: string): Tensor {
    const p = this.#params.get(name);
    if (!p) throw new ArgumentError(`${this.className} has no parameter '${name}'`);
    return p;
  }
  /** This module's own buffer `name` (an ArgumentError if there is none). */
  protected buffer(name: string): Tensor {
    const b = this.#buffers.get(name);
    if (!b) throw new ArgumentError(`${this.className} has no buffer '${name}'`);
    return b;
  }
  /** Whether this module registered a parameter `name` itself. */
  protected hasParam(name: string): boolean {
    return this.#params.has(name);
  }

  // ------------------------------------------------------------------ traversal

  /** This module (name `prefix`) and every submodule below it, with dotted names, depth first. */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [n, c] of this.#children) yield* c.namedModules(prefix ? `${prefix}.${n}` : n);
  }
  /** The direct submodules, in registration order. */
  children(): Module[] {
    return [...this.#children.values()];
  }
  /** The direct submodules with their names. */
  namedChildren(): [string, Module][] {
    return [...this.#children.entries()];
  }
  /** Every parameter of this module and its submodules with its dotted name (`0.weight`). */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [n, p] of m.#params) out.push([path ? `${path}.${n}` : n, p]);
    }
    return out;
  }
  /** Every parameter of this module and its submodules (frozen ones too). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }
  /** Parameters that are not frozen. */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }
  /** Every buffer (non-trainable state such as running means) with its dotted name. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [n, b] of m.#buffers) out.push([path ? `${path}.${n}` : n, b]);
    }
    return out;
  }
  /** Number of parameter elements (all, or only trainable ones). */
  numParameters(trainableOnly = false): number {
    return (trainableOnly ? this.trainableParameters() : this.parameters()).reduce((n, p) => n + p.size, 0);
  }

  // ------------------------------------------------------------------ modes, freezing

  /** Training mode (dropout active, batch statistics in batch norm) for this module and all below. */
  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }
  /** Evaluation mode. */
  eval(): this {
    return this.train(false);
  }

  /**
   * Stops training the named parameters or submodules (by dotted path prefix: `'features'`,
   * `'features.0.weight'`); with no argument, all of them.
   */
  freeze(...paths: string[]): this {
    this.#setTrainable(paths, false);
    return this;
  }
  /** Trains the named parameters or submodules again (the opposite of `freeze`); with no argument, all. */
  unfreeze(...paths: string[]): this {
    this.#setTrainable(paths, true);
    return this;
  }
  #setTrainable(paths: string[], on: boolean): void {
    const named = this.namedParameters();
    let hit = 0;
    for (const [name, p] of named) {
      if (paths.length === 0 || paths.some((q) => name === q || name.startsWith(`${q}.`))) {
        p.requiresGrad = on;
        hit++;
      }
    }
    if (paths.length > 0 && hit === 0) {
      throw new ArgumentError(`no parameter matches ${paths.map((p) => `'${p}'`).join(', ')} (parameters: ${named.map(([n]) => n).join(', ')})`);
    }
  }

  // ------------------------------------------------------------------ state dict

  /** Parameters and buffers by dotted name (the tensors themselves, not copies). */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, p] of this.namedParameters()) out[n] = p;
    for (const [n, b] of this.namedBuffers()) out[n] = b;
    return out;
  }

  /**
   * Copies values into this module's parameters and buffers (in place, so optimizers keep
   * working). `strict` (default) requires exactly the same names; shapes and dtypes must match.
   */
  loadStateDict(state: Record<string, Tensor> | Map<string, Tensor>, opts: {
    /** Require exactly the module's names (default true). */
    strict?: boolean;
  } = {}): {
    /** The module's names that `state` lacks. */
    missing: string[];
    /** Names in `state` that the module does not have. */
    unexpected: string[];
  } {
    if (state === null || typeof state !== 'object' || Array.isArray(state)) throw new ArgumentError(`loadStateDict needs an object or Map of tensors, got ${describe(state)}`);
    opts = checkOptions(opts, 'loadStateDict options');
    const src = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !Object.hasOwn(own, k));
    const list = (ks: string[]) => `${ks.slice(0, 8).map((k) => String(k).slice(0, 60)).join(', ')}${ks.length > 8 ? ` and ${ks.length - 8} more` : ''}`;
    if ((opts.strict ?? true) && (missing.length || unexpected.length)) {
      throw new ArgumentError(`loadStateDict: ${missing.length ? `missing ${list(missing)}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected ${list(unexpected)}` : ''}`);
    }
    // Check everything before copying anything: a bad entry leaves the module unchanged.
    const pairs: [Tensor, Tensor][] = [];
    for (const [k, t] of Object.entries(own)) {
      const v = src.get(k);
      if (v === undefined) continue;
      if (!(v instanceof Tensor) || v.isDisposed) throw new ArgumentError(`loadStateDict: '${k}' must be a live Tensor, got ${describe(v)}`);
      if (v.dtype !== t.dtype) throw new DTypeError(`loadStateDict: '${k}' is ${v.dtype} but the model expects ${t.dtype}`);
      if (v.shape.join() !== t.shape.join()) throw new ShapeError(`loadStateDict: '${k}' has shape [${v.shape.join(', ')}] but the model expects [${t.shape.join(', ')}]`);
      pairs.push([t, v]);
    }
    noGrad(() => {
      for (const [t, v] of pairs) t.assign(v);
    });
    return { missing, unexpected };
  }

  /**
   * State that is neither a parameter nor a buffer but must survive a checkpoint for a resumed run
   * to match an uninterrupted one (PyTorch's `get_extra_state`), e.g. how many seeded dropout masks
   * a layer has drawn. JSON-safe; undefined when there is none.
   */
  getExtraState(): unknown {
    return undefined;
  }
  /** Restores what `getExtraState` returned (PyTorch's `set_extra_state`). */
  setExtraState(_state: unknown): void {}

  /** Reads the `{ calls }` extra state of the layers that number their seeded random draws. */
  protected readCallCount(s: unknown): number {
    const n = (s as { calls?: unknown } | null)?.calls;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ArgumentError(`${this.className}: extra state must be { calls: a non-negative integer }, got ${describe(s)}`);
    return n;
  }

  // ------------------------------------------------------------------ regularization

  /** Records an activity penalty for the current forward pass (collected by `regularizationLoss`). */
  protected addActivityLoss(t: Tensor): void {
    if (this.training) this.#activityLosses.push(t);
  }
  /**
   * Sum of every weight penalty and of the activity penalties recorded since the last call, over
   * the whole module tree; null when there are none. Call it inside the same `tidy` as forward.
   */
  regularizationLoss(): Tensor | null {
    const terms: Tensor[] = [];
    for (const [, m] of this.namedModules()) {
      for (const [name, r] of m.#regularizers) {
        const p = m.#params.get(name);
        if (p && p.requiresGrad) terms.push(penalty(r, p));
      }
      terms.push(...m.#activityLosses);
      m.#activityLosses = [];
    }
    if (terms.length === 0) return null;
    return terms.reduce((a, b) => a.add(b));
  }

  // ------------------------------------------------------------------ Keras-style training

  /** Sets the optimizer, loss and metrics used by `fit` and `evaluate`. */
  compile(o: CompileOptions): this {
    impl().compile(this, o);
    return this;
  }
  /** Trains on tensors (`x`, `y`) or on a `Dataset` of batches; resolves to the history. */
  fit(x: Tensor | Dataset, y?: Tensor | FitOptions, o?: FitOptions): Promise<History> {
    return impl().fit(this, x, y, o);
  }
  /** Loss and metrics over the data, in evaluation mode. */
  evaluate(x: Tensor | Dataset, y?: Tensor, o?: { batchSize?: number }): Promise<Logs> {
    return impl().evaluate(this, x, y, o);
  }
  /** Outputs for `x` in evaluation mode, computed in batches. */
  predict(x: Tensor, o?: { batchSize?: number }): Tensor {
    return impl().predict(this, x, o);
  }

  /** Frees every parameter and buffer of this module tree. */
  dispose(): void {
    // Through each child's own dispose(), so what subclasses hold beyond parameters and buffers
    // (kept attention weights, position tables) is freed too.
    for (const c of this.#children.values()) c.dispose();
    for (const p of this.#params.values()) p.dispose();
    for (const b of this.#buffers.values()) b.dispose();
    this.#params.clear();
    this.#buffers.clear();
  }
}

/** `m` itself once checked to be a Module (a typed error naming `who` otherwise). */
export function assertModule(m: unknown, who: string): asserts m is Module {
  if (!(m instanceof Module)) throw new ArgumentError(`${who} needs a Module, got ${describe(m)}`);
}
