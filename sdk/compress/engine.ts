/**
 * Typed wrappers over the engine's quantization exports (`quant_*`): each is one engine call with
 * handles, wrapped in new Tensors. Everything numeric (scales, multipliers, rounding) happens in
 * Rust, so results are identical in every runtime.
 */
import { ArgumentError } from '../errors.js';
import { call } from '../runtime.js';
import { Tensor } from '../tensor.js';

/** Per-tensor affine quantization: `x ≈ scale · (q - zeroPoint)`, `q ∈ [-128, 127]`. */
export interface QParams {
  scale: number;
  zeroPoint: number;
}

const wrap = (h: number): Tensor => new Tensor(h);
const u32 = (a: readonly number[]): Uint32Array => Uint32Array.from(a);

/** Scale and zero point covering `[lo, hi]` (widened to include 0). */
export function chooseQParams(lo: number, hi: number): QParams {
  const [scale, zeroPoint] = call((e) => e.quant_choose_qparams(lo, hi));
  return { scale, zeroPoint };
}

/** float32 → int8. */
export function quantizeTensor(x: Tensor, q: QParams): Tensor {
  return wrap(call((e) => e.quant_quantize(x.handle, q.scale, q.zeroPoint)));
}

/** int8 → float32. */
export function dequantizeTensor(x: Tensor, q: QParams): Tensor {
  return wrap(call((e) => e.quant_dequantize(x.handle, q.scale, q.zeroPoint)));
}

/** Symmetric per-channel int8 weights along `axis`: `[q, scales]`. */
export function quantizePerChannel(w: Tensor, axis: number): [Tensor, Tensor] {
  const [q, s] = call((e) => e.quant_per_channel(w.handle, axis));
  return [wrap(q), wrap(s)];
}

/** Packs int8 weights for the int8 GEMM; `groups` 0 = linear `[out, in]`, else HWIO conv groups. */
export function packWeights(wq: Tensor, groups: number): Tensor {
  return wrap(call((e) => e.quant_pack_weights(wq.handle, groups)));
}

export interface LayerConstants {
  offsets: Tensor;
  /** Requantization multipliers (int8 output). */
  mult: Tensor | null;
  /** Dequantization scales (float output). */
  scales: Tensor | null;
  left: number;
  right: number;
}

/** A layer's integer constants; `out` null means a float output (the network's edge). */
export function layerConstants(wq: Tensor, wScales: Tensor, bias: Tensor | null, groups: number, x: QParams, out: QParams | null): LayerConstants {
  const r = call((e) => e.quant_layer_constants(wq.handle, wScales.handle, bias ? bias.handle : 0, groups, x.scale, x.zeroPoint,
    out ? out.scale : 0, out ? out.zeroPoint : 0));
  const second = wrap(r[1]);
  return { offsets: wrap(r[0]), mult: out ? second : null, scales: out ? null : second, left: r[2], right: r[3] };
}

/** How a quantized layer writes its output. */
export interface LayerOutput {
  c: LayerConstants;
  out: QParams | null;
  relu: boolean;
}

export function qlinear(x: Tensor, packed: Tensor, inFeatures: number, o: LayerOutput): Tensor {
  const { c } = o;
  return wrap(call((e) => e.quant_linear(x.handle, packed.handle, inFeatures, c.offsets.handle, c.mult ? c.mult.handle : 0, c.left, c.right,
    o.out ? o.out.scale : 1, o.out ? o.out.zeroPoint : 0, o.relu, c.scales ? c.scales.handle : 0)));
}

export interface ConvGeometry {
  /** `[kh, kw, cin / groups]`. */
  kernel: [number, number, number];
  stride: [number, number];
  /** `[top, bottom, left, right]`. */
  padding: [number, number, number, number];
  dilation: [number, number];
  groups: number;
}

/** `maxPool2`: also max-pool 2x2 with stride 2 (int8 output only; output `[N, OH/2, OW/2, C]`). */
export function qconv2d(x: Tensor, xZeroPoint: number, packed: Tensor, g: ConvGeometry, o: LayerOutput, maxPool2 = false): Tensor {
  const { c } = o;
  return wrap(call((e) => e.quant_conv2d(x.handle, xZeroPoint, packed.handle, u32(g.kernel), c.offsets.handle, u32(g.stride), u32(g.padding),
    u32(g.dilation), g.groups, c.mult ? c.mult.handle : 0, c.left, c.right, o.out ? o.out.scale : 1, o.out ? o.out.zeroPoint : 0, o.relu,
    c.scales ? c.scales.handle : 0, maxPool2)));
}

export function qmaxPool2d(x: Tensor, kernel: number[], stride: number[], padding: number[]): Tensor {
  return wrap(call((e) => e.quant_max_pool2d(x.handle, u32(kernel), u32(stride), u32(padding))));
}

export function qavgPool2d(x: Tensor, kernel: number[], stride: number[], padding: number[], countIncludePad: boolean, zeroPoint: number): Tensor {
  return wrap(call((e) => e.quant_avg_pool2d(x.handle, u32(kernel), u32(stride), u32(padding), countIncludePad, zeroPoint)));
}

export function qadd(a: Tensor, qa: QParams, b: Tensor, qb: QParams, out: QParams, relu: boolean): Tensor {
  return wrap(call((e) => e.quant_add(a.handle, qa.scale, qa.zeroPoint, b.handle, qb.scale, qb.zeroPoint, out.scale, out.zeroPoint, relu)));
}

export function qrequantize(x: Tensor, qin: QParams, out: QParams, relu: boolean): Tensor {
  return wrap(call((e) => e.quant_requantize(x.handle, qin.scale, qin.zeroPoint, out.scale, out.zeroPoint, relu)));
}

export function qconcat(xs: Tensor[], qs: QParams[], axis: number, out: QParams): Tensor {
  if (xs.length !== qs.length) throw new ArgumentError(`qconcat: ${xs.length} tensors but ${qs.length} quantizations`);
  return wrap(call((e) => e.quant_concat(u32(xs.map((x) => x.handle)), Float32Array.from(qs.map((q) => q.scale)),
    Int32Array.from(qs.map((q) => q.zeroPoint)), axis, out.scale, out.zeroPoint)));
}

/** `[min, max]` of a float tensor (NaN ignored). */
export function minMax(x: Tensor): [number, number] {
  const r = call((e) => e.quant_minmax(x.handle));
  return [r[0], r[1]];
}

/** Counts of `x` in `bins` bins over `[lo, hi]` (outliers in the end bins). */
export function histogram(x: Tensor, lo: number, hi: number, bins: number): Uint32Array {
  return call((e) => e.quant_histogram(x.handle, lo, hi, bins));
}

/** A range inside `[lo, hi]` from a histogram: central `percentile` percent, or MSE-optimal. */
export function calibRange(counts: Float64Array, lo: number, hi: number, method: 'percentile' | 'mse', percentile = 99.99): [number, number] {
  const r = call((e) => e.quant_calib_range(counts, lo, hi, method === 'percentile' ? 0 : 1, percentile));
  return [r[0], r[1]];
}

/** Fake quantization with a straight-through gradient (QAT). */
export function fakeQuant(x: Tensor, q: QParams): Tensor {
  return wrap(call((e) => e.quant_fake(x.handle, q.scale, q.zeroPoint)));
}

/** Per-channel symmetric fake quantization of weights (straight-through gradient). */
export function fakeQuantPerChannel(w: Tensor, axis: number): Tensor {
  return wrap(call((e) => e.quant_fake_per_channel(w.handle, axis)));
}

/** `α_c · sign(w)` with the BinaryConnect straight-through gradient `g · 1[|w| <= 1]`. */
export function binarize(w: Tensor, axis: number): Tensor {
  return wrap(call((e) => e.quant_binarize(w.handle, axis)));
}

/** Bit-packed signs and per-channel α: `[bits (int8), alpha (float32)]`. */
export function packBinary(w: Tensor, groups: number): [Tensor, Tensor] {
  const [b, a] = call((e) => e.quant_pack_binary(w.handle, groups));
  return [wrap(b), wrap(a)];
}

export function binaryLinear(x: Tensor, bits: Tensor, alpha: Tensor, bias: Tensor | null): Tensor {
  return wrap(call((e) => e.quant_binary_linear(x.handle, bits.handle, alpha.handle, bias ? bias.handle : 0)));
}

export function binaryConv2d(x: Tensor, bits: Tensor, alpha: Tensor, bias: Tensor | null, g: ConvGeometry): Tensor {
  return wrap(call((e) => e.quant_binary_conv2d(x.handle, bits.handle, u32(g.kernel.slice(0, 2)), alpha.handle, bias ? bias.handle : 0,
    u32(g.stride), u32(g.padding), u32(g.dilation), g.groups)));
}

/** Magnitude-pruning masks over the tensors together (pass one for a layer-wise mask). */
export function pruneMasks(ws: Tensor[], sparsity: number): Tensor[] {
  return Array.from(call((e) => e.quant_prune_masks(u32(ws.map((w) => w.handle)), sparsity)), wrap);
}

/** `w *= mask` in place. */
export function applyMask(w: Tensor, mask: Tensor): void {
  call((e) => e.quant_apply_mask_(w.handle, mask.handle));
}

export function countZeros(x: Tensor): number {
  return call((e) => e.quant_count_zeros(x.handle));
}
