/**
 * `exportModel`: an edgegrad module → ONNX bytes (opset 17 to 21, default 17), one node group per
 * layer, named after the module path (`/features.0/Conv`), with the layer's class and path as the
 * node doc string and a value info (shape, symbolic batch) for every layer output.
 *
 * Layout: the graph input keeps edgegrad's layout (images NHWC). Convolution and pooling run in
 * ONNX's NCHW: a Transpose enters NCHW before the first such layer and one leaves it before the
 * first layer that needs NHWC (Flatten, Linear, Softmax over channels…) or at the output, so a run
 * of Conv/BatchNorm/ReLU/Pool layers costs two Transposes, not two per layer. Weights are converted
 * once (HWIO → OIHW; Linear `[out, in]` → Gemm with `transB`; recurrent gates reordered: PyTorch's
 * LSTM i,f,g,o → ONNX i,o,f,c and GRU r,z,n → z,r,h).
 *
 * The graph is the inference graph: Dropout is omitted, BatchNorm uses its running statistics,
 * recurrent layers take no mask input and attention layers only a key padding mask (`keyMask`).
 */
import { ArgumentError } from '../errors.js';
import { checkOptions, checkShape, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { zeros } from '../creation.js';
import { Tensor } from '../tensor.js';
import { Module } from '../nn/module.js';
import * as L from '../nn/layers.js';
import { resolvePadding, type Padding, type Pair } from '../nn/functional.js';
import { GroupNorm } from '../nn/groupnorm.js';
import { Bidirectional, GRU, LSTM, Recurrent, SimpleRNN } from '../nn/recurrent.js';
import { LearnedPositionalEmbedding, MultiHeadAttention, SinusoidalPositionalEncoding } from '../nn/attention.js';
import { ModuleList, TransformerEncoder, TransformerEncoderLayer } from '../nn/transformer.js';
import { encodeModel, IR_VERSION } from './proto.js';
import { finishOutput, GraphBuilder, PRODUCER_VERSION, valueInfo, type Attr, type Val } from './builder.js';
import { exportQuantized } from './export-int8.js';
import { QuantizedModel } from '../compress/quantize.js';
import { OnnxModule } from './graph-module.js';

/** Options of `exportModel`. */
export interface ExportOptions {
  /** The input shape (edgegrad layout, batch first), or a one-element list of it. */
  inputShapes: number[] | number[][];
  /** Element type of the input: float32 (default) or int32 (token ids for an Embedding). */
  inputDType?: 'float32' | 'int32';
  /** ONNX opset of the default domain, 17 (default) to 21. */
  opset?: number;
  /** Graph input and output names (default `input` and `output`). */
  names?: {
    /** The graph input's name (default `input`). */
    input?: string;
    /** The graph output's name (default `output`). */
    output?: string;
    /** The key mask input's name, with `keyMask: true` (default `key_mask`). */
    keyMask?: string;
  };
  /** The model's doc string. */
  docString?: string;
  /** The graph's name (default: the model's class name). */
  graphName?: string;
  /** Mark the batch dimension symbolic (`N`) in the input, output and value infos (default true). */
  dynamicBatch?: boolean;
  /**
   * Add a second graph input `[batch, keys]` (int32, 1 = real token, 0 = padding) given to every
   * attention layer as its `keyMask`, for a model whose forward takes it (MultiHeadAttention,
   * TransformerEncoderLayer, TransformerEncoder). Masked keys get −1e9 before the softmax, so
   * their weights are exactly 0 (default false).
   */
  keyMask?: boolean;
}

/** Host copy of a tensor's values, optionally permuted first. */
function values(t: Tensor, perm?: number[]): Float32Array {
  if (!perm) return t.dataSync() as Float32Array;
  const p = t.permute(perm);
  try {
    return p.dataSync() as Float32Array;
  } finally {
    p.dispose();
  }
}

/** An emitter turns one module applied to `x` into nodes and returns its output value. */
type Emitter = (m: Module, x: Val, g: GraphBuilder, scope: string) => Val;

/** The output shape of `m` on an input of `shape` (one forward on zeros; no tape). */
function probe(m: Module, x: Val, dtype: 'float32' | 'int32' = 'float32'): number[] {
  return noGrad(() => {
    const z = zeros(x.shape, dtype);
    try {
      const y = m.forward(z);
      const s = y.shape.slice();
      if (y !== z) y.dispose();
      return s;
    } finally {
      z.dispose();
    }
  });
}

function leaf(out: string, shape: number[], g: GraphBuilder, nchw = false): Val {
  const v = { name: out, shape, nchw };
  g.info(v);
  return v;
}

function doc(m: Module, scope: string): string {
  return `${m.className} ${scope}`;
}

/** Elementwise activations: layout-preserving, so they stay in NCHW between convolutions. */
function activation(m: Module, x: Val, g: GraphBuilder, scope: string): Val {
  const d = doc(m, scope);
  const cfg = m.getConfig() as Record<string, number | boolean>;
  let y: string;
  if (m instanceof L.ReLU) y = g.op(scope, 'Relu', [x.name], {}, d);
  else if (m instanceof L.LeakyReLU) y = g.op(scope, 'LeakyRelu', [x.name], { alpha: { float: cfg.alpha as number } }, d);
  else if (m instanceof L.ELU) y = g.op(scope, 'Elu', [x.name], { alpha: { float: cfg.alpha as number } }, d);
  else if (m instanceof L.Sigmoid) y = g.op(scope, 'Sigmoid', [x.name], {}, d);
  else if (m instanceof L.Tanh) y = g.op(scope, 'Tanh', [x.name], {}, d);
  else if (m instanceof L.Softplus) y = g.op(scope, 'Softplus', [x.name], {}, d);
  else if (m instanceof L.SiLU) y = g.op(scope, 'Mul', [x.name, g.op(scope, 'Sigmoid', [x.name])], {}, d);
  else if (m instanceof L.GELU) y = gelu(x.name, cfg.approximate === true, g, scope, d);
  else throw new ArgumentError(`no ONNX export for ${m.className}`);
  return leaf(y, x.shape, g, x.nchw);
}

/** GELU: ONNX's Gelu from opset 20; before it, its definition in Erf (or Tanh for the approximation). */
function gelu(x: string, approximate: boolean, g: GraphBuilder, scope: string, d: string): string {
  if (g.opset >= 20) return g.op(scope, 'Gelu', [x], { approximate: approximate ? 'tanh' : 'none' }, d);
  let inner: string;
  if (approximate) {
    const cube = g.op(scope, 'Mul', [g.op(scope, 'Mul', [x, x]), x]);
    const poly = g.op(scope, 'Add', [x, g.op(scope, 'Mul', [cube, g.constant(0.044715)])]);
    inner = g.op(scope, 'Tanh', [g.op(scope, 'Mul', [poly, g.constant(Math.sqrt(2 / Math.PI))])]);
  } else {
    inner = g.op(scope, 'Erf', [g.op(scope, 'Div', [x, g.constant(Math.SQRT2)])]);
  }
  const half = g.op(scope, 'Mul', [x, g.constant(0.5)]);
  return g.op(scope, 'Mul', [half, g.op(scope, 'Add', [inner, g.constant(1)])], {}, d);
}

/** `x · Wᵀ + b` over the last axis: Gemm for 2-D input, MatMul + Add otherwise. */
function linear(weight: Tensor, bias: Tensor | null, x: Val, g: GraphBuilder, scope: string, d: string, relu = false): Val {
  const [out, inF] = weight.shape;
  let y: string;
  if (x.shape.length === 2) {
    const w = g.init(`${scope}.weight`, [out, inF], values(weight));
    const inputs = [x.name, w];
    if (bias) inputs.push(g.init(`${scope}.bias`, [out], values(bias)));
    y = g.op(scope, 'Gemm', inputs, { transB: 1 }, d);
  } else {
    const wt = g.init(`${scope}.weight_t`, [inF, out], values(weight, [1, 0]));
    y = g.op(scope, 'MatMul', [x.name, wt], {}, bias ? undefined : d);
    if (bias) y = g.op(scope, 'Add', [y, g.init(`${scope}.bias`, [out], values(bias))], {}, d);
  }
  if (relu) y = g.op(scope, 'Relu', [y]);
  return leaf(y, [...x.shape.slice(0, -1), out], g);
}

function pads(padding: Padding | undefined, x: Val, k: [number, number], s: [number, number], dil: [number, number] = [1, 1]): number[] {
  const [t, b, l, r] = resolvePadding(padding ?? 'valid', x.shape[1], x.shape[2], k, s, dil);
  return [t, l, b, r];
}
function pair(p: Pair | undefined, dflt: [number, number]): [number, number] {
  return p === undefined ? dflt : typeof p === 'number' ? [p, p] : p;
}

function conv(m: L.Conv2d, x0: Val, g: GraphBuilder, scope: string): Val {
  const c = m.getConfig() as { stride?: Pair; padding?: Padding; dilation?: Pair; groups?: number; activation?: 'relu' | null };
  const x = g.nchw(x0, scope);
  const [kh, kw] = m.kernelSize;
  const stride = pair(c.stride, [1, 1]);
  const dilation = pair(c.dilation, [1, 1]);
  const w = g.init(`${scope}.weight`, [m.outChannels, m.inChannels / (c.groups ?? 1), kh, kw], values(m.weight, [3, 2, 0, 1]));
  const inputs = [x.name, w];
  if (m.bias) inputs.push(g.init(`${scope}.bias`, [m.outChannels], values(m.bias)));
  const attrs = { kernel_shape: [kh, kw], strides: stride, dilations: dilation, pads: pads(c.padding, x, [kh, kw], stride, dilation), group: c.groups ?? 1 };
  let y = g.op(scope, 'Conv', inputs, attrs, doc(m, scope));
  if (c.activation === 'relu') y = g.op(scope, 'Relu', [y]);
  return leaf(y, probe(m, x0), g, true);
}

function pool(m: L.MaxPool2d | L.AvgPool2d, x0: Val, g: GraphBuilder, scope: string): Val {
  const c = m.getConfig() as { kernelSize: Pair; stride?: Pair; padding?: Padding; countIncludePad?: boolean };
  const x = g.nchw(x0, scope);
  const k = pair(c.kernelSize, [1, 1]);
  const s = pair(c.stride, k);
  const attrs: Record<string, Attr> = { kernel_shape: k, strides: s, pads: pads(c.padding, x, k, s) };
  if (m instanceof L.AvgPool2d) attrs.count_include_pad = c.countIncludePad === false ? 0 : 1;
  const y = g.op(scope, m instanceof L.MaxPool2d ? 'MaxPool' : 'AveragePool', [x.name], attrs, doc(m, scope));
  return leaf(y, probe(m, x0), g, true);
}

function batchNorm(m: L.BatchNorm, x0: Val, g: GraphBuilder, scope: string): Val {
  const c = m.getConfig() as { numFeatures: number; eps: number; affine: boolean; trackRunningStats: boolean };
  if (!c.trackRunningStats) throw new ArgumentError(`${scope}: ${m.className} without running statistics normalises with batch statistics at inference, which ONNX's BatchNormalization does not: export needs trackRunningStats`);
  const x = x0.shape.length === 4 ? g.nchw(x0, scope) : x0;
  if (x.shape.length !== 2 && x.shape.length !== 4) throw new ArgumentError(`${scope}: ${m.className} exports for [N, C] and [N, H, W, C] inputs, got rank ${x.shape.length}`);
  const sd = m.stateDict();
  const n = c.numFeatures;
  const scale = c.affine ? values(sd.weight) : new Float32Array(n).fill(1);
  const shift = c.affine ? values(sd.bias) : new Float32Array(n);
  const ins = [x.name, g.init(`${scope}.weight`, [n], scale), g.init(`${scope}.bias`, [n], shift),
    g.init(`${scope}.running_mean`, [n], values(sd.running_mean)), g.init(`${scope}.running_var`, [n], values(sd.running_var))];
  const y = g.op(scope, 'BatchNormalization', ins, { epsilon: { float: c.eps } }, doc(m, scope));
  return leaf(y, x.shape, g, x.nchw);
}

function layerNorm(m: L.LayerNorm, x0: Val, g: GraphBuilder, scope: string): Val {
  const x = g.nhwc(x0, scope);
  const dims = m.normalizedShape;
  const c = m.getConfig() as { eps?: number; elementwiseAffine?: boolean };
  const sd = m.stateDict();
  const n = dims.reduce((a, b) => a * b, 1);
  const affine = c.elementwiseAffine ?? true;
  const ins = [x.name, g.init(`${scope}.weight`, dims, affine ? values(sd.weight) : new Float32Array(n).fill(1))];
  if (affine) ins.push(g.init(`${scope}.bias`, dims, values(sd.bias)));
  const y = g.op(scope, 'LayerNormalization', ins, { axis: -dims.length, epsilon: { float: c.eps ?? 1e-5 } }, doc(m, scope));
  return leaf(y, x.shape, g);
}

/** GroupNorm in primitive ops: per-group mean and biased variance over channels and positions. */
function groupNorm(m: GroupNorm, x0: Val, g: GraphBuilder, scope: string): Val {
  const x = g.nhwc(x0, scope);
  const C = m.numChannels;
  const G = m.numGroups;
  const s = x.shape;
  const positions = s.slice(1, -1).reduce((a, b) => a * b, 1);
  const r = g.op(scope, 'Reshape', [x.name, g.constant([0, positions, G, C / G], true)]);
  const d = g.op(scope, 'Sub', [r, g.reduceMean(scope, r, [1, 3], true)]);
  const v = g.reduceMean(scope, g.op(scope, 'Mul', [d, d]), [1, 3], true);
  const std = g.op(scope, 'Sqrt', [g.op(scope, 'Add', [v, g.constant(m.eps)])]);
  let y = g.op(scope, 'Reshape', [g.op(scope, 'Div', [d, std]), g.constant([0, ...s.slice(1)], true)]);
  if (m.affine) {
    const sd = m.stateDict();
    y = g.op(scope, 'Mul', [y, g.init(`${scope}.weight`, [C], values(sd.weight))]);
    y = g.op(scope, 'Add', [y, g.init(`${scope}.bias`, [C], values(sd.bias))], {}, doc(m, scope));
  }
  return leaf(y, s, g);
}

/** Rows of `[G·H, …]` weights in ONNX's gate order. */
function gates(t: Tensor | null, order: number[], hidden: number): Float32Array {
  const src = t ? values(t) : null;
  const total = order.length * hidden;
  const cols = t ? t.size / total : 0;
  const out = new Float32Array(total * Math.max(cols, 1));
  if (!src) return out;
  const block = hidden * cols;
  order.forEach((from, to) => out.set(src.subarray(from * block, (from + 1) * block), to * block));
  return out;
}

function recurrentLayer(m: Recurrent, x0: Val, g: GraphBuilder, scope: string): Val {
  const c = m.getConfig() as { bidirectional?: boolean; reverse?: boolean; bias?: boolean; returnSequences?: boolean };
  if (c.bidirectional && c.reverse) throw new ArgumentError(`${scope}: a bidirectional ${m.className} with reverse: true swaps its directions, which ONNX's ${m.className} cannot express`);
  const x = g.nhwc(x0, scope);
  const [op, order, extra]: [string, number[], Record<string, Attr>] = m instanceof LSTM ? ['LSTM', [0, 3, 1, 2], {}]
    : m instanceof GRU ? ['GRU', [1, 0, 2], { linear_before_reset: m.cell === 'gru' ? 1 : 0 }]
      : ['RNN', [0], { activations: [m.cell === 'rnnRelu' ? 'Relu' : 'Tanh'] }];
  const H = m.hiddenSize;
  const D = m.numDirections;
  const dir = D === 2 ? 'bidirectional' : c.reverse ? 'reverse' : 'forward';
  let seq = g.op(scope, 'Transpose', [x.name], { perm: [1, 0, 2] }); // [T, B, I]: ONNX Runtime runs layout 0 only
  let last = '';
  for (let l = 0; l < m.numLayers; l++) {
    const inSize = l === 0 ? m.inputSize : H * D;
    const ws = Array.from({ length: D }, (_, d) => m.weights(l, d));
    const cat = (parts: Float32Array[]) => {
      const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) (out.set(p, o), (o += p.length));
      return out;
    };
    const G = order.length * H;
    const W = g.init(`${scope}.W_l${l}`, [D, G, inSize], cat(ws.map((w) => gates(w.wIh, order, H))));
    const R = g.init(`${scope}.R_l${l}`, [D, G, H], cat(ws.map((w) => gates(w.wHh, order, H))));
    const ins = [seq, W, R];
    if (c.bias ?? true) ins.push(g.init(`${scope}.B_l${l}`, [D, 2 * G], cat(ws.flatMap((w) => [gates(w.bIh ?? null, order, H), gates(w.bHh ?? null, order, H)]))));
    const [y, yh] = g.node(scope, op, ins, { hidden_size: H, direction: dir, ...extra }, { outputs: 2, doc: `${doc(m, scope)} layer ${l}` });
    // Y [T, D, B, H] -> [T, B, D·H] for the next layer
    seq = g.op(scope, 'Reshape', [g.op(scope, 'Transpose', [y], { perm: [0, 2, 1, 3] }), g.constant([0, 0, D * H], true)]);
    last = yh;
  }
  const [b, t] = x.shape;
  if (c.returnSequences ?? true) return leaf(g.op(scope, 'Transpose', [seq], { perm: [1, 0, 2] }), [b, t, D * H], g);
  // Y_h [D, B, H] -> [B, D·H]
  const yh = g.op(scope, 'Reshape', [g.op(scope, 'Transpose', [last], { perm: [1, 0, 2] }), g.constant([0, D * H], true)]);
  return leaf(yh, [b, D * H], g);
}

/**
 * Position tables added to `[..., T, dim]`: the rows of positions 0..T-1 for the exported length
 * (read through the layer's own forward on zeros, so both table kinds share one path).
 */
function positions(m: Module, x0: Val, g: GraphBuilder, scope: string): Val {
  const x = g.nhwc(x0, scope);
  const [T, dim] = x.shape.slice(-2);
  const rows = noGrad(() => {
    const z = zeros([1, T, dim]);
    const pe = m.forward(z);
    try {
      return pe.dataSync() as Float32Array;
    } finally {
      pe.dispose();
      z.dispose();
    }
  });
  return leaf(g.op(scope, 'Add', [x.name, g.init(`${scope}.positions`, [T, dim], rows)], {}, doc(m, scope)), x.shape, g);
}

/** Self-attention `[B, T, E]` decomposed: packed projection, per-head scaled dot products, softmax, output projection. */
function attention(m: MultiHeadAttention, x0: Val, g: GraphBuilder, scope: string): Val {
  const x = g.nhwc(x0, scope);
  if (x.shape.length !== 3) throw new ArgumentError(`${scope}: MultiHeadAttention exports for [batch, length, embedDim] input, got rank ${x.shape.length}`);
  const sd = m.stateDict();
  const E = m.embedDim;
  const H = m.numHeads;
  const Dh = m.headDim;
  const w = sd.in_proj_weight;
  if (!w) throw new ArgumentError(`${scope}: MultiHeadAttention with separate key/value sizes has no self-attention form to export`);
  let qkv = g.op(scope, 'MatMul', [x.name, g.init(`${scope}.in_proj_weight_t`, [E, 3 * E], values(w, [1, 0]))]);
  if (sd.in_proj_bias) qkv = g.op(scope, 'Add', [qkv, g.init(`${scope}.in_proj_bias`, [3 * E], values(sd.in_proj_bias))]);
  const heads = g.op(scope, 'Transpose', [g.op(scope, 'Reshape', [qkv, g.constant([0, 0, 3, H, Dh], true)])], { perm: [2, 0, 3, 1, 4] });
  const [q, k, v] = [0, 1, 2].map((i) => g.op(scope, 'Gather', [heads, g.constant(i, true)], { axis: 0 }));
  const scores = g.op(scope, 'MatMul', [q, g.op(scope, 'Transpose', [k], { perm: [0, 1, 3, 2] })]);
  let scaled = g.op(scope, 'Mul', [scores, g.constant(1 / Math.sqrt(Dh))]);
  if (g.keyMask) scaled = g.op(scope, 'Add', [scaled, g.maskBias()]);
  const weights = g.op(scope, 'Softmax', [scaled], { axis: -1 });
  const ctx = g.op(scope, 'MatMul', [weights, v]);
  const merged = g.op(scope, 'Reshape', [g.op(scope, 'Transpose', [ctx], { perm: [0, 2, 1, 3] }), g.constant([0, 0, E], true)]);
  const out = m.getModule('out_proj') as L.Linear;
  return linear(out.weight, out.bias, { name: merged, shape: x.shape }, g, `${scope}.out_proj`, doc(m, scope));
}

function encoderLayer(m: TransformerEncoderLayer, x0: Val, g: GraphBuilder, scope: string): Val {
  const x = g.nhwc(x0, scope);
  const c = m.getConfig() as { normFirst?: boolean };
  const sub = (name: string, v: Val) => emit(m.getModule(name), v, g, `${scope}.${name}`);
  const add = (a: Val, b: Val) => leaf(g.op(scope, 'Add', [a.name, b.name], {}, doc(m, scope)), a.shape, g);
  const ff = (v: Val) => sub('linear2', sub('activation', sub('linear1', v)));
  if (c.normFirst) {
    const h = add(x, sub('self_attn', sub('norm1', x)));
    return add(h, ff(sub('norm2', h)));
  }
  const h = sub('norm1', add(x, sub('self_attn', x)));
  return sub('norm2', add(h, ff(h)));
}

function emit(m: Module, x: Val, g: GraphBuilder, scope: string): Val {
  if (m instanceof L.Sequential) return m.layers.reduce((v, l, i) => emit(l, v, g, scope ? `${scope}.${i}` : String(i)), x);
  if (m instanceof TransformerEncoder) {
    const layers = (m.getModule('layers') as ModuleList).children();
    let v = layers.reduce((h, l, i) => emit(l, h, g, `${scope ? `${scope}.` : ''}layers.${i}`), x);
    if (m.children().length > 1) v = emit(m.getModule('norm'), v, g, `${scope ? `${scope}.` : ''}norm`);
    return v;
  }
  const s = scope || m.className;
  const e = EMITTERS.find(([cls]) => m instanceof cls)?.[1];
  if (!e) throw new ArgumentError(`no ONNX export for ${m.className}`);
  // Token ids go to an Embedding, floats to everything else: caught here rather than by the runtime.
  if ((x.dtype === 'int32') !== m instanceof L.Embedding) {
    throw new ArgumentError(`exportModel: ${m.className} (${s}) takes ${m instanceof L.Embedding ? 'int32 token ids (inputDType: \'int32\')' : 'float32 input'}, got ${x.dtype ?? 'float32'}`);
  }
  return e(m, x, g, s);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const EMITTERS: [abstract new (...a: any[]) => Module, Emitter][] = [
  [L.Linear, (m, x, g, s) => {
    const l = m as L.Linear;
    return linear(l.weight, l.bias, g.nhwc(x, s), g, s, doc(m, s), (l.getConfig() as { activation?: string }).activation === 'relu');
  }],
  [L.Conv2d, (m, x, g, s) => conv(m as L.Conv2d, x, g, s)],
  [L.MaxPool2d, (m, x, g, s) => pool(m as L.MaxPool2d, x, g, s)],
  [L.AvgPool2d, (m, x, g, s) => pool(m as L.AvgPool2d, x, g, s)],
  [L.GlobalAvgPool2d, (m, x, g, s) => {
    const y = g.reduceMean(s, x.name, x.nchw ? [2, 3] : [1, 2], false, doc(m, s));
    return leaf(y, [x.shape[0], x.shape[3]], g);
  }],
  [L.Flatten, (m, x0, g, s) => {
    const x = g.nhwc(x0, s);
    return leaf(g.op(s, 'Flatten', [x.name], { axis: 1 }, doc(m, s)), [x.shape[0], x.shape.slice(1).reduce((a, b) => a * b, 1)], g);
  }],
  [L.Dropout, (_m, x) => x],
  [L.BatchNorm, (m, x, g, s) => batchNorm(m as L.BatchNorm, x, g, s)],
  [L.LayerNorm, (m, x, g, s) => layerNorm(m as L.LayerNorm, x, g, s)],
  [GroupNorm, (m, x, g, s) => groupNorm(m as GroupNorm, x, g, s)],
  [L.Embedding, (m, x, g, s) => {
    const e = m as L.Embedding;
    const w = g.init(`${s}.weight`, e.weight.shape, values(e.weight));
    return leaf(g.op(s, 'Gather', [w, x.name], { axis: 0 }, doc(m, s)), [...x.shape, e.embeddingDim], g);
  }],
  [L.Softmax, (m, x0, g, s) => {
    const x = g.nhwc(x0, s);
    const op = m instanceof L.LogSoftmax ? 'LogSoftmax' : 'Softmax';
    return leaf(g.op(s, op, [x.name], { axis: (m.getConfig() as { axis: number }).axis }, doc(m, s)), x.shape, g);
  }],
  [L.LogSoftmax, (m, x0, g, s) => {
    const x = g.nhwc(x0, s);
    return leaf(g.op(s, 'LogSoftmax', [x.name], { axis: (m.getConfig() as { axis: number }).axis }, doc(m, s)), x.shape, g);
  }],
  ...[L.ReLU, L.LeakyReLU, L.ELU, L.Sigmoid, L.Tanh, L.Softplus, L.SiLU, L.GELU].map((c) => [c, activation] as [typeof L.ReLU, Emitter]),
  [LSTM, (m, x, g, s) => recurrentLayer(m as Recurrent, x, g, s)],
  [GRU, (m, x, g, s) => recurrentLayer(m as Recurrent, x, g, s)],
  [SimpleRNN, (m, x, g, s) => recurrentLayer(m as Recurrent, x, g, s)],
  [Bidirectional, (m, x, g, s) => {
    // Keras' wrapper: both layers on the same input (the backward one runs reversed), then merged.
    const b = m as Bidirectional;
    const f = recurrentLayer(b.forwardLayer, x, g, `${s}.forward_layer`);
    const r = recurrentLayer(b.backwardLayer, x, g, `${s}.backward_layer`);
    const d = doc(m, s);
    const y = b.mergeMode === 'concat' ? g.op(s, 'Concat', [f.name, r.name], { axis: -1 }, d)
      : b.mergeMode === 'sum' ? g.op(s, 'Add', [f.name, r.name], {}, d)
        : b.mergeMode === 'mul' ? g.op(s, 'Mul', [f.name, r.name], {}, d)
          : g.op(s, 'Mul', [g.op(s, 'Add', [f.name, r.name]), g.constant(0.5)], {}, d);
    const last = f.shape.length - 1;
    return leaf(y, f.shape.map((n, i) => (i === last && b.mergeMode === 'concat' ? n + r.shape[last] : n)), g);
  }],
  [MultiHeadAttention, (m, x, g, s) => attention(m as MultiHeadAttention, x, g, s)],
  [SinusoidalPositionalEncoding, (m, x, g, s) => positions(m, x, g, s)],
  [LearnedPositionalEmbedding, (m, x, g, s) => positions(m, x, g, s)],
  [TransformerEncoderLayer, (m, x, g, s) => encoderLayer(m as TransformerEncoderLayer, x, g, s)],
];

/** Class names of the layers in `m` that have no ONNX export (all of them, for one error). */
function unsupported(m: Module): string[] {
  const out = new Set<string>();
  const walk = (x: Module) => {
    if (x instanceof OnnxModule) return;
    if (x instanceof L.Sequential) return x.children().forEach(walk);
    if (x instanceof TransformerEncoder) return x.children().flatMap((c) => (c instanceof ModuleList ? c.children() : [c])).forEach(walk);
    if (!EMITTERS.some(([c]) => x instanceof c)) out.add(x.className);
  };
  walk(m);
  return [...out];
}

/** The layer classes `exportModel` converts (containers Sequential and TransformerEncoder walk their layers). */
export function exportableLayers(): string[] {
  return EMITTERS.map(([c]) => c.name);
}

/**
 * Converts `model` to an ONNX model (bytes of a `ModelProto`, opset `opset`, IR version 8) for
 * ONNX Runtime and other ONNX engines. The model runs in evaluation mode while it is traced
 * (its modes are restored after). A model imported with `importModel` exports its graph again,
 * with its current weights; an int8 `QuantizedModel` (eg.compress) exports as QLinearConv /
 * MatMulInteger / QuantizeLinear / DequantizeLinear (see `export-int8.ts`). Throws ArgumentError
 * naming every layer class without an export.
 */
export function exportModel(model: Module | QuantizedModel, opts: ExportOptions): Uint8Array {
  if (!(model instanceof Module) && !(model instanceof QuantizedModel)) throw new ArgumentError(`exportModel needs a Module or a QuantizedModel, got ${describe(model)}`);
  opts = checkOptions(opts, 'exportModel options');
  if (opts === undefined || opts.inputShapes === undefined) throw new ArgumentError('exportModel needs options with inputShapes (the input shape, batch first)');
  const raw = opts.inputShapes;
  const one = Array.isArray(raw) && raw.length === 1 && Array.isArray(raw[0]) ? raw[0] : raw;
  const shape = Array.from(checkShape(one, 'exportModel inputShapes'));
  if (shape.length === 0 || shape.some((d) => d === 0)) throw new ArgumentError(`exportModel inputShapes must be one non-empty shape with a batch dimension, got ${describe(raw)}`);
  const opset = opts.opset ?? 17;
  if (!Number.isInteger(opset) || opset < 17 || opset > 21) throw new ArgumentError(`exportModel opset must be an integer from 17 to 21, got ${describe(opts.opset)}`);
  const dtype = opts.inputDType ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'int32') throw new ArgumentError(`exportModel inputDType must be 'float32' or 'int32', got ${describe(dtype)}`);
  const inName = opts.names?.input ?? 'input';
  const outName = opts.names?.output ?? 'output';
  for (const n of [inName, outName]) if (typeof n !== 'string' || n.length === 0) throw new ArgumentError(`exportModel names must be non-empty strings, got ${describe(n)}`);
  if (inName === outName) throw new ArgumentError(`exportModel: the input and output names must differ, both are '${inName}'`);
  for (const s of [opts.docString, opts.graphName]) if (s !== undefined && typeof s !== 'string') throw new ArgumentError(`exportModel docString and graphName must be strings, got ${describe(s)}`);
  const dynamicBatch = opts.dynamicBatch ?? true;
  if (typeof dynamicBatch !== 'boolean') throw new ArgumentError(`exportModel dynamicBatch must be a boolean, got ${describe(opts.dynamicBatch)}`);
  const maskName = opts.keyMask ? opts.names?.keyMask ?? 'key_mask' : null;
  if (opts.keyMask !== undefined && typeof opts.keyMask !== 'boolean') throw new ArgumentError(`exportModel keyMask must be a boolean, got ${describe(opts.keyMask)}`);
  if (maskName !== null) {
    if (!(model instanceof MultiHeadAttention || model instanceof TransformerEncoderLayer || model instanceof TransformerEncoder)) {
      throw new ArgumentError(`exportModel keyMask: ${describe(model)} takes no key mask (MultiHeadAttention, TransformerEncoderLayer and TransformerEncoder do)`);
    }
    if (shape.length !== 3) throw new ArgumentError(`exportModel keyMask needs a [batch, length, features] input, got inputShapes ${describe(raw)}`);
    if (typeof maskName !== 'string' || !maskName || maskName === inName || maskName === outName) throw new ArgumentError(`exportModel names.keyMask must be a new non-empty name, got ${describe(maskName)}`);
  }
  if (model instanceof OnnxModule) return model.toBytes({ opset: opts.opset, docString: opts.docString });
  if (model instanceof QuantizedModel) {
    if (shape.slice(1).join() !== model.inputShape.join() || dtype !== 'float32') {
      throw new ArgumentError(`exportModel: this QuantizedModel takes float32 inputs [N, ${model.inputShape.join(', ')}], got inputShapes ${describe(raw)}`);
    }
    return exportQuantized(model, { batchSize: shape[0], opset, inputName: inName, outputName: outName, docString: opts.docString, graphName: opts.graphName, dynamicBatch });
  }
  const missing = unsupported(model);
  if (missing.length) throw new ArgumentError(`exportModel: no ONNX export for ${missing.join(', ')} (exportable: ${exportableLayers().join(', ')})`);
  // A forward hook (LoRA adapters, user hooks) changes outputs in ways the graph would silently drop.
  const hooked = [...model.namedModules()].filter(([, m]) => m.numForwardHooks > 0).map(([p]) => p || '(root)');
  if (hooked.length) {
    throw new ArgumentError(`exportModel: forward hooks on ${hooked.join(', ')} would be left out of the ONNX graph; remove them first (LoRA: handle.merge() folds the adapters into the weights)`);
  }

  const modes = [...model.namedModules()].map(([, m]) => [m, m.training] as const);
  model.eval();
  try {
    const g = new GraphBuilder(opset, dynamicBatch);
    g.unique(inName);
    g.unique(outName);
    if (maskName !== null) g.keyMask = g.unique(maskName);
    const y = g.nhwc(emit(model, { name: inName, shape, dtype }, g, ''), 'output');
    finishOutput(g, y.name, outName);
    return encodeModel({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: opset }],
      producerName: 'edgegrad',
      producerVersion: PRODUCER_VERSION,
      docString: opts.docString ?? `${model.className} exported by edgegrad`,
      graph: {
        name: opts.graphName ?? model.className,
        node: g.nodes,
        initializer: g.initializers,
        input: [valueInfo(inName, shape, dtype, dynamicBatch), ...(maskName !== null ? [valueInfo(maskName, shape.slice(0, 2), 'int32', dynamicBatch)] : [])],
        output: [valueInfo(outName, y.shape, 'float32', dynamicBatch)],
        valueInfo: g.valueInfo.filter((v) => v.name !== outName && v.name !== inName),
      },
    });
  } finally {
    for (const [m, t] of modes) m.training = t;
  }
}
