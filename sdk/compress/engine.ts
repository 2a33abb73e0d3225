/**
 * Typed wrappers over the engine's quantization exports (`quant_*`): each is one engine call with
 * handles, wrapped in new Tensors. Everything numeric (scales, multipliers, rounding) happens in
 * Rust, so results are identical in every runtime.
 */
import { checkAxis, checkBool, checkInt, checkNumber, checkObject as record, checkSize, describe } from '../args.js';
import { ArgumentError } from '../errors.js';
import { call } from '../runtime.js';
import { fromHandle, Tensor, tensorArg } from '../tensor.js';

/** Per-tensor affine quantization: `x ≈ scale · (q - zeroPoint)`, `q ∈ [-128, 127]`. */
export interface QParams {
  /** Step between quantization levels (> 0). */
  scale: number;
  /** Integer that represents real 0, in [-128, 127]. */
  zeroPoint: number;
}

const wrap = (h: number): Tensor => fromHandle(h);

// Argument checks: these are public (`eg.compress.int8`), so a wrong type is a typed error naming
// the function and argument before any engine call (never a raw TypeError or a NaN in the engine).
/** Non-negative integer sizes (kernel, stride, padding...) of an expected count. */
function u32(a: unknown, what: string, len?: number): Uint32Array {
  if (!Array.isArray(a) || (len !== undefined && a.length !== len)) {
    throw new ArgumentError(`${what} must be an array of ${len ?? 'some'} sizes, got ${describe(a)}`);
  }
  return Uint32Array.from(a, (d: unknown) => checkSize(d, what));
}
function qp(q: unknown, what: string): QParams {
  const o = record<QParams>(q, what, '{ scale, zeroPoint }');
  return { scale: checkNumber(o.scale, `${what}.scale`, { finite: true }), zeroPoint: checkInt(o.zeroPoint, `${what}.zeroPoint`) };
}
const optTensor = (t: unknown, what: string): Tensor | null => (t === null || t === undefined ? null : tensorArg(t, what));
function tensors(xs: unknown, what: string): Tensor[] {
  if (!Array.isArray(xs)) throw new ArgumentError(`${what} must be an array of Tensors, got ${describe(xs)}`);
  return xs.map((x) => tensorArg(x, what));
}
function layerOutput(o: unknown, what: string): { c: LayerConstants; out: QParams | null; relu: boolean } {
  const lo = record<LayerOutput>(o, what, '{ c, out, relu }');
  const c = record<LayerConstants>(lo.c, `${what}.c`, "a layer's constants (from layerConstants)");
  tensorArg(c.offsets, `${what}.c.offsets`);
  return {
    c: { offsets: c.offsets, mult: optTensor(c.mult, `${what}.c.mult`), scales: optTensor(c.scales, `${what}.c.scales`),
      left: checkInt(c.left, `${what}.c.left`), right: checkInt(c.right, `${what}.c.right`) },
    out: lo.out === null || lo.out === undefined ? null : qp(lo.out, `${what}.out`),
    relu: checkBool(lo.relu, `${what}.relu`),
  };
}
function geometry(g: unknown, what: string): ConvGeometry {
  const o = record<ConvGeometry>(g, what, 'a ConvGeometry { kernel, stride, padding, dilation, groups }');
  const size = (a: unknown, n: number, k: string): number[] => Array.from(u32(a, `${what}.${k}`, n));
  return {
    kernel: size(o.kernel, 3, 'kernel') as ConvGeometry['kernel'], stride: size(o.stride, 2, 'stride') as ConvGeometry['stride'],
    padding: size(o.padding, 4, 'padding') as ConvGeometry['padding'], dilation: size(o.dilation, 2, 'dilation') as ConvGeometry['dilation'],
    groups: checkInt(o.groups, `${what}.groups`, 1),
  };
}

/** Scale and zero point covering `[lo, hi]` (widened to include 0). */
export function chooseQParams(lo: number, hi: number): QParams {
  checkNumber(lo, 'chooseQParams: lo', { finite: true });
  checkNumber(hi, 'chooseQParams: hi', { finite: true });
  const [scale, zeroPoint] = call((e) => e.quant_choose_qparams(lo, hi));
  return { scale, zeroPoint };
}

/** float32 → int8. */
export function quantizeTensor(x: Tensor, q: QParams): Tensor {
  tensorArg(x, 'quantizeTensor');
  const { scale, zeroPoint } = qp(q, 'quantizeTensor: q');
  return wrap(call((e) => e.quant_quantize(x.handle, scale, zeroPoint)));
}

/** int8 → float32. */
export function dequantizeTensor(x: Tensor, q: QParams): Tensor {
  tensorArg(x, 'dequantizeTensor');
  const { scale, zeroPoint } = qp(q, 'dequantizeTensor: q');
  return wrap(call((e) => e.quant_dequantize(x.handle, scale, zeroPoint)));
}

/** Symmetric per-channel int8 weights along `axis`: `[q, scales]`. */
export function quantizePerChannel(w: Tensor, axis: number): [Tensor, Tensor] {
  tensorArg(w, 'quantizePerChannel');
  checkAxis(axis, 'quantizePerChannel: axis');
  const [q, s] = call((e) => e.quant_per_channel(w.handle, axis));
  return [wrap(q), wrap(s)];
}

/** Packs int8 weights for the int8 GEMM; `groups` 0 = linear `[out, in]`, else HWIO conv groups. */
export function packWeights(wq: Tensor, groups: number): Tensor {
  tensorArg(wq, 'packWeights');
  checkInt(groups, 'packWeights: groups', 0);
  return wrap(call((e) => e.quant_pack_weights(wq.handle, groups)));
}

export interface LayerConstants {
  /** Per output channel, int32: the quantized bias minus the input zero point times the channel's weight sum (`bias_q − zp_x · Σ_k q_w`). */
  offsets: Tensor;
  /** Requantization multipliers (int8 output). */
  mult: Tensor | null;
  /** Dequantization scales (float output). */
  scales: Tensor | null;
  /** Left bit shift of the fixed-point requantization (applied with `mult`). */
  left: number;
  /** Right (rounding) bit shift of the fixed-point requantization. */
  right: number;
}

/** A layer's integer constants; `out` null means a float output (the network's edge). */
export function layerConstants(wq: Tensor, wScales: Tensor, bias: Tensor | null, groups: number, x: QParams, out: QParams | null): LayerConstants {
  tensorArg(wq, 'layerConstants: wq');
  tensorArg(wScales, 'layerConstants: wScales');
  const b = optTensor(bias, 'layerConstants: bias');
  checkInt(groups, 'layerConstants: groups', 0);
  const xq = qp(x, 'layerConstants: x');
  const oq = out === null || out === undefined ? null : qp(out, 'layerConstants: out');
  const r = call((e) => e.quant_layer_constants(wq.handle, wScales.handle, b ? b.handle : 0, groups, xq.scale, xq.zeroPoint,
    oq ? oq.scale : 0, oq ? oq.zeroPoint : 0));
  const second = wrap(r[1]);
  return { offsets: wrap(r[0]), mult: oq ? second : null, scales: oq ? null : second, left: r[2], right: r[3] };
}

/** How a quantized layer writes its output. */
export interface LayerOutput {
  /** The layer's integer constants from {@link layerConstants}. */
  c: LayerConstants;
  /** Output quantization for an int8 output; null for a float32 output. */
  out: QParams | null;
  /** Apply ReLU in the integer domain before writing the output. */
  relu: boolean;
}

/** Int8 fully connected layer: `x` int8 `[N, inFeatures]`, `packed` from {@link packWeights} (groups 0); returns int8 or float32 per `lo.out`. */
export function qlinear(x: Tensor, packed: Tensor, inFeatures: number, lo: LayerOutput): Tensor {
  tensorArg(x, 'qlinear');
  tensorArg(packed, 'qlinear: packed');
  checkSize(inFeatures, 'qlinear: inFeatures');
  const o = layerOutput(lo, 'qlinear: output');
  const { c } = o;
  return wrap(call((e) => e.quant_linear(x.handle, packed.handle, inFeatures, c.offsets.handle, c.mult ? c.mult.handle : 0, c.left, c.right,
    o.out ? o.out.scale : 1, o.out ? o.out.zeroPoint : 0, o.relu, c.scales ? c.scales.handle : 0)));
}

export interface ConvGeometry {
  /** `[kh, kw, cin / groups]`. */
  kernel: [number, number, number];
  /** Stride `[sh, sw]`. */
  stride: [number, number];
  /** `[top, bottom, left, right]`. */
  padding: [number, number, number, number];
  /** Dilation `[dh, dw]`. */
  dilation: [number, number];
  /** Number of channel groups (1 = ordinary conv; `cin` = depthwise). */
  groups: number;
}

/** `maxPool2`: also max-pool 2x2 with stride 2 (int8 output only; output `[N, OH/2, OW/2, C]`). */
export function qconv2d(x: Tensor, xZeroPoint: number, packed: Tensor, geom: ConvGeometry, lo: LayerOutput, maxPool2 = false): Tensor {
  tensorArg(x, 'qconv2d');
  checkInt(xZeroPoint, 'qconv2d: xZeroPoint');
  tensorArg(packed, 'qconv2d: packed');
  const g = geometry(geom, 'qconv2d: geometry');
  const o = layerOutput(lo, 'qconv2d: output');
  checkBool(maxPool2, 'qconv2d: maxPool2');
  const { c } = o;
  return wrap(call((e) => e.quant_conv2d(x.handle, xZeroPoint, packed.handle, Uint32Array.from(g.kernel), c.offsets.handle,
    Uint32Array.from(g.stride), Uint32Array.from(g.padding), Uint32Array.from(g.dilation), g.groups, c.mult ? c.mult.handle : 0, c.left, c.right, o.out ? o.out.scale : 1, o.out ? o.out.zeroPoint : 0, o.relu,
    c.scales ? c.scales.handle : 0, maxPool2)));
}

/** Int8 max pooling over NHWC `x`; `kernel`/`stride` are `[h, w]`, `padding` `[top, bottom, left, right]`. Scale and zero point are unchanged. */
export function qmaxPool2d(x: Tensor, kernel: number[], stride: number[], padding: number[]): Tensor {
  tensorArg(x, 'qmaxPool2d');
  const k = u32(kernel, 'qmaxPool2d: kernel', 2), s = u32(stride, 'qmaxPool2d: stride', 2), p = u32(padding, 'qmaxPool2d: padding [top, bottom, left, right]', 4);
  return wrap(call((e) => e.quant_max_pool2d(x.handle, k, s, p)));
}

/** Int8 average pooling over NHWC `x` (same geometry as {@link qmaxPool2d}); padded cells count as `zeroPoint` when `countIncludePad`. */
export function qavgPool2d(x: Tensor, kernel: number[], stride: number[], padding: number[], countIncludePad: boolean, zeroPoint: number): Tensor {
  tensorArg(x, 'qavgPool2d');
  const k = u32(kernel, 'qavgPool2d: kernel', 2), s = u32(stride, 'qavgPool2d: stride', 2), p = u32(padding, 'qavgPool2d: padding [top, bottom, left, right]', 4);
  checkBool(countIncludePad, 'qavgPool2d: countIncludePad');
  checkInt(zeroPoint, 'qavgPool2d: zeroPoint');
  return wrap(call((e) => e.quant_avg_pool2d(x.handle, k, s, p, countIncludePad, zeroPoint)));
}

/** Elementwise sum of two int8 tensors with their own quantizations, requantized to `out` (optionally ReLU'd). */
export function qadd(a: Tensor, qa: QParams, b: Tensor, qb: QParams, out: QParams, relu: boolean): Tensor {
  tensorArg(a, 'qadd: a');
  tensorArg(b, 'qadd: b');
  const [pa, pb, po] = [qp(qa, 'qadd: qa'), qp(qb, 'qadd: qb'), qp(out, 'qadd: out')];
  checkBool(relu, 'qadd: relu');
  return wrap(call((e) => e.quant_add(a.handle, pa.scale, pa.zeroPoint, b.handle, pb.scale, pb.zeroPoint, po.scale, po.zeroPoint, relu)));
}

/** Re-expresses int8 `x` from quantization `qin` to `out` (optionally ReLU'd). */
export function qrequantize(x: Tensor, qin: QParams, out: QParams, relu: boolean): Tensor {
  tensorArg(x, 'qrequantize');
  const [pi, po] = [qp(qin, 'qrequantize: qin'), qp(out, 'qrequantize: out')];
  checkBool(relu, 'qrequantize: relu');
  return wrap(call((e) => e.quant_requantize(x.handle, pi.scale, pi.zeroPoint, po.scale, po.zeroPoint, relu)));
}

/** Concatenates int8 tensors along `axis`, requantizing each from `qs[i]` to the common `out`. */
export function qconcat(xs: Tensor[], qs: QParams[], axis: number, out: QParams): Tensor {
  tensors(xs, 'qconcat');
  if (!Array.isArray(qs)) throw new ArgumentError(`qconcat: qs must be an array of { scale, zeroPoint }, got ${describe(qs)}`);
  if (xs.length !== qs.length) throw new ArgumentError(`qconcat: ${xs.length} tensors but ${qs.length} quantizations`);
  const ps = qs.map((q) => qp(q, 'qconcat: qs[i]'));
  checkAxis(axis, 'qconcat: axis');
  const po = qp(out, 'qconcat: out');
  const handles = Uint32Array.from(xs, (x) => x.handle);
  return wrap(call((e) => e.quant_concat(handles, Float32Array.from(ps, (q) => q.scale),
    Int32Array.from(ps, (q) => q.zeroPoint), axis, po.scale, po.zeroPoint)));
}

/** `[min, max]` of a float tensor (NaN ignored). */
export function minMax(x: Tensor): [number, number] {
  tensorArg(x, 'minMax');
  const r = call((e) => e.quant_minmax(x.handle));
  return [r[0], r[1]];
}

/** Counts of `x` in `bins` bins over `[lo, hi]` (outliers in the end bins). */
export function histogram(x: Tensor, lo: number, hi: number, bins: number): Uint32Array {
  tensorArg(x, 'histogram');
  checkNumber(lo, 'histogram: lo', { finite: true });
  checkNumber(hi, 'histogram: hi', { finite: true });
  checkSize(bins, 'histogram: bins', 1);
  return call((e) => e.quant_histogram(x.handle, lo, hi, bins));
}

/** A range inside `[lo, hi]` from a histogram: central `percentile` percent, or MSE-optimal. */
export function calibRange(counts: Float64Array, lo: number, hi: number, method: 'percentile' | 'mse', percentile = 99.99): [number, number] {
  if (!(counts instanceof Float64Array)) throw new ArgumentError(`calibRange: counts must be a Float64Array, got ${describe(counts)}`);
  checkNumber(lo, 'calibRange: lo', { finite: true });
  checkNumber(hi, 'calibRange: hi', { finite: true });
  if (method !== 'percentile' && method !== 'mse') throw new ArgumentError(`calibRange: method must be 'percentile' or 'mse', got ${describe(method)}`);
  checkNumber(percentile, 'calibRange: percentile', { finite: true });
  const r = call((e) => e.quant_calib_range(counts, lo, hi, method === 'percentile' ? 0 : 1, percentile));
  return [r[0], r[1]];
}

/** Fake quantization with a straight-through gradient (QAT). */
export function fakeQuant(x: Tensor, q: QParams): Tensor {
  tensorArg(x, 'fakeQuant');
  const { scale, zeroPoint } = qp(q, 'fakeQuant: q');
  return wrap(call((e) => e.quant_fake(x.handle, scale, zeroPoint)));
}

/** Per-channel symmetric fake quantization of weights (straight-through gradient). */
export function fakeQuantPerChannel(w: Tensor, axis: number): Tensor {
  tensorArg(w, 'fakeQuantPerChannel');
  checkAxis(axis, 'fakeQuantPerChannel: axis');
  return wrap(call((e) => e.quant_fake_per_channel(w.handle, axis)));
}

/** `α_c · sign(w)` with the BinaryConnect straight-through gradient `g · 1[|w| <= 1]`. */
export function binarize(w: Tensor, axis: number): Tensor {
  tensorArg(w, 'binarize');
  checkAxis(axis, 'binarize: axis');
  return wrap(call((e) => e.quant_binarize(w.handle, axis)));
}

/** Bit-packed signs and per-channel α: `[bits (int8), alpha (float32)]`. */
export function packBinary(w: Tensor, groups: number): [Tensor, Tensor] {
  tensorArg(w, 'packBinary');
  checkInt(groups, 'packBinary: groups', 0);
  const [b, a] = call((e) => e.quant_pack_binary(w.handle, groups));
  return [wrap(b), wrap(a)];
}

/** Binary fully connected layer: `x` float32 `[N, in]` times the bit-packed signs scaled by per-output α, plus `bias`. */
export function binaryLinear(x: Tensor, bits: Tensor, alpha: Tensor, bias: Tensor | null): Tensor {
  tensorArg(x, 'binaryLinear');
  tensorArg(bits, 'binaryLinear: bits');
  tensorArg(alpha, 'binaryLinear: alpha');
  const b = optTensor(bias, 'binaryLinear: bias');
  return wrap(call((e) => e.quant_binary_linear(x.handle, bits.handle, alpha.handle, b ? b.handle : 0)));
}

/** Binary conv on NHWC `x` with bit-packed HWIO signs, per-output-channel α and `bias`; geometry as in {@link ConvGeometry}. */
export function binaryConv2d(x: Tensor, bits: Tensor, alpha: Tensor, bias: Tensor | null, geom: ConvGeometry): Tensor {
  tensorArg(x, 'binaryConv2d');
  tensorArg(bits, 'binaryConv2d: bits');
  tensorArg(alpha, 'binaryConv2d: alpha');
  const b = optTensor(bias, 'binaryConv2d: bias');
  const g = geometry(geom, 'binaryConv2d: geometry');
  return wrap(call((e) => e.quant_binary_conv2d(x.handle, bits.handle, Uint32Array.from(g.kernel.slice(0, 2)), alpha.handle, b ? b.handle : 0,
    Uint32Array.from(g.stride), Uint32Array.from(g.padding), Uint32Array.from(g.dilation), g.groups)));
}

/** Magnitude-pruning masks over the tensors together (pass one for a layer-wise mask). */
export function pruneMasks(ws: Tensor[], sparsity: number): Tensor[] {
  const handles = Uint32Array.from(tensors(ws, 'pruneMasks'), (w) => w.handle);
  checkNumber(sparsity, 'pruneMasks: sparsity');
  return Array.from(call((e) => e.quant_prune_masks(handles, sparsity)), wrap);
}

/** `w *= mask` in place. */
export function applyMask(w: Tensor, mask: Tensor): void {
  tensorArg(w, 'applyMask');
  tensorArg(mask, 'applyMask: mask');
  call((e) => e.quant_apply_mask_(w.handle, mask.handle));
}

/** Number of elements of `x` that are exactly zero. */
export function countZeros(x: Tensor): number {
  tensorArg(x, 'countZeros');
  return call((e) => e.quant_count_zeros(x.handle));
}
