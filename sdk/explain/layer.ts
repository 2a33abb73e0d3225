/**
 * Layer attributions (Captum's names and definitions): `LayerActivation`, `LayerGradCam`,
 * `GuidedGradCam` and `LayerIntegratedGradients`, and `interpolate` (Captum's
 * `LayerAttribution.interpolate`) to bring a layer's attributions to the input's size. A layer is
 * read or replaced through a forward hook, so any module of any model works, in one batched pass.
 * Our layout is channels-last: a conv layer's output is `[batch, ...spatial, channels]`.
 */
import { checkBool, checkInt, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { Tensor } from '../tensor.js';
import type { IntegrationMethod } from './approximation.js';
import {
  Attribution, Rule, checkKeys, prepare, prepareBaselines, shaped,
  type AttributionOf, type BaseOptions, type Baseline, type Baselines, type Forward, type Inputs,
} from './common.js';
import { IntegratedGradients, type IntegratedGradientsOptions, type WithDelta } from './gradient.js';
import { resolveModules } from './hooks.js';

const BASE_KEYS = ['target', 'additionalForwardArgs'] as const;

// --------------------------------------------------------------------------------- interpolate

/** Interpolation modes (PyTorch's `F.interpolate`): `nearest`, and `linear`/`bilinear`/`trilinear` for 1/2/3 spatial dims. */
export type InterpolateMode = 'nearest' | 'linear' | 'bilinear' | 'trilinear';
const LINEAR_MODES: Record<string, number> = { linear: 1, bilinear: 2, trilinear: 3 };

function checkMode(mode: unknown, spatial: number, what: string): InterpolateMode {
  if (mode === 'nearest') return mode;
  const dims = typeof mode === 'string' && Object.hasOwn(LINEAR_MODES, mode) ? LINEAR_MODES[mode] : undefined;
  if (dims === undefined) throw new ArgumentError(`${what}: unknown interpolation mode ${describe(mode)}; use nearest, linear, bilinear or trilinear`);
  if (dims !== spatial) throw new ShapeError(`${what}: mode '${mode}' interpolates ${dims} spatial dimension(s), the tensor has ${spatial}`);
  return mode as InterpolateMode;
}

/**
 * Resizes the spatial dimensions of a channels-last tensor `[batch, ...spatial, channels]` to
 * `size` (Captum's `LayerAttribution.interpolate`, PyTorch's `F.interpolate` with
 * `align_corners=False`): `nearest` picks source index ⌊i·in/out⌋, the linear modes blend the two
 * nearest source cells at (i + 0.5)·in/out − 0.5, one spatial axis after the other. Source indices
 * and weights are computed in float32 as PyTorch does; the blending runs in engine ops (gathers
 * and elementwise products), so results are the same bits in every runtime. Returns a new tensor.
 */
export function interpolate(t: Tensor, size: readonly number[], mode: InterpolateMode = 'nearest'): Tensor {
  const what = 'interpolate()';
  if (!(t instanceof Tensor)) throw new ArgumentError(`${what} needs a Tensor, got ${describe(t)}`);
  if (t.isDisposed) t.handle; // throws DisposedError naming it
  if (t.dtype !== 'float32') throw new DTypeError(`${what}: the tensor is ${t.dtype}; interpolation needs float32`);
  if (t.rank < 3) throw new ShapeError(`${what}: the tensor has shape [${t.shape.join(', ')}]; it must be [batch, ...spatial, channels] with 1 to 3 spatial dimensions`);
  const spatial = t.rank - 2;
  if (!Array.isArray(size) || size.length !== spatial) throw new ArgumentError(`${what}: size must list ${spatial} spatial size(s), got ${describe(size)}`);
  const sizes = size.map((s: unknown, d) => checkInt(s, `${what}: size[${d}]`, 1, 1 << 20));
  const m = checkMode(mode, spatial, what);
  return tidy(() => {
    let out = t;
    sizes.forEach((outSize, d) => {
      const axis = d + 1;
      const inSize = t.shape[axis];
      if (inSize === outSize) return;
      const scale = Math.fround(inSize / outSize);
      const bcast = t.shape.map((_, a) => (a === axis ? outSize : 1));
      if (m === 'nearest') {
        const idx = Int32Array.from({ length: outSize }, (_, k) => Math.min(Math.floor(Math.fround(k * scale)), inSize - 1));
        out = out.indexSelect(axis, tensor(idx, [outSize], 'int32'));
        return;
      }
      const i0 = new Int32Array(outSize);
      const i1 = new Int32Array(outSize);
      const w0 = new Float32Array(outSize);
      const w1 = new Float32Array(outSize);
      for (let k = 0; k < outSize; k++) {
        const src = Math.max(0, Math.fround(Math.fround(scale * Math.fround(k + 0.5)) - 0.5));
        i0[k] = Math.min(Math.floor(src), inSize - 1);
        i1[k] = Math.min(i0[k] + 1, inSize - 1);
        w1[k] = Math.fround(src - i0[k]);
        w0[k] = Math.fround(1 - w1[k]);
      }
      const a = out.indexSelect(axis, tensor(i0, [outSize], 'int32')).mul(tensor(w0, bcast));
      const b = out.indexSelect(axis, tensor(i1, [outSize], 'int32')).mul(tensor(w1, bcast));
      out = a.add(b);
    });
    return out === t ? t.clone() : out;
  });
}

// ----------------------------------------------------------------------------- LayerAttribution

/** The layer a layer method reads: a module path of the model (`'features.3'`) or the module itself. */
export type LayerSpec = string | Module;

/**
 * Runs `fn` with a forward hook on `layer` that sees (and, returning a tensor, replaces) its
 * output; the layer must run exactly once during `fn`. The hook is removed afterwards, also on errors.
 */
function withLayerOutput<T>(layer: Module, label: string, what: string, onOutput: (out: Tensor) => Tensor | void, fn: () => T): T {
  let calls = 0;
  const handle = layer.registerForwardHook((_m, _inputs, out) => {
    if (++calls > 1) throw new ArgumentError(`${what}: the layer ${label} ran more than once in one forward; layer methods need a layer that runs once per forward`);
    return onOutput(out);
  });
  try {
    const result = fn();
    if (calls === 0) throw new ArgumentError(`${what}: the layer ${label} did not run during the forward`);
    return result;
  } finally {
    handle.remove();
  }
}

/**
 * Base of the layer methods (Captum's `LayerAttribution`): a forward and one of its layers, given
 * by module path (when the forward is a Module) or as the module itself.
 */
export abstract class LayerAttribution extends Attribution {
  /** The layer whose output is read or replaced. */
  readonly layer: Module;
  /** How messages name the layer: its path, or its class. */
  readonly layerLabel: string;

  constructor(forward: Forward, layer: LayerSpec) {
    super(forward);
    const what = new.target.name;
    if (typeof layer === 'string') {
      if (!(forward instanceof Module)) throw new ArgumentError(`${what}: a layer name needs a Module to look it up in; with a function forward pass the layer module itself`);
      this.layer = resolveModules(forward, [layer], what)[0];
      this.layerLabel = `'${layer}'`;
    } else if (layer instanceof Module) {
      this.layer = layer;
      const path = forward instanceof Module ? [...forward.namedModules()].find(([, m]) => m === layer)?.[0] : undefined;
      this.layerLabel = path ? `'${path}'` : layer.className;
    } else {
      throw new ArgumentError(`${what} needs the layer as a module path or a Module, got ${describe(layer)}`);
    }
  }

  /** Runs `fn` (a forward) with the layer's output observed or replaced by `onOutput`. */
  protected withLayer<T>(what: string, onOutput: (out: Tensor) => Tensor | void, fn: () => T): T {
    return withLayerOutput(this.layer, this.layerLabel, what, onOutput, fn);
  }

  /** The layer's output on `xs` (no gradients; a new tensor in the caller's scope). */
  protected layerOutput(xs: Tensor[], extra: unknown[], what: string): Tensor {
    return noGrad(() => tidy(() => {
      let act: Tensor | null = null;
      // A handle of our own (same storage): Sequential frees its intermediates under noGrad.
      this.withLayer(what, (out) => void (act = out.detach()), () => this.invoke(xs, extra));
      return act!;
    }));
  }

  /**
   * Gradients of every row's target output with respect to the layer's output, and that output
   * (Captum's `compute_layer_gradients_and_eval`), in one forward and one backward pass.
   */
  protected layerGradients(xs: Tensor[], targets: Int32Array | null, extra: unknown[], what: string): {
    /** Gradients of the target outputs with respect to the layer's output. */
    grads: Tensor;
    /** The layer's output. */
    activations: Tensor;
  } {
    const r = xs[0].shape[0];
    const [grads, activations] = this.gradientPass(Rule.Gradient, () => {
      let leaf: Tensor | null = null;
      const out = this.withLayer(what, (o) => (leaf = o.detach().requiresGrad_()), () => this.run(xs.map((x) => x.detach()), extra, r));
      return { out, targets, leaves: [leaf!], keep: [leaf!.detach()] };
    });
    return { grads, activations };
  }

  /**
   * Grad-CAM from a layer's gradients and output: channel weights = gradients averaged over the
   * spatial dims (all dims between batch and channels; none for `[batch, channels]`), times the
   * output, summed over channels (keeping a size-1 channel axis) unless `sum` is false, ReLU'd if `relu`.
   */
  protected static gradCam(grads: Tensor, acts: Tensor, relu: boolean, sum: boolean): Tensor {
    const r = grads.rank;
    const spatial = Array.from({ length: Math.max(0, r - 2) }, (_, d) => d + 1);
    const weights = spatial.length > 0 ? grads.mean(spatial, true) : grads;
    const scaled = sum ? weights.mul(acts).sum(r - 1, true) : weights.mul(acts);
    return relu ? scaled.relu() : scaled;
  }
}

// ----------------------------------------------------------------------------- LayerActivation

/**
 * LayerActivation (Captum's): the layer's output for the inputs, as the attribution (shaped like
 * the layer's output). Inputs may be of any dtype (token ids through an `Embedding`, for instance).
 */
export class LayerActivation extends LayerAttribution {
  /** The layer's output for `inputs`, shaped like that output. */
  attribute(inputs: Inputs, opts?: Pick<BaseOptions, 'additionalForwardArgs'>): Tensor {
    const what = 'LayerActivation.attribute()';
    const o = checkKeys(opts, ['additionalForwardArgs'], what);
    const p = prepare(inputs, o, what, true);
    return this.layerOutput(p.xs, p.extra, what);
  }
}

// -------------------------------------------------------------------------------- LayerGradCam

export interface LayerGradCamOptions extends BaseOptions {
  /** ReLU of the result, keeping only positive evidence (default false, as Captum; true is the paper's Grad-CAM). */
  reluAttributions?: boolean;
  /** Sum over the layer's channels (default true); false keeps one map per channel. */
  attrDimSummation?: boolean;
  /** Resize the maps to input 0's spatial size with this mode (default: the layer's size). */
  upsample?: InterpolateMode;
}

/**
 * Grad-CAM (Selvaraju et al.; Captum's `LayerGradCam`): the gradients of the target output with
 * respect to the layer's output, averaged over its spatial dims, weight its channels; the weighted
 * sum over channels is the map `[batch, ...spatial, 1]` (ReLU'd with `reluAttributions`). With
 * `upsample` the maps are interpolated to the input's spatial size (see `interpolate`).
 */
export class LayerGradCam extends LayerAttribution {
  /** Grad-CAM maps `[batch, ...spatial, 1]` (input-sized with `upsample`). */
  attribute(inputs: Inputs, opts?: LayerGradCamOptions): Tensor {
    const what = 'LayerGradCam.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'reluAttributions', 'attrDimSummation', 'upsample'], what);
    const relu = checkBool(o.reluAttributions ?? false, `${what}: reluAttributions`);
    const sum = checkBool(o.attrDimSummation ?? true, `${what}: attrDimSummation`);
    const p = prepare(inputs, o, what, true);
    return tidy(() => {
      const { grads, activations } = this.layerGradients(p.xs, p.targets, p.extra, what);
      if (grads.rank < 2) throw new ShapeError(`${what}: the layer ${this.layerLabel} returned [${grads.shape.join(', ')}]; Grad-CAM needs [batch, ...spatial, channels]`);
      const cam = LayerAttribution.gradCam(grads, activations, relu, sum);
      return o.upsample === undefined ? cam : interpolate(cam, spatialSize(p.xs[0], cam, what), o.upsample);
    });
  }
}

/** Input `x`'s spatial size, for maps `cam` of the same rank (`[batch, ...spatial, channels]`). */
function spatialSize(x: Tensor, cam: Tensor, what: string): number[] {
  if (x.rank !== cam.rank || x.rank < 3) {
    throw new ShapeError(`${what}: the layer's maps [${cam.shape.join(', ')}] and the input [${x.shape.join(', ')}] must both be [batch, ...spatial, channels] with the same number of spatial dims to upsample`);
  }
  return x.shape.slice(1, -1);
}

// ------------------------------------------------------------------------------- GuidedGradCam

export interface GuidedGradCamOptions extends BaseOptions {
  /** How Grad-CAM is resized to the input (default 'nearest', as Captum). */
  interpolateMode?: InterpolateMode;
}

/**
 * Guided Grad-CAM (Captum's `GuidedGradCam`): guided backpropagation multiplied elementwise by the
 * layer's Grad-CAM (with ReLU), interpolated to each input's spatial size and broadcast over its
 * channels. Inputs are float32 `[batch, ...spatial, channels]` with as many spatial dims as the layer.
 */
export class GuidedGradCam extends LayerAttribution {
  /** Guided Grad-CAM attributions, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: GuidedGradCamOptions): AttributionOf<I> {
    const what = 'GuidedGradCam.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'interpolateMode'], what);
    const p = prepare(inputs, o, what);
    const mode = o.interpolateMode ?? 'nearest';
    return tidy(() => {
      const { grads, activations } = this.layerGradients(p.xs, p.targets, p.extra, what);
      const cam = LayerAttribution.gradCam(grads, activations, true, true);
      const guided = this.gradients(p.xs, p.targets, p.extra, Rule.Guided);
      return shaped<I>(p, guided.map((g, j) => g.mul(interpolate(cam, spatialSize(p.xs[j], cam, what), mode))));
    });
  }
}

// -------------------------------------------------------------------- LayerIntegratedGradients

export interface LayerIntegratedGradientsOptions extends BaseOptions {
  /**
   * The path's start in input space (default 0), passed through the forward to the layer: a number
   * (e.g. a pad token id for int32 inputs), a tensor per example or per input shape; one per input for tuples.
   */
  baselines?: Baselines;
  /** Or the path's start at the layer itself (e.g. embedding values): a number or a tensor shaped like the layer's output (per example or one example). */
  layerBaselines?: Baseline;
  /** Integration points (default 50). */
  nSteps?: number;
  /** Integration rule (default 'gausslegendre'). */
  method?: IntegrationMethod;
  /** Rows per forward/backward pass (default: all batch × nSteps rows at once). Does not change the result. */
  internalBatchSize?: number;
  /** Also return delta = Σ attributions − (F(inputs) − F(baselines)) per example. */
  returnConvergenceDelta?: boolean;
}

const LIG_KEYS = [...BASE_KEYS, 'baselines', 'layerBaselines', 'nSteps', 'method', 'internalBatchSize', 'returnConvergenceDelta'];

/**
 * Layer Integrated Gradients (Captum's `LayerIntegratedGradients`): Integrated Gradients on the
 * layer's output, from its value for the baselines to its value for the inputs; the model runs on
 * the inputs with the layer's output replaced by the path points. The standard use is token
 * attributions through an `Embedding`: inputs and baselines are token ids (int32), the attributions
 * `[batch, tokens, dim]`, and `.sum(-1)` gives one score per token; they sum to F(x) − F(baseline)
 * when the output depends on the inputs only through the layer (`returnConvergenceDelta` reports the gap).
 * Steps run in batches of `internalBatchSize` rows through `IntegratedGradients` itself.
 */
export class LayerIntegratedGradients extends LayerAttribution {
  /** Layer attributions shaped like the layer's output, with the per-example convergence delta (`returnConvergenceDelta: true`). */
  attribute(inputs: Inputs, opts: LayerIntegratedGradientsOptions & { returnConvergenceDelta: true }): WithDelta<Tensor>;
  /** Layer attributions, shaped like the layer's output. */
  attribute(inputs: Inputs, opts?: LayerIntegratedGradientsOptions & { returnConvergenceDelta?: false }): Tensor;
  attribute(inputs: Inputs, opts?: LayerIntegratedGradientsOptions): Tensor | WithDelta<Tensor> {
    const what = 'LayerIntegratedGradients.attribute()';
    const o = checkKeys(opts, LIG_KEYS, what);
    const p = prepare(inputs, o, what, true);
    if (o.baselines !== undefined && o.layerBaselines !== undefined) throw new ArgumentError(`${what}: pass baselines (input space) or layerBaselines (the layer's values), not both`);
    checkBool(o.returnConvergenceDelta ?? false, `${what}: returnConvergenceDelta`);
    const k = p.xs.length;
    // The forward of the layer's value: the model on the inputs (the extra arguments that follow
    // the path points, expanded per row by IntegratedGradients) with the layer's output replaced.
    const layerForward = (value: Tensor, ...rest: unknown[]): unknown =>
      this.withLayer(what, (out) => {
        if (out.shape.join() !== value.shape.join()) throw new ShapeError(`${what}: the layer ${this.layerLabel} returned [${out.shape.join(', ')}] where [${value.shape.join(', ')}] was expected (its output must be [batch, ...] for the batch it is given)`);
        return value.reshape(value.shape); // a handle of our own: Sequential frees intermediates under noGrad
      }, () => this.invoke(rest.slice(0, k) as Tensor[], rest.slice(k)));
    const ig = new LayerPath(layerForward as (...a: unknown[]) => Tensor);
    return this.withFrozenParameters(() => tidy(() => {
      const acts = this.layerOutput(p.xs, p.extra, what);
      if (acts.dtype !== 'float32' || acts.rank < 1 || acts.shape[0] !== p.n) throw new ShapeError(`${what}: the layer ${this.layerLabel} returned ${acts.dtype} [${acts.shape.join(', ')}]; it must return float32 [batch, ...]`);
      const base = o.layerBaselines !== undefined
        ? prepareBaselines(o.layerBaselines, { xs: [acts], tuple: false, n: p.n, targets: null, extra: [] }, `${what}: layerBaselines`)[0]
        : this.layerOutput(prepareBaselines(o.baselines, p, what).map((b) => b.contiguous()), p.extra, what);
      const igOpts: IntegratedGradientsOptions = {
        baselines: base, additionalForwardArgs: [...p.xs, ...p.extra], nSteps: o.nSteps, method: o.method,
        internalBatchSize: o.internalBatchSize, returnConvergenceDelta: o.returnConvergenceDelta,
        ...(p.targets === null ? {} : { target: p.targets }),
      };
      return ig.attribute(acts, igOpts as IntegratedGradientsOptions & { returnConvergenceDelta: true }) as Tensor | WithDelta<Tensor>;
    }));
  }
}

/** IntegratedGradients over a layer's value; its messages name the layer method. */
class LayerPath extends IntegratedGradients {}
Object.defineProperty(LayerPath, 'name', { value: 'LayerIntegratedGradients' });

