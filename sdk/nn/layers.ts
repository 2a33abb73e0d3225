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
  bias?: boolean;
  weightInit?: Initializer;
  biasInit?: Initializer;
  weightRegularizer?: Regularizer | null;
  biasRegularizer?: Regularizer | null;
  activityRegularizer?: Regularizer | null;
  /** Seed for the initial weights (default: the global stream). */
  seed?: number;
}

// ------------------------------------------------------------------------------------- Linear

export interface LinearOptions extends WeightOptions {
  /** Fused ReLU epilogue (one pass instead of a separate ReLU layer). */
  activation?: 'relu' | null;
}

/** y = x·Wᵀ + b over the last dimension. */
export class Linear extends Module {
  readonly inFeatures: number;
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
  get weight(): Tensor {
    return this.param('weight');
  }
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

export interface Conv2dLayerOptions extends WeightOptions, F.Conv2dOptions {}

/** 2-D convolution over NHWC input. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
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
    const [kh, kw] = this.kernelSize;
    const fanIn = kh * kw * (inChannels / groups);
    const fanOut = kh * kw * (outChannels / groups);
    this.registerParameter('weight', initialize(opts.weightInit ?? 'glorotUniform', [kh, kw, inChannels / groups, outChannels], fanIn, fanOut, opts.seed), opts.weightRegularizer);
    if (opts.bias ?? true) {
      this.registerParameter('bias', initialize(opts.biasInit ?? 'zeros', [outChannels], fanIn, fanOut, opts.seed === undefined ? undefined : opts.seed + 1), opts.biasRegularizer);
    }
  }
  get weight(): Tensor {
    return this.param('weight');
  }
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

export class MaxPool2d extends Module {
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

export interface BatchNormLayerOptions {
  /** Weight of each new batch in the running statistics (PyTorch: 0.1; Keras' momentum 0.99 is 0.01 here). */
  momentum?: number;
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
export class BatchNorm1d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormLayerOptions = {}) {
    checkOptions(opts, 'BatchNorm1d options');
    super(numFeatures, opts, 2);
  }
}
export class BatchNorm2d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormLayerOptions = {}) {
    checkOptions(opts, 'BatchNorm2d options');
    super(numFeatures, opts, 4);
  }
}

/** Layer normalisation over the trailing `normalizedShape` dims. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
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
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, readonly opts: { init?: Initializer; seed?: number } = {}) {
    checkOptions(opts, 'Embedding options');
    super();
    positiveInt(numEmbeddings, 'Embedding numEmbeddings');
    positiveInt(embeddingDim, 'Embedding embeddingDim');
    this.registerParameter('weight', initialize(opts.init ?? { normal: [0, 1] }, [numEmbeddings, embeddingDim], numEmbeddings, embeddingDim, opts.seed));
  }
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
export class ReLU extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).relu(); }
}
export class LeakyReLU extends Activation {
  constructor(readonly alpha = 0.01) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).leakyRelu(this.alpha); }
  override getConfig() { return { alpha: this.alpha }; }
}
export class ELU extends Activation {
  constructor(readonly alpha = 1) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).elu(this.alpha); }
  override getConfig() { return { alpha: this.alpha }; }
}
export class Sigmoid extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).sigmoid(); }
}
export class Tanh extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).tanh(); }
}
export class GELU extends Activation {
  constructor(readonly approximate = false) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).gelu(this.approximate); }
  override getConfig() { return { approximate: this.approximate }; }
}
/** x·sigmoid(x), also known as Swish. */
export class SiLU extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).silu(); }
}
export const Swish = SiLU;
export class Softplus extends Activation {
  forward(x: Tensor) { return tensorArg(x, this.className).softplus(); }
}
export class Softmax extends Activation {
  constructor(readonly axis = -1) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).softmax(this.axis); }
  override getConfig() { return { axis: this.axis }; }
}
export class LogSoftmax extends Activation {
  constructor(readonly axis = -1) { super(); }
  forward(x: Tensor) { return tensorArg(x, this.className).logSoftmax(this.axis); }
  override getConfig() { return { axis: this.axis }; }
}

// ------------------------------------------------------------------------------------- Sequential

/** Runs its layers in order; submodules are named "0", "1", ... (as in PyTorch). */
export class Sequential extends Module {
  constructor(...layers: Module[]) {
    super();
    layers.forEach((l, i) => this.registerModule(String(i), l));
  }
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
    let h = x;
    for (const layer of this.children()) {
      const next = layer.forward(h);
      if (free && h !== x && next !== h && !h.requiresGrad) h.dispose();
      h = next;
    }
    return h;
  }
  override getConfig() {
    return { layers: this.children().map((l) => l.toConfig()) };
  }
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
