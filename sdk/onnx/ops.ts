/**
 * ONNX operators in edgegrad's engine ops, for `importModel`. Tensors keep ONNX's layouts (NCHW
 * activations, OIHW kernels); convolution and pooling transpose into the engine's NHWC kernels
 * and back. Integer constants (shapes, axes, indices) stay on the host as `Const`.
 */
import { ArgumentError, FormatError, ShapeError } from '../errors.js';
import { tensor } from '../creation.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import * as F from '../nn/functional.js';
import { recurrent, type RecurrentCell } from '../nn/recurrent.js';
import { AttrType, tensorValues, DataType, type AttributeProto, type NodeProto } from './proto.js';

/** An integer constant held on the host (ONNX int64 shapes, axes and indices). */
export interface Const {
  readonly dims: number[];
  readonly data: number[];
}
/** A value flowing through the graph. */
export type Value = Tensor | Const;

/** Node attributes by name, with typed accessors and defaults. */
export class Attrs {
  readonly #a = new Map<string, AttributeProto>();
  constructor(readonly node: NodeProto, readonly where: string) {
    for (const a of node.attribute ?? []) this.#a.set(a.name, a);
  }
  has(name: string): boolean {
    return this.#a.has(name);
  }
  #get(name: string, type: number): AttributeProto | undefined {
    const a = this.#a.get(name);
    if (a && a.type !== type) throw new FormatError(`${this.where}: attribute '${name}' has type ${a.type}, expected ${type}`);
    return a;
  }
  int(name: string, dflt: number): number {
    return this.#get(name, AttrType.INT)?.i ?? dflt;
  }
  float(name: string, dflt: number): number {
    return this.#get(name, AttrType.FLOAT)?.f ?? dflt;
  }
  ints(name: string, dflt: number[] | null): number[] | null {
    const a = this.#get(name, AttrType.INTS);
    return a ? a.ints ?? [] : dflt;
  }
  str(name: string, dflt: string): string {
    const a = this.#get(name, AttrType.STRING);
    return a?.s ? new TextDecoder().decode(a.s) : dflt;
  }
  strs(name: string): string[] | null {
    const a = this.#get(name, AttrType.STRINGS);
    return a ? (a.strings ?? []).map((s) => new TextDecoder().decode(s)) : null;
  }
  tensor(name: string) {
    return this.#get(name, AttrType.TENSOR)?.t;
  }
}

type OpFn = (ins: (Value | undefined)[], a: Attrs) => (Value | undefined)[];

function isConst(v: Value | undefined): v is Const {
  return v !== undefined && !(v instanceof Tensor);
}
function need(v: Value | undefined, a: Attrs, i: number): Value {
  if (v === undefined) throw new FormatError(`${a.where}: input ${i} is missing`);
  return v;
}
/** A tensor for input `i` (integer constants become int32 tensors). */
function T(ins: (Value | undefined)[], a: Attrs, i: number): Tensor {
  const v = need(ins[i], a, i);
  return isConst(v) ? tensor(Int32Array.from(v.data), v.dims, 'int32') : v;
}
/** Integer values of input `i` (a constant: shapes, axes, indices). */
function ints(ins: (Value | undefined)[], a: Attrs, i: number): number[] {
  const v = need(ins[i], a, i);
  if (isConst(v)) return v.data;
  if (v.dtype === 'float32') throw new ArgumentError(`${a.where}: input ${i} must be an integer constant, got a float tensor`);
  return Array.from(v.dataSync());
}
function axis(ax: number, rank: number, a: Attrs): number {
  const r = ax < 0 ? ax + rank : ax;
  if (!Number.isInteger(r) || r < 0 || r >= rank) throw new FormatError(`${a.where}: axis ${ax} is out of range for rank ${rank}`);
  return r;
}
const unary = (f: (x: Tensor, a: Attrs) => Tensor): OpFn => (ins, a) => [f(T(ins, a, 0), a)];
const binary = (f: (x: Tensor, y: Tensor) => Tensor): OpFn => (ins, a) => [f(T(ins, a, 0), T(ins, a, 1))];

/** erf by Abramowitz & Stegun 7.1.26 in engine ops (|error| < 1.5e-7): no erf kernel in the engine. */
function erf(x: Tensor): Tensor {
  const ax = x.abs();
  const t = ax.mul(0.3275911).add(1).pow(-1);
  let poly = t.mul(1.061405429);
  for (const c of [-1.453152027, 1.421413741, -0.284496736, 0.254829592]) poly = poly.add(c).mul(t);
  const y = poly.mul(ax.square().neg().exp()).neg().add(1);
  return y.mul(x.div(ax.maximum(1e-30)));
}

/** NCHW ↔ NHWC around an engine kernel for 2-D images. */
function spatial2d(x: Tensor, a: Attrs, f: (nhwc: Tensor) => Tensor): Tensor {
  if (x.rank !== 4) throw new ArgumentError(`${a.where}: only 2-D images [N, C, H, W] are supported, got rank ${x.rank}`);
  return f(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]);
}
function padsTBLR(a: Attrs): [number, number, number, number] {
  if (a.str('auto_pad', 'NOTSET') !== 'NOTSET') throw new ArgumentError(`${a.where}: auto_pad is not supported (use explicit pads)`);
  const p = a.ints('pads', [0, 0, 0, 0])!;
  if (p.length !== 4) throw new FormatError(`${a.where}: pads must have 4 entries for 2-D, got ${p.length}`);
  return [p[0], p[2], p[1], p[3]];
}
function pair(a: Attrs, name: string, dflt: [number, number]): [number, number] {
  const v = a.ints(name, dflt)!;
  if (v.length !== 2) throw new FormatError(`${a.where}: ${name} must have 2 entries for 2-D, got ${v.length}`);
  return [v[0], v[1]];
}

function conv(ins: (Value | undefined)[], a: Attrs): Value[] {
  const w = T(ins, a, 1);
  if (w.rank !== 4) throw new ArgumentError(`${a.where}: only 2-D convolutions are supported, got a weight of rank ${w.rank}`);
  const hwio = w.permute([2, 3, 1, 0]);
  const bias = ins[2] ? T(ins, a, 2) : null;
  const o = { stride: pair(a, 'strides', [1, 1]), dilation: pair(a, 'dilations', [1, 1]), padding: padsTBLR(a), groups: a.int('group', 1) };
  return [spatial2d(T(ins, a, 0), a, (x) => F.conv2d(x, hwio, bias, o))];
}

function pool(kind: 'max' | 'avg'): OpFn {
  return (ins, a) => {
    if (a.int('ceil_mode', 0) !== 0) throw new ArgumentError(`${a.where}: ceil_mode is not supported`);
    if (kind === 'max' && (a.ints('dilations', [1, 1]) ?? []).some((d) => d !== 1)) throw new ArgumentError(`${a.where}: dilated pooling is not supported`);
    const k = pair(a, 'kernel_shape', [1, 1]);
    const o = { stride: pair(a, 'strides', [1, 1]), padding: padsTBLR(a) };
    return [spatial2d(T(ins, a, 0), a, (x) => (kind === 'max' ? F.maxPool2d(x, k, o) : F.avgPool2d(x, k, { ...o, countIncludePad: a.int('count_include_pad', 0) === 1 })))];
  };
}

function gemm(ins: (Value | undefined)[], a: Attrs): Value[] {
  const A = T(ins, a, 0);
  const B = T(ins, a, 1);
  let y = A.matmulT(B, a.int('transA', 0) === 1, a.int('transB', 0) === 1);
  const alpha = a.float('alpha', 1);
  if (alpha !== 1) y = y.mul(alpha);
  if (ins[2]) {
    const beta = a.float('beta', 1);
    const c = T(ins, a, 2);
    y = y.add(beta === 1 ? c : c.mul(beta));
  }
  return [y];
}

function reshape(ins: (Value | undefined)[], a: Attrs): Value[] {
  const x = need(ins[0], a, 0);
  const spec = ints(ins, a, 1);
  const xs = x instanceof Tensor ? x.shape : x.dims;
  if (a.int('allowzero', 0) !== 0 && spec.includes(0)) throw new ArgumentError(`${a.where}: allowzero with a 0 in the shape is not supported`);
  const shape = spec.map((d, i) => (d === 0 ? xs[i] : d));
  if (isConst(x)) {
    const n = x.data.length;
    const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    return [{ dims: shape.map((d) => (d === -1 ? n / known : d)), data: x.data }];
  }
  return [x.reshape(shape)];
}

function gather(ins: (Value | undefined)[], a: Attrs): Value[] {
  const data = need(ins[0], a, 0);
  const idx = need(ins[1], a, 1);
  if (isConst(data)) {
    // Shape arithmetic on constants (index lists).
    if (data.dims.length !== 1 || !isConst(idx)) throw new ArgumentError(`${a.where}: Gather on integer constants supports 1-D data and constant indices`);
    return [{ dims: idx.dims, data: idx.data.map((i) => data.data[i < 0 ? i + data.data.length : i]) }];
  }
  const ax = axis(a.int('axis', 0), data.rank, a);
  if (isConst(idx) && idx.dims.length === 0) {
    // A scalar index drops the axis.
    const i = idx.data[0] < 0 ? idx.data[0] + data.shape[ax] : idx.data[0];
    if (!(i >= 0 && i < data.shape[ax])) throw new ShapeError(`${a.where}: index ${idx.data[0]} is out of range for size ${data.shape[ax]}`);
    const begin = data.shape.map((_, d) => (d === ax ? i : 0));
    const end = data.shape.map((s, d) => (d === ax ? i + 1 : s));
    return [data.slice(begin, end).reshape(data.shape.filter((_, d) => d !== ax))];
  }
  return [data.indexSelect(ax, T(ins, a, 1))];
}

function reduceMean(ins: (Value | undefined)[], a: Attrs): Value[] {
  const x = T(ins, a, 0);
  const axes = ins[1] ? ints(ins, a, 1) : a.ints('axes', null);
  const keep = a.int('keepdims', 1) === 1;
  return [x.mean(axes === null || axes.length === 0 ? undefined : axes.map((d) => axis(d, x.rank, a)), keep)];
}

/** Per-channel parameter `[C]` shaped to broadcast over `[N, C, ...]`. */
function channel(t: Tensor, rank: number): Tensor {
  return t.reshape([t.size, ...new Array(Math.max(rank - 2, 0)).fill(1)]);
}
function batchNorm(ins: (Value | undefined)[], a: Attrs): Value[] {
  if (a.int('training_mode', 0) !== 0) throw new ArgumentError(`${a.where}: training_mode BatchNormalization is not supported`);
  const x = T(ins, a, 0);
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => channel(T(ins, a, i), x.rank));
  const inv = variance.add(a.float('epsilon', 1e-5)).sqrt();
  return [x.sub(mean).div(inv).mul(scale).add(bias)];
}

function layerNorm(ins: (Value | undefined)[], a: Attrs): Value[] {
  const x = T(ins, a, 0);
  const ax = axis(a.int('axis', -1), x.rank, a);
  if (a.int('stash_type', 1) !== 1) throw new ArgumentError(`${a.where}: only stash_type 1 (float32) is supported`);
  const w = T(ins, a, 1);
  const b = ins[2] ? T(ins, a, 2) : null;
  const norm = x.shape.slice(ax);
  if (w.shape.join() !== norm.join() || (b && b.shape.join() !== norm.join())) {
    throw new ArgumentError(`${a.where}: scale and bias must have the normalised shape [${norm.join(', ')}] (broadcast forms are not supported)`);
  }
  return [F.layerNorm(x, x.rank - ax, { weight: w, bias: b, eps: a.float('epsilon', 1e-5) })];
}

const LSTM_ORDER = [0, 2, 3, 1]; // ONNX i,o,f,c -> ours i,f,g,o
const GRU_ORDER = [1, 0, 2]; // ONNX z,r,h -> ours r,z,n

/** Rows `[G·H, k]` of a `[D, G·H, k]` ONNX weight for direction d, in edgegrad's gate order. */
function gateRows(w: Tensor, d: number, order: number[], H: number): Tensor {
  const k = w.shape[2];
  const blocks = order.map((g) => w.slice([d, g * H, 0], [d + 1, (g + 1) * H, k]).reshape([H, k]));
  return concat(blocks, 0);
}
function biasRows(b: Tensor, d: number, half: 0 | 1, order: number[], H: number): Tensor {
  const G = order.length * H;
  const row = b.slice([d, half * G], [d + 1, (half + 1) * G]).reshape([order.length, H]);
  return concat(order.map((g) => row.slice([g, 0], [g + 1, H])), 0).reshape([G]);
}

function rnn(kind: 'LSTM' | 'GRU' | 'RNN'): OpFn {
  return (ins, a) => {
    const H = a.int('hidden_size', 0);
    if (!(H > 0)) throw new FormatError(`${a.where}: hidden_size must be positive`);
    const dir = a.str('direction', 'forward');
    if (!['forward', 'reverse', 'bidirectional'].includes(dir)) throw new FormatError(`${a.where}: unknown direction '${dir.slice(0, 20)}'`);
    if (a.int('layout', 0) !== 0) throw new ArgumentError(`${a.where}: layout 1 is not supported`);
    if (a.has('clip')) throw new ArgumentError(`${a.where}: clip is not supported`);
    if (ins[4] !== undefined) throw new ArgumentError(`${a.where}: sequence_lens is not supported`);
    if (kind === 'LSTM' && (ins[7] !== undefined || a.int('input_forget', 0) !== 0)) throw new ArgumentError(`${a.where}: peepholes and input_forget are not supported`);
    const acts = a.strs('activations');
    const dflt = kind === 'LSTM' ? ['Sigmoid', 'Tanh', 'Tanh'] : kind === 'GRU' ? ['Sigmoid', 'Tanh'] : ['Tanh'];
    let cell: RecurrentCell = kind === 'LSTM' ? 'lstm' : kind === 'GRU' ? (a.int('linear_before_reset', 0) === 1 ? 'gru' : 'gruResetBefore') : 'rnnTanh';
    if (kind === 'RNN' && acts && acts.length && acts.every((s) => s === 'Relu')) cell = 'rnnRelu';
    else if (acts && acts.length && acts.some((s, i) => s !== dflt[i % dflt.length])) throw new ArgumentError(`${a.where}: activations ${acts.join(', ')} are not supported`);
    const order = kind === 'LSTM' ? LSTM_ORDER : kind === 'GRU' ? GRU_ORDER : [0];
    const D = dir === 'bidirectional' ? 2 : 1;
    const xs = T(ins, a, 0).permute([1, 0, 2]); // [B, T, I]
    const W = T(ins, a, 1);
    const R = T(ins, a, 2);
    const B = ins[3] ? T(ins, a, 3) : null;
    const h0 = ins[5] ? T(ins, a, 5) : null;
    const c0 = ins[6] ? T(ins, a, 6) : null;
    const [batch] = xs.shape;
    const ys: Tensor[] = [];
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    for (let d = 0; d < D; d++) {
      const state = (s: Tensor | null) => (s ? s.slice([d, 0, 0], [d + 1, batch, H]).reshape([batch, H]) : null);
      const r = recurrent(cell, xs, {
        wIh: gateRows(W, d, order, H), wHh: gateRows(R, d, order, H),
        bIh: B ? biasRows(B, d, 0, order, H) : null, bHh: B ? biasRows(B, d, 1, order, H) : null,
      }, { h0: state(h0), c0: state(c0), reverse: dir === 'reverse' || d === 1 });
      ys.push(r.output.permute([1, 0, 2]).expandDims(1)); // [T, 1, B, H]
      hs.push(r.h.expandDims(0));
      if (r.c) cs.push(r.c.expandDims(0));
    }
    const cat = (l: Tensor[], ax: number) => (l.length === 1 ? l[0] : concat(l, ax));
    return [cat(ys, 1), cat(hs, 0), cs.length ? cat(cs, 0) : undefined];
  };
}

function constant(_ins: (Value | undefined)[], a: Attrs): Value[] {
  const t = a.tensor('value');
  if (t) {
    const v = tensorValues(t, a.where);
    if (v.dataType === DataType.FLOAT) return [tensor(v.data as Float32Array, v.dims)];
    if (v.dataType === DataType.INT64 || v.dataType === DataType.INT32) return [{ dims: v.dims, data: Array.from(v.data as ArrayLike<number>) }];
    throw new ArgumentError(`${a.where}: Constant of data type ${v.dataType} is not supported`);
  }
  if (a.has('value_float')) return [tensor([a.float('value_float', 0)], [])];
  if (a.has('value_floats')) throw new ArgumentError(`${a.where}: value_floats is not supported`);
  if (a.has('value_int')) return [{ dims: [], data: [a.int('value_int', 0)] }];
  if (a.has('value_ints')) {
    const v = a.ints('value_ints', [])!;
    return [{ dims: [v.length], data: v }];
  }
  throw new ArgumentError(`${a.where}: Constant needs a value attribute`);
}

// ------------------------------------------------------------------ quantized (int8) operators

/** ONNX integer element types held as integer-valued float32 tensors (exact below 2^24). */
export type IntKind = 'int8' | 'uint8' | 'int32';
/** The integer type a float32 tensor stands for (tensors not listed are ONNX float). */
export const intKinds = new WeakMap<Tensor, IntKind>();
function tag(t: Tensor, k: IntKind | undefined): Tensor {
  if (k) intKinds.set(t, k);
  return t;
}
/** Layout ops keep an integer tensor's type. */
function keepKind(f: OpFn): OpFn {
  return (ins, a) => {
    const k = ins[0] instanceof Tensor ? intKinds.get(ins[0]) : undefined;
    return f(ins, a).map((v) => (v instanceof Tensor ? tag(v, k) : v));
  };
}
function int(ins: (Value | undefined)[], a: Attrs, i: number, what: string): Tensor {
  const t = T(ins, a, i);
  if (!intKinds.has(t) && t.dtype === 'float32') throw new ArgumentError(`${a.where}: ${what} must be an integer tensor`);
  return t.dtype === 'float32' ? t : t.cast('float32');
}
function scalar(ins: (Value | undefined)[], a: Attrs, i: number, what: string): number {
  const t = need(ins[i], a, i);
  const v = isConst(t) ? t.data : Array.from(t.dataSync());
  if (v.length !== 1) throw new ArgumentError(`${a.where}: only a per-tensor ${what} is supported here, got ${v.length} values`);
  return v[0];
}
/** Zero point (default 0) and the integer type it sets for the output (uint8 when absent, as ONNX says). */
function zeroPoint(ins: (Value | undefined)[], a: Attrs, i: number): { zp: number; kind: 'int8' | 'uint8' } {
  const v = ins[i];
  if (v === undefined) return { zp: 0, kind: 'uint8' };
  const kind = v instanceof Tensor ? intKinds.get(v) : undefined;
  return { zp: scalar(ins, a, i, 'zero point'), kind: kind === 'int8' ? 'int8' : 'uint8' };
}
/** x − zero point, broadcast over `axis` for a per-axis zero point. */
function centred(x: Tensor, zp: Tensor | undefined, axis: number): Tensor {
  if (!zp || zp.size === 1) return zp ? x.sub(zp.reshape([])) : x;
  return x.sub(zp.reshape(x.shape.map((d, i) => (i === axis ? d : 1))));
}
/** half-to-even rounding (ONNX's and C's nearbyint), not Math.round's half-up. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : r;
}
/**
 * `saturate(roundEven(float32(acc) · mult[c]) + zp)` on the host, in float32 steps as ONNX Runtime
 * computes requantization; `mult` per channel along `axis` or one value.
 */
function requantize(acc: Tensor, mult: Float32Array, axis: number, zp: number, kind: 'int8' | 'uint8'): Tensor {
  const src = acc.dataSync() as Float32Array;
  const [lo, hi] = kind === 'int8' ? [-128, 127] : [0, 255];
  const inner = acc.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const n = acc.shape[axis] ?? 1;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const m = mult.length === 1 ? mult[0] : mult[Math.floor(i / inner) % n];
    out[i] = Math.min(hi, Math.max(lo, roundEven(Math.fround(Math.fround(src[i]) * m)) + zp));
  }
  return tag(tensor(out, acc.shape), kind);
}
function scales(ins: (Value | undefined)[], a: Attrs, i: number): Float32Array {
  const v = need(ins[i], a, i);
  return Float32Array.from(isConst(v) ? v.data : v.dataSync());
}
/** `x_scale · w_scale / y_scale` in float32, per channel. */
function multipliers(xs: number, ws: Float32Array, ys: number): Float32Array {
  return ws.map((w) => Math.fround(Math.fround(xs * w) / ys));
}

function quantizeLinear(ins: (Value | undefined)[], a: Attrs): Value[] {
  const x = T(ins, a, 0);
  const s = scalar(ins, a, 1, 'scale');
  const { zp, kind } = zeroPoint(ins, a, 2);
  const src = x.dataSync() as Float32Array;
  const [lo, hi] = kind === 'int8' ? [-128, 127] : [0, 255];
  const out = src.map((v) => Math.min(hi, Math.max(lo, roundEven(Math.fround(v / s)) + zp)));
  return [tag(tensor(out, x.shape), kind)];
}
function dequantizeLinear(ins: (Value | undefined)[], a: Attrs): Value[] {
  const x = int(ins, a, 0, 'the quantized input');
  const ax = axis(a.int('axis', 1), Math.max(x.rank, 1), a);
  const s = T(ins, a, 1);
  const zp = ins[2] ? T(ins, a, 2) : undefined;
  const c = centred(x, zp, ax);
  return [s.size === 1 ? c.mul(s.reshape([])) : c.mul(s.reshape(x.shape.map((d, i) => (i === ax ? d : 1))))];
}
function qlinearConv(ins: (Value | undefined)[], a: Attrs): Value[] {
  const x = centred(int(ins, a, 0, 'x'), ins[2] ? T(ins, a, 2) : undefined, 1);
  const w = centred(int(ins, a, 3, 'w'), ins[5] ? T(ins, a, 5) : undefined, 0);
  if (w.rank !== 4) throw new ArgumentError(`${a.where}: only 2-D convolutions are supported`);
  const bias = ins[8] ? tensor(Float32Array.from(ints(ins, a, 8)), [w.shape[0]]) : null;
  const o = { stride: pair(a, 'strides', [1, 1]), dilation: pair(a, 'dilations', [1, 1]), padding: padsTBLR(a), groups: a.int('group', 1) };
  // Integer operands: the float32 accumulation is exact while sums stay below 2^24.
  const acc = spatial2d(x, a, (xh) => F.conv2d(xh, w.permute([2, 3, 1, 0]), bias, o));
  const { zp, kind } = zeroPoint(ins, a, 7);
  return [requantize(acc, multipliers(scalar(ins, a, 1, 'x scale'), scales(ins, a, 4), scalar(ins, a, 6, 'y scale')), 1, zp, kind)];
}
function matmulInteger(ins: (Value | undefined)[], a: Attrs): Value[] {
  const A = centred(int(ins, a, 0, 'A'), ins[2] ? T(ins, a, 2) : undefined, 0);
  const B = centred(int(ins, a, 1, 'B'), ins[3] ? T(ins, a, 3) : undefined, 1);
  return [tag(A.matmul(B), 'int32')];
}
function qlinearMatMul(ins: (Value | undefined)[], a: Attrs): Value[] {
  const A = centred(int(ins, a, 0, 'a'), ins[2] ? T(ins, a, 2) : undefined, 0);
  const B = centred(int(ins, a, 3, 'b'), ins[5] ? T(ins, a, 5) : undefined, 1);
  const acc = A.matmul(B);
  const { zp, kind } = zeroPoint(ins, a, 7);
  return [requantize(acc, multipliers(scalar(ins, a, 1, 'a scale'), scales(ins, a, 4), scalar(ins, a, 6, 'y scale')), acc.rank - 1, zp, kind)];
}
function cast(ins: (Value | undefined)[], a: Attrs): Value[] {
  if (a.int('to', 0) !== DataType.FLOAT) throw new ArgumentError(`${a.where}: only Cast to float32 is supported`);
  const x = T(ins, a, 0);
  return [x.dtype === 'float32' ? x.clone() : x.cast('float32')]; // integer-valued float32 already: the copy is plain float
}
function clip(ins: (Value | undefined)[], a: Attrs): Value[] {
  let y = T(ins, a, 0);
  const k = intKinds.get(y);
  if (ins[1]) y = y.maximum(scalar(ins, a, 1, 'min'));
  if (ins[2]) y = y.minimum(scalar(ins, a, 2, 'max'));
  return [tag(ins[1] || ins[2] ? y : y.clone(), k)];
}

/** The operators `importModel` runs, by ONNX op type (default domain). */
export const OPS: Record<string, OpFn> = {
  Identity: keepKind((ins, a) => [need(ins[0], a, 0)]),
  Dropout: (ins, a) => [need(ins[0], a, 0)],
  Add: binary((x, y) => x.add(y)),
  Sub: binary((x, y) => x.sub(y)),
  Mul: binary((x, y) => x.mul(y)),
  Div: binary((x, y) => x.div(y)),
  Pow: binary((x, y) => x.pow(y)),
  MatMul: binary((x, y) => x.matmul(y)),
  Neg: unary((x) => x.neg()),
  Exp: unary((x) => x.exp()),
  Log: unary((x) => x.log()),
  Sqrt: unary((x) => x.sqrt()),
  Erf: unary(erf),
  Relu: unary((x) => x.relu()),
  LeakyRelu: unary((x, a) => x.leakyRelu(a.float('alpha', 0.01))),
  Elu: unary((x, a) => x.elu(a.float('alpha', 1))),
  Sigmoid: unary((x) => x.sigmoid()),
  Tanh: unary((x) => x.tanh()),
  Softplus: unary((x) => x.softplus()),
  Gelu: unary((x, a) => x.gelu(a.str('approximate', 'none') === 'tanh')),
  Softmax: unary((x, a) => x.softmax(axis(a.int('axis', -1), x.rank, a))),
  LogSoftmax: unary((x, a) => x.logSoftmax(axis(a.int('axis', -1), x.rank, a))),
  Transpose: keepKind(unary((x, a) => x.permute(a.ints('perm', null) ?? x.shape.map((_, i) => x.rank - 1 - i)))),
  Flatten: keepKind(unary((x, a) => {
    const ax = a.int('axis', 1);
    const k = ax < 0 ? ax + x.rank : ax;
    if (k < 0 || k > x.rank) throw new FormatError(`${a.where}: axis ${ax} is out of range for rank ${x.rank}`);
    const prod = (s: number[]) => s.reduce((p, d) => p * d, 1);
    return x.reshape([prod(x.shape.slice(0, k)), prod(x.shape.slice(k))]);
  })),
  Reshape: keepKind(reshape),
  Gather: gather,
  Gemm: gemm,
  Conv: conv,
  MaxPool: keepKind(pool('max')),
  AveragePool: pool('avg'),
  GlobalAveragePool: unary((x) => x.mean(x.shape.slice(2).map((_, i) => i + 2), true)),
  ReduceMean: reduceMean,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  LSTM: rnn('LSTM'),
  GRU: rnn('GRU'),
  RNN: rnn('RNN'),
  Constant: constant,
  QuantizeLinear: quantizeLinear,
  DequantizeLinear: dequantizeLinear,
  QLinearConv: qlinearConv,
  QLinearMatMul: qlinearMatMul,
  MatMulInteger: matmulInteger,
  Cast: cast,
  Clip: clip,
  Concat: (ins, a) => {
    const ts = ins.map((_, i) => T(ins, a, i));
    return [concat(ts, axis(a.int('axis', 0), ts[0].rank, a))];
  },
};
