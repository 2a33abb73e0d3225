/**
 * Binary weights (BinaryConnect, Courbariaux et al. 2015, with XNOR-Net's per-channel scaling,
 * Rastegari et al. 2016): a layer keeps real-valued latent weights for training and computes with
 * `α_c · sign(w)` (α_c = mean |w| of output channel c; `sign(0) = +1`). The straight-through
 * gradient passes `g · 1[|w| <= 1]` to the latent weights; `BinaryWeightClip` keeps them in
 * [-1, 1] after every step.
 *
 * `BinaryModel.fromModule(model)` exports inference with bit-packed weights (1 bit per weight, 32x
 * smaller than float32) for the binary layers; first/last layers that were kept in full precision
 * stay float32 (the usual practice, reported honestly by `weightBytes()`).
 */
import { ArgumentError, FormatError, ShapeError } from '../errors.js';
import { noGrad } from '../autograd.js';
import { keep, tidy } from '../memory.js';
import { concat } from '../ops.js';
import { call } from '../runtime.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { checkOptions, describe } from '../args.js';
import { assertModule, Module, moduleFromConfig, registerModule } from '../nn/module.js';
import * as nn from '../nn/layers.js';
import * as F from '../nn/functional.js';
import { Callback, type Logs } from '../train/callbacks.js';
import { decodeTensor, encodeSafetensors, parseSafetensorsHeader, type SafetensorsEntry } from '../io/safetensors.js';
import { parseJson } from '../io/json.js';
import type { DType } from '../tensor.js';
import * as E from './engine.js';
import {
  checkGraphArg, checkGraphTensors, checkSerialGraph, checkTensorRecord, disposeGraph, inputsOf, layerWeightShape, predictInBatches, serialLayer, traceModel,
  type GNode, type SerialConv, type SerialGraph, type SerialNode,
} from './graph.js';

/** A Linear layer computing with binarized weights `α · sign(w)` (latent float weights train). */
export class BinaryLinear extends nn.Linear {
  override forward(x: Tensor): Tensor {
    const wb = E.binarize(this.weight, 0);
    try {
      return F.linear(x, wb, this.bias);
    } finally {
      wb.dispose();
    }
  }
}

/** A Conv2d computing with binarized weights `α · sign(w)` per output channel. */
export class BinaryConv2d extends nn.Conv2d {
  override forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new ShapeError(`BinaryConv2d expects NHWC input with ${this.inChannels} channels, got shape [${x.shape.join(', ')}]`);
    }
    const wb = E.binarize(this.weight, 3);
    try {
      const c = this.getConfig() as F.Conv2dOptions;
      return F.conv2d(x, wb, this.bias, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups });
    } finally {
      wb.dispose();
    }
  }
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('BinaryLinear', (c: Cfg) => new BinaryLinear(c.inFeatures, c.outFeatures, c));
registerModule('BinaryConv2d', (c: Cfg) => new BinaryConv2d(c.inChannels, c.outChannels, c.kernelSize, c));

/** Clamps every binary layer's latent weights into [-1, 1] (in place). */
export function clipLatentWeights(model: Module): void {
  assertModule(model, 'clipLatentWeights');
  for (const [, m] of model.namedModules()) {
    if (m instanceof BinaryLinear || m instanceof BinaryConv2d) call((e) => e.tensor_clamp_(m.weight.handle, -1, 1));
  }
}

/** `fit` callback: clips the latent weights after every batch (BinaryConnect). */
export class BinaryWeightClip extends Callback {
  override onBatchEnd(_b: number, _l: Logs): void {
    clipLatentWeights(this.ctx.model);
  }
}

/**
 * A copy of a Sequential model whose Linear/Conv2d layers (except the first and last, unless
 * asked) compute with binary weights, starting from the original weights.
 */
export function binarizeModel(model: Module, o: { keepFirst?: boolean; keepLast?: boolean } = {}): nn.Sequential {
  if (!(model instanceof nn.Sequential)) throw new ArgumentError(`binarizeModel works on a Sequential model, got ${describe(model)}`);
  o = checkOptions(o, 'binarizeModel options');
  const layers = model.layers;
  const idx = layers.map((l, i) => (l instanceof nn.Linear || l instanceof nn.Conv2d ? i : -1)).filter((i) => i >= 0);
  const skip = new Set<number>();
  if (o.keepFirst ?? true) skip.add(idx[0]);
  if (o.keepLast ?? true) skip.add(idx[idx.length - 1]);
  const out = layers.map((l, i) => {
    const conf = l.toConfig();
    const binary = (l instanceof nn.Linear || l instanceof nn.Conv2d) && !skip.has(i);
    const c = moduleFromConfig(binary ? { className: l instanceof nn.Linear ? 'BinaryLinear' : 'BinaryConv2d', config: conf.config } : conf);
    c.loadStateDict(l.stateDict());
    return c;
  });
  const seq = new nn.Sequential(...out);
  clipLatentWeights(seq);
  return seq;
}

// ------------------------------------------------------------------------------------ inference


type BinaryGraphJson = SerialGraph;

/** Checks a binary model's graph JSON and that it fits the file's tensors (none decoded yet). */
function checkBinaryGraph(text: string, entries: Record<string, SafetensorsEntry>): BinaryGraphJson {
  const src = 'binary model graph';
  const g = checkSerialGraph(parseJson(text, src, { maxDepth: 8 }), src, {});
  const want: [string, DType, number[]][] = [];
  for (const n of g.nodes) {
    if (n.op !== 'linear' && n.op !== 'conv') continue;
    const w = layerWeightShape(g, n);
    const cout = w[w.length === 2 ? 0 : 3];
    if (n.binary) {
      const groups = n.op === 'conv' ? n.groups : 1;
      const k = n.op === 'linear' ? w[1] : w[0] * w[1] * w[2];
      // Bits are packed per group in panels of 8 output channels (engine `pack_binary`).
      want.push([`${n.name}.bits`, 'int8', [groups, Math.ceil(cout / groups / 8), k]], [`${n.name}.alpha`, 'float32', [cout]]);
    } else {
      want.push([`${n.name}.weight`, 'float32', w]);
    }
    if (n.hasBias) want.push([`${n.name}.bias`, 'float32', [cout]]);
  }
  checkGraphTensors(entries, want, 'binary model');
  return g;
}

const FORMAT = 'edgegrad-binary';

/** Inference with bit-packed binary layers (float32 activations). */
export class BinaryModel {
  /** The binary layer graph, as stored in the model file. */
  readonly graph: BinaryGraphJson;
  readonly #t: Record<string, Tensor>;
  #disposed = false;

  constructor(graph: BinaryGraphJson, tensors: Record<string, Tensor>) {
    checkGraphArg(graph, 'BinaryModel');
    checkTensorRecord(tensors, 'BinaryModel');
    this.graph = graph;
    this.#t = tensors;
    for (const n of graph.nodes) {
      if (n.op !== 'linear' && n.op !== 'conv') continue;
      const need = n.binary ? ['bits', 'alpha'] : ['weight'];
      if (n.hasBias) need.push('bias');
      for (const k of need) if (!tensors[`${n.name}.${k}`]) throw new FormatError(`binary model: tensor '${n.name}.${k}' is missing`);
    }
    for (const t of Object.values(tensors)) keep(t);
  }

  /** Traces `model` (BatchNorm folded into the layer before it) and packs its binary layers' weights. */
  static fromModule(model: Module, o: { inputShape: number[] }): BinaryModel {
    assertModule(model, 'BinaryModel.fromModule');
    if (o === null || typeof o !== 'object') throw new ArgumentError(`BinaryModel.fromModule needs options { inputShape }, got ${describe(o)}`);
    const wasTraining = model.training;
    model.eval();
    const g = traceModel(model, o.inputShape);
    const tensors: Record<string, Tensor> = {};
    try {
      const nodes: SerialNode[] = g.nodes.map((n) => {
        if (n.op !== 'linear' && n.op !== 'conv') return { ...n } as SerialNode;
        if (n.binary) {
          // A folded BatchNorm scaled the latent weights per channel: sign and mean |w| follow.
          const [bits, alpha] = E.packBinary(n.weight, n.op === 'linear' ? 0 : n.groups);
          tensors[`${n.name}.bits`] = bits;
          tensors[`${n.name}.alpha`] = alpha;
        } else {
          tensors[`${n.name}.weight`] = noGrad(() => n.weight.clone());
        }
        if (n.bias) tensors[`${n.name}.bias`] = noGrad(() => n.bias!.clone());
        return serialLayer(n);
      });
      return new BinaryModel({ version: 1, shapes: g.shapes, output: g.output, nodes }, tensors);
    } catch (e) {
      for (const t of Object.values(tensors)) t.dispose();
      throw e;
    } finally {
      disposeGraph(g);
      model.train(wasTraining);
    }
  }

  /** Runs the model on float32 `x` (NHWC images or `[N, features]`); throws ArgumentError after dispose. */
  forward(x: Tensor): Tensor {
    if (this.#disposed) throw new ArgumentError('this BinaryModel was disposed');
    assertTensor(x, 'BinaryModel.forward needs a Tensor');
    const want = this.graph.shapes[0];
    if (x.rank !== want.length + 1 || x.shape.slice(1).join() !== want.join()) {
      throw new ShapeError(`this binary model takes inputs [N, ${want.join(', ')}], got [${x.shape.join(', ')}]`);
    }
    return tidy(() => {
      const vals: Tensor[] = [x];
      for (const n of this.graph.nodes) vals[n.out] = this.#run(n, vals);
      const y = vals[this.graph.output];
      return y === x ? x.clone() : y;
    });
  }

  #run(n: SerialNode, vals: Tensor[]): Tensor {
    const a = vals[inputsOf(n as GNode)[0]];
    const t = (k: string) => this.#t[`${(n as { name: string }).name}.${k}`];
    switch (n.op) {
      case 'linear':
      case 'conv': {
        const bias = n.hasBias ? t('bias') : null;
        let z: Tensor;
        if (n.binary) {
          z = n.op === 'linear' ? E.binaryLinear(a, t('bits'), t('alpha'), bias)
            : E.binaryConv2d(a, t('bits'), t('alpha'), bias, { kernel: kernelOf(this.graph, n), stride: n.stride, padding: n.padding, dilation: n.dilation, groups: n.groups });
        } else {
          z = n.op === 'linear' ? F.linear(a, t('weight'), bias)
            : F.conv2d(a, t('weight'), bias, { stride: n.stride, padding: n.padding, dilation: n.dilation, groups: n.groups });
        }
        return n.relu ? z.relu() : z;
      }
      case 'maxpool':
        return F.maxPool2d(a, n.kernel, { stride: n.stride, padding: n.padding });
      case 'avgpool':
        return F.avgPool2d(a, n.kernel, { stride: n.stride, padding: n.padding, countIncludePad: n.countIncludePad });
      case 'gap':
        return a.mean([1, 2]);
      case 'flatten':
        return a.reshape([a.shape[0], -1]);
      case 'relu':
        return a.relu();
      case 'add': {
        const z = a.add(vals[n.ins[1]]);
        return n.relu ? z.relu() : z;
      }
      case 'concat':
        return concat(n.ins.map((v) => vals[v]), -1);
    }
  }

  /** `forward` over `x` in batches of `batchSize` rows, concatenated. */
  predict(x: Tensor, o: { batchSize?: number } = {}): Tensor {
    return predictInBatches((b) => this.forward(b), x, checkOptions(o, 'predict options').batchSize);
  }

  /**
   * Weight storage: `binary` (packed bits of the binary layers), `binaryAsFloat32` (the same
   * weights as float32), `float` (full-precision layers' weights), `other` (α, biases).
   */
  weightBytes(): {
    /** Packed sign bits of the binary layers. */
    binary: number;
    /** The same binary weights stored as float32. */
    binaryAsFloat32: number;
    /** Weights of the full-precision layers. */
    float: number;
    /** α scales and biases. */
    other: number;
  } {
    let binary = 0;
    let asF32 = 0;
    let float = 0;
    let other = 0;
    for (const n of this.graph.nodes) {
      if (n.op !== 'linear' && n.op !== 'conv') continue;
      const t = (k: string) => this.#t[`${n.name}.${k}`];
      if (n.binary) {
        binary += t('bits').size;
        // k per group times every output channel.
        asF32 += 4 * t('bits').shape[2] * t('alpha').size;
        other += 4 * t('alpha').size;
      } else float += 4 * t('weight').size;
      if (n.hasBias) other += 4 * t('bias').size;
    }
    return { binary, binaryAsFloat32: asF32, float, other };
  }

  /** Weight elements (binary layers count one per latent weight) plus biases. */
  numParameters(): number {
    const w = this.weightBytes();
    let biases = 0;
    for (const n of this.graph.nodes) if ((n.op === 'linear' || n.op === 'conv') && n.hasBias) biases += this.#t[`${n.name}.bias`].size;
    return (w.binaryAsFloat32 + w.float) / 4 + biases;
  }

  /** The model as one safetensors file (graph in the metadata); {@link BinaryModel.deserialize} reads it back. */
  serialize(): Uint8Array {
    return encodeSafetensors(this.#t, { format: FORMAT, graph: JSON.stringify(this.graph) });
  }

  /** Rebuilds a model from `serialize()`'s bytes; FormatError when they are not one. */
  static deserialize(bytes: Uint8Array | ArrayBuffer): BinaryModel {
    const buf = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
    // Header, graph and tensor list are checked before any tensor exists.
    const parsed = parseSafetensorsHeader(buf);
    const { metadata } = parsed;
    if (metadata.format !== FORMAT) throw new FormatError(`not an edgegrad binary model (format ${JSON.stringify(String(metadata.format).slice(0, 40))}, expected '${FORMAT}')`);
    if (typeof metadata.graph !== 'string') throw new FormatError('binary model: the file has no graph metadata');
    const graph = checkBinaryGraph(metadata.graph, parsed.entries);
    const tensors: Record<string, Tensor> = Object.create(null);
    try {
      for (const name of Object.keys(parsed.entries)) tensors[name] = decodeTensor(buf, parsed, name);
      return new BinaryModel(graph, tensors);
    } catch (e) {
      for (const t of Object.values(tensors)) t.dispose();
      throw e;
    }
  }

  /** Size in bytes of {@link BinaryModel.serialize}'s output. */
  byteSize(): number {
    return this.serialize().length;
  }

  /** Frees the packed weights; idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of Object.values(this.#t)) t.dispose();
  }
}

/** `[kh, kw, cin / groups]` of a conv node. */
function kernelOf(g: BinaryGraphJson, n: SerialConv): [number, number, number] {
  return [n.kernel[0], n.kernel[1], g.shapes[n.in][2] / n.groups];
}
