/**
 * Layers. Activations are NHWC for images; `Linear` weights are `[out, in]` (PyTorch's layout),
 * `Conv2d` weights `[kh, kw, in / groups, out]` (TensorFlow's HWIO, natural for NHWC).
 * Every layer is registered for configs, so `saveModel`/`loadModel` rebuild it.
 */
import { checkSize, describe, checkOptions } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { full, zeros } from '../creation.js';
import { assertTensor, Tensor, tensorArg } from '../tensor.js';
import { isGradEnabled } from '../autograd.js';
import * as F from './functional.js';
import { initialize, type Initializer } from './init.js';
import { Module, moduleFromConfig, registerModule, type ModuleConfig } from './module.js';
import { penalty, type Regularizer } from './regularizers.js';

function positiveInt(v: unknown, what: string): number {
  // Bounded by the engine's tensor size, so Linear(2**32 + 1, 1) cannot wrap to Linear(1, 1).
  return checkSize(v, what, 1);
}

/** Options shared by layers with weights. */
export interface WeightOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Initializer of the weight (default `'glorotUniform'`, from the layer's fan-in and fan-out). */
  weightInit?: Initializer;
  /** Initializer of the bias (default `'zeros'`). */
  biasInit?: Initializer;
  /** L1/L2 penalty on the weight, added to the training loss (`nn.l1`, `nn.l2`, `nn.l1l2`; default none). */
  weightRegularizer?: Regularizer | null;
  /** L1/L2 penalty on the bias, added to the training loss (default none). */
  biasRegularizer?: Regularizer | null;
  /** L1/L2 penalty on the layer's output, added to the training loss (default none). */
  activityRegularizer?: Regularizer | null;
  /** Seed for the initial weights (default: the global stream). */
  seed?: number;
}

// ------------------------------------------------------------------------------------- Linear

/** Options of `Linear`: weight options plus a fused activation. */
export interface LinearOptions extends WeightOptions {
  /** Fused ReLU epilogue (one pass instead of a separate ReLU layer). */
  activation?: 'relu' | null;
}

/** y = x·Wᵀ + b over the last dimension. */
export class Linear extends Module {
  /** Size of the last input dimension. */
  readonly inFeatures: number;
  /** Size of the last output dimension. */
  readonly outFeatures: number;
  readonly #opts: LinearOptions;
  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    checkOptions(opts, 'Linear options');
    super();
    this.inFeatures = positiveInt(inFeatures, 'Linear inFeatures');
    this.outFeatures = positiveInt(outFeatures, 'Linear outFeatures');
    this.#opts = opts;
    this.registerParameter('weight', initialize(opts.weightInit ?? 'glorotUniform', [outFeatures, inFeatures], inFeatures, outFeatures, opts.seed), opts.weightRegularizer);
    if (opts.bias ?? true) {
      this.registerParameter('bias', initialize(opts.biasInit ?? 'zeros', [outFeatures], inFeatures, outFeatures, opts.seed === undefined ? undefined : opts.seed + 1), opts.biasRegularizer);
    }
  }
  /** The weight parameter, `[outFeatures, inFeatures]` (PyTorch's layout). */
  get weight(): Tensor {
    return this.param('weight');
  }
  /** The bias parameter `[outFeatures]`, or null when built with `bias: false`. */
  get bias(): Tensor | null {
    return this.hasParam('bias') ? this.param('bias') : null;
  }
  forward(x: Tensor): Tensor {
    const y = F.linear(x, this.weight, this.bias, { activation: this.#opts.activation });
    if (this.#opts.activityRegularizer) this.addActivityLoss(penalty(this.#opts.activityRegularizer, y));
    return y;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.#opts;
    return { inFeatures: this.inFeatures, outFeatures: this.outFeatures, ...rest };
  }
}
/** Keras' name for `Linear`. */
export const Dense = Linear;

// ------------------------------------------------------------------------------------- Conv2d

/** Options of `Conv2d`: weight options plus stride, padding, dilation, groups and a fused activation. */
export interface Conv2dLayerOptions extends WeightOptions, F.Conv2dOptions {}

/** Each Conv2d's options, for `Sequential`'s fused inference path (module-private). */
const convOptions = new WeakMap<Module, Conv2dLayerOptions>();

/** 2-D convolution over NHWC input. */
export class Conv2d extends Module {
  /** Input channels C (the last dimension of the NHWC input). */
  readonly inChannels: number;
  /** Output channels (filters). */
  readonly outChannels: number;
  /** Kernel `[kh, kw]`. */
  readonly kernelSize: [number, number];
  readonly #opts: Conv2dLayerOptions;
  constructor(inChannels: number, outChannels: number, kernelSize: F.Pair, opts: Conv2dLayerOptions = {}) {
    checkOptions(opts, 'Conv2d options');
    super();
    this.inChannels = positiveInt(inChannels, 'Conv2d inChannels');
    this.outChannels = positiveInt(outChannels, 'Conv2d outChannels');
    this.kernelSize = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    if (!Array.isArray(this.kernelSize) || this.kernelSize.length !== 2) {
      throw new ArgumentError(`Conv2d kernel size must be a positive integer or a pair of them, got ${describe(kernelSize)}`);
    }
    this.kernelSize.forEach((k) => positiveInt(k, 'Conv2d kernel size'));
    const groups = opts.groups ?? 1;
    if (inChannels % groups || outChannels % groups) {
      throw new ShapeError(`Conv2d: groups (${groups}) must divide inChannels (${inChannels}) and outChannels (${outChannels})`);
    }
    this.#opts = opts;
    convOptions.set(this, opts);
    const [kh, kw] = this.kernelSize;
    const fanIn = kh * kw * (inChannels / groups);
    const fanOut = kh * kw * (outChannels / groups);
    this.registerParameter('weight', initialize(opts.weightInit ?? 'glorotUniform', [kh, kw, inChannels / groups, outChannels], fanIn, fanOut, opts.seed), opts.weightRegularizer);
    if (opts.bias ?? true) {
      this.registerParameter('bias', initialize(opts.biasInit ?? 'zeros', [outChannels], fanIn, fanOut, opts.seed === undefined ? undefined : opts.seed + 1), opts.biasRegularizer);
    }
  }
  /** The weight parameter, HWIO `[kh, kw, inChannels / groups, outChannels]`. */
  get weight(): Tensor {
    return this.param('weight');
  }
  /** The bias parameter `[outChannels]`, or null when built with `bias: false`. */
  get bias(): Tensor | null {
    return this.hasParam('bias') ? this.param('bias') : null;
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, 'Conv2d needs a Tensor input');
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new ShapeError(`Conv2d expects NHWC input with ${this.inChannels} channels, got shape [${x.shape.join(', ')}]`);
    }
    const y = F.conv2d(x, this.weight, this.bias, this.#opts);
    if (this.#opts.activityRegularizer) this.addActivityLoss(penalty(this.#opts.activityRegularizer, y));
    return y;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.#opts;
    return { inChannels: this.inChannels, outChannels: this.outChannels, kernelSize: this.kernelSize, ...rest };
  }
}

// ------------------------------------------------------------------------------------- pooling, reshaping

/** Max pooling over NHWC windows; the stride defaults to the kernel size, padding to `'valid'`. */
export class MaxPool2d extends Module {
  /**
   * @param kernelSize - Window size, one number or `[kh, kw]`.
   * @param opts - Stride (default: the kernel size) and padding (default `'valid'`).
   */
  constructor(readonly kernelSize: F.Pair, readonly opts: F.Pool2dOptions = {}) {
    checkOptions(opts, 'MaxPool2d options');
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.opts);
  }
  override getConfig() {
    return { kernelSize: this.kernelSize, ...this.opts };
  }
}

/** Average pooling; padding counts in the average unless `countIncludePad: false` (PyTorch's default). */
export class AvgPool2d extends Module {
  /**
   * @param kernelSize - Window size, one number or `[kh, kw]`.
   * @param opts - Stride (default: the kernel size), padding (default `'valid'`) and `countIncludePad` (default true).
   */
  constructor(readonly kernelSize: F.Pair, readonly opts: F.AvgPool2dOptions = {}) {
    checkOptions(opts, 'AvgPool2d options');
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.opts);
  }
  override getConfig() {
    // Always explicit: configs saved before the default became true lack the key and meant false.
    return { kernelSize: this.kernelSize, ...this.opts, countIncludePad: this.opts.countIncludePad ?? true };
  }
}

/** `[N, H, W, C]` -> `[N, C]` by averaging over H and W. */
export class GlobalAvgPool2d extends Module {
  forward(x: Tensor): Tensor {
    return F.globalAvgPool2d(x);
  }
  override getConfig() {
    return {};
  }
}

/** `[N, ...]` -> `[N, prod(...)]`. */
export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    assertTensor(x, 'Flatten needs a Tensor input');
    if (x.rank < 1) throw new ShapeError('Flatten needs a batch dimension');
    return x.reshape([x.shape[0], -1]);
  }
  override getConfig() {
    return {};
  }
}

/** Inverted dropout, active in training mode only. With `seed`, masks are reproducible per call. */
export class Dropout extends Module {
  #calls = 0;
  /**
   * @param p - Probability of zeroing an element, in [0, 1) (default 0.5); throws ArgumentError otherwise.
   * @param seed - Makes the masks reproducible: call k of a seeded layer always draws the same mask.
   */
  constructor(readonly p = 0.5, readonly seed?: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new ArgumentError(`Dropout probability must be in [0, 1), got ${p}`);
  }
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x.clone();
    const seed = this.seed === undefined ? undefined : this.seed * 1_000_003 + this.#calls++;
    return F.dropout(x, this.p, true, seed);
  }
  /** Seeded draws so far, kept in checkpoints so a resumed run draws the same masks. */
  override getExtraState(): { calls: number } {
    return { calls: this.#calls };
  }
  override setExtraState(s: unknown): void {
    this.#calls = this.readCallCount(s);
  }
  override getConfig() {
    return { p: this.p, seed: this.seed };
  }
}

// ------------------------------------------------------------------------------------- normalisation

/** Options of the BatchNorm layers. */
export interface BatchNormLayerOptions {
  /** Weight of each new batch in the running statistics (PyTorch: 0.1; Keras' momentum 0.99 is 0.01 here). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Learnable scale and shift. */
  affine?: boolean;
  /** Keep running statistics for evaluation (otherwise batch statistics are always used). */
  trackRunningStats?: boolean;
  /** Running variance from the unbiased batch variance (PyTorch, default) or the biased one (Keras). */
  unbiasedRunningVar?: boolean;
}

/** Batch normalisation over the last (channel) dimension: `[N, C]`, or `[N, H, W, C]` for BatchNorm2d. */
export class BatchNorm extends Module {
  readonly #opts: Required<BatchNormLayerOptions>;
  /**
   * @param numFeatures - Channels C, the size of the last input dimension.
   * @param opts - Momentum, eps, affine, running statistics.
   * @param expectedRank - Input rank the layer insists on (2 for BatchNorm1d, 4 for BatchNorm2d; default any).
   */
  constructor(readonly numFeatures: number, opts: BatchNormLayerOptions = {}, readonly expectedRank?: number) {
    checkOptions(opts, 'BatchNorm options');
    super();
    positiveInt(numFeatures, 'BatchNorm numFeatures');
    this.#opts = { momentum: 0.1, eps: 1e-5, affine: true, trackRunningStats: true, unbiasedRunningVar: true, ...opts };
    if (this.#opts.affine) {
      this.registerParameter('weight', full([numFeatures], 1));
      this.registerParameter('bias', zeros([numFeatures]));
    }
    if (this.#opts.trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures]));
      this.registerBuffer('running_var', full([numFeatures], 1));
    }
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    if ((this.expectedRank !== undefined && x.rank !== this.expectedRank) || x.shape[x.rank - 1] !== this.numFeatures) {
      throw new ShapeError(`${this.className} expects ${this.expectedRank === 4 ? '[N, H, W, C]' : '[N, C]'} input with C = ${this.numFeatures}, got [${x.shape.join(', ')}]`);
    }
    const o = this.#opts;
    const track = o.trackRunningStats;
    return F.batchNorm(x, {
      weight: o.affine ? this.param('weight') : null,
      bias: o.affine ? this.param('bias') : null,
      runningMean: track ? this.buffer('running_mean') : null,
      runningVar: track ? this.buffer('running_var') : null,
      training: this.training || !track,
      momentum: o.momentum,
      eps: o.eps,
      unbiasedRunningVar: o.unbiasedRunningVar,
    });
  }
  override getConfig() {
    return { numFeatures: this.numFeatures, ...this.#opts };
  }
}
/** Batch normalisation of `[N, C]` input (PyTorch's BatchNorm1d without the length dimension). */
export class BatchNorm1d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormLayerOptions = {}) {
    checkOptions(opts, 'BatchNorm1d options');
    super(numFeatures, opts, 2);
  }
}
/** Batch normalisation of NHWC `[N, H, W, C]` input over N, H and W per channel. */
export class BatchNorm2d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormLayerOptions = {}) {
    checkOptions(opts, 'BatchNorm2d options');
    super(numFeatures, opts, 4);
  }
}

/** Layer normalisation over the trailing `normalizedShape` dims. */
export class LayerNorm extends Module {
  /** The trailing dimensions normalised over (and the shape of the weight and bias). */
  readonly normalizedShape: number[];
  /**
   * @param normalizedShape - Size of the last dimension, or the sizes of the trailing dimensions.
   * @param opts - `eps` added to the variance (default 1e-5); `elementwiseAffine` learns a weight and bias (default true).
   */
  constructor(normalizedShape: number | number[], readonly opts: { eps?: number; elementwiseAffine?: boolean } = {}) {
    checkOptions(opts, 'LayerNorm options');
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    if (!Array.isArray(this.normalizedShape)) throw new ArgumentError(`LayerNorm needs a size or an array of sizes, got ${describe(normalizedShape)}`);
    this.normalizedShape.forEach((d) => positiveInt(d, 'LayerNorm size'));
    if (opts.elementwiseAffine ?? true) {
      this.registerParameter('weight', full(this.normalizedShape, 1));
      this.registerParameter('bias', zeros(this.normalizedShape));
    }
  }
  forward(x: Tensor): Tensor {
    const affine = this.opts.elementwiseAffine ?? true;
    return F.layerNorm(x, this.normalizedShape.length, {
      weight: affine ? this.param('weight') : null, bias: affine ? this.param('bias') : null, eps: this.opts.eps ?? 1e-5,
    });
  }
  override getConfig() {
    return { normalizedShape: this.normalizedShape, ...this.opts };
  }
}

/** A lookup table: int32 indices of any shape -> `[...indices.shape, dim]`. */
export class Embedding extends Module {
  /**
   * @param numEmbeddings - Rows of the table (the vocabulary size); indices must be in [0, numEmbeddings).
   * @param embeddingDim - Length of each vector.
   * @param opts - `init` of the table (default `{ normal: [0, 1] }`, as PyTorch) and its `seed`.
   */
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, readonly opts: { init?: Initializer; seed?: number } = {}) {
    checkOptions(opts, 'Embedding options');
    super();
    positiveInt(numEmbeddings, 'Embedding numEmbeddings');
    positiveInt(embeddingDim, 'Embedding embeddingDim');
    this.registerParameter('weight', initialize(opts.init ?? { normal: [0, 1] }, [numEmbeddings, embeddingDim], numEmbeddings, embeddingDim, opts.seed));
  }
  /** The table, `[numEmbeddings, embeddingDim]`. */
  get weight(): Tensor {
    return this.param('weight');
  }
  forward(indices: Tensor): Tensor {
    return this.weight.indexSelect(0, indices);
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { numEmbeddings: this.numEmbeddings, embeddingDim: this.embeddingDim, ...rest };
  }
}

// ------------------------------------------------------------------------------------- activations

abstract class Activation extends Module {
  override getConfig(): Record<string, unknown> {
    return {};
  }
}
/** max(0, x). */
export class ReLU extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).relu(); }
}
/** x for x > 0, alpha·x otherwise (PyTorch's `negative_slope`). */
export class LeakyReLU extends Activation {
  /** @param alpha - Slope for negative inputs (default 0.01). */
  constructor(readonly alpha = 0.01) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).leakyRelu(this.alpha); }
  /** The constructor argument, for `saveModel`/`toConfig`. */
  override getConfig() { return { alpha: this.alpha }; }
}
/** x for x > 0, alpha·(eˣ − 1) otherwise. */
export class ELU extends Activation {
  /** @param alpha - Scale of the negative part (default 1). */
  constructor(readonly alpha = 1) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).elu(this.alpha); }
  /** The constructor argument, for `saveModel`/`toConfig`. */
  override getConfig() { return { alpha: this.alpha }; }
}
/** 1 / (1 + e⁻ˣ). */
export class Sigmoid extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).sigmoid(); }
}
/** Hyperbolic tangent. */
export class Tanh extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).tanh(); }
}
/** Gaussian error linear unit x·Φ(x). */
export class GELU extends Activation {
  /** @param approximate - Use the tanh approximation (PyTorch's `approximate='tanh'`) instead of the exact erf form (default false). */
  constructor(readonly approximate = false) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).gelu(this.approximate); }
  /** The constructor argument, for `saveModel`/`toConfig`. */
  override getConfig() { return { approximate: this.approximate }; }
}
/** x·sigmoid(x), also known as Swish. */
export class SiLU extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).silu(); }
}
/** Keras' name for `SiLU`. */
export const Swish = SiLU;
/** log(1 + eˣ). */
export class Softplus extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).softplus(); }
}
/** Softmax along `axis`: each slice sums to 1. */
export class Softmax extends Activation {
  /** @param axis - Dimension normalised over (default -1, the last). */
  constructor(readonly axis = -1) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).softmax(this.axis); }
  /** The constructor argument, for `saveModel`/`toConfig`. */
  override getConfig() { return { axis: this.axis }; }
}
/** log(softmax(x)) along `axis`, computed stably. */
export class LogSoftmax extends Activation {
  /** @param axis - Dimension normalised over (default -1, the last). */
  constructor(readonly axis = -1) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).logSoftmax(this.axis); }
  /** The constructor argument, for `saveModel`/`toConfig`. */
  override getConfig() { return { axis: this.axis }; }
}

// ------------------------------------------------------------------------------------- Sequential

/** Runs its layers in order; submodules are named "0", "1", ... (as in PyTorch). */
export class Sequential extends Module {
  constructor(...layers: Module[]) {
    super();
    layers.forEach((l, i) => this.registerModule(String(i), l));
  }
  /** The layers, in order. */
  get layers(): Module[] {
    return this.children();
  }
  /** Appends a layer. */
  add(layer: Module): this {
    this.registerModule(String(this.children().length), layer);
    return this;
  }
  forward(x: Tensor): Tensor {
    // Without a tape nothing needs the intermediates: each is freed once the next layer has run,
    // so inference outside a `tidy` neither waits for the GC nor grows the engine's memory.
    const free = !isGradEnabled();
    const layers = this.children();
    let h = x;
    for (let i = 0; i < layers.length; i++) {
      const fused = free ? convReluPool(layers[i], layers[i + 1], h) : null;
      if (fused) i++;
      const next = fused ?? layers[i].forward(h);
      if (free && h !== x && next !== h && !h.requiresGrad) h.dispose();
      h = next;
    }
    return h;
  }
  override getConfig() {
    return { layers: this.children().map((l) => l.toConfig()) };
  }
}

/** True for a plain instance of `cls` with no forward hooks or forward of its own. */
function plain(m: Module | undefined, cls: typeof Conv2d | typeof MaxPool2d): boolean {
  if (m === undefined || Object.getPrototypeOf(m) !== cls.prototype) return false;
  return m.numForwardHooks === 0 && !Object.prototype.hasOwnProperty.call(m, 'forward');
}

/**
 * `pool.forward(conv.forward(x))` in one op when `conv` is a Conv2d with ReLU and no activity
 * regularizer and `pool` a MaxPool2d(2) with stride 2 and no padding (the same bits); null where
 * the pair does not qualify (the layers then run, and check, as usual).
 */
function convReluPool(conv: Module, pool: Module | undefined, x: Tensor): Tensor | null {
  if (!plain(conv, Conv2d) || !plain(pool, MaxPool2d)) return null;
  const c = conv as Conv2d;
  const o = convOptions.get(c);
  const p = pool as MaxPool2d;
  const two = (v: unknown) => v === 2 || (Array.isArray(v) && v.length === 2 && v[0] === 2 && v[1] === 2);
  if (!o || o.activation !== 'relu' || o.activityRegularizer || !two(p.kernelSize)
    || !(p.opts.stride === undefined || two(p.opts.stride)) || !(p.opts.padding === undefined || p.opts.padding === 'valid')) return null;
  if (!(x instanceof Tensor) || x.rank !== 4 || x.shape[3] !== c.inChannels) return null;
  return F.conv2dReluMaxPool2d(x, c.weight, c.bias, o);
}

// ------------------------------------------------------------------------------------- registry

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('Linear', (c: Cfg) => new Linear(c.inFeatures, c.outFeatures, c));
registerModule('Conv2d', (c: Cfg) => new Conv2d(c.inChannels, c.outChannels, c.kernelSize, c));
registerModule('MaxPool2d', (c: Cfg) => new MaxPool2d(c.kernelSize, c));
// A saved config without countIncludePad predates the PyTorch default (true) and meant false.
registerModule('AvgPool2d', (c: Cfg) => new AvgPool2d(c.kernelSize, { ...c, countIncludePad: c.countIncludePad ?? false }));
registerModule('GlobalAvgPool2d', () => new GlobalAvgPool2d());
registerModule('Flatten', () => new Flatten());
registerModule('Dropout', (c: Cfg) => new Dropout(c.p, c.seed));
registerModule('BatchNorm1d', (c: Cfg) => new BatchNorm1d(c.numFeatures, c));
registerModule('BatchNorm2d', (c: Cfg) => new BatchNorm2d(c.numFeatures, c));
registerModule('BatchNorm', (c: Cfg) => new BatchNorm(c.numFeatures, c));
registerModule('LayerNorm', (c: Cfg) => new LayerNorm(c.normalizedShape, c));
registerModule('Embedding', (c: Cfg) => new Embedding(c.numEmbeddings, c.embeddingDim, c));
registerModule('ReLU', () => new ReLU());
registerModule('LeakyReLU', (c: Cfg) => new LeakyReLU(c.alpha));
registerModule('ELU', (c: Cfg) => new ELU(c.alpha));
registerModule('Sigmoid', () => new Sigmoid());
registerModule('Tanh', () => new Tanh());
registerModule('GELU', (c: Cfg) => new GELU(c.approximate));
registerModule('SiLU', () => new SiLU());
registerModule('Softplus', () => new Softplus());
registerModule('Softmax', (c: Cfg) => new Softmax(c.axis));
registerModule('LogSoftmax', (c: Cfg) => new LogSoftmax(c.axis));
registerModule('Sequential', (c: Cfg) => new Sequential(...(c.layers as ModuleConfig[]).map(moduleFromConfig)));
