/**
 * CNN building blocks and small model constructors (NHWC):
 *
 * - `ConvBNReLU` (torchvision's `BasicConv2d`: conv without bias, BatchNorm, ReLU),
 * - `VGGBlock` (n × [3x3 conv, BN, ReLU], then 2x2 max-pool) and `vgg()`,
 * - ResNet's `BasicBlock` and `Bottleneck` with identity or projection (`downsample`: 1x1 conv +
 *   BN) shortcuts, and `resnet()` (depth 10/18/34/50/101/152 or explicit stage sizes, any width),
 * - `InceptionModule` (parallel 1x1, 3x3, 5x5 and pool branches concatenated on channels) and
 *   `inception()`.
 *
 * Parameter names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`,
 * `fc`...), so ResNet weights exported from PyTorch load through `nn.interop`. Every model has
 * `features(x)` (pooled backbone features `[N, numFeatures]`), a head (`fc`, or `classifier` for
 * VGG) and `replaceHead(numClasses)`; every block and model serialises through its config.
 */
import { checkSize, describe, MAX_ELEMENTS, MAX_LAYERS, checkOptions } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { concat } from '../ops.js';
import { assertTensor, type Tensor } from '../tensor.js';
import * as F from './functional.js';
import { BatchNorm2d, Conv2d, Dropout, Linear, MaxPool2d, ReLU, Sequential, type BatchNormLayerOptions } from './layers.js';
import { Module, moduleFromConfig, registerModule, type ModuleConfig } from './module.js';

function posInt(v: unknown, what: string, max = MAX_ELEMENTS): number {
  checkSize(v, what, 1);
  if ((v as number) > max) throw new ArgumentError(`${what} must be at most ${max}, got ${v}`);
  return v as number;
}
function sub(seed: number | undefined, k: number): number | undefined {
  return seed === undefined ? undefined : seed * 1009 + k;
}
function checkNHWC(x: Tensor, c: number, who: string): void {
  if (x.rank !== 4 || x.shape[3] !== c) throw new ShapeError(`${who} expects NHWC input with ${c} channels, got [${x.shape.join(', ')}]`);
}

/** Options of `ConvBNReLU`. */
export interface ConvBNOptions {
  /** Convolution stride (default 1). */
  stride?: number;
  /** Convolution padding (default `'same'`). */
  padding?: F.Padding;
  /** Apply ReLU after the BatchNorm (default true). */
  relu?: boolean;
  /** Options of the BatchNorm2d (momentum, eps, ...). */
  bn?: BatchNormLayerOptions;
  /** Seed for the conv's initial weights (default: the global stream). */
  seed?: number;
}

/** Conv (no bias, He init) → BatchNorm → ReLU; submodules `conv`, `bn`. */
export class ConvBNReLU extends Module {
  /**
   * @param inChannels - Input channels (NHWC's C).
   * @param outChannels - Output channels.
   * @param kernelSize - Square kernel size.
   * @param opts - Stride, padding, ReLU on/off, BatchNorm options, seed.
   */
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, readonly opts: ConvBNOptions = {}) {
    checkOptions(opts, 'ConvBNReLU options');
    super();
    this.registerModule('conv', new Conv2d(inChannels, outChannels, kernelSize, {
      stride: opts.stride ?? 1, padding: opts.padding ?? 'same', bias: false, weightInit: 'heNormal', seed: opts.seed,
    }));
    this.registerModule('bn', new BatchNorm2d(outChannels, opts.bn));
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    const c = this.getModule('conv').forward(x);
    const b = this.getModule('bn').forward(c);
    c.dispose();
    if (this.opts.relu === false) return b;
    const r = b.relu();
    b.dispose();
    return r;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { inChannels: this.inChannels, outChannels: this.outChannels, kernelSize: this.kernelSize, ...rest };
  }
}

// ------------------------------------------------------------------------------------- VGG

/** Options of `VGGBlock`. */
export interface VGGBlockOptions {
  /** BatchNorm after each conv (default true; false gives conv with bias → ReLU). */
  batchNorm?: boolean;
  /** 2x2 max-pool at the end (default true). */
  pool?: boolean;
  /** Seed for the initial weights (default: the global stream). */
  seed?: number;
}

/** `numConvs` × (3x3 'same' conv → BN → ReLU), then a 2x2 max-pool. Submodules `0`, `1`, ... */
export class VGGBlock extends Sequential {
  readonly #args: { inChannels: number; outChannels: number; numConvs: number; opts: VGGBlockOptions };
  constructor(inChannels: number, outChannels: number, numConvs = 2, opts: VGGBlockOptions = {}) {
    checkOptions(opts, 'VGGBlock options');
    posInt(inChannels, 'VGGBlock inChannels');
    posInt(outChannels, 'VGGBlock outChannels');
    posInt(numConvs, 'VGGBlock numConvs', MAX_LAYERS);
    const layers: Module[] = [];
    try {
      for (let i = 0; i < numConvs; i++) {
        const cin = i === 0 ? inChannels : outChannels;
        if (opts.batchNorm ?? true) layers.push(new ConvBNReLU(cin, outChannels, 3, { seed: sub(opts.seed, i) }));
        else layers.push(new Sequential(new Conv2d(cin, outChannels, 3, { padding: 'same', weightInit: 'heNormal', seed: sub(opts.seed, i) }), new ReLU()));
      }
    } catch (e) {
      for (const l of layers) l.dispose(); // the layers built before the failure
      throw e;
    }
    if (opts.pool ?? true) layers.push(new MaxPool2d(2));
    super(...layers);
    this.#args = { inChannels, outChannels, numConvs, opts };
  }
  // Sequential's config lists its layers; a VGGBlock is rebuilt from its arguments instead.
  override getConfig(): { layers: never[] } & Record<string, unknown> {
    const { seed: _s, ...rest } = this.#args.opts;
    return { inChannels: this.#args.inChannels, outChannels: this.#args.outChannels, numConvs: this.#args.numConvs, ...rest } as unknown as { layers: never[] };
  }
}

/**
 * A backbone whose `features(x)` are pooled `[N, numFeatures]`, then a head module (`headName`)
 * that `replaceHead` swaps; a custom head is saved in the config, a Linear as `numClasses`.
 */
abstract class HeadedNetwork extends Module {
  abstract readonly opts: { seed?: number };
  abstract readonly headName: string;
  abstract get numFeatures(): number;
  abstract features(x: Tensor): Tensor;
  /** What runs between the features and the head (identity unless overridden). */
  protected preHead(f: Tensor): Tensor {
    return f;
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    const f = this.features(x);
    const h = this.preHead(f);
    if (h !== f) f.dispose();
    const y = this.getModule(this.headName).forward(h);
    h.dispose();
    return y;
  }
  /** Replaces the head (the old one is disposed) with a fresh Linear (or the given module). */
  replaceHead(head: number | Module, seed?: number): Module {
    return this.registerModule(this.headName, typeof head === 'number' ? new Linear(this.numFeatures, head, { seed }) : head);
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    const head = this.getModule(this.headName);
    return head instanceof Linear ? { ...rest, numClasses: head.outFeatures, head: null } : { ...rest, head: head.toConfig() };
  }
}

/** Options of `VGG` / `vgg()`. */
export interface VGGOptions {
  /** A custom head (its config), instead of a Linear to `numClasses` (set by `replaceHead(module)` and saved with the model). */
  head?: ModuleConfig | null;
  /** Channels of the NHWC input (default 3). */
  inChannels?: number;
  /** Outputs of the Linear head (default 10). */
  numClasses?: number;
  /** `[numConvs, channels]` per stage (each stage halves the resolution). Default `[[1, 32], [2, 64]]`. */
  stages?: [number, number][];
  /** BatchNorm after each conv (default true). */
  batchNorm?: boolean;
  /** Dropout before the classifier. */
  dropout?: number;
  /** Seed for the initial weights and the dropout masks (default: the global stream). */
  seed?: number;
}

/** A VGG-style network: `features` (VGG blocks), global average pooling, `classifier` (Linear). */
export class VGG extends HeadedNetwork {
  /** The options with every default filled in. */
  readonly opts: Required<Omit<VGGOptions, 'seed'>> & { seed?: number };
  constructor(o: VGGOptions = {}) {
    checkOptions(o, 'VGG options');
    super();
    this.opts = { inChannels: 3, numClasses: 10, stages: [[1, 32], [2, 64]], batchNorm: true, dropout: 0, ...o, head: o.head ?? null };
    const { inChannels, stages, batchNorm, numClasses, seed } = this.opts;
    if (!Array.isArray(stages) || stages.length === 0) throw new ArgumentError('vgg needs at least one stage [numConvs, channels]');
    for (const s of stages) if (!Array.isArray(s) || s.length !== 2) throw new ArgumentError(`vgg stages are [numConvs, channels] pairs, got ${describe(s)}`);
    let c = inChannels;
    this.buildOrFree((blocks) => {
      stages.forEach(([n, ch], i) => {
        blocks.push(new VGGBlock(c, ch, n, { batchNorm, seed: sub(seed, i) }));
        c = ch;
      });
      this.registerModule('features', new Sequential(...blocks));
      if (this.opts.dropout > 0) this.registerModule('dropout', new Dropout(this.opts.dropout, sub(seed, 99)));
      this.registerModule('classifier', this.opts.head ? moduleFromConfig(this.opts.head) : new Linear(c, numClasses, { seed: sub(seed, 100) }));
    });
  }
  /** Size of `features(x)`: the channels of the last stage. */
  get numFeatures(): number {
    return this.opts.stages[this.opts.stages.length - 1][1];
  }
  /** Name of the head submodule. */
  readonly headName = 'classifier';
  /** Pooled backbone features `[N, numFeatures]`. */
  features(x: Tensor): Tensor {
    checkNHWC(x, this.opts.inChannels, 'VGG');
    const f = this.getModule('features').forward(x);
    const p = F.globalAvgPool2d(f);
    f.dispose();
    return p;
  }
  protected override preHead(f: Tensor): Tensor {
    return this.opts.dropout > 0 ? this.getModule('dropout').forward(f) : f;
  }
}

/** Builds a `VGG` (same as `new VGG(o)`). */
export function vgg(o: VGGOptions = {}): VGG {
  return new VGG(o);
}

// ------------------------------------------------------------------------------------- ResNet

/** Options of `BasicBlock` and `Bottleneck`. */
export interface ResidualBlockOptions {
  /** Stride of the spatial conv (and of the projection shortcut); default 1. */
  stride?: number;
  /** Projection shortcut (1x1 conv + BN). Default: when the stride or the channel count changes. */
  projection?: boolean;
  /** Start the last BatchNorm's scale at 0, so the block begins as the identity (Goyal et al.). */
  zeroInitResidual?: boolean;
  /** Seed for the initial weights (default: the global stream). */
  seed?: number;
}

function shortcut(inCh: number, outCh: number, stride: number, o: ResidualBlockOptions): Sequential | null {
  const proj = o.projection ?? (stride !== 1 || inCh !== outCh);
  if (!proj) {
    if (inCh !== outCh || stride !== 1) throw new ArgumentError(`an identity shortcut needs stride 1 and equal channels (got ${inCh} → ${outCh}, stride ${stride})`);
    return null;
  }
  return new Sequential(
    new Conv2d(inCh, outCh, 1, { stride, bias: false, weightInit: 'heNormal', seed: sub(o.seed, 50) }),
    new BatchNorm2d(outCh),
  );
}

function zeroScale(bn: Module): void {
  const w = bn.stateDict().weight;
  const z = w.mul(0);
  w.assign(z);
  z.dispose();
}

/** Shared forward of residual blocks: `relu(body(x) + shortcut(x))`. */
abstract class Residual extends Module {
  protected abstract body(x: Tensor): Tensor;
  abstract readonly inChannels: number;
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    checkNHWC(x, this.inChannels, this.className);
    const out = this.body(x);
    const hasDown = this.namedChildren().some(([n]) => n === 'downsample');
    const id = hasDown ? this.getModule('downsample').forward(x) : x;
    const s = out.add(id);
    out.dispose();
    if (id !== x) id.dispose();
    const r = s.relu();
    s.dispose();
    return r;
  }
}

/** ResNet's basic block: 3x3 conv (stride) → BN → ReLU → 3x3 conv → BN, plus the shortcut, ReLU. */
export class BasicBlock extends Residual {
  /** Output channels per plane (torchvision's `expansion`). */
  static readonly expansion = 1;
  /**
   * @param inChannels - Input channels (NHWC's C).
   * @param planes - Channels of the convs; the output has `planes` channels.
   * @param opts - Stride, shortcut, zero-init, seed.
   */
  constructor(readonly inChannels: number, readonly planes: number, readonly opts: ResidualBlockOptions = {}) {
    checkOptions(opts, 'BasicBlock options');
    super();
    const stride = opts.stride ?? 1;
    const c = (i: number, o: number, s: number, k: number) => new Conv2d(i, o, 3, { stride: s, padding: 1, bias: false, weightInit: 'heNormal', seed: sub(opts.seed, k) });
    this.registerModule('conv1', c(inChannels, planes, stride, 1));
    this.registerModule('bn1', new BatchNorm2d(planes));
    this.registerModule('conv2', c(planes, planes, 1, 2));
    this.registerModule('bn2', new BatchNorm2d(planes));
    const d = shortcut(inChannels, planes, stride, opts);
    if (d) this.registerModule('downsample', d);
    if (opts.zeroInitResidual) zeroScale(this.getModule('bn2'));
  }
  /** Output channels (`planes`). */
  get outChannels(): number {
    return this.planes;
  }
  /** The residual branch, without the shortcut and the final ReLU. */
  protected body(x: Tensor): Tensor {
    const a = this.getModule('conv1').forward(x);
    const b = this.getModule('bn1').forward(a);
    const r = b.relu();
    const c = this.getModule('conv2').forward(r);
    const d = this.getModule('bn2').forward(c);
    for (const t of [a, b, r, c]) t.dispose();
    return d;
  }
  override getConfig() {
    const { seed: _s, zeroInitResidual: _z, ...rest } = this.opts;
    return { inChannels: this.inChannels, planes: this.planes, ...rest };
  }
}

/** ResNet's bottleneck: 1x1 (planes) → 3x3 (stride) → 1x1 (4·planes), each with BN, plus the shortcut. */
export class Bottleneck extends Residual {
  /** Output channels per plane (torchvision's `expansion`). */
  static readonly expansion = 4;
  /**
   * @param inChannels - Input channels (NHWC's C).
   * @param planes - Channels of the inner convs; the output has `4 · planes` channels.
   * @param opts - Stride, shortcut, zero-init, seed.
   */
  constructor(readonly inChannels: number, readonly planes: number, readonly opts: ResidualBlockOptions = {}) {
    checkOptions(opts, 'Bottleneck options');
    checkSize(planes, 'Bottleneck planes', 1);
    super();
    const stride = opts.stride ?? 1;
    const out = planes * Bottleneck.expansion;
    const c = (i: number, o: number, k: number, s: number, n: number) => new Conv2d(i, o, k, { stride: s, padding: k === 3 ? 1 : 0, bias: false, weightInit: 'heNormal', seed: sub(opts.seed, n) });
    this.registerModule('conv1', c(inChannels, planes, 1, 1, 1));
    this.registerModule('bn1', new BatchNorm2d(planes));
    this.registerModule('conv2', c(planes, planes, 3, stride, 2));
    this.registerModule('bn2', new BatchNorm2d(planes));
    this.registerModule('conv3', c(planes, out, 1, 1, 3));
    this.registerModule('bn3', new BatchNorm2d(out));
    const d = shortcut(inChannels, out, stride, opts);
    if (d) this.registerModule('downsample', d);
    if (opts.zeroInitResidual) zeroScale(this.getModule('bn3'));
  }
  /** Output channels (`4 · planes`). */
  get outChannels(): number {
    return this.planes * Bottleneck.expansion;
  }
  /** The residual branch, without the shortcut and the final ReLU. */
  protected body(x: Tensor): Tensor {
    let h = x;
    for (const [conv, bn, relu] of [['conv1', 'bn1', true], ['conv2', 'bn2', true], ['conv3', 'bn3', false]] as const) {
      const a = this.getModule(conv).forward(h);
      const b = this.getModule(bn).forward(a);
      a.dispose();
      if (h !== x) h.dispose();
      if (relu) {
        h = b.relu();
        b.dispose();
      } else h = b;
    }
    return h;
  }
  override getConfig() {
    const { seed: _s, zeroInitResidual: _z, ...rest } = this.opts;
    return { inChannels: this.inChannels, planes: this.planes, ...rest };
  }
}

const DEPTHS: Record<number, { block: 'basic' | 'bottleneck'; layers: number[] }> = {
  10: { block: 'basic', layers: [1, 1, 1, 1] },
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
};

/** Options of `ResNet` / `resnet()`. */
export interface ResNetOptions {
  /** A custom head (its config), instead of a Linear to `numClasses` (set by `replaceHead(module)` and saved with the model). */
  head?: ModuleConfig | null;
  /** 10, 18, 34 (basic blocks), 50, 101, 152 (bottlenecks). Default 18. Ignored when `layers` is given. */
  depth?: number;
  /** Block type (default: the one of `depth`; `'basic'` when `layers` is given). */
  block?: 'basic' | 'bottleneck';
  /** Blocks per stage; stage i has `width · 2^i` planes and (after the first) stride 2. */
  layers?: number[];
  /** Planes of the first stage (torchvision: 64). Default 64. */
  width?: number;
  /** Channels of the NHWC input (default 3). */
  inChannels?: number;
  /** Outputs of the Linear head (default 1000, as torchvision). */
  numClasses?: number;
  /**
   * `'imagenet'`: 7x7 stride-2 conv + 3x3 stride-2 max-pool (torchvision); `'small'`: one 3x3
   * stride-1 conv (for 8x8 to 32x32 images). Default `'small'`.
   */
  stem?: 'imagenet' | 'small';
  /** Start each block's last BatchNorm scale at 0 (torchvision's `zero_init_residual`; default false). */
  zeroInitResidual?: boolean;
  /** Seed for the initial weights (default: the global stream). */
  seed?: number;
}

/** A ResNet (torchvision's layout and names): stem, `layer1..layerN`, global average pooling, `fc`. */
export class ResNet extends HeadedNetwork {
  /** The options with every default filled in (`depth` resolved to `block` and `layers`). */
  readonly opts: Required<Omit<ResNetOptions, 'seed' | 'depth'>> & { seed?: number };
  /** Size of `features(x)`: the channels of the last stage. */
  readonly numFeatures: number;
  /** Name of the head submodule. */
  readonly headName = 'fc';
  constructor(o: ResNetOptions = {}) {
    checkOptions(o, 'ResNet options');
    super();
    const d = o.layers ? null : DEPTHS[o.depth ?? 18];
    if (!o.layers && !d) throw new ArgumentError(`resnet depth must be one of ${Object.keys(DEPTHS).join(', ')} (or give layers), got ${o.depth}`);
    const { depth: _d, ...rest } = o;
    this.opts = {
      block: d?.block ?? 'basic', layers: d?.layers ?? [], width: 64, inChannels: 3, numClasses: 1000, stem: 'small', zeroInitResidual: false, ...rest,
      head: rest.head ?? null,
    };
    const { block, layers, width, inChannels, stem, seed } = this.opts;
    if (!Array.isArray(layers)) throw new ArgumentError(`resnet layers must be an array of block counts, got ${describe(layers)}`);
    layers.forEach((n, i) => posInt(n, `resnet layers[${i}]`, MAX_LAYERS));
    posInt(width, 'resnet width');
    const B = block === 'bottleneck' ? Bottleneck : BasicBlock;
    if (stem === 'imagenet') {
      this.registerModule('conv1', new Conv2d(inChannels, width, 7, { stride: 2, padding: 3, bias: false, weightInit: 'heNormal', seed: sub(seed, 1) }));
    } else {
      this.registerModule('conv1', new Conv2d(inChannels, width, 3, { padding: 1, bias: false, weightInit: 'heNormal', seed: sub(seed, 1) }));
    }
    this.registerModule('bn1', new BatchNorm2d(width));
    if (stem === 'imagenet') this.registerModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    let c = width;
    layers.forEach((n, i) => {
      const planes = width * 2 ** i;
      const blocks: Module[] = [];
      for (let j = 0; j < n; j++) {
        const b = new B(c, planes, { stride: j === 0 && i > 0 ? 2 : 1, zeroInitResidual: this.opts.zeroInitResidual, seed: sub(seed, 10 + i * 100 + j) });
        c = b.outChannels;
        blocks.push(b);
      }
      this.registerModule(`layer${i + 1}`, new Sequential(...blocks));
    });
    this.numFeatures = c;
    this.registerModule('fc', this.opts.head ? moduleFromConfig(this.opts.head) : new Linear(c, this.opts.numClasses, { seed: sub(seed, 2) }));
  }
  /** Pooled backbone features `[N, numFeatures]`. */
  features(x: Tensor): Tensor {
    checkNHWC(x, this.opts.inChannels, 'ResNet');
    const a = this.getModule('conv1').forward(x);
    const b = this.getModule('bn1').forward(a);
    let h = b.relu();
    a.dispose();
    b.dispose();
    if (this.opts.stem === 'imagenet') {
      const p = this.getModule('maxpool').forward(h);
      h.dispose();
      h = p;
    }
    for (let i = 0; i < this.opts.layers.length; i++) {
      const y = this.getModule(`layer${i + 1}`).forward(h);
      h.dispose();
      h = y;
    }
    const p = F.globalAvgPool2d(h);
    h.dispose();
    return p;
  }
}

/** Builds a `ResNet` (same as `new ResNet(o)`). */
export function resnet(o: ResNetOptions = {}): ResNet {
  return new ResNet(o);
}

// ------------------------------------------------------------------------------------- Inception

/** Output channels of each branch of an `InceptionModule`. */
export interface InceptionBranches {
  /** 1x1 branch channels. */
  c1: number;
  /** 3x3 branch: 1x1 reduction, then 3x3 channels. */
  c3reduce: number;
  /** 3x3 branch output channels. */
  c3: number;
  /** 5x5 branch: 1x1 reduction, then 5x5 channels. */
  c5reduce: number;
  /** 5x5 branch output channels. */
  c5: number;
  /** Pool branch: 3x3 max-pool (stride 1), then 1x1 channels. */
  pool: number;
}

/**
 * GoogLeNet's Inception module: four parallel branches — 1x1; 1x1 → 3x3; 1x1 → 5x5; 3x3
 * max-pool → 1x1 — each conv with BN and ReLU, concatenated on channels. Submodules `branch1`
 * to `branch4` (torchvision's names).
 */
export class InceptionModule extends Module {
  /** Output channels: `c1 + c3 + c5 + pool`. */
  readonly outChannels: number;
  /**
   * @param inChannels - Input channels (NHWC's C).
   * @param branches - Channels of each branch.
   * @param seed - Seed for the initial weights (default: the global stream).
   */
  constructor(readonly inChannels: number, readonly branches: InceptionBranches, readonly seed?: number) {
    super();
    const b = checkOptions(branches, 'InceptionModule branches');
    for (const k of ['c1', 'c3reduce', 'c3', 'c5reduce', 'c5', 'pool'] as const) posInt(b[k], `InceptionModule ${k}`);
    this.registerModule('branch1', new ConvBNReLU(inChannels, b.c1, 1, { seed: sub(seed, 1) }));
    this.registerModule('branch2', new Sequential(new ConvBNReLU(inChannels, b.c3reduce, 1, { seed: sub(seed, 2) }), new ConvBNReLU(b.c3reduce, b.c3, 3, { seed: sub(seed, 3) })));
    this.registerModule('branch3', new Sequential(new ConvBNReLU(inChannels, b.c5reduce, 1, { seed: sub(seed, 4) }), new ConvBNReLU(b.c5reduce, b.c5, 5, { seed: sub(seed, 5) })));
    this.registerModule('branch4', new Sequential(new MaxPool2d(3, { stride: 1, padding: 'same' }), new ConvBNReLU(inChannels, b.pool, 1, { seed: sub(seed, 6) })));
    this.outChannels = b.c1 + b.c3 + b.c5 + b.pool;
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    checkNHWC(x, this.inChannels, 'InceptionModule');
    const outs = ['branch1', 'branch2', 'branch3', 'branch4'].map((n) => this.getModule(n).forward(x));
    const y = concat(outs, -1);
    for (const o of outs) o.dispose();
    return y;
  }
  override getConfig() {
    return { inChannels: this.inChannels, branches: this.branches };
  }
}

/** Options of `Inception` / `inception()`. */
export interface InceptionOptions {
  /** A custom head (its config), instead of a Linear to `numClasses` (set by `replaceHead(module)` and saved with the model). */
  head?: ModuleConfig | null;
  /** Channels of the NHWC input (default 3). */
  inChannels?: number;
  /** Outputs of the Linear head (default 10). */
  numClasses?: number;
  /** Channel multiplier of the default architecture (default 16). */
  width?: number;
  /** Explicit modules; a `'pool'` entry inserts a 2x2 max-pool. Default: two modules, a pool, one module. */
  modules?: (InceptionBranches | 'pool')[];
  /** Seed for the initial weights (default: the global stream). */
  seed?: number;
}

/** A small GoogLeNet-style network: `stem` (3x3 ConvBNReLU), `blocks` (Inception modules and pools), global pooling, `fc`. */
export class Inception extends HeadedNetwork {
  /** The options with every default filled in. */
  readonly opts: Required<Omit<InceptionOptions, 'seed'>> & { seed?: number };
  /** Size of `features(x)`: the channels of the last Inception module. */
  readonly numFeatures: number;
  /** Name of the head submodule. */
  readonly headName = 'fc';
  constructor(o: InceptionOptions = {}) {
    checkOptions(o, 'Inception options');
    super();
    const w = o.width ?? 16;
    const ch = (f: number) => Math.max(1, Math.round(f * w));
    const m = (k: number): InceptionBranches => ({ c1: ch(k / 4), c3reduce: ch(k / 4), c3: ch(k / 2), c5reduce: ch(k / 8), c5: ch(k / 8), pool: ch(k / 8) });
    this.opts = { inChannels: 3, numClasses: 10, width: w, modules: [m(1), m(2), 'pool', m(2)], ...o, head: o.head ?? null };
    const { inChannels, modules, seed } = this.opts;
    let c = 2 * w;
    this.buildOrFree((blocks) => {
      this.registerModule('stem', new ConvBNReLU(inChannels, 2 * w, 3, { seed: sub(seed, 1) }));
      modules.forEach((spec, i) => {
        if (spec === 'pool') return void blocks.push(new MaxPool2d(2));
        const im = new InceptionModule(c, spec, sub(seed, 10 + i));
        c = im.outChannels;
        blocks.push(im);
      });
      this.registerModule('blocks', new Sequential(...blocks));
      this.registerModule('fc', this.opts.head ? moduleFromConfig(this.opts.head) : new Linear(c, this.opts.numClasses, { seed: sub(seed, 2) }));
    });
    this.numFeatures = c;
  }
  /** Pooled backbone features `[N, numFeatures]`. */
  features(x: Tensor): Tensor {
    checkNHWC(x, this.opts.inChannels, 'Inception');
    const s = this.getModule('stem').forward(x);
    const b = this.getModule('blocks').forward(s);
    s.dispose();
    const p = F.globalAvgPool2d(b);
    b.dispose();
    return p;
  }
}

/** Builds an `Inception` network (same as `new Inception(o)`). */
export function inception(o: InceptionOptions = {}): Inception {
  return new Inception(o);
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('ConvBNReLU', (c: Cfg) => new ConvBNReLU(c.inChannels, c.outChannels, c.kernelSize, c));
registerModule('VGGBlock', (c: Cfg) => new VGGBlock(c.inChannels, c.outChannels, c.numConvs, c));
registerModule('VGG', (c: Cfg) => new VGG(c));
registerModule('BasicBlock', (c: Cfg) => new BasicBlock(c.inChannels, c.planes, c));
registerModule('Bottleneck', (c: Cfg) => new Bottleneck(c.inChannels, c.planes, c));
registerModule('ResNet', (c: Cfg) => new ResNet(c));
registerModule('InceptionModule', (c: Cfg) => new InceptionModule(c.inChannels, c.branches));
registerModule('Inception', (c: Cfg) => new Inception(c));
