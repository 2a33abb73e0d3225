/**
 * Pruning.
 *
 * Unstructured magnitude pruning: a `Pruner` holds one 0/1 mask per pruned weight tensor (by
 * default the weights of every Linear and Conv2d: parameters named `*.weight` of rank >= 2),
 * recomputes them from the current magnitudes layer by layer or globally (`prune(sparsity)`), and
 * keeps pruned weights at exactly zero through optimizer steps once attached (`attach(optimizer)`
 * re-applies the masks after every `step()`, so momentum cannot revive them).
 * `PolynomialDecay` is the gradual schedule of Zhu & Gupta (2017):
 * `s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n·Δt))^3`, updated every Δt steps; `PruningCallback`
 * drives it inside `fit`.
 *
 * Structured pruning: `structuredPrune` removes whole output channels (conv) or neurons (linear)
 * with the smallest weight norms and physically shrinks the layer, its BatchNorm, and the input
 * of the next conv/linear (through Flatten, mapping NHWC positions), giving a smaller dense model.
 *
 * `sparsityReport` counts zeros per layer.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { noGrad } from '../autograd.js';
import { keep, tidy } from '../memory.js';
import { tensor, zeros } from '../creation.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { assertModule, Module, moduleFromConfig } from '../nn/module.js';
import { checkFunction, checkInt, checkObject, checkOptions, describe } from '../args.js';
import * as nn from '../nn/layers.js';
import type { Optimizer } from '../optim/optimizers.js';
import { Callback, type CallbackState, type Logs } from '../train/callbacks.js';
import { v, validate } from '../io/validate.js';
import * as E from './engine.js';

/** Options of {@link Pruner} and {@link magnitudePrune}. */
export interface PrunerOptions {
  /** `'layer'`: every tensor reaches the sparsity; `'global'` (default): the smallest weights of all tensors together. */
  scope?: 'layer' | 'global';
  /** Which parameters to prune (default: names ending in `weight` with rank >= 2). */
  include?: (name: string, p: Tensor) => boolean;
}

const defaultInclude = (name: string, p: Tensor) => /(^|\.)weight$/.test(name) && p.rank >= 2;

/** Magnitude-pruning masks over a model's weights (see the module docs). */
export class Pruner {
  /** How sparsity is spread: per tensor (`'layer'`) or over all targets together (`'global'`). */
  readonly scope: 'layer' | 'global';
  /** The `[name, parameter]` pairs being pruned (by default every `weight` of rank ≥ 2). */
  readonly targets: [string, Tensor][];
  /** Current 1.0/0.0 keep-mask of each target, by parameter name. */
  readonly masks = new Map<string, Tensor>();
  #sparsity = 0;
  #detach: (() => void) | null = null;

  /**
   * @param model - The model whose weights are pruned in place (must be a Module).
   * @param o - Scope and which parameters to prune.
   */
  constructor(readonly model: Module, o: PrunerOptions = {}) {
    assertModule(model, 'Pruner');
    o = checkOptions(o, 'Pruner options');
    if (o.include !== undefined) checkFunction(o.include, 'Pruner options.include');
    this.scope = o.scope ?? 'global';
    if (this.scope !== 'layer' && this.scope !== 'global') throw new ArgumentError(`scope must be 'layer' or 'global', got '${String(o.scope)}'`);
    this.targets = model.namedParameters().filter(([n, p]) => (o.include ?? defaultInclude)(n, p));
    if (this.targets.length === 0) throw new ArgumentError('the pruner found no weights to prune (check `include`)');
  }

  /** The sparsity the masks were last computed for. */
  get sparsity(): number {
    return this.#sparsity;
  }

  /** Recomputes the masks so that `sparsity` of the weights (by magnitude) are zero, and applies them. */
  prune(sparsity: number): this {
    if (!(typeof sparsity === 'number' && sparsity >= 0 && sparsity <= 1)) throw new ArgumentError(`sparsity must be in [0, 1], got ${describe(sparsity)}`);
    const ws = this.targets.map(([, p]) => p);
    const masks = this.scope === 'global' ? E.pruneMasks(ws, sparsity) : ws.map((w) => E.pruneMasks([w], sparsity)[0]);
    this.targets.forEach(([n], i) => {
      this.masks.get(n)?.dispose();
      this.masks.set(n, keep(masks[i]));
    });
    this.#sparsity = sparsity;
    this.apply();
    return this;
  }

  /**
   * Takes masks saved from a Pruner over the same model (a resumed run: see `PruningCallback`'s
   * checkpoint state) and the sparsity they were computed for. Checks every name and shape first.
   */
  loadMasks(masks: Record<string, Tensor>, sparsity: number): void {
    if (masks === null || typeof masks !== 'object') throw new ArgumentError(`loadMasks needs masks as { name: Tensor }, got ${describe(masks)}`);
    if (!(typeof sparsity === 'number' && sparsity >= 0 && sparsity <= 1)) throw new ArgumentError(`sparsity must be in [0, 1], got ${describe(sparsity)}`);
    const shapes = new Map(this.targets.map(([n, p]) => [n, p.shape.join()]));
    for (const [n, m] of Object.entries(masks)) {
      if (!shapes.has(n)) throw new ArgumentError(`a pruning mask for '${n.slice(0, 80)}', which this pruner does not prune`);
      assertTensor(m, `the pruning mask of '${n.slice(0, 80)}' must be a Tensor`);
      if (m.shape.join() !== shapes.get(n) || m.dtype !== 'float32') throw new ShapeError(`the pruning mask of '${n.slice(0, 80)}' is ${m.dtype} [${m.shape.join(', ')}], the weight float32 [${shapes.get(n)}]`);
    }
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
    for (const [n, m] of Object.entries(masks)) this.masks.set(n, keep(m.clone()));
    this.#sparsity = sparsity;
  }

  /** Multiplies every target by its mask (in place). */
  apply(): void {
    noGrad(() => {
      for (const [n, p] of this.targets) {
        const m = this.masks.get(n);
        if (m) E.applyMask(p, m);
      }
    });
  }

  /**
   * Re-applies the masks after every `optimizer.step()` (pruned weights stay exactly zero).
   * Returns a function that undoes it.
   */
  attach(optimizer: Optimizer): () => void {
    if (typeof (optimizer as { step?: unknown } | null)?.step !== 'function') throw new ArgumentError(`Pruner.attach needs an Optimizer, got ${describe(optimizer)}`);
    this.#detach?.();
    const orig = optimizer.step;
    const self = this;
    optimizer.step = function (this: Optimizer) {
      orig.call(this);
      self.apply();
    };
    this.#detach = () => {
      optimizer.step = orig;
      this.#detach = null;
    };
    return this.#detach;
  }

  /** Restores the optimizer patched by `attach`; a no-op when not attached. */
  detach(): void {
    this.#detach?.();
  }

  /** Frees the masks and detaches from the optimizer (the weights keep their zeros). */
  dispose(): void {
    this.detach();
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }
}

/** One-shot magnitude pruning; returns the Pruner (attach it to keep the zeros while fine-tuning). */
export function magnitudePrune(model: Module, sparsity: number, o: PrunerOptions = {}): Pruner {
  return new Pruner(model, o).prune(sparsity);
}

/** Options of {@link PolynomialDecay}; sparsities are fractions in [0, 1]. */
export interface PolynomialDecayOptions {
  /** Sparsity at `beginStep` (default 0). */
  initialSparsity?: number;
  /** Sparsity reached at `endStep` and kept afterwards. */
  finalSparsity: number;
  /** First step that prunes (t0). */
  beginStep?: number;
  /** Step at which the final sparsity is reached (t0 + n·Δt). */
  endStep: number;
  /** Steps between mask updates (Δt). */
  frequency?: number;
  /** Exponent of the decay (3 in Zhu & Gupta). */
  power?: number;
}

/** Zhu & Gupta's gradual sparsity schedule. */
export class PolynomialDecay {
  /** Sparsity at `beginStep`. */
  readonly initialSparsity: number;
  /** Sparsity from `endStep` on. */
  readonly finalSparsity: number;
  /** First step that prunes (default 0). */
  readonly beginStep: number;
  /** Step at which `finalSparsity` is reached. */
  readonly endStep: number;
  /** Steps between mask updates (default 1). */
  readonly frequency: number;
  /** Exponent of the decay (default 3). */
  readonly power: number;
  constructor(o: PolynomialDecayOptions) {
    if (o === null || typeof o !== 'object') throw new ArgumentError(`PolynomialDecay needs options { finalSparsity, endStep, ... }, got ${describe(o)}`);
    this.initialSparsity = o.initialSparsity ?? 0;
    this.finalSparsity = o.finalSparsity;
    this.beginStep = o.beginStep ?? 0;
    this.endStep = o.endStep;
    this.frequency = o.frequency ?? 1;
    this.power = o.power ?? 3;
    const ok = (s: number) => typeof s === 'number' && s >= 0 && s <= 1;
    if (!ok(this.initialSparsity) || !ok(this.finalSparsity)) throw new ArgumentError('sparsities must be in [0, 1]');
    if (!(Number.isInteger(this.beginStep) && Number.isInteger(this.endStep) && this.endStep > this.beginStep && this.beginStep >= 0)) {
      throw new ArgumentError(`the schedule needs integer steps 0 <= beginStep < endStep, got ${this.beginStep}..${this.endStep}`);
    }
    if (!(Number.isInteger(this.frequency) && this.frequency >= 1)) throw new ArgumentError(`frequency must be a positive integer, got ${this.frequency}`);
  }
  /** Target sparsity at `step`. */
  sparsityAt(step: number): number {
    checkInt(step, 'PolynomialDecay.sparsityAt: step', 0, Number.MAX_SAFE_INTEGER);
    if (step < this.beginStep) return 0;
    const t = Math.min(1, (step - this.beginStep) / (this.endStep - this.beginStep));
    return this.finalSparsity + (this.initialSparsity - this.finalSparsity) * (1 - t) ** this.power;
  }
  /** Whether the masks are updated at `step`. */
  updatesAt(step: number): boolean {
    checkInt(step, 'PolynomialDecay.updatesAt: step', 0, Number.MAX_SAFE_INTEGER);
    return step >= this.beginStep && step <= this.endStep && ((step - this.beginStep) % this.frequency === 0 || step === this.endStep);
  }
}

/**
 * Drives a `Pruner` with a schedule inside `fit`: attaches to the optimizer when training begins,
 * updates the masks on the schedule's steps (counted in batches across epochs), and at the end
 * prunes to the final sparsity and detaches.
 */
export class PruningCallback extends Callback {
  #step = 0;
  /**
   * @param pruner - The Pruner whose masks are updated.
   * @param schedule - When and to what sparsity to prune.
   */
  constructor(readonly pruner: Pruner, readonly schedule: PolynomialDecay) {
    super();
    if (!(pruner instanceof Pruner)) throw new ArgumentError(`PruningCallback needs a Pruner, got ${describe(pruner)}`);
    if (!(schedule instanceof PolynomialDecay)) throw new ArgumentError(`PruningCallback needs a PolynomialDecay schedule, got ${describe(schedule)}`);
  }
  /** Number of training batches seen so far (the schedule's step). */
  get step(): number {
    return this.#step;
  }
  override onTrainBegin(_: Logs): void {
    this.pruner.attach(this.ctx.optimizer);
  }
  override onBatchBegin(_: number): void {
    if (this.schedule.updatesAt(this.#step)) this.pruner.prune(this.schedule.sparsityAt(this.#step));
    this.#step++;
  }
  override onEpochEnd(_: number, logs: Logs): void {
    logs.sparsity = this.pruner.sparsity;
  }
  override onTrainEnd(_: Logs): void {
    if (this.#step >= this.schedule.endStep && this.pruner.sparsity !== this.schedule.finalSparsity) this.pruner.prune(this.schedule.finalSparsity);
    this.pruner.detach();
    this.pruner.apply();
  }
  /** The schedule's position and the masks, for checkpoints a run resumes from. */
  override stateDict(): CallbackState {
    return { values: { step: this.#step, sparsity: this.pruner.sparsity }, tensors: Object.fromEntries(this.pruner.masks) };
  }
  override loadStateDict(s: CallbackState): void {
    checkObject(s, 'PruningCallback.loadStateDict: the state', '{ values, tensors? }');
    const { step, sparsity } = validate(v.object({ step: v.int({ min: 0 }), sparsity: v.number({ min: 0, max: 1 }) }), s.values, 'PruningCallback state');
    this.pruner.loadMasks(s.tensors ?? {}, sparsity);
    this.#step = step;
  }
}

/** One row of {@link sparsityReport}. */
export interface SparsityRow {
  /** Parameter name, e.g. `0.weight`. */
  name: string;
  /** Parameter shape. */
  shape: number[];
  /** Number of elements. */
  params: number;
  /** Number of elements that are exactly zero. */
  zeros: number;
  /** `zeros / params`, in [0, 1]. */
  sparsity: number;
}

/** Zeros per parameter tensor (all of them, or `include`d ones) and in total. */
export function sparsityReport(model: Module, o: { include?: (name: string, p: Tensor) => boolean } = {}): {
  /** One row per parameter tensor. */
  layers: SparsityRow[];
  /** The sums over those tensors. */
  total: Omit<SparsityRow, 'name' | 'shape'>;
} {
  assertModule(model, 'sparsityReport');
  o = checkOptions(o, 'sparsityReport options');
  if (o.include !== undefined) checkFunction(o.include, 'sparsityReport options.include');
  const layers = model.namedParameters().filter(([n, p]) => (o.include ?? (() => true))(n, p)).map(([name, p]) => {
    const z = E.countZeros(p);
    return { name, shape: p.shape, params: p.size, zeros: z, sparsity: p.size ? z / p.size : 0 };
  });
  const params = layers.reduce((a, l) => a + l.params, 0);
  const zerosN = layers.reduce((a, l) => a + l.zeros, 0);
  return { layers, total: { params, zeros: zerosN, sparsity: params ? zerosN / params : 0 } };
}

// ------------------------------------------------------------------------------------ structured

/** Options of {@link structuredPrune}. */
export interface StructuredPruneOptions {
  /** Fraction of the channels/neurons of each pruned layer to remove (default 0.5). */
  ratio?: number;
  /** Channel importance: L1 (default) or L2 norm of each output channel's weights. */
  norm?: 'l1' | 'l2';
  /** Per-sample input shape (needed to map channels through Flatten). */
  inputShape: number[];
  /** Which layers (Sequential indices) to prune; default: every Conv2d/Linear whose outputs feed another one. */
  layers?: number[];
}

type Cfg = Record<string, unknown>;

/** Norm of each output channel of a conv (HWIO, axis 3) or linear (`[out, in]`, axis 0) weight. */
function channelNorms(w: Tensor, conv: boolean, norm: 'l1' | 'l2'): Float32Array {
  return tidy(() => {
    const a = norm === 'l1' ? w.abs() : w.square();
    const s = conv ? a.sum([0, 1, 2]) : a.sum(1);
    return (norm === 'l1' ? s : s.sqrt()).dataSync() as Float32Array;
  });
}

/** The `keep` largest of `norms`, as ascending indices (ties: lower index first). */
function topChannels(norms: Float32Array, keepN: number): number[] {
  const idx = Array.from(norms, (_, i) => i);
  idx.sort((a, b) => norms[b] - norms[a] || a - b);
  return idx.slice(0, keepN).sort((a, b) => a - b);
}

function pick(t: Tensor, axis: number, idx: number[]): Tensor {
  return tidy(() => noGrad(() => t.indexSelect(axis, tensor(Int32Array.from(idx), [idx.length], 'int32')).contiguous()));
}

/** Loads `sd` (tensors made for it) into `m` and frees them. */
function loadOwned(m: Module, sd: Record<string, Tensor>): void {
  try {
    m.loadStateDict(sd);
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}

/** A copy of a layer (same config and weights, independent tensors). */
function cloneLayer(m: Module): Module {
  const c = moduleFromConfig(m.toConfig());
  c.loadStateDict(m.stateDict());
  return c;
}

/**
 * Removes `ratio` of the output channels (Conv2d, groups 1) or neurons (Linear) of every layer
 * that feeds another conv/linear in a `Sequential`, by smallest weight norm, and returns a new,
 * smaller dense `Sequential` (the original is untouched) plus the kept indices per layer.
 * Following BatchNorms, the next conv's input channels and the next Linear's inputs (through
 * Flatten: NHWC positions × kept channels) shrink accordingly.
 */
export function structuredPrune(model: Module, o: StructuredPruneOptions): {
  /** The new, smaller Sequential (the original is untouched). */
  model: nn.Sequential;
  /** Kept output channel/neuron indices (ascending) per pruned layer, by its index in the Sequential. */
  kept: Record<string, number[]>;
} {
  if (!(model instanceof nn.Sequential)) throw new ArgumentError(`structuredPrune works on a Sequential model, got ${describe(model)}`);
  o = checkOptions(o, 'structuredPrune options');
  if (!Array.isArray(o.inputShape)) throw new ArgumentError(`structuredPrune needs options.inputShape (one sample's shape), got ${describe(o.inputShape)}`);
  const ratio = o.ratio ?? 0.5;
  if (!(typeof ratio === 'number' && ratio >= 0 && ratio < 1)) throw new ArgumentError(`ratio must be in [0, 1), got ${describe(ratio)}`);
  const norm = o.norm ?? 'l1';
  const layers = model.layers;
  // Output shape after each layer (per sample), from a forward pass on one zero sample.
  const shapes: number[][] = tidy(() => noGrad(() => {
    const wasTraining = model.training;
    model.eval();
    try {
      let h = zeros([1, ...o.inputShape]);
      const out: number[][] = [];
      for (const l of layers) {
        h = l.forward(h);
        out.push(h.shape.slice(1));
      }
      return out;
    } finally {
      model.train(wasTraining);
    }
  }));
  const isLayer = (m: Module) => m instanceof nn.Linear || (m instanceof nn.Conv2d && ((m.getConfig() as Cfg).groups ?? 1) === 1);
  const passThrough = (m: Module) => m instanceof nn.BatchNorm || m instanceof nn.ReLU || m instanceof nn.LeakyReLU || m instanceof nn.ELU
    || m instanceof nn.GELU || m instanceof nn.SiLU || m instanceof nn.Sigmoid || m instanceof nn.Tanh || m instanceof nn.MaxPool2d
    || m instanceof nn.AvgPool2d || m instanceof nn.Dropout || m instanceof nn.Flatten || m instanceof nn.GlobalAvgPool2d;
  // Producer i -> consumer j (the next conv/linear through pass-through layers only).
  const consumer = new Map<number, number>();
  for (let i = 0; i < layers.length; i++) {
    if (!isLayer(layers[i])) continue;
    let j = i + 1;
    while (j < layers.length && passThrough(layers[j])) j++;
    if (j < layers.length && isLayer(layers[j])) consumer.set(i, j);
  }
  const chosen = o.layers ?? [...consumer.keys()];
  for (const i of chosen) if (!consumer.has(i)) throw new ArgumentError(`structuredPrune: layer ${i} is not a Conv2d/Linear feeding another one`);

  const out = layers.map(cloneLayer);
  const kept: Record<string, number[]> = {};
  try {
    for (const i of chosen) {
      const prod = out[i];
      const conv = prod instanceof nn.Conv2d;
      const w = (prod as nn.Linear | nn.Conv2d).weight;
      const cout = conv ? w.shape[3] : w.shape[0];
      const keepN = Math.max(1, Math.round(cout * (1 - ratio)));
      const idx = topChannels(channelNorms(w, conv, norm), keepN);
      kept[String(i)] = idx;
      // The producer.
      const pc = prod.getConfig() as Cfg;
      const np = moduleFromConfig({ className: prod.className, config: conv ? { ...pc, outChannels: keepN } : { ...pc, outFeatures: keepN } });
      const psd = prod.stateDict();
      loadOwned(np, { weight: pick(psd.weight, conv ? 3 : 0, idx), ...(psd.bias ? { bias: pick(psd.bias, 0, idx) } : {}) });
      prod.dispose();
      out[i] = np;
      // Pass-through layers up to the consumer; BatchNorms shrink, Flatten changes the index map.
      const j = consumer.get(i)!;
      let inIdx = idx;
      for (let k = i + 1; k < j; k++) {
        const m = out[k];
        if (m instanceof nn.BatchNorm) {
          const bc = m.getConfig() as Cfg;
          const nb = moduleFromConfig({ className: m.className, config: { ...bc, numFeatures: keepN } });
          const bsd = m.stateDict();
          loadOwned(nb, Object.fromEntries(Object.entries(bsd).map(([n, t]) => [n, pick(t, 0, idx)])));
          m.dispose();
          out[k] = nb;
        } else if (m instanceof nn.Flatten) {
          const s = shapes[k - 1];
          if (s.length === 3) {
            const [h, wd, c] = s;
            const map: number[] = [];
            for (let p = 0; p < h * wd; p++) for (const ch of inIdx) map.push(p * c + ch);
            inIdx = map;
          }
        }
      }
      // The consumer's inputs.
      const cons = out[j];
      const cc = cons.getConfig() as Cfg;
      const csd = cons.stateDict();
      const consConv = cons instanceof nn.Conv2d;
      if (consConv && shapes[j - 1].length === 3 && shapes[j - 1][2] !== cout) throw new ShapeError(`structuredPrune: layer ${j} does not read layer ${i}'s channels`);
      const nc = moduleFromConfig({ className: cons.className, config: consConv ? { ...cc, inChannels: keepN } : { ...cc, inFeatures: inIdx.length } });
      loadOwned(nc, { weight: pick(csd.weight, consConv ? 2 : 1, inIdx), ...(csd.bias ? { bias: noGrad(() => csd.bias.clone()) } : {}) });
      cons.dispose();
      out[j] = nc;
    }
  } catch (e) {
    for (const m of out) m.dispose();
    throw e;
  }
  const seq = new nn.Sequential(...out);
  seq.train(model.training);
  return { model: seq, kept };
}
